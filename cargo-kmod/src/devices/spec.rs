//! Test devices as the manifest declares them: `[[package.metadata.kmod.devices]]` tables and
//! `device-overlays`, or a `--device FILE` (TOML with `[[devices]]` tables, or a `.dtso`).
//!
//! Every value is checked here, so the overlay text generated from a [`DeviceSpec`] always
//! compiles; a bad key or value is a one-line error naming the file, the table and the key.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::Value;

use crate::error::UserError;
use crate::text::nearest;

/// Keys of one `[[package.metadata.kmod.devices]]` table.
pub const DEVICE_KEYS: &[&str] = &[
    "compatible",
    "bus",
    "address",
    "name",
    "properties",
    "registers",
    "qemu-device",
    "interrupts",
    "hid",
    "cid",
    "vendor",
    "product",
    "subclass",
    "protocol",
    "class",
];

/// Keys only a `bus = "usb"` table has.
const USB_KEYS: &[&str] = &["vendor", "product", "class", "subclass", "protocol"];

/// A USB test device's interface class by default: vendor-specific, the class of the
/// kernel's SourceSink gadget function that presents it ([`super::usb`]).
pub const USB_CLASS_VENDOR: u8 = 0xff;

/// Keys of a `--device FILE.toml`.
pub const FILE_KEYS: &[&str] = &["devices", "device-overlays"];

/// The explicit forms of a property value: `{ u64 = 5 }`, `{ bytes = [1, 2] }`.
pub const TYPED_KEYS: &[&str] = &["u8", "u16", "u32", "u64", "i32", "i64", "bytes", "string"];

/// Property names the table sets itself (from `compatible` and `address`).
const RESERVED_PROPERTIES: &[&str] = &[
    "compatible",
    "reg",
    "name",
    "phandle",
    "linux,phandle",
    "interrupts",
    "interrupts-extended",
    "interrupt-parent",
];

/// The most interrupt lines one test device has (`interrupts = N`).
pub const MAX_INTERRUPTS: u32 = 32;

/// The bus a test device sits on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Bus {
    /// A platform device: a node under the root of the device tree.
    Platform,
    /// An I2C client on cargo-kmod's software I2C adapter, at `address`.
    I2c,
    /// A qemu PCI device (`qemu-device`) on the machine's PCI bus: `-M pc` on x86_64, the
    /// PCIe host of `-M virt` on arm64.
    Pci,
    /// An ACPI device (`hid`, x86_64): a `Device` of an SSDT qemu gives the guest
    /// (`-acpitable`), which the kernel enumerates as the platform device `<HID>:00`.
    Acpi,
    /// A USB device (`vendor`, `product`): a configfs gadget on one of the kernel's
    /// `dummy_hcd` controllers, which the guest's USB core enumerates ([`super::usb`]).
    Usb,
    /// A qemu virtio model for the MMIO transport (`qemu-device = "virtio-rng-device"`) on
    /// one of the virtio-mmio transports of arm64 `-M virt`, which the kernel's
    /// `virtio_mmio` driver binds, making the virtio device a driver binds.
    VirtioMmio,
}

impl Bus {
    /// The name of the bus in `/sys/bus/<name>` and in the manifest.
    pub fn name(self) -> &'static str {
        match self {
            Bus::Platform => "platform",
            Bus::I2c => "i2c",
            Bus::Pci => "pci",
            Bus::Acpi => "acpi",
            Bus::Usb => "usb",
            Bus::VirtioMmio => "virtio-mmio",
        }
    }

    pub fn parse(s: &str) -> Option<Bus> {
        match s {
            "platform" => Some(Bus::Platform),
            "i2c" => Some(Bus::I2c),
            "pci" => Some(Bus::Pci),
            "acpi" => Some(Bus::Acpi),
            "usb" => Some(Bus::Usb),
            "virtio-mmio" => Some(Bus::VirtioMmio),
            _ => None,
        }
    }
}

impl std::fmt::Display for Bus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A device-tree property value, in the types drivers read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PropValue {
    /// A property without a value (`true`): a boolean flag.
    Flag,
    /// One string or a string list.
    Strings(Vec<String>),
    /// Big-endian cells of `bits` (8, 16, 32, 64) bits: `/bits/ N <...>`. Signed values are
    /// stored as their two's complement.
    Cells { bits: u8, values: Vec<u64> },
    /// A byte string `[01 02]`.
    Bytes(Vec<u8>),
}

/// One property of a device node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Property {
    pub name: String,
    pub value: PropValue,
}

/// A device qemu emulates: its model name (`pci-testdev`, `edu`) and properties, in qemu's
/// terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QemuDevice {
    pub model: String,
    /// (name, value), sorted by name.
    pub properties: Vec<(String, String)>,
}

impl QemuDevice {
    /// The `-device` value at PCI slot `slot`, with `id`: commas in values doubled, as qemu's
    /// option syntax escapes them.
    pub fn arg(&self, slot: u8, id: &str) -> String {
        self.with_properties(format!("{},addr=0x{slot:02x}.0,id={id}", self.model))
    }

    /// The `-device` value on virtio-mmio transport `n` of `-M virt` (its bus
    /// `virtio-mmio-bus.N`), with `id`.
    pub fn mmio_arg(&self, n: usize, id: &str) -> String {
        self.with_properties(format!("{},bus=virtio-mmio-bus.{n},id={id}", self.model))
    }

    fn with_properties(&self, mut s: String) -> String {
        for (k, v) in &self.properties {
            s.push_str(&format!(",{k}={}", v.replace(',', ",,")));
        }
        s
    }
}

/// Whether a qemu PCI model is a virtio device (`virtio-rng-pci`): the kernel's virtio PCI
/// transport binds the PCI function, and a virtio driver binds the virtio device under it.
pub fn is_virtio_model(model: &str) -> bool {
    model.starts_with("virtio-")
}

/// Whether a qemu virtio model is the MMIO transport's variant (`virtio-rng-device`), which
/// plugs into a virtio-mmio transport rather than the PCI bus.
pub fn is_mmio_virtio_model(model: &str) -> bool {
    is_virtio_model(model) && model.ends_with("-device")
}

/// qemu properties cargo-kmod sets itself on a PCI or virtio-mmio test device.
const QEMU_RESERVED: &[&str] = &["addr", "bus", "id", "multifunction", "romfile"];

/// One test device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceSpec {
    /// The node name, without a unit address (`blinker`; `tmp-sensor` becomes
    /// `tmp-sensor@48` on the I2C bus).
    pub name: String,
    /// `compatible`, most specific first.
    pub compatible: Vec<String>,
    pub bus: Bus,
    /// The 7-bit I2C address (I2C only).
    pub address: Option<u16>,
    /// Sorted by name.
    pub properties: Vec<Property>,
    /// I2C register file presets: (first register, bytes from there).
    pub registers: Vec<(u8, Vec<u8>)>,
    /// A PCI device's qemu model and its qemu properties (`-device MODEL,KEY=VALUE,...`).
    pub qemu: Option<QemuDevice>,
    /// How many interrupt lines of the helper's interrupt controller the device has
    /// (`interrupts = N`; platform and I2C devices).
    pub interrupts: u32,
    /// Where it was declared, for messages: "`Cargo.toml` devices[0]".
    pub origin: String,
}

impl DeviceSpec {
    /// The first `compatible`: how messages name the device.
    pub fn label(&self) -> &str {
        self.compatible.first().map_or("", String::as_str)
    }

    /// The node's full name in the device tree (`blinker`, `tmp-sensor@48`).
    pub fn node_name(&self) -> String {
        match (self.bus, self.address) {
            (Bus::I2c, Some(a)) => format!("{}@{a:x}", self.name),
            _ => self.name.clone(),
        }
    }

    /// The node's path in the guest's device tree once the overlay is applied.
    pub fn path(&self) -> String {
        match self.bus {
            Bus::Platform => format!("/{}", self.node_name()),
            Bus::I2c => format!("/{}/{}", super::dtso::I2C_BUS_NODE, self.node_name()),
            // Not a device-tree node: a name unique among the PCI test devices.
            Bus::Pci => format!("pci:{}", self.name),
            // Not a device-tree node: its `_HID` (the guest's device is `<HID>:00`).
            Bus::Acpi => format!("acpi:{}", self.name),
            // Not a device-tree node: a name unique among the USB test devices.
            Bus::Usb => format!("usb:{}", self.name),
            // Not a device-tree node: a name unique among the virtio-mmio test devices.
            Bus::VirtioMmio => format!("virtio-mmio:{}", self.name),
        }
    }

    /// The start of an I2C device's register file, up to the last preset register, when the
    /// manifest presets any (the rest of the 256 registers start at zero).
    pub fn register_file(&self) -> Option<Vec<u8>> {
        let len = self
            .registers
            .iter()
            .map(|(start, bytes)| *start as usize + bytes.len())
            .max()?;
        let mut regs = vec![0u8; len];
        for (start, bytes) in &self.registers {
            for (i, b) in bytes.iter().enumerate() {
                regs[*start as usize + i] = *b;
            }
        }
        Some(regs)
    }
}

/// The test devices of one module (or of one `--device` file).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Devices {
    pub devices: Vec<DeviceSpec>,
    /// Raw overlays (`.dtso` source files) for what the table cannot express.
    pub overlays: Vec<PathBuf>,
}

impl Devices {
    pub fn is_empty(&self) -> bool {
        self.devices.is_empty() && self.overlays.is_empty()
    }

    /// Add `other`'s devices and overlays (a `--device` file on top of the manifest's).
    pub fn extend(&mut self, other: Devices) {
        self.devices.extend(other.devices);
        self.overlays.extend(other.overlays);
    }

    /// Refuse two devices with the same node (the second would silently merge into the
    /// first), and a platform device with the node name of cargo-kmod's I2C bus.
    pub fn check_unique(&self) -> Result<()> {
        let mut seen: std::collections::BTreeMap<String, &DeviceSpec> = Default::default();
        let mut addresses: std::collections::BTreeMap<u16, &DeviceSpec> = Default::default();
        for d in &self.devices {
            if d.bus == Bus::Platform && d.name == super::dtso::I2C_BUS_NODE {
                crate::bail_user!(
                    "test device {} is named `{}`, the node of cargo-kmod's I2C bus", d.origin, d.name;
                    hint = "give it another `name`"
                );
            }
            if d.bus == Bus::Platform && d.name == super::dtso::IRQ_NODE {
                crate::bail_user!(
                    "test device {} is named `{}`, the node of cargo-kmod's test interrupt controller", d.origin, d.name;
                    hint = "give it another `name`"
                );
            }
            if let Some(first) = seen.insert(d.path(), d) {
                crate::bail_user!(
                    "two test devices are named `{}`: {} and {}", d.node_name(), first.origin, d.origin;
                    hint = "give one of them another `name`"
                );
            }
            if let Some(a) = d.address {
                if let Some(first) = addresses.insert(a, d) {
                    crate::bail_user!(
                        "two I2C test devices use address {:#04x}: {} and {}", a, first.origin, d.origin;
                        hint = "give one of them another `address`"
                    );
                }
            }
        }
        Ok(())
    }
}

/// Where a value came from, for messages: the section and the file.
struct Place<'a> {
    section: String,
    file: &'a Path,
}

impl Place<'_> {
    fn err(&self, key: &str, what: impl std::fmt::Display) -> UserError {
        UserError::new(format!(
            "invalid `{}` in `{}` of `{}`: {what}",
            crate::text::escape(key),
            self.section,
            self.file.display()
        ))
    }

    fn check_keys(&self, map: &serde_json::Map<String, Value>, valid: &[&str]) -> Result<()> {
        for key in map.keys() {
            if !valid.contains(&key.as_str()) {
                let e = UserError::new(format!(
                    "unknown key `{}` in `{}` of `{}`",
                    crate::text::escape(key),
                    self.section,
                    self.file.display()
                ));
                return Err(match nearest(key, valid.iter().copied(), 0.7) {
                    Some(n) => e.with_hint(format!("did you mean `{n}`?")),
                    None => e.with_hint(format!("valid keys: {}", valid.join(", "))),
                }
                .into());
            }
        }
        Ok(())
    }
}

/// The devices of `[package.metadata.kmod]` (`devices`, `device-overlays`); `dir` is the
/// package directory that relative overlay paths start from.
pub fn from_manifest(kmod: &Value, dir: &Path, file: &Path) -> Result<Devices> {
    let section = "[package.metadata.kmod]";
    let mut out = Devices::default();
    if let Some(v) = kmod.get("devices") {
        out.devices = parse_list(v, section, "[package.metadata.kmod].devices", file)?;
    }
    if let Some(v) = kmod.get("device-overlays") {
        out.overlays = parse_overlays(v, section, dir, file)?;
    }
    out.check_unique()?;
    Ok(out)
}

/// A `--device FILE`: a `.dtso` overlay, or TOML with `[[devices]]` tables (and optionally
/// `device-overlays`, relative to the file).
pub fn from_file(path: &Path) -> Result<Devices> {
    if !path.is_file() {
        crate::bail_user!("device file `{}` does not exist", path.display());
    }
    match path.extension().and_then(|e| e.to_str()) {
        Some("dtso") | Some("dts") => Ok(Devices {
            devices: vec![],
            overlays: vec![path.to_path_buf()],
        }),
        Some("toml") => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read `{}`", path.display()))?;
            let table: toml::Table = toml::from_str(&text).map_err(|e| {
                let msg = e.message().to_string();
                let at = e
                    .span()
                    .map(|s| {
                        let line = text[..s.start].matches('\n').count() + 1;
                        format!(":{line}")
                    })
                    .unwrap_or_default();
                UserError::new(format!(
                    "invalid device file `{}{at}`: {}",
                    path.display(),
                    msg.trim_end_matches('\n')
                ))
            })?;
            let value = serde_json::to_value(table).context("device file as JSON")?;
            let place = Place {
                section: "the top level".into(),
                file: path,
            };
            let map = value.as_object().expect("a TOML table is an object");
            place.check_keys(map, FILE_KEYS)?;
            let dir = path.parent().unwrap_or(Path::new("."));
            let mut out = Devices::default();
            if let Some(v) = map.get("devices") {
                out.devices = parse_list(v, "the top level", "devices", path)?;
            }
            if let Some(v) = map.get("device-overlays") {
                out.overlays = parse_overlays(v, "the top level", dir, path)?;
            }
            out.check_unique()?;
            Ok(out)
        }
        _ => crate::bail_user!(
            "device file `{}` is neither `.toml` nor `.dtso` (or `.dts`)", path.display();
            hint = "pass a TOML file with `[[devices]]` tables, or a device-tree overlay source"
        ),
    }
}

fn parse_overlays(v: &Value, section: &str, dir: &Path, file: &Path) -> Result<Vec<PathBuf>> {
    let place = Place {
        section: section.into(),
        file,
    };
    let list: Vec<String> = serde_json::from_value(v.clone())
        .map_err(|_| place.err("device-overlays", "expected an array of paths"))?;
    Ok(list.into_iter().map(|p| dir.join(p)).collect())
}

/// The `devices` array: `parent` is the table holding it (for messages), `section` how its
/// elements are named (`[package.metadata.kmod].devices`, then `[0]`, `[1]`, ...).
fn parse_list(v: &Value, parent: &str, section: &str, file: &Path) -> Result<Vec<DeviceSpec>> {
    let Some(list) = v.as_array() else {
        crate::bail_user!(
            "invalid `devices` in `{}` of `{}`: expected an array of tables", parent, file.display();
            hint = "declare each device as `[[{}]]`", if parent == "the top level" { "devices" } else { "package.metadata.kmod.devices" }
        );
    };
    let mut out = Vec::new();
    // The I2C bus node's name is never a default name.
    let mut names = HashSet::from([
        (Bus::Platform, super::dtso::I2C_BUS_NODE.to_string()),
        (Bus::Platform, super::dtso::IRQ_NODE.to_string()),
    ]);
    // Per default name, the suffix to try next: names are only ever added, so every smaller
    // suffix is still taken, and naming stays linear in the number of devices.
    let mut next: HashMap<(Bus, String), usize> = HashMap::new();
    for (i, d) in list.iter().enumerate() {
        let place = Place {
            section: format!("{section}[{i}]"),
            file,
        };
        let mut spec = parse_device(d, &place)?;
        // Default names are made unique; explicit ones are checked by `check_unique`.
        if d.get("name").is_none() {
            let base = spec.name.clone();
            let n = next.entry((spec.bus, base.clone())).or_insert(2);
            while names.contains(&(spec.bus, spec.name.clone())) {
                spec.name = format!("{base}-{n}");
                *n += 1;
            }
        }
        names.insert((spec.bus, spec.name.clone()));
        out.push(spec);
    }
    Ok(out)
}

/// One device table.
fn parse_device(v: &Value, place: &Place<'_>) -> Result<DeviceSpec> {
    let Some(map) = v.as_object() else {
        crate::bail_user!(
            "`{}` in `{}` must be a table",
            place.section,
            place.file.display()
        );
    };
    place.check_keys(map, DEVICE_KEYS)?;
    let bus = parse_bus(map.get("bus"), place)?;
    if matches!(bus, Bus::Pci | Bus::VirtioMmio) {
        return parse_qemu_device(map, place, bus);
    }
    if bus == Bus::Acpi {
        return parse_acpi_device(map, place);
    }
    if bus == Bus::Usb {
        return parse_usb_device(map, place);
    }
    for key in USB_KEYS {
        if map.contains_key(*key) {
            return Err(place
                .err(key, format_args!("only USB devices have `{key}`"))
                .with_hint("set `bus = \"usb\"` for a USB device, or remove it")
                .into());
        }
    }
    for key in ["hid", "cid"] {
        if map.contains_key(key) {
            return Err(place
                .err(
                    key,
                    format_args!("a {bus} device is matched by `compatible`, not by ACPI ids"),
                )
                .with_hint("set `bus = \"acpi\"` for an ACPI device (x86_64)")
                .into());
        }
    }
    if map.contains_key("qemu-device") {
        return Err(place
            .err(
                "qemu-device",
                format_args!("a {bus} device is a device-tree node, not a qemu device"),
            )
            .with_hint("set `bus = \"pci\"` for a qemu PCI device (`bus = \"virtio-mmio\"` for a virtio model of the MMIO transport), or remove `qemu-device`")
            .into());
    }
    let compatible = parse_compatible(map.get("compatible"), place)?;
    let address = parse_address(bus, map.get("address"), place)?;
    let name = parse_name(map, place, || default_name(&compatible[0]))?;
    let properties = parse_properties(map.get("properties"), place)?;
    let interrupts = match map.get("interrupts") {
        None => 0,
        Some(v) => match v.as_u64() {
            Some(n) if (1..=u64::from(MAX_INTERRUPTS)).contains(&n) => n as u32,
            _ => {
                return Err(place
                    .err(
                        "interrupts",
                        format_args!("expected the number of interrupt lines, 1 to {MAX_INTERRUPTS}"),
                    )
                    .with_hint("e.g. `interrupts = 1`: the driver gets them with `platform_get_irq` (index 0, 1, ...)")
                    .into())
            }
        },
    };
    let registers = match (bus, map.get("registers")) {
        (_, None) => vec![],
        (Bus::Platform | Bus::Pci | Bus::Acpi | Bus::Usb | Bus::VirtioMmio, Some(_)) => {
            return Err(place
                .err("registers", "only I2C devices have a register file")
                .with_hint("set `bus = \"i2c\"`, or remove `registers`")
                .into())
        }
        (Bus::I2c, Some(v)) => parse_registers(v).map_err(|why| place.err("registers", why))?,
    };
    Ok(DeviceSpec {
        name,
        compatible,
        bus,
        address,
        properties,
        registers,
        qemu: None,
        interrupts,
        origin: format!("`{}` {}", place.file.display(), place.section),
    })
}

/// `name`: a node name, else `default()`.
fn parse_name(
    map: &serde_json::Map<String, Value>,
    place: &Place<'_>,
    default: impl FnOnce() -> String,
) -> Result<String> {
    match map.get("name") {
        Some(Value::String(s)) => {
            check_node_name(s).map_err(|why| place.err("name", why))?;
            Ok(s.clone())
        }
        Some(_) => Err(place.err("name", "expected a string").into()),
        None => Ok(default()),
    }
}

/// A `bus = "pci"` or `bus = "virtio-mmio"` table: `qemu-device` (qemu's model name), an
/// optional `name`, and `properties` as qemu properties (strings, integers, booleans).
fn parse_qemu_device(
    map: &serde_json::Map<String, Value>,
    place: &Place<'_>,
    bus: Bus,
) -> Result<DeviceSpec> {
    let what = match bus {
        Bus::VirtioMmio => {
            "a virtio-mmio test device is one of qemu's virtio models for the MMIO transport"
        }
        _ => "a PCI test device is one of qemu's device models",
    };
    for key in [
        "compatible",
        "address",
        "registers",
        "interrupts",
        "vendor",
        "product",
        "class",
        "subclass",
        "protocol",
    ] {
        if map.contains_key(key) {
            return Err(match bus {
                Bus::VirtioMmio => place
                    .err(key, "a virtio-mmio device is qemu's model, matched by its virtio ID")
                    .with_hint("name the model with `qemu-device = \"virtio-rng-device\"` and remove `compatible`, `address` and `registers`"),
                _ => place
                    .err(key, "a PCI device is qemu's model, matched by its PCI IDs")
                    .with_hint("name the model with `qemu-device = \"pci-testdev\"` and remove `compatible`, `address` and `registers`"),
            }
            .into());
        }
    }
    let model = match map.get("qemu-device") {
        Some(Value::String(m)) => m.clone(),
        Some(_) => return Err(place.err("qemu-device", "expected a string").into()),
        None => {
            return Err(UserError::new(format!(
                "missing `qemu-device` in `{}` of `{}`: {what}",
                place.section,
                place.file.display()
            ))
            .with_hint(match bus {
                Bus::VirtioMmio => "add e.g. `qemu-device = \"virtio-rng-device\"` (`qemu-system-aarch64 -M virt -device help` lists them, with `bus virtio-bus`)",
                _ => "add e.g. `qemu-device = \"pci-testdev\"` (`qemu-system-x86_64 -device help` lists them)",
            })
            .into())
        }
    };
    check_qemu_word(&model).map_err(|why| place.err("qemu-device", why))?;
    match bus {
        Bus::VirtioMmio if !is_mmio_virtio_model(&model) => {
            let hint = match model.strip_suffix("-pci") {
                Some(stem) if is_virtio_model(&model) => format!(
                    "`{}` is the PCI variant: use `{stem}-device` here, or `bus = \"pci\"` for `{}`",
                    crate::text::escape(&model),
                    crate::text::escape(&model)
                ),
                _ => "use a virtio model ending in `-device` (`virtio-rng-device`); any other qemu model goes on `bus = \"pci\"`".to_string(),
            };
            return Err(place
                .err(
                    "qemu-device",
                    format_args!(
                        "`{}` is not a virtio model for the MMIO transport",
                        crate::text::escape(&model)
                    ),
                )
                .with_hint(hint)
                .into());
        }
        Bus::Pci if is_mmio_virtio_model(&model) => {
            let stem = model.strip_suffix("-device").unwrap_or(&model);
            return Err(place
                .err(
                    "qemu-device",
                    format_args!(
                        "`{}` plugs into a virtio-mmio transport, not the PCI bus",
                        crate::text::escape(&model)
                    ),
                )
                .with_hint(format!(
                    "use `{}-pci` on the PCI bus, or `bus = \"virtio-mmio\"` (arm64 `virt`)",
                    crate::text::escape(stem)
                ))
                .into());
        }
        _ => {}
    }
    let name = parse_name(map, place, || model.clone())?;
    let mut properties = Vec::new();
    match map.get("properties") {
        None => {}
        Some(Value::Object(props)) => {
            for (k, v) in props {
                let key = format!("properties.\"{k}\"");
                check_qemu_word(k).map_err(|why| place.err(&key, why))?;
                if QEMU_RESERVED.contains(&k.as_str()) {
                    return Err(place
                        .err(&key, "cargo-kmod sets this qemu property itself")
                        .with_hint("remove it: the device's slot and id are chosen per run")
                        .into());
                }
                let value = match v {
                    Value::String(s) if !s.chars().any(char::is_control) => s.clone(),
                    Value::Bool(b) => if *b { "on" } else { "off" }.to_string(),
                    Value::Number(n) => n.to_string(),
                    _ => {
                        return Err(place
                            .err(&key, "a qemu property is a string without control characters, an integer or a boolean")
                            .into())
                    }
                };
                properties.push((k.clone(), value));
            }
        }
        Some(_) => return Err(place.err("properties", "expected a table").into()),
    }
    Ok(DeviceSpec {
        name,
        compatible: vec![model.clone()],
        bus,
        address: None,
        properties: Vec::new(),
        registers: Vec::new(),
        qemu: Some(QemuDevice { model, properties }),
        interrupts: 0,
        origin: format!("`{}` {}", place.file.display(), place.section),
    })
}

/// A `bus = "acpi"` table: `hid` (the `_HID` a driver's ACPI table names), an optional `cid`
/// (`_CID`, one id or several). The id becomes ASL text, so it is checked to be an ACPI or PNP
/// id and nothing else.
fn parse_acpi_device(
    map: &serde_json::Map<String, Value>,
    place: &Place<'_>,
) -> Result<DeviceSpec> {
    for key in [
        "compatible",
        "address",
        "registers",
        "interrupts",
        "qemu-device",
        "properties",
        "name",
        "vendor",
        "product",
        "class",
        "subclass",
        "protocol",
    ] {
        if map.contains_key(key) {
            return Err(place
                .err(
                    key,
                    "an ACPI test device is matched by its ACPI ids (`hid`, `cid`)",
                )
                .with_hint("give `hid = \"ACME0001\"` (and `cid`), and remove the other keys")
                .into());
        }
    }
    let hid = match map.get("hid") {
        Some(Value::String(h)) => h.clone(),
        Some(_) => return Err(place.err("hid", "expected a string").into()),
        None => {
            return Err(UserError::new(format!(
                "missing `hid` in `{}` of `{}`: an ACPI test device is named by its hardware id",
                place.section,
                place.file.display()
            ))
            .with_hint("add the id the driver's ACPI table names, e.g. `hid = \"ACME0001\"`")
            .into())
        }
    };
    check_acpi_id(&hid).map_err(|why| place.err("hid", why))?;
    let cid: Vec<String> = match map.get("cid") {
        None => Vec::new(),
        Some(Value::String(c)) => vec![c.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .map(|c| c.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| place.err("cid", "expected a string or an array of strings"))?,
        Some(_) => {
            return Err(place
                .err("cid", "expected a string or an array of strings")
                .into())
        }
    };
    for c in &cid {
        check_acpi_id(c).map_err(|why| place.err("cid", why))?;
    }
    let mut compatible = vec![hid.clone()];
    compatible.extend(cid);
    Ok(DeviceSpec {
        name: hid,
        compatible,
        bus: Bus::Acpi,
        address: None,
        properties: Vec::new(),
        registers: Vec::new(),
        qemu: None,
        interrupts: 0,
        origin: format!("`{}` {}", place.file.display(), place.section),
    })
}

/// A `bus = "usb"` table: `vendor` and `product` (the IDs a driver's `usb_device_table!`
/// names), optional `class`, `subclass` and `protocol` (the interface's codes; default
/// vendor-specific, `0xff`/`0x00`/`0x00`) and `name`. The device's `compatible` is its IDs as
/// `lsusb` prints them (`1234:5678`), then the interface's codes (`icFFisc00ip00`).
fn parse_usb_device(map: &serde_json::Map<String, Value>, place: &Place<'_>) -> Result<DeviceSpec> {
    for key in [
        "compatible",
        "address",
        "registers",
        "interrupts",
        "qemu-device",
        "properties",
        "hid",
        "cid",
    ] {
        if map.contains_key(key) {
            return Err(place
                .err(
                    key,
                    "a USB test device is matched by its IDs (`vendor`, `product`)",
                )
                .with_hint(
                    "give `vendor = 0x1234` and `product = 0x5678`, and remove the other keys",
                )
                .into());
        }
    }
    // An integer of at most `max`; `None` when the key is absent.
    let int = |key: &str, max: u64, what: &str, example: String| -> Result<Option<u64>> {
        match map.get(key) {
            None => Ok(None),
            Some(v) => v.as_u64().filter(|n| *n <= max).map(Some).ok_or_else(|| {
                place
                    .err(key, what)
                    .with_hint(format!(
                        "write it as a TOML integer, e.g. `{key} = {example}`"
                    ))
                    .into()
            }),
        }
    };
    let id = |key: &str| -> Result<u16> {
        match int(key, 0xffff, "expected a 16-bit USB ID, 0x0000 to 0xffff", "0x1234".into())? {
            Some(n) => Ok(n as u16),
            None => Err(UserError::new(format!(
                "missing `{key}` in `{}` of `{}`: a USB test device is named by its vendor and product IDs",
                place.section,
                place.file.display()
            ))
            .with_hint("add the IDs the driver's `usb_device_table!` names, e.g. `vendor = 0x1234` and `product = 0x5678`")
            .into()),
        }
    };
    let vendor = id("vendor")?;
    let product = id("product")?;
    let byte = |key: &str, default: u8| -> Result<u8> {
        let what = "expected an 8-bit USB code, 0x00 to 0xff";
        Ok(int(key, 0xff, what, format!("0x{default:02x}"))?.map_or(default, |n| n as u8))
    };
    let interface = super::usb::Interface {
        class: byte("class", USB_CLASS_VENDOR)?,
        subclass: byte("subclass", 0)?,
        protocol: byte("protocol", 0)?,
    };
    let name = parse_name(map, place, || format!("usb-{vendor:04x}-{product:04x}"))?;
    Ok(DeviceSpec {
        name,
        // The IDs name the device in messages; the interface's codes follow.
        compatible: vec![format!("{vendor:04x}:{product:04x}"), interface.to_string()],
        bus: Bus::Usb,
        address: None,
        properties: Vec::new(),
        registers: Vec::new(),
        qemu: None,
        interrupts: 0,
        origin: format!("`{}` {}", place.file.display(), place.section),
    })
}

/// An ACPI id (`ACME0001`: four upper-case letters or digits, four hex digits) or a PNP id
/// (`PNP0C09`: three letters, four hex digits).
pub fn check_acpi_id(s: &str) -> std::result::Result<(), String> {
    let hex = |t: &str| {
        t.bytes()
            .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
    };
    let ok = match s.len() {
        8 => {
            s[..4]
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
                && hex(&s[4..])
        }
        7 => s[..3].bytes().all(|b| b.is_ascii_uppercase()) && hex(&s[3..]),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{}` is not an ACPI id (`ACME0001`: four upper-case letters or digits and four hex digits) or a PNP id (`PNP0C09`)",
            crate::text::escape(s)
        ))
    }
}

/// A qemu model or property name: letters, digits and `-_.`, starting with a letter (what
/// qemu's own names use; nothing that qemu's option parser would split or interpret).
fn check_qemu_word(s: &str) -> std::result::Result<(), String> {
    let ok = s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{}` is not a qemu name: letters, digits and `-_.`, starting with a letter",
            crate::text::escape(s)
        ))
    }
}

/// `bus`: `platform` (the default) or `i2c`.
fn parse_bus(v: Option<&Value>, place: &Place<'_>) -> Result<Bus> {
    Ok(match v {
        None => Bus::Platform,
        Some(Value::String(s)) => Bus::parse(s).ok_or_else(|| {
            place
                .err("bus", format_args!("unknown bus `{s}`"))
                .with_hint(
                    "use `platform` (the default), `i2c`, `pci`, `acpi`, `usb` or `virtio-mmio`",
                )
        })?,
        Some(_) => return Err(place.err("bus", "expected a string").into()),
    })
}

/// `compatible`: one string or a non-empty array of them, each a printable identifier.
fn parse_compatible(v: Option<&Value>, place: &Place<'_>) -> Result<Vec<String>> {
    let compatible = match v {
        None => {
            return Err(UserError::new(format!(
                "missing `compatible` in `{}` of `{}`",
                place.section,
                place.file.display()
            ))
            .with_hint("a device is matched to its driver by `compatible`, e.g. `compatible = \"acme,blinker\"`")
            .into())
        }
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) if !a.is_empty() => a
            .iter()
            .map(|s| s.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| place.err("compatible", "expected a string or an array of strings"))?,
        Some(_) => {
            return Err(place
                .err("compatible", "expected a string or an array of strings")
                .into())
        }
    };
    for c in &compatible {
        check_string(c).map_err(|why| place.err("compatible", why))?;
        if c.is_empty() {
            return Err(place.err("compatible", "a compatible is empty").into());
        }
        // An identifier: printed in case names and matched against drivers' tables, it
        // never holds a control character (a newline would print a fake line) or a bidi
        // control.
        if let Some(ch) = crate::text::unsafe_char(c) {
            return Err(place
                .err(
                    "compatible",
                    format_args!(
                        "`{}` holds the control character `{ch}`",
                        crate::text::escape(c)
                    ),
                )
                .with_hint("a compatible is `vendor,model`: letters, digits and `,._+-`")
                .into());
        }
    }
    Ok(compatible)
}

/// `address`: the 7-bit address an I2C device needs and a platform device cannot have.
fn parse_address(bus: Bus, v: Option<&Value>, place: &Place<'_>) -> Result<Option<u16>> {
    Ok(match (bus, v) {
        (Bus::I2c, None) => {
            return Err(UserError::new(format!(
                "missing `address` in `{}` of `{}`: an I2C device needs its 7-bit address",
                place.section,
                place.file.display()
            ))
            .with_hint("add e.g. `address = 0x48`")
            .into())
        }
        (Bus::I2c, Some(a)) => {
            let a = a
                .as_i64()
                .ok_or_else(|| place.err("address", "expected an integer"))?;
            if !(0x01..=0x7f).contains(&a) {
                return Err(place
                    .err(
                        "address",
                        format_args!("{a:#x} is not a 7-bit I2C address (0x01 to 0x7f)"),
                    )
                    .into());
            }
            Some(a as u16)
        }
        (Bus::Platform | Bus::Pci | Bus::Acpi | Bus::Usb | Bus::VirtioMmio, Some(_)) => {
            return Err(place
                .err("address", "only I2C devices have an address")
                .with_hint("set `bus = \"i2c\"`, or remove `address`")
                .into())
        }
        (Bus::Platform | Bus::Pci | Bus::Acpi | Bus::Usb | Bus::VirtioMmio, None) => None,
    })
}

/// `properties`: a table of property names and values, sorted by name; cargo-kmod's own
/// properties are refused.
fn parse_properties(v: Option<&Value>, place: &Place<'_>) -> Result<Vec<Property>> {
    let mut properties = Vec::new();
    match v {
        None => {}
        Some(Value::Object(props)) => {
            for (pname, pv) in props {
                let key = format!("properties.\"{pname}\"");
                check_property_name(pname).map_err(|why| place.err(&key, why))?;
                if RESERVED_PROPERTIES.contains(&pname.as_str()) {
                    let hint = match pname.as_str() {
                        "compatible" => "set `compatible` in the device table itself",
                        "reg" => "an I2C device's `reg` is its `address`; use a `device-overlays` file for anything else",
                        "interrupts" | "interrupts-extended" | "interrupt-parent" => "set `interrupts = N` in the device table: cargo-kmod wires N lines of its test interrupt controller",
                        _ => "the kernel sets this property itself",
                    };
                    return Err(place
                        .err(&key, "this property is set by cargo-kmod")
                        .with_hint(hint)
                        .into());
                }
                if let Some(value) =
                    parse_value(pv).map_err(|why| place.err(&key, why).with_hint(TYPE_HINT))?
                {
                    properties.push(Property {
                        name: pname.clone(),
                        value,
                    });
                }
            }
        }
        Some(_) => {
            return Err(place
                .err(
                    "properties",
                    "expected a table of property names and values",
                )
                .with_hint("write e.g. `properties = { \"acme,period-ms\" = 250 }`")
                .into())
        }
    }
    properties.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(properties)
}

/// `acme,tmp-sensor` -> `tmp-sensor`: the part after the vendor, in node-name characters.
pub fn default_name(compatible: &str) -> String {
    let base = compatible.rsplit(',').next().unwrap_or(compatible);
    let mut s: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || ",._+-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(31)
        .collect();
    if !s.starts_with(|c: char| c.is_ascii_alphabetic()) {
        s.insert_str(0, "dev-");
        s.truncate(31);
    }
    s
}

/// Node names: 1 to 31 characters of `[0-9a-zA-Z,._+-]`, starting with a letter (the
/// devicetree specification, 2.2.1); the unit address is added by cargo-kmod.
fn check_node_name(s: &str) -> std::result::Result<(), String> {
    let shown = crate::text::escape(s);
    if s.is_empty() || s.len() > 31 {
        return Err(format!(
            "node name `{shown}` must be 1 to 31 characters long"
        ));
    }
    if s.contains('@') {
        return Err(format!(
            "node name `{shown}` has a unit address; cargo-kmod adds `@ADDRESS` for I2C devices itself"
        ));
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || ",._+-".contains(*c)))
    {
        return Err(format!(
            "node name `{shown}` contains `{}`; node names use `[0-9a-zA-Z,._+-]`",
            crate::text::escape(&c.to_string())
        ));
    }
    if !s.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return Err(format!("node name `{s}` must start with a letter"));
    }
    Ok(())
}

/// Property names: 1 to 31 characters of `[0-9a-zA-Z,._+?#-]` (devicetree specification, 2.2.4).
fn check_property_name(s: &str) -> std::result::Result<(), String> {
    if s.is_empty() || s.len() > 31 {
        return Err("property names are 1 to 31 characters long".to_string());
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || ",._+?#-".contains(*c)))
    {
        return Err(format!(
            "`{}` is not allowed in a property name (`[0-9a-zA-Z,._+?#-]`)",
            crate::text::escape(&c.to_string())
        ));
    }
    Ok(())
}

/// Strings end at the first NUL in the device tree, so they cannot hold one.
fn check_string(s: &str) -> std::result::Result<(), String> {
    if s.contains('\0') {
        return Err("a string contains a NUL character".to_string());
    }
    Ok(())
}

const TYPE_HINT: &str =
    "property values are an integer (u32), a string, `true`, an array of integers or of strings, \
     or a table naming the type: `{ u64 = 5 }`, `{ u8 = [1, 2] }`, `{ bytes = [0xde, 0xad] }`, \
     `{ i32 = -1 }`";

/// One property value; `Ok(None)` for `false` (the property is left out).
fn parse_value(v: &Value) -> std::result::Result<Option<PropValue>, String> {
    match v {
        Value::Bool(true) => Ok(Some(PropValue::Flag)),
        Value::Bool(false) => Ok(None),
        Value::String(s) => {
            check_string(s)?;
            Ok(Some(PropValue::Strings(vec![s.clone()])))
        }
        Value::Number(_) => Ok(Some(PropValue::Cells {
            bits: 32,
            values: vec![int_cell(v, 32, false)?],
        })),
        Value::Array(a) => {
            if a.is_empty() {
                return Err(
                    "an empty array has no type; write `true` for a property without a value"
                        .to_string(),
                );
            }
            if a.iter().all(Value::is_string) {
                let list: Vec<String> = a
                    .iter()
                    .map(|s| s.as_str().unwrap_or_default().to_string())
                    .collect();
                for s in &list {
                    check_string(s)?;
                }
                Ok(Some(PropValue::Strings(list)))
            } else if a.iter().all(Value::is_number) {
                Ok(Some(PropValue::Cells {
                    bits: 32,
                    values: a
                        .iter()
                        .map(|n| int_cell(n, 32, false))
                        .collect::<std::result::Result<_, _>>()?,
                }))
            } else {
                Err("an array mixes types: arrays hold only integers or only strings".to_string())
            }
        }
        Value::Object(m) => {
            let mut keys = m.keys();
            let (Some(key), None) = (keys.next(), keys.next()) else {
                return Err(format!(
                    "a typed value is a table with one key, one of: {}",
                    TYPED_KEYS.join(", ")
                ));
            };
            let inner = &m[key];
            let items: Vec<&Value> = match inner {
                Value::Array(a) if !a.is_empty() => a.iter().collect(),
                Value::Array(_) => return Err(format!("`{key}` has an empty array")),
                one => vec![one],
            };
            match key.as_str() {
                "string" => {
                    let list = items
                        .iter()
                        .map(|s| s.as_str().map(str::to_string))
                        .collect::<Option<Vec<_>>>()
                        .ok_or("`string` takes a string or an array of strings")?;
                    for s in &list {
                        check_string(s)?;
                    }
                    Ok(Some(PropValue::Strings(list)))
                }
                "bytes" => Ok(Some(PropValue::Bytes(
                    items
                        .iter()
                        .map(|n| int_cell(n, 8, false).map(|b| b as u8))
                        .collect::<std::result::Result<_, _>>()?,
                ))),
                "u8" | "u16" | "u32" | "u64" | "i32" | "i64" => {
                    let signed = key.starts_with('i');
                    let bits: u8 = key[1..].parse().expect("a bit width");
                    Ok(Some(PropValue::Cells {
                        bits,
                        values: items
                            .iter()
                            .map(|n| int_cell(n, bits, signed))
                            .collect::<std::result::Result<_, _>>()?,
                    }))
                }
                other => Err(match nearest(other, TYPED_KEYS.iter().copied(), 0.7) {
                    Some(n) => format!("unknown type `{other}` (did you mean `{n}`?)"),
                    None => format!(
                        "unknown type `{other}`; the types are: {}",
                        TYPED_KEYS.join(", ")
                    ),
                }),
            }
        }
        Value::Null => Err("`null` is not a property value".to_string()),
    }
}

/// An integer that fits `bits` (two's complement when `signed`), as the cell's raw bits.
fn int_cell(v: &Value, bits: u8, signed: bool) -> std::result::Result<u64, String> {
    let ty = format!("{}{bits}", if signed { "i" } else { "u" });
    let Some(n) = v.as_i64().map(i128::from).or(v.as_u64().map(i128::from)) else {
        return Err(match v {
            Value::Number(_) => format!("`{v}` is not an integer"),
            Value::String(s) => format!("`\"{s}\"` is a string where an integer is expected"),
            _ => format!("`{v}` is not an integer"),
        });
    };
    let (min, max): (i128, i128) = if signed {
        (-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1)
    } else {
        (0, (1i128 << bits) - 1)
    };
    if n < min || n > max {
        let hint = match (bits, signed) {
            (32, false) if n > max => "; write `{ u64 = ... }` for a 64-bit value",
            (32, false) if n < 0 => "; write `{ i32 = ... }` for a signed value",
            _ => "",
        };
        return Err(format!("{n} does not fit in a {ty}{hint}"));
    }
    Ok((n as u64)
        & if bits == 64 {
            u64::MAX
        } else {
            (1u64 << bits) - 1
        })
}

/// `registers = { 0x00 = [0x12, 0x34], 0xfe = 0x55 }`: (first register, bytes).
fn parse_registers(v: &Value) -> std::result::Result<Vec<(u8, Vec<u8>)>, String> {
    let Some(map) = v.as_object() else {
        return Err(
            "expected a table from register to bytes, e.g. `registers = { 0x00 = [0x12, 0x34] }`"
                .to_string(),
        );
    };
    let mut out = Vec::new();
    let mut used = [false; 256];
    for (k, bytes) in map {
        let reg = parse_int_key(k)
            .filter(|r| *r <= 0xff)
            .ok_or_else(|| format!("register `{k}` is not a number from 0x00 to 0xff"))?
            as u8;
        let items: Vec<&Value> = match bytes {
            Value::Array(a) => a.iter().collect(),
            one => vec![one],
        };
        let data: Vec<u8> = items
            .iter()
            .map(|n| int_cell(n, 8, false).map(|b| b as u8))
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| format!("register `{k}`: {e}"))?;
        if reg as usize + data.len() > 256 {
            return Err(format!(
                "register `{k}`: {} bytes run past register 0xff",
                data.len()
            ));
        }
        let range = reg as usize..reg as usize + data.len();
        if let Some(i) = range.clone().find(|i| used[*i]) {
            return Err(format!("register {i:#04x} is given twice"));
        }
        used[range].fill(true);
        out.push((reg, data));
    }
    out.sort();
    Ok(out)
}

fn parse_int_key(k: &str) -> Option<u32> {
    let k = k.trim();
    if let Some(hex) = k.strip_prefix("0x").or_else(|| k.strip_prefix("0X")) {
        u32::from_str_radix(hex, 16).ok()
    } else {
        k.parse().ok()
    }
}
