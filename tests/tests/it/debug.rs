//! The debug kernel (issue 18 §1): what a module leaves behind or does wrong is reported by
//! the kernel in its own words, and the verdict fails the case with those words. Each fixture
//! loads and unloads cleanly on a plain kernel.

use crate::common::*;

/// `cargo kmod test` of fixture `name` on `arch` with `extra` arguments: (exit code, stdout).
fn test_fixture(arch: &str, name: &str, extra: &[&str]) -> (i32, String, String) {
    let ko = fixture(arch, name);
    let o = kmod_test(arch, &[&ko], extra);
    (code(&o), stdout(&o), stderr(&o))
}

#[test]
fn a_timer_or_work_left_armed_at_unload_fails_with_the_kernels_words() {
    for arch in ARCHES {
        for (name, module, words) in [
            ("armed-timer", "armed_timer", "object type: timer_list"),
            ("armed-work", "armed_work", "object type: timer_list"),
        ] {
            let (code, out, err) = test_fixture(arch, name, &[]);
            assert_eq!(code, 101, "{arch} {name}: {out}\n{err}");
            let lines = failure(&out, &format!("{module} (unload)")).join("\n");
            assert!(
                lines.contains("ODEBUG: free active"),
                "{arch} {name}: {out}"
            );
            assert!(lines.contains(words), "{arch} {name}: {out}");
            assert!(
                !out.contains(&format!("{module} (load) ... FAILED")),
                "{arch} {name}: {out}"
            );
        }
    }
}

#[test]
fn locking_errors_fail_with_the_kernels_words() {
    for arch in ARCHES {
        for (name, module, words) in [
            (
                "recursive-lock",
                "recursive_lock",
                "WARNING: possible recursive locking detected",
            ),
            (
                "sleep-in-atomic",
                "sleep_in_atomic",
                "BUG: sleeping function called from invalid context",
            ),
        ] {
            let (code, out, err) = test_fixture(arch, name, &[]);
            assert_eq!(code, 101, "{arch} {name}: {out}\n{err}");
            let lines = failure(&out, &format!("{module} (load)")).join("\n");
            assert!(lines.contains(words), "{arch} {name}: {out}");
        }
        // `--no-debug-kernel` switches lockdep's proofs off for the boot: the same module
        // passes, and the verdict says the checks were off.
        let (code, out, err) = test_fixture(arch, "recursive-lock", &["--no-debug-kernel"]);
        assert_eq!(code, 0, "{arch}: {out}\n{err}");
        assert!(err.contains("checks were off"), "{arch}: {err}");
    }
}

#[test]
fn sanitize_fails_a_leak_naming_its_allocation_site() {
    for arch in ARCHES {
        let (code, out, err) = test_fixture(arch, "leak", &["--sanitize"]);
        assert_eq!(code, 101, "{arch}: {out}\n{err}");
        let lines = failure(&out, "leak (leak)").join("\n");
        assert!(lines.contains("unreferenced object 0x"), "{arch}: {out}");
        assert!(lines.contains("(size 96)"), "{arch}: {out}");
        assert!(
            lines.contains("allocated at leak_alloc+0x"),
            "{arch}: {out}"
        );
        assert!(
            !out.contains("leak (load) ... FAILED") && !out.contains("leak (unload) ... FAILED"),
            "{arch}: {out}"
        );
        // Without the scan the leak is not looked for; a module that frees what it
        // allocates passes the scan.
        let (code, out, err) = test_fixture(arch, "leak", &[]);
        assert_eq!(code, 0, "{arch}: {out}\n{err}");
        let (code, out, err) = test_fixture(arch, "kunit-pass", &["--sanitize"]);
        assert_eq!(code, 0, "{arch}: {out}\n{err}");
    }
    // The scan and the switches-off contradict each other: one line from clap.
    let ko = fixture("x86_64", "leak");
    let o = kmod_test("x86_64", &[&ko], &["--sanitize", "--no-debug-kernel"]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(stderr(&o).contains("cannot be used with"), "{}", stderr(&o));
}
