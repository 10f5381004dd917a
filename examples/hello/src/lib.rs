// SPDX-License-Identifier: GPL-2.0

//! A minimal Rust kernel module with a parameter.
//!
//! Its name, authors, description, license and version come from Cargo.toml through
//! `kmod_macros::module!`, which writes the `module!` syntax of the kernel it is built for:
//! the same source builds on Linux 6.12 and 7.x.
//!
//! `insmod hello.ko greeting_count=3` greets three times.

use kernel::prelude::*;

kmod_macros::module! {
    type: Hello,
    params: {
        greeting_count: i64 {
            default: 1,
            description: "How many times to greet when loaded (0 to 10)",
        },
    },
}

/// The number of greetings for a `greeting_count` parameter value.
fn greetings(count: i64) -> i64 {
    count.clamp(0, 10)
}

struct Hello;

impl kernel::Module for Hello {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let count = *module_parameters::greeting_count.value();
        for i in 0..greetings(count) {
            pr_info!("Hello from Rust ({}/{})\n", i + 1, greetings(count));
        }
        Ok(Hello)
    }
}

impl Drop for Hello {
    fn drop(&mut self) {
        pr_info!("Goodbye from Rust\n");
    }
}

/// KUnit tests: built only by `cargo kmod test` (`--cfg test`), run when the module loads.
#[cfg(test)]
#[kunit_tests(hello_tests)]
mod tests {
    use super::*;

    #[test]
    fn default_greets_once() {
        assert_eq!(greetings(1), 1);
    }

    #[test]
    fn greetings_are_clamped() {
        assert_eq!(greetings(-5), 0);
        assert_eq!(greetings(1000), 10);
    }

    #[test]
    fn parameter_has_its_default() {
        assert_eq!(*module_parameters::greeting_count.value(), 1);
    }
}
