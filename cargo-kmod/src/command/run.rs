//! `cargo kmod run`: boot the tree's kernel under qemu with the modules loaded, then either
//! hand the terminal to a guest shell or run one command (`--exec`) and return its output
//! and exit status.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;

use crate::command::args::{BuildArgs, KdirArgs, PackageSelect};
use crate::context::Session;
use crate::error::UserError;
use crate::ops::test::GuestModules;
use crate::qemu::exec;
use crate::qemu::guest::Then;

#[derive(Debug, clap::Args)]
pub struct RunCmd {
    #[command(flatten)]
    pub kdir: KdirArgs,
    #[command(flatten)]
    pub packages: PackageSelect,
    #[command(flatten)]
    pub build: BuildArgs,
    /// Run this shell command in the guest and exit with its status, instead of a shell
    #[arg(long, value_name = "CMD")]
    pub exec: Option<String>,
    /// A module parameter, `name=value` (`module.name=value` with several modules)
    #[arg(long = "param", value_name = "NAME=VALUE")]
    pub params: Vec<String>,
    /// Boot with these already-built `.ko` files instead of building packages
    #[arg(long = "ko", value_name = "PATH")]
    pub ko: Vec<PathBuf>,
    /// Devices for this run, besides the packages' own: a TOML file of `[[devices]]`
    /// tables, or a `.dtso` overlay
    #[arg(long = "device", value_name = "FILE")]
    pub devices: Vec<PathBuf>,
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
        let guest = crate::ops::test::prepare(
            session,
            &self.packages.selection(),
            &self.kdir.selection()?,
            &GuestModules {
                ko: self.ko.clone(),
                params: self.params.clone(),
                build: self.build.options(false),
                devices: self.devices.clone(),
            },
        )?;
        let (tree, modules, machine) = (&guest.tree, &guest.modules, &guest.machine);
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
                machine.accel.name()
            ),
        );
        let Some(cmd) = &self.exec else {
            shell.note(
                "the guest's console follows; `reboot -f` in the guest (or Ctrl-A X) ends qemu",
            );
            let mut plan = exec::plan(modules, Then::Shell, &self.kernel_args, Duration::ZERO);
            if let Some(d) = &guest.devices {
                d.extend_run_plan(&mut plan);
            }
            return exec::run_shell_plan(shell, machine, &plan);
        };
        let mut plan = exec::plan(
            modules,
            Then::Exec(cmd.clone()),
            &self.kernel_args,
            Duration::from_secs(self.timeout.max(1)),
        );
        if let Some(d) = &guest.devices {
            d.extend_run_plan(&mut plan);
        }
        let verbose = shell.is_verbose();
        let code = exec::run_exec_plan(
            shell,
            machine,
            &plan,
            cmd,
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
