//! `$CARGO_KMOD_HOME` (default `~/.cargo-kmod`): every path under it, in one place.
//!
//! ```text
//! $CARGO_KMOD_HOME/
//!   sources/<hash>/linux-.../        unpacked kernel sources (one per tarball)
//!   sources/<hash>.lock              held while a source is unpacked (never removed)
//!   trees/<arch>-<hash>/             kbuild output dirs (O=), one per set of inputs:
//!                                    dev trees, board trees (`--board`, `--base-config`)
//!                                    and GCC-built trees (`--cc gcc`) side by side
//!     cargo-kmod-tree.json           written last: its presence means "prepared"
//!     cargo-kmod-build.log           the full build log
//!   trees/<arch>-<hash>.lock         held while a tree is prepared (never removed)
//!   rust-src/<rustc version>/        Debian's rust-src, unpacked by `cargo xtask setup`
//!   busybox/<arch>/busybox           the static busybox the initramfs uses
//!   macros/<hash>/                   kmod-macros proc macros, per rustc
//!   metadata/                        `cargo metadata` cache, per workspace
//!   rustc/                           `rustc --version` cache, per rustup state
//!   devices/<arch>-<hash>/           the test-device helper module, per tree
//!   rootfs/<name>/                   root file systems (the deploy tests' board)
//!   qemu/virt-<hash>.dtb             qemu's own `-M virt` device tree, compact, per qemu
//!                                    and machine arguments
//!   qemu/snapshots/<hash>/           a booted arm64 `virt` guest that test boots resume
//!                                    (`state`, the template's `initramfs.cpio`, `virt.dtb`);
//!                                    the eight most recently used are kept; `<hash>.failed`
//!                                    notes an attempt that failed
//!   qemu/uefi-vars/<hash>/vars.fd    the firmware variables of `--secure-boot` boots: Secure
//!                                    Boot on, the kernel's signers in `db`, the user's
//!                                    certificate in `MokList`/`MokListRT`
//!   kvm-probe.json                   whether KVM works for a tree's arch
//!   bindgen/<version>/bin/bindgen   a bindgen a kernel's config names (`cargo xtask setup`)
//!   tools/check-jsonschema/          a Python venv with check-jsonschema, the tests' validator
//!                                    of generated CI workflows and KMM resources
//!                                    (`cargo xtask setup`; test tooling)
//!   distro/debian/                   distribution kernels (`kernel::distro`)
//!     apt/                           the private apt: apt.conf, sources, lists, archives
//!     packages/<name>_<ver>_<arch>/  packages unpacked (`dpkg-deb -x`), never installed
//!     toolchains/<hash>/             the exact rustc and gcc a kernel names: `root/`
//!                                    (unpacked packages) and `bin/` (loader wrappers)
//!     complete/<release>-<hash>/     a headers package completed with `rust/` (an `O=`
//!                                    tree of the matching source, the package's config)
//!     fetch.lock                     held while packages are fetched
//! ```
//!
//! This file uses only `std`: `xtask` includes it (`#[path]`) so that set-up and the
//! benchmarks find the same places, and the integration tests use it through the library.

use std::path::{Path, PathBuf};

/// `$CARGO_KMOD_HOME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Home {
    pub root: PathBuf,
}

/// The metadata file whose presence marks a tree as prepared.
pub const TREE_STAMP: &str = "cargo-kmod-tree.json";
/// The full kbuild log of a tree.
pub const TREE_LOG: &str = "cargo-kmod-build.log";

impl Home {
    /// The home from the values of `CARGO_KMOD_HOME` and `HOME` (empty counts as unset):
    /// `None` when neither is set.
    pub fn locate(cargo_kmod_home: Option<PathBuf>, home: Option<PathBuf>) -> Option<Home> {
        let nonempty = |p: Option<PathBuf>| p.filter(|p| !p.as_os_str().is_empty());
        nonempty(cargo_kmod_home)
            .or_else(|| nonempty(home).map(|h| h.join(".cargo-kmod")))
            .map(|root| Home { root })
    }

    /// Prepared kernel trees (`<arch>-<hash>/`) and their lock files.
    pub fn trees_dir(&self) -> PathBuf {
        self.root.join("trees")
    }

    /// Unpacked kernel sources and their lock files.
    pub fn sources_dir(&self) -> PathBuf {
        self.root.join("sources")
    }

    /// Where `cargo xtask setup` unpacks Debian's rust-src of rustc `version`.
    pub fn rust_src_root(&self, version: &str) -> PathBuf {
        self.root.join("rust-src").join(version)
    }

    /// The rust-src `library` directory of rustc `version`.
    pub fn rust_src_dir(&self, version: &str) -> PathBuf {
        self.rust_src_root(version)
            .join("usr/lib/rustlib/src/rust/library")
    }

    /// The static busybox for guests of an arch (`x86_64`, `arm64`).
    pub fn busybox(&self, arch: &str) -> PathBuf {
        self.root.join("busybox").join(arch).join("busybox")
    }

    /// kmod-macros built with one rustc.
    pub fn macros_dir(&self, key: &str) -> PathBuf {
        self.root.join("macros").join(key)
    }

    /// The `kernel` crate's rustdoc for one tree configuration (`cargo kmod doc`).
    pub fn kernel_docs_dir(&self, key: &str) -> PathBuf {
        self.root.join("docs").join(key)
    }

    /// The `cargo metadata` cache.
    pub fn metadata_dir(&self) -> PathBuf {
        self.root.join("metadata")
    }

    /// The `rustc --version` cache.
    pub fn rustc_cache_dir(&self) -> PathBuf {
        self.root.join("rustc")
    }

    /// The test-device helper module of one tree (`<arch>-<hash>`).
    pub fn devices_dir(&self, key: &str) -> PathBuf {
        self.root.join("devices").join(key)
    }

    /// A root file system (`arm64-sshd`: the deploy tests' board).
    pub fn rootfs(&self, name: &str) -> PathBuf {
        self.root.join("rootfs").join(name)
    }

    /// qemu's own device trees, per qemu and machine.
    pub fn qemu_dir(&self) -> PathBuf {
        self.root.join("qemu")
    }

    /// The model list of `qemu -device help`, per qemu (path, size, mtime) and machine
    /// (`key`): read by every test boot with `qemu-device` test devices.
    pub fn qemu_models(&self, key: &str) -> PathBuf {
        self.qemu_dir().join("models").join(format!("{key}.txt"))
    }

    /// Booted guests that test boots resume.
    pub fn snapshots_dir(&self) -> PathBuf {
        self.qemu_dir().join("snapshots")
    }

    /// UEFI variable stores of Secure Boot test boots, per (firmware, kernel signers,
    /// certificate).
    pub fn uefi_vars_dir(&self) -> PathBuf {
        self.qemu_dir().join("uefi-vars")
    }

    /// Whether KVM works, per arch.
    pub fn kvm_probe(&self) -> PathBuf {
        self.root.join("kvm-probe.json")
    }

    /// A bindgen of one version (`cargo install --root`), for kernels that name it.
    pub fn bindgen_root(&self, version: &str) -> PathBuf {
        self.root.join("bindgen").join(version)
    }

    /// The Python venv holding `check-jsonschema` (`bin/check-jsonschema`, `bin/python`
    /// with `ruamel.yaml`), which the tests validate generated CI workflows and Kubernetes
    /// KMM resources with; `cargo xtask setup` installs it.
    pub fn validators_dir(&self) -> PathBuf {
        self.root.join("tools").join("check-jsonschema")
    }

    /// One distribution's packages, toolchains and completed headers (`debian`).
    pub fn distro_dir(&self, distro: &str) -> PathBuf {
        self.root.join("distro").join(distro)
    }

    /// Whether `dir` is a prepared tree (it has its stamp).
    pub fn is_prepared(dir: &Path) -> bool {
        dir.join(TREE_STAMP).is_file()
    }
}
