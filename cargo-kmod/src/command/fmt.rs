//! `cargo kmod fmt [--check]`: rustfmt over the modules' own sources, in the tree's style.

use anyhow::Result;

use crate::command::args::{KdirArgs, PackageSelect};
use crate::context::{BuildContext, Session};

#[derive(Debug, Clone, Default, clap::Args)]
pub struct FmtCmd {
    #[command(flatten)]
    pub select: PackageSelect,
    #[command(flatten)]
    pub kdir: KdirArgs,
    /// Only check: print the diff and fail (exit 1) when a file is not formatted
    #[arg(long)]
    pub check: bool,
}

impl FmtCmd {
    pub fn run(&self, session: &Session) -> Result<()> {
        let shell = &session.shell;
        let ctx =
            BuildContext::resolve(session, &self.select.selection(), &self.kdir.selection()?)?;
        let formatted = crate::ops::fmt::fmt(session, &ctx, self.check)?;
        let files: Vec<String> = formatted
            .iter()
            .flat_map(|f| &f.files)
            .map(|p| format!("`{}`", p.display()))
            .collect();
        if self.check {
            for f in formatted.iter().filter(|f| !f.files.is_empty()) {
                shell.out(f.diff.trim_end());
            }
            if !files.is_empty() {
                crate::bail_user!(
                    "not formatted: {}", files.join(", ");
                    hint = "run `cargo kmod fmt` to format them"
                );
            }
            return Ok(());
        }
        shell.status(
            "Finished",
            format_args!("formatting {} file(s)", files.len()),
        );
        Ok(())
    }
}
