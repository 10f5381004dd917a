//! `cargo kmod doc [--open]`: rustdoc for the modules, linked into the tree's `kernel` docs.

use anyhow::Result;

use crate::command::args::BuildSelect;
use crate::context::{BuildContext, Session};

#[derive(Debug, Clone, Default, clap::Args)]
pub struct DocCmd {
    #[command(flatten)]
    pub args: BuildSelect,
    /// Open the docs in a browser after building them (`xdg-open`)
    #[arg(long)]
    pub open: bool,
}

impl DocCmd {
    pub fn run(&self, session: &Session) -> Result<()> {
        let shell = &session.shell;
        let ctx = BuildContext::resolve(
            session,
            &self.args.select.selection(),
            &self.args.kdir.selection()?,
        )?;
        let (kernel, documented) =
            crate::ops::doc::doc(session, &ctx, &self.args.build.options(false))?;
        for d in &documented {
            if shell.is_json() {
                shell.json(&serde_json::json!({
                    "reason": "doc",
                    "package": d.package,
                    "index": d.index,
                    "kernel": kernel,
                }));
            }
            shell.status("Generated", d.index.display());
        }
        if let (true, Some(first)) = (self.open, documented.first()) {
            shell.status("Opening", first.index.display());
            let sh = xshell::Shell::new()?;
            let index = &first.index;
            crate::process::run(shell, xshell::cmd!(sh, "xdg-open {index}"))?;
        }
        Ok(())
    }
}
