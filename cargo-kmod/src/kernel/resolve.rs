//! Which kernel tree a command uses. First that applies: `--kdir`, `--target`'s `kdir`,
//! `KDIR` in the environment, the manifest's `kdir`, then the newest dev tree prepared by
//! `cargo kmod init` for the requested arch (default: the host's), or, for packages that need
//! kernel configuration the dev tree lacks, a feature tree that has it. The tree is opened with
//! its toolchain decided ([`crate::kernel::TreeTools`]), so nothing downstream re-detects it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Result;

use crate::kernel::distro;
use crate::kernel::home::Home;
use crate::kernel::{Arch, KernelTree, ToolChoice};

/// Where an explicit tree came from, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KdirOrigin {
    Flag,
    Target(String),
    Env,
    Manifest(PathBuf),
}

impl std::fmt::Display for KdirOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KdirOrigin::Flag => f.write_str("`--kdir`"),
            KdirOrigin::Target(t) => write!(f, "target `{t}`"),
            KdirOrigin::Env => f.write_str("`KDIR`"),
            KdirOrigin::Manifest(p) => write!(f, "`{}`", p.display()),
        }
    }
}

/// Candidates in priority order; the first present wins.
#[derive(Debug, Clone, Default)]
pub struct Choice {
    pub flag: Option<PathBuf>,
    pub target: Option<(String, PathBuf)>,
    /// `KDIR` from the environment.
    pub env: Option<PathBuf>,
    pub manifest: Option<(PathBuf, PathBuf)>,
    pub arch: Option<Arch>,
    /// `rustc --version`, when the caller already knows it (prefers dev trees it built).
    pub rustc: Option<String>,
    /// `LLVM=`/`CROSS_COMPILE=` chosen by a named target or the environment.
    pub tools: ToolChoice,
    /// No tree named: the sanitizer tree of the arch rather than its dev tree.
    pub sanitize: bool,
    /// The union of the selected packages' `kernel-config`: with no tree named, the dev tree
    /// when it has them, else a feature tree that has them.
    pub needs: BTreeMap<String, String>,
    /// The symbols `.ko` files import from the kernel (with no tree named: the dev tree, or
    /// a feature tree, that exports them all).
    pub ko_imports: Vec<String>,
}

impl Choice {
    pub fn explicit(&self) -> Option<(PathBuf, KdirOrigin)> {
        if let Some(p) = &self.flag {
            return Some((p.clone(), KdirOrigin::Flag));
        }
        if let Some((name, p)) = &self.target {
            return Some((p.clone(), KdirOrigin::Target(name.clone())));
        }
        if let Some(p) = &self.env {
            return Some((p.clone(), KdirOrigin::Env));
        }
        self.manifest
            .as_ref()
            .map(|(kdir, file)| (kdir.clone(), KdirOrigin::Manifest(file.clone())))
    }
}

/// Resolve the tree; an explicit tree whose arch differs from `--arch` is an error.
pub fn resolve(home: &Home, choice: &Choice) -> Result<KernelTree> {
    if let Some((dir, origin)) = choice.explicit() {
        let dir = completed(home, &dir)?;
        let tree = KernelTree::open_with(&dir, &choice.tools)
            .map_err(|e| e.context(format!("kernel tree from {origin}")))?;
        if let Some(arch) = choice.arch {
            if arch != tree.arch {
                crate::bail_user!(
                    "kernel tree `{}` (from {}) is for {}, not {}", dir.display(), origin, tree.arch, arch;
                    hint = "drop `--arch`, or pick a tree built for {}", arch
                );
            }
        }
        return Ok(tree);
    }
    if choice.sanitize {
        // Without a sanitizer tree, the dev tree (its kmemleak scan still runs); the run
        // says what `init --sanitize` adds.
        if let Ok(t) = sanitize_tree(home, choice.arch.unwrap_or_else(Arch::host), &choice.tools) {
            return Ok(t);
        }
    }
    let arch = choice.arch.unwrap_or_else(Arch::host);
    if choice.needs.is_empty() && !choice.ko_imports.is_empty() {
        if let Some(t) = tree_exporting(home, arch, choice.rustc.as_deref(), &choice.ko_imports) {
            return KernelTree::open_with(&t.dir, &choice.tools);
        }
    }
    if !choice.needs.is_empty() {
        if let Some(t) = feature_tree(home, arch, choice.rustc.as_deref(), &choice.needs) {
            return KernelTree::open_with(&t.dir, &choice.tools);
        }
        // None has them: the dev tree, which the configuration check refuses naming each
        // missing symbol and the `init` that prepares a tree with them.
    }
    dev_tree(home, arch, choice.rustc.as_deref(), &choice.tools)
}

/// The tree a build whose packages need `needs` uses when no tree is named: the dev tree
/// (the one [`dev_tree`] picks) when its `.config` meets every need, else, of the feature
/// trees of `arch` that meet them, the newest kernel, built by `rustc` when one is, with the
/// fewest extra symbols. `None` when no prepared tree has them.
pub fn feature_tree(
    home: &Home,
    arch: Arch,
    rustc: Option<&str>,
    needs: &BTreeMap<String, String>,
) -> Option<crate::kernel::home::PreparedTree> {
    use crate::kernel::config::{meets, KConfig};
    first_fitting(home, arch, rustc, |t| {
        KConfig::read(&t.dir.join(".config"))
            .is_ok_and(|c| needs.iter().all(|(k, v)| meets(&c, k, v)))
    })
}

/// The tree `.ko` files with no tree named are for: the dev tree when its `Module.symvers`
/// exports every symbol they import (`symbols`), else the feature tree that does (a module
/// built for a tree with PCI imports `pci_*` symbols the dev tree lacks).
pub fn tree_exporting(
    home: &Home,
    arch: Arch,
    rustc: Option<&str>,
    symbols: &[String],
) -> Option<crate::kernel::home::PreparedTree> {
    first_fitting(home, arch, rustc, |t| {
        let Ok(text) = std::fs::read_to_string(t.dir.join("Module.symvers")) else {
            return false;
        };
        let exported: std::collections::HashSet<&str> =
            text.lines().filter_map(|l| l.split('\t').nth(1)).collect();
        symbols.iter().all(|s| exported.contains(s.as_str()))
    })
}

/// [`feature_tree`]'s choice with any test of fit.
fn first_fitting(
    home: &Home,
    arch: Arch,
    rustc: Option<&str>,
    fits: impl Fn(&crate::kernel::home::PreparedTree) -> bool,
) -> Option<crate::kernel::home::PreparedTree> {
    let trees = home.list();
    if let Some(dev) = pick_dev(&trees, arch, rustc) {
        if fits(dev) {
            return Some(dev.clone());
        }
    }
    let mut fit: Vec<_> = trees
        .into_iter()
        .filter(|t| t.meta.arch == arch && t.meta.is_dev_or_feature_tree() && !t.meta.is_dev_tree())
        .filter(|t| fits(t))
        .collect();
    let version =
        |t: &crate::kernel::home::PreparedTree| crate::kernel::Version::find(&t.meta.release);
    let extra = |t: &crate::kernel::home::PreparedTree| {
        t.meta.features().map_or(0, |f| f.split(' ').count())
    };
    let by_rustc = |t: &crate::kernel::home::PreparedTree| Some(t.meta.rustc.as_str()) == rustc;
    // Stable: `list`'s order (most recently prepared first) breaks the ties.
    fit.sort_by(|a, b| {
        version(b)
            .cmp(&version(a))
            .then(by_rustc(b).cmp(&by_rustc(a)))
            .then(extra(a).cmp(&extra(b)))
    });
    fit.into_iter().next()
}

/// The dev tree of `arch` among `trees` (in [`Home::list`]'s order): the first built by
/// `rustc`, else the first.
fn pick_dev<'a>(
    trees: &'a [crate::kernel::home::PreparedTree],
    arch: Arch,
    rustc: Option<&str>,
) -> Option<&'a crate::kernel::home::PreparedTree> {
    let mut dev = trees
        .iter()
        .filter(|t| t.meta.arch == arch && t.meta.is_dev_tree());
    dev.clone()
        .find(|t| Some(t.meta.rustc.as_str()) == rustc)
        .or_else(|| dev.next())
}

/// A distribution's headers directory stands for its completion ([`distro::complete`]);
/// headers that were not completed are refused with the command that completes them.
fn completed(home: &Home, dir: &std::path::Path) -> Result<PathBuf> {
    let rust = std::fs::read_to_string(dir.join(".config"))
        .is_ok_and(|c| c.lines().any(|l| l == "CONFIG_RUST=y"));
    // Headers of a kernel without Rust are refused as such by the tree's checks.
    if !distro::is_debian_headers(dir) || !rust || dir.join("rust/libkernel.rmeta").is_file() {
        return Ok(dir.to_path_buf());
    }
    match distro::complete::find(home, dir) {
        Some(c) => Ok(c.dir),
        None => crate::bail_user!(
            "`{}` are a distribution's kernel headers without `rust/`: Rust modules cannot be built against them yet", dir.display();
            hint = "complete them once with `cargo kmod init --kdir {}` (the headers directory is not written to)", dir.display()
        ),
    }
}

/// The completed tree of a named distribution kernel (`distro-kernel` of target `name`).
pub fn distro_tree(home: &Home, dk: &distro::DistroKernel, name: &str) -> Result<PathBuf> {
    match distro::complete::find_named(home, dk) {
        Some(c) => Ok(c.dir),
        None => crate::bail_user!(
            "target `{}` is `{}`, whose headers are not completed yet", name, dk.name();
            hint = "run `cargo kmod init --target {}` once (it downloads Debian's packages and builds `rust/`)", name
        ),
    }
}

/// The sanitizer tree of `arch` (`cargo kmod init --sanitize`: the dev fragments plus generic
/// KASAN), which `cargo kmod test --sanitize` boots when no tree is named.
pub fn sanitize_tree(home: &Home, arch: Arch, tools: &ToolChoice) -> Result<KernelTree> {
    let found = home.list().into_iter().find(|t| {
        t.meta.arch == arch
            && t.meta.board.is_none()
            && t.meta.base_config.is_none()
            && t.meta.fragments == [crate::kernel::prepare::SANITIZE_FRAGMENT]
    });
    match found {
        Some(t) => KernelTree::open_with(&t.dir, tools),
        None => crate::bail_user!(
            "`--sanitize` boots the {} sanitizer tree (KASAN), and `{}` has none", arch, home.trees_dir().display();
            hint = "prepare it once with `cargo kmod init --arch {} --sanitize` (a dev tree with KASAN: about 6 minutes on 2 cores), or name a tree with `--kdir`", arch
        ),
    }
}

/// The dev tree for `arch`: the newest kernel, preferring trees built by `rustc` (the
/// `rustc --version` line of the rustc that will compile modules, when known).
pub fn dev_tree(
    home: &Home,
    arch: Arch,
    rustc: Option<&str>,
    tools: &ToolChoice,
) -> Result<KernelTree> {
    let trees = home.list();
    match pick_dev(&trees, arch, rustc) {
        Some(t) => KernelTree::open_with(&t.dir, tools),
        None => crate::bail_user!(
            "no {} kernel tree: `{}` has no prepared tree for {}", arch, home.trees_dir().display(), arch;
            hint = "run `cargo kmod init --arch {}`, or pass `--kdir DIR` (or set `KDIR`)", arch
        ),
    }
}
