//! Plan rendering: snapshots of the generated Kbuild and Makefile, and bad-input errors.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use super::*;
use crate::manifest::{Binding, FeatureObjects, ModuleSpec};
use crate::tree::config::KConfig;
use crate::tree::{Arch, KernelTree};

fn tree() -> KernelTree {
    KernelTree {
        dir: PathBuf::from("/kdir"),
        srctree: PathBuf::from("/src"),
        config: KConfig::parse("CONFIG_X86_64=y\nCONFIG_CC_IS_GCC=y\nCONFIG_RUST=y\n"),
        arch: Arch::X86_64,
        release: "7.2.13".into(),
    }
}

fn module(dir: &Path) -> ModuleSpec {
    std::fs::create_dir_all(dir.join("src")).unwrap();
    for f in ["src/lib.rs", "src/helper.c", "src/mixed.c", "src/spi.c"] {
        std::fs::write(dir.join(f), "").unwrap();
    }
    ModuleSpec {
        package: "mixed-demo".into(),
        version: "0.2.0".into(),
        authors: vec!["Ada <ada@example.com>".into(), "Bob".into()],
        description: Some("costs $5 # not a comment".into()),
        license: Some("GPL-2.0".into()),
        manifest_path: dir.join("Cargo.toml"),
        dir: dir.to_path_buf(),
        name: "mixed".into(),
        crate_root: dir.join("src/lib.rs"),
        c_sources: vec![dir.join("src/helper.c"), dir.join("src/mixed.c")],
        include_dirs: vec![dir.join("include")],
        ccflags: vec!["-DDEMO=1".into()],
        rustflags: vec![],
        bindings: vec![Binding {
            header: dir.join("include/helper.h"),
            allowlist: vec![],
            blocklist: vec![],
        }],
        extra_symbols: vec![],
        kdir: None,
        arch: None,
        feature_objects: [(
            "spi".to_string(),
            FeatureObjects {
                c_sources: vec![dir.join("src/spi.c")],
                ccflags: vec![],
                rustflags: vec![],
            },
        )]
        .into(),
        cargo_features: [("spi".to_string(), vec![])].into(),
        module_deps: vec![],
        crate_deps: vec![],
    }
}

/// Replace the temp dir so snapshots are stable.
fn redact(text: &str, dir: &Path) -> String {
    text.replace(&dir.display().to_string(), "/work/mixed")
}

#[test]
fn module_kbuild_snapshot() {
    let d = tempfile::tempdir().unwrap();
    let m = module(d.path());
    let t = tree();
    let features: BTreeMap<String, BTreeSet<String>> =
        [("mixed-demo".to_string(), ["spi".to_string()].into())].into();
    let plan = render(&PlanInput {
        modules: vec![&m],
        tree: &t,
        base: d.path().join("target/kmod/x86_64"),
        test: true,
        features,
        macros: Some(PathBuf::from(
            "/home/u/.cargo-kmod/macros/abc/libkmod_macros.so",
        )),
        extra_symbols: vec![PathBuf::from("/other/Module.symvers")],
        deps: BTreeMap::new(),
    })
    .unwrap();
    let names: Vec<String> = plan
        .files
        .iter()
        .map(|(p, _)| redact(&p.display().to_string(), d.path()))
        .collect();
    assert_eq!(
        names,
        [
            "/work/mixed/target/kmod/x86_64/mixed-demo/Kbuild",
            "/work/mixed/target/kmod/x86_64/Kbuild",
            "/work/mixed/target/kmod/x86_64/Makefile"
        ]
    );
    insta::assert_snapshot!("module_kbuild", redact(&plan.files[0].1, d.path()));
    insta::assert_snapshot!("top_kbuild", redact(&plan.files[1].1, d.path()));
    insta::assert_snapshot!("makefile", redact(&plan.files[2].1, d.path()));
    assert_eq!(
        plan.modules[0].built_ko,
        d.path().join("target/kmod/x86_64/mixed-demo/mixed.ko")
    );
    assert!(plan
        .make_args
        .contains(&"KBUILD_EXTRA_SYMBOLS=/other/Module.symvers".to_string()));
}

#[test]
fn missing_sources_are_named() {
    let d = tempfile::tempdir().unwrap();
    let mut m = module(d.path());
    m.c_sources.push(d.path().join("src/gone.c"));
    let t = tree();
    let input = PlanInput {
        modules: vec![&m],
        tree: &t,
        base: d.path().join("t"),
        test: false,
        features: BTreeMap::new(),
        macros: None,
        extra_symbols: vec![],
        deps: BTreeMap::new(),
    };
    let e = render(&input).unwrap_err();
    let (msg, hint, _) = crate::error::render(&e);
    assert!(
        msg.starts_with("C source `")
            && msg.contains("src/gone.c` listed in `")
            && msg.ends_with("Cargo.toml` does not exist"),
        "{msg}"
    );
    assert!(hint.unwrap().contains("c-sources"));

    let mut m = module(d.path());
    m.crate_root = d.path().join("src/main.rs");
    let input = PlanInput {
        modules: vec![&m],
        tree: &t,
        base: d.path().join("t"),
        test: false,
        features: BTreeMap::new(),
        macros: None,
        extra_symbols: vec![],
        deps: BTreeMap::new(),
    };
    let e = render(&input).unwrap_err();
    assert!(e.to_string().contains("src/main.rs` of `"), "{e}");
}

#[test]
fn paths_with_spaces_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let spaced = d.path().join("my module");
    let m = module(&spaced);
    let t = tree();
    let input = PlanInput {
        modules: vec![&m],
        tree: &t,
        base: d.path().join("t"),
        test: false,
        features: BTreeMap::new(),
        macros: None,
        extra_symbols: vec![],
        deps: BTreeMap::new(),
    };
    let e = render(&input).unwrap_err();
    assert!(
        e.to_string()
            .contains("has a space or one of `:#$` in its path"),
        "{e}"
    );
}

#[test]
fn make_escaping() {
    assert_eq!(make_escape("a $b #c\nd"), "a $$b \\#c d");
}

#[test]
fn dependency_crates_are_externs_and_linked_objects() {
    let d = tempfile::tempdir().unwrap();
    let mut m = module(d.path());
    m.c_sources.clear();
    m.bindings.clear();
    m.include_dirs.clear();
    let t = tree();
    let deps_dir = d.path().join("target/kmod/x86_64/deps/0123456789abcdef");
    let deps = crate::deps::ModuleDeps {
        rustflags: vec![
            format!(
                "--extern bitflags={}",
                deps_dir
                    .join("target/debug/deps/libbitflags-1a.rlib")
                    .display()
            ),
            format!(
                "--extern paste={}",
                deps_dir.join("debug/deps/libpaste-2b.so").display()
            ),
            format!(
                "-L dependency={}",
                deps_dir.join("target/debug/deps").display()
            ),
        ],
        objects: vec![deps_dir.join("objs/dep_bitflags_1a.o")],
        sources: vec![],
        crates: vec![],
    };
    let input = PlanInput {
        modules: vec![&m],
        tree: &t,
        base: d.path().join("target/kmod/x86_64"),
        test: false,
        features: BTreeMap::new(),
        macros: None,
        extra_symbols: vec![],
        deps: [("mixed-demo".to_string(), deps)].into(),
    };
    let plan = render(&input).unwrap();
    insta::assert_snapshot!(
        "module_kbuild_with_deps",
        redact(&plan.files[0].1, d.path())
    );
}
