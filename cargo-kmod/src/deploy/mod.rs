//! `cargo kmod deploy`: check, copy, load and watch modules on a running board over ssh.
//!
//! - [`host`]: the destination, `[USER@]HOST[:PORT]`;
//! - [`ssh`]: the OpenSSH transport, one multiplexed connection per deploy;
//! - [`board`]: what the board says about itself (release, machine, lockdown, loaded modules);
//! - [`check`]: the refusals made before anything is copied;
//! - [`steps`]: the board-side script that unloads, installs and loads, and the judging of
//!   each step by `cargo kmod test`'s rules;
//! - [`testboard`]: an arm64 qemu guest with an sshd, the board of the tests and benchmark.
//!
//! [`deploy`] runs the whole sequence and reports each step as an [`Event`]; the command
//! prints them.

pub mod board;
pub mod check;
pub mod host;
pub mod ssh;
pub mod steps;
pub mod testboard;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::deploy::board::Board;
use crate::deploy::check::{Mode, Module, Refusal};
use crate::deploy::host::Destination;
use crate::deploy::ssh::{Interrupted, Session, SshOptions};
use crate::deploy::steps::{Line, Load, StepPlan, Transcript};
use crate::error::UserError;
use crate::guest::modules::KoModule;
use crate::kernel::KernelTree;
use crate::process::shell_word as quote;
use crate::shell::Shell;
use crate::ship::verify::Target;
use crate::text::escape;

/// What to do on the board.
#[derive(Debug, Clone)]
pub struct Request {
    pub dest: Destination,
    pub ssh: SshOptions,
    pub mode: Mode,
    /// `--param` values (`name=value`, `module.name=value`).
    pub params: Vec<String>,
    /// `--exec`: a shell command run on the board after loading.
    pub exec: Option<String>,
    /// `--follow`: stream the kernel log until Ctrl-C.
    pub follow: bool,
    /// `--unload-on-exit`: after `--follow` ends, unload the modules.
    pub unload_on_exit: bool,
}

/// What the build step hands back: the `.ko` files, and the tree they were built against
/// (its `Module.symvers` is the board's, for the CRC check).
#[derive(Debug, Clone)]
pub struct Built {
    pub kos: Vec<PathBuf>,
    pub tree: Option<KernelTree>,
}

/// One step of a deploy, for the terminal or `--message-format json`.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "reason", rename_all = "kebab-case")]
pub enum Event {
    /// The board answered.
    DeployBoard {
        host: String,
        release: String,
        machine: String,
        uid: Option<u32>,
        sudo: bool,
        sig_enforce: bool,
        lockdown: Option<String>,
        modules_disabled: bool,
        loaded: Vec<String>,
    },
    /// Every check passed.
    DeployChecked {
        modules: Vec<String>,
        /// The tree whose `Module.symvers` the CRCs were checked against.
        tree: Option<PathBuf>,
        symbols: usize,
    },
    /// Checks failed: nothing was copied.
    DeployRefused { refusals: Vec<Refusal> },
    /// A `.ko` was copied.
    DeployCopy {
        module: String,
        from: PathBuf,
        to: String,
        bytes: u64,
    },
    /// A step begins (terminal only).
    DeployStepStarted { kind: String, module: String },
    /// A line a step's command printed (`out`) or the kernel logged (`log`) (terminal only;
    /// the JSON step event carries them).
    DeployLine {
        module: String,
        stream: &'static str,
        line: String,
    },
    /// A step ended.
    DeployStep {
        kind: String,
        module: String,
        status: Option<i32>,
        taint: Option<u64>,
        out: Vec<String>,
        log: Vec<String>,
        problems: Vec<String>,
        ok: bool,
    },
    /// A line of `--exec`'s output (terminal only).
    DeployExecLine { stream: &'static str, line: String },
    /// `--exec` ended.
    DeployExec {
        command: String,
        status: Option<i32>,
        stdout: Vec<String>,
        stderr: Vec<String>,
    },
    /// `--follow` began.
    DeployFollow { host: String },
    /// A kernel-log line under `--follow`.
    DeployLog { line: String },
    /// The deploy is done.
    DeployFinished {
        host: String,
        modules: Vec<String>,
        ok: bool,
        seconds: f64,
    },
}

impl Event {
    /// Terminal-only events (live progress that a JSON step event repeats).
    pub fn is_progress(&self) -> bool {
        matches!(
            self,
            Event::DeployStepStarted { .. }
                | Event::DeployLine { .. }
                | Event::DeployExecLine { .. }
        )
    }
}

/// How a deploy ended when nothing failed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// `--exec`'s exit status.
    pub exec_status: Option<i32>,
    /// `--follow` was ended by Ctrl-C (the normal end).
    pub followed: bool,
}

/// Connect, ask, build (through `build`, with what the board said), check, copy, unload,
/// load, and optionally run a command and follow the log. Any failure is an error whose one
/// line says what the board or ssh said; Ctrl-C is [`Interrupted`].
pub fn deploy(
    shell: &Shell,
    req: &Request,
    build: impl FnOnce(&Board) -> Result<Built>,
    on: &mut dyn FnMut(&Event),
) -> Result<Outcome> {
    let started = Instant::now();
    let session = Session::connect(shell, &req.dest, &req.ssh)?;
    let answer = session.run(&Board::script(), false, ssh::QUERY)?;
    let Some(board) = Board::parse(&answer.lines) else {
        crate::bail_user!(
            "`{}` did not answer cargo-kmod's questions: {}", req.dest,
            match ssh::last_words(&answer.stderr) {
                w if w.is_empty() => format!("its shell exited with {}", answer.status),
                w => w,
            };
            hint = "the board's login shell must run `sh -s` (a POSIX shell)"
        );
    };
    on(&Event::DeployBoard {
        host: req.dest.to_string(),
        release: board.release.clone(),
        machine: board.machine.clone(),
        uid: board.uid,
        sudo: board.sudo,
        sig_enforce: board.sig_enforce,
        lockdown: board.lockdown.clone(),
        modules_disabled: board.modules_disabled,
        loaded: board.loaded.iter().map(|l| l.name.clone()).collect(),
    });
    let result = deploy_on(req, &session, &board, build, on, started);
    if result.as_ref().is_err_and(|e| !e.is::<Interrupted>()) {
        // Whatever failed, leave no copies behind (the step script removes them itself).
        // `board.tmp` is the checked directory: a path that failed the check is never
        // acted on, here neither.
        if let Some(d) = &board.tmp {
            let _ = session.run(&format!("rm -rf {}", quote(d)), false, ssh::HOUSEKEEPING);
        }
    }
    session.close();
    result
}

fn deploy_on(
    req: &Request,
    session: &Session<'_>,
    board: &Board,
    build: impl FnOnce(&Board) -> Result<Built>,
    on: &mut dyn FnMut(&Event),
    started: Instant,
) -> Result<Outcome> {
    let built = build(board)?;
    let modules = modules(&built.kos, &req.params)?;
    let names: Vec<String> = modules.iter().map(|m| m.name.clone()).collect();

    // Check everything before copying anything.
    let target = match &built.tree {
        Some(t) => {
            let mut target = Target::new(t, &[])?;
            target.peers = modules.iter().map(|m| &m.file.module).collect();
            Some(target)
        }
        None => None,
    };
    let refusals = check::check(board, &modules, target.as_ref(), req.mode);
    if !refusals.is_empty() {
        on(&Event::DeployRefused {
            refusals: refusals.clone(),
        });
        let what: Vec<&str> = refusals.iter().map(|r| r.message.as_str()).collect();
        crate::bail_user!(
            "refusing to deploy to `{}`: {}", req.dest, what.join("; ");
            hint = "{}", refusal_hint(&refusals)
        );
    }
    on(&Event::DeployChecked {
        modules: names.clone(),
        tree: built.tree.as_ref().map(|t| t.dir.clone()),
        symbols: modules.iter().map(|m| m.file.module.imports().len()).sum(),
    });
    let Some(dir) = board.tmp.as_deref() else {
        crate::bail_user!(
            "`{}` made no usable temporary directory (`mktemp -d` printed `{}`)",
            req.dest,
            escape(&board.tmp_answer)
        );
    };

    // Copy.
    for m in &modules {
        let to = format!("{dir}/{}.ko", m.name);
        session
            .upload(&m.ko, &format!("cat > {}", quote(&to)))
            .with_context(|| format!("cannot copy `{}` to `{}`", m.ko.display(), req.dest))?;
        on(&Event::DeployCopy {
            module: m.name.clone(),
            from: m.ko.clone(),
            to,
            bytes: std::fs::metadata(&m.ko).map(|md| md.len()).unwrap_or(0),
        });
    }

    // Unload the old versions (dependents first), then load (dependencies first).
    let plan = StepPlan {
        dir: Some(dir.to_string()),
        unload: names
            .iter()
            .rev()
            .filter(|n| board.loaded(n).is_some())
            .cloned()
            .collect(),
        install: match req.mode {
            Mode::Install => board.release_component().map(str::to_string),
            Mode::Insmod => None,
        },
        load: modules
            .iter()
            .map(|m| Load {
                name: m.name.clone(),
                params: m.params.clone(),
            })
            .collect(),
    };
    run_steps(req, session, board, &plan, &modules, on)?;

    let mut outcome = Outcome::default();
    if let Some(cmd) = &req.exec {
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        let status = session.exec(cmd, |to_err, l| {
            on(&Event::DeployExecLine {
                stream: if to_err { "stderr" } else { "stdout" },
                line: l.to_string(),
            });
            if to_err {
                stderr.push(l.to_string());
            } else {
                stdout.push(l.to_string());
            }
        })?;
        on(&Event::DeployExec {
            command: cmd.clone(),
            status: status.code(),
            stdout,
            stderr,
        });
        outcome.exec_status = Some(status.code().unwrap_or(-1));
    }
    if req.follow && outcome.exec_status.is_none_or(|s| s == 0) {
        follow(req, session, board, on)?;
        outcome.followed = true;
        if req.unload_on_exit {
            let plan = StepPlan {
                dir: None,
                unload: names.iter().rev().cloned().collect(),
                install: None,
                load: vec![],
            };
            run_steps(req, session, board, &plan, &modules, on)?;
        }
    }
    on(&Event::DeployFinished {
        host: req.dest.to_string(),
        modules: names,
        ok: true,
        seconds: started.elapsed().as_secs_f64(),
    });
    Ok(outcome)
}

/// Read the `.ko` files, apply the parameters, order dependencies first.
fn modules(kos: &[PathBuf], params: &[String]) -> Result<Vec<Module>> {
    let mut files = Vec::new();
    let mut ko_modules = Vec::new();
    for path in kos {
        let file = crate::ko::read(path)?;
        let name = file.module.name.clone();
        if !is_module_name(&name) {
            crate::bail_user!(
                "`{}` names itself `{}` in `.modinfo`, which is not a module name (`[A-Za-z0-9_]`)",
                path.display(),
                escape(&name)
            );
        }
        ko_modules.push(KoModule {
            name: name.clone(),
            ko: path.clone(),
            depends: file.module.depends(),
            aliases: file.module.aliases(),
            params: vec![],
            kunit_suites: file.module.kunit_suites,
            known_params: crate::guest::modules::known_params(&file.module),
            code: file.module.code.clone(),
        });
        files.push(file);
    }
    crate::guest::modules::apply_params(&mut ko_modules, params)?;
    let ordered = crate::guest::modules::load_order(ko_modules)?;
    Ok(ordered
        .into_iter()
        .map(|k| {
            let file = files
                .iter()
                .find(|f| f.path == k.ko)
                .cloned()
                .expect("read above");
            Module {
                name: k.name,
                ko: k.ko,
                file,
                params: k.params,
            }
        })
        .collect())
}

/// What the kernel accepts as a module name, short enough for `MODULE_NAME_LEN`.
fn is_module_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() < 56
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn refusal_hint(refusals: &[Refusal]) -> String {
    let kinds: Vec<&str> = refusals.iter().map(|r| r.kind).collect();
    if kinds.contains(&"vermagic") || kinds.contains(&"machine") {
        "build against the board's own kernel tree: `--target NAME` with its `kdir`, or `--kdir DIR`".into()
    } else if kinds.contains(&"signature") {
        "sign the module with a key the board trusts (`cargo kmod package --sign`), or boot the board without `module.sig_enforce=1`".into()
    } else if kinds.contains(&"root") {
        "log in as root (`--host root@...`), or allow `sudo` without a password for this user"
            .into()
    } else if kinds.contains(&"tool") {
        "install the board's module tools (Debian: `kmod`; busybox has `insmod`, `rmmod`, `modprobe`, `depmod`)".into()
    } else if kinds.contains(&"dependency") {
        "deploy the dependency in the same command (`-p` twice, or `--workspace`), or use `--install` so `modprobe` loads it".into()
    } else if kinds.contains(&"in-use") {
        "unload the modules that use it first, or deploy them together".into()
    } else {
        "`cargo kmod verify --kdir DIR FILE` shows the same checks against a tree".into()
    }
}

/// Run a step script, reporting each step; the first failed step is the error.
fn run_steps(
    req: &Request,
    session: &Session<'_>,
    board: &Board,
    plan: &StepPlan,
    modules: &[Module],
    on: &mut dyn FnMut(&Event),
) -> Result<()> {
    let load = if plan.install.is_some() {
        "modprobe"
    } else {
        "insmod"
    };
    let suites = |name: &str| {
        modules
            .iter()
            .find(|m| m.name == name)
            .map_or(0, |m| m.file.module.kunit_suites)
    };
    let mut t = Transcript::default();
    let mut taint = board.taint;
    let mut failed: Option<(String, String, Vec<String>)> = None;
    let out = session.stream(&plan.script(), board.needs_sudo(), ssh::STEPS, |l| {
        let line = t.push(l);
        let Some(step) = t.steps.last() else {
            return;
        };
        match line {
            Line::Begin { kind, module } => on(&Event::DeployStepStarted { kind, module }),
            Line::Out(l) => on(&Event::DeployLine {
                module: step.module.clone(),
                stream: "out",
                line: l,
            }),
            Line::Log(l) => on(&Event::DeployLine {
                module: step.module.clone(),
                stream: "log",
                line: l,
            }),
            Line::Done { .. } => {
                let lost = t.lost.contains(&(t.steps.len() - 1));
                let problems = steps::problems(step, taint, lost, load, suites(&step.module));
                if let Some(after) = step.taint {
                    taint = after;
                }
                on(&Event::DeployStep {
                    kind: step.kind.clone(),
                    module: step.module.clone(),
                    status: step.status,
                    taint: step.taint,
                    out: step.out.clone(),
                    log: step.log.clone(),
                    problems: problems.clone(),
                    ok: problems.is_empty(),
                });
                if !problems.is_empty() && failed.is_none() {
                    failed = Some((step.kind.clone(), step.module.clone(), problems));
                }
            }
            _ => {}
        }
    })?;
    if failed.is_none() {
        if let Some(step) = t.steps.last().filter(|s| s.status.is_none()) {
            let problems = steps::problems(step, taint, false, load, suites(&step.module));
            on(&Event::DeployStep {
                kind: step.kind.clone(),
                module: step.module.clone(),
                status: None,
                taint: None,
                out: step.out.clone(),
                log: step.log.clone(),
                problems: problems.clone(),
                ok: false,
            });
            failed = Some((step.kind.clone(), step.module.clone(), problems));
        }
    }
    if let Some((kind, module, problems)) = failed {
        let what = match kind.as_str() {
            "load" => format!("module `{module}` did not load"),
            "unload" => format!("the loaded module `{module}` did not unload"),
            _ => "the modules could not be installed".to_string(),
        };
        return Err(
            UserError::new(format!("{what} on `{}`: {}", req.dest, problems.join("; "))).into(),
        );
    }
    if !t.finished {
        crate::bail_user!(
            "`{}` did not finish the deploy script ({}): {}",
            req.dest,
            out.status,
            ssh::last_words(&out.stderr)
        );
    }
    Ok(())
}

/// `--follow`: stream `/dev/kmsg` from a marker on, until Ctrl-C; then stop the board's
/// reader.
fn follow(
    req: &Request,
    session: &Session<'_>,
    board: &Board,
    on: &mut dyn FnMut(&Event),
) -> Result<()> {
    let token = format!(
        "{:016x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
            ^ u64::from(std::process::id())
    );
    let script = format!(
        r#"if [ "$(cat /proc/sys/kernel/printk_devkmsg 2>/dev/null)" = off ]; then echo "@@kmod:all"; fi
echo "cargo-kmod: following the kernel log ({token})" >/dev/kmsg
cat /dev/kmsg &
p=$!
echo "@@kmod:pid $p"
wait "$p""#
    );
    on(&Event::DeployFollow {
        host: req.dest.to_string(),
    });
    let mut pid: Option<u32> = None;
    let mut printing = false;
    let result = session.stream(&script, board.needs_sudo(), ssh::FOLLOW, |l| {
        if let Some(p) = l.strip_prefix("@@kmod:pid ") {
            pid = p.trim().parse().ok();
            return;
        }
        if l == "@@kmod:all" {
            printing = true;
            return;
        }
        let Some(text) = kmsg_text(l) else {
            return;
        };
        if !printing {
            printing = text.contains(&token);
            return;
        }
        on(&Event::DeployLog { line: text });
    });
    if let Some(p) = pid {
        let _ = session.run(
            &format!("kill {p} 2>/dev/null"),
            board.needs_sudo(),
            ssh::HOUSEKEEPING,
        );
    }
    match result {
        Err(e) if e.is::<Interrupted>() => Ok(()),
        Err(e) => Err(e),
        Ok(out) => crate::bail_user!(
            "the kernel log of `{}` ended ({}): {}",
            req.dest,
            out.status,
            ssh::last_words(&out.stderr)
        ),
    }
}

/// A `/dev/kmsg` record (`6,1234,5678901,-;text`) as `[   5.678901] text`; continuation
/// lines (` KEY=value`) and anything else are `None`.
pub fn kmsg_text(record: &str) -> Option<String> {
    let (head, text) = record.split_once(';')?;
    let mut f = head.split(',');
    let _prio: u32 = f.next()?.parse().ok()?;
    let _seq: u64 = f.next()?.parse().ok()?;
    let usec: u64 = f.next()?.parse().ok()?;
    Some(format!(
        "[{:5}.{:06}] {}",
        usec / 1_000_000,
        usec % 1_000_000,
        text
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kmsg_records() {
        assert_eq!(
            kmsg_text("6,1234,5678901,-;hello: loaded").as_deref(),
            Some("[    5.678901] hello: loaded")
        );
        assert_eq!(kmsg_text(" SUBSYSTEM=virtio"), None);
        assert_eq!(kmsg_text("@@kmod:pid 12"), None);
    }

    #[test]
    fn module_names() {
        assert!(is_module_name("hello") && is_module_name("8123"));
        assert!(!is_module_name("../x") && !is_module_name("") && !is_module_name("a b"));
    }
}
