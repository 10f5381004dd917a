//! One file per subcommand: a clap `Args` struct whose `run(&Session)` turns the arguments
//! into plain data, calls the `ops` layer (or a stage) and prints the result. No command
//! imports another; argument groups several commands share are in [`args`].

pub mod args;
pub mod build;
pub mod check;
pub mod ci;
pub mod clippy;
pub mod deploy;
pub mod diagnostics;
pub mod doc;
pub mod doctor;
pub mod export;
pub mod fmt;
pub mod ide;
pub mod info;
pub mod init;
pub mod install;
pub mod kit;
pub mod kmm;
pub mod matrix;
pub mod new;
pub mod package;
pub mod run;
pub mod test;
pub mod verify;

use anyhow::Result;
use clap::Subcommand;

use crate::context::Session;

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Prepare Rust-enabled development kernel trees (x86_64 and arm64)
    Init(init::InitCmd),
    /// Check the toolchain against a kernel tree
    Doctor(doctor::DoctorCmd),
    /// Create a new kernel module package
    New(new::NewCmd),
    /// Build the module(s) of a package or workspace with the kernel's kbuild
    Build(build::BuildCmd),
    /// Type-check the module(s) with kbuild's rustc command, without building a .ko
    Check(check::CheckCmd),
    /// Lint the module(s) with clippy as kbuild runs it (CLIPPY=1) and the package's [lints]
    Clippy(clippy::ClippyCmd),
    /// Format the modules' sources with rustfmt and the kernel tree's .rustfmt.toml
    Fmt(fmt::FmtCmd),
    /// Write a rust-project.json so rust-analyzer understands the module
    Ide(ide::IdeCmd),
    /// Build the modules' documentation with links into the kernel crate's docs
    Doc(doc::DocCmd),
    /// Show what is inside a .ko (modinfo, signature, symbols and CRCs)
    Info(info::InfoCmd),
    /// Check that a .ko will load on a kernel tree
    Verify(verify::VerifyCmd),
    /// Strip, sign, compress and package modules in the lib/modules layout
    Package(package::PackageCmd),
    /// Install modules into a module tree and run depmod
    Install(install::InstallCmd),
    /// Boot the kernel in qemu, load the modules and report their KUnit results
    Test(test::TestCmd),
    /// Boot the kernel in qemu with the module loaded: a shell, or one command
    Run(run::RunCmd),
    /// Write the module into a kernel source tree with its Kconfig and Makefile (upstreaming)
    Export(export::ExportCmd),
    /// Export a tree's kernel, DTBs, modules and a headers package with the Rust artifacts
    Kit(kit::KitCmd),
    /// Check, copy and load the modules on a running board over ssh, and report the kernel's answer
    Deploy(deploy::DeployCmd),
    /// Write a CI workflow whose job matrix is the workspace's matrix (GitHub Actions, GitLab CI)
    Ci(ci::CiCmd),
    /// Write kmod images and Module resources for Kubernetes' Kernel Module Management
    Kmm(kmm::KmmCmd),
}

impl Command {
    /// Run the parsed command.
    pub fn run(self, session: &Session) -> Result<()> {
        match self {
            Command::Init(c) => c.run(session),
            Command::Doctor(c) => c.run(session),
            Command::New(c) => c.run(session),
            Command::Build(c) => c.run(session),
            Command::Check(c) => c.run(session),
            Command::Clippy(c) => c.run(session),
            Command::Fmt(c) => c.run(session),
            Command::Ide(c) => c.run(session),
            Command::Doc(c) => c.run(session),
            Command::Info(c) => c.run(session),
            Command::Verify(c) => c.run(session),
            Command::Package(c) => c.run(session),
            Command::Install(c) => c.run(session),
            Command::Test(c) => c.run(session),
            Command::Run(c) => c.run(session),
            Command::Export(c) => c.run(session),
            Command::Kit(c) => c.run(session),
            Command::Deploy(c) => c.run(session),
            Command::Ci(c) => c.run(session),
            Command::Kmm(c) => c.run(session),
        }
    }
}
