//! The kernel side of everything, as plain data: architectures, versions, kernel trees and
//! their `.config`, the toolchain that builds against a tree, board presets, and
//! `$CARGO_KMOD_HOME` with every path under it. Preparing a tree (`cargo kmod init`'s build)
//! is here too, as a stage that takes a plain [`prepare::Request`].
//!
//! Invariant: this module imports nothing above it (only `env`, `error`, `fsutil`,
//! `process`, `shell`, `text`); the layering test in `tests/` checks it.

pub mod arch;
pub mod board;
pub mod config;
pub mod home;
pub mod layout;
pub mod prepare;
pub mod resolve;
pub mod toolchain;
pub mod tree;
pub mod version;

pub use arch::Arch;
pub use tree::{Compiler, KernelTree, ToolChoice, TreeTools};
pub use version::Version;
