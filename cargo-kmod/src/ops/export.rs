//! `cargo kmod export`: write a module into a kernel source tree ([`crate::export`] plans
//! it), keep a record of what was written, and with `--check` run the kernel's gates on it.
//!
//! The record (`<dir>/.cargo-kmod-export.json`) holds the hash of every file as written. A
//! file that is in the tree but not in the record, or that changed since, is the user's:
//! it is not overwritten without `--force`. Files are written one by one, each atomically,
//! the record last.
//!
//! `--check` runs, on the exported files:
//! - rustfmt `--check` with the tree's `.rustfmt.toml` (what `make rustfmtcheck` runs);
//! - a `CLIPPY=1` build of the module with the dev tree's kbuild: the exported directory,
//!   copied under `target/kmod/export/<arch>/<name>/`, built as an external module with its
//!   symbol `=m` and its KUnit symbol on (the `.ko` it leaves is the `=m` build);
//! - `scripts/checkpatch.pl --strict` on the patch the export amounts to, written to
//!   `target/kmod/export/<name>.patch` with the `Signed-off-by` the user gave.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use xshell::cmd;

use crate::context::{BuildContext, Scope, Selection, Session, TreeSelection};
use crate::export::{patch, Export, RECORD};
use crate::manifest::ModuleSpec;

/// `export`'s options.
#[derive(Debug, Clone, Default)]
pub struct ExportOptions {
    pub into: PathBuf,
    pub path: Option<String>,
    pub symbol: Option<String>,
    pub force: bool,
    pub check: bool,
    /// `Name <email>` for the patch's `Signed-off-by`.
    pub signoff: Option<String>,
}

/// One finding of `--check`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// `rustfmt`, `clippy`, `checkpatch`.
    pub tool: &'static str,
    pub text: String,
}

/// What an export did.
#[derive(Debug, Clone)]
pub struct Exported {
    pub package: String,
    pub export: Export,
    /// Files written (relative to the tree); the others were already as they should be.
    pub written: Vec<String>,
    /// The patch of the whole export.
    pub patch: PathBuf,
    /// With `--check`: every finding, and the `=m` module the clippy build left.
    pub findings: Vec<Finding>,
    pub ko: Option<PathBuf>,
}

/// What the record says of one export.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Record {
    package: String,
    symbol: String,
    /// sha256 of each file as written, by its path relative to the module's directory.
    files: BTreeMap<String, String>,
}

/// Export the selected package (exactly one) into `opts.into`.
pub fn export(
    session: &Session,
    select: &Selection,
    trees: &TreeSelection,
    opts: &ExportOptions,
) -> Result<Exported> {
    let shell = &session.shell;
    let scope = Scope::read(session, select, &TreeSelection::default(), true)?;
    let ws = scope.workspace.as_ref().context("no workspace")?;
    let modules = ws.select(&select.packages, select.workspace)?;
    let m: ModuleSpec = match modules.as_slice() {
        [m] => (*m).clone(),
        [] => crate::bail_user!("no kernel module package is selected"; hint = "pass `-p NAME`"),
        many => crate::bail_user!(
            "export takes one package, and {} are selected ({})", many.len(),
            many.iter().map(|m| format!("`{}`", m.package)).collect::<Vec<_>>().join(", ");
            hint = "pass `-p NAME`"
        ),
    };
    let into = &opts.into;
    let plan = crate::export::plan(&crate::export::Request {
        module: &m,
        srctree: into,
        path: opts.path.as_deref(),
        symbol: opts.symbol.as_deref(),
    })?;
    match plan.kind {
        Some(kind) => shell.status(
            "Exporting",
            format_args!(
                "{} ({kind}) into `{}` as `CONFIG_{}` (`--path` chooses another place)",
                m.name, plan.dir, plan.symbol
            ),
        ),
        None => shell.status(
            "Exporting",
            format_args!("{} into `{}` as `CONFIG_{}`", m.name, plan.dir, plan.symbol),
        ),
    }
    let written = write(into, &m, &plan, opts.force)?;

    let target_dir = ws.target_dir.join("kmod").join("export");
    std::fs::create_dir_all(&target_dir)
        .with_context(|| format!("cannot create `{}`", target_dir.display()))?;
    let patch_path = target_dir.join(format!("{}.patch", m.name));
    let text = patch_text(&m, &plan, opts.signoff.as_deref());
    crate::fsutil::write_atomic(&patch_path, text.as_bytes())?;

    let mut out = Exported {
        package: m.package.clone(),
        export: plan,
        written,
        patch: patch_path,
        findings: Vec::new(),
        ko: None,
    };
    if opts.check {
        let ctx = BuildContext::resolve(session, select, trees)?;
        out.findings.extend(rustfmt(session, into, &out.export)?);
        let (findings, ko) = clippy_build(session, &ctx, into, &out.export, &target_dir)?;
        out.findings.extend(findings);
        out.ko = ko;
        out.findings.extend(checkpatch(session, into, &out.patch)?);
    }
    Ok(out)
}

/// Write the planned files and parent lines, refusing to overwrite what the user changed.
fn write(into: &Path, m: &ModuleSpec, plan: &Export, force: bool) -> Result<Vec<String>> {
    let dir = into.join(&plan.dir);
    let record_path = dir.join(RECORD);
    let record: Record = match std::fs::read(&record_path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
            crate::error::UserError::new(format!(
                "`{}` is not a cargo-kmod export record: {e}",
                record_path.display()
            ))
        })?,
        Err(_) => Record::default(),
    };
    if !record.package.is_empty() && record.package != m.package && !force {
        crate::bail_user!(
            "`{}` holds the export of package `{}`, not `{}`", plan.dir, record.package, m.package;
            hint = "choose another `--path`, or pass `--force` to replace it"
        );
    }
    // Every refusal before the first write.
    for (rel, text) in &plan.files {
        let path = dir.join(rel);
        // A link in the module's directory never takes a write elsewhere.
        let mut at = dir.clone();
        for part in std::path::Path::new(rel).components() {
            at.push(part);
            if at
                .symlink_metadata()
                .is_ok_and(|m| m.file_type().is_symlink())
            {
                crate::bail_user!(
                    "`{}` is a symbolic link: export writes only plain files and directories in the module's directory", at.strip_prefix(into).unwrap_or(&at).display();
                    hint = "remove the link"
                );
            }
        }
        let Ok(current) = std::fs::read(&path) else {
            continue;
        };
        if current == text.as_bytes() || force {
            continue;
        }
        let hash = crate::fsutil::sha256_hex(&current);
        match record.files.get(rel) {
            Some(h) if *h == hash => {}
            Some(_) => crate::bail_user!(
                "`{}/{}` was changed in the tree since the last export", plan.dir, rel;
                hint = "keep the change in the package and export again, or pass `--force` to overwrite it"
            ),
            None => crate::bail_user!(
                "`{}/{}` exists and was not written by `cargo kmod export`", plan.dir, rel;
                hint = "pass `--force` to overwrite it"
            ),
        }
    }
    let mut written = Vec::new();
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create `{}`", dir.display()))?;
    let real_dir = dir
        .canonicalize()
        .with_context(|| format!("cannot read `{}`", dir.display()))?;
    let mut hashes = BTreeMap::new();
    for (rel, text) in &plan.files {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create `{}`", parent.display()))?;
            if !parent
                .canonicalize()
                .is_ok_and(|p| p.starts_with(&real_dir))
            {
                anyhow::bail!("`{}/{rel}` left the module's directory", plan.dir);
            }
        }
        if crate::fsutil::write_if_changed(&path, text.as_bytes())? {
            written.push(format!("{}/{rel}", plan.dir));
        }
        hashes.insert(rel.clone(), crate::fsutil::sha256_hex(text.as_bytes()));
    }
    // Files an earlier export wrote that this one does not: removed when unchanged.
    for (rel, h) in &record.files {
        if plan.files.contains_key(rel) {
            continue;
        }
        let path = dir.join(rel);
        if crate::fsutil::sha256_file(&path).is_ok_and(|now| now == *h) {
            std::fs::remove_file(&path)
                .with_context(|| format!("cannot remove `{}`", path.display()))?;
            written.push(format!("{}/{rel} (removed)", plan.dir));
        }
    }
    for p in &plan.parents {
        if p.after != p.current {
            crate::fsutil::write_atomic(&into.join(&p.file), p.after.as_bytes())?;
            written.push(p.file.clone());
        }
    }
    let record = Record {
        package: m.package.clone(),
        symbol: plan.symbol.clone(),
        files: hashes,
    };
    crate::fsutil::write_atomic(&record_path, &serde_json::to_vec_pretty(&record)?)?;
    Ok(written)
}

/// The patch of the export: the module's files as new files, the parents' lines.
fn patch_text(m: &ModuleSpec, plan: &Export, signoff: Option<&str>) -> String {
    let paths: Vec<String> = plan
        .files
        .keys()
        .map(|rel| format!("{}/{rel}", plan.dir))
        .collect();
    let mut changes: Vec<patch::Change<'_>> = plan
        .files
        .values()
        .zip(&paths)
        .map(|(text, path)| patch::Change {
            path,
            before: None,
            after: text,
        })
        .collect();
    for p in &plan.parents {
        changes.push(patch::Change {
            path: &p.file,
            before: Some(&p.base),
            after: &p.after,
        });
    }
    // `drivers/misc/hello` -> `misc: hello:`, as subsystems prefix their subjects.
    let parts: Vec<&str> = plan.dir.split('/').collect();
    let prefix = match parts.as_slice() {
        ["drivers", rest @ ..] if rest.len() >= 2 => rest[rest.len() - 2..].join(": "),
        _ => parts.last().copied().unwrap_or_default().to_string(),
    };
    let description = m
        .description
        .clone()
        .unwrap_or_else(|| format!("the {} module", m.name));
    let subject = format!("{prefix}: add Rust driver {}", m.name);
    let body = format!(
        "{}\n\n{}",
        wrap_words(&format!("Add {}: {}.", m.name, description.trim_end_matches('.'))),
        wrap_words(&format!(
            "The module is written in Rust and built when CONFIG_{} is set; its KUnit tests are built with CONFIG_{}.",
            plan.symbol, plan.test_symbol
        ))
    );
    let from = signoff
        .map(str::to_string)
        .or_else(|| m.authors.first().cloned())
        .unwrap_or_else(|| "unknown <unknown@example.invalid>".into());
    patch::render(
        &patch::Message {
            from: &from,
            subject: &subject,
            body: &body,
            signoff,
        },
        &changes,
    )
}

/// `text` wrapped at 72 columns, as commit messages are (checkpatch warns past 75).
fn wrap_words(text: &str) -> String {
    crate::export::wrap_lines(text, 72).join("\n")
}

/// rustfmt `--check` over the exported Rust files with the tree's `.rustfmt.toml`.
fn rustfmt(session: &Session, into: &Path, plan: &Export) -> Result<Vec<Finding>> {
    let sh = xshell::Shell::new()?;
    let mut args = vec![
        "--check".to_string(),
        "--color=never".into(),
        "--edition".into(),
        "2021".into(),
    ];
    let config = into.join(".rustfmt.toml");
    if config.is_file() {
        args.push("--config-path".into());
        args.push(config.display().to_string());
    }
    let files: Vec<PathBuf> = plan
        .files
        .keys()
        .filter(|f| f.ends_with(".rs"))
        .map(|f| into.join(&plan.dir).join(f))
        .collect();
    let o = crate::process::output(&session.shell, cmd!(sh, "rustfmt {args...} {files...}"))?;
    let text = String::from_utf8_lossy(&o.stdout);
    let mut findings = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("Diff in ") {
            let shown = rest
                .trim_end_matches(':')
                .replace(&format!("{}/", into.display()), "");
            findings.push(Finding {
                tool: "rustfmt",
                text: format!("not formatted: {shown}"),
            });
        }
    }
    if findings.is_empty() && !o.status.success() {
        findings.push(Finding {
            tool: "rustfmt",
            text: crate::text::escape(String::from_utf8_lossy(&o.stderr).trim()).into_owned(),
        });
    }
    Ok(findings)
}

/// The `CLIPPY=1` build of the exported directory with the dev tree's kbuild, as an
/// external module with its symbol `=m` and its KUnit symbol on. The warnings are findings;
/// the `.ko` is returned when the build succeeded.
fn clippy_build(
    session: &Session,
    ctx: &BuildContext,
    into: &Path,
    plan: &Export,
    target_dir: &Path,
) -> Result<(Vec<Finding>, Option<PathBuf>)> {
    let shell = &session.shell;
    let build = target_dir.join(ctx.tree.arch.name()).join(&plan.name);
    if build.exists() {
        std::fs::remove_dir_all(&build)
            .with_context(|| format!("cannot remove `{}`", build.display()))?;
    }
    let src = into.join(&plan.dir);
    for rel in plan.files.keys() {
        let to = build.join(rel);
        std::fs::create_dir_all(to.parent().unwrap_or(&build))?;
        std::fs::copy(src.join(rel), &to)
            .with_context(|| format!("cannot copy `{}`", src.join(rel).display()))?;
    }
    // The symbols the tree's `.config` does not have, as kbuild and rustc would see them
    // in a tree configured with the module `=m`.
    let kbuild = format!(
        "# Written by `cargo kmod export --check`: the exported Makefile with CONFIG_{s}=m.\nCONFIG_{s} := m\nCONFIG_{t} := y\nccflags-y += -DCONFIG_{s}_MODULE=1 -DCONFIG_{t}=1\nrustflags-y += --cfg=CONFIG_{s} --cfg=CONFIG_{t}\ninclude $(src)/Makefile\n",
        s = plan.symbol,
        t = plan.test_symbol
    );
    std::fs::write(build.join("Kbuild"), kbuild)?;
    let sh = xshell::Shell::new()?;
    let driver = crate::ops::clippy::driver_for(session, ctx)?;
    let mut args = vec![
        "-C".to_string(),
        ctx.tree.dir.display().to_string(),
        format!("M={}", build.display()),
        "CLIPPY=1".into(),
        format!("CLIPPY_DRIVER={driver}"),
        "--no-print-directory".into(),
    ];
    args.extend(ctx.tree.make_args());
    args.push("modules".into());
    shell.status(
        "Checking",
        format_args!(
            "{} with clippy (CLIPPY=1) against `{}`",
            plan.name,
            ctx.tree.dir.display()
        ),
    );
    let log = build.with_extension("log");
    let mut lines = Vec::new();
    let tc = crate::kernel::toolchain::Toolchain::default();
    for (k, v) in tc.kbuild_env() {
        sh.set_var(k, v);
    }
    let result = crate::process::run_logged(shell, cmd!(sh, "make {args...}"), &log, |l| {
        lines.push(l.to_string())
    });
    let mut findings = Vec::new();
    let prefix = format!("{}/", build.display());
    let mut current: Option<String> = None;
    for l in &lines {
        let l = l.replace(&prefix, &format!("{}/", plan.dir));
        if l.starts_with("warning:")
            || l.starts_with("error:")
            || l.starts_with("error[")
            || l.starts_with("warning[")
        {
            if let Some(f) = current.take() {
                findings.push(Finding {
                    tool: "clippy",
                    text: f,
                });
            }
            if l.contains("warnings emitted")
                || l.contains("warning emitted")
                || l.starts_with("error: aborting")
            {
                continue;
            }
            current = Some(l.trim().to_string());
        } else if let Some(f) = current.as_mut() {
            if let Some(at) = l.trim_start().strip_prefix("--> ") {
                // kbuild runs the compiler in the module's directory: paths are relative
                // to it, or were under the build copy (replaced above).
                let at = if at.starts_with(&plan.dir) || at.starts_with('/') {
                    at.to_string()
                } else {
                    format!("{}/{at}", plan.dir)
                };
                f.push_str(&format!(" ({at})"));
            }
        }
    }
    if let Some(f) = current.take() {
        findings.push(Finding {
            tool: "clippy",
            text: f,
        });
    }
    let ko = build.join(format!("{}.ko", plan.name));
    match result {
        Ok(_) if ko.is_file() => Ok((findings, Some(ko))),
        Ok(_) => Ok((findings, None)),
        Err(e) => {
            if findings.is_empty() {
                return Err(e.context(format!("the CLIPPY=1 build of `{}` failed", plan.dir)));
            }
            Ok((findings, None))
        }
    }
}

/// `scripts/checkpatch.pl --strict` on the patch; each WARNING, ERROR and CHECK is a finding.
fn checkpatch(session: &Session, into: &Path, patch: &Path) -> Result<Vec<Finding>> {
    let script = into.join("scripts/checkpatch.pl");
    if !script.is_file() {
        crate::bail_user!(
            "`{}` does not exist: the tree has no checkpatch",
            script.display()
        );
    }
    let sh = xshell::Shell::new()?;
    sh.change_dir(into);
    let o = crate::process::output(
        &session.shell,
        cmd!(
            sh,
            "perl {script} --strict --no-color --showfile --terse {patch}"
        ),
    )?;
    let text = String::from_utf8_lossy(&o.stdout);
    let mut findings = Vec::new();
    for line in text.lines() {
        // `--terse --showfile`: `FILE:LINE: TYPE: message`.
        if line.contains(": WARNING: ") || line.contains(": ERROR: ") || line.contains(": CHECK: ")
        {
            findings.push(Finding {
                tool: "checkpatch",
                text: crate::text::escape(line).into_owned(),
            });
        }
    }
    if findings.is_empty() && !o.status.success() {
        let tail: Vec<&str> = text.lines().rev().take(5).collect();
        findings.push(Finding {
            tool: "checkpatch",
            text: crate::text::escape(&tail.into_iter().rev().collect::<Vec<_>>().join(" "))
                .into_owned(),
        });
    }
    Ok(findings)
}
