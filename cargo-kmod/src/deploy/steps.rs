//! The board's side of a deploy: one script that unloads the old versions (dependents
//! first), optionally installs the new files, loads the new ones (dependencies first), and
//! after every step prints what the step's command said and the kernel-log lines it caused,
//! each line tagged, then the step's exit status and the kernel's taint:
//!
//! ```text
//! @@kmod:step load hello
//! @@kmod:out insmod: can't insert '/tmp/cargo-kmod.x1/hello.ko': No such device
//! @@kmod:log hello: refusing to load
//! @@kmod:done load hello 1 4096
//! @@kmod:end
//! ```
//!
//! The board's log is not cleared (it is the user's): the script snapshots `dmesg` before and
//! after each step (in a work directory of its own, made by `mktemp -d` as root) and prints
//! the lines after the old end. When the ring buffer wrapped
//! during a step (its first line changed), the new lines are those after the last line seen
//! before, and if even that line is gone the step says `@@kmod:lost` and the judge fails it.
//!
//! Every line a board prints is data: a tagged line is only trusted at the start of a line,
//! and everything the kernel or a command printed arrives behind an `out`/`log` tag.

use crate::deploy::board::TAG;
use crate::guest::judge::{self, StepRecord};
use crate::process::shell_word as quote;

/// What the step script does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StepPlan {
    /// The board's temporary directory holding the copied `.ko` files (`<dir>/<name>.ko`),
    /// removed at the end; `None` when nothing is loaded from files.
    pub dir: Option<String>,
    /// Module names to `rmmod`, in this order (dependents first).
    pub unload: Vec<String>,
    /// `--install`: the board's release (already checked to be a path component); the
    /// files go to `/lib/modules/<release>/updates/` and are loaded with `modprobe`.
    pub install: Option<String>,
    /// Modules to load, in this order (dependencies first).
    pub load: Vec<Load>,
}

/// One module to load.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Load {
    pub name: String,
    /// `name=value` module parameters.
    pub params: Vec<String>,
}

const FUNCTIONS: &str = r#"tag() {
	while IFS= read -r l || [ -n "$l" ]; do printf '%s%s\n' "$1" "$l"; done <"$2"
}
snap() {
	dmesg >"$w/new" 2>/dev/null
	g=; read -r g <"$w/new"
}
step() {
	k=$1; n=$2; shift 2
	echo "@@kmod:step $k $n"
	"$@" >"$w/out" 2>&1; rc=$?
	tag '@@kmod:out ' "$w/out"
	snap
	if [ "$c" -eq 0 ]; then
		cp "$w/new" "$w/log"
	elif [ "$g" = "$f" ]; then
		tail -n +$((c + 1)) "$w/new" >"$w/log"
	else
		a=$(tail -n 1 "$w/old")
		i=$(grep -nxF -e "$a" "$w/new" | tail -n 1 | cut -d: -f1)
		if [ -n "$i" ]; then
			tail -n +$((i + 1)) "$w/new" >"$w/log"
		else
			echo "@@kmod:lost"
			cp "$w/new" "$w/log"
		fi
	fi
	tag '@@kmod:log ' "$w/log"
	mv -f "$w/new" "$w/old"; f=$g; c=$(wc -l <"$w/old")
	t=$(cat /proc/sys/kernel/tainted)
	echo "@@kmod:done $k $n $rc $t"
	return $rc
}
fin() {
	rm -rf "$w" ${d:+"$d"}
	echo "@@kmod:end"
}
"#;

impl StepPlan {
    /// The script (run by [`crate::deploy::ssh::Session::stream`], as root).
    pub fn script(&self) -> String {
        let mut s = match &self.dir {
            Some(d) => format!("d={}\n", quote(d)),
            None => "d=\n".to_string(),
        };
        s.push_str("w=$(mktemp -d \"${TMPDIR:-/tmp}/cargo-kmod-log.XXXXXX\") || { echo \"@@kmod:end\"; return 1; }\n");
        s.push_str(FUNCTIONS);
        s.push_str("snap; mv -f \"$w/new\" \"$w/old\"; f=$g; c=$(wc -l <\"$w/old\")\n");
        for name in &self.unload {
            s.push_str(&format!(
                "step unload {0} rmmod {0} || {{ fin; return 1; }}\n",
                quote(name)
            ));
        }
        if let Some(release) = &self.install {
            let names: Vec<String> = self.load.iter().map(|l| quote(&l.name)).collect();
            s.push_str(&format!(
                r#"inst() {{
	m=/lib/modules/{release}/updates
	mkdir -p "$m" || return 1
	for n in {names}; do
		rm -f "$m/$n.ko.gz" "$m/$n.ko.xz" "$m/$n.ko.zst"
		cp "$d/$n.ko" "$m/.$n.ko.cargo-kmod" && mv -f "$m/.$n.ko.cargo-kmod" "$m/$n.ko" || return 1
	done
	depmod -a {release}
}}
step install - inst || {{ fin; return 1; }}
"#,
                release = quote(release),
                names = names.join(" ")
            ));
        }
        for l in &self.load {
            let mut cmd = match self.install {
                Some(_) => vec!["modprobe".to_string(), quote(&l.name)],
                None => vec!["insmod".into(), format!("\"$d/\"{}.ko", quote(&l.name))],
            };
            cmd.extend(l.params.iter().map(|p| quote(p)));
            s.push_str(&format!(
                "step load {} {} || {{ fin; return 1; }}\n",
                quote(&l.name),
                cmd.join(" ")
            ));
        }
        s.push_str("fin\n");
        s
    }
}

/// One step as the board reported it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Step {
    /// `unload`, `install` or `load`.
    pub kind: String,
    /// The module (`-` for the install step).
    pub module: String,
    /// What the step's command printed.
    pub out: Vec<String>,
    /// The kernel-log lines the step caused.
    pub log: Vec<String>,
    /// Exit status; `None` when the board never finished the step.
    pub status: Option<i32>,
    /// `/proc/sys/kernel/tainted` after the step.
    pub taint: Option<u64>,
}

/// The steps as the board reported them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Transcript {
    pub steps: Vec<Step>,
    /// Indices of steps whose kernel-log lines were partly lost (the buffer wrapped).
    pub lost: Vec<usize>,
    /// `@@kmod:end` was seen.
    pub finished: bool,
}

/// One parsed line of the step script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    Begin {
        kind: String,
        module: String,
    },
    Out(String),
    Log(String),
    Lost,
    Done {
        status: Option<i32>,
        taint: Option<u64>,
    },
    End,
    /// Anything else (a login banner): ignored.
    Other,
}

impl Line {
    /// A tag counts only at the start of a line.
    pub fn parse(line: &str) -> Line {
        let Some(rest) = line.strip_prefix(TAG) else {
            return Line::Other;
        };
        let (word, arg) = rest.split_once(' ').unwrap_or((rest, ""));
        match word {
            "step" => {
                let (kind, module) = arg.split_once(' ').unwrap_or((arg, ""));
                Line::Begin {
                    kind: kind.to_string(),
                    module: module.trim().to_string(),
                }
            }
            "out" => Line::Out(arg.to_string()),
            "log" => Line::Log(arg.to_string()),
            "lost" => Line::Lost,
            "done" => {
                let f: Vec<&str> = arg.split_whitespace().collect();
                match f.as_slice() {
                    [_, _, rc, taint, ..] => Line::Done {
                        status: rc.parse().ok(),
                        taint: taint.parse().ok(),
                    },
                    _ => Line::Done {
                        status: None,
                        taint: None,
                    },
                }
            }
            "end" => Line::End,
            _ => Line::Other,
        }
    }
}

impl Transcript {
    /// Feed one line; returns what it was.
    pub fn push(&mut self, line: &str) -> Line {
        let parsed = Line::parse(line);
        match &parsed {
            Line::Begin { kind, module } => self.steps.push(Step {
                kind: kind.clone(),
                module: module.clone(),
                ..Step::default()
            }),
            Line::Out(l) => {
                if let Some(s) = self.open() {
                    s.out.push(l.clone());
                }
            }
            Line::Log(l) => {
                if let Some(s) = self.open() {
                    s.log.push(l.clone());
                }
            }
            Line::Lost => {
                if !self.steps.is_empty() {
                    self.lost.push(self.steps.len() - 1);
                }
            }
            Line::Done { status, taint } => {
                if let Some(s) = self.open() {
                    // A step that ran always reports a status; a garbled one counts as failed.
                    s.status = Some(status.unwrap_or(-1));
                    s.taint = *taint;
                }
            }
            Line::End => self.finished = true,
            Line::Other => {}
        }
        parsed
    }

    pub fn parse<S: AsRef<str>>(lines: &[S]) -> Transcript {
        let mut t = Transcript::default();
        for l in lines {
            t.push(l.as_ref());
        }
        t
    }

    fn open(&mut self) -> Option<&mut Step> {
        self.steps.last_mut().filter(|s| s.status.is_none())
    }
}

/// What went wrong in a step: `cargo kmod test`'s rules, by the same judge
/// ([`judge::problems`]): the command failed, the kernel reported trouble (oops, BUG, WARN, a
/// Rust panic), the kernel became tainted beyond out-of-tree, unsigned and test, part of the
/// step's log was lost, or a module with KUnit suites did not report them. Empty means the
/// step is good. `taint_before` is the taint before the step, `load` the program that loads
/// (`insmod` or `modprobe`), `kunit_suites` the loaded module's suite count.
pub fn problems(
    step: &Step,
    taint_before: u64,
    lost: bool,
    load: &str,
    kunit_suites: usize,
) -> Vec<String> {
    let Some(status) = step.status else {
        return vec!["the board never finished this step (the connection ended)".to_string()];
    };
    let program = match step.kind.as_str() {
        "unload" => "rmmod",
        "install" => "install",
        _ => load,
    };
    judge::problems(&StepRecord {
        name: format!("{} ({})", step.module, step.kind),
        program: program.to_string(),
        out: step.out.clone(),
        log: step.log.clone(),
        status,
        taint_before,
        taint_after: step.taint.unwrap_or(taint_before),
        lost: u64::from(lost),
        kunit_suites: if step.kind == "load" { kunit_suites } else { 0 },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_unloads_installs_and_loads_in_order() {
        let plan = StepPlan {
            dir: Some("/tmp/cargo-kmod.a1".into()),
            unload: vec!["user".into(), "provider".into()],
            install: None,
            load: vec![
                Load {
                    name: "provider".into(),
                    params: vec![],
                },
                Load {
                    name: "user".into(),
                    params: vec!["greeting=hi there".into()],
                },
            ],
        };
        let s = plan.script();
        assert!(s.starts_with("d=/tmp/cargo-kmod.a1\n"), "{s}");
        let at = |needle: &str| s.find(needle).unwrap_or_else(|| panic!("{needle} in {s}"));
        let u1 = at("step unload user rmmod user || { fin; return 1; }");
        let u2 = at("step unload provider rmmod provider");
        let l1 = at("step load provider insmod \"$d/\"provider.ko ||");
        let l2 = at("step load user insmod \"$d/\"user.ko 'greeting=hi there' ||");
        assert!(u1 < u2 && u2 < l1 && l1 < l2);
        assert!(s.ends_with("fin\n"));

        let install = StepPlan {
            install: Some("7.2.13".into()),
            ..plan
        };
        let s = install.script();
        assert!(s.contains("m=/lib/modules/7.2.13/updates"), "{s}");
        assert!(s.contains("for n in provider user; do"), "{s}");
        assert!(s.contains("depmod -a 7.2.13"), "{s}");
        assert!(
            s.contains("step load user modprobe user 'greeting=hi there'"),
            "{s}"
        );
    }

    #[test]
    fn transcript_trusts_tags_only_at_line_start() {
        let t = Transcript::parse(&[
            "Welcome to the board",
            "@@kmod:step load hello",
            "@@kmod:log hello: @@kmod:done load hello 0 0",
            "@@kmod:log @@kmod:end",
            "@@kmod:done load hello 0 4096",
            "@@kmod:step load other",
            "@@kmod:out insmod: can't insert 'other.ko': No such device",
            "@@kmod:lost",
            "@@kmod:done load other 1 4096",
            "@@kmod:end",
        ]);
        assert!(t.finished);
        assert_eq!(t.steps.len(), 2);
        assert_eq!(
            t.steps[0].log,
            ["hello: @@kmod:done load hello 0 0", "@@kmod:end"]
        );
        assert_eq!(t.steps[0].status, Some(0));
        assert_eq!(t.steps[1].status, Some(1));
        assert_eq!(t.lost, [1]);
    }

    #[test]
    fn problems_follow_the_test_rules() {
        let mut t = Transcript::parse(&[
            "@@kmod:step load m",
            "@@kmod:out insmod: can't insert '/tmp/x/m.ko': No such device",
            "@@kmod:log m: refusing to load",
            "@@kmod:done load m 19 4096",
        ]);
        assert_eq!(
            problems(&t.steps[0], 0, false, "insmod", 0),
            [
                "`insmod` exited with status 19",
                "insmod: can't insert '/tmp/x/m.ko': No such device",
                "m: refusing to load",
            ]
        );
        t = Transcript::parse(&[
            "@@kmod:step load m",
            "@@kmod:log WARNING: CPU: 0 PID: 1 at m.rs:3",
            "@@kmod:done load m 0 4608",
        ]);
        let p = problems(&t.steps[0], 4096, true, "modprobe", 0);
        assert_eq!(
            p[..2],
            [
                "the kernel became tainted: W (kernel issued a warning)",
                "WARNING: CPU: 0 PID: 1 at m.rs:3",
            ]
        );
        assert!(
            p[2].starts_with("1 kernel log record of this step was lost"),
            "{p:?}"
        );
        t = Transcript::parse(&["@@kmod:step unload m"]);
        assert_eq!(
            problems(&t.steps[0], 0, false, "insmod", 0),
            ["the board never finished this step (the connection ended)"]
        );
        // Out-of-tree and unsigned taints are what every deployed module adds.
        t = Transcript::parse(&["@@kmod:step load m", "@@kmod:done load m 0 12288"]);
        assert!(problems(&t.steps[0], 0, false, "insmod", 0).is_empty());
        // A module with KUnit suites must report them.
        assert!(problems(&t.steps[0], 0, false, "insmod", 1)[0].contains("KUnit"));
    }
}
