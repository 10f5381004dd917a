//! `cargo kmod build`: manifest -> kernel tree -> plan (Kbuild, bindings) -> kbuild -> `.ko`.

use std::time::Instant;

use anyhow::Result;
use serde_json::json;

use crate::command::args::{BuildSelect, MatrixArgs, ToArgs};
use crate::context::{BuildContext, Session};
use crate::ops::build;

#[derive(Debug, Clone, Default, clap::Args)]
pub struct BuildCmd {
    #[command(flatten)]
    pub args: BuildSelect,
    #[command(flatten)]
    pub matrix: MatrixArgs,
}

impl BuildCmd {
    pub fn run(&self, session: &Session) -> Result<()> {
        if self.matrix.matrix {
            let mut args = Vec::new();
            self.args.select.to_args(&mut args);
            self.args.build.to_args(&mut args);
            let req =
                self.matrix
                    .request(crate::ops::matrix::Kind::Build, self.args.build.jobs, args);
            return crate::command::matrix::run(session, &self.args.select.selection(), &req);
        }
        let started = Instant::now();
        let shell = &session.shell;
        let ctx = BuildContext::resolve(
            session,
            &self.args.select.selection(),
            &self.args.kdir.selection()?,
        )?;
        let artifacts = build::build(session, &ctx, &self.args.build.options(false))?;
        for a in &artifacts {
            if shell.is_json() {
                shell.json(&json!({
                    "reason": "kmod-artifact",
                    "module": a.module,
                    "package": a.package,
                    "path": a.ko,
                    "symvers": a.symvers,
                    "arch": a.arch.name(),
                    "kernel_release": a.release,
                    "vermagic": a.vermagic,
                }));
            }
        }
        let names: Vec<String> = artifacts
            .iter()
            .map(|a| format!("`{}`", a.ko.display()))
            .collect();
        shell.status(
            "Finished",
            format_args!(
                "{} in {:.2}s",
                names.join(", "),
                started.elapsed().as_secs_f64()
            ),
        );
        Ok(())
    }
}
