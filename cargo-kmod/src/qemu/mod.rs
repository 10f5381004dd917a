//! Booting a kernel under qemu: one entry point for `test`, `run`, deploy's test board and
//! the integration tests.
//!
//! The data flows: a [`Machine`] (the boot target, derived from a kernel tree) and a
//! [`crate::guest::GuestPlan`] (files and typed steps) go into [`session::run_plan`], which
//! renders the plan's `/init` ([`script`]), builds the initramfs, boots, and reads the guest's
//! protocol back into a [`crate::guest::Transcript`]; the verdict is the run model's
//! ([`crate::guest`]), shared with deploy.
//!
//! - [`tools`]: finding qemu, a static busybox, qboot (also for `doctor`);
//! - [`machine`]: the boot target as data (qemu, `-M`, cpu, kernel, console, channel);
//! - [`dtb`]: qemu's own `virt` device tree, dumped once and handed back compact;
//! - [`initramfs`]: a `newc` cpio written in Rust;
//! - [`script`]: a plan rendered as the busybox `/init`, and the kernel arguments it needs;
//! - [`boot`]: one qemu process, console and channel streams, deadline;
//! - [`session`]: plan in, transcript out ([`run_plan`], [`spawn_plan`], interactive);
//! - [`snapshot`]: test boots resumed from a saved, booted guest (arm64 `virt`);
//! - [`testrun`]: `cargo kmod test`'s boot, judged by [`crate::guest::verdict`];
//! - [`exec`]: `cargo kmod run`'s boots (`--exec` and the interactive shell);
//! - [`accel`]: KVM after a successful probe boot, TCG otherwise;
//! - [`reaper`]: no qemu outlives cargo-kmod (process groups, `PR_SET_PDEATHSIG`, Ctrl-C).

pub mod accel;
pub mod boot;
pub mod dtb;
pub mod exec;
pub mod initramfs;
pub mod machine;
pub mod reaper;
pub mod script;
pub mod session;
pub mod snapshot;
pub mod testrun;
pub mod tools;
pub mod uefi;

pub use boot::{Boot, Flow};
pub use initramfs::Initramfs;
pub use machine::{Accel, Channel, Machine};
pub use session::{run_interactive, run_plan, spawn_plan, RunningGuest, Seen};
