//! Booting a kernel under qemu: initramfs, boot, module loading, KTAP results.
//!
//! - [`initramfs`]: a `newc` cpio written in Rust (busybox-static, `/init`, extra files);
//! - [`boot`]: one qemu run of a tree's image (x86_64 `pc`, arm64 `-M virt`) with a console
//!   pipe, a deadline, and [`boot::boot_to_marker`] for "boot and wait for this line";
//! - [`accel`]: KVM after a successful probe boot, TCG otherwise;
//! - [`guest`]: the test boot's `/init` script and the transcript it prints;
//! - [`ktap`]: the KTAP parser (KUnit results);
//! - [`modules`]: `.ko` files to load (`.modinfo` name and `depends`, load order);
//! - [`testrun`]: one test boot, modules in, `cargo test`-style case results out;
//! - [`reaper`]: no qemu outlives cargo-kmod (process groups, `PR_SET_PDEATHSIG`, Ctrl-C).

pub mod accel;
pub mod boot;
pub mod guest;
pub mod initramfs;
pub mod ktap;
pub mod modules;
pub mod reaper;
pub mod testrun;

pub use boot::{boot_to_marker, Accel, Boot, BootEnd, BootLog, Flow, MarkerBoot};
pub use initramfs::Initramfs;
