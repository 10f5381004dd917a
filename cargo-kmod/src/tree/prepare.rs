//! Preparing a development tree (`cargo kmod init`): unpack a kernel source, configure it
//! (tinyconfig + the built-in fragments + the user's), check that every requested symbol took
//! effect, build it, and stamp it.
//!
//! Invariant: a tree counts as prepared only when its stamp (`cargo-kmod-tree.json`) exists,
//! and the stamp is written last, atomically. A failed or interrupted build leaves an
//! unstamped directory that the next run resumes (kbuild is incremental).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use xshell::cmd;

use crate::error::UserError;
use crate::shell::Shell;
use crate::tree::config::{self, Assignment, KConfig, KconfigIndex};
use crate::tree::home::{tree_key, Home, PreparedTree, TreeMeta, TREE_LOG};
use crate::tree::toolchain::{min_tool_version, Toolchain, Version};
use crate::tree::Arch;

const COMMON: &str = include_str!("../../../templates/fragments/common.config");
const X86_64: &str = include_str!("../../../templates/fragments/x86_64.config");
const ARM64: &str = include_str!("../../../templates/fragments/arm64.config");
const MODVERSIONS: &str = include_str!("../../../templates/fragments/modversions.config");

/// A kernel source: a tarball or an unpacked tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Tarball(PathBuf),
    Dir(PathBuf),
}

impl Source {
    /// Classify a `--source` path, with one-line errors for what cannot be a kernel source.
    pub fn from_path(path: &Path) -> Result<Source> {
        let meta = std::fs::metadata(path).map_err(|_| {
            UserError::new(format!("kernel source `{}` does not exist", path.display()))
                .with_hint("pass a `linux-*.tar.xz` or an unpacked kernel tree to `--source`")
        })?;
        let path = std::fs::canonicalize(path)
            .with_context(|| format!("cannot resolve `{}`", path.display()))?;
        if meta.is_dir() {
            if !(path.join("Makefile").is_file()
                && path.join("Kconfig").is_file()
                && path.join("scripts").is_dir())
            {
                crate::bail_user!(
                    "`{}` is not a kernel source tree: no top-level `Makefile`, `Kconfig` and `scripts/`",
                    path.display()
                );
            }
            return Ok(Source::Dir(path));
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if [".tar.xz", ".tar.gz", ".tgz", ".tar.zst", ".tar.bz2", ".tar"]
            .iter()
            .any(|e| name.ends_with(e))
        {
            Ok(Source::Tarball(path))
        } else {
            crate::bail_user!(
                "`{}` is neither a kernel source tarball nor a directory", path.display();
                hint = "pass a `.tar.xz` or `.tar.gz` kernel tarball, or an unpacked tree"
            )
        }
    }

    /// The newest `/usr/src/linux-source-*.tar.*` (Debian's `linux-source-X.Y` package).
    pub fn default_in(dir: &Path) -> Result<Source> {
        let mut found: Vec<(Version, PathBuf)> = std::fs::read_dir(dir)
            .map(|it| {
                it.flatten()
                    .map(|e| e.path())
                    .filter(|p| {
                        p.file_name().is_some_and(|n| {
                            let n = n.to_string_lossy();
                            n.starts_with("linux-source-") && n.contains(".tar")
                        })
                    })
                    .filter_map(|p| {
                        let n = p.file_name()?.to_string_lossy().into_owned();
                        Some((Version::find(n.trim_start_matches("linux-source-"))?, p))
                    })
                    .collect()
            })
            .unwrap_or_default();
        found.sort();
        match found.pop() {
            Some((_, p)) => Source::from_path(&p),
            None => crate::bail_user!(
                "no kernel source found: no `{}/linux-source-*.tar.*`", dir.display();
                hint = "install Debian's `linux-source-7.2` package (or run `cargo xtask setup`), or pass `--source PATH`"
            ),
        }
    }

    pub fn path(&self) -> &Path {
        match self {
            Source::Tarball(p) | Source::Dir(p) => p,
        }
    }

    /// What identifies the source in the cache key without reading it all: path, size and
    /// mtime for a tarball; path and the Makefile's version for a tree.
    fn identity(&self) -> Result<String> {
        let p = self.path();
        let meta =
            std::fs::metadata(p).with_context(|| format!("cannot read `{}`", p.display()))?;
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_secs())
            .unwrap_or(0);
        Ok(match self {
            Source::Tarball(_) => format!("tarball:{}:{}:{}", p.display(), meta.len(), mtime),
            Source::Dir(_) => {
                let v = makefile_version(p)
                    .map(|v| v.to_string())
                    .unwrap_or_default();
                format!("dir:{}:{}", p.display(), v)
            }
        })
    }
}

/// `VERSION.PATCHLEVEL.SUBLEVEL` from a source tree's top Makefile.
pub fn makefile_version(srctree: &Path) -> Option<Version> {
    let text = std::fs::read_to_string(srctree.join("Makefile")).ok()?;
    let get = |key: &str| -> Option<u32> {
        text.lines()
            .find_map(|l| l.strip_prefix(key).and_then(|r| r.trim().strip_prefix('=')))
            .and_then(|v| v.trim().parse().ok())
    };
    Some(Version(
        get("VERSION")?,
        get("PATCHLEVEL")?,
        get("SUBLEVEL").unwrap_or(0),
    ))
}

/// What `cargo kmod init` was asked for.
#[derive(Debug, Clone)]
pub struct Request {
    pub source: Source,
    pub arch: Arch,
    /// User fragments: (file name, contents).
    pub fragments: Vec<(String, String)>,
    pub jobs: usize,
}

/// The fragments for an arch, in merge order: built-in ones, then the user's.
pub fn fragments_for(
    arch: Arch,
    modversions: bool,
    user: &[(String, String)],
) -> Result<Vec<Assignment>> {
    let mut out = config::parse_fragment(COMMON, "templates/fragments/common.config")?;
    let (text, name) = match arch {
        Arch::X86_64 => (X86_64, "templates/fragments/x86_64.config"),
        Arch::Arm64 => (ARM64, "templates/fragments/arm64.config"),
    };
    out.extend(config::parse_fragment(text, name)?);
    if modversions {
        out.extend(config::parse_fragment(
            MODVERSIONS,
            "templates/fragments/modversions.config",
        )?);
    }
    for (name, text) in user {
        out.extend(config::parse_fragment(text, name)?);
    }
    Ok(out)
}

/// The cache key of a request with this toolchain.
fn key_for(req: &Request, tc: &Toolchain) -> Result<String> {
    let identity = req.source.identity()?;
    let user: String = req
        .fragments
        .iter()
        .map(|(n, t)| format!("{n}\n{t}\n"))
        .collect();
    let builtin = format!("{COMMON}{X86_64}{ARM64}{MODVERSIONS}");
    Ok(tree_key(&[
        ("source", &identity),
        ("arch", req.arch.name()),
        ("builtin-fragments", &builtin),
        ("user-fragments", &user),
        ("rustc", tc.rustc.as_deref().unwrap_or("")),
        ("bindgen", tc.bindgen.as_deref().unwrap_or("")),
        ("clang", tc.clang.as_deref().unwrap_or("")),
        (
            "llvm",
            tc.llvm
                .as_ref()
                .map(|l| l.make_value.as_str())
                .unwrap_or(""),
        ),
    ]))
}

/// Refuse early, with the fix, when a tool the build needs is missing.
pub fn check_toolchain(tc: &Toolchain) -> Result<()> {
    let Some(rustc) = &tc.rustc else {
        crate::bail_user!("`rustc` was not found"; hint = "install Rust with rustup");
    };
    if tc.rust_src.is_none() {
        let v = tc
            .rustc_version()
            .map(|v| v.to_string())
            .unwrap_or_default();
        crate::bail_user!(
            "no rust-src for `{}`: the kernel needs the Rust standard library sources of exactly this rustc", rustc;
            hint = "run `cargo xtask setup` (installs Debian's `rust-src={}`), or set `RUST_LIB_SRC` to its `library` directory", v
        );
    }
    if tc.bindgen.is_none() {
        crate::bail_user!(
            "`bindgen` was not found";
            hint = "run `cargo install bindgen-cli --locked` (with `LIBCLANG_PATH=/usr/lib/llvm-19/lib`)"
        );
    }
    if tc.llvm.is_none() {
        crate::bail_user!(
            "no clang/ld.lld pair found (looked for `clang` and `clang-N` with `ld.lld-N` on `PATH`)";
            hint = "install `clang-19 lld-19 llvm-19 libclang-19-dev`, or set `LLVM=-N`"
        );
    }
    Ok(())
}

fn check_bindgen_minimum(tc: &Toolchain, srctree: &Path) -> Result<()> {
    if let (Some(min), Some(have)) = (min_tool_version(srctree, "bindgen"), tc.bindgen_version()) {
        if have < min {
            crate::bail_user!(
                "bindgen {} is too old: this kernel needs at least {}", have, min;
                hint = "run `cargo install bindgen-cli --locked`"
            );
        }
    }
    Ok(())
}

/// Prepare (or find) the tree for `req`. Returns the tree and whether it was already fresh.
pub fn prepare(shell: &Shell, home: &Home, tc: &Toolchain, req: &Request) -> Result<(PreparedTree, bool)> {
    let trees = home.trees_dir();
    home.ensure_dir(&trees)?;
    check_toolchain(tc)?;
    let key = key_for(req, tc)?;
    let dir = trees.join(format!("{}-{}", req.arch, key));
    if let Some(meta) = Home::read_meta(&dir) {
        return Ok((PreparedTree { dir, meta }, true));
    }
    // One preparation of a given tree at a time; a second `init` waits for the first.
    let lock_path = trees.join(format!("{}-{}.lock", req.arch, key));
    let lock = std::fs::File::create(&lock_path)
        .with_context(|| format!("cannot create `{}`", lock_path.display()))?;
    if lock.try_lock().is_err() {
        shell.status(
            "Blocking",
            format_args!("waiting for another `cargo kmod init` of this tree"),
        );
        lock.lock().context("cannot lock the tree")?;
    }
    if let Some(meta) = Home::read_meta(&dir) {
        return Ok((PreparedTree { dir, meta }, true));
    }

    let srctree = match &req.source {
        Source::Dir(p) => {
            if p.join(".config").exists() || p.join("include/config").exists() {
                crate::bail_user!(
                    "kernel source `{}` is not clean (it has a `.config`): kbuild cannot build it out of tree", p.display();
                    hint = "run `make mrproper` in it, or pass the tarball"
                );
            }
            p.clone()
        }
        Source::Tarball(t) => unpack(shell, home, t, &req.source.identity()?)?,
    };
    check_bindgen_minimum(tc, &srctree)?;
    let version = makefile_version(&srctree);
    let index = KconfigIndex::scan(&srctree)?;
    let modversions = index.contains("GENDWARFKSYMS");
    if !modversions {
        shell.note(format_args!(
            "linux {} has no `GENDWARFKSYMS`: Rust excludes `MODVERSIONS` there, so this tree is built without modversions",
            version.map(|v| v.to_string()).unwrap_or_default()
        ));
    }
    let wanted = fragments_for(req.arch, modversions, &req.fragments)?;
    // Misspelled symbols fail before anything is built.
    let unknown: Vec<String> = wanted
        .iter()
        .filter(|a| !index.contains(&a.symbol))
        .map(|a| {
            config::explain(
                &config::Unmet {
                    wanted: a.clone(),
                    got: None,
                },
                &index,
                &KConfig::default(),
            )
        })
        .collect();
    if let Some(first) = unknown.first() {
        let mut e = UserError::new(first.clone());
        if unknown.len() > 1 {
            e = e.with_hint(format!("also: {}", unknown[1..].join("; ")));
        }
        return Err(e.into());
    }

    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create `{}`", dir.display()))?;
    let log = dir.join(TREE_LOG);
    let _ = std::fs::remove_file(&log);
    let sh = xshell::Shell::new()?;
    for (k, v) in tc.kbuild_env() {
        sh.set_var(k, v);
    }
    let llvm = tc.llvm.as_ref().expect("checked").make_value.clone();
    let base_args: Vec<String> = vec![
        "-C".into(),
        srctree.display().to_string(),
        format!("O={}", dir.display()),
        format!("ARCH={}", req.arch.kbuild()),
        format!("LLVM={llvm}"),
    ];
    let base = &base_args;
    let release_name = version
        .map(|v| v.to_string())
        .unwrap_or_else(|| "kernel".into());
    shell.status(
        "Configuring",
        format_args!(
            "linux {release_name} for {} (tinyconfig + fragments)",
            req.arch
        ),
    );
    crate::process::run_logged(shell, cmd!(sh, "make {base...} tinyconfig"), &log, |_| {})?;
    let dot_config = dir.join(".config");
    let text =
        std::fs::read_to_string(&dot_config).context("cannot read the tinyconfig `.config`")?;
    crate::fsutil::write_atomic(&dot_config, config::merge(&text, &wanted).as_bytes())?;
    crate::process::run_logged(shell, cmd!(sh, "make {base...} olddefconfig"), &log, |_| {})?;
    let resolved = KConfig::read(&dot_config)?;
    let unmet = config::unmet(&wanted, &resolved);
    if !unmet.is_empty() {
        let mut lines: Vec<String> = unmet
            .iter()
            .map(|u| config::explain(u, &index, &resolved))
            .collect();
        if unmet.iter().any(|u| u.wanted.symbol == "RUST") {
            if let Err(e) = crate::process::run(shell, cmd!(sh, "make {base...} rustavailable")) {
                let why = e.to_string();
                let reason = why
                    .lines()
                    .find(|l| l.contains("***") && l.len() > 4)
                    .unwrap_or("")
                    .trim_start_matches("***")
                    .trim();
                lines.push(format!("`make rustavailable` says: {reason}"));
            }
        }
        let first = lines.remove(0);
        let mut e = UserError::new(first);
        if !lines.is_empty() {
            e = e.with_hint(lines.join("; "));
        }
        return Err(e.into());
    }

    let estimate = home
        .list()
        .iter()
        .filter(|t| t.meta.arch == req.arch)
        .map(|t| t.meta.build_lines)
        .max()
        .unwrap_or(match req.arch {
            Arch::X86_64 => 1100,
            Arch::Arm64 => 1100,
        });
    let bar = shell.progress("Building", estimate);
    shell.status(
        "Building",
        format_args!(
            "linux {release_name} for {} (log: `{}`)",
            req.arch,
            log.display()
        ),
    );
    let started = Instant::now();
    let jobs = format!("-j{}", req.jobs.max(1));
    let mut lines = 0u64;
    let result = crate::process::run_logged(shell, cmd!(sh, "make {base...} {jobs}"), &log, |l| {
        if l.starts_with("  ") && l.as_bytes().get(2).is_some_and(u8::is_ascii_uppercase) {
            lines += 1;
            if lines >= bar.length().unwrap_or(0) {
                bar.set_length(lines + 1);
            }
            bar.set_position(lines);
            bar.set_message(l.trim().to_string());
        }
    });
    bar.finish_and_clear();
    result.with_context(|| format!("building linux {release_name} for {} failed", req.arch))?;

    let tree = crate::tree::KernelTree::open(&dir)?;
    for needed in [req.arch.image(), "Module.symvers", "rust/libkernel.rmeta"] {
        if !dir.join(needed).exists() {
            crate::bail_user!(
                "the build of `{}` finished without `{}`",
                dir.display(),
                needed
            );
        }
    }
    let meta = TreeMeta {
        key,
        arch: req.arch,
        release: tree.release.clone(),
        source: req.source.path().display().to_string(),
        rustc: tc.rustc.clone().unwrap_or_default(),
        bindgen: tc.bindgen.clone().unwrap_or_default(),
        clang: tc.clang.clone().unwrap_or_default(),
        llvm,
        modversions: tree.config.is_enabled("MODVERSIONS"),
        fragments: req.fragments.iter().map(|(n, _)| n.clone()).collect(),
        build_seconds: started.elapsed().as_secs(),
        build_lines: lines,
    };
    Home::write_meta(&dir, &meta)?;
    drop(lock);
    let _ = std::fs::remove_file(&lock_path);
    Ok((PreparedTree { dir, meta }, false))
}

/// Unpack a tarball once into `sources/<hash>/`, atomically (temp dir, then rename).
fn unpack(shell: &Shell, home: &Home, tarball: &Path, identity: &str) -> Result<PathBuf> {
    let dest = home
        .sources_dir()
        .join(&crate::fsutil::sha256_hex(identity.as_bytes())[..16]);
    if !dest.is_dir() {
        home.ensure_dir(&home.sources_dir())?;
        let tmp = tempfile::Builder::new()
            .prefix(".unpack-")
            .tempdir_in(home.sources_dir())
            .context("cannot create a temporary directory for unpacking")?;
        shell.status("Unpacking", format_args!("`{}`", tarball.display()));
        let sh = xshell::Shell::new()?;
        let into = tmp.path();
        let spinner = shell.spinner("Unpacking", tarball.display().to_string());
        let r = crate::process::run(shell, cmd!(sh, "tar -xf {tarball} -C {into}"));
        spinner.finish_and_clear();
        if let Err(e) = r {
            return Err(UserError::new(format!(
                "cannot unpack `{}`: the archive is truncated or corrupt",
                tarball.display()
            ))
            .with_hint(format!(
                "{}",
                e.to_string()
                    .lines()
                    .rev()
                    .find(|l| !l.trim().is_empty() && !l.starts_with("---"))
                    .unwrap_or("")
            ))
            .into());
        }
        std::fs::rename(tmp.keep(), &dest)
            .with_context(|| format!("cannot create `{}`", dest.display()))?;
    }
    // The tarball holds one top-level directory (e.g. `linux-source-7.2/`).
    let top = std::fs::read_dir(&dest)?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.join("Makefile").is_file() && p.join("Kconfig").is_file())
        .or_else(|| dest.join("Makefile").is_file().then(|| dest.clone()));
    match top {
        Some(t) => Ok(t),
        None => crate::bail_user!(
            "`{}` does not contain a kernel source tree",
            tarball.display()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_fragments_parse_and_differ_per_arch() {
        let x = fragments_for(Arch::X86_64, true, &[]).unwrap();
        let a = fragments_for(Arch::Arm64, false, &[]).unwrap();
        assert!(x.iter().any(|s| s.symbol == "64BIT"));
        assert!(x.iter().any(|s| s.symbol == "GENDWARFKSYMS"));
        assert!(
            !a.iter().any(|s| s.symbol == "MODVERSIONS"),
            "no modversions without GENDWARFKSYMS"
        );
        assert!(a.iter().any(|s| s.symbol == "SERIAL_AMBA_PL011_CONSOLE"));
        for sym in [
            "RUST",
            "MODULES",
            "MODULE_UNLOAD",
            "KUNIT",
            "MODULE_SIG",
            "MODULE_SIG_SHA256",
            "DEVTMPFS",
        ] {
            assert!(x.iter().any(|s| s.symbol == sym), "{sym}");
        }
    }

    #[test]
    fn user_fragments_come_last_and_errors_name_the_file() {
        let user = vec![("extra.config".to_string(), "CONFIG_KUNIT=n\n".to_string())];
        let f = fragments_for(Arch::X86_64, true, &user).unwrap();
        assert_eq!(f.last().unwrap().origin, "extra.config");
        let bad = vec![("bad.config".to_string(), "KUNIT=y\n".to_string())];
        let e = fragments_for(Arch::X86_64, true, &bad).unwrap_err();
        assert!(e.to_string().starts_with("`bad.config` line 1"), "{e}");
    }

    #[test]
    fn source_classification() {
        let dir = tempfile::tempdir().unwrap();
        let e = Source::from_path(&dir.path().join("missing.tar.xz")).unwrap_err();
        assert!(
            e.to_string().ends_with("missing.tar.xz` does not exist"),
            "{e}"
        );
        let e = Source::from_path(dir.path()).unwrap_err();
        assert!(e.to_string().contains("is not a kernel source tree"), "{e}");
        let f = dir.path().join("notes.txt");
        std::fs::write(&f, "x").unwrap();
        assert!(Source::from_path(&f)
            .unwrap_err()
            .to_string()
            .contains("neither a kernel source tarball"));
        let t = dir.path().join("linux-source-7.2.tar.xz");
        std::fs::write(&t, "x").unwrap();
        std::fs::write(dir.path().join("linux-source-6.12.tar.xz"), "x").unwrap();
        assert_eq!(
            Source::default_in(dir.path()).unwrap(),
            Source::Tarball(t.canonicalize().unwrap())
        );
        let empty = tempfile::tempdir().unwrap();
        let e = Source::default_in(empty.path()).unwrap_err();
        assert!(e.to_string().starts_with("no kernel source found"), "{e}");
    }

    #[test]
    fn makefile_version_reads_the_top_makefile() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("Makefile"),
            "# SPDX\nVERSION = 7\nPATCHLEVEL = 2\nSUBLEVEL = 13\nEXTRAVERSION =\n",
        )
        .unwrap();
        assert_eq!(makefile_version(dir.path()), Some(Version(7, 2, 13)));
    }
}
