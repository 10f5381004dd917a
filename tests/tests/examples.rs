//! Every example under `examples/` builds with `cargo kmod build` for x86_64 and arm64 on the
//! 7.x dev trees, and hello also on a 6.12 tree from the same sources (kmod-macros switches
//! the `module!` dialect). Each `.ko` is checked: ELF machine, and `.modinfo` equal to what
//! its Cargo.toml says.

mod common;
use common::*;

use std::path::{Path, PathBuf};

/// Copy `examples/<name>` into a scratch dir (tests never write in the repo).
fn example(name: &str) -> (tempfile::TempDir, PathBuf) {
    let tmp = scratch();
    let dir = tmp.path().join(name);
    copy_dir(&root().join("examples").join(name), &dir);
    (tmp, dir)
}

/// `cargo kmod build ARGS` in `dir`; returns the combined output for diagnostics.
fn build(dir: &Path, args: &[&str]) -> String {
    let o = run(kmod(&["build"]).args(args).current_dir(dir));
    ok(&o);
    stderr(&o)
}

/// `modinfo -F FIELD KO`: every value of one field.
fn modinfo(ko: &Path, field: &str) -> Vec<String> {
    let o = std::process::Command::new("modinfo")
        .args(["-F", field])
        .arg(ko)
        .output()
        .expect("cannot run modinfo");
    assert!(
        o.status.success(),
        "modinfo {}: {}",
        ko.display(),
        stderr(&o)
    );
    stdout(&o).lines().map(str::to_string).collect()
}

fn elf_machine(ko: &Path) -> u16 {
    let bytes = std::fs::read(ko).unwrap();
    assert_eq!(&bytes[..4], b"\x7fELF", "{} is not ELF", ko.display());
    u16::from_le_bytes([bytes[18], bytes[19]])
}

fn machine(arch: &str) -> u16 {
    match arch {
        "x86_64" => 62,
        "arm64" => 183,
        _ => unreachable!(),
    }
}

fn release(tree: &Path) -> String {
    std::fs::read_to_string(tree.join("include/config/kernel.release"))
        .unwrap()
        .trim()
        .to_string()
}

/// The `.ko` for `module` exists, is for `arch`, was built for `tree`, and carries the
/// package metadata (the kernel's spelling of the license).
#[track_caller]
fn check_ko(ko: &Path, arch: &str, tree: &Path, version: &str, license: &str, description: &str) {
    assert!(ko.is_file(), "no `{}`", ko.display());
    assert_eq!(elf_machine(ko), machine(arch), "{}", ko.display());
    assert_eq!(modinfo(ko, "version"), [version]);
    assert_eq!(modinfo(ko, "license"), [license]);
    assert_eq!(modinfo(ko, "description"), [description]);
    assert_eq!(
        modinfo(ko, "author"),
        ["cargo-kmod developers <cargo-kmod@example.invalid>"]
    );
    let vermagic = modinfo(ko, "vermagic").join("");
    assert!(
        vermagic.starts_with(&format!("{} ", release(tree))),
        "{vermagic}"
    );
}

#[test]
fn hello_builds_for_both_arches() {
    for arch in ["x86_64", "arm64"] {
        let tree = dev_tree(arch);
        let (_tmp, dir) = example("hello");
        build(&dir, &["--arch", arch]);
        let ko = dir.join(format!("target/kmod/{arch}/hello.ko"));
        check_ko(
            &ko,
            arch,
            &tree,
            "0.1.0",
            "GPL v2",
            "A minimal Rust kernel module with a parameter",
        );
        assert_eq!(
            modinfo(&ko, "parm"),
            ["greeting_count:How many times to greet when loaded (0 to 10)"]
        );
        assert_eq!(modinfo(&ko, "parmtype"), ["greeting_count:i64"]);
    }
}

/// The same hello sources on Linux 6.12: `author:` instead of `authors: [..]`, and the
/// parameter declared by kmod-macros (6.12's `module!` has no `params`).
#[test]
fn hello_builds_on_6_12_from_the_same_sources() {
    let tree = tree_612("x86_64");
    let (_tmp, dir) = example("hello");
    build(&dir, &["--kdir", tree.to_str().unwrap()]);
    let ko = dir.join("target/kmod/x86_64/hello.ko");
    check_ko(
        &ko,
        "x86_64",
        &tree,
        "0.1.0",
        "GPL v2",
        "A minimal Rust kernel module with a parameter",
    );
    assert_eq!(
        modinfo(&ko, "parm"),
        ["greeting_count:How many times to greet when loaded (0 to 10)"]
    );
    assert_eq!(modinfo(&ko, "parmtype"), ["greeting_count:long"]);
}

#[test]
fn mixed_builds_for_both_arches() {
    for arch in ["x86_64", "arm64"] {
        let tree = dev_tree(arch);
        let (_tmp, dir) = example("mixed");
        build(&dir, &["--arch", arch]);
        let ko = dir.join(format!("target/kmod/{arch}/mixed.ko"));
        check_ko(
            &ko,
            arch,
            &tree,
            "0.2.0",
            "Dual MIT/GPL",
            "Rust and C in one module: Rust calls C through bindgen, C calls back into Rust",
        );
        assert_eq!(modinfo(&ko, "parmtype"), ["seed:u32"]);
    }
}

#[test]
fn pair_consumer_uses_the_provider_export() {
    for arch in ["x86_64", "arm64"] {
        let tree = dev_tree(arch);
        let (_tmp, dir) = example("pair");
        build(&dir, &["--workspace", "--arch", arch]);
        let out = dir.join(format!("target/kmod/{arch}"));
        let provider = out.join("pair_provider.ko");
        let consumer = out.join("pair_consumer.ko");
        check_ko(
            &provider,
            arch,
            &tree,
            "0.1.0",
            "GPL v2",
            "Hands out ids to other modules (exports `pair_provider_next_id`)",
        );
        check_ko(
            &consumer,
            arch,
            &tree,
            "0.1.0",
            "GPL v2",
            "Uses an id from pair_provider, another module of this workspace",
        );
        assert_eq!(modinfo(&consumer, "depends"), ["pair_provider"]);
        let symvers = std::fs::read_to_string(out.join("Module.symvers"))
            .or_else(|_| std::fs::read_to_string(out.join("pair_provider.symvers")))
            .unwrap_or_default();
        assert!(
            symvers.is_empty() || symvers.contains("\tpair_provider_next_id\t"),
            "the provider's Module.symvers does not list its export:\n{symvers}"
        );
    }
}

#[test]
fn miscdev_builds_for_both_arches() {
    for arch in ["x86_64", "arm64"] {
        let tree = dev_tree(arch);
        let (_tmp, dir) = example("miscdev");
        build(&dir, &["--arch", arch]);
        let ko = dir.join(format!("target/kmod/{arch}/miscdev.ko"));
        check_ko(
            &ko,
            arch,
            &tree,
            "0.1.0",
            "GPL v2",
            "A misc character device, /dev/kmod-echo: reads return what was last written",
        );
    }
}
