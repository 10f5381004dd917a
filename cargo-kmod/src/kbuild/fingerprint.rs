//! No-op detection: a hash over every input of a kbuild pass (sources, manifests, the tree's
//! `.config` and `Module.symvers`, flags, tool versions) plus the files the last pass
//! reported reading ([`Stamp`]). When all match and the published outputs are the ones that
//! pass wrote, kbuild is skipped entirely.
//!
//! Some inputs are only known after the pass (the files kbuild reports reading, the local
//! sources cargo compiled), so their identities are taken after it. An edit made while the
//! pass ran may come after the compiler read the file; recorded as it is then, the next
//! build would find it unchanged and say `Fresh` over a `.ko` built from the old text. So a
//! build notes when it [`Started`] (by the file system's own clock, the one that stamps
//! edits), and a file modified since then is recorded as "changed during the build", which no
//! later identity equals: the next build rebuilds, as cargo does when a source is newer than
//! the start of the compile that read it. Files the build writes itself (under
//! [`Started::own`]) are recorded as they are.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Result;
use sha2::{Digest, Sha256};

/// When a build began, by the clock the file system stamps modifications with, and the
/// directories whose files the build writes itself.
#[derive(Debug, Clone)]
pub struct Started {
    at: SystemTime,
    /// Directories the build writes (generated files, kbuild's outputs): a file there
    /// modified during the build is an output of it, not an edit.
    pub own: Vec<PathBuf>,
    /// Inputs a tool of the build itself writes (`Cargo.lock`, which cargo writes when it
    /// resolves), with the moment that tool was done with them: they count as changed only
    /// when modified after that.
    settled: Vec<(PathBuf, SystemTime)>,
}

impl Started {
    /// Now, as the file system of `dir` tells it: the modification time of a marker file
    /// written there. The system clock would not do: the kernel stamps files with a coarse
    /// clock that lags it by up to a tick, so an edit right after `SystemTime::now()` could
    /// look older than the start. `dir` is one of the directories the build writes; `own`
    /// lists the others.
    pub fn now(dir: &Path, own: &[PathBuf]) -> Result<Started> {
        use anyhow::Context as _;
        use std::io::Write as _;
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create `{}`", dir.display()))?;
        let marker = dir.join(".kmod-started");
        // The content is nothing; a write is what stamps the file with the time.
        let mut f = std::fs::File::create(&marker)
            .with_context(|| format!("cannot write `{}`", marker.display()))?;
        f.write_all(b"1")
            .with_context(|| format!("cannot write `{}`", marker.display()))?;
        let at = f
            .metadata()
            .and_then(|m| m.modified())
            .with_context(|| format!("cannot read the time of `{}`", marker.display()))?;
        let mut dirs = vec![dir.to_path_buf()];
        dirs.extend(own.iter().cloned());
        Ok(Started {
            at,
            own: dirs,
            settled: Vec::new(),
        })
    }

    /// `path` was written by a tool of this build (cargo resolving into `Cargo.lock`) that
    /// is done with it now: from here on, a modification is an edit again.
    pub fn settle(&mut self, path: &Path) -> Result<()> {
        let own = self.own.first().cloned().unwrap_or_default();
        let now = Started::now(&own, &[])?.at;
        self.settled.retain(|(p, _)| p != path);
        self.settled.push((path.to_path_buf(), now));
        Ok(())
    }

    /// Whether any of `paths` was modified after the build began (by someone other than the
    /// build).
    pub fn any_changed(&self, paths: &[PathBuf]) -> bool {
        paths.iter().any(|p| {
            std::fs::metadata(p)
                .and_then(|m| m.modified())
                .is_ok_and(|t| self.changed_since(p, t))
        })
    }

    /// Whether a file modified at `mtime` changed after the build began (at the same tick
    /// counts: the order within a tick is unknown).
    fn changed_since(&self, path: &Path, mtime: SystemTime) -> bool {
        let since = self
            .settled
            .iter()
            .find(|(p, _)| p == path)
            .map_or(self.at, |(_, t)| *t);
        mtime >= since && !self.own.iter().any(|d| path.starts_with(d))
    }
}

/// Accumulates inputs; files are hashed by path, size and mtime (cheap, like make).
#[derive(Default)]
pub struct Fingerprint {
    hasher: Sha256,
    /// Set when recording after a build: files modified since are recorded as changed.
    started: Option<Started>,
}

impl Fingerprint {
    /// A fingerprint taken after the build that began at `started`: a file modified since
    /// then is recorded as changed during the build, so no later fingerprint equals it.
    pub fn after(started: &Started) -> Fingerprint {
        Fingerprint {
            started: Some(started.clone()),
            ..Fingerprint::default()
        }
    }

    pub fn value(&mut self, key: &str, value: &str) {
        self.hasher.update(key.as_bytes());
        self.hasher.update([0]);
        self.hasher.update(value.as_bytes());
        self.hasher.update([0]);
    }

    /// A file's identity: path, size, modification time (missing files count too); after a
    /// build, "changed during the build" for a file modified since it began.
    pub fn file(&mut self, path: &Path) {
        let stat = std::fs::metadata(path)
            .map(|m| {
                let modified = m.modified().ok();
                if let (Some(s), Some(t)) = (&self.started, modified) {
                    if s.changed_since(path, t) {
                        return CHANGED_DURING_BUILD.to_string();
                    }
                }
                let t = modified
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
        self.tree_except(dir, |_| false)
    }

    /// [`Fingerprint::tree`] without the files `skip` names.
    pub fn tree_except(&mut self, dir: &Path, skip: impl Fn(&Path) -> bool) {
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
                } else if !skip(&e.path()) {
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

/// What a file modified after the build began is recorded as: never a file's identity.
const CHANGED_DURING_BUILD: &str = "changed during the build";

/// The identity of a set of files.
pub fn files(paths: &[PathBuf]) -> String {
    files_with(Fingerprint::default(), paths)
}

fn files_with(mut fp: Fingerprint, paths: &[PathBuf]) -> String {
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

/// Record a successful pass that began at `started`: a file it read that was modified
/// since then (perhaps after the compiler read it) makes the stamp stale.
pub fn store(
    stamp: &Path,
    inputs: &str,
    deps: &[PathBuf],
    outputs: &[PathBuf],
    started: &Started,
) -> Result<()> {
    let s = Stamp {
        inputs: inputs.to_string(),
        deps: deps.to_vec(),
        deps_fingerprint: files_with(Fingerprint::after(started), deps),
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
            &started_later(d.path()),
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
            &started_later(d.path()),
        )
        .unwrap();
        assert!(is_fresh(&stamp, &b));
        // Another build replaced the output: not fresh.
        std::fs::write(&out, "other ko").unwrap();
        assert!(!is_fresh(&stamp, &b));
    }

    /// A build that begins a few clock ticks after what the test wrote so far.
    fn started_later(dir: &Path) -> Started {
        std::thread::sleep(std::time::Duration::from_millis(50));
        Started::now(&dir.join("own"), &[]).unwrap()
    }

    /// A file edited while the pass ran (after the compiler read it, before the stamp was
    /// written) makes the next check stale, though it is unchanged since; a file the build
    /// wrote itself does not.
    #[test]
    fn an_edit_during_the_build_is_never_fresh() {
        let d = tempfile::tempdir().unwrap();
        let dep = d.path().join("extra.rs");
        let generated = d.path().join("own/bindings.rs");
        let out = d.path().join("own/m.ko");
        std::fs::create_dir_all(d.path().join("own")).unwrap();
        std::fs::write(&dep, "old").unwrap();
        let started = started_later(d.path());
        // The compiler read `old`; then, before the build ends:
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&dep, "new").unwrap();
        std::fs::write(&generated, "g").unwrap();
        std::fs::write(&out, "ko").unwrap();
        let stamp = d.path().join("stamp");
        store(
            &stamp,
            "in",
            &[dep.clone(), generated.clone()],
            std::slice::from_ref(&out),
            &started,
        )
        .unwrap();
        assert!(!is_fresh(&stamp, "in"), "an edit during the build");
        // The rebuild reads `new`, and nothing changes during it.
        store(
            &stamp,
            "in",
            &[dep, generated],
            &[out],
            &started_later(d.path()),
        )
        .unwrap();
        assert!(is_fresh(&stamp, "in"));
    }

    /// `Cargo.lock` written by cargo while it resolved is not an edit; modified after cargo
    /// was done with it, it is.
    #[test]
    fn a_file_the_builds_tool_wrote_is_settled() {
        let d = tempfile::tempdir().unwrap();
        let lock = d.path().join("Cargo.lock");
        let mut started = started_later(d.path());
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&lock, "resolved").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        started.settle(&lock).unwrap();
        let id = |fp: &mut Fingerprint| {
            fp.file(&lock);
            std::mem::take(fp).finish()
        };
        assert_eq!(
            id(&mut Fingerprint::after(&started)),
            id(&mut Fingerprint::default())
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&lock, "edited").unwrap();
        assert_ne!(
            id(&mut Fingerprint::after(&started)),
            id(&mut Fingerprint::default())
        );
    }

    /// A file the build wrote itself (under its own directories) is an output, not an edit.
    #[test]
    fn the_builds_own_files_are_not_edits() {
        let d = tempfile::tempdir().unwrap();
        let macros = d.path().join("home/macros");
        std::fs::create_dir_all(&macros).unwrap();
        let started = Started::now(&d.path().join("own"), std::slice::from_ref(&macros)).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let generated = d.path().join("own/x.rs");
        let built = macros.join("libkmod_macros.so");
        let edited = d.path().join("src.rs");
        for f in [&generated, &built, &edited] {
            std::fs::write(f, "x").unwrap();
        }
        let mut fresh = Fingerprint::default();
        let mut after = Fingerprint::after(&started);
        for f in [&generated, &built] {
            fresh.file(f);
            after.file(f);
        }
        assert_eq!(fresh.finish(), after.finish());
        let mut fresh = Fingerprint::default();
        let mut after = Fingerprint::after(&started);
        fresh.file(&edited);
        after.file(&edited);
        assert_ne!(fresh.finish(), after.finish());
    }
}
