//! `cargo kmod verify FILE... [--kdir DIR | --target NAME]`: will these modules load on that
//! kernel? Prints one line per problem (the symbol and both CRCs for a version mismatch) and
//! exits non-zero when there is any. Without a tree flag it uses the dev tree of the module's
//! arch.

use std::path::{Path, PathBuf};

use anyhow::Result;
use serde_json::json;

use crate::cli::KdirArgs;
use crate::ko::{self, KoFile};
use crate::ship::verify::{self, Target};
use crate::tree::home::Home;
use crate::tree::resolve::{self, Choice};
use crate::tree::{Arch, KernelTree};
use crate::Context;

#[derive(Debug, clap::Args)]
pub struct VerifyCmd {
    /// The module file(s); modules given together may use each other's exports
    #[arg(value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub kdir: KdirArgs,
    /// Extra `Module.symvers` of modules these depend on (like `KBUILD_EXTRA_SYMBOLS`)
    #[arg(long = "symvers", value_name = "FILE")]
    pub symvers: Vec<PathBuf>,
    /// Also check each module's signature against this certificate (PEM or DER)
    #[arg(long, value_name = "CERT")]
    pub cert: Option<PathBuf>,
}

/// The tree a shipping command works against: `--kdir`/`KDIR`, else the dev tree of the
/// modules' arch (or `--arch`).
pub fn tree_for(ctx: &Context, kdir: &KdirArgs, modules: &[KoFile]) -> Result<KernelTree> {
    let mut kdir = kdir.clone();
    if let Some(name) = &kdir.target {
        // `[workspace.metadata.kmod.targets.NAME]` of the workspace we are in.
        let ws = crate::manifest::load(&ctx.shell, None)?;
        let t = ws.target(name)?;
        let home = crate::tree::home::Home::from_env()?;
        match &t.kdir {
            Some(d) => kdir.kdir = Some(d.clone()),
            // boards: a target with `board`/`base-config`/`cc` uses the tree `init` prepared.
            None if crate::tree::prepare::target_request(t, 1)?.is_some() => {
                kdir.kdir = crate::tree::prepare::target_tree(&home, t, None)?;
            }
            None => {
                crate::bail_user!("target `{}` has no `kdir`", name; hint = "add `kdir` to the target, or pass `--kdir DIR`")
            }
        }
        if kdir.arch.is_none() {
            kdir.arch = t.arch.map(|a| a.name().to_string());
        }
    }
    let kdir = &kdir;
    let mut arches: Vec<Arch> = modules.iter().filter_map(|k| k.module.arch()).collect();
    arches.dedup();
    let arch = match &kdir.arch {
        Some(a) => Some(Arch::parse(a)?),
        None if arches.len() > 1 => crate::bail_user!(
            "the modules are for different architectures ({})",
            arches
                .iter()
                .map(|a| a.name())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        None => arches.first().copied(),
    };
    let choice = Choice {
        flag: kdir.kdir.clone(),
        arch,
        ..Choice::default()
    };
    let home = Home::from_env()?;
    // An explicit tree must match `--arch`, not the module's arch: a mismatched module is a
    // verify problem, not a usage error.
    let choice = if choice.explicit().is_some() && kdir.arch.is_none() {
        Choice {
            arch: None,
            ..choice
        }
    } else {
        choice
    };
    resolve::resolve(&home, &choice)
}

/// Read every file, failing on the first unreadable one.
pub fn read_all(files: &[PathBuf]) -> Result<Vec<KoFile>> {
    files.iter().map(|p| ko::read(p)).collect()
}

impl VerifyCmd {
    pub fn run(&self, ctx: &Context) -> Result<()> {
        let kos = read_all(&self.files)?;
        let tree = tree_for(ctx, &self.kdir, &kos)?;
        let extra: Vec<&Path> = self.symvers.iter().map(PathBuf::as_path).collect();
        let mut target = Target::new(&tree, &extra)?;
        target.peers = kos.iter().map(|k| &k.module).collect();
        let mut total = 0;
        for ko in &kos {
            let mut problems = verify::verify(ko, &target);
            if let Some(cert) = &self.cert {
                problems.extend(verify::verify_signature(ko, cert)?);
            }
            total += problems.len();
            for p in &problems {
                if ctx.shell.is_json() {
                    ctx.shell.json(&json!({
                        "reason": "verify-problem",
                        "file": ko.path.display().to_string(),
                        "kind": p.kind,
                        "symbol": p.symbol,
                        "message": p.message,
                    }));
                } else {
                    ctx.shell
                        .out(format_args!("{}: {}", ko.path.display(), p.message));
                }
            }
            if problems.is_empty() {
                ctx.shell.status(
                    "Verified",
                    format_args!(
                        "`{}` against `{}` ({} symbols checked)",
                        ko.path.display(),
                        tree.dir.display(),
                        ko.module.imports().len()
                    ),
                );
            }
        }
        if total > 0 {
            crate::bail_user!(
                "{} problem{} found: the kernel at `{}` would refuse {}",
                total,
                if total == 1 { "" } else { "s" },
                tree.dir.display(),
                if kos.len() == 1 {
                    "this module"
                } else {
                    "these modules"
                }
            );
        }
        Ok(())
    }
}
