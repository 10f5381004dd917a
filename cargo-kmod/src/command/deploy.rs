//! `cargo kmod deploy`: build for the board, check, copy over ssh, unload the old versions,
//! load the new ones and print the kernel's answer; optionally run a command and follow the
//! kernel log. The work is in [`crate::deploy`]; this file parses arguments and prints.

use std::path::PathBuf;

use anyhow::Result;

use crate::command::args::{BuildArgs, KdirArgs, PackageSelect};
use crate::context::{BuildContext, Session, TreeSelection};
use crate::deploy::board::Board;
use crate::deploy::check::Mode;
use crate::deploy::host::Destination;
use crate::deploy::ssh::{self, Interrupted, SshOptions};
use crate::deploy::{Built, Event, Request};
use crate::error::UserError;
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
    /// Deploy these already-built `.ko` files instead of building packages (checked against
    /// the tree of `--kdir`/`--target` when one is given)
    #[arg(long = "ko", value_name = "PATH")]
    pub ko: Vec<PathBuf>,
    /// A module parameter, `name=value` (`module.name=value` with several modules)
    #[arg(long = "param", value_name = "NAME=VALUE")]
    pub params: Vec<String>,
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
        let shell = &session.shell;
        let dest = self.destination(session)?;
        let req = Request {
            dest: dest.clone(),
            ssh: SshOptions {
                config: self.ssh_config.clone(),
                options: self.ssh_options.clone(),
            },
            mode: if self.install {
                Mode::Install
            } else {
                Mode::Insmod
            },
            params: self.params.clone(),
            exec: self.exec.clone(),
            follow: self.follow,
            unload_on_exit: self.unload_on_exit,
        };
        let build = |board: &Board| self.build(session, board);
        let mut print = |e: &Event| print_event(session, e);
        let outcome = match crate::deploy::deploy(shell, &req, build, &mut print) {
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

    /// `--host`, else the named target's `host`.
    fn destination(&self, session: &Session) -> Result<Destination> {
        if let Some(h) = &self.host {
            return Ok(Destination::parse(h)?);
        }
        if let Some(name) = &self.kdir.target {
            let ws = crate::manifest::load(&session.shell, self.packages.manifest_path.as_deref())?;
            let t = ws.target(name)?;
            return match &t.host {
                Some(h) => Destination::parse(h).map_err(|e| {
                    e.with_hint(format!(
                        "fix `host` in `[workspace.metadata.kmod.targets.{name}]`"
                    ))
                    .into()
                }),
                None => crate::bail_user!(
                    "target `{}` has no `host`", name;
                    hint = "add `host = \"[USER@]HOST[:PORT]\"` to `[workspace.metadata.kmod.targets.{}]`, or pass `--host`", name
                ),
            };
        }
        crate::bail_user!(
            "no board to deploy to";
            hint = "pass `--host [USER@]HOST[:PORT]`, or `--target NAME` with `host` in `[workspace.metadata.kmod.targets.NAME]`"
        )
    }

    /// Build the selected packages for the board: its arch unless `--arch`/`--kdir`/
    /// `--target` say otherwise, through `cargo kmod build`'s entry point (a no-op when
    /// fresh). With `--ko`, the files as given, and a tree only when one is named (another
    /// tree's vermagic would say nothing about this board).
    fn build(&self, session: &Session, board: &Board) -> Result<Built> {
        let mut trees: TreeSelection = self.kdir.selection()?;
        if !self.ko.is_empty() {
            let tree = if trees.kdir.is_some() || trees.target.is_some() {
                Some(crate::context::tree_for_arch(session, &trees, None)?)
            } else {
                None
            };
            return Ok(Built {
                kos: self.ko.clone(),
                tree,
            });
        }
        if trees.arch.is_none() && trees.kdir.is_none() {
            // A target's own `arch` or `kdir` decides; else the board does.
            let target_decides = match &trees.target {
                Some(name) => {
                    let ws = crate::manifest::load(
                        &session.shell,
                        self.packages.manifest_path.as_deref(),
                    )?;
                    let t = ws.target(name)?;
                    t.arch.is_some() || t.kdir.is_some()
                }
                None => false,
            };
            if !target_decides {
                trees.arch = board.arch();
            }
        }
        let ctx = BuildContext::resolve(session, &self.packages.selection(), &trees)?;
        let artifacts = crate::ops::build::build(session, &ctx, &self.build.options(false))?;
        Ok(Built {
            kos: artifacts.into_iter().map(|a| a.ko).collect(),
            tree: Some(ctx.tree),
        })
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
