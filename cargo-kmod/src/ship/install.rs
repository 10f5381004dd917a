//! Installing modules into a module tree, like `make modules_install`: files go to
//! `ROOT/lib/modules/<release>/<dir>/` (`INSTALL_MOD_PATH`, `INSTALL_MOD_DIR`), then the real
//! kmod `depmod -b ROOT <release>` rebuilds `modules.dep` and friends.
//!
//! Atomic: every module is first written to a temporary file in the destination directory,
//! and only when all are written are they renamed into place, so an interrupted install
//! leaves either the old module or the new one, never half a file. Other compressions of the
//! same module (`hello.ko` when installing `hello.ko.xz`) are removed so depmod sees one.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::ko::{io_reason, Compression};
use crate::shell::Shell;
use crate::ship::{module_dir, Prepared};

/// The `depmod` program: on `PATH`, else `/sbin` or `/usr/sbin`.
pub fn depmod_program() -> String {
    if let Some(p) = crate::tree::toolchain::which("depmod") {
        return p.display().to_string();
    }
    for p in ["/usr/sbin/depmod", "/sbin/depmod"] {
        if Path::new(p).exists() {
            return p.into();
        }
    }
    "depmod".into()
}

/// Install prepared modules; returns the installed paths.
pub fn install(
    shell: &Shell,
    root: &Path,
    release: &str,
    dir: &str,
    modules: &[Prepared],
) -> Result<Vec<PathBuf>> {
    let dest = root.join(module_dir(release, dir));
    std::fs::create_dir_all(&dest).map_err(|e| {
        crate::error::UserError::new(format!(
            "install root `{}` is not writable: {}",
            root.display(),
            io_reason(&e)
        ))
        .with_hint(
            "pick a writable `--root` (`INSTALL_MOD_PATH`) or run with the needed permissions",
        )
    })?;
    let mut staged = Vec::new();
    for m in modules {
        let mut tmp = tempfile::Builder::new()
            .prefix(".kmod-install-")
            .tempfile_in(&dest)
            .map_err(|e| {
                crate::error::UserError::new(format!(
                    "install root `{}` is not writable: {}",
                    root.display(),
                    io_reason(&e)
                ))
            })?;
        tmp.write_all(&m.bytes)
            .with_context(|| format!("cannot write in `{}`", dest.display()))?;
        tmp.as_file().sync_all().ok();
        staged.push((tmp, dest.join(&m.file_name), m));
    }
    let mut installed = Vec::new();
    for (tmp, path, m) in staged {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))
            .ok();
        tmp.persist(&path)
            .map_err(|e| e.error)
            .with_context(|| format!("cannot install `{}`", path.display()))?;
        for other in [
            Compression::None,
            Compression::Xz,
            Compression::Zstd,
            Compression::Gzip,
        ] {
            if other == m.compression {
                continue;
            }
            let name = match other.extension() {
                Some(ext) => format!("{}.ko.{ext}", m.module),
                None => format!("{}.ko", m.module),
            };
            let _ = std::fs::remove_file(dest.join(name));
        }
        shell.status("Installing", path.display());
        installed.push(path);
    }
    let depmod = depmod_program();
    let sh = xshell::Shell::new()?;
    shell.status(
        "Running",
        format_args!("`depmod -b {} {release}`", root.display()),
    );
    crate::process::run(shell, xshell::cmd!(sh, "{depmod} -b {root} {release}"))?;
    Ok(installed)
}
