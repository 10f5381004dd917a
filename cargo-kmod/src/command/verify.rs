//! `cargo kmod verify FILE... [--kdir DIR | --target NAME]`: will these modules load on that
//! kernel? Prints one line per problem (the symbol and both CRCs for a version mismatch) and
//! exits non-zero when there is any. Without a tree flag it uses the dev tree of the module's
//! arch.

use std::path::{Path, PathBuf};

use anyhow::Result;
use serde_json::json;

use crate::command::args::KdirArgs;
use crate::context::Session;
use crate::ship::verify::{self, Target};

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

impl VerifyCmd {
    pub fn run(&self, session: &Session) -> Result<()> {
        let shell = &session.shell;
        let (kos, tree) =
            crate::ops::ship::files_and_tree(session, &self.files, &self.kdir.selection()?)?;
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
                if shell.is_json() {
                    shell.json(&json!({
                        "reason": "verify-problem",
                        "file": ko.path.display().to_string(),
                        "kind": p.kind,
                        "symbol": p.symbol,
                        "message": p.message,
                    }));
                } else {
                    shell.out(format_args!("{}: {}", ko.path.display(), p.message));
                }
            }
            if problems.is_empty() {
                shell.status(
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
