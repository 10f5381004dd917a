//! `cargo kmod build`: manifest -> kernel tree -> plan (Kbuild, bindings) -> kbuild -> `.ko`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context as _, Result};
use serde_json::json;

use crate::cli::{KdirArgs, PackageSelect};
use crate::kbuild::fingerprint::{self, Fingerprint};
use crate::manifest::{ModuleSpec, Workspace};
use crate::plan::{self, PlanInput};
use crate::shell::Shell;
use crate::tree::home::Home;
use crate::tree::resolve::{self, Choice};
use crate::tree::toolchain::{self, Toolchain};
use crate::tree::{Arch, KernelTree};
use crate::Context;

#[derive(Debug, Clone, Default, clap::Args)]
pub struct BuildCmd {
    #[command(flatten)]
    pub select: PackageSelect,
    #[command(flatten)]
    pub kdir: KdirArgs,
    /// Build without debug assertions and overflow checks (`-Cdebug-assertions=off`)
    #[arg(long)]
    pub release: bool,
    /// Cargo features to enable (comma or space separated)
    #[arg(short = 'F', long, value_name = "FEATURES")]
    pub features: Vec<String>,
    /// Enable all features
    #[arg(long)]
    pub all_features: bool,
    /// Do not enable the `default` feature
    #[arg(long)]
    pub no_default_features: bool,
    /// Parallel make jobs [default: the number of CPUs]
    #[arg(short, long, value_name = "N")]
    pub jobs: Option<usize>,
}

/// Options for a build, from `build`, `test` and `package`.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    pub cmd: BuildCmd,
    /// Compile tests in (`--cfg test`, `-DKMOD_TEST`), into `target/kmod/<arch>/test/`.
    pub test: bool,
}

/// A built module.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Artifact {
    pub module: String,
    pub package: String,
    pub version: String,
    pub ko: PathBuf,
    pub symvers: PathBuf,
    pub arch: Arch,
    pub release: String,
    pub vermagic: String,
    /// Packages of this build it depends on (load those first).
    pub module_deps: Vec<String>,
}

impl BuildCmd {
    pub fn run(&self, ctx: &Context) -> Result<()> {
        let started = Instant::now();
        let artifacts = build(
            ctx,
            &BuildOptions {
                cmd: self.clone(),
                test: false,
            },
        )?;
        for a in &artifacts {
            if ctx.shell.is_json() {
                ctx.shell.json(&json!({
                    "reason": "kmod-artifact",
                    "module": a.module,
                    "package": a.package,
                    "path": a.ko,
                    "symvers": a.symvers,
                    "arch": a.arch.name(),
                    "kernel_release": a.release,
                    "vermagic": a.vermagic,
                }));
            }
        }
        let names: Vec<String> = artifacts
            .iter()
            .map(|a| format!("`{}`", a.ko.display()))
            .collect();
        ctx.shell.status(
            "Finished",
            format_args!(
                "{} in {:.2}s",
                names.join(", "),
                started.elapsed().as_secs_f64()
            ),
        );
        Ok(())
    }
}

/// The tree a command uses for these modules (flags, target, env, manifest, dev tree).
pub fn resolve_tree(
    home: &Home,
    ws: &Workspace,
    modules: &[&ModuleSpec],
    kdir: &KdirArgs,
    rustc: Option<&str>,
) -> Result<KernelTree> {
    let mut arch = match &kdir.arch {
        Some(a) => Some(Arch::parse(a)?),
        None => None,
    };
    let mut choice = Choice {
        flag: kdir.kdir.clone(),
        rustc: rustc.map(str::to_string),
        ..Choice::default()
    };
    if let Some(name) = &kdir.target {
        let t = ws.target(name)?;
        if let Some(d) = &t.kdir {
            choice.target = Some((name.clone(), d.clone()));
        } else if let Some(d) = crate::tree::prepare::target_tree(home, t, rustc)? {
            // boards: a target with `board`/`base-config`/`cc` uses the tree `init` prepared.
            choice.target = Some((name.clone(), d));
        }
        if arch.is_none() {
            arch = t.arch;
        }
        // A target's toolchain choice overrides detection, as on the make command line.
        if let Some(llvm) = &t.llvm {
            std::env::set_var("LLVM", llvm);
        }
        if let Some(cc) = &t.cross_compile {
            std::env::set_var("CROSS_COMPILE", cc);
        }
    }
    let first = modules.first();
    if let Some(m) = first {
        if let Some(k) = &m.kdir {
            choice.manifest = Some((k.clone(), m.manifest_path.clone()));
        }
        if arch.is_none()
            && kdir.kdir.is_none()
            && kdir.target.is_none()
            && std::env::var_os("KDIR").is_none()
        {
            arch = m.arch;
        }
    }
    if choice.manifest.is_none() {
        if let Some(k) = &ws.kdir {
            choice.manifest = Some((k.clone(), ws.root.join("Cargo.toml")));
        }
    }
    if arch.is_none() && choice.explicit().is_none() {
        arch = ws.arch;
    }
    choice.arch = arch;
    resolve::resolve(home, &choice)
}

/// Refuse trees that cannot build Rust modules, before kbuild fails cryptically.
pub fn preflight(tree: &KernelTree, rustc: Option<&str>) -> Result<()> {
    if !tree.config.is_enabled("RUST") {
        crate::bail_user!(
            "kernel tree `{}` has no Rust support: `CONFIG_RUST` is not set in its `.config`", tree.dir.display();
            hint = "use a tree configured with `CONFIG_RUST=y` (`cargo kmod init` prepares one)"
        );
    }
    if !tree.config.is_enabled("MODULES") {
        crate::bail_user!(
            "kernel tree `{}` was built without `CONFIG_MODULES`",
            tree.dir.display()
        );
    }
    if !tree.dir.join("Module.symvers").is_file()
        || !tree.dir.join("rust/libkernel.rmeta").is_file()
    {
        crate::bail_user!(
            "kernel tree `{}` lacks `Module.symvers` or `rust/libkernel.rmeta`", tree.dir.display();
            hint = "build the tree fully (headers-only packages lack `rust/`); `cargo kmod doctor --kdir {}` says more", tree.dir.display()
        );
    }
    if let (Some(want), Some(have)) = (tree.rustc_version_text(), rustc) {
        if want != have {
            crate::bail_user!(
                "`{}` differs from the rustc that built `{}` (`{}`): rustc would fail with E0514", have, tree.dir.display(), want;
                hint = "install that exact toolchain (e.g. `rustup toolchain install {}`) and select it with `RUSTC` or `rustup override set`", toolchain::Version::find(&want).map(|v| v.to_string()).unwrap_or_default()
            );
        }
    }
    Ok(())
}

/// Build the selected modules; the library entry point `test` and `package` use too.
pub fn build(ctx: &Context, opts: &BuildOptions) -> Result<Vec<Artifact>> {
    let shell = &ctx.shell;
    let home = Home::from_env()?;
    // `rustc --version` runs while cargo reads the manifests (two spawns, one wait).
    let rustc_probe = std::thread::spawn(|| {
        let sh = xshell::Shell::new().ok()?;
        crate::process::version_line(&sh, &toolchain::rustc_program(), &["--version"])
    });
    let ws = crate::manifest::load(shell, opts.cmd.select.manifest_path.as_deref())?;
    let modules = ws.select(&opts.cmd.select.packages, opts.cmd.select.workspace)?;
    let rustc = rustc_probe.join().unwrap_or(None);
    let tree = resolve_tree(&home, &ws, &modules, &opts.cmd.kdir, rustc.as_deref())?;
    preflight(&tree, rustc.as_deref())?;

    let mut base = ws.target_dir.join("kmod").join(tree.arch.name());
    let out_dir = base.clone();
    if opts.test {
        base = base.join("test");
    }
    let mut features = BTreeMap::new();
    for m in &modules {
        let on = m.enabled_features(
            &opts.cmd.features,
            opts.cmd.all_features,
            opts.cmd.no_default_features,
        )?;
        features.insert(m.package.clone(), on);
    }
    let mut extra_symbols: Vec<PathBuf> = modules
        .iter()
        .flat_map(|m| m.extra_symbols.iter().cloned())
        .collect();
    if let Ok(env) = std::env::var("KBUILD_EXTRA_SYMBOLS") {
        extra_symbols.extend(env.split_whitespace().map(PathBuf::from));
    }
    for s in &extra_symbols {
        if !s.is_file() {
            crate::bail_user!("`extra-symbols` file `{}` does not exist", s.display(); hint = "build that module first, or fix the path");
        }
    }

    // No-op check before anything expensive.
    let mut fp = Fingerprint::default();
    fp.value("cargo-kmod", env!("CARGO_PKG_VERSION"));
    fp.value("tree", &tree.dir.display().to_string());
    fp.file(&tree.dir.join(".config"));
    fp.file(&tree.dir.join("Module.symvers"));
    fp.value("rustc", rustc.as_deref().unwrap_or(""));
    fp.value("test", &opts.test.to_string());
    fp.value("release", &opts.cmd.release.to_string());
    fp.value("features", &format!("{features:?}"));
    fp.value(
        "env",
        &format!(
            "{:?}{:?}{:?}",
            std::env::var("LLVM"),
            std::env::var("CROSS_COMPILE"),
            extra_symbols
        ),
    );
    for m in &modules {
        fp.file(&m.manifest_path);
        fp.tree(&m.dir);
        for p in m
            .c_sources
            .iter()
            .chain(m.include_dirs.iter())
            .chain(m.bindings.iter().map(|b| &b.header))
        {
            if !p.starts_with(&m.dir) {
                if p.is_dir() {
                    fp.tree(p)
                } else {
                    fp.file(p)
                }
            }
        }
        for p in &m.extra_symbols {
            fp.file(p);
        }
    }
    fp.file(&ws.root.join("Cargo.toml"));
    let fingerprint = fp.finish();
    let names: Vec<&str> = modules.iter().map(|m| m.name.as_str()).collect();
    let stamp = base.join(format!(
        ".kmod-fingerprint-{}",
        crate::fsutil::sha256_hex(names.join(",").as_bytes())
            .get(..12)
            .unwrap_or("x")
    ));
    let artifacts_of = |tree: &KernelTree| -> Result<Vec<Artifact>> {
        modules
            .iter()
            .map(|m| artifact(m, tree, &out_dir, opts.test))
            .collect()
    };
    if fingerprint::is_fresh(&stamp, &fingerprint) {
        if let Ok(a) = artifacts_of(&tree) {
            if a.iter().all(|a| a.ko.is_file()) {
                shell.status("Fresh", names.join(", "));
                return Ok(a);
            }
        }
    }
    let _ = std::fs::remove_file(&stamp);

    // Module builds need no RUST_LIB_SRC (only kernel builds do) and the versions are known:
    // no process is spawned here, which keeps a one-file rebuild close to plain kbuild.
    let tc = Toolchain::for_modules(rustc.clone());
    for m in &modules {
        shell.status(
            "Compiling",
            format_args!(
                "{} v{} ({}, linux {}{})",
                m.name,
                m.version,
                tree.arch,
                tree.release,
                if opts.test { ", tests" } else { "" }
            ),
        );
    }
    let macros = match &rustc {
        Some(r) => Some(plan::macros::ensure_macros_for(shell, &home, r)?),
        None => kmod_macros_for(shell, &home, &tree)?,
    };
    let input = PlanInput {
        modules: modules.clone(),
        tree: &tree,
        base: base.clone(),
        test: opts.test,
        features,
        macros,
        extra_symbols,
    };
    let mut plan = plan::render(&input)?;
    if opts.cmd.release {
        for (path, text) in &mut plan.files {
            if path.file_name().is_some_and(|n| n == "Kbuild")
                && path.parent() != Some(base.as_path())
            {
                text.push_str("\n# --release\nrustflags-y += -Cdebug-assertions=off -Coverflow-checks=off\nccflags-y += -DNDEBUG\n");
            }
        }
    }
    // Bindings need kbuild's flags for this tree: probe once per tree configuration.
    let need_bindings = modules.iter().any(|m| !m.bindings.is_empty());
    if need_bindings {
        let probe = ws
            .target_dir
            .join("kmod")
            .join(tree.arch.name())
            .join(".probe");
        std::fs::create_dir_all(&probe)
            .with_context(|| format!("cannot create `{}`", probe.display()))?;
        let flags = plan::bindings::kbuild_cflags(shell, &tree, &tc, &probe)?;
        for (m, pm) in modules.iter().zip(&plan.modules) {
            for b in &m.bindings {
                plan::bindings::generate(shell, b, &m.manifest_path, &flags, &pm.out_dir, &tc)?;
            }
        }
    }
    plan.write()?;
    for (m, pm) in modules.iter().zip(&plan.modules) {
        let env_hash =
            crate::fsutil::sha256_hex(format!("{:?}", m.env(&tree, &pm.out_dir)).as_bytes());
        crate::kbuild::invalidate_on_env_change(&pm.dir, &m.name, &env_hash)?;
    }
    let jobs = opts
        .cmd
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    crate::kbuild::run(shell, &tree, &tc, &plan, jobs).with_context(|| {
        format!(
            "could not compile {}",
            names
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    })?;

    // Publish: copy each .ko (and the pass's Module.symvers) atomically next to the plan.
    let symvers_src = base.join("Module.symvers");
    let symvers_dst = out_dir_for(&out_dir, opts.test).join("Module.symvers");
    if symvers_src != symvers_dst {
        copy_atomic(&symvers_src, &symvers_dst)?;
    }
    for pm in &plan.modules {
        let dst = out_dir_for(&out_dir, opts.test).join(format!("{}.ko", pm.name));
        copy_atomic(&pm.built_ko, &dst)?;
    }
    fingerprint::store(&stamp, &fingerprint)?;
    artifacts_of(&tree)
}

fn out_dir_for(out_dir: &Path, test: bool) -> PathBuf {
    if test {
        out_dir.join("test")
    } else {
        out_dir.to_path_buf()
    }
}

fn copy_atomic(from: &Path, to: &Path) -> Result<()> {
    let bytes = std::fs::read(from)
        .with_context(|| format!("kbuild did not produce `{}`", from.display()))?;
    crate::fsutil::write_atomic(to, &bytes)
}

fn artifact(m: &ModuleSpec, tree: &KernelTree, out_dir: &Path, test: bool) -> Result<Artifact> {
    let dir = out_dir_for(out_dir, test);
    let ko = dir.join(format!("{}.ko", m.name));
    let vermagic = std::fs::read(&ko)
        .ok()
        .and_then(|b| modinfo_value(&b, "vermagic"))
        .unwrap_or_default();
    Ok(Artifact {
        module: m.name.clone(),
        package: m.package.clone(),
        version: m.version.clone(),
        symvers: dir.join("Module.symvers"),
        ko,
        arch: tree.arch,
        release: tree.release.clone(),
        vermagic,
        module_deps: m.module_deps.clone(),
    })
}

/// A `.modinfo` value found by scanning for `key=` (enough for vermagic in status output).
fn modinfo_value(bytes: &[u8], key: &str) -> Option<String> {
    let needle = format!("{key}=");
    let pos = bytes
        .windows(needle.len())
        .position(|w| w == needle.as_bytes())?;
    let rest = &bytes[pos + needle.len()..];
    let end = rest.iter().position(|&b| b == 0)?;
    Some(String::from_utf8_lossy(&rest[..end]).into_owned())
}

/// `libkmod_macros.so` for this tree (built with the tree's rustc), when available.
pub fn kmod_macros_for(shell: &Shell, home: &Home, tree: &KernelTree) -> Result<Option<PathBuf>> {
    plan::macros::ensure_macros(shell, home, tree).map(Some)
}
