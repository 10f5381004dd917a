//! File-system helpers shared by every stage: atomic writes (temp file in the same directory,
//! then rename, so a reader never sees half a file) and content hashing.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

/// The mode a new regular file is created with: 0666, which the kernel narrows by the
/// user's umask (0644 under the usual 022), as `std::fs::write`, `cp` and the compiler do.
/// A bare `tempfile` would be 0600 and stay 0600 after the rename.
pub fn file_mode() -> std::fs::Permissions {
    use std::os::unix::fs::PermissionsExt;
    std::fs::Permissions::from_mode(0o666)
}

/// Write `contents` to `path` atomically; create the parent directory if needed. The file
/// gets the ordinary mode for a new file under the user's umask ([`file_mode`]), also when it
/// replaces an existing one.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create `{}`", dir.display()))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".kmod-tmp-")
        .permissions(file_mode())
        .tempfile_in(dir)
        .with_context(|| format!("cannot write in `{}`", dir.display()))?;
    tmp.write_all(contents)
        .with_context(|| format!("cannot write `{}`", path.display()))?;
    // No fsync: the rename keeps readers from ever seeing half a file, which is the
    // invariant; durability across power loss is not worth a flush per artifact.
    tmp.persist(path)
        .map_err(|e| e.error)
        .with_context(|| format!("cannot write `{}`", path.display()))?;
    Ok(())
}

/// Make `to` the same file as `from` (a hard link; a copy across file systems), replacing
/// whatever `to` was atomically: a reader sees the old file or the new one. Nothing is
/// written when `to` already is `from`.
pub fn link_atomic(from: &Path, to: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let src =
        std::fs::metadata(from).with_context(|| format!("cannot read `{}`", from.display()))?;
    if std::fs::symlink_metadata(to).is_ok_and(|m| m.dev() == src.dev() && m.ino() == src.ino()) {
        return Ok(());
    }
    let dir = to
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let linked = tempfile::Builder::new()
        .prefix(".kmod-tmp-")
        .make_in(dir, |p| std::fs::hard_link(from, p));
    match linked {
        Ok(tmp) => tmp
            .persist(to)
            .map(drop)
            .map_err(|e| e.error)
            .with_context(|| format!("cannot write `{}`", to.display())),
        Err(_) => {
            let bytes =
                std::fs::read(from).with_context(|| format!("cannot read `{}`", from.display()))?;
            write_atomic(to, &bytes)
        }
    }
}

/// Write several files as one: every file to a temporary file first, then all renamed into
/// place. A write that fails (a full disk) leaves none of them; a rename that fails removes
/// the ones already renamed. Either the complete set is there or nothing of it (a tarball
/// without the manifest beside it would be a package that lies about itself).
pub fn write_atomic_all(files: &[(&Path, &[u8])]) -> Result<()> {
    let mut staged = Vec::with_capacity(files.len());
    for (path, contents) in files {
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create `{}`", dir.display()))?;
        let mut tmp = tempfile::Builder::new()
            .prefix(".kmod-tmp-")
            .permissions(file_mode())
            .tempfile_in(dir)
            .with_context(|| format!("cannot write in `{}`", dir.display()))?;
        tmp.write_all(contents)
            .and_then(|()| tmp.flush())
            .with_context(|| format!("cannot write `{}`", path.display()))?;
        staged.push((tmp, *path));
    }
    let mut done: Vec<&Path> = Vec::new();
    for (tmp, path) in staged {
        if let Err(e) = tmp.persist(path) {
            for p in done {
                let _ = std::fs::remove_file(p);
            }
            return Err(e.error).with_context(|| format!("cannot write `{}`", path.display()));
        }
        done.push(path);
    }
    Ok(())
}

/// Like [`write_atomic`], but leave the file (and its mtime) alone when it already holds
/// `contents`. Returns whether the file changed; kbuild's own dependency tracking relies on
/// unchanged files keeping their mtimes.
pub fn write_if_changed(path: &Path, contents: &[u8]) -> Result<bool> {
    if std::fs::read(path).is_ok_and(|old| old == contents) {
        return Ok(false);
    }
    write_atomic(path, contents)?;
    Ok(true)
}

/// Hex SHA-256 of some bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Hex SHA-256 of a file, streamed.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f =
        std::fs::File::open(path).with_context(|| format!("cannot read `{}`", path.display()))?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).with_context(|| format!("cannot read `{}`", path.display()))?;
    Ok(hex::encode(h.finalize()))
}

/// The entries of `dir`, sorted by name (reproducible archives and images).
pub fn sorted_entries(dir: &Path) -> Result<Vec<std::fs::DirEntry>> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read `{}`", dir.display()))?
        .flatten()
        .collect();
    entries.sort_by_key(|e| e.file_name());
    Ok(entries)
}

/// A file's size and modification time (`len:mtime_ns`), the cheap identity make-like
/// caches compare; `None` when it cannot be read.
pub fn file_identity(path: &Path) -> Option<String> {
    std::fs::metadata(path).ok().map(|m| {
        let t = m
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        format!("{}:{t}", m.len())
    })
}

/// An I/O error as a lowercase fragment (`no such file or directory`).
pub fn io_reason(e: &std::io::Error) -> String {
    let s = e.to_string();
    let s = s.split(" (os error").next().unwrap_or(&s).to_string();
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/file.txt");
        write_atomic(&p, b"one").unwrap();
        assert!(write_if_changed(&p, b"two").unwrap());
        assert!(!write_if_changed(&p, b"two").unwrap());
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(p.parent().unwrap())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names.len(), 1);
        // The mode a new file gets under the umask, not a temp file's 0600.
        use std::os::unix::fs::PermissionsExt;
        let umask = current_umask();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o666 & !umask, "umask {umask:o}");
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    /// A set of files whose second cannot be written leaves neither (nor a temporary
    /// file); one that can be written is complete.
    #[test]
    fn a_set_of_files_is_all_or_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("pkg.tar.gz");
        let blocker = dir.path().join("not-a-dir");
        std::fs::write(&blocker, "").unwrap();
        let b = blocker.join("pkg.manifest.json");
        let e = write_atomic_all(&[(&a, b"tar"), (&b, b"{}")]).unwrap_err();
        assert!(format!("{e:#}").contains("not-a-dir"), "{e:#}");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names, ["not-a-dir"], "nothing of the set is left");
        let b = dir.path().join("pkg.manifest.json");
        write_atomic_all(&[(&a, b"tar"), (&b, b"{}")]).unwrap();
        assert_eq!(std::fs::read(&a).unwrap(), b"tar");
        assert_eq!(std::fs::read(&b).unwrap(), b"{}");
    }

    /// The umask, read from `/proc/self/status` (setting it to read it back would race with
    /// the other test threads).
    fn current_umask() -> u32 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("Umask:")).unwrap();
        u32::from_str_radix(line.split_whitespace().nth(1).unwrap(), 8).unwrap()
    }
}
