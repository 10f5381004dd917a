//! The build plan: what `cargo kmod build` generates under `target/kmod/<arch>/` for one
//! kbuild pass, before kbuild runs.
//!
//! ```text
//! target/kmod/<arch>/[test/]
//!   Kbuild                 obj-m := <pkg-a>/ <pkg-b>/   (one pass: shared symbols)
//!   Makefile               thin wrapper so plain `make` works by hand
//!   <package>/Kbuild       the module: exported cargo-like env, objects, flags, rules
//!   <package>/out/*.rs     bindgen output (`OUT_DIR`)
//! ```
//!
//! Sources are never copied: each object gets an explicit rule whose prerequisite is the
//! user's file, so rustc and the C compiler report diagnostics against it.

pub mod bindings;
pub mod macros;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::manifest::ModuleSpec;
use crate::tree::KernelTree;

const MODULE_KBUILD: &str = include_str!("../../../templates/kbuild/module.Kbuild");
const TOP_KBUILD: &str = include_str!("../../../templates/kbuild/top.Kbuild");
const MAKEFILE: &str = include_str!("../../../templates/kbuild/Makefile");
pub(crate) const PROBE_KBUILD: &str = include_str!("../../../templates/kbuild/probe.Kbuild");

/// What a plan is made from.
#[derive(Debug, Clone)]
pub struct PlanInput<'a> {
    pub modules: Vec<&'a ModuleSpec>,
    pub tree: &'a KernelTree,
    /// `target/kmod/<arch>` or `target/kmod/<arch>/test`.
    pub base: PathBuf,
    pub test: bool,
    /// Enabled cargo features per package.
    pub features: BTreeMap<String, BTreeSet<String>>,
    /// `libkmod_macros.so` built for this tree, passed as `--extern kmod_macros=`.
    pub macros: Option<PathBuf>,
    /// `KBUILD_EXTRA_SYMBOLS` (the manifest's `extra-symbols` plus the environment's).
    pub extra_symbols: Vec<PathBuf>,
    /// Crates each package links ([`crate::deps`]), by package; absent for most modules.
    pub deps: BTreeMap<String, crate::deps::ModuleDeps>,
}

/// One module of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedModule {
    pub name: String,
    pub package: String,
    /// `base/<package>`: where its Kbuild is and kbuild writes its objects and `.ko`.
    pub dir: PathBuf,
    /// `OUT_DIR` for generated bindings.
    pub out_dir: PathBuf,
    /// Where kbuild leaves the `.ko`.
    pub built_ko: PathBuf,
}

/// The generated files (path, contents) and the modules they describe.
#[derive(Debug, Clone)]
pub struct Plan {
    pub base: PathBuf,
    pub files: Vec<(PathBuf, String)>,
    pub modules: Vec<PlannedModule>,
    /// `make` arguments after `-C KDIR M=base`.
    pub make_args: Vec<String>,
}

#[derive(Serialize)]
struct CObject {
    object: String,
    source: String,
}

/// Escape a value for the right side of a make assignment.
pub fn make_escape(value: &str) -> String {
    value
        .replace('$', "$$")
        .replace('#', "\\#")
        .replace(['\n', '\r'], " ")
        .trim()
        .to_string()
}

/// Kbuild cannot handle whitespace (or `:`/`#`/`$`) in prerequisite paths.
fn make_path(path: &Path, what: &str, manifest: &Path) -> Result<String> {
    let s = path.display().to_string();
    if s.contains(|c: char| c.is_whitespace() || c == ':' || c == '#' || c == '$') {
        crate::bail_user!(
            "{} `{}` (from `{}`) has a space or one of `:#$` in its path, which kbuild cannot handle", what, s, manifest.display();
            hint = "move or rename it"
        );
    }
    Ok(s)
}

impl ModuleSpec {
    /// The cargo-like environment the generated Kbuild exports for rustc.
    pub fn env(&self, tree: &KernelTree, out_dir: &Path) -> Vec<(String, String)> {
        let mut env = vec![
            ("CARGO_PKG_NAME".to_string(), self.package.clone()),
            ("CARGO_PKG_VERSION".to_string(), self.version.clone()),
            ("CARGO_PKG_AUTHORS".to_string(), self.authors.join(":")),
            (
                "CARGO_PKG_DESCRIPTION".to_string(),
                self.description.clone().unwrap_or_default(),
            ),
            (
                "CARGO_PKG_LICENSE".to_string(),
                self.license.clone().unwrap_or_default(),
            ),
            (
                "CARGO_MANIFEST_DIR".to_string(),
                self.dir.display().to_string(),
            ),
            ("KMOD_NAME".to_string(), self.name.clone()),
            (
                "KMOD_KERNEL_VERSION".to_string(),
                tree.version().map(|v| v.to_string()).unwrap_or_default(),
            ),
            ("KMOD_ARCH".to_string(), tree.arch.name().to_string()),
            ("OUT_DIR".to_string(), out_dir.display().to_string()),
        ];
        for (k, v) in &mut env {
            *v = make_escape(v);
            debug_assert!(!k.is_empty());
        }
        env
    }
}

/// Whether the tree's kbuild passes `--crate-name` to rustc itself (6.12 does, 7.x does not;
/// passing it twice is an error).
fn kbuild_sets_crate_name(tree: &KernelTree) -> bool {
    std::fs::read_to_string(tree.srctree.join("scripts/Makefile.build"))
        .is_ok_and(|t| t.contains("--crate-name"))
}

/// Render the plan (nothing is written yet).
pub fn render(input: &PlanInput<'_>) -> Result<Plan> {
    let mut env = minijinja::Environment::new();
    env.set_keep_trailing_newline(true);
    env.set_trim_blocks(false);
    let mut files = Vec::new();
    let mut modules = Vec::new();
    let mut dirs = Vec::new();
    for m in &input.modules {
        let dir = input.base.join(&m.package);
        let out_dir = dir.join("out");
        let manifest = &m.manifest_path;
        if !m.crate_root.is_file() {
            crate::bail_user!(
                "crate root `{}` of `{}` does not exist", m.crate_root.display(), manifest.display();
                hint = "create it, or set `crate-root` in `[package.metadata.kmod]`"
            );
        }
        let features = input.features.get(&m.package).cloned().unwrap_or_default();
        let mut c_sources: Vec<PathBuf> = m.c_sources.clone();
        let mut ccflags: Vec<String> = Vec::new();
        let mut rustflags: Vec<String> = Vec::new();
        for f in &features {
            rustflags.push(format!("--cfg 'feature=\"{f}\"'"));
            ccflags.push(format!(
                "-DKMOD_FEATURE_{}",
                f.to_uppercase().replace(['-', '.'], "_")
            ));
            if let Some(objs) = m.feature_objects.get(f) {
                c_sources.extend(objs.c_sources.iter().cloned());
                ccflags.extend(objs.ccflags.iter().cloned());
                rustflags.extend(objs.rustflags.iter().cloned());
            }
        }
        for d in &m.include_dirs {
            ccflags.push(format!("-I{}", make_path(d, "include dir", manifest)?));
        }
        ccflags.extend(m.ccflags.iter().cloned());
        if input.test {
            ccflags.push("-DKMOD_TEST".into());
            rustflags.push("--cfg test".into());
        }
        if let Some(so) = &input.macros {
            rustflags.push(format!(
                "--extern kmod_macros={}",
                make_path(so, "proc macro", manifest)?
            ));
        }
        rustflags.extend(m.rustflags.iter().cloned());
        // crates.io dependencies: `--extern`s for the module crate, their objects linked in.
        let mut dep_objects = Vec::new();
        if let Some(deps) = input.deps.get(&m.package) {
            for f in &deps.rustflags {
                if let Some((flag, path)) = f.split_once('=').filter(|_| f.starts_with("--extern "))
                {
                    rustflags.push(format!(
                        "{flag}={}",
                        make_path(Path::new(path), "dependency", manifest)?
                    ));
                } else {
                    rustflags.push(make_escape(f));
                }
            }
            for o in &deps.objects {
                let object = o
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                dep_objects.push(CObject {
                    object,
                    source: make_path(o, "dependency object", manifest)?,
                });
            }
        }

        let rust_object = format!("{}_rs.o", m.name);
        let mut used: BTreeSet<String> = [m.name.clone() + ".o", rust_object.clone()].into();
        let mut c_objects = Vec::new();
        for src in &c_sources {
            if !src.is_file() {
                crate::bail_user!(
                    "C source `{}` listed in `{}` does not exist", src.display(), manifest.display();
                    hint = "fix the path in `c-sources` (paths are relative to the package)"
                );
            }
            let stem = src
                .file_stem()
                .map(|s| {
                    s.to_string_lossy()
                        .replace(|c: char| !(c.is_ascii_alphanumeric() || c == '_'), "_")
                })
                .unwrap_or_default();
            let mut object = format!("{stem}.o");
            let mut n = 1;
            while used.contains(&object) {
                object = format!("{stem}_{n}.o");
                n += 1;
            }
            used.insert(object.clone());
            c_objects.push(CObject {
                object,
                source: make_path(src, "C source", manifest)?,
            });
        }
        let mut objects = vec![rust_object.clone()];
        objects.extend(c_objects.iter().map(|c| c.object.clone()));
        objects.extend(dep_objects.iter().map(|c| c.object.clone()));
        let text = env
            .render_str(
                MODULE_KBUILD,
                minijinja::context! {
                    manifest => manifest.display().to_string(),
                    name => m.name,
                    package => m.package,
                    test => input.test,
                    env => m.env(input.tree, &out_dir),
                    objects => objects,
                    ccflags => ccflags,
                    rustflags => rustflags,
                    rust_object => rust_object,
                    // Older kbuild (6.12) names the crate after the object itself.
                    crate_name => (!kbuild_sets_crate_name(input.tree)).then_some(&m.name),
                    crate_root => make_path(&m.crate_root, "crate root", manifest)?,
                    c_objects => c_objects,
                    dep_objects => dep_objects,
                },
            )
            .context("cannot render the module Kbuild template")?;
        files.push((dir.join("Kbuild"), text));
        dirs.push(m.package.clone());
        modules.push(PlannedModule {
            name: m.name.clone(),
            package: m.package.clone(),
            built_ko: dir.join(format!("{}.ko", m.name)),
            dir,
            out_dir,
        });
    }
    let top = env
        .render_str(TOP_KBUILD, minijinja::context! { dirs => dirs })
        .context("cannot render the top Kbuild template")?;
    files.push((input.base.join("Kbuild"), top));

    let mut make_args = input.tree.make_args();
    if !input.extra_symbols.is_empty() {
        let list: Vec<String> = input
            .extra_symbols
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        make_args.push(format!("KBUILD_EXTRA_SYMBOLS={}", list.join(" ")));
    }
    let makefile = env
        .render_str(
            MAKEFILE,
            minijinja::context! {
                kdir => input.tree.dir.display().to_string(),
                make_args => input.tree.make_args(),
                extra_symbols => input.extra_symbols.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
            },
        )
        .context("cannot render the Makefile template")?;
    files.push((input.base.join("Makefile"), makefile));
    Ok(Plan {
        base: input.base.clone(),
        files,
        modules,
        make_args,
    })
}

impl Plan {
    /// Write every generated file, leaving unchanged ones (and their mtimes) alone.
    pub fn write(&self) -> Result<()> {
        for (path, text) in &self.files {
            crate::fsutil::write_if_changed(path, text.as_bytes())?;
        }
        for m in &self.modules {
            std::fs::create_dir_all(&m.out_dir)
                .with_context(|| format!("cannot create `{}`", m.out_dir.display()))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
