//! `cargo kmod install [FILE...] [--root DIR] [--dir updates]`: strip, sign and compress like
//! `package`, install into `ROOT/lib/modules/<release>/<dir>/` atomically and run the real
//! `depmod -b ROOT <release>`.

use std::path::PathBuf;

use anyhow::Result;

use crate::command::args::{BuildSelect, ShipArgs};
use crate::context::Session;
use crate::ops::ship;

#[derive(Debug, clap::Args)]
pub struct InstallCmd {
    /// Module files to install [default: build the package(s) and install what was built]
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub build: BuildSelect,
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
    pub fn run(&self, session: &Session) -> Result<()> {
        let inputs = ship::inputs(
            session,
            &self.files,
            &self.build.select.selection(),
            &self.build.kdir.selection()?,
            &self.build.build.options(false),
        )?;
        let paths = ship::install(
            session,
            &inputs,
            &self.root,
            &self.ship.dir,
            &self.ship.request(),
        )?;
        session.shell.status(
            "Finished",
            format_args!(
                "{} module(s) installed for {}",
                paths.len(),
                inputs.tree.release
            ),
        );
        Ok(())
    }
}
