//! Shipping modules: which files, verified against which tree, prepared how, laid out where.
//!
//! The modules are the files given, or what [`crate::ops::build`] produces now; in the
//! latter case each [`Artifact`] carries the tree it was built for, so nothing is resolved
//! twice. Given files are matched with a tree by [`crate::context::tree_for_files`].

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::context::{ModuleRequest, Modules, Selection, Session, TreeSelection};
use crate::kernel::KernelTree;
use crate::ko::{Compression, KoFile};
use crate::ops::build::{self, Artifact, BuildOptions};
use crate::ship::package::{self, Format, PackageSpec, SpecSource};
use crate::ship::verify::{self, Target};
use crate::ship::{self, Prepared, ShipOptions};

/// What to do to each module (plain data from `package`/`install` flags).
#[derive(Debug, Clone, Default)]
pub struct ShipRequest {
    /// `--sign`: sign even when the tree does not sign by default.
    pub sign: bool,
    /// `--no-sign`.
    pub no_sign: bool,
    pub key: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    /// `--compress`, else the tree's `CONFIG_MODULE_COMPRESS_*`.
    pub compress: Option<Compression>,
    pub strip: bool,
    pub verify: bool,
}

/// The modules to ship, read, with the tree they are for.
pub struct Inputs {
    pub files: Vec<KoFile>,
    pub tree: KernelTree,
    /// Set when the modules were built now (their package names and versions).
    pub artifacts: Vec<Artifact>,
}

/// The files given, else the selected packages built now.
pub fn inputs(
    session: &Session,
    files: &[PathBuf],
    select: &Selection,
    trees: &TreeSelection,
    opts: &BuildOptions,
) -> Result<Inputs> {
    let resolved = crate::context::resolve(
        session,
        select,
        trees,
        &ModuleRequest::files_or(files, ModuleRequest::Packages),
        None,
    )?;
    if let Modules::Files(kos) = resolved.modules {
        return Ok(Inputs {
            files: kos,
            tree: resolved.tree,
            artifacts: vec![],
        });
    }
    let ctx = resolved.build_context();
    let artifacts = build::build(session, &ctx, opts)?;
    if artifacts.is_empty() {
        crate::bail_user!("the build produced no modules");
    }
    let paths: Vec<PathBuf> = artifacts.iter().map(|a| a.ko.clone()).collect();
    Ok(Inputs {
        files: read_all(&paths)?,
        tree: ctx.tree,
        artifacts,
    })
}

/// Read every file, failing on the first unreadable one.
pub fn read_all(files: &[PathBuf]) -> Result<Vec<KoFile>> {
    crate::context::read_kos(files)
}

/// Given `.ko` files, read, and the tree they are checked against (`info`, `verify`).
pub fn files_and_tree(
    session: &Session,
    files: &[PathBuf],
    trees: &TreeSelection,
) -> Result<(Vec<KoFile>, KernelTree)> {
    let resolved = crate::context::resolve(
        session,
        &Selection::default(),
        trees,
        &ModuleRequest::Files(files.to_vec()),
        None,
    )?;
    match resolved.modules {
        Modules::Files(kos) => Ok((kos, resolved.tree)),
        _ => unreachable!("files were asked for"),
    }
}

/// Verify (unless asked not to), then strip, sign and compress each module.
pub fn prepare(
    session: &Session,
    tree: &KernelTree,
    kos: &[KoFile],
    req: &ShipRequest,
) -> Result<Vec<Prepared>> {
    let shell = &session.shell;
    // `.modinfo` strings become file names: refuse a hostile one before anything else.
    for ko in kos {
        ship::names::module_name(ko)?;
    }
    if req.verify {
        let mut target = Target::new(tree, &[])?;
        target.peers = kos.iter().map(|k| &k.module).collect();
        for ko in kos {
            let problems = verify::verify(ko, &target);
            for p in &problems {
                shell.error(format_args!("{}: {}", ko.path.display(), p.message), None);
            }
            if !problems.is_empty() {
                crate::bail_user!(
                    "`{}` would not load on `{}`", ko.path.display(), tree.dir.display();
                    hint = "run `cargo kmod verify` for details, or pass `--no-verify`"
                );
            }
        }
    }
    // A distribution's kernel was signed with the distribution's key, which nobody else
    // has: its modules are signed only with a key the user names (enrolled as a MOK).
    let distro = crate::kernel::distro::complete::is_completion(&tree.dir);
    if distro && req.sign && req.key.is_none() {
        crate::bail_user!(
            "`--sign` needs `--key` and `--cert` for the distribution kernel {}: its own signing key is the distribution's", crate::text::escape(&tree.release);
            hint = "sign with your own key and enroll its certificate as a Machine Owner Key (`mokutil --import CERT`) on Secure Boot machines (docs/distro.md)"
        );
    }
    let sign = req.sign
        || req.key.is_some()
        || (!req.no_sign && !distro && tree.config.is_enabled("MODULE_SIG_ALL"));
    let key = if sign {
        Some(ship::load_key(
            shell,
            tree,
            req.key.as_deref(),
            req.cert.as_deref(),
        )?)
    } else {
        None
    };
    if key.is_none() && tree.config.is_enabled("MODULE_SIG_FORCE") {
        shell.warn("the tree enforces module signatures (`CONFIG_MODULE_SIG_FORCE`) but `--sign` was not given");
    }
    let opts = ShipOptions {
        strip: req.strip,
        sign: key,
        compression: req.compress.unwrap_or_else(|| ship::tree_compression(tree)),
    };
    kos.iter()
        .map(|ko| {
            let p = ship::prepare(shell, tree, ko, &opts)?;
            shell.status(
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

/// What `package` writes.
#[derive(Debug, Clone)]
pub struct PackageRequest {
    pub format: Format,
    pub out_dir: Option<PathBuf>,
    pub name: Option<String>,
    pub version: Option<String>,
    /// `INSTALL_MOD_DIR`.
    pub dir: String,
    /// The kbuild source directory for `--format dkms`.
    pub src: Option<PathBuf>,
}

/// Package the inputs; returns the package file.
pub fn package(
    session: &Session,
    inputs: &Inputs,
    req: &PackageRequest,
    ship: &ShipRequest,
) -> Result<PathBuf> {
    // A malformed `SOURCE_DATE_EPOCH` is an error before anything is signed or written.
    package::source_date_epoch()?;
    let kos = &inputs.files;
    let tree = &inputs.tree;
    let built = inputs.artifacts.first();
    let out_dir = match (&req.out_dir, built) {
        (Some(d), _) => d.clone(),
        (None, Some(a)) => a.kmod_root.join("package"),
        (None, None) => PathBuf::from("target/kmod/package"),
    };
    let source = SpecSource {
        name: req.name.as_deref(),
        version: req.version.as_deref(),
        built: built.map(|a| (a.package.as_str(), a.version.as_str())),
    };
    ship::names::install_dir(&req.dir)?;
    let mut spec = PackageSpec::new(source, &kos[0], tree, &req.dir)?;
    spec.modules = if req.format == Format::Dkms {
        kos.iter()
            .map(Prepared::source_only)
            .collect::<Result<_>>()?
    } else {
        prepare(session, tree, kos, ship)?
    };
    match req.format {
        Format::Tar => package::write_tar(&spec, &out_dir),
        Format::Deb => package::write_deb(&spec, &out_dir),
        Format::Dkms => {
            let Some(src) = &req.src else {
                crate::bail_user!(
                    "`--format dkms` needs the module's source directory";
                    hint = "pass `--src DIR` (the directory with the module's `Kbuild`)"
                );
            };
            package::write_dkms(&spec, src, &out_dir)
        }
    }
}

/// Install the inputs under `root` (`INSTALL_MOD_PATH`) into `lib/modules/<release>/<dir>`
/// and run `depmod -b`; returns the installed paths.
pub fn install(
    session: &Session,
    inputs: &Inputs,
    root: &Path,
    dir: &str,
    ship: &ShipRequest,
) -> Result<Vec<PathBuf>> {
    ship::names::install_dir(dir)?;
    let prepared = prepare(session, &inputs.tree, &inputs.files, ship)?;
    crate::ship::install::install(&session.shell, root, &inputs.tree.release, dir, &prepared)
}
