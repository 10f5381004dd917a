//! `[package.metadata.kmod]` and `[workspace.metadata.kmod]`: what a module is made of.
//!
//! Cargo's own view of the workspace comes from `cargo metadata --no-deps` (through
//! cargo_metadata); the `kmod` tables are checked key by key so that an unknown or mistyped
//! key is an error naming the key, the file and the nearest valid key.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

use crate::error::UserError;
use crate::kernel::Arch;
use crate::shell::Shell;

pub mod lints;

/// Keys of `[package.metadata.kmod]`.
pub const PACKAGE_KEYS: &[&str] = &[
    "name",
    // Kernel configuration the module needs (docs/subsystems.md).
    "kernel-config",
    "c-sources",
    "include-dirs",
    "ccflags",
    "rustflags",
    "bindings",
    "extra-symbols",
    "kdir",
    "arch",
    "features",
    "devices",
    "device-overlays",
];
/// Keys of `[workspace.metadata.kmod]` (defaults for every member, plus named targets).
pub const WORKSPACE_KEYS: &[&str] = &[
    "c-sources",
    "include-dirs",
    "ccflags",
    "rustflags",
    "bindings",
    "extra-symbols",
    "kdir",
    "arch",
    "targets",
    "kernel-config",
    "matrix",
];
/// Keys of `[workspace.metadata.kmod.matrix]` (docs/matrix.md).
const MATRIX_KEYS: &[&str] = &["kernels", "arches", "exclude", "targets"];
const FEATURE_KEYS: &[&str] = &["c-sources", "ccflags", "rustflags"];
const TARGET_KEYS: &[&str] = &[
    "arch",
    "kdir",
    "llvm",
    "cross-compile",
    // Board kernels (docs/boards.md).
    "board",
    "base-config",
    "source",
    "cc",
    "dtb",
    "qemu-machine",
    // A distribution's kernel (docs/distro.md).
    "distro-kernel",
    // The board `cargo kmod deploy` reaches (docs/deploy.md).
    "host",
    // Symbols the target's tree adds to the dev tree (docs/subsystems.md).
    "kernel-config",
];
const BINDING_KEYS: &[&str] = &["header", "allowlist", "blocklist"];

/// A header to run through bindgen; the result is `$OUT_DIR/<header stem>.rs`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Binding {
    pub header: PathBuf,
    #[serde(default)]
    pub allowlist: Vec<String>,
    #[serde(default)]
    pub blocklist: Vec<String>,
}

/// Objects and flags a cargo feature switches on (like `obj-$(CONFIG_FOO)`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeatureObjects {
    pub c_sources: Vec<PathBuf>,
    pub ccflags: Vec<String>,
    pub rustflags: Vec<String>,
}

/// A named target from `[workspace.metadata.kmod.targets.NAME]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetSpec {
    pub name: String,
    pub arch: Option<Arch>,
    pub kdir: Option<PathBuf>,
    /// `LLVM=` value (`"1"`, `"-19"`).
    pub llvm: Option<String>,
    pub cross_compile: Option<String>,
    /// A board preset (`rpi4`): the tree `cargo kmod init --board` prepares, and its qemu model.
    pub board: Option<String>,
    /// A board configuration: a file (resolved against the workspace root) or a defconfig name.
    pub base_config: Option<String>,
    /// The kernel source of the target's tree (tarball or directory).
    pub source: Option<PathBuf>,
    /// `clang` or `gcc`: the compiler the target's tree is built with.
    pub cc: Option<String>,
    /// The DTB to boot with, relative to the tree's `arch/<srcarch>/boot/dts/` or absolute.
    pub dtb: Option<PathBuf>,
    /// qemu's machine (`-M`) for `cargo kmod test`.
    pub qemu_machine: Option<String>,
    /// The board `cargo kmod deploy` reaches over ssh: `[USER@]HOST[:PORT]`.
    pub host: Option<String>,
    /// A distribution's kernel (`debian:7.2.13+deb14-arm64`): its headers, completed by
    /// `cargo kmod init --target NAME`, are the target's tree.
    pub distro_kernel: Option<crate::kernel::distro::DistroKernel>,
    /// Kconfig symbols the target's tree has on top of the dev fragments (`kernel-config`):
    /// `init --target NAME` prepares that feature tree.
    pub kernel_config: BTreeMap<String, String>,
}

impl TargetSpec {
    /// The tree this target asks `init` for (`board`, `base-config`, `source`, `cc`), as plain
    /// data for [`crate::kernel::prepare::requests`]; its `cross-compile` overrides the
    /// environment's `CROSS_COMPILE`.
    pub fn tree_ask(&self, env: &crate::env::Env, jobs: usize) -> crate::kernel::prepare::TreeAsk {
        crate::kernel::prepare::TreeAsk {
            source: self.source.clone(),
            arches: self.arch.map(|a| vec![a]),
            board: self.board.clone(),
            base_config: self.base_config.clone(),
            cc: self.cc.clone(),
            cross_compile: self.cross_compile.clone().or_else(|| env.cross_compile()),
            fragments: match self.arch {
                Some(arch) if !self.kernel_config.is_empty() => {
                    vec![crate::kernel::prepare::features_fragment(
                        arch,
                        &self.kernel_config,
                    )]
                }
                _ => Vec::new(),
            },
            jobs,
        }
    }

    /// The board machine keys (`board`, `qemu-machine`, `dtb`) for
    /// [`crate::kernel::board::machine_for`].
    pub fn machine_keys(&self) -> (Option<&str>, Option<&str>, Option<&Path>) {
        (
            self.board.as_deref(),
            self.qemu_machine.as_deref(),
            self.dtb.as_deref(),
        )
    }
}

/// One kernel module: a package with `[package.metadata.kmod]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleSpec {
    pub package: String,
    /// cargo's package id (`path+file:///...#name@version`), for cargo-shaped JSON.
    pub id: String,
    /// The package's edition (`rustfmt --edition`).
    pub edition: String,
    pub version: String,
    pub authors: Vec<String>,
    pub description: Option<String>,
    pub license: Option<String>,
    pub manifest_path: PathBuf,
    /// The package directory.
    pub dir: PathBuf,
    /// The module name: kbuild's object, `.modinfo`'s `name=`, the `.ko` file name
    /// (`[A-Za-z0-9_]`, may start with a digit, as `8250` does).
    pub name: String,
    /// The Rust crate name: cargo's library name (`[lib] name`, else the package name with
    /// `-` turned into `_`), a Rust identifier.
    pub crate_name: String,
    /// The crate root: cargo's library path (`[lib] path`, else `src/lib.rs`).
    pub crate_root: PathBuf,
    pub c_sources: Vec<PathBuf>,
    pub include_dirs: Vec<PathBuf>,
    pub ccflags: Vec<String>,
    pub rustflags: Vec<String>,
    pub bindings: Vec<Binding>,
    pub extra_symbols: Vec<PathBuf>,
    pub kdir: Option<PathBuf>,
    pub arch: Option<Arch>,
    pub feature_objects: BTreeMap<String, FeatureObjects>,
    /// Cargo's `[features]` table.
    pub cargo_features: BTreeMap<String, Vec<String>>,
    /// Workspace members (module packages) this one depends on by path.
    pub module_deps: Vec<String>,
    /// Test devices (`devices`, `device-overlays`): see [`crate::devices`].
    pub devices: crate::devices::Devices,
    /// Its other `[dependencies]` (package names): crates compiled for the kernel and linked
    /// into the module by [`crate::deps`]. Empty for most modules, which then never run a
    /// dependency resolution.
    pub crate_deps: Vec<String>,
    /// The package's `[lints]` as the flags cargo passes rustc ([`lints`]).
    pub lints: Vec<String>,
    /// `kernel-config`: Kconfig symbols (without `CONFIG_`) and the values the module needs
    /// the tree to have (the workspace's, then the package's), checked before compiling.
    pub kernel_config: BTreeMap<String, String>,
}

/// The workspace as cargo-kmod sees it.
#[derive(Debug, Clone)]
pub struct Workspace {
    pub root: PathBuf,
    pub target_dir: PathBuf,
    /// The manifest that was asked for (`--manifest-path`, or the one cargo found).
    pub manifest_path: PathBuf,
    pub modules: Vec<ModuleSpec>,
    /// The packages cargo acts on at a virtual root with no `-p` (`default-members`; empty:
    /// all).
    pub default_members: Vec<String>,
    pub targets: BTreeMap<String, TargetSpec>,
    /// `[workspace.metadata.kmod] kdir`/`arch`.
    pub kdir: Option<PathBuf>,
    pub arch: Option<Arch>,
    /// `[workspace.metadata.kmod.matrix]`: the dev trees `--matrix` adds to the targets.
    pub matrix: Option<MatrixSpec>,
}

/// `[workspace.metadata.kmod.matrix]`: dev trees by kernel version and arch, the cells to
/// leave out, and which targets join (default: all). [`crate::matrix`] makes the cells.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MatrixSpec {
    /// Kernel versions (`"7.2"`, `"6.12"`): the dev tree of each, for each of `arches`.
    pub kernels: Vec<String>,
    /// Default: x86_64 and arm64.
    pub arches: Vec<Arch>,
    /// Cell names left out (`"6.12-arm64"`).
    pub exclude: Vec<String>,
    /// The targets that are cells; `None`: every target.
    pub targets: Option<Vec<String>>,
    /// The manifest that says it, for errors.
    pub file: PathBuf,
}

/// Kernel module names are `[A-Za-z0-9_]`; kbuild turns `-` into `_`.
pub fn module_name_for(package: &str) -> String {
    package.replace('-', "_")
}

pub use crate::kernel::{is_valid_module_name, MAX_MODULE_NAME};

/// The valid name closest to a misspelled `key`, for "did you mean" hints.
pub(crate) fn nearest<'a>(key: &str, valid: &[&'a str]) -> Option<&'a str> {
    crate::text::nearest(key, valid.iter().copied(), 0.7)
}

/// Checks one `kmod` table: unknown keys and type errors name the key and the file.
struct Table<'a> {
    map: &'a serde_json::Map<String, Value>,
    section: String,
    file: &'a Path,
}

impl<'a> Table<'a> {
    fn new(value: &'a Value, section: &str, file: &'a Path, valid: &[&str]) -> Result<Table<'a>> {
        let Some(map) = value.as_object() else {
            crate::bail_user!("`{}` in `{}` must be a table", section, file.display());
        };
        for key in map.keys() {
            if !valid.contains(&key.as_str()) {
                let mut e = UserError::new(format!(
                    "unknown key `{}` in `{}` of `{}`",
                    key,
                    section,
                    file.display()
                ));
                e = match nearest(key, valid) {
                    Some(n) => e.with_hint(format!("did you mean `{n}`?")),
                    None => e.with_hint(format!("valid keys: {}", valid.join(", "))),
                };
                return Err(e.into());
            }
        }
        Ok(Table {
            map,
            section: section.to_string(),
            file,
        })
    }

    fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        match self.map.get(key) {
            None => Ok(None),
            Some(v) => serde_json::from_value(v.clone()).map(Some).map_err(|e| {
                UserError::new(format!(
                    "invalid `{}` in `{}` of `{}`: {}",
                    key,
                    self.section,
                    self.file.display(),
                    e
                ))
                .into()
            }),
        }
    }

    /// A key whose value must itself be a table (`targets`, `features`).
    fn subtable(&self, key: &str) -> Result<Option<&'a serde_json::Map<String, Value>>> {
        match self.map.get(key) {
            None => Ok(None),
            Some(Value::Object(m)) => Ok(Some(m)),
            Some(_) => crate::bail_user!(
                "`{}` in `{}` of `{}` must be a table",
                key,
                self.section,
                self.file.display()
            ),
        }
    }

    fn paths(&self, key: &str, base: &Path) -> Result<Vec<PathBuf>> {
        Ok(self
            .get::<Vec<PathBuf>>(key)?
            .unwrap_or_default()
            .into_iter()
            .map(|p| base.join(p))
            .collect())
    }
}

/// Defaults from `[workspace.metadata.kmod]`.
#[derive(Debug, Clone, Default)]
struct WorkspaceDefaults {
    c_sources: Vec<PathBuf>,
    include_dirs: Vec<PathBuf>,
    ccflags: Vec<String>,
    rustflags: Vec<String>,
    bindings: Vec<Binding>,
    extra_symbols: Vec<PathBuf>,
    kdir: Option<PathBuf>,
    arch: Option<Arch>,
    targets: BTreeMap<String, TargetSpec>,
    kernel_config: BTreeMap<String, String>,
    matrix: Option<MatrixSpec>,
}

/// `[workspace.metadata.kmod.matrix]`.
fn parse_matrix(t: &Table<'_>, file: &Path) -> Result<Option<MatrixSpec>> {
    let Some(v) = t.map.get("matrix") else {
        return Ok(None);
    };
    let section = "[workspace.metadata.kmod.matrix]";
    let m = Table::new(v, section, file, MATRIX_KEYS)?;
    let kernels: Vec<String> = m.get("kernels")?.unwrap_or_default();
    for k in &kernels {
        let parts: Vec<&str> = k.split('.').collect();
        if !(2..=3).contains(&parts.len())
            || parts
                .iter()
                .any(|p| p.is_empty() || p.len() > 4 || !p.bytes().all(|b| b.is_ascii_digit()))
        {
            crate::bail_user!(
                "invalid `kernels` in `{}` of `{}`: `{}` is not a kernel version", section, file.display(), crate::text::escape(k);
                hint = "write versions as `\"7.2\"` or `\"6.12\"` (a dev tree of each is prepared from /usr/src/linux-source-<version>)"
            );
        }
    }
    let arches = match m.get::<Vec<String>>("arches")? {
        None => Arch::ALL.to_vec(),
        Some(list) => {
            let mut out = Vec::new();
            for a in list {
                out.extend(parse_arch(Some(a), "arches", section, file)?);
            }
            out
        }
    };
    Ok(Some(MatrixSpec {
        kernels,
        arches,
        exclude: m.get("exclude")?.unwrap_or_default(),
        targets: m.get("targets")?,
        file: file.to_path_buf(),
    }))
}

/// `kernel-config = { PCI = "y", DEBUG_FS = "y", HZ = 250 }`: Kconfig symbols (`CONFIG_`
/// optional) with the value a module needs; strings, integers and booleans (`true` is `y`).
fn parse_kernel_config(t: &Table<'_>) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let Some(map) = t.subtable("kernel-config")? else {
        return Ok(out);
    };
    for (key, v) in map {
        let symbol = key.strip_prefix("CONFIG_").unwrap_or(key);
        if symbol.is_empty()
            || !symbol
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        {
            crate::bail_user!(
                "`kernel-config` in `{}` of `{}`: `{}` is not a Kconfig symbol", t.section, t.file.display(), crate::text::escape(key);
                hint = "symbols are upper case, as in `PCI = \"y\"` (`CONFIG_` may be left out)"
            );
        }
        let value = match v {
            Value::String(s) if !s.is_empty() && !s.chars().any(char::is_control) => s.clone(),
            Value::Bool(true) => "y".to_string(),
            Value::Bool(false) => "n".to_string(),
            Value::Number(n) => n.to_string(),
            _ => crate::bail_user!(
                "`kernel-config` in `{}` of `{}`: `{}` needs a value such as `\"y\"`, `\"m\"`, `\"n\"` or a number", t.section, t.file.display(), symbol
            ),
        };
        out.insert(symbol.to_string(), value);
    }
    Ok(out)
}

fn parse_arch(s: Option<String>, key: &str, section: &str, file: &Path) -> Result<Option<Arch>> {
    match s {
        None => Ok(None),
        Some(a) => Arch::parse(&a).map(Some).map_err(|_| {
            UserError::new(format!(
                "invalid `{key}` in `{section}` of `{}`: unknown arch `{a}`",
                file.display()
            ))
            .with_hint("use `x86_64` or `arm64`")
            .into()
        }),
    }
}

fn parse_workspace(value: Option<&Value>, root: &Path, file: &Path) -> Result<WorkspaceDefaults> {
    let Some(kmod) = value.and_then(|v| v.get("kmod")) else {
        return Ok(WorkspaceDefaults::default());
    };
    let section = "[workspace.metadata.kmod]";
    let t = Table::new(kmod, section, file, WORKSPACE_KEYS)?;
    let mut targets = BTreeMap::new();
    if let Some(tmap) = t.subtable("targets")? {
        for (name, v) in tmap {
            let tsec = format!("[workspace.metadata.kmod.targets.{name}]");
            let tt = Table::new(v, &tsec, file, TARGET_KEYS)?;
            let llvm = match tt.map.get("llvm") {
                None => None,
                Some(Value::Bool(true)) => Some("1".to_string()),
                Some(Value::Bool(false)) => None,
                Some(Value::String(s)) => Some(s.clone()),
                Some(_) => crate::bail_user!(
                    "invalid `llvm` in `{}` of `{}`: expected `true` or a version suffix like \"-19\"", tsec, file.display()
                ),
            };
            let kdir = tt.get::<PathBuf>("kdir")?.map(|p| root.join(p));
            let distro_kernel = match tt.get::<String>("distro-kernel")? {
                None => None,
                Some(text) => {
                    let what = format!("`distro-kernel` in `{}` of `{}`:", tsec, file.display());
                    let dk = crate::kernel::distro::DistroKernel::parse(&text, &what)?;
                    for other in ["kdir", "board", "base-config", "source", "cc"] {
                        if tt.map.contains_key(other) {
                            crate::bail_user!(
                                "`{}` of `{}` has both `distro-kernel` and `{}`: a distribution kernel is its own tree", tsec, file.display(), other;
                                hint = "remove `{}`", other
                            );
                        }
                    }
                    Some(dk)
                }
            };
            let arch = parse_arch(tt.get("arch")?, "arch", &tsec, file)?;
            if let (Some(a), Some(dk)) = (arch, &distro_kernel) {
                if a != dk.arch {
                    crate::bail_user!(
                        "`{}` of `{}` says `arch = \"{}\"`, but `{}` is a kernel for {}", tsec, file.display(), a, dk.name(), dk.arch;
                        hint = "remove `arch` (the distribution kernel decides it)"
                    );
                }
            }
            let arch = arch.or(distro_kernel.as_ref().map(|d| d.arch));
            let kernel_config = parse_kernel_config(&tt)?;
            if !kernel_config.is_empty() {
                for other in ["kdir", "distro-kernel"] {
                    if tt.map.contains_key(other) {
                        crate::bail_user!(
                            "`{}` of `{}` has both `kernel-config` and `{}`: `kernel-config` names the tree `init --target` prepares, and `{}` is a tree as it is", tsec, file.display(), other, other;
                            hint = "put the symbols in the packages' `kernel-config` (checked against any tree), or remove `{}`", other
                        );
                    }
                }
                if arch.is_none() {
                    crate::bail_user!(
                        "`{}` of `{}` has `kernel-config` but no `arch`: it does not say which tree to prepare", tsec, file.display();
                        hint = "add `arch = \"arm64\"` (or `x86_64`)"
                    );
                }
            }
            targets.insert(
                name.clone(),
                TargetSpec {
                    name: name.clone(),
                    arch,
                    kdir,
                    llvm,
                    cross_compile: tt.get("cross-compile")?,
                    board: tt.get("board")?,
                    base_config: tt.get::<String>("base-config")?.map(|b| {
                        // A path (it has a `/` or a file suffix) or a defconfig target name.
                        if b.contains('/') || b.ends_with(".config") || b.ends_with(".gz") {
                            root.join(b).display().to_string()
                        } else {
                            b
                        }
                    }),
                    source: tt.get::<PathBuf>("source")?.map(|p| root.join(p)),
                    cc: tt.get("cc")?,
                    dtb: tt.get("dtb")?,
                    qemu_machine: tt.get("qemu-machine")?,
                    host: tt.get("host")?,
                    kernel_config,
                    distro_kernel,
                },
            );
        }
    }
    Ok(WorkspaceDefaults {
        c_sources: t.paths("c-sources", root)?,
        include_dirs: t.paths("include-dirs", root)?,
        ccflags: t.get("ccflags")?.unwrap_or_default(),
        rustflags: t.get("rustflags")?.unwrap_or_default(),
        bindings: parse_bindings(&t, root)?,
        extra_symbols: t.paths("extra-symbols", root)?,
        kdir: t.get::<PathBuf>("kdir")?.map(|p| root.join(p)),
        arch: parse_arch(t.get("arch")?, "arch", section, file)?,
        targets,
        kernel_config: parse_kernel_config(&t)?,
        matrix: parse_matrix(&t, file)?,
    })
}

fn parse_bindings(t: &Table<'_>, base: &Path) -> Result<Vec<Binding>> {
    let Some(v) = t.map.get("bindings") else {
        return Ok(vec![]);
    };
    let Some(list) = v.as_array() else {
        crate::bail_user!(
            "invalid `bindings` in `{}` of `{}`: expected an array of tables",
            t.section,
            t.file.display()
        );
    };
    let mut out = Vec::new();
    for (i, b) in list.iter().enumerate() {
        let sec = format!(
            "{}.bindings[{i}]",
            t.section.trim_end_matches(']').to_string() + "]"
        );
        let bt = Table::new(b, &sec, t.file, BINDING_KEYS)?;
        let Some(header) = bt.get::<PathBuf>("header")? else {
            crate::bail_user!("missing `header` in `{}` of `{}`", sec, t.file.display());
        };
        out.push(Binding {
            header: base.join(header),
            allowlist: bt.get("allowlist")?.unwrap_or_default(),
            blocklist: bt.get("blocklist")?.unwrap_or_default(),
        });
    }
    Ok(out)
}

/// Build a [`ModuleSpec`] from one package of `cargo metadata`.
fn parse_package(
    pkg: &cargo_metadata::Package,
    root_manifest: &Path,
    ws: &WorkspaceDefaults,
    member_names: &BTreeSet<String>,
) -> Result<Option<ModuleSpec>> {
    let Some(kmod) = pkg.metadata.get("kmod") else {
        return Ok(None);
    };
    let file = pkg.manifest_path.as_std_path();
    let dir = file.parent().unwrap_or(Path::new(".")).to_path_buf();
    let section = "[package.metadata.kmod]";
    if kmod.get("crate-root").is_some() {
        crate::bail_user!(
            "`crate-root` in `{}` of `{}` is not read: cargo's `[lib] path` names the crate root", section, file.display();
            hint = "remove `crate-root` and write `[lib]` with `path = \"...\"` in `{}`", file.display()
        );
    }
    let t = Table::new(kmod, section, file, PACKAGE_KEYS)?;
    let name: String = t.get("name")?.unwrap_or_else(|| module_name_for(&pkg.name));
    if !is_valid_module_name(&name) {
        let fixed: String = module_name_for(&name)
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .take(MAX_MODULE_NAME)
            .collect();
        crate::bail_user!(
            "invalid module name `{}` in `{}`: kernel module names are `[A-Za-z0-9_]`, at most {} characters", name, file.display(), MAX_MODULE_NAME;
            hint = "set `name` in `[package.metadata.kmod]` to e.g. `{}`", if fixed.is_empty() { "my_module".to_string() } else { fixed }
        );
    }
    // The crate is cargo's library target: its name and root are cargo's to say.
    let Some(lib) = pkg.targets.iter().find(|t| {
        t.kind.iter().any(|k| {
            matches!(
                k,
                cargo_metadata::TargetKind::Lib
                    | cargo_metadata::TargetKind::RLib
                    | cargo_metadata::TargetKind::StaticLib
            )
        })
    }) else {
        crate::bail_user!(
            "package `{}` has no library target: a kernel module is a library crate", pkg.name;
            hint = "put the module in `src/lib.rs`, or name its root with `[lib] path = \"...\"` in `{}`", file.display()
        );
    };
    let crate_name = lib.name.replace('-', "_");
    let crate_root = lib.src_path.as_std_path().to_path_buf();
    let mut feature_objects = BTreeMap::new();
    if let Some(fmap) = t.subtable("features")? {
        for (feat, v) in fmap {
            let fsec = format!("[package.metadata.kmod.features.{feat}]");
            if !pkg.features.contains_key(feat) {
                let known: Vec<&str> = pkg.features.keys().map(String::as_str).collect();
                let mut e = UserError::new(format!(
                    "`{}` in `{}` names feature `{}`, which `[features]` does not declare",
                    fsec,
                    file.display(),
                    feat
                ));
                if let Some(n) = nearest(feat, &known) {
                    e = e.with_hint(format!("did you mean `{n}`?"));
                } else {
                    e = e.with_hint(format!("add `{feat} = []` to `[features]`"));
                }
                return Err(e.into());
            }
            let ft = Table::new(v, &fsec, file, FEATURE_KEYS)?;
            feature_objects.insert(
                feat.clone(),
                FeatureObjects {
                    c_sources: ft.paths("c-sources", &dir)?,
                    ccflags: ft.get("ccflags")?.unwrap_or_default(),
                    rustflags: ft.get("rustflags")?.unwrap_or_default(),
                },
            );
        }
    }
    let mut c_sources = ws.c_sources.clone();
    c_sources.extend(t.paths("c-sources", &dir)?);
    let mut include_dirs = ws.include_dirs.clone();
    include_dirs.extend(t.paths("include-dirs", &dir)?);
    let mut ccflags = ws.ccflags.clone();
    ccflags.extend(t.get::<Vec<String>>("ccflags")?.unwrap_or_default());
    let mut rustflags = ws.rustflags.clone();
    rustflags.extend(t.get::<Vec<String>>("rustflags")?.unwrap_or_default());
    let mut bindings = ws.bindings.clone();
    bindings.extend(parse_bindings(&t, &dir)?);
    let mut extra_symbols = ws.extra_symbols.clone();
    extra_symbols.extend(t.paths("extra-symbols", &dir)?);
    let module_deps = pkg
        .dependencies
        .iter()
        .filter(|d| d.path.is_some() && member_names.contains(&d.name))
        .map(|d| d.name.clone())
        .collect();
    let crate_deps = pkg
        .dependencies
        .iter()
        .filter(|d| d.kind == cargo_metadata::DependencyKind::Normal)
        .map(|d| d.name.clone())
        .collect();
    Ok(Some(ModuleSpec {
        package: pkg.name.to_string(),
        id: pkg.id.repr.clone(),
        edition: pkg.edition.to_string(),
        version: pkg.version.to_string(),
        authors: pkg.authors.clone(),
        description: pkg.description.clone(),
        license: pkg.license.clone(),
        manifest_path: file.to_path_buf(),
        dir: dir.clone(),
        name,
        crate_name,
        crate_root,
        c_sources,
        include_dirs,
        ccflags,
        rustflags,
        bindings,
        extra_symbols,
        kdir: t
            .get::<PathBuf>("kdir")?
            .map(|p| dir.join(p))
            .or(ws.kdir.clone()),
        arch: parse_arch(t.get("arch")?, "arch", section, file)?.or(ws.arch),
        feature_objects,
        cargo_features: pkg.features.clone().into_iter().collect(),
        module_deps,
        devices: crate::devices::spec::from_manifest(kmod, &dir, file)?,
        crate_deps,
        lints: lints::flags(file, root_manifest)?,
        kernel_config: {
            let mut k = ws.kernel_config.clone();
            k.extend(parse_kernel_config(&t)?);
            k
        },
    }))
}

/// Read the workspace around `manifest_path` (or the current directory).
pub fn load(shell: &Shell, manifest_path: Option<&Path>) -> Result<Workspace> {
    if let Some(p) = manifest_path {
        if !p.is_file() {
            crate::bail_user!("manifest `{}` does not exist", p.display());
        }
    }
    let mut cmd = cargo_metadata::MetadataCommand::new();
    cmd.no_deps();
    cmd.cargo_path(crate::env::Env::get().cargo());
    if let Some(p) = manifest_path {
        cmd.manifest_path(p);
    }
    let cache = MetadataCache::new(manifest_path);
    if let Some(meta) = cache.as_ref().and_then(MetadataCache::load) {
        return from_metadata(meta, manifest_path);
    }
    shell.verbose("Running", format_args!("`{:?}`", cmd.cargo_command()));
    let meta = cmd.exec().map_err(|e| match e {
        cargo_metadata::Error::CargoMetadata { stderr } => {
            let line = stderr
                .lines()
                .find(|l| l.starts_with("error:"))
                .unwrap_or(stderr.lines().next().unwrap_or("cargo metadata failed"))
                .trim_start_matches("error: ")
                .to_string();
            let detail: Vec<&str> = stderr
                .lines()
                .skip_while(|l| !l.starts_with("error:"))
                .skip(1)
                .filter(|l| !l.trim().is_empty())
                .take(6)
                .collect();
            let mut u = UserError::new(line);
            if !detail.is_empty() {
                u = u.with_hint(detail.join("\n"));
            }
            anyhow::Error::from(u)
        }
        other => anyhow::Error::from(other).context("cannot run `cargo metadata`"),
    })?;
    if let Some(cache) = &cache {
        cache.store(&meta);
    }
    from_metadata(meta, manifest_path)
}

/// `cargo metadata --no-deps` output cached under `$CARGO_KMOD_HOME/metadata/`, valid while
/// every manifest it was read from is unchanged (path, size, mtime). It saves a cargo run on
/// every build, which is most of a no-op's and a one-file rebuild's overhead.
struct MetadataCache {
    file: PathBuf,
}

impl MetadataCache {
    fn new(manifest_path: Option<&Path>) -> Option<MetadataCache> {
        let home = crate::kernel::home::Home::from_env().ok()?;
        let key = serde_json::json!({
            "cwd": std::env::current_dir().ok(),
            "manifest": manifest_path,
            "target": crate::env::Env::get().var_os("CARGO_TARGET_DIR").map(|v| v.to_string_lossy().into_owned()),
            "cargo": crate::env::Env::get().var_os("CARGO").map(|v| v.to_string_lossy().into_owned()),
            "version": env!("CARGO_PKG_VERSION"),
        });
        let hash = crate::fsutil::sha256_hex(key.to_string().as_bytes());
        Some(MetadataCache {
            file: home.metadata_dir().join(format!("{}.json", &hash[..16])),
        })
    }

    fn stat(path: &Path) -> String {
        crate::fsutil::file_identity(path).unwrap_or_else(|| "missing".into())
    }

    /// What a metadata result depends on: the workspace root's manifest and every member's;
    /// the directories a glob in `[workspace] members` walks (a new member directory, or a
    /// `Cargo.toml` appearing in one, changes their mtime); and cargo's configuration files
    /// (`build.target-dir` moves the target directory).
    fn inputs(meta: &cargo_metadata::Metadata) -> Vec<PathBuf> {
        let root = meta.workspace_root.as_std_path();
        let mut v: Vec<PathBuf> = meta
            .workspace_packages()
            .iter()
            .map(|p| p.manifest_path.as_std_path().to_path_buf())
            .collect();
        v.push(root.join("Cargo.toml"));
        v.extend(glob_member_dirs(root));
        v.extend(cargo_config_files(root));
        v.sort();
        v.dedup();
        v
    }

    fn load(&self) -> Option<cargo_metadata::Metadata> {
        let text = std::fs::read_to_string(&self.file).ok()?;
        let entry: serde_json::Value = serde_json::from_str(&text).ok()?;
        let stats = entry.get("stats")?.as_object()?;
        if stats.is_empty()
            || !stats
                .iter()
                .all(|(p, s)| s.as_str() == Some(Self::stat(Path::new(p)).as_str()))
        {
            return None;
        }
        serde_json::from_value(entry.get("metadata")?.clone()).ok()
    }

    fn store(&self, meta: &cargo_metadata::Metadata) {
        let stats: serde_json::Map<String, serde_json::Value> = Self::inputs(meta)
            .into_iter()
            .map(|p| {
                (
                    p.display().to_string(),
                    serde_json::Value::String(Self::stat(&p)),
                )
            })
            .collect();
        let entry = serde_json::json!({ "stats": stats, "metadata": meta });
        // A cache that cannot be written only costs the next build a cargo run.
        let _ = crate::fsutil::write_atomic(&self.file, entry.to_string().as_bytes());
    }
}

/// The directories `[workspace] members` globs (`crates/*`) range over, at every level of
/// the pattern.
fn glob_member_dirs(root: &Path) -> Vec<PathBuf> {
    let Ok(text) = std::fs::read_to_string(root.join("Cargo.toml")) else {
        return vec![];
    };
    let Ok(doc) = text.parse::<toml::Table>() else {
        return vec![];
    };
    let members = doc
        .get("workspace")
        .and_then(|w| w.get("members"))
        .and_then(|m| m.as_array())
        .cloned()
        .unwrap_or_default();
    let mut out = Vec::new();
    for pattern in members.iter().filter_map(|m| m.as_str()) {
        let parts: Vec<&str> = pattern.split('/').filter(|p| !p.is_empty()).collect();
        let Some(first_glob) = parts.iter().position(|p| p.contains(['*', '?', '['])) else {
            continue;
        };
        let base = parts[..first_glob]
            .iter()
            .fold(root.to_path_buf(), |d, p| d.join(p));
        let mut level = vec![base];
        for _ in first_glob..parts.len() {
            let mut next = Vec::new();
            for d in &level {
                out.push(d.clone());
                if let Ok(entries) = std::fs::read_dir(d) {
                    next.extend(entries.flatten().map(|e| e.path()).filter(|p| p.is_dir()));
                }
            }
            level = next;
        }
        out.extend(level);
    }
    out
}

/// The cargo configuration files that can apply to a workspace: `.cargo/config.toml` (and
/// the old `.cargo/config`) in the current directory, the workspace root and their
/// ancestors, and in `$CARGO_HOME` (default `~/.cargo`). The one place that knows where
/// cargo looks: the metadata cache and the no-op check of modules with dependencies both
/// take their list from here.
pub fn cargo_config_files(root: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = root.ancestors().map(Path::to_path_buf).collect();
    if let Ok(cwd) = std::env::current_dir() {
        dirs.extend(cwd.ancestors().map(Path::to_path_buf));
    }
    let mut out: Vec<PathBuf> = dirs
        .iter()
        .flat_map(|d| [d.join(".cargo/config.toml"), d.join(".cargo/config")])
        .collect();
    let cargo_home = crate::env::Env::get().cargo_home();
    if let Some(h) = cargo_home {
        out.push(h.join("config.toml"));
        out.push(h.join("config"));
    }
    out
}

/// The [`Workspace`] from cargo's metadata.
fn from_metadata(
    meta: cargo_metadata::Metadata,
    manifest_path: Option<&Path>,
) -> Result<Workspace> {
    let root = meta.workspace_root.as_std_path().to_path_buf();
    let root_manifest = root.join("Cargo.toml");
    let ws = parse_workspace(Some(&meta.workspace_metadata), &root, &root_manifest)?;
    let members: BTreeSet<String> = meta
        .workspace_packages()
        .iter()
        .map(|p| p.name.to_string())
        .collect();
    let mut modules = Vec::new();
    for pkg in meta.workspace_packages() {
        if let Some(m) = parse_package(pkg, &root_manifest, &ws, &members)? {
            modules.push(m);
        }
    }
    // Module deps only count when the dependency is itself a module.
    let module_pkgs: BTreeSet<String> = modules.iter().map(|m| m.package.clone()).collect();
    for m in &mut modules {
        m.module_deps.retain(|d| module_pkgs.contains(d));
        m.crate_deps.retain(|d| !module_pkgs.contains(d));
    }
    let mut seen: BTreeMap<&str, &ModuleSpec> = BTreeMap::new();
    for m in &modules {
        if let Some(other) = seen.insert(&m.name, m) {
            crate::bail_user!(
                "two packages build a module named `{}`: `{}` and `{}`", m.name, other.manifest_path.display(), m.manifest_path.display();
                hint = "set a distinct `name` in `[package.metadata.kmod]` of one of them"
            );
        }
    }
    let manifest_path = match manifest_path {
        Some(p) => {
            std::fs::canonicalize(p).with_context(|| format!("cannot resolve `{}`", p.display()))?
        }
        None => find_manifest(&std::env::current_dir()?).unwrap_or(root_manifest),
    };
    // `default-members` (cargo 1.71 and later say them; all members otherwise).
    let default_members: Vec<String> = if meta.workspace_default_members.is_available() {
        meta.workspace_default_packages()
            .iter()
            .map(|p| p.name.to_string())
            .collect()
    } else {
        Vec::new()
    };
    Ok(Workspace {
        default_members,
        root,
        target_dir: meta.target_directory.as_std_path().to_path_buf(),
        manifest_path,
        modules,
        targets: ws.targets,
        kdir: ws.kdir,
        arch: ws.arch,
        matrix: ws.matrix,
    })
}

fn find_manifest(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .map(|d| d.join("Cargo.toml"))
        .find(|p| p.is_file())
}

impl Workspace {
    /// The modules a command acts on: `-p` names (plus the modules they depend on), all with
    /// `--workspace` or from a virtual root, else the package whose manifest was asked for.
    pub fn select(&self, packages: &[String], workspace: bool) -> Result<Vec<&ModuleSpec>> {
        if self.modules.is_empty() {
            crate::bail_user!(
                "no kernel modules in `{}`: no package has `[package.metadata.kmod]`", self.manifest_path.display();
                hint = "add a `[package.metadata.kmod]` table, or create a module with `cargo kmod new`"
            );
        }
        let mut wanted: BTreeSet<String> = BTreeSet::new();
        if !packages.is_empty() {
            for p in packages {
                let Some(m) = self
                    .modules
                    .iter()
                    .find(|m| &m.package == p || &m.name == p)
                else {
                    let names: Vec<&str> =
                        self.modules.iter().map(|m| m.package.as_str()).collect();
                    let mut e = UserError::new(format!(
                        "package `{p}` is not a kernel module of this workspace"
                    ));
                    if let Some(n) = nearest(p, &names) {
                        e = e.with_hint(format!("did you mean `{n}`?"));
                    } else {
                        e = e.with_hint(format!("modules: {}", names.join(", ")));
                    }
                    return Err(e.into());
                };
                wanted.insert(m.package.clone());
            }
        } else if workspace {
            wanted.extend(self.modules.iter().map(|m| m.package.clone()));
        } else {
            match self
                .modules
                .iter()
                .find(|m| m.manifest_path == self.manifest_path)
            {
                Some(m) => {
                    wanted.insert(m.package.clone());
                }
                // A virtual root: cargo's default members (all members without
                // `default-members`), as `cargo build` there.
                None => wanted.extend(
                    self.modules
                        .iter()
                        .filter(|m| {
                            self.default_members.is_empty()
                                || self.default_members.contains(&m.package)
                        })
                        .map(|m| m.package.clone()),
                ),
            }
        }
        // Close over module dependencies, then order dependencies first.
        let mut stack: Vec<String> = wanted.iter().cloned().collect();
        while let Some(p) = stack.pop() {
            if let Some(m) = self.modules.iter().find(|m| m.package == p) {
                for d in &m.module_deps {
                    if wanted.insert(d.clone()) {
                        stack.push(d.clone());
                    }
                }
            }
        }
        let mut ordered: Vec<&ModuleSpec> = Vec::new();
        let mut placed: BTreeSet<&str> = BTreeSet::new();
        while ordered.len() < wanted.len() {
            let before = ordered.len();
            for m in self.modules.iter().filter(|m| wanted.contains(&m.package)) {
                if !placed.contains(m.package.as_str())
                    && m.module_deps.iter().all(|d| placed.contains(d.as_str()))
                {
                    placed.insert(&m.package);
                    ordered.push(m);
                }
            }
            if ordered.len() == before {
                crate::bail_user!(
                    "module dependencies form a cycle among: {}",
                    wanted
                        .iter()
                        .filter(|w| !placed.contains(w.as_str()))
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
        }
        Ok(ordered)
    }

    pub fn target(&self, name: &str) -> Result<&TargetSpec> {
        self.targets.get(name).ok_or_else(|| {
            let names: Vec<&str> = self.targets.keys().map(String::as_str).collect();
            let mut e = UserError::new(format!(
                "no target `{}` in `[workspace.metadata.kmod.targets]` of `{}`",
                name,
                self.root.join("Cargo.toml").display()
            ));
            e = match nearest(name, &names) {
                Some(n) => e.with_hint(format!("did you mean `{n}`?")),
                None if names.is_empty() => e.with_hint(
                    "define one as `[workspace.metadata.kmod.targets.NAME]` with `arch` and `kdir`",
                ),
                None => e.with_hint(format!("targets: {}", names.join(", "))),
            };
            e.into()
        })
    }
}

impl ModuleSpec {
    /// The features enabled for a build, closed over `[features]` implications.
    pub fn enabled_features(
        &self,
        requested: &[String],
        all: bool,
        no_default: bool,
    ) -> Result<BTreeSet<String>> {
        let mut on = BTreeSet::new();
        let mut stack: Vec<String> = Vec::new();
        if all {
            stack.extend(self.cargo_features.keys().cloned());
        }
        if !no_default && self.cargo_features.contains_key("default") {
            stack.push("default".into());
        }
        for r in requested
            .iter()
            .flat_map(|r| r.split([',', ' ']))
            .filter(|r| !r.is_empty())
        {
            let r = r.strip_prefix(&format!("{}/", self.package)).unwrap_or(r);
            if !self.cargo_features.contains_key(r) {
                crate::bail_user!(
                    "package `{}` does not have feature `{}`", self.package, r;
                    hint = "features of `{}`: {}", self.package, self.cargo_features.keys().cloned().collect::<Vec<_>>().join(", ")
                );
            }
            stack.push(r.to_string());
        }
        while let Some(f) = stack.pop() {
            if on.insert(f.clone()) {
                for imp in self.cargo_features.get(&f).into_iter().flatten() {
                    if self.cargo_features.contains_key(imp) {
                        stack.push(imp.clone());
                    }
                }
            }
        }
        Ok(on)
    }
}

#[cfg(test)]
mod tests;
