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
use crate::ship::{module_dir, names, Prepared};

/// The `depmod` program: on `PATH`, else `/sbin` or `/usr/sbin`.
pub fn depmod_program() -> String {
    if let Some(p) = crate::kernel::toolchain::which("depmod") {
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
///
/// Nothing is written outside `root`: `dir` and the release are checked
/// ([`names::install_dir`], [`names::release`]), every module name was checked when it was
/// prepared, and [`dir_inside`] creates `lib/modules/<release>/<dir>` one component at a
/// time, refusing a symlink (or `..`) that leads out of the root.
pub fn install(
    shell: &Shell,
    root: &Path,
    release: &str,
    dir: &str,
    modules: &[Prepared],
) -> Result<Vec<PathBuf>> {
    names::install_dir(dir)?;
    names::release(release, "the kernel release")?;
    for m in modules {
        if m.file_name.contains('/') || !m.file_name.starts_with(&format!("{}.ko", m.module)) {
            crate::bail_user!(
                "module file name `{}` is not a plain file name",
                crate::text::escape(&m.file_name)
            );
        }
    }
    let not_writable = |e: &std::io::Error| {
        crate::error::UserError::new(format!(
            "install root `{}` is not writable: {}",
            root.display(),
            io_reason(e)
        ))
        .with_hint(
            "pick a writable `--root` (`INSTALL_MOD_PATH`) or run with the needed permissions",
        )
    };
    std::fs::create_dir_all(root).map_err(|e| not_writable(&e))?;
    let real_root = root.canonicalize().map_err(|e| not_writable(&e))?;
    let dest = dir_inside(root, &real_root, &module_dir(release, dir))?;
    let mut staged = Vec::new();
    for m in modules {
        let mut tmp = tempfile::Builder::new()
            .prefix(".kmod-install-")
            .permissions(crate::fsutil::file_mode())
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

/// `root/rel`, created one component at a time like `mkdir -p`, but never leaving the root:
/// an existing component that is a symlink is followed only when it resolves inside `root`
/// (a merged-`/usr` rootfs has `lib -> usr/lib`), and one that leads out
/// (`lib/modules -> /tmp/elsewhere`, or an absolute `lib -> /lib` that would land in the
/// host's own tree) is refused before anything is written there. `real_root` is `root`
/// canonicalized. Returns the directory, as a path under `root` (what `depmod -b` will see).
pub fn dir_inside(root: &Path, real_root: &Path, rel: &str) -> Result<PathBuf> {
    let mut shown = root.to_path_buf();
    let mut real = real_root.to_path_buf();
    for component in rel.split('/').filter(|c| !c.is_empty()) {
        if component == "." || component == ".." {
            crate::bail_user!(
                "`{}` leads out of the install root `{}`",
                shown.join(component).display(),
                root.display()
            );
        }
        shown.push(component);
        let next = real.join(component);
        match std::fs::symlink_metadata(&next) {
            Ok(meta) => {
                let resolved = next.canonicalize().map_err(|e| {
                    crate::error::UserError::new(format!(
                        "cannot resolve `{}` in the install root: {}",
                        shown.display(),
                        io_reason(&e)
                    ))
                })?;
                if !resolved.starts_with(real_root) {
                    let target = std::fs::read_link(&next)
                        .map(|t| t.display().to_string())
                        .unwrap_or_else(|_| resolved.display().to_string());
                    crate::bail_user!(
                        "`{}` is a symlink to `{}`, outside the install root `{}`", shown.display(), target, root.display();
                        hint = "installing through it would write outside `--root`; replace the link with a directory, or install into the root it points to"
                    );
                }
                if !resolved.is_dir() {
                    crate::bail_user!(
                        "cannot install into `{}`: it is not a directory ({})",
                        shown.display(),
                        if meta.file_type().is_symlink() {
                            "a symlink to a file"
                        } else {
                            "a file"
                        }
                    );
                }
                real = resolved;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir(&next).map_err(|e| {
                    crate::error::UserError::new(format!(
                        "install root `{}` is not writable: {}",
                        root.display(),
                        io_reason(&e)
                    ))
                    .with_hint(
                        "pick a writable `--root` (`INSTALL_MOD_PATH`) or run with the needed permissions",
                    )
                })?;
                real = next;
            }
            Err(e) => {
                crate::bail_user!(
                    "cannot inspect `{}` in the install root: {}",
                    shown.display(),
                    io_reason(&e)
                );
            }
        }
    }
    Ok(shown)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dir_inside_follows_inner_links_and_refuses_outer_ones() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        let outside = t.path().join("elsewhere");
        std::fs::create_dir_all(root.join("usr/lib")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        let real_root = root.canonicalize().unwrap();
        // merged /usr: `lib -> usr/lib` stays inside.
        std::os::unix::fs::symlink("usr/lib", root.join("lib")).unwrap();
        let d = dir_inside(&root, &real_root, "lib/modules/7.2.13/updates").unwrap();
        assert_eq!(d, root.join("lib/modules/7.2.13/updates"));
        assert!(root.join("usr/lib/modules/7.2.13/updates").is_dir());

        // `lib/modules/<release>` -> outside: refused, nothing created there.
        std::os::unix::fs::symlink(&outside, root.join("usr/lib/modules/9.9")).unwrap();
        let e = dir_inside(&root, &real_root, "lib/modules/9.9/updates").unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "`{}` is a symlink to `{}`, outside the install root `{}`",
                root.join("lib/modules/9.9").display(),
                outside.display(),
                root.display()
            )
        );
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);

        // A relative link that climbs out with `..`, and an absolute one.
        std::os::unix::fs::symlink("../../../..", root.join("usr/lib/modules/up")).unwrap();
        assert!(dir_inside(&root, &real_root, "lib/modules/up/x").is_err());
        std::os::unix::fs::symlink("/", root.join("abs")).unwrap();
        assert!(dir_inside(&root, &real_root, "abs/tmp").is_err());
        assert!(dir_inside(&root, &real_root, "lib/../..").is_err());
        // A file in the way.
        std::fs::write(root.join("file"), "").unwrap();
        assert!(dir_inside(&root, &real_root, "file/x")
            .unwrap_err()
            .to_string()
            .contains("not a directory"));
    }
}
