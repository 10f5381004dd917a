//! The foundation on real trees: prepared trees exist and are fresh, `init` again is a no-op
//! under a second, doctor passes on them and names each broken case, bad input is refused
//! with one line and leaves nothing that counts as prepared.

use crate::common::*;

use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn both_dev_trees_are_prepared_with_what_modules_need() {
    for arch in ["x86_64", "arm64"] {
        let dir = dev_tree(arch);
        for f in [
            ".config",
            "Module.symvers",
            "rust/libkernel.rmeta",
            "certs/signing_key.pem",
            "certs/signing_key.x509",
        ] {
            assert!(dir.join(f).is_file(), "{arch}: {f}");
        }
        let config = std::fs::read_to_string(dir.join(".config")).unwrap();
        for sym in [
            "RUST",
            "MODULES",
            "MODULE_UNLOAD",
            "MODVERSIONS",
            "GENDWARFKSYMS",
            "EXTENDED_MODVERSIONS",
            "MODULE_SIG",
            "KUNIT",
        ] {
            assert!(
                config.contains(&format!("\nCONFIG_{sym}=y\n")),
                "{arch}: CONFIG_{sym}"
            );
        }
        let image = if arch == "x86_64" {
            "arch/x86/boot/bzImage"
        } else {
            "arch/arm64/boot/Image"
        };
        assert!(dir.join(image).is_file(), "{arch}: {image}");
    }
}

#[test]
fn init_again_is_a_fresh_noop_under_a_second() {
    dev_tree("x86_64");
    dev_tree("arm64");
    // Best of three: other tests configure kernels on the same two cores meanwhile.
    let mut took = Duration::MAX;
    let mut o = None;
    for _ in 0..3 {
        let t = Instant::now();
        let out = run(&mut kmod(&["init", "--arch", "all"]));
        took = took.min(t.elapsed());
        o = Some(out);
    }
    let o = o.unwrap();
    ok(&o);
    let err = stderr(&o);
    assert_eq!(err.matches("Fresh").count(), 2, "{err}");
    assert!(took < Duration::from_secs(1), "init took {took:?}");
}

#[test]
fn list_prints_release_arch_rustc_and_path() {
    dev_tree("x86_64");
    let o = run(&mut kmod(&["init", "--list"]));
    ok(&o);
    let out = stdout(&o);
    let line = out
        .lines()
        .find(|l| l.contains(" x86_64 ") && !l.starts_with("6."))
        .unwrap();
    assert!(line.starts_with("7."), "{line}");
    assert!(line.contains("rustc 1."), "{line}");
    assert!(line.contains("/trees/x86_64-"), "{line}");
}

#[test]
fn doctor_passes_on_the_prepared_trees() {
    // `doctor` looks at every prepared tree: none may be hidden by a board test meanwhile.
    let _trees = every_tree_in_place();
    dev_tree("x86_64");
    dev_tree("arm64");
    let o = run(&mut kmod(&["doctor"]));
    ok(&o);
    let out = stdout(&o);
    assert!(!out.contains("FAIL"), "{out}");
    assert!(out.contains("ok    rustc match [7."), "{out}");
    assert!(
        out.contains("modversions [7.") && out.contains("extended"),
        "{out}"
    );
}

#[test]
fn doctor_names_each_broken_case() {
    let kdir = dev_tree("x86_64");
    let kdir = kdir.to_str().unwrap();
    let bin = scratch();
    let fake = |name: &str, text: &str| {
        let p = bin.path().join(name);
        std::fs::write(&p, format!("#!/bin/sh\necho '{text}'\n")).unwrap();
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        p
    };
    // No rust-src for this rustc.
    let o = run(kmod(&["doctor", "--kdir", kdir]).env("RUST_LIB_SRC", "/nonexistent"));
    let out = stdout(&o);
    fails(&o);
    assert!(
        out.contains("FAIL  rust-src: no rust-src for rustc 1."),
        "{out}"
    );
    // bindgen too old.
    let old = fake("bindgen", "bindgen 0.60.1");
    let o = run(kmod(&["doctor", "--kdir", kdir]).env("BINDGEN", &old));
    let out = stdout(&o);
    assert!(fails(&o).contains("doctor found"));
    assert!(out.contains("bindgen 0.60.1 is too old: linux 7."), "{out}");
    // A rustc other than the one that built the tree (E0514 later).
    let rustc = fake("rustc", "rustc 1.80.0 (051478957 2024-07-21)");
    let o = run(kmod(&["doctor", "--kdir", kdir]).env("RUSTC", &rustc));
    let out = stdout(&o);
    fails(&o);
    assert!(out.contains("but `rustc` is `rustc 1.80.0 (051478957 2024-07-21)`: modules would fail with E0514/E0461"), "{out}");
    // Not a kernel tree.
    let o = run(&mut kmod(&[
        "doctor",
        "--kdir",
        bin.path().to_str().unwrap(),
    ]));
    let out = stdout(&o);
    fails(&o);
    assert!(
        out.contains("is not a configured kernel tree: it has no `.config`"),
        "{out}"
    );
}

#[test]
fn bad_sources_are_refused_in_one_line() {
    let home = scratch_home();
    let h = home.path();
    let o = run(&mut init_in(h, &["--source", "/nonexistent/linux.tar.xz"]));
    assert_eq!(
        fails(&o).lines().next().unwrap(),
        "error: kernel source `/nonexistent/linux.tar.xz` does not exist"
    );
    let dir = scratch();
    let o = run(&mut init_in(h, &["--source", dir.path().to_str().unwrap()]));
    assert!(fails(&o).contains(
        "is not a kernel source tree: no top-level `Makefile`, `Kconfig` and `scripts/`"
    ));
    let o = run(&mut init_in(h, &["--arch", "riscv"]));
    let err = fails(&o);
    assert!(
        err.starts_with(
            "error: unknown arch `riscv`\nhelp: cargo-kmod supports `x86_64` and `arm64`"
        ),
        "{err}"
    );
    // A truncated tarball: refused, and nothing half-unpacked is left.
    let trunc = dir.path().join("linux-source-7.2.tar.xz");
    let head: Vec<u8> = std::fs::read(tarball_72())
        .unwrap()
        .into_iter()
        .take(2_000_000)
        .collect();
    std::fs::write(&trunc, head).unwrap();
    let own_home = scratch_home_sharing(&["rust-src"]);
    let o = run(&mut init_in(
        own_home.path(),
        &["--source", trunc.to_str().unwrap(), "--arch", "x86_64"],
    ));
    let err = fails(&o);
    assert!(
        err.contains("cannot unpack `") && err.contains("the archive is truncated or corrupt"),
        "{err}"
    );
    // Nothing unpacked is left (the source's lock file stays, like cargo's).
    let left: Vec<_> = std::fs::read_dir(own_home.path().join("sources"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_none_or(|x| x != "lock"))
        .collect();
    assert!(left.is_empty(), "half-unpacked source left: {left:?}");
    assert_eq!(stamped(own_home.path()), 0);
}

#[test]
fn unwritable_home_and_missing_rust_src_are_refused() {
    let o = run(kmod(&["init", "--arch", "x86_64"]).env("CARGO_KMOD_HOME", "/proc/cargo-kmod"));
    let err = fails(&o);
    assert!(err.contains("/proc/cargo-kmod/"), "{err}");
    assert!(
        err.contains("help: set `CARGO_KMOD_HOME` to a writable directory"),
        "{err}"
    );
    let home = scratch_home();
    let o = run(init_in(home.path(), &["--arch", "x86_64"]).env("RUST_LIB_SRC", "/nonexistent"));
    let err = fails(&o);
    assert!(err.contains("no rust-src for `rustc 1."), "{err}");
    assert!(err.contains("help: run `cargo xtask setup`"), "{err}");
}

#[test]
fn fragments_with_misspelled_or_blocked_symbols_are_refused() {
    let home = scratch_home();
    let h = home.path();
    let dir = scratch();
    let typo = dir.path().join("typo.config");
    std::fs::write(&typo, "CONFIG_KUNIT=y\nCONFIG_MODULE_SIGG=y\n").unwrap();
    let o = run(&mut init_in(
        h,
        &["--arch", "x86_64", "--config", typo.to_str().unwrap()],
    ));
    let err = fails(&o);
    assert!(
        err.contains("unknown symbol `CONFIG_MODULE_SIGG` (`")
            && err.contains("typo.config` line 2): did you mean `CONFIG_MODULE_SIG`?"),
        "{err}"
    );
    let syntax = dir.path().join("syntax.config");
    std::fs::write(&syntax, "KUNIT=y\n").unwrap();
    let o = run(&mut init_in(
        h,
        &["--arch", "x86_64", "--config", syntax.to_str().unwrap()],
    ));
    assert!(fails(&o).contains("syntax.config` line 1: `KUNIT` does not start with `CONFIG_`"));
    // KUNIT_DEBUGFS depends on DEBUG_FS: switching that off blocks it (and the debug
    // kernel's kmemleak, which selects DEBUG_FS, off with it).
    let blocked = dir.path().join("blocked.config");
    std::fs::write(
        &blocked,
        "CONFIG_KUNIT_DEBUGFS=y\n# CONFIG_DEBUG_FS is not set\n# CONFIG_DEBUG_KMEMLEAK is not set\n",
    )
    .unwrap();
    let o = run(&mut init_in(
        h,
        &["--arch", "x86_64", "--config", blocked.to_str().unwrap()],
    ));
    let err = fails(&o);
    assert!(
        err.contains("`CONFIG_KUNIT_DEBUGFS=y` did not take effect (`"),
        "{err}"
    );
    assert!(
        err.contains("it depends on `DEBUG_FS`, blocked by DEBUG_FS"),
        "{err}"
    );
    assert_eq!(
        stamped(h),
        0,
        "a refused configuration must not count as prepared"
    );
}

#[test]
fn an_interrupted_build_does_not_count_as_prepared() {
    let home = scratch_home();
    let h = home.path();
    let mut child = init_in(h, &["--arch", "x86_64"]).spawn().unwrap();
    // Let it get past configuration into the build, then kill it the hard way.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let building = std::fs::read_dir(h.join("trees")).ok().and_then(|it| {
            it.flatten()
                .find_map(|e| std::fs::read_to_string(e.path().join("cargo-kmod-build.log")).ok())
        });
        if building.is_some_and(|log| log.lines().filter(|l| l.starts_with("  CC")).count() > 3)
            || Instant::now() > deadline
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = Command::new("pkill")
        .args(["-KILL", "-f", &format!("O={}", h.join("trees").display())])
        .status();
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(stamped(h), 0);
    let o = run(init_in(h, &["--list", "--message-format", "json"]).env("CARGO_KMOD_HOME", h));
    ok(&o);
    assert_eq!(
        stdout(&o).trim(),
        "",
        "an unstamped tree must not be listed"
    );
}

#[test]
fn each_prepared_kernel_boots_to_a_marker_printed_by_the_guest_init() {
    for arch in ["x86_64", "arm64"] {
        dev_tree(arch);
        let dir = scratch();
        // The guest computes the marker, so seeing it proves the guest's init ran it.
        let o = run(kmod(&[
            "run",
            "--arch",
            arch,
            "--timeout",
            "120",
            "--exec",
            "echo kmod-marker-$((6 * 7))-$(uname -m)",
        ])
        .current_dir(dir.path()));
        ok(&o);
        let machine = if arch == "x86_64" {
            "x86_64"
        } else {
            "aarch64"
        };
        assert!(
            stdout(&o).contains(&format!("kmod-marker-42-{machine}")),
            "{arch}:\n{}\n{}",
            stdout(&o),
            stderr(&o)
        );
    }
}

#[test]
fn init_refuses_a_bindgen_older_than_the_kernel_needs() {
    let home = scratch_home();
    let bin = scratch();
    let old = bin.path().join("bindgen");
    std::fs::write(&old, "#!/bin/sh\necho 'bindgen 0.60.1'\n").unwrap();
    std::fs::set_permissions(&old, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let o = run(init_in(home.path(), &["--arch", "x86_64"]).env("BINDGEN", &old));
    let err = fails(&o);
    assert!(
        err.contains("bindgen 0.60.1 is too old: this kernel needs at least 0.71.1"),
        "{err}"
    );
    assert!(
        err.contains("help: run `cargo install bindgen-cli --locked`"),
        "{err}"
    );
    assert_eq!(stamped(home.path()), 0);
}
