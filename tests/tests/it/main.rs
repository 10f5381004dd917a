//! The integration tests: one test binary (as cargo's `tests/testsuite` and xshell's
//! `tests/it`), one module per area, and the helpers they share in `common` only.
//!
//! `cargo test -p kmod-integration-tests NAME` filters by test name as before; a module's
//! tests are `MODULE::` (`cargo test -p kmod-integration-tests qemu::`). Every test runs in
//! this one process: nothing may change the process's environment or working directory
//! (give a child its own with `Command::env`/`current_dir`), and what tests share (the
//! `cargo-kmod` binary, modules built once, trees, boards) is behind a `OnceLock` or a lock
//! in `common`.

mod common;

mod boards;
mod build;
mod cargo_loop;
mod conventions;
mod crates;
mod debug;
mod deploy;
mod devices;
mod distro;
mod examples;
mod export;
mod hardening;
mod matrix;
mod new;
mod published;
mod qemu;
mod ship;
mod subsys;
mod tree;
