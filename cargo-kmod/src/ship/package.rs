//! Packages: a tarball (default), a Debian package, or a DKMS source tree.
//!
//! Every archive is reproducible: entries in sorted order, directories listed explicitly,
//! owner `root:root` (0:0), modes 0644/0755, every mtime set to `SOURCE_DATE_EPOCH` (or 0),
//! and the gzip streams carry no name or timestamp. The same inputs give the same bytes.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;
use serde_json::json;

use crate::kernel::{Arch, KernelTree};
use crate::ko::KoFile;
use crate::ship::{module_dir, names, Prepared};
use crate::text::escape;

/// `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    #[default]
    Tar,
    Deb,
    Dkms,
}

/// What a package is about.
#[derive(Debug, Clone)]
pub struct PackageSpec {
    pub name: String,
    pub version: String,
    pub description: String,
    pub maintainer: String,
    pub release: String,
    pub arch: Arch,
    /// `INSTALL_MOD_DIR`: `updates` by default.
    pub dir: String,
    pub modules: Vec<Prepared>,
    /// For a distribution's kernel: the package that owns its `/usr/lib/modules/<release>`
    /// (Debian's `linux-modules-<release>`), which the `.deb` depends on and installs beside,
    /// under `usr/lib/modules` as the distribution's own packages do.
    pub distro_modules_package: Option<String>,
}

impl PackageSpec {
    /// `lib/modules/<release>/<dir>`, or `usr/lib/modules/...` for a distribution's kernel.
    pub fn module_dir(&self) -> String {
        let d = module_dir(&self.release, &self.dir);
        match self.distro_modules_package {
            Some(_) => format!("usr/{d}"),
            None => d,
        }
    }
}

/// Where a package's name and version come from, most specific first: the flags, then the
/// cargo package that was just built, then the first module's `.modinfo`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SpecSource<'a> {
    /// `--name`.
    pub name: Option<&'a str>,
    /// `--pkg-version`.
    pub version: Option<&'a str>,
    /// The cargo package built for this run: (name, version).
    pub built: Option<(&'a str, &'a str)>,
}

impl PackageSpec {
    /// Choose and check the package's strings, before any module is prepared (`modules` is
    /// left empty for the caller to fill). Identifiers (package name and version, the
    /// release, `--dir`) are refused when they could be anything but one word; the author and
    /// description are free text, made safe for a Debian `control` field (see
    /// [`crate::ship::names`]). Errors name the flag or the `.modinfo` key and file.
    pub fn new(
        source: SpecSource<'_>,
        first: &KoFile,
        tree: &KernelTree,
        dir: &str,
    ) -> Result<PackageSpec> {
        let m = &first.module;
        let modinfo = |key: &str| format!("`.modinfo` `{key}=` of `{}`", first.path.display());
        let name = match (source.name, source.built) {
            (Some(n), _) => {
                names::package_name(n, "`--name`")?;
                n.to_string()
            }
            (None, Some((n, _))) => {
                names::package_name(n, &format!("the name of cargo package `{}`", escape(n)))?;
                n.to_string()
            }
            (None, None) => {
                names::module_name(first)?;
                m.name.replace('_', "-")
            }
        };
        let version = match (source.version, source.built, m.field("version")) {
            (Some(v), _, _) => {
                names::package_version(v, "`--pkg-version`")?;
                v.to_string()
            }
            (None, Some((n, v)), _) => {
                names::package_version(
                    v,
                    &format!("the version of cargo package `{}`", escape(n)),
                )?;
                v.to_string()
            }
            (None, None, Some(v)) => {
                names::package_version(v, &modinfo("version"))?;
                v.to_string()
            }
            (None, None, None) => "0.0.0".into(),
        };
        let spec = PackageSpec {
            name,
            version,
            description: m
                .field("description")
                .and_then(names::control_text)
                .unwrap_or_else(|| "Linux kernel module".into()),
            maintainer: m
                .field("author")
                .and_then(names::control_text)
                .unwrap_or_else(|| "cargo-kmod".into()),
            release: tree.release.clone(),
            arch: tree.arch,
            dir: dir.to_string(),
            modules: vec![],
            distro_modules_package: crate::kernel::distro::complete::is_completion(&tree.dir)
                .then(|| format!("linux-modules-{}", tree.release)),
        };
        names::release(
            &spec.release,
            &format!("the kernel release of `{}`", tree.dir.display()),
        )?;
        spec.check()?;
        Ok(spec)
    }

    /// Every string a package is built from is safe for file names, paths, the shell
    /// (`dkms.conf`, `postinst`) and Debian `control` fields. The writers call this before
    /// they write anything, whoever built the spec.
    pub fn check(&self) -> Result<()> {
        names::package_name(&self.name, "the package name")?;
        names::package_version(&self.version, "the package version")?;
        names::install_dir(&self.dir)?;
        names::release(&self.release, "the kernel release")?;
        for m in &self.modules {
            let ok = !m.module.is_empty()
                && m.module
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_')
                && m.file_name.starts_with(&format!("{}.ko", m.module))
                && !m.file_name.contains('/');
            if !ok {
                crate::bail_user!(
                    "module `{}` (file `{}`) is not a kernel module name",
                    escape(&m.module),
                    escape(&m.file_name)
                );
            }
        }
        for (what, text) in [
            ("description", &self.description),
            ("maintainer", &self.maintainer),
        ] {
            if names::control_text(text).as_deref() != Some(text.as_str()) {
                crate::bail_user!(
                    "the package {what} `{}` is not one line of text",
                    escape(text)
                );
            }
        }
        Ok(())
    }
}

/// `SOURCE_DATE_EPOCH` (0 when unset or empty): the mtime of every archive entry. A value
/// that is not what `date +%s` prints for a date an archive can hold (decimal digits, at
/// most 12: the `ar` header's field) is an error, as the reproducible-builds specification
/// asks (<https://reproducible-builds.org/specs/source-date-epoch/>), never a silent 0.
pub fn source_date_epoch() -> Result<u64> {
    parse_source_date_epoch(crate::env::Env::get().var_os("SOURCE_DATE_EPOCH"))
}

fn parse_source_date_epoch(value: Option<&std::ffi::OsStr>) -> Result<u64> {
    let Some(value) = value.filter(|v| !v.is_empty()) else {
        return Ok(0);
    };
    let text = value.to_string_lossy();
    if text.len() <= 12 && text.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(v) = text.parse() {
            return Ok(v);
        }
    }
    crate::bail_user!(
        "`SOURCE_DATE_EPOCH` is `{}`, which is not a time in seconds since 1970", crate::text::escape(&text);
        hint = "set it to what `date +%s` prints (e.g. `SOURCE_DATE_EPOCH=$(git log -1 --format=%ct)`), or unset it"
    )
}

/// Write a package file atomically, with the mode any build output gets under the user's
/// umask (0644 under the usual 022).
fn write_output(path: &Path, bytes: &[u8]) -> Result<()> {
    crate::fsutil::write_atomic(path, bytes)
}

/// A tar archive built in memory with fixed metadata.
#[derive(Debug, Default)]
pub struct TarTree {
    /// path -> (mode, contents); `None` contents for a directory.
    entries: BTreeMap<String, (u32, Option<Vec<u8>>)>,
}

impl TarTree {
    /// Add a file and every parent directory.
    pub fn file(&mut self, path: &str, mode: u32, bytes: Vec<u8>) {
        let path = path.trim_start_matches("./").trim_start_matches('/');
        let mut parent = Path::new(path).parent();
        while let Some(p) = parent.filter(|p| !p.as_os_str().is_empty()) {
            self.entries
                .entry(format!("{}/", p.display()))
                .or_insert((0o755, None));
            parent = p.parent();
        }
        self.entries.insert(path.to_string(), (mode, Some(bytes)));
    }

    /// The tar bytes; `prefix` (`./` for Debian members) goes in front of every name.
    pub fn to_tar(&self, prefix: &str) -> Result<Vec<u8>> {
        let mtime = source_date_epoch()?;
        let mut b = tar::Builder::new(Vec::new());
        b.mode(tar::HeaderMode::Deterministic);
        if !prefix.is_empty() {
            let h = header(tar::EntryType::Directory, 0o755, 0, mtime);
            append(&mut b, h, prefix, &[])?;
        }
        for (path, (mode, contents)) in &self.entries {
            let name = format!("{prefix}{path}");
            match contents {
                None => {
                    let h = header(tar::EntryType::Directory, *mode, 0, mtime);
                    append(&mut b, h, &name, &[])?;
                }
                Some(bytes) => {
                    let h = header(tar::EntryType::Regular, *mode, bytes.len() as u64, mtime);
                    append(&mut b, h, &name, bytes)?;
                }
            }
        }
        Ok(b.into_inner()?)
    }

    pub fn paths(&self) -> impl Iterator<Item = (&String, &Vec<u8>)> {
        self.entries
            .iter()
            .filter_map(|(p, (_, c))| c.as_ref().map(|c| (p, c)))
    }
}

/// Append with the name exactly as given (the `tar` crate would drop a leading `./`, which
/// Debian packages carry); long names fall back to the crate's GNU long-name handling.
fn append(
    b: &mut tar::Builder<Vec<u8>>,
    mut h: tar::Header,
    name: &str,
    data: &[u8],
) -> Result<()> {
    let raw = name.as_bytes();
    let gnu = h.as_gnu_mut().context("gnu tar header")?;
    if raw.len() < gnu.name.len() {
        gnu.name.fill(0);
        gnu.name[..raw.len()].copy_from_slice(raw);
        h.set_cksum();
        b.append(&h, data)?;
    } else {
        b.append_data(&mut h, name, data)?;
    }
    Ok(())
}

fn header(kind: tar::EntryType, mode: u32, size: u64, mtime: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(mtime);
    h.set_uid(0);
    h.set_gid(0);
    let _ = h.set_username("root");
    let _ = h.set_groupname("root");
    h
}

/// gzip without name or timestamp (`gzip -n`).
pub fn gzip(data: &[u8]) -> Result<Vec<u8>> {
    let mut enc = flate2::GzBuilder::new()
        .mtime(0)
        .operating_system(3)
        .write(Vec::new(), flate2::Compression::new(9));
    enc.write_all(data)?;
    Ok(enc.finish()?)
}

/// The module files of a package: `lib/modules/<release>/<dir>/<module>.ko[.ext]`.
fn module_tree(spec: &PackageSpec) -> TarTree {
    let mut t = TarTree::default();
    let dir = spec.module_dir();
    for m in &spec.modules {
        t.file(&format!("{dir}/{}", m.file_name), 0o644, m.bytes.clone());
    }
    t
}

/// The manifest: module names, version, kernel release, arch and each file's sha256.
pub fn manifest(spec: &PackageSpec, tree: &TarTree) -> serde_json::Value {
    let files: BTreeMap<&String, String> = tree
        .paths()
        .map(|(p, c)| (p, crate::fsutil::sha256_hex(c)))
        .collect();
    json!({
        "package": spec.name,
        "version": spec.version,
        "kernel_release": spec.release,
        "arch": spec.arch.name(),
        "install_dir": spec.dir,
        "modules": spec.modules.iter().map(|m| json!({
            "module": m.module,
            "file": format!("{}/{}", spec.module_dir(), m.file_name),
            "version": m.version,
            "signed": m.signed,
            "compression": m.compression,
            "sha256": m.sha256,
        })).collect::<Vec<_>>(),
        "files": files,
    })
}

fn stem(spec: &PackageSpec) -> String {
    format!(
        "{}-{}-{}-{}",
        spec.name,
        spec.version,
        spec.release,
        spec.arch.name()
    )
}

/// Write `NAME-VERSION-RELEASE-ARCH.tar.gz` (and `.manifest.json` beside it) in `out_dir`.
/// The archive holds `lib/modules/...` and `kmod-manifest.json`.
pub fn write_tar(spec: &PackageSpec, out_dir: &Path) -> Result<PathBuf> {
    spec.check()?;
    let mut tree = module_tree(spec);
    let manifest = manifest(spec, &tree);
    let manifest_text = format!("{}\n", serde_json::to_string_pretty(&manifest)?);
    tree.file(
        "kmod-manifest.json",
        0o644,
        manifest_text.clone().into_bytes(),
    );
    let out = out_dir.join(format!("{}.tar.gz", stem(spec)));
    let tarball = gzip(&tree.to_tar("")?)?;
    // Both or neither: a tarball without its manifest beside it is no package.
    crate::fsutil::write_atomic_all(&[
        (&out, &tarball),
        (
            &out_dir.join(format!("{}.manifest.json", stem(spec))),
            manifest_text.as_bytes(),
        ),
    ])?;
    Ok(out)
}

/// A Debian package name: lowercase letters, digits, `+-.`.
pub fn deb_name(s: &str) -> String {
    s.to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "+-.".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect()
}

pub fn deb_arch(arch: Arch) -> &'static str {
    match arch {
        Arch::X86_64 => "amd64",
        Arch::Arm64 => "arm64",
    }
}

/// Write `NAME-modules-RELEASE_VERSION_ARCH.deb`: data under `lib/modules`, a `postinst`
/// and `postrm` that run `depmod -a RELEASE` (in `$DPKG_ROOT` when dpkg installs into another root).
pub fn write_deb(spec: &PackageSpec, out_dir: &Path) -> Result<PathBuf> {
    spec.check()?;
    let pkg = deb_name(&format!("{}-modules-{}", spec.name, spec.release));
    let version = if spec.version.starts_with(|c: char| c.is_ascii_digit()) {
        spec.version.clone()
    } else {
        format!("0~{}", spec.version)
    };
    let data = module_tree(spec);
    let installed_kb: usize = data.paths().map(|(_, c)| c.len().div_ceil(1024)).sum();
    let modules: Vec<&str> = spec.modules.iter().map(|m| m.module.as_str()).collect();
    let depends = match &spec.distro_modules_package {
        Some(p) => format!("kmod, {p}"),
        None => "kmod".to_string(),
    };
    let control = format!(
        "Package: {pkg}\nVersion: {version}\nArchitecture: {}\nMaintainer: {}\nInstalled-Size: {installed_kb}\n\
         Depends: {depends}\nSection: kernel\nPriority: optional\nDescription: {}\n Kernel module(s) {} for Linux {} ({}), \
         packaged by cargo-kmod.\n",
        deb_arch(spec.arch),
        spec.maintainer,
        spec.description,
        modules.join(", "),
        spec.release,
        spec.arch,
    );
    let md5sums: String = data
        .paths()
        .map(|(p, c)| {
            format!(
                "{}  {p}\n",
                hex::encode(
                    openssl::hash::hash(openssl::hash::MessageDigest::md5(), c)
                        .map(|d| d.to_vec())
                        .unwrap_or_default()
                )
            )
        })
        .collect();
    let script = |when: &str| {
        format!(
            "#!/bin/sh\n# generated by cargo-kmod\nset -e\nif [ \"$1\" = \"{when}\" ] && command -v depmod >/dev/null 2>&1; then\n    # `DPKG_ROOT`: dpkg --root with chrootless scripts installs into another root.\n    depmod -b \"${{DPKG_ROOT:-/}}\" -a {}\nfi\n",
            spec.release
        )
    };
    let mut ctl = TarTree::default();
    ctl.file("control", 0o644, control.into_bytes());
    ctl.file("md5sums", 0o644, md5sums.into_bytes());
    ctl.file("postinst", 0o755, script("configure").into_bytes());
    ctl.file("postrm", 0o755, script("remove").into_bytes());
    let members: [(&str, Vec<u8>); 3] = [
        ("debian-binary", b"2.0\n".to_vec()),
        ("control.tar.gz", gzip(&ctl.to_tar("./")?)?),
        ("data.tar.gz", gzip(&data.to_tar("./")?)?),
    ];
    let out = out_dir.join(format!("{pkg}_{version}_{}.deb", deb_arch(spec.arch)));
    write_output(&out, &ar(&members)?)?;
    Ok(out)
}

/// A System V `ar` archive, as `dpkg-deb` writes it.
pub fn ar(members: &[(&str, Vec<u8>)]) -> Result<Vec<u8>> {
    let mtime = source_date_epoch()?;
    let mut out = b"!<arch>\n".to_vec();
    for (name, data) in members {
        let header = format!(
            "{:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n",
            name,
            mtime,
            0,
            0,
            "100644",
            data.len()
        );
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(data);
        if data.len() % 2 == 1 {
            out.push(b'\n');
        }
    }
    Ok(out)
}

/// Files a DKMS source package leaves out: build products and VCS data.
fn is_build_product(name: &str) -> bool {
    const EXT: &[&str] = &[
        ".o", ".ko", ".mod", ".mod.c", ".mod.o", ".cmd", ".symvers", ".order", ".rmeta", ".d",
    ];
    name == "target"
        || name == ".git"
        || name == ".tmp_versions"
        || EXT.iter().any(|e| name.ends_with(e))
}

fn collect_sources(root: &Path, rel: &str, tree: &mut TarTree, prefix: &str) -> Result<()> {
    let dir = root.join(rel);
    let entries = crate::fsutil::sorted_entries(&dir)?;
    for e in entries {
        let name = e.file_name().to_string_lossy().into_owned();
        if is_build_product(&name) {
            continue;
        }
        let rel_path = if rel.is_empty() {
            name.clone()
        } else {
            format!("{rel}/{name}")
        };
        let ft = e.file_type()?;
        if ft.is_dir() {
            collect_sources(root, &rel_path, tree, prefix)?;
        } else if ft.is_file() {
            let bytes = std::fs::read(e.path())
                .with_context(|| format!("cannot read `{}`", e.path().display()))?;
            tree.file(&format!("{prefix}/{rel_path}"), 0o644, bytes);
        }
    }
    Ok(())
}

/// Write `NAME-VERSION-dkms.tar.gz`: `usr/src/NAME-VERSION/` with the module sources (a plain
/// Kbuild that works with `make -C KDIR M=...`), `dkms.conf` and `README.dkms`.
pub fn write_dkms(spec: &PackageSpec, src: &Path, out_dir: &Path) -> Result<PathBuf> {
    spec.check()?;
    if !src.join("Kbuild").is_file() && !src.join("Makefile").is_file() {
        crate::bail_user!(
            "`{}` has no `Kbuild` or `Makefile`: a DKMS package needs a plain kbuild source tree", src.display();
            hint = "pass the module's kbuild directory with `--src DIR`"
        );
    }
    let prefix = format!("usr/src/{}-{}", spec.name, spec.version);
    let mut tree = TarTree::default();
    collect_sources(src, "", &mut tree, &prefix)?;
    let mut conf = format!(
        "# generated by cargo-kmod\nPACKAGE_NAME=\"{}\"\nPACKAGE_VERSION=\"{}\"\n\
         MAKE[0]=\"make -C ${{kernel_source_dir}} M=${{dkms_tree}}/${{PACKAGE_NAME}}/${{PACKAGE_VERSION}}/build modules\"\n\
         CLEAN=\"make -C ${{kernel_source_dir}} M=${{dkms_tree}}/${{PACKAGE_NAME}}/${{PACKAGE_VERSION}}/build clean\"\n\
         AUTOINSTALL=\"yes\"\n",
        spec.name, spec.version
    );
    for (i, m) in spec.modules.iter().enumerate() {
        conf.push_str(&format!(
            "BUILT_MODULE_NAME[{i}]=\"{}\"\nDEST_MODULE_LOCATION[{i}]=\"/{}\"\n",
            m.module,
            spec.dir.trim_matches('/')
        ));
    }
    tree.file(&format!("{prefix}/dkms.conf"), 0o644, conf.into_bytes());
    tree.file(
        &format!("{prefix}/README.dkms"),
        0o644,
        DKMS_README.as_bytes().to_vec(),
    );
    let out = out_dir.join(format!("{}-{}-dkms.tar.gz", spec.name, spec.version));
    write_output(&out, &gzip(&tree.to_tar("")?)?)?;
    Ok(out)
}

const DKMS_README: &str = "\
This is a DKMS source package generated by cargo-kmod. `dkms` rebuilds the module
with the kernel's own kbuild; cargo-kmod is not needed on the device.

    tar -C / -xzf NAME-VERSION-dkms.tar.gz
    dkms add NAME/VERSION && dkms build NAME/VERSION && dkms install NAME/VERSION

Requirements for modules written in Rust: the device's kernel build tree
(/lib/modules/$(uname -r)/build) must be Rust-enabled (CONFIG_RUST=y) and carry
its `rust/` directory (libkernel.rmeta and the macro crates), and the rustc on the
device must be the very rustc that built that kernel (CONFIG_RUSTC_VERSION_TEXT),
with a matching bindgen and libclang. Distribution header packages usually lack
`rust/`; C-only modules have no such requirement.
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tar_is_reproducible_and_lists_parents() {
        let mut t = TarTree::default();
        t.file("lib/modules/7/updates/a.ko", 0o644, b"x".to_vec());
        let a = t.to_tar("").unwrap();
        assert_eq!(a, t.to_tar("").unwrap());
        let mut ar = tar::Archive::new(a.as_slice());
        let names: Vec<String> = ar
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert_eq!(
            names,
            [
                "lib/",
                "lib/modules/",
                "lib/modules/7/",
                "lib/modules/7/updates/",
                "lib/modules/7/updates/a.ko"
            ]
        );
    }

    /// Issue 18 §6: `SOURCE_DATE_EPOCH` is what `date +%s` prints or an error (it was a
    /// silent 0); unset or empty is 0.
    #[test]
    fn source_date_epoch_is_digits_or_an_error() {
        use std::ffi::OsStr;
        let p = |v: Option<&str>| parse_source_date_epoch(v.map(OsStr::new));
        assert_eq!(p(None).unwrap(), 0);
        assert_eq!(p(Some("")).unwrap(), 0);
        assert_eq!(p(Some("1700000000")).unwrap(), 1_700_000_000);
        for bad in ["2024-01-01", "-1", "abc", " 5", "1e9", "9999999999999"] {
            let e = p(Some(bad)).unwrap_err();
            let (msg, hint, _) = crate::error::render(&e);
            assert_eq!(
                msg,
                format!(
                    "`SOURCE_DATE_EPOCH` is `{bad}`, which is not a time in seconds since 1970"
                )
            );
            assert!(hint.unwrap().contains("date +%s"));
        }
    }

    #[test]
    fn ar_layout() {
        let a = ar(&[("debian-binary", b"2.0\n".to_vec()), ("x", b"abc".to_vec())]).unwrap();
        assert!(a.starts_with(
            b"!<arch>\ndebian-binary   0           0     0     100644  4         `\n2.0\n"
        ));
        assert_eq!(a.len() % 2, 0);
        assert_eq!(
            deb_name("Hello_World-modules-7.2.13"),
            "hello-world-modules-7.2.13"
        );
    }
}
