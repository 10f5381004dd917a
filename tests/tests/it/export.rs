//! `cargo kmod export` (docs/export.md) into copies of the dev trees' Linux 7.2 source:
//!
//! - the hello, miscdev and blinker examples export with every kernel gate clean
//!   (`--check`: rustfmt, a CLIPPY=1 build, checkpatch.pl --strict on the patch), and the
//!   `=m` module that build leaves loads in qemu with its KUnit suite passing, on both
//!   arches; a C + Rust fixture does too, and a planted checkpatch finding in its C file and
//!   a clippy lint in its Rust code are reported;
//! - the tree with the drivers `=y` (`init --source` of the exported tree) boots with them
//!   built in: their KUnit suites run at boot and pass, blinker's driver binds the device
//!   in the boot device tree (arm64), nothing is loaded with insmod;
//! - what cannot go upstream is refused with one line and nothing written; a file the user
//!   changed in the tree is kept unless `--force`; exporting again changes nothing.

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::common::*;

const SIGNOFF: &str = "Ada Lovelace <ada@example.com>";

/// `cargo kmod export --into LINUX ARGS` in the package `dir`.
fn export(dir: &Path, linux: &Path, args: &[&str]) -> Output {
    run(kmod(&[&["export", "--into", s(linux)][..], args].concat()).current_dir(dir))
}

/// The blinker example's device, as a `--device` file.
fn blinker_devices(dir: &Path) -> PathBuf {
    let path = dir.join("blinker-devices.toml");
    write(
        &path,
        r#"[[devices]]
compatible = "acme,blinker"
properties = { "acme,period-ms" = 250, "acme,label" = "status", "acme,pins" = [3, 5], "acme,active-low" = true, "acme,max-ticks" = { u64 = 0x1_0000_0000 } }
"#,
    );
    path
}

/// Export each example with `--check` for `arch` (every gate clean), then test the `=m`
/// module the check built.
fn examples_export_clean_and_load(arch: &str) {
    let (tmp, linux) = linux_copy();
    let devices = blinker_devices(tmp.path());
    for name in ["hello", "miscdev", "blinker"] {
        let (_pkg, dir) = example(name);
        let o = export(
            &dir,
            &linux,
            &["--check", "--arch", arch, "--signoff", SIGNOFF],
        );
        ok(&o);
        let err = stderr(&o);
        assert!(
            err.contains(&format!(
                "Checked drivers/misc/{name}: rustfmt, clippy and checkpatch --strict are clean"
            )),
            "{err}"
        );
        let patch =
            std::fs::read_to_string(dir.join(format!("target/kmod/export/{name}.patch"))).unwrap();
        assert!(
            patch.contains(&format!("Signed-off-by: {SIGNOFF}\n")),
            "{patch}"
        );
        assert!(patch.contains(&format!("+++ b/drivers/misc/{name}/{name}.rs")));
        assert!(patch.contains(&format!("+source \"drivers/misc/{name}/Kconfig\"")));
        if name == "hello" {
            // The first export's patch applies to the source as it was (`git apply`).
            let pristine = dev_tree("x86_64").join("source");
            let patch = dir.join("target/kmod/export/hello.patch");
            let o = run(std::process::Command::new("git")
                .args(["apply", "--check"])
                .arg(&patch)
                .current_dir(&pristine));
            ok(&o);
        }
        let ko = dir.join(format!("target/kmod/export/{arch}/{name}/{name}.ko"));
        let mut extra = vec![];
        let dev = devices.display().to_string();
        if name == "blinker" {
            extra = vec!["--device", dev.as_str()];
        }
        let o = kmod_test(arch, &[&ko], &extra);
        ok(&o);
        let out = stdout(&o);
        assert!(
            out.contains(&format!("test {name}_tests::")) && out.contains("test result: ok."),
            "{out}"
        );
    }
    // The exported files are the package's, rewritten: the kernel's `module!` with the
    // fields of Cargo.toml, the tests behind the KUnit symbol.
    let rs = std::fs::read_to_string(linux.join("drivers/misc/hello/hello.rs")).unwrap();
    assert!(rs.contains("module! {\n    type: Hello,\n    name: \"hello\",\n    authors: [\"cargo-kmod developers <cargo-kmod@example.invalid>\"],\n    description: \"A minimal Rust kernel module with a parameter\",\n    license: \"GPL v2\",\n    params: {"), "{rs}");
    assert!(rs.contains("#[cfg(CONFIG_HELLO_KUNIT_TEST)]\n#[kunit_tests(hello_tests)]"));
    // (Comments stay as written: hello's doc comment still tells of kmod-macros.)
    assert!(!rs.contains("kmod_macros::module! {") && !rs.contains("#[cfg(test)]"));
}

#[test]
fn examples_export_clean_and_their_modules_pass_kunit_on_x86_64() {
    examples_export_clean_and_load("x86_64");
}

#[test]
fn examples_export_clean_and_their_modules_pass_kunit_on_arm64() {
    examples_export_clean_and_load("arm64");
}

#[test]
fn check_reports_a_checkpatch_finding_in_c_and_a_clippy_lint_in_rust() {
    let (tmp, linux) = linux_copy();
    let pkg = tmp.path().join("export-c");
    copy_dir(&root().join("tests/fixtures/export-c"), &pkg);
    // A link planted in the module's directory takes no write outside it.
    let module_dir = linux.join("drivers/misc/export_c");
    std::fs::create_dir_all(&module_dir).unwrap();
    let elsewhere = tmp.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, module_dir.join("include")).unwrap();
    let o = export(&pkg, &linux, &[]);
    assert_eq!(
        one_error_line(fails(&o).as_str()),
        "error: `drivers/misc/export_c/include` is a symbolic link: export writes only plain files and directories in the module's directory"
    );
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
    std::fs::remove_dir_all(&module_dir).unwrap();

    // Clean: Rust and C in one `=m` module that loads and passes its suite.
    let o = export(&pkg, &linux, &["--check", "--signoff", SIGNOFF]);
    ok(&o);
    let makefile = std::fs::read_to_string(linux.join("drivers/misc/export_c/Makefile")).unwrap();
    assert!(
        makefile.contains("obj-$(CONFIG_EXPORT_C) += export_c.o\nexport_c-y := export_c_main.o double.o\n\nccflags-y += -I $(src)/include\n"),
        "{makefile}"
    );
    let ko = pkg.join("target/kmod/export/x86_64/export_c/export_c.ko");
    let o = kmod_test("x86_64", &[&ko], &[]);
    ok(&o);
    assert!(stdout(&o).contains("test export_c_tests::c_doubles ... ok"));

    // A printk without a level in C, a needless `return` in Rust.
    let c = pkg.join("src/double.c");
    let text = std::fs::read_to_string(&c).unwrap().replace(
        "\treturn 2 * x;",
        "\tprintk(\"doubling\\n\");\n\treturn 2 * x;",
    );
    write(
        &c,
        &text.replace(
            "#include \"export_c.h\"",
            "#include <linux/printk.h>\n#include \"export_c.h\"",
        ),
    );
    let lib = pkg.join("src/lib.rs");
    let text = std::fs::read_to_string(&lib).unwrap().replace(
        "    unsafe { export_c_double(x) }\n",
        "    let doubled = unsafe { export_c_double(x) };\n    return doubled;\n",
    );
    write(&lib, &text);
    let o = export(&pkg, &linux, &["--check", "--signoff", SIGNOFF]);
    let err = fails(&o);
    let out = stdout(&o);
    assert!(
        out.contains("checkpatch: drivers/misc/export_c/double.c:")
            && out.contains("WARNING: printk() should include KERN_<LEVEL> facility level"),
        "{out}"
    );
    assert!(
        out.contains(
            "clippy: warning: unneeded `return` statement (drivers/misc/export_c/export_c_main.rs:"
        ),
        "{out}"
    );
    assert_eq!(
        one_error_line(err.as_str()),
        "error: the kernel's checks report 2 finding(s) in `drivers/misc/export_c`"
    );
}

#[test]
fn what_cannot_go_upstream_is_refused_and_nothing_is_written() {
    let (_tmp, linux) = linux_copy();
    let parents = |l: &Path| {
        [
            "drivers/misc/Kconfig",
            "drivers/misc/Makefile",
            "MAINTAINERS",
        ]
        .map(|f| std::fs::read_to_string(l.join(f)).unwrap())
    };
    let before = parents(&linux);
    let refused = |dir: &Path, args: &[&str]| {
        let line = one_error_line(fails(&export(dir, &linux, args)).as_str());
        line.strip_prefix("error: ").unwrap_or(&line).to_string()
    };

    // A crates.io dependency, named.
    let (_a, dir) = example("hello");
    let manifest = dir.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    write(
        &manifest,
        &format!("{text}\n[dependencies]\nheapless = \"0.8\"\n"),
    );
    let e = refused(&dir, &[]);
    assert!(
        e.contains("`[dependencies]` `heapless` cannot go upstream: in-tree code has no crates.io or path dependencies"),
        "{e}"
    );
    // A module name the tree has.
    write(
        &manifest,
        &text.replace(
            "[package.metadata.kmod]",
            "[package.metadata.kmod]\nname = \"lkdtm\"",
        ),
    );
    let e = refused(&dir, &["--symbol", "CONFIG_RUST_LKDTM"]);
    assert_eq!(
        e,
        "module name `lkdtm` is taken in the tree: `drivers/misc/lkdtm/Makefile` builds `lkdtm.o`"
    );
    write(&manifest, &text);
    // A path outside the tree, a symbol the tree has.
    let e = refused(&dir, &["--path", "../outside/hello"]);
    assert_eq!(
        e,
        "path `../outside/hello` is not a directory inside the kernel tree"
    );
    let e = refused(&dir, &["--symbol", "CONFIG_LKDTM"]);
    // (`lib/Kconfig.debug` defines it, `drivers/misc/lkdtm/Makefile` builds the module.)
    assert!(
        e.starts_with("Kconfig symbol `CONFIG_LKDTM` is already defined in `lib/Kconfig.debug`"),
        "{e}"
    );
    // bindgen bindings have no in-tree form.
    let (_b, mixed) = example("mixed");
    let e = refused(&mixed, &[]);
    assert!(e.contains("`bindings` (`"), "{e}");
    assert!(e.contains("has no in-tree form"), "{e}");
    // Not a kernel source.
    let o = export(&dir, &dir, &[]);
    assert!(one_error_line(fails(&o).as_str()).contains("is not a kernel source tree"));
    assert_eq!(
        parents(&linux),
        before,
        "a refused export wrote into the tree"
    );
    assert!(!linux.join("drivers/misc/hello").exists());

    // Exported, then again: nothing changes.
    ok(&export(&dir, &linux, &[]));
    let once = parents(&linux);
    let o = export(&dir, &linux, &[]);
    ok(&o);
    assert!(stderr(&o).contains("(0 file(s) written;"), "{}", stderr(&o));
    assert_eq!(parents(&linux), once);
    assert_eq!(
        once[0]
            .matches("source \"drivers/misc/hello/Kconfig\"")
            .count(),
        1
    );
    assert!(once[1].ends_with("obj-$(CONFIG_HELLO)\t+= hello/\n"));

    // A file the user changed in the tree is theirs until `--force`.
    let rs = linux.join("drivers/misc/hello/hello.rs");
    let exported = std::fs::read_to_string(&rs).unwrap();
    let edited = exported.replace("count.clamp(0, 10)", "count.clamp(0, 20)");
    replace_file(&rs, &edited);
    let e = refused(&dir, &[]);
    assert_eq!(
        e,
        "`drivers/misc/hello/hello.rs` was changed in the tree since the last export"
    );
    assert_eq!(std::fs::read_to_string(&rs).unwrap(), edited);
    ok(&export(&dir, &linux, &["--force"]));
    assert_eq!(std::fs::read_to_string(&rs).unwrap(), exported);
}

/// Export `names` into a copy of the source kept under the shared home by the hash of what
/// was exported (so a later run finds the same source, and `init` the same tree), and
/// prepare that tree for `arch` with the drivers and their KUnit symbols `=y`.
fn builtin_tree(arch: &str, names: &[&str]) -> PathBuf {
    let tmp = scratch();
    let linux = linux_copy_in(tmp.path());
    let mut fragment = String::new();
    let mut hashed = String::new();
    for name in names {
        let (_pkg, dir) = example(name);
        ok(&export(&dir, &linux, &["-q"]));
        let sym = name.to_ascii_uppercase();
        fragment += &format!("CONFIG_{sym}=y\nCONFIG_{sym}_KUNIT_TEST=y\n");
        for f in walk(&linux.join("drivers/misc").join(name)) {
            hashed += &std::fs::read_to_string(&f).unwrap_or_default();
        }
    }
    for f in ["drivers/misc/Kconfig", "drivers/misc/Makefile"] {
        hashed += &std::fs::read_to_string(linux.join(f)).unwrap();
    }
    let hash = cargo_kmod::fsutil::sha256_hex(hashed.as_bytes());
    let kept = real_home()
        .join("test-sources")
        .join(format!("linux-y-{arch}-{}", &hash[..16]));
    if !kept.exists() {
        std::fs::create_dir_all(kept.parent().unwrap()).unwrap();
        if std::fs::rename(&linux, &kept).is_err() {
            // Another file system: copied with the times (`init` seeds from the dev tree).
            let o = run(std::process::Command::new("cp")
                .arg("-a")
                .arg(&linux)
                .arg(&kept));
            ok(&o);
        }
    }
    let frag = tmp.path().join("builtin.config");
    write(&frag, &fragment);
    let o = run(&mut kmod(&[
        "init",
        "--source",
        s(&kept),
        "--arch",
        arch,
        "--config",
        s(&frag),
        "--message-format",
        "json",
    ]));
    ok(&o);
    let tree = stdout(&o)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["reason"] == "kernel-tree")
        .and_then(|v| v["path"].as_str().map(PathBuf::from))
        .expect("init names its tree");
    tree
}

/// What the built-in boot's checks print.
const CHECKS: &str = "echo modules=$(wc -l < /proc/modules); ls -d /sys/module/blinker /sys/bus/platform/drivers/blinker/blinker 2>&1; dmesg | grep -E 'ok [0-9]+ [a-z_]+_tests$|Hello from Rust|blinking'; ls /dev/kmod-echo";

fn assert_suites(out: &str, suites: &[&str]) {
    for suite in suites {
        assert!(
            out.lines()
                .any(|l| l.ends_with(&format!(" {suite}_tests"))
                    && l.trim_start().starts_with("ok ")),
            "{suite}_tests did not pass at boot:\n{out}"
        );
    }
    assert!(!out.contains("not ok"), "{out}");
    assert!(out.contains("modules=0"), "a module was loaded: {out}");
    assert!(out.contains("hello: Hello from Rust (1/1)"), "{out}");
    assert!(out.contains("/dev/kmod-echo"), "{out}");
}

#[test]
fn the_exported_drivers_built_in_boot_with_their_kunit_suites_on_arm64() {
    let tree = builtin_tree("arm64", &["hello", "miscdev", "blinker"]);
    let tmp = scratch();
    let devices = blinker_devices(tmp.path());
    let o = run(kmod(&[
        "run",
        "--kdir",
        s(&tree),
        "--device",
        s(&devices),
        "--devices-at-boot",
        "--exec",
        CHECKS,
    ])
    .current_dir(tmp.path())
    .env("CARGO_KMOD_ACCEL", "tcg"));
    ok(&o);
    let out = stdout(&o);
    assert_suites(&out, &["hello", "miscdev", "blinker"]);
    // The platform driver, built in, bound the device of the boot device tree while the
    // kernel booted: its module directory exists with no insmod.
    assert!(out.contains("/sys/module/blinker\n"), "{out}");
    assert!(
        out.contains("/sys/bus/platform/drivers/blinker/blinker\n"),
        "{out}"
    );
    assert!(
        out.contains("blinker blinker: blinking \"status\" on pins [3, 5] every 250 ms"),
        "{out}"
    );
}

#[test]
fn the_exported_modules_built_in_boot_with_their_kunit_suites_on_x86_64() {
    let tree = builtin_tree("x86_64", &["hello", "miscdev"]);
    let tmp = scratch();
    let o = run(kmod(&["run", "--kdir", s(&tree), "--exec", CHECKS])
        .current_dir(tmp.path())
        .env("CARGO_KMOD_ACCEL", "tcg"));
    ok(&o);
    assert_suites(&stdout(&o), &["hello", "miscdev"]);
}

#[test]
fn devices_at_boot_are_refused_where_there_is_no_boot_device_tree() {
    let tmp = scratch();
    let devices = blinker_devices(tmp.path());
    let o = run(kmod(&[
        "run",
        "--arch",
        "x86_64",
        "--device",
        s(&devices),
        "--devices-at-boot",
        "--exec",
        "true",
    ])
    .current_dir(tmp.path()));
    assert_eq!(
        one_error_line(fails(&o).as_str()),
        "error: `--devices-at-boot` needs a device tree at boot, and x86_64 boots without one"
    );
}

/// A kernel sample ported as users port it, its declaration left as the kernel's own
/// (`kernel::module_pci_driver!`, examples/rust-driver-pci under a new name): export keeps
/// that declaration, the export is clean, and the `=m` build binds `pci-testdev`. A
/// declaration whose `name` is not the module's object is refused with its line.
#[test]
fn a_sample_declared_with_the_kernels_own_macro_exports_as_it_is() {
    let (tmp, linux) = linux_copy();
    let pkg = tmp.path().join("acme-pci");
    copy_dir(&root().join("examples/rust-driver-pci"), &pkg);
    let manifest = pkg.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    write(
        &manifest,
        &text.replace("name = \"rust-driver-pci\"", "name = \"acme-pci\""),
    );
    let lib = pkg.join("src/lib.rs");
    let src = std::fs::read_to_string(&lib).unwrap();
    assert!(src.contains("kernel::module_pci_driver! {"), "{src}");
    write(
        &lib,
        &src.replace("name: \"rust_driver_pci\"", "name: \"acme-wrong\""),
    );
    let err = one_error_line(fails(&export(&pkg, &linux, &[])).as_str());
    assert!(
        err.contains(
            "`module_pci_driver!` names the module `acme-wrong`, but its object is `acme_pci`"
        ),
        "{err}"
    );
    write(
        &lib,
        &src.replace("name: \"rust_driver_pci\"", "name: \"acme_pci\""),
    );
    ok(&export(&pkg, &linux, &["--check", "--signoff", SIGNOFF]));
    let exported =
        std::fs::read_to_string(linux.join("drivers/misc/acme_pci/acme_pci.rs")).unwrap();
    assert!(
        exported.contains("kernel::module_pci_driver! {"),
        "{exported}"
    );
    let kconfig = std::fs::read_to_string(linux.join("drivers/misc/acme_pci/Kconfig")).unwrap();
    assert!(kconfig.contains("depends on PCI"), "{kconfig}");
    let ko = pkg.join("target/kmod/export/x86_64/acme_pci/acme_pci.ko");
    let devices = tmp.path().join("pci.toml");
    write(
        &devices,
        "[[devices]]\nbus = \"pci\"\nqemu-device = \"pci-testdev\"\n",
    );
    let o = kmod_test("x86_64", &[&ko], &["--device", s(&devices)]);
    ok(&o);
    assert!(stderr(&o).contains("bound by acme_pci"), "{}", stderr(&o));
}
