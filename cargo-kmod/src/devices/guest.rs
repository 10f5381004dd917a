//! The guest's side of test devices, as data: the shell text a test boot runs, the parser for
//! what it prints, and the verdict on each device.
//!
//! A test boot with devices runs, in order:
//!
//! 1. [`check_script`] with [`Phase::Before`]: a declared node that already exists in the
//!    guest's tree would be changed by the overlay instead of added; the boot must not load
//!    the helper then ([`CLASH_VAR`] is set).
//! 2. `insmod cargo_kmod_devices.ko overlays=...` ([`HelperLoad`]): the overlays are applied
//!    and the kernel creates the devices.
//! 3. The modules under test load; their drivers register and probe the devices
//!    synchronously in `init`, before their KUnit suites run.
//! 4. [`check_script`] with [`Phase::Loaded`]: each device's name, driver and the driver's
//!    module, read from `/sys/bus/<bus>/devices/*/{of_node,driver,driver/module}`.
//! 5. The modules unload (each driver's `remove` runs); then `rmmod cargo_kmod_devices`
//!    removes the overlays, which removes the devices.
//! 6. [`check_script`] with [`Phase::Removed`]: no node may be left.
//!
//! Every check prints one line per device, `TAGdevice PHASE PATH BUS NODE NAME DRIVER
//! MODULE` (`NODE` is 1 when the node exists, `-` for what is absent). The shell function
//! uses builtins only (`cd -P`, `$PWD`, globs), so checking costs no process under TCG, and
//! looks where the kernel names such a device first, so it rarely walks a whole bus.

use crate::devices::spec::Bus;

/// The shell variable [`check_script`] sets in [`Phase::Before`] when a node already exists.
pub const CLASH_VAR: &str = "kmod_clash";

/// Where the live tree appears in sysfs.
const DT_BASE: &str = "/sys/firmware/devicetree/base";

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
    /// `acme,blinker (platform)`: how messages name it.
    pub fn label(&self) -> String {
        format!(
            "{} ({})",
            self.compatible.first().map_or("", String::as_str),
            self.bus
        )
    }
}

/// When a check runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Before the helper loads.
    Before,
    /// After the modules under test loaded.
    Loaded,
    /// After the helper unloaded.
    Removed,
}

impl Phase {
    pub fn word(self) -> &'static str {
        match self {
            Phase::Before => "before",
            Phase::Loaded => "loaded",
            Phase::Removed => "removed",
        }
    }

    fn parse(s: &str) -> Option<Phase> {
        match s {
            "before" => Some(Phase::Before),
            "loaded" => Some(Phase::Loaded),
            "removed" => Some(Phase::Removed),
            _ => None,
        }
    }
}

/// The `kmod_dev PHASE PATH BUS [CANDIDATES]` shell function; `tag` prefixes its lines
/// (`@@kmod:`). Only [`Phase::Loaded`] looks for the device: the candidates first (the
/// names the kernel gives such a node), then every device of the bus. Before the overlay
/// and after its removal only the node matters (a device left without its node has no
/// `of_node` to find it by).
pub fn check_fn(tag: &str) -> String {
    format!(
        "kmod_dev() {{\n\
         \to=-; n=-; d=-; m=-\n\
         \t[ -e \"{DT_BASE}$2\" ] && o=1\n\
         \tif [ \"$1\" = loaded ]; then\n\
         \t\tfor x in $4 /sys/bus/$3/devices/*; do\n\
         \t\t\tcd -P \"$x/of_node\" 2>/dev/null || continue\n\
         \t\t\t[ \"$PWD\" = \"{DT_BASE}$2\" ] || continue\n\
         \t\t\tn=${{x##*/}}\n\
         \t\t\tcd -P \"$x/driver\" 2>/dev/null && d=${{PWD##*/}}\n\
         \t\t\tcd -P \"$x/driver/module\" 2>/dev/null && m=${{PWD##*/}}\n\
         \t\t\tbreak\n\
         \t\tdone\n\
         \t\tcd /\n\
         \tfi\n\
         \t[ \"$1\" = before ] && [ \"$o\" = 1 ] && {CLASH_VAR}=1\n\
         \techo \"{tag}device $1 $2 $3 $o $n $d $m\"\n\
         }}\n"
    )
}

/// Where the kernel puts the device of `d`'s node, as a glob: a platform device for a node
/// under the root without `reg` is named after the node; an I2C client is `ADAPTER-00AA`.
fn candidates(d: &GuestDevice) -> String {
    let node = d.path.rsplit('/').next().unwrap_or_default();
    match d.bus {
        Bus::Platform => format!("/sys/bus/platform/devices/{node}"),
        Bus::I2c => match node
            .split_once('@')
            .and_then(|(_, a)| u16::from_str_radix(a, 16).ok())
        {
            Some(a) => format!("/sys/bus/i2c/devices/*-{a:04x}"),
            None => String::new(),
        },
    }
}

/// The calls that check `devices` in `phase` (after [`check_fn`] defined the function).
pub fn check_script(phase: Phase, devices: &[GuestDevice]) -> String {
    use crate::qemu::guest::quote;
    devices
        .iter()
        .map(|d| {
            let mut line = format!("kmod_dev {} {} {}", phase.word(), quote(&d.path), d.bus);
            if phase == Phase::Loaded {
                let c = candidates(d);
                if !c.is_empty() {
                    // Unquoted on purpose: the shell expands the glob.
                    line.push_str(&format!(" {}", c.replace(' ', "?")));
                }
            }
            line.push('\n');
            line
        })
        .collect()
}

/// How the guest loads the helper module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelperLoad {
    /// The `.ko` on the host.
    pub ko: std::path::PathBuf,
    /// Where it goes in the initramfs.
    pub guest_path: String,
    /// `overlays=/kmod/devices/0.dtbo,...`
    pub params: Vec<String>,
    /// Compiled overlays: (guest path, host path).
    pub overlays: Vec<(String, std::path::PathBuf)>,
}

/// The shell text a test boot runs for its devices, in four places of its `/init` script:
/// `define` with the other functions, `before_loads` before the modules under test load,
/// `after_loads` once they have, `after_unloads` once they are unloaded. The steps use the
/// boot's `step KIND NAME CMD...` function, so the helper's load and unload are ordinary
/// steps with their kernel log and taint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootSteps {
    pub define: String,
    pub before_loads: String,
    pub after_loads: String,
    pub after_unloads: String,
}

/// The [`BootSteps`] for `helper` and `devices`; `tag` prefixes the check lines.
pub fn boot_steps(helper: &HelperLoad, devices: &[GuestDevice], tag: &str) -> BootSteps {
    let module = crate::devices::helper::MODULE;
    let mut insmod = vec![
        "insmod".to_string(),
        crate::qemu::guest::quote(&helper.guest_path),
    ];
    insmod.extend(helper.params.iter().map(|p| crate::qemu::guest::quote(p)));
    BootSteps {
        define: check_fn(tag),
        before_loads: format!(
            "{}[ -z \"${CLASH_VAR}\" ] && step load {module} {} && kmod_helper=1\n",
            check_script(Phase::Before, devices),
            insmod.join(" ")
        ),
        after_loads: check_script(Phase::Loaded, devices),
        after_unloads: format!(
            "[ -n \"$kmod_helper\" ] && step unload {module} rmmod {module}\n{}",
            check_script(Phase::Removed, devices)
        ),
    }
}

/// One device as a check reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceState {
    pub phase: Phase,
    pub path: String,
    pub bus: String,
    /// Whether the node exists in the live tree.
    pub node: bool,
    /// The device's name on its bus (`blinker`, `0-0048`).
    pub name: Option<String>,
    pub driver: Option<String>,
    /// The driver's module (`/sys/bus/*/drivers/*/module`).
    pub module: Option<String>,
}

/// Read one check line (`TAGdevice ...`) of the console; `None` for any other line.
pub fn parse_line(tag: &str, line: &str) -> Option<DeviceState> {
    let at = line.find(&format!("{tag}device "))?;
    let rest = &line[at + tag.len() + "device ".len()..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let [phase, path, bus, node, name, driver, module] = f.as_slice() else {
        return None;
    };
    let opt = |s: &str| (s != "-").then(|| s.to_string());
    Some(DeviceState {
        phase: Phase::parse(phase)?,
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
    /// Kernel-log lines of the helper's unload step (overlay removal, node leaks).
    pub remove_log: &'a [String],
    /// `alias=` values of each module under test's `.modinfo`: (module, aliases).
    pub aliases: &'a [(String, Vec<String>)],
    /// The modules under test that loaded. A device none of whose modules loaded is not
    /// judged: the module's own load failure is the report.
    pub loaded: &'a [String],
    /// Whether the helper loaded (its overlays applied); when it did not, its own load step
    /// already failed with the kernel's reason and the devices are not judged again.
    pub helper_loaded: bool,
    /// Whether the helper unloaded.
    pub helper_unloaded: bool,
}

/// Judge every device from the check lines: unbound, bound to the wrong module, probe
/// errors with the kernel's words, leftovers after removal.
pub fn judge(devices: &[GuestDevice], states: &[DeviceState], ev: &Evidence<'_>) -> Vec<Problem> {
    let mut out = Vec::new();
    for d in devices {
        let state = |phase: Phase| {
            states
                .iter()
                .rev()
                .find(|s| s.phase == phase && s.path == d.path)
        };
        let module = d.modules.first().cloned().unwrap_or_default();
        let mut lines: Vec<String> = Vec::new();
        if state(Phase::Before).is_some_and(|s| s.node) {
            lines.push(format!(
                "device {} was not created: node `{}` already exists in the guest's device tree, and an overlay would change it instead of adding a device",
                d.label(),
                d.path
            ));
            lines.push(format!(
                "help: give the device another `name` ({})",
                d.origin
            ));
        } else if ev.helper_loaded && d.modules.iter().any(|m| ev.loaded.contains(m)) {
            match state(Phase::Loaded) {
                None => lines.push(format!(
                    "device {} was not checked: the guest never reported it",
                    d.label()
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
        if ev.helper_unloaded {
            if let Some(s) = state(Phase::Removed) {
                if s.node {
                    lines.push(format!(
                        "device {}: node `{}` is still in the guest's device tree after its overlay was removed",
                        d.label(),
                        d.path
                    ));
                }
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
                name: case_name(d, devices),
                module,
                lines,
            });
        }
    }
    out
}

/// The case name of a device: `device acme,blinker (platform)`, with its node's path when
/// another device has the same label (`device acme,blinker (platform) at /second`).
pub fn case_name(d: &GuestDevice, all: &[GuestDevice]) -> String {
    let label = d.label();
    if all.iter().filter(|o| o.label() == label).count() > 1 {
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
        .map(|l| crate::qemu::ktap::strip_log_prefix(l))
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
        .map(|l| crate::qemu::ktap::strip_log_prefix(l).to_string())
        .filter(|l| (l.contains(&me) || l.starts_with(&me[1..])) && Some(l.as_str()) != except)
        .collect();
    lines
}

/// Why a device stayed unbound when no probe failed, from the modules' `alias=` entries.
fn unmatched_reason(d: &GuestDevice, path: &str, aliases: &[(String, Vec<String>)]) -> String {
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
}
