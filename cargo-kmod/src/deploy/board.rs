//! What the board says about itself before anything is copied: its kernel release and
//! machine, who is logged in (and whether `sudo -n` works), whether module loading is locked
//! down or signatures are enforced, its taint, which of the modules are loaded (and what
//! holds them), and which module tools it has.
//!
//! One script, one round trip; every answer is a tagged line. The answers are untrusted
//! data: they are parsed, never executed, and the release is checked before it becomes part
//! of a path.

use crate::kernel::Arch;

/// The tag of every line the board scripts print.
pub const TAG: &str = "@@kmod:";

/// A module of the deploy as the board has it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Loaded {
    pub name: String,
    /// Modules that use it (`/sys/module/NAME/holders/`).
    pub holders: Vec<String>,
}

/// The board's answers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Board {
    /// `uname -r`.
    pub release: String,
    /// `uname -m`.
    pub machine: String,
    pub uid: Option<u32>,
    /// Not root, but `sudo -n true` works.
    pub sudo: bool,
    /// `/proc/sys/kernel/modules_disabled` is `1`.
    pub modules_disabled: bool,
    /// `/sys/module/module/parameters/sig_enforce` is `Y`.
    pub sig_enforce: bool,
    /// The active mode of `/sys/kernel/security/lockdown`, when not `none`.
    pub lockdown: Option<String>,
    /// `/proc/sys/kernel/tainted`.
    pub taint: u64,
    /// Loaded modules (`/sys/module/NAME/initstate` exists).
    pub loaded: Vec<Loaded>,
    /// Built-in modules that show in `/sys/module`.
    pub builtin: Vec<String>,
    /// Which of `insmod rmmod modprobe depmod dmesg mktemp` are on `PATH`.
    pub tools: Vec<String>,
    /// A fresh private directory for the copies (`mktemp -d`), owned by the login user: only
    /// when what the board printed passed [`is_safe_tmp`], so nothing ever acts on a path
    /// that did not (neither the copies nor the clean-up after a failure).
    pub tmp: Option<String>,
    /// What `mktemp -d` printed, checked or not: for messages only, never a path.
    pub tmp_answer: String,
}

impl Board {
    /// The script that asks. It lists every module in `/sys/module` (loaded ones with their
    /// holders) with shell builtins only, so it costs the same on a board with many modules.
    pub fn script() -> String {
        format!(
            r#"echo "{TAG}release $(uname -r)"
echo "{TAG}machine $(uname -m)"
u=$(id -u)
echo "{TAG}uid $u"
if [ "$u" != 0 ] && sudo -n true >/dev/null 2>&1; then echo "{TAG}sudo yes"; fi
echo "{TAG}modules_disabled $(cat /proc/sys/kernel/modules_disabled 2>/dev/null)"
echo "{TAG}sig_enforce $(cat /sys/module/module/parameters/sig_enforce 2>/dev/null)"
echo "{TAG}lockdown $(cat /sys/kernel/security/lockdown 2>/dev/null)"
echo "{TAG}tainted $(cat /proc/sys/kernel/tainted 2>/dev/null)"
for s in /sys/module/*; do
	m=${{s##*/}}
	if [ -e "$s/initstate" ]; then
		echo "{TAG}loaded $m"
		for h in "$s/holders/"*; do [ -e "$h" ] && echo "{TAG}holder $m ${{h##*/}}"; done
	elif [ -d "$s" ]; then
		echo "{TAG}builtin $m"
	fi
done
for t in insmod rmmod modprobe depmod dmesg mktemp; do
	command -v "$t" >/dev/null 2>&1 && echo "{TAG}tool $t"
done
echo "{TAG}tmp $(umask 077; mktemp -d "${{TMPDIR:-/tmp}}/cargo-kmod.XXXXXX" 2>/dev/null)"
echo "{TAG}end"
"#
        )
    }

    /// Read the answers; `None` when the script did not run to its end.
    pub fn parse<S: AsRef<str>>(lines: &[S]) -> Option<Board> {
        let mut b = Board::default();
        let mut ended = false;
        for line in lines {
            let Some(rest) = line.as_ref().strip_prefix(TAG) else {
                continue;
            };
            let (key, value) = rest.split_once(' ').unwrap_or((rest, ""));
            let value = value.trim();
            match key {
                "release" => b.release = value.to_string(),
                "machine" => b.machine = value.to_string(),
                "uid" => b.uid = value.parse().ok(),
                "sudo" => b.sudo = value == "yes",
                "modules_disabled" => b.modules_disabled = value == "1",
                "sig_enforce" => b.sig_enforce = value == "Y" || value == "1",
                "lockdown" => {
                    // `none [integrity] confidentiality`: the bracketed word is active.
                    b.lockdown = value
                        .split_whitespace()
                        .find_map(|w| w.strip_prefix('[')?.strip_suffix(']'))
                        .filter(|m| *m != "none")
                        .map(str::to_string);
                }
                "tainted" => b.taint = value.parse().unwrap_or(0),
                "loaded" if !value.is_empty() => b.loaded.push(Loaded {
                    name: value.to_string(),
                    holders: vec![],
                }),
                "holder" => {
                    if let Some((m, h)) = value.split_once(' ') {
                        if let Some(l) = b.loaded.iter_mut().find(|l| l.name == m) {
                            l.holders.push(h.trim().to_string());
                        }
                    }
                }
                "builtin" => b.builtin.push(value.to_string()),
                "tool" => b.tools.push(value.to_string()),
                "tmp" => {
                    b.tmp_answer = value.to_string();
                    b.tmp = Some(value.to_string()).filter(|v| is_safe_tmp(v));
                }
                "end" => ended = true,
                _ => {}
            }
        }
        (ended && !b.release.is_empty()).then_some(b)
    }

    /// The arch of `uname -m`, if cargo-kmod builds for it.
    pub fn arch(&self) -> Option<Arch> {
        Arch::from_uname(&self.machine)
    }

    /// Whether the kernel refuses unsigned modules (`sig_enforce`, or any lockdown).
    pub fn enforces_signatures(&self) -> bool {
        self.sig_enforce || self.lockdown.is_some()
    }

    /// Whether root commands need `sudo -n`.
    pub fn needs_sudo(&self) -> bool {
        self.uid != Some(0)
    }

    pub fn has(&self, tool: &str) -> bool {
        self.tools.iter().any(|t| t == tool)
    }

    pub fn loaded(&self, name: &str) -> Option<&Loaded> {
        self.loaded.iter().find(|l| l.name == name)
    }

    /// The release as a path component (`/lib/modules/<release>`), or `None` when it is not
    /// one a kernel would have.
    pub fn release_component(&self) -> Option<&str> {
        let r = self.release.as_str();
        let ok = !r.is_empty()
            && r.len() <= 64
            && r != "."
            && r != ".."
            && r.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._+-~".contains(c));
        ok.then_some(r)
    }

    /// One line for the status output: `aarch64, linux 7.2.13, signatures enforced`.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{}, linux {}",
            crate::text::escape(&self.machine),
            crate::text::escape(&self.release)
        );
        if self.modules_disabled {
            s.push_str(", module loading disabled");
        } else if let Some(l) = &self.lockdown {
            s.push_str(&format!(", lockdown `{}`", crate::text::escape(l)));
        } else if self.sig_enforce {
            s.push_str(", signatures enforced");
        }
        if self.needs_sudo() {
            s.push_str(", via sudo");
        }
        s
    }
}

/// `mktemp -d`'s answer, trusted as a path only when it looks like one the script's `mktemp`
/// makes: absolute, no `..`, only `[A-Za-z0-9/._-]`, and a `cargo-kmod.` component.
pub fn is_safe_tmp(d: &str) -> bool {
    d.starts_with('/')
        && !d.split('/').any(|c| c == ".." || c == ".")
        && !d.contains("..")
        && d.len() < 200
        && d.split('/')
            .any(|c| c.starts_with("cargo-kmod.") && c.len() > "cargo-kmod.".len())
        && d.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_parsed() {
        let lines = [
            "motd text @@kmod:release fake",
            "@@kmod:release 7.2.13",
            "@@kmod:machine aarch64",
            "@@kmod:uid 0",
            "@@kmod:modules_disabled 0",
            "@@kmod:sig_enforce Y",
            "@@kmod:lockdown ",
            "@@kmod:tainted 4096",
            "@@kmod:loaded hello",
            "@@kmod:holder hello user_mod",
            "@@kmod:builtin printk",
            "@@kmod:tool insmod",
            "@@kmod:tool rmmod",
            "@@kmod:tmp /tmp/cargo-kmod.Ab12Cd",
            "@@kmod:end",
        ];
        let b = Board::parse(&lines).unwrap();
        assert_eq!(b.release, "7.2.13");
        assert_eq!(b.arch(), Some(Arch::Arm64));
        assert!(b.sig_enforce && b.enforces_signatures() && !b.needs_sudo());
        assert_eq!(b.taint, 4096);
        assert_eq!(
            b.loaded,
            [Loaded {
                name: "hello".into(),
                holders: vec!["user_mod".into()],
            }]
        );
        assert_eq!(b.builtin, ["printk"]);
        assert!(b.has("rmmod") && !b.has("modprobe"));
        assert_eq!(b.tmp.as_deref(), Some("/tmp/cargo-kmod.Ab12Cd"));
        assert_eq!(b.summary(), "aarch64, linux 7.2.13, signatures enforced");
        assert!(Board::parse(&lines[..5]).is_none(), "no end line");
    }

    /// A temporary directory that fails the check is never a path: not for the copies, not
    /// for the clean-up. Only the message shows what the board printed.
    #[test]
    fn a_hostile_tmp_is_no_path() {
        for hostile in [
            "/tmp/cargo-kmod.x/../../etc",
            "/",
            "/tmp/cargo-kmod.",
            "tmp/cargo-kmod.x",
            "/tmp/cargo-kmod.x/./..",
            "/tmp/cargo-kmod.$(reboot)",
            "/tmp/other",
        ] {
            let b = Board::parse(&[
                "@@kmod:release 7.2.13".to_string(),
                format!("@@kmod:tmp {hostile}"),
                "@@kmod:end".to_string(),
            ])
            .unwrap();
            assert_eq!(b.tmp, None, "{hostile}");
            assert_eq!(b.tmp_answer, hostile);
        }
    }

    #[test]
    fn lockdown_mode() {
        let b = Board::parse(&[
            "@@kmod:release 6.1",
            "@@kmod:lockdown none [integrity] confidentiality",
            "@@kmod:end",
        ])
        .unwrap();
        assert_eq!(b.lockdown.as_deref(), Some("integrity"));
        assert!(b.enforces_signatures());
        let b = Board::parse(&[
            "@@kmod:release 6.1",
            "@@kmod:lockdown [none] integrity",
            "@@kmod:end",
        ])
        .unwrap();
        assert!(!b.enforces_signatures());
    }

    #[test]
    fn release_is_checked_before_it_becomes_a_path() {
        let with = |r: &str| Board {
            release: r.into(),
            ..Board::default()
        };
        assert_eq!(
            with("7.2.13-arm64").release_component(),
            Some("7.2.13-arm64")
        );
        assert_eq!(
            with("6.1.0-rpi7-rpi-v8+").release_component(),
            Some("6.1.0-rpi7-rpi-v8+")
        );
        assert_eq!(with("../../etc").release_component(), None);
        assert_eq!(with("..").release_component(), None);
        assert_eq!(with("a/b").release_component(), None);
        assert_eq!(with("a b").release_component(), None);
    }

    #[test]
    fn tmp_dirs_are_checked() {
        assert!(is_safe_tmp("/tmp/cargo-kmod.Ab12Cd"));
        assert!(is_safe_tmp("/var/tmp/cargo-kmod.Ab12Cd"));
        assert!(!is_safe_tmp("/tmp/cargo-kmod.x/../../etc"));
        assert!(!is_safe_tmp("tmp/cargo-kmod.x"));
        assert!(!is_safe_tmp("/tmp/cargo-kmod.$(x)"));
        assert!(!is_safe_tmp("/tmp/other"));
    }

    #[test]
    fn script_lists_modules_with_builtins() {
        let s = Board::script();
        assert!(s.contains("for s in /sys/module/*; do"), "{s}");
        assert!(s.contains("m=${s##*/}"), "{s}");
    }
}
