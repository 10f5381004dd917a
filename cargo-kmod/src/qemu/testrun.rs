//! One test boot: modules in, case results out.
//!
//! [`run_tests`] builds the initramfs (busybox, the modules, the [`guest::test_script`]),
//! boots the tree's kernel once for all modules, reads the [`Transcript`] back and turns it
//! into [`CaseResult`]s: the KUnit cases of each module's KTAP, plus a failing pseudo-case
//! (`module (load)`, `module (unload)`) for a module that does not load, oopses, WARNs,
//! taints the kernel, does not unload, or hangs the guest. Every failure carries the
//! kernel's own lines.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::qemu::boot::{self, Accel, Boot, BootEnd, BootLog, Flow};
use crate::qemu::guest::{self, Step, Transcript};
use crate::qemu::initramfs::{self, Initramfs};
use crate::qemu::ktap::{self, Outcome};
use crate::qemu::modules::KoModule;
use crate::shell::Shell;
use crate::tree::home::Home;
use crate::tree::KernelTree;

/// How to run a test boot.
#[derive(Debug, Clone)]
pub struct TestOptions {
    pub timeout: Duration,
    /// Report only cases whose `suite::case` name contains this.
    pub filter: Option<String>,
    /// Load every module even after one failed to load.
    pub no_fail_fast: bool,
    pub accel: Accel,
    /// Extra kernel command-line arguments.
    pub cmdline: Vec<String>,
    /// Keep the console log here.
    pub log_path: Option<PathBuf>,
}

impl Default for TestOptions {
    fn default() -> Self {
        TestOptions {
            timeout: Duration::from_secs(60),
            filter: None,
            no_fail_fast: false,
            accel: Accel::Tcg,
            cmdline: Vec::new(),
            log_path: None,
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
    /// A KUnit case (`false` for a load/unload pseudo-case).
    pub kunit: bool,
}

/// The result of one test boot.
#[derive(Debug, Clone)]
pub struct TestReport {
    pub cases: Vec<CaseResult>,
    /// Cases the filter left out.
    pub filtered_out: usize,
    pub boot: BootLog,
}

impl TestReport {
    pub fn count(&self, v: Verdict) -> usize {
        self.cases.iter().filter(|c| c.verdict == v).count()
    }

    pub fn passed(&self) -> bool {
        self.count(Verdict::Failed) == 0
    }
}

/// Boot `tree` once with `modules` (already in load order), load them, collect KUnit results,
/// unload them. `on_line` sees every console line (for `-v` and progress). Errors are for a
/// boot that never reached the test script (no image, no qemu, a kernel that does not boot);
/// everything after that is a [`CaseResult`].
pub fn run_tests(
    shell: &Shell,
    tree: &KernelTree,
    modules: &[KoModule],
    opts: &TestOptions,
    mut on_line: impl FnMut(&str),
) -> Result<TestReport> {
    let home = Home::from_env()?;
    let busybox = initramfs::busybox(&home, tree.arch)?;
    let guests = guest::guest_modules(modules);
    let init = format!(
        "{}{}reboot -f\n",
        boot::init_prelude(),
        guest::test_script(&guests, !opts.no_fail_fast)
    );
    let mut fs = Initramfs::with_busybox(&busybox, &init)?;
    for (m, g) in modules.iter().zip(&guests) {
        fs.file_from(&g.guest_path, &m.ko, 0o644)?;
    }
    let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
    let initrd = dir.path().join("initramfs.cpio");
    fs.write(&initrd)?;
    let mut b = Boot::for_tree(tree, &initrd)?;
    b.accel = opts.accel;
    b.timeout = opts.timeout;
    b.cmdline = vec!["quiet".into()];
    b.cmdline.extend(opts.cmdline.iter().cloned());
    let end_marker = format!("{}end", guest::TAG);
    let log = b.run(shell, |l| {
        on_line(l);
        if l.contains(&end_marker) {
            Flow::Stop
        } else {
            Flow::Continue
        }
    })?;
    if let Some(p) = &opts.log_path {
        let _ = crate::fsutil::write_atomic(p, log.lines.join("\n").as_bytes());
    }
    let transcript = Transcript::from_log(&log);
    if transcript.begin_taint.is_none() {
        return Err(match &log.end {
            BootEnd::TimedOut => boot::timeout_error(&log, opts.timeout).into(),
            BootEnd::Exited(status) => boot::exit_error(&log, *status, "@@kmod:begin").into(),
            BootEnd::Stopped => anyhow::anyhow!("the guest stopped before the test script began"),
        });
    }
    let (cases, filtered_out) = judge(&transcript, &log, opts);
    Ok(TestReport {
        cases,
        filtered_out,
        boot: log,
    })
}

/// Turn a transcript into case results.
pub fn judge(t: &Transcript, log: &BootLog, opts: &TestOptions) -> (Vec<CaseResult>, usize) {
    let mut cases = Vec::new();
    let mut filtered_out = 0;
    let mut taint = t.begin_taint.unwrap_or(0);
    for step in &t.steps {
        let mut problems: Vec<String> = Vec::new();
        // KUnit cases of this step (loads print KTAP; unloads normally print none).
        let source: Vec<&str> = if step.status.is_some() {
            step.log.iter().map(String::as_str).collect()
        } else {
            step.log
                .iter()
                .chain(&step.console)
                .map(String::as_str)
                .collect()
        };
        for leaf in ktap::cases(&source) {
            let name = leaf.name();
            if let Some(f) = &opts.filter {
                if !name.contains(f.as_str()) {
                    filtered_out += 1;
                    continue;
                }
            }
            let (verdict, lines) = match &leaf.outcome {
                Outcome::Pass => (Verdict::Ok, vec![]),
                Outcome::Fail | Outcome::Missing => (Verdict::Failed, leaf.diagnostics.clone()),
                Outcome::Skip(r) | Outcome::Todo(r) => (Verdict::Ignored, vec![r.clone()]),
            };
            cases.push(CaseResult {
                name,
                module: step.module.clone(),
                verdict,
                lines,
                kunit: true,
            });
        }
        match step.status {
            None => {
                problems.push(match &log.end {
                    BootEnd::TimedOut => format!(
                        "the guest did not finish within {}s and was killed; its log stopped at: `{}`",
                        opts.timeout.as_secs(),
                        log.last_line()
                    ),
                    _ => format!("the guest died; its log stopped at: `{}`", log.last_line()),
                });
                problems.extend(step.out.iter().cloned());
                problems.extend(step.log.iter().cloned());
                problems.extend(
                    step.console
                        .iter()
                        .filter(|l| !l.trim().is_empty())
                        .cloned(),
                );
            }
            Some(rc) => {
                if rc != 0 {
                    let cmd = if step.kind == "load" {
                        "insmod"
                    } else {
                        "rmmod"
                    };
                    problems.push(format!("`{cmd}` exited with status {rc}"));
                    problems.extend(step.out.iter().cloned());
                }
                let trouble = step.log.iter().any(|l| guest::is_kernel_trouble(l));
                if rc != 0 || trouble {
                    problems.extend(non_ktap(&step.log));
                }
                if let Some(after) = step.taint {
                    let new = guest::new_taints(taint, after);
                    if !new.is_empty() {
                        problems.push(format!("the kernel became tainted: {}", new.join(", ")));
                        if !trouble && rc == 0 {
                            problems.extend(non_ktap(&step.log));
                        }
                    }
                    taint = after;
                }
            }
        }
        if !problems.is_empty() {
            cases.push(CaseResult {
                name: format!("{} ({})", step.module, step.kind),
                module: step.module.clone(),
                verdict: Verdict::Failed,
                lines: problems,
                kunit: false,
            });
        }
    }
    (cases, filtered_out)
}

/// The kernel-log lines of a step that are not KTAP (the kernel's own words).
fn non_ktap(log: &[String]) -> Vec<String> {
    let ktap: std::collections::BTreeSet<String> = ktap::parse(log)
        .iter()
        .flat_map(|d| {
            let mut v = Vec::new();
            collect_ktap(d, &mut v);
            v
        })
        .collect();
    log.iter()
        .map(|l| ktap::strip_log_prefix(l).to_string())
        .filter(|l| {
            let t = l.trim();
            !t.is_empty()
                && !is_routine(t)
                && !ktap.contains(t)
                && !t.starts_with("KTAP version")
                && !t.starts_with("1..")
                && !t.starts_with("ok ")
                && !t.starts_with("not ok ")
                && !t.starts_with("# Subtest:")
        })
        .collect()
}

/// Messages every out-of-tree test build causes; they explain nothing about a failure.
fn is_routine(line: &str) -> bool {
    line.ends_with("loading out-of-tree module taints kernel.")
        || line.contains("module verification failed: signature and/or required key missing")
}

fn collect_ktap(t: &ktap::Test, out: &mut Vec<String>) {
    out.extend(t.diagnostics.iter().cloned());
    for c in &t.children {
        collect_ktap(c, out);
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

/// Give each step's transcript to the caller (for `-v` or debugging).
pub fn steps(report: &TestReport) -> Vec<Step> {
    Transcript::from_log(&report.boot).steps
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(lines: &[&str], end: BootEnd) -> BootLog {
        BootLog {
            lines: lines.iter().map(|s| s.to_string()).collect(),
            end,
            elapsed: Duration::from_millis(1500),
            command: "qemu".into(),
            qemu_stderr: String::new(),
        }
    }

    fn judge_lines(lines: &[&str], end: BootEnd, filter: Option<&str>) -> (Vec<CaseResult>, usize) {
        let l = log(lines, end);
        let opts = TestOptions {
            filter: filter.map(str::to_string),
            ..TestOptions::default()
        };
        judge(&Transcript::from_log(&l), &l, &opts)
    }

    const OK_RUN: &[&str] = &[
        "@@kmod:begin 0",
        "@@kmod:step load m",
        "@@kmod:log m: loaded",
        "@@kmod:log KTAP version 1",
        "@@kmod:log 1..1",
        "@@kmod:log     KTAP version 1",
        "@@kmod:log     # Subtest: s",
        "@@kmod:log     1..2",
        "@@kmod:log     ok 1 a",
        "@@kmod:log     # b: ASSERTION FAILED at m.rs:9",
        "@@kmod:log     Expected 2 + 2 == 5 to be true, but is false",
        "@@kmod:log     not ok 2 b",
        "@@kmod:log not ok 1 s",
        "@@kmod:done load m 0 266240",
        "@@kmod:step unload m",
        "@@kmod:done unload m 0 266240",
        "@@kmod:end",
    ];

    #[test]
    fn kunit_cases_become_results() {
        let (cases, filtered) = judge_lines(OK_RUN, BootEnd::Stopped, None);
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
        let (cases, filtered) = judge_lines(OK_RUN, BootEnd::Stopped, Some("::a"));
        assert_eq!((cases.len(), filtered), (1, 1));
    }

    #[test]
    fn load_failure_carries_the_kernels_words() {
        let (cases, _) = judge_lines(
            &[
                "@@kmod:begin 0",
                "@@kmod:step load m",
                "@@kmod:out insmod: can't insert '/kmod/m.ko': invalid parameters",
                "@@kmod:log m: disagrees about version of symbol _printk",
                "@@kmod:log m: Unknown symbol _printk (err -22)",
                "@@kmod:done load m 1 0",
                "@@kmod:end",
            ],
            BootEnd::Stopped,
            None,
        );
        assert_eq!(cases.len(), 1);
        assert_eq!(cases[0].name, "m (load)");
        assert_eq!(cases[0].verdict, Verdict::Failed);
        assert!(
            cases[0]
                .lines
                .iter()
                .any(|l| l == "m: disagrees about version of symbol _printk"),
            "{cases:?}"
        );
    }

    #[test]
    fn oops_and_taint_fail_a_load_that_succeeded() {
        let (cases, _) = judge_lines(
            &[
                "@@kmod:begin 0",
                "@@kmod:step load m",
                "@@kmod:log ------------[ cut here ]------------",
                "@@kmod:log WARNING: m.rs:3 at init+0x10",
                "@@kmod:done load m 0 4608",
                "@@kmod:end",
            ],
            BootEnd::Stopped,
            None,
        );
        assert_eq!(cases.len(), 1);
        let l = &cases[0].lines;
        assert!(l.iter().any(|l| l.starts_with("WARNING:")), "{l:?}");
        assert!(
            l.iter().any(|l| l.contains("W (kernel issued a warning)")),
            "{l:?}"
        );
    }

    #[test]
    fn hang_is_a_timeout_failure_of_its_step() {
        let (cases, _) = judge_lines(
            &[
                "@@kmod:begin 0",
                "@@kmod:step load hang",
                "hang: spinning forever",
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
    }

    #[test]
    fn summary() {
        let l = log(&[], BootEnd::Stopped);
        let r = TestReport {
            cases: vec![CaseResult {
                name: "a".into(),
                module: "m".into(),
                verdict: Verdict::Ok,
                lines: vec![],
                kunit: true,
            }],
            filtered_out: 0,
            boot: l,
        };
        assert_eq!(
            summary_line(&r),
            "test result: ok. 1 passed; 0 failed; 0 ignored; finished in 1.50s"
        );
    }
}
