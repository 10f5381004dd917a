//! What a guest does, as data: a [`GuestPlan`] is the files to put in the guest, a list of
//! typed [`Step`]s (load a module, unload it, run a shell snippet), each with a condition,
//! an optional settle time, and what comes after ([`Then`]). qemu renders it as the `/init`
//! busybox script (`qemu::script`), which reports on the protocol of [`crate::guest::protocol`];
//! deploy runs the same kind of steps on a board.
//!
//! Each step runs its command with output to a file, then writes a sync record into
//! `/dev/kmsg`, then reports the output, the exit status and `/proc/sys/kernel/tainted`. The
//! kernel log itself is streamed from `/dev/kmsg` by a background forwarder from the first
//! record on, so nothing is cleared and the user's `dmesg` sees everything; the host cuts the
//! stream into steps at the sync records.

use std::path::PathBuf;
use std::time::Duration;

use crate::process::shell_word as quote;

/// A module to load in the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestModule {
    /// The module name (`hello`), used by `rmmod`.
    pub name: String,
    /// Where the `.ko` sits in the initramfs (`/kmod/hello.ko`).
    pub guest_path: String,
    /// `name=value` module parameters.
    pub params: Vec<String>,
}

/// The guest's view of modules to load: each under `/kmod/<name>.ko`, with its parameters.
pub fn guest_modules(modules: &[crate::guest::modules::KoModule]) -> Vec<GuestModule> {
    modules
        .iter()
        .map(|m| GuestModule {
            name: m.name.clone(),
            guest_path: format!("/kmod/{}.ko", m.name),
            params: m.params.clone(),
        })
        .collect()
}

/// What a step does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `insmod PATH PARAMS...`.
    Load {
        module: String,
        path: String,
        params: Vec<String>,
    },
    /// `rmmod MODULE`.
    Unload { module: String },
    /// A busybox `sh` snippet, run in a subshell with `/sys` mounted. `name` labels it in
    /// reports. `applets`: it may call any busybox applet (the guest then runs
    /// `busybox --install` first); without, it uses shell builtins and the base applets only.
    /// `inline`: it runs in the guest's own shell, not a subshell (a fork less); such a
    /// snippet is cargo-kmod's own, assigns only `local` variables and never exits.
    /// `report`: an `inline` snippet that only reads the guest's state and reports it, a
    /// line at a time with `out LINE`, straight onto the protocol channel as the step's
    /// output: no output file to relay line by line. It reads no taint of its own: its step
    /// reports the taint read before it (a taint it caused anyway is the next step's, and
    /// fails the run all the same). Each costs about 12 ms under TCG.
    Shell {
        name: String,
        script: String,
        applets: bool,
        inline: bool,
        report: bool,
    },
    /// Write `value` and a newline to the file `path` (a sysfs attribute) with the shell's
    /// own `echo`: no process, where a step of a shell snippet would fork a subshell.
    /// `module`: the module whose parameter it is, which the step's report is about.
    Write {
        name: String,
        path: String,
        value: String,
        module: Option<String>,
    },
}

/// When a step runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum When {
    Always,
    /// Only when each listed step ran and exited 0. Steps are named as [`Step::name`]
    /// says (`hello (load)`); a name means the latest earlier step of that name, so steps
    /// can be inserted anywhere without renumbering. A name no earlier step has never
    /// succeeds.
    AllOk(Vec<String>),
    /// Only when no step before it failed (fail-fast loading).
    NothingFailed,
}

/// One typed step of a guest script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub action: Action,
    pub when: When,
}

impl Step {
    pub fn load(m: &GuestModule) -> Step {
        Step {
            action: Action::Load {
                module: m.name.clone(),
                path: m.guest_path.clone(),
                params: m.params.clone(),
            },
            when: When::Always,
        }
    }

    pub fn unload(module: &str) -> Step {
        Step {
            action: Action::Unload {
                module: module.to_string(),
            },
            when: When::Always,
        }
    }

    /// A [`Action::Shell`] step with its three switches.
    fn shell_step(name: &str, script: &str, applets: bool, inline: bool, report: bool) -> Step {
        Step {
            action: Action::Shell {
                name: name.to_string(),
                script: script.to_string(),
                applets,
                inline,
                report,
            },
            when: When::Always,
        }
    }

    pub fn shell(name: &str, script: &str) -> Step {
        Self::shell_step(name, script, true, false, false)
    }

    /// A shell step of builtins (and the base applets) only: it spares the guest
    /// `busybox --install`, tens of milliseconds under TCG.
    pub fn builtins(name: &str, script: &str) -> Step {
        Self::shell_step(name, script, false, false, false)
    }

    /// A builtins step ([`Self::builtins`]) run in the guest's own shell: for cargo-kmod's
    /// own snippets whose functions keep their variables `local` and never exit.
    pub fn inline(name: &str, script: &str) -> Step {
        Self::shell_step(name, script, false, true, false)
    }

    /// A step of cargo-kmod's own that only reads and reports ([`Action::Shell`]'s
    /// `report`): its script writes each line of its output with `out LINE`.
    pub fn report(name: &str, script: &str) -> Step {
        Self::shell_step(name, script, false, true, true)
    }

    /// A step that writes `value` to `path` ([`Action::Write`]), a parameter of `module`.
    pub fn write(name: &str, path: &str, value: &str, module: Option<&str>) -> Step {
        Step {
            action: Action::Write {
                name: name.to_string(),
                path: path.to_string(),
                value: value.to_string(),
                module: module.map(str::to_string),
            },
            when: When::Always,
        }
    }

    pub fn when(mut self, when: When) -> Step {
        self.when = when;
        self
    }

    /// How reports name the step: `hello (load)`, `hello (unload)`, or the shell step's name.
    pub fn name(&self) -> String {
        match &self.action {
            Action::Load { module, .. } => format!("{module} (load)"),
            Action::Unload { module } => format!("{module} (unload)"),
            Action::Shell { name, .. } | Action::Write { name, .. } => name.clone(),
        }
    }

    /// The module a load, unload or parameter write is about.
    pub fn module(&self) -> Option<&str> {
        match &self.action {
            Action::Load { module, .. } | Action::Unload { module } => Some(module),
            Action::Write { module, .. } => module.as_deref(),
            Action::Shell { .. } => None,
        }
    }

    /// The program the step runs, for messages (`insmod`, `rmmod`, `sh`).
    pub fn program(&self) -> &'static str {
        match self.action {
            Action::Load { .. } => "insmod",
            Action::Unload { .. } => "rmmod",
            Action::Shell { .. } => "the step's script",
            Action::Write { .. } => "echo",
        }
    }

    /// The shell command line that performs the step.
    pub(crate) fn command(&self, id: usize) -> String {
        match &self.action {
            Action::Load { path, params, .. } => {
                let mut cmd = vec!["insmod".to_string(), quote(path)];
                cmd.extend(params.iter().map(|p| quote(p)));
                cmd.join(" ")
            }
            Action::Unload { module } => format!("rmmod {}", quote(module)),
            Action::Shell { .. } => format!("c{id}"),
            Action::Write { path, value, .. } => format!("w {} {}", quote(path), quote(value)),
        }
    }

    /// Whether the step runs, given the steps before it and their exit statuses (`None`:
    /// did not run).
    pub fn runs(&self, earlier: &[Step], statuses: &[Option<i32>]) -> bool {
        match &self.when {
            When::Always => true,
            When::AllOk(names) => names.iter().all(|n| {
                find_earlier(earlier, n).and_then(|i| statuses.get(i).copied().flatten()) == Some(0)
            }),
            When::NothingFailed => statuses.iter().flatten().all(|rc| *rc == 0),
        }
    }
}

/// The index of the latest step in `earlier` named `name`.
pub(crate) fn find_earlier(earlier: &[Step], name: &str) -> Option<usize> {
    earlier.iter().rposition(|s| s.name() == name)
}

/// What the guest does after its steps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Then {
    /// Report the end; the host powers the guest off (kills qemu).
    PowerOff,
    /// `run --exec`: when no step failed, run this command under `sh -c` in `/root`, its
    /// output and exit status on the protocol.
    Exec(String),
    /// `run`: a login shell on the console (no protocol: the terminal is the guest's).
    Shell,
    /// A long-running guest: report `ready` and keep running until the host kills it.
    Wait,
}

/// A file for the initramfs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileSource {
    /// Copied from the host.
    Host(PathBuf),
    Bytes(Vec<u8>),
    /// A host program and the shared libraries `ldd` says it needs (glibc userspace such as
    /// kmod's tools or an sshd).
    Program(PathBuf),
    /// A symbolic link to this target.
    Symlink(String),
}

/// A file for the initramfs at `guest_path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestFile {
    pub guest_path: String,
    pub source: FileSource,
    /// Permission bits (`0o644`).
    pub mode: u32,
}

/// Everything a guest boot does.
#[derive(Debug, Clone)]
pub struct GuestPlan {
    pub files: Vec<GuestFile>,
    pub steps: Vec<Step>,
    /// After the steps (when not interactive), wait this long, then check the log and
    /// taint once more: a timer or work item a module left armed fires in this window.
    pub settle: Option<Duration>,
    pub then: Then,
    /// Extra kernel command-line arguments.
    pub cmdline: Vec<String>,
    pub timeout: Duration,
    /// A step a resumed test boot has run already: its snapshot ran it before it was saved
    /// (`crate::qemu::snapshot`).
    pub preload: Option<Preload>,
}

/// A step that a test boot resumed from a snapshot does not run itself: the snapshot's
/// template ran it (with the files it reads) before the guest was saved, once per set of
/// inputs, and the run reports that outcome as the step's own. Only an outcome that
/// succeeded and tainted the kernel with nothing but `O` and `E` is kept in a snapshot; any
/// other makes the run boot cold, where the step runs in its place and is judged as usual.
/// The step must not depend on the steps before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preload {
    /// The step's index in [`GuestPlan::steps`]: an [`Action::Load`] that runs always.
    pub step: usize,
    /// The guest paths, among [`GuestPlan::files`], of the files it reads.
    pub files: Vec<String>,
}

impl Default for GuestPlan {
    fn default() -> Self {
        GuestPlan {
            files: Vec::new(),
            steps: Vec::new(),
            settle: None,
            then: Then::PowerOff,
            cmdline: Vec::new(),
            timeout: Duration::from_secs(60),
            preload: None,
        }
    }
}

/// How long a test boot waits after the last step before its final check.
pub const SETTLE: Duration = Duration::from_millis(50);

impl GuestPlan {
    /// The usual test plan: load `modules` in order (with `fail_fast`, a load failure stops
    /// the loads after it), unload the loaded ones in reverse order, settle, power off.
    pub fn test(modules: &[crate::guest::modules::KoModule], fail_fast: bool) -> GuestPlan {
        let guests = guest_modules(modules);
        let mut steps = Vec::new();
        for m in &guests {
            let when = if fail_fast {
                When::NothingFailed
            } else {
                When::Always
            };
            steps.push(Step::load(m).when(when));
        }
        for m in guests.iter().rev() {
            let load = Step::load(m).name();
            steps.push(Step::unload(&m.name).when(When::AllOk(vec![load])));
        }
        GuestPlan {
            files: module_files(modules),
            steps,
            settle: Some(SETTLE),
            ..GuestPlan::default()
        }
    }

    /// Whether the protocol is in use (every mode but the interactive shell).
    pub fn reports(&self) -> bool {
        self.then != Then::Shell
    }
}

/// The initramfs files of `modules`: each `.ko` at its [`guest_modules`] path.
pub fn module_files(modules: &[crate::guest::modules::KoModule]) -> Vec<GuestFile> {
    modules
        .iter()
        .zip(guest_modules(modules))
        .map(|(m, g)| GuestFile {
            guest_path: g.guest_path,
            source: FileSource::Host(m.ko.clone()),
            mode: 0o644,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(quote("/kmod/a.ko"), "/kmod/a.ko");
        assert_eq!(quote("greeting=hi there"), "'greeting=hi there'");
        assert_eq!(quote("it's"), "'it'\\''s'");
        assert_eq!(quote(""), "''");
    }
}
