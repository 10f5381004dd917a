//! Judging one step, whatever carried it: a load, an unload or another command, with its
//! output, the kernel log attributed to it, its exit status and the taint before and after.
//!
//! The rules are the verdict's, the same in a qemu test boot and on a real board
//! (`deploy`): a step fails when its command fails, when the kernel log shows trouble
//! (oops, `BUG`, `WARNING`, a Rust panic), when the kernel gains a taint flag a test module
//! may not add, when part of its log was lost, or when a module with KUnit suites did not
//! print a complete KTAP report for them. Nothing here knows about qemu.

use std::collections::BTreeSet;

use crate::guest::ktap::{self, Outcome};

/// A step to judge.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StepRecord {
    /// `hello (load)`.
    pub name: String,
    /// The program, for messages: `insmod`, `rmmod`.
    pub program: String,
    /// What the command printed.
    pub out: Vec<String>,
    /// The kernel log lines attributed to the step.
    pub log: Vec<String>,
    /// Exit status.
    pub status: i32,
    pub taint_before: u64,
    pub taint_after: u64,
    /// Kernel log records of the step that were lost.
    pub lost: u64,
    /// KUnit suites whose complete KTAP report this step must contain (a load of a module
    /// with `.kunit_test_suites`; 0 otherwise).
    pub kunit_suites: usize,
}

/// What is wrong with a finished step, each problem followed by the lines that show it.
/// Empty when the step passed.
pub fn problems(s: &StepRecord) -> Vec<String> {
    let mut p = Vec::new();
    if s.status != 0 {
        p.push(format!("`{}` exited with status {}", s.program, s.status));
        p.extend(s.out.iter().cloned());
    }
    let trouble = s.log.iter().any(|l| is_kernel_trouble(l));
    let new = new_taints(s.taint_before, s.taint_after);
    if !new.is_empty() {
        p.push(format!("the kernel became tainted: {}", new.join(", ")));
    }
    if s.status != 0 || trouble || !new.is_empty() {
        let lines = non_ktap(&s.log);
        match retried_load(s, &lines) {
            Some(once) => {
                p.extend(once);
                p.push(RAN_TWICE.to_string());
            }
            None => p.extend(lines),
        }
    }
    if s.lost > 0 {
        p.push(format!(
            "{} kernel log record{} of this step {} lost: the log overflowed before the guest read {}",
            s.lost,
            if s.lost == 1 { "" } else { "s" },
            if s.lost == 1 { "was" } else { "were" },
            if s.lost == 1 { "it" } else { "them" },
        ));
    }
    if s.status == 0 {
        if let Some(k) = kunit_problem(&s.log, s.kunit_suites) {
            p.push(k);
        }
    }
    p
}

/// A module with `expected` KUnit suites must print one complete KTAP document reporting
/// them all when it loads; `None` when it did.
pub fn kunit_problem(log: &[String], expected: usize) -> Option<String> {
    if expected == 0 {
        return None;
    }
    let docs = ktap::parse(log);
    let complete = |d: &ktap::Test| {
        d.plan.is_some_and(|p| d.children.len() >= p)
            && d.children.iter().all(|c| c.outcome != Outcome::Missing)
    };
    let reported: usize = docs
        .iter()
        .filter(|d| complete(d))
        .map(|d| d.children.len())
        .sum();
    if reported >= expected {
        return None;
    }
    let s = if expected == 1 { "" } else { "s" };
    Some(if docs.is_empty() {
        format!("the module has {expected} KUnit suite{s}, but loading it printed no KTAP report")
    } else {
        format!(
            "the module has {expected} KUnit suite{s}, but loading it printed a complete KTAP report for {reported}"
        )
    })
}

/// Said after the lines of a load whose `init` ran twice.
pub const RAN_TWICE: &str = "(the module's init ran twice and printed these lines both times: busybox's `insmod` loads again with `init_module` when `finit_module` fails)";

/// The kernel lines of a failed load with the second run of its `init` left out: busybox's
/// `insmod` (the guests' and many boards') tries `finit_module`, and when that fails loads
/// the module again with `init_module`, so `init` runs (and logs) twice. The lines that occur
/// more than once, in order, must be one block repeated; other kernel lines (a driver
/// elsewhere probing meanwhile) stay. `None` when the lines are not such a repeat.
fn retried_load(s: &StepRecord, lines: &[String]) -> Option<Vec<String>> {
    if !matches!(s.program.as_str(), "insmod" | "modprobe") || s.status == 0 {
        return None;
    }
    let mut count: std::collections::HashMap<&str, usize> = Default::default();
    for l in lines {
        *count.entry(l.as_str()).or_default() += 1;
    }
    let repeated: Vec<usize> = (0..lines.len())
        .filter(|i| count[lines[*i].as_str()] > 1)
        .collect();
    let half = repeated.len() / 2;
    if half == 0
        || !repeated.len().is_multiple_of(2)
        || (0..half).any(|j| lines[repeated[j]] != lines[repeated[half + j]])
    {
        return None;
    }
    let second: BTreeSet<usize> = repeated[half..].iter().copied().collect();
    Some(
        lines
            .iter()
            .enumerate()
            .filter(|(i, _)| !second.contains(i))
            .map(|(_, l)| l.clone())
            .collect(),
    )
}

/// Taint flags, in the order of `/proc/sys/kernel/tainted`'s bits, with the kernel's letters.
pub const TAINTS: [(char, &str); 20] = [
    ('P', "proprietary module was loaded"),
    ('F', "module was force loaded"),
    ('S', "kernel running on an out of specification system"),
    ('R', "module was force unloaded"),
    ('M', "processor reported a machine check exception"),
    ('B', "bad page referenced or unexpected page flags"),
    ('U', "taint requested by userspace"),
    ('D', "kernel died recently (OOPS or BUG)"),
    ('A', "an ACPI table was overridden"),
    ('W', "kernel issued a warning"),
    ('C', "staging driver was loaded"),
    ('I', "workaround for platform firmware bug applied"),
    ('O', "externally-built (out-of-tree) module was loaded"),
    ('E', "unsigned module was loaded"),
    ('L', "soft lockup occurred"),
    ('K', "kernel has been live patched"),
    ('X', "auxiliary taint"),
    ('T', "kernel was built with the struct randomization plugin"),
    ('N', "an in-kernel test has been run"),
    ('J', "userspace used a mutating debug operation in fwctl"),
];

/// Taint bits a test module is allowed to add: out-of-tree (`O`), unsigned (`E`, test builds
/// are not signed) and in-kernel test run (`N`, KUnit sets it whenever a suite runs).
pub const ALLOWED_TAINT: u64 = (1 << 12) | (1 << 13) | (1 << 18);

/// The new, not allowed taint flags between `before` and `after`, as `W (kernel issued a
/// warning)` strings.
pub fn new_taints(before: u64, after: u64) -> Vec<String> {
    let new = after & !before & !ALLOWED_TAINT;
    (0..64)
        .filter(|b| new & (1 << b) != 0)
        .map(|b| match TAINTS.get(b) {
            Some((c, what)) => format!("{c} ({what})"),
            None => format!("bit {b}"),
        })
        .collect()
}

/// Kernel log lines that mean something went wrong in the kernel, whatever the module said.
pub fn is_kernel_trouble(line: &str) -> bool {
    const MARKS: [&str; 13] = [
        "ODEBUG:",
        "Oops",
        "BUG:",
        "kernel BUG at",
        "WARNING:",
        "Kernel panic",
        "Internal error:",
        "Unable to handle kernel",
        "general protection fault",
        "rust_panic",
        "panicked at",
        "Call Trace:",
        "Call trace:",
    ];
    MARKS.iter().any(|m| line.contains(m))
}

/// The kernel-log lines of a step that are not KTAP (the kernel's own words).
pub fn non_ktap(log: &[String]) -> Vec<String> {
    let ktap: BTreeSet<String> = ktap::parse(log)
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

/// The kernel's `MODULE: unknown parameter 'NAME' ignored` lines in a step's log: a
/// `--param` the module does not take, which the kernel only warns about.
pub fn ignored_params(log: &[String]) -> Vec<String> {
    log.iter()
        .map(|l| ktap::strip_log_prefix(l))
        .filter(|l| l.contains(": unknown parameter '") && l.ends_with("' ignored"))
        .map(str::to_string)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(log: &[&str], status: i32, after: u64) -> StepRecord {
        StepRecord {
            name: "m (load)".into(),
            program: "insmod".into(),
            out: vec![],
            log: log.iter().map(|s| s.to_string()).collect(),
            status,
            taint_before: 0,
            taint_after: after,
            lost: 0,
            kunit_suites: 0,
        }
    }

    /// Issue 18 §6: a failed load whose init ran twice (busybox's `insmod` retries with
    /// `init_module`) reports the kernel's lines once, and says why they came twice.
    #[test]
    fn a_retried_load_reports_its_lines_once() {
        let mut r = rec(
            &[
                "[    0.6] m: loading out-of-tree module taints kernel.",
                "[    0.6] m: m: first",
                "[    0.6] m: m: second",
                "[    0.7] m: m: first",
                "[    0.7] m: m: second",
            ],
            19,
            12288,
        );
        r.out = vec!["insmod: can't insert '/kmod/m.ko': No such device".into()];
        assert_eq!(
            problems(&r),
            [
                "`insmod` exited with status 19",
                "insmod: can't insert '/kmod/m.ko': No such device",
                "m: m: first",
                "m: m: second",
                RAN_TWICE,
            ]
        );
        // Another driver's line between the runs stays; a line printed twice in each run is
        // printed twice.
        let r = rec(
            &[
                "m: a",
                "m: a",
                "input: ImExPS/2 Generic Explorer Mouse",
                "m: b",
                "m: a",
                "m: a",
                "m: b",
            ],
            1,
            0,
        );
        assert_eq!(
            problems(&r)[1..],
            [
                "m: a",
                "m: a",
                "input: ImExPS/2 Generic Explorer Mouse",
                "m: b",
                RAN_TWICE
            ]
        );
        // Lines that differ are all shown.
        let r = rec(&["m: a", "m: b"], 1, 0);
        assert_eq!(problems(&r)[1..], ["m: a", "m: b"]);
    }

    #[test]
    fn a_clean_step_passes() {
        assert!(problems(&rec(&["m: loaded"], 0, 4096)).is_empty());
    }

    #[test]
    fn warnings_taint_and_status() {
        let p = problems(&rec(
            &[
                "------------[ cut here ]------------",
                "WARNING: m.rs:3 at init+0x10",
            ],
            0,
            4608,
        ));
        assert!(p.iter().any(|l| l.starts_with("WARNING:")), "{p:?}");
        assert!(
            p.iter().any(|l| l.contains("W (kernel issued a warning)")),
            "{p:?}"
        );
        let mut r = rec(&["m: Unknown symbol _printk (err -22)"], 1, 0);
        r.out = vec!["insmod: can't insert '/kmod/m.ko': invalid parameters".into()];
        let p = problems(&r);
        assert_eq!(p[0], "`insmod` exited with status 1");
        assert!(p.iter().any(|l| l.contains("Unknown symbol")), "{p:?}");
    }

    #[test]
    fn lost_records_fail() {
        let mut r = rec(&["m: loaded"], 0, 0);
        r.lost = 12;
        assert_eq!(
            problems(&r),
            ["12 kernel log records of this step were lost: the log overflowed before the guest read them"]
        );
    }

    #[test]
    fn kunit_suites_need_a_complete_report() {
        let full = [
            "KTAP version 1",
            "1..1",
            "    KTAP version 1",
            "    # Subtest: s",
            "    1..1",
            "    ok 1 a",
            "ok 1 s",
        ];
        let log: Vec<String> = full.iter().map(|s| s.to_string()).collect();
        assert_eq!(kunit_problem(&log, 1), None);
        assert_eq!(
            kunit_problem(&log, 2).unwrap(),
            "the module has 2 KUnit suites, but loading it printed a complete KTAP report for 1"
        );
        // The header pushed out of the log: only the tail of the report is left.
        let tail: Vec<String> = full[5..].iter().map(|s| s.to_string()).collect();
        assert_eq!(
            kunit_problem(&tail, 1).unwrap(),
            "the module has 1 KUnit suite, but loading it printed no KTAP report"
        );
        let mut r = rec(&full[5..], 0, 0);
        r.kunit_suites = 1;
        assert_eq!(problems(&r).len(), 1);
        // A failed load explains itself; no KTAP complaint on top.
        r.status = 1;
        assert!(!problems(&r).iter().any(|l| l.contains("KUnit")));
    }

    #[test]
    fn taint_letters() {
        assert_eq!(new_taints(0, 4096 | 8192), Vec::<String>::new());
        assert_eq!(
            new_taints(0, (1 << 9) | 4096),
            ["W (kernel issued a warning)"]
        );
        assert_eq!(new_taints(1 << 7, 1 << 7), Vec::<String>::new());
        assert_eq!(
            new_taints(0, 1 << 7),
            ["D (kernel died recently (OOPS or BUG))"]
        );
    }

    #[test]
    fn ignored_parameters_are_found() {
        let log: Vec<String> = [
            "[    1.000000] hello: unknown parameter 'nosuch' ignored",
            "[    1.000001] hello: greeting 1",
            "[    1.000002] says: unknown parameter 'x' ignored, it said",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            ignored_params(&log),
            ["hello: unknown parameter 'nosuch' ignored"]
        );
    }
}
