//! cargo-kmod as a published crate: `cargo package -p cargo-kmod` produces a `.crate` that
//! carries everything the binary embeds (`templates/`, the kmod-macros sources and their lock
//! file under `macros/`), and the binary `cargo install` makes from that `.crate` — not from
//! the repository — creates, builds for arm64 and tests a module in qemu.
//!
//! Nothing is skipped: a missing arm64 dev tree, `tar`, qemu or a crate missing from the
//! registry cache (the install is `--offline`) fails the test with what is missing.

mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// Run `cmd`, naming the program when it cannot start, and assert success.
#[track_caller]
fn ok_cmd(cmd: &mut Command) -> Output {
    let o = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run `{}`: {e}", cmd.get_program().display()));
    ok(&o);
    o
}

/// The `.crate` file `cargo package` wrote into `target_dir`.
fn crate_file(target_dir: &Path) -> PathBuf {
    std::fs::read_dir(target_dir.join("package"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("cargo-kmod-"))
                && p.extension().is_some_and(|e| e == "crate")
        })
        .expect("cargo package wrote no cargo-kmod-*.crate")
}

/// Where `cargo install` builds: beside the workspace's own target dir and kept across runs,
/// so a rerun compiles only cargo-kmod itself (its registry dependencies are the same
/// packages whatever directory the `.crate` was unpacked in, and a package outside any
/// workspace is hashed by its path relative to itself).
fn install_target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
        .join("published-install")
}

#[test]
fn the_packaged_crate_installs_and_works() {
    dev_tree("arm64");
    let d = scratch();
    let target = d.path().join("target");
    // The package as crates.io would get it (verification is the install below).
    ok_cmd(
        cargo()
            .args([
                "package",
                "-p",
                "cargo-kmod",
                "--no-verify",
                "--allow-dirty",
                "--offline",
            ])
            .arg("--target-dir")
            .arg(&target)
            .current_dir(root()),
    );
    let krate = crate_file(&target);
    let unpacked = d.path().join("unpacked");
    std::fs::create_dir_all(&unpacked).unwrap();
    // `-m`: the files get the time of extraction, not the fixed 2006 mtime cargo packages
    // them with, so the kept install target dir sees them as changed and rebuilds cargo-kmod
    // (with the packaged mtimes, a changed source would look older than the last build).
    ok_cmd(
        Command::new("tar")
            .arg("-xzmf")
            .arg(&krate)
            .arg("-C")
            .arg(&unpacked),
    );
    let entries: Vec<PathBuf> = std::fs::read_dir(&unpacked)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(entries.len(), 1, "one directory in the .crate: {entries:?}");
    let src = entries[0].clone();
    // What the binary embeds is in the package, and no build output rode along.
    for file in [
        "Cargo.toml",
        "Cargo.lock",
        "README.md",
        "macros/Cargo.lock",
        "macros/src/lib.rs",
        "templates/new/lib.rs.j2",
        "templates/kbuild/module.Kbuild",
        "templates/fragments/common.config",
        "templates/devices/cargo_kmod_devices.c",
    ] {
        assert!(src.join(file).is_file(), "`{file}` is not in the .crate");
    }
    assert!(!src.join("target").exists());

    // Installed from the unpacked crate alone, outside the repository (no workspace, no
    // `.cargo/config.toml` of ours), from the registry cache.
    let install_root = d.path().join("root");
    ok_cmd(
        cargo()
            .args(["install", "--debug", "--locked", "--offline", "--path"])
            .arg(&src)
            .arg("--root")
            .arg(&install_root)
            .arg("--target-dir")
            .arg(install_target_dir())
            .env_remove("CARGO_TARGET_DIR")
            .current_dir(d.path()),
    );
    let bin = install_root.join("bin/cargo-kmod");
    assert!(bin.is_file(), "no `{}`", bin.display());

    // A new user's first steps with the installed binary.
    let work = d.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let kmod = |dir: &Path, args: &[&str]| {
        let mut c = Command::new(&bin);
        c.arg("kmod").args(args).current_dir(dir);
        c.env_remove("CARGO_TARGET_DIR");
        ok_cmd(&mut c)
    };
    kmod(&work, &["new", "blink"]);
    let blink = work.join("blink");
    let o = kmod(&blink, &["build", "--arch", "arm64"]);
    let ko = blink.join("target/kmod/arm64/blink.ko");
    assert!(
        ko.is_file(),
        "no `{}` after the build\n{}",
        ko.display(),
        stderr(&o)
    );
    let o = kmod(&blink, &["test", "--arch", "arm64"]);
    assert!(
        stdout(&o).contains("test result: ok"),
        "{}\n{}",
        stdout(&o),
        stderr(&o)
    );
}
