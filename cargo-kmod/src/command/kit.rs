//! `cargo kmod kit`: export a prepared tree's kernel image, DTBs, installed modules and a
//! headers package with the Rust artifacts (see [`crate::ship::kit`]).

use std::path::PathBuf;

use anyhow::Result;
use serde_json::json;

use crate::command::args::KdirArgs;
use crate::context::Session;

#[derive(Debug, clap::Args)]
pub struct KitCmd {
    #[command(flatten)]
    pub kdir: KdirArgs,
    /// Where to write the kit [default: target/kmod/kit/<release>-<arch>]
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

impl KitCmd {
    pub fn run(&self, session: &Session) -> Result<()> {
        let kit = crate::ops::kit::kit(session, &self.kdir.selection()?, self.dir.as_deref())?;
        if session.shell.is_json() {
            session.shell.json(&json!({
                "reason": "kit",
                "dir": kit.dir,
                "release": kit.release,
                "arch": kit.arch.name(),
                "image": kit.image,
                "dtbs": kit.dtbs,
                "modules": kit.modules,
                "module_files": kit.module_files,
                "headers_tar": kit.headers_tar,
                "headers_deb": kit.headers_deb,
            }));
        }
        session.shell.status(
            "Finished",
            format_args!(
                "kit for linux {} ({}) in `{}`: {} DTB{}, {} module{}, `{}`, `{}`",
                kit.release,
                kit.arch,
                kit.dir.display(),
                kit.dtbs.len(),
                if kit.dtbs.len() == 1 { "" } else { "s" },
                kit.module_files.len(),
                if kit.module_files.len() == 1 { "" } else { "s" },
                kit.headers_tar
                    .file_name()
                    .unwrap_or_default()
                    .to_string_lossy(),
                kit.headers_deb
                    .file_name()
                    .unwrap_or_default()
                    .to_string_lossy(),
            ),
        );
        Ok(())
    }
}
