//! A private apt: Debian's own client (`apt-get`, `apt-cache`) with a configuration, sources,
//! lists and archive cache of cargo-kmod's under `$CARGO_KMOD_HOME/distro/debian/apt/`, so
//! the machine's apt state is never read or changed, and packages of any architecture can be
//! fetched on any machine. Packages are downloaded (apt checks them against the signed
//! index), checked again against the index's size and SHA-256 when taken from the cache, and
//! unpacked with `dpkg-deb -x` into a staging directory renamed into place: never installed,
//! never half-unpacked.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use xshell::cmd;

use crate::kernel::home::Home;
use crate::shell::Shell;

/// The suites kernels and their toolchains come from.
const SOURCES: &str = "# Written by cargo-kmod: the private apt sources of `kernel::distro::apt`.
Types: deb
URIs: http://deb.debian.org/debian
Suites: sid trixie trixie-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
";

/// One package version as the index lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    pub name: String,
    pub version: String,
    /// Debian's architecture (`amd64`, `arm64`, `all`).
    pub arch: String,
    pub size: u64,
    pub sha256: String,
    pub depends: String,
}

impl Package {
    /// `name_version_arch` as apt names files (`:` in a version is `%3a`).
    pub fn file_stem(&self) -> String {
        format!(
            "{}_{}_{}",
            self.name,
            self.version.replace(':', "%3a"),
            self.arch
        )
    }
}

/// The private apt of one distribution directory.
pub struct Apt {
    dir: PathBuf,
    conf: PathBuf,
    /// Where unpacked packages go.
    packages: PathBuf,
}

impl Apt {
    /// The private apt under `distro_dir` (its configuration written if missing or changed).
    pub fn open(home: &Home, distro_dir: &Path) -> Result<Apt> {
        let dir = distro_dir.join("apt");
        for d in [
            dir.join("lists/partial"),
            dir.join("cache/archives/partial"),
            distro_dir.join("packages"),
        ] {
            home.ensure_dir(&d)?;
        }
        // Real paths in the configuration: a home that links `apt/` to another home's shares
        // it as it is, rather than rewriting it with paths of its own.
        let dir = std::fs::canonicalize(&dir)
            .with_context(|| format!("cannot resolve `{}`", dir.display()))?;
        let conf = dir.join("apt.conf");
        let sources = dir.join("debian.sources");
        crate::fsutil::write_if_changed(&sources, SOURCES.as_bytes())?;
        let text = format!(
            "// Written by cargo-kmod: the private apt of `kernel::distro::apt`.
Dir::Etc::SourceList \"{sources}\";
Dir::Etc::SourceParts \"/dev/null\";
Dir::Etc::Preferences \"/dev/null\";
Dir::Etc::PreferencesParts \"/dev/null\";
Dir::State::Lists \"{lists}\";
Dir::State::status \"/dev/null\";
Dir::Cache \"{cache}\";
Dir::Cache::pkgcache \"pkgcache.bin\";
Dir::Cache::srcpkgcache \"srcpkgcache.bin\";
APT::Architectures {{ \"amd64\"; \"arm64\"; }};
Acquire::Languages \"none\";
Acquire::IndexTargets::deb::DEP-11::DefaultEnabled \"false\";
Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled \"false\";
Acquire::IndexTargets::deb::Contents-deb::DefaultEnabled \"false\";
",
            sources = sources.display(),
            lists = dir.join("lists").display(),
            cache = dir.join("cache").display(),
        );
        crate::fsutil::write_if_changed(&conf, text.as_bytes())?;
        Ok(Apt {
            packages: distro_dir.join("packages"),
            dir,
            conf,
        })
    }

    fn has_lists(&self) -> bool {
        std::fs::read_dir(self.dir.join("lists"))
            .map(|it| {
                it.flatten()
                    .any(|e| e.file_name().to_string_lossy().contains("_Packages"))
            })
            .unwrap_or(false)
    }

    /// `apt-get update` of the private lists: when there are none, or when `force`.
    pub fn update(&self, shell: &Shell, force: bool) -> Result<()> {
        if self.has_lists() && !force {
            return Ok(());
        }
        let sh = xshell::Shell::new()?;
        let conf = &self.conf;
        let spinner = shell.spinner("Updating", "the package index of deb.debian.org");
        let r = crate::process::run(
            shell,
            cmd!(sh, "apt-get -c {conf} -q -o Debug::NoLocking=1 update"),
        );
        spinner.finish_and_clear();
        r.map(drop).map_err(|e| {
            e.context("cannot read Debian's package index (is the network reachable?)")
        })
    }

    /// Every version of `name` for `arch` the index lists (empty when it lists none).
    pub fn show(&self, shell: &Shell, name: &str, arch: &str) -> Result<Vec<Package>> {
        let sh = xshell::Shell::new()?;
        let conf = &self.conf;
        let spec = format!("{name}:{arch}");
        let out = crate::process::output(shell, cmd!(sh, "apt-cache -c {conf} show {spec}"))?;
        Ok(parse_stanzas(&String::from_utf8_lossy(&out.stdout)))
    }

    /// The newest version of `name` for `arch`, updating the lists once when they lack it.
    pub fn find(&self, shell: &Shell, name: &str, arch: &str) -> Result<Option<Package>> {
        let mut found = self.show(shell, name, arch)?;
        if found.is_empty() {
            self.update(shell, true)?;
            found = self.show(shell, name, arch)?;
        }
        Ok(found.into_iter().next())
    }

    /// Package names starting with `prefix` (for "did you mean" lists).
    pub fn names(&self, shell: &Shell, prefix: &str) -> Result<Vec<String>> {
        let sh = xshell::Shell::new()?;
        let conf = &self.conf;
        let out = crate::process::output(shell, cmd!(sh, "apt-cache -c {conf} pkgnames {prefix}"))?;
        let mut names: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect();
        names.sort();
        Ok(names)
    }

    /// What installing `specs` (`name:arch=version`) would bring on an empty system: the
    /// closure apt resolves, without recommends.
    pub fn closure(&self, shell: &Shell, specs: &[String]) -> Result<Vec<Package>> {
        let sh = xshell::Shell::new()?;
        let conf = &self.conf;
        let out = crate::process::run(
            shell,
            cmd!(
                sh,
                "apt-get -c {conf} -s -q -o Debug::NoLocking=1 install --no-install-recommends {specs...}"
            ),
        )
        .map_err(|e| e.context("apt cannot resolve the toolchain's packages"))?;
        let mut wanted = Vec::new();
        for line in out.lines() {
            // `Inst NAME (VERSION SUITES [ARCH])`
            let Some(rest) = line.strip_prefix("Inst ") else {
                continue;
            };
            let mut words = rest.split_whitespace();
            let (Some(name), Some(version)) = (words.next(), words.next()) else {
                continue;
            };
            let version = version.trim_start_matches('(').to_string();
            // The parenthesised part's `[ARCH]` (a trailing `[]` lists what it replaces).
            let arch = rest
                .split_once('(')
                .and_then(|(_, r)| r.split_once(')'))
                .and_then(|(inner, _)| inner.rsplit_once('['))
                .map(|(_, a)| a.trim_end_matches(']').to_string())
                .unwrap_or_default();
            let name = name.split(':').next().unwrap_or(name).to_string();
            wanted.push((name, version, arch));
        }
        let specs: Vec<String> = wanted
            .iter()
            .map(|(n, v, a)| format!("{n}:{a}={v}"))
            .collect();
        let shown = crate::process::output(shell, cmd!(sh, "apt-cache -c {conf} show {specs...}"))?;
        let listed = parse_stanzas(&String::from_utf8_lossy(&shown.stdout));
        let mut pkgs = Vec::new();
        for (name, version, arch) in wanted {
            match listed
                .iter()
                .find(|p| p.name == name && p.version == version && p.arch == arch)
            {
                Some(p) => pkgs.push(p.clone()),
                None => crate::bail_user!(
                    "apt resolved `{}` {} ({}) but its index does not list it",
                    name,
                    version,
                    arch
                ),
            }
        }
        Ok(pkgs)
    }

    /// The package downloaded (or taken from the archive cache), checked against the index,
    /// and unpacked under `packages/<name>_<version>_<arch>/`; the unpacked directory.
    pub fn unpacked(&self, shell: &Shell, pkg: &Package) -> Result<PathBuf> {
        let dest = self.packages.join(pkg.file_stem());
        if dest.is_dir() {
            return Ok(dest);
        }
        let deb = self.download(shell, pkg)?;
        let tmp = tempfile::Builder::new()
            .prefix(".unpack-")
            .tempdir_in(&self.packages)
            .context("cannot create a staging directory for unpacking")?;
        let sh = xshell::Shell::new()?;
        let into = tmp.path();
        crate::process::run(shell, cmd!(sh, "dpkg-deb -x {deb} {into}")).map_err(|e| {
            e.context(format!(
                "cannot unpack `{}` (the archive is corrupt)",
                deb.display()
            ))
        })?;
        std::fs::rename(tmp.path(), &dest)
            .with_context(|| format!("cannot create `{}`", dest.display()))?;
        let _ = tmp.keep();
        Ok(dest)
    }

    /// The `.deb` of `pkg` in the archive cache, checked against the index's size and
    /// SHA-256; a cached file that fails the check is fetched again, a download that fails
    /// it is an error.
    pub fn download(&self, shell: &Shell, pkg: &Package) -> Result<PathBuf> {
        let archives = self.dir.join("cache/archives");
        let deb = archives.join(format!("{}.deb", pkg.file_stem()));
        if deb.is_file() && check(&deb, pkg).is_ok() {
            return Ok(deb);
        }
        let _ = std::fs::remove_file(&deb);
        let sh = xshell::Shell::new()?;
        sh.change_dir(&archives);
        let conf = &self.conf;
        let spec = format!("{}:{}={}", pkg.name, pkg.arch, pkg.version);
        shell.status(
            "Downloading",
            format_args!(
                "{} {} ({})",
                pkg.name,
                pkg.version,
                crate::process::size(pkg.size)
            ),
        );
        crate::process::run(
            shell,
            cmd!(
                sh,
                "apt-get -c {conf} -q -o Debug::NoLocking=1 download {spec}"
            ),
        )
        .map_err(|e| e.context(format!("cannot download `{}` {}", pkg.name, pkg.version)))?;
        if let Err(e) = check(&deb, pkg) {
            let _ = std::fs::remove_file(&deb);
            return Err(e);
        }
        Ok(deb)
    }
}

/// The file is the package the index lists: its size and SHA-256.
pub fn check(deb: &Path, pkg: &Package) -> Result<()> {
    let len = std::fs::metadata(deb)
        .with_context(|| format!("`{}` was not downloaded", deb.display()))?
        .len();
    if len != pkg.size {
        crate::bail_user!(
            "`{}` is {} bytes, but the index lists {} bytes for {} {}: the download is truncated or corrupt", deb.display(), len, pkg.size, pkg.name, pkg.version;
            hint = "run the command again to download it afresh"
        );
    }
    let sum = crate::fsutil::sha256_file(deb)?;
    if !sum.eq_ignore_ascii_case(&pkg.sha256) {
        crate::bail_user!(
            "`{}` does not match the SHA-256 the index lists for {} {}: the download is corrupt", deb.display(), pkg.name, pkg.version;
            hint = "run the command again to download it afresh"
        );
    }
    Ok(())
}

/// `apt-cache show` output: one [`Package`] per stanza, in the order apt prints them
/// (newest first).
pub fn parse_stanzas(text: &str) -> Vec<Package> {
    let mut out = Vec::new();
    for stanza in text.split("\n\n") {
        let field = |name: &str| {
            stanza
                .lines()
                .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(": ")))
                .map(str::trim)
                .map(str::to_string)
        };
        let (Some(name), Some(version), Some(arch), Some(size), Some(sha256)) = (
            field("Package"),
            field("Version"),
            field("Architecture"),
            field("Size").and_then(|s| s.parse().ok()),
            field("SHA256"),
        ) else {
            continue;
        };
        out.push(Package {
            name,
            version,
            arch,
            size,
            sha256,
            depends: field("Depends").unwrap_or_default(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stanzas_parse_and_name_files_like_apt() {
        let text = "Package: libllvm22\nVersion: 1:22.1.8-3\nArchitecture: amd64\nDepends: libc6 (>= 2.38)\nSize: 10\nSHA256: ab\n\nPackage: x\nVersion: 1\n\n";
        let p = parse_stanzas(text);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].file_stem(), "libllvm22_1%3a22.1.8-3_amd64");
        assert_eq!(p[0].depends, "libc6 (>= 2.38)");
    }

    #[test]
    fn a_truncated_or_altered_file_fails_the_check() {
        let dir = tempfile::tempdir().unwrap();
        let deb = dir.path().join("x.deb");
        std::fs::write(&deb, b"hello").unwrap();
        let mut pkg = Package {
            name: "x".into(),
            version: "1".into(),
            arch: "all".into(),
            size: 5,
            sha256: crate::fsutil::sha256_hex(b"hello"),
            depends: String::new(),
        };
        check(&deb, &pkg).unwrap();
        pkg.size = 9;
        assert!(check(&deb, &pkg)
            .unwrap_err()
            .to_string()
            .contains("truncated"));
        pkg.size = 5;
        pkg.sha256 = crate::fsutil::sha256_hex(b"hellO");
        assert!(check(&deb, &pkg)
            .unwrap_err()
            .to_string()
            .contains("SHA-256"));
    }
}
