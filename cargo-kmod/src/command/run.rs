//! `cargo kmod run`: boot the tree's kernel under qemu with the modules loaded, then either
//! hand the terminal to a guest shell or run one command (`--exec`) and return its output
//! and exit status.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, Result};

use crate::command::args::{KdirArgs, PackageSelect};
use crate::context::Session;
use crate::error::UserError;
use crate::ops::test::GuestModules;
use crate::qemu::boot::{self, Boot, BootEnd, Flow};
use crate::qemu::guest::{self, Transcript};
use crate::qemu::initramfs::{self, Initramfs};
use crate::tree::home::Home;

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
        let home = Home::from_env()?;
        let busybox = initramfs::busybox(&home, tree.arch)?;
        let guests = guest::guest_modules(&modules);
        let body = match &self.exec {
            Some(cmd) => format!("{}{}", guest::test_loads(&guests), guest::exec_script(cmd)),
            None => guest::shell_script(&guests),
        };
        let init = format!("{}{}reboot -f\n", boot::init_prelude(), body);
        let mut fs = Initramfs::with_busybox(&busybox, &init)?;
        for (m, g) in modules.iter().zip(&guests) {
            fs.file_from(&g.guest_path, &m.ko, 0o644)?;
        }
        let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
        let initrd = dir.path().join("initramfs.cpio");
        fs.write(&initrd)?;
        let mut b = Boot::for_tree(&tree, &initrd)?;
        b.accel = accel;
        b.cmdline = self.kernel_args.clone();
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
            let status = b.run_interactive(shell)?;
            if !status.success() {
                crate::bail_user!("qemu exited with {}", status);
            }
            return Ok(());
        };
        b.timeout = Duration::from_secs(self.timeout.max(1));
        b.cmdline.insert(0, "quiet".into());
        let mut in_exec = false;
        let verbose = shell.is_verbose();
        let log = b.run(shell, |l| {
            if l.contains("@@kmod:exit ") || l.contains("@@kmod:end") {
                return Flow::Stop;
            }
            if in_exec {
                shell.out(l);
            } else if l.contains("@@kmod:exec") {
                in_exec = true;
            } else if verbose {
                eprintln!("{l}");
            }
            Flow::Continue
        })?;
        let transcript = Transcript::from_log(&log);
        if let Some(step) = transcript
            .steps
            .iter()
            .find(|s| s.status.is_some_and(|rc| rc != 0))
        {
            let mut words: Vec<String> = step.out.clone();
            words.extend(
                step.log
                    .iter()
                    .map(|l| crate::qemu::ktap::strip_log_prefix(l).to_string()),
            );
            let why = words
                .iter()
                .map(|l| l.trim())
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join("; ");
            crate::bail_user!("module `{}` did not load: {}", step.module, why);
        }
        let exit = log.lines.iter().find_map(|l| {
            let at = l.find("@@kmod:exit ")?;
            l[at + "@@kmod:exit ".len()..].trim().parse::<i32>().ok()
        });
        match (exit, &log.end) {
            (Some(0), _) => Ok(()),
            (Some(code), _) => Err(UserError::new(format!(
                "`{cmd}` exited with status {code} in the guest"
            ))
            .with_exit_code(code.clamp(1, 255) as u8)
            .into()),
            (None, BootEnd::TimedOut) => Err(boot::timeout_error(&log, b.timeout).into()),
            (None, BootEnd::Exited(status)) => {
                Err(boot::exit_error(&log, *status, "@@kmod:exit").into())
            }
            (None, BootEnd::Stopped) => Err(boot::exit_error(
                &log,
                std::os::unix::process::ExitStatusExt::from_raw(0),
                "@@kmod:exit",
            )
            .into()),
        }
    }
}
