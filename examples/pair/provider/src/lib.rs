// SPDX-License-Identifier: GPL-2.0

//! The provider half of the pair: exports `pair_provider_next_id` (see `src/exports.c`).

use core::sync::atomic::{AtomicU64, Ordering};

use kernel::prelude::*;

kmod_macros::module! {
    type: Provider,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// The next id, for any module: exported with `EXPORT_SYMBOL_GPL` in `src/exports.c` and
/// declared in `include/pair_provider.h`.
#[no_mangle]
pub extern "C" fn pair_provider_next_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

struct Provider;

impl kernel::Module for Provider {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        pr_info!("pair_provider: ready\n");
        Ok(Provider)
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        pr_info!("pair_provider: handed out {} ids\n", NEXT_ID.load(Ordering::Relaxed) - 1);
    }
}

/// KUnit tests: built only by `cargo kmod test` (`--cfg test`), run when the module loads.
#[cfg(test)]
#[kunit_tests(pair_provider_tests)]
mod tests {
    use super::*;

    #[test]
    fn ids_increase() {
        let a = pair_provider_next_id();
        let b = pair_provider_next_id();
        assert!(a >= 1);
        assert_eq!(b, a + 1);
    }
}
