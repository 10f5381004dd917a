//! `[dependencies]` in module packages: real crates from crates.io (fetched once into cargo's
//! cache), compiled for the kernel with the tree's rustc and kbuild's flags, linked into the
//! `.ko`, and exercised by KUnit in qemu.
//!
//! - `examples/crates` (bitflags, heapless, paste) builds and its KUnit cases pass on both
//!   arches; `ide` lists its crates; a no-op rebuild is `Fresh`;
//! - `tests/fixtures/crates`: a crate with a build script (`gen-user`), two modules linking
//!   the same crates loaded together (`share-a`, `share-b`), and crates that are refused
//!   (`std-user`, `std-direct`, `alloc-user`);
//! - `--offline` after a fetch, `--locked` with a stale lock file.

use crate::common::*;

use std::path::{Path, PathBuf};

/// The example builds for both arches and its KUnit cases (one per crate kind) pass in qemu.
#[test]
fn example_builds_and_its_tests_pass_on_both_arches() {
    let (_tmp, dir) = copy_of("examples/crates");
    for arch in ARCHES {
        dev_tree(arch);
        let err = kmod_ok(&dir, &["build", "--arch", arch]);
        let ko = dir.join(format!("target/kmod/{arch}/crates.ko"));
        assert!(ko.is_file(), "no `{}`\n{err}", ko.display());
        // The crates' code is in the module, and none of it is exported.
        let secs = sections(&ko);
        assert!(
            !secs.iter().any(|s| s.starts_with("__ksymtab")),
            "{arch}: a dependency symbol is exported: {secs:?}"
        );
        let o = run(kmod(&["test", "--arch", arch]).current_dir(&dir));
        let out = stdout(&o);
        ok(&o);
        for case in [
            "crates_tests::bitflags_combine ... ok",
            "crates_tests::paste_generated_setters ... ok",
            "crates_tests::heapless_history_keeps_the_last_four ... ok",
            "crates_tests::heapless_string_names_colours ... ok",
            "crates_tests::heapless_map_counts_states ... ok",
        ] {
            assert!(out.contains(case), "{arch}: no `{case}` in\n{out}");
        }
        assert!(out.contains("5 passed; 0 failed"), "{arch}:\n{out}");
    }
}

/// A second build with nothing changed is a no-op; touching the lock file is not.
#[test]
fn rebuild_without_changes_is_fresh_and_the_lock_file_counts() {
    let (_tmp, dir) = copy_of("examples/crates");
    kmod_ok(&dir, &["build", "--arch", "x86_64"]);
    let err = kmod_ok(&dir, &["build", "--arch", "x86_64"]);
    assert!(err.contains("Fresh"), "{err}");
    let lock = dir.join("Cargo.lock");
    let text = std::fs::read(&lock).unwrap();
    std::fs::write(&lock, text).unwrap();
    let err = kmod_ok(&dir, &["build", "--arch", "x86_64"]);
    assert!(
        !err.contains("Fresh"),
        "a changed `Cargo.lock` must rebuild\n{err}"
    );
    let err = kmod_ok(&dir, &["build", "--arch", "x86_64"]);
    assert!(err.contains("Fresh"), "{err}");
}

/// The no-op fingerprint covers the sources of local (path) dependencies: editing one
/// rebuilds the crate and relinks the module.
#[test]
fn editing_a_local_dependency_rebuilds() {
    let (_tmp, dir) = copy_of("tests/fixtures/crates");
    dev_tree("x86_64");
    let args = ["build", "--arch", "x86_64", "-p", "gen-user"];
    kmod_ok(&dir, &args);
    assert!(kmod_ok(&dir, &args).contains("Fresh"));
    let lib = dir.join("gen-consts/src/lib.rs");
    let text = std::fs::read_to_string(&lib).unwrap();
    std::fs::write(
        &lib,
        format!("{text}\n/// Added by the test.\npub const ADDED: u32 = 1;\n"),
    )
    .unwrap();
    let err = kmod_ok(&dir, &args);
    assert!(!err.contains("Fresh"), "{err}");
    assert!(err.contains("Compiling gen-consts"), "{err}");
    assert!(kmod_ok(&dir, &args).contains("Fresh"));
}

/// `--offline` works from cargo's cache after a fetch; `--locked` refuses a stale lock file.
#[test]
fn offline_after_a_fetch_and_locked_with_a_stale_lock() {
    let (_tmp, dir) = copy_of("examples/crates");
    // The first build fetches (or finds the crates in cargo's cache).
    kmod_ok(&dir, &["build", "--arch", "arm64"]);
    // A fresh target dir: every crate is compiled again, without the network.
    std::fs::remove_dir_all(dir.join("target")).unwrap();
    let err = kmod_ok(&dir, &["build", "--arch", "arm64", "--offline", "--locked"]);
    assert!(!err.contains("Downloading"), "{err}");
    assert!(dir.join("target/kmod/arm64/crates.ko").is_file());

    let manifest = dir.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(
        &manifest,
        text.replace(
            "paste = \"1\"",
            "paste = \"1\"\nbyteorder = { version = \"1\", default-features = false }",
        ),
    )
    .unwrap();
    let o = run(kmod(&["build", "--arch", "arm64", "--locked", "--offline"]).current_dir(&dir));
    let err = fails(&o);
    assert!(err.contains("Cargo.lock"), "{err}");
    assert!(err.contains("--locked"), "{err}");
}

/// A crate whose build script generates code and sets a cfg and an env var, seeing the
/// kernel target (`CARGO_CFG_TARGET_OS=none`, `panic=abort`) and the features cargo enabled.
#[test]
fn a_build_script_runs_as_under_cargo() {
    let (_tmp, dir) = copy_of("tests/fixtures/crates");
    for arch in ARCHES {
        dev_tree(arch);
        let o = run(kmod(&["test", "--arch", arch, "-p", "gen-user"]).current_dir(&dir));
        let out = stdout(&o);
        ok(&o);
        assert!(out.contains("3 passed; 0 failed"), "{arch}:\n{out}");
    }
}

/// Two modules of one workspace link the same crates (a local one with a global function and
/// a static, and heapless): compiled once, each `.ko` has its own copy, and both load in one
/// boot (modpost and the loader see no clash).
#[test]
fn two_modules_with_the_same_crate_load_together() {
    let (_tmp, dir) = copy_of("tests/fixtures/crates");
    let arch = "x86_64";
    dev_tree(arch);
    let args = ["build", "--arch", arch, "-p", "share-a", "-p", "share-b"];
    kmod_ok(&dir, &args);
    for m in ["share_a", "share_b"] {
        let ko = dir.join(format!("target/kmod/{arch}/{m}.ko"));
        let syms = defined_symbols(&ko, "shared_counter_bump");
        assert_eq!(syms.len(), 1, "{m}: {syms:?}");
        assert!(
            !sections(&ko).iter().any(|s| s.starts_with("__ksymtab")),
            "{m} exports something"
        );
    }
    // Compiled once for both modules: one rlib per crate in the cache.
    let rlibs: Vec<PathBuf> = walk(&dir.join(format!("target/kmod/{arch}")))
        .into_iter()
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("libheapless-") && n.ends_with(".rlib"))
        })
        .collect();
    assert_eq!(rlibs.len(), 1, "{rlibs:?}");
    let o =
        run(kmod(&["test", "--arch", arch, "-p", "share-a", "-p", "share-b"]).current_dir(&dir));
    let out = stdout(&o);
    ok(&o);
    for case in [
        "share_a_tests::own_counter ... ok",
        "share_b_tests::own_counter ... ok",
        "share_a_tests::heapless_works ... ok",
        "share_b_tests::heapless_works ... ok",
    ] {
        assert!(out.contains(case), "no `{case}` in\n{out}");
    }
}

/// Crates that need `std`, or `alloc` (Linux 7.x gives modules none), are one-line errors
/// naming the crate, the path that pulled it in and the fix.
#[test]
fn std_and_alloc_crates_are_refused_with_the_path_and_the_fix() {
    let (_tmp, dir) = copy_of("tests/fixtures/crates");
    dev_tree("x86_64");
    let release = {
        let t = dev_tree("x86_64");
        std::fs::read_to_string(t.join("include/config/kernel.release"))
            .unwrap()
            .trim()
            .to_string()
    };
    let refused = |pkg: &str| -> (String, String) {
        let o = run(kmod(&["build", "--arch", "x86_64", "-p", pkg]).current_dir(&dir));
        error_and_help(&fails(&o))
    };
    let (e, h) = refused("std-user");
    assert_eq!(
        e,
        "error: dependency `hex` needs `std`, which kernel modules do not have: `std-user -> std-wrapper -> hex`"
    );
    assert!(
        h.contains("`hex` has a `std` feature, turned on through `std-wrapper`"),
        "{h}"
    );
    assert!(
        h.contains("`std-wrapper` with `default-features = false`"),
        "{h}"
    );

    let (e, h) = refused("std-direct");
    assert_eq!(
        e,
        "error: dependency `strsim` needs `std`, which kernel modules do not have: `std-direct -> strsim`"
    );
    assert!(
        h.contains("`strsim` has no `std` feature to turn off"),
        "{h}"
    );

    let (e, h) = refused("alloc-user");
    assert_eq!(
        e,
        format!(
            "error: dependency `anyhow` needs `alloc`, which Linux {release} does not give modules: `alloc-user -> anyhow`"
        )
    );
    assert!(h.contains("use a `no_std` crate"), "{h}");
}

/// `cargo kmod ide` lists the dependency crates, with the module crate depending on them and
/// the proc macro's dylib.
#[test]
fn ide_lists_the_dependency_crates() {
    let (_tmp, dir) = copy_of("examples/crates");
    dev_tree("x86_64");
    kmod_ok(&dir, &["ide", "--arch", "x86_64"]);
    let text = std::fs::read_to_string(dir.join("rust-project.json")).unwrap();
    let project: serde_json::Value = serde_json::from_str(&text).unwrap();
    let crates = project["crates"].as_array().unwrap();
    let find = |name: &str| {
        crates
            .iter()
            .position(|c| c["display_name"] == name)
            .unwrap_or_else(|| panic!("no crate `{name}` in rust-project.json"))
    };
    let module = &crates[find("crates")];
    for dep in ["bitflags", "heapless", "paste"] {
        let i = find(dep);
        assert!(
            module["deps"]
                .as_array()
                .unwrap()
                .iter()
                .any(|d| d["crate"] == i && d["name"] == dep),
            "`crates` does not depend on `{dep}`: {module}"
        );
    }
    let paste = &crates[find("paste")];
    assert_eq!(paste["is_proc_macro"], true);
    assert!(Path::new(paste["proc_macro_dylib_path"].as_str().unwrap()).is_file());
    let heapless = &crates[find("heapless")];
    let hash32 = find("hash32");
    assert!(
        heapless["deps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["crate"] == hash32),
        "{heapless}"
    );
}
