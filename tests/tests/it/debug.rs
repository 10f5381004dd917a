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

/// A package whose C part writes one byte past a 16-byte `kmalloc` at load.
fn out_of_bounds_package() -> (tempfile::TempDir, std::path::PathBuf) {
    let tmp = scratch();
    ok(&run(kmod(&["new", "oob"]).current_dir(tmp.path())));
    let pkg = tmp.path().join("oob");
    let manifest = pkg.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).unwrap().replacen(
        "[package.metadata.kmod]",
        "[package.metadata.kmod]\nc-sources = [\"src/poke.c\"]",
        1,
    );
    write(&manifest, &text);
    write(
        &pkg.join("src/poke.c"),
        "#include <linux/module.h>\n#include <linux/slab.h>\n\nvoid oob_poke(void);\n\
         void oob_poke(void)\n{\n\tvolatile int i = 16;\n\tchar *p = kmalloc(16, GFP_KERNEL);\n\n\
         \tif (!p)\n\t\treturn;\n\tp[i] = 1;\n\tkfree(p);\n}\n",
    );
    let lib = pkg.join("src/lib.rs");
    let src = std::fs::read_to_string(&lib).unwrap();
    let init = "fn init(_module: &'static ThisModule) -> Result<Self> {";
    assert!(src.contains(init), "{src}");
    let src = src.replacen(init, &format!("{init}\n        // SAFETY: a C function without arguments.\n        unsafe {{ oob_poke() }};"), 1)
        + "\nextern \"C\" {\n    fn oob_poke();\n}\n";
    write(&lib, &src);
    (tmp, pkg)
}

#[test]
fn sanitize_boots_the_kasan_tree_and_fails_an_out_of_bounds_write() {
    // The sanitizer tree: the dev tree plus generic KASAN (x86_64; prepared by set-up, or
    // here when missing).
    let tree = init(&["--arch", "x86_64", "--sanitize"]);
    let config = std::fs::read_to_string(tree.join(".config")).unwrap();
    assert!(
        config.lines().any(|l| l == "CONFIG_KASAN=y"),
        "no KASAN in {}",
        tree.display()
    );
    // It is not a dev tree: plain `--arch x86_64` builds never pick it.
    assert_ne!(dev_tree("x86_64"), tree);

    let (_tmp, pkg) = out_of_bounds_package();
    let o = run(kmod(&["test", "--arch", "x86_64", "--sanitize"]).current_dir(&pkg));
    assert_eq!(code(&o), 101, "{}\n{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    let lines = failure(&out, "oob (load)").join("\n");
    assert!(lines.contains("BUG: KASAN: slab-out-of-bounds"), "{out}");
    assert!(lines.contains("oob_poke"), "{out}");
    // Without `--sanitize` the dev tree has no KASAN: the write goes unseen.
    let o = run(kmod(&["test", "--arch", "x86_64"]).current_dir(&pkg));
    assert_eq!(code(&o), 0, "{}\n{}", stdout(&o), stderr(&o));

    // A clean module passes on the sanitizer tree; where there is none (arm64 here), the
    // run says what KASAN would add and still scans for leaks.
    let (_tmp, hello) = example("hello");
    let o = run(kmod(&["test", "--arch", "x86_64", "--sanitize"]).current_dir(&hello));
    ok(&o);
    assert!(!stderr(&o).contains("has no KASAN"), "{}", stderr(&o));
    let arm64_kasan = trees().iter().any(|t| {
        t["arch"] == "arm64"
            && t["fragments"].as_array().is_some_and(|f| {
                f.iter()
                    .any(|n| n.as_str().is_some_and(|n| n.contains("kasan")))
            })
    });
    if !arm64_kasan {
        let o = run(kmod(&["test", "--arch", "arm64", "--sanitize"]).current_dir(&hello));
        ok(&o);
        assert!(stderr(&o).contains("has no KASAN"), "{}", stderr(&o));
    }
}
