//! Kernel features a module declares (docs/subsystems.md), against the real dev trees:
//!
//! - `kernel-config` in `[package.metadata.kmod]` (and the workspace's table) is checked
//!   against the tree's `.config` before anything is compiled: each missing symbol named with
//!   the tree, what keeps it off, and the fragment that gets a tree with it; a misspelled
//!   symbol gets the nearest real one, another arch's symbol is named as such, and a value
//!   its type cannot take is refused;
//! - needs the tree meets build as before; bad keys and values are one-line errors.

use crate::common::*;

/// The hello example with `kernel-config = { TABLE }` (and an optional workspace table).
fn needing(table: &str, workspace: Option<&str>) -> (tempfile::TempDir, std::path::PathBuf) {
    let (tmp, dir) = example("hello");
    let manifest = dir.join("Cargo.toml");
    let mut text = std::fs::read_to_string(&manifest).unwrap().replacen(
        "[package.metadata.kmod]",
        &format!("[package.metadata.kmod]\nkernel-config = {{ {table} }}"),
        1,
    );
    if let Some(ws) = workspace {
        text.push_str(&format!(
            "\n[workspace]\n\n[workspace.metadata.kmod]\nkernel-config = {{ {ws} }}\n"
        ));
    }
    write(&manifest, &text);
    (tmp, dir)
}

#[test]
fn configuration_the_tree_lacks_is_named_before_anything_compiles() {
    for arch in ["x86_64", "arm64"] {
        let (_tmp, dir) = needing(
            r#"SND = "y", USB = "y", PCII = "y", RUST = "y", CONFIG_MODULES = "y""#,
            None,
        );
        let o = run(kmod(&["build", "--arch", arch]).current_dir(&dir));
        let (err, help) = error_and_help(&fails(&o));
        assert!(
            err.contains("module `hello` needs kernel configuration that the")
                && err.contains(&format!(
                    "`kernel-config` in `{}`",
                    dir.join("Cargo.toml").display()
                )),
            "{err}"
        );
        assert!(err.contains("`CONFIG_SND=y` (it is not set)"), "{err}");
        assert!(
            err.contains("`CONFIG_USB=y` (it is not set); it needs `USB_SUPPORT`"),
            "{err}"
        );
        assert!(
            err.contains(
                "`CONFIG_PCII` is not a Kconfig symbol of this kernel (did you mean `CONFIG_PCI`?)"
            ),
            "{err}"
        );
        // RUST and MODULES are met: not named.
        assert!(
            !err.contains("CONFIG_RUST") && !err.contains("CONFIG_MODULES"),
            "{err}"
        );
        assert!(
            help.contains("`CONFIG_SND=y CONFIG_USB=y CONFIG_PCII=y`")
                || help.contains("CONFIG_PCII=y CONFIG_SND=y CONFIG_USB=y"),
            "{help}"
        );
        assert!(help.contains("cargo kmod init --config FRAGMENT"), "{help}");
        // Nothing was compiled.
        assert!(!stderr(&o).contains("Compiling"), "{}", stderr(&o));
        assert!(!dir.join(format!("target/kmod/{arch}/hello.ko")).exists());
    }
    // Another arch's symbol, and a value the symbol's type cannot take.
    let (_tmp, dir) = needing(r#"X86_MSR = "y", MODULES = "yes""#, None);
    let o = run(kmod(&["build", "--arch", "arm64"]).current_dir(&dir));
    let err = one_error_line(&fails(&o));
    assert!(
        err.contains(
            "`CONFIG_X86_MSR` exists only on x86 (`arch/x86/Kconfig`), and this kernel is arm64"
        ),
        "{err}"
    );
    assert!(
        err.contains("`CONFIG_MODULES` is a bool: it takes `y`, `n`, not `yes`"),
        "{err}"
    );
}

#[test]
fn needs_the_tree_meets_build_and_the_workspace_table_applies_to_members() {
    for arch in ["x86_64", "arm64"] {
        let (_tmp, dir) = needing(r#"RUST = "y", DEBUG_FS = true"#, Some(r#"MODULES = "y""#));
        ok(&run(kmod(&["build", "--arch", arch]).current_dir(&dir)));
        assert!(dir.join(format!("target/kmod/{arch}/hello.ko")).is_file());
    }
    // The workspace's needs are every member's.
    let (_tmp, dir) = needing(r#"RUST = "y""#, Some(r#"SND = "y""#));
    let o = run(kmod(&["build", "--arch", "x86_64"]).current_dir(&dir));
    let err = one_error_line(&fails(&o));
    assert!(err.contains("`CONFIG_SND=y` (it is not set)"), "{err}");
}

#[test]
fn bad_kernel_config_entries_are_one_line_errors() {
    for (table, says) in [
        (r#"pci = "y""#, "`pci` is not a Kconfig symbol"),
        (r#"PCI = """#, "`PCI` needs a value such as"),
        (r#"PCI = ["y"]"#, "`PCI` needs a value such as"),
        (r#""PCI X" = "y""#, "`PCI X` is not a Kconfig symbol"),
    ] {
        let (_tmp, dir) = needing(table, None);
        let o = run(kmod(&["build", "--arch", "x86_64"]).current_dir(&dir));
        let err = one_error_line(&fails(&o));
        assert!(
            err.contains("`kernel-config` in `[package.metadata.kmod]` of") && err.contains(says),
            "{table}: {err}"
        );
    }
}
