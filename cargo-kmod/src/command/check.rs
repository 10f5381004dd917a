//! `cargo kmod check`: type-check the modules with kbuild's exact rustc command, no `.ko`.

use std::time::Instant;

use anyhow::Result;

use crate::command::args::BuildSelect;
use crate::context::{BuildContext, Session};
use crate::ops::check::{CheckRequest, Driver};

#[derive(Debug, Clone, Default, clap::Args)]
pub struct CheckCmd {
    #[command(flatten)]
    pub args: BuildSelect,
}

impl CheckCmd {
    pub fn run(&self, session: &Session) -> Result<()> {
        let started = Instant::now();
        let ctx = BuildContext::resolve(
            session,
            &self.args.select.selection(),
            &self.args.kdir.selection()?,
        )?;
        let req = CheckRequest {
            build: self.args.build.options(false),
            driver: Driver::Rustc,
            // cargo's JSON carries plain `rendered` text unless asked otherwise.
            color: session.shell.is_color() && !session.shell.is_json(),
        };
        let checked = crate::ops::check::check(session, &ctx, &req)?;
        super::diagnostics::report(&session.shell, &checked, started)
    }
}
