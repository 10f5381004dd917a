//! `cargo kmod clippy [-- ARGS]`: `check` with kbuild's `CLIPPY=1`.

use std::time::Instant;

use anyhow::Result;

use crate::command::args::BuildSelect;
use crate::context::{BuildContext, Session};

#[derive(Debug, Clone, Default, clap::Args)]
pub struct ClippyCmd {
    #[command(flatten)]
    pub args: BuildSelect,
    /// Arguments for clippy-driver, after kbuild's and `[lints]` (`-- -D warnings`)
    #[arg(last = true, value_name = "CLIPPY_ARGS")]
    pub clippy_args: Vec<String>,
}

impl ClippyCmd {
    pub fn run(&self, session: &Session) -> Result<()> {
        let started = Instant::now();
        let ctx = BuildContext::resolve(
            session,
            &self.args.select.selection(),
            &self.args.kdir.selection()?,
        )?;
        let checked = crate::ops::clippy::clippy(
            session,
            &ctx,
            self.args.build.options(false),
            self.clippy_args.clone(),
            session.shell.is_color() && !session.shell.is_json(),
        )?;
        super::diagnostics::report(&session.shell, &checked, started)
    }
}
