//! `cargo kmod init`: prepare Rust-ready development kernel trees under `$CARGO_KMOD_HOME`.

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use serde_json::json;

use crate::context::Session;
use crate::tree::home::Home;
use crate::tree::prepare::{self, Request, Source};
use crate::tree::toolchain::Toolchain;
use crate::tree::Arch;

#[derive(Debug, clap::Args)]
pub struct InitCmd {
    /// Kernel source: a `.tar.xz`/`.tar.gz` tarball or an unpacked tree
    /// [default: the newest /usr/src/linux-source-*.tar.*]
    #[arg(long, value_name = "PATH")]
    pub source: Option<PathBuf>,
    /// Architecture(s) to prepare: x86_64, arm64 or all
    #[arg(long, default_value = "all", value_name = "ARCH")]
    pub arch: String,
    /// Extra Kconfig fragment merged after the built-in ones (repeatable)
    #[arg(long = "config", value_name = "FRAGMENT")]
    pub configs: Vec<PathBuf>,
    /// Parallel make jobs [default: the number of CPUs]
    #[arg(short, long, value_name = "N")]
    pub jobs: Option<usize>,
    /// List the prepared trees and exit
    #[arg(long)]
    pub list: bool,
}

impl InitCmd {
    pub fn run(&self, session: &Session) -> Result<()> {
        let home = Home::from_env()?;
        if self.list {
            return list(session, &home);
        }
        let arches: Vec<Arch> = match self.arch.as_str() {
            "all" => Arch::ALL.to_vec(),
            a => vec![Arch::parse(a)?],
        };
        let source = match &self.source {
            Some(p) => Source::from_path(p)?,
            None => Source::default_in(std::path::Path::new("/usr/src"))?,
        };
        let mut fragments = Vec::new();
        for path in &self.configs {
            let text = std::fs::read_to_string(path).map_err(|e| {
                crate::error::UserError::new(format!(
                    "cannot read config fragment `{}`: {}",
                    path.display(),
                    e.to_string().to_lowercase()
                ))
            })?;
            fragments.push((path.display().to_string(), text));
        }
        let tc = Toolchain::detect(&home);
        let jobs = self
            .jobs
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        for arch in arches {
            let req = Request {
                source: source.clone(),
                arch,
                fragments: fragments.clone(),
                jobs,
            };
            let (tree, fresh) = prepare::prepare(&session.shell, &home, &tc, &req)
                .with_context(|| format!("cannot prepare the {arch} tree"))?;
            if session.shell.is_json() {
                session.shell.json(&json!({
                    "reason": "kernel-tree",
                    "arch": arch.name(),
                    "release": tree.meta.release,
                    "path": tree.dir,
                    "fresh": fresh,
                    "rustc": tree.meta.rustc,
                    "modversions": tree.meta.modversions,
                }));
            }
            let verb = if fresh { "Fresh" } else { "Finished" };
            session.shell.status(
                verb,
                format_args!(
                    "linux {} for {} at `{}`",
                    tree.meta.release,
                    arch,
                    tree.dir.display()
                ),
            );
        }
        Ok(())
    }
}

fn list(session: &Session, home: &Home) -> Result<()> {
    let trees = home.list();
    for t in &trees {
        if session.shell.is_json() {
            session.shell.json(&json!({
                "reason": "kernel-tree",
                "arch": t.meta.arch.name(),
                "release": t.meta.release,
                "rustc": t.meta.rustc,
                "path": t.dir,
                "modversions": t.meta.modversions,
            }));
        } else {
            let rustc = t.meta.rustc.split_whitespace().nth(1).unwrap_or("?");
            session.shell.out(format_args!(
                "{:<10} {:<7} rustc {:<8} {}",
                t.meta.release,
                t.meta.arch.name(),
                rustc,
                t.dir.display()
            ));
        }
    }
    if trees.is_empty() && !session.shell.is_json() {
        session.shell.note(format_args!(
            "no prepared trees in `{}`; run `cargo kmod init`",
            home.trees_dir().display()
        ));
    }
    Ok(())
}
