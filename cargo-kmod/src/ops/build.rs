//! Building modules: a resolved [`BuildContext`] plus [`BuildOptions`] in, [`Artifact`]s out.
//!
//! ```text
//! lock target/kmod/<arch> ─► fresh? ─► plan (Kbuild, bindings, macro) ─► kbuild ─► publish
//! ```
//!
//! - **Per tree**: everything a build writes lives in the tree's own directory,
//!   `target/kmod/<arch>/<release>-<tree key>/` ([`BuildContext::kmod_dir`]), so builds for
//!   two trees of one arch (7.2 and 6.12, a dev tree and a board's) never overwrite each
//!   other and can run at once.
//! - **Lock**: the tree directory's `.kmod-lock` is held for the whole build, like cargo's
//!   build-directory lock, so an IDE and a terminal (or `build` and `test`) never write the
//!   same files at once; a second process says `Blocking` and waits.
//! - **Fresh**: a fingerprint over every input the last kbuild pass read (the dependency
//!   lists kbuild writes in its `.cmd` files, which include rustc's dep-info: sources reached
//!   through `#[path]`, `include!`, `-I` headers, symlinks), the manifests, the tree's
//!   `.config` and `Module.symvers`, the extra symbol files' contents, flags, profile,
//!   features and tool versions. The stamp also records each published `.ko`, so an
//!   artifact another build (another selection or profile) overwrote is never `Fresh`.
//!   What is only known after kbuild ran is recorded as it was when the build began: a
//!   file modified during the build is recorded as changed ([`fingerprint::Started`]), so
//!   an edit the compiler may not have seen always makes the next build rebuild.
//! - **Publish**: each `.ko` is copied atomically to the tree directory's `[test/]`, beside
//!   the pass's `Module.symvers` that kbuild wrote there; every build, fresh or not, then
//!   links them as `target/kmod/<arch>/[test/]<module>.ko` (and `Module.symvers`): the
//!   latest build's path, kept for scripts written before outputs were per tree. Commands
//!   that go on from a build (`test`, `package`, `install`, `deploy`) take the tree's own
//!   file from the [`Artifact`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use serde::Serialize;

use crate::context::{BuildContext, Session};
use crate::deps::{self, CargoMode, DepsOptions};
use crate::kbuild::fingerprint::{self, Fingerprint};
use crate::kernel::toolchain::Toolchain;
use crate::kernel::{Arch, KernelTree};
use crate::manifest::ModuleSpec;
use crate::plan::{self, PlanInput};
use crate::shell::Shell;

/// How to build, as plain data (from `build`, `test`, `package`, `install`, `deploy`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildOptions {
    /// `--release`: no debug assertions or overflow checks, `-DNDEBUG`.
    pub release: bool,
    /// Compile tests in (`--cfg test`, `-DKMOD_TEST`), into the tree directory's `test/`.
    pub test: bool,
    /// `--features` (comma or space separated lists, `pkg/feature` accepted).
    pub features: Vec<String>,
    pub all_features: bool,
    pub no_default_features: bool,
    /// Parallel make jobs.
    pub jobs: usize,
    /// `--offline`/`--locked`/`--frozen` for cargo's part (`[dependencies]` crates).
    pub cargo: CargoMode,
}

/// A built module, with the tree it was built for.
#[derive(Debug, Clone, Serialize)]
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
    /// The tree it was built against (so shipping never re-derives it).
    #[serde(skip)]
    pub tree: KernelTree,
    /// `target/kmod`: where shipping writes by default (`package/`).
    #[serde(skip)]
    pub kmod_root: PathBuf,
}

/// Build the selected modules of `ctx`.
pub fn build(session: &Session, ctx: &BuildContext, opts: &BuildOptions) -> Result<Vec<Artifact>> {
    let shell = &session.shell;
    let tree = &ctx.tree;
    let out_dir = ctx.kmod_dir();
    // Where this build's plan, objects and published `.ko` files live.
    let base = publish_dir(&out_dir, opts.test);
    let _lock = lock_build_dir(shell, &out_dir)?;
    let features = selected_features(ctx, opts)?;
    let extra_symbols = extra_symbols(session, ctx)?;

    // No-op check before anything expensive.
    let names: Vec<&str> = ctx.modules.iter().map(|m| m.name.as_str()).collect();
    let stamp = base.join(format!(
        ".kmod-fingerprint-{}",
        crate::fsutil::sha256_hex(names.join(",").as_bytes())
            .get(..12)
            .unwrap_or("x")
    ));
    let base_fingerprint = fingerprint_of(ctx, opts, &features, &extra_symbols, &base, true);
    let fingerprint =
        base_fingerprint.clone() + &deps_inputs(ctx, &deps::recorded_sources(&stamp), None);
    if fingerprint::is_fresh(&stamp, &fingerprint) {
        shell.status("Fresh", names.join(", "));
        let built = artifacts(ctx, &out_dir, opts.test);
        publish_latest(ctx, &built, opts.test)?;
        return Ok(built);
    }
    let _ = std::fs::remove_file(&stamp);
    // From here on, an edit to an input may come after the compile read it: what the build
    // records at its end is compared with this moment (the build's own outputs and the
    // kmod-macros it may build are not edits).
    let mut started = fingerprint::Started::now(&out_dir, &[ctx.home.root.join("macros")])?;

    // Module builds need no RUST_LIB_SRC (only kernel builds do) and the versions are known:
    // no process is spawned here, which keeps a one-file rebuild close to plain kbuild.
    let tc = Toolchain::for_modules(ctx.rustc.clone());
    for m in &ctx.modules {
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
    let (plan, module_deps) = planned(
        shell,
        ctx,
        opts,
        &tc,
        features,
        extra_symbols,
        Some(&mut started),
    )?;
    run_kbuild(shell, ctx, opts, &tc, &plan, &names)?;

    // Publish: copy each .ko atomically next to the plan, where kbuild also wrote the
    // pass's `Module.symvers`.
    for pm in &plan.modules {
        copy_atomic(&pm.built_ko, &base.join(format!("{}.ko", pm.name)))?;
    }
    record(ctx, &plan, &module_deps, &stamp, base_fingerprint, &started)?;
    let built = artifacts(ctx, &out_dir, opts.test);
    publish_latest(ctx, &built, opts.test)?;
    Ok(built)
}

/// `target/kmod/<arch>/[test/]<module>.ko` and `Module.symvers`: the latest build's files,
/// hard links to the tree's own (a copy where links cannot be made), each replaced
/// atomically, so a reader sees one build's file or another's, never a mix.
fn publish_latest(ctx: &BuildContext, built: &[Artifact], test: bool) -> Result<()> {
    let dir = publish_dir(&ctx.arch_dir(), test);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create `{}`", dir.display()))?;
    let mut files: Vec<(&Path, PathBuf)> = built
        .iter()
        .map(|a| (a.ko.as_path(), dir.join(format!("{}.ko", a.module))))
        .collect();
    if let Some(a) = built.first().filter(|a| a.symvers.is_file()) {
        files.push((a.symvers.as_path(), dir.join("Module.symvers")));
    }
    for (from, to) in files {
        crate::fsutil::link_atomic(from, &to)?;
    }
    Ok(())
}

/// What a check's saved rustc command depends on besides the Rust sources rustc reads
/// itself: the build's own fingerprint ([`build`]'s no-op check) without the package's
/// `.rs` files, with the kernel crate's metadata, and the dependency crates' inputs. While
/// it is unchanged, the plan a check would write is the one it wrote, and kbuild's command
/// for the crate is the same. `after`: as a check that began at `started` and built the
/// dependency crates from `sources` records it (and records those sources beside
/// `stamp`); otherwise with the sources the last check recorded there.
pub fn check_fingerprint(
    session: &Session,
    ctx: &BuildContext,
    opts: &BuildOptions,
    stamp: &Path,
    after: Option<(&[PathBuf], &fingerprint::Started)>,
) -> Result<String> {
    let features = selected_features(ctx, opts)?;
    let extra_symbols = extra_symbols(session, ctx)?;
    let base = publish_dir(&ctx.kmod_dir(), opts.test);
    let mut fp = fingerprint_of(ctx, opts, &features, &extra_symbols, &base, false);
    let mut kernel = Fingerprint::default();
    kernel.file(&ctx.tree.dir.join("rust/libkernel.rmeta"));
    fp.push_str(&kernel.finish());
    match after {
        Some((sources, started)) => {
            deps::record_sources(stamp, sources)?;
            fp.push_str(&deps_inputs(ctx, sources, Some(started)));
        }
        None => fp.push_str(&deps_inputs(ctx, &deps::recorded_sources(stamp), None)),
    }
    Ok(fp)
}

/// The written plan of a build, for `check` and `clippy`: what [`build`] writes before kbuild
/// runs (the same `kmod_macros`, dependency crates, bindings and Kbuild files), under the
/// build directory's lock, which the returned file holds. kbuild then type-checks each
/// module with its [`plan::PlannedModule::check_goal`].
pub fn plan_for_check(
    session: &Session,
    ctx: &BuildContext,
    opts: &BuildOptions,
    started: &mut fingerprint::Started,
) -> Result<(plan::Plan, Toolchain, Vec<PathBuf>)> {
    let features = selected_features(ctx, opts)?;
    let extra_symbols = extra_symbols(session, ctx)?;
    let tc = Toolchain::for_modules(ctx.rustc.clone());
    let (plan, module_deps) = planned(
        &session.shell,
        ctx,
        opts,
        &tc,
        features,
        extra_symbols,
        Some(started),
    )?;
    let sources = module_deps
        .values()
        .flat_map(|d| d.sources.clone())
        .collect();
    Ok((plan, tc, sources))
}

/// Hold the build directory's lock (`target/kmod/<arch>/<tree>/.kmod-lock`) until the returned
/// file is dropped, as [`build`] does.
pub fn lock_for_check(session: &Session, ctx: &BuildContext) -> Result<std::fs::File> {
    lock_build_dir(&session.shell, &ctx.kmod_dir())
}

/// When a check begins, for [`check_fingerprint`]: as [`build`] takes it.
pub fn check_started(ctx: &BuildContext) -> Result<fingerprint::Started> {
    fingerprint::Started::now(&ctx.kmod_dir(), &[ctx.home.root.join("macros")])
}

/// Where a check's saved commands and last diagnostics for this selection are kept.
pub fn check_stamp(ctx: &BuildContext, opts: &BuildOptions, driver: &str) -> PathBuf {
    let names: Vec<&str> = ctx.modules.iter().map(|m| m.name.as_str()).collect();
    publish_dir(&ctx.kmod_dir(), opts.test).join(format!(
        ".kmod-check-{}",
        crate::fsutil::sha256_hex(format!("{}/{driver}", names.join(",")).as_bytes())
            .get(..12)
            .unwrap_or("x")
    ))
}

/// Everything before kbuild: the proc macro and dependency crates, the plan rendered and
/// written with its bindings. Returns the plan and the dependency crates it links.
fn planned(
    shell: &Shell,
    ctx: &BuildContext,
    opts: &BuildOptions,
    tc: &Toolchain,
    features: BTreeMap<String, BTreeSet<String>>,
    extra_symbols: Vec<PathBuf>,
    started: Option<&mut fingerprint::Started>,
) -> Result<(plan::Plan, BTreeMap<String, deps::ModuleDeps>)> {
    let (macros, module_deps) = macros_and_deps(shell, ctx, opts, tc, &features, started)?;
    let input = PlanInput {
        modules: ctx.modules.iter().collect(),
        tree: &ctx.tree,
        base: publish_dir(&ctx.kmod_dir(), opts.test),
        test: opts.test,
        release: opts.release,
        features,
        macros: Some(macros),
        extra_symbols,
        deps: module_deps,
    };
    let plan = plan::render(&input)?;
    write_plan(shell, ctx, tc, &plan)?;
    Ok((plan, input.deps))
}

/// The enabled features of each module, by package.
fn selected_features(
    ctx: &BuildContext,
    opts: &BuildOptions,
) -> Result<BTreeMap<String, BTreeSet<String>>> {
    let mut features = BTreeMap::new();
    for m in &ctx.modules {
        let on = m.enabled_features(&opts.features, opts.all_features, opts.no_default_features)?;
        features.insert(m.package.clone(), on);
    }
    Ok(features)
}

/// `KBUILD_EXTRA_SYMBOLS`: the manifests' `extra-symbols` and the environment's, each of
/// which must exist.
fn extra_symbols(session: &Session, ctx: &BuildContext) -> Result<Vec<PathBuf>> {
    let mut extra_symbols: Vec<PathBuf> = ctx
        .modules
        .iter()
        .flat_map(|m| m.extra_symbols.iter().cloned())
        .collect();
    extra_symbols.extend(session.env.extra_symbols());
    for s in &extra_symbols {
        if !s.is_file() {
            crate::bail_user!("`extra-symbols` file `{}` does not exist", s.display(); hint = "build that module first, or fix the path");
        }
    }
    Ok(extra_symbols)
}

/// Modules with crate dependencies: `Cargo.lock`, cargo's config and the sources of local
/// dependency packages (recorded by the last build) are inputs too. Empty without any.
fn deps_inputs(
    ctx: &BuildContext,
    sources: &[PathBuf],
    started: Option<&fingerprint::Started>,
) -> String {
    if has_deps(ctx) {
        deps::inputs_fingerprint(&ctx.workspace.root, sources, started)
    } else {
        String::new()
    }
}

/// Whether any selected module has crate dependencies.
fn has_deps(ctx: &BuildContext) -> bool {
    ctx.modules.iter().any(|m| !m.crate_deps.is_empty())
}

/// The `kmod_macros` proc macro for the tree's rustc, and the crates.io dependencies built by
/// cargo for the kernel (linked into the modules), by package.
fn macros_and_deps(
    shell: &Shell,
    ctx: &BuildContext,
    opts: &BuildOptions,
    tc: &Toolchain,
    features: &BTreeMap<String, BTreeSet<String>>,
    started: Option<&mut fingerprint::Started>,
) -> Result<(PathBuf, BTreeMap<String, deps::ModuleDeps>)> {
    let macros = match &ctx.rustc {
        Some(r) => plan::macros::ensure_macros_for(shell, &ctx.home, r)?,
        None => plan::macros::ensure_macros(shell, &ctx.home, &ctx.tree)?,
    };
    let module_deps = ctx.crate_deps(
        shell,
        tc,
        features,
        &ctx.kmod_dir(),
        DepsOptions {
            release: opts.release,
            mode: opts.cargo,
            jobs: Some(opts.jobs),
        },
    )?;
    if let (true, Some(started)) = (has_deps(ctx), started) {
        // cargo resolved into `Cargo.lock` (writing it when the resolution changed): from
        // here on, a modification of it is an edit.
        started.settle(&ctx.workspace.root.join("Cargo.lock"))?;
    }
    Ok((macros, module_deps))
}

/// Write the plan with its generated bindings, and make kbuild recompile a crate whose
/// cargo-like environment changed.
fn write_plan(shell: &Shell, ctx: &BuildContext, tc: &Toolchain, plan: &plan::Plan) -> Result<()> {
    let tree = &ctx.tree;
    // Bindings need kbuild's flags for this tree: probe once per tree configuration.
    if ctx.modules.iter().any(|m| !m.bindings.is_empty()) {
        let probe = ctx.kmod_dir().join(".probe");
        std::fs::create_dir_all(&probe)
            .with_context(|| format!("cannot create `{}`", probe.display()))?;
        let flags = plan::bindings::kbuild_cflags(shell, tree, tc, &probe)?;
        for (m, pm) in ctx.modules.iter().zip(&plan.modules) {
            for b in &m.bindings {
                plan::bindings::generate(shell, b, &m.manifest_path, &flags, &pm.out_dir, tc)?;
            }
        }
    }
    plan.write()?;
    for (m, pm) in ctx.modules.iter().zip(&plan.modules) {
        let env_hash =
            crate::fsutil::sha256_hex(format!("{:?}", m.env(tree, &pm.out_dir)).as_bytes());
        crate::kbuild::invalidate_on_env_change(&pm.dir, &pm.rust_object, &env_hash)?;
    }
    Ok(())
}

/// The kbuild pass over the plan, its output in `kbuild.log` and on the terminal.
fn run_kbuild(
    shell: &Shell,
    ctx: &BuildContext,
    opts: &BuildOptions,
    tc: &Toolchain,
    plan: &plan::Plan,
    names: &[&str],
) -> Result<()> {
    let log = plan.base.join("kbuild.log");
    let run = crate::kbuild::ModulesRun {
        dir: &plan.base,
        make_args: &plan.make_args,
        jobs: Some(opts.jobs),
        log: &log,
        forward: true,
    };
    crate::kbuild::run(shell, &ctx.tree, tc, &run).with_context(|| {
        format!(
            "could not compile {}",
            names
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    })
}

/// Record the stamp of a finished build: what this pass read, from kbuild's own dependency
/// lists (the next no-op check covers exactly those files), the dependency inputs as they
/// are now (cargo may have written the lock), and the published `.ko` files.
fn record(
    ctx: &BuildContext,
    plan: &plan::Plan,
    module_deps: &BTreeMap<String, deps::ModuleDeps>,
    stamp: &Path,
    base_fingerprint: String,
    started: &fingerprint::Started,
) -> Result<()> {
    let read = crate::kbuild::dependencies(&ctx.tree, plan.modules.iter().map(|m| m.dir.as_path()));
    if started.any_changed(&read) {
        // The stamp records the edit, so the next build is not `Fresh`; kbuild must not
        // find the objects up to date either.
        for m in &plan.modules {
            crate::kbuild::forget_objects(&m.dir);
        }
    }
    let sources: Vec<PathBuf> = module_deps
        .values()
        .flat_map(|d| d.sources.clone())
        .collect();
    deps::record_sources(stamp, &sources)?;
    let fingerprint = base_fingerprint + &deps_inputs(ctx, &sources, Some(started));
    let published: Vec<PathBuf> = ctx
        .modules
        .iter()
        .map(|m| plan.base.join(format!("{}.ko", m.name)))
        .collect();
    fingerprint::store(stamp, &fingerprint, &read, &published, started)
}

/// The fingerprint of everything known before kbuild runs (the stamp adds the files the
/// last pass read).
fn fingerprint_of(
    ctx: &BuildContext,
    opts: &BuildOptions,
    features: &BTreeMap<String, BTreeSet<String>>,
    extra_symbols: &[PathBuf],
    base: &Path,
    rust_sources: bool,
) -> String {
    let tree = &ctx.tree;
    let mut fp = Fingerprint::default();
    fp.value("cargo-kmod", env!("CARGO_PKG_VERSION"));
    fp.value("tree", &tree.dir.display().to_string());
    fp.value("tools", &format!("{:?}", tree.tools));
    fp.file(&tree.dir.join(".config"));
    fp.file(&tree.dir.join("Module.symvers"));
    fp.value("rustc", ctx.rustc.as_deref().unwrap_or(""));
    fp.value("base", &base.display().to_string());
    fp.value("test", &opts.test.to_string());
    fp.value("release", &opts.release.to_string());
    fp.value("features", &format!("{features:?}"));
    for s in extra_symbols {
        fp.value("extra-symbols", &s.display().to_string());
        fp.file(s);
    }
    for m in &ctx.modules {
        fp.value("module", &format!("{m:?}"));
        fp.file(&m.manifest_path);
        // Files kbuild does not see (bindgen's headers) and new files in the package.
        if rust_sources {
            fp.tree(&m.dir);
        } else {
            fp.tree_except(&m.dir, |p| p.extension().is_some_and(|x| x == "rs"));
        }
        for p in m
            .c_sources
            .iter()
            .chain(m.include_dirs.iter())
            .chain(m.bindings.iter().map(|b| &b.header))
        {
            if p.is_dir() {
                fp.tree(p)
            } else {
                fp.file(p)
            }
        }
    }
    fp.file(&ctx.workspace.root.join("Cargo.toml"));
    fp.finish()
}

/// Hold `dir/.kmod-lock` until the returned file is dropped; say so when waiting.
fn lock_build_dir(shell: &Shell, dir: &Path) -> Result<std::fs::File> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create `{}`", dir.display()))?;
    let path = dir.join(".kmod-lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open `{}`", path.display()))?;
    if file.try_lock().is_err() {
        shell.status(
            "Blocking",
            format_args!(
                "waiting for file lock on build directory `{}`",
                dir.display()
            ),
        );
        file.lock()
            .with_context(|| format!("cannot lock `{}`", path.display()))?;
    }
    Ok(file)
}

fn publish_dir(out_dir: &Path, test: bool) -> PathBuf {
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

fn artifacts(ctx: &BuildContext, out_dir: &Path, test: bool) -> Vec<Artifact> {
    let kmod_root = ctx.workspace.target_dir.join("kmod");
    ctx.modules
        .iter()
        .map(|m| artifact(m, &ctx.tree, out_dir, test, &kmod_root))
        .collect()
}

fn artifact(
    m: &ModuleSpec,
    tree: &KernelTree,
    out_dir: &Path,
    test: bool,
    kmod_root: &Path,
) -> Artifact {
    let dir = publish_dir(out_dir, test);
    let ko = dir.join(format!("{}.ko", m.name));
    let vermagic = crate::ko::read(&ko)
        .ok()
        .and_then(|k| k.module.vermagic().map(str::to_string))
        .unwrap_or_default();
    Artifact {
        module: m.name.clone(),
        package: m.package.clone(),
        version: m.version.clone(),
        symvers: dir.join("Module.symvers"),
        ko,
        arch: tree.arch,
        release: tree.release.clone(),
        vermagic,
        module_deps: m.module_deps.clone(),
        tree: tree.clone(),
        kmod_root: kmod_root.to_path_buf(),
    }
}
