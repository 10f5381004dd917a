//! `cargo kmod run`: the guest of [`crate::ops::test::prepare`] booted with its modules
//! loaded (and its devices first), then a shell on the console or one command's output and
//! exit status.

use std::time::Duration;

use anyhow::Result;

use crate::context::{Selection, Session, TreeSelection};
use crate::guest::plan::{GuestPlan, Then};
use crate::ops::test::{Guest, GuestModules};
use crate::qemu::exec;

/// What `run` does once booted.
#[derive(Debug, Clone, Default)]
pub struct RunRequest {
    pub guest: GuestModules,
    /// `--exec`: one command instead of a shell.
    pub exec: Option<String>,
    /// Extra kernel arguments.
    pub kernel_args: Vec<String>,
    /// With `--exec`: the guest's time limit.
    pub timeout: Duration,
}

/// The plan of a run boot: the modules loaded (the devices' helper first), then `then`.
pub fn plan(guest: &Guest, then: Then, kernel_args: &[String], timeout: Duration) -> GuestPlan {
    let mut plan = exec::plan(&guest.modules, then, kernel_args, timeout);
    if let Some(d) = &guest.devices {
        d.extend_run_plan(&mut plan);
    }
    plan
}

/// Boot: a shell when there is no command (returns `None`), else the command's exit status.
/// `on_start` hears of the guest before it boots; `out` gets the command's output lines.
pub fn run(
    session: &Session,
    select: &Selection,
    trees: &TreeSelection,
    req: &RunRequest,
    on_start: impl FnOnce(&Guest),
    out: impl FnMut(&str),
    log: impl FnMut(&str),
) -> Result<Option<i32>> {
    let shell = &session.shell;
    let guest = crate::ops::test::prepare(session, select, trees, &req.guest)?;
    on_start(&guest);
    let Some(cmd) = &req.exec else {
        let plan = plan(&guest, Then::Shell, &req.kernel_args, Duration::ZERO);
        exec::run_shell_plan(shell, &guest.machine, &plan)?;
        return Ok(None);
    };
    let plan = plan(
        &guest,
        Then::Exec(cmd.clone()),
        &req.kernel_args,
        req.timeout,
    );
    exec::run_exec_plan(shell, &guest.machine, &plan, cmd, out, log).map(Some)
}
