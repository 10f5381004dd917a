//! The architectures cargo-kmod builds for and boots, with every name each of them has:
//! kbuild's `ARCH=`, the source's `arch/` directory, ELF's machine, clang's target, the GNU
//! cross prefix, qemu's program and Debian's architecture name.

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::kernel::config::KConfig;

/// The architectures cargo-kmod builds and boots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arch {
    X86_64,
    Arm64,
}

impl Arch {
    pub const ALL: [Arch; 2] = [Arch::X86_64, Arch::Arm64];

    /// Accepts the kernel's names and the common aliases (`amd64`, `aarch64`).
    pub fn parse(s: &str) -> Result<Arch> {
        match s {
            "x86_64" | "x86" | "amd64" => Ok(Arch::X86_64),
            "arm64" | "aarch64" => Ok(Arch::Arm64),
            other => crate::bail_user!(
                "unknown arch `{}`", other;
                hint = "cargo-kmod supports `x86_64` and `arm64`"
            ),
        }
    }

    pub fn host() -> Arch {
        if cfg!(target_arch = "aarch64") {
            Arch::Arm64
        } else {
            Arch::X86_64
        }
    }

    /// The value for kbuild's `ARCH=` (`x86_64` keeps tinyconfig 64-bit).
    pub fn kbuild(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Arm64 => "arm64",
        }
    }

    /// The directory under `arch/`.
    pub fn srcarch(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86",
            Arch::Arm64 => "arm64",
        }
    }

    pub fn name(self) -> &'static str {
        self.kbuild()
    }

    /// The boot image relative to the tree.
    pub fn image(self) -> &'static str {
        match self {
            Arch::X86_64 => "arch/x86/boot/bzImage",
            Arch::Arm64 => "arch/arm64/boot/Image",
        }
    }

    pub fn qemu(self) -> &'static str {
        match self {
            Arch::X86_64 => "qemu-system-x86_64",
            Arch::Arm64 => "qemu-system-aarch64",
        }
    }

    /// The ELF `e_machine` of its modules.
    pub fn elf_machine(self) -> u16 {
        match self {
            Arch::X86_64 => object::elf::EM_X86_64,
            Arch::Arm64 => object::elf::EM_AARCH64,
        }
    }

    /// clang's target triple for bindgen.
    pub fn clang_target(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64-linux-gnu",
            Arch::Arm64 => "aarch64-linux-gnu",
        }
    }

    /// Debian's name for the architecture (`dpkg --print-architecture`).
    pub fn debian(self) -> &'static str {
        match self {
            Arch::X86_64 => "amd64",
            Arch::Arm64 => "arm64",
        }
    }

    /// `uname -m` on a machine of this architecture.
    pub fn uname(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Arm64 => "aarch64",
        }
    }

    /// The architecture `uname -m` names, if cargo-kmod supports it.
    pub fn from_uname(machine: &str) -> Option<Arch> {
        match machine {
            "x86_64" | "amd64" => Some(Arch::X86_64),
            "aarch64" | "arm64" | "aarch64_be" => Some(Arch::Arm64),
            _ => None,
        }
    }

    /// The GNU cross prefix used when the tree is GCC-built and the host differs.
    pub fn gnu_prefix(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64-linux-gnu-",
            Arch::Arm64 => "aarch64-linux-gnu-",
        }
    }

    /// Which arch a `.config` was made for.
    pub fn from_config(config: &KConfig) -> Option<Arch> {
        if config.is_enabled("ARM64") {
            Some(Arch::Arm64)
        } else if config.is_enabled("X86_64") {
            Some(Arch::X86_64)
        } else {
            None
        }
    }
}

impl std::fmt::Display for Arch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Arch {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Arch> {
        Arch::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arch_names() {
        assert_eq!(Arch::parse("aarch64").unwrap(), Arch::Arm64);
        assert_eq!(Arch::parse("amd64").unwrap(), Arch::X86_64);
        let e = Arch::parse("riscv").unwrap_err();
        assert_eq!(e.to_string(), "unknown arch `riscv`");
        assert_eq!(Arch::Arm64.image(), "arch/arm64/boot/Image");
        assert_eq!(Arch::Arm64.debian(), "arm64");
        assert_eq!(Arch::X86_64.debian(), "amd64");
    }
}
