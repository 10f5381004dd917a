//! Scratch directories and the files tests write, copy and list in them.

use std::path::{Path, PathBuf};

use super::ok;

/// A scratch directory, removed when the test ends.
pub fn scratch() -> tempfile::TempDir {
    let t = tempfile::Builder::new()
        .prefix("kmod-it-")
        .tempdir()
        .unwrap();
    t
}

/// Copy a directory tree (examples into scratch dirs, so tests never write in the repo).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let p = e.path();
        let name = e.file_name();
        if name == "target" {
            continue;
        }
        if p.is_dir() {
            copy_dir(&p, &to.join(&name));
        } else {
            std::fs::copy(&p, to.join(&name)).unwrap();
        }
    }
}

/// Write `text` to `path`, creating its directory.
pub fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// `data` written to a file `name` in a scratch dir of its own.
pub fn copy_with(name: &str, data: &[u8]) -> (tempfile::TempDir, PathBuf) {
    let t = scratch();
    let p = t.path().join(name);
    std::fs::write(&p, data).unwrap();
    (t, p)
}

/// Unpack the `.tar.gz` `archive` into `into`.
pub fn untar(archive: &Path, into: &Path) {
    std::fs::create_dir_all(into).unwrap();
    ok(&std::process::Command::new("tar")
        .arg("-xzf")
        .arg(archive)
        .arg("-C")
        .arg(into)
        .output()
        .unwrap());
}

/// Every file and directory under `dir`, relative.
pub fn listing(dir: &Path) -> Vec<String> {
    fn add(base: &Path, dir: &Path, out: &mut Vec<String>) {
        if let Ok(rd) = std::fs::read_dir(dir) {
            for e in rd.flatten() {
                let p = e.path();
                out.push(p.strip_prefix(base).unwrap().display().to_string());
                if e.file_type().unwrap().is_dir() {
                    add(base, &p, out);
                }
            }
        }
    }
    let mut out = vec![];
    add(dir, dir, &mut out);
    out.sort();
    out
}

/// Every file under `dir` (not directories), at any depth.
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// `p` as UTF-8, for argument lists.
pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A TOML basic string for any text.
pub fn toml_str(s: &str) -> String {
    format!(
        "\"{}\"",
        s.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
    )
}

/// The umask of this process, from `/proc/self/status`.
pub fn umask() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("Umask:")).unwrap();
    u32::from_str_radix(line.split_whitespace().nth(1).unwrap(), 8).unwrap()
}

/// The permission bits of `p`.
pub fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

/// The first offset of `needle` in `hay`.
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
