//! Every external process, visibly.
//!
//! Commands are built with xshell's `cmd!` (arguments splatted, never a shell string). The
//! helpers here print the command line under `-v` and, when it fails, report the command
//! line, its exit status and the tail of its output.

use std::collections::VecDeque;
use std::fmt;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, Result};
use xshell::Cmd;

use crate::shell::Shell;

/// How many lines of output a failure report carries.
pub const TAIL_LINES: usize = 25;

/// A process that exited unsuccessfully (or could not be started).
#[derive(Debug)]
pub struct ProcessError {
    pub command: String,
    pub status: String,
    pub tail: Vec<String>,
    pub log: Option<PathBuf>,
}

impl fmt::Display for ProcessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` failed ({})", self.command, self.status)?;
        if !self.tail.is_empty() {
            write!(f, "\n--- last {} lines of output ---", self.tail.len())?;
            for line in &self.tail {
                write!(f, "\n{line}")?;
            }
            write!(f, "\n---")?;
        }
        if let Some(log) = &self.log {
            write!(f, "\nfull log: `{}`", log.display())?;
        }
        Ok(())
    }
}

impl std::error::Error for ProcessError {}

fn tail_of(text: &str, n: usize) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// Run to completion, capturing output; return stdout. Failure carries the output's tail.
pub fn run(shell: &Shell, cmd: Cmd<'_>) -> Result<String> {
    let line = cmd.to_string();
    shell.verbose("Running", format_args!("`{line}`"));
    let output = cmd
        .quiet()
        .ignore_status()
        .output()
        .map_err(|e| ProcessError {
            command: line.clone(),
            status: format!("could not start: {e}"),
            tail: vec![],
            log: None,
        })?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let mut tail = tail_of(&stdout, TAIL_LINES / 2);
        tail.extend(tail_of(&stderr, TAIL_LINES));
        return Err(ProcessError {
            command: line,
            status: output.status.to_string(),
            tail,
            log: None,
        }
        .into());
    }
    Ok(stdout)
}

/// Run to completion and return its output whatever its exit status, for tools whose status
/// is an answer (`rustfmt --check`); only a process that cannot start is an error.
pub fn output(shell: &Shell, cmd: Cmd<'_>) -> Result<std::process::Output> {
    let line = cmd.to_string();
    shell.verbose("Running", format_args!("`{line}`"));
    Ok(cmd
        .quiet()
        .ignore_status()
        .output()
        .map_err(|e| ProcessError {
            command: line,
            status: format!("could not start: {e}"),
            tail: vec![],
            log: None,
        })?)
}

/// Run with the terminal attached, so compiler diagnostics appear as the compiler wrote them.
pub fn run_inherit(shell: &Shell, cmd: Cmd<'_>) -> Result<()> {
    let line = cmd.to_string();
    shell.verbose("Running", format_args!("`{line}`"));
    let status = Command::from(cmd).status().map_err(|e| ProcessError {
        command: line.clone(),
        status: format!("could not start: {e}"),
        tail: vec![],
        log: None,
    })?;
    if !status.success() {
        return Err(ProcessError {
            command: line,
            status: status.to_string(),
            tail: vec![],
            log: None,
        }
        .into());
    }
    Ok(())
}

/// Run a long job: stdout and stderr go line by line to `log` and to `on_line` (which feeds a
/// progress bar). On failure the error carries the last lines and the log's path.
pub fn run_logged(
    shell: &Shell,
    cmd: Cmd<'_>,
    log: &Path,
    mut on_line: impl FnMut(&str),
) -> Result<()> {
    let line = cmd.to_string();
    shell.verbose("Running", format_args!("`{line}`"));
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("cannot open log `{}`", log.display()))?;
    writeln!(file, "$ {line}")?;
    let mut command = Command::from(cmd);
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().map_err(|e| ProcessError {
        command: line.clone(),
        status: format!("could not start: {e}"),
        tail: vec![],
        log: Some(log.to_path_buf()),
    })?;
    let (tx, rx) = mpsc::channel::<String>();
    let readers: Vec<_> = [
        Box::new(child.stdout.take().expect("piped")) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().expect("piped")),
    ]
    .into_iter()
    .map(|r| {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for l in BufReader::new(r).split(b'\n').map_while(Result::ok) {
                if tx.send(String::from_utf8_lossy(&l).into_owned()).is_err() {
                    break;
                }
            }
        })
    })
    .collect();
    drop(tx);
    let mut tail = VecDeque::with_capacity(TAIL_LINES);
    for l in rx {
        let _ = writeln!(file, "{l}");
        on_line(&l);
        if tail.len() == TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(l);
    }
    for r in readers {
        let _ = r.join();
    }
    let status = child.wait()?;
    if !status.success() {
        return Err(ProcessError {
            command: line,
            status: status.to_string(),
            tail: tail.into(),
            log: Some(log.to_path_buf()),
        }
        .into());
    }
    Ok(())
}

/// The first line of `TOOL --version`-style output, or `None` when the tool cannot run.
pub fn version_line(sh: &xshell::Shell, program: &str, args: &[&str]) -> Option<String> {
    let out = xshell::cmd!(sh, "{program} {args...}")
        .quiet()
        .ignore_status()
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let text = if text.trim().is_empty() {
        String::from_utf8_lossy(&out.stderr)
    } else {
        text
    };
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(str::to_string)
}

/// Bounds on what cargo-kmod reads from a process that speaks for a board (ssh) or a guest
/// (qemu): their output is untrusted, so no line may be longer than `line` bytes, no more
/// than `total` bytes are read in all (what may be kept in memory), and no answer may take
/// longer than `time`. `what` names the activity for messages (`` `root@board` took longer
/// than 30s while answering cargo-kmod's questions``).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub line: usize,
    /// `None`: the lines are passed on and not kept (a kernel log followed until Ctrl-C).
    pub total: Option<u64>,
    /// `None`: as long as it takes (a user's own command).
    pub time: Option<Duration>,
    pub what: &'static str,
}

/// The bound of [`Limits`] that was reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overrun {
    Line(usize),
    Total(u64),
    Time(Duration),
}

impl Overrun {
    /// What the process did: `printed a line longer than 64 KiB`, `printed more than 4 MiB`,
    /// `took longer than 30s`.
    pub fn passed(self) -> String {
        match self {
            Overrun::Line(n) => format!("printed a line longer than {}", size(n as u64)),
            Overrun::Total(n) => format!("printed more than {}", size(n)),
            Overrun::Time(t) => format!("took longer than {}s", t.as_secs()),
        }
    }
}

/// `64 KiB`, `4 MiB`, `100 bytes`.
pub fn size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{} KiB", b >> 10),
        b => format!("{b} bytes"),
    }
}

/// The lines of a stream, none longer than a limit: a longer one is an error as soon as the
/// limit is passed, so memory never holds more than one line of the limit's size (a plain
/// `read_until` would keep the whole line, however long).
pub struct LineReader<R> {
    inner: BufReader<R>,
    max: usize,
}

impl<R: Read> LineReader<R> {
    pub fn new(reader: R, max: usize) -> LineReader<R> {
        LineReader {
            inner: BufReader::new(reader),
            max,
        }
    }

    /// The next line without its `\n` (a last line without one too); `Ok(None)` at the end
    /// of the stream or on a read error; [`Overrun::Line`] for a line longer than the limit.
    pub fn next_line(&mut self) -> Result<Option<Vec<u8>>, Overrun> {
        let mut line = Vec::new();
        loop {
            let buf = match self.inner.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => &[],
            };
            if buf.is_empty() {
                return Ok((!line.is_empty()).then_some(line));
            }
            let (take, end) = match buf.iter().position(|b| *b == b'\n') {
                Some(i) => (i, true),
                None => (buf.len(), false),
            };
            if line.len() + take > self.max {
                return Err(Overrun::Line(self.max));
            }
            line.extend_from_slice(&buf[..take]);
            self.inner.consume(take + usize::from(end));
            if end {
                return Ok(Some(line));
            }
        }
    }
}

/// One word for `sh` (the host's, busybox's in a guest, a board's over ssh): unchanged when
/// it has only characters no shell treats specially, else single-quoted.
pub fn shell_word(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_+=/.,:@%".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_report_has_command_status_and_tail() {
        let sh = xshell::Shell::new().unwrap();
        let err = run(
            &Shell::plain(),
            xshell::cmd!(sh, "sh -c 'echo one; echo two >&2; exit 3'"),
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("`sh -c \"echo one; echo two >&2; exit 3\"` failed (exit status: 3)"),
            "{text}"
        );
        assert!(
            text.contains("\none\n") && text.contains("\ntwo\n"),
            "{text}"
        );
    }

    #[test]
    fn logged_run_writes_log_and_feeds_lines() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("build.log");
        let sh = xshell::Shell::new().unwrap();
        let mut seen = vec![];
        run_logged(
            &Shell::plain(),
            xshell::cmd!(sh, "printf 'a\\nb\\n'"),
            &log,
            |l| seen.push(l.to_string()),
        )
        .unwrap();
        assert_eq!(seen, ["a", "b"]);
        assert!(std::fs::read_to_string(&log).unwrap().ends_with("a\nb\n"));
        let err = run_logged(&Shell::plain(), xshell::cmd!(sh, "false"), &log, |_| {}).unwrap_err();
        assert!(err.to_string().contains("full log: `"), "{err}");
    }

    #[test]
    fn lines_are_bounded_as_they_are_read() {
        let text = b"short\nexactly10c\n0123456789a\nlast";
        let mut r = LineReader::new(&text[..], 10);
        assert_eq!(r.next_line(), Ok(Some(b"short".to_vec())));
        assert_eq!(r.next_line(), Ok(Some(b"exactly10c".to_vec())));
        assert_eq!(r.next_line(), Err(Overrun::Line(10)));
        // A stream of one endless line stops at the limit, not at its end.
        let endless = std::io::repeat(b'x');
        let mut r = LineReader::new(endless, 1 << 16);
        assert_eq!(r.next_line(), Err(Overrun::Line(1 << 16)));
        let mut r = LineReader::new(&b"a\n\nb"[..], 4);
        assert_eq!(r.next_line(), Ok(Some(b"a".to_vec())));
        assert_eq!(r.next_line(), Ok(Some(vec![])));
        assert_eq!(r.next_line(), Ok(Some(b"b".to_vec())));
        assert_eq!(r.next_line(), Ok(None));
        assert_eq!(size(64 << 10), "64 KiB");
        assert_eq!(size(4 << 20), "4 MiB");
        assert_eq!(
            Overrun::Time(Duration::from_secs(30)).passed(),
            "took longer than 30s"
        );
        assert_eq!(
            Overrun::Line(64 << 10).passed(),
            "printed a line longer than 64 KiB"
        );
    }

    #[test]
    fn missing_program_is_reported() {
        let sh = xshell::Shell::new().unwrap();
        let err = run(&Shell::plain(), xshell::cmd!(sh, "no-such-program-kmod")).unwrap_err();
        assert!(err.to_string().contains("could not start"), "{err}");
        assert_eq!(
            version_line(&sh, "no-such-program-kmod", &["--version"]),
            None
        );
    }
}
