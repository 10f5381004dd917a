//! What `check` and `clippy` print, shared as [`args`](super::args) shares argument groups:
//! rustc's rendered diagnostics and cargo's summary lines on stderr, or with
//! `--message-format json` cargo's own objects on stdout (`compiler-message` carrying
//! rustc's JSON diagnostic, then `build-finished`), so any tool that reads cargo's JSON
//! reads these.

use std::time::Instant;

use anyhow::Result;
use serde_json::json;

use crate::error::{UserError, EXIT_TESTS_FAILED};
use crate::ops::check::{is_summary, ModuleChecked};
use crate::shell::Shell;

/// Print the checks' diagnostics and their outcome; an error (exit 101, as cargo's) when a
/// module has errors.
pub fn report(shell: &Shell, checked: &[ModuleChecked], started: Instant) -> Result<()> {
    for m in checked {
        for line in &m.other {
            eprintln!("{line}");
        }
        if shell.is_json() {
            for d in &m.diagnostics {
                shell.json(&json!({
                    "reason": "compiler-message",
                    "package_id": m.id,
                    "manifest_path": m.manifest_path,
                    "target": {
                        "kind": ["lib"],
                        "crate_types": ["lib"],
                        "name": m.crate_name,
                        "src_path": m.crate_root,
                        "edition": m.edition,
                        "doc": true,
                        "doctest": false,
                        "test": false,
                    },
                    "message": d,
                }));
            }
        } else {
            for d in m.diagnostics.iter().filter(|d| !is_summary(d)) {
                if let Some(r) = d["rendered"].as_str() {
                    eprint!("{r}");
                }
            }
            if m.warnings > 0 && m.success() {
                shell.warn(format_args!(
                    "`{}` (lib) generated {}",
                    m.package,
                    plural(m.warnings, "warning")
                ));
            }
        }
    }
    let failed: Vec<&ModuleChecked> = checked.iter().filter(|m| !m.success()).collect();
    if shell.is_json() {
        shell.json(&json!({ "reason": "build-finished", "success": failed.is_empty() }));
    }
    if let Some(m) = failed.first() {
        let mut message = format!(
            "could not compile `{}` (lib) due to {}",
            m.package,
            plural(m.errors, "previous error")
        );
        if m.warnings > 0 {
            message.push_str(&format!("; {} emitted", plural(m.warnings, "warning")));
        }
        for other in &failed[1..] {
            message.push_str(&format!("; and `{}`", other.package));
        }
        return Err(UserError::new(message)
            .with_exit_code(EXIT_TESTS_FAILED)
            .into());
    }
    shell.status(
        "Finished",
        format_args!(
            "checking {} in {:.2}s",
            checked
                .iter()
                .map(|m| format!("`{}`", m.package))
                .collect::<Vec<_>>()
                .join(", "),
            started.elapsed().as_secs_f64()
        ),
    );
    Ok(())
}

/// `1 warning`, `2 warnings`.
fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("{n} {what}")
    } else {
        format!("{n} {what}s")
    }
}
