//! `cargo kmod install [FILE...] [--root DIR] [--dir updates]`: strip, sign and compress like
//! `package`, install into `ROOT/lib/modules/<release>/<dir>/` atomically and run the real
//! `depmod -b ROOT <release>`.

use std::path::PathBuf;

use anyhow::Result;

use crate::cli::KdirArgs;
use crate::command::package::ShipArgs;
use crate::Context;

#[derive(Debug, clap::Args)]
pub struct InstallCmd {
    /// Module files to install
    #[arg(value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub kdir: KdirArgs,
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
        let kos = super::verify::read_all(&self.files)?;
        let tree = super::verify::tree_for(&self.kdir, &kos)?;
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
