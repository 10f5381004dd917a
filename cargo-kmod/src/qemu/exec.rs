//! `cargo kmod run`'s guests: load the modules, then run one command (`--exec`) and hand
//! back its output and exit status, or give the terminal a shell.
//!
//! Loads are steps like a test boot's, judged the same way for the one thing `run` cares
//! about: a module that does not load is an error carrying the kernel's words. The
//! command's output and status travel on the protocol, so nothing a module prints can
//! change them.

use std::time::Duration;

use anyhow::Result;

use crate::error::UserError;
use crate::guest::modules::KoModule;
use crate::guest::plan::{guest_modules, module_files, GuestPlan, Step, Then, When};
use crate::guest::protocol::Event;
use crate::guest::run::BootEnd;
use crate::guest::transcript::StepState;
use crate::qemu::boot;
use crate::qemu::machine::Machine;
use crate::qemu::session::{self, Seen};
use crate::shell::Shell;

/// The plan of a `run` boot: load `modules` in order (stopping at the first that fails),
/// then `then`.
pub fn plan(modules: &[KoModule], then: Then, cmdline: &[String], timeout: Duration) -> GuestPlan {
    GuestPlan {
        files: module_files(modules),
        steps: guest_modules(modules)
            .iter()
            .map(|m| Step::load(m).when(When::NothingFailed))
            .collect(),
        settle: None,
        then,
        cmdline: cmdline.to_vec(),
        timeout,
        preload: None,
    }
}

/// How to boot for `run --exec`.
#[derive(Debug, Clone)]
pub struct ExecOptions {
    /// Extra kernel command-line arguments.
    pub cmdline: Vec<String>,
    pub timeout: Duration,
}

/// Boot with `modules` loaded and run `cmd` under the guest's `sh -c` in `/root`.
/// `on_output` gets each line of its output as it arrives, `on_verbose` everything else the
/// guest shows. Returns the command's exit status; a module that does not load, a guest
/// that dies or hangs, is an error.
pub fn run_exec(
    shell: &Shell,
    machine: &Machine,
    modules: &[KoModule],
    cmd: &str,
    opts: &ExecOptions,
    on_output: impl FnMut(&str),
    on_verbose: impl FnMut(&str),
) -> Result<i32> {
    let plan = plan(
        modules,
        Then::Exec(cmd.to_string()),
        &opts.cmdline,
        opts.timeout,
    );
    run_exec_plan(shell, machine, &plan, cmd, on_output, on_verbose)
}

/// [`run_exec`] with a plan of the caller's: [`plan`] with more files and steps (test devices
/// set up before the loads). `plan.then` runs `cmd`; a failed step is an error.
pub fn run_exec_plan(
    shell: &Shell,
    machine: &Machine,
    plan: &GuestPlan,
    cmd: &str,
    mut on_output: impl FnMut(&str),
    mut on_verbose: impl FnMut(&str),
) -> Result<i32> {
    let timeout = plan.timeout;
    let run = session::run_plan(shell, machine, plan, |seen| match seen {
        Seen::Event(Event::ExecOut { text }) => on_output(text),
        other => {
            if let Some(l) = crate::qemu::testrun::describe(&other, &plan.steps) {
                on_verbose(&l);
            }
        }
    })?;
    run.ensure_began(timeout)?;
    let t = &run.transcript;
    for (i, step) in plan.steps.iter().enumerate() {
        for w in crate::guest::judge::ignored_params(&t.step_log(i).lines()) {
            shell.warn(format_args!("the kernel ignored a module parameter: `{w}`"));
        }
        let s = &t.steps[i];
        if s.state == StepState::Done && s.status != Some(0) {
            // Judged as `test` judges a load: the command's words, then the kernel's (once,
            // also when busybox's `insmod` ran the module's init twice).
            let rec = crate::guest::judge::StepRecord {
                name: step.name(),
                program: step.program().to_string(),
                out: s.out.clone(),
                log: t.step_log(i).lines(),
                status: s.status.unwrap_or(-1),
                ..Default::default()
            };
            let why = crate::guest::judge::problems(&rec)
                .iter()
                .map(|l| l.trim())
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join("; ");
            crate::bail_user!(
                "module `{}` did not load: {}",
                step.module().unwrap_or(""),
                why
            );
        }
    }
    match (t.exit, &run.boot.end) {
        (Some(code), _) => Ok(code),
        (None, BootEnd::TimedOut) => Err(boot::timeout_error(&run.boot, timeout).into()),
        (None, BootEnd::Exited(status)) => {
            Err(boot::exit_error(&run.boot, *status, "the command's exit status").into())
        }
        (None, BootEnd::Stopped) => Err(UserError::new(format!(
            "the guest stopped before `{cmd}` finished; its log stopped at: `{}`",
            t.last_words()
        ))
        .into()),
    }
}

/// Boot with `modules` loaded and the terminal as the guest's console, a login shell on it.
pub fn run_shell(
    shell: &Shell,
    machine: &Machine,
    modules: &[KoModule],
    cmdline: &[String],
) -> Result<()> {
    run_shell_plan(
        shell,
        machine,
        &plan(modules, Then::Shell, cmdline, Duration::from_secs(0)),
    )
}

/// [`run_shell`] with a plan of the caller's ([`plan`] with more files and steps).
pub fn run_shell_plan(shell: &Shell, machine: &Machine, plan: &GuestPlan) -> Result<()> {
    let status = session::run_interactive(shell, machine, plan)?;
    if !status.success() {
        crate::bail_user!("qemu exited with {}", status);
    }
    Ok(())
}
