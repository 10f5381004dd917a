use std::path::Path;

use super::*;

/// A kernel source tree's skeleton: what `plan` reads of it.
fn tree(dir: &Path) {
    let w = |p: &str, t: &str| {
        let p = dir.join(p);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, t).unwrap();
    };
    w(
        "Makefile",
        "# SPDX-License-Identifier: GPL-2.0\nVERSION = 7\nPATCHLEVEL = 2\nSUBLEVEL = 0\n",
    );
    w("Kconfig", "source \"drivers/Kconfig\"\n");
    w(
        "scripts/Makefile.build",
        "rust_allowed_features := asm_const,new_uninit\n",
    );
    w(
        "drivers/misc/Kconfig",
        "menu \"Misc devices\"\n\nconfig DUMMY_IRQ\n\ttristate \"Dummy IRQ handler\"\n\nsource \"drivers/misc/eeprom/Kconfig\"\nendmenu\n",
    );
    w(
        "drivers/misc/Makefile",
        "obj-$(CONFIG_DUMMY_IRQ)\t+= dummy-irq.o\nobj-y\t+= eeprom/\n",
    );
    w("drivers/i2c/Kconfig", "");
    w("drivers/i2c/Makefile", "");
}

fn package(dir: &Path, lib: &str) -> ModuleSpec {
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(dir.join("src/lib.rs"), lib).unwrap();
    ModuleSpec {
        package: "hello".into(),
        id: "path+file:///hello#hello@0.1.0".into(),
        edition: "2021".into(),
        version: "0.1.0".into(),
        authors: vec!["Ada <ada@example.com>".into()],
        description: Some("A minimal Rust kernel module".into()),
        license: Some("GPL-2.0".into()),
        manifest_path: dir.join("Cargo.toml"),
        dir: dir.to_path_buf(),
        name: "hello".into(),
        crate_name: "hello".into(),
        crate_root: dir.join("src/lib.rs"),
        c_sources: vec![],
        include_dirs: vec![],
        ccflags: vec![],
        rustflags: vec![],
        bindings: vec![],
        extra_symbols: vec![],
        kdir: None,
        arch: None,
        feature_objects: Default::default(),
        cargo_features: Default::default(),
        module_deps: vec![],
        devices: Default::default(),
        crate_deps: vec![],
        lints: vec![],
        kernel_config: Default::default(),
    }
}

const LIB: &str = "use kernel::prelude::*;\n\nkmod_macros::module! {\n    type: Hello,\n}\n\nmod util;\n\n#[cfg(test)]\n#[kunit_tests(hello_tests)]\nmod tests {}\n";

fn setup() -> (tempfile::TempDir, ModuleSpec) {
    let d = tempfile::tempdir().unwrap();
    tree(&d.path().join("linux"));
    let m = package(&d.path().join("pkg"), LIB);
    std::fs::write(
        d.path().join("pkg/src/util.rs"),
        "#[cfg(test)]\npub fn t() {}\n",
    )
    .unwrap();
    (d, m)
}

fn req<'a>(m: &'a ModuleSpec, src: &'a Path) -> Request<'a> {
    Request {
        module: m,
        srctree: src,
        path: None,
        symbol: None,
    }
}

#[test]
fn a_module_becomes_its_directory_kconfig_and_makefile() {
    let (d, mut m) = setup();
    m.kernel_config = [("PCI".to_string(), "y".to_string())].into();
    let src = d.path().join("linux");
    let e = plan(&req(&m, &src)).unwrap();
    assert_eq!(e.dir, "drivers/misc/hello");
    assert_eq!(e.kind, Some("a module"));
    assert_eq!(e.symbol, "HELLO");
    let names: Vec<&str> = e.files.keys().map(String::as_str).collect();
    assert_eq!(names, ["Kconfig", "Makefile", "hello.rs", "util.rs"]);
    assert!(e.files["hello.rs"].contains("module! {\n    type: Hello,\n    name: \"hello\",\n    authors: [\"Ada <ada@example.com>\"],\n    description: \"A minimal Rust kernel module\",\n    license: \"GPL v2\",\n}"));
    assert!(e.files["hello.rs"].contains("#[cfg(CONFIG_HELLO_KUNIT_TEST)]\n#[kunit_tests"));
    assert_eq!(
        e.files["util.rs"],
        "#[cfg(CONFIG_HELLO_KUNIT_TEST)]\npub fn t() {}\n"
    );
    assert_eq!(
        e.files["Kconfig"],
        "# SPDX-License-Identifier: GPL-2.0\n\nconfig HELLO\n\ttristate \"A minimal Rust kernel module\"\n\tdepends on RUST\n\tdepends on PCI\n\thelp\n\t  A minimal Rust kernel module.\n\n\t  The driver is written in Rust and needs a kernel with Rust\n\t  support (CONFIG_RUST). Say Y here to build it into the kernel.\n\t  To compile this driver as a module, choose M here: the module\n\t  will be called hello.\n\nconfig HELLO_KUNIT_TEST\n\tbool \"KUnit tests for hello\" if !KUNIT_ALL_TESTS\n\tdepends on HELLO && KUNIT && (KUNIT=y || HELLO=m)\n\tdefault KUNIT_ALL_TESTS\n\thelp\n\t  Builds the KUnit tests of hello into the driver: the suite\n\t  runs when the driver is loaded, or at boot when it is built\n\t  in. Only useful for kernel developers running tests. If\n\t  unsure, say N.\n"
    );
    assert_eq!(
        e.files["Makefile"],
        "# SPDX-License-Identifier: GPL-2.0\n\nobj-$(CONFIG_HELLO) += hello.o\n"
    );
    assert_eq!(e.parents.len(), 2);
    assert_eq!(
        e.parents[0].after,
        "menu \"Misc devices\"\n\nconfig DUMMY_IRQ\n\ttristate \"Dummy IRQ handler\"\n\nsource \"drivers/misc/eeprom/Kconfig\"\nsource \"drivers/misc/hello/Kconfig\"\nendmenu\n"
    );
    assert_eq!(
        e.parents[1].after,
        "obj-$(CONFIG_DUMMY_IRQ)\t+= dummy-irq.o\nobj-y\t+= eeprom/\nobj-$(CONFIG_HELLO)\t+= hello/\n"
    );
    assert_eq!(e.parents[1].base, e.parents[1].current);
}

#[test]
fn exporting_again_keeps_the_parents_and_a_new_symbol_replaces_the_line() {
    let (d, m) = setup();
    let src = d.path().join("linux");
    let e = plan(&req(&m, &src)).unwrap();
    for p in &e.parents {
        std::fs::write(src.join(&p.file), &p.after).unwrap();
    }
    let again = plan(&req(&m, &src)).unwrap();
    for (a, b) in e.parents.iter().zip(&again.parents) {
        assert_eq!(b.current, a.after);
        assert_eq!(b.after, a.after);
        assert_eq!(b.base, a.current);
    }
    let mut r = req(&m, &src);
    r.symbol = Some("CONFIG_RUST_HELLO");
    let renamed = plan(&r).unwrap();
    assert_eq!(
        renamed.parents[1].after,
        "obj-$(CONFIG_DUMMY_IRQ)\t+= dummy-irq.o\nobj-y\t+= eeprom/\nobj-$(CONFIG_RUST_HELLO)\t+= hello/\n"
    );
}

#[test]
fn c_sources_make_a_composite_object() {
    let (d, mut m) = setup();
    let pkg = d.path().join("pkg");
    std::fs::write(pkg.join("src/fold.c"), "int x;\n").unwrap();
    std::fs::create_dir_all(pkg.join("include")).unwrap();
    std::fs::write(pkg.join("include/fold.h"), "int f(void);\n").unwrap();
    m.c_sources = vec![pkg.join("src/fold.c")];
    m.include_dirs = vec![pkg.join("include")];
    m.rustflags = vec!["-Cdebug-assertions=off".into()];
    let src = d.path().join("linux");
    let e = plan(&req(&m, &src)).unwrap();
    let names: Vec<&str> = e.files.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "Kconfig",
            "Makefile",
            "fold.c",
            "hello_main.rs",
            "include/fold.h",
            "util.rs"
        ]
    );
    assert_eq!(
        e.files["Makefile"],
        "# SPDX-License-Identifier: GPL-2.0\n\nobj-$(CONFIG_HELLO) += hello.o\nhello-y := hello_main.o fold.o\n\nccflags-y += -I $(src)/include\nrustflags-y += -Cdebug-assertions=off\n"
    );
}

#[test]
fn what_cannot_go_upstream_is_refused_with_one_line() {
    let (d, m) = setup();
    let src = d.path().join("linux");
    let err = |m: &ModuleSpec, r: Request<'_>| {
        let _ = m;
        crate::error::render(&plan(&r).unwrap_err()).0
    };
    let mut deps = m.clone();
    deps.crate_deps = vec!["heapless".into(), "bitflags".into()];
    let e = err(&deps, req(&deps, &src));
    assert!(
        e.contains("`[dependencies]` `heapless`, `bitflags` cannot go upstream"),
        "{e}"
    );

    let mut b = m.clone();
    b.bindings = vec![crate::manifest::Binding {
        header: "include/x.h".into(),
        allowlist: vec![],
        blocklist: vec![],
    }];
    assert!(err(&b, req(&b, &src)).contains("`bindings` (`include/x.h`) has no in-tree form"));

    for (path, want) in [
        (
            "../outside",
            "path `../outside` is not a directory inside the kernel tree",
        ),
        ("/abs/x", "is not a directory inside the kernel tree"),
        ("hello", "is the tree's top level"),
        (
            "drivers/nowhere/hello",
            "`drivers/nowhere/Kconfig` does not exist",
        ),
    ] {
        let mut r = req(&m, &src);
        r.path = Some(path);
        let e = err(&m, r);
        assert!(e.contains(want), "{path}: {e}");
    }
    let outside = d.path().join("outside");
    tree(&outside);
    std::os::unix::fs::symlink(outside.join("drivers/misc"), src.join("drivers/escape")).unwrap();
    let mut r = req(&m, &src);
    r.path = Some("drivers/escape/x");
    assert!(err(&m, r).contains("leads outside the kernel tree"));

    // A name and a symbol the tree has.
    std::fs::write(
        src.join("drivers/misc/Makefile"),
        "obj-$(CONFIG_OTHER)\t+= hello.o\n",
    )
    .unwrap();
    let e = err(&m, req(&m, &src));
    assert!(
        e.contains(
            "module name `hello` is taken in the tree: `drivers/misc/Makefile` builds `hello.o`"
        ),
        "{e}"
    );
    std::fs::write(src.join("drivers/misc/Makefile"), "").unwrap();
    std::fs::write(src.join("drivers/i2c/Kconfig"), "config HELLO\n\tbool\n").unwrap();
    let e = err(&m, req(&m, &src));
    assert!(
        e.contains("Kconfig symbol `CONFIG_HELLO` is already defined in `drivers/i2c/Kconfig`"),
        "{e}"
    );
    let mut r = req(&m, &src);
    r.symbol = Some("CONFIG_bad");
    assert!(err(&m, r).contains("`CONFIG_bad` is not a Kconfig symbol"));
    std::fs::write(src.join("drivers/i2c/Kconfig"), "").unwrap();

    // An unstable feature the tree does not allow.
    std::fs::write(m.dir.join("src/util.rs"), "#![feature(never_type)]\n").unwrap();
    let e = err(&m, req(&m, &src));
    assert!(
        e.contains(
            "util.rs: unstable feature `never_type` is not in the tree's `rust_allowed_features`"
        ),
        "{e}"
    );
    std::fs::write(m.dir.join("src/util.rs"), "").unwrap();

    // No module declaration; not a kernel tree.
    let plain = package(&d.path().join("plain"), "use kernel::prelude::*;\n");
    assert!(err(&plain, req(&plain, &src)).contains("no module declaration"));
    let not_tree = d.path().join("pkg");
    assert!(err(&m, req(&m, &not_tree)).contains("is not a kernel source tree"));
}

#[test]
fn the_default_directory_follows_the_driver_kind() {
    let (d, m) = setup();
    let src = d.path().join("linux");
    std::fs::write(m.dir.join("src/util.rs"), "impl i2c::Driver for X {}\n").unwrap();
    let e = plan(&req(&m, &src)).unwrap();
    assert_eq!(e.dir, "drivers/i2c/hello");
    assert_eq!(e.kind, Some("an I2C driver"));
}
