//! The exact compilers a distribution kernel names: the rustc of
//! `CONFIG_RUSTC_VERSION_TEXT` (Rust symbol names and type layouts depend on it, so only that
//! rustc builds modules the kernel accepts), the gcc of `CONFIG_CC_VERSION_TEXT` and the
//! pahole of `CONFIG_PAHOLE_VERSION` (the config's compiler-capability symbols depend on
//! them). Debian's packages, unpacked privately, need a newer C library than the machine
//! may have, so each program runs through the dynamic loader unpacked beside it: `bin/` holds
//! one small wrapper script per program, `root/` the unpacked packages.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::kernel::config::KConfig;
use crate::kernel::distro::apt::{Apt, Package};
use crate::kernel::Arch;
use crate::shell::Shell;

/// The stamp of a prepared toolchain, written last.
pub const STAMP: &str = "cargo-kmod-toolchain.json";

/// A prepared toolchain: `dir/bin` goes first on `PATH` for the kernel's build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DistroToolchain {
    pub dir: PathBuf,
    /// `rustc --version` of `bin/rustc`: the kernel's `CONFIG_RUSTC_VERSION_TEXT`.
    pub rustc_version: String,
    /// The C compiler's program name (`x86_64-linux-gnu-gcc-16`), as the kernel's
    /// `.kernelvariables` calls it.
    pub cc: String,
    /// `--version` of that compiler.
    pub cc_version: String,
    /// The packages, `name version arch`.
    pub packages: Vec<String>,
    /// `RUSTC`, when the user named the kernel's rustc (checked to print its version).
    #[serde(skip)]
    pub rustc_override: Option<PathBuf>,
}

impl DistroToolchain {
    pub fn bin(&self) -> PathBuf {
        self.dir.join("bin")
    }

    pub fn rustc(&self) -> PathBuf {
        self.rustc_override
            .clone()
            .unwrap_or_else(|| self.bin().join("rustc"))
    }

    /// Use the user's `RUSTC` (`program`) instead of Debian's when it prints the kernel's
    /// `CONFIG_RUSTC_VERSION_TEXT` (the symbol check still judges what it builds); another
    /// rustc is noted and Debian's is used.
    pub fn with_rustc(mut self, shell: &Shell, program: &str, wanted: &Wanted) -> DistroToolchain {
        let v = xshell::Shell::new()
            .ok()
            .and_then(|sh| crate::process::version_line(&sh, program, &["--version"]))
            .unwrap_or_default();
        if v != wanted.rustc_version {
            shell.note(format_args!(
                "`RUSTC` (`{}`) is not the kernel's rustc (`{}`): Debian's is used",
                crate::text::escape(program),
                wanted.rustc_version
            ));
            return self;
        }
        self.rustc_override = Some(
            crate::kernel::toolchain::which(program).unwrap_or_else(|| PathBuf::from(program)),
        );
        self.rustc_version = v;
        self
    }
}

/// What a kernel's `.config` asks of its compilers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub rustc_version: String,
    /// `x86_64-linux-gnu-gcc-16`.
    pub cc: String,
    /// `16.2.0-4` when the text names Debian's revision.
    pub cc_debian_version: Option<String>,
    pub cc_version_text: String,
    pub pahole: bool,
    /// `CROSS_COMPILE_COMPAT` of the kernel's build (`arm-linux-gnueabihf-`: arm64's 32-bit
    /// vDSO), from its `.kernelvariables`.
    pub compat: Option<String>,
}

impl Wanted {
    /// From a kernel's `.config`; an error names what it lacks.
    pub fn from_config(
        config: &KConfig,
        config_file: &Path,
        kernelvariables: &str,
    ) -> Result<Wanted> {
        let Some(rustc_version) = config
            .string("RUSTC_VERSION_TEXT")
            .filter(|s| !s.is_empty())
        else {
            crate::bail_user!(
                "`{}` names no rustc: `CONFIG_RUSTC_VERSION_TEXT` is not set",
                config_file.display()
            );
        };
        let text = config.string("CC_VERSION_TEXT").unwrap_or_default();
        if !config.is_enabled("CC_IS_GCC") {
            crate::bail_user!(
                "`{}` was not built by GCC (`{}`): cargo-kmod completes GCC-built distribution kernels (Debian's)", config_file.display(), crate::text::escape(&text)
            );
        }
        let cc = text
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string();
        if !cc.contains("-linux-gnu-gcc-")
            || !cc
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            crate::bail_user!(
                "`{}`: `CONFIG_CC_VERSION_TEXT` (`{}`) does not name a Debian gcc",
                config_file.display(),
                crate::text::escape(&text)
            );
        }
        let cc_debian_version = text
            .split_once("(Debian ")
            .and_then(|(_, r)| r.split_once(')'))
            .map(|(v, _)| v.to_string());
        Ok(Wanted {
            rustc_version,
            cc,
            cc_debian_version,
            cc_version_text: text,
            compat: kernelvariables.lines().find_map(|l| {
                let (var, value) = l.trim().trim_start_matches("override ").split_once('=')?;
                let value = value.trim();
                (var.trim() == "CROSS_COMPILE_COMPAT"
                    && value.ends_with('-')
                    && value
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c)))
                .then(|| value.to_string())
            }),
            pahole: config
                .string("PAHOLE_VERSION")
                .and_then(|s| s.parse::<u32>().ok())
                .unwrap_or(0)
                > 0,
        })
    }

    /// `gcc-16-x86-64-linux-gnu`: the package of the compiler named in the text.
    fn gcc_package(&self) -> String {
        // `x86_64-linux-gnu-gcc-16` -> triplet `x86_64-linux-gnu`, major `16`.
        let (triplet, major) = self.cc.rsplit_once("-gcc-").unwrap_or((&self.cc, ""));
        format!("gcc-{major}-{}", triplet.replace('_', "-"))
    }

    /// The compat compiler (`arm-linux-gnueabihf-gcc-16`), same major as the kernel's.
    pub fn compat_cc(&self) -> Option<String> {
        let major = self.cc.rsplit_once("-gcc-").map(|(_, m)| m)?;
        Some(format!("{}gcc-{major}", self.compat.as_deref()?))
    }

    /// The tool prefixes the toolchain provides (`x86_64-linux-gnu-`, and the compat one).
    pub fn prefixes(&self) -> Vec<String> {
        let mut out = vec![self
            .cc
            .rsplit_once("gcc-")
            .map(|(p, _)| p)
            .unwrap_or("")
            .to_string()];
        out.extend(self.compat.clone());
        out.retain(|p| !p.is_empty());
        out
    }

    /// The directory name of the toolchain: a hash of what it must provide on this host.
    fn key(&self) -> String {
        let text = format!(
            "{}\0{:?}\0{}\0{}\0{}\0{}",
            self.rustc_version,
            self.compat,
            self.cc,
            self.cc_debian_version.as_deref().unwrap_or(""),
            self.pahole,
            Arch::host().debian()
        );
        crate::fsutil::sha256_hex(text.as_bytes())[..16].to_string()
    }
}

/// The toolchain `wanted` names: prepared once under `toolchains/<hash>/`.
pub fn prepare(
    shell: &Shell,
    apt: &Apt,
    distro_dir: &Path,
    wanted: &Wanted,
) -> Result<DistroToolchain> {
    let toolchains = distro_dir.join("toolchains");
    std::fs::create_dir_all(&toolchains)
        .with_context(|| format!("cannot create `{}`", toolchains.display()))?;
    // The real path: the wrappers name it, and a home that links `toolchains` elsewhere
    // shares this one rather than writing paths of its own into it.
    let toolchains = std::fs::canonicalize(&toolchains)?;
    let dir = toolchains.join(wanted.key());
    if let Some(tc) = read(&dir) {
        return Ok(tc);
    }
    let host = Arch::host().debian();
    let upstream = crate::kernel::Version::find(&wanted.rustc_version)
        .map(|v| v.to_string())
        .unwrap_or_default();
    apt.update(shell, false)?;
    let mut rustcs = apt.show(shell, "rustc", host)?;
    if !rustcs
        .iter()
        .any(|p| p.version.starts_with(&format!("{upstream}+")))
    {
        apt.update(shell, true)?;
        rustcs = apt.show(shell, "rustc", host)?;
    }
    // Debian's backports build runs with trixie's libraries; prefer it to sid's.
    rustcs.retain(|p| p.version.starts_with(&format!("{upstream}+")));
    rustcs.sort_by_key(|p| !p.version.contains("~bpo"));
    let Some(rustc) = rustcs.first() else {
        crate::bail_user!(
            "the kernel was built by `{}`, and Debian's index has no rustc {} for {}", wanted.rustc_version, upstream, host;
            hint = "install that rustc and point `RUSTC` at it"
        );
    };
    let series = upstream
        .rsplit_once('.')
        .map(|(s, _)| s)
        .unwrap_or(&upstream);
    let v = &rustc.version;
    let mut specs = vec![
        format!("rustc:{host}={v}"),
        format!("libstd-rust-{series}:{host}={v}"),
        format!("libstd-rust-dev:{host}={v}"),
        format!("rust-src:all={v}"),
    ];
    let gcc = wanted.gcc_package();
    let gccs = apt.show(shell, &gcc, host)?;
    let Some(g) = gccs
        .iter()
        .find(|p| Some(&p.version) == wanted.cc_debian_version.as_ref())
        .or(gccs.first())
    else {
        crate::bail_user!(
            "the kernel was built by `{}`, and Debian's index has no `{}` for {}",
            crate::text::escape(&wanted.cc_version_text),
            gcc,
            host
        );
    };
    specs.push(format!("{gcc}:{host}={}", g.version));
    if let Some(compat) = &wanted.compat {
        let major = wanted.cc.rsplit_once("-gcc-").map(|(_, m)| m).unwrap_or("");
        let pkg = format!(
            "gcc-{major}-{}",
            compat.trim_end_matches('-').replace('_', "-")
        );
        if apt.show(shell, &pkg, host)?.is_empty() {
            crate::bail_user!(
                "the kernel's build used `CROSS_COMPILE_COMPAT={}`, and Debian's index has no `{}` for {}", compat, pkg, host
            );
        }
        specs.push(format!("{pkg}:{host}"));
    }
    if wanted.pahole {
        specs.push(format!("pahole:{host}"));
    }
    let pkgs = apt.closure(shell, &specs)?;
    assemble(shell, apt, &dir, wanted, &pkgs)
}

/// Unpack `pkgs` into a staging root, write the wrappers, check the compilers' versions,
/// and rename the staging directory into place.
fn assemble(
    shell: &Shell,
    apt: &Apt,
    dir: &Path,
    wanted: &Wanted,
    pkgs: &[Package],
) -> Result<DistroToolchain> {
    let parent = dir.parent().expect("toolchains/<hash>");
    std::fs::create_dir_all(parent)
        .with_context(|| format!("cannot create `{}`", parent.display()))?;
    let tmp = tempfile::Builder::new()
        .prefix(".toolchain-")
        .tempdir_in(parent)
        .context("cannot create a staging directory")?;
    // Wrappers name the final paths: the staging directory is renamed to `dir` at the end.
    let staged_root = tmp.path().join("root");
    std::fs::create_dir_all(&staged_root)?;
    let sh = xshell::Shell::new()?;
    let bar = shell.progress("Unpacking", pkgs.len() as u64);
    for p in pkgs {
        let deb = apt.download(shell, p)?;
        crate::process::run(shell, xshell::cmd!(sh, "dpkg-deb -x {deb} {staged_root}"))?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    let root = dir.join("root");
    let loader = if Arch::host() == Arch::X86_64 {
        "usr/lib64/ld-linux-x86-64.so.2"
    } else {
        "usr/lib/ld-linux-aarch64.so.1"
    };
    let triplet = Arch::host().gnu_prefix().trim_end_matches('-');
    let mut libs = vec![root.join("usr/lib").join(triplet)];
    if let Ok(it) = std::fs::read_dir(staged_root.join("usr/lib")) {
        for e in it.flatten() {
            if e.file_name().to_string_lossy().starts_with("llvm-") {
                libs.push(root.join("usr/lib").join(e.file_name()).join("lib"));
            }
        }
    }
    let libs = libs
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(":");
    let loader = root.join(loader);
    let bin = tmp.path().join("bin");
    std::fs::create_dir_all(&bin)?;
    let prefixes = wanted.prefixes();
    let cc_prefix = wanted.cc.rsplit_once("gcc-").map(|(p, _)| p).unwrap_or("");
    for e in crate::fsutil::sorted_entries(&staged_root.join("usr/bin"))? {
        let name = e.file_name().to_string_lossy().into_owned();
        let staged = e.path();
        // Only the kernel's tools: the host's `gcc`, `ld`, ... stay the host's (`HOSTCC`).
        let wanted_tool = prefixes.iter().any(|p| name.starts_with(p.as_str()))
            || ["rustc", "rustdoc", "pahole"].contains(&name.as_str());
        if !wanted_tool || !is_elf(&staged) {
            continue;
        }
        // Symlinks (`x86_64-linux-gnu-ld` -> `..ld.bfd`) run their target.
        let real = std::fs::canonicalize(&staged)?;
        let rel = real
            .strip_prefix(std::fs::canonicalize(&staged_root)?)
            .unwrap_or(&real);
        let target = root.join(rel);
        let argv0 = root.join("usr/bin").join(&name);
        let mut line = format!(
            "exec {} --argv0 {} --library-path {} {}",
            loader.display(),
            argv0.display(),
            libs,
            target.display()
        );
        let driver = real
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let drivers: Vec<String> = [Some(wanted.cc.clone()), wanted.compat_cc()]
            .into_iter()
            .flatten()
            .flat_map(|cc| [cc.replace("-gcc-", "-cpp-"), cc])
            .collect();
        if drivers.contains(&driver) {
            let prefix = prefixes
                .iter()
                .find(|p| driver.starts_with(p.as_str()))
                .map(String::as_str)
                .unwrap_or(cc_prefix);
            // Its own assembler and helpers, each through the same loader.
            line.push_str(&format!(
                " -B{} -wrapper {},--library-path,{}",
                root.join("usr/bin").join(prefix).display(),
                loader.display(),
                libs
            ));
        }
        let script = format!("#!/bin/sh\n# Written by cargo-kmod: runs a program through its own C library.\n{line} \"$@\"\n");
        let path = bin.join(&name);
        std::fs::write(&path, script)?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    }
    if dir.exists() {
        // A toolchain without its stamp: an earlier preparation that did not finish.
        std::fs::remove_dir_all(dir)
            .with_context(|| format!("cannot remove `{}`", dir.display()))?;
    }
    std::fs::rename(tmp.path(), dir)
        .with_context(|| format!("cannot create `{}`", dir.display()))?;
    let _ = tmp.keep();
    let tc = DistroToolchain {
        dir: dir.to_path_buf(),
        rustc_version: String::new(),
        cc: wanted.cc.clone(),
        cc_version: String::new(),
        packages: pkgs
            .iter()
            .map(|p| format!("{} {} {}", p.name, p.version, p.arch))
            .collect(),
        rustc_override: None,
    };
    let sh = xshell::Shell::new()?;
    let rustc = tc.rustc().display().to_string();
    let rv = crate::process::version_line(&sh, &rustc, &["--version"]).unwrap_or_default();
    if rv != wanted.rustc_version {
        let _ = std::fs::remove_dir_all(dir);
        crate::bail_user!(
            "Debian's rustc prints `{}`, but the kernel was built by `{}`", crate::text::escape(&rv), wanted.rustc_version;
            hint = "install the kernel's rustc and point `RUSTC` at it"
        );
    }
    let cc = tc.bin().join(&wanted.cc).display().to_string();
    let cv = crate::process::version_line(&sh, &cc, &["--version"]).unwrap_or_default();
    if cv.is_empty() {
        let _ = std::fs::remove_dir_all(dir);
        crate::bail_user!("`{}` from Debian's packages does not run", wanted.cc);
    }
    let tc = DistroToolchain {
        rustc_version: rv,
        cc_version: cv,
        ..tc
    };
    crate::fsutil::write_atomic(
        &dir.join(STAMP),
        serde_json::to_string_pretty(&tc)?.as_bytes(),
    )?;
    Ok(tc)
}

/// A prepared toolchain's stamp.
pub fn read(dir: &Path) -> Option<DistroToolchain> {
    let text = std::fs::read_to_string(dir.join(STAMP)).ok()?;
    let tc: DistroToolchain = serde_json::from_str(&text).ok()?;
    // The wrappers name the real directory; `dir` may reach it another way (a symlink).
    Some(tc)
}

fn is_elf(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && magic == *b"\x7fELF"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_names_rustc_gcc_and_its_package() {
        let c = KConfig::parse(
            "CONFIG_CC_IS_GCC=y\nCONFIG_CC_VERSION_TEXT=\"x86_64-linux-gnu-gcc-16 (Debian 16.2.0-4) 16.2.0\"\nCONFIG_RUSTC_VERSION_TEXT=\"rustc 1.97.1 (8bab26f4f 2026-07-14) (built from a source tarball)\"\nCONFIG_PAHOLE_VERSION=132\n",
        );
        let w = Wanted::from_config(
            &c,
            Path::new(".config"),
            "override CROSS_COMPILE_COMPAT = arm-linux-gnueabihf-\n",
        )
        .unwrap();
        assert_eq!(w.compat.as_deref(), Some("arm-linux-gnueabihf-"));
        assert_eq!(w.compat_cc().as_deref(), Some("arm-linux-gnueabihf-gcc-16"));
        assert_eq!(w.prefixes(), ["x86_64-linux-gnu-", "arm-linux-gnueabihf-"]);
        assert_eq!(w.cc, "x86_64-linux-gnu-gcc-16");
        assert_eq!(w.cc_debian_version.as_deref(), Some("16.2.0-4"));
        assert_eq!(w.gcc_package(), "gcc-16-x86-64-linux-gnu");
        assert!(w.pahole);
        let e = Wanted::from_config(
            &KConfig::parse("CONFIG_CC_IS_GCC=y\n"),
            Path::new("/h/.config"),
            "",
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("`CONFIG_RUSTC_VERSION_TEXT` is not set"),
            "{e}"
        );
    }
}
