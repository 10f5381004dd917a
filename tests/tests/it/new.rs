//! `cargo kmod new`: bad names and existing directories are refused with messages that say
//! why; a fresh scaffold (Rust, and Rust + C) builds for both arches with no edits.

use crate::common::*;

#[test]
fn creates_a_package() {
    let tmp = scratch();
    let o = run(&mut new_in(tmp.path(), &["hello"]));
    ok(&o);
    assert!(
        stderr(&o).contains("Created kernel module `hello` package in `hello`"),
        "{}",
        stderr(&o)
    );
    let manifest = std::fs::read_to_string(tmp.path().join("hello/Cargo.toml")).unwrap();
    assert!(
        manifest.contains("authors = [\"Test Author <test@example.com>\"]"),
        "{manifest}"
    );
    assert!(manifest.contains("license = \"GPL-2.0\""), "{manifest}");
    assert!(manifest.contains("[package.metadata.kmod]"), "{manifest}");
    let lib = std::fs::read_to_string(tmp.path().join("hello/src/lib.rs")).unwrap();
    assert!(
        lib.contains("kmod_macros::module!") && lib.contains("#[kunit_tests(hello_tests)]"),
        "{lib}"
    );
    assert!(tmp.path().join("hello/.gitignore").is_file());
    assert!(!tmp.path().join("hello/src/helper.c").exists());
    // rust-analyzer's settings: check-on-save through `cargo kmod check`, said in the output.
    let settings: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(tmp.path().join("hello/.vscode/settings.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        settings["rust-analyzer.check.overrideCommand"],
        serde_json::json!(["cargo", "kmod", "check", "--message-format", "json"])
    );
    assert!(
        stderr(&o).contains("rust-analyzer settings in `hello/.vscode/settings.json`"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn no_editor_writes_no_editor_settings() {
    let tmp = scratch();
    let o = run(&mut new_in(tmp.path(), &["plain", "--no-editor"]));
    ok(&o);
    assert!(!tmp.path().join("plain/.vscode").exists());
    assert!(!stderr(&o).contains("rust-analyzer"), "{}", stderr(&o));
}

#[test]
fn c_flag_adds_source_header_and_bindings() {
    let tmp = scratch();
    ok(&run(&mut new_in(
        tmp.path(),
        &["drv", "--c", "--path", "sub/dir"],
    )));
    let dir = tmp.path().join("sub/dir");
    assert!(dir.join("src/helper.c").is_file());
    assert!(dir.join("include/helper.h").is_file());
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    assert!(
        manifest
            .contains(r#"bindings = [{ header = "include/helper.h", allowlist = ["drv_c_.*"] }]"#),
        "{manifest}"
    );
    let lib = std::fs::read_to_string(dir.join("src/lib.rs")).unwrap();
    assert!(
        lib.contains(r#"include!(concat!(env!("OUT_DIR"), "/helper.rs"));"#),
        "{lib}"
    );
}

#[test]
fn dashes_become_underscores_and_the_user_is_told() {
    let tmp = scratch();
    let o = run(&mut new_in(tmp.path(), &["my-driver"]));
    ok(&o);
    assert!(
        stderr(&o).contains(
            "note: the module is named `my_driver`: kbuild turns `-` into `_` in module names"
        ),
        "{}",
        stderr(&o)
    );
    let manifest = std::fs::read_to_string(tmp.path().join("my-driver/Cargo.toml")).unwrap();
    assert!(
        manifest.contains("name = \"my-driver\"") && manifest.contains("name = \"my_driver\""),
        "{manifest}"
    );
}

#[test]
fn bad_names_are_refused_with_the_reason() {
    let tmp = scratch();
    let cases = [
        ("my.driver", "error: `my.driver` is not a valid module name: `.` is not allowed"),
        ("2fast", "error: `2fast` is not a valid module name: it starts with a digit"),
        ("kernel", "error: `kernel` cannot be a module name: it is a Rust keyword or a crate every module uses"),
        ("héllo", "error: `héllo` is not a valid module name: `é` is not allowed"),
    ];
    for (name, message) in cases {
        let err = fails(&run(&mut new_in(tmp.path(), &[name])));
        assert!(err.contains(message), "{name}: {err}");
        assert!(
            err.contains("help: kernel module names use only") || name == "kernel",
            "{name}: {err}"
        );
    }
    let long = "a".repeat(56);
    let err = fails(&run(&mut new_in(tmp.path(), &[&long])));
    assert!(
        err.contains("it is 56 characters long") && err.contains("at most 55 characters"),
        "{err}"
    );
    // Nothing was left behind by the refusals.
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
}

#[test]
fn an_existing_directory_is_refused() {
    let tmp = scratch();
    std::fs::create_dir(tmp.path().join("hello")).unwrap();
    std::fs::write(tmp.path().join("hello/keep.txt"), "mine").unwrap();
    let err = fails(&run(&mut new_in(tmp.path(), &["hello"])));
    assert!(
        err.contains("error: destination `hello` already exists"),
        "{err}"
    );
    assert!(err.contains("help: use `--path`"), "{err}");
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("hello/keep.txt")).unwrap(),
        "mine"
    );
    assert_eq!(
        std::fs::read_dir(tmp.path().join("hello")).unwrap().count(),
        1
    );
}

/// A fresh scaffold builds with no edits: the Rust-only and the Rust + C one, both arches.
#[test]
fn fresh_scaffolds_build_for_both_arches() {
    let tmp = scratch();
    ok(&run(&mut new_in(tmp.path(), &["fresh"])));
    ok(&run(&mut new_in(tmp.path(), &["fresh-c", "--c"])));
    for (dir, module) in [("fresh", "fresh"), ("fresh-c", "fresh_c")] {
        for arch in ["x86_64", "arm64"] {
            let _ = dev_tree(arch);
            let pkg = tmp.path().join(dir);
            let o = run(kmod(&["build", "--arch", arch]).current_dir(&pkg));
            ok(&o);
            let ko = pkg.join(format!("target/kmod/{arch}/{module}.ko"));
            assert!(
                ko.is_file(),
                "no `{}` after the build\n{}",
                ko.display(),
                stderr(&o)
            );
        }
    }
}
