//! Booting a kernel under qemu: one entry point for `test`, `run` and the integration tests.
//!
//! The data flows: a [`Machine`] (the boot target, derived from a kernel tree) and a
//! [`GuestPlan`] (files and typed steps) go into [`session::run_plan`], which builds the
//! initramfs, boots, and reads the guest's protocol back into a [`Transcript`]; the verdict is
//! judged from the transcript.
//!
//! - [`tools`]: finding qemu, a static busybox, qboot (also for `doctor`);
//! - [`machine`]: the boot target as data (qemu, `-M`, cpu, kernel, console, channel);
//! - [`dtb`]: qemu's own `virt` device tree, dumped once and handed back compact;
//! - [`initramfs`]: a `newc` cpio written in Rust;
//! - [`guest`]: the plan (files, typed steps, settle, what comes after) and its `/init`;
//! - [`protocol`]: the token-authenticated guest protocol and `/dev/kmsg` records, one parser;
//! - [`boot`]: one qemu process, console and channel streams, deadline;
//! - [`session`]: plan in, transcript out ([`run_plan`], [`spawn_plan`], interactive);
//! - [`snapshot`]: test boots resumed from a saved, booted guest (arm64 `virt`);
//! - [`transcript`]: the host's record of a boot: steps, log records, sync points;
//! - [`judge`]: judging a step (status, log, taint, lost lines, KTAP), transport-free;
//! - [`ktap`]: the KTAP parser (KUnit results);
//! - [`modules`]: `.ko` files to load (through [`crate::ko`]) and their load order;
//! - [`testrun`]: `cargo kmod test`'s boot and its case results;
//! - [`exec`]: `cargo kmod run`'s boots (`--exec` and the interactive shell);
//! - [`accel`]: KVM after a successful probe boot, TCG otherwise;
//! - [`reaper`]: no qemu outlives cargo-kmod (process groups, `PR_SET_PDEATHSIG`, Ctrl-C).

pub mod accel;
pub mod boot;
pub mod dtb;
pub mod exec;
pub mod guest;
pub mod initramfs;
pub mod judge;
pub mod ktap;
pub mod machine;
pub mod modules;
pub mod protocol;
pub mod reaper;
pub mod session;
pub mod snapshot;
pub mod testrun;
pub mod tools;
pub mod transcript;

pub use boot::{Boot, BootEnd, BootLog, Flow};
pub use guest::{Action, FileSource, GuestFile, GuestPlan, Step, Then, When};
pub use initramfs::Initramfs;
pub use machine::{Accel, Channel, Machine};
pub use session::{run_interactive, run_plan, spawn_plan, GuestRun, RunningGuest, Seen};
pub use transcript::Transcript;
