//! Every example under `examples/` builds with `cargo kmod build` for x86_64 and arm64 on the
//! 7.x dev trees, and hello also on a 6.12 tree from the same sources (kmod-macros switches
//! the `module!` dialect). Each `.ko` is checked: ELF machine, and `.modinfo` equal to what
//! its Cargo.toml says.

use crate::common::*;

#[test]
fn hello_builds_for_both_arches() {
    for arch in ["x86_64", "arm64"] {
        let tree = dev_tree(arch);
        let (_tmp, dir) = example("hello");
        kmod_ok(&dir, &["build", "--arch", arch]);
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
            ["greeting_count:How many times to greet when loaded (0 to 10) (i64)"]
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
    kmod_ok(&dir, &["build", "--kdir", tree.to_str().unwrap()]);
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
        ["greeting_count:How many times to greet when loaded (0 to 10) (long)"]
    );
    assert_eq!(modinfo(&ko, "parmtype"), ["greeting_count:long"]);
}

#[test]
fn mixed_builds_for_both_arches() {
    for arch in ["x86_64", "arm64"] {
        let tree = dev_tree(arch);
        let (_tmp, dir) = example("mixed");
        kmod_ok(&dir, &["build", "--arch", arch]);
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
        kmod_ok(&dir, &["build", "--workspace", "--arch", arch]);
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
        let symvers = std::fs::read_to_string(out.join("Module.symvers")).unwrap();
        assert!(
            symvers.lines().any(|l| l.contains("\tpair_provider_next_id\t") && l.contains("EXPORT_SYMBOL_GPL")),
            "`Module.symvers` does not list the provider's export:\n{symvers}"
        );
    }
}

#[test]
fn miscdev_builds_for_both_arches() {
    for arch in ["x86_64", "arm64"] {
        let tree = dev_tree(arch);
        let (_tmp, dir) = example("miscdev");
        kmod_ok(&dir, &["build", "--arch", arch]);
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

/// A license the kernel treats as proprietary stops the build at the `module!` call, with
/// the macro's message, instead of producing a module that cannot use GPL-only symbols.
#[test]
fn a_proprietary_license_is_a_compile_error() {
    let _ = dev_tree("x86_64");
    let (_tmp, dir) = example("hello");
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    std::fs::write(
        dir.join("Cargo.toml"),
        manifest.replace("license = \"GPL-2.0\"", "license = \"MIT OR Apache-2.0\""),
    )
    .unwrap();
    let o = run(kmod(&["build", "--arch", "x86_64"]).current_dir(&dir));
    let err = fails(&o);
    let all = format!("{}{}", stdout(&o), err);
    assert!(
        all.contains("license `MIT OR Apache-2.0` in Cargo.toml is proprietary to the kernel"),
        "{all}"
    );
    assert!(!dir.join("target/kmod/x86_64/hello.ko").exists());
}
