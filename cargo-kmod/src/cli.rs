//! Command-line parsing in cargo's manner.
//!
//! The outer parser is `cargo` (`bin_name = "cargo"`) whose only subcommand is `kmod`, so
//! `cargo kmod build` and `cargo-kmod kmod build` parse the same. Global flags (`-v`, `-q`,
//! `--color`, `--message-format`) are accepted before or after the subcommand. The
//! subcommands are in [`crate::command`]; this file imports them, they never import it.

use clap::{Args, Parser};

use crate::command::Command;
use crate::shell::{ColorChoice, MessageFormat, Verbosity};

#[derive(Debug, Parser)]
#[command(name = "cargo", bin_name = "cargo", styles = clap::builder::Styles::styled())]
pub enum CargoCli {
    /// Build, test, inspect and ship Linux kernel modules written in Rust
    #[command(name = "kmod", version, author)]
    Kmod(KmodCli),
}

#[derive(Debug, Args)]
pub struct KmodCli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// Use verbose output (-vv very verbose): print every command run
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Do not print cargo-kmod status messages
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Coloring
    #[arg(long, value_enum, default_value_t, global = true, value_name = "WHEN")]
    pub color: ColorChoice,
    /// Output format for messages
    #[arg(long, value_enum, default_value_t, global = true, value_name = "FMT")]
    pub message_format: MessageFormat,
}

impl GlobalArgs {
    pub fn verbosity(&self) -> Verbosity {
        match (self.quiet, self.verbose) {
            (true, _) => Verbosity::Quiet,
            (false, 0) => Verbosity::Normal,
            (false, 1) => Verbosity::Verbose,
            _ => Verbosity::VeryVerbose,
        }
    }
}
