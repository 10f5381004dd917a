//! The dependency stage's pieces that need no kernel: rlib objects, the resolve graph.

use super::*;
use cargo_metadata::{Metadata, PackageId};

/// A real rlib from the host rustc, with one codegen unit.
#[test]
fn objects_come_out_of_an_rlib() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("tiny.rs"),
        "#![no_std]\npub fn add(a: u32, b: u32) -> u32 { a.wrapping_add(b) }\n",
    )
    .unwrap();
    let sh = xshell::Shell::new().unwrap();
    sh.change_dir(d.path());
    let rustc = crate::kernel::toolchain::rustc_program();
    xshell::cmd!(sh, "{rustc} --crate-type rlib --crate-name tiny -Ccodegen-units=1 -Cextra-filename=-abc tiny.rs")
        .quiet()
        .run()
        .unwrap();
    let objdir = d.path().join("objs");
    let objs = extract_objects(&d.path().join("libtiny-abc.rlib"), &objdir).unwrap();
    assert_eq!(objs, [objdir.join("dep_tiny_abc.o")]);
    let bytes = std::fs::read(&objs[0]).unwrap();
    assert_eq!(&bytes[..4], b"\x7fELF");
    let mtime = std::fs::metadata(&objs[0]).unwrap().modified().unwrap();
    extract_objects(&d.path().join("libtiny-abc.rlib"), &objdir).unwrap();
    assert_eq!(
        std::fs::metadata(&objs[0]).unwrap().modified().unwrap(),
        mtime,
        "unchanged objects keep their mtime"
    );
    let err = extract_objects(&d.path().join("tiny.rs"), &objdir).unwrap_err();
    assert!(err.to_string().contains("is not an rlib archive"), "{err}");
}

/// A workspace of path packages only (no registry): module `blink` -> `foo` -> `bar`, a proc
/// macro `pm` -> `pmdep`, and a second module `other` that `blink` depends on.
fn workspace() -> (tempfile::TempDir, Metadata) {
    let d = tempfile::tempdir().unwrap();
    let pkg = |name: &str, deps: &str, extra: &str| {
        let dir = d.path().join(name);
        std::fs::create_dir_all(dir.join("src")).unwrap();
        std::fs::write(
            dir.join("Cargo.toml"),
            format!("[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n{extra}\n[dependencies]\n{deps}\n"),
        )
        .unwrap();
        std::fs::write(dir.join("src/lib.rs"), "").unwrap();
    };
    pkg(
        "blink",
        "foo = { path = \"../foo\" }\npm = { path = \"../pm\" }\nother = { path = \"../other\" }",
        "[package.metadata.kmod]",
    );
    pkg("other", "", "[package.metadata.kmod]");
    pkg("foo", "bar = { path = \"../bar\" }", "");
    pkg("bar", "", "[features]\nstd = []\ndefault = [\"std\"]");
    pkg(
        "pm",
        "pmdep = { path = \"../pmdep\" }",
        "[lib]\nproc-macro = true",
    );
    pkg("pmdep", "", "");
    std::fs::write(
        d.path().join("Cargo.toml"),
        "[workspace]\nresolver = \"2\"\nmembers = [\"blink\", \"other\"]\n",
    )
    .unwrap();
    let sh = xshell::Shell::new().unwrap();
    let manifest = d.path().join("Cargo.toml");
    let cargo = cargo_program();
    let json = xshell::cmd!(
        sh,
        "{cargo} metadata --format-version 1 --offline --manifest-path {manifest}"
    )
    .quiet()
    .read()
    .unwrap();
    (d, serde_json::from_str(&json).unwrap())
}

#[test]
fn the_link_closure_stops_at_modules_and_proc_macros() {
    let (_d, meta) = workspace();
    let g = Graph::new(&meta, &["blink".to_string(), "other".to_string()]);
    let blink = g.package_named("blink").unwrap().id.clone();
    let names = |ids: BTreeSet<PackageId>| -> Vec<String> {
        let mut v: Vec<String> = ids.iter().map(|i| g.name(i)).collect();
        v.sort();
        v
    };
    assert_eq!(names(g.link_closure(&blink)), ["bar", "foo"]);
    assert_eq!(names(g.full_closure(&blink)), ["bar", "foo", "pm", "pmdep"]);
    let bar = g
        .meta
        .packages
        .iter()
        .find(|p| p.name.as_str() == "bar")
        .unwrap()
        .id
        .clone();
    assert_eq!(g.path(&blink, &bar), "blink -> foo -> bar");
}

#[test]
fn a_std_crate_is_named_with_its_path_and_fix() {
    let (_d, meta) = workspace();
    let g = Graph::new(&meta, &["blink".to_string()]);
    let blink = g.package_named("blink").unwrap().id.clone();
    let bar = g
        .meta
        .packages
        .iter()
        .find(|p| p.name.as_str() == "bar")
        .unwrap()
        .id
        .clone();
    let pmdep = g
        .meta
        .packages
        .iter()
        .find(|p| p.name.as_str() == "pmdep")
        .unwrap()
        .id
        .clone();
    let tree = KernelTree::from_parts(
        PathBuf::from("/k"),
        PathBuf::from("/k"),
        crate::kernel::config::KConfig::parse("CONFIG_X86_64=y\n"),
        crate::kernel::Arch::X86_64,
        "7.2.13".into(),
    );
    let e = needs_crate(&g, &blink, &bar, "std", &tree);
    assert_eq!(
        e.message,
        "dependency `bar` needs `std`, which kernel modules do not have: `blink -> foo -> bar`"
    );
    let hint = e.hint.unwrap();
    assert!(
        hint.starts_with(
            "`bar` has a `std` feature, turned on through `foo`: depend on `foo` with `default-features = false` in `"
        ),
        "{hint}"
    );
    let foo = g
        .meta
        .packages
        .iter()
        .find(|p| p.name.as_str() == "foo")
        .unwrap()
        .id
        .clone();
    let e = needs_crate(&g, &blink, &foo, "std", &tree);
    assert_eq!(
        e.message,
        "dependency `foo` needs `std`, which kernel modules do not have: `blink -> foo`"
    );
    let e = needs_crate(&g, &blink, &pmdep, "alloc", &tree);
    assert_eq!(e.message, "dependency `pmdep` needs `alloc`, which Linux 7.2.13 does not give modules: `blink -> pm -> pmdep`");
    assert!(e
        .hint
        .unwrap()
        .starts_with("`pmdep` has no `alloc` feature to turn off"));
}
