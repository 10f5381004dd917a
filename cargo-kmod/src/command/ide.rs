//! `cargo kmod ide`: write `rust-project.json` so rust-analyzer understands the modules.

use std::path::PathBuf;

use anyhow::Result;
use serde_json::json;

use crate::command::args::{KdirArgs, PackageSelect};
use crate::context::{BuildContext, Session};

#[derive(Debug, clap::Args)]
pub struct IdeCmd {
    #[command(flatten)]
    pub select: PackageSelect,
    #[command(flatten)]
    pub kdir: KdirArgs,
    /// Where to write it [default: `rust-project.json` at the workspace root]
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

impl IdeCmd {
    pub fn run(&self, session: &Session) -> Result<()> {
        let shell = &session.shell;
        let mut select = self.select.selection();
        // Every module of the workspace unless packages are named.
        select.workspace |= select.packages.is_empty();
        let ctx = BuildContext::resolve(session, &select, &self.kdir.selection()?)?;
        let project = crate::ops::ide::rust_project(session, &ctx)?;
        let out = self
            .output
            .clone()
            .unwrap_or_else(|| ctx.workspace.root.join("rust-project.json"));
        crate::fsutil::write_atomic(&out, serde_json::to_string_pretty(&project)?.as_bytes())?;
        if shell.is_json() {
            shell.json(&json!({ "reason": "rust-project", "path": out }));
        }
        shell.status(
            "Finished",
            format_args!("`{}` for {} module(s)", out.display(), ctx.modules.len()),
        );
        Ok(())
    }
}
