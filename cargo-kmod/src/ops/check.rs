//! Type-checking modules (`cargo kmod check`, and `clippy` through it): kbuild's own rustc
//! command for each module crate, with `--emit=metadata` instead of an object.
//!
//! ```text
//! plan (as build writes it: Kbuild, bindings, kmod_macros, dependency crates)
//!   ─► make -C KDIR M=target/kmod/<arch> <package>/<stem>.rsi KMOD_CHECK_FLAGS=--error-format=json
//!   ─► rustc's JSON diagnostics, by module
//! ```
//!
//! The check goal of the module's generated Kbuild (`templates/kbuild/module.Kbuild`) runs
//! kbuild's `rust_common_cmd` for the crate: the tree's rustc (or `clippy-driver` under
//! kbuild's `CLIPPY=1`), target, cfgs, `--extern`s of the kernel crates, `kmod_macros` and
//! `[dependencies]`, `[lints]`, and the cargo-like environment, exactly as the build
//! compiles the object; nothing is linked, modpost does not run and no `.ko` is written.
//! rustc always reports in JSON; the command renders it (rustc's `rendered` text) or
//! forwards it in cargo's shape. Spans name the user's files, since the plan never copies
//! sources.

use std::path::PathBuf;

use anyhow::Result;
use serde_json::Value;

use crate::context::{BuildContext, Session};
use crate::ops::build::{self, BuildOptions};

/// Which compiler type-checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Driver {
    /// The tree's rustc.
    Rustc,
    /// kbuild's `CLIPPY=1` with this `clippy-driver` and the arguments after `--`.
    Clippy { program: String, args: Vec<String> },
}

/// What to check and how.
#[derive(Debug, Clone)]
pub struct CheckRequest {
    /// Features, profile, `--offline`...: the build the check stands for.
    pub build: BuildOptions,
    pub driver: Driver,
    /// Ask rustc for ANSI colors in its rendered text.
    pub color: bool,
}

/// One module's check.
#[derive(Debug, Clone)]
pub struct ModuleChecked {
    pub package: String,
    /// cargo's package id.
    pub id: String,
    pub manifest_path: PathBuf,
    pub crate_name: String,
    pub crate_root: PathBuf,
    pub edition: String,
    /// rustc's JSON diagnostics, as it printed them (summaries included).
    pub diagnostics: Vec<Value>,
    /// Lines that were not diagnostics (a tool's own messages).
    pub other: Vec<String>,
    pub errors: usize,
    pub warnings: usize,
}

impl ModuleChecked {
    pub fn success(&self) -> bool {
        self.errors == 0
    }
}

/// Type-check the modules of `ctx`.
pub fn check(
    session: &Session,
    ctx: &BuildContext,
    req: &CheckRequest,
) -> Result<Vec<ModuleChecked>> {
    let shell = &session.shell;
    for m in &ctx.modules {
        // cargo says `Checking` for `check` and `clippy` alike.
        shell.status(
            "Checking",
            format_args!(
                "{} v{} ({}, linux {})",
                m.name, m.version, ctx.tree.arch, ctx.tree.release
            ),
        );
    }
    let (plan, tc, _lock) = build::plan_for_check(session, ctx, &req.build)?;
    let mut flags = vec!["--error-format=json".to_string()];
    if req.color {
        flags.push("--json=diagnostic-rendered-ansi".into());
    }
    let clippy = match &req.driver {
        Driver::Rustc => None,
        Driver::Clippy { program, args } => {
            flags.extend(args.iter().cloned());
            Some(program.as_str())
        }
    };
    let mut make_args = plan.make_args.clone();
    make_args.push(crate::plan::check_flags_arg(&flags, "a clippy argument")?);
    let mut out = Vec::new();
    for (m, pm) in ctx.modules.iter().zip(&plan.modules) {
        let log = pm.dir.join("check.log");
        let run = crate::kbuild::CheckRun {
            dir: &plan.base,
            make_args: &make_args,
            goal: &pm.check_goal,
            clippy,
            log: &log,
        };
        let checked = crate::kbuild::check(shell, &ctx.tree, &tc, &run)?;
        let (diagnostics, other) = split(&checked.lines);
        let (errors, warnings) = count(&diagnostics);
        if let Some(failure) = checked.failure {
            // A failure without a compiler error is a broken run (a missing driver, a make
            // error): its command line and output are the report.
            if errors == 0 {
                return Err(failure.context(format!("cannot check `{}`", m.package)));
            }
        }
        out.push(ModuleChecked {
            package: m.package.clone(),
            id: m.id.clone(),
            manifest_path: m.manifest_path.clone(),
            crate_name: m.crate_name.clone(),
            crate_root: m.crate_root.clone(),
            edition: m.edition.clone(),
            diagnostics,
            other: if errors > 0 {
                other.into_iter().filter(|l| !is_make_error(l)).collect()
            } else {
                other
            },
            errors,
            warnings,
        });
    }
    Ok(out)
}

/// rustc's JSON diagnostics, and the other lines.
fn split(lines: &[String]) -> (Vec<Value>, Vec<String>) {
    let mut diagnostics = Vec::new();
    let mut other = Vec::new();
    for l in lines {
        match serde_json::from_str::<Value>(l) {
            Ok(v) if v.get("$message_type").and_then(Value::as_str) == Some("diagnostic") => {
                diagnostics.push(v)
            }
            _ if l.trim().is_empty() => {}
            _ => other.push(l.clone()),
        }
    }
    (diagnostics, other)
}

/// Whether a diagnostic is rustc's closing summary (`aborting due to 1 previous error`,
/// `2 warnings emitted`), which cargo replaces with its own line.
pub fn is_summary(d: &Value) -> bool {
    let message = d["message"].as_str().unwrap_or("");
    d["spans"].as_array().is_none_or(Vec::is_empty)
        && (message.starts_with("aborting due to") || message.ends_with(" emitted"))
}

/// The errors and warnings among `diagnostics`, summaries not counted.
fn count(diagnostics: &[Value]) -> (usize, usize) {
    let level = |l: &str| {
        diagnostics
            .iter()
            .filter(|d| !is_summary(d) && d["level"] == l)
            .count()
    };
    (level("error"), level("warning"))
}

/// make's own report of a failed recipe (`make[2]: *** [...] Error 1`), noise after
/// rustc's errors.
fn is_make_error(line: &str) -> bool {
    line.starts_with("make") && line.contains(": *** ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn diagnostics_are_split_from_other_lines_and_counted() {
        let lines: Vec<String> = [
            json!({"$message_type": "diagnostic", "message": "mismatched types", "level": "error", "spans": [{"file_name": "/p/src/lib.rs"}]}).to_string(),
            json!({"$message_type": "diagnostic", "message": "unused variable: `x`", "level": "warning", "spans": [{"file_name": "/p/src/lib.rs"}]}).to_string(),
            json!({"$message_type": "diagnostic", "message": "aborting due to 1 previous error; 1 warning emitted", "level": "error", "spans": []}).to_string(),
            json!({"$message_type": "artifact", "artifact": "/x.rmeta"}).to_string(),
            "make[3]: *** [p/Kbuild:37: p/p.rsi] Error 1".to_string(),
            String::new(),
        ]
        .into();
        let (d, other) = split(&lines);
        assert_eq!(d.len(), 3);
        assert_eq!(other.len(), 2);
        assert_eq!(count(&d), (1, 1));
        assert!(is_summary(&d[2]));
        assert!(!is_summary(&d[0]));
        assert!(is_make_error(&other[1]));
        assert!(!is_make_error("error: could not find"));
    }
}
