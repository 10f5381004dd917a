//! cargo-kmod: a Cargo subcommand for Linux kernel modules written in Rust.
//!
//! The library holds everything; `main.rs` only calls [`main_entry`]. The modules follow the
//! pipeline a module goes through:
//!
//! - [`manifest`]: `[package.metadata.kmod]` read from Cargo.toml;
//! - [`tree`]: kernel trees: prepared dev trees (`cargo kmod init`), `.config`, toolchain;
//! - [`plan`]: the generated Kbuild, Makefile and bindings for a package;
//! - [`kbuild`]: running the kernel's own build on the plan;
//! - [`ko`]: the resulting `.ko`: ELF sections, modinfo, versions, signature;
//! - [`ship`]: verify, sign, compress, package and install;
//! - [`qemu`]: boot a kernel, load modules, collect KTAP results;
//! - [`deploy`]: check, copy and load modules on a running board over ssh.
//!
//! [`command`] has one file per subcommand; each is a clap `Args` struct with a `run` method.

pub mod cli;
pub mod command;
pub mod deploy;
pub mod error;
pub mod fsutil;
pub mod kbuild;
pub mod ko;
pub mod manifest;
pub mod plan;
pub mod process;
pub mod qemu;
pub mod shell;
pub mod ship;
pub mod tree;

use clap::Parser;

use crate::cli::{CargoCli, Command};
use crate::shell::Shell;

/// What every command runs with.
pub struct Context {
    pub shell: Shell,
}

/// Parse argv, run the command, print errors cargo-style, return the exit code.
pub fn main_entry() -> std::process::ExitCode {
    let CargoCli::Kmod(cli) = CargoCli::parse();
    let shell = Shell::new(
        cli.global.verbosity(),
        cli.global.message_format,
        cli.global.color,
    );
    let ctx = Context { shell };
    match run(&ctx, cli.command) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            let (message, hint, code) = error::render(&err);
            ctx.shell.error(message, hint.as_deref());
            std::process::ExitCode::from(code)
        }
    }
}

/// Dispatch a parsed command.
pub fn run(ctx: &Context, command: Command) -> anyhow::Result<()> {
    match command {
        Command::Init(c) => c.run(ctx),
        Command::Doctor(c) => c.run(ctx),
        Command::New(c) => c.run(ctx),
        Command::Build(c) => c.run(ctx),
        Command::Ide(c) => c.run(ctx),
        Command::Info(c) => c.run(ctx),
        Command::Verify(c) => c.run(ctx),
        Command::Package(c) => c.run(ctx),
        Command::Install(c) => c.run(ctx),
        Command::Test(c) => c.run(ctx),
        Command::Run(c) => c.run(ctx),
        Command::Deploy(c) => c.run(ctx),
    }
}
