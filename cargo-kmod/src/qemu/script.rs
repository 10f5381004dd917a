//! The `/init` script of a qemu guest: a [`GuestPlan`] rendered for busybox `sh`, with the
//! kernel command line it needs. Each step runs its command with output to a file, then
//! writes a sync record into `/dev/kmsg`, then reports the output, the exit status and
//! `/proc/sys/kernel/tainted` on the protocol of [`crate::guest::protocol`]. The kernel log
//! itself is streamed from `/dev/kmsg` by a background forwarder from the first record on,
//! so nothing is cleared and the user's `dmesg` sees everything; the host cuts the stream
//! into steps at the sync records.

use std::time::Duration;

use crate::guest::plan::{find_earlier, Action, GuestPlan, Then, When};
use crate::guest::protocol::Token;
use crate::process::shell_word as quote;
use crate::qemu::machine::Channel;

/// The kernel log buffer a test boot asks for (`log_buf_len=`): the streaming reader keeps
/// up with ordinary logs, and this holds a burst of a few MiB while it catches up.
pub const LOG_BUF_LEN: &str = "1M";

impl GuestPlan {
    /// The kernel command line cargo-kmod adds: `quiet` (the console shows only errors; the
    /// log comes through `/dev/kmsg`), or on a shared console `loglevel=1` (only
    /// emergencies, which an oops raises to everything: kernel output written straight to
    /// the UART must not cut through protocol lines); `printk.devkmsg=on` (the sync records
    /// are not rate-limited); no legacy BSD ptys; and a log buffer big enough for a burst,
    /// unless the user set one.
    pub fn kernel_args(&self, channel: &Channel) -> Vec<String> {
        let mut a = Vec::new();
        if self.reports() {
            a.push(match channel {
                Channel::Uart { .. } => "quiet".to_string(),
                Channel::SharedConsole => "loglevel=1".to_string(),
            });
            a.push("printk.devkmsg=on".to_string());
            // The 256 legacy BSD pty pairs the dev trees build in take a tenth of a second
            // (arm64, TCG) to register at boot; nothing in a test uses them.
            a.push("pty.legacy_count=0".to_string());
            if !self.cmdline.iter().any(|c| c.starts_with("log_buf_len=")) {
                a.push(format!("log_buf_len={LOG_BUF_LEN}"));
            }
        }
        a.extend(self.cmdline.iter().cloned());
        a
    }

    /// The `/init` script for `channel` and `token`.
    pub fn script(&self, channel: &Channel, token: &Token) -> String {
        self.render(channel, token, None)
    }

    /// The script a resumed snapshot runs ([`crate::qemu::snapshot`]): `/proc`, `/dev` and
    /// `/sys` are mounted already, `seed` (hex text) goes into the kernel's random pool
    /// first, and the plan's preloaded step ran before the snapshot was saved: the script
    /// reports its output (the template kept it) and its success as the step's own.
    pub fn resumed_script(&self, channel: &Channel, token: &Token, seed: &str) -> String {
        self.render(channel, token, Some(seed))
    }

    fn render(&self, channel: &Channel, token: &Token, resumed_with: Option<&str>) -> String {
        let mut s = String::from(PRELUDE);
        let needs_all_applets = self.then != Then::PowerOff
            || self
                .steps
                .iter()
                .any(|st| matches!(st.action, Action::Shell { applets: true, .. }));
        let needs_sysfs = needs_all_applets
            || self
                .steps
                .iter()
                .any(|st| matches!(st.action, Action::Shell { .. } | Action::Write { .. }));
        if needs_all_applets {
            s.push_str("/bin/busybox --install -s /bin\n");
        }
        match resumed_with {
            // `/proc` and `/dev` from the image's `/etc/fstab`: one busybox run, not two.
            None => s.push_str("mount -a\n"),
            // A write, not a credit: the pool was credited when the template booted.
            Some(seed) => s.push_str(&format!("echo {} >/dev/urandom\n", quote(seed))),
        }
        if needs_sysfs {
            // Users and shell steps expect `/sys`; a plain test boot does not need it. A
            // resumed guest has it already (the snapshot's template mounted it), and the test
            // is a builtin: no busybox run (a fork and exec, about 25 ms under TCG).
            s.push_str("[ -d /sys/bus ] || mount -t sysfs sysfs /sys\n");
        }
        let reports_lines = self
            .steps
            .iter()
            .any(|st| matches!(st.action, Action::Shell { report: true, .. }));
        if !self.reports() {
            s.push_str(WRITE_FN);
            if reports_lines {
                s.push_str("out() { printf '%s\\n' \"$1\"; }\n");
            }
            for (i, st) in self.steps.iter().enumerate() {
                if let Action::Shell { script, inline, .. } = &st.action {
                    s.push_str(&shell_fn(i, script, *inline));
                }
                s.push_str(&format!(
                    "{} || echo {}\n",
                    st.command(i),
                    quote(&format!("cargo-kmod: {} failed", st.name()))
                ));
            }
            s.push_str(
                "echo 'cargo-kmod: guest shell; `reboot -f` (or Ctrl-A X) ends qemu'\n\
                 cd /root\n\
                 setsid cttyhack sh -l\n\
                 reboot -f\n",
            );
            return s;
        }
        s.push_str(&format!("T={}\n", token.as_str()));
        // The log reader's place: one open file, so a reader that stops (a record that was
        // overwritten before it was read) goes on from where it stood, never from the start.
        // It starts before anything else, so it is reading by the time the steps log.
        match channel {
            Channel::Uart { device } => {
                // boards: an empty first line. A UART may emit a stray byte before the first
                // character written to it (the raspi models' mini UART does), which would
                // otherwise spoil the first protocol line.
                s.push_str(&format!(
                    "exec 3>/dev/{device}\necho >&3\nexec 4</dev/kmsg\n( {FORWARD} ) <&4 >&3 &\n"
                ));
            }
            Channel::SharedConsole => s.push_str(&format!(
                "exec 3>&1\nexec 4</dev/kmsg\n\
                 ( {FORWARD} ) <&4 | while IFS= read -r l; do echo \"$T k $l\"; done >&3 &\n"
            )),
        }
        s.push_str("exec 4<&-\n");
        s.push_str(FUNCTIONS);
        // The preloaded step ran in the template: its report is the output the template
        // kept, and the taint `begin` read (the template saved no other).
        let preloaded = resumed_with.and(self.preload.as_ref()).map(|p| p.step);
        if reports_lines || preloaded.is_some() {
            s.push_str(REPORT_FNS);
        }
        s.push_str(WRITE_FN);
        s.push_str("s b\nt\np begin $v\n");
        if preloaded.is_some() {
            s.push_str(&format!(
                "kp() {{ local l; while IFS= read -r l || [ -n \"$l\" ]; do out \"$l\"; done <{}; }}\n",
                crate::qemu::snapshot::PRELOAD_OUT
            ));
        }
        for (i, st) in self.steps.iter().enumerate() {
            if let Action::Shell { script, inline, .. } = &st.action {
                s.push_str(&shell_fn(i, script, *inline));
            }
            let run = if preloaded == Some(i) {
                format!("report {i} kp")
            } else if let Action::Shell { report: true, .. } = &st.action {
                format!("report {i} {}", st.command(i))
            } else {
                format!("step {i} {}", st.command(i))
            };
            let cond = match &st.when {
                When::Always => None,
                When::AllOk(names) => Some(
                    names
                        .iter()
                        .map(|n| match find_earlier(&self.steps[..i], n) {
                            Some(j) => format!("[ \"$r{j}\" = 0 ]"),
                            None => "false".to_string(),
                        })
                        .collect::<Vec<_>>()
                        .join(" && "),
                ),
                When::NothingFailed => Some("[ -z \"$f\" ]".to_string()),
            };
            match cond {
                None => s.push_str(&format!("{run}\n")),
                Some(c) if c.is_empty() => s.push_str(&format!("{run}\n")),
                Some(c) => s.push_str(&format!("if {c}; then {run}; else p skip {i}; fi\n")),
            }
        }
        if let Some(d) = self.settle {
            // A read from a pipe nobody writes to: a sleep that starts no process. The second,
            // short one lets work that became due while the host stalled the guest run
            // before the check (a sleeping `/init` yields the CPU to it).
            let fifo = crate::qemu::initramfs::WAIT_FIFO;
            s.push_str(&format!(
                "read -t {} w <>{fifo}\nread -t 0.001 w <>{fifo}\ns settled\nt\np settled $v\n",
                secs(d),
            ));
        }
        match &self.then {
            Then::PowerOff | Then::Shell => {}
            Then::Exec(cmd) => s.push_str(&format!(
                "if [ -z \"$f\" ]; then\n\
                 \tp exec\n\
                 \tcd /root\n\
                 \tset -o pipefail\n\
                 \tsh -c {} 2>&1 3>&- | while IFS= read -r l || [ -n \"$l\" ]; do printf '%s x %s\\n' \"$T\" \"$l\"; done >&3\n\
                 \tp exit $?\n\
                 \tset +o pipefail\n\
                 \tcd /\n\
                 fi\n",
                quote(cmd)
            )),
            Then::Wait => s.push_str(&format!(
                "p ready\nwhile :; do read -t 3600 w <>{}; done\n",
                crate::qemu::initramfs::WAIT_FIFO
            )),
        }
        // The host powers off once it has the log up to sync `e`; the reboot is a fallback.
        // Waiting starts no process, which would compete with the forwarder for the CPU.
        s.push_str(&format!(
            "s e\np end\nread -t 10 w <>{}\nreboot -f\n",
            crate::qemu::initramfs::WAIT_FIFO
        ));
        s
    }
}

/// The function `c<i>` that runs a shell step's `script`: in a subshell, or `inline` in the
/// guest's own shell (no fork).
fn shell_fn(i: usize, script: &str, inline: bool) -> String {
    if inline {
        format!("c{i}() {{\n{script}\n}}\n")
    } else {
        format!("c{i}() (\n{script}\n)\n")
    }
}

/// `0.1` for 100 ms (busybox `sleep` takes fractions).
fn secs(d: Duration) -> String {
    let ms = d.as_millis();
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

const PRELUDE: &str = "#!/bin/sh\nexport PATH=/bin:/sbin:/usr/bin:/usr/sbin\n";

/// The kernel-log forwarder, on `/dev/kmsg` open as its standard input: from the first record
/// on, one record per read (dd's block is larger than any record, so none is refused as too
/// long). A read fails with `EPIPE` when records were overwritten before they were read; dd
/// then exits and the loop starts it again on the same open file, which goes on from the
/// oldest record still there (the host sees the gap in the sequence numbers). A flood can
/// overrun the buffer hundreds of times (the debug kernel prints faster than the guest's
/// `dd` reads); the bound only keeps a reader that fails for good from spinning forever.
const FORWARD: &str = "i=0; while [ $i -lt 1000 ]; do dd bs=65536 2>/dev/null; i=$((i + 1)); done";

/// `w PATH VALUE`: an [`Action::Write`] step, with the shell's own `echo`.
const WRITE_FN: &str = "w() { echo \"$2\" >\"$1\"; }\n";

/// `p WORDS`: a protocol line. `s ID`: a sync record in the kernel log (user facility,
/// debug level: never on the console). `t`: the taint into `$v` without starting a process
/// (a fork costs about 12 ms on arm64 under TCG, several times per test): `read` alone would
/// get one byte of the sysctl file (it reads a byte at a time, and a sysctl read past offset
/// 0 ends the file), but `.` reads the file in one `read()`, and the shell's complaint that
/// the number is no command (`...: line 1: 4096: not found`, found without a fork) carries
/// it. `command .`: a `.` that fails does not end the shell, which is PID 1. Anything but
/// digits falls back to `head`, a fork.
/// `step ID CMD...`: run a step and report it; the step's sync record and taint are taken
/// the moment its command returns, before its output is relayed, so what happens after (a timer a module left armed) belongs to the next part, however slowly
/// the relay goes on a busy guest.
const FUNCTIONS: &str = "p() { echo \"$T $*\" >&3; }\n\
     s() { echo \"<15>$T sync $1\" >/dev/kmsg; }\n\
     t() {\n\
     \tcommand . /proc/sys/kernel/tainted 2>/tmp/t; read -r v </tmp/t; v=${v%: not found}; v=${v##* }\n\
     \tcase $v in ''|*[!0-9]*) head -c 64 /proc/sys/kernel/tainted >/tmp/t; read -r v </tmp/t;; esac\n\
     }\n\
     step() {\n\
     \ti=$1; shift\n\
     \tp step $i\n\
     \t\"$@\" >/tmp/o 2>&1 </dev/null 3>&-; r=$?\n\
     \ts $i\n\
     \tt\n\
     \twhile IFS= read -r l || [ -n \"$l\" ]; do printf '%s out %s %s\\n' \"$T\" $i \"$l\"; done </tmp/o >&3\n\
     \tp done $i $r $v\n\
     \t[ $r = 0 ] || f=1\n\
     \teval \"r$i=$r\"\n\
     }\n";

/// A report step ([`Action::Shell`]'s `report`): `report I cI` runs it with its `out LINE`
/// writing each line onto the channel as the step's output, then syncs the log and reports
/// its exit status with the taint read before it. The step's number is in `oi`, which no
/// report uses (a `local i` of one would hide `i` from `out`).
const REPORT_FNS: &str = "out() { printf '%s out %s %s\\n' \"$T\" $oi \"$1\" >&3; }\n\
     report() {\n\
     \ti=$1; oi=$1; shift\n\
     \tp step $i\n\
     \t\"$@\" >/dev/null 2>&1 </dev/null; r=$?\n\
     \ts $i\n\
     \tp done $i $r $v\n\
     \t[ $r = 0 ] || f=1\n\
     \teval \"r$i=$r\"\n\
     }\n";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guest::plan::{FileSource, GuestFile, GuestModule, Step};

    fn m(n: &str) -> GuestModule {
        GuestModule {
            name: n.into(),
            guest_path: format!("/kmod/{n}.ko"),
            params: vec![],
        }
    }

    fn ko(n: &str) -> crate::guest::modules::KoModule {
        crate::guest::modules::KoModule {
            name: n.into(),
            ko: format!("/build/{n}.ko").into(),
            depends: vec![],
            params: vec![],
            kunit_suites: 0,
            known_params: None,
            aliases: vec![],
            code: Default::default(),
        }
    }

    fn uart() -> Channel {
        Channel::Uart {
            device: "ttyS1".into(),
        }
    }

    #[test]
    fn test_plan_loads_in_order_and_unloads_in_reverse() {
        let mut b = ko("b");
        b.params.push("count=3".into());
        let plan = GuestPlan::test(&[ko("a"), b], false);
        assert_eq!(
            plan.files[1],
            GuestFile {
                guest_path: "/kmod/b.ko".into(),
                source: FileSource::Host("/build/b.ko".into()),
                mode: 0o644
            }
        );
        let names: Vec<String> = plan.steps.iter().map(Step::name).collect();
        assert_eq!(names, ["a (load)", "b (load)", "b (unload)", "a (unload)"]);
        let s = plan.script(&uart(), &Token::fixed("kT"));
        let la = s.find("step 0 insmod /kmod/a.ko\n").unwrap();
        let lb = s.find("step 1 insmod /kmod/b.ko count=3\n").unwrap();
        let ub = s
            .find("if [ \"$r1\" = 0 ]; then step 2 rmmod b; else p skip 2; fi")
            .unwrap();
        let ua = s
            .find("if [ \"$r0\" = 0 ]; then step 3 rmmod a; else p skip 3; fi")
            .unwrap();
        assert!(la < lb && lb < ub && ub < ua, "{s}");
        assert!(s.contains("T=kT\nexec 3>/dev/ttyS1\n"), "{s}");
        assert!(
            s.contains(
                "read -t 0.050 w <>/run/wait\nread -t 0.001 w <>/run/wait\ns settled\nt\np settled $v\n"
            ),
            "{s}"
        );
        assert!(
            s.ends_with("s e\np end\nread -t 10 w <>/run/wait\nreboot -f\n"),
            "{s}"
        );
        // Only the applets the script itself uses: no `--install`.
        assert!(!s.contains("--install"), "{s}");
        let s = GuestPlan::test(&[ko("a")], true).script(&uart(), &Token::fixed("kT"));
        assert!(
            s.contains("if [ -z \"$f\" ]; then step 0 insmod /kmod/a.ko; else p skip 0; fi"),
            "{s}"
        );
    }

    #[test]
    fn conditions_are_evaluated_like_the_script_does() {
        let earlier = [Step::shell("a", "true"), Step::shell("b", "true")];
        let always = Step::shell("x", "true");
        let after = Step::shell("y", "true").when(When::AllOk(vec!["a".into(), "b".into()]));
        let unknown = Step::shell("u", "true").when(When::AllOk(vec!["nope".into()]));
        let fast = Step::shell("z", "true").when(When::NothingFailed);
        assert!(always.runs(&earlier, &[Some(1), Some(1)]));
        assert!(after.runs(&earlier, &[Some(0), Some(0)]));
        assert!(!after.runs(&earlier, &[Some(0), None]));
        assert!(!after.runs(&earlier, &[Some(0), Some(2)]));
        assert!(!unknown.runs(&earlier, &[Some(0), Some(0)]));
        assert!(fast.runs(&earlier, &[Some(0), None]));
        assert!(!fast.runs(&earlier, &[Some(0), Some(1)]));
        // In the script: names become the steps' status variables.
        let plan = GuestPlan {
            steps: vec![earlier[0].clone(), earlier[1].clone(), after, unknown],
            ..GuestPlan::default()
        };
        let s = plan.script(&uart(), &Token::fixed("kT"));
        assert!(
            s.contains("if [ \"$r0\" = 0 ] && [ \"$r1\" = 0 ]; then step 2 c2; else p skip 2; fi"),
            "{s}"
        );
        assert!(
            s.contains("if false; then step 3 c3; else p skip 3; fi"),
            "{s}"
        );
    }

    #[test]
    fn shell_steps_and_exec() {
        let plan = GuestPlan {
            steps: vec![Step::shell("sig", "insmod /m/x.ko\necho it's")],
            then: Then::Exec("uname -m; exit 3".into()),
            ..GuestPlan::default()
        };
        let s = plan.script(&uart(), &Token::fixed("kT"));
        assert!(
            s.contains("c0() (\ninsmod /m/x.ko\necho it's\n)\nstep 0 c0\n"),
            "{s}"
        );
        assert!(s.contains("--install -s /bin"), "{s}");
        assert!(s.contains("sh -c 'uname -m; exit 3' 2>&1 3>&- |"), "{s}");
        assert_eq!(
            plan.kernel_args(&uart()),
            [
                "quiet",
                "printk.devkmsg=on",
                "pty.legacy_count=0",
                "log_buf_len=1M"
            ]
        );
        let mine = GuestPlan {
            cmdline: vec!["log_buf_len=64k".into()],
            ..GuestPlan::default()
        };
        assert_eq!(
            mine.kernel_args(&Channel::SharedConsole),
            [
                "loglevel=1",
                "printk.devkmsg=on",
                "pty.legacy_count=0",
                "log_buf_len=64k"
            ]
        );
    }

    #[test]
    fn builtin_shell_steps_get_sysfs_without_installing_applets() {
        let plan = GuestPlan {
            steps: vec![Step::builtins("check", "cd -P /sys/bus && echo $PWD")],
            ..GuestPlan::default()
        };
        let s = plan.script(&uart(), &Token::fixed("kT"));
        assert!(!s.contains("--install"), "{s}");
        assert!(
            s.contains("[ -d /sys/bus ] || mount -t sysfs sysfs /sys\n"),
            "{s}"
        );
        assert!(
            s.contains("c0() (\ncd -P /sys/bus && echo $PWD\n)\nstep 0 c0\n"),
            "{s}"
        );
        let plain = GuestPlan::default().script(&uart(), &Token::fixed("kT"));
        assert!(!plain.contains("sysfs"), "{plain}");
    }

    #[test]
    fn inline_and_write_steps_start_no_process() {
        let plan = GuestPlan {
            steps: vec![
                Step::inline("check", "kmod_x() {\n\tlocal a=1\n}\nkmod_x"),
                Step::write("remove", "/sys/module/m/parameters/remove", "1", Some("m")),
            ],
            ..GuestPlan::default()
        };
        let s = plan.script(&uart(), &Token::fixed("kT"));
        // No subshell for the inline step; the write is the shell's own `echo`.
        assert!(
            s.contains("c0() {\nkmod_x() {\n\tlocal a=1\n}\nkmod_x\n}\nstep 0 c0\n"),
            "{s}"
        );
        assert!(s.contains("w() { echo \"$2\" >\"$1\"; }\n"), "{s}");
        assert!(
            s.contains("step 1 w /sys/module/m/parameters/remove 1\n"),
            "{s}"
        );
        // A write to sysfs mounts it, without installing applets.
        assert!(
            s.contains("[ -d /sys/bus ] || mount -t sysfs sysfs /sys\n"),
            "{s}"
        );
        assert!(!s.contains("--install"), "{s}");
        // The taint is read by sourcing the sysctl file (one read, no process), with `head`
        // only when that did not give a number.
        assert!(
            s.contains("command . /proc/sys/kernel/tainted 2>/tmp/t; read -r v </tmp/t;"),
            "{s}"
        );
        assert!(
            s.contains("*[!0-9]*) head -c 64 /proc/sys/kernel/tainted"),
            "{s}"
        );
        // An interactive boot runs the write too.
        let shell = GuestPlan {
            then: Then::Shell,
            ..plan
        };
        let s = shell.script(&uart(), &Token::fixed("kT"));
        assert!(s.contains("w() { echo"), "{s}");
    }

    #[test]
    fn a_report_step_writes_its_lines_onto_the_channel() {
        let plan = GuestPlan {
            steps: vec![
                Step::load(&m("a")),
                Step::report("devices", "out \"device x\""),
            ],
            ..GuestPlan::default()
        };
        let s = plan.script(&uart(), &Token::fixed("kT"));
        // Each line with the token and the step's number, as a relayed output line.
        assert!(
            s.contains("out() { printf '%s out %s %s\\n' \"$T\" $oi \"$1\" >&3; }\n"),
            "{s}"
        );
        // No output file and no taint read of its own; the log is synced as for any step.
        assert!(
            s.contains("\t\"$@\" >/dev/null 2>&1 </dev/null; r=$?\n\ts $i\n\tp done $i $r $v\n"),
            "{s}"
        );
        assert!(
            s.contains("c1() {\nout \"device x\"\n}\nreport 1 c1\n"),
            "{s}"
        );
        // A plan without one defines neither.
        let plain = GuestPlan {
            steps: vec![Step::load(&m("a"))],
            ..GuestPlan::default()
        };
        let s = plain.script(&uart(), &Token::fixed("kT"));
        assert!(!s.contains("report()") && !s.contains("out()"), "{s}");
        // An interactive boot prints the lines.
        let shell = GuestPlan {
            then: Then::Shell,
            ..plan
        };
        let s = shell.script(&uart(), &Token::fixed("kT"));
        assert!(s.contains("out() { printf '%s\\n' \"$1\"; }\n"), "{s}");
    }

    #[test]
    fn shared_console_frames_log_records() {
        let s =
            GuestPlan::test(&[ko("a")], true).script(&Channel::SharedConsole, &Token::fixed("kT"));
        assert!(s.contains("exec 3>&1\n"), "{s}");
        assert!(s.contains("do echo \"$T k $l\"; done >&3 &"), "{s}");
    }

    #[test]
    fn the_log_reader_keeps_one_open_file_and_starts_first() {
        let s = GuestPlan::test(&[ko("a")], true).script(&uart(), &Token::fixed("kT"));
        // dd starts again after a record was overwritten, on the same open file: it goes on
        // from the oldest record still there, never from the first one again.
        let open = s.find("exec 4</dev/kmsg\n").unwrap();
        let reader = s
            .find("( i=0; while [ $i -lt 1000 ]; do dd bs=65536 2>/dev/null; i=$((i + 1)); done ) <&4 >&3 &\n")
            .unwrap();
        let close = s.find("exec 4<&-\n").unwrap();
        let begin = s.find("s b\nt\np begin $v\n").unwrap();
        assert!(open < reader && reader < close && close < begin, "{s}");
        assert!(!s.contains("if=/dev/kmsg"), "{s}");
        let shared =
            GuestPlan::test(&[ko("a")], true).script(&Channel::SharedConsole, &Token::fixed("kT"));
        assert!(
            shared.contains("done ) <&4 | while IFS= read -r l; do echo \"$T k $l\"; done >&3 &\n"),
            "{shared}"
        );
    }

    #[test]
    fn interactive_shell_has_no_protocol() {
        let plan = GuestPlan {
            steps: vec![Step::load(&m("a"))],
            then: Then::Shell,
            ..GuestPlan::default()
        };
        let s = plan.script(&uart(), &Token::fixed("kT"));
        assert!(!s.contains("kT"), "{s}");
        assert!(
            s.contains("insmod /kmod/a.ko || echo 'cargo-kmod: a (load) failed'"),
            "{s}"
        );
        assert!(s.contains("setsid cttyhack sh -l"), "{s}");
        assert!(plan.kernel_args(&uart()).is_empty());
    }
}
