//! From cargo's messages to what kbuild needs: the module crate's recorded `--extern`/`-L`
//! flags, the objects of its link closure extracted from their rlibs, and the crates as
//! rust-analyzer sees them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use cargo_metadata::{DependencyKind, Message, PackageId};

use super::graph::Graph;
use super::{wrapper, DepCrate, DepsInput, ModuleDeps};
use crate::manifest::ModuleSpec;

/// From cargo's messages: the module crate's recorded `--extern`/`-L`, and the objects of
/// its link closure, extracted from their rlibs.
pub(super) fn collect(
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
