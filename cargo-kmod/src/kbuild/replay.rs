//! kbuild's check command, saved by the check goal and run again without make.
//!
//! The recipe of a module's check goal (`templates/kbuild/module.Kbuild`) first writes, in
//! the module's directory, `.kmod-check[-clippy].argv` (the rustc command kbuild runs, as
//! the shell would read it, before the extra flags; the crate root; the directory it runs
//! in) and `.kmod-check[-clippy].env` (the environment, `env -0`). Most of a check through
//! make is make reading the kernel's Makefiles; while nothing but the crate's sources
//! changed (the caller's fingerprint says so), running that command again is the same check.
//!
//! The command is split into words as the shell would (quotes, escapes); it is never given
//! to a shell. Its leading `NAME=value` words are environment, as the shell reads them.

use std::path::{Path, PathBuf};

use anyhow::Result;
use xshell::cmd;

use crate::shell::Shell;

/// A saved check command.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SavedCheck {
    pub program: String,
    pub args: Vec<String>,
    /// The crate root, the last argument.
    pub source: String,
    /// The directory kbuild ran it in (the tree's object directory).
    pub cwd: PathBuf,
    /// The whole environment, make's own jobserver variables removed.
    pub env: Vec<(String, String)>,
}

/// The saved command of the module directory `dir` (`clippy`: the one `CLIPPY=1` saved), or
/// `None` when there is none or it cannot be read back exactly.
pub fn saved(dir: &Path, clippy: bool) -> Option<SavedCheck> {
    let stem = dir.join(if clippy {
        ".kmod-check-clippy"
    } else {
        ".kmod-check"
    });
    let argv = std::fs::read_to_string(stem.with_extension("argv")).ok()?;
    let env = std::fs::read(stem.with_extension("env")).ok()?;
    parse(&argv, &env)
}

/// The compiler command a kbuild `.cmd` file saved for `target` (`savedcmd_<target> := ...`):
/// the first command of it (objtool may follow after `;`), make's `$$` undone, as words in
/// the tree's directory `cwd` with its leading assignments as environment. `None` when it
/// is not one plain command.
pub fn saved_in_cmd_file(text: &str, target: &str, cwd: &Path) -> Option<SavedCheck> {
    let prefix = format!("savedcmd_{target} :=");
    let line = text.lines().find_map(|l| l.strip_prefix(&prefix))?;
    let line = line.replace("$$", "$");
    let mut end = line.len();
    let mut single = false;
    for (i, c) in line.char_indices() {
        match c {
            '\'' => single = !single,
            ';' if !single => {
                end = i;
                break;
            }
            _ => {}
        }
    }
    let command = line[..end].trim();
    let mut s = parse(&format!("{command}\n-\n{}\n", cwd.display()), b"")?;
    s.source = s.args.pop()?;
    // The crate root is the one argument naming a `.rs` file.
    if let Some(i) = s.args.iter().position(|a| a.ends_with(".rs")) {
        s.args
            .push(std::mem::replace(&mut s.source, s.args[i].clone()));
        s.args.remove(i);
    }
    Some(s)
}

/// Variables of make's that must not reach a compiler run outside make: rustc would try to
/// join a jobserver whose descriptors are gone and warn about it.
const MAKE_ONLY: &[&str] = &["MAKEFLAGS", "MFLAGS", "CARGO_MAKEFLAGS", "MAKELEVEL"];

fn parse(argv: &str, env: &[u8]) -> Option<SavedCheck> {
    let mut lines = argv.lines();
    let (command, source, cwd) = (lines.next()?, lines.next()?, lines.next()?);
    if lines.next().is_some() || source.is_empty() || cwd.is_empty() {
        return None;
    }
    let mut env: Vec<(String, String)> = env
        .split(|b| *b == 0)
        .filter(|v| !v.is_empty())
        .map(|v| {
            let v = std::str::from_utf8(v).ok()?;
            let (k, v) = v.split_once('=')?;
            Some((k.to_string(), v.to_string()))
        })
        .collect::<Option<_>>()?;
    env.retain(|(k, _)| !MAKE_ONLY.contains(&k.as_str()));
    if !plain_words(command) {
        return None;
    }
    let mut words = shlex::split(command)?.into_iter().peekable();
    // `NAME=value` words before the program are its environment.
    while let Some((k, v)) = words.peek().and_then(|w| assignment(w)) {
        env.retain(|(e, _)| *e != k);
        env.push((k, v));
        words.next();
    }
    let program = words.next()?;
    let args: Vec<String> = words.collect();
    Some(SavedCheck {
        program,
        args,
        source: source.to_string(),
        cwd: PathBuf::from(cwd),
        env,
    })
}

/// Whether the shell would read `command` as one simple command of literal words: no
/// unquoted operator (`;`, `|`, `&`, redirections, parentheses) and no expansion (`$`,
/// backquotes, globs) outside single quotes.
fn plain_words(command: &str) -> bool {
    let mut chars = command.chars();
    let (mut single, mut double) = (false, false);
    while let Some(c) = chars.next() {
        match c {
            '\'' if !double => single = !single,
            _ if single => {}
            '"' => double = !double,
            '\\' => {
                chars.next();
            }
            '$' | '`' => return false,
            ';' | '|' | '&' | '<' | '>' | '(' | ')' | '*' | '?' | '[' | '~' | '\n' if !double => {
                return false
            }
            _ => {}
        }
    }
    !single && !double
}

/// `NAME=value` with a shell variable name, as the shell reads an assignment word.
fn assignment(word: &str) -> Option<(String, String)> {
    let (k, v) = word.split_once('=')?;
    let mut chars = k.chars();
    let first = chars.next()?;
    ((first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_'))
    .then(|| (k.to_string(), v.to_string()))
}

impl SavedCheck {
    /// Whether every file the command names as a crate to link (`--extern name=path`) is
    /// still there: a proc macro or dependency crate removed since means the plan must be
    /// written again.
    pub fn externs_exist(&self) -> bool {
        let mut it = self.args.iter();
        while let Some(a) = it.next() {
            let value = if a == "--extern" {
                it.next().map(String::as_str)
            } else {
                a.strip_prefix("--extern=")
            };
            if let Some((_, path)) = value.and_then(|v| v.split_once('=')) {
                let p = Path::new(path);
                let p = if p.is_absolute() {
                    p.to_path_buf()
                } else {
                    self.cwd.join(p)
                };
                if !p.exists() {
                    return false;
                }
            }
        }
        true
    }

    /// The dep-info file the command writes (`--emit=dep-info=PATH`), relative paths taken
    /// from its directory.
    pub fn dep_info(&self) -> Option<PathBuf> {
        let mut it = self.args.iter();
        while let Some(a) = it.next() {
            let emit = if a == "--emit" {
                it.next().map(String::as_str)
            } else {
                a.strip_prefix("--emit=")
            };
            if let Some(p) =
                emit.and_then(|e| e.split(',').find_map(|k| k.strip_prefix("dep-info=")))
            {
                return Some(self.cwd.join(p));
            }
        }
        None
    }

    /// The command's arguments for rustdoc: what only the compiler takes (`--emit`,
    /// `--out-dir`, dep-info options, path remapping) and clippy's lints left out.
    pub fn rustdoc_args(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut it = self.args.iter();
        while let Some(a) = it.next() {
            if a == "--out-dir" || a == "--emit" {
                it.next();
                continue;
            }
            let lint = ["-W", "-A", "-D"]
                .iter()
                .any(|p| a.strip_prefix(p).is_some_and(|l| l.starts_with("clippy::")));
            if lint
                || a.starts_with("--emit=")
                || a.starts_with("--out-dir=")
                || a.starts_with("--remap-path")
                || a.starts_with("-Zbinary_dep_depinfo")
            {
                continue;
            }
            out.push(a.clone());
        }
        out
    }

    /// `rustdoc` beside the compiler the command runs.
    pub fn rustdoc(&self) -> String {
        match self.program.strip_suffix("rustc") {
            Some(dir) => format!("{dir}rustdoc"),
            None => "rustdoc".to_string(),
        }
    }

    /// Run `program args` in the command's directory with its environment (only that
    /// environment unless `inherit`); output lines go to `log`.
    pub fn run_other(
        &self,
        shell: &Shell,
        program: &str,
        args: &[String],
        inherit: bool,
        log: &Path,
    ) -> Result<()> {
        let sh = xshell::Shell::new()?;
        sh.change_dir(&self.cwd);
        let mut c = cmd!(sh, "{program} {args...}");
        if !inherit {
            c = c.env_clear();
        }
        for (k, v) in &self.env {
            c = c.env(k, v);
        }
        let _ = std::fs::remove_file(log);
        crate::process::run_logged(shell, c, log, |_| {})
    }

    /// Run the command with `flags` before the crate root, in its directory and with its
    /// environment only; its output lines go to `log` and are returned.
    pub fn run(&self, shell: &Shell, flags: &[String], log: &Path) -> Result<super::Checked> {
        let sh = xshell::Shell::new()?;
        sh.change_dir(&self.cwd);
        let program = &self.program;
        let args = &self.args;
        let source = &self.source;
        let mut c = cmd!(sh, "{program} {args...} {flags...} {source}").env_clear();
        for (k, v) in &self.env {
            c = c.env(k, v);
        }
        let _ = std::fs::remove_file(log);
        let mut lines = Vec::new();
        let result = crate::process::run_logged(shell, c, log, |l| lines.push(l.to_string()));
        Ok(super::Checked {
            lines,
            failure: result.err(),
        })
    }
}

/// The files a dep-info file (rustc's `--emit=dep-info`, make syntax) lists: the crate's
/// sources and what `include!` read, with the directory relative paths start from.
pub fn dep_info_files(text: &str, base: &Path) -> Vec<PathBuf> {
    let mut out = std::collections::BTreeSet::new();
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let Some((_, deps)) = split_rule(line) else {
            continue;
        };
        let mut word = String::new();
        let mut chars = deps.chars().peekable();
        let mut push = |w: &mut String| {
            if !w.is_empty() {
                out.insert(base.join(std::mem::take(w)));
            }
        };
        while let Some(c) = chars.next() {
            match c {
                '\\' if chars.peek() == Some(&' ') => {
                    word.push(' ');
                    chars.next();
                }
                ' ' | '\t' => push(&mut word),
                c => word.push(c),
            }
        }
        push(&mut word);
    }
    out.into_iter().collect()
}

/// `target: deps` at the first `:` not escaped and followed by a blank or the line's end.
fn split_rule(line: &str) -> Option<(&str, &str)> {
    let bytes = line.as_bytes();
    (0..bytes.len()).find_map(|i| {
        (bytes[i] == b':'
            && (i == 0 || bytes[i - 1] != b'\\')
            && bytes.get(i + 1).is_none_or(|b| *b == b' ' || *b == b'\t'))
        .then(|| (&line[..i], &line[i + 1..]))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_command_reads_back_as_words_with_its_environment() {
        let argv = "OBJTREE=/k RUST_MODFILE=hello/hello rustc --edition=2021 -Zcrate-attr='feature(a,b)' --cfg 'feature=\"x y\"' --extern kernel --emit=dep-info=hello/.hello.rsi.d --emit=metadata=hello/hello.rmeta\n/src/lib.rs\n/k\n";
        let env =
            b"PATH=/bin\0MAKEFLAGS= -j2 --jobserver-auth=3,4\0OBJTREE=/old\0CARGO_PKG_NAME=hello\0";
        let s = parse(argv, env).expect("parses");
        assert_eq!(s.program, "rustc");
        assert_eq!(
            s.args,
            [
                "--edition=2021",
                "-Zcrate-attr=feature(a,b)",
                "--cfg",
                "feature=\"x y\"",
                "--extern",
                "kernel",
                "--emit=dep-info=hello/.hello.rsi.d",
                "--emit=metadata=hello/hello.rmeta"
            ]
        );
        assert_eq!(s.source, "/src/lib.rs");
        assert_eq!(s.cwd, Path::new("/k"));
        let env: Vec<&str> = s.env.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(env, ["PATH", "CARGO_PKG_NAME", "OBJTREE", "RUST_MODFILE"]);
        assert!(s.env.contains(&("OBJTREE".into(), "/k".into())));
        assert_eq!(s.dep_info(), Some(PathBuf::from("/k/hello/.hello.rsi.d")));
        assert!(s.externs_exist());
    }

    #[test]
    fn what_is_not_one_command_is_not_replayed() {
        assert!(parse("rustc a; rm -rf x\n/s\n/k\n", b"").is_none());
        assert!(parse("rustc 'unterminated\n/s\n/k\n", b"").is_none());
        assert!(parse("rustc a\n/s\n", b"").is_none());
        assert!(parse("rustc a\n/s\n/k\n", b"NOEQUALS\0").is_none());
        assert!(parse("rustc $(id) a\n/s\n/k\n", b"").is_none());
        assert!(parse("rustc \"$HOME\"\n/s\n/k\n", b"").is_none());
        assert!(parse("rustc a>b\n/s\n/k\n", b"").is_none());
        assert!(parse("rustc 'a;b$c' \"d;e\"\n/s\n/k\n", b"").is_some());
    }

    #[test]
    fn kbuilds_saved_kernel_command_reads_back_without_objtool_and_becomes_rustdoc_args() {
        let text = "savedcmd_rust/kernel.o :=  OBJTREE=/k rustc --edition=2021 -Zbinary_dep_depinfo=y -Wclippy::all -Aclippy::x --remap-path-prefix=/s/= --target=./scripts/target.json @./include/generated/rustc_cfg --extern ffi --emit=dep-info=rust/.kernel.o.d --emit=obj=rust/kernel.o --crate-type rlib -L./rust --crate-name kernel /s/rust/kernel/lib.rs --sysroot=/dev/null -Zunstable-options    ; ./tools/objtool/objtool --orc   rust/kernel.o\n\nsource_rust/kernel.o := /s/rust/kernel/lib.rs\n";
        let s = saved_in_cmd_file(text, "rust/kernel.o", Path::new("/k")).expect("parses");
        assert_eq!(s.program, "rustc");
        assert_eq!(s.rustdoc(), "rustdoc");
        assert_eq!(s.source, "/s/rust/kernel/lib.rs");
        assert_eq!(s.env, [("OBJTREE".to_string(), "/k".to_string())]);
        assert_eq!(
            s.rustdoc_args(),
            [
                "--edition=2021",
                "--target=./scripts/target.json",
                "@./include/generated/rustc_cfg",
                "--extern",
                "ffi",
                "--crate-type",
                "rlib",
                "-L./rust",
                "--crate-name",
                "kernel",
                "--sysroot=/dev/null",
                "-Zunstable-options"
            ]
        );
        assert!(saved_in_cmd_file(text, "rust/other.o", Path::new("/k")).is_none());
    }

    #[test]
    fn dep_info_lists_sources() {
        let text = "hello/hello.rmeta: /p/src/lib.rs /p/src/a\\ b.rs /out/bindings.rs\n\n/p/src/lib.rs:\n/p/src/a\\ b.rs:\n\n# env-dep:CARGO_PKG_NAME=hello\n";
        assert_eq!(
            dep_info_files(text, Path::new("/k")),
            [
                PathBuf::from("/out/bindings.rs"),
                PathBuf::from("/p/src/a b.rs"),
                PathBuf::from("/p/src/lib.rs")
            ]
        );
    }
}
