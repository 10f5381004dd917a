//! Running qemu: one [`Boot`] of a [`Machine`] with an initramfs, its console and protocol
//! channel read line by line, a deadline, and no leftovers.
//!
//! The console UART and a [`Channel::Uart`] each go to a file of their own in a temporary
//! directory (`-serial file:...`): nothing in the guest but `/init` writes to the channel,
//! and the host reads it apart from the console. qemu writes a UART byte by byte; into a
//! pipe, every byte would wake the reader (thousands of host context switches per boot,
//! measurably slower on a busy machine), so the host polls the files instead, every
//! millisecond while they grow. [`Boot::spawn`] starts qemu in the background
//! ([`RunningBoot`]: lines as they arrive, killed on drop); [`Boot::run`] streams every line
//! to a callback until qemu exits, the callback says [`Flow::Stop`] or the deadline passes;
//! [`Boot::run_interactive`] hands the terminal to the guest.

use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::guest::protocol::Source;
use crate::guest::run::{BootEnd, BootLog};
use crate::process::{Limits, Overrun};
use crate::qemu::machine::{Channel, Machine};
use crate::qemu::reaper;
use crate::shell::Shell;

/// What cargo-kmod reads from a guest at most: no console or channel line longer than 1 MiB,
/// 64 MiB of both together (every line is kept for the report); the time is the boot's
/// own timeout. A guest is untrusted: past these, qemu is stopped and the boot is an error.
pub const GUEST_LIMITS: Limits = Limits {
    line: 1 << 20,
    total: Some(64 << 20),
    time: None,
    what: "running",
};

/// What the line callback tells the runner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    /// Kill qemu now: the caller has what it needs.
    Stop,
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
    /// Kill qemu ([`BootEnd::TimedOut`]) when not one line arrived on the channel this long
    /// after the start (a resumed snapshot whose script never starts), before
    /// [`Boot::timeout`]. Console lines do not count: a guest that only complains on its
    /// console is stopped as soon as one that says nothing.
    pub first_line_within: Option<Duration>,
}

impl Boot {
    pub fn new(machine: Machine, initrd: PathBuf) -> Boot {
        Boot {
            machine,
            initrd,
            cmdline: Vec::new(),
            timeout: Duration::from_secs(60),
            first_line_within: None,
        }
    }

    /// The full kernel command line.
    pub fn append(&self) -> String {
        let mut a = vec![
            format!("console={}", self.machine.console),
            "panic=-1".to_string(),
        ];
        a.extend(self.machine.kernel_args.iter().cloned());
        a.extend(self.cmdline.iter().cloned());
        a.join(" ")
    }

    /// qemu's arguments. With `files` (a directory), the console and the channel go to
    /// files `console` and `channel` there; without, the console is the terminal with the
    /// monitor multiplexed on it (Ctrl-A X quits), and there is no channel.
    pub fn args(&self, files: Option<&Path>) -> Vec<OsString> {
        let (console, channel) = match files {
            None => ("mon:stdio".to_string(), None),
            Some(d) => (
                format!("file:{}", d.join(CONSOLE_FILE).display()),
                Some(format!("file:{}", d.join(CHANNEL_FILE).display())),
            ),
        };
        let mut a = self.machine.args(&console, channel.as_deref());
        a.push("-initrd".into());
        a.push(self.initrd.clone().into());
        a.push("-append".into());
        a.push(self.append().into());
        a
    }

    fn command(&self, shell: &Shell, files: Option<&Path>) -> Result<(Command, String)> {
        let qemu = &self.machine.qemu;
        let sh = xshell::Shell::new()?;
        let args = self.args(files);
        let cmd = xshell::cmd!(sh, "{qemu} {args...}");
        let line = cmd.to_string();
        shell.verbose("Running", format_args!("`{line}`"));
        Ok((Command::from(cmd), line))
    }

    /// Start qemu in the background. Its lines arrive through [`RunningBoot::recv`]; it is
    /// killed when the handle is dropped.
    pub fn spawn(&self, shell: &Shell) -> Result<RunningBoot> {
        let dir = reaper::TempDir::new()?;
        let (mut command, line) = self.command(shell, Some(dir.path()))?;
        command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        reaper::configure(&mut command, true);
        let start = Instant::now();
        let mut child = command
            .spawn()
            .with_context(|| format!("cannot start `{line}`"))?;
        let guard = reaper::Guard::register(child.id());
        let pid = child.id();
        let mut stderr = child.stderr.take().context("qemu stderr")?;
        let exited = Arc::new(AtomicBool::new(false));
        let flag = exited.clone();
        let waiter = std::thread::spawn(move || {
            let status = child.wait();
            flag.store(true, Ordering::SeqCst);
            status
        });
        let (tx, rx) = mpsc::channel::<Piece>();
        let mut tails = vec![Tail::new(dir.path().join(CONSOLE_FILE), Source::Console)];
        if let Channel::Uart { .. } = self.machine.channel {
            tails.push(Tail::new(dir.path().join(CHANNEL_FILE), Source::Channel));
        }
        let done = exited.clone();
        let poller = std::thread::spawn(move || poll(tails, &tx, &done, GUEST_LIMITS));
        let err_reader = std::thread::spawn(move || {
            let mut s = Vec::new();
            let _ = stderr.read_to_end(&mut s);
            String::from_utf8_lossy(&s).into_owned()
        });
        Ok(RunningBoot {
            guard,
            pid,
            waiter: Some(waiter),
            poller: Some(poller),
            rx,
            err_reader: Some(err_reader),
            start,
            command: line,
            console: Vec::new(),
            channel: Vec::new(),
            _dir: dir,
        })
    }

    /// Boot, streaming each line to `on_line` until qemu exits, `on_line` returns
    /// [`Flow::Stop`] or the deadline passes (then qemu is killed and the log says so). A
    /// guest that prints past [`GUEST_LIMITS`] is killed, and that is the error.
    pub fn run(
        &self,
        shell: &Shell,
        mut on_line: impl FnMut(Source, &str) -> Flow,
    ) -> Result<BootLog> {
        let mut running = self.spawn(shell)?;
        let deadline = deadline(running.start, self.timeout);
        let mut first = self
            .first_line_within
            .map(|d| deadline_after(running.start, d.min(self.timeout)));
        let end = loop {
            match running.recv(first.unwrap_or(deadline)) {
                Recv::Line(source, l) => {
                    if source == Source::Channel {
                        first = None;
                    }
                    if on_line(source, &l) == Flow::Stop {
                        break Some(BootEnd::Stopped);
                    }
                }
                Recv::TimedOut => break Some(BootEnd::TimedOut),
                Recv::Closed => break None,
                Recv::Overrun(source, o) => {
                    drop(running.finish(Some(BootEnd::Stopped)));
                    return Err(overrun_error(source, o).into());
                }
            }
        };
        running.finish(end)
    }

    /// Boot with the terminal attached to the guest's console (Ctrl-A X quits qemu). Returns
    /// qemu's exit status.
    pub fn run_interactive(&self, shell: &Shell) -> Result<ExitStatus> {
        let (mut command, line) = self.command(shell, None)?;
        reaper::configure(&mut command, false);
        let child = command
            .spawn()
            .with_context(|| format!("cannot start `{line}`"))?;
        let mut qemu = Running::new(child);
        qemu.wait()
    }
}

/// `start + timeout`, or a century from `start` when that is past what an [`Instant`] can
/// hold (`--timeout 18446744073709551615` means "no limit", not a panic).
pub fn deadline(start: Instant, timeout: Duration) -> Instant {
    deadline_after(start, timeout)
}

fn deadline_after(start: Instant, d: Duration) -> Instant {
    const CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
    start
        .checked_add(d)
        .or_else(|| start.checked_add(CENTURY))
        .unwrap_or(start)
}

/// The files the console and the channel go to, in a boot's temporary directory.
const CONSOLE_FILE: &str = "console";
const CHANNEL_FILE: &str = "channel";

/// What the poller sends: a line from a source, or the limit that source passed.
type Piece = (Source, Result<String, Overrun>);

/// How much of a file is read at once: a line longer than the limit is noticed after at
/// most this much more.
const CHUNK: u64 = 64 << 10;

/// The new lines of a file qemu appends to.
struct Tail {
    path: PathBuf,
    source: Source,
    file: Option<std::fs::File>,
    partial: Vec<u8>,
}

impl Tail {
    fn new(path: PathBuf, source: Source) -> Tail {
        Tail {
            path,
            source,
            file: None,
            partial: Vec::new(),
        }
    }

    /// Send the complete lines that arrived since the last call; how many bytes did. A line
    /// that grows past `max_line` is [`Overrun::Line`] as soon as it does (the file is read
    /// in chunks, never all at once).
    fn pump(&mut self, tx: &mpsc::Sender<Piece>, max_line: usize) -> Result<u64, Overrun> {
        if self.file.is_none() {
            // qemu creates the file when it starts.
            self.file = std::fs::File::open(&self.path).ok();
        }
        let Some(f) = &mut self.file else {
            return Ok(0);
        };
        let mut got = 0u64;
        loop {
            let n = match f.by_ref().take(CHUNK).read_to_end(&mut self.partial) {
                Ok(n) => n as u64,
                Err(_) => 0,
            };
            got += n;
            let mut start = 0;
            while let Some(len) = self.partial[start..].iter().position(|b| *b == b'\n') {
                if len > max_line {
                    return Err(Overrun::Line(max_line));
                }
                let _ = tx.send((
                    self.source,
                    Ok(crate::text::line(&self.partial[start..start + len])),
                ));
                start += len + 1;
            }
            self.partial.drain(..start);
            if self.partial.len() > max_line {
                return Err(Overrun::Line(max_line));
            }
            if n < CHUNK {
                return Ok(got);
            }
        }
    }

    /// Send what is left of a last line without its newline.
    fn flush(&mut self, tx: &mpsc::Sender<Piece>) {
        if !self.partial.is_empty() {
            let _ = tx.send((self.source, Ok(crate::text::line(&self.partial))));
            self.partial.clear();
        }
    }
}

/// Poll `tails` until qemu has exited (then read them one last time): every millisecond
/// while output flows (or stopped less than 0.2 s ago: a guest settling is quiet, and its end
/// should be seen at once), backing off to 10 ms when it does not. A source past `limits`
/// is reported once, and nothing more is read.
fn poll(mut tails: Vec<Tail>, tx: &mpsc::Sender<Piece>, exited: &AtomicBool, limits: Limits) {
    let mut idle = 0u32;
    let mut total = 0u64;
    loop {
        let last = exited.load(Ordering::SeqCst);
        let mut got = false;
        for t in &mut tails {
            match t.pump(tx, limits.line) {
                Ok(n) => {
                    got |= n > 0;
                    total = total.saturating_add(n);
                }
                Err(o) => {
                    let _ = tx.send((t.source, Err(o)));
                    return;
                }
            }
            if let Some(max) = limits.total.filter(|m| total > *m) {
                let _ = tx.send((t.source, Err(Overrun::Total(max))));
                return;
            }
        }
        if last {
            for t in &mut tails {
                t.flush(tx);
            }
            return;
        }
        idle = if got { 0 } else { idle.saturating_add(1) };
        let pause = if idle < 200 { 1 } else { 10 };
        std::thread::sleep(Duration::from_millis(pause));
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
    /// The guest printed past [`GUEST_LIMITS`] on this source: nothing more is read.
    Overrun(Source, Overrun),
}

/// The error for a guest that printed past [`GUEST_LIMITS`].
pub fn overrun_error(source: Source, o: Overrun) -> crate::error::UserError {
    let on = match source {
        Source::Console => "on its console",
        Source::Channel => "on its protocol channel",
    };
    crate::error::UserError::new(format!(
        "the guest {} {on}; cargo-kmod stopped it",
        o.passed()
    ))
    .with_hint("a module that prints without end (or without newlines) would fill the host's memory; look at the console with `-v`")
}

/// A qemu running in the background. Dropping it kills qemu.
pub struct RunningBoot {
    guard: reaper::Guard,
    pid: u32,
    waiter: Option<std::thread::JoinHandle<std::io::Result<ExitStatus>>>,
    poller: Option<std::thread::JoinHandle<()>>,
    rx: mpsc::Receiver<Piece>,
    err_reader: Option<std::thread::JoinHandle<String>>,
    pub start: Instant,
    /// The qemu command line.
    pub command: String,
    console: Vec<String>,
    channel: Vec<String>,
    _dir: reaper::TempDir,
}

impl RunningBoot {
    /// The next line, waiting at most until `deadline`. Lines are kept for the [`BootLog`].
    pub fn recv(&mut self, deadline: Instant) -> Recv {
        let now = Instant::now();
        if now >= deadline {
            return Recv::TimedOut;
        }
        match self.rx.recv_timeout(deadline - now) {
            Ok((source, Ok(l))) => {
                match source {
                    Source::Console => self.console.push(l.clone()),
                    Source::Channel => self.channel.push(l.clone()),
                }
                Recv::Line(source, l)
            }
            Ok((source, Err(o))) => Recv::Overrun(source, o),
            Err(mpsc::RecvTimeoutError::Timeout) => Recv::TimedOut,
            Err(mpsc::RecvTimeoutError::Disconnected) => Recv::Closed,
        }
    }

    /// qemu's process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Kill qemu (unless `end` is `None`: it already exited), wait for it, and return what
    /// it printed.
    pub fn finish(mut self, end: Option<BootEnd>) -> Result<BootLog> {
        if end.is_some() {
            self.guard.kill();
        }
        let status = self
            .waiter
            .take()
            .and_then(|w| w.join().ok())
            .context("cannot wait for qemu")?
            .context("cannot wait for qemu")?;
        if let Some(p) = self.poller.take() {
            let _ = p.join();
        }
        // Lines that raced the end are still worth having.
        while let Ok((source, Ok(l))) = self.rx.try_recv() {
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

impl Drop for RunningBoot {
    fn drop(&mut self) {
        if let Some(w) = self.waiter.take() {
            self.guard.kill();
            let _ = w.join();
        }
        if let Some(p) = self.poller.take() {
            let _ = p.join();
        }
    }
}

/// A qemu run in the foreground: registered with the reaper, killed and reaped when dropped.
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
    use crate::kernel::Arch;
    use crate::qemu::machine::Accel;

    #[test]
    fn deadlines_never_overflow() {
        let now = Instant::now();
        assert_eq!(
            deadline(now, Duration::from_secs(5)),
            now + Duration::from_secs(5)
        );
        let far = deadline(now, Duration::from_secs(u64::MAX));
        assert!(far > now + Duration::from_secs(50 * 365 * 24 * 3600));
    }

    #[test]
    fn tails_send_whole_lines() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("f");
        let (tx, rx) = mpsc::channel();
        let mut t = Tail::new(path.clone(), Source::Channel);
        assert_eq!(t.pump(&tx, 100), Ok(0), "no file yet");
        std::fs::write(&path, b"one\r\ntw").unwrap();
        assert_eq!(t.pump(&tx, 100), Ok(7));
        assert_eq!(
            rx.try_recv().unwrap(),
            (Source::Channel, Ok("one".to_string()))
        );
        assert!(rx.try_recv().is_err());
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(b"o\nthree").unwrap();
        assert!(t.pump(&tx, 100).unwrap() > 0);
        assert_eq!(rx.try_recv().unwrap().1, Ok("two".to_string()));
        t.flush(&tx);
        assert_eq!(rx.try_recv().unwrap().1, Ok("three".to_string()));
    }

    /// A guest line longer than the limit is an overrun as soon as it passes the limit,
    /// with or without its newline, and the file is never read whole; the poller reports
    /// too much output in all and stops reading.
    #[test]
    fn guest_lines_and_totals_are_bounded() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("f");
        let (tx, _rx) = mpsc::channel();
        let mut t = Tail::new(path.clone(), Source::Console);
        std::fs::write(&path, vec![b'x'; 10 * CHUNK as usize]).unwrap();
        assert_eq!(t.pump(&tx, 1000), Err(Overrun::Line(1000)));
        assert!(t.partial.len() <= 1000 + CHUNK as usize, "read whole");
        let mut t = Tail::new(path.clone(), Source::Console);
        std::fs::write(&path, b"short\nmuch too long a line\n").unwrap();
        assert_eq!(t.pump(&tx, 10), Err(Overrun::Line(10)));

        let (tx, rx) = mpsc::channel();
        std::fs::write(&path, b"line\n".repeat(100)).unwrap();
        let exited = AtomicBool::new(true);
        let limits = Limits {
            total: Some(300),
            ..GUEST_LIMITS
        };
        poll(vec![Tail::new(path, Source::Console)], &tx, &exited, limits);
        let pieces: Vec<Piece> = rx.try_iter().collect();
        assert_eq!(
            pieces.last(),
            Some(&(Source::Console, Err(Overrun::Total(300))))
        );
        assert_eq!(
            overrun_error(Source::Console, Overrun::Line(1 << 20)).message,
            "the guest printed a line longer than 1 MiB on its console; cargo-kmod stopped it"
        );
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
            kernel_args: vec![],
            virtio_disk: false,
        };
        let mut b = Boot::new(m, "/i".into());
        b.cmdline = vec!["quiet".into()];
        assert_eq!(b.append(), "console=ttyS0 panic=-1 quiet");
        let a: Vec<String> = b
            .args(Some(Path::new("/t")))
            .iter()
            .map(|s| s.to_string_lossy().into_owned())
            .collect();
        let s = a.join(" ");
        assert!(
            s.contains(
                "-serial file:/t/console -serial file:/t/channel -kernel /k/vmlinux -initrd /i"
            ),
            "{s}"
        );
        let a: Vec<String> = b
            .args(None)
            .iter()
            .map(|s| s.to_string_lossy().into_owned())
            .collect();
        assert!(a.join(" ").contains("-serial mon:stdio -kernel"), "{a:?}");
    }
}
