//! Distribution kernels: a distribution's own kernel packages, fetched with the
//! distribution's client into `$CARGO_KMOD_HOME/distro/<distro>/` (never installed), its
//! headers completed with the `rust/` artifacts they lack ([`complete`]), built with the
//! exact rustc and C compiler the kernel names ([`toolchain`]).
//!
//! A distribution kernel is named `debian:<release>` (`debian:7.2.13+deb14-arm64`): the
//! `uname -r` of that kernel, which is also the suffix of its packages' names.

pub mod apt;
pub mod complete;
pub mod toolchain;

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::kernel::home::Home;
use crate::kernel::Arch;

/// Debian's kernel flavours cargo-kmod knows, longest first (the suffix of a release).
const FLAVOURS: &[(&str, Arch)] = &[
    ("cloud-amd64", Arch::X86_64),
    ("rt-amd64", Arch::X86_64),
    ("amd64", Arch::X86_64),
    ("cloud-arm64", Arch::Arm64),
    ("rt-arm64", Arch::Arm64),
    ("arm64-16k", Arch::Arm64),
    ("arm64", Arch::Arm64),
];

/// A distribution kernel by name: `debian:7.2.13+deb14-amd64`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DistroKernel {
    /// `7.2.13+deb14-amd64`: `uname -r` of the kernel.
    pub release: String,
    /// `7.2.13+deb14`: the ABI name shared by the flavours (`linux-headers-<abi>-common`).
    pub abi: String,
    /// `amd64`, `cloud-amd64`, `arm64`, ...
    pub flavour: String,
    pub arch: Arch,
}

impl DistroKernel {
    /// Parse `debian:<release>`; `what` names the key or flag for the error.
    pub fn parse(text: &str, what: &str) -> Result<DistroKernel> {
        let Some(release) = text.strip_prefix("debian:") else {
            crate::bail_user!(
                "{} `{}` does not name a distribution kernel", what, crate::text::escape(text);
                hint = "write `debian:<release>`, for example `debian:7.2.13+deb14-arm64` (the kernel's `uname -r`)"
            );
        };
        let valid = !release.is_empty()
            && release.len() <= 64
            && release.starts_with(|c: char| c.is_ascii_digit())
            && release
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-._~".contains(c));
        if !valid {
            crate::bail_user!(
                "{} `{}` is not a kernel release", what, crate::text::escape(text);
                hint = "a release is what `uname -r` prints, for example `7.2.13+deb14-amd64`"
            );
        }
        let Some((flavour, arch)) = FLAVOURS
            .iter()
            .find(|(f, _)| release.ends_with(&format!("-{f}")))
        else {
            crate::bail_user!(
                "{} `{}` has no flavour cargo-kmod supports", what, crate::text::escape(text);
                hint = "Debian's flavours for x86_64 and arm64 end in `-amd64` or `-arm64` (`-cloud-amd64`, `-rt-arm64`, `-arm64-16k`)"
            );
        };
        let abi = release[..release.len() - flavour.len() - 1].to_string();
        Ok(DistroKernel {
            release: release.to_string(),
            abi,
            flavour: flavour.to_string(),
            arch: *arch,
        })
    }

    /// `debian:<release>`.
    pub fn name(&self) -> String {
        format!("debian:{}", self.release)
    }

    /// `linux-headers-<release>` (of the kernel's arch).
    pub fn headers_package(&self) -> String {
        format!("linux-headers-{}", self.release)
    }

    /// `X.Y` of the release: `linux-source-X.Y`.
    pub fn series(&self) -> Option<String> {
        let v = crate::kernel::Version::find(&self.release)?;
        Some(format!("{}.{}", v.0, v.1))
    }

    /// The installed headers of this release, `/lib/modules/<release>/build`, when the machine
    /// has them (never written to).
    pub fn installed_headers(&self) -> Option<PathBuf> {
        let p = Path::new("/lib/modules").join(&self.release).join("build");
        p.join(".config").is_file().then_some(p)
    }
}

/// Where Debian's packages, toolchains and completions live.
pub fn debian_dir(home: &Home) -> PathBuf {
    home.distro_dir("debian")
}

/// What a Debian headers directory is: the flavour part of `linux-headers-<release>`,
/// recognised by Debian's `.kernelvariables` beside its `.config`.
pub fn is_debian_headers(dir: &Path) -> bool {
    dir.join(".kernelvariables").is_file() && dir.join(".config").is_file()
}

/// The release a Debian headers directory is for (`include/config/kernel.release`).
pub fn headers_release(dir: &Path) -> Option<String> {
    std::fs::read_to_string(dir.join("include/config/kernel.release"))
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_into_release_abi_flavour_and_arch() {
        let k = DistroKernel::parse("debian:7.2.13+deb14-arm64", "x").unwrap();
        assert_eq!(k.release, "7.2.13+deb14-arm64");
        assert_eq!(k.abi, "7.2.13+deb14");
        assert_eq!(k.arch, Arch::Arm64);
        assert_eq!(k.headers_package(), "linux-headers-7.2.13+deb14-arm64");
        assert_eq!(k.series().as_deref(), Some("7.2"));
        let k = DistroKernel::parse("debian:6.1.0-28-cloud-amd64", "x").unwrap();
        assert_eq!(
            (k.abi.as_str(), k.flavour.as_str()),
            ("6.1.0-28", "cloud-amd64")
        );
        assert_eq!(k.arch, Arch::X86_64);
        let k = DistroKernel::parse("debian:6.12.0-1-arm64-16k", "x").unwrap();
        assert_eq!(k.flavour, "arm64-16k");
    }

    #[test]
    fn bad_names_are_refused_with_the_key() {
        for (bad, says) in [
            ("7.2.13+deb14-amd64", "does not name a distribution kernel"),
            (
                "ubuntu:6.8.0-1-generic",
                "does not name a distribution kernel",
            ),
            ("debian:../../etc", "is not a kernel release"),
            ("debian:7.2 -amd64", "is not a kernel release"),
            ("debian:7.2.13+deb14-armhf", "has no flavour"),
            ("debian:", "is not a kernel release"),
        ] {
            let e = DistroKernel::parse(bad, "`distro-kernel`").unwrap_err();
            assert!(e.to_string().contains(says), "{bad}: {e}");
            assert!(e.to_string().starts_with("`distro-kernel`"), "{e}");
        }
    }
}
