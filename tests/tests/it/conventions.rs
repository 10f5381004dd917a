//! Cargo's and kbuild's conventions, tried as a new user would, on the real dev trees and in
//! qemu on both arches: the crate root given only by `[lib] path` with the kernel's own
//! `module!`, and a module named `8123` (kbuild takes names that are not Rust identifiers)
//! built from a Rust crate and two C files.

use crate::common::*;

use std::path::PathBuf;

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

// ---- the conventions of these tests ----

/// The integration tests are one binary, `tests/it/main.rs`. With `autotests = false` cargo
/// discovers no other, so a test file put beside `it/` would silently never run, and one
/// inside `it/` that no `mod` declares neither: both fail here. One binary also means no
/// module allows dead code for helpers that only another binary used.
#[test]
fn one_test_binary() {
    let tests = root().join("tests/tests");
    let mut others: Vec<String> = std::fs::read_dir(&tests)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "it")
        .collect();
    others.sort();
    assert!(
        others.is_empty(),
        "`tests/tests/` holds {others:?} beside `it/`: make it a module of `tests/it/main.rs`"
    );
    let manifest = std::fs::read_to_string(root().join("tests/Cargo.toml")).unwrap();
    assert!(
        manifest.lines().any(|l| l.trim() == "autotests = false"),
        "{manifest}"
    );
    assert_eq!(manifest.matches("[[test]]").count(), 1, "{manifest}");
    assert!(
        manifest.contains("path = \"tests/it/main.rs\""),
        "{manifest}"
    );

    let it = tests.join("it");
    let dead_code = concat!("allow(", "dead_code)");
    let mut problems = Vec::new();
    for file in walk(&it) {
        let rel = file.strip_prefix(&it).unwrap().display().to_string();
        if file.extension().is_none_or(|e| e != "rs") {
            problems.push(format!("`{rel}` is not a Rust file"));
            continue;
        }
        if std::fs::read_to_string(&file).unwrap().contains(dead_code) {
            problems.push(format!("`{rel}` allows dead code"));
        }
        if rel == "main.rs" {
            continue;
        }
        // A module `name` (`name.rs` or `name/mod.rs`) is declared in the module file of the
        // folder that holds it: `main.rs` at the top, `mod.rs` below.
        let (name, folder) = if file.file_name().unwrap() == "mod.rs" {
            let dir = file.parent().unwrap();
            (dir.file_name().unwrap(), dir.parent().unwrap())
        } else {
            (file.file_stem().unwrap(), file.parent().unwrap())
        };
        let parent = if folder == it {
            it.join("main.rs")
        } else {
            folder.join("mod.rs")
        };
        let name = name.to_string_lossy();
        let declared = std::fs::read_to_string(&parent).is_ok_and(|text| {
            text.lines()
                .any(|l| l == format!("mod {name};") || l == format!("pub mod {name};"))
        });
        if !declared {
            problems.push(format!(
                "`{rel}` is not a module: no `mod {name};` in `{}`",
                parent.strip_prefix(&it).unwrap_or(&parent).display()
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// A helper is defined once, in `common`: the same name at the top level of two modules is
/// a copy, or two helpers that one name would confuse. Test functions are not helpers (their
/// module names them).
#[test]
fn no_helper_is_defined_twice() {
    let it = root().join("tests/tests/it");
    let mut defined: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for file in walk(&it) {
        if file.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let rel = file.strip_prefix(&it).unwrap().display().to_string();
        let mut test = false;
        for line in std::fs::read_to_string(&file).unwrap().lines() {
            if line.starts_with("#[test]") {
                test = true;
                continue;
            }
            if line.starts_with("#[") || line.starts_with("///") {
                continue;
            }
            let item = line
                .strip_prefix("pub ")
                .or_else(|| line.strip_prefix("pub(crate) "))
                .unwrap_or(line);
            if let Some(signature) = item.strip_prefix("fn ") {
                let name: String = signature
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !test {
                    defined.entry(name).or_default().push(rel.clone());
                }
            }
            test = false;
        }
    }
    // The scan sees the helpers every test uses.
    for known in ["kmod", "dev_tree", "scratch"] {
        assert!(defined.contains_key(known), "no `{known}` in {defined:?}");
    }
    let twice: Vec<String> = defined
        .iter()
        .filter(|(_, files)| files.len() > 1)
        .map(|(name, files)| format!("`{name}` in {}", files.join(", ")))
        .collect();
    assert!(
        twice.is_empty(),
        "helpers defined in more than one module (keep one, in `common`):\n{}",
        twice.join("\n")
    );
}
