//! Module packages in scratch dirs (copies of the examples and fixtures, packages written
//! by the tests) and the `cargo kmod` commands tests run on them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use super::*;

/// Copy `examples/crates`, `tests/fixtures/crates` or any directory of the repository into a
/// scratch dir, under its own name.
pub fn copy_of(rel: &str) -> (tempfile::TempDir, PathBuf) {
    let tmp = scratch();
    let dir = tmp.path().join(Path::new(rel).file_name().unwrap());
    copy_dir(&root().join(rel), &dir);
    (tmp, dir)
}

/// Copy `examples/<name>` into a scratch dir (tests never write in the repo).
pub fn example(name: &str) -> (tempfile::TempDir, PathBuf) {
    copy_of(&format!("examples/{name}"))
}

/// An example copied into a scratch dir, made a workspace with the board targets.
pub fn board_example(name: &str) -> (tempfile::TempDir, PathBuf) {
    let (tmp, dir) = example(name);
    let manifest = dir.join("Cargo.toml");
    let mut text = std::fs::read_to_string(&manifest).unwrap();
    text.push_str(&format!(
        r#"
[workspace]

[workspace.metadata.kmod.targets.rpi4]
board = "rpi4"

[workspace.metadata.kmod.targets.rpi3]
board = "rpi3"

[workspace.metadata.kmod.targets.rpi4-gcc]
arch = "arm64"
cc = "gcc"
base-config = "{}"
qemu-machine = "raspi4b"
dtb = "broadcom/bcm2711-rpi-4-b.dtb"
"#,
        board_fixture("rpi4-vendor_defconfig").display()
    ));
    std::fs::write(&manifest, text).unwrap();
    (tmp, dir)
}

/// One scratch workspace for every deploy test: `hello` (examples) and `init-error`
/// (fixtures), built once for arm64 by the first deploy and fresh afterwards.
pub fn workspace() -> &'static Path {
    static WS: OnceLock<PathBuf> = OnceLock::new();
    WS.get_or_init(|| {
        let t = shared_scratch();
        copy_dir(&root().join("examples/hello"), &t.join("hello"));
        copy_dir(
            &root().join("tests/fixtures/init-error"),
            &t.join("init-error"),
        );
        std::fs::write(
            t.join("Cargo.toml"),
            "[workspace]\nresolver = \"2\"\nmembers = [\"hello\", \"init-error\"]\n",
        )
        .unwrap();
        t
    })
}

/// A fixture module of `build`: extra `[features]` lines `extra`, and a C object behind
/// feature `extra` (see [`fixture_package`]).
pub const LIB_RS: &str = r#"// SPDX-License-Identifier: GPL-2.0
//! Fixture module.
use kernel::prelude::*;

kmod_macros::module! {
    type: Fixture,
}

struct Fixture;

impl kernel::Module for Fixture {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        #[cfg(feature = "extra")]
        {
            extern "C" {
                fn fixture_extra() -> i32;
            }
            // SAFETY: `fixture_extra` is defined in `src/extra.c` of this module.
            pr_info!("extra: {}\n", unsafe { fixture_extra() });
        }
        pr_info!("fixture loaded\n");
        Ok(Fixture)
    }
}
"#;

/// A module package in a scratch dir: `name`, extra `[package.metadata.kmod]` lines, extra
/// top-level manifest lines, and [`LIB_RS`] as its code.
pub fn fixture_package(dir: &Path, name: &str, kmod: &str, extra: &str) -> PathBuf {
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(
        dir.join("Cargo.toml"),
        format!(
            "[package]\nname = \"{name}\"\nversion = \"0.4.2\"\nedition = \"2021\"\nlicense = \"GPL-2.0\"\nauthors = [\"Fixture <f@example.invalid>\"]\ndescription = \"first description\"\n{extra}\n[package.metadata.kmod]\n{kmod}\n"
        ),
    )
    .unwrap();
    std::fs::write(dir.join("src/lib.rs"), LIB_RS).unwrap();
    dir.join("Cargo.toml")
}

/// The plainest module, whose code differs between debug and `--release` (see [`package`]).
pub const PLAIN_RS: &str = r#"// SPDX-License-Identifier: GPL-2.0
use kernel::prelude::*;

kmod_macros::module! {
    type: M,
}

struct M;

impl kernel::Module for M {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        // Overflow-checked arithmetic: `--release` builds different code.
        let n = core::hint::black_box(41u32);
        pr_info!("loaded {}\n", n + 1);
        Ok(M)
    }
}
"#;

/// A module package `name` in `dir` with [`PLAIN_RS`] as its code and `kmod` as its
/// `[package.metadata.kmod]` lines; returns its manifest.
pub fn package(dir: &Path, name: &str, kmod: &str) -> PathBuf {
    write(
        &dir.join("Cargo.toml"),
        &format!(
            "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\nlicense = \"GPL-2.0\"\n\n[package.metadata.kmod]\n{kmod}\n"
        ),
    );
    write(&dir.join("src/lib.rs"), PLAIN_RS);
    dir.join("Cargo.toml")
}

/// `cargo kmod build --manifest-path MANIFEST --arch x86_64 ARGS`.
pub fn build(manifest: &Path, args: &[&str]) -> Output {
    let m = manifest.to_str().unwrap();
    run(&mut kmod(
        &[
            &["build", "--manifest-path", m, "--arch", "x86_64"][..],
            args,
        ]
        .concat(),
    ))
}

/// `cargo kmod build --message-format json ARGS` in `dir`: the artifact's JSON.
pub fn build_artifact(dir: &Path, args: &[&str]) -> serde_json::Value {
    let o = run(kmod(&["build", "--message-format", "json"])
        .args(args)
        .current_dir(dir));
    ok(&o);
    stdout(&o)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["reason"] == "kmod-artifact")
        .expect("an artifact line")
}

#[track_caller]
pub fn assert_fresh(o: &Output) {
    ok(o);
    assert!(
        stderr(o).contains("Fresh"),
        "expected Fresh:\n{}",
        stderr(o)
    );
}

#[track_caller]
pub fn assert_rebuilt(o: &Output, why: &str) {
    ok(o);
    assert!(
        !stderr(o).contains("Fresh") && stderr(o).contains("Compiling"),
        "expected a rebuild after {why}:\n{}",
        stderr(o)
    );
}

/// Run `cargo-kmod kmod ARGS` in `dir`, asserting success; returns stderr.
#[track_caller]
pub fn kmod_ok(dir: &Path, args: &[&str]) -> String {
    let o = run(kmod(args).current_dir(dir));
    ok(&o);
    stderr(&o)
}

/// `cargo kmod test ARGS` in `dir` passes; returns stdout.
pub fn test_passes(dir: &Path, args: &[&str]) -> String {
    let o = run(kmod(&["test"]).args(args).current_dir(dir));
    ok(&o);
    let out = stdout(&o);
    assert!(out.contains("test result: ok"), "{out}\n{}", stderr(&o));
    out
}

/// `cargo kmod test` of the package at `manifest` on `arch`: builds, boots, loads, unloads.
pub fn test_loads(manifest: &Path, arch: &str) -> Output {
    run(&mut kmod(&[
        "test",
        "--manifest-path",
        manifest.to_str().unwrap(),
        "--arch",
        arch,
    ]))
}

/// `cargo kmod ARGS --manifest-path PKG/Cargo.toml` under TCG, built into
/// `target/kmod-fixtures/<target>`, outside the repository's examples.
pub fn kmod_manifest(pkg: &Path, target: &str, args: &[&str]) -> Output {
    let manifest = pkg.join("Cargo.toml");
    let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    all.push("--manifest-path".into());
    all.push(manifest.display().to_string());
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    run(kmod(&all)
        .env(
            "CARGO_TARGET_DIR",
            root().join("target/kmod-fixtures").join(target),
        )
        .env("CARGO_KMOD_ACCEL", "tcg"))
}

/// `cargo kmod ARGS` on an example's manifest (the qemu tests' target dir).
pub fn kmod_example(name: &str, args: &[&str]) -> Output {
    kmod_manifest(&root().join("examples").join(name), "examples-target", args)
}

/// `cargo kmod ARGS` on the package `pkg` (the device tests' target dir).
pub fn devices_kmod(pkg: &Path, args: &[&str]) -> Output {
    kmod_manifest(pkg, "devices-target", args)
}

/// `cargo kmod ARGS` on an example's manifest (the device tests' target dir).
pub fn devices_example(name: &str, args: &[&str]) -> Output {
    devices_kmod(&root().join("examples").join(name), args)
}

/// A file of `tests/fixtures/devices`.
pub fn device_fixture(name: &str) -> PathBuf {
    root().join("tests/fixtures/devices").join(name)
}

/// `cargo kmod new ARGS` in `dir`, with a fixed author.
pub fn new_in(dir: &Path, args: &[&str]) -> Command {
    let mut c = kmod(&["new"]);
    c.args(args)
        .current_dir(dir)
        .env("CARGO_NAME", "Test Author")
        .env("CARGO_EMAIL", "test@example.com");
    c
}

/// `cargo kmod package ARGS`.
pub fn kmod_package(args: &[&str]) -> Output {
    run(&mut kmod(&[&["package"], args].concat()))
}

/// Package and return the single produced file in `out`.
pub fn package_into(out: &Path, args: &[&str]) -> PathBuf {
    let o = kmod_package(&[&["--out-dir", s(out)], args].concat());
    ok(&o);
    let mut files: Vec<_> = std::fs::read_dir(out)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| !p.to_string_lossy().ends_with(".manifest.json"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 1, "{files:?}");
    files.remove(0)
}

/// Where `cargo install` builds: beside the workspace's own target dir and kept across runs,
/// so a rerun compiles only cargo-kmod itself (its registry dependencies are the same
/// packages whatever directory the `.crate` was unpacked in, and a package outside any
/// workspace is hashed by its path relative to itself).
pub fn install_target_dir() -> PathBuf {
    target_dir().join("published-install")
}

/// Run `cargo-kmod kmod ARGS` in the package or workspace `dir`, whose own `target/` holds
/// what it writes (whatever `CARGO_TARGET_DIR` the tests run under).
pub fn kmod_at(dir: &Path, args: &[&str]) -> Output {
    run(kmod(args).current_dir(dir).env_remove("CARGO_TARGET_DIR"))
}

/// The JSON objects of a `--message-format json` run's stdout, each line parsed.
#[track_caller]
pub fn json_lines(o: &Output) -> Vec<serde_json::Value> {
    stdout(o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// [`LIB_RS`] with a type error in `init`: the source and the error's line (1-based).
pub fn lib_rs_with_type_error() -> (String, usize) {
    let mut lines: Vec<&str> = LIB_RS.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.contains("fn init("))
        .expect("LIB_RS has an init")
        + 1;
    lines.insert(at, "        let _broken: u32 = \"not a number\";");
    (lines.join("\n") + "\n", at + 1)
}

/// Every `.ko` under `dir`.
pub fn kos_under(dir: &Path) -> Vec<PathBuf> {
    walk(dir)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "ko"))
        .collect()
}

/// A scratch workspace of copies of `packages` (directories of the repository, each under
/// its own name) with `extra` appended to its `Cargo.toml` (a matrix, targets), inside a git
/// repository (`ci` finds its root there). Returns the scratch dir and the workspace.
pub fn matrix_ws(packages: &[&str], extra: &str) -> (tempfile::TempDir, PathBuf) {
    let tmp = scratch();
    let ws = tmp.path().join("ws");
    let mut members = Vec::new();
    for p in packages {
        let name = Path::new(p).file_name().unwrap().to_str().unwrap();
        copy_dir(&root().join(p), &ws.join(name));
        let _ = std::fs::remove_dir_all(ws.join(name).join("target"));
        members.push(format!("{name:?}"));
    }
    std::fs::write(
        ws.join("Cargo.toml"),
        format!(
            "[workspace]\nresolver = \"2\"\nmembers = [{}]\n{extra}",
            members.join(", ")
        ),
    )
    .unwrap();
    std::fs::create_dir_all(tmp.path().join(".git")).unwrap();
    (tmp, ws)
}

/// A directory with a `cargo` that runs this build's cargo-kmod for `cargo kmod ...` (and
/// the real cargo otherwise): prepended to `PATH`, a CI job's own command lines run here.
pub fn cargo_shim(dir: &Path) -> PathBuf {
    let shim = dir.join("shim");
    std::fs::create_dir_all(&shim).unwrap();
    let real = String::from_utf8(
        Command::new("sh")
            .args(["-c", "command -v cargo"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .to_string();
    let script = format!(
        "#!/bin/sh\nif [ \"$1\" = kmod ]; then exec '{}' \"$@\"; fi\nexec '{}' \"$@\"\n",
        bin().display(),
        real
    );
    let path = shim.join("cargo");
    std::fs::write(&path, script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    shim
}
