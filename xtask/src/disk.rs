//! Free disk space, checked before the long work: a full disk fails builds and tests far
//! from the cause (a test fails writing its scratch dir, kbuild stops half way), so set-up
//! says it first, naming the path and what is free, and a failed test run says it again.

use anyhow::{bail, Result};
use std::path::{Path, PathBuf};

const GIB: u64 = 1 << 30;

/// Bytes free for an unprivileged user on the filesystem of `path` (or of its nearest
/// existing ancestor), from `df -Pk`; `None` when `df` cannot tell.
pub fn free_bytes(sh: &xshell::Shell, path: &Path) -> Option<u64> {
    let mut p: PathBuf = path.to_path_buf();
    while !p.exists() {
        p = p.parent()?.to_path_buf();
    }
    let out = xshell::cmd!(sh, "df -Pk {p}")
        .quiet()
        .ignore_status()
        .read()
        .ok()?;
    parse_df(&out)
}

/// The "Available" column (KiB) of `df -P`'s second line, in bytes.
fn parse_df(out: &str) -> Option<u64> {
    let line = out.lines().nth(1)?;
    let kib: u64 = line.split_whitespace().nth(3)?.parse().ok()?;
    Some(kib * 1024)
}

fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / GIB as f64)
}

/// Refuse to start when `path`'s filesystem has less than `need_gib` free, naming what the
/// space is for (`what`).
pub fn require(sh: &xshell::Shell, path: &Path, need_gib: u64, what: &str) -> Result<()> {
    if let Some(free) = free_bytes(sh, path) {
        if free < need_gib.saturating_mul(GIB) {
            bail!(
                "only {} free on the filesystem of `{}`; {what} needs about {need_gib} GiB \
                 (hint: free some space, or point CARGO_KMOD_HOME / CARGO_TARGET_DIR elsewhere)",
                gib(free),
                path.display()
            );
        }
    }
    Ok(())
}

/// After a failed run: say so when `path`'s filesystem is (nearly) full, since that is then
/// the likely cause of failures that name something else.
pub fn note_if_low(sh: &xshell::Shell, path: &Path) {
    if let Some(free) = free_bytes(sh, path) {
        if free < GIB {
            eprintln!(
                "note: only {} free on the filesystem of `{}`: tests may have failed writing files",
                gib(free),
                path.display()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn df_available_column_is_read_in_bytes() {
        let out = "Filesystem     1024-blocks      Used Available Capacity Mounted on\n\
                   /dev/vda         263174212  42876520  53407308      45% /\n";
        assert_eq!(parse_df(out), Some(53407308 * 1024));
        assert_eq!(parse_df("garbage"), None);
        assert_eq!(parse_df("h\n/dev/x a b c d e\n"), None);
    }

    #[test]
    fn too_little_space_is_one_line_naming_the_path_and_the_need() {
        let sh = xshell::Shell::new().unwrap();
        // A path that does not exist yet is judged by its nearest existing ancestor.
        let path = Path::new("/tmp/no-such-dir-of-cargo-kmod/home");
        let e = require(&sh, path, 1 << 30, "the test")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("only ") && e.contains(" GiB free on the filesystem of `/tmp/no-such-dir-of-cargo-kmod/home`; the test needs about 1073741824 GiB (hint: "),
            "{e}"
        );
        assert!(!e.contains('\n'), "{e}");
        require(&sh, path, 0, "the test").unwrap();
    }
}
