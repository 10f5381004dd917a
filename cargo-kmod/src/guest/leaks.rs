//! Memory a module leaves behind, found by the kernel's own kmemleak (`cargo kmod test
//! --sanitize` on a kernel with `CONFIG_DEBUG_KMEMLEAK`).
//!
//! The test plan grows two kinds of steps: after each load, the addresses of the module's
//! sections (`/sys/module/<name>/sections/`, read while it is loaded); after everything,
//! a kmemleak scan. kmemleak reports an object only when it was allocated at least 5 s
//! (`MSECS_MIN_AGE`) before a scan and its contents did not change since the scan before,
//! so the guest scans once right after the last unload, waits [`MIN_AGE`], scans again and
//! prints the report. An object whose allocation backtrace passes through the code of a
//! module under test is a leak of that module; its case names the allocation site
//! (`leaky_alloc+0x1c/0x40`), found with the `.ko`'s symbols, since the kernel can no longer
//! name an unloaded module's code. Objects the rest of the kernel reports are not the
//! module's and are ignored.

use std::time::Duration;

use crate::guest::modules::KoModule;
use crate::guest::plan::{find_earlier, GuestPlan, Step, When};
use crate::guest::transcript::{StepState, Transcript};
use crate::guest::verdict::{CaseResult, Verdict};

/// The scan step's name.
pub const SCAN_STEP: &str = "kmemleak (scan)";

/// How long the guest waits between its two scans: kmemleak's minimum object age (5 s) and
/// a margin.
pub const MIN_AGE: Duration = Duration::from_millis(5200);

/// The name of the step that records where `module`'s sections were loaded.
pub fn sections_step(module: &str) -> String {
    format!("{module} (sections)")
}

/// Add the section records and the final scan to a test plan of `modules`.
pub fn extend_test_plan(plan: &mut GuestPlan, modules: &[KoModule]) {
    for m in modules {
        let load = Step::load(&crate::guest::plan::GuestModule {
            name: m.name.clone(),
            guest_path: String::new(),
            params: vec![],
        })
        .name();
        let Some(at) = find_earlier(&plan.steps, &load) else {
            continue;
        };
        // Module names are `[A-Za-z0-9_]` (checked when the `.ko` was read). The files must
        // be read in one `read(2)` (the kernel refuses a read at an offset), which the
        // shell's `read` builtin does not do: `cat`.
        let script = format!(
            "cd /sys/module/{}/sections || exit 0\n\
             for f in .* *; do [ -f \"$f\" ] && echo \"$f $(cat \"$f\")\"; done\n\
             true",
            m.name
        );
        plan.steps.insert(
            at + 1,
            Step::builtins(&sections_step(&m.name), &script).when(When::AllOk(vec![load])),
        );
    }
    let k = "/sys/kernel/debug/kmemleak";
    let script = format!(
        "[ -e {k} ] || mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null\n\
         if ! [ -w {k} ]; then echo 'this kernel has no kmemleak ({k} is missing): it was built without CONFIG_DEBUG_KMEMLEAK, or booted with kmemleak=off'; exit 1; fi\n\
         echo scan >{k} || exit 1\n\
         sleep {}\n\
         echo scan >{k} || exit 1\n\
         while IFS= read -r l; do echo \"$l\"; done <{k}",
        MIN_AGE.as_secs_f64()
    );
    plan.steps.push(Step::builtins(SCAN_STEP, &script));
}

/// One object of a kmemleak report: its first line and every line after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreferenced {
    pub lines: Vec<String>,
    /// The addresses of its backtrace, innermost first, where the kernel printed them as
    /// numbers (code it could not name: an unloaded module's).
    pub frames: Vec<u64>,
}

/// The objects of a kmemleak report (`/sys/kernel/debug/kmemleak`).
pub fn parse(report: &[String]) -> Vec<Unreferenced> {
    let mut out: Vec<Unreferenced> = Vec::new();
    let mut in_backtrace = false;
    for line in report {
        let t = line.trim();
        if t.starts_with("unreferenced object ") {
            out.push(Unreferenced {
                lines: vec![line.clone()],
                frames: vec![],
            });
            in_backtrace = false;
            continue;
        }
        let Some(obj) = out.last_mut() else { continue };
        obj.lines.push(line.clone());
        if t.starts_with("backtrace") {
            in_backtrace = true;
        } else if in_backtrace {
            // `[<ffffffffc0002010>] 0xffffffffc0002010`, or without the bracketed part.
            let rest = match t.strip_prefix("[<") {
                Some(r) => r.split_once(">]").map_or("", |(_, r)| r.trim()),
                None => t,
            };
            let word = rest.split_whitespace().next().unwrap_or("");
            if let Some(hex) = word.strip_prefix("0x") {
                if let Ok(a) = u64::from_str_radix(hex, 16) {
                    obj.frames.push(a);
                }
            }
        }
    }
    out
}

/// Where `module`'s sections were loaded, from its sections step's output
/// (`.text 0xffffffffc0002000`).
fn loaded_sections(out: &[String]) -> Vec<(String, u64)> {
    out.iter()
        .filter_map(|l| {
            let (name, addr) = l.rsplit_once(' ')?;
            let a = u64::from_str_radix(addr.trim().strip_prefix("0x")?, 16).ok()?;
            (a != 0).then(|| (name.to_string(), a))
        })
        .collect()
}

/// The leak cases of a run whose plan has [`extend_test_plan`]'s steps: one failing case
/// (`module (leak)`) per module under test with unreferenced objects allocated by its code.
pub fn judge(t: &Transcript, plan: &GuestPlan, modules: &[KoModule]) -> Vec<CaseResult> {
    let Some(scan) = plan.steps.iter().rposition(|s| s.name() == SCAN_STEP) else {
        return vec![];
    };
    let Some(run) = t.steps.get(scan) else {
        return vec![];
    };
    if run.state != StepState::Done || run.status != Some(0) {
        return vec![]; // the step's own case says why
    }
    let objects = parse(&run.out);
    let mut cases = Vec::new();
    for m in modules {
        let loaded = find_earlier(&plan.steps[..scan], &sections_step(&m.name))
            .and_then(|i| t.steps.get(i))
            .map(|s| loaded_sections(&s.out))
            .unwrap_or_default();
        if loaded.is_empty() {
            continue;
        }
        let mut lines = Vec::new();
        let mut count = 0;
        for o in &objects {
            let Some(site) = o.frames.iter().find_map(|a| m.code.name(&loaded, *a)) else {
                continue;
            };
            count += 1;
            lines.push(format!(
                "kmemleak: {} allocated at {site} in {}",
                o.lines[0].trim().trim_end_matches(':'),
                m.name
            ));
            lines.extend(o.lines.iter().cloned());
        }
        if count > 0 {
            lines.insert(
                0,
                format!(
                    "{} object{} allocated by {} {} still allocated and unreferenced after it was unloaded",
                    count,
                    if count == 1 { "" } else { "s" },
                    m.name,
                    if count == 1 { "was" } else { "were" },
                ),
            );
            cases.push(CaseResult {
                name: format!("{} (leak)", m.name),
                module: m.name.clone(),
                verdict: Verdict::Failed,
                lines,
                kunit: false,
            });
        }
    }
    cases
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = "unreferenced object 0xffff888003a1b2c0 (size 64):
  comm \"insmod\", pid 59, jiffies 4294892486
  hex dump (first 32 bytes):
    6c 65 61 6b 00 00 00 00 00 00 00 00 00 00 00 00  leak............
  backtrace (crc 5a1f2b3c):
    [<ffffffff8123abcd>] __kmalloc_cache_noprof+0x1d0/0x2a0
    [<ffffffffc0002010>] 0xffffffffc0002010
    [<ffffffff81000123>] do_one_initcall+0x53/0x1f0
unreferenced object 0xffff888003a1c000 (size 32):
  comm \"swapper\", pid 1, jiffies 4294890000
  backtrace (crc 0):
    kobject_add+0x20/0x90
    0xffffffff81999999";

    fn lines(s: &str) -> Vec<String> {
        s.lines().map(str::to_string).collect()
    }

    fn ko(n: &str) -> KoModule {
        KoModule {
            name: n.into(),
            ko: format!("/{n}.ko").into(),
            depends: vec![],
            params: vec![],
            kunit_suites: 0,
            known_params: None,
            aliases: vec![],
            code: Default::default(),
        }
    }

    #[test]
    fn sections_follow_each_load_and_the_scan_comes_last() {
        let mods = [ko("a"), ko("b")];
        let mut plan = GuestPlan::test(&mods, true);
        extend_test_plan(&mut plan, &mods);
        let names: Vec<String> = plan.steps.iter().map(Step::name).collect();
        assert_eq!(
            names,
            [
                "a (load)",
                "a (sections)",
                "b (load)",
                "b (sections)",
                "b (unload)",
                "a (unload)",
                SCAN_STEP
            ]
        );
        assert_eq!(plan.steps[1].when, When::AllOk(vec!["a (load)".into()]));
        // The unloads still depend on the loads, not on the records.
        assert_eq!(plan.steps[5].when, When::AllOk(vec!["a (load)".into()]));
        let crate::guest::Action::Shell {
            script, applets, ..
        } = &plan.steps[6].action
        else {
            panic!()
        };
        assert!(!applets);
        assert!(
            script.contains("echo scan >/sys/kernel/debug/kmemleak || exit 1\nsleep 5.2\n"),
            "{script}"
        );
    }

    #[test]
    fn parses_objects_and_unnamed_frames() {
        let o = parse(&lines(REPORT));
        assert_eq!(o.len(), 2);
        assert_eq!(o[0].frames, [0xffffffffc0002010]);
        assert_eq!(o[0].lines.len(), 8);
        assert_eq!(o[1].frames, [0xffffffff81999999]);
    }

    #[test]
    fn names_the_allocation_site_in_the_module() {
        let code = crate::ko::CodeMap {
            sections: vec![(".text".into(), 0x100), (".data".into(), 0x40)],
            functions: vec![
                (".text".into(), 0, 0x10, "other".into()),
                (".text".into(), 0x10, 0x20, "leaky_alloc".into()),
            ],
        };
        let loaded = loaded_sections(&lines(
            ".data 0xffffffffc0004000\n.text 0xffffffffc0002000\n.bss 0x0000000000000000\nbogus",
        ));
        assert_eq!(loaded.len(), 2);
        assert_eq!(
            code.name(&loaded, 0xffffffffc0002014).as_deref(),
            Some("leaky_alloc+0x4/0x20")
        );
        assert_eq!(code.name(&loaded, 0xffffffffc0002200), None);
        assert_eq!(
            code.name(&loaded, 0xffffffffc0004008).as_deref(),
            Some(".data+0x8")
        );
    }
}
