//! `[dependencies]` of module packages: crates from crates.io (or paths, or git) compiled for
//! the kernel and linked into the `.ko`.
//!
//! ```text
//! kbuild's $(rust_flags) ──► flags::for_dependencies ──► cargo build -p <module> --lib
//!   (probed per tree)          (target, codegen, -Z,       --target <kernel target>
//!                               cfgs; --sysroot=/dev/null   (cargo-kmod as the workspace
//!                               -L <tree>/rust)              rustc wrapper: the module
//!                                                            crate itself is only recorded)
//!      ──► per module: --extern/-L for the module crate, objects extracted from the rlibs
//!          of its dependency closure ──► plan: `<module>-y += dep_*.o`, `rustflags-y`
//! ```
//!
//! cargo does what cargo does: the lock file, feature unification for `-p <module>` (with
//! the module's enabled features), fetching, build scripts (run as cargo runs them, seeing
//! the kernel target in `TARGET`/`CARGO_CFG_*`), proc macros and their dependencies built
//! for the host, `--offline`/`--locked`/`--frozen`, and its own fingerprints. It runs with the
//! tree's rustc, and with kbuild's Rust flags for the target units only (cargo applies
//! `CARGO_ENCODED_RUSTFLAGS` to target units when `--target` is given), so each library
//! crate is compiled against the kernel's `core` (and `alloc` only where the tree has one)
//! with the flags kbuild gives the module. See [`wrapper`] for how the module crate itself is
//! left to kbuild.
//!
//! Everything lives in `target/kmod/<arch>/deps/<hash of flags and rustc>/`: cargo's target
//! dir, the extracted objects (`objs/`), and one result file per module that lets a rebuild
//! whose dependency inputs did not change skip cargo entirely.

pub mod flags;
pub mod wrapper;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use cargo_metadata::{DependencyKind, Message, Metadata, PackageId};
use serde::{Deserialize, Serialize};
use xshell::cmd;

use crate::error::UserError;
use crate::kbuild::fingerprint::Fingerprint;
use crate::manifest::ModuleSpec;
use crate::shell::Shell;
use crate::tree::KernelTree;

pub use flags::DepFlags;

/// How cargo may reach the network and the lock file (`cargo build`'s own flags).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CargoMode {
    pub offline: bool,
    pub locked: bool,
    pub frozen: bool,
}

impl CargoMode {
    fn args(self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.offline {
            v.push("--offline");
        }
        if self.locked {
            v.push("--locked");
        }
        if self.frozen {
            v.push("--frozen");
        }
        v
    }
}

/// Options of a build that reach the dependency stage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DepsOptions {
    pub release: bool,
    pub mode: CargoMode,
    pub jobs: Option<usize>,
}

/// The dependencies of `modules` for `tree`, by package (modules without crate dependencies
/// have no entry, and when none has any, nothing runs). `rustc` is the tree's rustc's
/// `--version` line; `dir` is `target/kmod/<arch>`.
#[allow(clippy::too_many_arguments)]
pub fn prepare(
    shell: &Shell,
    ws: &crate::manifest::Workspace,
    modules: &[&ModuleSpec],
    tree: &KernelTree,
    tc: &crate::tree::toolchain::Toolchain,
    rustc: Option<&str>,
    features: &BTreeMap<String, BTreeSet<String>>,
    dir: &Path,
    opts: DepsOptions,
) -> Result<BTreeMap<String, ModuleDeps>> {
    let with_deps: Vec<&ModuleSpec> = modules
        .iter()
        .copied()
        .filter(|m| !m.crate_deps.is_empty())
        .collect();
    if with_deps.is_empty() {
        return Ok(BTreeMap::new());
    }
    let kflags = flags::kbuild_rustflags(shell, tree, tc, &dir.join(".probe"))?;
    let Some(rustc_version) = rustc else {
        crate::bail_user!(
            "cannot run `{} --version`, which dependency crates need",
            crate::tree::toolchain::rustc_program()
        );
    };
    build(
        shell,
        &DepsInput {
            workspace_root: &ws.root,
            modules: with_deps,
            module_packages: ws.modules.iter().map(|m| m.package.clone()).collect(),
            features,
            tree,
            rustc: crate::tree::toolchain::rustc_program(),
            rustc_version: rustc_version.to_string(),
            flags: flags::for_dependencies(&kflags, tree, opts.release)?,
            dir: dir.join("deps"),
            release: opts.release,
            mode: opts.mode,
            jobs: opts.jobs,
        },
    )
}

/// What the dependency stage works from.
#[derive(Debug, Clone)]
pub struct DepsInput<'a> {
    /// The workspace root (its `Cargo.lock` and `.cargo/config.toml` are inputs).
    pub workspace_root: &'a Path,
    /// The modules to resolve (those with [`ModuleSpec::crate_deps`]).
    pub modules: Vec<&'a ModuleSpec>,
    /// Every module package of the workspace: their crates are kbuild's, never linked.
    pub module_packages: Vec<String>,
    /// Enabled cargo features per package.
    pub features: &'a BTreeMap<String, BTreeSet<String>>,
    pub tree: &'a KernelTree,
    /// The tree's rustc (`RUSTC` or `rustc`) and its `--version` line.
    pub rustc: String,
    pub rustc_version: String,
    pub flags: DepFlags,
    /// `target/kmod/<arch>/deps`.
    pub dir: PathBuf,
    pub release: bool,
    pub mode: CargoMode,
    pub jobs: Option<usize>,
}

/// One module's view of its dependencies, ready for the plan.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleDeps {
    /// `--extern name=path` and `-L dependency=dir` for the module crate.
    pub rustflags: Vec<String>,
    /// Objects of the library crates it links (from the rlibs of its dependency closure).
    pub objects: Vec<PathBuf>,
    /// Directories of local (path) dependency packages: their sources are build inputs.
    pub sources: Vec<PathBuf>,
    /// The crates it uses (linked ones and proc macros), for `rust-project.json`.
    pub crates: Vec<DepCrate>,
}

/// One dependency crate as rust-analyzer needs to see it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DepCrate {
    /// cargo's package id (unique).
    pub id: String,
    /// The library target's crate name.
    pub name: String,
    pub version: String,
    /// The crate root (`src/lib.rs` of the package).
    pub root: PathBuf,
    pub edition: String,
    /// Enabled features.
    pub features: Vec<String>,
    /// `--cfg`s from its build script.
    pub cfgs: Vec<String>,
    /// Environment from its build script (`cargo:rustc-env=`), and `OUT_DIR`.
    pub env: Vec<(String, String)>,
    /// The compiled proc macro, for proc-macro crates.
    pub proc_macro: Option<PathBuf>,
    /// Its dependencies among these crates: (extern name, id).
    pub deps: Vec<(String, String)>,
    /// The name the module crate uses for it, when it depends on it directly.
    pub direct: Option<String>,
}

impl ModuleDeps {
    fn files_exist(&self) -> bool {
        self.objects.iter().all(|o| o.is_file())
            && self
                .rustflags
                .iter()
                .filter_map(|f| f.strip_prefix("--extern "))
                .filter_map(|e| e.split_once('=').map(|(_, p)| p))
                .all(|p| Path::new(p).is_file())
    }
}

/// The no-op fingerprint's share for modules with dependencies: the lock file, cargo's
/// config, and the sources of local dependency packages. Registry and git sources are
/// pinned by the lock file.
pub fn inputs_fingerprint(workspace_root: &Path, sources: &[PathBuf]) -> String {
    let mut fp = Fingerprint::default();
    fp.file(&workspace_root.join("Cargo.lock"));
    fp.file(&workspace_root.join(".cargo/config.toml"));
    fp.file(&workspace_root.join(".cargo/config"));
    for s in sources {
        fp.value("source", &s.display().to_string());
        fp.tree(s);
    }
    fp.finish()
}

/// The local dependency sources the last build under `stamp` recorded.
pub fn recorded_sources(stamp: &Path) -> Vec<PathBuf> {
    std::fs::read_to_string(stamp.with_extension("deps.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

/// Record the local dependency sources of a build next to its no-op stamp.
pub fn record_sources(stamp: &Path, sources: &[PathBuf]) -> Result<()> {
    let path = stamp.with_extension("deps.json");
    if sources.is_empty() {
        let _ = std::fs::remove_file(&path);
        return Ok(());
    }
    crate::fsutil::write_if_changed(&path, serde_json::to_string(sources)?.as_bytes())?;
    Ok(())
}

/// The cargo target dir for these flags and this rustc.
pub fn cargo_dir(input: &DepsInput<'_>) -> PathBuf {
    let key = crate::fsutil::sha256_hex(
        format!(
            "{}\n{}\n{}\n{}",
            input.rustc_version,
            input.flags.target,
            input.flags.rustflags.join("\x1f"),
            env!("CARGO_PKG_VERSION")
        )
        .as_bytes(),
    );
    input.dir.join(&key[..16])
}

/// The inputs of one module's dependency set besides its own sources: manifests, the lock
/// file, cargo's config, local dependency sources, features and flags.
fn inputs_hash(input: &DepsInput<'_>, m: &ModuleSpec, sources: &[PathBuf]) -> String {
    let mut fp = Fingerprint::default();
    fp.value("cargo-kmod", env!("CARGO_PKG_VERSION"));
    fp.value("module", &m.package);
    fp.value("features", &format!("{:?}", input.features.get(&m.package)));
    fp.value("release", &input.release.to_string());
    fp.file(&m.manifest_path);
    fp.file(&input.workspace_root.join("Cargo.toml"));
    fp.value("inputs", &inputs_fingerprint(input.workspace_root, sources));
    fp.finish()
}

#[derive(Serialize, Deserialize)]
struct CachedResult {
    inputs: String,
    deps: ModuleDeps,
}

/// Resolve and build the dependencies of `input.modules`: per package, what its Kbuild needs.
pub fn build(shell: &Shell, input: &DepsInput<'_>) -> Result<BTreeMap<String, ModuleDeps>> {
    let dir = cargo_dir(input);
    let mut out = BTreeMap::new();
    let mut todo = Vec::new();
    for m in &input.modules {
        let cache = dir.join(format!("kmod-{}.json", m.package));
        let cached: Option<CachedResult> = std::fs::read_to_string(&cache)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok());
        match cached {
            Some(c)
                if c.inputs == inputs_hash(input, m, &c.deps.sources) && c.deps.files_exist() =>
            {
                out.insert(m.package.clone(), c.deps);
            }
            _ => todo.push(*m),
        }
    }
    if todo.is_empty() {
        return Ok(out);
    }
    let meta = metadata(shell, input, &todo[0].manifest_path)?;
    let graph = Graph::new(&meta, &input.module_packages);
    for m in todo {
        let deps = build_module(shell, input, &dir, &graph, m)?;
        let cached = CachedResult {
            inputs: inputs_hash(input, m, &deps.sources),
            deps: deps.clone(),
        };
        crate::fsutil::write_atomic(
            &dir.join(format!("kmod-{}.json", m.package)),
            serde_json::to_string_pretty(&cached)?.as_bytes(),
        )?;
        out.insert(m.package.clone(), deps);
    }
    Ok(out)
}

/// `cargo metadata` with dependencies: the resolve graph (for the link closure, local
/// sources and error paths). It writes `Cargo.lock` as cargo does, unless `--locked`.
fn metadata(shell: &Shell, input: &DepsInput<'_>, manifest: &Path) -> Result<Metadata> {
    let sh = xshell::Shell::new()?;
    let cargo = cargo_program();
    let mode = input.mode.args();
    let c = cmd!(
        sh,
        "{cargo} metadata --format-version 1 --manifest-path {manifest} {mode...}"
    );
    let json = crate::process::run(shell, c).map_err(cargo_error)?;
    serde_json::from_str(&json).context("cannot parse `cargo metadata` output")
}

fn cargo_program() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// A failed cargo run as a user error: its `error:` line, the rest as the hint.
fn cargo_error(e: anyhow::Error) -> anyhow::Error {
    let Some(pe) = e.downcast_ref::<crate::process::ProcessError>() else {
        return e;
    };
    let Some(i) = pe.tail.iter().position(|l| l.starts_with("error")) else {
        return e;
    };
    let line = pe.tail[i]
        .trim_start_matches("error: ")
        .trim_start_matches("error:")
        .trim()
        .to_string();
    let rest: Vec<&str> = pe.tail[i + 1..]
        .iter()
        .map(String::as_str)
        .filter(|l| !l.trim().is_empty() && !l.starts_with('{'))
        .take(8)
        .collect();
    let mut u = UserError::new(line);
    if !rest.is_empty() {
        u = u.with_hint(rest.join("\n"));
    }
    u.into()
}

/// The resolve graph, as far as linking and messages need it.
struct Graph<'m> {
    meta: &'m Metadata,
    modules: BTreeSet<PackageId>,
    proc_macros: BTreeSet<PackageId>,
}

impl<'m> Graph<'m> {
    fn new(meta: &'m Metadata, module_packages: &[String]) -> Graph<'m> {
        let members: BTreeSet<&PackageId> = meta.workspace_members.iter().collect();
        let modules = meta
            .packages
            .iter()
            .filter(|p| members.contains(&p.id) && module_packages.contains(&p.name.to_string()))
            .map(|p| p.id.clone())
            .collect();
        let proc_macros = meta
            .packages
            .iter()
            .filter(|p| p.targets.iter().any(|t| t.is_proc_macro()))
            .map(|p| p.id.clone())
            .collect();
        Graph {
            meta,
            modules,
            proc_macros,
        }
    }

    fn package_named(&self, name: &str) -> Option<&'m cargo_metadata::Package> {
        let members: BTreeSet<&PackageId> = self.meta.workspace_members.iter().collect();
        self.meta
            .packages
            .iter()
            .find(|p| p.name.as_str() == name && members.contains(&p.id))
    }

    fn package(&self, id: &PackageId) -> Option<&'m cargo_metadata::Package> {
        self.meta.packages.iter().find(|p| &p.id == id)
    }

    /// Dependencies of `id` of the given kinds, skipping module crates (kbuild's).
    fn deps(&self, id: &PackageId, kinds: &[DependencyKind]) -> Vec<&'m PackageId> {
        let Some(resolve) = &self.meta.resolve else {
            return vec![];
        };
        let Some(node) = resolve.nodes.iter().find(|n| &n.id == id) else {
            return vec![];
        };
        node.deps
            .iter()
            .filter(|d| {
                d.dep_kinds.is_empty() || d.dep_kinds.iter().any(|k| kinds.contains(&k.kind))
            })
            .map(|d| &d.pkg)
            .filter(|p| !self.modules.contains(p))
            .collect()
    }

    /// What a module links: its normal dependencies, transitively, not through proc macros.
    fn link_closure(&self, root: &PackageId) -> BTreeSet<PackageId> {
        let mut seen = BTreeSet::new();
        let mut queue: VecDeque<&PackageId> = self.deps(root, &[DependencyKind::Normal]).into();
        while let Some(p) = queue.pop_front() {
            if self.proc_macros.contains(p) || !seen.insert(p.clone()) {
                continue;
            }
            queue.extend(self.deps(p, &[DependencyKind::Normal]));
        }
        seen
    }

    /// Everything a module's build reads (normal and build dependencies, proc macros too).
    fn full_closure(&self, root: &PackageId) -> BTreeSet<PackageId> {
        let kinds = [DependencyKind::Normal, DependencyKind::Build];
        let mut seen = BTreeSet::new();
        let mut queue: VecDeque<&PackageId> = self.deps(root, &kinds).into();
        while let Some(p) = queue.pop_front() {
            if seen.insert(p.clone()) {
                queue.extend(self.deps(p, &kinds));
            }
        }
        seen
    }

    /// `blink -> foo -> bar`: the shortest dependency path from `root` to `to`.
    fn path(&self, root: &PackageId, to: &PackageId) -> String {
        let kinds = [DependencyKind::Normal, DependencyKind::Build];
        let mut prev: BTreeMap<&PackageId, &PackageId> = BTreeMap::new();
        let mut queue = VecDeque::from([root]);
        let mut seen = BTreeSet::from([root]);
        while let Some(p) = queue.pop_front() {
            if p == to {
                break;
            }
            for d in self.deps(p, &kinds) {
                if seen.insert(d) {
                    prev.insert(d, p);
                    queue.push_back(d);
                }
            }
        }
        let mut names = vec![self.name(to)];
        let mut at = to;
        while let Some(p) = prev.get(at) {
            names.push(self.name(p));
            at = p;
        }
        if at != root {
            names.push(self.name(root));
        }
        names.reverse();
        names.join(" -> ")
    }

    fn name(&self, id: &PackageId) -> String {
        self.package(id)
            .map(|p| p.name.to_string())
            .unwrap_or_else(|| id.repr.clone())
    }
}

/// `cargo build -p <module> --lib --target <kernel>` and what it produced for the module.
fn build_module(
    shell: &Shell,
    input: &DepsInput<'_>,
    dir: &Path,
    graph: &Graph<'_>,
    m: &ModuleSpec,
) -> Result<ModuleDeps> {
    let Some(pkg) = graph.package_named(&m.package) else {
        anyhow::bail!("`cargo metadata` does not list package `{}`", m.package);
    };
    let sh = xshell::Shell::new()?;
    let cargo = cargo_program();
    let manifest = &m.manifest_path;
    // The full package id: a dependency may share the module package's name.
    let package = &pkg.id.repr;
    let target = &input.flags.target;
    let mut args: Vec<String> = input.mode.args().iter().map(|s| s.to_string()).collect();
    args.push("--no-default-features".into());
    let features: Vec<String> = input
        .features
        .get(&m.package)
        .map(|f| f.iter().cloned().collect())
        .unwrap_or_default();
    if !features.is_empty() {
        args.push("--features".into());
        args.push(features.join(","));
    }
    if input.release {
        args.push("--release".into());
    }
    if let Some(j) = input.jobs {
        args.push(format!("-j{j}"));
    }
    if shell.verbosity == crate::shell::Verbosity::Quiet {
        args.push("--quiet".into());
    }
    if target.ends_with(".json") {
        // cargo wants its unstable flag for spec files (x86_64's `scripts/target.json`);
        // `RUSTC_BOOTSTRAP=1`, which kbuild exports for rustc too, allows it.
        args.push("-Zjson-target-spec".into());
    }
    let exe = std::env::current_exe().context("cannot find the cargo-kmod executable")?;
    let c = cmd!(
        sh,
        "{cargo} build --lib -p {package} --manifest-path {manifest} --target {target} --target-dir {dir} --message-format json {args...}"
    )
    .env("RUSTC", &input.rustc)
    .env("RUSTC_WORKSPACE_WRAPPER", &exe)
    .env(wrapper::INTERCEPT_ENV, input.module_packages.join(","))
    .env("CARGO_ENCODED_RUSTFLAGS", input.flags.rustflags.join("\x1f"))
    // kbuild exports it too: the kernel's flags use `-Z` options on a stable rustc.
    .env("RUSTC_BOOTSTRAP", "1")
    .env_remove("RUSTFLAGS")
    .env_remove("CARGO_BUILD_RUSTFLAGS")
    .env_remove("CARGO_BUILD_TARGET")
    .env_remove("CARGO_TARGET_DIR")
    .env_remove("CARGO_BUILD_TARGET_DIR")
    // Empty: no other wrapper, not even one from cargo's config (cargo's documented reset).
    .env("RUSTC_WRAPPER", "")
    .env_remove("CARGO_BUILD_RUSTC_WRAPPER");
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create `{}`", dir.display()))?;
    let log = dir.join(format!("kmod-cargo-{}.log", m.package));
    let _ = std::fs::remove_file(&log);
    let quiet = shell.verbosity == crate::shell::Verbosity::Quiet;
    let mut messages = Vec::new();
    let modules: BTreeSet<&str> = input.module_packages.iter().map(String::as_str).collect();
    let result = crate::process::run_logged(shell, c, &log, |line| {
        if line.starts_with('{') {
            if let Ok(msg) = serde_json::from_str::<Message>(line) {
                messages.push(msg);
            }
            return;
        }
        // cargo's status lines, except its `Finished` and the module crates' stubs.
        let mut words = line.split_whitespace();
        let verb = words.next().unwrap_or("");
        let what = words.next().unwrap_or("");
        // cargo's own `error:` lines go to the log: the error below explains them.
        let hidden = verb == "Finished"
            || verb.starts_with("error")
            || (verb == "Compiling" && modules.contains(what));
        if !quiet && !hidden {
            eprintln!("{line}");
        }
    });
    if let Err(e) = result {
        return Err(
            explain_failure(shell, graph, &pkg.id, &messages, input.tree)
                .unwrap_or_else(|| cargo_error(e)),
        );
    }
    for msg in &messages {
        if let Message::CompilerMessage(cm) = msg {
            if let Some(r) = &cm.message.rendered {
                if !quiet && !graph.modules.contains(&cm.package_id) {
                    eprint!("{r}");
                }
            }
        }
    }
    collect(input, dir, graph, &pkg.id, m, &messages)
}

/// A failed build explained: a crate that needs `std` or `alloc`, or the first compile error.
fn explain_failure(
    shell: &Shell,
    graph: &Graph<'_>,
    root: &PackageId,
    messages: &[Message],
    tree: &KernelTree,
) -> Option<anyhow::Error> {
    let errors: Vec<&cargo_metadata::CompilerMessage> = messages
        .iter()
        .filter_map(|m| match m {
            Message::CompilerMessage(cm)
                if cm.message.level == cargo_metadata::diagnostic::DiagnosticLevel::Error =>
            {
                Some(cm)
            }
            _ => None,
        })
        .collect();
    let first = errors.first()?;
    for cm in &errors {
        let text = &cm.message.message;
        let missing = ["std", "alloc"]
            .into_iter()
            .find(|c| text.contains(&format!("can't find crate for `{c}`")));
        if let Some(what) = missing {
            return Some(needs_crate(graph, root, &cm.package_id, what, tree).into());
        }
    }
    for cm in &errors {
        if let Some(r) = &cm.message.rendered {
            if shell.verbosity != crate::shell::Verbosity::Quiet {
                eprint!("{r}");
            }
        }
    }
    let name = graph.name(&first.package_id);
    let version = graph
        .package(&first.package_id)
        .map(|p| format!(" v{}", p.version))
        .unwrap_or_default();
    Some(
        UserError::new(format!(
            "could not compile dependency `{name}{version}` for the kernel ({}): {}",
            tree.arch, first.message.message
        ))
        .with_hint(format!(
            "pulled in by `{}`; kernel modules get `core` only, with the kernel's target and flags",
            graph.path(root, &first.package_id)
        ))
        .into(),
    )
}

/// The error for a crate that needs `std` (or `alloc` where the tree has none).
fn needs_crate(
    graph: &Graph<'_>,
    root: &PackageId,
    failed: &PackageId,
    what: &str,
    tree: &KernelTree,
) -> UserError {
    let name = graph.name(failed);
    let path = graph.path(root, failed);
    let names: Vec<&str> = path.split(" -> ").collect();
    let direct = names.get(1).copied().unwrap_or(name.as_str());
    let manifest = graph
        .package(root)
        .map(|p| p.manifest_path.to_string())
        .unwrap_or_default();
    let has_feature = graph
        .package(failed)
        .is_some_and(|p| p.features.contains_key(what));
    let gives = match what {
        "std" => "kernel modules do not have".to_string(),
        _ => format!("Linux {} does not give modules", tree.release),
    };
    let hint = if !has_feature {
        format!(
            "`{name}` has no `{what}` feature to turn off: use a `no_std` crate instead (one that needs only `core`)"
        )
    } else if direct == name {
        format!(
            "`{name}` has a `{what}` feature: depend on it with `default-features = false` in `{manifest}` (and enable only features that avoid `{what}`), or use another crate"
        )
    } else {
        format!(
            "`{name}` has a `{what}` feature, turned on through `{direct}`: depend on `{direct}` with `default-features = false` in `{manifest}` if that turns it off, or use another crate"
        )
    };
    UserError::new(format!(
        "dependency `{name}` needs `{what}`, which {gives}: `{path}`"
    ))
    .with_hint(hint)
}

/// From cargo's messages: the module crate's recorded `--extern`/`-L`, and the objects of
/// its link closure, extracted from their rlibs.
fn collect(
    input: &DepsInput<'_>,
    dir: &Path,
    graph: &Graph<'_>,
    root: &PackageId,
    m: &ModuleSpec,
    messages: &[Message],
) -> Result<ModuleDeps> {
    let target_dir = dir.join(input.flags.target_name());
    let closure = graph.link_closure(root);
    let mut rlibs: BTreeMap<PackageId, PathBuf> = BTreeMap::new();
    let mut stubs: BTreeSet<PathBuf> = BTreeSet::new();
    let mut recorded = None;
    for msg in messages {
        match msg {
            Message::CompilerArtifact(a) => {
                let Some(rlib) = a
                    .filenames
                    .iter()
                    .find(|f| f.extension() == Some("rlib"))
                    .map(|f| f.as_std_path().to_path_buf())
                else {
                    continue;
                };
                if graph.modules.contains(&a.package_id) {
                    if &a.package_id == root {
                        // The rlib of the unit cargo built for is uplifted; the `.rmeta`
                        // stays where rustc wrote it, next to the wrapper's record.
                        let rmeta = a
                            .filenames
                            .iter()
                            .find(|f| f.extension() == Some("rmeta"))
                            .map(|f| f.as_std_path().to_path_buf());
                        recorded = rmeta.map(|r| wrapper::record_path(&r));
                    }
                    stubs.insert(rlib);
                } else if rlib.starts_with(&target_dir) && closure.contains(&a.package_id) {
                    rlibs.insert(a.package_id.clone(), rlib);
                }
            }
            Message::BuildScriptExecuted(b) if closure.contains(&b.package_id) => {
                if let Some(lib) = b.linked_libs.first() {
                    crate::bail_user!(
                        "dependency `{}` links the native library `{}` (its build script says `cargo:rustc-link-lib`), which cannot be linked into a kernel module: `{}`",
                        graph.name(&b.package_id), lib, graph.path(root, &b.package_id);
                        hint = "use a pure-Rust crate, or put the C code into the module's `c-sources`"
                    );
                }
            }
            _ => {}
        }
    }
    let Some(recorded) = recorded else {
        anyhow::bail!(
            "cargo did not build module crate `{}` (no record of its dependencies)",
            m.package
        );
    };
    let text = std::fs::read_to_string(&recorded)
        .with_context(|| format!("cannot read `{}`", recorded.display()))?;
    let rec: wrapper::Recorded = serde_json::from_str(&text)
        .with_context(|| format!("cannot parse `{}`", recorded.display()))?;
    let mut rustflags = Vec::new();
    for e in &rec.externs {
        let is_stub = e
            .split_once('=')
            .is_some_and(|(_, p)| stubs.contains(Path::new(p)));
        if !is_stub {
            rustflags.push(format!("--extern {e}"));
        }
    }
    // cargo's search paths for transitive crates; kbuild passes the tree's `rust/` itself.
    for l in rec
        .lib_paths
        .iter()
        .filter(|l| l.starts_with("dependency="))
    {
        rustflags.push(format!("-L {l}"));
    }
    let objdir = dir.join("objs");
    let mut objects = Vec::new();
    for rlib in rlibs.values() {
        objects.extend(extract_objects(rlib, &objdir)?);
    }
    let crates = dep_crates(graph, root, &rlibs, messages);
    let sources = graph
        .full_closure(root)
        .iter()
        .filter_map(|id| graph.package(id))
        .filter(|p| p.source.is_none())
        .filter_map(|p| {
            p.manifest_path
                .parent()
                .map(|d| d.as_std_path().to_path_buf())
        })
        .collect();
    Ok(ModuleDeps {
        rustflags,
        objects,
        sources,
        crates,
    })
}

/// The crates of a module's build for rust-analyzer: the linked ones and the proc macros
/// they (or the module) use, with their features, build-script output and edges.
fn dep_crates(
    graph: &Graph<'_>,
    root: &PackageId,
    rlibs: &BTreeMap<PackageId, PathBuf>,
    messages: &[Message],
) -> Vec<DepCrate> {
    let mut crates: BTreeMap<PackageId, DepCrate> = BTreeMap::new();
    for msg in messages {
        let Message::CompilerArtifact(a) = msg else {
            continue;
        };
        let proc_macro = a.target.is_proc_macro();
        if !(rlibs.contains_key(&a.package_id) || proc_macro)
            || graph.modules.contains(&a.package_id)
        {
            continue;
        }
        let dylib = a
            .filenames
            .iter()
            .find(|f| f.extension() == Some("so"))
            .map(|f| f.as_std_path().to_path_buf());
        crates.insert(
            a.package_id.clone(),
            DepCrate {
                id: a.package_id.repr.clone(),
                name: a.target.name.replace('-', "_"),
                version: graph
                    .package(&a.package_id)
                    .map(|p| p.version.to_string())
                    .unwrap_or_default(),
                root: a.target.src_path.as_std_path().to_path_buf(),
                edition: a.target.edition.as_str().to_string(),
                features: a.features.clone(),
                proc_macro: if proc_macro { dylib } else { None },
                ..DepCrate::default()
            },
        );
    }
    for msg in messages {
        if let Message::BuildScriptExecuted(b) = msg {
            if let Some(c) = crates.get_mut(&b.package_id) {
                c.cfgs = b.cfgs.clone();
                c.env = b.env.clone();
                if !b.out_dir.as_str().is_empty() {
                    c.env.push(("OUT_DIR".into(), b.out_dir.to_string()));
                }
            }
        }
    }
    let ids: BTreeSet<PackageId> = crates.keys().cloned().collect();
    let edges = |from: &PackageId| -> Vec<(String, String)> {
        let Some(node) = graph
            .meta
            .resolve
            .as_ref()
            .and_then(|r| r.nodes.iter().find(|n| &n.id == from))
        else {
            return vec![];
        };
        node.deps
            .iter()
            .filter(|d| ids.contains(&d.pkg))
            .filter(|d| {
                d.dep_kinds.is_empty()
                    || d.dep_kinds.iter().any(|k| k.kind == DependencyKind::Normal)
            })
            .map(|d| (d.name.replace('-', "_"), d.pkg.repr.clone()))
            .collect()
    };
    let direct = edges(root);
    for (id, c) in crates.iter_mut() {
        c.deps = edges(id);
        c.direct = direct
            .iter()
            .find(|(_, i)| i == &id.repr)
            .map(|(n, _)| n.clone());
    }
    crates.into_values().collect()
}

/// The object files inside an rlib, written to `objdir` (unchanged ones keep their mtimes,
/// so kbuild relinks only what changed).
pub fn extract_objects(rlib: &Path, objdir: &Path) -> Result<Vec<PathBuf>> {
    let data = std::fs::read(rlib).with_context(|| format!("cannot read `{}`", rlib.display()))?;
    let archive = object::read::archive::ArchiveFile::parse(&*data)
        .with_context(|| format!("`{}` is not an rlib archive", rlib.display()))?;
    let stem = rlib
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = stem
        .strip_prefix("lib")
        .unwrap_or(&stem)
        .replace(|c: char| !(c.is_ascii_alphanumeric() || c == '_'), "_");
    let mut out = Vec::new();
    for member in archive.members() {
        let member = member.with_context(|| format!("cannot read `{}`", rlib.display()))?;
        let name = String::from_utf8_lossy(member.name());
        if !name.ends_with(".o") {
            continue;
        }
        let bytes = member
            .data(&*data)
            .with_context(|| format!("cannot read `{name}` in `{}`", rlib.display()))?;
        let file = if out.is_empty() {
            objdir.join(format!("dep_{stem}.o"))
        } else {
            objdir.join(format!("dep_{stem}_{}.o", out.len()))
        };
        crate::fsutil::write_if_changed(&file, bytes)?;
        out.push(file);
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
