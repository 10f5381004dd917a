//! `cargo kmod fmt`: rustfmt over each module's own sources.
//!
//! rustfmt is given the crate root (cargo's `[lib] path`) and follows its `mod`
//! declarations, as `cargo fmt` does; files reached only through `include!` (the bindings
//! in `OUT_DIR`) are never read. The settings are the tree's `.rustfmt.toml` (the
//! kernel's own style) when the tree has one, with the package's edition on the command
//! line. A first pass with `--check` finds the files that differ; files under the target
//! directory are generated and left out. Without `--check`, each differing file of the
//! package is formatted in place.

use std::path::{Path, PathBuf};

use anyhow::Result;
use xshell::cmd;

use crate::context::{BuildContext, Session};
use crate::manifest::ModuleSpec;

/// rustfmt's program.
pub const RUSTFMT: &str = "rustfmt";

/// One module's formatting.
#[derive(Debug, Clone)]
pub struct Formatted {
    pub package: String,
    /// The files that were not formatted (with `--check`) or that were formatted.
    pub files: Vec<PathBuf>,
    /// rustfmt's diff of them (with `--check`).
    pub diff: String,
}

/// Format (or with `check`, only compare) the sources of each module of `ctx`.
pub fn fmt(session: &Session, ctx: &BuildContext, check: bool) -> Result<Vec<Formatted>> {
    let shell = &session.shell;
    let config = ctx.tree.srctree.join(".rustfmt.toml");
    let config = config.is_file().then_some(config);
    let mut out = Vec::new();
    for m in &ctx.modules {
        let (files, diff) = differing(session, m, config.as_deref(), &ctx.workspace.target_dir)?;
        if !check {
            for f in &files {
                shell.status("Formatting", f.display());
                let args = args(m, config.as_deref());
                let sh = xshell::Shell::new()?;
                crate::process::run(shell, cmd!(sh, "{RUSTFMT} {args...} {f}"))?;
            }
        }
        out.push(Formatted {
            package: m.package.clone(),
            files,
            diff,
        });
    }
    Ok(out)
}

/// rustfmt's options for module `m`.
fn args(m: &ModuleSpec, config: Option<&Path>) -> Vec<String> {
    let mut args = vec!["--edition".to_string(), m.edition.clone()];
    if let Some(c) = config {
        args.push("--config-path".into());
        args.push(c.display().to_string());
    }
    args
}

/// The package's files rustfmt would change, and its diff of them.
fn differing(
    session: &Session,
    m: &ModuleSpec,
    config: Option<&Path>,
    target_dir: &Path,
) -> Result<(Vec<PathBuf>, String)> {
    let sh = xshell::Shell::new()?;
    let args = args(m, config);
    let shown = args.join(" ");
    let root = &m.crate_root;
    let o = crate::process::output(
        &session.shell,
        cmd!(sh, "{RUSTFMT} --check --color=never {args...} {root}"),
    )?;
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    // `--check` fails with a diff when files differ; failing without one is rustfmt's own
    // error (a syntax error, a bad configuration).
    if !o.status.success() && !stdout.contains("Diff in ") {
        let stderr = String::from_utf8_lossy(&o.stderr);
        crate::bail_user!(
            "rustfmt cannot format `{}`: {}", root.display(), stderr.lines().find(|l| !l.trim().is_empty()).unwrap_or("no output").trim();
            hint = "run `{} --check {} {}` to see all of it", RUSTFMT, shown, root.display()
        );
    }
    // rustfmt names a `#[path]` module as `src/../target/x.rs`: compare real paths.
    let real = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let target_dir = real(target_dir);
    let mut files = Vec::new();
    for f in diff_files(&stdout) {
        let f = real(&f);
        if !f.starts_with(&target_dir) && !files.contains(&f) {
            files.push(f);
        }
    }
    Ok((files, stdout))
}

/// The files named by rustfmt's `Diff in FILE:LINE:` headers.
fn diff_files(diff: &str) -> Vec<PathBuf> {
    diff.lines()
        .filter_map(|l| l.strip_prefix("Diff in "))
        .filter_map(|rest| {
            let rest = rest.trim_end().trim_end_matches(':');
            rest.rsplit_once(':')
                .map(|(file, _line)| PathBuf::from(file))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_headers_name_files() {
        let diff =
            "Diff in /p/src/lib.rs:3:\n-fn  f() {}\n+fn f() {}\nDiff in /p/src/a b.rs:10:\n x\n";
        assert_eq!(
            diff_files(diff),
            [
                PathBuf::from("/p/src/lib.rs"),
                PathBuf::from("/p/src/a b.rs")
            ]
        );
    }
}
