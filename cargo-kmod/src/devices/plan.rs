//! Test devices in a guest plan: the files and steps a `test` or `run` boot gains, and the
//! verdict on the devices from a test boot's transcript.
//!
//! A test plan ([`GuestPlan::test`]) becomes:
//!
//! ```text
//! devices (before)                 node clashes; exits 1 on one (then nothing loads)
//! cargo_kmod_devices (load)        insmod ... overlays=...   (when `devices (before)` passed)
//! MODULE (load) ...                the modules under test: drivers register and probe
//! devices (loaded)                 each device's name, driver and the driver's module
//! MODULE (unload) ...              each driver's `remove` runs
//! cargo_kmod_devices (unload)      the overlays are removed, and the devices with them
//! devices (removed)                no node may be left
//! ```
//!
//! The helper's load and unload are ordinary steps, judged like any module's (the kernel's
//! words when an overlay does not apply, oopses, taint). The check steps report on the
//! protocol as their output; [`run_tests`] turns that into one failing case per device that
//! is not as declared ([`guest::judge`]).

use anyhow::Result;

use crate::devices::guest::{self, Evidence, Phase};
use crate::devices::{helper, Prepared};
use crate::qemu::guest::{Action, FileSource, GuestFile, GuestPlan, Step, When};
use crate::qemu::machine::Machine;
use crate::qemu::modules::KoModule;
use crate::qemu::testrun::{self, CaseResult, TestOptions, TestReport, Verdict};
use crate::shell::Shell;

/// The names of the check steps.
pub const CHECK_BEFORE: &str = "devices (before)";
pub const CHECK_LOADED: &str = "devices (loaded)";
pub const CHECK_REMOVED: &str = "devices (removed)";

fn helper_load() -> String {
    format!("{} (load)", helper::MODULE)
}

fn helper_unload() -> String {
    format!("{} (unload)", helper::MODULE)
}

impl Prepared {
    /// The initramfs files: the helper module and the compiled overlays.
    pub fn guest_files(&self) -> Vec<GuestFile> {
        self.files()
            .into_iter()
            .map(|(guest_path, host)| GuestFile {
                guest_path,
                source: FileSource::Host(host),
                mode: 0o644,
            })
            .collect()
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

    fn check_step(&self, name: &str, phase: Phase) -> Step {
        let mut script = guest::check_fn("");
        script.push_str(&guest::check_script(phase, &self.devices));
        if phase == Phase::Before {
            script.push_str(&format!("[ -z \"${}\" ]\n", guest::CLASH_VAR));
        }
        Step::shell(name, &script)
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
        let mut steps = vec![
            self.check_step(CHECK_BEFORE, Phase::Before),
            self.helper_step()
                .when(When::AllOk(vec![CHECK_BEFORE.to_string()])),
        ];
        steps.extend(plan.steps[..first_unload].iter().cloned());
        steps.push(self.check_step(CHECK_LOADED, Phase::Loaded));
        steps.extend(plan.steps[first_unload..].iter().cloned());
        steps.push(Step::unload(helper::MODULE).when(When::AllOk(vec![helper_load()])));
        steps.push(
            self.check_step(CHECK_REMOVED, Phase::Removed)
                .when(When::AllOk(vec![helper_unload()])),
        );
        plan.steps = steps;
    }

    /// Add the devices to a `run` plan: the helper loads first, so the modules' drivers find
    /// their devices when they register.
    pub fn extend_run_plan(&self, plan: &mut GuestPlan) {
        plan.files.extend(self.guest_files());
        plan.steps.insert(0, self.helper_step());
    }

    /// The device verdicts of a test boot of `plan` (as extended by
    /// [`Self::extend_test_plan`]) with `modules`: one failing case per device that is not
    /// as declared, and the names of the plan's own cases that the verdicts explain.
    pub fn judge(
        &self,
        report: &TestReport,
        plan: &GuestPlan,
        modules: &[KoModule],
    ) -> (Vec<CaseResult>, Vec<String>) {
        let t = &report.transcript;
        let index = |name: &str| plan.steps.iter().rposition(|s| s.name() == name);
        let done = |name: &str| {
            index(name)
                .and_then(|i| t.steps.get(i))
                .and_then(|s| s.status)
        };
        let mut states = Vec::new();
        for name in [CHECK_BEFORE, CHECK_LOADED, CHECK_REMOVED] {
            if let Some(s) = index(name).and_then(|i| t.steps.get(i)) {
                states.extend(s.out.iter().filter_map(|l| guest::parse_line("", l)));
            }
        }
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
        let remove_log = index(&helper_unload())
            .map(|i| t.step_log(i).lines())
            .unwrap_or_default();
        let aliases: Vec<(String, Vec<String>)> = modules
            .iter()
            .map(|m| {
                let list = crate::ko::read(&m.ko)
                    .map(|k| {
                        k.module
                            .modinfo
                            .iter()
                            .filter(|(k, _)| k == "alias")
                            .map(|(_, v)| v.clone())
                            .collect()
                    })
                    .unwrap_or_default();
                (m.name.clone(), list)
            })
            .collect();
        let ev = Evidence {
            load_log: &load_log,
            remove_log: &remove_log,
            aliases: &aliases,
            loaded: &loaded,
            helper_loaded: done(&helper_load()) == Some(0),
            helper_unloaded: done(&helper_unload()) == Some(0),
        };
        let problems = guest::judge(&self.devices, &states, &ev);
        let clash = states.iter().any(|s| s.phase == Phase::Before && s.node);
        let explained = if clash && done(CHECK_BEFORE) == Some(1) {
            vec![CHECK_BEFORE.to_string()]
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
        (cases, explained)
    }
}

/// `cargo kmod test`'s boot: [`testrun::run_tests`], with `devices` set up around the
/// modules and judged after them when there are any.
pub fn run_tests(
    shell: &Shell,
    machine: &Machine,
    modules: &[KoModule],
    devices: Option<&Prepared>,
    opts: &TestOptions,
    on_line: impl FnMut(&str),
) -> Result<TestReport> {
    let Some(devices) = devices else {
        return testrun::run_tests(shell, machine, modules, opts, on_line);
    };
    let mut plan = GuestPlan::test(modules, !opts.no_fail_fast);
    devices.extend_test_plan(&mut plan);
    let mut report = testrun::run_test_plan(shell, machine, plan.clone(), modules, opts, on_line)?;
    let (cases, explained) = devices.judge(&report, &plan, modules);
    report.cases.retain(|c| !explained.contains(&c.name));
    report.cases.extend(cases);
    Ok(report)
}
