//! A test run's verdict: case results from a [`GuestRun`].
//!
//! [`judge`] reads the [`crate::guest::Transcript`] of a test plan (loads in order, unloads
//! in reverse, a settle time, a final check): the KUnit cases of each module's KTAP, plus a
//! failing pseudo-case (`module (load)`, `module (unload)`, `module (after unload)`) for a
//! module that does not load, oopses, WARNs, taints the kernel, does not unload, loses log
//! lines, prints no complete KTAP report for its suites, breaks the kernel after it is
//! gone, or hangs the guest; and for any step the guest never reported. A run passes only
//! when the whole story arrived.

use std::path::PathBuf;
use std::time::Duration;

use crate::guest::judge::{self, StepRecord};
use crate::guest::ktap::{self, Outcome};
use crate::guest::modules::KoModule;
use crate::guest::plan::{GuestPlan, Step};
use crate::guest::run::{BootEnd, BootLog, GuestRun};
use crate::guest::transcript::{StepState, Transcript};

/// How to run a test boot.
#[derive(Debug, Clone)]
pub struct TestOptions {
    pub timeout: Duration,
    /// Report only cases whose `suite::case` name contains this.
    pub filter: Option<String>,
    /// Load every module even after one failed to load.
    pub no_fail_fast: bool,
    /// Extra kernel command-line arguments.
    pub cmdline: Vec<String>,
    /// Keep the console and protocol log here.
    pub log_path: Option<PathBuf>,
    /// How long the guest waits after the last step before its final check.
    pub settle: Duration,
    /// Scan for leaks after the last unload ([`crate::guest::leaks`]).
    pub leak_scan: bool,
    /// A kernel without KUnit is an error rather than a run of the load checks only.
    pub require_kunit: bool,
}

impl Default for TestOptions {
    fn default() -> Self {
        TestOptions {
            timeout: Duration::from_secs(60),
            filter: None,
            no_fail_fast: false,
            cmdline: Vec::new(),
            log_path: None,
            settle: crate::guest::plan::SETTLE,
            leak_scan: false,
            require_kunit: false,
        }
    }
}

/// A case's verdict, in cargo test's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    Failed,
    Ignored,
}

impl Verdict {
    pub fn word(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Failed => "FAILED",
            Verdict::Ignored => "ignored",
        }
    }
}

/// One reported case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseResult {
    /// `suite::case`, or `module (load)` for a lifecycle failure.
    pub name: String,
    pub module: String,
    pub verdict: Verdict,
    /// Why: the assertion and kernel lines for a failure, the reason for a skip.
    pub lines: Vec<String>,
    /// A KUnit case (`false` for a pseudo-case).
    pub kunit: bool,
}

/// The result of one test boot.
#[derive(Debug, Clone)]
pub struct TestReport {
    pub cases: Vec<CaseResult>,
    /// Cases the filter left out.
    pub filtered_out: usize,
    /// The kernel's warnings about the loads that do not fail a case but must be seen: a
    /// parameter it ignored ([`judge::ignored_params`]).
    pub warnings: Vec<String>,
    pub boot: BootLog,
    pub transcript: Transcript,
    /// What each declared test device was bound to, as the guest reported it (filled in by
    /// the device verdict; empty without devices).
    pub bindings: Vec<Binding>,
}

/// One declared test device after the modules loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The module that declared it (the first of its modules).
    pub module: String,
    /// `pci-testdev (pci)`.
    pub device: String,
    /// Its node path or PCI address.
    pub at: String,
    /// The driver that bound it and that driver's module.
    pub driver: Option<(String, Option<String>)>,
}

impl TestReport {
    pub fn count(&self, v: Verdict) -> usize {
        self.cases.iter().filter(|c| c.verdict == v).count()
    }

    pub fn passed(&self) -> bool {
        self.count(Verdict::Failed) == 0
    }
}

/// Turn a test boot into case results.
pub fn judge(
    run: &GuestRun,
    plan: &GuestPlan,
    modules: &[KoModule],
    opts: &TestOptions,
) -> (Vec<CaseResult>, usize) {
    let t = &run.transcript;
    let log = &run.boot;
    let mut cases = Vec::new();
    let mut filtered_out = 0;
    let mut taint = t.begin_taint.unwrap_or(0);
    let mut statuses: Vec<Option<i32>> = Vec::new();
    let stuck = t.unfinished();
    // A user's KUnit filter on the kernel command line runs fewer suites than the module has.
    let kunit_filtered = plan.cmdline.iter().any(|c| c.starts_with("kunit."));
    for (i, step) in plan.steps.iter().enumerate() {
        let run_ = &t.steps[i];
        let module = step.module().unwrap_or("").to_string();
        let slice = t.step_log(i);
        let lines = slice.lines();
        let mut problems: Vec<String> = Vec::new();
        if matches!(run_.state, StepState::Done | StepState::Running) {
            for leaf in ktap::cases(&lines) {
                let name = leaf.name();
                if let Some(f) = &opts.filter {
                    if !name.contains(f.as_str()) {
                        filtered_out += 1;
                        continue;
                    }
                }
                let (verdict, why) = match &leaf.outcome {
                    Outcome::Pass => (Verdict::Ok, vec![]),
                    Outcome::Fail | Outcome::Missing => (Verdict::Failed, leaf.diagnostics.clone()),
                    Outcome::Skip(r) | Outcome::Todo(r) => (Verdict::Ignored, vec![r.clone()]),
                };
                cases.push(CaseResult {
                    name,
                    module: module.clone(),
                    verdict,
                    lines: why,
                    kunit: true,
                });
            }
        }
        let should_run = step.runs(&plan.steps[..i], &statuses);
        match run_.state {
            StepState::Done => {
                let status = run_.status.unwrap_or(-1);
                let after = run_.taint.unwrap_or(taint);
                let suites = match &step.action {
                    crate::guest::plan::Action::Load { module, .. } if !kunit_filtered => modules
                        .iter()
                        .find(|m| &m.name == module)
                        .map_or(0, |m| m.kunit_suites),
                    _ => 0,
                };
                let rec = StepRecord {
                    name: step.name(),
                    program: step.program().to_string(),
                    out: run_.out.clone(),
                    log: lines.clone(),
                    status,
                    taint_before: taint,
                    taint_after: after,
                    lost: slice.lost,
                    kunit_suites: suites,
                };
                problems.extend(judge::problems(&rec));
                if !should_run {
                    problems.push(
                        "the guest ran this step although an earlier step it depends on did not succeed"
                            .to_string(),
                    );
                }
                // A guest that died inside a later step (that step's failure says so) may
                // take this step's last records with it: what arrived is judged.
                let died_later = t.steps[i + 1..]
                    .iter()
                    .any(|s| matches!(s.state, StepState::Running));
                if !slice.closed && !died_later {
                    problems.push(
                        "the kernel log of this step never arrived in full (the guest stopped first)"
                            .to_string(),
                    );
                }
                taint = after;
                statuses.push(Some(status));
            }
            StepState::Skipped => {
                if should_run {
                    problems.push(
                        "the guest skipped this step although the steps it depends on succeeded"
                            .to_string(),
                    );
                }
                statuses.push(None);
            }
            StepState::Running => {
                problems.extend(stuck_problems(
                    run,
                    opts,
                    run_,
                    &lines,
                    &plan.steps[i + 1..],
                ));
                statuses.push(None);
            }
            StepState::NotReached => {
                if stuck.is_none() {
                    problems.push(match &log.end {
                        BootEnd::TimedOut => format!(
                            "never ran: the guest did not get to it within {}s; its log stopped at: `{}`",
                            opts.timeout.as_secs(),
                            t.last_words()
                        ),
                        _ => format!(
                            "never ran: the guest stopped before it; its log stopped at: `{}`",
                            t.last_words()
                        ),
                    });
                }
                statuses.push(None);
            }
        }
        if !problems.is_empty() {
            cases.push(CaseResult {
                name: step.name(),
                module,
                verdict: Verdict::Failed,
                lines: problems,
                kunit: false,
            });
        }
    }
    cases.extend(after_unload_case(run, plan, modules, taint));
    (cases, filtered_out)
}

/// What is wrong with the step the guest was running when it died or was killed: why it
/// stopped, what the step and the console showed, and the steps that never ran.
fn stuck_problems(
    run: &GuestRun,
    opts: &TestOptions,
    step: &crate::guest::transcript::StepRun,
    lines: &[String],
    later: &[Step],
) -> Vec<String> {
    let t = &run.transcript;
    let mut problems = vec![match &run.boot.end {
        BootEnd::TimedOut => format!(
            "the guest did not finish within {}s and was killed; its log stopped at: `{}`",
            opts.timeout.as_secs(),
            t.last_words()
        ),
        _ => format!(
            "the guest died during this step; its log stopped at: `{}`",
            t.last_words()
        ),
    }];
    problems.extend(step.out.iter().cloned());
    problems.extend(lines.iter().cloned());
    problems.extend(
        step.console
            .iter()
            .filter(|l| !l.trim().is_empty())
            .cloned(),
    );
    let never: Vec<String> = later.iter().map(Step::name).collect();
    if !never.is_empty() {
        problems.push(format!("never ran: {}", never.join(", ")));
    }
    problems
}

/// The `modules (after unload)` case: what the settle time, the final check and the end of
/// the script show, once every step was reported; `taint` is the taint after the last step.
fn after_unload_case(
    run: &GuestRun,
    plan: &GuestPlan,
    modules: &[KoModule],
    taint: u64,
) -> Option<CaseResult> {
    let t = &run.transcript;
    let all_reported = t
        .steps
        .iter()
        .all(|s| matches!(s.state, StepState::Done | StepState::Skipped));
    if !all_reported {
        return None;
    }
    {
        let names: Vec<&str> = modules.iter().map(|m| m.name.as_str()).collect();
        let name = format!("{} (after unload)", names.join(", "));
        let mut problems = Vec::new();
        if plan.settle.is_some() {
            let slice = t.log_until("settled");
            match t.settled_taint {
                Some(after) => {
                    let rec = StepRecord {
                        name: name.clone(),
                        program: "sleep".into(),
                        log: slice.lines(),
                        taint_before: taint,
                        taint_after: after,
                        lost: slice.lost,
                        ..StepRecord::default()
                    };
                    problems.extend(judge::problems(&rec));
                    if !slice.closed {
                        problems.push(
                            "the kernel log after the last step never arrived in full".to_string(),
                        );
                    }
                }
                None => {
                    problems.push(format!(
                        "the guest stopped after its last step, before its final check; its log stopped at: `{}`",
                        t.last_words()
                    ));
                    problems.extend(slice.lines());
                    problems.extend(t.console.iter().rev().take(20).rev().cloned());
                }
            }
        }
        if problems.is_empty() && !t.complete() {
            problems.push(format!(
                "the guest did not finish its script; its log stopped at: `{}`",
                t.last_words()
            ));
        }
        (!problems.is_empty()).then(|| CaseResult {
            name,
            module: names.join(", "),
            verdict: Verdict::Failed,
            lines: problems,
            kunit: false,
        })
    }
}

/// The `test result:` summary line.
pub fn summary_line(report: &TestReport) -> String {
    format!(
        "test result: {}. {} passed; {} failed; {} ignored; finished in {:.2}s",
        if report.passed() { "ok" } else { "FAILED" },
        report.count(Verdict::Ok),
        report.count(Verdict::Failed),
        report.count(Verdict::Ignored),
        report.boot.elapsed.as_secs_f64()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guest::protocol::{Source, Token};

    fn ko(n: &str, suites: usize) -> KoModule {
        KoModule {
            name: n.into(),
            ko: format!("/{n}.ko").into(),
            depends: vec![],
            params: vec![],
            kunit_suites: suites,
            known_params: None,
            aliases: vec![],
            code: Default::default(),
        }
    }

    /// Judge a boot of `modules` whose channel printed `lines` ("T" is the token).
    fn judge_lines(
        modules: &[KoModule],
        lines: &[&str],
        end: BootEnd,
        filter: Option<&str>,
    ) -> (Vec<CaseResult>, usize) {
        let plan = GuestPlan::test(modules, true);
        let mut t = Transcript::new(Token::fixed("T"), false, plan.steps.len());
        for l in lines {
            match l.strip_prefix("console: ") {
                Some(c) => t.feed(Source::Console, c),
                None => t.feed(Source::Channel, l),
            };
        }
        let run = GuestRun {
            transcript: t,
            boot: BootLog {
                lines: vec![],
                channel: vec![],
                end,
                elapsed: Duration::from_millis(1500),
                command: "qemu".into(),
                qemu_stderr: String::new(),
            },
        };
        let opts = TestOptions {
            filter: filter.map(str::to_string),
            ..TestOptions::default()
        };
        judge(&run, &plan, modules, &opts)
    }

    const OK_RUN: &[&str] = &[
        "15,1,0,-;T sync b",
        "T begin 0",
        "T step 0",
        "6,2,0,-;m: loaded",
        "6,3,0,-;KTAP version 1",
        "6,4,0,-;1..1",
        "6,5,0,-;    KTAP version 1",
        "6,6,0,-;    # Subtest: s",
        "6,7,0,-;    1..2",
        "6,8,0,-;    ok 1 a",
        "3,9,0,-;    # b: ASSERTION FAILED at m.rs:9",
        "3,10,0,-;    Expected 2 + 2 == 5 to be true, but is false",
        "6,11,0,-;    not ok 2 b",
        "6,12,0,-;not ok 1 s",
        "15,13,0,-;T sync 0",
        "T done 0 0 266240",
        "T step 1",
        "15,14,0,-;T sync 1",
        "T done 1 0 266240",
        "15,15,0,-;T sync settled",
        "T settled 266240",
        "15,16,0,-;T sync e",
        "T end",
    ];

    #[test]
    fn kunit_cases_become_results() {
        let (cases, filtered) = judge_lines(&[ko("m", 1)], OK_RUN, BootEnd::Stopped, None);
        assert_eq!(filtered, 0);
        assert_eq!(cases.len(), 2, "{cases:?}");
        assert_eq!(
            (cases[0].name.as_str(), cases[0].verdict),
            ("s::a", Verdict::Ok)
        );
        assert_eq!(
            (cases[1].name.as_str(), cases[1].verdict),
            ("s::b", Verdict::Failed)
        );
        assert!(cases[1].lines[0].contains("ASSERTION FAILED"));
        let (cases, filtered) = judge_lines(&[ko("m", 1)], OK_RUN, BootEnd::Stopped, Some("::a"));
        assert_eq!((cases.len(), filtered), (1, 1));
    }

    #[test]
    fn a_module_with_suites_but_no_report_fails() {
        // The report's head was lost (records 3..=7 overwritten).
        let mut lines: Vec<&str> = OK_RUN.to_vec();
        lines.retain(|l| {
            !["6,3,", "6,4,", "6,5,", "6,6,", "6,7,"]
                .iter()
                .any(|p| l.starts_with(p))
        });
        let (cases, _) = judge_lines(&[ko("m", 1)], &lines, BootEnd::Stopped, None);
        let load = cases.iter().find(|c| c.name == "m (load)").unwrap();
        assert!(
            load.lines
                .iter()
                .any(|l| l.starts_with("5 kernel log records of this step were lost")),
            "{load:?}"
        );
        assert!(
            load.lines
                .iter()
                .any(|l| l.contains("printed no KTAP report")),
            "{load:?}"
        );
    }

    #[test]
    fn load_failure_carries_the_kernels_words() {
        let (cases, _) = judge_lines(
            &[ko("m", 0), ko("n", 0)],
            &[
                "15,1,0,-;T sync b",
                "T begin 0",
                "T step 0",
                "4,2,0,-;m: disagrees about version of symbol _printk",
                "3,3,0,-;m: Unknown symbol _printk (err -22)",
                "15,4,0,-;T sync 0",
                "T out 0 insmod: can't insert '/kmod/m.ko': invalid parameters",
                "T done 0 1 0",
                "T skip 1",
                "T skip 2",
                "T skip 3",
                "15,5,0,-;T sync settled",
                "T settled 0",
                "15,6,0,-;T sync e",
                "T end",
            ],
            BootEnd::Stopped,
            None,
        );
        assert_eq!(cases.len(), 1, "{cases:?}");
        assert_eq!(cases[0].name, "m (load)");
        assert!(
            cases[0]
                .lines
                .iter()
                .any(|l| l == "m: disagrees about version of symbol _printk"),
            "{cases:?}"
        );
    }

    #[test]
    fn a_skip_the_host_disagrees_with_fails() {
        let (cases, _) = judge_lines(
            &[ko("m", 0)],
            &[
                "15,1,0,-;T sync b",
                "T begin 0",
                "T step 0",
                "15,2,0,-;T sync 0",
                "T done 0 0 0",
                "T skip 1",
                "15,3,0,-;T sync settled",
                "T settled 0",
                "15,4,0,-;T sync e",
                "T end",
            ],
            BootEnd::Stopped,
            None,
        );
        assert_eq!(cases.len(), 1);
        assert_eq!(cases[0].name, "m (unload)");
        assert!(cases[0].lines[0].contains("skipped this step"), "{cases:?}");
    }

    #[test]
    fn an_oops_after_the_last_unload_fails() {
        let (cases, _) = judge_lines(
            &[ko("m", 0)],
            &[
                "15,1,0,-;T sync b",
                "T begin 0",
                "T step 0",
                "15,2,0,-;T sync 0",
                "T done 0 0 4096",
                "T step 1",
                "15,3,0,-;T sync 1",
                "T done 1 0 4096",
                "1,4,0,-;BUG: unable to handle page fault for address: ffffffffc0001000",
                "4,5,0,-;Oops: 0010 [#1] NOPTI",
                "15,6,0,-;T sync settled",
                "T settled 4224",
                "15,7,0,-;T sync e",
                "T end",
            ],
            BootEnd::Stopped,
            None,
        );
        assert_eq!(cases.len(), 1, "{cases:?}");
        assert_eq!(cases[0].name, "m (after unload)");
        let l = &cases[0].lines;
        assert!(
            l.iter().any(|l| l.contains("D (kernel died recently")),
            "{l:?}"
        );
        assert!(
            l.iter().any(|l| l.starts_with("BUG: unable to handle")),
            "{l:?}"
        );
    }

    #[test]
    fn missing_steps_and_a_missing_end_fail() {
        // The guest stopped between the load and the unload.
        let (cases, _) = judge_lines(
            &[ko("m", 0)],
            &[
                "15,1,0,-;T sync b",
                "T begin 0",
                "T step 0",
                "15,2,0,-;T sync 0",
                "T done 0 0 4096",
            ],
            BootEnd::Exited(std::os::unix::process::ExitStatusExt::from_raw(0)),
            None,
        );
        let names: Vec<&str> = cases.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["m (unload)"], "{cases:?}");
        assert!(cases[0].lines[0].starts_with("never ran: the guest stopped before it"));
        // Everything but the end.
        let (cases, _) = judge_lines(
            &[ko("m", 0)],
            &OK_RUN[..OK_RUN.len() - 2]
                .iter()
                .copied()
                .filter(|l| !l.contains("KTAP") && !l.contains("    "))
                .collect::<Vec<_>>(),
            BootEnd::TimedOut,
            None,
        );
        assert!(
            cases.iter().any(|c| c.name == "m (after unload)"
                && c.lines[0].contains("did not finish its script")),
            "{cases:?}"
        );
    }

    #[test]
    fn hang_is_a_timeout_failure_of_its_step() {
        let (cases, _) = judge_lines(
            &[ko("hang", 0)],
            &[
                "15,1,0,-;T sync b",
                "T begin 0",
                "T step 0",
                "console: hang: spinning forever",
            ],
            BootEnd::TimedOut,
            None,
        );
        assert_eq!(cases.len(), 1);
        assert_eq!(cases[0].name, "hang (load)");
        assert!(
            cases[0].lines[0].contains("did not finish within 60s"),
            "{cases:?}"
        );
        assert!(
            cases[0].lines[0].contains("hang: spinning forever"),
            "{cases:?}"
        );
        assert!(cases[0]
            .lines
            .iter()
            .any(|l| l == "never ran: hang (unload)"));
    }

    #[test]
    fn summary() {
        let r = TestReport {
            bindings: vec![],
            cases: vec![CaseResult {
                name: "a".into(),
                module: "m".into(),
                verdict: Verdict::Ok,
                lines: vec![],
                kunit: true,
            }],
            filtered_out: 0,
            warnings: vec![],
            boot: BootLog {
                lines: vec![],
                channel: vec![],
                end: BootEnd::Stopped,
                elapsed: Duration::from_millis(1500),
                command: "qemu".into(),
                qemu_stderr: String::new(),
            },
            transcript: Transcript::new(Token::fixed("T"), false, 0),
        };
        assert_eq!(
            summary_line(&r),
            "test result: ok. 1 passed; 0 failed; 0 ignored; finished in 1.50s"
        );
    }
}
