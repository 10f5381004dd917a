//! Command-line parsing in cargo's manner.
//!
//! The outer parser is `cargo` (`bin_name = "cargo"`) whose only subcommand is `kmod`, so
//! `cargo kmod build` and `cargo-kmod kmod build` parse the same. Global flags (`-v`, `-q`,
//! `--color`, `--message-format`) are accepted before or after the subcommand.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::command;
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

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Prepare Rust-enabled development kernel trees (x86_64 and arm64)
    Init(command::init::InitCmd),
    /// Check the toolchain against a kernel tree
    Doctor(command::doctor::DoctorCmd),
    /// Create a new kernel module package
    New(command::new::NewCmd),
    /// Build the module(s) of a package or workspace with the kernel's kbuild
    Build(command::build::BuildCmd),
    /// Write a rust-project.json so rust-analyzer understands the module
    Ide(command::ide::IdeCmd),
    /// Show what is inside a .ko (modinfo, signature, symbols and CRCs)
    Info(command::info::InfoCmd),
    /// Check that a .ko will load on a kernel tree
    Verify(command::verify::VerifyCmd),
    /// Strip, sign, compress and package modules in the lib/modules layout
    Package(command::package::PackageCmd),
    /// Install modules into a module tree and run depmod
    Install(command::install::InstallCmd),
    /// Boot the kernel in qemu, load the modules and report their KUnit results
    Test(command::test::TestCmd),
    /// Boot the kernel in qemu with the module loaded: a shell, or one command
    Run(command::run::RunCmd),
    /// Check, copy and load the modules on a running board over ssh, and report the kernel's answer
    Deploy(command::deploy::DeployCmd),
}

/// Which kernel tree to use: `--kdir`, `--target`, `KDIR`, the manifest, or the dev tree of
/// `--arch` prepared by `cargo kmod init`.
#[derive(Debug, Clone, Default, Args)]
pub struct KdirArgs {
    /// A built kernel tree (the `O=` directory), as in `make -C KDIR`
    #[arg(long, value_name = "DIR", conflicts_with = "target")]
    pub kdir: Option<PathBuf>,
    /// A named target from `[workspace.metadata.kmod.targets.NAME]`
    #[arg(long, value_name = "NAME")]
    pub target: Option<String>,
    /// Target architecture (default: the host's, or the tree's)
    #[arg(long, value_name = "ARCH")]
    pub arch: Option<String>,
}

/// Which packages: cargo's `--manifest-path`, `-p`, `--workspace`.
#[derive(Debug, Clone, Default, Args)]
pub struct PackageSelect {
    /// Path to Cargo.toml
    #[arg(long, value_name = "PATH")]
    pub manifest_path: Option<PathBuf>,
    /// Package(s) to act on
    #[arg(short, long = "package", value_name = "SPEC")]
    pub packages: Vec<String>,
    /// Act on all modules in the workspace
    #[arg(long)]
    pub workspace: bool,
}
