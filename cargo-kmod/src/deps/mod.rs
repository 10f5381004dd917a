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
//! Everything lives in `target/kmod/<arch>/<tree>/deps/<hash of flags and rustc>/`: cargo's target
//! dir, the extracted objects (`objs/`), and one result file per module that lets a rebuild
//! whose dependency inputs did not change skip cargo entirely.
//!
//! [`flags`] probes and derives the flags, `cargo` runs cargo and explains failures,
//! [`wrapper`] is the rustc wrapper, `graph` reads the resolve graph, `link` turns cargo's
//! messages into what the plan needs.

mod cargo;
pub mod flags;
mod graph;
mod link;
pub mod wrapper;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::kbuild::fingerprint::{Fingerprint, Started};
use crate::kernel::KernelTree;
use crate::manifest::ModuleSpec;
use crate::shell::Shell;

pub use flags::DepFlags;
pub use link::extract_objects;

use cargo::{build_module, metadata};
#[cfg(test)]
use cargo::{cargo_program, needs_crate};
use graph::Graph;

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
    tc: &crate::kernel::toolchain::Toolchain,
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
            crate::kernel::toolchain::rustc_program()
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
            rustc: crate::kernel::toolchain::rustc_program(),
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
    /// The workspace root (its `Cargo.lock` and cargo's config files are inputs).
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
    /// `target/kmod/<arch>/<tree>/deps`.
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
/// config files (wherever cargo finds them: [`crate::manifest::cargo_config_files`]), and
/// the sources of local dependency packages. Registry and git sources are pinned by the
/// lock file. `started`: taken after the build that began then (a file
/// modified since is recorded as changed).
pub fn inputs_fingerprint(
    workspace_root: &Path,
    sources: &[PathBuf],
    started: Option<&Started>,
) -> String {
    let mut fp = match started {
        Some(s) => Fingerprint::after(s),
        None => Fingerprint::default(),
    };
    fp.file(&workspace_root.join("Cargo.lock"));
    for config in crate::manifest::cargo_config_files(workspace_root) {
        fp.file(&config);
    }
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
fn inputs_hash(
    input: &DepsInput<'_>,
    m: &ModuleSpec,
    sources: &[PathBuf],
    started: Option<&Started>,
) -> String {
    let mut fp = match started {
        Some(s) => Fingerprint::after(s),
        None => Fingerprint::default(),
    };
    fp.value("cargo-kmod", env!("CARGO_PKG_VERSION"));
    fp.value("module", &m.package);
    fp.value("features", &format!("{:?}", input.features.get(&m.package)));
    fp.value("release", &input.release.to_string());
    fp.file(&m.manifest_path);
    fp.file(&input.workspace_root.join("Cargo.toml"));
    fp.value(
        "inputs",
        &inputs_fingerprint(input.workspace_root, sources, started),
    );
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
                if c.inputs == inputs_hash(input, m, &c.deps.sources, None)
                    && c.deps.files_exist() =>
            {
                out.insert(m.package.clone(), c.deps);
            }
            _ => todo.push(*m),
        }
    }
    if todo.is_empty() {
        return Ok(out);
    }
    // cargo reads the inputs from here on: one edited before the result is cached may not
    // be in what it built, and must not look unchanged to the next build. `Cargo.lock` is
    // cargo's to write while it resolves (`cargo metadata`); it is an input again after.
    let mut started = Started::now(&dir, &[])?;
    let meta = metadata(shell, input, &todo[0].manifest_path)?;
    started.settle(&input.workspace_root.join("Cargo.lock"))?;
    let graph = Graph::new(&meta, &input.module_packages);
    for m in todo {
        let deps = build_module(shell, input, &dir, &graph, m)?;
        let cached = CachedResult {
            inputs: inputs_hash(input, m, &deps.sources, Some(&started)),
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

#[cfg(test)]
mod tests;
