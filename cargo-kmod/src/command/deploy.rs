//! `cargo kmod deploy`: build for the board, check, copy over ssh, unload the old versions,
//! load the new ones and print the kernel's answer; optionally run a command and follow the
//! kernel log. The work is in [`crate::deploy`]; this file parses arguments and prints.

use std::path::PathBuf;

use anyhow::Result;

use crate::command::args::{BuildArgs, KdirArgs, KoArgs, PackageSelect};
use crate::context::Session;
use crate::deploy::check::Mode;
use crate::deploy::host::Destination;
use crate::deploy::ssh::{self, Interrupted, SshOptions};
use crate::deploy::{Event, Request};
use crate::error::UserError;
use crate::ops::deploy::DeployRequest;
use crate::text::escape;

#[derive(Debug, Clone, clap::Args)]
pub struct DeployCmd {
    /// The board, as ssh reaches it (default: the `host` of `--target`)
    #[arg(long, value_name = "[USER@]HOST[:PORT]")]
    pub host: Option<String>,
    #[command(flatten)]
    pub kdir: KdirArgs,
    #[command(flatten)]
    pub packages: PackageSelect,
    #[command(flatten)]
    pub build: BuildArgs,
    #[command(flatten)]
    pub ko: KoArgs,
    /// Install into `/lib/modules/<release>/updates`, run `depmod -a`, load with `modprobe`
    #[arg(long)]
    pub install: bool,
    /// Run this shell command on the board after loading; exit with its status
    #[arg(long, value_name = "CMD")]
    pub exec: Option<String>,
    /// Keep printing the board's kernel log until Ctrl-C
    #[arg(long)]
    pub follow: bool,
    /// With `--follow`: unload the modules when Ctrl-C ends it
    #[arg(long, requires = "follow")]
    pub unload_on_exit: bool,
    /// An ssh config file to use instead of `~/.ssh/config` (`ssh -F`)
    #[arg(long, value_name = "FILE")]
    pub ssh_config: Option<PathBuf>,
    /// An ssh option for every connection (`ssh -o OPTION`), e.g. `IdentityFile=~/.ssh/board`
    #[arg(long = "ssh-option", value_name = "OPTION")]
    pub ssh_options: Vec<String>,
}

impl DeployCmd {
    pub fn run(&self, session: &Session) -> Result<()> {
        // Before any child process: Ctrl-C must wind the deploy down, not end it mid-way.
        ssh::catch_interrupt();
        let req = DeployRequest {
            host: self.host.clone(),
            select: self.packages.selection(),
            trees: self.kdir.selection()?,
            build: self.build.options(false),
            ko: self.ko.ko.clone(),
            deploy: Request {
                dest: Destination::default(),
                ssh: SshOptions {
                    config: self.ssh_config.clone(),
                    options: self.ssh_options.clone(),
                },
                mode: if self.install {
                    Mode::Install
                } else {
                    Mode::Insmod
                },
                params: self.ko.params.clone(),
                exec: self.exec.clone(),
                follow: self.follow,
                unload_on_exit: self.unload_on_exit,
            },
        };
        let mut print = |e: &Event| print_event(session, e);
        let (outcome, dest) = match crate::ops::deploy::deploy(session, req, &mut print) {
            Ok(o) => o,
            Err(e) if e.is::<Interrupted>() => {
                return Err(UserError::new("interrupted").with_exit_code(130).into())
            }
            Err(e) => return Err(e),
        };
        match (outcome.exec_status, &self.exec) {
            (Some(code), Some(cmd)) if code != 0 => Err(UserError::new(format!(
                "`{}` exited with status {code} on `{dest}`",
                escape(cmd)
            ))
            .with_exit_code(code.clamp(1, 255) as u8)
            .into()),
            _ => Ok(()),
        }
    }
}

fn print_event(session: &Session, e: &Event) {
    let shell = &session.shell;
    if shell.is_json() {
        if !e.is_progress() {
            if let Ok(v) = serde_json::to_value(e) {
                shell.json(&v);
            }
        }
        return;
    }
    match e {
        Event::DeployBoard {
            host,
            release,
            machine,
            uid,
            sudo,
            sig_enforce,
            lockdown,
            modules_disabled,
            ..
        } => {
            let mut s = format!("{host} ({}, linux {}", escape(machine), escape(release));
            if *modules_disabled {
                s.push_str(", module loading disabled");
            } else if let Some(l) = lockdown {
                s.push_str(&format!(", lockdown `{}`", escape(l)));
            } else if *sig_enforce {
                s.push_str(", signatures enforced");
            }
            if *uid != Some(0) && *sudo {
                s.push_str(", root through sudo");
            }
            s.push(')');
            shell.status("Connected", s);
        }
        Event::DeployChecked {
            modules,
            tree,
            symbols,
        } => match tree {
            Some(t) => shell.status(
                "Checked",
                format_args!(
                    "{} against the board and `{}` ({symbols} symbol CRCs)",
                    modules.join(", "),
                    t.display()
                ),
            ),
            None => shell.status(
                "Checked",
                format_args!("{} against the board", modules.join(", ")),
            ),
        },
        Event::DeployRefused { .. } => {}
        Event::DeployCopy {
            from, to, bytes, ..
        } => shell.status(
            "Copying",
            format_args!(
                "`{}` to `{to}` ({} KiB)",
                from.display(),
                bytes.div_ceil(1024)
            ),
        ),
        Event::DeployStepStarted { kind, module } => {
            let verb = match kind.as_str() {
                "unload" => "Unloading",
                "load" => "Loading",
                "install" => "Installing",
                _ => "Running",
            };
            let what = if module == "-" {
                "into `/lib/modules`"
            } else {
                module
            };
            shell.status(verb, what);
        }
        Event::DeployLine { module, line, .. } => {
            let who = if module == "-" { "install" } else { module };
            shell.out(format_args!("[{who}] {line}"));
        }
        Event::DeployStep { .. } => {}
        Event::DeployExecLine { stream, line } => {
            if *stream == "stderr" {
                eprintln!("{line}");
            } else {
                shell.out(line);
            }
        }
        Event::DeployExec { .. } => {}
        Event::DeployFollow { host } => shell.status(
            "Following",
            format_args!("the kernel log of {host} (Ctrl-C ends)"),
        ),
        Event::DeployLog { line } => shell.out(line),
        Event::DeployFinished {
            host,
            modules,
            seconds,
            ..
        } => shell.status(
            "Finished",
            format_args!("{} on {host} in {seconds:.2}s", modules.join(", ")),
        ),
    }
}
