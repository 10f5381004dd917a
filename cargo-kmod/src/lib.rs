//! cargo-kmod: a Cargo subcommand for Linux kernel modules written in Rust.
//!
//! The library holds everything; `main.rs` only calls [`main_entry`]. The modules follow the
//! pipeline a module goes through:
//!
//! - [`manifest`]: `[package.metadata.kmod]` read from Cargo.toml;
//! - [`tree`]: kernel trees: prepared dev trees (`cargo kmod init`), `.config`, toolchain;
//! - [`deps`]: `[dependencies]` crates, built by cargo for the kernel and linked in;
//! - [`plan`]: the generated Kbuild, Makefile and bindings for a package;
//! - [`kbuild`]: running the kernel's own build on the plan;
//! - [`ko`]: the resulting `.ko`: ELF sections, modinfo, versions, signature;
//! - [`ship`]: verify, sign, compress, package and install;
//! - [`qemu`]: boot a kernel, load modules, collect KTAP results;
//! - [`deploy`]: check, copy and load modules on a running board over ssh.
//! - [`devices`]: test devices (device-tree overlays, a software I2C bus) for drivers to probe.
//!
//! Across the stages: [`text`] escapes every untrusted string before it reaches the terminal.
//! Above the stages: [`context`] resolves what a command works on once (workspace, modules,
//! the kernel tree with its toolchain), [`ops`] does the work over that plain data, and
//! [`command`] has one file per subcommand (clap arguments in, printing out).

pub mod cli;
pub mod command;
pub mod context;
pub mod deploy;
pub mod deps;
pub mod devices;
pub mod env;
pub mod error;
pub mod export;
pub mod fdt;
pub mod fsutil;
pub mod guest;
pub mod kbuild;
pub mod kernel;
pub mod ko;
pub mod manifest;
pub mod matrix;
pub mod ops;
pub mod plan;
pub mod process;
pub mod qemu;
pub mod shell;
pub mod ship;
pub mod text;
#[cfg(test)]
mod tidy;

use clap::Parser;

use crate::cli::CargoCli;
use crate::context::Session;
use crate::shell::Shell;

/// Parse argv, run the command, print errors cargo-style, return the exit code.
pub fn main_entry() -> std::process::ExitCode {
    // cargo runs cargo-kmod as its rustc wrapper while building module dependencies.
    if let Some(code) = deps::wrapper::main_if_wrapper() {
        return code;
    }
    let CargoCli::Kmod(cli) = CargoCli::parse();
    let shell = Shell::new(
        cli.global.verbosity(),
        cli.global.message_format,
        cli.global.color,
    );
    let session = Session::new(shell);
    match cli.command.run(&session) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            let (message, hint, code) = error::render(&err);
            session.shell.error(message, hint.as_deref());
            std::process::ExitCode::from(code)
        }
    }
}
