//! What `build`, `test` and `package` print under `--matrix`: a line per cell as it ends
//! (`--message-format json`: one object per cell), then the summary table; shared by the
//! three commands like [`super::diagnostics`].

use anyhow::Result;
use serde_json::json;

use crate::context::{Selection, Session};
use crate::error::{UserError, EXIT_TESTS_FAILED};
use crate::matrix::Outcome;
use crate::ops::matrix::{CellResult, Kind, MatrixRequest};

/// Run the matrix and report it; an error (exit 101) when any cell failed or did not run.
pub fn run(session: &Session, select: &Selection, req: &MatrixRequest) -> Result<()> {
    let shell = &session.shell;
    let build = req.kind != Kind::Test;
    let results = crate::ops::matrix::run(session, select, req, &|r| cell_done(session, r, build))?;
    let rows: Vec<crate::matrix::Row> = results.iter().map(|r| r.row.clone()).collect();
    let count = |o: Outcome| rows.iter().filter(|r| r.outcome == o).count();
    let (passed, failed, not_run) = (
        count(Outcome::Passed),
        count(Outcome::Failed),
        count(Outcome::NotRun),
    );
    if shell.is_json() {
        shell.json(&json!({
            "reason": "matrix-finished",
            "cells": rows.len(),
            "passed": passed,
            "failed": failed,
            "not_run": not_run,
            "success": failed == 0 && not_run == 0,
        }));
    } else {
        shell.out("");
        shell.out(crate::matrix::table(&rows, build));
        shell.out("");
    }
    let bad: Vec<String> = results
        .iter()
        .filter(|r| r.row.outcome != Outcome::Passed)
        .map(|r| format!("`{}`", r.cell.name))
        .collect();
    if bad.is_empty() {
        shell.status(
            "Finished",
            format_args!(
                "{} cell{} {}",
                passed,
                plural(passed),
                Outcome::Passed.word(build)
            ),
        );
        return Ok(());
    }
    Err(UserError::new(format!(
        "{} of {} cells {}: {}",
        bad.len(),
        rows.len(),
        if failed > 0 {
            "failed or did not run"
        } else {
            "did not run"
        },
        bad.join(", ")
    ))
    .with_hint(format!(
        "each cell's output is in `{}`",
        results
            .first()
            .and_then(|r| r.log.parent())
            .map(|d| d.display().to_string())
            .unwrap_or_default()
    ))
    .with_exit_code(EXIT_TESTS_FAILED)
    .into())
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// One cell ended: a status line, or its JSON object.
fn cell_done(session: &Session, r: &CellResult, build: bool) {
    let shell = &session.shell;
    if shell.is_json() {
        let artifacts: Vec<&serde_json::Value> = r
            .events
            .iter()
            .filter(|e| {
                matches!(
                    e.get("reason").and_then(|v| v.as_str()),
                    Some("kmod-artifact" | "package")
                )
            })
            .collect();
        let suite = r
            .events
            .iter()
            .rev()
            .find(|e| e.get("type").and_then(|v| v.as_str()) == Some("suite"));
        let n = |k: &str| suite.and_then(|s| s.get(k)).cloned();
        shell.json(&json!({
            "reason": "matrix-cell",
            "cell": r.row.cell,
            "kernel": r.row.kernel,
            "arch": r.row.arch,
            "machine": r.row.machine,
            "result": r.row.outcome,
            "passed": n("passed"),
            "failed": n("failed"),
            "ignored": n("ignored"),
            "seconds": r.row.seconds,
            "tree": r.tree,
            "log": r.log,
            "message": r.message,
            "artifacts": artifacts,
        }));
        return;
    }
    let what = format!(
        "{} ({}{}{}) in {:.1}s",
        r.row.cell,
        if r.row.arch.is_empty() {
            "-"
        } else {
            &r.row.arch
        },
        if r.row.kernel.is_empty() {
            String::new()
        } else {
            format!(", linux {}", crate::text::escape(&r.row.kernel))
        },
        if r.row.machine.is_empty() {
            String::new()
        } else {
            format!(", {}", crate::text::escape(&r.row.machine))
        },
        r.row.seconds
    );
    match r.row.outcome {
        Outcome::Passed => shell.status(if build { "Built" } else { "Passed" }, what),
        Outcome::Failed => shell.error(
            format_args!(
                "cell {}: {}",
                what,
                r.message.as_deref().unwrap_or("failed")
            ),
            Some(&format!("its output: `{}`", r.log.display())),
        ),
        Outcome::NotRun => shell.warn(format_args!(
            "cell `{}` not run: {}",
            r.row.cell,
            r.message.as_deref().unwrap_or("")
        )),
    }
}
