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
use crate::qemu::guest::{self, quote, Step};

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

/// What went wrong in a step, by `cargo kmod test`'s rules: the command failed, the kernel
/// reported trouble (oops, BUG, WARN, a Rust panic), or the kernel became tainted (beyond
/// out-of-tree, unsigned and test). Empty means the step is good. `taint_before` is the taint
/// before the step.
pub fn problems(step: &Step, taint_before: u64, lost: bool) -> Vec<String> {
    let mut p = Vec::new();
    let Some(rc) = step.status else {
        p.push("the board never finished this step (the connection ended)".to_string());
        return p;
    };
    if rc != 0 {
        let cmd = match step.kind.as_str() {
            "unload" => "rmmod",
            "install" => "install",
            _ => "insmod",
        };
        let said: Vec<&str> = step
            .out
            .iter()
            .map(|l| l.trim())
            .filter(|l| !l.is_empty())
            .collect();
        if said.is_empty() {
            p.push(format!("`{cmd}` exited with status {rc}"));
        } else {
            p.push(format!(
                "`{cmd}` exited with status {rc}: {}",
                said.join("; ")
            ));
        }
    }
    for l in step.log.iter().filter(|l| guest::is_kernel_trouble(l)) {
        p.push(format!("the kernel reported: {}", l.trim()));
    }
    if let Some(after) = step.taint {
        let new = guest::new_taints(taint_before, after);
        if !new.is_empty() {
            p.push(format!("the kernel became tainted: {}", new.join(", ")));
        }
    }
    if lost {
        p.push("kernel-log lines of this step were lost: the log buffer wrapped".to_string());
    }
    p
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
            "@@kmod:done load m 1 4096",
        ]);
        assert_eq!(
            problems(&t.steps[0], 0, false),
            ["`insmod` exited with status 1: insmod: can't insert '/tmp/x/m.ko': No such device"]
        );
        t = Transcript::parse(&[
            "@@kmod:step load m",
            "@@kmod:log WARNING: CPU: 0 PID: 1 at m.rs:3",
            "@@kmod:done load m 0 4608",
        ]);
        assert_eq!(
            problems(&t.steps[0], 4096, true),
            [
                "the kernel reported: WARNING: CPU: 0 PID: 1 at m.rs:3",
                "the kernel became tainted: W (kernel issued a warning)",
                "kernel-log lines of this step were lost: the log buffer wrapped",
            ]
        );
        t = Transcript::parse(&["@@kmod:step unload m"]);
        assert_eq!(
            problems(&t.steps[0], 0, false),
            ["the board never finished this step (the connection ended)"]
        );
        // Out-of-tree and unsigned taints are what every deployed module adds.
        t = Transcript::parse(&["@@kmod:step load m", "@@kmod:done load m 0 12288"]);
        assert!(problems(&t.steps[0], 0, false).is_empty());
    }
}
