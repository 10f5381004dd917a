//! Booting a kernel image under qemu with a console on a pipe, a deadline and no leftovers.
//!
//! [`Boot`] is the qemu invocation (arch, image, initramfs, kernel command line, accelerator,
//! timeout). [`Boot::run`] streams the serial console line by line to a callback that may
//! stop the guest early, kills qemu at the deadline and returns the whole console as a
//! [`BootLog`]. [`Boot::run_interactive`] hands the terminal to the guest (`cargo kmod run`).
//! [`boot_to_marker`] is the one-call form: boot a tree with a shell script as init and wait
//! for a marker line.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::qemu::initramfs::{self, Initramfs};
use crate::qemu::reaper;
use crate::shell::Shell;
use crate::tree::home::Home;
use crate::tree::{Arch, KernelTree};

/// How qemu executes the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    /// Software emulation: slower, works everywhere (the dependable default).
    Tcg,
    /// Hardware virtualization through `/dev/kvm` (host arch only).
    Kvm,
}

impl Accel {
    pub fn name(self) -> &'static str {
        match self {
            Accel::Tcg => "tcg",
            Accel::Kvm => "kvm",
        }
    }
}

/// What the console callback tells the runner.
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
    /// The console callback returned [`Flow::Stop`]; qemu was killed.
    Stopped,
    /// The deadline passed; qemu was killed.
    TimedOut,
}

/// The console of one boot.
#[derive(Debug, Clone)]
pub struct BootLog {
    /// Console lines, `\r` and control characters removed, invalid UTF-8 replaced.
    pub lines: Vec<String>,
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

    /// The last `n` lines.
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
    pub arch: Arch,
    /// The kernel image (`bzImage`, arm64 `Image`).
    pub image: PathBuf,
    /// The initramfs (a `newc` cpio, optionally gzipped).
    pub initrd: PathBuf,
    /// Extra kernel command-line arguments, after `console=... panic=-1`.
    pub cmdline: Vec<String>,
    pub accel: Accel,
    pub memory_mb: u32,
    pub timeout: Duration,
    /// Extra qemu arguments after the rest (e.g. a `-nic` for a guest reached over ssh).
    pub qemu_args: Vec<OsString>,
    /// Set from another thread to kill qemu (a guest that runs in the background).
    pub stop: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

impl Boot {
    /// A TCG boot of `tree`'s image with `initrd`, a 60 s deadline. Checks that the image and
    /// the qemu binary exist.
    pub fn for_tree(tree: &KernelTree, initrd: &Path) -> Result<Boot> {
        let image = tree.image();
        if !image.is_file() {
            crate::bail_user!(
                "kernel tree `{}` has no boot image `{}`", tree.dir.display(), tree.arch.image();
                hint = "build the kernel first (`make -C {}`)", tree.dir.display()
            );
        }
        qemu_program(tree.arch)?;
        Ok(Boot {
            arch: tree.arch,
            image,
            initrd: initrd.to_path_buf(),
            cmdline: Vec::new(),
            accel: Accel::Tcg,
            memory_mb: 256,
            timeout: Duration::from_secs(60),
            qemu_args: Vec::new(),
            stop: None,
        })
    }

    /// The console device of the arch's machine.
    pub fn console(&self) -> &'static str {
        match self.arch {
            Arch::X86_64 => "ttyS0",
            Arch::Arm64 => "ttyAMA0",
        }
    }

    /// The full kernel command line.
    pub fn append(&self) -> String {
        let mut a = vec![
            format!("console={}", self.console()),
            "panic=-1".to_string(),
        ];
        a.extend(self.cmdline.iter().cloned());
        a.join(" ")
    }

    /// qemu's arguments. `interactive` multiplexes the monitor on the terminal (Ctrl-A X
    /// quits) instead of a bare serial pipe.
    pub fn args(&self, interactive: bool) -> Vec<OsString> {
        let mut a: Vec<OsString> = Vec::new();
        let mut push = |s: &str| a.push(s.into());
        if self.arch == Arch::Arm64 {
            push("-M");
            push("virt");
            push("-cpu");
            push(if self.accel == Accel::Kvm {
                "host"
            } else {
                "cortex-a57"
            });
        }
        for s in [
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            "-no-reboot",
            "-smp",
            "1",
        ] {
            push(s);
        }
        push("-m");
        push(&self.memory_mb.to_string());
        push("-accel");
        push(self.accel.name());
        push("-serial");
        push(if interactive { "mon:stdio" } else { "stdio" });
        a.push("-kernel".into());
        a.push(self.image.clone().into());
        a.push("-initrd".into());
        a.push(self.initrd.clone().into());
        a.push("-append".into());
        a.push(self.append().into());
        a.extend(self.qemu_args.iter().cloned());
        a
    }

    fn command(&self, shell: &Shell, interactive: bool) -> Result<(Command, String)> {
        let qemu = qemu_program(self.arch)?;
        let sh = xshell::Shell::new()?;
        let args = self.args(interactive);
        let cmd = xshell::cmd!(sh, "{qemu} {args...}");
        let line = cmd.to_string();
        shell.verbose("Running", format_args!("`{line}`"));
        Ok((Command::from(cmd), line))
    }

    /// Boot, streaming each console line to `on_line` until qemu exits, `on_line` returns
    /// [`Flow::Stop`] or the deadline passes (then qemu is killed and the log says so).
    pub fn run(&self, shell: &Shell, mut on_line: impl FnMut(&str) -> Flow) -> Result<BootLog> {
        let (mut command, line) = self.command(shell, false)?;
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        reaper::configure(&mut command, true);
        let start = Instant::now();
        let child = command
            .spawn()
            .with_context(|| format!("cannot start `{line}`"))?;
        let mut qemu = Running::new(child);
        let stdout = qemu.child.stdout.take().context("qemu stdout")?;
        let mut stderr = qemu.child.stderr.take().context("qemu stderr")?;
        let (tx, rx) = mpsc::channel::<String>();
        let reader = std::thread::spawn(move || {
            for raw in BufReader::new(stdout).split(b'\n').map_while(Result::ok) {
                if tx.send(clean_line(&raw)).is_err() {
                    break;
                }
            }
        });
        let err_reader = std::thread::spawn(move || {
            let mut s = Vec::new();
            let _ = stderr.read_to_end(&mut s);
            String::from_utf8_lossy(&s).into_owned()
        });
        let deadline = start + self.timeout;
        let mut lines = Vec::new();
        let mut end = None;
        loop {
            let now = Instant::now();
            if now >= deadline {
                end = Some(BootEnd::TimedOut);
                break;
            }
            if self
                .stop
                .as_ref()
                .is_some_and(|s| s.load(std::sync::atomic::Ordering::SeqCst))
            {
                end = Some(BootEnd::Stopped);
                break;
            }
            // With a stop flag, wake up now and then to look at it.
            let wait = match &self.stop {
                Some(_) => (deadline - now).min(Duration::from_millis(50)),
                None => deadline - now,
            };
            match rx.recv_timeout(wait) {
                Ok(l) => {
                    let flow = on_line(&l);
                    lines.push(l);
                    if flow == Flow::Stop {
                        end = Some(BootEnd::Stopped);
                        break;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if Instant::now() >= deadline {
                        end = Some(BootEnd::TimedOut);
                        break;
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        if end.is_some() {
            qemu.kill();
        }
        let status = qemu.wait()?;
        let _ = reader.join();
        // Lines that raced the kill are still worth having.
        lines.extend(rx.try_iter());
        let qemu_stderr = err_reader.join().unwrap_or_default();
        let end = end.unwrap_or(BootEnd::Exited(status));
        Ok(BootLog {
            lines,
            end,
            elapsed: start.elapsed(),
            command: line,
            qemu_stderr,
        })
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

/// A running qemu: registered with the reaper, killed and reaped when dropped.
struct Running {
    child: Child,
    _guard: reaper::Guard,
    waited: bool,
}

impl Running {
    fn new(child: Child) -> Running {
        let guard = reaper::Guard::register(child.id());
        Running {
            child,
            _guard: guard,
            waited: false,
        }
    }

    fn kill(&mut self) {
        self._guard.kill();
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
            self._guard.kill();
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

/// The qemu binary for `arch`, or a user error naming the package to install.
pub fn qemu_program(arch: Arch) -> Result<PathBuf> {
    if let Some(p) = std::env::var_os(format!("CARGO_KMOD_QEMU_{}", arch.name().to_uppercase())) {
        return Ok(PathBuf::from(p));
    }
    match crate::tree::toolchain::which(arch.qemu()) {
        Some(p) => Ok(p),
        None => crate::bail_user!(
            "`{}` not found in `PATH`: cannot boot {} kernels", arch.qemu(), arch;
            hint = "install Debian's `{}` package", match arch {
                Arch::X86_64 => "qemu-system-x86",
                Arch::Arm64 => "qemu-system-arm",
            }
        ),
    }
}

/// What [`boot_to_marker`] boots.
#[derive(Debug, Clone, Default)]
pub struct MarkerBoot {
    /// Shell commands run by `/init` (busybox `sh`, all applets on `PATH`) before the marker.
    pub script: String,
    /// Extra files: (guest path, host path), copied into the initramfs.
    pub files: Vec<(String, PathBuf)>,
    /// Extra kernel command-line arguments.
    pub cmdline: Vec<String>,
    /// Default 60 s.
    pub timeout: Option<Duration>,
    /// Default TCG.
    pub accel: Option<Accel>,
}

/// Boot `tree` with a busybox initramfs whose `/init` mounts `/proc`, `/sys` and `/dev`, runs
/// `spec.script`, prints `marker` on a line of its own and powers off. Returns the console once
/// the marker line has been seen (qemu is killed right then); a timeout, or a guest that ends
/// without printing the marker, is an error naming the line where the log stopped.
pub fn boot_to_marker(
    shell: &Shell,
    tree: &KernelTree,
    spec: &MarkerBoot,
    marker: &str,
) -> Result<BootLog> {
    let home = Home::from_env()?;
    let busybox = initramfs::busybox(&home, tree.arch)?;
    let init = format!(
        "{}{}\necho '{}'\nreboot -f\n",
        init_prelude(),
        spec.script,
        marker.replace('\'', "'\\''")
    );
    let mut fs = Initramfs::with_busybox(&busybox, &init)?;
    for (guest, host) in &spec.files {
        fs.file_from(guest, host, 0o755)?;
    }
    let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
    let initrd = dir.path().join("initramfs.cpio");
    fs.write(&initrd)?;
    let mut boot = Boot::for_tree(tree, &initrd)?;
    boot.cmdline = spec.cmdline.clone();
    if let Some(t) = spec.timeout {
        boot.timeout = t;
    }
    if let Some(a) = spec.accel {
        boot.accel = a;
    }
    let log = boot.run(shell, |l| {
        if l.trim() == marker {
            Flow::Stop
        } else {
            Flow::Continue
        }
    })?;
    match &log.end {
        BootEnd::Stopped => Ok(log),
        BootEnd::TimedOut => Err(timeout_error(&log, boot.timeout).into()),
        BootEnd::Exited(status) => Err(exit_error(&log, *status, marker).into()),
    }
}

/// `/init`'s first lines: busybox applets on `PATH`, `/proc`, `/sys`, `/dev` mounted.
pub fn init_prelude() -> &'static str {
    "#!/bin/sh\n\
     /bin/busybox --install -s /bin\n\
     export PATH=/bin\n\
     mount -t proc proc /proc\n\
     mount -t sysfs sysfs /sys\n\
     mount -t devtmpfs devtmpfs /dev 2>/dev/null\n"
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

/// A guest that ended without the expected marker: qemu's own error, or where the log stopped.
pub fn exit_error(log: &BootLog, status: ExitStatus, marker: &str) -> crate::error::UserError {
    let qemu_err = log
        .qemu_stderr
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty());
    match (qemu_err, status.success()) {
        (Some(e), _) if !status.success() || log.lines.is_empty() => {
            crate::error::UserError::new(format!("qemu failed ({status}): {e}"))
        }
        _ if log.lines.iter().all(|l| l.trim().is_empty()) => {
            crate::error::UserError::new(format!(
                "the guest printed nothing on its console ({status}): `{}` did not boot",
                log.command
                    .split(" -kernel ")
                    .nth(1)
                    .and_then(|s| s.split(' ').next())
                    .unwrap_or("the image")
            ))
            .with_hint("check that the image is a kernel for this arch with a serial console")
        }
        _ => crate::error::UserError::new(format!(
            "the guest stopped before printing `{marker}`; its log stopped at: `{}`",
            log.last_line()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_line_drops_control_characters() {
        assert_eq!(clean_line(b"ok 1 adds\r"), "ok 1 adds");
        assert_eq!(clean_line(b"\x1b[0mhi\x07\tx"), "[0mhi\tx");
        assert_eq!(clean_line(b"\xff\xfeab"), "\u{fffd}\u{fffd}ab");
    }

    #[test]
    fn args_per_arch() {
        let b = Boot {
            arch: Arch::Arm64,
            image: "/k/Image".into(),
            initrd: "/i".into(),
            cmdline: vec!["quiet".into()],
            accel: Accel::Tcg,
            memory_mb: 256,
            timeout: Duration::from_secs(1),
            qemu_args: vec![],
            stop: None,
        };
        let a: Vec<String> = b
            .args(false)
            .iter()
            .map(|s| s.to_string_lossy().into_owned())
            .collect();
        assert_eq!(&a[..4], ["-M", "virt", "-cpu", "cortex-a57"]);
        assert!(a.ends_with(&["-append".into(), "console=ttyAMA0 panic=-1 quiet".into()]));
        let x = Boot {
            arch: Arch::X86_64,
            ..b
        };
        assert_eq!(x.append(), "console=ttyS0 panic=-1 quiet");
        assert!(!x.args(false).contains(&OsString::from("virt")));
    }
}
