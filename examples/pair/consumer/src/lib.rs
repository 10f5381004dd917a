// SPDX-License-Identifier: GPL-2.0

//! The consumer half of the pair: calls `pair_provider_next_id`, which the provider module
//! exports. Loading it needs `pair_provider` loaded first (`modprobe` does that from the
//! `depends=` modpost records).

use kernel::prelude::*;

kmod_macros::module! {
    type: Consumer,
}

/// The provider's exported API, generated from its header.
mod provider {
    #![allow(
        dead_code,
        non_camel_case_types,
        non_upper_case_globals,
        unreachable_pub
    )]
    include!(concat!(env!("OUT_DIR"), "/pair_provider.rs"));
}

/// An id from the provider module.
fn next_id() -> u64 {
    // SAFETY: an exported function of `pair_provider` without arguments; the module loader
    // only loads this module once `pair_provider` is loaded.
    unsafe { provider::pair_provider_next_id() }
}

struct Consumer {
    id: u64,
}

impl kernel::Module for Consumer {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let id = next_id();
        pr_info!("got id {} from pair_provider\n", id);
        Ok(Consumer { id })
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        pr_info!("gave back id {}\n", self.id);
    }
}

/// KUnit tests: built only by `cargo kmod test` (`--cfg test`), run when the module loads.
#[cfg(test)]
#[kunit_tests(pair_consumer_tests)]
mod tests {
    use super::*;

    #[test]
    fn provider_ids_increase_across_modules() {
        let a = next_id();
        assert_eq!(next_id(), a + 1);
    }
}
