//! `cargo kmod package [FILE...]`: verify, strip, sign, compress and package modules in the
//! `lib/modules/<release>/<dir>/` layout: a reproducible tarball with a manifest (default),
//! a `.deb` whose postinst runs depmod, or a DKMS source tree.

use std::path::PathBuf;

use anyhow::Result;
use serde_json::json;

use crate::command::build::{Artifact, BuildCmd, BuildOptions};
use crate::ko::{Compression, KoFile};
use crate::ship::package::{self, Format, PackageSpec, SpecSource};
use crate::ship::verify::{self, Target};
use crate::ship::{self, Prepared, ShipOptions};
use crate::tree::KernelTree;
use crate::Context;

/// What `package` and `install` do to each module.
#[derive(Debug, Clone, clap::Args)]
pub struct ShipArgs {
    /// Sign the modules (with `--key`/`--cert`, default the tree's `certs/signing_key.*`);
    /// the default when the tree has `CONFIG_MODULE_SIG_ALL`, as in `modules_install`
    #[arg(long, conflicts_with = "no_sign")]
    pub sign: bool,
    /// Do not sign, even when the tree has `CONFIG_MODULE_SIG_ALL`
    #[arg(long)]
    pub no_sign: bool,
    /// Private key for signing (PEM or DER; `KBUILD_SIGN_PIN` unlocks an encrypted one)
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// Certificate matching `--key` (PEM or DER)
    #[arg(long, value_name = "FILE")]
    pub cert: Option<PathBuf>,
    /// Compression [default: the tree's `CONFIG_MODULE_COMPRESS_*`, else none]
    #[arg(long, value_enum, value_name = "KIND")]
    pub compress: Option<Compression>,
    /// Keep debug info (by default it is stripped, like `INSTALL_MOD_STRIP=1`)
    #[arg(long)]
    pub no_strip: bool,
    /// Directory under `lib/modules/<release>/`
    #[arg(
        long = "dir",
        env = "INSTALL_MOD_DIR",
        default_value = "updates",
        value_name = "DIR"
    )]
    pub dir: String,
    /// Skip the load check against the tree
    #[arg(long)]
    pub no_verify: bool,
}

impl ShipArgs {
    /// Read, verify and prepare the modules.
    pub fn prepare(
        &self,
        ctx: &Context,
        tree: &KernelTree,
        kos: &[KoFile],
    ) -> Result<Vec<Prepared>> {
        // `.modinfo` strings become file names: refuse a hostile one before anything else.
        for ko in kos {
            ship::names::module_name(ko)?;
        }
        ship::names::install_dir(&self.dir)?;
        if !self.no_verify {
            let mut target = Target::new(tree, &[])?;
            target.peers = kos.iter().map(|k| &k.module).collect();
            for ko in kos {
                let problems = verify::verify(ko, &target);
                for p in &problems {
                    ctx.shell
                        .error(format_args!("{}: {}", ko.path.display(), p.message), None);
                }
                if !problems.is_empty() {
                    crate::bail_user!(
                        "`{}` would not load on `{}`", ko.path.display(), tree.dir.display();
                        hint = "run `cargo kmod verify` for details, or pass `--no-verify`"
                    );
                }
            }
        }
        let sign = self.sign
            || self.key.is_some()
            || (!self.no_sign && tree.config.is_enabled("MODULE_SIG_ALL"));
        let key = if sign {
            Some(ship::load_key(
                &ctx.shell,
                tree,
                self.key.as_deref(),
                self.cert.as_deref(),
            )?)
        } else {
            None
        };
        if key.is_none() && tree.config.is_enabled("MODULE_SIG_FORCE") {
            ctx.shell.warn("the tree enforces module signatures (`CONFIG_MODULE_SIG_FORCE`) but `--sign` was not given");
        }
        let opts = ShipOptions {
            strip: !self.no_strip,
            sign: key,
            compression: self
                .compress
                .unwrap_or_else(|| ship::tree_compression(tree)),
        };
        kos.iter()
            .map(|ko| {
                let p = ship::prepare(&ctx.shell, tree, ko, &opts)?;
                ctx.shell.status(
                    "Preparing",
                    format_args!(
                        "{}{}{}",
                        p.file_name,
                        if opts.strip { ", stripped" } else { "" },
                        if p.signed { ", signed" } else { "" }
                    ),
                );
                Ok(p)
            })
            .collect()
    }
}

/// The modules to ship: the files given, else those `cargo kmod build` produces now.
pub fn inputs(
    ctx: &Context,
    files: &[PathBuf],
    build: &BuildCmd,
) -> Result<(Vec<PathBuf>, Vec<Artifact>)> {
    if !files.is_empty() {
        return Ok((files.to_vec(), vec![]));
    }
    let opts = BuildOptions {
        cmd: build.clone(),
        test: false,
    };
    let artifacts = crate::command::build::build(ctx, &opts)?;
    if artifacts.is_empty() {
        crate::bail_user!("the build produced no modules");
    }
    Ok((artifacts.iter().map(|a| a.ko.clone()).collect(), artifacts))
}

#[derive(Debug, clap::Args)]
pub struct PackageCmd {
    /// Module files to package [default: build the package(s) and package what was built]
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub build: BuildCmd,
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
    pub fn run(&self, ctx: &Context) -> Result<()> {
        let (files, artifacts) = inputs(ctx, &self.files, &self.build)?;
        let kos = super::verify::read_all(&files)?;
        let tree = super::verify::tree_for(ctx, &self.build.kdir, &kos)?;
        let built = artifacts.first();
        let out_dir = match (&self.out_dir, built) {
            (Some(d), _) => d.clone(),
            // `target/kmod/<arch>/<module>.ko` -> `target/kmod/package/`
            (None, Some(a)) => {
                a.ko.parent()
                    .and_then(|arch_dir| arch_dir.parent())
                    .map(|kmod_dir| kmod_dir.join("package"))
                    .unwrap_or_else(|| PathBuf::from("target/kmod/package"))
            }
            (None, None) => PathBuf::from("target/kmod/package"),
        };
        let source = SpecSource {
            name: self.name.as_deref(),
            version: self.version.as_deref(),
            built: built.map(|a| (a.package.as_str(), a.version.as_str())),
        };
        let mut spec = PackageSpec::new(source, &kos[0], &tree, &self.ship.dir)?;
        spec.modules = if self.format == Format::Dkms {
            kos.iter()
                .map(Prepared::source_only)
                .collect::<Result<_>>()?
        } else {
            self.ship.prepare(ctx, &tree, &kos)?
        };
        let out = match self.format {
            Format::Tar => package::write_tar(&spec, &out_dir)?,
            Format::Deb => package::write_deb(&spec, &out_dir)?,
            Format::Dkms => {
                let Some(src) = &self.src else {
                    crate::bail_user!(
                        "`--format dkms` needs the module's source directory";
                        hint = "pass `--src DIR` (the directory with the module's `Kbuild`)"
                    );
                };
                package::write_dkms(&spec, src, &out_dir)?
            }
        };
        let sha = crate::fsutil::sha256_file(&out)?;
        if ctx.shell.is_json() {
            ctx.shell.json(&json!({"reason": "package", "path": out.display().to_string(), "sha256": sha, "format": self.format}));
        }
        ctx.shell.status(
            "Packaged",
            format_args!("`{}` (sha256 {})", out.display(), &sha[..16]),
        );
        Ok(())
    }
}
