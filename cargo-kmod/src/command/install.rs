//! `cargo kmod install [FILE...] [--root DIR] [--dir updates]`: strip, sign and compress like
//! `package`, install into `ROOT/lib/modules/<release>/<dir>/` atomically and run the real
//! `depmod -b ROOT <release>`.

use std::path::PathBuf;

use anyhow::Result;

use crate::command::build::BuildCmd;
use crate::command::package::ShipArgs;
use crate::Context;

#[derive(Debug, clap::Args)]
pub struct InstallCmd {
    /// Module files to install [default: build the package(s) and install what was built]
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub build: BuildCmd,
    #[command(flatten)]
    pub ship: ShipArgs,
    /// Root to install under, like `INSTALL_MOD_PATH`
    #[arg(
        long,
        env = "INSTALL_MOD_PATH",
        default_value = "/",
        value_name = "DIR"
    )]
    pub root: PathBuf,
}

impl InstallCmd {
    pub fn run(&self, ctx: &Context) -> Result<()> {
        let (files, _) = super::package::inputs(ctx, &self.files, &self.build)?;
        let kos = super::verify::read_all(&files)?;
        let tree = super::verify::tree_for(ctx, &self.build.kdir, &kos)?;
        let prepared = self.ship.prepare(ctx, &tree, &kos)?;
        let paths = crate::ship::install::install(
            &ctx.shell,
            &self.root,
            &tree.release,
            &self.ship.dir,
            &prepared,
        )?;
        ctx.shell.status(
            "Finished",
            format_args!("{} module(s) installed for {}", paths.len(), tree.release),
        );
        Ok(())
    }
}
