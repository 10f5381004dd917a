//! Board kernels (docs/boards.md) on real trees and qemu's board models:
//!
//! - the `rpi4` preset tree (`cargo kmod init --board rpi4`): hello and a driver build, and
//!   `cargo kmod test --target rpi4` passes under `-M raspi4b`; a platform driver binds to the
//!   I2C controllers the board's DTB describes, under `raspi4b` and `raspi3b` (`rpi3`: same
//!   tree, other DTB);
//! - a GCC-cross-built tree from a vendor-style board configuration (`--cc gcc
//!   --base-config`): the examples, bindings included, build and load;
//! - the kit (`cargo kmod kit`): a module built against the exported headers, with the build
//!   tree out of reach, verifies against them and loads on the board kernel; the same
//!   headers without their Rust artifacts get doctor's list;
//! - a board configuration that blocks Rust gets the blocker named, before any build.
//!
//! The two board trees are built by the tests themselves when missing (`init` is a no-op
//! when they are prepared): about 5 minutes each on 2 cores.

use crate::common::*;

use std::path::{Path, PathBuf};

#[test]
fn rpi4_preset_tree_builds_hello_and_a_driver_and_tests_them_under_raspi4b() {
    let _g = serial();
    let tree = rpi4_tree();
    assert!(tree
        .join("arch/arm64/boot/dts/broadcom/bcm2711-rpi-4-b.dtb")
        .is_file());
    assert!(tree
        .join("arch/arm64/boot/dts/broadcom/bcm2837-rpi-3-b.dtb")
        .is_file());
    let config = std::fs::read_to_string(tree.join(".config")).unwrap();
    for line in [
        "CONFIG_ARCH_BCM2835=y",
        "CONFIG_RUST=y",
        "CONFIG_CC_IS_CLANG=y",
    ] {
        assert!(config.lines().any(|l| l == line), "{line}");
    }
    // rpi3 is the same kernel with another DTB: its init is a no-op on this tree.
    assert_eq!(init(&["--board", "rpi3"]), tree);
    // `--arch arm64` never picks a board tree as the dev tree.
    assert_ne!(dev_tree("arm64"), tree);

    for name in ["hello", "miscdev"] {
        let (_tmp, dir) = board_example(name);
        let a = build_artifact(&dir, &["--target", "rpi4"]);
        assert_eq!(a["kernel_release"], release(&tree).as_str());
        assert_eq!(elf_machine(Path::new(a["path"].as_str().unwrap())), 183);
        let out = test_passes(&dir, &["--target", "rpi4"]);
        assert!(out.contains("running"), "{out}");
    }
    // A board's kernel is tested as it is: the run names the debug kernel's checks it lacks,
    // and the leak scan, which needs kmemleak, is refused before anything boots.
    let (_tmp, dir) = board_example("hello");
    let o = run(kmod(&["test", "--target", "rpi4"]).current_dir(&dir));
    ok(&o);
    let err = stderr(&o);
    assert!(
        err.contains("kernel does not check for ")
            && err.contains("timers left armed at unload (CONFIG_DEBUG_OBJECTS_TIMERS)")
            && err.contains("locking errors (lockdep) (CONFIG_PROVE_LOCKING)"),
        "{err}"
    );
    let o = run(kmod(&["test", "--target", "rpi4", "--sanitize"]).current_dir(&dir));
    let err = fails(&o);
    assert!(
        err.contains("`--sanitize` needs kmemleak, and the arm64 ")
            && err.contains("kernel has no `CONFIG_DEBUG_KMEMLEAK`"),
        "{err}"
    );
    assert!(!stdout(&o).contains("running"), "{}", stdout(&o));
    // A driver for a peripheral the board's DTB describes binds to it, on both models, and
    // reads the register reset value of qemu's model of it.
    let tmp = scratch();
    let dir = tmp.path().join("bcm-i2c-probe");
    copy_dir(&board_fixture("bcm-i2c-probe"), &dir);
    for target in ["rpi4", "rpi3"] {
        let out = test_passes(&dir, &["--target", target]);
        assert!(
            out.contains("binds_to_the_dtb_controllers_and_reads_their_registers ... ok"),
            "{out}"
        );
    }
}

#[test]
fn gcc_cross_built_board_config_tree_builds_and_loads_the_examples() {
    let _g = serial();
    let tree = gcc_tree();
    let config = std::fs::read_to_string(tree.join(".config")).unwrap();
    for line in [
        "CONFIG_CC_IS_GCC=y",
        "CONFIG_RUST=y",
        "CONFIG_MODVERSIONS=y",
        "CONFIG_GENDWARFKSYMS=y",
        "CONFIG_KUNIT=y",
        "CONFIG_ARCH_BCM2835=y",
    ] {
        assert!(config.lines().any(|l| l == line), "{line}");
    }
    // The board's own choices stand: no module signing was added.
    assert!(!config.lines().any(|l| l == "CONFIG_MODULE_SIG=y"));
    assert!(release(&tree).ends_with("-v8"), "{}", release(&tree));
    for name in ["hello", "mixed", "miscdev"] {
        let (_tmp, dir) = board_example(name);
        let a = build_artifact(&dir, &["--target", "rpi4-gcc"]);
        assert_eq!(a["kernel_release"], release(&tree).as_str());
        test_passes(&dir, &["--target", "rpi4-gcc"]);
    }
}

#[test]
fn kit_headers_build_a_module_that_verifies_and_loads_on_the_board_and_doctor_names_what_headers_lack(
) {
    let _g = serial();
    let tree = rpi4_tree();
    let rel = release(&tree);
    let (tmp, dir) = board_example("hello");
    let kit = tmp.path().join("kit");
    let o = run(kmod(&[
        "kit",
        "--target",
        "rpi4",
        "--message-format",
        "json",
        "--dir",
    ])
    .arg(&kit)
    .current_dir(&dir));
    ok(&o);
    let k: serde_json::Value = stdout(&o)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .find(|v: &serde_json::Value| v["reason"] == "kit")
        .unwrap();
    assert!(kit.join(format!("boot/vmlinuz-{rel}")).is_file());
    assert!(kit
        .join(format!("boot/dtbs/{rel}/broadcom/bcm2711-rpi-4-b.dtb"))
        .is_file());
    let modlib = kit.join(format!("lib/modules/{rel}"));
    assert!(modlib.join("modules.dep").is_file());
    assert_eq!(
        std::fs::read_link(modlib.join("build")).unwrap(),
        PathBuf::from(format!("/usr/src/linux-headers-{rel}"))
    );
    // The in-tree Rust sample, installed and signed the way `modules_install` does.
    let sample = modlib.join("kernel/samples/rust/rust_minimal.ko");
    let o = run(kmod(&["info", "--message-format", "json"]).arg(&sample));
    ok(&o);
    let info: serde_json::Value = serde_json::from_str(stdout(&o).lines().next().unwrap()).unwrap();
    assert!(info["signature"]["signer"].is_string(), "{info}");

    // The .deb is a well-formed Debian package with the Rust artifacts.
    let deb = PathBuf::from(k["headers_deb"].as_str().unwrap());
    let o = std::process::Command::new("dpkg-deb")
        .arg("-c")
        .arg(&deb)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let listing = stdout(&o);
    for p in [
        format!("usr/src/linux-headers-{rel}/rust/libkernel.rmeta"),
        format!("usr/src/linux-headers-{rel}/rust/libmacros.so"),
        format!("usr/src/linux-headers-{rel}/Module.symvers"),
        format!("lib/modules/{rel}/build -> /usr/src/linux-headers-{rel}"),
    ] {
        assert!(listing.contains(&p), "{p} not in\n{listing}");
    }

    // Unpack the headers elsewhere and build with the tree out of reach: renamed away, and a
    // private CARGO_KMOD_HOME without any tree.
    let unpacked = tmp.path().join("unpacked");
    std::fs::create_dir_all(&unpacked).unwrap();
    let st = std::process::Command::new("tar")
        .arg("-xf")
        .arg(k["headers_tar"].as_str().unwrap())
        .arg("-C")
        .arg(&unpacked)
        .status()
        .unwrap();
    assert!(st.success());
    let headers = unpacked.join(format!("linux-headers-{rel}"));
    let home = tmp.path().join("home");
    let ko = {
        let _hidden = Hidden::new(&tree);
        let o = run(kmod(&[
            "build",
            "--message-format",
            "json",
            "--arch",
            "arm64",
            "--kdir",
        ])
        .arg(&headers)
        .env("CARGO_KMOD_HOME", &home)
        .current_dir(&dir));
        ok(&o);
        let a: serde_json::Value = stdout(&o)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .find(|v: &serde_json::Value| v["reason"] == "kmod-artifact")
            .unwrap();
        assert_eq!(a["kernel_release"], rel.as_str());
        let ko = PathBuf::from(a["path"].as_str().unwrap());
        let o = run(kmod(&["verify", "--kdir"])
            .arg(&headers)
            .arg(&ko)
            .env("CARGO_KMOD_HOME", &home)
            .current_dir(&dir));
        ok(&o);
        // Doctor finds nothing missing in the kit's headers...
        let o = run(kmod(&["doctor", "--kdir"])
            .arg(&headers)
            .env("CARGO_KMOD_HOME", &home));
        let out = stdout(&o);
        for check in [
            "rust metadata",
            "host programs",
            "Module.symvers",
            "rustc match",
        ] {
            let line = out
                .lines()
                .find(|l| l.contains(check))
                .unwrap_or_else(|| panic!("no {check} line in\n{out}"));
            assert!(line.starts_with("ok"), "{line}");
        }
        // ...and lists what a headers package without the Rust artifacts lacks.
        // (`cp -a`: the kernel's own headers selection has symlinks, one of them dangling.)
        let bare = tmp.path().join("bare");
        let st = std::process::Command::new("cp")
            .arg("-a")
            .arg(&headers)
            .arg(&bare)
            .status()
            .unwrap();
        assert!(st.success());
        for e in std::fs::read_dir(bare.join("rust")).unwrap().flatten() {
            std::fs::remove_file(e.path()).unwrap();
        }
        std::fs::remove_file(bare.join("scripts/mod/modpost")).unwrap();
        let o = run(kmod(&["doctor", "--kdir"])
            .arg(&bare)
            .env("CARGO_KMOD_HOME", &home));
        let err = fails(&o);
        let out = stdout(&o);
        let line = |name: &str| {
            out.lines()
                .find(|l| l.contains(&format!("{name} [")))
                .unwrap_or_else(|| panic!("no {name} line in\n{out}\n{err}"))
                .to_string()
        };
        let rust = line("rust metadata");
        assert!(rust.starts_with("FAIL"), "{rust}");
        for f in [
            "`rust/libcore.rmeta`",
            "`rust/libkernel.rmeta`",
            "`rust/libmacros.so`",
            "`rust/libpin_init.rmeta`",
            "cargo kmod kit",
        ] {
            assert!(rust.contains(f), "{f} not in {rust}");
        }
        let hp = line("host programs");
        assert!(
            hp.starts_with("FAIL") && hp.contains("`scripts/mod/modpost`"),
            "{hp}"
        );
        // The build refuses such a tree up front.
        let o = run(kmod(&["build", "--arch", "arm64", "--kdir"])
            .arg(&bare)
            .env("CARGO_KMOD_HOME", &home)
            .current_dir(&dir));
        assert!(fails(&o).contains("rust/libkernel.rmeta"));
        ko
    };
    // Back with the tree: the module built against the kit loads on the board kernel.
    let o = run(kmod(&["test", "--target", "rpi4", "--ko"])
        .arg(&ko)
        .current_dir(&dir));
    ok(&o);
}

#[test]
fn a_board_config_that_blocks_rust_gets_the_blocker_named_before_any_build() {
    let cfg = board_fixture("randstruct.config");
    let home = scratch();
    // A private home shows that nothing is left behind; it borrows the shared home's
    // unpacked sources and rust-src (read only) instead of unpacking them again.
    let shared = real_home();
    for d in ["sources", "rust-src"] {
        std::os::unix::fs::symlink(shared.join(d), home.path().join(d)).unwrap();
    }
    let o = run(kmod(&["init", "--base-config"])
        .arg(&cfg)
        .env("CARGO_KMOD_HOME", home.path()));
    let err = fails(&o);
    assert!(
        err.contains("`CONFIG_RUST=y` did not take effect")
            && err.contains("blocked by !RANDSTRUCT")
            && err.contains("add `CONFIG_RANDSTRUCT_NONE=y` to a `--config` fragment"),
        "{err}"
    );
    assert!(!err.contains("Building"), "{err}");
    // No tree directory is left (the lock file stays, like cargo's).
    let trees: Vec<_> = std::fs::read_dir(home.path().join("trees"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_none_or(|x| x != "lock"))
        .collect();
    assert!(trees.is_empty(), "{trees:?}");
}

#[test]
fn unknown_boards_and_unprepared_targets_say_what_to_run() {
    let o = run(&mut kmod(&["init", "--board", "rpi5"]));
    let err = fails(&o);
    assert!(err.contains("unknown board `rpi5`"), "{err}");
    assert!(err.contains("rpi3, rpi4"), "{err}");
    let (_tmp, dir) = board_example("hello");
    let manifest = dir.join("Cargo.toml");
    let mut text = std::fs::read_to_string(&manifest).unwrap();
    text.push_str(
        "\n[workspace.metadata.kmod.targets.old]\nboard = \"rpi4\"\nsource = \"/usr/src/linux-source-6.12.tar.xz\"\n",
    );
    std::fs::write(&manifest, text).unwrap();
    let o = run(kmod(&["build", "--target", "old"]).current_dir(&dir));
    let err = fails(&o);
    assert!(
        err.contains("the kernel tree of target `old` (arm64 (rpi4)) is not prepared"),
        "{err}"
    );
    assert!(err.contains("run `cargo kmod init --target old`"), "{err}");
}

/// `init --target NAME` takes its tree from the target's keys alone: flags that would make
/// another tree are refused, naming both.
#[test]
fn init_target_refuses_flags_that_would_make_another_tree() {
    for flag in [
        &["--cc", "gcc"][..],
        &["--arch", "arm64"],
        &["--source", "/usr/src/x.tar.xz"],
        &["--config", "extra.config"],
    ] {
        let o = run(&mut kmod(
            &[&["init", "--target", "rpi4"][..], flag].concat(),
        ));
        let err = fails(&o);
        assert!(
            err.contains("the argument '--target <NAME>' cannot be used with")
                && err.contains(flag[0]),
            "{err}"
        );
    }
}
