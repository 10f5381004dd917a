//! `cargo kmod package [FILE...]`: verify, strip, sign, compress and package modules in the
//! `lib/modules/<release>/<dir>/` layout: a reproducible tarball with a manifest (default),
//! a `.deb` whose postinst runs depmod, or a DKMS source tree.

use std::path::PathBuf;

use anyhow::Result;
use serde_json::json;

use crate::command::args::{BuildSelect, MatrixArgs, ShipArgs, ToArgs};
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
    #[command(flatten)]
    pub matrix: MatrixArgs,
}

impl PackageCmd {
    pub fn run(&self, session: &Session) -> Result<()> {
        if self.matrix.matrix {
            return self.run_matrix(session);
        }
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

impl PackageCmd {
    /// `--matrix`: each cell's packages, under `target/kmod/package/<cell>/`.
    fn run_matrix(&self, session: &Session) -> Result<()> {
        if !self.files.is_empty() || self.out_dir.is_some() || self.src.is_some() {
            crate::bail_user!(
                "`--matrix` packages what it builds for each cell, under `target/kmod/package/<cell>/`: it takes no FILE, `--out-dir` or `--src`";
                hint = "package files for one tree with `--kdir` or `--target`"
            );
        }
        let args = self.cell_args();
        let req = self.matrix.request(
            crate::ops::matrix::Kind::Package,
            self.build.build.jobs,
            args,
        );
        crate::command::matrix::run(session, &self.build.select.selection(), &req)
    }
}

impl PackageCmd {
    /// The arguments each cell's `package` gets: everything but the tree, the output
    /// directory (each cell's own) and the matrix's own.
    fn cell_args(&self) -> Vec<std::ffi::OsString> {
        use clap::ValueEnum;
        let mut args = Vec::new();
        self.build.select.to_args(&mut args);
        self.build.build.to_args(&mut args);
        self.ship.to_args(&mut args);
        if let Some(f) = self.format.to_possible_value() {
            args.extend(["--format".into(), f.get_name().into()]);
        }
        if let Some(n) = &self.name {
            args.extend(["--name".into(), n.into()]);
        }
        if let Some(v) = &self.version {
            args.extend(["--pkg-version".into(), v.into()]);
        }
        args
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use crate::cli::CargoCli;
    use crate::command::Command;

    fn parse(args: &[&str]) -> super::PackageCmd {
        let argv = ["cargo", "kmod", "package"].iter().chain(args);
        match CargoCli::try_parse_from(argv).unwrap() {
            CargoCli::Kmod(k) => match k.command {
                Command::Package(p) => p,
                _ => unreachable!(),
            },
        }
    }

    /// A cell's `package` parses back to the command the user gave, without the matrix's
    /// own flags.
    #[test]
    fn a_cells_arguments_are_the_users() {
        let cmd = parse(&[
            "--matrix",
            "--fail-fast",
            "--workspace",
            "--all-features",
            "--locked",
            "--sign",
            "--key",
            "k.pem",
            "--cert",
            "c.pem",
            "--compress",
            "xz",
            "--no-strip",
            "--dir",
            "extra",
            "--no-verify",
            "--format",
            "deb",
            "--name",
            "acme",
            "--pkg-version",
            "1.2",
        ]);
        let args: Vec<String> = cmd
            .cell_args()
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect();
        let again = parse(&args.iter().map(String::as_str).collect::<Vec<_>>());
        let mut want = cmd;
        want.matrix = Default::default();
        assert_eq!(format!("{again:?}"), format!("{want:?}"));
    }
}
