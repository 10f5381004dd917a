//! Running qemu: one [`Boot`] of a [`Machine`] with an initramfs, its console and protocol
//! channel read line by line, a deadline, and no leftovers.
//!
//! The console UART goes to qemu's stdout. A [`Channel::Uart`] goes to a pipe that qemu
//! inherits as fd 3 (`-serial file:/dev/fd/3`): nothing in the guest but `/init` writes
//! there, and the host reads it apart from the console. [`Boot::spawn`] starts qemu in the
//! background ([`RunningBoot`]: lines as they arrive, killed on drop); [`Boot::run`] streams
//! every line to a callback until qemu exits, the callback says [`Flow::Stop`] or the
//! deadline passes; [`Boot::run_interactive`] hands the terminal to the guest.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::qemu::machine::{Channel, Machine};
use crate::qemu::protocol::Source;
use crate::qemu::reaper;
use crate::shell::Shell;

/// What the line callback tells the runner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    /// Kill qemu now: the caller has what it needs.
    Stop,
}

/// How a boot ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootEnd {
    /// qemu exited by itself (with `-no-reboot`, a guest `reboot -f` or a panic ends here).
    Exited(ExitStatus),
    /// The callback returned [`Flow::Stop`]; qemu was killed.
    Stopped,
    /// The deadline passed; qemu was killed.
    TimedOut,
}

/// Everything one boot printed.
#[derive(Debug, Clone)]
pub struct BootLog {
    /// Console lines, `\r` and control characters removed, invalid UTF-8 replaced.
    pub lines: Vec<String>,
    /// Protocol-channel lines, cleaned the same way (empty for a shared console).
    pub channel: Vec<String>,
    pub end: BootEnd,
    pub elapsed: Duration,
    /// The qemu command line, for error messages.
    pub command: String,
    /// What qemu itself wrote to stderr (its own errors, not the guest's).
    pub qemu_stderr: String,
}

impl BootLog {
    /// The last non-empty console line: where the log stopped.
    pub fn last_line(&self) -> &str {
        self.lines
            .iter()
            .rev()
            .map(|l| l.trim())
            .find(|l| !l.is_empty())
            .unwrap_or("")
    }

    /// The last `n` console lines.
    pub fn tail(&self, n: usize) -> &[String] {
        &self.lines[self.lines.len().saturating_sub(n)..]
    }

    pub fn contains_line(&self, line: &str) -> bool {
        self.lines.iter().any(|l| l.trim() == line)
    }
}

/// One qemu invocation.
#[derive(Debug, Clone)]
pub struct Boot {
    pub machine: Machine,
    /// The initramfs (a `newc` cpio).
    pub initrd: PathBuf,
    /// Kernel command-line arguments after `console=... panic=-1`.
    pub cmdline: Vec<String>,
    pub timeout: Duration,
}

impl Boot {
    pub fn new(machine: Machine, initrd: PathBuf) -> Boot {
        Boot {
            machine,
            initrd,
            cmdline: Vec::new(),
            timeout: Duration::from_secs(60),
        }
    }

    /// The full kernel command line.
    pub fn append(&self) -> String {
        let mut a = vec![
            format!("console={}", self.machine.console),
            "panic=-1".to_string(),
        ];
        a.extend(self.cmdline.iter().cloned());
        a.join(" ")
    }

    /// qemu's arguments. `interactive` multiplexes the monitor on the terminal (Ctrl-A X
    /// quits) and leaves out the protocol channel.
    pub fn args(&self, interactive: bool) -> Vec<OsString> {
        let (console, channel) = if interactive {
            ("mon:stdio", None)
        } else {
            ("stdio", Some("file:/dev/fd/3"))
        };
        let mut a = self.machine.args(console, channel);
        a.push("-initrd".into());
        a.push(self.initrd.clone().into());
        a.push("-append".into());
        a.push(self.append().into());
        a
    }

    fn command(&self, shell: &Shell, interactive: bool) -> Result<(Command, String)> {
        let qemu = &self.machine.qemu;
        let sh = xshell::Shell::new()?;
        let args = self.args(interactive);
        let cmd = xshell::cmd!(sh, "{qemu} {args...}");
        let line = cmd.to_string();
        shell.verbose("Running", format_args!("`{line}`"));
        Ok((Command::from(cmd), line))
    }

    /// Start qemu in the background. Its lines arrive through [`RunningBoot::recv`]; it is
    /// killed when the handle is dropped.
    pub fn spawn(&self, shell: &Shell) -> Result<RunningBoot> {
        let (mut command, line) = self.command(shell, false)?;
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let (channel, writer) = match self.machine.channel {
            Channel::Uart { .. } => {
                use std::os::fd::AsRawFd;
                let (reader, writer) = std::io::pipe().context("cannot create a pipe")?;
                inherit_as_fd3(&mut command, writer.as_raw_fd());
                (Some(reader), Some(writer))
            }
            Channel::SharedConsole => (None, None),
        };
        reaper::configure(&mut command, true);
        let start = Instant::now();
        let spawned = command.spawn();
        // The parent's copy of the pipe's write end must go, or the reader never sees EOF.
        drop(writer);
        let child = spawned.with_context(|| format!("cannot start `{line}`"))?;
        let mut qemu = Running::new(child);
        let stdout = qemu.child.stdout.take().context("qemu stdout")?;
        let mut stderr = qemu.child.stderr.take().context("qemu stderr")?;
        let (tx, rx) = mpsc::channel::<(Source, String)>();
        let mut readers = Vec::new();
        let console_tx = tx.clone();
        readers.push(std::thread::spawn(move || {
            forward_lines(stdout, Source::Console, &console_tx)
        }));
        if let Some(reader) = channel {
            let channel_tx = tx.clone();
            readers.push(std::thread::spawn(move || {
                forward_lines(reader, Source::Channel, &channel_tx)
            }));
        }
        drop(tx);
        let err_reader = std::thread::spawn(move || {
            let mut s = Vec::new();
            let _ = stderr.read_to_end(&mut s);
            String::from_utf8_lossy(&s).into_owned()
        });
        Ok(RunningBoot {
            qemu,
            rx,
            readers,
            err_reader: Some(err_reader),
            start,
            command: line,
            console: Vec::new(),
            channel: Vec::new(),
        })
    }

    /// Boot, streaming each line to `on_line` until qemu exits, `on_line` returns
    /// [`Flow::Stop`] or the deadline passes (then qemu is killed and the log says so).
    pub fn run(
        &self,
        shell: &Shell,
        mut on_line: impl FnMut(Source, &str) -> Flow,
    ) -> Result<BootLog> {
        let mut running = self.spawn(shell)?;
        let deadline = running.start + self.timeout;
        let end = loop {
            match running.recv(deadline) {
                Recv::Line(source, l) => {
                    if on_line(source, &l) == Flow::Stop {
                        break Some(BootEnd::Stopped);
                    }
                }
                Recv::TimedOut => break Some(BootEnd::TimedOut),
                Recv::Closed => break None,
            }
        };
        running.finish(end)
    }

    /// Boot with the terminal attached to the guest's console (Ctrl-A X quits qemu). Returns
    /// qemu's exit status.
    pub fn run_interactive(&self, shell: &Shell) -> Result<ExitStatus> {
        let (mut command, line) = self.command(shell, true)?;
        reaper::configure(&mut command, false);
        let child = command
            .spawn()
            .with_context(|| format!("cannot start `{line}`"))?;
        let mut qemu = Running::new(child);
        qemu.wait()
    }
}

/// Make the descriptor `fd` the child's fd 3 (qemu opens it as `/dev/fd/3`). The caller
/// keeps the descriptor open until the child is spawned.
fn inherit_as_fd3(command: &mut Command, fd: std::os::fd::RawFd) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs between fork and exec and only calls async-signal-safe
    // functions (dup2, fcntl) on a descriptor the parent keeps open until spawn returns.
    unsafe {
        command.pre_exec(move || {
            if fd == 3 {
                // dup2 onto itself would keep close-on-exec: clear it instead.
                if libc::fcntl(3, libc::F_SETFD, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            } else if libc::dup2(fd, 3) != 3 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

fn forward_lines(from: impl Read, source: Source, tx: &mpsc::Sender<(Source, String)>) {
    for raw in BufReader::new(from).split(b'\n').map_while(Result::ok) {
        if tx.send((source, clean_line(&raw))).is_err() {
            break;
        }
    }
}

/// What [`RunningBoot::recv`] got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recv {
    Line(Source, String),
    /// The deadline passed first.
    TimedOut,
    /// qemu closed its console and channel (it exited).
    Closed,
}

/// A qemu running in the background. Dropping it kills qemu.
pub struct RunningBoot {
    qemu: Running,
    rx: mpsc::Receiver<(Source, String)>,
    readers: Vec<std::thread::JoinHandle<()>>,
    err_reader: Option<std::thread::JoinHandle<String>>,
    pub start: Instant,
    /// The qemu command line.
    pub command: String,
    console: Vec<String>,
    channel: Vec<String>,
}

impl RunningBoot {
    /// The next line, waiting at most until `deadline`. Lines are kept for the [`BootLog`].
    pub fn recv(&mut self, deadline: Instant) -> Recv {
        let now = Instant::now();
        if now >= deadline {
            return Recv::TimedOut;
        }
        match self.rx.recv_timeout(deadline - now) {
            Ok((source, l)) => {
                match source {
                    Source::Console => self.console.push(l.clone()),
                    Source::Channel => self.channel.push(l.clone()),
                }
                Recv::Line(source, l)
            }
            Err(mpsc::RecvTimeoutError::Timeout) => Recv::TimedOut,
            Err(mpsc::RecvTimeoutError::Disconnected) => Recv::Closed,
        }
    }

    /// qemu's process id.
    pub fn pid(&self) -> u32 {
        self.qemu.child.id()
    }

    /// Kill qemu (unless `end` is `None`: it already closed its output), wait for it, and
    /// return what it printed.
    pub fn finish(mut self, end: Option<BootEnd>) -> Result<BootLog> {
        if end.is_some() {
            self.qemu.kill();
        }
        let status = self.qemu.wait()?;
        for r in std::mem::take(&mut self.readers) {
            let _ = r.join();
        }
        // Lines that raced the kill are still worth having.
        while let Ok((source, l)) = self.rx.try_recv() {
            match source {
                Source::Console => self.console.push(l),
                Source::Channel => self.channel.push(l),
            }
        }
        let qemu_stderr = self
            .err_reader
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        Ok(BootLog {
            lines: std::mem::take(&mut self.console),
            channel: std::mem::take(&mut self.channel),
            end: end.unwrap_or(BootEnd::Exited(status)),
            elapsed: self.start.elapsed(),
            command: self.command.clone(),
            qemu_stderr,
        })
    }
}

/// A running qemu: registered with the reaper, killed and reaped when dropped.
struct Running {
    child: Child,
    guard: reaper::Guard,
    waited: bool,
}

impl Running {
    fn new(child: Child) -> Running {
        let guard = reaper::Guard::register(child.id());
        Running {
            child,
            guard,
            waited: false,
        }
    }

    fn kill(&mut self) {
        self.guard.kill();
    }

    fn wait(&mut self) -> Result<ExitStatus> {
        let status = self.child.wait().context("cannot wait for qemu")?;
        self.waited = true;
        Ok(status)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if !self.waited {
            self.guard.kill();
            let _ = self.child.wait();
        }
    }
}

/// A console line as text: `\r`, escape sequences' control bytes and other control
/// characters removed, invalid UTF-8 replaced.
pub fn clean_line(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw)
        .chars()
        .filter(|c| *c == '\t' || !c.is_control())
        .collect()
}

/// "the guest did not finish within 30s", with where the console stopped.
pub fn timeout_error(log: &BootLog, timeout: Duration) -> crate::error::UserError {
    let where_ = match log.last_line() {
        "" => "it printed nothing on its console".to_string(),
        last => format!("its log stopped at: `{last}`"),
    };
    crate::error::UserError::new(format!(
        "the guest did not finish within {}s and was killed; {where_}",
        timeout.as_secs()
    ))
    .with_hint("raise `--timeout`, or look at the console with `-v`")
}

/// A guest that ended before `what`: qemu's own error, or where the log stopped.
pub fn exit_error(log: &BootLog, status: ExitStatus, what: &str) -> crate::error::UserError {
    let qemu_err = log
        .qemu_stderr
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty());
    let silent =
        log.lines.iter().all(|l| l.trim().is_empty()) && log.channel.iter().all(|l| l.is_empty());
    match (qemu_err, status.success()) {
        (Some(e), _) if !status.success() || silent => {
            crate::error::UserError::new(format!("qemu failed ({status}): {e}"))
        }
        _ if silent => crate::error::UserError::new(format!(
            "the guest printed nothing on its console ({status}): `{}` did not boot",
            log.command
                .split(" -kernel ")
                .nth(1)
                .and_then(|s| s.split(' ').next())
                .unwrap_or("the image")
        ))
        .with_hint("check that the image is a kernel for this arch with a serial console"),
        _ => crate::error::UserError::new(format!(
            "the guest stopped before {what}; its log stopped at: `{}`",
            log.last_line()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qemu::machine::Accel;
    use crate::tree::Arch;

    #[test]
    fn clean_line_drops_control_characters() {
        assert_eq!(clean_line(b"ok 1 adds\r"), "ok 1 adds");
        assert_eq!(clean_line(b"\x1b[0mhi\x07\tx"), "[0mhi\tx");
        assert_eq!(clean_line(b"\xff\xfeab"), "\u{fffd}\u{fffd}ab");
    }

    #[test]
    fn command_line() {
        let m = Machine {
            arch: Arch::X86_64,
            qemu: "qemu-system-x86_64".into(),
            model: None,
            cpu: None,
            memory_mb: 256,
            smp: Some(1),
            firmware: None,
            kernel: "/k/vmlinux".into(),
            dtb: None,
            console: "ttyS0".into(),
            channel: Channel::Uart {
                device: "ttyS1".into(),
            },
            accel: Accel::Tcg,
            extra_args: vec![],
        };
        let mut b = Boot::new(m, "/i".into());
        b.cmdline = vec!["quiet".into()];
        assert_eq!(b.append(), "console=ttyS0 panic=-1 quiet");
        let a: Vec<String> = b
            .args(false)
            .iter()
            .map(|s| s.to_string_lossy().into_owned())
            .collect();
        let s = a.join(" ");
        assert!(
            s.contains("-serial stdio -serial file:/dev/fd/3 -kernel /k/vmlinux -initrd /i"),
            "{s}"
        );
        let a: Vec<String> = b
            .args(true)
            .iter()
            .map(|s| s.to_string_lossy().into_owned())
            .collect();
        assert!(a.join(" ").contains("-serial mon:stdio -kernel"), "{a:?}");
    }
}
