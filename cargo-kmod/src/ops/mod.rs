//! Operations: what commands do, over a resolved [`crate::context::BuildContext`] (or the
//! files and tree a command was given), returning plain types. Commands only parse
//! arguments, call one of these and print the result.
//!
//! - [`build`]: lock, no-op check, plan, kbuild, publish -> [`build::Artifact`]s;
//! - [`test`]: the modules a qemu boot loads (built with tests, or given as `.ko` files);
//! - [`ship`]: verify, prepare, package, install;
//! - [`check`], [`clippy`]: kbuild's rustc (or clippy) command with `--emit=metadata`, by
//!   module -> rustc's JSON diagnostics;
//! - [`fmt`]: rustfmt over each module's sources in the tree's style;
//! - [`ide`]: `rust-project.json` for rust-analyzer;
//! - [`matrix`]: one command over every cell of the workspace's matrix, each its own process.

pub mod build;
pub mod check;
pub mod clippy;
pub mod deploy;
pub mod doc;
pub mod doctor;
pub mod export;
pub mod fmt;
pub mod ide;
pub mod init;
pub mod kit;
pub mod matrix;
pub mod new;
pub mod run;
pub mod ship;
pub mod test;
