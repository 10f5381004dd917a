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
pub mod distro;
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

/// `MODULE_NAME_LEN - 1`: the longest name `struct module` holds.
pub const MAX_MODULE_NAME: usize = 55;

/// What kbuild and the module loader accept as a module name: `[A-Za-z0-9_]`, at most
/// [`MAX_MODULE_NAME`] bytes. A leading digit is fine (`8250`, `8139too`, `9pnet`).
pub fn is_valid_module_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_MODULE_NAME
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}
