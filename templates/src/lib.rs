//! The files cargo-kmod writes out or builds from, embedded so an installed cargo-kmod
//! carries them.
//!
//! They are real files beside this crate's `src/`, embedded with `include_str!` from inside
//! the package (a path outside a package breaks `cargo package` and `cargo install`):
//!
//! ```text
//! new/        `cargo kmod new`'s minijinja templates            new::FILES
//! kbuild/     the generated Kbuild files and Makefile            kbuild::*
//! fragments/  the Kconfig fragments `cargo kmod init` merges     fragments::*
//! devices/    the C helper module that adds test devices         devices::HELPER
//! ```
//!
//! [`macros`] holds the kmod-macros sources and lock file, which cargo-kmod builds with a
//! kernel tree's rustc; they are that crate's own files, found through its `links`
//! metadata by `build.rs`. [`FILES`] and [`get`] look the template files up by their path
//! in this crate (`new/lib.rs.j2`).

/// `cargo kmod new`'s templates (minijinja).
pub mod new {
    /// The package manifest.
    pub const CARGO_TOML: &str = include_str!("../new/Cargo.toml.j2");
    /// The package's `.gitignore`.
    pub const GITIGNORE: &str = include_str!("../new/gitignore.j2");
    /// The crate root of the `minimal` template.
    pub const LIB_RS: &str = include_str!("../new/lib.rs.j2");
    /// The crate root of the `platform` template.
    pub const PLATFORM_RS: &str = include_str!("../new/platform.rs.j2");
    /// The crate root of the `i2c` template.
    pub const I2C_RS: &str = include_str!("../new/i2c.rs.j2");
    /// The crate root of the `misc` template.
    pub const MISC_RS: &str = include_str!("../new/misc.rs.j2");
    /// The C helper of `--c`.
    pub const HELPER_C: &str = include_str!("../new/helper.c.j2");
    /// Its header.
    pub const HELPER_H: &str = include_str!("../new/helper.h.j2");

    /// Every template of `new/`, by its name there (`lib.rs.j2`).
    pub const FILES: &[(&str, &str)] = &[
        ("Cargo.toml.j2", CARGO_TOML),
        ("gitignore.j2", GITIGNORE),
        ("lib.rs.j2", LIB_RS),
        ("platform.rs.j2", PLATFORM_RS),
        ("i2c.rs.j2", I2C_RS),
        ("misc.rs.j2", MISC_RS),
        ("helper.c.j2", HELPER_C),
        ("helper.h.j2", HELPER_H),
    ];
}

/// The kbuild files a build generates (filled in by cargo-kmod's `plan`).
pub mod kbuild {
    /// A package's own `Kbuild`.
    pub const MODULE_KBUILD: &str = include_str!("../kbuild/module.Kbuild");
    /// The top `Kbuild` of the `M=` directory.
    pub const TOP_KBUILD: &str = include_str!("../kbuild/top.Kbuild");
    /// The `Makefile` beside it.
    pub const MAKEFILE: &str = include_str!("../kbuild/Makefile");
    /// The `Kbuild` that asks a tree's kbuild for its flags.
    pub const PROBE_KBUILD: &str = include_str!("../kbuild/probe.Kbuild");
}

/// The Kconfig fragments `cargo kmod init` merges onto a tree's base configuration.
pub mod fragments {
    /// Every dev tree: Rust, modules with unload, KUnit, what a qemu boot needs.
    pub const COMMON: &str = include_str!("../fragments/common.config");
    /// x86_64 dev trees.
    pub const X86_64: &str = include_str!("../fragments/x86_64.config");
    /// arm64 dev trees.
    pub const ARM64: &str = include_str!("../fragments/arm64.config");
    /// Modversions that work with Rust.
    pub const MODVERSIONS: &str = include_str!("../fragments/modversions.config");
    /// The debug kernel of dev trees (debug objects, lockdep, atomic sleep, kmemleak).
    pub const DEBUG: &str = include_str!("../fragments/debug.config");
    /// The sanitizer tree (`cargo kmod init --sanitize`): generic KASAN.
    pub const KASAN: &str = include_str!("../fragments/kasan.config");

    /// The SoC fragments of the board presets, by SoC family.
    pub mod boards {
        /// Broadcom BCM2835 family (`rpi3`, `rpi4`).
        pub const BCM2835: &str = include_str!("../fragments/boards/bcm2835.config");
    }
}

/// The helper kernel module that adds and removes test devices.
pub mod devices {
    /// Its C source.
    pub const HELPER: &str = include_str!("../devices/cargo_kmod_devices.c");
    /// The USB gadget function of USB test devices whose interface is not vendor-specific.
    pub const USB_FUNCTION: &str = include_str!("../devices/cargo_kmod_usb.c");
}

/// The kmod-macros proc macro, as cargo-kmod builds it with a kernel tree's rustc.
pub mod macros {
    include!(concat!(env!("OUT_DIR"), "/macros.rs"));
}

/// Every template file, by its path in this crate (`kbuild/Makefile`).
pub const FILES: &[(&str, &str)] = &[
    ("devices/cargo_kmod_devices.c", devices::HELPER),
    ("devices/cargo_kmod_usb.c", devices::USB_FUNCTION),
    ("fragments/arm64.config", fragments::ARM64),
    (
        "fragments/boards/bcm2835.config",
        fragments::boards::BCM2835,
    ),
    ("fragments/common.config", fragments::COMMON),
    ("fragments/debug.config", fragments::DEBUG),
    ("fragments/kasan.config", fragments::KASAN),
    ("fragments/modversions.config", fragments::MODVERSIONS),
    ("fragments/x86_64.config", fragments::X86_64),
    ("kbuild/Makefile", kbuild::MAKEFILE),
    ("kbuild/module.Kbuild", kbuild::MODULE_KBUILD),
    ("kbuild/probe.Kbuild", kbuild::PROBE_KBUILD),
    ("kbuild/top.Kbuild", kbuild::TOP_KBUILD),
    ("new/Cargo.toml.j2", new::CARGO_TOML),
    ("new/gitignore.j2", new::GITIGNORE),
    ("new/helper.c.j2", new::HELPER_C),
    ("new/helper.h.j2", new::HELPER_H),
    ("new/i2c.rs.j2", new::I2C_RS),
    ("new/lib.rs.j2", new::LIB_RS),
    ("new/misc.rs.j2", new::MISC_RS),
    ("new/platform.rs.j2", new::PLATFORM_RS),
];

/// The template file at `path` in this crate (`fragments/common.config`).
pub fn get(path: &str) -> Option<&'static str> {
    FILES
        .iter()
        .find(|(p, _)| *p == path)
        .map(|(_, text)| *text)
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    fn walk(dir: &Path, files: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, files);
            } else {
                files.push(path);
            }
        }
    }

    #[test]
    fn every_template_file_is_embedded() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut on_disk = Vec::new();
        for dir in ["devices", "fragments", "kbuild", "new"] {
            walk(&root.join(dir), &mut on_disk);
        }
        let mut on_disk: Vec<String> = on_disk
            .iter()
            .map(|p| p.strip_prefix(root).unwrap().to_str().unwrap().to_string())
            .collect();
        on_disk.sort();
        let embedded: Vec<&str> = super::FILES.iter().map(|(p, _)| *p).collect();
        assert_eq!(
            on_disk, embedded,
            "list new template files in `FILES`, sorted"
        );
        for (path, text) in super::FILES {
            assert_eq!(std::fs::read_to_string(root.join(path)).unwrap(), *text);
            assert_eq!(super::get(path), Some(*text));
        }
        for (name, text) in super::new::FILES {
            assert_eq!(super::get(&format!("new/{name}")), Some(*text));
        }
        assert_eq!(super::get("new/absent.j2"), None);
    }

    /// In the workspace, `DEP_KMOD_MACROS_DIR` is the sibling `kmod-macros/`.
    #[test]
    fn macro_sources_are_the_kmod_macros_files() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../kmod-macros");
        let mut on_disk = Vec::new();
        walk(&dir.join("src"), &mut on_disk);
        assert_eq!(on_disk.len(), super::macros::SOURCES.len());
        assert!(super::macros::SOURCES
            .iter()
            .any(|(p, _)| *p == "src/lib.rs"));
        for (path, text) in super::macros::SOURCES {
            assert_eq!(std::fs::read_to_string(dir.join(path)).unwrap(), *text);
        }
        assert_eq!(
            std::fs::read_to_string(dir.join("Cargo.lock")).unwrap(),
            super::macros::LOCK
        );
    }
}
