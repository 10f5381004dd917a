//! Type-checking modules (`cargo kmod check`, and `clippy` through it): kbuild's own rustc
//! command for each module crate, with `--emit=metadata` instead of an object.
//!
//! ```text
//! plan (as build writes it: Kbuild, bindings, kmod_macros, dependency crates)
//!   ─► make -C KDIR M=target/kmod/<arch>/<tree> <package>/<stem>.rsi KMOD_CHECK_FLAGS=--error-format=json
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

use std::path::{Path, PathBuf};

use anyhow::Result;
use serde_json::Value;

use crate::context::{BuildContext, Session};
use crate::kbuild::fingerprint::{self, Started};
use crate::kbuild::replay::SavedCheck;
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
///
/// Fast paths, by the build's own fingerprints ([`build::check_fingerprint`]): while
/// nothing but the crates' Rust sources changed since the last check of this selection,
/// kbuild's saved command for each crate runs again without make
/// ([`crate::kbuild::replay`]); when the sources rustc read (its dep-info) did not change
/// either, the last diagnostics are printed again without running anything, as cargo
/// replays a fresh crate's warnings.
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
    let _lock = build::lock_for_check(session, ctx)?;
    let mut flags = vec!["--error-format=json".to_string()];
    if req.color {
        flags.push("--json=diagnostic-rendered-ansi".into());
    }
    let (clippy, driver) = match &req.driver {
        Driver::Rustc => (None, "rustc".to_string()),
        Driver::Clippy { program, args } => {
            flags.extend(args.iter().cloned());
            (Some(program.as_str()), format!("clippy:{program}"))
        }
    };
    let stamp = build::check_stamp(ctx, &req.build, &driver);
    let key = build::check_fingerprint(session, ctx, &req.build, &stamp, None)?;
    let cached = Cache::load(&stamp)
        .filter(|c| c.key == key && c.driver == driver && c.modules.len() == ctx.modules.len());
    let _ = std::fs::remove_file(&stamp);
    let mut started = build::check_started(ctx)?;
    let lines = match cached {
        Some(mut cache) => match replayed(shell, &mut cache, &flags, &started)? {
            Some(lines) => {
                cache.flags = flags.clone();
                cache.store(&stamp)?;
                Some(lines)
            }
            None => None,
        },
        None => None,
    };
    let lines = match lines {
        Some(lines) => lines,
        None => through_make(
            session,
            ctx,
            req,
            &flags,
            clippy,
            &driver,
            &stamp,
            &mut started,
        )?,
    };
    let mut out = Vec::new();
    for (m, (lines, failure)) in ctx.modules.iter().zip(lines) {
        let (diagnostics, other) = split(&lines);
        let (errors, warnings) = count(&diagnostics);
        if let Some(failure) = failure {
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

/// The output lines of each module's check and its failure.
type Outputs = Vec<(Vec<String>, Option<anyhow::Error>)>;

/// The check through kbuild: the plan written as `build` writes it, then each module's check
/// goal; its saved command is recorded under `stamp` for the next check.
#[allow(clippy::too_many_arguments)]
fn through_make(
    session: &Session,
    ctx: &BuildContext,
    req: &CheckRequest,
    flags: &[String],
    clippy: Option<&str>,
    driver: &str,
    stamp: &Path,
    started: &mut Started,
) -> Result<Outputs> {
    let shell = &session.shell;
    let (plan, tc, sources) = build::plan_for_check(session, ctx, &req.build, started)?;
    let mut make_args = plan.make_args.clone();
    make_args.push(crate::plan::check_flags_arg(flags, "a clippy argument")?);
    let mut out = Vec::new();
    let mut cache = Cache {
        key: String::new(),
        driver: driver.to_string(),
        flags: flags.to_vec(),
        modules: Vec::new(),
    };
    for pm in &plan.modules {
        let log = pm.dir.join("check.log");
        let run = crate::kbuild::CheckRun {
            dir: &plan.base,
            make_args: &make_args,
            goal: &pm.check_goal,
            clippy,
            log: &log,
        };
        let checked = crate::kbuild::check(shell, &ctx.tree, &tc, &run)?;
        // A run that failed without a compiler error is never replayed.
        let broken = checked.failure.is_some() && count(&split(&checked.lines).0).0 == 0;
        let saved = crate::kbuild::replay::saved(&pm.dir, clippy.is_some()).filter(|_| !broken);
        cache.modules.push(saved.map(|command| {
            let (deps, deps_fingerprint) = read_sources(&command, started);
            CachedModule {
                command,
                log,
                deps,
                deps_fingerprint,
                lines: checked.lines.clone(),
                failed: checked.failure.is_some(),
            }
        }));
        out.push((checked.lines, checked.failure));
    }
    if cache.modules.iter().all(Option::is_some) {
        cache.key =
            build::check_fingerprint(session, ctx, &req.build, stamp, Some((&sources, started)))?;
        cache.store(stamp)?;
    }
    Ok(out)
}

/// Each module's check from the saved commands of `cache`, updated in place: the last
/// output again when the sources rustc read are unchanged and the flags are the same, else
/// the command run again. `None` when a saved command cannot stand for kbuild's (a crate it
/// links is gone, or the run failed without a compiler error): the check goes through make.
fn replayed(
    shell: &crate::shell::Shell,
    cache: &mut Cache,
    flags: &[String],
    started: &Started,
) -> Result<Option<Outputs>> {
    let same_flags = cache.flags == flags;
    let mut out = Vec::new();
    for m in cache.modules.iter_mut() {
        let Some(m) = m else { return Ok(None) };
        if same_flags && !m.deps.is_empty() && fingerprint::files(&m.deps) == m.deps_fingerprint {
            shell.verbose("Fresh", format_args!("`{}`", m.command.source));
            out.push((
                m.lines.clone(),
                m.failed.then(|| anyhow::anyhow!("rustc failed")),
            ));
            continue;
        }
        if !m.command.externs_exist() {
            return Ok(None);
        }
        let checked = m.command.run(shell, flags, &m.log)?;
        let (diagnostics, _) = split(&checked.lines);
        if checked.failure.is_some() && count(&diagnostics).0 == 0 {
            return Ok(None);
        }
        (m.deps, m.deps_fingerprint) = read_sources(&m.command, started);
        m.lines = checked.lines.clone();
        m.failed = checked.failure.is_some();
        out.push((checked.lines, checked.failure));
    }
    Ok(Some(out))
}

/// The sources the command's last run read (its dep-info) and their identities as of the
/// check that began at `started`; none when rustc wrote no dep-info.
fn read_sources(command: &SavedCheck, started: &Started) -> (Vec<PathBuf>, String) {
    let deps = command
        .dep_info()
        .and_then(|p| std::fs::read_to_string(p).ok())
        .map(|t| crate::kbuild::replay::dep_info_files(&t, &command.cwd))
        .unwrap_or_default();
    let mut fp = fingerprint::Fingerprint::after(started);
    for d in &deps {
        fp.file(d);
    }
    (deps, fp.finish())
}

/// What the last check of a selection left: the fingerprint its commands stand for, and each
/// module's saved command, the sources it read and what it printed.
#[derive(serde::Serialize, serde::Deserialize)]
struct Cache {
    key: String,
    driver: String,
    flags: Vec<String>,
    modules: Vec<Option<CachedModule>>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct CachedModule {
    command: SavedCheck,
    log: PathBuf,
    deps: Vec<PathBuf>,
    deps_fingerprint: String,
    lines: Vec<String>,
    failed: bool,
}

impl Cache {
    fn load(path: &Path) -> Option<Cache> {
        serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
    }

    fn store(&self, path: &Path) -> Result<()> {
        crate::fsutil::write_atomic(path, serde_json::to_string(self)?.as_bytes())
    }
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
