//! Test devices: a driver under `cargo kmod test` probes real devices, on arm64 and x86_64
//! alike.
//!
//! ```text
//! [[package.metadata.kmod.devices]] ─► spec ─► dtso ─► dtc ─► .dtbo ─┐
//! device-overlays, --device FILE ────────────────────► dtc ─► .dtbo ─┤ initramfs
//! templates/devices/cargo_kmod_devices.c ─► helper (kbuild, cached) ─┘
//!                                                        guest: insmod helper overlay_list=...
//!                                                        (overlays applied, devices created)
//!                                                        → modules load, drivers probe
//!                                                        → guest::check_script → verdict
//! ```
//!
//! The mechanism is the same on both arches: a device-tree overlay applied at run time by a
//! small helper module. arm64 `-M virt` boots with qemu's device tree; x86_64 has the
//! kernel's empty root node (`CONFIG_OF`, `drivers/of/empty_root.dts`); in both cases the
//! OF reconfig notifier creates a platform device for each node the overlay adds under the
//! root. I2C devices sit on the helper's software I2C bus ([`dtso::I2C_BUS_COMPATIBLE`]).
//! ACPI (`PRP0001` with `_DSD` properties) would reach the same OF match tables on x86_64
//! only, needs `iasl` and an ACPI-enabled tree, and cannot be removed again at run time, so
//! the same devices would need two descriptions; it is not used for them. Drivers with only
//! an ACPI id table get `bus = "acpi"` devices instead ([`acpi`]): an SSDT qemu loads at boot
//! (x86_64, a tree with `CONFIG_ACPI`), no helper.

pub mod acpi;
pub mod dtc;
pub mod dtso;
pub mod fdt;
pub mod guest;
pub mod helper;
pub mod plan;
pub mod spec;
pub mod usb;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

pub use guest::{GuestDevice, HelperLoad};
pub use spec::{Bus, DeviceSpec, Devices, PropValue, Property};

use crate::kernel::home::Home;
use crate::kernel::KernelTree;
use crate::shell::Shell;

/// Where compiled overlays go in the initramfs.
pub const GUEST_DIR: &str = "/kmod/devices";

/// One source of devices for a boot: a module's manifest (its drivers must bind them), or a
/// `--device` file (any module of the run may bind them).
#[derive(Debug, Clone)]
pub struct DeviceSet<'a> {
    /// Modules whose drivers count for these devices.
    pub modules: Vec<String>,
    pub devices: &'a Devices,
    /// Names the set in the generated overlay's header (`module blink`).
    pub what: String,
}

/// What a test boot with devices needs: the helper module and its overlays (files for the
/// initramfs), and the devices to check.
#[derive(Debug)]
pub struct Prepared {
    pub helper: HelperLoad,
    pub devices: Vec<GuestDevice>,
    /// dtc's warnings on the user's own overlays (to print; they do not stop the run).
    pub warnings: Vec<String>,
    /// qemu arguments for the PCI test devices.
    pub qemu_args: Vec<String>,
    /// The USB gadget function module ([`usb::FUNCTION_GUEST_PATH`]), when a USB device's
    /// interface is not vendor-specific.
    pub usb_function: Option<PathBuf>,
    /// Where the overlays were compiled when the caller gave no directory (`--ko` runs
    /// outside a workspace); removed when this is dropped.
    _scratch: Option<tempfile::TempDir>,
}

impl Prepared {
    /// The qemu models of the PCI and virtio-mmio test devices, for
    /// [`crate::qemu::tools::check_qemu_models`].
    pub fn qemu_models(&self) -> Vec<crate::qemu::tools::QemuModel<'_>> {
        self.devices
            .iter()
            .filter_map(|g| {
                // The bus qemu's `-device help` names, and how messages name the device.
                let (bus, what) = match g.bus {
                    Bus::Pci => ("PCI", "PCI"),
                    Bus::VirtioMmio => ("virtio-bus", "virtio-mmio"),
                    Bus::Platform | Bus::I2c | Bus::Acpi | Bus::Usb => return None,
                };
                Some(crate::qemu::tools::QemuModel {
                    model: g.compatible.first()?.as_str(),
                    origin: g.origin.as_str(),
                    bus,
                    what,
                })
            })
            .collect()
    }

    /// The files the initramfs needs: (guest path, host path), the helper module first.
    pub fn files(&self) -> Vec<(String, PathBuf)> {
        let mut v = vec![(self.helper.guest_path.clone(), self.helper.ko.clone())];
        v.extend(self.helper.overlays.iter().cloned());
        v
    }
}

/// Refuse a tree that cannot apply overlays (or has no I2C core when I2C devices are asked
/// for) before anything boots.
pub fn check_tree(tree: &KernelTree, needs_i2c: bool) -> Result<()> {
    let mut missing = Vec::new();
    for sym in ["OF", "OF_OVERLAY"] {
        if !tree.config.is_enabled(sym) {
            missing.push(sym);
        }
    }
    if needs_i2c && !tree.config.is_enabled("I2C") {
        missing.push("I2C");
    }
    if !missing.is_empty() {
        let list: Vec<String> = missing.iter().map(|s| format!("`CONFIG_{s}`")).collect();
        crate::bail_user!(
            "kernel tree `{}` cannot create test devices: {} {} not enabled", tree.dir.display(), list.join(", "),
                if missing.len() == 1 { "is" } else { "are" };
            hint = "enable {} in the tree's `.config` (the dev trees of `cargo kmod init` have them)", list.join(" and ")
        );
    }
    Ok(())
}

/// A PCI test device needs a kernel with PCI and, on arm64 `virt`, its PCIe host driver.
/// ACPI test devices need an x86_64 tree with `CONFIG_ACPI` and `CONFIG_PCI` (qemu's arm64
/// `virt` boots with a device tree).
fn check_acpi(tree: &KernelTree, d: &GuestDevice) -> Result<()> {
    if tree.arch != crate::kernel::Arch::X86_64 {
        crate::bail_user!(
            "test device {} ({}) is an ACPI device, and ACPI test devices are x86_64's: qemu boots arm64 `virt` with a device tree", d.label(), d.origin;
            hint = "test the driver on x86_64 (`--arch x86_64`), or give it an OF match table and declare a platform device for arm64"
        );
    }
    // qemu's `pc` DSDT describes its PCI host with PCI configuration regions: without
    // `CONFIG_PCI` the kernel refuses to load the tables at all (`AE_BAD_PARAMETER, During
    // Region initialization`), so the SSDT's devices would never appear.
    let mut missing = vec!["ACPI", "PCI"];
    missing.retain(|s| !tree.config.is_enabled(s));
    if missing.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = missing.iter().map(|s| format!("`CONFIG_{s}`")).collect();
    crate::bail_user!(
        "test device {} ({}) is an ACPI device, and kernel tree `{}` has no {} (qemu's ACPI tables need both ACPI and PCI)", d.label(), d.origin, tree.dir.display(), list.join(" or ");
        hint = "add `kernel-config = {{ ACPI = \"y\", PCI = \"y\" }}` to `[package.metadata.kmod]` and run `cargo kmod init` in the package: it prepares that tree"
    )
}

/// USB test devices need a tree with `dummy_hcd` and configfs gadgets built in
/// ([`usb::NEEDS`]): `init` in a package that declares them prepares one.
fn check_usb(tree: &KernelTree, d: &GuestDevice) -> Result<()> {
    let missing = usb::missing(tree);
    if missing.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = missing.iter().map(|s| format!("`CONFIG_{s}=y`")).collect();
    crate::bail_user!(
        "test device {} ({}) is a USB device, and kernel tree `{}` lacks {}: a USB test device is a configfs gadget on the kernel's `dummy_hcd`", d.label(), d.origin, tree.dir.display(), list.join(", ");
        hint = "declare the device in the package's manifest and run `cargo kmod init --arch {}` there: it prepares a tree with what USB test devices need, which `test` then chooses (a distribution's kernel builds these as modules, if at all: its tree cannot have USB test devices)", tree.arch
    )
}

/// The kernel configuration a package's test devices need from the tree besides the
/// driver's own `kernel-config` (USB devices: [`usb::NEEDS`]). Tree choice and `init` add
/// it to the package's needs; the build itself does not require it.
pub fn kernel_needs(devices: &Devices) -> std::collections::BTreeMap<String, String> {
    if devices.devices.iter().any(|d| d.bus == Bus::Usb) {
        usb::needs()
    } else {
        Default::default()
    }
}

/// A virtio-mmio test device needs arm64 (qemu's `virt` has the transports; x86_64 `pc` has
/// none) and a tree with the kernel's virtio-mmio transport driver.
fn check_virtio_mmio(tree: &KernelTree, d: &GuestDevice) -> Result<()> {
    if tree.arch != crate::kernel::Arch::Arm64 {
        let model = d.compatible.first().map_or("", String::as_str);
        crate::bail_user!(
            "test device {} ({}) is a virtio-mmio device, and qemu's {} machine has no virtio-mmio transports (arm64 `virt` has)", d.label(), d.origin, tree.arch;
            hint = "use its PCI variant, `bus = \"pci\"` with `qemu-device = \"{}-pci\"`, on x86_64", crate::text::escape(model.strip_suffix("-device").unwrap_or(model))
        );
    }
    let mut missing = vec!["VIRTIO_MMIO"];
    missing.retain(|s| !tree.config.is_enabled(s));
    if missing.is_empty() {
        return Ok(());
    }
    crate::bail_user!(
        "test device {} ({}) is a virtio-mmio device, and kernel tree `{}` has no `CONFIG_VIRTIO_MMIO` (the transport that makes its virtio device)", d.label(), d.origin, tree.dir.display();
        hint = "add `kernel-config = {{ VIRTIO_MENU = \"y\", VIRTIO_MMIO = \"y\" }}` to `[package.metadata.kmod]` and run `cargo kmod init` in the package (the dev trees have it)"
    )
}

fn check_pci(tree: &KernelTree, d: &GuestDevice, virtio: Option<&GuestDevice>) -> Result<()> {
    let mut missing = vec!["PCI"];
    if tree.arch == crate::kernel::Arch::Arm64 {
        missing.push("PCI_HOST_GENERIC");
    }
    missing.retain(|s| !tree.config.is_enabled(s));
    if let (true, Some(v)) = (missing.is_empty(), virtio) {
        // The virtio PCI transport makes the virtio device a driver binds.
        if !tree.config.is_enabled("VIRTIO_PCI") {
            crate::bail_user!(
                "test device {} ({}) is a virtio PCI device, and kernel tree `{}` has no `CONFIG_VIRTIO_PCI` (the transport that makes its virtio device)", v.label(), v.origin, tree.dir.display();
                hint = "add `VIRTIO_MENU = \"y\", VIRTIO_PCI = \"y\"` to the package's `kernel-config` and run `cargo kmod init` in the package"
            );
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = missing.iter().map(|s| format!("`CONFIG_{s}`")).collect();
    crate::bail_user!(
        "test device {} ({}) is a PCI device, and kernel tree `{}` has no {}", d.label(), d.origin, tree.dir.display(), list.join(" or ");
        hint = "add `kernel-config = {{ PCI = \"y\" }}` to `[package.metadata.kmod]` and run `cargo kmod init` in the package: it prepares a tree with PCI{}", if tree.arch == crate::kernel::Arch::Arm64 { " and the PCIe host of qemu's `virt`" } else { "" }
    )
}

/// Compile the devices of `sets` into overlays under `out_dir` (a temporary directory when
/// `None`), build (or reuse) the helper module for `tree`, and return what the guest needs.
/// `None` when no set has devices.
pub fn prepare(
    shell: &Shell,
    home: &Home,
    tree: &KernelTree,
    sets: &[DeviceSet<'_>],
    out_dir: Option<&Path>,
) -> Result<Option<Prepared>> {
    if sets.iter().all(|s| s.devices.is_empty()) {
        return Ok(None);
    }
    let scratch = match out_dir {
        Some(_) => None,
        None => Some(
            tempfile::Builder::new()
                .prefix("cargo-kmod-devices-")
                .tempdir()
                .context("cannot create a temporary directory")?,
        ),
    };
    let out_dir = match (&scratch, out_dir) {
        (Some(t), _) => t.path(),
        (None, Some(d)) => d,
        (None, None) => unreachable!("one of them is set"),
    };
    let compiled = compile(shell, sets, out_dir)?;
    let needs_i2c = compiled.devices.iter().any(|d| d.bus == Bus::I2c);
    if let Some(d) = compiled.devices.iter().find(|d| d.bus == Bus::Pci) {
        let virtio = compiled
            .devices
            .iter()
            .find(|d| d.bus == Bus::Pci && guest::is_virtio(d));
        check_pci(tree, d, virtio)?;
    }
    if let Some(d) = compiled.devices.iter().find(|d| d.bus == Bus::VirtioMmio) {
        check_virtio_mmio(tree, d)?;
    }
    if let Some(d) = compiled.devices.iter().find(|d| d.bus == Bus::Acpi) {
        check_acpi(tree, d)?;
    }
    if let Some(d) = compiled.devices.iter().find(|d| d.bus == Bus::Usb) {
        check_usb(tree, d)?;
    }
    let usb_function = if usb::needs_function(&usb::gadgets(&compiled.devices)) {
        Some(helper::build_module(
            shell,
            home,
            tree,
            &helper::USB_FUNCTION,
        )?)
    } else {
        None
    };
    // PCI devices alone are qemu's: no overlay, so no helper module to build or load.
    let ko = if compiled.overlays.is_empty() {
        PathBuf::new()
    } else {
        check_tree(tree, needs_i2c)?;
        helper::build(shell, home, tree)?
    };
    let (params, lists) = helper_lists(&compiled);
    Ok(Some(Prepared {
        helper: HelperLoad {
            ko,
            guest_path: format!("{GUEST_DIR}/{}.ko", helper::MODULE),
            params,
            overlays: compiled.overlays,
            lists,
        },
        devices: compiled.devices,
        warnings: compiled.warnings,
        qemu_args: compiled.qemu_args,
        usb_function,
        _scratch: scratch,
    }))
}

/// The helper's parameters and the list files they name: the overlays to apply, the nodes
/// they add under the root, and the devices its report covers (`BUS PATH`), one per line.
/// Files, not the lists themselves: a `charp` module parameter holds at most 1024 bytes (40
/// devices with long names), and a node name may hold a comma; no line of any can hold a
/// newline.
pub fn helper_lists(compiled: &Compiled) -> (Vec<String>, Vec<(String, String)>) {
    let mut params = Vec::new();
    let mut lists = Vec::new();
    let mut list = |param: &str, file: &str, entries: &[&str]| {
        if entries.is_empty() {
            return;
        }
        let path = format!("{GUEST_DIR}/{file}");
        params.push(format!("{param}={path}"));
        let mut text = entries.join("\n");
        text.push('\n');
        lists.push((path, text));
    };
    let overlays: Vec<&str> = compiled.overlays.iter().map(|(g, _)| g.as_str()).collect();
    list("overlay_list", "overlays", &overlays);
    let nodes: Vec<&str> = compiled.root_nodes.iter().map(String::as_str).collect();
    list("node_list", "nodes", &nodes);
    let checks = guest::check_list(&compiled.devices);
    let checks: Vec<&str> = checks.iter().map(String::as_str).collect();
    list("check_list", "checks", &checks);
    if compiled.irq_lines > 0 {
        params.push(format!("irq_node=/{}", dtso::IRQ_NODE));
        params.push(format!("irq_lines={}", compiled.irq_lines));
    }
    (params, lists)
}

/// The overlays of `sets`, compiled, and the devices they add.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Compiled {
    /// (guest path, host path) of each `.dtbo`, in the order they are applied.
    pub overlays: Vec<(String, PathBuf)>,
    pub devices: Vec<GuestDevice>,
    pub warnings: Vec<String>,
    /// The nodes the overlays add under the root (the helper refuses ones that exist).
    pub root_nodes: Vec<String>,
    /// qemu arguments adding the PCI test devices (`-device pci-testdev,addr=0x10.0,...`).
    pub qemu_args: Vec<String>,
    /// How many lines the test interrupt controller has (the devices' `interrupts`).
    pub irq_lines: u32,
}

/// The PCI slots of test devices on bus 0: clear of what `-M pc` (host bridge, PIIX) and
/// `-M virt` (its host bridge) put there.
const PCI_SLOTS: std::ops::Range<u8> = 0x10..0x20;

/// The virtio-mmio transports of `-M virt` test devices take: the lowest of its 32, from
/// `0x0a000000`, `0x200` bytes each (qemu's `virt` memory map). A `-device` without a bus
/// (the run disk of a resumed test boot) takes the highest free one.
const MMIO_TRANSPORTS: usize = 16;
const VIRT_MMIO_BASE: u64 = 0x0a00_0000;
const VIRT_MMIO_SIZE: u64 = 0x200;

/// The platform device the kernel makes of `-M virt`'s virtio-mmio transport `n` (its
/// device-tree node `virtio_mmio@a000000`).
fn mmio_transport(n: usize) -> String {
    format!(
        "{:x}.virtio_mmio",
        VIRT_MMIO_BASE + n as u64 * VIRT_MMIO_SIZE
    )
}

/// Compile every set's devices (one generated overlay for all tables) and raw overlays into
/// `out_dir`. Everything that can be wrong with a device is an error here, before any boot.
pub fn compile(shell: &Shell, sets: &[DeviceSet<'_>], out_dir: &Path) -> Result<Compiled> {
    let mut out = Compiled::default();
    // Which overlay adds each node under the root: a second overlay adding the same node
    // would change the first one's instead of adding a device.
    let mut root_owner: std::collections::HashMap<String, String> = Default::default();
    // All tables of the run in one overlay; node names must be unique across sets.
    let mut all = Devices::default();
    let mut owners: Vec<(&DeviceSpec, &DeviceSet<'_>)> = Vec::new();
    for set in sets {
        all.devices.extend(set.devices.devices.iter().cloned());
        owners.extend(set.devices.devices.iter().map(|d| (d, set)));
    }
    all.check_unique()?;
    // PCI devices are qemu's: a `-device` each, at a slot cargo-kmod picks, so the guest
    // finds each one at a known address.
    let (pci, nodes): (Vec<_>, Vec<_>) = owners.into_iter().partition(|(d, _)| d.bus == Bus::Pci);
    // virtio-mmio devices too: a `-device` each, on a transport cargo-kmod picks.
    let (mmio, nodes): (Vec<_>, Vec<_>) = nodes
        .into_iter()
        .partition(|(d, _)| d.bus == Bus::VirtioMmio);
    // ACPI devices are an SSDT qemu loads: one for all of them.
    let (acpi_devices, nodes): (Vec<_>, Vec<_>) =
        nodes.into_iter().partition(|(d, _)| d.bus == Bus::Acpi);
    // USB devices are gadgets the guest builds: one `dummy_hcd` controller each.
    let (usb_devices, owners): (Vec<_>, Vec<_>) =
        nodes.into_iter().partition(|(d, _)| d.bus == Bus::Usb);
    all.devices
        .retain(|d| !matches!(d.bus, Bus::Pci | Bus::Acpi | Bus::Usb | Bus::VirtioMmio));
    if usb_devices.len() > usb::MAX_DEVICES {
        crate::bail_user!(
            "{} USB test devices are declared, and a test boot has room for {} (the kernel's `dummy_hcd` controllers)", usb_devices.len(), usb::MAX_DEVICES;
            hint = "test fewer USB devices at once (`-p`, or split the run)"
        );
    }
    for (n, (d, set)) in usb_devices.into_iter().enumerate() {
        out.devices.push(GuestDevice {
            path: usb::controller(n),
            bus: Bus::Usb,
            compatible: d.compatible.clone(),
            modules: set.modules.clone(),
            origin: d.origin.clone(),
        });
    }
    if !acpi_devices.is_empty() {
        let what: Vec<&str> = sets
            .iter()
            .filter(|s| s.devices.devices.iter().any(|d| d.bus == Bus::Acpi))
            .map(|s| s.what.as_str())
            .collect();
        let specs: Vec<&DeviceSpec> = acpi_devices.iter().map(|(d, _)| *d).collect();
        let text = acpi::render(&specs, &what.join(", "));
        let key = &crate::fsutil::sha256_hex(text.as_bytes())[..16];
        let src = out_dir.join(format!("acpi-{key}.asl"));
        crate::fsutil::write_if_changed(&src, text.as_bytes())?;
        let aml = out_dir.join(format!("acpi-{key}.aml"));
        if !aml.is_file() {
            acpi::compile(shell, &src, &aml)?;
        }
        out.qemu_args.push("-acpitable".into());
        out.qemu_args.push(acpi::qemu_arg(&aml));
        // The kernel numbers the devices of one `_HID` in the order it finds them
        // (`acpi_device_bus_id`): `ACME0001:00`, `ACME0001:01`, as the SSDT lists them.
        let mut instances: std::collections::HashMap<&str, usize> = Default::default();
        for (d, set) in acpi_devices {
            let n = instances.entry(d.compatible[0].as_str()).or_default();
            let path = format!("{}:{:02x}", d.compatible[0], *n);
            *n += 1;
            out.devices.push(GuestDevice {
                path,
                bus: Bus::Acpi,
                compatible: d.compatible.clone(),
                modules: set.modules.clone(),
                origin: d.origin.clone(),
            });
        }
    }
    if pci.len() > PCI_SLOTS.len() {
        crate::bail_user!(
            "{} PCI test devices are declared, and a test boot has room for {}", pci.len(), PCI_SLOTS.len();
            hint = "test fewer PCI devices at once (`-p`, or split the run)"
        );
    }
    for (n, ((d, set), slot)) in pci.into_iter().zip(PCI_SLOTS).enumerate() {
        let q = d.qemu.as_ref().expect("a PCI device has a qemu model");
        out.qemu_args.push("-device".into());
        out.qemu_args.push(q.arg(slot, &format!("kmod-pci{n}")));
        out.devices.push(GuestDevice {
            path: format!("0000:00:{slot:02x}.0"),
            bus: Bus::Pci,
            compatible: d.compatible.clone(),
            modules: set.modules.clone(),
            origin: d.origin.clone(),
        });
    }
    if mmio.len() > MMIO_TRANSPORTS {
        crate::bail_user!(
            "{} virtio-mmio test devices are declared, and a test boot has room for {}", mmio.len(), MMIO_TRANSPORTS;
            hint = "test fewer virtio-mmio devices at once (`-p`, or split the run)"
        );
    }
    for (n, (d, set)) in mmio.into_iter().enumerate() {
        let q = d
            .qemu
            .as_ref()
            .expect("a virtio-mmio device has a qemu model");
        out.qemu_args.push("-device".into());
        out.qemu_args.push(q.mmio_arg(n, &format!("kmod-mmio{n}")));
        out.devices.push(GuestDevice {
            path: mmio_transport(n),
            bus: Bus::VirtioMmio,
            compatible: d.compatible.clone(),
            modules: set.modules.clone(),
            origin: d.origin.clone(),
        });
    }
    if !all.devices.is_empty() {
        let what: Vec<&str> = sets
            .iter()
            .filter(|s| !s.devices.devices.is_empty())
            .map(|s| s.what.as_str())
            .collect();
        let text = dtso::render(&all.devices, &what.join(", "));
        // Named by their content: runs with other devices in the same target directory
        // (two `cargo kmod test` at once, or packages sharing it) never swap overlays.
        let key = &crate::fsutil::sha256_hex(text.as_bytes())[..16];
        let src = out_dir.join(format!("devices-{key}.dtso"));
        crate::fsutil::write_if_changed(&src, text.as_bytes())?;
        let dtbo = out_dir.join(format!("devices-{key}.dtbo"));
        // Generated text always compiles the same way: a blob of the same name is reused.
        if !dtbo.is_file() {
            dtc::compile(
                shell,
                &src,
                &dtbo,
                &format!("`{}` (generated)", src.display()),
            )?;
        }
        for d in &all.devices {
            let root = format!("/{}", d.path().split('/').nth(1).unwrap_or_default());
            if root_owner.insert(root.clone(), d.origin.clone()).is_none() {
                out.root_nodes.push(root);
            }
        }
        out.irq_lines = dtso::irq_lines(&all.devices)
            .iter()
            .map(|(_, _, n)| n)
            .sum();
        if out.irq_lines > 0 {
            let root = format!("/{}", dtso::IRQ_NODE);
            root_owner.insert(
                root.clone(),
                "cargo-kmod's test interrupt controller".into(),
            );
            out.root_nodes.push(root);
        }
        out.overlays
            .push((format!("{GUEST_DIR}/devices.dtbo"), dtbo));
        for (d, set) in owners {
            out.devices.push(GuestDevice {
                path: d.path(),
                bus: d.bus,
                compatible: d.compatible.clone(),
                modules: set.modules.clone(),
                origin: d.origin.clone(),
            });
        }
    }
    let mut n = 0;
    for set in sets {
        for src in &set.devices.overlays {
            if !src.is_file() {
                crate::bail_user!(
                    "device overlay `{}` does not exist", src.display();
                    hint = "`device-overlays` paths are relative to the package directory"
                );
            }
            let source =
                std::fs::read(src).with_context(|| format!("cannot read `{}`", src.display()))?;
            let key = crate::fsutil::sha256_hex(
                &[src.display().to_string().as_bytes(), &source].concat(),
            );
            let dtbo = out_dir.join(format!("overlay-{}.dtbo", &key[..16]));
            let warnings = dtc::compile(shell, src, &dtbo, &format!("`{}`", src.display()))?;
            out.warnings.extend(warnings);
            let blob = std::fs::read(&dtbo)
                .with_context(|| format!("cannot read `{}`", dtbo.display()))?;
            let info = fdt::overlay_info(&blob).map_err(|e| {
                crate::error::UserError::new(format!(
                    "device overlay `{}` did not compile to a device tree: {e}",
                    src.display()
                ))
            })?;
            if info.fragments == 0 {
                crate::bail_user!(
                    "`{}` is not a device-tree overlay: it has no fragment to apply", src.display();
                    hint = "start it with `/dts-v1/;` and `/plugin/;`, and put the nodes in `&{{/}} {{ ... }};`"
                );
            }
            if info.phandle_targets > 0 {
                crate::bail_user!(
                    "device overlay `{}` targets a node by label (`&label`): the guest's tree has no labels to resolve", src.display();
                    hint = "target paths instead, e.g. `&{{/}} {{ ... }};`"
                );
            }
            let origin = format!("`{}`", src.display());
            for r in &info.root_nodes {
                if let Some(first) = root_owner.get(r) {
                    crate::bail_user!(
                        "node `{}` is added by two overlays: {} and {}", crate::text::escape(r), first, origin;
                        hint = "give one of the nodes another name"
                    );
                }
            }
            for r in &info.root_nodes {
                root_owner.insert(r.clone(), origin.clone());
                out.root_nodes.push(r.clone());
            }
            for d in info.devices {
                let bus = if d
                    .parent_compatible
                    .iter()
                    .any(|c| c == dtso::I2C_BUS_COMPATIBLE)
                {
                    Bus::I2c
                } else if d.depth == 1 && d.path.matches('/').count() == 1 {
                    Bus::Platform
                } else {
                    // Nodes below a device (its children) are the driver's business.
                    continue;
                };
                out.devices.push(GuestDevice {
                    path: d.path,
                    bus,
                    compatible: d.compatible,
                    modules: set.modules.clone(),
                    origin: format!("`{}`", src.display()),
                });
            }
            out.overlays
                .push((format!("{GUEST_DIR}/overlay-{n}.dtbo"), dtbo));
            n += 1;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
