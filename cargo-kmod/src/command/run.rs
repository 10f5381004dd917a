//! `cargo kmod run`: boot the tree's kernel under qemu with the modules loaded, then either
//! hand the terminal to a guest shell or run one command (`--exec`) and return its output
//! and exit status.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;

use crate::command::args::{KdirArgs, PackageSelect};
use crate::context::Session;
use crate::error::UserError;
use crate::ops::test::GuestModules;
use crate::qemu::exec::{self, ExecOptions};
use crate::qemu::machine::Machine;

#[derive(Debug, clap::Args)]
pub struct RunCmd {
    #[command(flatten)]
    pub kdir: KdirArgs,
    #[command(flatten)]
    pub packages: PackageSelect,
    /// Run this shell command in the guest and exit with its status, instead of a shell
    #[arg(long, value_name = "CMD")]
    pub exec: Option<String>,
    /// A module parameter, `name=value` (`module.name=value` with several modules)
    #[arg(long = "param", value_name = "NAME=VALUE")]
    pub params: Vec<String>,
    /// Boot with these already-built `.ko` files instead of building packages
    #[arg(long = "ko", value_name = "PATH")]
    pub ko: Vec<PathBuf>,
    /// With `--exec`: kill the guest after this many seconds
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub timeout: u64,
    /// Extra kernel command-line arguments
    #[arg(last = true, value_name = "KERNEL_ARGS")]
    pub kernel_args: Vec<String>,
}

impl RunCmd {
    pub fn run(&self, session: &Session) -> Result<()> {
        let shell = &session.shell;
        let (tree, modules) = crate::ops::test::prepare(
            session,
            &self.packages.selection(),
            &self.kdir.selection()?,
            &GuestModules {
                ko: self.ko.clone(),
                params: self.params.clone(),
                test_build: false,
            },
        )?;
        let accel = crate::qemu::accel::choose(shell, &tree)?;
        let machine = Machine::for_tree(&tree, accel)?;
        let names: Vec<&str> = modules.iter().map(|m| m.name.as_str()).collect();
        let with = if names.is_empty() {
            String::new()
        } else {
            format!(" with {}", names.join(", "))
        };
        shell.status(
            "Booting",
            format!(
                "{} {}{} (qemu, {})",
                tree.arch,
                tree.release,
                with,
                accel.name()
            ),
        );
        let Some(cmd) = &self.exec else {
            shell.note(
                "the guest's console follows; `reboot -f` in the guest (or Ctrl-A X) ends qemu",
            );
            return exec::run_shell(shell, &machine, &modules, &self.kernel_args);
        };
        let opts = ExecOptions {
            cmdline: self.kernel_args.clone(),
            timeout: Duration::from_secs(self.timeout.max(1)),
        };
        let verbose = shell.is_verbose();
        let code = exec::run_exec(
            shell,
            &machine,
            &modules,
            cmd,
            &opts,
            |l| shell.out(l),
            |l| {
                if verbose {
                    eprintln!("{l}");
                }
            },
        )?;
        if code == 0 {
            Ok(())
        } else {
            Err(
                UserError::new(format!("`{cmd}` exited with status {code} in the guest"))
                    .with_exit_code(code.clamp(1, 255) as u8)
                    .into(),
            )
        }
    }
}
