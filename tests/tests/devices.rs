//! Test devices on the real dev trees, under real qemu, both arches: the platform and I2C
//! examples probe the devices of their manifests and their KUnit cases see the properties;
//! a device no driver matches, a probe that fails and a property of the wrong type fail with
//! the kernel's words; a malformed overlay or a bad value is an error before any boot.
//!
//! The boot goes through the library's qemu entry point (`qemu::boot_to_marker`) with the
//! devices' pieces (`cargo_kmod::devices`) spliced into the test script.

mod common;
use common::*;

use std::path::{Path, PathBuf};

use cargo_kmod::context::{BuildContext, Selection, Session, TreeSelection};
use cargo_kmod::devices::guest::{self as dguest, Evidence, Problem};
use cargo_kmod::devices::{self, DeviceSet, Devices};
use cargo_kmod::ops::build::BuildOptions;
use cargo_kmod::qemu::guest::{self as qguest, Transcript};
use cargo_kmod::qemu::modules::KoModule;
use cargo_kmod::qemu::testrun::{self, CaseResult, TestOptions, Verdict};
use cargo_kmod::qemu::{boot_to_marker, Accel, BootLog, MarkerBoot};
use cargo_kmod::shell::Shell;
use cargo_kmod::tree::home::Home;
use cargo_kmod::tree::{Arch, KernelTree};

const ARCHES: [&str; 2] = ["x86_64", "arm64"];
const TAG: &str = "@@kmod:";

/// Build the test `.ko` of the package at `pkg` for `arch`.
fn build_tests(arch: &str, pkg: &Path) -> (PathBuf, PathBuf) {
    let manifest = pkg.join("Cargo.toml");
    // The test build (`--cfg test`), as `cargo kmod test` makes it.
    let session = Session::new(Shell::plain());
    let select = Selection {
        manifest_path: Some(manifest.clone()),
        ..Selection::default()
    };
    let trees = TreeSelection {
        arch: Some(Arch::parse(arch).unwrap()),
        ..TreeSelection::default()
    };
    let ctx = BuildContext::resolve(&session, &select, &trees).expect("context");
    let opts = BuildOptions {
        test: true,
        jobs: 2,
        ..BuildOptions::default()
    };
    let artifacts = cargo_kmod::ops::build::build(&session, &ctx, &opts).expect("test build");
    (manifest, artifacts[0].ko.clone())
}

/// What one boot with devices reported.
struct Run {
    cases: Vec<CaseResult>,
    problems: Vec<Problem>,
    log: BootLog,
}

impl Run {
    fn failed(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .cases
            .iter()
            .filter(|c| c.verdict == Verdict::Failed)
            .map(|c| format!("{}: {}", c.name, c.lines.join(" | ")))
            .collect();
        v.extend(
            self.problems
                .iter()
                .map(|p| format!("{}: {}", p.name, p.lines.join(" | "))),
        );
        v
    }

    fn problem(&self, name: &str) -> &Problem {
        self.problems
            .iter()
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("no problem `{name}` in {:?}", self.failed()))
    }

    fn dmesg_has(&self, text: &str) -> bool {
        self.log.lines.iter().any(|l| l.contains(text))
    }
}

/// Put the device steps into the test script where they belong: the helper and the first
/// check after the `begin` line, the check of bound drivers before the first unload, the
/// helper's unload and the last check before `end`.
fn splice(script: &str, steps: &devices::BootSteps) -> String {
    let begin = "echo \"@@kmod:begin $t\"\n";
    let at = script.find(begin).expect("begin line") + begin.len();
    let unload = script.find("&& step unload").expect("an unload line");
    let unload = script[..unload].rfind('\n').expect("a line before") + 1;
    let end = script.rfind("echo @@kmod:end").expect("end line");
    format!(
        "{}{}{}{}{}{}{}",
        steps.define,
        &script[..at],
        steps.before_loads,
        &script[at..unload],
        steps.after_loads,
        &script[unload..end],
        steps.after_unloads
    ) + &script[end..]
}

/// Boot `arch`'s dev tree with an example's test build and its manifest's devices, plus
/// `extra` devices (bindable by the example's module).
fn boot_with_devices(arch: &str, name: &str, extra: Option<&Devices>) -> Run {
    let dir = scratch();
    let pkg = dir.path().join(name);
    copy_dir(&root().join("examples").join(name), &pkg);
    boot_package(arch, &pkg, extra)
}

/// Boot `arch`'s dev tree with the test build of the package at `pkg` and its devices.
fn boot_package(arch: &str, pkg: &Path, extra: Option<&Devices>) -> Run {
    let shell = Shell::plain();
    let tree = KernelTree::open(&dev_tree(arch)).unwrap();
    let dir = scratch();
    let name = pkg.file_name().unwrap().to_string_lossy().into_owned();
    let (manifest, ko) = build_tests(arch, pkg);
    let ws = cargo_kmod::manifest::load(&shell, Some(&manifest)).unwrap();
    let m = &ws.modules[0];
    let mut sets = vec![DeviceSet {
        modules: vec![m.name.clone()],
        devices: &m.devices,
        what: format!("module {}", m.name),
    }];
    if let Some(extra) = extra {
        sets.push(DeviceSet {
            modules: vec![m.name.clone()],
            devices: extra,
            what: "--device".into(),
        });
    }
    let home = Home::from_env().unwrap();
    let out = dir.path().join("devices");
    let prepared = devices::prepare(&shell, &home, &tree, &sets, &out)
        .unwrap()
        .expect("the example declares devices");
    let module = KoModule::read(&ko, tree.arch).unwrap();
    let guests = qguest::guest_modules(std::slice::from_ref(&module));
    let script = splice(
        &qguest::test_script(&guests, true),
        &prepared.boot_steps(TAG),
    );
    let mut files = prepared.files();
    files.push((guests[0].guest_path.clone(), ko.clone()));
    let spec = MarkerBoot {
        script,
        files,
        cmdline: vec!["quiet".into()],
        timeout: Some(std::time::Duration::from_secs(90)),
        accel: Some(Accel::Tcg),
    };
    let log = boot_to_marker(&shell, &tree, &spec, "@@kmod:end").unwrap();
    if std::env::var_os("KMOD_DEVICES_DUMP").is_some() {
        eprintln!("--- {arch} {name}\n{}", log.lines.join("\n"));
    }
    let transcript = Transcript::from_log(&log);
    let (cases, _) = testrun::judge(&transcript, &log, &TestOptions::default());
    let states: Vec<_> = log
        .lines
        .iter()
        .filter_map(|l| dguest::parse_line(TAG, l))
        .collect();
    let step = |kind: &str, module: &str| {
        transcript
            .steps
            .iter()
            .find(|s| s.kind == kind && s.module == module)
    };
    let helper = devices::helper::MODULE;
    let load_log = step("load", &m.name)
        .map(|s| s.log.clone())
        .unwrap_or_default();
    let remove_log = step("unload", helper)
        .map(|s| s.log.clone())
        .unwrap_or_default();
    let aliases: Vec<(String, Vec<String>)> = vec![(
        m.name.clone(),
        cargo_kmod::ko::read(&ko)
            .unwrap()
            .module
            .modinfo
            .iter()
            .filter(|(k, _)| k == "alias")
            .map(|(_, v)| v.clone())
            .collect(),
    )];
    let ev = Evidence {
        load_log: &load_log,
        remove_log: &remove_log,
        aliases: &aliases,
        helper_loaded: step("load", helper).is_some_and(|s| s.status == Some(0)),
        helper_unloaded: step("unload", helper).is_some_and(|s| s.status == Some(0)),
    };
    let problems = dguest::judge(&prepared.devices, &states, &ev);
    Run {
        cases,
        problems,
        log,
    }
}

#[test]
fn examples_probe_their_devices_and_kunit_sees_the_properties() {
    for arch in ARCHES {
        let r = boot_with_devices(arch, "blinker", None);
        assert_eq!(r.failed(), Vec::<String>::new(), "{arch} blinker");
        let names: Vec<&str> = r.cases.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "blinker_tests::probe_read_every_property",
                "blinker_tests::periods_are_checked"
            ],
            "{arch}"
        );
        assert!(
            r.dmesg_has("blinking \"status\" on pins [3, 5] every 250 ms (active low)"),
            "{arch}: {:?}",
            r.log.lines
        );
        assert!(r.dmesg_has("stopped \"status\""), "{arch}: remove ran");

        let r = boot_with_devices(arch, "tmp-sensor", None);
        assert_eq!(r.failed(), Vec::<String>::new(), "{arch} tmp-sensor");
        assert_eq!(r.cases.len(), 2, "{arch}: {:?}", r.cases);
        assert!(
            r.dmesg_has("\"board\": 25500 m°C (12-bit)"),
            "{arch}: {:?}",
            r.log.lines
        );
    }
}

#[test]
fn unbound_devices_and_failing_probes_fail_with_the_kernels_words() {
    let extra =
        devices::spec::from_file(&root().join("tests/fixtures/devices/blinker-faults.toml"))
            .unwrap();
    for arch in ARCHES {
        let r = boot_with_devices(arch, "blinker", Some(&extra));
        // The manifest's own device still probes and the KUnit cases pass.
        assert!(
            r.cases.iter().all(|c| c.verdict == Verdict::Ok),
            "{arch}: {:?}",
            r.cases
        );
        assert_eq!(r.problems.len(), 4, "{arch}: {:?}", r.failed());
        assert_eq!(
            r.problem("device acme,blinker-v2 (platform)").lines,
            ["device acme,blinker-v2 (platform) was not bound: no driver of module blinker matched its compatible"],
            "{arch}"
        );
        let p = &r.problems[1];
        assert_eq!(
            p.lines,
            [
                "device acme,blinker (platform) was not bound: probe with driver blinker failed with error -22",
                "blinker zero-period: acme,period-ms is 0: it must be 1 to 10000",
            ],
            "{arch}"
        );
        // A string read as a u32: its first four bytes, refused by the driver's check.
        let p = &r.problems[2];
        assert_eq!(
            p.lines,
            [
                "device acme,blinker (platform) was not bound: probe with driver blinker failed with error -22",
                "blinker string-period: acme,period-ms is 1717662580: it must be 1 to 10000",
            ],
            "{arch}"
        );
        // One byte read as a u32: the kernel's read fails with -EOVERFLOW.
        let p = &r.problems[3];
        assert_eq!(
            p.lines[0],
            "device acme,blinker (platform) was not bound: probe with driver blinker failed with error -75",
            "{arch}: {p:?}"
        );
    }
}

#[test]
fn malformed_overlays_and_bad_values_are_errors_before_any_boot() {
    let shell = Shell::plain();
    let dir = scratch();
    let bad = root().join("tests/fixtures/devices/bad-syntax.dtso");
    let devs = devices::spec::from_file(&bad).unwrap();
    let sets = [DeviceSet {
        modules: vec!["m".into()],
        devices: &devs,
        what: "--device".into(),
    }];
    let e = devices::compile(&shell, &sets, dir.path()).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "invalid device overlay `{}:7.20-21`: syntax error",
            bad.display()
        )
    );
    let toml = dir.path().join("bad.toml");
    std::fs::write(
        &toml,
        "[[devices]]\ncompatible = \"acme,blinker\"\nproperties = { \"acme,period-ms\" = 4294967296 }\n",
    )
    .unwrap();
    let e = devices::spec::from_file(&toml).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "invalid `properties.\"acme,period-ms\"` in `devices[0]` of `{}`: 4294967296 does not fit in a u32; write `{{ u64 = ... }}` for a 64-bit value",
            toml.display()
        )
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
        for name in ["blink", "temp-sensor"] {
            let r = boot_package(arch, &dir.path().join(name), None);
            assert_eq!(r.failed(), Vec::<String>::new(), "{arch} {name}");
            assert_eq!(r.cases.len(), 1, "{arch} {name}: {:?}", r.cases);
            assert!(
                r.dmesg_has(": probed: "),
                "{arch} {name}: {:?}",
                r.log.lines
            );
        }
        let o = run(kmod(&["test", "--arch", arch]).current_dir(dir.path().join("echo")));
        ok(&o);
        assert!(
            stdout(&o).contains("test result: ok. 2 passed"),
            "{arch}: {}",
            stdout(&o)
        );
    }
}

#[test]
fn i2c_clients_match_by_id_table_and_a_declined_probe_is_explained() {
    let extra =
        devices::spec::from_file(&root().join("tests/fixtures/devices/tmp-sensor-more.toml"))
            .unwrap();
    for arch in ARCHES {
        let r = boot_with_devices(arch, "tmp-sensor", Some(&extra));
        assert!(
            r.cases.iter().all(|c| c.verdict == Verdict::Ok),
            "{arch}: {:?}",
            r.cases
        );
        // `other,tmp-sensor` bound through the I2C id table.
        assert!(
            r.dmesg_has("tmp_sensor 0-0049: \"board\": 25500 m°C (12-bit)"),
            "{arch}: {:?}",
            r.log.lines
        );
        assert_eq!(r.problems.len(), 1, "{arch}: {:?}", r.failed());
        assert_eq!(
            r.problems[0].lines,
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
    let extra =
        devices::spec::from_file(&root().join("tests/fixtures/devices/clash.toml")).unwrap();
    // arm64 `-M virt` has `/timer`; x86_64's empty root has nothing to clash with.
    let r = boot_with_devices("arm64", "blinker", Some(&extra));
    let p = r.problem("device acme,blinker (platform)");
    assert!(
        p.lines[0].starts_with(
            "device acme,blinker (platform) was not created: node `/timer` already exists in the guest's device tree"
        ),
        "{p:?}"
    );
    assert!(
        !r.log
            .lines
            .iter()
            .any(|l| l.contains("@@kmod:step load cargo_kmod_devices")),
        "the overlay must not be applied onto the guest's own node"
    );
}
