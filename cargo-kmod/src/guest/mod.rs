//! The run model that qemu boots and deploy's boards share: what a guest does (a
//! [`plan::GuestPlan`] of typed steps over modules in load order, [`modules`]), what it
//! reported ([`protocol`], [`transcript`]), and the rules that judge it ([`judge`], [`ktap`],
//! [`verdict`]). Nothing here starts a process: qemu (`crate::qemu`) and deploy
//! (`crate::deploy`) run the steps and hand the records back as data.

pub mod judge;
pub mod ktap;
pub mod leaks;
pub mod modules;
pub mod plan;
pub mod protocol;
pub mod run;
pub mod transcript;
pub mod verdict;

pub use plan::{Action, FileSource, GuestFile, GuestPlan, Step, Then, When};
pub use transcript::Transcript;
