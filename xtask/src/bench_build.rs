//! `cargo xtask bench build [--arch A]`: build speed against plain kbuild, measured in the
//! same run on the same tree.
//!
//! The plain baseline is what a user switching to cargo-kmod had before: a hand-written
//! `Kbuild` (`obj-m := bench_one.o`) next to the same Rust source, built with
//! `make -C KDIR M=DIR ARCH=.. LLVM=.. modules`:
//! - no-op rebuild: cargo kmod build vs plain make, nothing changed (goal <= 0.05x);
//! - one file changed: the crate root edited, then a rebuild (goal <= 1.0x);
//! - 8 modules: one `cargo kmod build --workspace` of 8 modules vs eight separate plain
//!   builds of one hand-written module each, all from clean (goal <= 0.5x);
//! - no-op rebuild of a module with crates.io `[dependencies]` (bitflags, heapless, paste:
//!   fetched once into cargo's cache) vs plain make over its generated Kbuild (goal <= 0.2x);
//! - `cargo kmod check` after a one-line change vs `cargo kmod build` of such a change
//!   (goal <= 0.5x), and a no-op check vs that build (goal <= 0.05x).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use xshell::{cmd, Shell};

const MODULE_RS: &str = r#"// SPDX-License-Identifier: GPL-2.0
//! Benchmark module.
use kernel::prelude::*;

module! {
    type: Bench,
    name: "NAME",
    authors: ["cargo-kmod"],
    description: "benchmark module",
    license: "GPL",
}

struct Bench;

impl kernel::Module for Bench {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        pr_info!("NAME loaded\n");
        Ok(Bench)
    }
}
"#;

fn write_package(dir: &Path, name: &str) -> Result<()> {
    std::fs::create_dir_all(dir.join("src"))?;
    std::fs::write(
        dir.join("Cargo.toml"),
        format!("[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\nlicense = \"GPL-2.0\"\n\n[package.metadata.kmod]\n"),
    )?;
    std::fs::write(dir.join("src/lib.rs"), MODULE_RS.replace("NAME", name))?;
    Ok(())
}

fn time(f: impl FnOnce() -> Result<()>) -> Result<Duration> {
    let t = Instant::now();
    f()?;
    Ok(t.elapsed())
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

struct Ctx {
    kmod: PathBuf,
    kdir: PathBuf,
    make_args: Vec<String>,
}

impl Ctx {
    fn kmod_build(&self, sh: &Shell, manifest: &Path, extra: &[&str]) -> Result<()> {
        let kmod = &self.kmod;
        let arch = self.make_args[0].trim_start_matches("ARCH=").to_string();
        cmd!(
            sh,
            "{kmod} kmod build -q --manifest-path {manifest} --arch {arch} {extra...}"
        )
        .quiet()
        .run()?;
        Ok(())
    }

    /// `cargo kmod SUB` (`check`) of the package at `manifest`.
    fn kmod(&self, sh: &Shell, sub: &str, manifest: &Path) -> Result<()> {
        let kmod = &self.kmod;
        let arch = self.make_args[0].trim_start_matches("ARCH=").to_string();
        cmd!(
            sh,
            "{kmod} kmod {sub} -q --manifest-path {manifest} --arch {arch}"
        )
        .quiet()
        .run()?;
        Ok(())
    }

    fn plain_make(&self, sh: &Shell, m_dir: &Path, target: &str) -> Result<()> {
        let kdir = &self.kdir;
        let args = &self.make_args;
        let m = format!("M={}", m_dir.display());
        let jobs = format!(
            "-j{}",
            std::thread::available_parallelism().map_or(1, |n| n.get())
        );
        cmd!(
            sh,
            "make -s --no-print-directory -C {kdir} {m} {args...} {jobs} {target}"
        )
        .quiet()
        .ignore_stdout()
        .run()?;
        Ok(())
    }
}

pub fn run(sh: &Shell) -> Result<()> {
    let arch = std::env::args()
        .skip_while(|a| a != "--arch")
        .nth(1)
        .unwrap_or_else(|| "x86_64".into());
    // The binary users run: `cargo install cargo-kmod` builds the release profile.
    let kmod = crate::project_root().join("target/release/cargo-kmod");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    cmd!(sh, "{cargo} build -q --release -p cargo-kmod").run()?;
    // The tree and the exact make arguments cargo-kmod uses, from the generated Makefile.
    let list = cmd!(sh, "{kmod} kmod init --list --message-format json").read()?;
    let tree: serde_json::Value = list
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|t| {
            t["arch"] == arch.as_str() && !t["release"].as_str().unwrap_or("").starts_with("6.")
        })
        .with_context(|| format!("no {arch} dev tree: run `cargo xtask setup`"))?;
    let kdir = PathBuf::from(tree["path"].as_str().unwrap_or_default());
    let work = tempfile::Builder::new().prefix("kmod-bench-").tempdir()?;
    let w = work.path();
    let sh = sh.clone();
    let _env = sh.push_env("CARGO_TARGET_DIR", w.join("target"));

    // One module, built once by cargo-kmod to get its plan.
    let one = w.join("one");
    write_package(&one, "bench_one")?;
    let mut ctx = Ctx {
        kmod,
        kdir,
        make_args: vec![],
    };
    let manifest = one.join("Cargo.toml");
    ctx.make_args = vec![format!("ARCH={arch}")];
    ctx.kmod_build(&sh, &manifest, &[])?;
    let plan_dir = tree_dir(&w.join("target/kmod").join(&arch))?;
    let makefile = std::fs::read_to_string(plan_dir.join("Makefile"))?;
    let line = makefile
        .lines()
        .find(|l| l.starts_with("KBUILD_ARGS := "))
        .context("generated Makefile has no KBUILD_ARGS")?;
    ctx.make_args = line
        .trim_start_matches("KBUILD_ARGS := ")
        .split_whitespace()
        .map(str::to_string)
        .collect();

    // The hand-written module: the same source, a one-line Kbuild.
    let plain_dir = w.join("plain");
    std::fs::create_dir_all(&plain_dir)?;
    std::fs::write(plain_dir.join("Kbuild"), "obj-m := bench_one.o\n")?;
    std::fs::write(
        plain_dir.join("bench_one.rs"),
        MODULE_RS.replace("NAME", "bench_one"),
    )?;
    ctx.plain_make(&sh, &plain_dir, "modules")?;

    let runs = 7;
    let mut ours = vec![];
    let mut plain = vec![];
    for _ in 0..runs {
        ours.push(time(|| ctx.kmod_build(&sh, &manifest, &[]))?);
        plain.push(time(|| ctx.plain_make(&sh, &plain_dir, "modules"))?);
    }
    let noop = (median(ours), median(plain));

    let lib = one.join("src/lib.rs");
    let plain_src = plain_dir.join("bench_one.rs");
    let mut ours = vec![];
    let mut plain = vec![];
    // Interleaved, the order swapped every run (what runs second finds warmer caches).
    for i in 0..9 {
        let edit = |path: &Path, tag: &str| {
            std::fs::write(
                path,
                format!(
                    "{}\n// edit {i}{tag}\n",
                    MODULE_RS.replace("NAME", "bench_one")
                ),
            )
        };
        let mut ours_run = || -> Result<()> {
            edit(&lib, "a")?;
            ours.push(time(|| ctx.kmod_build(&sh, &manifest, &[]))?);
            Ok(())
        };
        if i % 2 == 0 {
            ours_run()?;
            edit(&plain_src, "b")?;
            plain.push(time(|| ctx.plain_make(&sh, &plain_dir, "modules"))?);
        } else {
            edit(&plain_src, "b")?;
            plain.push(time(|| ctx.plain_make(&sh, &plain_dir, "modules"))?);
            ours_run()?;
        }
    }
    let one_changed = (median(ours), median(plain));

    // `cargo kmod check` against `cargo kmod build` of the same one-line change, interleaved;
    // then no-op checks against that build.
    let mut checks = vec![];
    let mut builds = vec![];
    for i in 0..9 {
        let edit = |tag: &str| {
            std::fs::write(
                &lib,
                format!(
                    "{}\n// check edit {i}{tag}\n",
                    MODULE_RS.replace("NAME", "bench_one")
                ),
            )
        };
        edit("a")?;
        checks.push(time(|| ctx.kmod(&sh, "check", &manifest))?);
        edit("b")?;
        builds.push(time(|| ctx.kmod_build(&sh, &manifest, &[]))?);
    }
    let build_one = median(builds);
    let check_one = (median(checks), build_one);
    ctx.kmod(&sh, "check", &manifest)?;
    let mut noop_checks = vec![];
    for _ in 0..runs {
        noop_checks.push(time(|| ctx.kmod(&sh, "check", &manifest))?);
    }
    let check_noop = (median(noop_checks), build_one);

    // A module with crates.io dependencies: built once (cargo fetches and compiles the
    // crates), then no-op rebuilds against plain make over the same generated Kbuild.
    let with_deps = w.join("deps");
    write_package(&with_deps, "bench_deps")?;
    std::fs::write(
        with_deps.join("Cargo.toml"),
        "[package]\nname = \"bench_deps\"\nversion = \"0.1.0\"\nedition = \"2021\"\nlicense = \"GPL-2.0\"\n\n[dependencies]\nbitflags = { version = \"2\", default-features = false }\nheapless = \"0.8\"\npaste = \"1\"\n\n[package.metadata.kmod]\n",
    )?;
    let deps_manifest = with_deps.join("Cargo.toml");
    let deps_plan = {
        let _t = sh.push_env("CARGO_TARGET_DIR", with_deps.join("target"));
        ctx.kmod_build(&sh, &deps_manifest, &[])?;
        tree_dir(&with_deps.join("target/kmod").join(&arch))?
    };
    let mut ours = vec![];
    let mut plain = vec![];
    for _ in 0..runs {
        let _t = sh.push_env("CARGO_TARGET_DIR", with_deps.join("target"));
        ours.push(time(|| ctx.kmod_build(&sh, &deps_manifest, &[]))?);
        plain.push(time(|| ctx.plain_make(&sh, &deps_plan, "modules"))?);
    }
    let noop_deps = (median(ours), median(plain));

    // Eight modules: one workspace pass vs eight separate plain builds, all clean.
    let ws = w.join("ws");
    let names: Vec<String> = (1..=8).map(|i| format!("bench_m{i}")).collect();
    let members: Vec<String> = names.iter().map(|n| format!("\"{n}\"")).collect();
    std::fs::create_dir_all(&ws)?;
    std::fs::write(
        ws.join("Cargo.toml"),
        format!(
            "[workspace]\nresolver = \"2\"\nmembers = [{}]\n",
            members.join(", ")
        ),
    )?;
    for n in &names {
        write_package(&ws.join(n), n)?;
    }
    let mut singles = vec![];
    for n in &names {
        let d = w.join("single").join(n);
        std::fs::create_dir_all(&d)?;
        std::fs::write(d.join("Kbuild"), format!("obj-m := {n}.o\n"))?;
        std::fs::write(d.join(format!("{n}.rs")), MODULE_RS.replace("NAME", n))?;
        singles.push(d);
    }
    let plain8 = time(|| {
        for d in &singles {
            ctx.plain_make(&sh, d, "modules")?;
        }
        Ok(())
    })?;
    let ours8 = time(|| {
        let _t = sh.push_env("CARGO_TARGET_DIR", ws.join("target"));
        ctx.kmod_build(&sh, &ws.join("Cargo.toml"), &["--workspace"])
    })?;

    println!(
        "build benchmark ({arch}, tree `{}`, {} CPUs)",
        ctx.kdir.display(),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!(
        "{:<34} {:>11} {:>11} {:>7} {:>7}",
        "", "cargo kmod", "plain make", "ratio", "goal"
    );
    let row = |name: &str, (a, b): (Duration, Duration), goal: f64| {
        let r = a.as_secs_f64() / b.as_secs_f64();
        println!(
            "{:<34} {:>9.3} s {:>9.3} s {:>7.2} {:>7} {}",
            name,
            a.as_secs_f64(),
            b.as_secs_f64(),
            r,
            format!("<= {goal}"),
            if r <= goal { "met" } else { "MISSED" }
        );
    };
    row("no-op rebuild (median of 7)", noop, 0.05);
    row("one file changed (median of 9)", one_changed, 1.0);
    row("8 modules from clean (1 vs 8 runs)", (ours8, plain8), 0.5);
    row("no-op with crates (median of 5)", noop_deps, 0.2);
    println!("{:<34} {:>11} {:>11}", "", "check", "kmod build");
    row("check, one line changed (of 9)", check_one, 0.5);
    row("no-op check (median of 7)", check_noop, 0.05);
    Ok(())
}

/// The tree's own build directory under `target/kmod/<arch>/` (`<release>-<tree key>/`,
/// where cargo-kmod writes the plan's Makefile): the one directory the bench's one tree made.
fn tree_dir(arch_dir: &std::path::Path) -> Result<std::path::PathBuf> {
    std::fs::read_dir(arch_dir)?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.join("Makefile").is_file())
        .with_context(|| {
            format!(
                "no tree directory with a Makefile in `{}`",
                arch_dir.display()
            )
        })
}
