//! Manifest parsing against small fixture packages written to temp dirs (real `cargo metadata`).

use super::*;

fn package(dir: &Path, name: &str, kmod: &str, extra: &str) {
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(dir.join("src/lib.rs"), "").unwrap();
    std::fs::write(
        dir.join("Cargo.toml"),
        format!(
            "[package]\nname = \"{name}\"\nversion = \"0.3.1\"\nedition = \"2021\"\nlicense = \"GPL-2.0\"\nauthors = [\"A <a@x>\", \"B\"]\ndescription = \"demo\"\n{extra}\n[package.metadata.kmod]\n{kmod}\n"
        ),
    )
    .unwrap();
}

fn load_err(dir: &Path) -> String {
    let e = load(&Shell::plain(), Some(&dir.join("Cargo.toml"))).unwrap_err();
    let (msg, hint, _) = crate::error::render(&e);
    match hint {
        Some(h) => format!("{msg}\nhelp: {h}"),
        None => msg,
    }
}

#[test]
fn defaults_and_paths() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path().join("blink-led");
    package(
        &d,
        "blink-led",
        "c-sources = [\"src/helper.c\"]\nbindings = [{ header = \"include/h.h\" }]",
        "",
    );
    let ws = load(&Shell::plain(), Some(&d.join("Cargo.toml"))).unwrap();
    let m = &ws.modules[0];
    assert_eq!(m.name, "blink_led");
    assert_eq!(m.version, "0.3.1");
    assert_eq!(m.authors, ["A <a@x>", "B"]);
    assert_eq!(m.crate_root, d.canonicalize().unwrap().join("src/lib.rs"));
    assert_eq!(
        m.c_sources,
        [d.canonicalize().unwrap().join("src/helper.c")]
    );
    assert_eq!(
        m.bindings[0].header,
        d.canonicalize().unwrap().join("include/h.h")
    );
    assert!(ws.target_dir.ends_with("target"));
    assert_eq!(ws.select(&[], false).unwrap().len(), 1);
}

#[test]
fn unknown_key_names_key_file_and_nearest() {
    let t = tempfile::tempdir().unwrap();
    package(t.path(), "m", "c-source = [\"a.c\"]", "");
    let msg = load_err(t.path());
    assert!(
        msg.starts_with("unknown key `c-source` in `[package.metadata.kmod]` of `"),
        "{msg}"
    );
    assert!(
        msg.contains("Cargo.toml`\nhelp: did you mean `c-sources`?"),
        "{msg}"
    );
}

#[test]
fn wrong_type_names_the_key() {
    let t = tempfile::tempdir().unwrap();
    package(t.path(), "m", "ccflags = \"-DX\"", "");
    let msg = load_err(t.path());
    assert!(
        msg.starts_with("invalid `ccflags` in `[package.metadata.kmod]` of `"),
        "{msg}"
    );
    assert!(msg.contains("expected a sequence"), "{msg}");
}

#[test]
fn bad_module_name_and_arch() {
    let t = tempfile::tempdir().unwrap();
    package(t.path(), "m", "name = \"my.mod\"", "");
    assert!(load_err(t.path()).starts_with("invalid module name `my.mod` in `"));
    package(t.path(), "m", "arch = \"riscv\"", "");
    let msg = load_err(t.path());
    assert!(
        msg.starts_with("invalid `arch` in `[package.metadata.kmod]` of `"),
        "{msg}"
    );
    assert!(msg.contains("unknown arch `riscv`"), "{msg}");
}

#[test]
fn feature_objects_must_name_declared_features() {
    let t = tempfile::tempdir().unwrap();
    package(
        t.path(),
        "m",
        "[package.metadata.kmod.features.spy]\nc-sources = [\"spi.c\"]",
        "[features]\nspi = []\ndefault = [\"spi\"]\n",
    );
    let msg = load_err(t.path());
    assert!(
        msg.contains("names feature `spy`, which `[features]` does not declare"),
        "{msg}"
    );
    assert!(msg.ends_with("help: did you mean `spi`?"), "{msg}");

    package(
        t.path(),
        "m",
        "[package.metadata.kmod.features.spi]\nc-sources = [\"spi.c\"]",
        "[features]\nspi = []\nfull = [\"spi\"]\n",
    );
    let ws = load(&Shell::plain(), Some(&t.path().join("Cargo.toml"))).unwrap();
    let m = &ws.modules[0];
    assert!(m.enabled_features(&[], false, false).unwrap().is_empty());
    let on = m.enabled_features(&["full".into()], false, false).unwrap();
    assert_eq!(on.into_iter().collect::<Vec<_>>(), ["full", "spi"]);
    let e = m
        .enabled_features(&["nope".into()], false, false)
        .unwrap_err();
    assert_eq!(e.to_string(), "package `m` does not have feature `nope`");
}

#[test]
fn workspace_defaults_targets_deps_and_duplicates() {
    let t = tempfile::tempdir().unwrap();
    std::fs::write(
        t.path().join("Cargo.toml"),
        "[workspace]\nmembers = [\"a\", \"b\"]\nresolver = \"2\"\n\n[workspace.metadata.kmod]\nccflags = [\"-DWS\"]\n\n[workspace.metadata.kmod.targets.rpi4]\narch = \"arm64\"\nkdir = \"/k\"\nllvm = true\n",
    )
    .unwrap();
    package(&t.path().join("a"), "pair-a", "ccflags = [\"-DA\"]", "");
    package(
        &t.path().join("b"),
        "pair-b",
        "",
        "[dependencies]\npair-a = { path = \"../a\" }\n",
    );
    let ws = load(&Shell::plain(), Some(&t.path().join("Cargo.toml"))).unwrap();
    assert_eq!(ws.modules.len(), 2);
    let a = ws.modules.iter().find(|m| m.package == "pair-a").unwrap();
    assert_eq!(a.ccflags, ["-DWS", "-DA"]);
    let rpi = ws.target("rpi4").unwrap();
    assert_eq!(
        (rpi.arch, rpi.llvm.as_deref()),
        (Some(Arch::Arm64), Some("1"))
    );
    let e = ws.target("rpi5").unwrap_err();
    assert!(crate::error::render(&e)
        .1
        .unwrap()
        .contains("did you mean `rpi4`?"));
    // -p pair-b pulls in pair-a first.
    let sel: Vec<&str> = ws
        .select(&["pair-b".into()], false)
        .unwrap()
        .iter()
        .map(|m| m.package.as_str())
        .collect();
    assert_eq!(sel, ["pair-a", "pair-b"]);
    let e = ws.select(&["pair-c".into()], false).unwrap_err();
    assert_eq!(
        e.to_string(),
        "package `pair-c` is not a kernel module of this workspace"
    );

    package(&t.path().join("b"), "pair-b", "name = \"pair_a\"", "");
    let msg = load_err(t.path());
    assert!(
        msg.starts_with("two packages build a module named `pair_a`"),
        "{msg}"
    );
}

#[test]
fn broken_toml_is_one_clear_error() {
    let t = tempfile::tempdir().unwrap();
    std::fs::write(t.path().join("Cargo.toml"), "[package\nname=").unwrap();
    let msg = load_err(t.path());
    assert!(msg.contains("Cargo.toml"), "{msg}");
    let missing = load(&Shell::plain(), Some(&t.path().join("nope/Cargo.toml"))).unwrap_err();
    assert!(missing
        .to_string()
        .ends_with("nope/Cargo.toml` does not exist"));
}

#[test]
fn module_names() {
    assert_eq!(module_name_for("blink-led"), "blink_led");
    assert!(is_valid_module_name("hello_2"));
    // kbuild takes names that are not Rust identifiers: `8250`, `8139too`, `9pnet`.
    assert!(is_valid_module_name("8123"));
    assert!(is_valid_module_name("8139too"));
    assert!(!is_valid_module_name("he.llo"));
    assert!(!is_valid_module_name(""));
    assert!(!is_valid_module_name(&"x".repeat(MAX_MODULE_NAME + 1)));
}
