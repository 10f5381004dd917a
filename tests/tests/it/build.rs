//! `cargo kmod build` on the real x86_64 dev tree: no-op and rebuild behaviour, diagnostics
//! that name the user's files, JSON output, features, `ide`, and every bad input of the
//! build issue with its message.

use crate::common::*;

use std::path::PathBuf;

#[test]
fn noop_rebuild_is_fresh_and_changes_rebuild() {
    dev_tree("x86_64");
    let d = scratch();
    let manifest = fixture_package(d.path(), "fixture-noop", "", "");
    let o = build(&manifest, &[]);
    ok(&o);
    let ko = d.path().join("target/kmod/x86_64/fixture_noop.ko");
    assert!(ko.is_file());
    assert_eq!(modinfo_value(&ko, "description"), "first description");

    let o = build(&manifest, &[]);
    ok(&o);
    assert!(stderr(&o).contains("Fresh fixture_noop"), "{}", stderr(&o));

    // A manifest change reaches .modinfo even though kbuild cannot see environment changes.
    let text = std::fs::read_to_string(&manifest)
        .unwrap()
        .replace("first description", "second description");
    std::fs::write(&manifest, text).unwrap();
    let o = build(&manifest, &[]);
    ok(&o);
    assert!(
        stderr(&o).contains("Compiling fixture_noop v0.4.2"),
        "{}",
        stderr(&o)
    );
    assert_eq!(modinfo_value(&ko, "description"), "second description");

    // A source change rebuilds.
    let lib = d.path().join("src/lib.rs");
    std::fs::write(&lib, format!("{LIB_RS}\n// touched\n")).unwrap();
    let o = build(&manifest, &[]);
    ok(&o);
    assert!(!stderr(&o).contains("Fresh"), "{}", stderr(&o));
}

#[test]
fn json_artifacts_and_features() {
    let tree = dev_tree("x86_64");
    let d = scratch();
    std::fs::write(d.path().join("extra.c"), "").unwrap();
    let manifest = fixture_package(
        d.path(),
        "fixture-feat",
        "[package.metadata.kmod.features.extra]\nc-sources = [\"src/extra.c\"]",
        "[features]\nextra = []\n",
    );
    std::fs::write(
        d.path().join("src/extra.c"),
        "// SPDX-License-Identifier: GPL-2.0\n#include <linux/module.h>\nint fixture_extra(void) { return 42; }\n",
    )
    .unwrap();
    let o = build(
        &manifest,
        &["--features", "extra", "--message-format", "json"],
    );
    ok(&o);
    let lines: Vec<serde_json::Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{}", stdout(&o));
    let a = &lines[0];
    assert_eq!(a["reason"], "kmod-artifact");
    assert_eq!(a["module"], "fixture_feat");
    assert_eq!(a["arch"], "x86_64");
    let release = std::fs::read_to_string(tree.join("include/config/kernel.release")).unwrap();
    assert_eq!(a["kernel_release"], release.trim());
    assert!(a["vermagic"]
        .as_str()
        .unwrap()
        .starts_with(&format!("{} ", release.trim())));
    let ko = PathBuf::from(a["path"].as_str().unwrap());
    // The feature's C object is linked in: its symbol is in the .ko.
    let syms = std::process::Command::new("llvm-nm-19")
        .arg(&ko)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&syms.stdout).contains("fixture_extra"));
    let o = build(&manifest, &["--features", "nope"]);
    assert!(fails(&o).contains("package `fixture-feat` does not have feature `nope`"));
}

#[test]
fn compiler_errors_name_the_users_file_and_leave_no_ko() {
    dev_tree("x86_64");
    let d = scratch();
    let manifest = fixture_package(d.path(), "fixture-broken", "", "");
    std::fs::write(
        d.path().join("src/lib.rs"),
        LIB_RS.replace("Ok(Fixture)", "Ok(Fixture) this is not rust"),
    )
    .unwrap();
    let o = build(&manifest, &[]);
    let err = fails(&o);
    let lib = d.path().join("src/lib.rs").canonicalize().unwrap();
    assert!(
        err.contains(&format!("{}:", lib.display())),
        "diagnostics must name the user's file:\n{err}"
    );
    assert!(
        err.contains("error: could not compile `fixture_broken`"),
        "{err}"
    );
    assert!(
        !d.path()
            .join("target/kmod/x86_64/fixture_broken.ko")
            .exists(),
        "no .ko after a failed build"
    );
}

#[test]
fn bad_inputs_are_named() {
    let tree = dev_tree("x86_64");
    let d = scratch();
    // Unknown manifest key.
    let manifest = fixture_package(d.path(), "fixture-bad", "c-source = [\"x.c\"]", "");
    let err = fails(&build(&manifest, &[]));
    assert!(
        err.contains("unknown key `c-source` in `[package.metadata.kmod]` of `"),
        "{err}"
    );
    assert!(err.contains("help: did you mean `c-sources`?"), "{err}");
    // A missing C source.
    let manifest = fixture_package(d.path(), "fixture-bad", "c-sources = [\"src/gone.c\"]", "");
    let err = fails(&build(&manifest, &[]));
    assert!(
        err.contains("src/gone.c` listed in `") && err.contains("does not exist"),
        "{err}"
    );
    // A header bindgen rejects: clang's own message is shown.
    std::fs::create_dir_all(d.path().join("include")).unwrap();
    std::fs::write(d.path().join("include/bad.h"), "int broken(;\n").unwrap();
    let manifest = fixture_package(
        d.path(),
        "fixture-bad",
        "bindings = [{ header = \"include/bad.h\" }]",
        "",
    );
    let err = fails(&build(&manifest, &[]));
    assert!(
        err.contains("bindgen rejected `") && err.contains("include/bad.h`"),
        "{err}"
    );
    assert!(err.contains("error: expected"), "clang's message: {err}");
    // An arch that does not match the tree.
    let manifest = fixture_package(d.path(), "fixture-bad", "", "");
    let m = manifest.to_str().unwrap();
    let o = run(&mut kmod(&[
        "build",
        "--manifest-path",
        m,
        "--kdir",
        tree.to_str().unwrap(),
        "--arch",
        "arm64",
    ]));
    let err = fails(&o);
    assert!(err.contains("is for x86_64, not arm64"), "{err}");
    // A rustc other than the tree's: refused before kbuild.
    let bin = scratch();
    let fake = bin.path().join("rustc");
    std::fs::write(
        &fake,
        "#!/bin/sh\necho 'rustc 1.80.0 (051478957 2024-07-21)'\n",
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let o = run(kmod(&["build", "--manifest-path", m, "--arch", "x86_64"]).env("RUSTC", &fake));
    let err = fails(&o);
    assert!(
        err.contains("`rustc 1.80.0 (051478957 2024-07-21)` differs from the rustc that built `"),
        "{err}"
    );
    assert!(err.contains("E0514"), "{err}");
}

#[test]
fn a_kdir_without_rust_is_refused() {
    let tree = dev_tree("x86_64");
    let d = scratch();
    let config = std::fs::read_to_string(tree.join(".config"))
        .unwrap()
        .replace("CONFIG_RUST=y", "# CONFIG_RUST is not set");
    std::fs::write(d.path().join(".config"), config).unwrap();
    std::fs::create_dir_all(d.path().join("include/config")).unwrap();
    std::fs::copy(
        tree.join("include/config/kernel.release"),
        d.path().join("include/config/kernel.release"),
    )
    .unwrap();
    let p = scratch();
    let manifest = fixture_package(p.path(), "fixture-norust", "", "");
    let o =
        run(kmod(&["build", "--manifest-path", manifest.to_str().unwrap()]).env("KDIR", d.path()));
    let err = fails(&o);
    assert!(
        err.contains("has no Rust support: `CONFIG_RUST` is not set in its `.config`"),
        "{err}"
    );
}

#[test]
fn duplicate_module_names_in_a_workspace_are_refused() {
    let d = scratch();
    std::fs::write(
        d.path().join("Cargo.toml"),
        "[workspace]\nresolver = \"2\"\nmembers = [\"a\", \"b\"]\n",
    )
    .unwrap();
    fixture_package(&d.path().join("a"), "dup-a", "name = \"dup\"", "");
    fixture_package(&d.path().join("b"), "dup-b", "name = \"dup\"", "");
    let o = run(&mut kmod(&[
        "build",
        "--manifest-path",
        d.path().join("Cargo.toml").to_str().unwrap(),
    ]));
    let err = fails(&o);
    assert!(
        err.contains("two packages build a module named `dup`"),
        "{err}"
    );
}

#[test]
fn named_targets_select_arch_and_tree() {
    let tree = dev_tree("arm64");
    let d = scratch();
    std::fs::write(
        d.path().join("Cargo.toml"),
        format!(
            "[workspace]\nresolver = \"2\"\nmembers = [\"m\"]\n\n[workspace.metadata.kmod.targets.board]\narch = \"arm64\"\nkdir = \"{}\"\n",
            tree.display()
        ),
    )
    .unwrap();
    fixture_package(&d.path().join("m"), "fixture-board", "", "");
    let ws = d.path().join("Cargo.toml");
    let o = run(&mut kmod(&[
        "build",
        "--manifest-path",
        ws.to_str().unwrap(),
        "--target",
        "board",
        "--message-format",
        "json",
    ]));
    ok(&o);
    assert!(stdout(&o).contains("\"arch\":\"arm64\""), "{}", stdout(&o));
    let o = run(&mut kmod(&[
        "build",
        "--manifest-path",
        ws.to_str().unwrap(),
        "--target",
        "bored",
    ]));
    assert!(fails(&o).contains("help: did you mean `board`?"));
}

#[test]
fn ide_writes_a_rust_project_with_the_module_crate() {
    dev_tree("x86_64");
    let d = scratch();
    let manifest = fixture_package(d.path(), "fixture-ide", "", "");
    let o = run(&mut kmod(&[
        "ide",
        "--manifest-path",
        manifest.to_str().unwrap(),
        "--arch",
        "x86_64",
    ]));
    ok(&o);
    let project: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.path().join("rust-project.json")).unwrap())
            .unwrap();
    let crates = project["crates"].as_array().unwrap();
    let names: Vec<&str> = crates
        .iter()
        .filter_map(|c| c["display_name"].as_str())
        .collect();
    assert!(
        names.contains(&"kernel") && names.contains(&"core"),
        "{names:?}"
    );
    let m = crates
        .iter()
        .find(|c| c["display_name"] == "fixture_ide")
        .unwrap();
    assert_eq!(
        m["root_module"].as_str().unwrap(),
        d.path()
            .canonicalize()
            .unwrap()
            .join("src/lib.rs")
            .to_str()
            .unwrap()
    );
    assert_eq!(m["env"]["KMOD_NAME"], "fixture_ide");
    let macros = crates
        .iter()
        .find(|c| c["display_name"] == "kmod_macros")
        .unwrap();
    assert_eq!(macros["is_proc_macro"], true);
}
