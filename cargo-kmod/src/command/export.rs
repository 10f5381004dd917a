//! `cargo kmod export -p PKG --into LINUX [--path DIR] [--symbol CONFIG_X] [--check]`: the
//! module in its in-tree form (sources, `Kconfig`, `Makefile`, the parents' lines) and, with
//! `--check`, the kernel's gates on it.

use std::path::PathBuf;

use anyhow::Result;

use crate::command::args::{KdirArgs, PackageSelect};
use crate::context::Session;
use crate::ops::export::ExportOptions;

#[derive(Debug, Clone, Default, clap::Args)]
pub struct ExportCmd {
    #[command(flatten)]
    pub select: PackageSelect,
    /// The kernel source tree to write the module into
    #[arg(long, value_name = "LINUX_SOURCE")]
    pub into: PathBuf,
    /// The module's directory in the tree [default: by driver kind, e.g. `drivers/misc/NAME`]
    #[arg(long, value_name = "DIR")]
    pub path: Option<String>,
    /// The Kconfig symbol [default: `CONFIG_` and the module name in capitals]
    #[arg(long, value_name = "CONFIG_NAME")]
    pub symbol: Option<String>,
    /// Overwrite files changed in the tree since the last export
    #[arg(long)]
    pub force: bool,
    /// Run the kernel's gates: rustfmt, a CLIPPY=1 build against the dev tree (or --kdir),
    /// checkpatch.pl --strict on the generated patch
    #[arg(long)]
    pub check: bool,
    /// `Name <email>` for the patch's Signed-off-by line
    #[arg(long, value_name = "NAME <EMAIL>")]
    pub signoff: Option<String>,
    #[command(flatten)]
    pub kdir: KdirArgs,
}

impl ExportCmd {
    pub fn run(&self, session: &Session) -> Result<()> {
        let shell = &session.shell;
        let opts = ExportOptions {
            into: self.into.clone(),
            path: self.path.clone(),
            symbol: self.symbol.clone(),
            force: self.force,
            check: self.check,
            signoff: self.signoff.clone(),
        };
        let out = crate::ops::export::export(
            session,
            &self.select.selection(),
            &self.kdir.selection()?,
            &opts,
        )?;
        let e = &out.export;
        for w in &out.written {
            shell.verbose("Wrote", format_args!("`{w}`"));
        }
        if shell.is_json() {
            shell.json(&serde_json::json!({
                "reason": "kmod-export",
                "package": out.package,
                "dir": e.dir,
                "symbol": format!("CONFIG_{}", e.symbol),
                "test_symbol": format!("CONFIG_{}", e.test_symbol),
                "written": out.written,
                "patch": out.patch,
                "ko": out.ko,
                "findings": out.findings.iter().map(|f| serde_json::json!({"tool": f.tool, "message": f.text})).collect::<Vec<_>>(),
            }));
        }
        shell.status(
            "Exported",
            format_args!(
                "{} to `{}` ({} file(s) written; `CONFIG_{}`, KUnit `CONFIG_{}`); patch `{}`",
                e.name,
                e.dir,
                out.written.len(),
                e.symbol,
                e.test_symbol,
                out.patch.display()
            ),
        );
        if !self.check {
            return Ok(());
        }
        if let Some(ko) = &out.ko {
            shell.status("Built", format_args!("`{}` (=m)", ko.display()));
        }
        for f in &out.findings {
            shell.out(format_args!("{}: {}", f.tool, f.text));
        }
        if !out.findings.is_empty() {
            crate::bail_user!(
                "the kernel's checks report {} finding(s) in `{}`", out.findings.len(), e.dir;
                hint = "fix them in the package and export again"
            );
        }
        shell.status(
            "Checked",
            format_args!(
                "{}: rustfmt, clippy and checkpatch --strict are clean",
                e.dir
            ),
        );
        Ok(())
    }
}
