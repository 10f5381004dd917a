//! `cargo kmod run`: boot the tree's kernel under qemu with the modules loaded, then either
//! hand the terminal to a guest shell or run one command (`--exec`) and return its output
//! and exit status.

use anyhow::Result;

use crate::command::args::{BootArgs, BuildArgs, KdirArgs, KoArgs, PackageSelect};
use crate::context::Session;
use crate::error::UserError;
use crate::ops::run::RunRequest;

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
    /// Put the test devices in the boot device tree (arm64) instead of adding them after
    /// boot: for drivers built into the kernel (`=y`), which probe while it boots
    #[arg(long)]
    pub devices_at_boot: bool,
    #[command(flatten)]
    pub ko: KoArgs,
    #[command(flatten)]
    pub boot: BootArgs,
}

impl RunCmd {
    pub fn run(&self, session: &Session) -> Result<()> {
        let shell = &session.shell;
        let req = RunRequest {
            guest: self.boot.guest(&self.ko, self.build.options(false)),
            exec: self.exec.clone(),
            kernel_args: self.boot.kernel_args.clone(),
            timeout: self.boot.timeout(),
            devices_at_boot: self.devices_at_boot,
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
