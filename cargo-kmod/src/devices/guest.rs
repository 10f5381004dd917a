//! The guest's side of test devices, as data: the shell text a test boot runs, the parser for
//! what it prints, and the verdict on each device.
//!
//! A test boot with devices runs, in order (see [`crate::devices::plan`]):
//!
//! 1. `insmod cargo_kmod_devices.ko overlay_list=... node_list=...` ([`HelperLoad`]): the helper
//!    refuses (`-EEXIST`) when a node the overlays add under the root already exists in the
//!    guest's tree (an overlay would change that node instead of adding a device), else
//!    applies the overlays, and the kernel creates the devices.
//! 2. The modules under test load; their drivers register and probe the devices
//!    synchronously in `init`, before their KUnit suites run.
//! 3. [`check_script`]: each device's name, driver and the driver's module: for the
//!    overlays' platform and I2C devices, the helper's `/proc/cargo-kmod-devices` (it looks
//!    each node's device up in the kernel: no walk of sysfs); for the others, read from
//!    `/sys/bus/<bus>/devices/<name>/{driver,driver/module}`.
//! 4. The modules unload (each driver's `remove` runs); then a write to the helper's `remove`
//!    parameter removes the overlays, which removes the devices; the helper reports a node
//!    still there.
//!
//! The check prints one line per device, `device PATH BUS NODE NAME DRIVER MODULE` (`NODE`
//! is 1 when the node exists, `-` for what is absent), on the guest protocol (a step's
//! output), which the kernel log cannot forge. The check uses builtins only (`cd -P`,
//! `$PWD`, `read`, `echo`) and `local` variables, so it runs in the guest's own shell
//! ([`crate::guest::plan::Step::inline`]) and costs no process under TCG.

use crate::devices::spec::Bus;

/// The helper's report on the overlays' devices (`templates/devices/cargo_kmod_devices.c`):
/// a line per entry of its `check_list` ([`check_list`]), in the check's own format.
pub const HELPER_REPORT: &str = "/proc/cargo-kmod-devices";

/// The entries of the helper's `check_list`: `BUS PATH` per overlay device (platform and
/// I2C), which its [`HELPER_REPORT`] reports on.
pub fn check_list(devices: &[GuestDevice]) -> Vec<String> {
    devices
        .iter()
        .filter(|d| reported_by_helper(d))
        .map(|d| format!("{} {}", d.bus, d.path))
        .collect()
}

/// Whether the helper reports on `d`: a device an overlay adds (a node's path has no
/// whitespace: dtc allows none in node names).
fn reported_by_helper(d: &GuestDevice) -> bool {
    matches!(d.bus, Bus::Platform | Bus::I2c)
}

/// A device the guest checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestDevice {
    /// Its node's path in the live tree (`/blinker`).
    pub path: String,
    pub bus: Bus,
    pub compatible: Vec<String>,
    /// Modules whose drivers must bind it (the module that declared it; all modules of the
    /// run for `--device` files).
    pub modules: Vec<String>,
    /// Where it was declared.
    pub origin: String,
}

impl GuestDevice {
    /// `acme,blinker (platform)`: how messages name it. A raw overlay's `compatible` is the
    /// user's text as dtc compiled it, so it is escaped ([`crate::text::escape`]).
    pub fn label(&self) -> String {
        format!(
            "{} ({})",
            crate::text::escape(self.compatible.first().map_or("", String::as_str)),
            self.bus
        )
    }
}

/// The check's shell functions, one per kind of device the helper does not report on:
/// `kmod_pci ADDR`, `kmod_virtio BUS DEVICE LABEL`, `kmod_acpi NAME` and `kmod_usb ...`.
/// Each function's variables are `local`: the check runs inline.
pub fn check_fn() -> String {
    format!(
        "kmod_pci() {{\n\
         \tlocal o=- n=- d=- m=-\n\
         \tif [ -e \"/sys/bus/pci/devices/$1\" ]; then\n\
         \t\to=1; n=$1\n\
         \t\tcd -P \"/sys/bus/pci/devices/$1/driver\" 2>/dev/null && d=${{PWD##*/}}\n\
         \t\tcd -P \"/sys/bus/pci/devices/$1/driver/module\" 2>/dev/null && m=${{PWD##*/}}\n\
         \tfi\n\
         \tcd /\n\
         \tout \"device $1 pci $o $n $d $m\"\n\
         }}\n\
         kmod_virtio() {{\n\
         \tlocal o=- n=- d=- m=- x\n\
         \tif [ -e \"/sys/bus/$1/devices/$2\" ]; then\n\
         \t\to=1\n\
         \t\tfor x in /sys/bus/$1/devices/$2/virtio*; do\n\
         \t\t\t[ -e \"$x\" ] || continue\n\
         \t\t\tn=${{x##*/}}\n\
         \t\t\tcd -P \"$x/driver\" 2>/dev/null && d=${{PWD##*/}}\n\
         \t\t\tcd -P \"$x/driver/module\" 2>/dev/null && m=${{PWD##*/}}\n\
         \t\tdone\n\
         \tfi\n\
         \tcd /\n\
         \tout \"device $2 $3 $o $n $d $m\"\n\
         }}\n\
         kmod_acpi() {{\n\
         \tlocal o=- n=- d=- m=-\n\
         \t[ -e \"/sys/bus/acpi/devices/$1\" ] && o=1\n\
         \tif [ -e \"/sys/bus/platform/devices/$1\" ]; then\n\
         \t\tn=$1\n\
         \t\tcd -P \"/sys/bus/platform/devices/$1/driver\" 2>/dev/null && d=${{PWD##*/}}\n\
         \t\tcd -P \"/sys/bus/platform/devices/$1/driver/module\" 2>/dev/null && m=${{PWD##*/}}\n\
         \tfi\n\
         \tcd /\n\
         \tout \"device $1 acpi $o $n $d $m\"\n\
         }}\n\
         {usb}",
        usb = super::usb::check_fn()
    )
}

/// Whether `d` is a qemu virtio PCI model, whose driver binds the virtio device
/// (`virtioN`) that the kernel's virtio PCI transport makes of it.
pub fn is_virtio(d: &GuestDevice) -> bool {
    d.bus == Bus::VirtioMmio
        || (d.bus == Bus::Pci
            && d.compatible
                .first()
                .is_some_and(|m| super::spec::is_virtio_model(m)))
}

/// The functions of [`check_fn`] named in `calls`, in their order there: a boot parses only
/// what its check runs.
fn check_fns_for(calls: &str) -> String {
    let mut out = String::new();
    let mut keep = false;
    for line in check_fn().split_inclusive('\n') {
        if let Some(name) = line.strip_suffix("() {\n") {
            keep = calls.lines().any(|c| c.starts_with(&format!("{name} ")));
        }
        if keep {
            out.push_str(line);
        }
    }
    out
}

/// The whole check: the functions of [`check_fn`] it uses and a call per device, then the
/// helper's report on the overlays' devices, copied line by line (`read` and `echo`).
pub fn check_script(devices: &[GuestDevice]) -> String {
    use crate::process::shell_word as quote;
    let mut s = String::new();
    for d in devices {
        match d.bus {
            // Its PCI address (`0000:00:10.0`), chosen by cargo-kmod: no glob, no walk. A
            // virtio model is judged by the virtio device under it.
            Bus::Pci if is_virtio(d) => {
                s.push_str(&format!("kmod_virtio pci {} pci\n", quote(&d.path)))
            }
            Bus::Pci => s.push_str(&format!("kmod_pci {}\n", quote(&d.path))),
            // Its transport's platform device (`a000000.virtio_mmio`), chosen by cargo-kmod.
            Bus::VirtioMmio => s.push_str(&format!(
                "kmod_virtio platform {} virtio-mmio\n",
                quote(&d.path)
            )),
            // `<HID>:00`: the ACPI device and the platform device the kernel makes of it.
            Bus::Acpi => s.push_str(&format!("kmod_acpi {}\n", quote(&d.path))),
            // Its controller (`dummy_hcd.0`) and IDs (`1234:5678`), both cargo-kmod's.
            Bus::Usb => s.push_str(&format!(
                "kmod_usb {} {}\n",
                quote(&d.path),
                quote(d.compatible.first().map_or("", String::as_str))
            )),
            // The helper's report, below.
            Bus::Platform | Bus::I2c => {}
        }
    }
    if devices.iter().any(reported_by_helper) {
        s.push_str(&format!(
            "local l\nwhile read -r l; do out \"$l\"; done <{HELPER_REPORT}\n"
        ));
    }
    let mut script = check_fns_for(&s);
    script.push_str(&s);
    script
}

/// How the guest loads the helper module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelperLoad {
    /// The `.ko` on the host; empty when no overlay needs the helper (PCI devices only),
    /// and then the helper is neither put in the guest nor loaded.
    pub ko: std::path::PathBuf,
    /// Where it goes in the initramfs.
    pub guest_path: String,
    /// `overlay_list=/kmod/devices/overlays`, `node_list=/kmod/devices/nodes` and
    /// `check_list=/kmod/devices/checks`: files, one entry per line (a `charp` parameter
    /// holds at most 1024 bytes, and a node name may hold a comma).
    pub params: Vec<String>,
    /// Compiled overlays: (guest path, host path).
    pub overlays: Vec<(String, std::path::PathBuf)>,
    /// The lists the parameters name: (guest path, text).
    pub lists: Vec<(String, String)>,
}

/// One device as the check reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceState {
    pub path: String,
    pub bus: String,
    /// Whether the node exists in the live tree.
    pub node: bool,
    /// The device's name on its bus (`blinker`, `0-0048`).
    pub name: Option<String>,
    pub driver: Option<String>,
    /// The driver's module (`/sys/bus/*/drivers/*/module`, or the helper's report of the
    /// same: the owner's name, or the name a bus gives a built-in driver).
    pub module: Option<String>,
}

/// Read one line of the check's output (`device PATH BUS NODE NAME DRIVER MODULE`); `None`
/// for any other line.
pub fn parse_line(line: &str) -> Option<DeviceState> {
    let rest = line.strip_prefix("device ")?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let [path, bus, node, name, driver, module] = f.as_slice() else {
        return None;
    };
    let opt = |s: &str| (s != "-").then(|| s.to_string());
    Some(DeviceState {
        path: path.to_string(),
        bus: bus.to_string(),
        node: *node == "1",
        name: opt(name),
        driver: opt(driver),
        module: opt(module),
    })
}

/// A failed device check: one failing pseudo-case of the test report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The case name: `device acme,blinker (platform)`.
    pub name: String,
    /// The module it is charged to (the first of the device's modules).
    pub module: String,
    /// The verdict first, then the kernel's own lines.
    pub lines: Vec<String>,
}

/// What the verdict reads besides the check lines.
#[derive(Debug, Clone, Default)]
pub struct Evidence<'a> {
    /// Kernel-log lines of the steps that load the modules under test (probe errors).
    pub load_log: &'a [String],
    /// Kernel-log lines of the helper's load step (nodes that already exist).
    pub helper_log: &'a [String],
    /// Kernel-log lines of the step that removed the devices (overlay removal, node leaks).
    pub remove_log: &'a [String],
    /// `alias=` values of each module under test's `.modinfo`: (module, aliases).
    pub aliases: &'a [(String, Vec<String>)],
    /// The modules under test that loaded. A device none of whose modules loaded is not
    /// judged: the module's own load failure is the report.
    pub loaded: &'a [String],
    /// Whether the helper loaded (its overlays applied); when it did not, its own load step
    /// fails with the kernel's reason and only node clashes are explained per device.
    pub helper_loaded: bool,
    /// Whether the helper removed the devices (its `remove` step succeeded).
    pub devices_removed: bool,
}

/// The helper's line for a node under the root that `what` (`already exists in the live
/// device tree`): the node's path.
fn helper_node_line<'a>(line: &'a str, what: &str) -> Option<&'a str> {
    let rest = &line[line.find("cargo-kmod: node ")? + "cargo-kmod: node ".len()..];
    let (path, tail) = rest.split_once(' ')?;
    tail.starts_with(what).then_some(path)
}

/// Whether `path` is `root` or below it.
fn under(path: &str, root: &str) -> bool {
    path == root || path.starts_with(&format!("{root}/"))
}

/// Judge every device from the check lines: unbound, bound to the wrong module, probe
/// errors with the kernel's words, a node the guest already had, leftovers after removal.
pub fn judge(devices: &[GuestDevice], states: &[DeviceState], ev: &Evidence<'_>) -> Vec<Problem> {
    let clashes: Vec<&str> = ev
        .helper_log
        .iter()
        .filter_map(|l| helper_node_line(l, "already exists"))
        .collect();
    let leftovers: Vec<&str> = ev
        .remove_log
        .iter()
        .filter_map(|l| helper_node_line(l, "is still in the live device tree"))
        .collect();
    // Linear in the devices: the last state reported per path, how many devices per label.
    let by_path: std::collections::HashMap<&str, &DeviceState> =
        states.iter().map(|s| (s.path.as_str(), s)).collect();
    let mut labels: std::collections::HashMap<String, usize> = Default::default();
    for d in devices {
        *labels.entry(d.label()).or_default() += 1;
    }
    let mut out = Vec::new();
    for d in devices {
        let state = by_path.get(d.path.as_str()).copied();
        let module = d.modules.first().cloned().unwrap_or_default();
        let mut lines: Vec<String> = Vec::new();
        if let Some(root) = clashes.iter().find(|r| under(&d.path, r)) {
            lines.push(format!(
                "device {} was not created: node `{root}` already exists in the guest's device tree, and an overlay would change it instead of adding a device",
                d.label(),
            ));
            lines.push(format!(
                "help: give the device another `name` ({})",
                d.origin
            ));
        } else if ev.helper_loaded && d.modules.iter().any(|m| ev.loaded.contains(m)) {
            match state {
                None => lines.push(format!(
                    "device {} was not checked: the guest never reported it",
                    d.label()
                )),
                Some(s) if !s.node && d.bus == Bus::Pci => lines.push(format!(
                    "device {} was not created: the guest has no PCI device at {} (qemu added it there: the kernel found no PCI host bridge, or did not scan the bus)",
                    d.label(),
                    d.path
                )),
                Some(s) if !s.node && d.bus == Bus::Acpi => lines.push(format!(
                    "device {} was not created: the guest has no ACPI device `{}` (qemu loaded the SSDT: the kernel did not enumerate it, or found no ACPI tables)",
                    d.label(),
                    d.path
                )),
                Some(s) if !s.node && d.bus == Bus::Usb => lines.push(format!(
                    "device {} was not created: no USB device with these IDs enumerated on `{}` (the `{}` step says why)",
                    d.label(),
                    d.path,
                    super::plan::USB_GADGETS
                )),
                Some(s) if !s.node && d.bus == Bus::VirtioMmio => lines.push(format!(
                    "device {} was not created: the guest has no virtio-mmio transport `{}` (qemu's `virt` puts one there: the kernel did not make a platform device of it)",
                    d.label(),
                    d.path
                )),
                Some(s) if s.name.is_none() && d.bus == Bus::VirtioMmio => lines.push(format!(
                    "device {} was not created: the virtio-mmio transport `{}` has no virtio device under it (the kernel's transport driver, `CONFIG_VIRTIO_MMIO`, did not bind it)",
                    d.label(),
                    d.path
                )),
                Some(s) if s.name.is_none() && is_virtio(d) => lines.push(format!(
                    "device {} was not created: the PCI device at {} has no virtio device under it (the kernel's virtio PCI transport, `CONFIG_VIRTIO_PCI`, did not bind it)",
                    d.label(),
                    d.path
                )),
                Some(s) if s.name.is_none() && d.bus == Bus::Usb => lines.push(format!(
                    "device {} was not created: the USB device on `{}` enumerated, but the host did not configure it (no interface 1.0)",
                    d.label(),
                    d.path
                )),
                Some(s) if !s.node => lines.push(format!(
                    "device {} was not created: node `{}` is not in the guest's device tree after the overlay was applied",
                    d.label(),
                    d.path
                )),
                Some(s) if s.name.is_none() => lines.push(format!(
                    "device {} was not created: the kernel made no {} device for node `{}`",
                    d.label(),
                    d.bus,
                    d.path
                )),
                Some(s) => {
                    let name = s.name.as_deref().unwrap_or_default();
                    match (&s.driver, &s.module) {
                        (Some(_), Some(m)) if d.modules.contains(m) => {}
                        (Some(drv), m) => lines.push(format!(
                            "device {} was bound to driver `{drv}` of {}, not to a driver of {}",
                            d.label(),
                            m.as_deref()
                                .map_or("the kernel".to_string(), |m| format!("module {m}")),
                            modules_phrase(&d.modules)
                        )),
                        (None, _) => {
                            let probe = probe_failure(ev.load_log, name);
                            let why = match &probe {
                                Some(l) => probe_words(l),
                                None => unmatched_reason(d, &s.path, ev.aliases),
                            };
                            lines.push(format!("device {} was not bound: {why}", d.label()));
                            lines.extend(device_lines(ev.load_log, name, probe.as_deref()));
                        }
                    }
                }
            }
        }
        if ev.devices_removed {
            if let Some(root) = leftovers.iter().find(|r| under(&d.path, r)) {
                lines.push(format!(
                    "device {}: node `{root}` is still in the guest's device tree after its overlay was removed",
                    d.label(),
                ));
            }
            let leaks: Vec<&String> = ev
                .remove_log
                .iter()
                .filter(|l| is_removal_trouble(l) && l.contains(&d.path))
                .collect();
            if !leaks.is_empty() {
                lines.push(format!(
                    "device {}: its node's references were not balanced when the overlay was removed (a driver kept an `of_node_get` without `of_node_put`)",
                    d.label()
                ));
                lines.extend(leaks.into_iter().cloned());
            }
        }
        if !lines.is_empty() {
            out.push(Problem {
                name: case_name(d, labels.get(&d.label()).copied().unwrap_or(1)),
                module,
                lines,
            });
        }
    }
    out
}

/// The case name of a device: `device acme,blinker (platform)`, with its node's path when
/// another device has the same label (`device acme,blinker (platform) at /second`);
/// `same_label` counts the devices with its label, itself included.
pub fn case_name(d: &GuestDevice, same_label: usize) -> String {
    let label = d.label();
    if same_label > 1 {
        format!("device {label} at {}", d.path)
    } else {
        format!("device {label}")
    }
}

/// Kernel lines of an overlay removal that mean a leak or a broken tree.
pub fn is_removal_trouble(line: &str) -> bool {
    line.contains("OF: ERROR") || line.contains("memory leak") || line.contains("refcount")
}

fn modules_phrase(modules: &[String]) -> String {
    match modules {
        [one] => format!("module {one}"),
        many => format!("modules {}", many.join(", ")),
    }
}

/// The kernel's `probe with driver X failed with error -N` line for device `name`.
fn probe_failure(log: &[String], name: &str) -> Option<String> {
    let me = format!(" {name}: ");
    log.iter()
        .map(|l| crate::guest::ktap::strip_log_prefix(l))
        .find(|l| {
            (l.contains(&me) || l.starts_with(&me[1..]))
                && (l.contains("probe with driver") || l.contains("probe of "))
                && l.contains("failed with error")
        })
        .map(str::to_string)
}

/// `probe with driver blink failed with error -22`, from the kernel's line.
fn probe_words(line: &str) -> String {
    match line.find("probe ") {
        Some(i) => line[i..].to_string(),
        None => line.to_string(),
    }
}

/// The load-log lines about device `name` (the driver's own `dev_err`s), else all of them.
fn device_lines(log: &[String], name: &str, except: Option<&str>) -> Vec<String> {
    let me = format!(" {name}: ");
    let lines: Vec<String> = log
        .iter()
        .map(|l| crate::guest::ktap::strip_log_prefix(l).to_string())
        .filter(|l| (l.contains(&me) || l.starts_with(&me[1..])) && Some(l.as_str()) != except)
        .collect();
    lines
}

/// Whether an `alias=` entry of one of `d`'s modules satisfies `f`.
fn any_alias(d: &GuestDevice, aliases: &[(String, Vec<String>)], f: impl Fn(&str) -> bool) -> bool {
    aliases
        .iter()
        .filter(|(m, _)| d.modules.contains(m))
        .any(|(_, list)| list.iter().any(|a| f(a)))
}

/// Why a device stayed unbound when no probe failed, from the modules' `alias=` entries.
fn unmatched_reason(d: &GuestDevice, path: &str, aliases: &[(String, Vec<String>)]) -> String {
    if is_virtio(d) {
        let has_table = any_alias(d, aliases, |a| a.starts_with("virtio:"));
        return if has_table {
            format!(
                "no virtio ID table of {} names this device's ID, or the driver's probe returned -ENODEV (which the kernel logs only at debug level)",
                modules_phrase(&d.modules)
            )
        } else {
            format!(
                "{} has no virtio driver (no `virtio:` alias: `MODULE_DEVICE_TABLE(virtio, ...)`)",
                modules_phrase(&d.modules)
            )
        };
    }
    if d.bus == Bus::Pci {
        let has_pci_table = any_alias(d, aliases, |a| a.starts_with("pci:"));
        return if has_pci_table {
            format!(
                "no PCI ID table of {} names its vendor and device IDs, or the driver's probe returned -ENODEV (which the kernel logs only at debug level)",
                modules_phrase(&d.modules)
            )
        } else {
            format!(
                "{} has no PCI driver (no `pci:` alias: declare its IDs with `kernel::pci_device_table!`)",
                modules_phrase(&d.modules)
            )
        };
    }
    if d.bus == Bus::Usb {
        // `alias=usb:v1234p5678d*dc*...` for each entry of a driver's USB table.
        let ids = d.compatible.first().map_or("", String::as_str);
        let device = super::usb::modalias(&d.compatible).unwrap_or_default();
        let (vendor, product) = ids.split_once(':').unwrap_or_default();
        let names_it = any_alias(d, aliases, |a| glob(a, &device));
        return if names_it {
            format!(
                "a USB table of {} matches it, but the driver did not bind its interface: its probe returned -ENODEV (which the kernel logs only at debug level)",
                modules_phrase(&d.modules)
            )
        } else {
            // With interface codes other than the default, a class-matching table may be
            // what the driver meant: name the codes too.
            match d.compatible.get(1).filter(|i| {
                super::usb::Interface::parse(i) != Some(super::usb::Interface::VENDOR)
            }) {
                Some(interface) => format!(
                    "no USB table of {} names {} or its interface `{}` (declare the IDs with `usb::DeviceId::from_id(0x{}, 0x{})`, or the interface's class, subclass and protocol, in `kernel::usb_device_table!`)",
                    modules_phrase(&d.modules),
                    ids,
                    interface,
                    vendor,
                    product,
                ),
                None => format!(
                    "no USB table of {} names {} (declare it with `kernel::usb_device_table!` and `usb::DeviceId::from_id(0x{}, 0x{})`)",
                    modules_phrase(&d.modules),
                    ids,
                    vendor,
                    product,
                ),
            }
        };
    }
    if d.bus == Bus::Acpi {
        // `alias=acpi*:ACME0001:*` for each id of a driver's ACPI table.
        let names_it = any_alias(d, aliases, |a| {
            d.compatible
                .iter()
                .any(|id| a.starts_with("acpi") && a.contains(&format!(":{id}:")))
        });
        return if names_it {
            format!(
                "an ACPI table of {} names its ids, but the driver did not bind it: its probe returned -ENODEV or -ENXIO (which the kernel logs only at debug level), or was deferred",
                modules_phrase(&d.modules)
            )
        } else {
            format!(
                "no ACPI table of {} names `{}` (declare it with `kernel::acpi_device_table!` and the driver's `ACPI_ID_TABLE`)",
                modules_phrase(&d.modules),
                d.compatible.join("` or `")
            )
        };
    }
    let node = path.rsplit('/').next().unwrap_or_default();
    let node = node.split('@').next().unwrap_or(node);
    let wanted: Vec<String> = modalias_candidates(node, d);
    let matching: Vec<&str> = aliases
        .iter()
        .filter(|(m, _)| d.modules.contains(m))
        .filter(|(_, list)| list.iter().any(|a| wanted.iter().any(|w| glob(a, w))))
        .map(|(m, _)| m.as_str())
        .collect();
    if matching.is_empty() {
        format!(
            "no driver of {} matched its compatible",
            modules_phrase(&d.modules)
        )
    } else {
        format!(
            "a driver of module {} matches it but did not bind it: its probe returned -ENODEV or -ENXIO (which the kernel logs only at debug level), or was deferred",
            matching.join(", ")
        )
    }
}

/// The modaliases the kernel reports for the device: `of:N<node>T<NULL>C<compat>...`, and for
/// I2C the id-table form `i2c:<compatible without vendor>`.
fn modalias_candidates(node: &str, d: &GuestDevice) -> Vec<String> {
    let mut of = format!("of:N{node}T<NULL>");
    for c in &d.compatible {
        of.push('C');
        of.push_str(c);
    }
    let mut v = vec![of];
    if d.bus == Bus::I2c {
        if let Some(first) = d.compatible.first() {
            let id = first.rsplit(',').next().unwrap_or(first);
            v.push(format!("i2c:{id}"));
        }
    }
    v
}

/// `*` and `?` glob matching, as modprobe matches aliases.
fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globbing_like_modprobe() {
        assert!(glob(
            "of:N*T*Cacme,blinker",
            "of:NblinkerT<NULL>Cacme,blinker"
        ));
        assert!(glob(
            "of:N*T*Cacme,blinkerC*",
            "of:NblinkerT<NULL>Cacme,blinkerCacme,led"
        ));
        assert!(!glob(
            "of:N*T*Cacme,blinker",
            "of:NblinkerT<NULL>Cacme,blinker2"
        ));
        assert!(glob("i2c:tmp?02", "i2c:tmp102"));
    }

    #[test]
    fn the_check_reports_through_out_and_leaves_its_variables_alone() {
        let f = check_fn();
        // Every line goes out through the report step's `out` (`qemu::script`), which
        // reads the step's number from `oi` and the token from `T`: no check touches them.
        assert!(!f.contains("echo \"device"), "{f}");
        assert_eq!(f.matches("\tout \"device ").count(), 4, "{f}");
        for line in f.lines().filter(|l| l.trim_start().starts_with("local ")) {
            let mut names = line.split_whitespace().skip(1);
            assert!(
                names.all(|n| !matches!(n.split('=').next(), Some("oi" | "T"))),
                "{line}"
            );
        }
        assert!(!f.contains("oi=") && !f.contains(" T="), "{f}");
    }
}
