//! Plan rendering: snapshots of the generated Kbuild and Makefile, and bad-input errors.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use super::*;
use crate::kernel::config::KConfig;
use crate::kernel::{Arch, KernelTree};
use crate::manifest::{Binding, FeatureObjects, ModuleSpec};

fn tree() -> KernelTree {
    KernelTree {
        dir: PathBuf::from("/kdir"),
        srctree: PathBuf::from("/src"),
        config: KConfig::parse("CONFIG_X86_64=y\nCONFIG_CC_IS_GCC=y\nCONFIG_RUST=y\n"),
        arch: Arch::X86_64,
        release: "7.2.13".into(),
        tools: crate::kernel::TreeTools {
            compiler: crate::kernel::Compiler::Gcc { version: None },
            llvm: None,
            cross_compile: None,
        },
        rustc: None,
    }
}

fn module(dir: &Path) -> ModuleSpec {
    std::fs::create_dir_all(dir.join("src")).unwrap();
    for f in ["src/lib.rs", "src/helper.c", "src/mixed.c", "src/spi.c"] {
        std::fs::write(dir.join(f), "").unwrap();
    }
    ModuleSpec {
        package: "mixed-demo".into(),
        id: "path+file:///mixed#mixed-demo@0.2.0".into(),
        edition: "2021".into(),
        version: "0.2.0".into(),
        authors: vec!["Ada <ada@example.com>".into(), "Bob".into()],
        description: Some("costs $5 # not a comment".into()),
        license: Some("GPL-2.0".into()),
        manifest_path: dir.join("Cargo.toml"),
        dir: dir.to_path_buf(),
        name: "mixed".into(),
        crate_name: "mixed".into(),
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
        devices: Default::default(),
        crate_deps: vec![],
        lints: vec![],
        kernel_config: Default::default(),
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
        release: false,
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
        release: false,
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
        release: false,
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
        release: false,
        features: BTreeMap::new(),
        macros: None,
        extra_symbols: vec![],
        deps: BTreeMap::new(),
    };
    let e = render(&input).unwrap_err();
    assert!(
        e.to_string()
            .contains("in its path, which kbuild cannot handle"),
        "{e}"
    );
}

#[test]
fn make_values_and_shell_words() {
    assert_eq!(
        make_value("a $b #c\nd"),
        "a $$b $(kmod_hash)c$(kmod_newline)d"
    );
    assert_eq!(make_value(" lead"), "$(kmod_empty) lead");
    assert_eq!(make_value("trail "), "trail $(kmod_empty)");
    assert_eq!(make_value("back\\"), "back\\$(kmod_empty)");
    assert_eq!(shell_word("-DX=1"), "-DX=1");
    assert_eq!(shell_word("-DMSG=\"a b\""), "'-DMSG=\"a b\"'");
    assert_eq!(shell_word("it's;$x"), "'it'\\''s;$x'");
    assert_eq!(shell_word(""), "''");
}

/// What make and the shell make of each character class: the generated assignments are
/// run through the real `make`, and a recipe prints each exported value and each flag as
/// the shell passed it, one argument per line.
#[test]
fn make_and_shell_see_exactly_the_value() {
    let values = [
        "plain",
        "new\nline",
        "hash # not a comment",
        "dollar $HOME $(shell echo no) $$",
        "semi; echo injected",
        "trailing backslash \\",
        "quotes ' \" `echo no`",
        " leading and trailing ",
        "tab\there",
        "back\\slash in the middle",
    ];
    let d = tempfile::tempdir().unwrap();
    let mut mk = String::from(MAKE_HELPERS);
    for (i, v) in values.iter().enumerate() {
        mk.push_str(&format!("export V{i} := {}\n", make_value(v)));
    }
    let words: Vec<String> = values
        .iter()
        .filter(|v| !v.contains('\n') && !v.contains('\t'))
        .map(|v| make_value(&shell_word(v)))
        .collect();
    mk.push_str(&format!("FLAGS := {}\n", words.join(" ")));
    mk.push_str("all:\n");
    for i in 0..values.len() {
        mk.push_str(&format!("\t@printf '%s\\0' \"$$V{i}\" >> out\n"));
    }
    mk.push_str("\t@printf '%s\\0' $(FLAGS) >> out\n");
    std::fs::write(d.path().join("Makefile"), mk).unwrap();
    let status = std::process::Command::new("make")
        .args(["-s", "-C"])
        .arg(d.path())
        .status()
        .unwrap();
    assert!(status.success());
    let out = std::fs::read(d.path().join("out")).unwrap();
    let got: Vec<String> = out
        .split(|b| *b == 0)
        .filter(|p| !p.is_empty())
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect();
    let mut want: Vec<String> = values.iter().map(|s| s.to_string()).collect();
    want.extend(
        values
            .iter()
            .filter(|v| !v.contains('\n') && !v.contains('\t'))
            .map(|s| s.to_string()),
    );
    assert_eq!(got, want);
}

#[test]
fn flags_with_control_characters_are_refused() {
    let e = flag("-DX=a\nb", "ccflags", Path::new("/p/Cargo.toml")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "`ccflags` in `/p/Cargo.toml` has a flag with the control character '\\n': `-DX=a\\nb`"
    );
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
        release: false,
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

/// A module that is its crate alone is one object, like a hand-written `obj-m := name.o`:
/// no composite `name-y` (and no `ld -r` of it on every rebuild).
#[test]
fn a_rust_only_module_is_one_object() {
    let d = tempfile::tempdir().unwrap();
    let mut m = module(d.path());
    m.c_sources.clear();
    m.feature_objects.clear();
    let t = tree();
    let plan = render(&PlanInput {
        modules: vec![&m],
        tree: &t,
        base: d.path().join("target/kmod/x86_64"),
        test: false,
        release: false,
        features: BTreeMap::new(),
        macros: None,
        extra_symbols: vec![],
        deps: BTreeMap::new(),
    })
    .unwrap();
    let kbuild = redact(&plan.files[0].1, d.path());
    assert_eq!(plan.modules[0].rust_object, "mixed.o");
    assert!(kbuild.contains("obj-m := mixed.o\n"), "{kbuild}");
    assert!(!kbuild.contains("mixed-y"), "{kbuild}");
    assert!(
        kbuild.contains("$(obj)/mixed.o: /work/mixed/src/lib.rs FORCE"),
        "{kbuild}"
    );
}

#[test]
fn lints_reach_rustflags_and_the_check_goal_shares_the_object_command() {
    let d = tempfile::tempdir().unwrap();
    let mut m = module(d.path());
    m.c_sources.clear();
    m.feature_objects.clear();
    m.lints = vec!["--allow=clippy::needless_return".into()];
    m.rustflags = vec!["-Wmissing_docs".into()];
    let t = tree();
    let plan = render(&PlanInput {
        modules: vec![&m],
        tree: &t,
        base: d.path().join("target/kmod/x86_64"),
        test: false,
        release: false,
        features: BTreeMap::new(),
        macros: None,
        extra_symbols: vec![],
        deps: BTreeMap::new(),
    })
    .unwrap();
    let kbuild = redact(&plan.files[0].1, d.path());
    // `[lints]` first, the manifest's `rustflags` after them (they win, as RUSTFLAGS do).
    assert!(
        kbuild.contains("rustflags-y += --allow=clippy::needless_return -Wmissing_docs\n"),
        "{kbuild}"
    );
    let pm = &plan.modules[0];
    assert_eq!(pm.check_goal, "mixed-demo/mixed.rsi");
    assert_eq!(pm.check_metadata, pm.dir.join("mixed.rmeta"));
    assert!(
        kbuild.contains(
            "$(obj)/mixed.rsi: /work/mixed/src/lib.rs FORCE\n\t$(Q)printf '%s\\n' '$(call escsq,$(kmod_check_cmd))' '$(call escsq,$<)' '$(call escsq,$(CURDIR))' > $(kmod_check_saved).argv && env -0 > $(kmod_check_saved).env\n\t+$(call cmd,kmod_check_rs)"
        ),
        "{kbuild}"
    );
    assert!(
        kbuild.contains("kmod_check_cmd = $(rust_common_cmd) --emit=metadata=$(obj)/mixed.rmeta\n"),
        "{kbuild}"
    );
    assert!(
        kbuild.contains("cmd_kmod_check_rs = $(kmod_check_cmd) $(KMOD_CHECK_FLAGS) $<"),
        "{kbuild}"
    );
}

#[test]
fn check_flags_are_one_argument_each_and_refuse_control_characters() {
    assert_eq!(
        check_flags_arg(
            &["--error-format=json".into(), "-D".into(), "a b$#".into()],
            "x"
        )
        .unwrap(),
        "KMOD_CHECK_FLAGS=--error-format=json -D 'a b$$$(kmod_hash)'"
    );
    let e = check_flags_arg(&["-D\nwarnings".into()], "a clippy argument").unwrap_err();
    assert!(
        e.to_string()
            .starts_with("a clippy argument has a flag with the control character '\\n'"),
        "{e}"
    );
}
