//! `cargo kmod kit`: what a board and the machines that build its modules need, exported
//! from a prepared tree.
//!
//! ```text
//! OUT/
//!   boot/vmlinuz-<release>             the kernel image (arm64 `Image`, x86_64 `bzImage`)
//!   boot/config-<release>              its `.config`
//!   boot/System.map-<release>
//!   boot/dtbs/<release>/...            `make dtbs_install` (boards with a device tree)
//!   lib/modules/<release>/             `make modules_install`: in-tree modules signed and
//!                                      compressed as the tree's config says, depmod run
//!   linux-headers-<release>.tar.gz     a headers package with the Rust artifacts: unpack
//!   linux-headers-<release>_<v>_amd64.deb  it anywhere and pass it as `--kdir`
//! ```
//!
//! The headers are what the kernel's own `scripts/package/install-extmod-build` puts in a
//! `linux-headers-*` package (headers, `scripts/` host programs, `Module.symvers`, generated
//! config) plus what it leaves out and Rust modules need: `rust/*.rmeta` and the proc-macro
//! `rust/*.so` files, `.config`, and the module-signing certificate (never the private key).
//! The host programs are those of the machine that built the tree (x86_64 here), so the
//! package is for x86_64 build machines (`Architecture: amd64`), whatever the board's arch.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;
use xshell::cmd;

use crate::error::UserError;
use crate::kernel::toolchain::Toolchain;
use crate::kernel::{Arch, KernelTree};
use crate::shell::Shell;
use crate::ship::package::{ar, deb_arch, deb_name, source_date_epoch};

/// What `export` wrote.
#[derive(Debug, Clone, Serialize)]
pub struct Kit {
    pub dir: PathBuf,
    pub release: String,
    pub arch: Arch,
    pub image: PathBuf,
    /// `boot/dtbs/<release>/...` files.
    pub dtbs: Vec<PathBuf>,
    /// `lib/modules/<release>/`.
    pub modules: PathBuf,
    /// The in-tree modules installed there (`kernel/...ko[.xz]`).
    pub module_files: Vec<String>,
    pub headers_tar: PathBuf,
    pub headers_deb: PathBuf,
}

/// The directory name of the headers in the tarball (`linux-headers-7.2.13`), which is also
/// `usr/src/<name>` in the `.deb`.
pub fn headers_name(release: &str) -> String {
    format!("linux-headers-{release}")
}

/// Export the kit of `tree` into `out` (created if missing; what a previous kit left there is
/// replaced). Everything is staged in a temporary directory inside `out` and moved into
/// place at the end, so an interrupted export leaves the previous kit or nothing.
pub fn export(shell: &Shell, tree: &KernelTree, tc: &Toolchain, out: &Path) -> Result<Kit> {
    // Before anything is written: a malformed value is an error, not a silent 0.
    source_date_epoch()?;
    let release = tree.release.clone();
    check_release(&release)?;
    let script = check_exportable(tree)?;
    std::fs::create_dir_all(out).map_err(|e| {
        UserError::new(format!(
            "cannot create `{}`: {}",
            out.display(),
            crate::ko::io_reason(&e)
        ))
    })?;
    let stage = tempfile::Builder::new()
        .prefix(".kit-")
        .tempdir_in(out)
        .with_context(|| format!("cannot create a staging directory in `{}`", out.display()))?;
    let st = stage.path();
    let sh = xshell::Shell::new()?;
    for (k, v) in tc.kbuild_env() {
        sh.set_var(k, v);
    }

    let dtbs = stage_boot(shell, &sh, tree, st)?;
    let module_files = stage_modules(shell, &sh, tree, st)?;
    let headers = stage_headers(shell, &sh, tree, &script, st)?;
    let name = headers_name(&release);
    let tar = tar_dir(&headers, &format!("{name}/"), &[])?;
    let tar_name = format!("{name}.tar.gz");
    write_output(&st.join(&tar_name), &gzip(&tar)?)?;
    let deb_file = write_headers_deb(&headers, &release, tree.arch, st)?;

    std::fs::remove_dir_all(headers.parent().expect("headers/<name>"))?;
    move_into_place(st, out)?;
    let rebase = |p: PathBuf| out.join(p.strip_prefix(st).unwrap_or(&p));
    Ok(Kit {
        dir: out.to_path_buf(),
        release: release.clone(),
        arch: tree.arch,
        image: out.join("boot").join(format!("vmlinuz-{release}")),
        dtbs: dtbs.into_iter().map(rebase).collect(),
        modules: out.join("lib/modules").join(&release),
        module_files,
        headers_tar: out.join(tar_name),
        headers_deb: out.join(deb_file),
    })
}

/// The kit of a completed distribution kernel ([`crate::kernel::distro::complete`]): what a
/// build machine of the kernel's arch needs besides the distribution's own headers package,
/// `linux-headers-<release>-rust_<version>_<arch>.deb` (and the same files as a tarball). It
/// installs the completion's `rust/*.rmeta` and proc macros into
/// `/usr/src/linux-headers-<release>/rust/` and, where the arch has one, the Rust target spec
/// into the `scripts/` Debian's headers link to (`/usr/lib/linux-kbuild-<abi>/scripts/`), so
/// that plain `make -C /lib/modules/<release>/build M=...` (and DKMS) builds Rust modules with
/// the distribution's rustc of the kernel's version, on which it depends. The proc macros are
/// programs of this machine: the package is for build machines of its arch, so it is made
/// only when the kernel's arch is this machine's.
pub fn export_completion(
    completion: &crate::kernel::distro::complete::Completion,
    out: &Path,
) -> Result<Kit> {
    source_date_epoch()?;
    let release = completion.release.clone();
    check_release(&release)?;
    if completion.arch != Arch::host() {
        crate::bail_user!(
            "the Rust headers package of {} would carry proc macros for this {} machine, which a {} machine cannot run", release, Arch::host(), completion.arch;
            hint = "make it on a {} build machine (`cargo kmod init --distro-kernel debian:{}` there, then `cargo kmod kit`); from here, build with `--target` against the completion", completion.arch, release
        );
    }
    let dk =
        crate::kernel::distro::DistroKernel::parse(&format!("debian:{release}"), "the release")?;
    let dir = &completion.dir;
    std::fs::create_dir_all(out).map_err(|e| {
        UserError::new(format!(
            "cannot create `{}`: {}",
            out.display(),
            crate::ko::io_reason(&e)
        ))
    })?;
    let stage = tempfile::Builder::new()
        .prefix(".kit-")
        .tempdir_in(out)
        .with_context(|| format!("cannot create a staging directory in `{}`", out.display()))?;
    let st = stage.path();
    let root = st.join("root");
    let rust = root.join(format!("usr/src/linux-headers-{release}/rust"));
    for f in rust_artifacts(dir)? {
        copy(&dir.join(&f), &rust.join(f.trim_start_matches("rust/")))?;
    }
    let target = dir.join("scripts/target.json");
    if target.is_file() {
        copy(
            &target,
            &root.join(format!(
                "usr/lib/linux-kbuild-{}/scripts/target.json",
                dk.abi
            )),
        )?;
    }
    let name = format!("linux-headers-{release}-rust");
    let tar_name = format!("{name}.tar.gz");
    write_output(&st.join(&tar_name), &gzip(&tar_dir(&root, "", &[])?)?)?;
    // The package's version: recorded by the completion, or read from where its headers
    // were unpacked (`packages/linux-headers-<release>_<version>_<arch>/`).
    let version = completion.headers_version.clone().or_else(|| {
        completion.headers.ancestors().find_map(|a| {
            let n = a.file_name()?.to_str()?;
            let rest = n.strip_prefix(&format!("linux-headers-{release}_"))?;
            Some(rest.rsplit_once('_')?.0.replace("%3a", ":"))
        })
    });
    let Some(version) = version else {
        crate::bail_user!(
            "the version of the headers at `{}` is unknown, and the Rust headers package must depend on exactly it", completion.headers.display();
            hint = "complete them by name (`cargo kmod init --distro-kernel debian:{}`)", release
        );
    };
    let rustc = rustc_package(&completion.rustc);
    let mut depends = format!("linux-headers-{release} (= {version})");
    if let Some(v) = &rustc {
        depends.push_str(&format!(", rustc (= {v})"));
    }
    let data = tar_dir(&root, "", &[])?;
    let arch = deb_arch(completion.arch);
    let control = format!(
        "Package: {name}\nVersion: {version}\nArchitecture: {arch}\nMaintainer: cargo-kmod <cargo-kmod@localhost>\n\
         Installed-Size: {}\nDepends: {depends}\nSection: kernel\nPriority: optional\n\
         Description: Rust artifacts for building modules against linux-headers-{release}\n \
         The rust/ metadata and proc macros (and target spec) that Debian's headers package\n \
         lacks, built by `cargo kmod init --distro-kernel debian:{release}` from the kernel's\n \
         own source, configuration and rustc, with every exported Rust symbol checked against\n \
         its Module.symvers. Build Rust modules with `make -C /lib/modules/{release}/build M=...`.\n",
        data.len().div_ceil(1024),
    );
    let mut ctl = tar::Builder::new(Vec::new());
    let mut h = fixed_header(tar::EntryType::Regular, 0o644, control.len() as u64);
    ctl.append_data(&mut h, "control", control.as_bytes())?;
    let members: [(&str, Vec<u8>); 3] = [
        ("debian-binary", b"2.0\n".to_vec()),
        ("control.tar.gz", gzip(&ctl.into_inner()?)?),
        ("data.tar.gz", gzip(&data)?),
    ];
    let deb_file = format!(
        "{}_{}_{arch}.deb",
        deb_name(&name),
        version.replace(':', "%3a")
    );
    write_output(&st.join(&deb_file), &ar(&members)?)?;
    std::fs::remove_dir_all(&root)?;
    move_into_place(st, out)?;
    Ok(Kit {
        dir: out.to_path_buf(),
        release: release.clone(),
        arch: completion.arch,
        image: completion.image.clone().unwrap_or_default(),
        dtbs: Vec::new(),
        modules: completion.modules.clone().unwrap_or_default(),
        module_files: Vec::new(),
        headers_tar: out.join(tar_name),
        headers_deb: out.join(deb_file),
    })
}

/// The Debian version of the `rustc` package whose wrapper `rustc` is (from its toolchain's
/// stamp), when it is Debian's.
fn rustc_package(rustc: &Path) -> Option<String> {
    let tc = crate::kernel::distro::toolchain::read(rustc.parent()?.parent()?)?;
    tc.packages.iter().find_map(|p| {
        let mut w = p.split(' ');
        (w.next() == Some("rustc")).then(|| w.next().map(str::to_string))?
    })
}

/// Refuse a tree a kit cannot come from (not built, or a source before 6.5). Returns the
/// source's `install-extmod-build` script.
fn check_exportable(tree: &KernelTree) -> Result<PathBuf> {
    for (what, path) in [
        ("the kernel image", tree.image()),
        ("`Module.symvers`", tree.dir.join("Module.symvers")),
        ("`System.map`", tree.dir.join("System.map")),
    ] {
        if !path.is_file() {
            crate::bail_user!(
                "kernel tree `{}` has no {} (`{}`): a kit is exported from a built tree", tree.dir.display(), what, path.display();
                hint = "pass the build tree (`cargo kmod init` prepares one), not a headers package"
            );
        }
    }
    let script = tree.srctree.join("scripts/package/install-extmod-build");
    if !script.is_file() {
        crate::bail_user!(
            "the kernel source `{}` has no `scripts/package/install-extmod-build`", tree.srctree.display();
            hint = "kits are exported from Linux 6.5 or newer"
        );
    }
    Ok(script)
}

/// Stage `boot/`: the kernel, its config and symbol map as `make install` names them, and
/// the DTBs when the tree builds any. Returns the staged DTB files.
fn stage_boot(
    shell: &Shell,
    sh: &xshell::Shell,
    tree: &KernelTree,
    st: &Path,
) -> Result<Vec<PathBuf>> {
    let release = &tree.release;
    let kdir = &tree.dir;
    let args = &tree.make_args();
    shell.status(
        "Exporting",
        format_args!("linux {release} ({}) from `{}`", tree.arch, kdir.display()),
    );
    let boot = st.join("boot");
    std::fs::create_dir_all(&boot)?;
    copy(&tree.image(), &boot.join(format!("vmlinuz-{release}")))?;
    copy(
        &kdir.join(".config"),
        &boot.join(format!("config-{release}")),
    )?;
    copy(
        &kdir.join("System.map"),
        &boot.join(format!("System.map-{release}")),
    )?;

    let dts = crate::kernel::board::dts_dir(kdir, tree.arch);
    let mut dtbs = Vec::new();
    if has_file_with_ext(&dts, "dtb") {
        let to = format!(
            "INSTALL_DTBS_PATH={}",
            boot.join("dtbs").join(release).display()
        );
        crate::process::run(
            shell,
            cmd!(sh, "make -s -C {kdir} {args...} dtbs_install {to}"),
        )
        .context("`make dtbs_install` failed")?;
        collect_files(&boot.join("dtbs"), &mut dtbs)?;
        dtbs.sort();
    }
    Ok(dtbs)
}

/// Stage `lib/modules/<release>/` the way the kernel installs modules (signing and
/// compression per its config). Returns the in-tree module files, relative to it.
fn stage_modules(
    shell: &Shell,
    sh: &xshell::Shell,
    tree: &KernelTree,
    st: &Path,
) -> Result<Vec<String>> {
    let kdir = &tree.dir;
    let args = &tree.make_args();
    let mod_path = format!("INSTALL_MOD_PATH={}", st.display());
    crate::process::run(
        shell,
        cmd!(sh, "make -s -C {kdir} {args...} modules_install {mod_path}"),
    )
    .context("`make modules_install` failed")?;
    let modlib = st.join("lib/modules").join(&tree.release);
    // `modules_install` links `build` to this machine's tree; on the board it is the
    // headers' place, as Debian's kernel packages have it.
    let build_link = modlib.join("build");
    let _ = std::fs::remove_file(&build_link);
    std::os::unix::fs::symlink(
        format!("/usr/src/{}", headers_name(&tree.release)),
        &build_link,
    )
    .with_context(|| format!("cannot create `{}`", build_link.display()))?;
    let mut module_files = Vec::new();
    collect_files(&modlib.join("kernel"), &mut module_files)?;
    Ok(module_files
        .iter()
        .filter_map(|p| p.strip_prefix(&modlib).ok())
        .map(|p| p.display().to_string())
        .collect())
}

/// Stage the headers in `headers/<name>/`: the kernel's own selection (`script`), plus what
/// Rust modules need. Returns that directory.
fn stage_headers(
    shell: &Shell,
    sh: &xshell::Shell,
    tree: &KernelTree,
    script: &Path,
    st: &Path,
) -> Result<PathBuf> {
    let kdir = &tree.dir;
    let name = headers_name(&tree.release);
    let headers = st.join("headers").join(&name);
    std::fs::create_dir_all(&headers)?;
    shell.status(
        "Packaging",
        format_args!("`{name}` (headers with the Rust artifacts)"),
    );
    let cc = "cc";
    let srctree = tree.srctree.display().to_string();
    let srcarch = tree.arch.srcarch();
    {
        // The script reads kbuild's variables from its environment; CC = HOSTCC keeps the
        // host programs it copies as they are (built for this machine).
        let _env = [
            sh.push_env("srctree", &srctree),
            sh.push_env("SRCARCH", srcarch),
            sh.push_env("CC", cc),
            sh.push_env("HOSTCC", cc),
            sh.push_env("MAKE", "make"),
        ];
        let _dir = sh.push_dir(kdir);
        crate::process::run(shell, cmd!(sh, "sh {script} {headers}"))
            .context("`scripts/package/install-extmod-build` failed")?;
    }
    let rust_files = rust_artifacts(kdir)?;
    for extra in rust_files.iter().map(String::as_str).chain([
        ".config",
        "rust/helpers/helpers_module.bc",
        "certs/signing_key.x509",
    ]) {
        let from = kdir.join(extra);
        if from.is_file() {
            copy(&from, &headers.join(extra))?;
        }
    }
    // Nothing in the headers may point back into this machine's tree.
    reject_links_to(&headers, kdir)?;
    Ok(headers)
}

/// The tree's `rust/*.rmeta` and `rust/*.so`, sorted; refused without `libkernel.rmeta`.
fn rust_artifacts(kdir: &Path) -> Result<Vec<String>> {
    let rust_dir = kdir.join("rust");
    let mut rust_files = Vec::new();
    for e in std::fs::read_dir(&rust_dir)
        .with_context(|| format!("cannot read `{}`", rust_dir.display()))?
        .flatten()
    {
        let n = e.file_name().to_string_lossy().into_owned();
        if n.ends_with(".rmeta") || n.ends_with(".so") {
            rust_files.push(format!("rust/{n}"));
        }
    }
    if !rust_files.iter().any(|f| f == "rust/libkernel.rmeta") {
        crate::bail_user!(
            "kernel tree `{}` has no `rust/libkernel.rmeta`: it was not built with Rust", kdir.display();
            hint = "prepare a Rust tree with `cargo kmod init`"
        );
    }
    rust_files.sort();
    Ok(rust_files)
}

/// Move the staged kit into place, replacing what a previous kit left in `out`.
fn move_into_place(st: &Path, out: &Path) -> Result<()> {
    for entry in std::fs::read_dir(st)?.flatten() {
        let to = out.join(entry.file_name());
        if to.is_dir() && !to.is_symlink() {
            std::fs::remove_dir_all(&to)
                .with_context(|| format!("cannot replace `{}`", to.display()))?;
        }
        std::fs::rename(entry.path(), &to)
            .with_context(|| format!("cannot move the kit into `{}`", to.display()))?;
    }
    Ok(())
}

/// A release becomes file and package names: refuse anything but kbuild's characters.
fn check_release(release: &str) -> Result<()> {
    if release.is_empty()
        || release.starts_with('.')
        || !release
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._+-~".contains(c))
    {
        crate::bail_user!(
            "kernel release `{}` cannot name a kit (it must be `[A-Za-z0-9._+~-]`)",
            release.escape_debug()
        );
    }
    Ok(())
}

fn copy(from: &Path, to: &Path) -> Result<()> {
    if let Some(p) = to.parent() {
        std::fs::create_dir_all(p).with_context(|| format!("cannot create `{}`", p.display()))?;
    }
    std::fs::copy(from, to)
        .with_context(|| format!("cannot copy `{}` to `{}`", from.display(), to.display()))?;
    Ok(())
}

fn write_output(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, bytes).with_context(|| format!("cannot write `{}`", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))
        .with_context(|| format!("cannot set permissions of `{}`", path.display()))
}

fn has_file_with_ext(dir: &Path, ext: &str) -> bool {
    let mut files = Vec::new();
    let _ = collect_files(dir, &mut files);
    files
        .iter()
        .any(|f| f.extension().is_some_and(|e| e == ext))
}

/// Every regular file below `dir` (none when it does not exist).
fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for e in entries.flatten() {
        let ft = e.file_type()?;
        if ft.is_dir() {
            collect_files(&e.path(), out)?;
        } else if ft.is_file() {
            out.push(e.path());
        }
    }
    Ok(())
}

/// Fail when a symlink in `dir` points into `tree` (the kit must stand alone).
fn reject_links_to(dir: &Path, tree: &Path) -> Result<()> {
    for e in std::fs::read_dir(dir)?.flatten() {
        let ft = e.file_type()?;
        if ft.is_symlink() {
            let target = std::fs::read_link(e.path())?;
            if target.is_absolute() && target.starts_with(tree) {
                crate::bail_user!(
                    "`{}` in the headers points into the build tree (`{}`)",
                    e.path().display(),
                    target.display()
                );
            }
        } else if ft.is_dir() {
            reject_links_to(&e.path(), tree)?;
        }
    }
    Ok(())
}

/// gzip without name or timestamp, at the default level (the headers are tens of MiB).
fn gzip(data: &[u8]) -> Result<Vec<u8>> {
    use std::io::Write;
    let mut enc = flate2::GzBuilder::new()
        .mtime(0)
        .operating_system(3)
        .write(Vec::new(), flate2::Compression::default());
    enc.write_all(data)?;
    Ok(enc.finish()?)
}

/// A reproducible tar of `dir` (sorted, owner root, mtime `SOURCE_DATE_EPOCH`, modes 0755
/// for executables and directories, 0644 otherwise, symlinks kept) with every name under
/// `prefix`; `links` adds symlinks `(name, target)`.
pub fn tar_dir(dir: &Path, prefix: &str, links: &[(&str, &str)]) -> Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    b.mode(tar::HeaderMode::Deterministic);
    let header = fixed_header;
    // Parent directories of the prefix first.
    let mut parents = String::new();
    for part in prefix.split('/').filter(|p| !p.is_empty()) {
        parents.push_str(part);
        parents.push('/');
        let mut h = header(tar::EntryType::Directory, 0o755, 0);
        b.append_data(&mut h, &parents, std::io::empty())?;
    }
    fn walk(
        dir: &Path,
        rel: &str,
        out: &mut Vec<(String, std::fs::FileType, PathBuf)>,
    ) -> Result<()> {
        let entries = crate::fsutil::sorted_entries(dir)?;
        for e in entries {
            let name = format!("{rel}{}", e.file_name().to_string_lossy());
            let ft = e.file_type()?;
            out.push((name.clone(), ft, e.path()));
            if ft.is_dir() {
                walk(&e.path(), &format!("{name}/"), out)?;
            }
        }
        Ok(())
    }
    let mut entries = Vec::new();
    walk(dir, "", &mut entries)?;
    for (rel, ft, path) in entries {
        let name = format!("{prefix}{rel}");
        if ft.is_symlink() {
            let target = std::fs::read_link(&path)?;
            let mut h = header(tar::EntryType::Symlink, 0o777, 0);
            b.append_link(&mut h, &name, &target)?;
        } else if ft.is_dir() {
            let mut h = header(tar::EntryType::Directory, 0o755, 0);
            b.append_data(&mut h, format!("{name}/"), std::io::empty())?;
        } else if ft.is_file() {
            use std::os::unix::fs::PermissionsExt;
            let meta = std::fs::metadata(&path)?;
            let mode = if meta.permissions().mode() & 0o111 != 0 {
                0o755
            } else {
                0o644
            };
            let bytes = std::fs::read(&path)
                .with_context(|| format!("cannot read `{}`", path.display()))?;
            let mut h = header(tar::EntryType::Regular, mode, bytes.len() as u64);
            b.append_data(&mut h, &name, &bytes[..])?;
        }
    }
    for (name, target) in links {
        let mut h = header(tar::EntryType::Symlink, 0o777, 0);
        b.append_link(&mut h, format!("{prefix}{name}"), target)?;
    }
    Ok(b.into_inner()?)
}

/// `linux-headers-<release>_<release>_amd64.deb`: `usr/src/linux-headers-<release>/` and the
/// `lib/modules/<release>/build` link to it, as Debian's headers packages lay it out.
fn write_headers_deb(headers: &Path, release: &str, arch: Arch, out: &Path) -> Result<String> {
    let name = headers_name(release);
    let pkg = deb_name(&name);
    let version = if release.starts_with(|c: char| c.is_ascii_digit()) {
        release.to_string()
    } else {
        format!("0~{release}")
    };
    let host = deb_arch(Arch::host());
    let data = tar_dir(headers, &format!("usr/src/{name}/"), &[])?;
    let data = append_link(
        data,
        &format!("lib/modules/{release}/build"),
        &format!("/usr/src/{name}"),
    )?;
    let installed_kb = data.len().div_ceil(1024);
    let control = format!(
        "Package: {pkg}\nVersion: {version}\nArchitecture: {host}\nMaintainer: cargo-kmod <cargo-kmod@localhost>\n\
         Installed-Size: {installed_kb}\nSection: kernel\nPriority: optional\n\
         Description: Linux {release} headers for building {arch} modules, with Rust\n \
         The kbuild files, generated headers, Module.symvers and {host} host programs of a\n \
         Linux {release} {arch} kernel tree, plus its Rust crate metadata (rust/*.rmeta) and\n \
         proc macros (rust/*.so), exported by `cargo kmod kit`. Build modules with\n \
         `cargo kmod build --kdir /usr/src/{name}`.\n",
    );
    let mut ctl = tar::Builder::new(Vec::new());
    let mut h = fixed_header(tar::EntryType::Regular, 0o644, control.len() as u64);
    ctl.append_data(&mut h, "control", control.as_bytes())?;
    let members: [(&str, Vec<u8>); 3] = [
        ("debian-binary", b"2.0\n".to_vec()),
        ("control.tar.gz", gzip(&ctl.into_inner()?)?),
        ("data.tar.gz", gzip(&data)?),
    ];
    let file = format!("{pkg}_{version}_{host}.deb");
    write_output(&out.join(&file), &ar(&members)?)?;
    Ok(file)
}

/// A tar header with kit's fixed metadata (root-owned, `SOURCE_DATE_EPOCH`).
fn fixed_header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    // `export` refused a malformed value before it wrote anything.
    h.set_mtime(source_date_epoch().unwrap_or_default());
    h.set_uid(0);
    h.set_gid(0);
    let _ = h.set_username("root");
    let _ = h.set_groupname("root");
    h
}

/// Add parent directories and a symlink to a finished tar stream (before its end marker).
fn append_link(tar: Vec<u8>, name: &str, target: &str) -> Result<Vec<u8>> {
    // A tar stream ends with two 512-byte zero blocks; the builder writes them on finish.
    let mut body = tar;
    while body.len() >= 512 && body[body.len() - 512..].iter().all(|b| *b == 0) {
        body.truncate(body.len() - 512);
    }
    let mut b = tar::Builder::new(body);
    let mut dirs = String::new();
    let parts: Vec<&str> = name.split('/').collect();
    for part in &parts[..parts.len() - 1] {
        dirs.push_str(part);
        dirs.push('/');
        let mut h = fixed_header(tar::EntryType::Directory, 0o755, 0);
        b.append_data(&mut h, &dirs, std::io::empty())?;
    }
    let mut h = fixed_header(tar::EntryType::Symlink, 0o777, 0);
    b.append_link(&mut h, name, target)?;
    Ok(b.into_inner()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tar_is_sorted_reproducible_and_keeps_links_and_modes() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("scripts/mod")).unwrap();
        std::fs::write(d.path().join("scripts/mod/modpost"), "elf").unwrap();
        std::fs::set_permissions(
            d.path().join("scripts/mod/modpost"),
            std::fs::Permissions::from_mode(0o700),
        )
        .unwrap();
        std::fs::write(d.path().join("Makefile"), "x").unwrap();
        std::os::unix::fs::symlink("Makefile", d.path().join("link")).unwrap();
        let a = tar_dir(d.path(), "linux-headers-7.2.13/", &[]).unwrap();
        assert_eq!(a, tar_dir(d.path(), "linux-headers-7.2.13/", &[]).unwrap());
        let a = append_link(
            a,
            "lib/modules/7.2.13/build",
            "/usr/src/linux-headers-7.2.13",
        )
        .unwrap();
        let mut ar = tar::Archive::new(&a[..]);
        let entries: Vec<(String, u32, Option<String>)> = ar
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.path().unwrap().display().to_string(),
                    e.header().mode().unwrap(),
                    e.link_name().unwrap().map(|l| l.display().to_string()),
                )
            })
            .collect();
        let names: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "linux-headers-7.2.13/",
                "linux-headers-7.2.13/Makefile",
                "linux-headers-7.2.13/link",
                "linux-headers-7.2.13/scripts/",
                "linux-headers-7.2.13/scripts/mod/",
                "linux-headers-7.2.13/scripts/mod/modpost",
                "lib/",
                "lib/modules/",
                "lib/modules/7.2.13/",
                "lib/modules/7.2.13/build",
            ]
        );
        assert_eq!(entries[5].1, 0o755);
        assert_eq!(entries[1].1, 0o644);
        assert_eq!(entries[2].2.as_deref(), Some("Makefile"));
        assert_eq!(
            entries[9].2.as_deref(),
            Some("/usr/src/linux-headers-7.2.13")
        );
    }

    #[test]
    fn releases_that_cannot_name_files_are_refused() {
        assert!(check_release("7.2.13-v8+").is_ok());
        for bad in ["", "../x", "7.2/evil", "7.2\nx", ".hidden"] {
            assert!(check_release(bad).is_err(), "{bad:?}");
        }
    }
}
