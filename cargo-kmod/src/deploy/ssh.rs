//! The transport: the system OpenSSH client, one connection per deploy.
//!
//! [`Session::connect`] starts a ControlMaster (`ssh -o ControlMaster=yes -N`) as cargo-kmod's own child, with
//! the control socket in a private temporary directory, and waits until ssh has
//! authenticated (the socket appears only then) or has given up (its last words become the
//! error). Every later command rides that connection as a multiplexed client, so a deploy
//! costs one handshake. The user's `~/.ssh/config`, agent, keys and known hosts apply as
//! they do to `ssh` itself; cargo-kmod adds only the multiplexing options, plus what the
//! caller passes explicitly with [`SshOptions`] (`--ssh-config` for `-F`, `--ssh-option` for
//! `-o`). It never sees or stores a password or key.
//!
//! Remote work is a POSIX shell script sent on ssh's standard input to `sh -s` (run through
//! `sudo -n` when the login is not root), so nothing but a fixed command word goes through the
//! remote login shell's parser; every value inside a script is quoted with
//! [`crate::process::shell_word`]. What the board prints is data: each line is made safe to
//! print by [`crate::text::line`] before anyone sees it, and read within [`Limits`].
//!
//! The master ignores SIGINT (so `--follow` can end with Ctrl-C and still unload over the same
//! connection), dies with cargo-kmod (`PR_SET_PDEATHSIG`), and is stopped when the session
//! is dropped, taking its socket directory with it.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::deploy::host::Destination;
use crate::error::UserError;
use crate::process::{Limits, LineReader, Overrun, ProcessError};
use crate::qemu::reaper;
use crate::shell::Shell;

/// Options passed to every ssh command, on top of the user's own configuration.
#[derive(Debug, Clone, Default)]
pub struct SshOptions {
    /// `ssh -F FILE`: a config file instead of `~/.ssh/config`.
    pub config: Option<PathBuf>,
    /// `ssh -o OPTION` each (`IdentityFile=...`, `UserKnownHostsFile=...`, ...).
    pub options: Vec<String>,
}

/// How long the master may take to log in before cargo-kmod gives up on it. ssh's own
/// `ConnectTimeout` (from the user's config) usually ends it earlier.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(120);

const KIB: usize = 1 << 10;
const MIB: u64 = 1 << 20;

/// The board's answers to [`crate::deploy::board::Board::script`]: short lines, one per
/// fact or module, in one round trip.
pub const QUERY: Limits = Limits {
    line: 64 * KIB,
    total: Some(4 * MIB),
    time: Some(Duration::from_secs(30)),
    what: "answering cargo-kmod's questions",
};

/// The unload, install and load steps: the commands' output and the kernel log of each step.
/// A module's `init` may take a while; not ten minutes.
pub const STEPS: Limits = Limits {
    line: 64 * KIB,
    total: Some(64 * MIB),
    time: Some(Duration::from_secs(600)),
    what: "running the deploy steps",
};

/// Copying a module (the remote `cat` prints nothing).
pub const COPY: Limits = Limits {
    line: 64 * KIB,
    total: Some(MIB),
    time: Some(Duration::from_secs(600)),
    what: "receiving a module",
};

/// Small housekeeping scripts (removing the temporary directory, stopping a reader).
pub const HOUSEKEEPING: Limits = Limits {
    line: 64 * KIB,
    total: Some(MIB),
    time: Some(Duration::from_secs(30)),
    what: "cleaning up",
};

/// `--exec`: the user's own command, as long as it takes; its output is kept for
/// `--message-format json`.
pub const EXEC: Limits = Limits {
    line: 1 << 20,
    total: Some(64 * MIB),
    time: None,
    what: "running `--exec`'s command",
};

/// `--follow`: the kernel log until Ctrl-C, passed on line by line and not kept.
pub const FOLLOW: Limits = Limits {
    line: 64 * KIB,
    total: None,
    time: None,
    what: "printing its kernel log",
};

/// The output of one remote script.
#[derive(Debug, Clone)]
pub struct Output {
    pub status: ExitStatus,
    /// Standard output, line by line, made safe to print ([`crate::text::line`]).
    pub lines: Vec<String>,
    pub stderr: String,
}

/// One ssh connection to a board.
pub struct Session<'a> {
    shell: &'a Shell,
    pub dest: Destination,
    opts: SshOptions,
    control: PathBuf,
    master: Option<Master>,
    // Dropped last: the control socket's directory.
    _dir: tempfile::TempDir,
}

struct Master {
    child: Child,
    guard: reaper::Guard,
}

impl<'a> Session<'a> {
    /// Log in once (the ControlMaster); every later command reuses the connection.
    pub fn connect(shell: &'a Shell, dest: &Destination, opts: &SshOptions) -> Result<Session<'a>> {
        // A short path: unix socket paths are limited to about 100 bytes.
        let dir = tempfile::Builder::new()
            .prefix("kmod-ssh-")
            .tempdir_in("/tmp")
            .context("cannot create a directory for the ssh control socket")?;
        let control = dir.path().join("c");
        let mut session = Session {
            shell,
            dest: dest.clone(),
            opts: opts.clone(),
            control,
            master: None,
            _dir: dir,
        };
        let mut args = session.common_args(true);
        // Not `-M` as well: `-M` after `ControlMaster=yes` means "ask before every session".
        args.extend(["-N", "-T"].map(OsString::from));
        args.push("--".into());
        args.push(dest.ssh_destination().into());
        let sh = xshell::Shell::new()?;
        let cmd = xshell::cmd!(sh, "ssh {args...}");
        let line = cmd.to_string();
        shell.verbose("Running", format_args!("`{line}`"));
        let mut command = Command::from(cmd);
        command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        reaper::configure(&mut command, false);
        ignore_sigint(&mut command);
        let mut child = command.spawn().map_err(|e| {
            UserError::new(format!("cannot run `ssh`: {}", crate::ko::io_reason(&e)))
                .with_hint("install the OpenSSH client (Debian: `openssh-client`)")
        })?;
        let guard = reaper::Guard::register(child.id());
        let mut stderr = child.stderr.take().context("ssh stderr")?;
        let err_reader = std::thread::spawn(move || {
            let mut s = Vec::new();
            let _ = stderr.read_to_end(&mut s);
            String::from_utf8_lossy(&s).into_owned()
        });
        session.master = Some(Master { child, guard });
        let start = Instant::now();
        let before = interrupts();
        loop {
            if session.control.exists() {
                // The master keeps its stderr for the whole session; a reader thread drains it.
                std::thread::spawn(move || drop(err_reader.join()));
                return Ok(session);
            }
            let master = session.master.as_mut().expect("master");
            if let Some(status) = master.child.try_wait()? {
                session.master = None;
                let words = err_reader.join().unwrap_or_default();
                return Err(login_error(dest, status, &words).into());
            }
            if interrupts() != before {
                anyhow::bail!(Interrupted);
            }
            if start.elapsed() > LOGIN_TIMEOUT {
                crate::bail_user!(
                    "ssh did not log in to `{}` within {}s", dest, LOGIN_TIMEOUT.as_secs();
                    hint = "check that `ssh {}` works", ssh_hint(dest)
                );
            }
            std::thread::sleep(Duration::from_millis(3));
        }
    }

    /// Options every ssh command of this session gets: multiplexing first (the first value of
    /// an option wins in ssh), then the caller's `-o`s and `-F`, then the port.
    fn common_args(&self, master: bool) -> Vec<OsString> {
        let mut a: Vec<OsString> = Vec::new();
        let mut o = |s: String| {
            a.push("-o".into());
            a.push(s.into());
        };
        o(format!("ControlPath={}", self.control.display()));
        if master {
            o("ControlMaster=yes".into());
            o("ControlPersist=no".into());
        } else {
            o("ControlMaster=no".into());
            // A client never prompts: it rides the master's login.
            o("BatchMode=yes".into());
        }
        for opt in &self.opts.options {
            o(opt.clone());
        }
        if let Some(f) = &self.opts.config {
            a.push("-F".into());
            a.push(f.clone().into());
        }
        if let Some(p) = self.dest.port {
            a.push("-p".into());
            a.push(p.to_string().into());
        }
        a
    }

    /// A multiplexed client running `remote` (a fixed command word or a quoted command line).
    fn client(&self, remote: &str) -> Result<(Command, String)> {
        let mut args = self.common_args(false);
        args.push("-T".into());
        args.push("--".into());
        args.push(self.dest.ssh_destination().into());
        args.push(remote.into());
        let sh = xshell::Shell::new()?;
        let cmd = xshell::cmd!(sh, "ssh {args...}");
        let line = cmd.to_string();
        self.shell.verbose("Running", format_args!("`{line}`"));
        let mut command = Command::from(cmd);
        reaper::configure(&mut command, false);
        Ok((command, line))
    }

    /// Run `script` with `sh -s` on the board (through `sudo -n` when `root` is set and the
    /// login is not root), streaming each stdout line to `on_line`. The script runs with its
    /// standard input on `/dev/null`. What the board prints is read within `limits` (the
    /// lines are kept in [`Output::lines`] only when `limits` has a total); past them, the
    /// client is stopped and the error says which limit.
    pub fn stream(
        &self,
        script: &str,
        sudo: bool,
        limits: Limits,
        mut on_line: impl FnMut(&str),
    ) -> Result<Output> {
        let remote = if sudo { "sudo -n sh -s" } else { "sh -s" };
        let (mut command, line) = self.client(remote)?;
        if self.shell.verbosity >= crate::shell::Verbosity::VeryVerbose {
            eprintln!("{script}");
        }
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let before = interrupts();
        let mut child = spawn(&mut command, &line)?;
        let _running = Running::register(child.id());
        // The shell reads the whole function before running it, so the commands inside can
        // never read the rest of the script as their input.
        let wrapped = format!(
            "PATH=\"$PATH:/sbin:/usr/sbin:/bin:/usr/bin\"\nmain() {{\n{script}\n}}\nmain </dev/null\n"
        );
        let mut stdin = child.stdin.take().context("ssh stdin")?;
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(wrapped.as_bytes());
        });
        let stdout = child.stdout.take().context("ssh stdout")?;
        let stderr = child.stderr.take().context("ssh stderr")?;
        let mut lines = Vec::new();
        let mut err = String::new();
        let keep = limits.total.is_some();
        let ended = pump(stdout, stderr, before, limits, |to_err, l| {
            if to_err {
                err.push_str(&l);
                err.push('\n');
            } else {
                on_line(&l);
                if keep {
                    lines.push(l);
                }
            }
        });
        let status = self.finish(&mut child, ended, before, limits)?;
        let _ = writer.join();
        if status.code() == Some(255) {
            return Err(self.lost(status, &err));
        }
        Ok(Output {
            status,
            lines,
            stderr: err,
        })
    }

    /// [`Session::stream`] without a callback.
    pub fn run(&self, script: &str, sudo: bool, limits: Limits) -> Result<Output> {
        self.stream(script, sudo, limits, |_| {})
    }

    /// Copy `local` to the board: `remote` is a complete, quoted shell command that reads the
    /// file from its standard input (`cat > '/tmp/x/a.ko'`). Returns its output lines.
    pub fn upload(&self, local: &Path, remote: &str) -> Result<Vec<String>> {
        let file = std::fs::File::open(local)
            .with_context(|| format!("cannot read `{}`", local.display()))?;
        let (mut command, line) = self.client(remote)?;
        command
            .stdin(Stdio::from(file))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let before = interrupts();
        let mut child = spawn(&mut command, &line)?;
        let _running = Running::register(child.id());
        let stdout = child.stdout.take().context("ssh stdout")?;
        let stderr = child.stderr.take().context("ssh stderr")?;
        let (mut out, mut err) = (Vec::new(), String::new());
        let ended = pump(stdout, stderr, before, COPY, |to_err, l| {
            if to_err {
                err.push_str(&l);
                err.push('\n');
            } else if !l.is_empty() {
                out.push(l);
            }
        });
        let status = self.finish(&mut child, ended, before, COPY)?;
        if status.code() == Some(255) {
            return Err(self.lost(status, &err));
        }
        if !status.success() {
            return Err(ProcessError {
                command: line,
                status: status.to_string(),
                tail: err.lines().map(str::to_string).collect(),
                log: None,
            }
            .into());
        }
        Ok(out)
    }

    /// Run the user's command line with `sh -c` on the board as the login user, its output
    /// passed through line by line (`on_line(false, ..)` for stdout, `(true, ..)` for
    /// stderr), within [`EXEC`]'s limits.
    pub fn exec(&self, cmd: &str, mut on_line: impl FnMut(bool, &str)) -> Result<ExitStatus> {
        let remote = format!("sh -c {}", crate::process::shell_word(cmd));
        let (mut command, line) = self.client(&remote)?;
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let before = interrupts();
        let mut child = spawn(&mut command, &line)?;
        let _running = Running::register(child.id());
        let stdout = child.stdout.take().context("ssh stdout")?;
        let stderr = child.stderr.take().context("ssh stderr")?;
        let mut err = String::new();
        let ended = pump(stdout, stderr, before, EXEC, |to_err, l| {
            if to_err {
                err.push_str(&l);
                err.push('\n');
            }
            on_line(to_err, &l);
        });
        let status = self.finish(&mut child, ended, before, EXEC)?;
        if status.code() == Some(255) && err.contains("ssh:") {
            return Err(self.lost(status, &err));
        }
        Ok(status)
    }

    /// Reap a client after [`pump`]: Ctrl-C during its run is [`Interrupted`], a limit
    /// passed is the error that says which. A client Ctrl-C ended can close its streams a
    /// moment before cargo-kmod's handler has counted the Ctrl-C, so a client that failed is
    /// given that moment.
    fn finish(
        &self,
        child: &mut Child,
        ended: Pumped,
        before: usize,
        limits: Limits,
    ) -> Result<ExitStatus> {
        match ended {
            Pumped::Overrun(o) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(UserError::new(format!(
                    "`{}` {} while {}; cargo-kmod stopped reading",
                    self.dest,
                    o.passed(),
                    limits.what
                ))
                .with_hint(
                    "what a board prints is read within fixed limits; look at what it prints with `ssh`",
                )
                .into());
            }
            Pumped::Interrupted => {
                let _ = child.kill();
                let _ = child.wait();
                anyhow::bail!(Interrupted);
            }
            Pumped::Ended if interrupts() != before => {
                let _ = child.kill();
                let _ = child.wait();
                anyhow::bail!(Interrupted);
            }
            Pumped::Ended => {}
        }
        let status = child.wait().context("cannot wait for ssh")?;
        if !status.success() {
            let start = Instant::now();
            while start.elapsed() < Duration::from_millis(300) {
                if interrupts() != before {
                    anyhow::bail!(Interrupted);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        Ok(status)
    }

    fn lost(&self, status: ExitStatus, stderr: &str) -> anyhow::Error {
        let words = last_words(stderr);
        UserError::new(format!(
            "the ssh connection to `{}` failed ({status}){}",
            self.dest,
            if words.is_empty() {
                String::new()
            } else {
                format!(": {words}")
            }
        ))
        .into()
    }

    /// Stop the master and wait for it.
    pub fn close(mut self) {
        self.stop_master();
    }

    fn stop_master(&mut self) {
        if let Some(mut m) = self.master.take() {
            m.guard.kill();
            let _ = m.child.wait();
        }
    }
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        self.stop_master();
    }
}

/// How [`pump`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pumped {
    /// Both streams ended.
    Ended,
    /// Ctrl-C was pressed.
    Interrupted,
    /// The client passed a limit; it is still running.
    Overrun(Overrun),
}

/// What a reader thread sends: a line (`true` for stderr), or the limit it passed.
type Piece = (bool, Result<String, Overrun>);

/// Feed a client's output lines (made safe to print; `true` for stderr) to `on_line` until both streams
/// end, Ctrl-C is pressed after `before`, or the output passes `limits` (a line too long, too
/// much in all, or too long a time). A multiplexed client hands its pipes to the master, so a
/// client that Ctrl-C ended is no end of file: the pipes stay open while the board's command
/// runs. Ctrl-C is watched for, not waited out.
fn pump(
    stdout: impl Read + Send + 'static,
    stderr: impl Read + Send + 'static,
    before: usize,
    limits: Limits,
    mut on_line: impl FnMut(bool, String),
) -> Pumped {
    let (tx, rx) = mpsc::channel::<Piece>();
    let read = |r: Box<dyn Read + Send>, is_err: bool, tx: mpsc::Sender<Piece>| {
        std::thread::spawn(move || {
            let mut lines = LineReader::new(r, limits.line);
            loop {
                let piece = match lines.next_line() {
                    Ok(Some(raw)) => Ok(crate::text::line(&raw)),
                    Ok(None) => break,
                    Err(o) => Err(o),
                };
                let stop = piece.is_err();
                if tx.send((is_err, piece)).is_err() || stop {
                    break;
                }
            }
        })
    };
    read(Box::new(stdout), false, tx.clone());
    read(Box::new(stderr), true, tx);
    let deadline = limits.time.and_then(|t| Instant::now().checked_add(t));
    let mut total: u64 = 0;
    loop {
        let wait = deadline.map_or(Duration::from_millis(50), |d| {
            d.saturating_duration_since(Instant::now())
                .min(Duration::from_millis(50))
        });
        match rx.recv_timeout(wait) {
            Ok((_, Err(o))) => return Pumped::Overrun(o),
            Ok((is_err, Ok(l))) => {
                total = total.saturating_add(l.len() as u64 + 1);
                if let Some(max) = limits.total.filter(|m| total > *m) {
                    return Pumped::Overrun(Overrun::Total(max));
                }
                on_line(is_err, l);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if interrupts() != before {
                    return Pumped::Interrupted;
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => return Pumped::Ended,
        }
        if let (Some(d), Some(t)) = (deadline, limits.time) {
            if Instant::now() >= d {
                return Pumped::Overrun(Overrun::Time(t));
            }
        }
    }
}

fn spawn(command: &mut Command, line: &str) -> Result<Child> {
    command.spawn().map_err(|e| {
        ProcessError {
            command: line.to_string(),
            status: format!("could not start: {e}"),
            tail: vec![],
            log: None,
        }
        .into()
    })
}

/// The master must survive the terminal's Ctrl-C: OpenSSH keeps SIGINT ignored when it
/// starts that way.
fn ignore_sigint(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: `signal` is async-signal-safe; the closure runs between fork and exec.
    unsafe {
        command.pre_exec(|| {
            libc::signal(libc::SIGINT, libc::SIG_IGN);
            Ok(())
        });
    }
}

/// The one line that says why ssh gave up: its last line that is not a warning.
pub fn last_words(stderr: &str) -> String {
    let lines: Vec<String> = stderr
        .lines()
        .map(|l| crate::text::line(l.as_bytes()).trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    lines
        .iter()
        .rev()
        .find(|l| !l.starts_with("Warning:") && !l.starts_with("**"))
        .or(lines.last())
        .map(|l| l.trim_end_matches('.').to_string())
        .unwrap_or_default()
}

fn ssh_hint(dest: &Destination) -> String {
    match dest.port {
        Some(p) => format!("-p {p} {}", dest.ssh_destination()),
        None => dest.ssh_destination(),
    }
}

/// Why the master could not log in, in ssh's words, on one line.
fn login_error(dest: &Destination, status: ExitStatus, stderr: &str) -> UserError {
    let words = last_words(stderr);
    let words = if words.is_empty() {
        format!("ssh exited with {status}")
    } else {
        words
    };
    let hint = if words.contains("Permission denied") {
        format!(
            "cargo-kmod logs in with your ssh keys, agent and config: check that `ssh {}` logs in",
            ssh_hint(dest)
        )
    } else if words.contains("Host key verification failed") {
        "the board's host key is not in your known hosts (or changed): log in once with `ssh` to check and accept it".to_string()
    } else {
        format!(
            "check that the board is up and `ssh {}` works",
            ssh_hint(dest)
        )
    };
    UserError::new(format!("cannot log in to `{dest}` over ssh: {words}")).with_hint(hint)
}

/// The error of a command cut short by Ctrl-C.
#[derive(Debug)]
pub struct Interrupted;

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("interrupted")
    }
}

impl std::error::Error for Interrupted {}

/// How many times Ctrl-C was pressed: a command is interrupted when it changed while the
/// command ran (commands started after a Ctrl-C, like `--unload-on-exit`'s, run normally).
static INTERRUPTS: AtomicUsize = AtomicUsize::new(0);
/// Clients that Ctrl-C ends (never the master).
static RUNNING: Mutex<Vec<i32>> = Mutex::new(Vec::new());

/// How many times Ctrl-C was pressed since [`catch_interrupt`].
pub fn interrupts() -> usize {
    INTERRUPTS.load(Ordering::SeqCst)
}

/// Take over Ctrl-C (SIGINT, SIGTERM, SIGHUP) for a deploy: it sets a flag and ends the
/// running ssh clients, and the deploy winds down by itself (unloading with
/// `--unload-on-exit`, stopping the master, removing its socket). Must run before any other
/// child process is configured by [`reaper`], whose handler would otherwise exit at once.
pub fn catch_interrupt() {
    let _ = ctrlc::set_handler(|| {
        INTERRUPTS.fetch_add(1, Ordering::SeqCst);
        let pids = RUNNING.lock().map(|v| v.clone()).unwrap_or_default();
        for pid in pids {
            // SAFETY: a plain syscall on a child we spawned and have not yet reaped.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
    });
}

/// A running client, ended by Ctrl-C while registered.
struct Running(i32);

impl Running {
    fn register(pid: u32) -> Running {
        let pid = pid as i32;
        if let Ok(mut v) = RUNNING.lock() {
            v.push(pid);
        }
        Running(pid)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(mut v) = RUNNING.lock() {
            v.retain(|p| *p != self.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_words_skip_warnings() {
        let e = "Warning: Permanently added '[127.0.0.1]:2222' (ED25519) to the list of known hosts.\r\nroot@127.0.0.1: Permission denied (publickey).\n";
        assert_eq!(
            last_words(e),
            "root@127.0.0.1: Permission denied (publickey)"
        );
        assert_eq!(
            last_words("ssh: connect to host 127.0.0.1 port 1: Connection refused\n"),
            "ssh: connect to host 127.0.0.1 port 1: Connection refused"
        );
        assert_eq!(last_words(""), "");
    }

    /// Every read from a board is bounded: a line too long, too much in all, an answer that
    /// never ends; each is reported as the limit it passed, at once.
    #[test]
    fn pump_stops_at_every_limit() {
        let limits = Limits {
            line: 16,
            total: Some(40),
            time: Some(Duration::from_millis(300)),
            what: "testing",
        };
        let cursor = |b: &[u8]| std::io::Cursor::new(b.to_vec());
        let mut seen = Vec::new();
        let end = pump(
            cursor(b"a\nb\n"),
            cursor(b"e\n"),
            interrupts(),
            limits,
            |e, l| seen.push((e, l)),
        );
        assert_eq!(end, Pumped::Ended);
        assert_eq!(seen.len(), 3);
        let long = pump(
            cursor(&[b'x'; 1000]),
            cursor(b""),
            interrupts(),
            limits,
            |_, _| {},
        );
        assert_eq!(long, Pumped::Overrun(Overrun::Line(16)));
        let many = pump(
            cursor(&b"0123456789\n".repeat(5)),
            cursor(b""),
            interrupts(),
            limits,
            |_, _| {},
        );
        assert_eq!(many, Pumped::Overrun(Overrun::Total(40)));
        // An answer that never comes: the pipes stay open.
        let (r1, _w1) = std::io::pipe().unwrap();
        let (r2, _w2) = std::io::pipe().unwrap();
        let start = Instant::now();
        let slow = pump(r1, r2, interrupts(), limits, |_, _| {});
        assert_eq!(slow, Pumped::Overrun(Overrun::Time(limits.time.unwrap())));
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn login_error_is_one_line_with_a_hint() {
        use std::os::unix::process::ExitStatusExt;
        let dest = Destination::parse("root@127.0.0.1:1").unwrap();
        let e = login_error(
            &dest,
            ExitStatus::from_raw(255 << 8),
            "ssh: connect to host 127.0.0.1 port 1: Connection refused\n",
        );
        assert_eq!(
            e.message,
            "cannot log in to `root@127.0.0.1:1` over ssh: ssh: connect to host 127.0.0.1 port 1: Connection refused"
        );
        assert_eq!(
            e.hint.as_deref(),
            Some("check that the board is up and `ssh -p 1 root@127.0.0.1` works")
        );
    }
}
