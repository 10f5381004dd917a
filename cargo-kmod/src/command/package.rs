//! `cargo kmod package [FILE...]`: verify, strip, sign, compress and package modules in the
//! `lib/modules/<release>/<dir>/` layout: a reproducible tarball with a manifest (default),
//! a `.deb` whose postinst runs depmod, or a DKMS source tree.

use std::path::PathBuf;

use anyhow::Result;
use serde_json::json;

use crate::command::args::{BuildSelect, ShipArgs};
use crate::context::Session;
use crate::ops::ship::{self, PackageRequest};
use crate::ship::package::Format;

#[derive(Debug, clap::Args)]
pub struct PackageCmd {
    /// Module files to package [default: build the package(s) and package what was built]
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub build: BuildSelect,
    #[command(flatten)]
    pub ship: ShipArgs,
    /// Package format
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
    /// Output directory [default: `target/kmod/package/` of the workspace]
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
    /// Package name [default: the first module's name]
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Package version [default: the module's `version=`, else 0.0.0]
    #[arg(long = "pkg-version", value_name = "VERSION")]
    pub version: Option<String>,
    /// For `--format dkms`: the module's kbuild source directory (with its `Kbuild`)
    #[arg(long, value_name = "DIR")]
    pub src: Option<PathBuf>,
}

impl PackageCmd {
    pub fn run(&self, session: &Session) -> Result<()> {
        let inputs = ship::inputs(
            session,
            &self.files,
            &self.build.select.selection(),
            &self.build.kdir.selection()?,
            &self.build.build.options(false),
        )?;
        let out = ship::package(
            session,
            &inputs,
            &PackageRequest {
                format: self.format,
                out_dir: self.out_dir.clone(),
                name: self.name.clone(),
                version: self.version.clone(),
                dir: self.ship.dir.clone(),
                src: self.src.clone(),
            },
            &self.ship.request(),
        )?;
        let sha = crate::fsutil::sha256_file(&out)?;
        if session.shell.is_json() {
            session.shell.json(&json!({"reason": "package", "path": out.display().to_string(), "sha256": sha, "format": self.format}));
        }
        session.shell.status(
            "Packaged",
            format_args!("`{}` (sha256 {})", out.display(), &sha[..16]),
        );
        Ok(())
    }
}
