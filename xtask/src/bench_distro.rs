//! `cargo xtask bench distro`: a distribution kernel's costs against what a user would do
//! otherwise, measured in the same run (docs/distro.md):
//!
//! - completing Debian's `7.2.13+deb14-amd64` headers with `rust/` (packages and toolchain
//!   already downloaded: the `rust/` part only) against preparing a tinyconfig dev tree of
//!   the same source (`cargo kmod init --arch x86_64`), each in a scratch
//!   `CARGO_KMOD_HOME` (goal: at most 1.0x);
//! - a warm `init` of the completed kernel (goal: under a second);
//! - `cargo kmod test --ko` of hello on Debian's own kernel image against a hand-made qemu
//!   boot of the same image and a `cpio` initramfs that loads and unloads it (goal: at most
//!   1.0x).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Result};

use crate::bench_test::{check, median, plain_initramfs, root, time};
use crate::kmod_home;

const KERNEL: &str = "debian:7.2.13+deb14-amd64";
const RUNS: usize = 5;

/// A scratch home that shares `shared` with the real one.
fn scratch_home(shared: &[&str]) -> Result<tempfile::TempDir> {
    let t = tempfile::tempdir()?;
    let real = kmod_home().root;
    for d in shared {
        let to = t.path().join(d);
        std::fs::create_dir_all(to.parent().unwrap())?;
        std::os::unix::fs::symlink(real.join(d), to)?;
    }
    Ok(t)
}

pub fn run() -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    check(
        Command::new(&cargo)
            .args(["build", "-q", "--release", "-p", "cargo-kmod"])
            .current_dir(root()),
    )?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"));
    let bin = target.join("release/cargo-kmod");
    let kmod = |home: &Path, args: &[&str]| {
        let mut c = Command::new(&bin);
        c.arg("kmod").args(args).env("CARGO_KMOD_HOME", home);
        c
    };
    // Everything downloaded and the toolchain assembled: the real home's completion.
    let real = kmod_home().root;
    check(&mut kmod(&real, &["init", "-q", "--distro-kernel", KERNEL]))?;

    // 1. The completion (`rust/` only) against a tinyconfig dev tree, same machine, same run.
    let home = scratch_home(&[
        "sources",
        "bindgen",
        "distro/debian/apt",
        "distro/debian/packages",
        "distro/debian/toolchains",
    ])?;
    let completion = time(&mut kmod(
        home.path(),
        &["init", "-q", "--distro-kernel", KERNEL],
    ))?;
    let home = scratch_home(&["sources", "rust-src", "busybox"])?;
    let dev = time(&mut kmod(home.path(), &["init", "-q", "--arch", "x86_64"]))?;
    drop(home);
    let r = completion.as_secs_f64() / dev.as_secs_f64();
    println!(
        "completion: {KERNEL} headers completed with rust/ {:.0}s | tinyconfig dev tree {:.0}s = {r:.2}x ({})   [goal <= 1.0x]",
        completion.as_secs_f64(),
        dev.as_secs_f64(),
        if r <= 1.0 { "ok" } else { "OVER" }
    );

    // 2. A warm `init`.
    let warm: Vec<Duration> = (0..RUNS)
        .map(|_| time(&mut kmod(&real, &["init", "-q", "--distro-kernel", KERNEL])))
        .collect::<Result<_>>()?;
    let w = median(warm);
    println!(
        "warm init: {:.3}s ({})   [goal < 1s, median of {RUNS}]",
        w.as_secs_f64(),
        if w < Duration::from_secs(1) {
            "ok"
        } else {
            "OVER"
        }
    );

    // 3. A qemu cycle on Debian's kernel image: cargo kmod test --ko against a plain boot.
    let work = tempfile::tempdir()?;
    let pkg = work.path().join("hello");
    check(
        Command::new("cp")
            .arg("-r")
            .arg(root().join("examples/hello"))
            .arg(&pkg),
    )?;
    let manifest = pkg.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest)?;
    std::fs::write(
        &manifest,
        format!("{text}\n[workspace]\n\n[workspace.metadata.kmod.targets.sid]\ndistro-kernel = \"{KERNEL}\"\n"),
    )?;
    check(kmod(&real, &["build", "-q", "--target", "sid"]).current_dir(&pkg))?;
    let ko = pkg.join("target/kmod/x86_64/hello.ko");
    if !ko.is_file() {
        bail!("`{}` was not built", ko.display());
    }
    let out = Command::new(&bin)
        .args([
            "kmod",
            "init",
            "--message-format",
            "json",
            "--distro-kernel",
            KERNEL,
        ])
        .output()?;
    let line = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["reason"] == "kernel-tree")
        .ok_or_else(|| anyhow::anyhow!("no kernel-tree line"))?;
    let image =
        PathBuf::from(line["path"].as_str().unwrap_or_default()).join("arch/x86/boot/bzImage");
    let initrd = plain_initramfs(&kmod_home().busybox("x86_64"), &ko, work.path())?;
    let plain = || {
        let mut c = Command::new("qemu-system-x86_64");
        c.args([
            "-M",
            "pc",
            "-m",
            "1024",
            "-nographic",
            "-no-reboot",
            "-kernel",
        ])
        .arg(&image)
        .arg("-initrd")
        .arg(&initrd)
        .arg("-append")
        .arg("console=ttyS0 panic=-1");
        c
    };
    let ours = || {
        let mut c = kmod(&real, &["test", "-q", "--target", "sid", "--ko"]);
        c.arg(&ko).current_dir(&pkg).env("CARGO_KMOD_ACCEL", "tcg");
        c
    };
    let (mut p, mut k) = (Vec::new(), Vec::new());
    for run in 0..RUNS {
        if run % 2 == 0 {
            p.push(time(&mut plain())?);
            k.push(time(&mut ours())?);
        } else {
            k.push(time(&mut ours())?);
            p.push(time(&mut plain())?);
        }
    }
    let (p, k) = (median(p), median(k));
    let r = k.as_secs_f64() / p.as_secs_f64();
    println!(
        "qemu cycle on Debian's kernel: plain qemu boot {:.2}s | cargo kmod test --ko {:.2}s = {r:.2}x ({})   [goal <= 1.0x, medians of {RUNS}]",
        p.as_secs_f64(),
        k.as_secs_f64(),
        if r <= 1.0 { "ok" } else { "OVER" }
    );
    Ok(())
}
