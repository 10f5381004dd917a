//! The root file system of the deploy tests' board: Debian's `dropbear` sshd for arm64 and
//! the libraries it links, unpacked from Debian packages into
//! `$CARGO_KMOD_HOME/rootfs/arm64-sshd/` (the library's `deploy::testboard` adds busybox,
//! `/etc` and an `/init`).
//!
//! Idempotent: a finished tree carries `cargo-kmod-rootfs.json` naming the packages it was
//! made from, written before the tree is renamed into place; with the same package list
//! nothing is done. Nothing is cross-compiled: `apt-get download` + `dpkg -x`, the way
//! setup gets `busybox-static:arm64`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use xshell::{cmd, Shell};

/// `dropbear-bin:arm64` and its run-time dependencies (`apt-cache depends --recurse`), and
/// OpenSSH's `sftp-server` (libc only), which dropbear runs for the SFTP subsystem: today's
/// `scp` speaks SFTP, and the benchmark's hand-written baseline uses `scp`.
pub const PACKAGES: &[&str] = &[
    "dropbear-bin:arm64",
    "openssh-sftp-server:arm64",
    "libc6:arm64",
    "libcrypt1:arm64",
    "libgmp10:arm64",
    "libtomcrypt1:arm64",
    "libtommath1:arm64",
    "zlib1g:arm64",
];

/// What the board needs from the unpacked packages: the sshd, its key generator, the dynamic
/// loader and the shared libraries (not gconv, docs or other programs).
const PROGRAMS: &[&str] = &[
    "usr/sbin/dropbear",
    "usr/bin/dropbearkey",
    "usr/lib/openssh/sftp-server",
    "usr/lib/sftp-server",
];
const LIB_DIRS: &[&str] = &["lib/aarch64-linux-gnu", "usr/lib/aarch64-linux-gnu"];
const LOADER: &str = "lib/ld-linux-aarch64.so.1";

pub const STAMP: &str = "cargo-kmod-rootfs.json";

pub fn dir(home: &crate::layout::Home) -> PathBuf {
    home.rootfs("arm64-sshd")
}

fn stamp_text() -> String {
    serde_json::json!({ "packages": PACKAGES }).to_string()
}

/// Make the tree unless it is there with the same packages. `update` runs `apt-get update`
/// once, when something must be fetched.
pub fn ensure(
    sh: &Shell,
    home: &crate::layout::Home,
    update: &dyn Fn(&Shell) -> Result<()>,
) -> Result<()> {
    let dest = dir(home);
    if std::fs::read_to_string(dest.join(STAMP)).is_ok_and(|s| s == stamp_text()) {
        return Ok(());
    }
    update(sh)?;
    crate::step("getting dropbear-bin:arm64 and its libraries for the deploy tests' board");
    let work = tempfile::tempdir()?;
    let debs = work.path().join("debs");
    std::fs::create_dir_all(&debs)?;
    // apt's `_apt` user must be able to write there.
    let w = work.path();
    cmd!(sh, "chmod 755 {w} {debs}").run()?;
    {
        let _cd = sh.push_dir(&debs);
        cmd!(sh, "apt-get download {PACKAGES...}").run()?;
    }
    let unpacked = work.path().join("x");
    for deb in std::fs::read_dir(&debs)?.flatten().map(|e| e.path()) {
        if deb.extension().is_some_and(|e| e == "deb") {
            cmd!(sh, "dpkg -x {deb} {unpacked}").run()?;
        }
    }
    let tmp = dest.with_extension("tmp");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp)?;
    for p in PROGRAMS {
        copy_entry(&unpacked.join(p), &tmp.join(p))
            .with_context(|| format!("`{p}` is not in the unpacked packages"))?;
    }
    copy_entry(&unpacked.join(LOADER), &tmp.join(LOADER))?;
    let mut libs = 0;
    for d in LIB_DIRS {
        let Ok(entries) = std::fs::read_dir(unpacked.join(d)) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let meta = std::fs::symlink_metadata(e.path())?;
            if name.contains(".so") && !meta.is_dir() {
                copy_entry(&e.path(), &tmp.join(d).join(&name))?;
                libs += 1;
            }
        }
    }
    if libs == 0 {
        bail!(
            "no shared libraries were unpacked from {}",
            PACKAGES.join(" ")
        );
    }
    std::fs::write(tmp.join(STAMP), stamp_text())?;
    let _ = std::fs::remove_dir_all(&dest);
    std::fs::rename(&tmp, &dest)
        .with_context(|| format!("cannot move `{}` into place", tmp.display()))?;
    Ok(())
}

/// Copy a file or a symlink (as a symlink), creating parent directories.
fn copy_entry(from: &Path, to: &Path) -> Result<()> {
    let meta = std::fs::symlink_metadata(from)
        .with_context(|| format!("cannot read `{}`", from.display()))?;
    std::fs::create_dir_all(to.parent().expect("a parent"))?;
    if meta.file_type().is_symlink() {
        let target = std::fs::read_link(from)?;
        std::os::unix::fs::symlink(target, to)?;
    } else {
        std::fs::copy(from, to)?;
    }
    Ok(())
}
