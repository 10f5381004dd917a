//! Test devices in a guest plan: the files and steps a `test` or `run` boot gains, and the
//! verdict on the devices from a test boot's transcript.
//!
//! A test plan ([`GuestPlan::test`]) becomes:
//!
//! ```text
//! cargo_kmod_devices (load)      insmod ... overlay_list=... node_list=...: -EEXIST when a node
//!                                the overlays add exists already, else the devices appear
//! MODULE (load) ...              the modules under test: drivers register and probe
//! devices                        each device's name, driver and the driver's module
//! MODULE (unload) ...            each driver's `remove` runs
//! cargo_kmod_devices             a write to its `remove` parameter: the overlays are removed,
//!   (remove devices)             and the devices with them (no `rmmod`: no process)
//! ```
//!
//! Two steps and one shell step: every process costs milliseconds under TCG. The helper's load
//! and unload are ordinary steps, judged like any module's (the kernel's words when an
//! overlay does not apply, oopses, taint). The check reports on the protocol as its output;
//! [`Prepared::judge`] turns that into one failing case per device that is not as declared
//! ([`guest::judge`]), and explains the helper's refusal per device.

use crate::devices::guest::{self, Evidence};
use crate::devices::{helper, usb, Prepared};
use crate::guest::modules::KoModule;
use crate::guest::plan::{Action, FileSource, GuestFile, GuestPlan, Preload, Step, When};
use crate::guest::verdict::{Binding, CaseResult, TestReport, Verdict};

/// The name of the check step.
pub const CHECK: &str = "devices";

/// The name of the step that builds the USB gadgets and waits for them to enumerate (test
/// and run boots with USB devices).
pub const USB_GADGETS: &str = "usb gadgets";

fn helper_load() -> String {
    format!("{} (load)", helper::MODULE)
}

/// The step that removes the devices: a write to the helper's `remove` parameter, which
/// does what unloading it would (the overlays are removed, their nodes checked) without
/// starting `rmmod`. The helper stays loaded until the guest powers off.
fn helper_remove() -> String {
    format!("{} (remove devices)", helper::MODULE)
}

impl Prepared {
    /// The initramfs files: the USB gadget function module when a USB device needs it; the
    /// helper module, the compiled overlays and the lists the helper reads.
    pub fn guest_files(&self) -> Vec<GuestFile> {
        let mut files: Vec<GuestFile> = self
            .usb_function
            .iter()
            .map(|ko| GuestFile {
                guest_path: usb::FUNCTION_GUEST_PATH.to_string(),
                source: FileSource::Host(ko.clone()),
                mode: 0o644,
            })
            .collect();
        if self.uses_helper() {
            files.extend(self.helper_files());
        }
        files
    }

    /// The helper module, the compiled overlays and the lists the helper reads.
    fn helper_files(&self) -> Vec<GuestFile> {
        let mut files: Vec<GuestFile> = self
            .files()
            .into_iter()
            .map(|(guest_path, host)| GuestFile {
                guest_path,
                source: FileSource::Host(host),
                mode: 0o644,
            })
            .collect();
        files.extend(
            self.helper
                .lists
                .iter()
                .map(|(guest_path, text)| GuestFile {
                    guest_path: guest_path.clone(),
                    source: FileSource::Bytes(text.clone().into_bytes()),
                    mode: 0o644,
                }),
        );
        files
    }

    /// Whether the boot needs the helper module: it applies overlays, and only platform
    /// and I2C devices (and raw overlays) have them.
    fn uses_helper(&self) -> bool {
        !self.helper.overlays.is_empty()
    }

    fn helper_step(&self) -> Step {
        Step {
            action: Action::Load {
                module: helper::MODULE.to_string(),
                path: self.helper.guest_path.clone(),
                params: self.helper.params.clone(),
            },
            when: When::Always,
        }
    }

    /// The USB devices as gadgets, one per `dummy_hcd` controller ([`crate::devices::usb`]).
    fn usb_gadgets(&self) -> Vec<usb::Gadget> {
        usb::gadgets(&self.devices)
    }

    /// With USB test devices: build their gadgets and wait until the host side has
    /// enumerated them, before any module under test loads (its driver then binds the
    /// interface as it registers). Also the kernel argument for more than one controller.
    fn add_usb(&self, plan: &mut GuestPlan, steps: &mut Vec<Step>) {
        let gadgets = self.usb_gadgets();
        if gadgets.is_empty() {
            return;
        }
        // First: the user's arguments (after them) win, in `test` and `run` alike.
        if let Some(arg) = usb::kernel_arg(gadgets.len()) {
            plan.cmdline.insert(0, arg);
        }
        steps.push(Step::shell(USB_GADGETS, &usb::gadget_script(&gadgets)));
    }

    fn check_step(&self) -> Step {
        // It only reads and reports: its lines go straight onto the channel.
        Step::report(CHECK, &guest::check_script(&self.devices))
    }

    /// Add the devices to a [`GuestPlan::test`]: the checks and the helper around the loads
    /// and unloads of the modules under test.
    pub fn extend_test_plan(&self, plan: &mut GuestPlan) {
        plan.files.extend(self.guest_files());
        let first_unload = plan
            .steps
            .iter()
            .position(|s| matches!(s.action, Action::Unload { .. }))
            .unwrap_or(plan.steps.len());
        let mut steps = Vec::new();
        self.add_usb(plan, &mut steps);
        if !self.uses_helper() {
            // PCI devices only: qemu made them; no overlay to apply or remove.
            steps.extend(plan.steps[..first_unload].iter().cloned());
            steps.push(self.check_step());
            steps.extend(plan.steps[first_unload..].iter().cloned());
            plan.steps = steps;
            return;
        }
        // A resumed boot's snapshot loads the helper (its devices made) before it is saved:
        // its load is the same in every run with these devices.
        plan.preload = Some(Preload {
            step: steps.len(),
            files: self
                .helper_files()
                .into_iter()
                .map(|f| f.guest_path)
                .collect(),
        });
        steps.push(self.helper_step());
        steps.extend(plan.steps[..first_unload].iter().cloned());
        steps.push(self.check_step().when(When::AllOk(vec![helper_load()])));
        steps.extend(plan.steps[first_unload..].iter().cloned());
        steps.push(
            Step::write(
                &helper_remove(),
                &format!("/sys/module/{}/parameters/remove", helper::MODULE),
                "1",
                Some(helper::MODULE),
            )
            .when(When::AllOk(vec![helper_load()])),
        );
        plan.steps = steps;
    }

    /// Add the devices to a `run` plan: the helper loads first, so the modules' drivers find
    /// their devices when they register.
    pub fn extend_run_plan(&self, plan: &mut GuestPlan) {
        plan.files.extend(self.guest_files());
        let mut first = Vec::new();
        if self.uses_helper() {
            first.push(self.helper_step());
        }
        self.add_usb(plan, &mut first);
        plan.steps.splice(0..0, first);
    }

    /// The device verdicts of a test boot of `plan` (as extended by
    /// [`Self::extend_test_plan`]) with `modules`: one failing case per device that is not
    /// as declared, and the names of the plan's own cases that the verdicts explain.
    pub fn judge(
        &self,
        report: &TestReport,
        plan: &GuestPlan,
        modules: &[KoModule],
    ) -> (Vec<CaseResult>, Vec<String>, Vec<Binding>) {
        let t = &report.transcript;
        let index = |name: &str| plan.steps.iter().rposition(|s| s.name() == name);
        let done = |name: &str| {
            index(name)
                .and_then(|i| t.steps.get(i))
                .and_then(|s| s.status)
        };
        let states: Vec<_> = index(CHECK)
            .and_then(|i| t.steps.get(i))
            .map(|s| s.out.iter().filter_map(|l| guest::parse_line(l)).collect())
            .unwrap_or_default();
        let mut load_log = Vec::new();
        let mut loaded = Vec::new();
        for m in modules {
            let name = format!("{} (load)", m.name);
            if let Some(i) = index(&name) {
                load_log.extend(t.step_log(i).lines());
                if done(&name) == Some(0) {
                    loaded.push(m.name.clone());
                }
            }
        }
        let log_of = |name: &str| {
            index(name)
                .map(|i| t.step_log(i).lines())
                .unwrap_or_default()
        };
        let helper_log = log_of(&helper_load());
        let remove_log = log_of(&helper_remove());
        // The aliases explain a device that stayed unbound.
        let aliases: Vec<(String, Vec<String>)> = modules
            .iter()
            .map(|m| (m.name.clone(), m.aliases.clone()))
            .collect();
        let ev = Evidence {
            load_log: &load_log,
            helper_log: &helper_log,
            remove_log: &remove_log,
            aliases: &aliases,
            loaded: &loaded,
            helper_loaded: !self.uses_helper() || done(&helper_load()) == Some(0),
            devices_removed: !self.uses_helper() || done(&helper_remove()) == Some(0),
        };
        let problems = guest::judge(&self.devices, &states, &ev);
        let by_path: std::collections::HashMap<&str, &guest::DeviceState> =
            states.iter().map(|s| (s.path.as_str(), s)).collect();
        let bindings = self
            .devices
            .iter()
            .map(|d| Binding {
                module: d.modules.first().cloned().unwrap_or_default(),
                device: d.label(),
                // A USB device is named by its interface (`1-1:1.0`) once it has one.
                at: match by_path.get(d.path.as_str()).and_then(|s| s.name.clone()) {
                    Some(name) if d.bus == crate::devices::Bus::Usb => name,
                    _ => d.path.clone(),
                },
                driver: by_path
                    .get(d.path.as_str())
                    .and_then(|s| Some((s.driver.clone()?, s.module.clone()))),
            })
            .collect();
        // A refused node fails the helper's load with `-EEXIST`: the devices' cases say why.
        let explained = if problems
            .iter()
            .any(|p| p.lines[0].contains("already exists in the guest's device tree"))
        {
            vec![helper_load()]
        } else {
            vec![]
        };
        let cases = problems
            .into_iter()
            .map(|p| CaseResult {
                name: p.name,
                module: p.module,
                verdict: Verdict::Failed,
                lines: p.lines,
                kunit: false,
            })
            .collect();
        (cases, explained, bindings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::tests::dev as device;
    use crate::devices::{Bus, GuestDevice};

    fn prepared(devices: Vec<GuestDevice>) -> Prepared {
        let overlays = devices.iter().any(|d| d.bus == Bus::Platform);
        Prepared {
            helper: guest::HelperLoad {
                ko: "/host/cargo_kmod_devices.ko".into(),
                guest_path: "/kmod/devices/cargo_kmod_devices.ko".into(),
                params: vec!["overlay_list=/kmod/devices/overlays".into()],
                overlays: if overlays {
                    vec![("/kmod/devices/0.dtbo".into(), "/host/0.dtbo".into())]
                } else {
                    vec![]
                },
                lists: vec![(
                    "/kmod/devices/overlays".into(),
                    "/kmod/devices/0.dtbo\n".into(),
                )],
            },
            devices,
            warnings: vec![],
            qemu_args: vec![],
            usb_function: None,
            _scratch: None,
        }
    }

    fn module_plan() -> GuestPlan {
        GuestPlan {
            steps: vec![
                Step {
                    action: Action::Load {
                        module: "m".into(),
                        path: "/kmod/m.ko".into(),
                        params: vec![],
                    },
                    when: When::Always,
                },
                Step {
                    action: Action::Unload { module: "m".into() },
                    when: When::Always,
                },
            ],
            ..GuestPlan::default()
        }
    }

    #[test]
    fn the_helpers_load_is_the_preloaded_step_with_its_files() {
        let blinker = device("/blinker", Bus::Platform, "acme,blinker");
        let pci = device("0000:00:10.0", Bus::Pci, "pci-testdev");
        let mut plan = module_plan();
        prepared(vec![blinker.clone()]).extend_test_plan(&mut plan);
        let p = plan.preload.clone().expect("a preloaded step");
        assert_eq!(p.step, 0);
        assert_eq!(plan.steps[p.step].name(), "cargo_kmod_devices (load)");
        assert_eq!(
            p.files,
            [
                "/kmod/devices/cargo_kmod_devices.ko",
                "/kmod/devices/0.dtbo",
                "/kmod/devices/overlays"
            ]
        );
        // Every file it reads is one the plan carries.
        for f in &p.files {
            assert!(plan.files.iter().any(|g| &g.guest_path == f), "{f}");
        }
        // With PCI devices too: the helper's load is the first step (a resumed guest writes
        // the PCI headers back before its script starts).
        let mut both = module_plan();
        prepared(vec![pci.clone(), blinker]).extend_test_plan(&mut both);
        assert_eq!(both.preload.map(|p| p.step), Some(0));
        // PCI devices alone load no helper: nothing to preload.
        let mut alone = module_plan();
        prepared(vec![pci]).extend_test_plan(&mut alone);
        assert_eq!(alone.preload, None);
    }
}
