//! Running cargo: `cargo metadata` for the resolve graph, `cargo build -p <module> --target
//! <kernel target>` with cargo-kmod as the workspace rustc wrapper, and turning a failed
//! build into the error a user can act on.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{Context, Result};
use cargo_metadata::{Message, Metadata, PackageId};
use xshell::cmd;

use super::graph::Graph;
use super::{link, wrapper, DepsInput, ModuleDeps};
use crate::error::UserError;
use crate::kernel::KernelTree;
use crate::manifest::ModuleSpec;
use crate::shell::Shell;

/// `cargo metadata` with dependencies: the resolve graph (for the link closure, local
/// sources and error paths). It writes `Cargo.lock` as cargo does, unless `--locked`.
pub(super) fn metadata(shell: &Shell, input: &DepsInput<'_>, manifest: &Path) -> Result<Metadata> {
    let sh = xshell::Shell::new()?;
    let cargo = cargo_program();
    let mode = input.mode.args();
    let c = cmd!(
        sh,
        "{cargo} metadata --format-version 1 --manifest-path {manifest} {mode...}"
    );
    let json = crate::process::run(shell, c).map_err(cargo_error)?;
    serde_json::from_str(&json).context("cannot parse `cargo metadata` output")
}

pub(super) fn cargo_program() -> String {
    crate::env::Env::get().cargo()
}

/// A failed cargo run as a user error: its `error:` line, the rest as the hint.
fn cargo_error(e: anyhow::Error) -> anyhow::Error {
    let Some(pe) = e.downcast_ref::<crate::process::ProcessError>() else {
        return e;
    };
    let Some(i) = pe.tail.iter().position(|l| l.starts_with("error")) else {
        return e;
    };
    let line = pe.tail[i]
        .trim_start_matches("error: ")
        .trim_start_matches("error:")
        .trim()
        .to_string();
    let rest: Vec<&str> = pe.tail[i + 1..]
        .iter()
        .map(String::as_str)
        .filter(|l| !l.trim().is_empty() && !l.starts_with('{'))
        .take(8)
        .collect();
    let mut u = UserError::new(line);
    if !rest.is_empty() {
        u = u.with_hint(rest.join("\n"));
    }
    u.into()
}

/// `cargo build -p <module> --lib --target <kernel>` and what it produced for the module.
pub(super) fn build_module(
    shell: &Shell,
    input: &DepsInput<'_>,
    dir: &Path,
    graph: &Graph<'_>,
    m: &ModuleSpec,
) -> Result<ModuleDeps> {
    let Some(pkg) = graph.package_named(&m.package) else {
        anyhow::bail!("`cargo metadata` does not list package `{}`", m.package);
    };
    let sh = xshell::Shell::new()?;
    let cargo = cargo_program();
    let manifest = &m.manifest_path;
    // The full package id: a dependency may share the module package's name.
    let package = &pkg.id.repr;
    let target = &input.flags.target;
    let mut args: Vec<String> = input.mode.args().iter().map(|s| s.to_string()).collect();
    args.push("--no-default-features".into());
    let features: Vec<String> = input
        .features
        .get(&m.package)
        .map(|f| f.iter().cloned().collect())
        .unwrap_or_default();
    if !features.is_empty() {
        args.push("--features".into());
        args.push(features.join(","));
    }
    if input.release {
        args.push("--release".into());
    }
    if let Some(j) = input.jobs {
        args.push(format!("-j{j}"));
    }
    if shell.verbosity == crate::shell::Verbosity::Quiet {
        args.push("--quiet".into());
    }
    if target.ends_with(".json") {
        // cargo wants its unstable flag for spec files (x86_64's `scripts/target.json`);
        // `RUSTC_BOOTSTRAP=1`, which kbuild exports for rustc too, allows it.
        args.push("-Zjson-target-spec".into());
    }
    let exe = std::env::current_exe().context("cannot find the cargo-kmod executable")?;
    let c = cmd!(
        sh,
        "{cargo} build --lib -p {package} --manifest-path {manifest} --target {target} --target-dir {dir} --message-format json {args...}"
    )
    .env("RUSTC", &input.rustc)
    .env("RUSTC_WORKSPACE_WRAPPER", &exe)
    .env(wrapper::INTERCEPT_ENV, input.module_packages.join(","))
    .env("CARGO_ENCODED_RUSTFLAGS", input.flags.rustflags.join("\x1f"))
    // kbuild exports it too: the kernel's flags use `-Z` options on a stable rustc.
    .env("RUSTC_BOOTSTRAP", "1")
    .env_remove("RUSTFLAGS")
    .env_remove("CARGO_BUILD_RUSTFLAGS")
    .env_remove("CARGO_BUILD_TARGET")
    .env_remove("CARGO_TARGET_DIR")
    .env_remove("CARGO_BUILD_TARGET_DIR")
    // Empty: no other wrapper, not even one from cargo's config (cargo's documented reset).
    .env("RUSTC_WRAPPER", "")
    .env_remove("CARGO_BUILD_RUSTC_WRAPPER");
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create `{}`", dir.display()))?;
    let log = dir.join(format!("kmod-cargo-{}.log", m.package));
    let _ = std::fs::remove_file(&log);
    let quiet = shell.verbosity == crate::shell::Verbosity::Quiet;
    let mut messages = Vec::new();
    let modules: BTreeSet<&str> = input.module_packages.iter().map(String::as_str).collect();
    let result = crate::process::run_logged(shell, c, &log, |line| {
        if line.starts_with('{') {
            if let Ok(msg) = serde_json::from_str::<Message>(line) {
                messages.push(msg);
            }
            return;
        }
        // cargo's status lines, except its `Finished` and the module crates' stubs.
        let mut words = line.split_whitespace();
        let verb = words.next().unwrap_or("");
        let what = words.next().unwrap_or("");
        // cargo's own `error:` lines go to the log: the error below explains them.
        let hidden = verb == "Finished"
            || verb.starts_with("error")
            || (verb == "Compiling" && modules.contains(what));
        if !quiet && !hidden {
            eprintln!("{line}");
        }
    });
    if let Err(e) = result {
        return Err(
            explain_failure(shell, graph, &pkg.id, &messages, input.tree)
                .unwrap_or_else(|| cargo_error(e)),
        );
    }
    for msg in &messages {
        if let Message::CompilerMessage(cm) = msg {
            if let Some(r) = &cm.message.rendered {
                if !quiet && !graph.modules.contains(&cm.package_id) {
                    eprint!("{r}");
                }
            }
        }
    }
    link::collect(input, dir, graph, &pkg.id, m, &messages)
}

/// A failed build explained: a crate that needs `std` or `alloc`, or the first compile error.
fn explain_failure(
    shell: &Shell,
    graph: &Graph<'_>,
    root: &PackageId,
    messages: &[Message],
    tree: &KernelTree,
) -> Option<anyhow::Error> {
    let errors: Vec<&cargo_metadata::CompilerMessage> = messages
        .iter()
        .filter_map(|m| match m {
            Message::CompilerMessage(cm)
                if cm.message.level == cargo_metadata::diagnostic::DiagnosticLevel::Error =>
            {
                Some(cm)
            }
            _ => None,
        })
        .collect();
    let first = errors.first()?;
    for cm in &errors {
        let text = &cm.message.message;
        let missing = ["std", "alloc"]
            .into_iter()
            .find(|c| text.contains(&format!("can't find crate for `{c}`")));
        if let Some(what) = missing {
            return Some(needs_crate(graph, root, &cm.package_id, what, tree).into());
        }
    }
    for cm in &errors {
        if let Some(r) = &cm.message.rendered {
            if shell.verbosity != crate::shell::Verbosity::Quiet {
                eprint!("{r}");
            }
        }
    }
    let name = graph.name(&first.package_id);
    let version = graph
        .package(&first.package_id)
        .map(|p| format!(" v{}", p.version))
        .unwrap_or_default();
    Some(
        UserError::new(format!(
            "could not compile dependency `{name}{version}` for the kernel ({}): {}",
            tree.arch, first.message.message
        ))
        .with_hint(format!(
            "pulled in by `{}`; kernel modules get `core` only, with the kernel's target and flags",
            graph.path(root, &first.package_id)
        ))
        .into(),
    )
}

/// The error for a crate that needs `std` (or `alloc` where the tree has none).
pub(super) fn needs_crate(
    graph: &Graph<'_>,
    root: &PackageId,
    failed: &PackageId,
    what: &str,
    tree: &KernelTree,
) -> UserError {
    let name = graph.name(failed);
    let path = graph.path(root, failed);
    let names: Vec<&str> = path.split(" -> ").collect();
    let direct = names.get(1).copied().unwrap_or(name.as_str());
    let manifest = graph
        .package(root)
        .map(|p| p.manifest_path.to_string())
        .unwrap_or_default();
    let has_feature = graph
        .package(failed)
        .is_some_and(|p| p.features.contains_key(what));
    let gives = match what {
        "std" => "kernel modules do not have".to_string(),
        _ => format!("Linux {} does not give modules", tree.release),
    };
    let hint = if !has_feature {
        format!(
            "`{name}` has no `{what}` feature to turn off: use a `no_std` crate instead (one that needs only `core`)"
        )
    } else if direct == name {
        format!(
            "`{name}` has a `{what}` feature: depend on it with `default-features = false` in `{manifest}` (and enable only features that avoid `{what}`), or use another crate"
        )
    } else {
        format!(
            "`{name}` has a `{what}` feature, turned on through `{direct}`: depend on `{direct}` with `default-features = false` in `{manifest}` if that turns it off, or use another crate"
        )
    };
    UserError::new(format!(
        "dependency `{name}` needs `{what}`, which {gives}: `{path}`"
    ))
    .with_hint(hint)
}
