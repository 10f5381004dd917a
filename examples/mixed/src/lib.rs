// SPDX-License-Identifier: MIT OR GPL-2.0

//! Rust and C in one kernel module.
//!
//! `src/checksum.c` is compiled by kbuild; `include/checksum.h` is turned into Rust by
//! bindgen (`$OUT_DIR/checksum.rs`). Rust calls `mixed_c_fold`, which calls back into Rust's
//! `mixed_rust_weigh` for every byte.

use kernel::ffi::{c_uchar, c_uint};
use kernel::prelude::*;

kmod_macros::module! {
    type: Mixed,
    params: {
        seed: u32 {
            default: 7,
            description: "Added to every byte's weight",
        },
    },
}

/// The C half's API, generated from `include/checksum.h`.
mod bindings {
    #![allow(
        dead_code,
        non_camel_case_types,
        non_upper_case_globals,
        unreachable_pub
    )]
    include!(concat!(env!("OUT_DIR"), "/checksum.rs"));
}

/// Called from C for every byte: the byte's weight at its position.
#[no_mangle]
pub extern "C" fn mixed_rust_weigh(byte: c_uchar, position: c_uint) -> c_uint {
    weigh(byte, position, *module_parameters::seed.value())
}

/// The weight of `byte` at `position`.
fn weigh(byte: u8, position: u32, seed: u32) -> u32 {
    u32::from(byte)
        .wrapping_mul(position.wrapping_add(1))
        .wrapping_add(seed)
}

/// Fold `data` in C (which weighs each byte in Rust).
fn fold(data: &[u8]) -> Result<bindings::mixed_c_summary> {
    let mut out = bindings::mixed_c_summary {
        bytes: 0,
        checksum: 0,
    };
    // SAFETY: `data` is valid for `data.len()` bytes and `out` is a valid, exclusive
    // `mixed_c_summary`; C keeps neither pointer.
    let ret = unsafe { bindings::mixed_c_fold(data.as_ptr(), data.len() as _, &mut out) };
    if ret < 0 {
        return Err(Error::from_errno(ret));
    }
    Ok(out)
}

struct Mixed;

impl kernel::Module for Mixed {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let summary = fold(b"cargo-kmod")?;
        pr_info!(
            "{} bytes, checksum {:#010x}\n",
            summary.bytes,
            summary.checksum
        );
        Ok(Mixed)
    }
}

impl Drop for Mixed {
    fn drop(&mut self) {
        pr_info!("unloaded\n");
    }
}

/// KUnit tests: built only by `cargo kmod test` (`--cfg test`), run when the module loads.
#[cfg(test)]
#[kunit_tests(mixed_tests)]
mod tests {
    use super::*;

    #[test]
    fn c_weighs_every_byte_in_rust() -> Result {
        let seed = *module_parameters::seed.value();
        let summary = fold(&[1, 2])?;
        assert_eq!(summary.bytes, 2);
        let first = weigh(1, 0, seed);
        assert_eq!(summary.checksum, first.rotate_left(1) ^ weigh(2, 1, seed));
        Ok(())
    }

    #[test]
    fn empty_buffer_folds_to_zero() -> Result {
        let summary = fold(&[])?;
        assert_eq!((summary.bytes, summary.checksum), (0, 0));
        Ok(())
    }

    #[test]
    fn null_is_rejected_by_c() {
        // SAFETY: C checks for NULL before touching either pointer.
        let ret = unsafe { bindings::mixed_c_fold(core::ptr::null(), 1, core::ptr::null_mut()) };
        assert_eq!(ret, -22);
    }
}
