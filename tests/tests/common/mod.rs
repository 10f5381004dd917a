//! Shared helpers: the real `cargo-kmod` binary, the prepared dev trees, scratch dirs.
//!
//! Tests that need a kernel tree find it the way users do (`cargo kmod init --list`) and
//! fail loudly when it is missing; they never pass silently.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The `cargo-kmod` binary, built once per test process.
pub fn bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args([
                "build",
                "--quiet",
                "-p",
                "cargo-kmod",
                "--bin",
                "cargo-kmod",
            ])
            .current_dir(root())
            .status()
            .expect("cannot run cargo");
        assert!(status.success(), "building cargo-kmod failed");
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root().join("target"));
        target.join("debug/cargo-kmod")
    })
    .clone()
}

/// `cargo-kmod kmod ARGS...` as a Command (not yet run).
pub fn kmod(args: &[&str]) -> Command {
    let mut c = Command::new(bin());
    c.arg("kmod").args(args);
    c
}

/// Run and return the output; the caller asserts on it.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("cannot run cargo-kmod")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Assert success, printing both streams when it fails.
#[track_caller]
pub fn ok(o: &Output) {
    assert!(
        o.status.success(),
        "command failed ({})\n--- stdout\n{}\n--- stderr\n{}",
        o.status,
        stdout(o),
        stderr(o)
    );
}

/// Assert failure, returning stderr for message checks.
#[track_caller]
pub fn fails(o: &Output) -> String {
    assert!(
        !o.status.success(),
        "command unexpectedly succeeded\n--- stdout\n{}\n--- stderr\n{}",
        stdout(o),
        stderr(o)
    );
    stderr(o)
}

/// The prepared dev trees, from `cargo kmod init --list --message-format json`.
pub fn trees() -> Vec<serde_json::Value> {
    let o = run(&mut kmod(&["init", "--list", "--message-format", "json"]));
    ok(&o);
    stdout(&o)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The newest 7.x dev tree for `arch`. Panics with the fix when there is none: a test that
/// needs a kernel never passes without one.
pub fn dev_tree(arch: &str) -> PathBuf {
    tree_where(arch, |release| !release.starts_with("6."))
}

/// A 6.12 dev tree for `arch` (prepared with `--source /usr/src/linux-source-6.12.tar.xz`).
pub fn tree_612(arch: &str) -> PathBuf {
    tree_where(arch, |release| release.starts_with("6.12"))
}

fn tree_where(arch: &str, pick: impl Fn(&str) -> bool) -> PathBuf {
    let found = trees()
        .into_iter()
        .find(|t| t["arch"] == arch && t["release"].as_str().is_some_and(&pick));
    match found {
        Some(t) => PathBuf::from(t["path"].as_str().unwrap()),
        None => panic!(
            "no prepared {arch} kernel tree for this test (CI={}): run `cargo xtask setup` \
             (or `cargo kmod init --arch {arch}`) first",
            std::env::var("CI").unwrap_or_default()
        ),
    }
}

/// The `CARGO_KMOD_HOME` the tests share (the prepared trees, busybox, rust-src).
pub fn real_home() -> PathBuf {
    std::env::var_os("CARGO_KMOD_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cargo-kmod"))
}

/// A scratch directory, removed when the test ends.
pub fn scratch() -> tempfile::TempDir {
    let t = tempfile::Builder::new()
        .prefix("kmod-it-")
        .tempdir()
        .unwrap();
    t
}

/// Copy a directory tree (examples into scratch dirs, so tests never write in the repo).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let p = e.path();
        let name = e.file_name();
        if name == "target" {
            continue;
        }
        if p.is_dir() {
            copy_dir(&p, &to.join(&name));
        } else {
            std::fs::copy(&p, to.join(&name)).unwrap();
        }
    }
}
