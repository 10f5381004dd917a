//! The matrix: every kernel a workspace supports, as named cells, which `test --matrix` and
//! `build --matrix` run on one machine, `ci` hands to a CI engine's job matrix and `kmm`
//! to Kubernetes' Kernel Module Management (docs/matrix.md).
//!
//! A cell is a target of `[workspace.metadata.kmod.targets]` (named as the target), or a dev
//! tree of `[workspace.metadata.kmod.matrix]` (`<kernel>-<arch>`, `6.12-x86_64`). Plain data in
//! and out: which tree a cell is, and whether it is prepared, is decided above
//! ([`crate::ops::matrix`]).

pub mod ci;
pub mod kmm;

use std::collections::BTreeMap;

use anyhow::Result;
use serde::Serialize;

use crate::kernel::{Arch, Version};
use crate::manifest::{MatrixSpec, TargetSpec};

/// One cell of the matrix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cell {
    /// `rpi4`, `6.12-x86_64`: a file name, a YAML scalar and a CLI word as it is.
    pub name: String,
    pub tree: CellTree,
}

/// Which tree a cell builds for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum CellTree {
    /// A named target (`--target NAME`), with its arch when it says one.
    Target { target: String, arch: Option<Arch> },
    /// The dev tree of a kernel version for an arch (`cargo kmod init --source
    /// /usr/src/linux-source-<kernel>.tar.xz --arch <arch>`).
    Dev { kernel: String, arch: Arch },
}

impl Cell {
    /// The arch, when the cell's declaration says it.
    pub fn arch(&self) -> Option<Arch> {
        match &self.tree {
            CellTree::Target { arch, .. } => *arch,
            CellTree::Dev { arch, .. } => Some(*arch),
        }
    }

    /// The command that prepares the cell's tree, as words after `cargo kmod`.
    pub fn init_args(&self, source: Option<&std::path::Path>) -> Vec<String> {
        match &self.tree {
            CellTree::Target { target, .. } => {
                vec!["init".into(), "--target".into(), target.clone()]
            }
            CellTree::Dev { kernel, arch } => vec![
                "init".into(),
                "--source".into(),
                source
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| format!("/usr/src/linux-source-{kernel}.tar.xz")),
                "--arch".into(),
                arch.name().into(),
            ],
        }
    }
}

/// Whether `name` can be a cell's name: it becomes a file name, a YAML scalar, a Kubernetes
/// label value part and a command-line word, so `[A-Za-z0-9._-]`, not starting with `-` or
/// `.`, at most 63 characters.
pub fn is_valid_cell_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && !name.starts_with(['-', '.'])
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The workspace's cells: the dev trees of `matrix` (kernels x arches, without `exclude`),
/// then its targets (all of them, or `matrix.targets`), in name order. `file` is the
/// workspace manifest, for errors.
pub fn cells(
    targets: &BTreeMap<String, TargetSpec>,
    matrix: Option<&MatrixSpec>,
    file: &std::path::Path,
) -> Result<Vec<Cell>> {
    let section = "[workspace.metadata.kmod.matrix]";
    let mut out: Vec<Cell> = Vec::new();
    if let Some(m) = matrix {
        for kernel in &m.kernels {
            for arch in &m.arches {
                out.push(Cell {
                    name: format!("{kernel}-{}", arch.name()),
                    tree: CellTree::Dev {
                        kernel: kernel.clone(),
                        arch: *arch,
                    },
                });
            }
        }
        if let Some(names) = &m.targets {
            for n in names {
                if !targets.contains_key(n) {
                    let valid: Vec<&str> = targets.keys().map(String::as_str).collect();
                    crate::bail_user!(
                        "`targets` in `{}` of `{}` names `{}`, which `[workspace.metadata.kmod.targets]` does not define", section, m.file.display(), crate::text::escape(n);
                        hint = "{}", match crate::text::nearest(n, valid.iter().copied(), 0.7) {
                            Some(v) => format!("did you mean `{v}`?"),
                            None if valid.is_empty() => "define it as `[workspace.metadata.kmod.targets.NAME]`".to_string(),
                            None => format!("targets: {}", valid.join(", ")),
                        }
                    );
                }
            }
        }
    }
    for (name, t) in targets {
        if let Some(names) = matrix.and_then(|m| m.targets.as_ref()) {
            if !names.contains(name) {
                continue;
            }
        }
        if !is_valid_cell_name(name) {
            crate::bail_user!(
                "target `{}` in `{}` cannot be a matrix cell: its name becomes a file name, a CI job and a command-line word", crate::text::escape(name), file.display();
                hint = "name it with letters, digits, `.`, `_` and `-` (at most 63), or leave it out with `targets` in {}", section
            );
        }
        if let Some(dup) = out.iter().find(|c| c.name == *name) {
            crate::bail_user!(
                "target `{}` in `{}` has the name of the dev-tree cell `{}` of `{}`", name, file.display(), dup.name, section;
                hint = "rename the target"
            );
        }
        out.push(Cell {
            name: name.clone(),
            tree: CellTree::Target {
                target: name.clone(),
                arch: t.arch.or(t.distro_kernel.as_ref().map(|d| d.arch)),
            },
        });
    }
    if let Some(m) = matrix {
        for x in &m.exclude {
            if !out.iter().any(|c| c.name == *x) {
                let names: Vec<&str> = out.iter().map(|c| c.name.as_str()).collect();
                crate::bail_user!(
                    "`exclude` in `{}` of `{}` names `{}`, which is no cell", section, m.file.display(), crate::text::escape(x);
                    hint = "{}", match crate::text::nearest(x, names.iter().copied(), 0.7) {
                        Some(v) => format!("did you mean `{v}`?"),
                        None => format!("cells: {}", names.join(", ")),
                    }
                );
            }
        }
        out.retain(|c| !m.exclude.contains(&c.name));
    }
    if out.is_empty() {
        crate::bail_user!(
            "the workspace of `{}` has no matrix cells", file.display();
            hint = "declare targets (`[workspace.metadata.kmod.targets.NAME]`) or dev trees (`[workspace.metadata.kmod.matrix] kernels = [\"7.2\"]`): docs/matrix.md"
        );
    }
    Ok(out)
}

/// The cells `--targets a,b` names, in the matrix's order; every name must be a cell.
pub fn select(cells: Vec<Cell>, names: &[String]) -> Result<Vec<Cell>> {
    let names: Vec<&str> = names
        .iter()
        .flat_map(|n| n.split([',', ' ']))
        .filter(|n| !n.is_empty())
        .collect();
    if names.is_empty() {
        return Ok(cells);
    }
    for n in &names {
        if !cells.iter().any(|c| c.name == *n) {
            let valid: Vec<&str> = cells.iter().map(|c| c.name.as_str()).collect();
            crate::bail_user!(
                "`--targets` names `{}`, which is not a cell of the matrix", crate::text::escape(n);
                hint = "{}", match crate::text::nearest(n, valid.iter().copied(), 0.7) {
                    Some(v) => format!("did you mean `{v}`?"),
                    None => format!("cells: {}", valid.join(", ")),
                }
            );
        }
    }
    Ok(cells
        .into_iter()
        .filter(|c| names.contains(&c.name.as_str()))
        .collect())
}

/// Whether a prepared tree's release is a dev cell's kernel (`6.12` matches `6.12.118`).
pub fn release_matches(kernel: &str, release: &str) -> bool {
    let (Some(want), Some(have)) = (
        Version::find(&format!("{kernel}.0")).or_else(|| Version::find(kernel)),
        Version::find(release),
    ) else {
        return false;
    };
    let parts = kernel.split('.').count();
    want.0 == have.0 && want.1 == have.1 && (parts < 3 || want.2 == have.2)
}

/// How a cell ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Passed,
    Failed,
    /// Not started: its tree is missing under `--no-prepare`, or `--fail-fast` stopped the run.
    NotRun,
}

impl Outcome {
    pub fn word(self, build: bool) -> &'static str {
        match (self, build) {
            (Outcome::Passed, false) => "passed",
            (Outcome::Passed, true) => "built",
            (Outcome::Failed, _) => "failed",
            (Outcome::NotRun, _) => "not run",
        }
    }
}

/// One row of the summary.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    pub cell: String,
    /// The tree's release, when known (`7.2.13`).
    pub kernel: String,
    pub arch: String,
    /// qemu's machine and accelerator (`q35, tcg`); `-` for a build.
    pub machine: String,
    pub outcome: Outcome,
    pub seconds: f64,
}

/// The summary table, columns aligned; every cell of text escaped.
pub fn table(rows: &[Row], build: bool) -> String {
    let head = ["cell", "kernel", "arch", "machine", "result", "time"];
    let body: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            [
                crate::text::escape(&r.cell).into_owned(),
                crate::text::escape(if r.kernel.is_empty() { "-" } else { &r.kernel }).into_owned(),
                crate::text::escape(&r.arch).into_owned(),
                crate::text::escape(if r.machine.is_empty() {
                    "-"
                } else {
                    &r.machine
                })
                .into_owned(),
                r.outcome.word(build).to_string(),
                format!("{:.1}s", r.seconds),
            ]
        })
        .collect();
    let mut width = head.map(str::len);
    for row in &body {
        for (w, c) in width.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cols: &[String]| -> String {
        cols.iter()
            .zip(width)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let mut out = vec![line(&head.map(String::from))];
    out.extend(body.iter().map(|r| line(r)));
    out.join("\n")
}

#[cfg(test)]
mod tests;
