//! Test devices on the real dev trees, under real qemu, both arches, through the real
//! binary: the platform and I2C examples probe the devices of their manifests and their
//! KUnit cases see the properties; `cargo kmod run` boots with the same devices; a device no
//! driver matches, a probe that fails and a property of the wrong type fail with the kernel's
//! words; a malformed overlay or a bad value is an error before any boot; and
//! `cargo kmod new --template platform|i2c|misc` packages pass their tests as written.

use crate::common::*;

use std::path::PathBuf;

#[test]
fn examples_probe_their_devices_and_kunit_sees_the_properties() {
    for arch in ARCHES {
        for name in ["blinker", "tmp-sensor"] {
            let o = devices_example(name, &["test", "--arch", arch]);
            ok(&o);
            assert!(
                stdout(&o).contains("test result: ok. 2 passed; 0 failed"),
                "{arch} {name}: {}",
                stdout(&o)
            );
        }
        // The Rust device tables reach `.modinfo` as aliases (what explains an unbound
        // device): OF tables as `of:N*T*C...`, I2C id tables as `i2c:...`.
        let test_ko = |m: &str| {
            root()
                .join("target/kmod-fixtures/devices-target/kmod")
                .join(arch)
                .join("test")
                .join(format!("{m}.ko"))
        };
        let alias = |ko: PathBuf| {
            let o = std::process::Command::new("modinfo")
                .args(["-F", "alias"])
                .arg(&ko)
                .output()
                .expect("cannot run modinfo");
            stdout(&o).lines().map(str::to_string).collect::<Vec<_>>()
        };
        assert_eq!(
            alias(test_ko("blinker")),
            ["of:N*T*Cacme,blinker", "of:N*T*Cacme,blinkerC*"],
            "{arch}"
        );
        assert_eq!(
            alias(test_ko("tmp_sensor")),
            [
                "i2c:tmp-sensor",
                "of:N*T*Cacme,tmp-sensor",
                "of:N*T*Cacme,tmp-sensorC*"
            ],
            "{arch}"
        );
        // `run` boots with the same devices: the driver probed and logged what it read.
        let o = devices_example(
            "blinker",
            &[
                "run",
                "--arch",
                arch,
                "--exec",
                "cd -P /sys/bus/platform/devices/blinker/driver && pwd; dmesg | grep blinking",
            ],
        );
        ok(&o);
        let out = stdout(&o);
        assert!(
            out.contains("/sys/bus/platform/drivers/blinker"),
            "{arch}: {out}"
        );
        assert!(
            out.contains(
                "blinker blinker: blinking \"status\" on pins [3, 5] every 250 ms (active low, at most 4294967296 ticks)"
            ),
            "{arch}: {out}"
        );
        let o = devices_example(
            "tmp-sensor",
            &[
                "run",
                "--arch",
                arch,
                "--exec",
                "cat /sys/bus/i2c/devices/0-0048/name; dmesg | grep 'm°C'",
            ],
        );
        ok(&o);
        let out = stdout(&o);
        assert!(out.starts_with("tmp-sensor\n"), "{arch}: {out}");
        assert!(
            out.contains("tmp_sensor 0-0048: \"board\": 25500 m°C (12-bit)"),
            "{arch}: {out}"
        );
    }
}

#[test]
fn unbound_devices_and_failing_probes_fail_with_the_kernels_words() {
    let faults = device_fixture("blinker-faults.toml").display().to_string();
    for arch in ARCHES {
        let o = devices_example("blinker", &["test", "--arch", arch, "--device", &faults]);
        assert_eq!(o.status.code(), Some(101), "{arch}: {}", stderr(&o));
        let out = stdout(&o);
        // The manifest's own device still probes and the KUnit cases pass.
        assert!(
            out.contains("test result: FAILED. 2 passed; 4 failed"),
            "{arch}: {out}"
        );
        assert_eq!(
            failure(&out, "device acme,blinker-v2 (platform)"),
            ["device acme,blinker-v2 (platform) was not bound: no driver of module blinker matched its compatible"],
            "{arch}"
        );
        assert_eq!(
            failure(&out, "device acme,blinker (platform) at /zero-period"),
            [
                "device acme,blinker (platform) was not bound: probe with driver blinker failed with error -22",
                "blinker zero-period: acme,period-ms is 0: it must be 1 to 10000",
            ],
            "{arch}"
        );
        // A string read as a u32: its first four bytes, refused by the driver's own check.
        assert_eq!(
            failure(&out, "device acme,blinker (platform) at /string-period"),
            [
                "device acme,blinker (platform) was not bound: probe with driver blinker failed with error -22",
                "blinker string-period: acme,period-ms is 1717662580: it must be 1 to 10000",
            ],
            "{arch}"
        );
        // One byte read as a u32: the kernel's read fails with -EOVERFLOW.
        assert_eq!(
            failure(&out, "device acme,blinker (platform) at /short-period")[0],
            "device acme,blinker (platform) was not bound: probe with driver blinker failed with error -75",
            "{arch}"
        );
    }
}

#[test]
fn i2c_clients_match_by_id_table_and_a_declined_probe_is_explained() {
    let more = device_fixture("tmp-sensor-more.toml").display().to_string();
    for arch in ARCHES {
        let o = devices_example("tmp-sensor", &["test", "--arch", arch, "--device", &more]);
        assert_eq!(o.status.code(), Some(101), "{arch}: {}", stderr(&o));
        let out = stdout(&o);
        // `other,tmp-sensor` at 0x49 bound through the I2C id table; 0x4a declined.
        assert!(
            out.contains("test result: FAILED. 2 passed; 1 failed"),
            "{arch}: {out}"
        );
        assert_eq!(
            failure(&out, "device acme,tmp-sensor (i2c) at /cargo-kmod-i2c/wrong-chip@4a"),
            [
                "device acme,tmp-sensor (i2c) was not bound: a driver of module tmp_sensor matches it but did not bind it: its probe returned -ENODEV or -ENXIO (which the kernel logs only at debug level), or was deferred",
                "tmp_sensor 0-004a: chip ID is 0x42, not 0xa1",
            ],
            "{arch}"
        );
    }
}

#[test]
fn a_node_the_guest_already_has_is_refused() {
    // arm64 `-M virt` has `/timer`; x86_64's empty root has nothing to clash with.
    let clash = device_fixture("clash.toml").display().to_string();
    let o = devices_example("blinker", &["test", "--arch", "arm64", "--device", &clash]);
    assert_eq!(o.status.code(), Some(101), "{}", stderr(&o));
    let out = stdout(&o);
    let lines = failure(&out, "device acme,blinker (platform) at /timer");
    assert!(
        lines[0].starts_with(
            "device acme,blinker (platform) was not created: node `/timer` already exists in the guest's device tree"
        ),
        "{out}"
    );
    // Nothing was loaded onto the guest's own node.
    assert!(!out.contains("test blinker_tests::"), "{out}");
}

#[test]
fn ko_files_take_devices_from_device_files() {
    let dir = scratch();
    for arch in ARCHES {
        // Build the test module, then test the `.ko` with the device given for the run.
        let o = devices_example("blinker", &["test", "--arch", arch]);
        ok(&o);
        let ko = root()
            .join("target/kmod-fixtures/devices-target/kmod")
            .join(arch)
            .join("test/blinker.ko");
        let devices = dir.path().join("blinker.toml");
        std::fs::write(
            &devices,
            "[[devices]]\ncompatible = \"acme,blinker\"\nproperties = { \"acme,period-ms\" = 250, \"acme,label\" = \"status\", \"acme,pins\" = [3, 5], \"acme,active-low\" = true, \"acme,max-ticks\" = { u64 = 0x100000000 } }\n",
        )
        .unwrap();
        let o = run(kmod(&[
            "test",
            "--arch",
            arch,
            "--ko",
            &ko.display().to_string(),
            "--device",
            &devices.display().to_string(),
        ])
        .current_dir(dir.path())
        .env("CARGO_KMOD_ACCEL", "tcg"));
        ok(&o);
        assert!(
            stdout(&o).contains("test result: ok. 2 passed"),
            "{arch}: {}",
            stdout(&o)
        );
    }
}

#[test]
fn malformed_overlays_and_bad_values_are_errors_before_any_boot() {
    let bad = device_fixture("bad-syntax.dtso");
    let o = devices_example(
        "blinker",
        &[
            "test",
            "--arch",
            "x86_64",
            "--device",
            &bad.display().to_string(),
        ],
    );
    let e = fails(&o);
    assert!(
        e.contains(&format!(
            "error: invalid device overlay `{}:7.20-21`: syntax error",
            bad.display()
        )),
        "{e}"
    );
    assert!(
        !e.contains("Compiling") && !e.contains("Running"),
        "nothing is built or booted: {e}"
    );

    // A bad value in the manifest: the manifest's usual error, before anything is built.
    let dir = scratch();
    let pkg = dir.path().join("blinker");
    copy_dir(&root().join("examples/blinker"), &pkg);
    let manifest = pkg.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).unwrap().replace(
        "\"acme,period-ms\" = 250",
        "\"acme,period-ms\" = 4294967296",
    );
    std::fs::write(&manifest, text).unwrap();
    let o = devices_kmod(&pkg, &["test", "--arch", "x86_64"]);
    let e = fails(&o);
    assert!(
        e.contains(&format!(
            "error: invalid `properties.\"acme,period-ms\"` in `[package.metadata.kmod].devices[0]` of `{}`: 4294967296 does not fit in a u32; write `{{ u64 = ... }}` for a 64-bit value",
            manifest.display()
        )),
        "{e}"
    );
    assert!(!e.contains("Compiling"), "{e}");

    // A device file that is not there.
    let o = devices_example("blinker", &["test", "--device", "no-such.toml"]);
    let e = fails(&o);
    assert!(
        e.contains("error: device file `no-such.toml` does not exist"),
        "{e}"
    );
}

#[test]
fn new_driver_packages_probe_their_devices_and_pass_their_tests() {
    let dir = scratch();
    for (name, template) in [
        ("blink", "platform"),
        ("temp-sensor", "i2c"),
        ("echo", "misc"),
    ] {
        ok(&run(
            kmod(&["new", name, "--template", template]).current_dir(dir.path())
        ));
    }
    for arch in ARCHES {
        for (name, cases) in [("blink", 1), ("temp-sensor", 1), ("echo", 2)] {
            // As a user runs it: from the package directory.
            let o = run(kmod(&["test", "--arch", arch])
                .current_dir(dir.path().join(name))
                .env("CARGO_KMOD_ACCEL", "tcg"));
            ok(&o);
            assert!(
                stdout(&o).contains(&format!("test result: ok. {cases} passed")),
                "{arch} {name}: {}",
                stdout(&o)
            );
        }
    }
}

/// Interrupts for test devices: examples/irq-counter's device has one line of cargo-kmod's
/// test interrupt controller (`interrupts = 1`); its driver requests it as on hardware, its
/// KUnit test fires it through the helper's exported function and sees each one counted,
/// and under `run` the helper's `fire` parameter fires it from the shell, on both arches.
#[test]
fn a_drivers_interrupt_handler_runs_for_the_lines_tests_fire() {
    for arch in ARCHES {
        let o = devices_example("irq-counter", &["test", "--arch", arch]);
        ok(&o);
        let out = stdout(&o);
        assert!(
            out.contains("test irq_counter_tests::each_fired_interrupt_is_counted ... ok")
                && out.contains("test result: ok. 2 passed; 0 failed"),
            "{arch}: {out}"
        );
        assert!(
            stderr(&o).contains(
                "Devices irq_counter: acme,irq-counter (platform) at /irq-counter bound by irq_counter"
            ),
            "{arch}: {}",
            stderr(&o)
        );
        let o = devices_example(
            "irq-counter",
            &[
                "run",
                "--arch",
                arch,
                "--exec",
                "f=/sys/module/cargo_kmod_devices/parameters/fire; echo 0 > $f; echo 0 > $f; grep irq-counter /proc/interrupts; echo 1 > $f || echo refused",
            ],
        );
        ok(&o);
        let out = stdout(&o);
        let line = out
            .lines()
            .find(|l| l.contains("irq-counter"))
            .unwrap_or_else(|| panic!("{arch}: no irq-counter line in {out}"));
        assert_eq!(
            line.split_whitespace().nth(1),
            Some("2"),
            "{arch}: two interrupts fired: {line}"
        );
        assert!(
            out.contains("refused"),
            "{arch}: line 1 does not exist: {out}"
        );
    }
}
