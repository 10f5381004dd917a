//! Repository tasks, run as `cargo xtask <task>`:
//!
//! - `setup`: install everything a fresh Debian 12 machine needs (Debian packages, Debian's
//!   `rust-src` of exactly the installed rustc, a `linux-source-7.x` and `linux-source-6.12`,
//!   static busybox for each guest arch, bindgen-cli, cargo-kmod itself), prepare the dev
//!   kernel trees, then build the hello example and load it in qemu on both arches.
//!   Idempotent: a second run only checks.
//! - `test`: formatting, clippy and every test; it installs nothing (a test that needs a
//!   tree, qemu or a tool that `setup` did not provide fails and says so).
//! - `bench build|test|deploy`: the benchmarks, with ratios against the plain kernel tools
//!   (`deploy`: against `scp` + `ssh rmmod` + `ssh insmod` to the same qemu board).

mod bench_build;
mod bench_deploy;
mod bench_distro;
mod bench_test;
mod disk;
/// `$CARGO_KMOD_HOME`'s layout: cargo-kmod's own file (std only), so set-up, benchmarks and
/// the tool agree on every path.
#[path = "../../cargo-kmod/src/kernel/layout.rs"]
#[allow(dead_code)]
mod layout;
mod rootfs;
mod rust_analyzer;
mod setup;

/// `$CARGO_KMOD_HOME` (default `~/.cargo-kmod`), as cargo-kmod finds it.
pub(crate) fn kmod_home() -> layout::Home {
    let var = |k: &str| std::env::var_os(k).map(std::path::PathBuf::from);
    layout::Home::locate(var("CARGO_KMOD_HOME"), var("HOME")).unwrap_or_else(|| layout::Home {
        root: ".cargo-kmod".into(),
    })
}

/// A set-up step, as a status line.
pub(crate) fn step(msg: &str) {
    eprintln!("\x1b[1;32m{:>12}\x1b[0m {msg}", "Setup");
}

use anyhow::Result;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let sh = xshell::Shell::new()?;
    sh.change_dir(project_root());
    match args.first().map(String::as_str) {
        Some("setup") => {
            setup::setup(&sh)?;
            setup::demo(&sh)
        }
        Some("test") => test(&sh),
        // The LSP test's rust-analyzer alone (also a step of `setup`).
        Some("rust-analyzer") => rust_analyzer::ensure(&sh).map(drop),
        // The tests' schema validator (check-jsonschema) alone (also a step of `setup`).
        Some("check-jsonschema") => setup::check_jsonschema(&sh),
        Some("bench") => match args.get(1).map(String::as_str) {
            Some("build") => bench_build::run(&sh),
            Some("test") => bench_test::run(),
            // The matrix's part of `bench test` alone.
            Some("matrix") => bench_test::run_matrix(),
            Some("deploy") => bench_deploy::run(),
            Some("distro") => bench_distro::run(),
            _ => anyhow::bail!("usage: cargo xtask bench build|test|matrix|deploy|distro"),
        },
        _ => {
            eprintln!(
                "usage: cargo xtask setup|test|bench build|bench test|bench matrix|bench deploy|bench distro"
            );
            std::process::exit(2)
        }
    }
}

fn project_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Every test: formatting, clippy (warnings are errors), and the whole workspace's tests,
/// including the integration tests on the real kernel trees and qemu.
///
/// The tests run with their own `TMPDIR`, one per checkout, emptied before and after the
/// run: scratch dirs a test keeps for the whole process (a `static`), or that a killed run
/// leaves, never pile up in the machine's `/tmp`. A lock beside it (`.lock`) keeps a second
/// run of the same checkout from emptying it under the first.
fn test(sh: &xshell::Shell) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| project_root().join("target"));
    disk::require(sh, &target, 4, "building and running the tests")?;
    let tmp = test_tmpdir();
    // One run per checkout at a time: a second would empty the first one's TMPDIR.
    let lock_path = tmp.with_extension("lock");
    let lock = std::fs::File::create(&lock_path)?;
    if let Err(e) = lock.try_lock() {
        anyhow::bail!(
            "cannot lock `{}`: {}",
            lock_path.display(),
            match e {
                std::fs::TryLockError::WouldBlock =>
                    "another `cargo xtask test` of this checkout is running".to_string(),
                std::fs::TryLockError::Error(e) => e.to_string(),
            }
        );
    }
    xshell::cmd!(sh, "{cargo} fmt --all -- --check").run()?;
    xshell::cmd!(
        sh,
        "{cargo} clippy --workspace --all-targets -- -D warnings"
    )
    .run()?;
    let fresh = |tmp: &std::path::Path| match std::fs::remove_dir_all(tmp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(anyhow::anyhow!(
            "cannot empty the tests' TMPDIR `{}`: {e}",
            tmp.display()
        )),
        _ => Ok(()),
    };
    fresh(&tmp)?;
    std::fs::create_dir_all(&tmp)?;
    let run = xshell::cmd!(sh, "{cargo} test --workspace --no-fail-fast")
        .env("TMPDIR", &tmp)
        .run();
    if run.is_err() {
        disk::note_if_low(sh, &target);
        disk::note_if_low(sh, &tmp);
    }
    fresh(&tmp)?;
    drop(lock);
    run?;
    Ok(())
}

/// The tests' `TMPDIR`: outside the repository (a scratch package inside it would belong to
/// this workspace), the same path for a checkout every run (the published-crate test keeps a
/// build cache keyed by paths under it), another for another checkout.
fn test_tmpdir() -> std::path::PathBuf {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    project_root().hash(&mut h);
    std::env::temp_dir().join(format!("cargo-kmod-test-{:016x}", h.finish()))
}
