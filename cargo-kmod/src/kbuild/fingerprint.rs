//! No-op detection: a hash over every input of a kbuild pass (sources, manifests, the tree's
//! `.config` and `Module.symvers`, flags, tool versions). When it matches the last successful
//! pass and the outputs exist, kbuild is skipped entirely.

use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use anyhow::Result;
use sha2::{Digest, Sha256};

/// Accumulates inputs; files are hashed by path, size and mtime (cheap, like make).
#[derive(Default)]
pub struct Fingerprint {
    hasher: Sha256,
}

impl Fingerprint {
    pub fn value(&mut self, key: &str, value: &str) {
        self.hasher.update(key.as_bytes());
        self.hasher.update([0]);
        self.hasher.update(value.as_bytes());
        self.hasher.update([0]);
    }

    /// A file's identity: path, size, modification time (missing files count too).
    pub fn file(&mut self, path: &Path) {
        let stat = std::fs::metadata(path)
            .map(|m| {
                let t = m.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map_or(0, |d| d.as_nanos());
                format!("{}:{}", m.len(), t)
            })
            .unwrap_or_else(|_| "missing".into());
        self.value(&path.display().to_string(), &stat);
    }

    /// Every file below `dir`, skipping `target/` and hidden entries.
    pub fn tree(&mut self, dir: &Path) {
        let mut files: Vec<PathBuf> = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&d) else { continue };
            for e in entries.flatten() {
                let name = e.file_name();
                let name = name.to_string_lossy();
                if name.starts_with('.') || name == "target" {
                    continue;
                }
                match e.file_type() {
                    Ok(t) if t.is_dir() => stack.push(e.path()),
                    Ok(_) => files.push(e.path()),
                    Err(_) => {}
                }
            }
        }
        files.sort();
        for f in files {
            self.file(&f);
        }
    }

    pub fn finish(self) -> String {
        hex::encode(self.hasher.finalize())
    }
}

/// Whether the stored fingerprint at `stamp` equals `value`.
pub fn is_fresh(stamp: &Path, value: &str) -> bool {
    std::fs::read_to_string(stamp).is_ok_and(|s| s.trim() == value)
}

pub fn store(stamp: &Path, value: &str) -> Result<()> {
    crate::fsutil::write_atomic(stamp, value.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_with_content_and_new_files() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("src")).unwrap();
        std::fs::create_dir_all(d.path().join("target")).unwrap();
        std::fs::write(d.path().join("src/lib.rs"), "a").unwrap();
        let fp = |extra: &str| {
            let mut f = Fingerprint::default();
            f.tree(d.path());
            f.value("flags", extra);
            f.finish()
        };
        let a = fp("x");
        assert_eq!(a, fp("x"));
        assert_ne!(a, fp("y"));
        std::fs::write(d.path().join("target/out.o"), "ignored").unwrap();
        assert_eq!(a, fp("x"), "target/ is not an input");
        std::fs::write(d.path().join("src/lib.rs"), "ab").unwrap();
        let b = fp("x");
        assert_ne!(a, b);
        std::fs::write(d.path().join("src/new.rs"), "").unwrap();
        assert_ne!(b, fp("x"));
        let stamp = d.path().join("stamp");
        assert!(!is_fresh(&stamp, &b));
        store(&stamp, &b).unwrap();
        assert!(is_fresh(&stamp, &b));
    }
}
