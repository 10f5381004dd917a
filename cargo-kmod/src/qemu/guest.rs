//! The guest side of a test boot: the `/init` script that loads and unloads modules, and the
//! host-side reading of what it printed.
//!
//! The console is shared by the kernel and `/init`, and on arm64 (nbcon `pl011`) the kernel
//! prints asynchronously, so console order says nothing reliable about which step a kernel
//! message belongs to. The guest therefore runs each step (`insmod`, `rmmod`) and then dumps
//! the kernel-log lines the step caused (`dmesg -c`; for `run --exec` the lines after those
//! counted before, so the log stays whole), every line tagged, between step markers:
//!
//! ```text
//! @@kmod:begin 0
//! @@kmod:step load hello
//! @@kmod:out insmod: can't insert '/kmod/hello.ko': unknown symbol in module
//! @@kmod:log hello: Unknown symbol foo (err -2)
//! @@kmod:done load hello 1 4096
//! @@kmod:end
//! ```
//!
//! `done` carries the command's exit status and `/proc/sys/kernel/tainted` after the step.
//! The kernel's own console output (quietened with `quiet`) stays untagged and is used only
//! when the guest dies or hangs inside a step.

use crate::qemu::boot::BootLog;

/// The tag of every protocol line.
pub const TAG: &str = "@@kmod:";

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

/// Shell-quote one word for busybox `sh`.
/// The guest's view of modules to load: each under `/kmod/<name>.ko`, with its parameters.
pub fn guest_modules(modules: &[crate::qemu::modules::KoModule]) -> Vec<GuestModule> {
    modules
        .iter()
        .map(|m| GuestModule {
            name: m.name.clone(),
            guest_path: format!("/kmod/{}.ko", m.name),
            params: m.params.clone(),
        })
        .collect()
}

pub fn quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// The body of `/init` (after [`crate::qemu::boot::init_prelude`]) for a test boot: load
/// `modules` in order, then unload them in reverse order (those that loaded). With
/// `fail_fast`, a module that fails to load stops the loading of the ones after it.
pub fn test_script(modules: &[GuestModule], fail_fast: bool) -> String {
    let mut s = format!("{TAG_FN}{STEP_CLEAR_FN}dmesg -c >/dev/null\n{BEGIN}");
    for (i, m) in modules.iter().enumerate() {
        let load = format!("step load {} {} && l{i}=1", quote(&m.name), insmod(m));
        if fail_fast {
            s.push_str(&format!("[ -z \"$stop\" ] && {{ {load} || stop=1; }}\n"));
        } else {
            s.push_str(&format!("{load}\n"));
        }
    }
    for (i, m) in modules.iter().enumerate().rev() {
        s.push_str(&format!(
            "[ -n \"$l{i}\" ] && step unload {0} rmmod {0}\n",
            quote(&m.name)
        ));
    }
    s.push_str("echo @@kmod:end\n");
    s
}

/// `tag PREFIX FILE`: print FILE's lines with PREFIX, with shell builtins only (under TCG
/// every exec of busybox costs milliseconds).
const TAG_FN: &str = "tag() {\n\
     \twhile IFS= read -r l || [ -n \"$l\" ]; do echo \"$1$l\"; done <\"$2\"\n\
     }\n";

/// Run one step: its output and the kernel-log lines it caused, tagged. For a test boot the
/// log is read and cleared (`dmesg -c`) after each step, so each step's log is exactly its
/// own.
const STEP_CLEAR_FN: &str = "step() {\n\
     \tk=$1; n=$2; shift 2\n\
     \techo \"@@kmod:step $k $n\"\n\
     \t\"$@\" >/tmp/out 2>&1; rc=$?\n\
     \ttag '@@kmod:out ' /tmp/out\n\
     \tdmesg -c >/tmp/log 2>&1\n\
     \ttag '@@kmod:log ' /tmp/log\n\
     \tt=$(cat /proc/sys/kernel/tainted)\n\
     \techo \"@@kmod:done $k $n $rc $t\"\n\
     \treturn $rc\n\
     }\n";

/// The same for `run --exec`, where the user's `dmesg` must still see everything: the log's
/// lines are counted before the step instead of cleared.
const STEP_KEEP_FN: &str = "step() {\n\
     \tk=$1; n=$2; shift 2\n\
     \techo \"@@kmod:step $k $n\"\n\
     \tdmesg >/tmp/log 2>&1\n\
     \tb=0; while IFS= read -r l || [ -n \"$l\" ]; do b=$((b + 1)); done </tmp/log\n\
     \t\"$@\" >/tmp/out 2>&1; rc=$?\n\
     \ttag '@@kmod:out ' /tmp/out\n\
     \tdmesg >/tmp/log 2>&1\n\
     \ti=0; while IFS= read -r l || [ -n \"$l\" ]; do i=$((i + 1)); [ $i -gt $b ] && echo \"@@kmod:log $l\"; done </tmp/log\n\
     \tt=$(cat /proc/sys/kernel/tainted)\n\
     \techo \"@@kmod:done $k $n $rc $t\"\n\
     \treturn $rc\n\
     }\n";

// (Not `read t <`: sysctl files return only the first byte to ash's byte-wise reads.)
const BEGIN: &str = "t=$(cat /proc/sys/kernel/tainted)\necho \"@@kmod:begin $t\"\n";

fn insmod(m: &GuestModule) -> String {
    let mut cmd = vec!["insmod".to_string(), quote(&m.guest_path)];
    cmd.extend(m.params.iter().map(|p| quote(p)));
    cmd.join(" ")
}

/// `cargo kmod run --exec`: load the modules as test steps; on the first failure print
/// `@@kmod:end` and power off (the host reports the step).
pub fn test_loads(modules: &[GuestModule]) -> String {
    let mut s = format!("{TAG_FN}{STEP_KEEP_FN}{BEGIN}");
    for m in modules {
        s.push_str(&format!(
            "step load {} {} || {{ echo @@kmod:end; reboot -f; }}\n",
            quote(&m.name),
            insmod(m)
        ));
    }
    s
}

/// Run `cmd` with `sh -c`, its output between `@@kmod:exec` and `@@kmod:exit STATUS`.
pub fn exec_script(cmd: &str) -> String {
    format!(
        "echo @@kmod:exec\ncd /root\nsh -c {}\necho \"@@kmod:exit $?\"\n",
        quote(cmd)
    )
}

/// `cargo kmod run` without `--exec`: load the modules (the kernel's messages show on the
/// console), then a login shell on the console with job control.
pub fn shell_script(modules: &[GuestModule]) -> String {
    let mut s = String::new();
    for m in modules {
        s.push_str(&format!(
            "{} || echo \"cargo-kmod: module {} did not load\"\n",
            insmod(m),
            quote(&m.name)
        ));
    }
    s.push_str(
        "echo 'cargo-kmod: guest shell; `reboot -f` (or Ctrl-A X) ends qemu'\n\
         cd /root\n\
         setsid cttyhack sh -l\n",
    );
    s
}

/// One step of a test boot as the guest reported it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Step {
    /// `load` or `unload`.
    pub kind: String,
    pub module: String,
    /// What `insmod`/`rmmod` printed.
    pub out: Vec<String>,
    /// The kernel log during the step.
    pub log: Vec<String>,
    /// Exit status; `None` when the guest never finished the step.
    pub status: Option<i32>,
    /// `/proc/sys/kernel/tainted` after the step.
    pub taint: Option<u64>,
    /// Untagged console lines seen during the step (the kernel's own console output).
    pub console: Vec<String>,
}

/// A test boot's console read back into steps.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Transcript {
    /// Taint before any module was loaded; `None` if the guest never got that far.
    pub begin_taint: Option<u64>,
    pub steps: Vec<Step>,
    /// Whether `@@kmod:end` was seen.
    pub finished: bool,
    /// Untagged console lines before the first step (boot messages).
    pub boot: Vec<String>,
}

impl Transcript {
    pub fn parse<S: AsRef<str>>(lines: &[S]) -> Transcript {
        let mut t = Transcript::default();
        for raw in lines {
            let line = raw.as_ref();
            // A kernel console line may share a physical line with a tag; find the tag.
            let Some(at) = line.find(TAG) else {
                match t.steps.last_mut() {
                    Some(s) if s.status.is_none() => s.console.push(line.to_string()),
                    Some(_) => {}
                    None if t.begin_taint.is_none() => t.boot.push(line.to_string()),
                    None => {}
                }
                continue;
            };
            let rest = &line[at + TAG.len()..];
            let (word, arg) = rest.split_once(' ').unwrap_or((rest, ""));
            match word {
                "begin" => t.begin_taint = arg.trim().parse().ok(),
                "step" => {
                    let (kind, module) = arg.split_once(' ').unwrap_or((arg, ""));
                    t.steps.push(Step {
                        kind: kind.into(),
                        module: module.trim().into(),
                        ..Step::default()
                    });
                }
                "out" | "log" => {
                    if let Some(s) = t.steps.last_mut() {
                        let v = if word == "out" {
                            &mut s.out
                        } else {
                            &mut s.log
                        };
                        v.push(arg.to_string());
                    }
                }
                "done" => {
                    let f: Vec<&str> = arg.split_whitespace().collect();
                    if let (Some(s), [_, _, rc, taint, ..]) = (t.steps.last_mut(), f.as_slice()) {
                        s.status = rc.parse().ok();
                        s.taint = taint.parse().ok();
                    }
                }
                "end" => t.finished = true,
                _ => {}
            }
        }
        t
    }

    pub fn from_log(log: &BootLog) -> Transcript {
        Transcript::parse(&log.lines)
    }

    /// The step the guest was in when the log ended, if it never finished it.
    pub fn unfinished(&self) -> Option<&Step> {
        self.steps.last().filter(|s| s.status.is_none())
    }
}

/// Taint flags, in the order of `/proc/sys/kernel/tainted`'s bits, with the kernel's letters.
pub const TAINTS: [(char, &str); 20] = [
    ('P', "proprietary module was loaded"),
    ('F', "module was force loaded"),
    ('S', "kernel running on an out of specification system"),
    ('R', "module was force unloaded"),
    ('M', "processor reported a machine check exception"),
    ('B', "bad page referenced or unexpected page flags"),
    ('U', "taint requested by userspace"),
    ('D', "kernel died recently (OOPS or BUG)"),
    ('A', "an ACPI table was overridden"),
    ('W', "kernel issued a warning"),
    ('C', "staging driver was loaded"),
    ('I', "workaround for platform firmware bug applied"),
    ('O', "externally-built (out-of-tree) module was loaded"),
    ('E', "unsigned module was loaded"),
    ('L', "soft lockup occurred"),
    ('K', "kernel has been live patched"),
    ('X', "auxiliary taint"),
    ('T', "kernel was built with the struct randomization plugin"),
    ('N', "an in-kernel test has been run"),
    ('J', "userspace used a mutating debug operation in fwctl"),
];

/// Taint bits a test module is allowed to add: out-of-tree (`O`), unsigned (`E`, test builds
/// are not signed) and in-kernel test run (`N`, KUnit sets it whenever a suite runs).
pub const ALLOWED_TAINT: u64 = (1 << 12) | (1 << 13) | (1 << 18);

/// The new, not allowed taint flags between `before` and `after`, as `W (kernel issued a
/// warning)` strings.
pub fn new_taints(before: u64, after: u64) -> Vec<String> {
    let new = after & !before & !ALLOWED_TAINT;
    (0..64)
        .filter(|b| new & (1 << b) != 0)
        .map(|b| match TAINTS.get(b) {
            Some((c, what)) => format!("{c} ({what})"),
            None => format!("bit {b}"),
        })
        .collect()
}

/// Kernel log lines that mean something went wrong in the kernel, whatever the module said.
pub fn is_kernel_trouble(line: &str) -> bool {
    const MARKS: [&str; 12] = [
        "Oops",
        "BUG:",
        "kernel BUG at",
        "WARNING:",
        "Kernel panic",
        "Internal error:",
        "Unable to handle kernel",
        "general protection fault",
        "rust_panic",
        "panicked at",
        "Call Trace:",
        "Call trace:",
    ];
    MARKS.iter().any(|m| line.contains(m))
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

    #[test]
    fn script_loads_in_order_and_unloads_in_reverse() {
        let m = |n: &str| GuestModule {
            name: n.into(),
            guest_path: format!("/kmod/{n}.ko"),
            params: vec![],
        };
        let mut b = m("b");
        b.params.push("count=3".into());
        let s = test_script(&[m("a"), b], false);
        let la = s.find("step load a insmod /kmod/a.ko && l0=1").unwrap();
        let lb = s
            .find("step load b insmod /kmod/b.ko count=3 && l1=1")
            .unwrap();
        let ub = s.find("step unload b rmmod b").unwrap();
        let ua = s.find("step unload a rmmod a").unwrap();
        assert!(la < lb && lb < ub && ub < ua);
        assert!(s.ends_with("echo @@kmod:end\n"));
        let s = test_script(&[m("a")], true);
        assert!(
            s.contains("[ -z \"$stop\" ] && { step load a insmod /kmod/a.ko && l0=1 || stop=1; }"),
            "{s}"
        );
    }

    #[test]
    fn transcript_steps() {
        let log = [
            "Linux version 7.2.13",
            "@@kmod:begin 0",
            "@@kmod:step load hello",
            "@@kmod:log hello: loaded",
            "@@kmod:log     ok 1 adds",
            "@@kmod:done load hello 0 4096",
            "@@kmod:step unload hello",
            "@@kmod:out rmmod: can't unload module 'hello': Resource temporarily unavailable",
            "@@kmod:done unload hello 1 4096",
            "@@kmod:end",
        ];
        let t = Transcript::parse(&log);
        assert_eq!(t.begin_taint, Some(0));
        assert_eq!(t.boot, ["Linux version 7.2.13"]);
        assert!(t.finished);
        assert_eq!(t.steps.len(), 2);
        assert_eq!(t.steps[0].log, ["hello: loaded", "    ok 1 adds"]);
        assert_eq!(t.steps[0].status, Some(0));
        assert_eq!(t.steps[1].status, Some(1));
        assert_eq!(t.steps[1].taint, Some(4096));
        assert!(t.unfinished().is_none());
    }

    #[test]
    fn transcript_of_a_guest_that_died_in_a_step() {
        let log = [
            "@@kmod:begin 0",
            "@@kmod:step load hang",
            "watchdog: BUG: soft lockup",
        ];
        let t = Transcript::parse(&log);
        assert!(!t.finished);
        let s = t.unfinished().unwrap();
        assert_eq!(s.module, "hang");
        assert_eq!(s.console, ["watchdog: BUG: soft lockup"]);
    }

    #[test]
    fn taint_letters() {
        assert_eq!(new_taints(0, 4096 | 8192), Vec::<String>::new());
        assert_eq!(
            new_taints(0, (1 << 9) | 4096),
            ["W (kernel issued a warning)"]
        );
        assert_eq!(new_taints(1 << 7, 1 << 7), Vec::<String>::new());
        assert_eq!(
            new_taints(0, 1 << 7),
            ["D (kernel died recently (OOPS or BUG))"]
        );
    }
}
