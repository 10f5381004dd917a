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
        // No tree has them: the dev tree was checked, and `init` in the package prepares
        // the feature tree.
        assert!(
            help.contains(&format!(
                "run `cargo kmod init --arch {arch}` in the package"
            )),
            "{help}"
        );
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

/// The kernel's `rust_driver_pci` sample, ported to a Cargo package with one device table and
/// one `kernel-config` entry (examples/rust-driver-pci): with the feature trees that plain
/// `init` in the package prepares (set-up ran it), `test` chooses the tree with PCI by itself
/// and the driver binds qemu's `pci-testdev` on both arches; `run` shows the driver at work.
#[test]
fn the_pci_sample_probes_pci_testdev_on_both_arches() {
    for arch in ARCHES {
        let (_tmp, dir) = example("rust-driver-pci");
        let o = run(kmod(&["test", "-v", "--arch", arch]).current_dir(&dir));
        ok(&o);
        let err = stderr(&o);
        assert!(
            err.contains(&format!("Choosing the {arch} tree"))
                && err.contains("the packages need PCI=y"),
            "{arch}: {err}"
        );
        assert!(
            err.contains("-device pci-testdev,addr=0x10.0"),
            "{arch}: {err}"
        );
        // Binding is always reported, not only when it fails.
        assert!(
            err.contains("Devices rust_driver_pci: pci-testdev (pci) at 0000:00:10.0 bound by rust_driver_pci"),
            "{arch}: {err}"
        );
        let o = run(kmod(&[
            "run",
            "--arch",
            arch,
            "--exec",
            "cd -P /sys/bus/pci/devices/0000:00:10.0/driver && pwd; dmesg | grep data-match",
        ])
        .current_dir(&dir));
        ok(&o);
        let out = stdout(&o);
        assert!(
            out.contains("/sys/bus/pci/drivers/rust_driver_pci"),
            "{arch}: {out}"
        );
        assert!(
            out.contains("pci-testdev data-match count: 1"),
            "{arch}: {out}"
        );
        // The dev tree has no PCI: naming it is refused before anything compiles.
        let list = stdout(&ok_cmd(&mut kmod(&[
            "init",
            "--list",
            "--message-format",
            "json",
        ])));
        let dev = list
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .find(|v| v["arch"] == arch && v["dev"] == true)
            .expect("a dev tree");
        let features = list
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .find(|v| {
                v["arch"] == arch
                    && v["fragments"][0]
                        .as_str()
                        .is_some_and(|f| f.starts_with("cargo-kmod:features PCI=y"))
            })
            .expect("the feature tree");
        if arch == "arm64" {
            assert_eq!(
                features["fragments"][0],
                "cargo-kmod:features PCI=y PCI_HOST_GENERIC=y"
            );
        }
        let kdir = dev["path"].as_str().unwrap();
        let o = run(kmod(&["build", "--kdir", kdir]).current_dir(&dir));
        let err = one_error_line(&fails(&o));
        assert!(
            err.contains("module `rust_driver_pci` needs kernel configuration")
                && err.contains("`CONFIG_PCI=y` (it is not set)"),
            "{arch}: {err}"
        );
        // `init` in the package is fresh: the feature tree is found by its symbols.
        let o = ok_cmd(kmod(&["init", "--arch", arch]).current_dir(&dir));
        assert!(
            stderr(&o).contains(&format!("for {arch} (features PCI=y")),
            "{}",
            stderr(&o)
        );
        // `init --list` says what the feature tree adds.
        let o = ok_cmd(&mut kmod(&["init", "--list"]));
        assert!(stdout(&o).contains("(features PCI=y"), "{}", stdout(&o));
    }
}

/// A named target can carry symbols: `kernel-config` in the target's table names the same
/// feature tree (one tree per set of symbols, not per file), which `init --target` finds and
/// `build --target` uses; a PCI device on a tree without PCI, a qemu model that does not
/// exist and a target mixing `kernel-config` with `kdir` are one-line errors before any boot.
#[test]
fn targets_carry_symbols_and_pci_devices_are_checked_before_booting() {
    let (_tmp, dir) = example("rust-driver-pci");
    let manifest = dir.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    write(
        &manifest,
        &format!(
            "{text}\n[workspace]\n\n[workspace.metadata.kmod.targets.virt-pci]\narch = \"arm64\"\nkernel-config = {{ PCI = \"y\" }}\n"
        ),
    );
    let o = ok_cmd(kmod(&["init", "--target", "virt-pci"]).current_dir(&dir));
    assert!(stderr(&o).contains("Fresh"), "{}", stderr(&o));
    ok_cmd(kmod(&["build", "--target", "virt-pci"]).current_dir(&dir));
    assert!(dir.join("target/kmod/arm64/rust_driver_pci.ko").is_file());

    write(
        &manifest,
        &format!(
            "{text}\n[workspace]\n\n[workspace.metadata.kmod.targets.bad]\nkdir = \"/tmp\"\nkernel-config = {{ PCI = \"y\" }}\n"
        ),
    );
    let err = one_error_line(&fails(&run(
        kmod(&["build", "--target", "bad"]).current_dir(&dir)
    )));
    assert!(err.contains("has both `kernel-config` and `kdir`"), "{err}");

    // A misspelled qemu model: refused with the nearest, before the boot.
    write(
        &manifest,
        &text.replace(
            "qemu-device = \"pci-testdev\"",
            "qemu-device = \"pci-testdevv\"",
        ),
    );
    let o = run(kmod(&["test", "--arch", "x86_64"]).current_dir(&dir));
    let (err, help) = error_and_help(&fails(&o));
    assert!(
        err.contains("`qemu-device = \"pci-testdevv\"`") && err.contains("is not a PCI device of"),
        "{err}"
    );
    assert!(help.contains("did you mean `pci-testdev`?"), "{help}");
    assert!(!stderr(&o).contains("Booting"), "{}", stderr(&o));

    // A PCI device declared by a package that does not ask for PCI: the dev tree is used,
    // and the device is refused naming the symbol and the fix, before the boot.
    let (_tmp, hello) = example("hello");
    let manifest = hello.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    write(
        &manifest,
        &format!(
            "{text}\n[[package.metadata.kmod.devices]]\nbus = \"pci\"\nqemu-device = \"edu\"\n"
        ),
    );
    for arch in ARCHES {
        let o = run(kmod(&["test", "--arch", arch]).current_dir(&hello));
        let (err, help) = error_and_help(&fails(&o));
        assert!(
            err.contains("test device edu (pci)")
                && err.contains("is a PCI device, and kernel tree")
                && err.contains("has no `CONFIG_PCI`"),
            "{arch}: {err}"
        );
        assert!(
            help.contains("kernel-config = { PCI = \"y\" }"),
            "{arch}: {help}"
        );
        assert!(!stderr(&o).contains("Booting"), "{}", stderr(&o));
    }
}

/// Two packages needing different features in one workspace run: the PCI sample (`PCI`) and
/// examples/debugfs-counter (`DEBUG_FS`, which the dev tree has) test together on the one
/// tree that meets the union; the counter's file is really there in the guest.
#[test]
fn two_packages_needing_different_features_test_in_one_run() {
    let tmp = scratch();
    let ws = tmp.path().join("ws");
    for name in ["rust-driver-pci", "debugfs-counter"] {
        copy_dir(&root().join("examples").join(name), &ws.join(name));
    }
    write(
        &ws.join("Cargo.toml"),
        "[workspace]\nmembers = [\"rust-driver-pci\", \"debugfs-counter\"]\nresolver = \"2\"\n",
    );
    for arch in ARCHES {
        let o = run(kmod(&["test", "-v", "--workspace", "--arch", arch]).current_dir(&ws));
        ok(&o);
        let err = stderr(&o);
        assert!(
            err.contains("the packages need DEBUG_FS=y PCI=y"),
            "{arch}: {err}"
        );
        assert!(
            stdout(&o).contains("test debugfs_counter_tests::a_counter_keeps_its_value ... ok"),
            "{arch}: {}",
            stdout(&o)
        );
        assert!(err.contains("bound by rust_driver_pci"), "{arch}: {err}");
        let o = run(kmod(&[
            "run",
            "-p",
            "debugfs-counter",
            "--arch",
            arch,
            "--exec",
            "mount -t debugfs debugfs /sys/kernel/debug; f=/sys/kernel/debug/debugfs_counter/count; cat $f; echo 41 > $f; cat $f",
        ])
        .current_dir(&ws));
        ok(&o);
        let out = stdout(&o);
        assert!(out.contains("7\n41\n"), "{arch}: {out}");
    }
}

/// The kernel's `rust_driver_usb` sample, ported with one `kernel-config` entry and one
/// `bus = "usb"` device (examples/rust-driver-usb), and an ACPI-only driver
/// (tests/fixtures/acpi-driver: `kernel::acpi_device_table!` for `ACME0001`, no OF table) in
/// one x86_64 workspace with a C virtio driver (tests/fixtures/virtio-probe, qemu's
/// `virtio-rng-pci`), so one tree serves all three: `init` prepares the dev tree plus ACPI, PCI, VIRTIO_PCI (and its menu),
/// USB and what the USB device needs (`dummy_hcd`, configfs gadgets). In one `test` the SSDT
/// device becomes `ACME0001:00` and the gadget's interface is enumerated, and each driver
/// binds its own; the USB package alone chooses that tree by itself, and `run` shows its
/// driver at work. A USB or ACPI device on a tree without their needs, and ACPI on arm64, are
/// refused before any boot, naming why.
#[test]
fn acpi_usb_and_virtio_devices_bind_their_drivers_on_x86_64() {
    let tmp = scratch();
    let ws = tmp.path().join("ws");
    copy_dir(
        &root().join("tests/fixtures/acpi-driver"),
        &ws.join("acpi-driver"),
    );
    copy_dir(
        &root().join("examples/rust-driver-usb"),
        &ws.join("rust-driver-usb"),
    );
    copy_dir(
        &root().join("tests/fixtures/virtio-probe"),
        &ws.join("virtio-probe"),
    );
    write(
        &ws.join("Cargo.toml"),
        "[workspace]\nmembers = [\"acpi-driver\", \"rust-driver-usb\", \"virtio-probe\"]\nresolver = \"2\"\n",
    );
    ok(&run(kmod(&["init", "--arch", "x86_64"]).current_dir(&ws)));
    let o = run(kmod(&["test", "-v", "--workspace", "--arch", "x86_64"]).current_dir(&ws));
    ok(&o);
    let err = stderr(&o);
    assert!(err.contains("-acpitable file="), "{err}");
    assert!(
        err.contains("Devices acpi_driver: ACME0001 (acpi) at ACME0001:00 bound by acpi_driver"),
        "{err}"
    );
    assert!(
        err.contains("Devices rust_driver_usb: 1234:5678 (usb) at ")
            && err.contains("-1:1.0 bound by rust_driver_usb"),
        "{err}"
    );
    assert!(
        stdout(&o).contains("test acpi_driver_tests::probed_by_acpi_id ... ok"),
        "{}",
        stdout(&o)
    );
    // A virtio model on the PCI bus is judged by the virtio device under it, which the
    // module's (C) virtio driver binds.
    assert!(
        err.contains("Devices virtio_probe: virtio-rng-pci (pci) at 0000:00:1")
            && err.contains("bound by virtio_probe"),
        "{err}"
    );
    assert!(
        stdout(&o).contains("test virtio_probe_tests::probed_the_virtio_rng ... ok"),
        "{}",
        stdout(&o)
    );

    // The USB sample alone: the tree with its needs is chosen without being named.
    let usb = ws.join("rust-driver-usb");
    let o = run(kmod(&["test", "-v", "--arch", "x86_64"]).current_dir(&usb));
    ok(&o);
    let err = stderr(&o);
    assert!(
        err.contains("the packages need") && err.contains("USB_DUMMY_HCD=y"),
        "{err}"
    );
    assert!(err.contains("bound by rust_driver_usb"), "{err}");
    let o = run(kmod(&[
        "run",
        "--arch",
        "x86_64",
        "--exec",
        // Unplugged and plugged again through the gadget's UDC: `disconnect`, then a probe.
        "cd -P /sys/bus/usb/drivers/rust_driver_usb/*-1:1.0 && cat ../idVendor ../idProduct; \
         g=/sys/kernel/config/usb_gadget/kmod0; echo >$g/UDC; echo dummy_udc.0 >$g/UDC; \
         sleep 1; dmesg | grep -c 'Rust USB driver sample probed'; dmesg | grep -c 'sample disconnected'",
    ])
    .current_dir(&usb));
    ok(&o);
    let out = stdout(&o);
    assert!(out.contains("1234\n5678\n2\n1\n"), "{out}");

    // Two devices with the same IDs (a controller each; the second's interface of another
    // class, cargo-kmod's gadget function) and one the table does not name.
    let more = tmp.path().join("more.toml");
    write(
        &more,
        "[[devices]]\nbus = \"usb\"\nname = \"second\"\nvendor = 0x1234\nproduct = 0x5678\n\
         class = 0xdc\nsubclass = 0x01\nprotocol = 0x02\n\
         [[devices]]\nbus = \"usb\"\nvendor = 0x1234\nproduct = 0x9999\n",
    );
    let o = run(kmod(&["test", "--arch", "x86_64", "--device", s(&more)]).current_dir(&usb));
    let err = fails(&o);
    assert!(
        err.contains("1234:5678 (usb) at 1-1:1.0 bound by rust_driver_usb; 1234:5678 (usb) at 2-1:1.0 bound by rust_driver_usb"),
        "{err}"
    );
    assert!(
        stdout(&o).contains("no USB table of module rust_driver_usb names 1234:9999"),
        "{}",
        stdout(&o)
    );
    // The host side sees the declared interface codes on the second controller.
    let o = run(kmod(&[
        "run",
        "--arch",
        "x86_64",
        "--device",
        s(&more),
        "--exec",
        "i=/sys/bus/usb/devices/2-1:1.0; cat $i/bInterfaceClass $i/bInterfaceSubClass $i/bInterfaceProtocol; \
         i=/sys/bus/usb/devices/1-1:1.0; cat $i/bInterfaceClass",
    ])
    .current_dir(&usb));
    ok(&o);
    let out = stdout(&o);
    assert!(out.contains("dc\n01\n02\nff\n"), "{out}");

    // The same devices for a module on the dev tree: refused before booting.
    let (_tmp2, hello) = example("hello");
    let dev = hello.join("usb.toml");
    write(
        &dev,
        "[[devices]]\nbus = \"usb\"\nvendor = 0x1234\nproduct = 0x5678\n",
    );
    let o = run(kmod(&["test", "--arch", "x86_64", "--device", s(&dev)]).current_dir(&hello));
    let (err, help) = error_and_help(&fails(&o));
    assert!(
        err.contains("test device 1234:5678 (usb)")
            && err.contains("is a USB device, and kernel tree")
            && err.contains("`CONFIG_USB_DUMMY_HCD=y`"),
        "{err}"
    );
    assert!(help.contains("cargo kmod init --arch x86_64"), "{help}");
    assert!(!stderr(&o).contains("Booting"), "{}", stderr(&o));
    let dev = hello.join("acpi.toml");
    write(&dev, "[[devices]]\nbus = \"acpi\"\nhid = \"ACME0001\"\n");
    let o = run(kmod(&["test", "--arch", "x86_64", "--device", s(&dev)]).current_dir(&hello));
    let (err, help) = error_and_help(&fails(&o));
    assert!(
        err.contains("is an ACPI device, and kernel tree")
            && err.contains("has no `CONFIG_ACPI` or `CONFIG_PCI`"),
        "{err}"
    );
    assert!(
        help.contains("ACPI = \\\"y\\\"") || help.contains("ACPI = \"y\""),
        "{help}"
    );
    let o = run(kmod(&["test", "--arch", "arm64", "--device", s(&dev)]).current_dir(&hello));
    let (err, _) = error_and_help(&fails(&o));
    assert!(err.contains("ACPI test devices are x86_64's"), "{err}");
}

/// qemu's virtio models for the MMIO transport on arm64 `virt` (tests/fixtures/virtio-probe
/// declared with `bus = "virtio-mmio"`): the dev tree has the transport driver, so no tree is
/// prepared; the device sits on `virt`'s first transport, comes back in the snapshot a test
/// boot resumes, and the module's (C) virtio driver binds it. x86_64's `pc` has no such
/// transports, and a model of the other bus or one qemu lacks is refused before any boot.
#[test]
fn virtio_mmio_devices_bind_on_arm64_virt() {
    let tmp = scratch();
    let pkg = tmp.path().join("virtio-mmio");
    copy_dir(&root().join("tests/fixtures/virtio-probe"), &pkg);
    let manifest = pkg.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest)
        .unwrap()
        .replace(
            "kernel-config = { PCI = \"y\", VIRTIO_MENU = \"y\", VIRTIO_PCI = \"y\" }",
            "kernel-config = { VIRTIO_MMIO = \"y\" }",
        )
        .replace(
            "bus = \"pci\"\nqemu-device = \"virtio-rng-pci\"",
            "bus = \"virtio-mmio\"\nqemu-device = \"virtio-rng-device\"",
        );
    assert!(
        text.contains("bus = \"virtio-mmio\"") && text.contains("VIRTIO_MMIO = "),
        "{text}"
    );
    write(&manifest, &format!("{text}\n[workspace]\n"));
    for _ in 0..2 {
        let o = run(kmod(&["test", "-v", "--arch", "arm64"]).current_dir(&pkg));
        ok(&o);
        let err = stderr(&o);
        assert!(
            err.contains("virtio-rng-device,bus=virtio-mmio-bus.0,id=kmod-mmio0"),
            "{err}"
        );
        assert!(
            err.contains("Devices virtio_probe: virtio-rng-device (virtio-mmio) at a000000.virtio_mmio bound by virtio_probe"),
            "{err}"
        );
        assert!(err.contains("Resuming the booted kernel"), "{err}");
        assert!(
            stdout(&o).contains("test virtio_probe_tests::probed_the_virtio_rng ... ok"),
            "{}",
            stdout(&o)
        );
    }

    // x86_64 has no virtio-mmio transports: the PCI variant is named.
    let (_tmp2, hello) = example("hello");
    let dev = hello.join("mmio.toml");
    write(
        &dev,
        "[[devices]]\nbus = \"virtio-mmio\"\nqemu-device = \"virtio-rng-device\"\n",
    );
    let o = run(kmod(&["test", "--arch", "x86_64", "--device", s(&dev)]).current_dir(&hello));
    let (err, help) = error_and_help(&fails(&o));
    assert!(
        err.contains(
            "is a virtio-mmio device, and qemu's x86_64 machine has no virtio-mmio transports"
        ),
        "{err}"
    );
    assert!(
        help.contains("`bus = \"pci\"` with `qemu-device = \"virtio-rng-pci\"`"),
        "{help}"
    );
    assert!(!stderr(&o).contains("Booting"), "{}", stderr(&o));
    // A model qemu does not have, and the PCI variant on the MMIO bus.
    write(
        &dev,
        "[[devices]]\nbus = \"virtio-mmio\"\nqemu-device = \"virtio-rgn-device\"\n",
    );
    let o = run(kmod(&["test", "--arch", "arm64", "--device", s(&dev)]).current_dir(&hello));
    let (err, help) = error_and_help(&fails(&o));
    assert!(err.contains("is not a virtio-mmio device of"), "{err}");
    assert_eq!(help, "help: did you mean `virtio-rng-device`?");
    write(
        &dev,
        "[[devices]]\nbus = \"virtio-mmio\"\nqemu-device = \"virtio-rng-pci\"\n",
    );
    let o = run(kmod(&["test", "--arch", "arm64", "--device", s(&dev)]).current_dir(&hello));
    let (err, help) = error_and_help(&fails(&o));
    assert!(
        err.contains("`virtio-rng-pci` is not a virtio model for the MMIO transport"),
        "{err}"
    );
    assert!(help.contains("use `virtio-rng-device` here"), "{help}");
}
