//! Device specs -> overlay text -> dtc -> blob, and the errors on the way.

use std::path::Path;

use super::*;
use crate::devices::guest::{judge, parse_line, DeviceState, Evidence};

/// `[package.metadata.kmod]` written as TOML, parsed as `cargo metadata` would hand it over.
fn kmod(toml_text: &str) -> Result<Devices> {
    let table: toml::Table = toml::from_str(toml_text).unwrap();
    let value = serde_json::to_value(table).unwrap();
    spec::from_manifest(&value, Path::new("/pkg"), Path::new("/pkg/Cargo.toml"))
}

fn err(toml_text: &str) -> String {
    let e = kmod(toml_text).unwrap_err();
    let (msg, hint, _) = crate::error::render(&e);
    match hint {
        Some(h) => format!("{msg}\nhelp: {h}"),
        None => msg,
    }
}

/// Compile `d` as the devices of module `drv` into `dir`.
fn compile_for_drv(d: &Devices, dir: &Path) -> Result<Compiled> {
    let set = DeviceSet {
        modules: vec!["drv".into()],
        devices: d,
        what: "module drv".into(),
    };
    compile(&crate::shell::Shell::plain(), &[set], dir)
}

/// Each `[[devices]]` table text is refused with a message holding its words, in one line
/// (and a `help:` line).
#[track_caller]
fn assert_bad_devices(cases: &[(&str, &str)]) {
    for (text, want) in cases {
        let e = err(&format!("[[devices]]\n{text}\n"));
        assert!(e.contains(want), "{text}: {e}");
        assert!(
            !e.contains('\n') || e.lines().nth(1).is_some_and(|l| l.starts_with("help:")),
            "{e}"
        );
    }
}

const EXAMPLE: &str = r#"
[[devices]]
compatible = "acme,blinker"
properties = { "acme,period-ms" = 250, "acme,label" = "status", "acme,pins" = [3, 5], "acme,active-low" = true, "acme,absent" = false }

[[devices]]
compatible = ["acme,tmp102", "ti,tmp102"]
bus = "i2c"
address = 0x48
registers = { 0x00 = [0x19, 0x80], 0xff = 0x55 }
properties = { "acme,big" = { u64 = 0x100000000 }, "acme,raw" = { bytes = [0xde, 0xad] }, "acme,small" = { u8 = [1, 2] }, "acme,signed" = { i32 = -5 }, "acme,names" = ["a", "b\"c"] }

[[devices]]
compatible = "acme,blinker"
name = "second"
"#;

#[test]
fn parses_every_value_type() {
    let d = kmod(EXAMPLE).unwrap();
    assert_eq!(d.devices.len(), 3);
    let b = &d.devices[0];
    assert_eq!(
        (b.name.as_str(), b.bus, b.address),
        ("blinker", Bus::Platform, None)
    );
    assert_eq!(b.path(), "/blinker");
    let names: Vec<&str> = b.properties.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "acme,active-low",
            "acme,label",
            "acme,period-ms",
            "acme,pins"
        ],
        "`false` leaves the property out"
    );
    let t = &d.devices[1];
    assert_eq!(t.node_name(), "tmp102@48");
    assert_eq!(t.path(), "/cargo-kmod-i2c/tmp102@48");
    let regs = t.register_file().unwrap();
    assert_eq!(regs.len(), 256);
    assert_eq!(
        (regs[0], regs[1], regs[2], regs[255]),
        (0x19, 0x80, 0, 0x55)
    );
    let signed = t
        .properties
        .iter()
        .find(|p| p.name == "acme,signed")
        .unwrap();
    assert_eq!(
        signed.value,
        PropValue::Cells {
            bits: 32,
            values: vec![0xffff_fffb]
        }
    );
    assert_eq!(d.devices[2].path(), "/second");
}

#[test]
fn overlay_source_snapshot() {
    let d = kmod(EXAMPLE).unwrap();
    insta::assert_snapshot!(dtso::render(&d.devices, "module blink"));
}

#[test]
fn generated_overlay_compiles_and_lists_its_devices() {
    let d = kmod(EXAMPLE).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let set = DeviceSet {
        modules: vec!["blink".into()],
        devices: &d,
        what: "module blink".into(),
    };
    let c = compile(&Shell::plain(), &[set], dir.path()).unwrap();
    assert_eq!(c.overlays.len(), 1);
    assert_eq!(c.overlays[0].0, "/kmod/devices/devices.dtbo");
    assert_eq!(c.root_nodes, ["/blinker", "/cargo-kmod-i2c", "/second"]);
    // Another set in the same directory (a second run at once) gets a file of its own.
    let other = kmod("[[devices]]\ncompatible = \"acme,other\"\n").unwrap();
    let set = DeviceSet {
        modules: vec!["other".into()],
        devices: &other,
        what: "module other".into(),
    };
    let c2 = compile(&Shell::plain(), &[set], dir.path()).unwrap();
    assert_ne!(c.overlays[0].1, c2.overlays[0].1);
    assert_eq!(c2.overlays[0].0, "/kmod/devices/devices.dtbo");
    let blob = std::fs::read(&c.overlays[0].1).unwrap();
    let info = fdt::overlay_info(&blob).unwrap();
    assert_eq!(
        (info.fragments, info.phandle_targets, info.symbols),
        (1, 0, false)
    );
    let paths: Vec<&str> = info.devices.iter().map(|d| d.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/blinker",
            "/second",
            "/cargo-kmod-i2c",
            "/cargo-kmod-i2c/tmp102@48"
        ]
    );
    assert_eq!(info.devices[3].compatible, ["acme,tmp102", "ti,tmp102"]);
    let root = fdt::parse(&blob).unwrap();
    let ov = root.children[0].child("__overlay__").unwrap();
    let blinker = ov.child("blinker").unwrap();
    assert_eq!(blinker.prop("acme,period-ms"), Some(&[0, 0, 0, 250][..]));
    assert_eq!(
        blinker.prop("acme,pins"),
        Some(&[0, 0, 0, 3, 0, 0, 0, 5][..])
    );
    assert_eq!(blinker.prop("acme,active-low"), Some(&[][..]));
    assert_eq!(blinker.strings("acme,label").unwrap(), ["status"]);
    let sensor = ov
        .child("cargo-kmod-i2c")
        .unwrap()
        .child("tmp102@48")
        .unwrap();
    assert_eq!(sensor.prop("reg"), Some(&[0, 0, 0, 0x48][..]));
    assert_eq!(sensor.prop("acme,big"), Some(&[0, 0, 0, 1, 0, 0, 0, 0][..]));
    assert_eq!(sensor.prop("acme,raw"), Some(&[0xde, 0xad][..]));
    assert_eq!(sensor.prop("acme,small"), Some(&[1, 2][..]));
    assert_eq!(sensor.strings("acme,names").unwrap(), ["a", "b\"c"]);
    // The devices to check: the bus node itself is the helper's, not the user's.
    let checked: Vec<(&str, Bus)> = c.devices.iter().map(|d| (d.path.as_str(), d.bus)).collect();
    assert_eq!(
        checked,
        [
            ("/blinker", Bus::Platform),
            ("/cargo-kmod-i2c/tmp102@48", Bus::I2c),
            ("/second", Bus::Platform)
        ]
    );
}

#[test]
fn raw_overlays_compile_and_errors_quote_dtc() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("board.dtso");
    std::fs::write(
        &good,
        "/dts-v1/;\n/plugin/;\n&{/} {\n\tled: leds {\n\t\tcompatible = \"acme,leds\";\n\t\tpeer = <&led>;\n\t\tchild { compatible = \"acme,led\"; };\n\t};\n};\n",
    )
    .unwrap();
    let devs = Devices {
        devices: vec![],
        overlays: vec![good.clone()],
    };
    let set = DeviceSet {
        modules: vec!["m".into()],
        devices: &devs,
        what: "module m".into(),
    };
    let c = compile(&Shell::plain(), &[set], dir.path()).unwrap();
    assert_eq!(c.overlays[0].0, "/kmod/devices/overlay-0.dtbo");
    let info = fdt::overlay_info(&std::fs::read(&c.overlays[0].1).unwrap()).unwrap();
    assert!(
        !info.symbols,
        "no `-@`: the live trees have no `__symbols__`"
    );
    let checked: Vec<&str> = c.devices.iter().map(|d| d.path.as_str()).collect();
    assert_eq!(checked, ["/leds"], "children of a device are the driver's");
    assert_eq!(c.root_nodes, ["/leds"]);

    let bad = dir.path().join("bad.dtso");
    std::fs::write(
        &bad,
        "/dts-v1/;\n/plugin/;\n&{/} {\n\tfoo { x = <1 2; };\n};\n",
    )
    .unwrap();
    let devs = Devices {
        devices: vec![],
        overlays: vec![bad.clone()],
    };
    let set = DeviceSet {
        modules: vec!["m".into()],
        devices: &devs,
        what: "module m".into(),
    };
    let e = compile(&Shell::plain(), &[set], dir.path()).unwrap_err();
    let msg = e.to_string();
    assert_eq!(
        msg,
        format!(
            "invalid device overlay `{}:4.16-17`: syntax error",
            bad.display()
        ),
        "{msg}"
    );

    let plain = dir.path().join("plain.dtso");
    std::fs::write(&plain, "/dts-v1/;\n/ { foo { compatible = \"a,b\"; }; };\n").unwrap();
    let devs = Devices {
        devices: vec![],
        overlays: vec![plain.clone()],
    };
    let set = DeviceSet {
        modules: vec!["m".into()],
        devices: &devs,
        what: "module m".into(),
    };
    let e = compile(&Shell::plain(), &[set], dir.path()).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "`{}` is not a device-tree overlay: it has no fragment to apply",
            plain.display()
        )
    );
}

#[test]
fn bad_values_name_the_key() {
    let sec = "`[package.metadata.kmod].devices[0]` of `/pkg/Cargo.toml`";
    assert_eq!(
        err("[[devices]]\ncompatible = \"a,b\"\nbuss = \"i2c\""),
        format!("unknown key `buss` in {sec}\nhelp: did you mean `bus`?")
    );
    assert!(err("[[devices]]\nbus = \"i2c\"\naddress = 0x48")
        .starts_with(&format!("missing `compatible` in {sec}")));
    assert_eq!(
        err("[[devices]]\ncompatible = \"a,b\"\nbus = \"spi\""),
        format!("invalid `bus` in {sec}: unknown bus `spi`\nhelp: use `platform` (the default), `i2c`, `pci`, `acpi`, `usb` or `virtio-mmio`")
    );
    assert!(
        err("[[devices]]\ncompatible = \"a,b\"\nbus = \"i2c\"").starts_with(&format!(
            "missing `address` in {sec}: an I2C device needs its 7-bit address"
        ))
    );
    assert_eq!(
        err("[[devices]]\ncompatible = \"a,b\"\nbus = \"i2c\"\naddress = 0x80"),
        format!("invalid `address` in {sec}: 0x80 is not a 7-bit I2C address (0x01 to 0x7f)")
    );
    assert!(
        err("[[devices]]\ncompatible = \"a,b\"\naddress = 0x48").starts_with(&format!(
            "invalid `address` in {sec}: only I2C devices have an address"
        ))
    );
    let p = |v: &str| {
        err(&format!(
            "[[devices]]\ncompatible = \"a,b\"\nproperties = {{ \"x,y\" = {v} }}"
        ))
    };
    let key = format!("invalid `properties.\"x,y\"` in {sec}");
    assert!(p("4294967296").starts_with(&format!(
        "{key}: 4294967296 does not fit in a u32; write `{{ u64 = ... }}` for a 64-bit value"
    )));
    assert!(p("-1").starts_with(&format!(
        "{key}: -1 does not fit in a u32; write `{{ i32 = ... }}` for a signed value"
    )));
    assert!(p("1.5").starts_with(&format!("{key}: `1.5` is not an integer")));
    assert!(p("[]").starts_with(&format!("{key}: an empty array has no type")));
    assert!(p("[1, \"a\"]").starts_with(&format!("{key}: an array mixes types")));
    assert!(
        p("{ u33 = 1 }").starts_with(&format!("{key}: unknown type `u33` (did you mean `u32`?)"))
    );
    assert!(p("{ u8 = 256 }").starts_with(&format!("{key}: 256 does not fit in a u8")));
    assert!(p("{ u16 = \"x\" }").starts_with(&format!(
        "{key}: `\"x\"` is a string where an integer is expected"
    )));
    assert!(p("{ u8 = 1, u16 = 2 }")
        .starts_with(&format!("{key}: a typed value is a table with one key")));
    assert!(p("\"a\\u0000b\"").starts_with(&format!("{key}: a string contains a NUL character")));
    assert!(
        err("[[devices]]\ncompatible = \"a,b\"\nproperties = { \"a b\" = 1 }").starts_with(
            &format!(
                "invalid `properties.\"a b\"` in {sec}: ` ` is not allowed in a property name"
            )
        )
    );
    assert!(
        err("[[devices]]\ncompatible = \"a,b\"\nproperties = { compatible = \"x\" }").contains(
            "this property is set by cargo-kmod\nhelp: set `compatible` in the device table itself"
        )
    );
    assert_eq!(
        err("[[devices]]\ncompatible = \"a,b\"\nname = \"x@1\""),
        format!("invalid `name` in {sec}: node name `x@1` has a unit address; cargo-kmod adds `@ADDRESS` for I2C devices itself")
    );
    assert!(
        err("[[devices]]\ncompatible = \"a,b\"\nregisters = { 0 = 1 }").starts_with(&format!(
            "invalid `registers` in {sec}: only I2C devices have a register file"
        ))
    );
    let r = |v: &str| {
        err(&format!(
            "[[devices]]\ncompatible = \"a,b\"\nbus = \"i2c\"\naddress = 0x10\nregisters = {v}"
        ))
    };
    assert_eq!(
        r("{ 0x100 = 1 }"),
        format!("invalid `registers` in {sec}: register `0x100` is not a number from 0x00 to 0xff")
    );
    assert_eq!(
        r("{ 0xfe = [1, 2, 3] }"),
        format!("invalid `registers` in {sec}: register `0xfe`: 3 bytes run past register 0xff")
    );
    assert_eq!(
        r("{ 0 = [1, 2], 1 = 3 }"),
        format!("invalid `registers` in {sec}: register 0x01 is given twice")
    );
    assert_eq!(
        err("[[devices]]\ncompatible = \"a,b\"\nname = \"n\"\n[[devices]]\ncompatible = \"c,d\"\nname = \"n\""),
        "two test devices are named `n`: `/pkg/Cargo.toml` [package.metadata.kmod].devices[0] and `/pkg/Cargo.toml` [package.metadata.kmod].devices[1]\nhelp: give one of them another `name`"
    );
    assert_eq!(
        err("[[devices]]\ncompatible = \"a,b\"\nbus = \"i2c\"\naddress = 0x10\n[[devices]]\ncompatible = \"c,d\"\nbus = \"i2c\"\naddress = 0x10"),
        "two I2C test devices use address 0x10: `/pkg/Cargo.toml` [package.metadata.kmod].devices[0] and `/pkg/Cargo.toml` [package.metadata.kmod].devices[1]\nhelp: give one of them another `address`"
    );
    assert_eq!(
        err("devices = 3"),
        "invalid `devices` in `[package.metadata.kmod]` of `/pkg/Cargo.toml`: expected an array of tables\nhelp: declare each device as `[[package.metadata.kmod.devices]]`"
    );
}

#[test]
fn default_names_are_unique_and_valid() {
    let d = kmod("[[devices]]\ncompatible = \"acme,led\"\n[[devices]]\ncompatible = \"acme,led\"\n[[devices]]\ncompatible = \"9x\"").unwrap();
    let names: Vec<&str> = d.devices.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["led", "led-2", "dev-9x"]);
}

#[test]
fn device_files() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("devs.toml");
    std::fs::write(
        &f,
        "device-overlays = [\"extra.dtso\"]\n[[devices]]\ncompatible = \"acme,x\"\n",
    )
    .unwrap();
    let d = spec::from_file(&f).unwrap();
    assert_eq!(d.devices[0].origin, format!("`{}` devices[0]", f.display()));
    assert_eq!(d.overlays, [dir.path().join("extra.dtso")]);
    std::fs::write(&f, "[[device]]\ncompatible = \"acme,x\"\n").unwrap();
    let e = spec::from_file(&f).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "unknown key `device` in `the top level` of `{}`",
            f.display()
        )
    );
    std::fs::write(&f, "[[devices]\n").unwrap();
    let e = spec::from_file(&f).unwrap_err();
    assert!(
        e.to_string()
            .starts_with(&format!("invalid device file `{}:1`: ", f.display())),
        "{e}"
    );
    let dtso = dir.path().join("x.dtso");
    std::fs::write(&dtso, "").unwrap();
    assert_eq!(
        spec::from_file(&dtso).unwrap().overlays,
        std::slice::from_ref(&dtso)
    );
    let e = spec::from_file(&dir.path().join("x.json")).unwrap_err();
    assert!(e.to_string().ends_with("does not exist"), "{e}");
}

#[test]
fn helper_script_and_protocol() {
    let devices = vec![
        GuestDevice {
            path: "/blinker".into(),
            bus: Bus::Platform,
            compatible: vec!["acme,blinker".into()],
            modules: vec!["blink".into()],
            origin: "`Cargo.toml`".into(),
        },
        GuestDevice {
            path: "/cargo-kmod-i2c/sensor@48".into(),
            bus: Bus::I2c,
            compatible: vec!["acme,sensor".into()],
            modules: vec!["blink".into()],
            origin: "`Cargo.toml`".into(),
        },
    ];
    insta::assert_snapshot!(guest::check_script(&devices));
    assert_eq!(
        parse_line("device /blinker platform 1 blinker blink blink"),
        Some(DeviceState {
            path: "/blinker".into(),
            bus: "platform".into(),
            node: true,
            name: Some("blinker".into()),
            driver: Some("blink".into()),
            module: Some("blink".into()),
        })
    );
    assert_eq!(parse_line("device /x"), None);
    assert_eq!(parse_line("blinker: hello"), None);
}

fn state(line: &str) -> DeviceState {
    parse_line(line).unwrap()
}

/// A device that module `blink` declared.
pub(super) fn dev(path: &str, bus: Bus, compat: &str) -> GuestDevice {
    GuestDevice {
        path: path.into(),
        bus,
        compatible: vec![compat.into()],
        modules: vec!["blink".into()],
        origin: "`Cargo.toml` [package.metadata.kmod].devices[0]".into(),
    }
}

#[test]
fn verdicts() {
    let blinker = dev("/blinker", Bus::Platform, "acme,blinker");
    let loaded = ["blink".to_string()];
    let ev = Evidence {
        helper_loaded: true,
        devices_removed: true,
        loaded: &loaded,
        ..Evidence::default()
    };
    // Bound to the module's driver, gone after removal: nothing to say.
    let states = [state("device /blinker platform 1 blinker blink blink")];
    assert_eq!(judge(std::slice::from_ref(&blinker), &states, &ev), []);

    // Not bound, and the module has no alias for it.
    let unbound = [state("device /blinker platform 1 blinker - -")];
    let aliases = vec![("blink".to_string(), vec!["of:N*T*Cacme,other".to_string()])];
    let ev2 = Evidence {
        aliases: &aliases,
        loaded: &loaded,
        helper_loaded: true,
        ..Evidence::default()
    };
    let p = judge(std::slice::from_ref(&blinker), &unbound, &ev2);
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].name, "device acme,blinker (platform)");
    assert_eq!(
        p[0].lines,
        ["device acme,blinker (platform) was not bound: no driver of module blink matched its compatible"]
    );
    // An alias matches but nothing bound: the silent probe errors.
    let aliases = vec![(
        "blink".to_string(),
        vec![
            "of:N*T*Cacme,blinkerC*".to_string(),
            "of:N*T*Cacme,blinker".to_string(),
        ],
    )];
    let ev3 = Evidence {
        aliases: &aliases,
        loaded: &loaded,
        helper_loaded: true,
        ..Evidence::default()
    };
    let p = judge(std::slice::from_ref(&blinker), &unbound, &ev3);
    assert!(
        p[0].lines[0].contains("a driver of module blink matches it but did not bind it"),
        "{p:?}"
    );

    // A probe error: the kernel's words and the driver's own lines.
    let log = vec![
        "[    1.5] blink blinker: acme,period-ms is 0: must be 1 to 10000".to_string(),
        "[    1.5] blink blinker: probe with driver blink failed with error -22".to_string(),
        "[    1.6] other: unrelated".to_string(),
    ];
    let ev4 = Evidence {
        load_log: &log,
        loaded: &loaded,
        helper_loaded: true,
        ..Evidence::default()
    };
    let p = judge(std::slice::from_ref(&blinker), &unbound, &ev4);
    assert_eq!(
        p[0].lines,
        [
            "device acme,blinker (platform) was not bound: probe with driver blink failed with error -22",
            "blink blinker: acme,period-ms is 0: must be 1 to 10000",
        ]
    );

    // Bound to someone else's driver.
    let other = [state(
        "device /blinker platform 1 blinker leds-gpio leds_gpio",
    )];
    let p = judge(std::slice::from_ref(&blinker), &other, &ev4);
    assert_eq!(
        p[0].lines,
        ["device acme,blinker (platform) was bound to driver `leds-gpio` of module leds_gpio, not to a driver of module blink"]
    );

    // A node the guest's own tree has: the helper refused the overlay.
    let helper_log =
        vec!["cargo-kmod: node /blinker already exists in the live device tree".to_string()];
    let ev6 = Evidence {
        helper_log: &helper_log,
        loaded: &loaded,
        ..Evidence::default()
    };
    let p = judge(std::slice::from_ref(&blinker), &[], &ev6);
    assert_eq!(
        p[0].lines,
        [
            "device acme,blinker (platform) was not created: node `/blinker` already exists in the guest's device tree, and an overlay would change it instead of adding a device",
            "help: give the device another `name` (`Cargo.toml` [package.metadata.kmod].devices[0])",
        ]
    );

    // Leftovers and node leaks after removal.
    let log = vec![
        "OF: ERROR: memory leak, expected refcount 1 instead of 2, of_node_get()/of_node_put() unbalanced - destroy cset entry: attach overlay node /blinker".to_string(),
        "cargo-kmod: node /blinker is still in the live device tree after its overlay was removed".to_string(),
    ];
    let ev5 = Evidence {
        remove_log: &log,
        loaded: &loaded,
        helper_loaded: true,
        devices_removed: true,
        ..Evidence::default()
    };
    let bound = [state("device /blinker platform 1 blinker blink blink")];
    let p = judge(&[blinker], &bound, &ev5);
    assert_eq!(p[0].lines.len(), 3, "{p:?}");
    assert!(
        p[0].lines[0].contains("is still in the guest's device tree after its overlay was removed")
    );
    assert!(p[0].lines[1].contains("of_node_get"));
    assert!(p[0].lines[2].starts_with("OF: ERROR: memory leak"));
}

#[test]
fn manifest_key_is_accepted_by_the_manifest_reader() {
    let t = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(t.path().join("src")).unwrap();
    std::fs::write(t.path().join("src/lib.rs"), "").unwrap();
    std::fs::write(
        t.path().join("Cargo.toml"),
        "[package]\nname = \"blink\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[package.metadata.kmod]\ndevice-overlays = [\"board.dtso\"]\n\n[[package.metadata.kmod.devices]]\ncompatible = \"acme,blinker\"\nproperties = { \"acme,period-ms\" = 250 }\n",
    )
    .unwrap();
    let ws = crate::manifest::load(&Shell::plain(), Some(&t.path().join("Cargo.toml"))).unwrap();
    let d = &ws.modules[0].devices;
    assert_eq!(d.devices[0].label(), "acme,blinker");
    assert!(d.overlays[0].ends_with("board.dtso"));
}

/// Issue 18 §5: the helper's lists have no fixed size and no separator a node name can
/// hold: 40 devices with 31-character names (more than a 1024-byte `charp` parameter), and
/// names with commas, each one line of a file.
#[test]
fn helper_lists_are_files_of_lines() {
    let mut text = String::new();
    for i in 0..40 {
        text.push_str(&format!(
            "[[devices]]\ncompatible = \"acme,x\"\nname = \"n{i:02},{}\"\n",
            "x".repeat(27)
        ));
    }
    let d = kmod(&text).unwrap();
    assert_eq!(d.devices[0].name.len(), 31);
    let dir = tempfile::tempdir().unwrap();
    let set = DeviceSet {
        modules: vec!["m".into()],
        devices: &d,
        what: "module m".into(),
    };
    let c = compile(&Shell::plain(), &[set], dir.path()).unwrap();
    let (params, lists) = helper_lists(&c);
    assert_eq!(
        params,
        [
            "overlay_list=/kmod/devices/overlays",
            "node_list=/kmod/devices/nodes",
            "check_list=/kmod/devices/checks"
        ]
    );
    assert!(params.iter().all(|p| p.len() < 1024));
    // The helper's report covers each device: its bus, then its node.
    let checks: Vec<&str> = lists[2].1.lines().collect();
    assert_eq!(checks.len(), 40);
    assert_eq!(checks[0], format!("platform /n00,{}", "x".repeat(27)));
    assert_eq!(
        lists[0],
        (
            "/kmod/devices/overlays".to_string(),
            "/kmod/devices/devices.dtbo\n".to_string()
        )
    );
    let nodes: Vec<&str> = lists[1].1.lines().collect();
    assert_eq!(nodes.len(), 40);
    assert_eq!(nodes[0], format!("/n00,{}", "x".repeat(27)));
    assert!(lists[1].1.len() > 1024);
}

/// Issue 18 §5: a platform device named like cargo-kmod's I2C bus node is refused with its
/// manifest key (it was dtc's duplicate-node error on a deleted temporary file); a default
/// name never takes it.
#[test]
fn the_i2c_bus_node_name_is_reserved() {
    let e = err("[[devices]]\ncompatible = \"acme,x\"\nname = \"cargo-kmod-i2c\"\n[[devices]]\ncompatible = \"acme,s\"\nbus = \"i2c\"\naddress = 0x10\n");
    assert_eq!(
        e,
        "test device `/pkg/Cargo.toml` [package.metadata.kmod].devices[0] is named `cargo-kmod-i2c`, the node of cargo-kmod's I2C bus\nhelp: give it another `name`"
    );
    let d = kmod("[[devices]]\ncompatible = \"acme,cargo-kmod-i2c\"\n").unwrap();
    assert_eq!(d.devices[0].name, "cargo-kmod-i2c-2");
}

/// Issue 18 §5: two overlays adding the same node under the root are refused before the
/// boot, naming both (the second would change the first one's node).
#[test]
fn two_overlays_adding_one_node_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("bus.dtso");
    std::fs::write(
        &raw,
        "/dts-v1/;\n/plugin/;\n&{/} {\n\tcargo-kmod-i2c { compatible = \"acme,bus\"; };\n};\n",
    )
    .unwrap();
    let mut d =
        kmod("[[devices]]\ncompatible = \"acme,s\"\nbus = \"i2c\"\naddress = 0x10\n").unwrap();
    d.overlays.push(raw.clone());
    let set = DeviceSet {
        modules: vec!["m".into()],
        devices: &d,
        what: "module m".into(),
    };
    let e = compile(&Shell::plain(), &[set], dir.path()).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "node `/cargo-kmod-i2c` is added by two overlays: `/pkg/Cargo.toml` [package.metadata.kmod].devices[0] and `{}`",
            raw.display()
        )
    );
}

/// Issue 18 §5: default names are made unique in linear time: 20,000 devices with one
/// compatible read in well under a second of work (quadratic naming took 41 s for 16,000).
#[test]
fn default_naming_is_linear() {
    let text = "[[devices]]\ncompatible = \"acme,led\"\n".repeat(20_000);
    let start = std::time::Instant::now();
    let d = kmod(&text).unwrap();
    let took = start.elapsed();
    assert_eq!(d.devices[19_999].name, "led-20000");
    assert!(took < std::time::Duration::from_secs(5), "{took:?}");
}

/// Issue 18 §4: a `compatible` with a control character (an escape sequence, OSC 52, a
/// newline that would print a fake line) or a bidi control is refused, and the message
/// shows it escaped.
#[test]
fn compatible_refuses_control_characters() {
    for (bad, shown, ch) in [
        (
            "acme,x\ntest result: ok. 9 passed",
            "acme,x\\ntest result: ok. 9 passed",
            "\\n",
        ),
        ("acme,\u{1b}[2Jx", "acme,\\u{1b}[2Jx", "\\u{1b}"),
        (
            "acme,\u{1b}]52;c;aGk=\u{7}",
            "acme,\\u{1b}]52;c;aGk=\\u{7}",
            "\\u{1b}",
        ),
        ("acme,\u{202e}x", "acme,\\u{202e}x", "\\u{202e}"),
    ] {
        let e = err(&format!(
            "[[devices]]\ncompatible = {}\n",
            toml::Value::String(bad.into())
        ));
        assert_eq!(
            e,
            format!("invalid `compatible` in `[package.metadata.kmod].devices[0]` of `/pkg/Cargo.toml`: `{shown}` holds the control character `{ch}`\nhelp: a compatible is `vendor,model`: letters, digits and `,._+-`"),
        );
    }
}

#[test]
fn pci_devices_are_qemu_models_at_chosen_slots() {
    let d = kmod(
        r#"
[[devices]]
bus = "pci"
qemu-device = "pci-testdev"

[[devices]]
bus = "pci"
qemu-device = "edu"
name = "second"
properties = { "dma_mask" = 4294967295, "note" = "a,b", "on" = true }
"#,
    )
    .unwrap();
    assert_eq!(d.devices.len(), 2);
    let first = &d.devices[0];
    assert_eq!(
        (first.bus, first.name.as_str(), first.label()),
        (Bus::Pci, "pci-testdev", "pci-testdev")
    );
    let q = d.devices[1].qemu.as_ref().unwrap();
    assert_eq!(
        q.arg(0x11, "kmod-pci1"),
        "edu,addr=0x11.0,id=kmod-pci1,dma_mask=4294967295,note=a,,b,on=on",
        "commas in values are doubled, as qemu's option parser wants"
    );
    let dir = tempfile::tempdir().unwrap();
    let c = compile_for_drv(&d, dir.path()).unwrap();
    assert!(c.overlays.is_empty(), "PCI devices need no overlay");
    assert_eq!(
        c.qemu_args,
        [
            "-device",
            "pci-testdev,addr=0x10.0,id=kmod-pci0",
            "-device",
            "edu,addr=0x11.0,id=kmod-pci1,dma_mask=4294967295,note=a,,b,on=on"
        ]
    );
    let paths: Vec<&str> = c.devices.iter().map(|g| g.path.as_str()).collect();
    assert_eq!(paths, ["0000:00:10.0", "0000:00:11.0"]);
    let script = guest::check_script(&c.devices);
    assert!(script.contains("kmod_pci 0000:00:10.0\n"), "{script}");
    let s = parse_line("device 0000:00:10.0 pci 1 0000:00:10.0 rust_driver_pci rust_driver_pci")
        .unwrap();
    let ev = Evidence {
        loaded: &["drv".to_string()],
        helper_loaded: true,
        ..Default::default()
    };
    let problems = judge(&c.devices[..1], &[s], &ev);
    assert_eq!(problems.len(), 1, "bound to another module's driver");
    assert!(
        problems[0].lines[0].contains("not to a driver of module drv"),
        "{:?}",
        problems[0]
    );
    let absent = parse_line("device 0000:00:10.0 pci - - - -").unwrap();
    let problems = judge(&c.devices[..1], &[absent], &ev);
    assert!(
        problems[0].lines[0].contains("the guest has no PCI device at 0000:00:10.0"),
        "{:?}",
        problems[0]
    );
    let unbound = parse_line("device 0000:00:10.0 pci 1 0000:00:10.0 - -").unwrap();
    let aliases = [("drv".to_string(), vec!["of:N*T*Cacme,x".to_string()])];
    let ev = Evidence {
        aliases: &aliases,
        ..ev
    };
    let problems = judge(&c.devices[..1], &[unbound], &ev);
    assert!(
        problems[0].lines[0].contains("has no PCI driver"),
        "{:?}",
        problems[0]
    );
}

#[test]
fn bad_pci_devices_name_the_key() {
    assert_bad_devices(&[
        ("bus = \"pci\"", "missing `qemu-device`"),
        (
            "bus = \"pci\"\nqemu-device = \"pci-testdev\"\ncompatible = \"acme,x\"",
            "invalid `compatible`",
        ),
        (
            "bus = \"pci\"\nqemu-device = \"pci-testdev,addr=3\"",
            "is not a qemu name",
        ),
        (
            "bus = \"pci\"\nqemu-device = \"x\"\nproperties = { addr = 3 }",
            "cargo-kmod sets this qemu property itself",
        ),
        (
            "bus = \"pci\"\nqemu-device = \"x\"\nproperties = { \"a=b\" = 3 }",
            "is not a qemu name",
        ),
        (
            "bus = \"pci\"\nqemu-device = \"x\"\nproperties = { v = \"a\\nb\" }",
            "without control characters",
        ),
        (
            "compatible = \"acme,x\"\nqemu-device = \"edu\"",
            "set `bus = \"pci\"`",
        ),
        (
            "bus = \"pcie\"\nqemu-device = \"edu\"",
            "`i2c`, `pci`, `acpi`, `usb` or `virtio-mmio`",
        ),
    ]);
}

#[test]
fn interrupts_are_lines_of_the_test_controller() {
    let d = kmod(
        r#"
[[devices]]
compatible = "acme,a"
interrupts = 2

[[devices]]
compatible = "acme,plain"

[[devices]]
compatible = "acme,sensor"
bus = "i2c"
address = 0x48
interrupts = 1
"#,
    )
    .unwrap();
    assert_eq!(
        dtso::irq_lines(&d.devices),
        [
            ("/a".to_string(), 0, 2),
            ("/cargo-kmod-i2c/sensor@48".to_string(), 2, 1)
        ]
    );
    let text = dtso::render(&d.devices, "module x");
    assert!(
        text.contains("kmod_irq: cargo-kmod-irq {\n\t\t\t\tstatus = \"disabled\";\n\t\t\t\tinterrupt-controller;\n\t\t\t\t#interrupt-cells = <1>;"),
        "{text}"
    );
    assert!(
        text.contains("interrupts-extended = <&kmod_irq 0>, <&kmod_irq 1>;"),
        "{text}"
    );
    assert!(
        text.contains("interrupts-extended = <&kmod_irq 2>;"),
        "{text}"
    );
    assert_eq!(text.matches("interrupts-extended").count(), 2, "{text}");
    // dtc takes it, and the helper gets the node and the number of lines.
    let dir = tempfile::tempdir().unwrap();
    let set = DeviceSet {
        modules: vec!["x".into()],
        devices: &d,
        what: "module x".into(),
    };
    let c = compile(&crate::shell::Shell::plain(), &[set], dir.path()).unwrap();
    assert_eq!(c.irq_lines, 3);
    assert!(c.root_nodes.contains(&"/cargo-kmod-irq".to_string()));
    let (params, _) = helper_lists(&c);
    assert!(
        params.contains(&"irq_node=/cargo-kmod-irq".to_string()),
        "{params:?}"
    );
    assert!(params.contains(&"irq_lines=3".to_string()), "{params:?}");
    // No interrupts, no controller.
    let plain = kmod("[[devices]]\ncompatible = \"acme,plain\"\n").unwrap();
    assert!(!dtso::render(&plain.devices, "x").contains("kmod_irq"));
}

#[test]
fn bad_interrupts_name_the_key() {
    for (text, want) in [
        (
            "compatible = \"a,b\"\ninterrupts = 0",
            "expected the number of interrupt lines, 1 to 32",
        ),
        ("compatible = \"a,b\"\ninterrupts = 33", "1 to 32"),
        ("compatible = \"a,b\"\ninterrupts = \"1\"", "1 to 32"),
        (
            "compatible = \"a,b\"\nproperties = { interrupts = 1 }",
            "set `interrupts = N` in the device table",
        ),
        (
            "compatible = \"a,b\"\nproperties = { \"interrupt-parent\" = 1 }",
            "this property is set by cargo-kmod",
        ),
        (
            "bus = \"pci\"\nqemu-device = \"edu\"\ninterrupts = 1",
            "invalid `interrupts`",
        ),
        (
            "compatible = \"a,b\"\nname = \"cargo-kmod-irq\"",
            "the node of cargo-kmod's test interrupt controller",
        ),
    ] {
        let e = match kmod(&format!("[[devices]]\n{text}\n")).and_then(|d| {
            d.check_unique()?;
            Ok(d)
        }) {
            Ok(_) => panic!("{text}: accepted"),
            Err(e) => {
                let (msg, hint, _) = crate::error::render(&e);
                format!("{msg}\nhelp: {}", hint.unwrap_or_default())
            }
        };
        assert!(e.contains(want), "{text}: {e}");
    }
    // A default name never takes the controller's node name.
    let d = kmod("[[devices]]\ncompatible = \"acme,cargo-kmod-irq\"\n").unwrap();
    assert_eq!(d.devices[0].name, "cargo-kmod-irq-2");
}

/// ACPI devices (x86_64) are one SSDT qemu loads (`-acpitable`), each `Device` named by the
/// manifest's ids only; the guest checks `<HID>:00`, and the verdict explains an absent or
/// unbound device by the modules' ACPI tables.
#[test]
fn acpi_devices_are_an_ssdt_and_their_platform_device() {
    let d = kmod(
        r#"
[[devices]]
bus = "acpi"
hid = "ACME0001"

[[devices]]
bus = "acpi"
hid = "PNP0C0A"
cid = ["ACME0002", "ACME0003"]
"#,
    )
    .unwrap();
    let specs: Vec<&DeviceSpec> = d.devices.iter().collect();
    insta::assert_snapshot!(super::acpi::render(&specs, "module drv"));
    assert_eq!(
        super::acpi::qemu_arg(std::path::Path::new("/t/a,b/acpi.aml")),
        "file=/t/a,,b/acpi.aml"
    );
    let devices = vec![GuestDevice {
        path: "ACME0001:00".into(),
        bus: Bus::Acpi,
        compatible: vec!["ACME0001".into()],
        modules: vec!["drv".into()],
        origin: "`Cargo.toml` devices[0]".into(),
    }];
    let script = guest::check_script(&devices);
    assert!(script.contains("kmod_acpi ACME0001:00\n"), "{script}");
    let ev = Evidence {
        loaded: &["drv".to_string()],
        helper_loaded: true,
        ..Default::default()
    };
    let bound = parse_line("device ACME0001:00 acpi 1 ACME0001:00 acpi_driver drv").unwrap();
    assert!(judge(&devices, &[bound], &ev).is_empty());
    let absent = parse_line("device ACME0001:00 acpi - - - -").unwrap();
    let problems = judge(&devices, &[absent], &ev);
    assert!(
        problems[0].lines[0].contains("the guest has no ACPI device `ACME0001:00`"),
        "{:?}",
        problems[0]
    );
    let unbound = parse_line("device ACME0001:00 acpi 1 ACME0001:00 - -").unwrap();
    let aliases = [("drv".to_string(), vec!["of:N*T*Cacme,x".to_string()])];
    let ev2 = Evidence {
        aliases: &aliases,
        ..ev
    };
    let problems = judge(&devices, std::slice::from_ref(&unbound), &ev2);
    assert!(
        problems[0].lines[0].contains("no ACPI table of module drv names `ACME0001`"),
        "{:?}",
        problems[0]
    );
    let aliases = [("drv".to_string(), vec!["acpi*:ACME0001:*".to_string()])];
    let ev3 = Evidence {
        aliases: &aliases,
        ..ev
    };
    let problems = judge(&devices, &[unbound], &ev3);
    assert!(
        problems[0].lines[0].contains("an ACPI table of module drv names its ids"),
        "{:?}",
        problems[0]
    );
}

#[test]
fn bad_acpi_devices_name_the_key() {
    for (text, want) in [
        ("bus = \"acpi\"", "missing `hid`"),
        ("bus = \"acpi\"\nhid = \"acme0001\"", "is not an ACPI id"),
        (
            "bus = \"acpi\"\nhid = \"ACME0001\\\")\"",
            "is not an ACPI id",
        ),
        ("bus = \"acpi\"\nhid = \"ACME00012\"", "is not an ACPI id"),
        (
            "bus = \"acpi\"\nhid = \"ACME0001\"\ncid = [\"x\"]",
            "invalid `cid`",
        ),
        (
            "bus = \"acpi\"\nhid = \"ACME0001\"\ncompatible = \"acme,x\"",
            "matched by its ACPI ids",
        ),
        (
            "compatible = \"acme,x\"\nhid = \"ACME0001\"",
            "not by ACPI ids",
        ),
    ] {
        let e = kmod(&format!("[[devices]]\n{text}\n")).unwrap_err();
        let e = crate::error::render(&e).0;
        assert!(e.contains(want), "{text}: {e}");
    }
    // Two devices of one `_HID`: the kernel's `ACME0001:00` and `ACME0001:01`.
    let d = kmod("[[devices]]\nbus = \"acpi\"\nhid = \"ACME0001\"\n[[devices]]\nbus = \"acpi\"\nhid = \"ACME0001\"\n").unwrap();
    let dir = tempfile::tempdir().unwrap();
    if crate::kernel::toolchain::which("iasl").is_some() {
        let c = compile_for_drv(&d, dir.path()).unwrap();
        let paths: Vec<&str> = c.devices.iter().map(|g| g.path.as_str()).collect();
        assert_eq!(paths, ["ACME0001:00", "ACME0001:01"]);
        assert!(c.overlays.is_empty(), "ACPI devices need no overlay");
        assert_eq!(c.qemu_args[0], "-acpitable");
    }
}

/// USB devices are gadgets on `dummy_hcd` controllers, one each: no overlay, a gadget step
/// before the modules load, `dummy_hcd.num=` for more than one, and a verdict that names the
/// interface and explains an unbound one by the modules' USB tables.
#[test]
fn usb_devices_are_gadgets_on_their_own_controllers() {
    let d = kmod(
        "[[devices]]\nbus = \"usb\"\nvendor = 0x1234\nproduct = 0x5678\n\n\
         [[devices]]\nbus = \"usb\"\nvendor = 0x1234\nproduct = 0x5678\nclass = 0xff\n",
    )
    .unwrap();
    assert_eq!(d.devices[0].name, "usb-1234-5678");
    assert_eq!(d.devices[1].name, "usb-1234-5678-2");
    assert_eq!(kernel_needs(&d)["USB_DUMMY_HCD"], "y");
    assert!(kernel_needs(&kmod(EXAMPLE).unwrap()).is_empty());
    let dir = tempfile::tempdir().unwrap();
    let c = compile_for_drv(&d, dir.path()).unwrap();
    assert!(c.overlays.is_empty() && c.qemu_args.is_empty(), "{c:?}");
    let paths: Vec<&str> = c.devices.iter().map(|g| g.path.as_str()).collect();
    assert_eq!(paths, ["dummy_hcd.0", "dummy_hcd.1"]);
    let script = guest::check_script(&c.devices);
    assert!(
        script.contains("kmod_usb dummy_hcd.1 1234:5678\n"),
        "{script}"
    );

    let ev = Evidence {
        loaded: &["drv".to_string()],
        helper_loaded: true,
        ..Default::default()
    };
    let one = &c.devices[..1];
    let bound = parse_line("device dummy_hcd.0 usb 1 1-1:1.0 rust_driver_usb drv").unwrap();
    assert!(judge(one, &[bound], &ev).is_empty());
    let absent = parse_line("device dummy_hcd.0 usb - - - -").unwrap();
    let p = judge(one, &[absent], &ev);
    assert!(
        p[0].lines[0].contains("no USB device with these IDs enumerated on `dummy_hcd.0`"),
        "{p:?}"
    );
    let unconfigured = parse_line("device dummy_hcd.0 usb 1 - - -").unwrap();
    let p = judge(one, &[unconfigured], &ev);
    assert!(p[0].lines[0].contains("no interface 1.0"), "{p:?}");
    let unbound = parse_line("device dummy_hcd.0 usb 1 1-1:1.0 - -").unwrap();
    let aliases = [(
        "drv".to_string(),
        vec!["usb:v1234p5679d*dc*dsc*dp*ic*isc*ip*in*".to_string()],
    )];
    let ev2 = Evidence {
        aliases: &aliases,
        ..ev
    };
    let p = judge(one, std::slice::from_ref(&unbound), &ev2);
    assert!(
        p[0].lines[0].contains("no USB table of module drv names 1234:5678"),
        "{p:?}"
    );
    let aliases = [(
        "drv".to_string(),
        vec!["usb:v1234p5678d*dc*dsc*dp*ic*isc*ip*in*".to_string()],
    )];
    let ev3 = Evidence {
        aliases: &aliases,
        ..ev
    };
    let p = judge(one, &[unbound], &ev3);
    assert!(
        p[0].lines[0].contains("a USB table of module drv matches it"),
        "{p:?}"
    );
}

#[test]
fn bad_usb_devices_name_the_key() {
    assert_bad_devices(&[
        ("bus = \"usb\"\nproduct = 1", "missing `vendor`"),
        ("bus = \"usb\"\nvendor = 1", "missing `product`"),
        (
            "bus = \"usb\"\nvendor = 0x10000\nproduct = 1",
            "expected a 16-bit USB ID",
        ),
        (
            "bus = \"usb\"\nvendor = \"0x1234\"\nproduct = 1",
            "`vendor = 0x1234`",
        ),
        ("bus = \"usb\"\nvendor = -1\nproduct = 1", "16-bit USB ID"),
        (
            "bus = \"usb\"\nvendor = 1\nproduct = 1\nclass = 0x100",
            "invalid `class` in `[package.metadata.kmod].devices[0]` of `/pkg/Cargo.toml`: expected an 8-bit USB code",
        ),
        (
            "bus = \"usb\"\nvendor = 1\nproduct = 1\nsubclass = \"1\"",
            "invalid `subclass`",
        ),
        (
            "bus = \"usb\"\nvendor = 1\nproduct = 1\nprotocol = -1",
            "invalid `protocol`",
        ),
        (
            "compatible = \"acme,x\"\nsubclass = 1",
            "only USB devices have `subclass`",
        ),
        (
            "bus = \"usb\"\nvendor = 1\nproduct = 1\ncompatible = \"acme,x\"",
            "matched by its IDs",
        ),
        (
            "bus = \"usb\"\nvendor = 1\nproduct = 1\nname = \"a/b\"",
            "invalid `name`",
        ),
        (
            "compatible = \"acme,x\"\nvendor = 1",
            "only USB devices have `vendor`",
        ),
        (
            "bus = \"pci\"\nqemu-device = \"edu\"\nproduct = 1",
            "invalid `product`",
        ),
        (
            "bus = \"acpi\"\nhid = \"ACME0001\"\nclass = 1",
            "invalid `class`",
        ),
    ]);
    let many: String = (0..=usb::MAX_DEVICES)
        .map(|i| format!("[[devices]]\nbus = \"usb\"\nvendor = 1\nproduct = {i}\n"))
        .collect();
    let d = kmod(&many).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let e = compile_for_drv(&d, dir.path()).unwrap_err();
    assert!(
        crate::error::render(&e)
            .0
            .contains("33 USB test devices are declared"),
        "{e:#}"
    );
}

/// A virtio PCI model is judged by the virtio device under its PCI function: the check
/// looks there, and the verdict explains a missing transport and a module without a virtio
/// table.
#[test]
fn virtio_pci_models_are_judged_by_their_virtio_device() {
    let devices = vec![GuestDevice {
        path: "0000:00:10.0".into(),
        bus: Bus::Pci,
        compatible: vec!["virtio-rng-pci".into()],
        modules: vec!["drv".into()],
        origin: "`Cargo.toml` devices[0]".into(),
    }];
    assert!(guest::is_virtio(&devices[0]));
    let script = guest::check_script(&devices);
    assert!(
        script.contains("kmod_virtio pci 0000:00:10.0 pci\n"),
        "{script}"
    );
    let ev = Evidence {
        loaded: &["drv".to_string()],
        helper_loaded: true,
        ..Default::default()
    };
    let bound = parse_line("device 0000:00:10.0 pci 1 virtio0 virtio_probe drv").unwrap();
    assert!(judge(&devices, &[bound], &ev).is_empty());
    let no_transport = parse_line("device 0000:00:10.0 pci 1 - - -").unwrap();
    let p = judge(&devices, &[no_transport], &ev);
    assert!(p[0].lines[0].contains("`CONFIG_VIRTIO_PCI`"), "{p:?}");
    let unbound = parse_line("device 0000:00:10.0 pci 1 virtio0 - -").unwrap();
    let aliases = [("drv".to_string(), vec!["pci:v*d*".to_string()])];
    let ev2 = Evidence {
        aliases: &aliases,
        ..ev
    };
    let p = judge(&devices, &[unbound], &ev2);
    assert!(p[0].lines[0].contains("has no virtio driver"), "{p:?}");
    // Other PCI models keep the PCI check.
    let edu = GuestDevice {
        compatible: vec!["edu".into()],
        ..devices[0].clone()
    };
    assert!(!guest::is_virtio(&edu));
    assert!(guest::check_script(&[edu]).contains("kmod_pci 0000:00:10.0\n"));
}

/// A virtio model of the MMIO transport sits on one of `-M virt`'s virtio-mmio transports,
/// chosen in order from the lowest, and is judged by the virtio device under the
/// transport's platform device; the PCI and MMIO variants are not mixed up.
#[test]
fn virtio_mmio_models_take_virt_transports_and_are_judged_by_their_virtio_device() {
    let d = kmod(
        r#"
[[devices]]
bus = "virtio-mmio"
qemu-device = "virtio-rng-device"

[[devices]]
bus = "virtio-mmio"
qemu-device = "virtio-rng-device"
name = "second"
properties = { "max-bytes" = 1024 }
"#,
    )
    .unwrap();
    assert_eq!(
        (d.devices[0].bus, d.devices[0].label()),
        (Bus::VirtioMmio, "virtio-rng-device")
    );
    let dir = tempfile::tempdir().unwrap();
    let c = compile_for_drv(&d, dir.path()).unwrap();
    assert!(c.overlays.is_empty(), "qemu's devices need no overlay");
    assert_eq!(
        c.qemu_args,
        [
            "-device",
            "virtio-rng-device,bus=virtio-mmio-bus.0,id=kmod-mmio0",
            "-device",
            "virtio-rng-device,bus=virtio-mmio-bus.1,id=kmod-mmio1,max-bytes=1024"
        ]
    );
    let paths: Vec<&str> = c.devices.iter().map(|g| g.path.as_str()).collect();
    assert_eq!(paths, ["a000000.virtio_mmio", "a000200.virtio_mmio"]);
    assert!(guest::is_virtio(&c.devices[0]));
    let script = guest::check_script(&c.devices);
    assert!(
        script.contains("kmod_virtio platform a000000.virtio_mmio virtio-mmio\n"),
        "{script}"
    );
    let ev = Evidence {
        loaded: &["drv".to_string()],
        helper_loaded: true,
        ..Default::default()
    };
    let bound =
        parse_line("device a000000.virtio_mmio virtio-mmio 1 virtio0 virtio_probe drv").unwrap();
    assert!(judge(&c.devices[..1], &[bound], &ev).is_empty());
    let empty = parse_line("device a000000.virtio_mmio virtio-mmio 1 - - -").unwrap();
    let p = judge(&c.devices[..1], &[empty], &ev);
    assert!(p[0].lines[0].contains("`CONFIG_VIRTIO_MMIO`"), "{p:?}");
    let absent = parse_line("device a000000.virtio_mmio virtio-mmio - - - -").unwrap();
    let p = judge(&c.devices[..1], &[absent], &ev);
    assert!(
        p[0].lines[0].contains("no virtio-mmio transport `a000000.virtio_mmio`"),
        "{p:?}"
    );
    assert_bad_devices(&[
        (
            "bus = \"virtio-mmio\"\nqemu-device = \"virtio-rng-pci\"",
            "use `virtio-rng-device` here",
        ),
        (
            "bus = \"virtio-mmio\"\nqemu-device = \"edu\"",
            "is not a virtio model for the MMIO transport",
        ),
        (
            "bus = \"virtio-mmio\"",
            "a virtio-mmio test device is one of qemu's virtio models",
        ),
        (
            "bus = \"virtio-mmio\"\nqemu-device = \"virtio-rng-device\"\ninterrupts = 1",
            "matched by its virtio ID",
        ),
        (
            "bus = \"virtio-mmio\"\nqemu-device = \"virtio-rng-device\"\nproperties = { bus = \"x\" }",
            "cargo-kmod sets this qemu property itself",
        ),
        (
            "bus = \"pci\"\nqemu-device = \"virtio-rng-device\"",
            "plugs into a virtio-mmio transport, not the PCI bus",
        ),
        (
            "bus = \"virtio-mmo\"",
            "`virtio-mmio`",
        ),
    ]);
    // More than the transports cargo-kmod gives test devices.
    let mut text = String::new();
    for i in 0..17 {
        text.push_str(&format!(
            "[[devices]]\nbus = \"virtio-mmio\"\nqemu-device = \"virtio-rng-device\"\nname = \"rng{i}\"\n"
        ));
    }
    let d = kmod(&text).unwrap();
    let e = compile_for_drv(&d, dir.path()).unwrap_err().to_string();
    assert!(
        e.contains("17 virtio-mmio test devices are declared, and a test boot has room for 16"),
        "{e}"
    );
}

/// A USB device's interface codes (`class`, `subclass`, `protocol`) follow its IDs in
/// `compatible`; the default is SourceSink's vendor-specific interface, and any other needs
/// cargo-kmod's gadget function, whose codes make the modalias a driver's table must match.
#[test]
fn usb_interface_codes_choose_the_gadget_function() {
    let d = kmod(
        r#"
[[devices]]
bus = "usb"
vendor = 0x1234
product = 0x5678

[[devices]]
bus = "usb"
name = "diag"
vendor = 0x1234
product = 0x5678
class = 0xdc
subclass = 1
protocol = 2
"#,
    )
    .unwrap();
    assert_eq!(d.devices[0].compatible, ["1234:5678", "icFFisc00ip00"]);
    assert_eq!(d.devices[1].compatible, ["1234:5678", "icDCisc01ip02"]);
    assert_eq!(d.devices[1].label(), "1234:5678");
    let gadgets: Vec<usb::Gadget> = d
        .devices
        .iter()
        .enumerate()
        .map(|(n, s)| usb::Gadget::from_compatible(n, &s.compatible).unwrap())
        .collect();
    assert!(!gadgets[0].needs_function());
    assert!(gadgets[1].needs_function());
    assert!(usb::needs_function(&gadgets));
    assert!(!usb::needs_function(&gadgets[..1]));
    assert_eq!(
        usb::modalias(&d.devices[1].compatible).unwrap(),
        "usb:v1234p5678d0000dc00dsc00dp00icDCisc01ip02in00"
    );
    // An unbound interface of another class is explained with its codes too.
    let dir = tempfile::tempdir().unwrap();
    let c = compile_for_drv(&d, dir.path()).unwrap();
    let unbound = parse_line("device dummy_hcd.1 usb 1 2-1:1.0 - -").unwrap();
    let aliases = [(
        "drv".to_string(),
        vec!["usb:v1234p9999d*dc*dsc*dp*ic*isc*ip*in*".to_string()],
    )];
    let ev = Evidence {
        loaded: &["drv".to_string()],
        helper_loaded: true,
        aliases: &aliases,
        ..Default::default()
    };
    let p = judge(&c.devices[1..], &[unbound], &ev);
    assert!(
        p[0].lines[0].contains("names 1234:5678 or its interface `icDCisc01ip02`"),
        "{p:?}"
    );
    let unbound = parse_line("device dummy_hcd.0 usb 1 1-1:1.0 - -").unwrap();
    let p = judge(&c.devices[..1], &[unbound], &ev);
    assert!(
        p[0].lines[0].contains("names 1234:5678 (declare it"),
        "{p:?}"
    );
}
