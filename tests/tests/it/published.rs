//! cargo-kmod as a published crate: `cargo package` makes the `.crate`s of cargo-kmod and of
//! the two crates it depends on and that this workspace publishes beside it
//! (cargo-kmod-templates, which carries the templates and, through kmod-macros' `links`
//! metadata, the kmod-macros sources; kmod-macros, with its lock file), and the binary
//! `cargo install` makes from those packages — not from the repository — creates, builds for
//! arm64 and tests a module in qemu.
//!
//! Nothing is skipped: a missing arm64 dev tree, `tar`, qemu or a crate missing from the
//! registry cache (the install is `--offline`) fails the test with what is missing.

use crate::common::*;

use std::path::{Path, PathBuf};
use std::process::Command;

/// The packages `cargo install cargo-kmod` would get from crates.io that this workspace
/// publishes: cargo-kmod, and its dependencies that are not on crates.io yet.
const PACKAGES: [&str; 3] = ["cargo-kmod", "cargo-kmod-templates", "kmod-macros"];

/// The `.crate` file of package `name` that `cargo package` wrote into `target_dir`
/// (`cargo-kmod-0.1.0.crate`, not `cargo-kmod-templates-0.1.0.crate`).
fn crate_file(target_dir: &Path, name: &str) -> PathBuf {
    std::fs::read_dir(target_dir.join("package"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.extension().is_some_and(|e| e == "crate")
                && p.file_name().is_some_and(|n| {
                    n.to_string_lossy()
                        .strip_prefix(&format!("{name}-"))
                        .is_some_and(|version| version.starts_with(|c: char| c.is_ascii_digit()))
                })
        })
        .unwrap_or_else(|| panic!("cargo package wrote no {name}-*.crate"))
}

/// Where the `.crate`s are unpacked, side by side as in cargo's registry cache: emptied first,
/// but the same path every run. cargo names a path dependency outside the installed
/// package's directory by its absolute path, so in a new scratch dir each run
/// cargo-kmod-templates and kmod-macros, and with them cargo-kmod, would be new units and the
/// kept install target dir would grow each time. Outside the repository, which is a
/// workspace that would claim the packages, and one per checkout.
fn unpack_dir() -> PathBuf {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    root().hash(&mut hasher);
    std::env::temp_dir().join(format!("cargo-kmod-published-{:016x}", hasher.finish()))
}

/// `lock` with the registry `source` and `checksum` lines of the packages `names` dropped:
/// all that patching those packages to path packages may change in it.
fn without_sources(lock: &str, names: &[&str]) -> String {
    lock.split("\n\n")
        .map(|block| {
            if names
                .iter()
                .any(|n| block.contains(&format!("\nname = \"{n}\"\n")))
            {
                block
                    .lines()
                    .filter(|l| !l.starts_with("source = ") && !l.starts_with("checksum = "))
                    .collect::<Vec<_>>()
                    .join("\n")
            } else {
                block.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n\n")
}

#[test]
fn the_packaged_crate_installs_and_works() {
    dev_tree("arm64");
    let d = scratch();
    let target = d.path().join("target");
    // The packages as crates.io would get them (verification is the install below). One
    // `cargo package` of all three, so cargo-kmod's `Cargo.lock` can lock the other two
    // before they are on crates.io.
    let mut package = cargo();
    package.args(["package", "--no-verify", "--allow-dirty", "--offline"]);
    for name in PACKAGES {
        package.args(["-p", name]);
    }
    ok_cmd(package.arg("--target-dir").arg(&target).current_dir(root()));
    let unpacked = unpack_dir();
    if unpacked.exists() {
        std::fs::remove_dir_all(&unpacked).unwrap();
    }
    std::fs::create_dir_all(&unpacked).unwrap();
    let dirs: Vec<PathBuf> = PACKAGES
        .iter()
        .map(|name| {
            let krate = crate_file(&target, name);
            // `-m`: the files get the time of extraction, not the fixed 2006 mtime cargo
            // packages them with, so the kept install target dir sees them as changed and
            // rebuilds them (with the packaged mtimes, a changed source would look older than
            // the last build).
            ok_cmd(
                Command::new("tar")
                    .arg("-xzmf")
                    .arg(&krate)
                    .arg("-C")
                    .arg(&unpacked),
            );
            // `cargo-kmod-0.1.0.crate` unpacks into `cargo-kmod-0.1.0/`.
            unpacked.join(krate.file_stem().unwrap())
        })
        .collect();
    let entries = std::fs::read_dir(&unpacked).unwrap().flatten().count();
    assert_eq!(entries, PACKAGES.len(), "one directory in each .crate");
    let [src, templates, macros] = [&dirs[0], &dirs[1], &dirs[2]];
    // What the binary embeds is in the packages, and no build output rode along.
    for (dir, files) in [
        (src, &["Cargo.toml", "Cargo.lock", "README.md"][..]),
        (
            templates,
            &[
                "Cargo.toml",
                "build.rs",
                "new/lib.rs.j2",
                "kbuild/module.Kbuild",
                "fragments/common.config",
                "devices/cargo_kmod_devices.c",
                "devices/cargo_kmod_usb.c",
            ][..],
        ),
        (
            macros,
            &["Cargo.toml", "build.rs", "Cargo.lock", "src/lib.rs"][..],
        ),
    ] {
        for file in files {
            assert!(
                dir.join(file).is_file(),
                "`{file}` is not in the .crate of `{}`",
                dir.display()
            );
        }
        assert!(!dir.join("target").exists());
    }

    // crates.io as `cargo install` would see it once the three are published: the two
    // dependencies come from their unpacked packages, everything else from the registry
    // cache. `[patch]` turns their lock entries into path entries (no registry source, no
    // checksum) and may change nothing else in the packaged lock, which `--locked` then
    // holds the install to.
    let config = d.path().join("packages.toml");
    let mut patch = String::from("[patch.crates-io]\n");
    for (name, dir) in PACKAGES.iter().zip(&dirs).skip(1) {
        let path = serde_json::to_string(dir.to_str().unwrap()).unwrap();
        patch += &format!("{name} = {{ path = {path} }}\n");
    }
    std::fs::write(&config, patch).unwrap();
    let packaged_lock = std::fs::read_to_string(src.join("Cargo.lock")).unwrap();
    ok_cmd(
        cargo()
            .arg("--config")
            .arg(&config)
            .args(["update", "--offline", "--manifest-path"])
            .arg(src.join("Cargo.toml"))
            .args(["-p", PACKAGES[1], "-p", PACKAGES[2]])
            .current_dir(d.path()),
    );
    let patched_lock = std::fs::read_to_string(src.join("Cargo.lock")).unwrap();
    assert_eq!(
        patched_lock.trim_end(),
        without_sources(&packaged_lock, &PACKAGES[1..]).trim_end(),
        "the patch changed more than the two packages' sources in the packaged lock"
    );

    // Installed from the unpacked crates alone, outside the repository (no workspace, no
    // `.cargo/config.toml` of ours), from the registry cache.
    let install_root = d.path().join("root");
    ok_cmd(
        cargo()
            .arg("--config")
            .arg(&config)
            .args(["install", "--debug", "--locked", "--offline", "--path"])
            .arg(src)
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
