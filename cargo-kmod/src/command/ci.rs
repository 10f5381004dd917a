//! `cargo kmod ci github|gitlab`: the workspace's matrix as a CI engine's job matrix
//! (docs/matrix.md).

use std::path::PathBuf;

use anyhow::Result;
use serde_json::json;

use crate::command::args::PackageSelect;
use crate::context::Session;
use crate::ops::matrix::{CiRequest, Engine};

#[derive(Debug, clap::Args)]
pub struct CiCmd {
    /// The CI engine
    #[arg(value_enum)]
    pub engine: Engine,
    #[command(flatten)]
    pub packages: PackageSelect,
    /// Only these cells (comma separated)
    #[arg(long, value_name = "CELLS", value_delimiter = ',')]
    pub targets: Vec<String>,
    /// The repository root the files go under [default: the nearest directory above the
    /// workspace with `.git`]
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// A shell line that installs cargo-kmod and its tools on a fresh runner (repeatable)
    /// [default: `cargo install --locked cargo-kmod`]
    #[arg(long, value_name = "LINE")]
    pub setup: Vec<String>,
    /// GitHub's `runs-on` label, or GitLab's `image` [default: ubuntu-24.04, rust:1]
    #[arg(long, value_name = "RUNNER")]
    pub runner: Option<String>,
    /// Minutes a job may run
    #[arg(long, value_name = "MIN", default_value_t = 90)]
    pub timeout_minutes: u32,
    /// Replace files that `cargo kmod ci` did not write
    #[arg(long)]
    pub force: bool,
}

impl CiCmd {
    pub fn run(&self, session: &Session) -> Result<()> {
        for s in &self.setup {
            if s.chars().any(char::is_control) {
                crate::bail_user!(
                    "`--setup` takes one shell line, without control characters: `{}`",
                    crate::text::escape(s)
                );
            }
        }
        let mut options = crate::matrix::ci::Options {
            timeout_minutes: self.timeout_minutes.max(1),
            runner: self.runner.clone().unwrap_or_default(),
            ..crate::matrix::ci::Options::default()
        };
        if !self.setup.is_empty() {
            options.setup = self.setup.clone();
        }
        let req = CiRequest {
            engine: self.engine,
            cells: self.targets.clone(),
            root: self.root.clone(),
            options,
            force: self.force,
        };
        let files = crate::ops::matrix::ci(session, &self.packages.selection(), &req)?;
        for f in &files {
            if session.shell.is_json() {
                session.shell.json(&json!({"reason": "ci-file", "path": f}));
            }
            session.shell.status("Wrote", f.display());
        }
        Ok(())
    }
}
