//! No-op detection: a hash over every input of a kbuild pass (sources, manifests, the tree's
//! `.config` and `Module.symvers`, flags, tool versions) plus the files the last pass
//! reported reading ([`Stamp`]). When all match and the published outputs are the ones that
//! pass wrote, kbuild is skipped entirely.

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
                let t = m
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_nanos());
                format!("{}:{}", m.len(), t)
            })
            .unwrap_or_else(|_| "missing".into());
        self.value(&path.display().to_string(), &stat);
    }

    /// Every file below `dir`, skipping `target/` and hidden entries; directories reached
    /// through symlinks are followed (once each, so a link cycle ends).
    pub fn tree(&mut self, dir: &Path) {
        let mut files: Vec<PathBuf> = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            if let Ok(real) = std::fs::canonicalize(&d) {
                if !seen.insert(real) {
                    continue;
                }
            }
            let Ok(entries) = std::fs::read_dir(&d) else {
                continue;
            };
            for e in entries.flatten() {
                let name = e.file_name();
                let name = name.to_string_lossy();
                if name.starts_with('.') || name == "target" {
                    continue;
                }
                let is_dir = match e.file_type() {
                    Ok(t) if t.is_symlink() => e.path().is_dir(),
                    Ok(t) => t.is_dir(),
                    Err(_) => continue,
                };
                if is_dir {
                    stack.push(e.path());
                } else {
                    files.push(e.path());
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

/// What a successful pass leaves behind: the fingerprint of what was known before kbuild
/// ran, the files kbuild reported reading (with a fingerprint of their identities), and
/// the identity of every output published.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Stamp {
    pub inputs: String,
    pub deps: Vec<PathBuf>,
    pub deps_fingerprint: String,
    pub outputs: Vec<(PathBuf, String)>,
}

/// The identity of a set of files.
pub fn files(paths: &[PathBuf]) -> String {
    let mut fp = Fingerprint::default();
    for p in paths {
        fp.file(p);
    }
    fp.finish()
}

fn stat(path: &Path) -> String {
    let mut fp = Fingerprint::default();
    fp.file(path);
    fp.finish()
}

/// Whether the stamp at `stamp` says nothing changed: the same inputs, every file the
/// last pass read unchanged, and every output still the one that pass published.
pub fn is_fresh(stamp: &Path, inputs: &str) -> bool {
    let Ok(text) = std::fs::read_to_string(stamp) else {
        return false;
    };
    let Ok(s) = serde_json::from_str::<Stamp>(&text) else {
        return false;
    };
    s.inputs == inputs
        && files(&s.deps) == s.deps_fingerprint
        && !s.outputs.is_empty()
        && s.outputs.iter().all(|(p, id)| &stat(p) == id)
}

/// Record a successful pass.
pub fn store(stamp: &Path, inputs: &str, deps: &[PathBuf], outputs: &[PathBuf]) -> Result<()> {
    let s = Stamp {
        inputs: inputs.to_string(),
        deps: deps.to_vec(),
        deps_fingerprint: files(deps),
        outputs: outputs.iter().map(|p| (p.clone(), stat(p))).collect(),
    };
    let text = serde_json::to_string(&s)?;
    crate::fsutil::write_atomic(stamp, text.as_bytes())
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
        let dep = d.path().join("dep.h");
        let out = d.path().join("m.ko");
        std::fs::write(&dep, "1").unwrap();
        std::fs::write(&out, "ko").unwrap();
        store(
            &stamp,
            &b,
            std::slice::from_ref(&dep),
            std::slice::from_ref(&out),
        )
        .unwrap();
        assert!(is_fresh(&stamp, &b));
        assert!(!is_fresh(&stamp, "other"));
        // A dependency kbuild reported changes: not fresh.
        std::fs::write(&dep, "22").unwrap();
        assert!(!is_fresh(&stamp, &b));
        store(
            &stamp,
            &b,
            std::slice::from_ref(&dep),
            std::slice::from_ref(&out),
        )
        .unwrap();
        assert!(is_fresh(&stamp, &b));
        // Another build replaced the output: not fresh.
        std::fs::write(&out, "other ko").unwrap();
        assert!(!is_fresh(&stamp, &b));
    }
}
