//! Completing a distribution's headers with the `rust/` they lack.
//!
//! Debian's `linux-headers-<release>` has the kernel's `.config`, its generated headers
//! (`include/config/`, `include/generated/`, `rustc_cfg` among them) and `Module.symvers`,
//! but no `rust/`: no `.rmeta` of `core`, `kernel`, `pin_init`..., no proc macros, no target
//! spec. The completion is an `O=` tree of `linux-source-X.Y` of the **same package
//! version**, holding the package's `.config` and generated configuration as they are (kconfig
//! never runs on them, so nothing can change them), in which kbuild's `prepare` builds the
//! host tools and the Rust artifacts with the kernel's own compilers ([`super::toolchain`]).
//! `Module.symvers` (and the BTF `vmlinux`) are the package's. Two proofs before the stamp is
//! written: the configuration kconfig would compute with these compilers equals the
//! package's (else the symbols that differ are named), and every Rust symbol the rebuilt
//! crates export is, by its exact name, in the package's `Module.symvers`.
//!
//! The installed headers directory is never written: everything is under
//! `$CARGO_KMOD_HOME/distro/debian/complete/<release>-<hash>/`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use xshell::cmd;

use crate::kernel::config::{KConfig, Value};
use crate::kernel::distro::apt::Apt;
use crate::kernel::distro::toolchain::{self, DistroToolchain, Wanted};
use crate::kernel::distro::{debian_dir, headers_release, DistroKernel};
use crate::kernel::home::Home;
use crate::kernel::Arch;
use crate::shell::Shell;

/// The stamp of a completed tree, written last.
pub const STAMP: &str = "cargo-kmod-completion.json";
const LOG: &str = "cargo-kmod-completion.log";

/// Symbols whose value probes the build machine's user space, not the kernel's compilers:
/// `CC_CAN_LINK` (can the compiler link a user program: libc's development files),
/// `OPENSSL_SUPPORTS_*` (the host's OpenSSL, for `sign-file`). A difference there is reported,
/// never applied: nothing a module build compiles depends on them.
const HOST_PROBES: &[&str] = &[
    "CC_CAN_LINK",
    "CC_CAN_LINK_STATIC",
    "OPENSSL_SUPPORTS_ML_DSA",
];

/// A completed headers tree: a `KDIR` for Rust modules of a distribution kernel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Completion {
    pub dir: PathBuf,
    pub release: String,
    pub arch: Arch,
    /// `rustc --version` of the toolchain's rustc (the kernel's).
    pub rustc_version: String,
    pub rustc: PathBuf,
    /// Directories that go first on `PATH` for this tree's builds.
    pub path: Vec<PathBuf>,
    /// The headers directory it completes (read, never written).
    pub headers: PathBuf,
    /// The source tree the artifacts were built from.
    pub source: PathBuf,
    /// Exported Rust symbols found, by exact name, in the package's `Module.symvers`.
    pub symbols_checked: usize,
    /// Host-probe symbols whose value differed on this machine (reported, not applied).
    pub host_differences: Vec<String>,
    /// The distribution's kernel image (from its package), at the tree's boot image path:
    /// what `test` and `run` boot.
    #[serde(default)]
    pub image: Option<PathBuf>,
    /// The version of the headers package completed (`7.2.13-1`), when known.
    #[serde(default)]
    pub headers_version: Option<String>,
    /// The distribution's modules of that kernel, unpacked from its package
    /// (`.../usr/lib/modules/<release>`): where a module's load-time dependencies come from.
    #[serde(default)]
    pub modules: Option<PathBuf>,
    pub seconds: u64,
}

impl Completion {
    /// A completed tree's stamp, when `dir` is one.
    pub fn read(dir: &Path) -> Option<Completion> {
        let text = std::fs::read_to_string(dir.join(STAMP)).ok()?;
        serde_json::from_str(&text).ok()
    }
}

/// Whether `dir` is a completed distribution kernel.
pub fn is_completion(dir: &Path) -> bool {
    dir.join(STAMP).is_file()
}

/// The completion of `headers`, if it was made: looked up by the headers' identity.
pub fn find(home: &Home, headers: &Path) -> Option<Completion> {
    let key = key_of(headers).ok()?;
    let release = headers_release(headers)?;
    Completion::read(
        &debian_dir(home)
            .join("complete")
            .join(format!("{release}-{key}")),
    )
}

/// The completion of a named distribution kernel whose headers package was fetched.
pub fn find_named(home: &Home, dk: &DistroKernel) -> Option<Completion> {
    let packages = debian_dir(home).join("packages");
    let prefix = format!("{}_", dk.headers_package());
    let suffix = format!("_{}", dk.arch.debian());
    crate::fsutil::sorted_entries(&packages)
        .ok()?
        .into_iter()
        .rev()
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.starts_with(&prefix) && n.ends_with(&suffix)
        })
        .find_map(|e| {
            find(
                home,
                &e.path()
                    .join("usr/src")
                    .join(format!("linux-headers-{}", dk.release)),
            )
        })
}

/// The identity of a headers directory: its `.config` and `Module.symvers`, and the host
/// (the proc macros are host programs).
fn key_of(headers: &Path) -> Result<String> {
    let mut bytes = std::fs::read(headers.join(".config"))
        .with_context(|| format!("cannot read `{}`", headers.join(".config").display()))?;
    bytes.extend(
        std::fs::read(headers.join("Module.symvers")).with_context(|| {
            format!("cannot read `{}`", headers.join("Module.symvers").display())
        })?,
    );
    bytes.extend(Arch::host().debian().as_bytes());
    // Cached per (headers, rustc): `RUSTC`, when it is the one that builds (it prints the
    // kernel's rustc version), names another rustc than Debian's.
    if let Some(program) = crate::env::Env::get().var("RUSTC") {
        let config = KConfig::read(&headers.join(".config"))?;
        let sh = xshell::Shell::new()?;
        if crate::process::version_line(&sh, program, &["--version"])
            == config.string("RUSTC_VERSION_TEXT")
        {
            bytes.extend(program.as_bytes());
        }
    }
    Ok(crate::fsutil::sha256_hex(&bytes)[..16].to_string())
}

/// Fetch a named distribution kernel's headers and complete them.
pub fn complete_named(
    shell: &Shell,
    home: &Home,
    dk: &DistroKernel,
    jobs: usize,
) -> Result<Completion> {
    let distro = debian_dir(home);
    home.ensure_dir(&distro)?;
    let _lock = crate::kernel::prepare::lock_file(
        shell,
        &distro.join("fetch.lock"),
        "another `cargo kmod init` fetching Debian's packages",
    )?;
    let apt = Apt::open(home, &distro)?;
    apt.update(shell, false)?;
    let deb_arch = dk.arch.debian();
    let Some(pkg) = apt.find(shell, &dk.headers_package(), deb_arch)? else {
        let names = apt.names(shell, "linux-headers-")?;
        let known: Vec<String> = names
            .iter()
            .filter(|n| {
                n.ends_with(&format!("-{}", dk.flavour))
                    && !n.contains("-common")
                    && n["linux-headers-".len()..].starts_with(|c: char| c.is_ascii_digit())
            })
            .map(|n| format!("debian:{}", n.trim_start_matches("linux-headers-")))
            .collect();
        let nearest = crate::text::nearest(&dk.name(), known.iter().map(String::as_str), 0.9);
        crate::bail_user!(
            "unknown distribution kernel `{}`: Debian's index has no `{}` for {}", dk.name(), dk.headers_package(), deb_arch;
            hint = "{}", match nearest {
                Some(n) => format!("did you mean `{n}`? Debian has: {}", known.join(", ")),
                None if known.is_empty() => "Debian's index lists no kernels of that flavour".to_string(),
                None => format!("Debian has: {}", known.join(", ")),
            }
        );
    };
    let unpacked = apt.unpacked(shell, &pkg)?;
    let headers = unpacked
        .join("usr/src")
        .join(format!("linux-headers-{}", dk.release));
    complete(shell, home, &apt, &headers, Some(&pkg.version), jobs)
}

/// Complete an installed headers directory (`/lib/modules/<release>/build`).
pub fn complete_installed(
    shell: &Shell,
    home: &Home,
    headers: &Path,
    jobs: usize,
) -> Result<Completion> {
    let distro = debian_dir(home);
    home.ensure_dir(&distro)?;
    let _lock = crate::kernel::prepare::lock_file(
        shell,
        &distro.join("fetch.lock"),
        "another `cargo kmod init` fetching Debian's packages",
    )?;
    let apt = Apt::open(home, &distro)?;
    complete(shell, home, &apt, headers, None, jobs)
}

/// The completion itself (the fetch lock held): `version` is the headers package's version
/// when known (else the index is asked for the release's).
fn complete(
    shell: &Shell,
    home: &Home,
    apt: &Apt,
    headers: &Path,
    version: Option<&str>,
    jobs: usize,
) -> Result<Completion> {
    let headers = std::fs::canonicalize(headers)
        .with_context(|| format!("`{}` does not exist", headers.display()))?;
    let config_file = headers.join(".config");
    let config = KConfig::read(&config_file)?;
    let Some(arch) = Arch::from_config(&config) else {
        crate::bail_user!(
            "`{}` is for an architecture cargo-kmod does not support",
            headers.display()
        );
    };
    let Some(release) = headers_release(&headers) else {
        crate::bail_user!(
            "`{}` has no `include/config/kernel.release`: it is not a headers package",
            headers.display()
        );
    };
    if !config.is_enabled("RUST") {
        crate::bail_user!(
            "the kernel of `{}` ({}) has no Rust support: `CONFIG_RUST` is not set in its `.config`", headers.display(), release;
            hint = "Rust modules need a kernel built with `CONFIG_RUST=y` (Debian's from 6.13 on)"
        );
    }
    let key = key_of(&headers)?;
    let dir = debian_dir(home)
        .join("complete")
        .join(format!("{release}-{key}"));
    if let Some(c) = Completion::read(&dir) {
        return Ok(c);
    }
    let started = Instant::now();
    let version = match version {
        Some(v) => v.to_string(),
        None => match apt.find(shell, &format!("linux-headers-{release}"), arch.debian())? {
            Some(p) => p.version,
            None => crate::bail_user!(
                "Debian's index has no `linux-headers-{}`: cannot find the source of `{}`",
                release,
                headers.display()
            ),
        },
    };
    let series = crate::kernel::Version::find(&release)
        .map(|v| format!("{}.{}", v.0, v.1))
        .unwrap_or_default();
    let source_name = format!("linux-source-{series}");
    let sources = apt.show(shell, &source_name, "all")?;
    let Some(source_pkg) = sources.iter().find(|p| p.version == version) else {
        crate::bail_user!(
            "Debian's index has no `{}` {} (the version of the headers): the source must be the very version the kernel was built from", source_name, version;
            hint = "{}", if sources.is_empty() { "the index lists no such source package".to_string() } else { format!("the index has {}", sources.iter().map(|p| p.version.as_str()).collect::<Vec<_>>().join(", ")) }
        );
    };
    let unpacked = apt.unpacked(shell, source_pkg)?;
    let tarball = std::fs::read_dir(unpacked.join("usr/src"))
        .ok()
        .and_then(|it| {
            it.flatten().map(|e| e.path()).find(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().contains(".tar"))
            })
        })
        .with_context(|| format!("`{}` holds no source tarball", source_name))?;
    let srctree = crate::kernel::prepare::unpack_source(shell, home, &tarball)?;
    let kernelvariables =
        std::fs::read_to_string(headers.join(".kernelvariables")).unwrap_or_default();
    let wanted = Wanted::from_config(&config, &config_file, &kernelvariables)?;
    let tc = toolchain::prepare(shell, apt, &debian_dir(home), &wanted)?;
    let tc = match crate::env::Env::get().var("RUSTC") {
        Some(program) => tc.with_rustc(shell, program, &wanted),
        None => tc,
    };
    let bindgen = bindgen_for(home, &config)?;

    let complete_dir = debian_dir(home).join("complete");
    home.ensure_dir(&complete_dir)?;
    let lock = crate::kernel::prepare::lock_file(
        shell,
        &complete_dir.join(format!("{release}-{key}.lock")),
        "another completion of these headers",
    )?;
    if let Some(c) = Completion::read(&dir) {
        return Ok(c);
    }
    if dir.exists() {
        std::fs::remove_dir_all(&dir)
            .with_context(|| format!("cannot remove `{}`", dir.display()))?;
    }
    let r = build(
        shell, &headers, &srctree, &dir, arch, &release, &tc, &wanted, &bindgen, jobs,
    );
    let r = r.and_then(|v| {
        let image = install_image(shell, apt, &dir, &release, arch)?;
        let modules = modules_package(shell, apt, &release, arch)?;
        Ok((v, (image, modules)))
    });
    let ((symbols_checked, host_differences), (image, modules)) = match r {
        Ok(v) => v,
        Err(e) => {
            // No half-made tree: the log goes with it, the error carries its tail.
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e);
        }
    };
    let c = Completion {
        dir: dir.clone(),
        release,
        arch,
        rustc_version: tc.rustc_version.clone(),
        rustc: tc.rustc(),
        path: vec![tc.bin()],
        headers: headers.clone(),
        source: srctree,
        symbols_checked,
        host_differences,
        image: Some(image),
        headers_version: Some(version.clone()),
        modules,
        seconds: started.elapsed().as_secs(),
    };
    crate::fsutil::write_atomic(
        &dir.join(STAMP),
        serde_json::to_string_pretty(&c)?.as_bytes(),
    )?;
    drop(lock);
    Ok(c)
}

/// The distribution's own kernel image of `release`, copied to the tree's boot image path
/// (`arch/x86/boot/bzImage`, `arch/arm64/boot/Image`): Debian's `linux-binary-<release>`
/// (`usr/lib/modules/<release>/vmlinuz`), or the older `linux-image-<release>`
/// (`boot/vmlinuz-<release>`).
fn install_image(
    shell: &Shell,
    apt: &Apt,
    dir: &Path,
    release: &str,
    arch: Arch,
) -> Result<PathBuf> {
    for (package, inside) in [
        (
            format!("linux-binary-{release}"),
            format!("usr/lib/modules/{release}/vmlinuz"),
        ),
        (
            format!("linux-image-{release}"),
            format!("boot/vmlinuz-{release}"),
        ),
    ] {
        let Some(pkg) = apt.find(shell, &package, arch.debian())? else {
            continue;
        };
        let unpacked = apt.unpacked(shell, &pkg)?;
        let from = unpacked.join(&inside);
        if !from.is_file() {
            continue;
        }
        let to = dir.join(arch.image());
        std::fs::create_dir_all(to.parent().expect("arch/<arch>/boot"))?;
        std::fs::copy(&from, &to)
            .with_context(|| format!("cannot copy `{}` to `{}`", from.display(), to.display()))?;
        return Ok(to);
    }
    crate::bail_user!(
        "Debian's index has no kernel image of `{}` (`linux-binary-{}` or `linux-image-{}`)",
        release,
        release,
        release
    );
}

/// The distribution's `linux-modules-<release>` unpacked: its `usr/lib/modules/<release>`
/// (`None` for a distribution that ships the modules inside the image package).
fn modules_package(shell: &Shell, apt: &Apt, release: &str, arch: Arch) -> Result<Option<PathBuf>> {
    let Some(pkg) = apt.find(shell, &format!("linux-modules-{release}"), arch.debian())? else {
        return Ok(None);
    };
    let dir = apt
        .unpacked(shell, &pkg)?
        .join("usr/lib/modules")
        .join(release);
    Ok(dir.is_dir().then_some(dir))
}

/// The bindgen the kernel names (`CONFIG_BINDGEN_VERSION_TEXT`): `BINDGEN`/`PATH`'s when
/// it is that version, else the one `cargo xtask setup` (or the hint) installs under
/// `$CARGO_KMOD_HOME/bindgen/<version>/`.
fn bindgen_for(home: &Home, config: &KConfig) -> Result<PathBuf> {
    let want = config.string("BINDGEN_VERSION_TEXT").unwrap_or_default();
    let sh = xshell::Shell::new()?;
    let program = crate::kernel::toolchain::bindgen_program();
    if crate::process::version_line(&sh, &program, &["--version"]).as_deref() == Some(want.as_str())
    {
        if let Some(p) = crate::kernel::toolchain::which(&program) {
            return Ok(p);
        }
    }
    let version = want.trim_start_matches("bindgen ").to_string();
    let local = home.bindgen_root(&version).join("bin/bindgen");
    if local.is_file() {
        return Ok(local);
    }
    crate::bail_user!(
        "the kernel was configured with `{}`, and no such bindgen is installed", want;
        hint = "install it: `cargo install bindgen-cli --locked --version {} --root {}` (`cargo xtask setup` does)", version, home.bindgen_root(&version).display()
    );
}

/// Configure and build the `O=` tree in `dir`; returns the symbols checked and the host-probe
/// differences.
#[allow(clippy::too_many_arguments)]
fn build(
    shell: &Shell,
    headers: &Path,
    srctree: &Path,
    dir: &Path,
    arch: Arch,
    release: &str,
    tc: &DistroToolchain,
    wanted: &Wanted,
    bindgen: &Path,
    jobs: usize,
) -> Result<(usize, Vec<String>)> {
    std::fs::create_dir_all(dir.join("include"))?;
    // The package's configuration, as it is.
    let copy = |from: &Path, to: &Path| -> Result<()> {
        let sh = xshell::Shell::new()?;
        crate::process::run(shell, cmd!(sh, "cp -a {from} {to}")).map(drop)
    };
    copy(&headers.join(".config"), dir)?;
    copy(&headers.join("include/config"), &dir.join("include"))?;
    copy(&headers.join("include/generated"), &dir.join("include"))?;
    copy(&headers.join("Module.symvers"), dir)?;
    if headers.join("vmlinux").is_file() {
        // The BTF base of `DEBUG_INFO_BTF_MODULES`.
        copy(&headers.join("vmlinux"), dir)?;
    }
    // kconfig reruns when `.config` is newer than its outputs or `auto.conf.cmd` is missing:
    // an empty one and an older `.config` keep the package's outputs as they are.
    std::fs::write(
        dir.join("include/config/auto.conf.cmd"),
        "# Written by cargo-kmod: the configuration is the headers package's, never re-evaluated.\n",
    )?;
    let old = filetime_epoch(&dir.join(".config"));
    old?;

    let log = dir.join(LOG);
    let vars = make_vars(dir, arch, release, tc, wanted, bindgen);
    let host_differences = reevaluate(shell, srctree, headers, &vars, tc)?;

    let sh = xshell::Shell::new()?;
    let path = format!(
        "{}:{}",
        tc.bin().display(),
        crate::env::Env::get()
            .var("PATH")
            .unwrap_or("/usr/bin:/bin")
    );
    let jobs = format!("-j{jobs}");
    let bar = shell.spinner("Completing", format!("linux-headers-{release} with rust/"));
    let r = crate::process::run_logged(
        shell,
        cmd!(sh, "make -C {srctree} {vars...} {jobs} modules_prepare").env("PATH", &path),
        &log,
        |l| bar.set_message(l.trim().to_string()),
    );
    bar.finish_and_clear();
    r?;
    // (`scripts/target.json` exists only where the arch has no built-in rustc target.)
    for want in [
        "rust/libkernel.rmeta",
        "rust/libmacros.so",
        "scripts/module.lds",
    ] {
        if !dir.join(want).exists() {
            crate::bail_user!(
                "kbuild's `modules_prepare` left no `{}` in `{}`", want, dir.display();
                hint = "see `{}`", log.display()
            );
        }
    }
    if KConfig::read(&dir.join(".config"))? != KConfig::read(&headers.join(".config"))? {
        crate::bail_user!(
            "kbuild changed the package's `.config` in `{}`",
            dir.display()
        );
    }
    let checked = check_symbols(dir)?;
    write_makefile(dir, headers, srctree, arch, tc, wanted)?;
    Ok((checked, host_differences))
}

/// Make `path` older than anything kbuild writes.
fn filetime_epoch(path: &Path) -> Result<()> {
    let f = std::fs::File::options().write(true).open(path)?;
    f.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(946_684_800))?;
    Ok(())
}

/// The `make` variables of every run over this tree.
fn make_vars(
    dir: &Path,
    arch: Arch,
    release: &str,
    tc: &DistroToolchain,
    wanted: &Wanted,
    bindgen: &Path,
) -> Vec<String> {
    let mut vars = vec![
        format!("O={}", dir.display()),
        format!("ARCH={}", arch.kbuild()),
        format!(
            "CROSS_COMPILE={}",
            tc.bin().join(cross_prefix(tc)).display()
        ),
        format!("CC={}", tc.bin().join(&tc.cc).display()),
        format!("PAHOLE={}", tc.bin().join("pahole").display()),
        format!("RUSTC={}", tc.rustc().display()),
        format!("HOSTRUSTC={}", tc.rustc().display()),
        format!("BINDGEN={}", bindgen.display()),
        format!("KERNELRELEASE={release}"),
    ];
    if let Some(compat) = &wanted.compat {
        let path = tc.bin().join(compat);
        vars.push(format!("CROSS_COMPILE_COMPAT={}", path.display()));
        vars.push(format!("CROSS32_COMPILE={}", path.display()));
        if let Some(cc) = wanted.compat_cc() {
            // arm64's vdso32 calls `$(CROSS_COMPILE_COMPAT)gcc`; Debian's has the major suffix.
            vars.push(format!("CC_COMPAT={}", tc.bin().join(cc).display()));
        }
    }
    vars
}

/// `x86_64-linux-gnu-` of `x86_64-linux-gnu-gcc-16`.
fn cross_prefix(tc: &DistroToolchain) -> &str {
    tc.cc.rsplit_once("gcc-").map(|(p, _)| p).unwrap_or("")
}

/// What kconfig would make of the package's `.config` with these compilers, in a scratch
/// tree: symbols that would change are an error naming them, host probes a note.
fn reevaluate(
    shell: &Shell,
    srctree: &Path,
    headers: &Path,
    vars: &[String],
    tc: &DistroToolchain,
) -> Result<Vec<String>> {
    let scratch = tempfile::tempdir().context("cannot create a scratch directory")?;
    std::fs::copy(headers.join(".config"), scratch.path().join(".config"))?;
    let mut vars: Vec<String> = vars
        .iter()
        .filter(|v| !v.starts_with("O="))
        .cloned()
        .collect();
    vars.push(format!("O={}", scratch.path().display()));
    let sh = xshell::Shell::new()?;
    let path = format!(
        "{}:{}",
        tc.bin().display(),
        crate::env::Env::get()
            .var("PATH")
            .unwrap_or("/usr/bin:/bin")
    );
    crate::process::run(
        shell,
        cmd!(sh, "make -s -C {srctree} {vars...} olddefconfig").env("PATH", &path),
    )?;
    let before = KConfig::read(&headers.join(".config"))?;
    let after = KConfig::read(&scratch.path().join(".config"))?;
    let (host, changed) = differences(&before, &after);
    if !changed.is_empty() {
        crate::bail_user!(
            "with Debian's compilers (`{}`, `{}`) kconfig would change the kernel's configuration: {}", tc.cc_version, tc.rustc_version, changed.join(", ");
            hint = "the headers were built with other compilers than their `.config` names; cargo-kmod never alters a distribution kernel's configuration"
        );
    }
    if !host.is_empty() {
        shell.note(format_args!(
            "this machine's user space differs from the kernel's build machine in {} (host probes and the compiler's Debian revision: nothing a module build compiles depends on them; the package's values are kept)",
            host.join(", ")
        ));
    }
    Ok(host)
}

/// Symbols whose values differ, split into host probes and the rest, as `SYMBOL (a -> b)`.
fn differences(before: &KConfig, after: &KConfig) -> (Vec<String>, Vec<String>) {
    let mut host = Vec::new();
    let mut changed = Vec::new();
    let show = |v: Option<&Value>| match v {
        None | Some(Value::No) => "n".to_string(),
        Some(Value::Yes) => "y".to_string(),
        Some(Value::Module) => "m".to_string(),
        Some(Value::Other(s)) => s.clone(),
    };
    let norm = |v: Option<&Value>| v.filter(|v| **v != Value::No).cloned();
    let mut symbols: Vec<&String> = before.values.keys().chain(after.values.keys()).collect();
    symbols.sort();
    symbols.dedup();
    for s in symbols {
        let (a, b) = (before.values.get(s), after.values.get(s));
        if norm(a) == norm(b) {
            continue;
        }
        let line = format!("CONFIG_{s} ({} -> {})", show(a), show(b));
        if HOST_PROBES.contains(&s.as_str())
            || (s == "CC_VERSION_TEXT" && same_release(&show(a), &show(b)))
        {
            host.push(line);
        } else {
            changed.push(line);
        }
    }
    (host, changed)
}

/// Two `CC_VERSION_TEXT`s of one compiler release, built by Debian twice (`gcc-16 (Debian
/// 16.2.0-4) 16.2.0` natively, `(Debian 16.2.0-3)` as the cross compiler): the same program
/// name and upstream version (the last word).
fn same_release(a: &str, b: &str) -> bool {
    fn parts(t: &str) -> (Option<&str>, Option<&str>) {
        let w: Vec<&str> = t.trim_matches('"').split_whitespace().collect();
        (w.first().copied(), w.last().copied())
    }
    parts(a) == parts(b) && parts(a).0.is_some()
}

/// Every Rust symbol the rebuilt crates export (`rust/exports_*_generated.h`) must be in the
/// package's `Module.symvers` by its exact name: the names carry the crates' identity, which
/// only the kernel's own rustc and source reproduce.
fn check_symbols(dir: &Path) -> Result<usize> {
    let symvers = std::fs::read_to_string(dir.join("Module.symvers"))?;
    let known: std::collections::HashSet<&str> = symvers
        .lines()
        .filter_map(|l| l.split('\t').nth(1))
        .collect();
    let mut exported = Vec::new();
    for e in crate::fsutil::sorted_entries(&dir.join("rust"))? {
        let name = e.file_name().to_string_lossy().into_owned();
        if !(name.starts_with("exports_") && name.ends_with("_generated.h")) {
            continue;
        }
        let text = std::fs::read_to_string(e.path())?;
        for l in text.lines() {
            if let Some(sym) = l
                .split_once('(')
                .and_then(|(_, r)| r.split_once(')'))
                .map(|(s, _)| s.trim())
            {
                exported.push(sym.to_string());
            }
        }
    }
    let rust: Vec<&String> = exported.iter().filter(|s| s.starts_with("_R")).collect();
    let missing: Vec<&&String> = rust
        .iter()
        .filter(|s| !known.contains(s.as_str()))
        .collect();
    if rust.is_empty() {
        crate::bail_user!(
            "the rebuilt `rust/` of `{}` exports no Rust symbols",
            dir.display()
        );
    }
    if !missing.is_empty() {
        crate::bail_user!(
            "{} of {} Rust symbols the rebuilt crates export are not in the kernel's `Module.symvers` (first: {}): the rustc or source differs from the kernel's", missing.len(), rust.len(), missing.iter().take(3).map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", ");
            hint = "modules built this way would not load; use the kernel's exact rustc (`CONFIG_RUSTC_VERSION_TEXT`)"
        );
    }
    Ok(exported
        .iter()
        .filter(|s| known.contains(s.as_str()))
        .count())
}

/// The tree's `Makefile` and `.kernelvariables` (which Debian's kernel Makefile includes
/// from the output directory, sub-makes too): `make -C DIR M=...` works by itself, with the
/// kernel's compilers: the package's variables, then the toolchain's `PATH` and rustc.
fn write_makefile(
    dir: &Path,
    headers: &Path,
    srctree: &Path,
    arch: Arch,
    tc: &DistroToolchain,
    wanted: &Wanted,
) -> Result<()> {
    let makefile = format!(
        "# Written by cargo-kmod: a distribution's headers completed with rust/ ({STAMP}).\n\
         export KBUILD_OUTPUT = {dir}\n\
         include {src}/Makefile\n",
        dir = dir.display(),
        src = srctree.display(),
    );
    let mut vars = std::fs::read_to_string(headers.join(".kernelvariables")).unwrap_or_else(|_| {
        format!(
            "override ARCH = {}\noverride CROSS_COMPILE = {}\nCC = {}\n",
            arch.srcarch(),
            cross_prefix(tc),
            tc.cc
        )
    });
    if !vars.ends_with('\n') {
        vars.push('\n');
    }
    // Absolute paths: make 4.3's `$(shell)` (kbuild's `cc-option`) does not see `PATH` as
    // exported here, only recipes do.
    vars.push_str(&format!(
        "# Added by cargo-kmod: the kernel's own compilers.\n\
         export PATH := {bin}:$(PATH)\n\
         override CROSS_COMPILE := {cross}\n\
         override CC := {cc}\n\
         override PAHOLE := {bin}/pahole\n\
         override RUSTC := {rustc}\n\
         override HOSTRUSTC := {rustc}\n",
        bin = tc.bin().display(),
        cross = tc.bin().join(cross_prefix(tc)).display(),
        cc = tc.bin().join(&tc.cc).display(),
        rustc = tc.rustc().display(),
    ));
    if let Some(compat) = &wanted.compat {
        let path = tc.bin().join(compat);
        vars.push_str(&format!(
            "override CROSS_COMPILE_COMPAT := {p}\noverride CROSS32_COMPILE := {p}\n",
            p = path.display()
        ));
        if let Some(cc) = wanted.compat_cc() {
            vars.push_str(&format!(
                "override CC_COMPAT := {}\n",
                tc.bin().join(cc).display()
            ));
        }
    }
    crate::fsutil::write_atomic_all(&[
        (&dir.join("Makefile"), makefile.as_bytes()),
        (&dir.join(".kernelvariables"), vars.as_bytes()),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_probes_are_told_apart_from_changes() {
        let a = KConfig::parse("CONFIG_CC_CAN_LINK=y\nCONFIG_X=y\nCONFIG_GCC_VERSION=160200\n");
        let b = KConfig::parse("# CONFIG_X is not set\nCONFIG_GCC_VERSION=120200\n");
        let (host, changed) = differences(&a, &b);
        assert_eq!(host, ["CONFIG_CC_CAN_LINK (y -> n)"]);
        assert_eq!(
            changed,
            ["CONFIG_GCC_VERSION (160200 -> 120200)", "CONFIG_X (y -> n)"]
        );
        assert_eq!(differences(&a, &a), (vec![], vec![]));
        // The same GCC release built twice by Debian (native and cross) is not a change.
        let native = KConfig::parse(
            "CONFIG_CC_VERSION_TEXT=\"aarch64-linux-gnu-gcc-16 (Debian 16.2.0-4) 16.2.0\"\n",
        );
        let cross = KConfig::parse(
            "CONFIG_CC_VERSION_TEXT=\"aarch64-linux-gnu-gcc-16 (Debian 16.2.0-3) 16.2.0\"\n",
        );
        let other = KConfig::parse(
            "CONFIG_CC_VERSION_TEXT=\"aarch64-linux-gnu-gcc-16 (Debian 16.1.0-1) 16.1.0\"\n",
        );
        assert_eq!(differences(&native, &cross).1, Vec::<String>::new());
        assert_eq!(differences(&native, &other).1.len(), 1);
    }

    /// Rebuilt crates whose symbols Debian's `Module.symvers` lacks (another rustc mangles
    /// them with another crate hash) are refused, naming the first ones.
    #[test]
    fn symbols_missing_from_module_symvers_refuse_the_completion() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("rust")).unwrap();
        std::fs::write(
            dir.path().join("rust/exports_kernel_generated.h"),
            "EXPORT_SYMBOL_RUST_GPL(_RNvCsdJ13ReMSUMg_6kernel5hello);\nEXPORT_SYMBOL_RUST_GPL(_RNvCs1234567890a_6kernel5world);\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("Module.symvers"),
            "0x00000000\t_RNvCsdJ13ReMSUMg_6kernel5hello\tvmlinux\tEXPORT_SYMBOL_GPL\t\n",
        )
        .unwrap();
        let e = check_symbols(dir.path()).unwrap_err().to_string();
        assert!(e.starts_with("1 of 2 Rust symbols"), "{e}");
        assert!(e.contains("`_RNvCs1234567890a_6kernel5world`"), "{e}");
        std::fs::write(
            dir.path().join("rust/exports_kernel_generated.h"),
            "EXPORT_SYMBOL_RUST_GPL(_RNvCsdJ13ReMSUMg_6kernel5hello);\n",
        )
        .unwrap();
        assert_eq!(check_symbols(dir.path()).unwrap(), 1);
    }
}
