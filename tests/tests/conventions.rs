//! Cargo's and kbuild's conventions, tried as a new user would, on the real dev trees and in
//! qemu on both arches: the crate root given only by `[lib] path` with the kernel's own
//! `module!`, and a module named `8123` (kbuild takes names that are not Rust identifiers)
//! built from a Rust crate and two C files.

mod common;
use common::*;

use std::path::{Path, PathBuf};

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// `cargo kmod test` of the package at `manifest` on `arch`: builds, boots, loads, unloads.
fn test_loads(manifest: &Path, arch: &str) -> std::process::Output {
    run(&mut kmod(&[
        "test",
        "--manifest-path",
        manifest.to_str().unwrap(),
        "--arch",
        arch,
    ]))
}

fn info_json(ko: &Path) -> serde_json::Value {
    let o = run(&mut kmod(&["info", "--json", ko.to_str().unwrap()]));
    ok(&o);
    serde_json::from_str(stdout(&o).lines().next().unwrap()).unwrap()
}

const KERNEL_MODULE_RS: &str = r#"// SPDX-License-Identifier: GPL-2.0
//! A module declared with the kernel's own `module!`, its root named by `[lib] path`.
use kernel::prelude::*;

module! {
    type: Blink,
    name: "blink",
    authors: ["cargo-kmod tests"],
    description: "crate root from [lib] path",
    license: "GPL",
}

struct Blink;

impl kernel::Module for Blink {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        pr_info!("blink: crate root from [lib] path\n");
        Ok(Blink)
    }
}
"#;

#[test]
fn lib_path_names_the_crate_root() {
    for arch in ["x86_64", "arm64"] {
        dev_tree(arch);
        let d = scratch();
        let manifest = d.path().join("Cargo.toml");
        write(
            &manifest,
            "[package]\nname = \"blink\"\nversion = \"0.1.0\"\nedition = \"2021\"\nlicense = \"GPL-2.0\"\n\n[lib]\npath = \"src/blink.rs\"\n\n[package.metadata.kmod]\n",
        );
        write(&d.path().join("src/blink.rs"), KERNEL_MODULE_RS);
        assert!(!d.path().join("src/lib.rs").exists());
        let o = test_loads(&manifest, arch);
        ok(&o);
        let ko = d.path().join(format!("target/kmod/{arch}/test/blink.ko"));
        assert_eq!(info_json(&ko)["name"], "blink");
    }
}

#[test]
fn crate_root_key_points_at_lib_path() {
    dev_tree("x86_64");
    let d = scratch();
    let manifest = d.path().join("Cargo.toml");
    write(
        &manifest,
        "[package]\nname = \"blink\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[package.metadata.kmod]\ncrate-root = \"src/blink.rs\"\n",
    );
    write(&d.path().join("src/lib.rs"), KERNEL_MODULE_RS);
    let e = fails(&run(&mut kmod(&[
        "build",
        "--manifest-path",
        manifest.to_str().unwrap(),
    ])));
    assert!(
        e.contains("`crate-root` in `[package.metadata.kmod]` of `")
            && e.contains("is not read: cargo's `[lib] path` names the crate root"),
        "{e}"
    );
    assert!(e.contains("help: remove `crate-root`"), "{e}");
}

const EIGHTY_RS: &str = r#"// SPDX-License-Identifier: GPL-2.0
//! Module `8123`: a Rust crate (`eighty`) and two C files.
use kernel::prelude::*;

extern "C" {
    fn first_part() -> i32;
    fn second_part() -> i32;
}

module! {
    type: Eighty,
    name: "8123",
    authors: ["cargo-kmod tests"],
    description: "a module whose name starts with a digit",
    license: "GPL",
}

struct Eighty;

impl kernel::Module for Eighty {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        // SAFETY: both are plain C functions of this module without arguments.
        let sum = unsafe { first_part() + second_part() };
        pr_info!("8123: parts add up to {}\n", sum);
        if sum != 8123 {
            return Err(EINVAL);
        }
        Ok(Eighty)
    }
}
"#;

#[test]
fn module_named_8123_from_rust_and_two_c_files() {
    for arch in ["x86_64", "arm64"] {
        dev_tree(arch);
        let d = scratch();
        let manifest = d.path().join("Cargo.toml");
        write(
            &manifest,
            "[package]\nname = \"eighty\"\nversion = \"0.1.0\"\nedition = \"2021\"\nlicense = \"GPL-2.0\"\n\n[package.metadata.kmod]\nname = \"8123\"\nc-sources = [\"src/first.c\", \"src/second.c\"]\n",
        );
        write(&d.path().join("src/lib.rs"), EIGHTY_RS);
        write(
            &d.path().join("src/first.c"),
            "// SPDX-License-Identifier: GPL-2.0\nint first_part(void);\nint first_part(void) { return 8000; }\n",
        );
        write(
            &d.path().join("src/second.c"),
            "// SPDX-License-Identifier: GPL-2.0\nint second_part(void);\nint second_part(void) { return 123; }\n",
        );
        let o = run(&mut kmod(&[
            "build",
            "--manifest-path",
            manifest.to_str().unwrap(),
            "--arch",
            arch,
        ]));
        ok(&o);
        let ko: PathBuf = d.path().join(format!("target/kmod/{arch}/8123.ko"));
        let info = info_json(&ko);
        assert_eq!(info["name"], "8123", "{info}");
        assert_eq!(info["arch"], arch);
        // Loads (its init checks that both C parts are linked in) and unloads in qemu.
        let o = test_loads(&manifest, arch);
        ok(&o);
        assert!(stdout(&o).contains("test result: ok"), "{}", stdout(&o));
    }
}

const FEATURES_RS: &str = r#"// SPDX-License-Identifier: GPL-2.0
use kernel::prelude::*;

kmod_macros::module! {
    type: Flags,
}

struct Flags;

impl kernel::Module for Flags {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        Ok(Flags)
    }
}

#[cfg(test)]
#[kunit_tests(flags_tests)]
mod tests {
    #[cfg(feature = "extra")]
    #[test]
    fn only_with_extra() {}

    #[test]
    fn always() {}
}
"#;

/// `test` and `run` take cargo's build flags like `build` does: `--release` and
/// `--features` reach the test build, and `--offline`/`--locked` are taken as cargo takes them.
#[test]
fn test_takes_cargos_build_flags() {
    let arch = "x86_64";
    dev_tree(arch);
    let d = scratch();
    let manifest = d.path().join("Cargo.toml");
    write(
        &manifest,
        "[package]\nname = \"flags\"\nversion = \"0.1.0\"\nedition = \"2021\"\nlicense = \"GPL-2.0\"\n\n[features]\nextra = []\n\n[package.metadata.kmod]\n",
    );
    write(&d.path().join("src/lib.rs"), FEATURES_RS);
    let m = manifest.to_str().unwrap();
    let o = run(&mut kmod(&["test", "--manifest-path", m, "--arch", arch]));
    ok(&o);
    let out = stdout(&o);
    // A case compiled out by `#[cfg]` is reported as ignored, like `cargo test`'s.
    assert!(out.contains("only_with_extra ... ignored"), "{out}");
    assert!(out.contains("test result: ok. 1 passed"), "{out}");
    let o = run(&mut kmod(&[
        "test",
        "--manifest-path",
        m,
        "--arch",
        arch,
        "--release",
        "--features",
        "extra",
        "--offline",
        "--locked",
    ]));
    ok(&o);
    let out = stdout(&o);
    assert!(out.contains("only_with_extra ... ok"), "{out}");
    assert!(out.contains("test result: ok. 2 passed"), "{out}");
}
