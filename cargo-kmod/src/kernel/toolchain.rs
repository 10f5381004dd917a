//! The host toolchain a Rust kernel build needs: rustc, rust-src, bindgen, clang/LLVM (with
//! Debian's version suffix), and the environment kbuild must see them through.

use std::path::{Path, PathBuf};

use crate::env::Env;
use crate::kernel::home::Home;
use crate::kernel::Version;

/// How kbuild should find LLVM: `LLVM=1` (unsuffixed tools) or `LLVM=-19` (Debian's suffix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Llvm {
    /// The value for `LLVM=`.
    pub make_value: String,
    /// The clang program name (`clang` or `clang-19`).
    pub clang: String,
    pub ld_lld: String,
}

impl Llvm {
    fn from_make_value(v: &str) -> Llvm {
        let suffix = if v.starts_with('-') {
            v.to_string()
        } else {
            String::new()
        };
        Llvm {
            make_value: v.to_string(),
            clang: format!("clang{suffix}"),
            ld_lld: format!("ld.lld{suffix}"),
        }
    }

    /// `LLVM` from the environment if set; else unsuffixed tools if both exist; else the
    /// highest `clang-N` that has a matching `ld.lld-N`.
    pub fn detect() -> Option<Llvm> {
        if let Some(v) = Env::get().llvm() {
            return Some(Llvm::from_make_value(&v));
        }
        Self::detect_in(&path_dirs())
    }

    pub fn detect_in(dirs: &[PathBuf]) -> Option<Llvm> {
        if find_in(dirs, "clang").is_some() && find_in(dirs, "ld.lld").is_some() {
            return Some(Llvm::from_make_value("1"));
        }
        let mut best: Option<u32> = None;
        for dir in dirs {
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if let Some(n) = name
                    .strip_prefix("clang-")
                    .and_then(|n| n.parse::<u32>().ok())
                {
                    if find_in(dirs, &format!("ld.lld-{n}")).is_some() && best < Some(n) {
                        best = Some(n);
                    }
                }
            }
        }
        best.map(|n| Llvm::from_make_value(&format!("-{n}")))
    }

    /// The LLVM whose clang has major version `major` (to match a tree's `CC_VERSION_TEXT`).
    pub fn for_major(major: u32) -> Option<Llvm> {
        let dirs = path_dirs();
        let suffixed = Llvm::from_make_value(&format!("-{major}"));
        if find_in(&dirs, &suffixed.clang).is_some() && find_in(&dirs, &suffixed.ld_lld).is_some() {
            return Some(suffixed);
        }
        let plain = Llvm::detect_in(&dirs)?;
        let sh = xshell::Shell::new().ok()?;
        let v = crate::process::version_line(&sh, &plain.clang, &["--version"])?;
        (Version::find(&v)?.0 == major).then_some(plain)
    }
}

pub fn path_dirs() -> Vec<PathBuf> {
    Env::get().path_dirs()
}

/// Where `program` is on `dirs`, like `which`.
pub fn find_in(dirs: &[PathBuf], program: &str) -> Option<PathBuf> {
    dirs.iter().map(|d| d.join(program)).find(|p| p.is_file())
}

pub fn which(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        return Path::new(program).is_file().then(|| PathBuf::from(program));
    }
    find_in(&path_dirs(), program)
}

/// What was found on this machine.
#[derive(Debug, Clone, Default)]
pub struct Toolchain {
    /// `rustc --version`, e.g. `rustc 1.95.0 (59807616e 2026-04-14)`.
    pub rustc: Option<String>,
    /// `bindgen --version`, e.g. `bindgen 0.73.2`.
    pub bindgen: Option<String>,
    pub llvm: Option<Llvm>,
    /// `clang --version`'s first line.
    pub clang: Option<String>,
    /// The `library` folder of a rust-src matching `rustc`, and where it came from.
    pub rust_src: Option<(PathBuf, &'static str)>,
    /// A directory holding `libclang.so` for bindgen, when one is needed.
    pub libclang: Option<PathBuf>,
}

impl Toolchain {
    pub fn detect(home: &Home) -> Toolchain {
        // The version probes are independent processes: run them side by side, so
        // `cargo kmod init` on prepared trees stays well under a second even under load.
        let probe = |program: String| {
            std::thread::spawn(move || {
                let sh = xshell::Shell::new().ok()?;
                crate::process::version_line(&sh, &program, &["--version"])
            })
        };
        let llvm = Llvm::detect();
        let rustc = probe(rustc_program());
        let bindgen = probe(bindgen_program());
        let clang = llvm.as_ref().map(|l| probe(l.clang.clone()));
        let sysroot = std::thread::spawn(|| {
            let sh = xshell::Shell::new().ok()?;
            let rustc = rustc_program();
            xshell::cmd!(sh, "{rustc} --print sysroot")
                .quiet()
                .read()
                .ok()
        });
        let rustc = rustc.join().unwrap_or(None);
        let bindgen = bindgen.join().unwrap_or(None);
        let clang = clang.and_then(|c| c.join().unwrap_or(None));
        let sysroot = sysroot.join().unwrap_or(None);
        let rust_src = rustc
            .as_deref()
            .and_then(|r| find_rust_src(home, r, sysroot.as_deref()));
        let libclang = find_libclang(llvm.as_ref());
        Toolchain {
            rustc,
            bindgen,
            llvm,
            clang,
            rust_src,
            libclang,
        }
    }

    /// What module builds need, found without running anything: the known `rustc` line,
    /// the LLVM on `PATH`, and libclang for bindgen.
    pub fn for_modules(rustc: Option<String>) -> Toolchain {
        let llvm = Llvm::detect();
        let libclang = find_libclang(llvm.as_ref());
        Toolchain {
            rustc,
            llvm,
            libclang,
            ..Toolchain::default()
        }
    }

    pub fn rustc_version(&self) -> Option<Version> {
        self.rustc.as_deref().and_then(Version::find)
    }

    pub fn bindgen_version(&self) -> Option<Version> {
        self.bindgen.as_deref().and_then(Version::find)
    }

    /// Environment variables every kbuild run gets (`RUST_LIB_SRC`, `LIBCLANG_PATH`).
    pub fn kbuild_env(&self) -> Vec<(String, String)> {
        let mut env = Vec::new();
        if let Some((src, _)) = &self.rust_src {
            env.push(("RUST_LIB_SRC".into(), src.display().to_string()));
        }
        if Env::get().var_os("LIBCLANG_PATH").is_none() {
            if let Some(dir) = &self.libclang {
                env.push(("LIBCLANG_PATH".into(), dir.display().to_string()));
            }
        }
        env
    }
}

/// The rustc that compiles modules: `RUSTC`, else the resolved tree's own rustc (a completed
/// distribution kernel names one: [`use_tree_rustc`]), else `rustc`.
pub fn rustc_program() -> String {
    let env = Env::get();
    if env.var("RUSTC").is_none() {
        if let Some(p) = TREE_RUSTC.get() {
            return p.display().to_string();
        }
    }
    env.rustc()
}

/// The rustc of the tree a command resolved: set once, when the context is resolved (a
/// command works on one tree).
static TREE_RUSTC: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// Make `program` the rustc of this process's module builds (see [`rustc_program`]).
pub fn use_tree_rustc(program: &Path) {
    let _ = TREE_RUSTC.set(program.to_path_buf());
}

pub fn bindgen_program() -> String {
    Env::get().bindgen()
}

/// rust-src for `rustc_version_line`: `RUST_LIB_SRC`; the rustc sysroot's `rust-src`
/// component; or Debian's `rust-src` of the same version unpacked by `cargo xtask setup`
/// under `$CARGO_KMOD_HOME/rust-src/<version>`.
pub fn find_rust_src(
    home: &Home,
    rustc_version_line: &str,
    sysroot: Option<&str>,
) -> Option<(PathBuf, &'static str)> {
    let valid = |p: &Path| p.join("core/src/lib.rs").is_file();
    if let Some(p) = Env::get().path("RUST_LIB_SRC") {
        return valid(&p).then_some((p, "RUST_LIB_SRC"));
    }
    if let Some(sysroot) = sysroot {
        let p = PathBuf::from(sysroot.trim()).join("lib/rustlib/src/rust/library");
        if valid(&p) {
            return Some((p, "rustup component"));
        }
    }
    let version = Version::find(rustc_version_line)?;
    let p = home.rust_src_dir(&version.to_string());
    valid(&p).then_some((p, "CARGO_KMOD_HOME"))
}

/// Where bindgen can dlopen libclang: `LIBCLANG_PATH`, else the LLVM's own lib dir.
pub fn find_libclang(llvm: Option<&Llvm>) -> Option<PathBuf> {
    if let Some(p) = Env::get().path("LIBCLANG_PATH") {
        return Some(p);
    }
    let suffix = llvm.map(|l| l.make_value.trim_start_matches('-').to_string());
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(n) = suffix.filter(|s| s.parse::<u32>().is_ok()) {
        candidates.push(PathBuf::from(format!("/usr/lib/llvm-{n}/lib")));
    }
    if let Ok(entries) = std::fs::read_dir("/usr/lib") {
        let mut v: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("llvm-"))
            })
            .map(|p| p.join("lib"))
            .collect();
        v.sort();
        v.reverse();
        candidates.extend(v);
    }
    candidates.into_iter().find(|d| {
        std::fs::read_dir(d).is_ok_and(|mut it| {
            it.any(|e| e.is_ok_and(|e| e.file_name().to_string_lossy().starts_with("libclang")))
        })
    })
}

/// Minimum tool versions a kernel source tree declares in `scripts/min-tool-version.sh`.
pub fn min_tool_version(srctree: &Path, tool: &str) -> Option<Version> {
    let text = std::fs::read_to_string(srctree.join("scripts/min-tool-version.sh")).ok()?;
    // Several branches may echo (per-arch minimums): the lowest is the general one.
    let mut in_case = false;
    let mut found: Option<Version> = None;
    for line in text.lines() {
        let l = line.trim();
        if l.starts_with(&format!("{tool})")) {
            in_case = true;
        } else if in_case {
            if let Some(v) = l.strip_prefix("echo").and_then(Version::find) {
                found = Some(found.map_or(v, |f| f.min(v)));
            }
            if l.ends_with(";;") {
                break;
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_from_tool_output() {
        assert_eq!(
            Version::find("rustc 1.95.0 (59807616e 2026-04-14)"),
            Some(Version(1, 95, 0))
        );
        assert_eq!(Version::find("bindgen 0.73.2"), Some(Version(0, 73, 2)));
        assert_eq!(
            Version::find("Debian clang version 19.1.7 (3~deb12u1)"),
            Some(Version(19, 1, 7))
        );
        assert_eq!(
            Version::find("gcc (Debian 12.2.0-14+deb12u1) 12.2.0"),
            Some(Version(12, 2, 0))
        );
        assert_eq!(Version::find("no digits"), None);
        assert!(Version(0, 71, 1) < Version(0, 73, 2));
    }

    #[test]
    fn llvm_prefers_plain_then_highest_suffix() {
        let dir = tempfile::tempdir().unwrap();
        let touch = |n: &str| std::fs::write(dir.path().join(n), "").unwrap();
        let dirs = vec![dir.path().to_path_buf()];
        assert_eq!(Llvm::detect_in(&dirs), None);
        touch("clang-18");
        touch("ld.lld-18");
        touch("clang-19");
        touch("ld.lld-19");
        touch("clang-20"); // no ld.lld-20: not usable
        assert_eq!(Llvm::detect_in(&dirs).unwrap().make_value, "-19");
        assert_eq!(Llvm::detect_in(&dirs).unwrap().clang, "clang-19");
        touch("clang");
        touch("ld.lld");
        assert_eq!(Llvm::detect_in(&dirs).unwrap().make_value, "1");
    }

    #[test]
    fn min_tool_versions_from_script() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("scripts")).unwrap();
        std::fs::write(
            dir.path().join("scripts/min-tool-version.sh"),
            "case \"$1\" in\nrustc)\n\tif s390; then\n\t\techo 1.96.0\n\telse\n\t\techo 1.78.0\n\tfi\n\t;;\nbindgen)\n\techo 0.71.1\n\t;;\nesac\n",
        )
        .unwrap();
        assert_eq!(
            min_tool_version(dir.path(), "bindgen"),
            Some(Version(0, 71, 1))
        );
        assert_eq!(
            min_tool_version(dir.path(), "rustc"),
            Some(Version(1, 78, 0))
        );
        assert_eq!(min_tool_version(dir.path(), "gcc"), None);
    }
}
