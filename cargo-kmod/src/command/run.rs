//! `cargo kmod run`: boot the tree's kernel under qemu with the modules loaded, then either
//! hand the terminal to a guest shell or run one command (`--exec`) and return its output
//! and exit status.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;

use crate::command::args::{BuildArgs, KdirArgs, PackageSelect};
use crate::context::Session;
use crate::error::UserError;
use crate::ops::run::RunRequest;
use crate::ops::test::GuestModules;

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
        let req = RunRequest {
            guest: GuestModules {
                ko: self.ko.clone(),
                params: self.params.clone(),
                build: self.build.options(false),
                devices: self.devices.clone(),
            },
            exec: self.exec.clone(),
            kernel_args: self.kernel_args.clone(),
            timeout: Duration::from_secs(self.timeout.max(1)),
        };
        let verbose = shell.is_verbose();
        let code = crate::ops::run::run(
            session,
            &self.packages.selection(),
            &self.kdir.selection()?,
            &req,
            |guest| {
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
                if self.exec.is_none() {
                    shell.note(
                        "the guest's console follows; `reboot -f` in the guest (or Ctrl-A X) ends qemu",
                    );
                }
            },
            |l| shell.out(l),
            |l| {
                if verbose {
                    eprintln!("{l}");
                }
            },
        )?;
        match (code, &self.exec) {
            (Some(code), Some(cmd)) if code != 0 => Err(UserError::new(format!(
                "`{cmd}` exited with status {code} in the guest"
            ))
            .with_exit_code(code.clamp(1, 255) as u8)
            .into()),
            _ => Ok(()),
        }
    }
}
