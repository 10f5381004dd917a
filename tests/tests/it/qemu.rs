//! `cargo kmod test` and `cargo kmod run` on the real dev trees, under real qemu, both arches.
//!
//! The fixture modules (`tests/fixtures/*`) are built with the kernel's own kbuild by a
//! hand-written Kbuild (`obj-m`, `rustflags-y += --cfg test`), so these tests need only a
//! prepared tree, and pass them to the binary with `--ko`.

use crate::common::*;

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

#[test]
fn kunit_results_like_cargo_test() {
    for arch in ARCHES {
        let ko = fixture(arch, "kunit-mixed");
        let o = kmod_test(arch, &[&ko], &[]);
        let out = stdout(&o);
        assert_eq!(code(&o), 101, "{arch}: {out}\n{}", stderr(&o));
        assert!(out.contains("running 2 tests"), "{out}");
        assert!(out.contains("test kunit_mixed_suite::adds ... ok"), "{out}");
        assert!(
            out.contains("test kunit_mixed_suite::fails_on_purpose ... FAILED"),
            "{out}"
        );
        assert!(
            out.contains("---- kunit_mixed_suite::fails_on_purpose ----"),
            "{out}"
        );
        assert!(
            out.contains("ASSERTION FAILED"),
            "{arch}: the failing case carries its assertion\n{out}"
        );
        assert!(
            out.contains("test result: FAILED. 1 passed; 1 failed; 0 ignored; finished in "),
            "{out}"
        );
        assert!(stderr(&o).contains("1 test failed on"), "{}", stderr(&o));

        // FILTER: only the passing case is reported, so the run passes.
        let o = kmod_test(arch, &[&ko], &["adds"]);
        ok(&o);
        assert!(
            stdout(&o).contains("test result: ok. 1 passed; 0 failed; 0 ignored"),
            "{}",
            stdout(&o)
        );
        assert!(stdout(&o).contains("(1 filtered out)"), "{}", stdout(&o));

        // JSON: one event per case and a summary.
        let o = kmod_test(arch, &[&ko], &["--message-format", "json"]);
        assert_eq!(code(&o), 101);
        let events: Vec<serde_json::Value> = stdout(&o)
            .lines()
            .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
            .collect();
        assert_eq!(events.len(), 3, "{events:?}");
        assert_eq!(events[0]["name"], "kunit_mixed_suite::adds");
        assert_eq!(events[0]["event"], "ok");
        assert_eq!(events[1]["event"], "failed");
        assert!(events[1]["stdout"]
            .as_str()
            .unwrap()
            .contains("ASSERTION FAILED"));
        assert_eq!(events[2]["type"], "suite");
        assert_eq!(events[2]["failed"], 1);
    }
}

#[test]
fn passing_modules_in_one_boot_with_a_parameter() {
    for arch in ARCHES {
        let pass = fixture(arch, "kunit-pass");
        let o = kmod_test(arch, &[&pass], &["--param", "greeting_count=7"]);
        ok(&o);
        let out = stdout(&o);
        assert!(out.contains("test kunit_pass_suite::adds ... ok"), "{out}");
        assert!(
            out.contains("test result: ok. 2 passed; 0 failed; 0 ignored; finished in "),
            "{out}"
        );

        // Two modules, one boot: both suites reported.
        let mixed = fixture(arch, "kunit-mixed");
        let o = kmod_test(arch, &[&pass, &mixed], &[]);
        let out = stdout(&o);
        assert_eq!(code(&o), 101, "{out}");
        assert!(out.contains("running 4 tests"), "{out}");
        assert!(
            out.contains("test kunit_pass_suite::multiplies ... ok"),
            "{out}"
        );
        assert!(
            out.contains("test kunit_mixed_suite::fails_on_purpose ... FAILED"),
            "{out}"
        );
        assert!(
            stderr(&o).contains("kunit_pass, kunit_mixed on"),
            "{}",
            stderr(&o)
        );
    }
}

#[test]
fn failing_init_fails_with_the_kernels_reason() {
    for arch in ARCHES {
        let ko = fixture(arch, "init-error");
        let o = kmod_test(arch, &[&ko], &[]);
        let out = stdout(&o);
        assert_eq!(code(&o), 101, "{out}");
        assert!(out.contains("test init_error (load) ... FAILED"), "{out}");
        assert!(
            out.contains("init_error: no such device, refusing to load"),
            "the module's own message\n{out}"
        );
        assert!(out.contains("No such device"), "insmod's words\n{out}");

        // Fail fast: the module after it is not loaded; --no-fail-fast loads it.
        let pass = fixture(arch, "kunit-pass");
        let o = kmod_test(arch, &[&ko, &pass], &[]);
        assert!(
            !stdout(&o).contains("kunit_pass_suite::adds"),
            "{}",
            stdout(&o)
        );
        let o = kmod_test(arch, &[&ko, &pass], &["--no-fail-fast"]);
        assert_eq!(code(&o), 101);
        assert!(
            stdout(&o).contains("test kunit_pass_suite::adds ... ok"),
            "{}",
            stdout(&o)
        );
    }
}

#[test]
fn panic_in_init_is_an_oops_with_the_panic_message() {
    for arch in ARCHES {
        let ko = fixture(arch, "init-panic");
        let o = kmod_test(arch, &[&ko], &[]);
        let out = stdout(&o);
        assert_eq!(code(&o), 101, "{out}\n{}", stderr(&o));
        assert!(out.contains("test init_panic (load) ... FAILED"), "{out}");
        assert!(
            out.contains("index out of bounds"),
            "{arch}: the Rust panic message\n{out}"
        );
        assert!(
            out.contains("D (kernel died recently (OOPS or BUG))"),
            "{out}"
        );
    }
}

#[test]
fn a_module_that_does_not_unload_fails() {
    for arch in ARCHES {
        let ko = fixture(arch, "unload-busy");
        let o = kmod_test(arch, &[&ko], &[]);
        let out = stdout(&o);
        assert_eq!(code(&o), 101, "{out}\n{}", stderr(&o));
        assert!(
            out.contains("test unload_busy (unload) ... FAILED"),
            "{out}"
        );
        assert!(out.contains("`rmmod` exited with status"), "{out}");
        assert!(
            out.contains("can't unload module 'unload_busy'"),
            "rmmod's words\n{out}"
        );
    }
}

#[test]
fn modversions_mismatch_is_refused_by_the_kernel() {
    for arch in ARCHES {
        let ko = build_fixture_against(arch, "kunit-pass", &skewed_tree(arch), "skewed");
        let o = kmod_test(arch, &[&ko], &[]);
        let out = stdout(&o);
        assert_eq!(code(&o), 101, "{out}\n{}", stderr(&o));
        assert!(out.contains("test kunit_pass (load) ... FAILED"), "{out}");
        assert!(
            out.contains("disagrees about version of symbol"),
            "{arch}\n{out}"
        );
    }
}

#[test]
fn a_hanging_guest_is_killed_at_the_timeout() {
    for arch in ARCHES {
        let ko = fixture(arch, "hang");
        let start = Instant::now();
        let o = kmod_test(arch, &[&ko], &["--timeout", "20"]);
        let took = start.elapsed();
        let out = stdout(&o);
        assert_eq!(code(&o), 101, "{out}\n{}", stderr(&o));
        assert!(took < Duration::from_secs(40), "{took:?}");
        assert!(out.contains("test hang (load) ... FAILED"), "{out}");
        assert!(out.contains("did not finish within 20s"), "{out}");
        assert!(out.contains("its log stopped at:"), "{out}");
    }
}

#[test]
fn a_boot_that_says_nothing_is_killed_at_its_first_line_limit() {
    // What keeps a resumed snapshot that does not run from costing the whole timeout.
    use cargo_kmod::guest::run::BootEnd;
    use cargo_kmod::qemu::{Accel, Boot, Machine};
    let tree = cargo_kmod::kernel::KernelTree::open(&dev_tree("arm64")).unwrap();
    let mut machine = Machine::for_tree(&tree, Accel::Tcg).unwrap();
    // Paused from the start: not one line ever comes.
    machine.extra_args.push("-S".into());
    let tmp = scratch();
    let initrd = tmp.path().join("empty.cpio");
    std::fs::write(&initrd, b"").unwrap();
    let mut boot = Boot::new(machine, initrd);
    boot.timeout = Duration::from_secs(60);
    boot.first_line_within = Some(Duration::from_secs(1));
    let shell = cargo_kmod::shell::Shell::plain();
    let log = boot
        .run(&shell, |_, _| cargo_kmod::qemu::Flow::Continue)
        .unwrap();
    assert_eq!(log.end, BootEnd::TimedOut);
    assert!(log.elapsed < Duration::from_secs(10), "{:?}", log.elapsed);
}

#[test]
fn run_exec_returns_output_and_status() {
    for arch in ARCHES {
        let ko = fixture(arch, "kunit-pass");
        let k = ko.display().to_string();
        let o = run(kmod(&[
            "run",
            "--arch",
            arch,
            "--ko",
            &k,
            "--param",
            "greeting_count=7",
            "--exec",
            "grep -c kunit_pass /proc/modules; uname -m; dmesg | grep greeting_count=; exit 3",
        ])
        .env("CARGO_KMOD_ACCEL", "tcg"));
        let out = stdout(&o);
        assert_eq!(code(&o), 3, "{out}\n{}", stderr(&o));
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "1", "{out}");
        assert_eq!(
            lines[1],
            if arch == "arm64" { "aarch64" } else { "x86_64" },
            "{out}"
        );
        assert!(
            lines[2].contains("kunit_pass: loaded, greeting_count=7"),
            "{out}"
        );
        assert!(
            stderr(&o).contains("exited with status 3 in the guest"),
            "{}",
            stderr(&o)
        );

        // Kernel command-line arguments after `--`.
        let o = run(kmod(&[
            "run",
            "--arch",
            arch,
            "--exec",
            "cat /proc/cmdline",
            "--",
            "kmod.test=1",
        ])
        .env("CARGO_KMOD_ACCEL", "tcg")
        .current_dir(std::env::temp_dir()));
        ok(&o);
        assert!(stdout(&o).contains("kmod.test=1"), "{}", stdout(&o));
    }
}

#[test]
fn run_without_exec_is_a_shell_on_the_console() {
    let arch = "x86_64";
    let ko = fixture(arch, "kunit-pass");
    let mut child = kmod(&["run", "--arch", arch, "--ko", &ko.display().to_string()])
        .env("CARGO_KMOD_ACCEL", "tcg")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        // The shell reads its input once it starts; typed-ahead lines wait in the uart.
        std::thread::sleep(Duration::from_secs(8));
        writeln!(
            stdin,
            "echo marker-$((6*7)); cat /sys/module/kunit_pass/initstate; reboot -f"
        )
        .unwrap();
        std::thread::sleep(Duration::from_secs(10));
    }
    let o = child.wait_with_output().unwrap();
    let out = stdout(&o);
    assert!(out.contains("marker-42"), "{out}\n{}", stderr(&o));
    assert!(out.contains("live"), "{out}");
}

#[test]
fn a_module_depending_on_another_loads_after_it() {
    for arch in ARCHES {
        let tree = dev_tree(arch);
        let provider = build_fixture_with(arch, "dep-provider", &tree, "dev", &[]);
        let symvers = provider.parent().unwrap().join("Module.symvers");
        let user = build_fixture_with(arch, "dep-user", &tree, "dev", &[symvers]);
        // Given user first: `depends=dep_provider` in its .modinfo puts the provider first.
        let o = kmod_test(arch, &[&user, &provider], &["-v"]);
        ok(&o);
        let err = stderr(&o);
        let ip = err.find("cargo-kmod: dep_provider (load)\n").expect(&err);
        let iu = err.find("cargo-kmod: dep_user (load)\n").expect(&err);
        assert!(ip < iu, "{err}");
        assert!(
            stdout(&o).contains("test dep_user_suite::provider_answers ... ok"),
            "{}",
            stdout(&o)
        );
        // Alone, the user does not load, and the kernel says why.
        let o = kmod_test(arch, &[&user], &[]);
        assert_eq!(code(&o), 101);
        assert!(
            stdout(&o).contains("Unknown symbol dep_provider_answer"),
            "{}",
            stdout(&o)
        );
    }
}

#[test]
fn packages_of_a_workspace_are_built_and_tested_in_one_boot() {
    for arch in ARCHES {
        let o = run(kmod(&[
            "test",
            "--arch",
            arch,
            "--manifest-path",
            &root()
                .join("tests/fixtures/Cargo.toml")
                .display()
                .to_string(),
            "-p",
            "dep-user",
            "-p",
            "dep-provider",
            "-p",
            "kunit-pass",
        ])
        .env(
            "CARGO_TARGET_DIR",
            root().join("target/kmod-fixtures/cargo-target"),
        )
        .env("CARGO_KMOD_ACCEL", "tcg"));
        ok(&o);
        let out = stdout(&o);
        assert!(
            out.contains("test dep_user_suite::provider_answers ... ok"),
            "{out}"
        );
        assert!(
            out.contains("test result: ok. 3 passed; 0 failed; 0 ignored"),
            "{out}"
        );
        // Provider before user, whatever the order of `-p`.
        let err = stderr(&o);
        assert!(
            err.contains("Running dep_provider, dep_user, kunit_pass on"),
            "{err}"
        );
    }
}

#[test]
fn examples_pass_their_kunit_tests_and_work_in_the_guest() {
    for arch in ARCHES {
        for (name, extra) in [
            ("hello", &[][..]),
            ("mixed", &[][..]),
            ("miscdev", &[][..]),
            ("pair", &["--workspace"][..]),
        ] {
            let mut args = vec!["test", "--arch", arch];
            args.extend_from_slice(extra);
            let o = kmod_example(name, &args);
            ok(&o);
            assert!(
                stdout(&o).contains("test result: ok."),
                "{arch} {name}: {}",
                stdout(&o)
            );
        }

        // The parameter's value.
        let o = kmod_example(
            "hello",
            &[
                "run",
                "--arch",
                arch,
                "--param",
                "greeting_count=3",
                "--exec",
                "dmesg | grep -c 'Hello from Rust'",
            ],
        );
        ok(&o);
        assert_eq!(stdout(&o).trim(), "3", "{arch}: {}", stdout(&o));

        // C-to-Rust and Rust-to-C: the module's init computed its summary through C.
        let o = kmod_example(
            "mixed",
            &["run", "--arch", arch, "--exec", "dmesg | grep 'mixed:'"],
        );
        ok(&o);
        assert!(stdout(&o).contains("checksum 0x"), "{arch}: {}", stdout(&o));

        // The symbol used across the workspace pair: the consumer depends on the provider.
        let o = kmod_example(
            "pair",
            &[
                "run",
                "--arch",
                arch,
                "--workspace",
                "--exec",
                "cat /proc/modules; dmesg | grep pair_consumer",
            ],
        );
        ok(&o);
        let out = stdout(&o);
        assert!(
            out.lines()
                .any(|l| l.starts_with("pair_provider ") && l.contains("pair_consumer")),
            "{arch}: {out}"
        );
        assert!(out.contains("got id"), "{arch}: {out}");

        // The misc device's read and write from userspace.
        let o = kmod_example(
            "miscdev",
            &[
                "run",
                "--arch",
                arch,
                "--exec",
                "echo kmod-hello > /dev/kmod-echo && cat /dev/kmod-echo",
            ],
        );
        ok(&o);
        assert!(stdout(&o).contains("kmod-hello"), "{arch}: {}", stdout(&o));
    }
}

// ---- the verdict cannot lie ----

#[test]
fn a_flood_of_log_lines_keeps_the_ktap_report() {
    // The flooding case prints about 300 KiB, more than the kernel's default log buffer:
    // reading the buffer after the load found the KTAP header gone and reported `0 passed`.
    for arch in ARCHES {
        let ko = fixture(arch, "kunit-flood");
        let o = kmod_test(arch, &[&ko], &[]);
        let out = stdout(&o);
        assert_eq!(code(&o), 101, "{arch}: {out}\n{}", stderr(&o));
        assert!(out.contains("running 2 tests"), "{arch}: {out}");
        assert!(
            out.contains("test kunit_flood_suite::passes_first ... ok"),
            "{arch}: {out}"
        );
        assert!(
            out.contains("test kunit_flood_suite::floods_then_fails ... FAILED"),
            "{arch}: {out}"
        );
        assert!(
            out.contains("test result: FAILED. 1 passed; 1 failed; 0 ignored"),
            "{arch}: {out}"
        );
        assert!(!out.contains("were lost"), "{arch}: {out}");
    }
}

#[test]
fn lost_log_lines_fail_the_run_and_say_so() {
    // A user's `log_buf_len=` replaces cargo-kmod's; one no bigger than the kernel's default
    // keeps the default buffer, which 2 MiB printed without a pause overruns.
    for arch in ARCHES {
        let ko = fixture(arch, "kunit-flood");
        let o = kmod_test(
            arch,
            &[&ko],
            &["--param", "lines=20000", "--", "log_buf_len=4k"],
        );
        let out = stdout(&o);
        assert_eq!(code(&o), 101, "{arch}: {out}\n{}", stderr(&o));
        assert!(
            out.contains("test kunit_flood (load) ... FAILED"),
            "{arch}: {out}"
        );
        assert!(
            out.contains("kernel log records of this step were lost"),
            "{arch}: {out}"
        );
    }
}

#[test]
fn module_output_never_changes_the_verdict() {
    // `spoof` prints the old protocol's lines, a passing `test result:`, forged log records
    // and a KTAP document at odd indents, at load, in a test case and at unload.
    for arch in ARCHES {
        let ko = fixture(arch, "spoof");
        let o = kmod_test(arch, &[&ko], &[]);
        let out = stdout(&o);
        assert_eq!(code(&o), 101, "{arch}: {out}\n{}", stderr(&o));
        assert!(out.contains("running 2 tests"), "{arch}: {out}");
        assert!(
            out.contains("test spoof_suite::adds ... ok"),
            "{arch}: {out}"
        );
        assert!(
            out.contains("test spoof_suite::fails_on_purpose ... FAILED"),
            "{arch}: {out}"
        );
        assert!(!out.contains("test forged"), "{arch}: {out}");
        assert!(
            out.contains("test result: FAILED. 1 passed; 1 failed; 0 ignored"),
            "{arch}: {out}"
        );

        // `run --exec`: the status and output are the command's.
        let k = ko.display().to_string();
        let exec = |cmd: &str| {
            run(kmod(&["run", "--arch", arch, "--ko", &k, "--exec", cmd])
                .env("CARGO_KMOD_ACCEL", "tcg"))
        };
        let o = exec("echo real; exit 3");
        assert_eq!(code(&o), 3, "{arch}: {}\n{}", stdout(&o), stderr(&o));
        assert_eq!(stdout(&o), "real\n", "{arch}");
        let o = exec("echo fine");
        ok(&o);
        assert_eq!(stdout(&o), "fine\n", "{arch}");
    }
}

#[test]
fn a_work_item_firing_after_unload_fails() {
    for arch in ARCHES {
        let ko = fixture(arch, "late-work");
        let o = kmod_test(arch, &[&ko], &[]);
        let out = stdout(&o);
        assert_eq!(code(&o), 101, "{arch}: {out}\n{}", stderr(&o));
        // The item re-queues itself every jiffy, so it runs in the freed module a tick after
        // `rmmod` freed it: while `rmmod` is still reporting, or within the settle time after
        // it. Either way it is a failure of the unload or after it.
        assert!(
            out.contains("test late_work (after unload) ... FAILED")
                || out.contains("test late_work (unload) ... FAILED"),
            "{arch}: {out}"
        );
        // The worker oopses on the freed module's code (taint `D`), or, on the debug kernel,
        // the kernel dies earlier: the timer that queues the item reads the freed module's
        // lockdep names in interrupt context, which panics before the taint can be read.
        assert!(
            out.contains("D (kernel died recently (OOPS or BUG))")
                || out.contains("Kernel panic - not syncing"),
            "{arch}: {out}"
        );
        assert!(
            !out.contains("late_work (load) ... FAILED"),
            "{arch}: {out}"
        );
    }
}

#[test]
fn a_shared_console_tells_the_same_story() {
    // One UART for console and protocol (as on a board): only token lines count.
    for arch in ARCHES {
        let mixed = fixture(arch, "kunit-mixed");
        let spoof = fixture(arch, "spoof");
        let r = library_test(arch, &[&mixed, &spoof], true);
        assert_eq!(
            verdicts(&r),
            [
                ("kunit_mixed_suite::adds".to_string(), "ok"),
                ("kunit_mixed_suite::fails_on_purpose".to_string(), "FAILED"),
                ("spoof_suite::adds".to_string(), "ok"),
                ("spoof_suite::fails_on_purpose".to_string(), "FAILED"),
            ],
            "{arch}: {:?}",
            r.cases
        );
        assert!(r.transcript.complete(), "{arch}");
        let late = fixture(arch, "late-work");
        let r = library_test(arch, &[&late], true);
        // The item runs in the freed module a tick after `rmmod` freed it (see
        // `a_work_item_firing_after_unload_fails`): the run fails on what happened after the
        // module's memory was freed.
        let v = verdicts(&r);
        assert!(
            v.iter().all(|(_, verdict)| *verdict == "FAILED")
                && v.iter()
                    .any(|(name, _)| name == "late_work (after unload)"
                        || name == "late_work (unload)"),
            "{arch}: {:?}",
            r.cases
        );
    }
}

#[test]
fn steps_the_guest_never_reports_fail() {
    use cargo_kmod::guest::{GuestPlan, Step};
    use cargo_kmod::qemu::{run_plan, Accel, Machine};
    for arch in ARCHES {
        let tree = cargo_kmod::kernel::KernelTree::open(&dev_tree(arch)).unwrap();
        let machine = Machine::for_tree(&tree, Accel::Tcg).unwrap();
        // The guest powers off in the middle of its script, a moment after the first step
        // (so that step's log, up to its sync record, is out before the guest dies: a step
        // whose log never arrives in full fails, which is not what this test is about).
        let plan = GuestPlan {
            steps: vec![
                Step::shell("first", "true"),
                Step::shell("power off", "sleep 0.2; reboot -f"),
                Step::shell("never", "true"),
            ],
            settle: Some(std::time::Duration::from_millis(100)),
            ..GuestPlan::default()
        };
        let shell = cargo_kmod::shell::Shell::plain();
        let run = run_plan(&shell, &machine, &plan, |_| {}).unwrap();
        assert!(!run.complete(), "{arch}");
        let (cases, _) = cargo_kmod::guest::verdict::judge(
            &run,
            &plan,
            &[],
            &cargo_kmod::guest::verdict::TestOptions::default(),
        );
        let failed: Vec<&str> = cases.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(failed, ["power off"], "{arch}: {cases:?}");
        assert!(
            cases[0].lines.iter().any(|l| l == "never ran: never"),
            "{arch}: {cases:?}"
        );
    }
}

#[test]
fn a_background_guest_is_ready_and_dies_with_its_handle() {
    use cargo_kmod::guest::{GuestPlan, Step, Then};
    use cargo_kmod::qemu::{spawn_plan, Accel, Machine};
    let tree = cargo_kmod::kernel::KernelTree::open(&dev_tree("x86_64")).unwrap();
    let machine = Machine::for_tree(&tree, Accel::Tcg).unwrap();
    let plan = GuestPlan {
        steps: vec![Step::shell("up", "echo up")],
        then: Then::Wait,
        ..GuestPlan::default()
    };
    let shell = cargo_kmod::shell::Shell::plain();
    let mut guest = spawn_plan(&shell, &machine, &plan).unwrap();
    guest.wait_ready(Duration::from_secs(60)).unwrap();
    assert_eq!(guest.transcript.steps[0].out, ["up"]);
    let pid = guest.pid();
    assert!(alive(pid));
    drop(guest);
    assert!(!alive(pid), "qemu {pid} outlived its handle");
}

// ---- bad input ----

#[test]
fn bad_input_gets_one_clear_line() {
    let ko = fixture("x86_64", "kunit-pass");
    let dir = scratch();

    // Not a .ko.
    let txt = dir.path().join("notes.txt");
    std::fs::write(&txt, "hello").unwrap();
    let e = fails(&kmod_test("x86_64", &[&txt], &[]));
    assert!(
        e.contains("is not a kernel module: its name does not end in `.ko`"),
        "{e}"
    );
    let fake = dir.path().join("fake.ko");
    std::fs::write(&fake, "hello").unwrap();
    let e = fails(&kmod_test("x86_64", &[&fake], &[]));
    assert!(
        e.contains("fake.ko` is not a kernel module: it is not an ELF file"),
        "{e}"
    );
    // A module for the other arch.
    let arm = fixture("arm64", "kunit-pass");
    let e = fails(&kmod_test("x86_64", &[&arm], &[]));
    assert!(e.contains("is not a module for x86_64"), "{e}");

    // FILTER matching nothing.
    let o = kmod_test("x86_64", &[&ko], &["no_such_case"]);
    let e = fails(&o);
    assert!(
        e.contains("error: no test matches `no_such_case`: the modules ran 2 tests"),
        "{e}"
    );

    // An arch without a tree.
    let empty = scratch();
    let o = run(kmod(&[
        "test",
        "--arch",
        "arm64",
        "--ko",
        &arm.display().to_string(),
    ])
    .env("CARGO_KMOD_HOME", empty.path()));
    let e = fails(&o);
    assert!(e.contains("error: no arm64 kernel tree"), "{e}");

    // A tree without a kernel image.
    let tree = dev_tree("x86_64");
    let noimg = dir.path().join("noimg");
    std::fs::create_dir_all(noimg.join("include/config")).unwrap();
    std::fs::copy(tree.join(".config"), noimg.join(".config")).unwrap();
    std::fs::copy(
        tree.join("include/config/kernel.release"),
        noimg.join("include/config/kernel.release"),
    )
    .unwrap();
    let o = run(&mut kmod(&[
        "test",
        "--kdir",
        &noimg.display().to_string(),
        "--ko",
        &ko.display().to_string(),
    ]));
    let e = fails(&o);
    assert!(
        e.contains("has no boot image `arch/x86/boot/bzImage`"),
        "{e}"
    );

    // qemu missing.
    let o = run(kmod(&["run", "--arch", "x86_64", "--exec", "true"])
        .current_dir(dir.path())
        .env("CARGO_KMOD_QEMU_X86_64", "/nonexistent/qemu"));
    let e = fails(&o);
    assert!(e.contains("cannot start"), "{e}");
    let bin_dir = dir.path().join("bin");
    std::fs::create_dir_all(&bin_dir).unwrap();
    let o = run(kmod(&["run", "--arch", "x86_64", "--exec", "true"])
        .current_dir(dir.path())
        .env("PATH", &bin_dir));
    let e = fails(&o);
    assert!(
        e.contains("error: `qemu-system-x86_64` not found in `PATH`"),
        "{e}"
    );

    // A "kernel" that is garbage: the guest prints nothing useful.
    let garbage = dir.path().join("garbage");
    std::fs::create_dir_all(garbage.join("include/config")).unwrap();
    std::fs::create_dir_all(garbage.join("arch/x86/boot")).unwrap();
    std::fs::copy(tree.join(".config"), garbage.join(".config")).unwrap();
    std::fs::copy(
        tree.join("include/config/kernel.release"),
        garbage.join("include/config/kernel.release"),
    )
    .unwrap();
    let junk: Vec<u8> = (0..200_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(garbage.join("arch/x86/boot/bzImage"), junk).unwrap();
    let o = run(kmod(&[
        "test",
        "--kdir",
        &garbage.display().to_string(),
        "--ko",
        &ko.display().to_string(),
        "--timeout",
        "10",
    ])
    .env("CARGO_KMOD_ACCEL", "tcg"));
    let e = fails(&o);
    assert_eq!(
        e.lines().filter(|l| l.starts_with("error:")).count(),
        1,
        "{e}"
    );
    assert!(
        e.contains("qemu failed") || e.contains("did not boot") || e.contains("did not finish"),
        "{e}"
    );
}

#[test]
fn a_guest_printing_garbage_is_read_safely() {
    let o = run(kmod(&[
        "run",
        "--arch",
        "x86_64",
        "--exec",
        "head -c 4096 /bin/busybox; echo; echo after",
    ])
    .env("CARGO_KMOD_ACCEL", "tcg")
    .current_dir(std::env::temp_dir()));
    ok(&o);
    assert!(stdout(&o).lines().any(|l| l == "after"), "{}", stdout(&o));
}

// ---- nothing is left running ----

#[test]
fn no_qemu_outlives_the_command() {
    let ko = fixture("x86_64", "hang");
    for signal in ["-INT", "-KILL"] {
        // Its own temporary directory, to see what a stopped run leaves there.
        let tmp = tempfile::tempdir().unwrap();
        let mut child = kmod(&[
            "test",
            "--arch",
            "x86_64",
            "--ko",
            &ko.display().to_string(),
            "--timeout",
            "120",
        ])
        .env("CARGO_KMOD_ACCEL", "tcg")
        .env("TMPDIR", tmp.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
        let start = Instant::now();
        let qemu = loop {
            if let Some(p) = children_named(child.id(), "qemu-system").first() {
                break *p;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "qemu never started"
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        std::thread::sleep(Duration::from_secs(2));
        Command::new("kill")
            .arg(signal)
            .arg(child.id().to_string())
            .status()
            .unwrap();
        let status = child.wait().unwrap();
        if signal == "-INT" {
            assert_eq!(status.code(), Some(130), "{status}");
            // Ctrl-C removes the boot's files (initramfs, console, channel) too.
            let left: Vec<_> = std::fs::read_dir(tmp.path())
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            assert!(left.is_empty(), "left behind: {left:?}");
        }
        let start = Instant::now();
        while alive(qemu) {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "qemu {qemu} outlived cargo-kmod ({signal})"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
fn test_boots_resume_a_snapshot_and_boot_cold_when_it_does_not_resume() {
    // The arm64 dev tree reads virtio disks: its first test boot saves the booted guest, the
    // ones after resume it. In a home of this test's own (sharing busybox), so the snapshot
    // it looks at is the one it made.
    let arch = "arm64";
    let tree = dev_tree(arch);
    let ko = fixture(arch, "kunit-mixed");
    let tmp = scratch();
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    std::os::unix::fs::symlink(real_home().join("busybox"), home.join("busybox")).unwrap();
    let test = |env: &[(&str, &str)]| {
        let mut c = kmod(&["test", "-v", "--arch", arch, "--kdir"]);
        c.arg(&tree)
            .arg("--ko")
            .arg(&ko)
            .env("CARGO_KMOD_HOME", &home)
            .env("CARGO_KMOD_ACCEL", "tcg")
            .env_remove("CARGO_KMOD_SNAPSHOT");
        for (k, v) in env {
            c.env(k, v);
        }
        run(&mut c)
    };
    let cases = |o: &Output| -> Vec<String> {
        stdout(o)
            .lines()
            .filter(|l| l.starts_with("test ") && l.contains(" ... "))
            .map(String::from)
            .collect()
    };
    let first = test(&[]);
    assert_eq!(code(&first), 101, "{}\n{}", stdout(&first), stderr(&first));
    assert_eq!(cases(&first).len(), 2, "{}", stdout(&first));
    assert!(
        stderr(&first).contains("Snapshotting"),
        "{}",
        stderr(&first)
    );
    let made = snapshots(&home);
    assert_eq!(made.len(), 1, "{made:?}");
    assert!(made[0].join("state").is_file());

    let second = test(&[]);
    assert_eq!(code(&second), 101, "{}", stderr(&second));
    assert!(stderr(&second).contains("Resuming"), "{}", stderr(&second));
    assert!(
        !stderr(&second).contains("Snapshotting"),
        "{}",
        stderr(&second)
    );
    assert_eq!(cases(&second), cases(&first));
    // The whole kernel log, the boot's records included, reaches the host after a resume.
    assert!(
        stderr(&second).contains("] Linux version "),
        "{}",
        stderr(&second)
    );

    // A snapshot qemu cannot load is removed, and the run boots cold: the same verdict.
    std::fs::write(made[0].join("state"), b"not a migration stream").unwrap();
    let third = test(&[]);
    assert_eq!(code(&third), 101, "{}", stderr(&third));
    assert!(stderr(&third).contains("Discarding"), "{}", stderr(&third));
    assert_eq!(cases(&third), cases(&first));
    assert!(snapshots(&home).is_empty());

    // Off: always cold, nothing saved.
    let cold = test(&[("CARGO_KMOD_SNAPSHOT", "off")]);
    assert_eq!(code(&cold), 101, "{}", stderr(&cold));
    assert!(!stderr(&cold).contains("Resuming"), "{}", stderr(&cold));
    assert_eq!(cases(&cold), cases(&first));
    assert!(snapshots(&home).is_empty());

    // An attempt that fails is noted and not made again: here qemu cannot create its
    // monitor socket (the temporary directory's path is longer than a socket's 108 bytes).
    let long = tmp.path().join("t".repeat(120));
    std::fs::create_dir_all(&long).unwrap();
    let tmpdir = long.to_str().unwrap();
    let failing = test(&[("TMPDIR", tmpdir)]);
    assert_eq!(code(&failing), 101, "{}", stderr(&failing));
    assert!(
        stderr(&failing).contains("the snapshot, booting cold"),
        "{}",
        stderr(&failing)
    );
    assert_eq!(cases(&failing), cases(&first));
    let notes: Vec<PathBuf> = std::fs::read_dir(home.join("qemu/snapshots"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "failed"))
        .collect();
    assert_eq!(notes.len(), 1, "{notes:?}");
    let again = test(&[("TMPDIR", tmpdir)]);
    assert_eq!(cases(&again), cases(&first));
    assert!(
        stderr(&again).contains(".failed` to try again"),
        "{}",
        stderr(&again)
    );
    assert!(
        !stderr(&again).contains("Snapshotting"),
        "{}",
        stderr(&again)
    );

    let bad = test(&[("CARGO_KMOD_SNAPSHOT", "maybe")]);
    let err = fails(&bad);
    assert!(err.contains("`CARGO_KMOD_SNAPSHOT` is `maybe`"), "{err}");
    assert_eq!(
        err.lines().filter(|l| l.starts_with("error")).count(),
        1,
        "{err}"
    );
}
