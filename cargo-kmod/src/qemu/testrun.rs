//! One test boot: modules in, case results out. [`run_tests`] boots the test plan of the
//! modules once and judges it with [`crate::guest::verdict::judge`].

use anyhow::Result;

use crate::guest::modules::KoModule;
use crate::guest::plan::{GuestPlan, Step};
use crate::guest::protocol::Event;
use crate::guest::verdict::{judge, TestOptions, TestReport};
use crate::qemu::machine::Machine;
use crate::qemu::session::{self, Seen};
use crate::shell::Shell;

/// Boot `machine` once with `modules` (already in load order), load them, collect KUnit
/// results, unload them, check the kernel once more. `on_line` gets a readable line for
/// everything the guest shows (for `-v` and progress). Errors are for a boot that never
/// reached the test script (no image, no qemu, a kernel that does not boot); everything
/// after that is a [`CaseResult`].
pub fn run_tests(
    shell: &Shell,
    machine: &Machine,
    modules: &[KoModule],
    opts: &TestOptions,
    on_line: impl FnMut(&str),
) -> Result<TestReport> {
    let plan = GuestPlan::test(modules, !opts.no_fail_fast);
    run_test_plan(shell, machine, plan, modules, opts, on_line)
}

/// [`run_tests`] with a plan of the caller's: [`GuestPlan::test`] of `modules` with more
/// files and steps (set up devices before the loads, check them after, look for leaks after
/// the unloads). Every step is judged like a load; `opts` sets the timeout, kernel
/// arguments and settle time.
pub fn run_test_plan(
    shell: &Shell,
    machine: &Machine,
    mut plan: GuestPlan,
    modules: &[KoModule],
    opts: &TestOptions,
    mut on_line: impl FnMut(&str),
) -> Result<TestReport> {
    plan.timeout = opts.timeout;
    // The plan's own arguments (test devices': `dummy_hcd.num=`) first, the user's after them.
    plan.cmdline.extend(opts.cmdline.iter().cloned());
    plan.settle = Some(opts.settle);
    let run = session::run_plan(shell, machine, &plan, |seen| {
        if let Some(l) = describe(&seen, &plan.steps) {
            on_line(&l);
        }
    })?;
    if let Some(p) = &opts.log_path {
        let mut text = run.boot.lines.join("\n");
        text.push_str("\n--- protocol channel\n");
        text.push_str(&run.boot.channel.join("\n"));
        let _ = crate::fsutil::write_atomic(p, text.as_bytes());
    }
    run.ensure_began(opts.timeout)?;
    let (cases, filtered_out) = judge(&run, &plan, modules, opts);
    let warnings = plan
        .steps
        .iter()
        .enumerate()
        .filter(|(_, s)| matches!(s.action, crate::guest::plan::Action::Load { .. }))
        .flat_map(|(i, _)| crate::guest::judge::ignored_params(&run.transcript.step_log(i).lines()))
        .collect();
    Ok(TestReport {
        bindings: Vec::new(),
        cases,
        filtered_out,
        warnings,
        boot: run.boot,
        transcript: run.transcript,
    })
}

/// A readable line for what the guest showed, or `None` for what is not worth one (sync
/// records).
pub fn describe(seen: &Seen<'_>, steps: &[Step]) -> Option<String> {
    let name = |id: &usize| {
        steps
            .get(*id)
            .map_or_else(|| format!("step {id}"), Step::name)
    };
    Some(match seen {
        Seen::Console(l) => l.to_string(),
        Seen::Event(e) => match e {
            Event::Log(r) if r.facility != 0 && r.text.contains(" sync ") => return None,
            Event::Log(r) => r.display(),
            Event::Begin { taint } => format!("cargo-kmod: begin, taint {taint}"),
            Event::Step { id } => format!("cargo-kmod: {}", name(id)),
            Event::Out { id, text } => format!("cargo-kmod: {}: {text}", name(id)),
            Event::Done { id, status, taint } => {
                format!(
                    "cargo-kmod: {}: exit status {status}, taint {taint}",
                    name(id)
                )
            }
            Event::Skip { id } => format!("cargo-kmod: {}: skipped", name(id)),
            Event::Settled { taint } => format!("cargo-kmod: settled, taint {taint}"),
            Event::Exec => "cargo-kmod: exec".to_string(),
            Event::ExecOut { text } => text.clone(),
            Event::Exit { status } => format!("cargo-kmod: exit status {status}"),
            Event::Ready => "cargo-kmod: ready".to_string(),
            Event::End => "cargo-kmod: end".to_string(),
        },
    })
}
