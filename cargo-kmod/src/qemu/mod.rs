//! Booting a kernel under qemu: initramfs, boot, module loading, KTAP results.
//!
//! - [`initramfs`]: a `newc` cpio written in Rust (busybox-static, `/init`, extra files);
//! - [`boot`]: one qemu run of a tree's image (x86_64 `pc`, arm64 `-M virt`) with a console
//!   pipe, a deadline, and [`boot::boot_to_marker`] for "boot and wait for this line";
//! - [`accel`]: KVM after a successful probe boot, TCG otherwise;
//! - [`reaper`]: no qemu outlives cargo-kmod (process groups, `PR_SET_PDEATHSIG`, Ctrl-C).

pub mod accel;
pub mod boot;
pub mod initramfs;
pub mod reaper;

pub use boot::{boot_to_marker, Accel, Boot, BootEnd, BootLog, Flow, MarkerBoot};
pub use initramfs::Initramfs;
