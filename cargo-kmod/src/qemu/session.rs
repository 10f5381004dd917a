//! The one qemu entry point: a [`GuestPlan`] booted on a [`Machine`], read back as a
//! [`Transcript`].
//!
//! [`run_plan`] builds the initramfs (busybox, the plan's files, the generated `/init` with a
//! fresh [`Token`]), boots, feeds every line into the transcript and stops qemu as soon as
//! the transcript is complete. [`spawn_plan`] starts a long-running guest
//! ([`Then::Wait`]) and returns a handle that waits for its `ready` and kills it on drop.
//! [`run_interactive`] boots a plan with the terminal as the guest's console.
//! `cargo kmod test`, `cargo kmod run` and the integration tests all come through here.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::guest::plan::{FileSource, GuestFile, GuestPlan, Then};
use crate::guest::protocol::{Event, Source, Token};
use crate::guest::run::{BootEnd, BootLog, GuestRun};
use crate::guest::transcript::Transcript;
use crate::kernel::home::Home;
use crate::qemu::boot::{self, Boot, Flow, Recv, RunningBoot};
use crate::qemu::dtb;
use crate::qemu::initramfs::Initramfs;
use crate::qemu::machine::{Channel, Machine};
use crate::qemu::reaper;
use crate::qemu::snapshot;
use crate::qemu::tools;
use crate::shell::Shell;

/// What the caller sees while the guest runs.
#[derive(Debug, Clone, Copy)]
pub enum Seen<'a> {
    /// A console line that is not protocol.
    Console(&'a str),
    /// A protocol event (kernel log records included).
    Event(&'a Event),
}

impl GuestRun {
    /// Whether the guest ran its whole script and the host got all of it.
    pub fn complete(&self) -> bool {
        self.transcript.complete()
    }

    /// An error when the script never began: qemu failed, the kernel did not boot, or the
    /// guest hung before its first line.
    pub fn ensure_began(&self, timeout: Duration) -> Result<()> {
        if self.transcript.begin_taint.is_some() {
            return Ok(());
        }
        Err(match &self.boot.end {
            BootEnd::TimedOut => boot::timeout_error(&self.boot, timeout).into(),
            BootEnd::Exited(status) => {
                boot::exit_error(&self.boot, *status, "its test script began").into()
            }
            BootEnd::Stopped => anyhow::anyhow!("the guest stopped before its script began"),
        })
    }

    /// An error unless the whole script ran and arrived.
    pub fn ensure_complete(&self, timeout: Duration) -> Result<()> {
        self.ensure_began(timeout)?;
        if self.complete() {
            return Ok(());
        }
        Err(match &self.boot.end {
            BootEnd::TimedOut => boot::timeout_error(&self.boot, timeout).into(),
            BootEnd::Exited(status) => {
                boot::exit_error(&self.boot, *status, "the end of its script").into()
            }
            BootEnd::Stopped => anyhow::anyhow!("the guest stopped before the end of its script"),
        })
    }
}

/// The initramfs of `plan` with `init` as `/init`, written to `dir`.
fn write_image(
    shell: &Shell,
    home: &Home,
    machine: &Machine,
    plan: &GuestPlan,
    init: &str,
    dir: &std::path::Path,
) -> Result<PathBuf> {
    let busybox = tools::busybox(home, machine.arch)?;
    let mut fs = Initramfs::with_busybox(&busybox, init)?;
    add_files(shell, &mut fs, &plan.files)?;
    let initrd = dir.join("initramfs.cpio");
    fs.write(&initrd)?;
    Ok(initrd)
}

/// `plan`'s files into `fs`.
pub(crate) fn add_files<'a>(
    shell: &Shell,
    fs: &mut Initramfs,
    files: impl IntoIterator<Item = &'a GuestFile>,
) -> Result<()> {
    for f in files {
        match &f.source {
            FileSource::Host(p) => {
                fs.file_from(&f.guest_path, p, f.mode)?;
            }
            FileSource::Bytes(b) => {
                fs.file(&f.guest_path, b.clone(), f.mode);
            }
            FileSource::Program(p) => {
                fs.program_from(shell, &f.guest_path, p)?;
            }
            FileSource::Symlink(target) => {
                fs.symlink(&f.guest_path, target);
            }
        }
    }
    Ok(())
}

fn prepare(
    shell: &Shell,
    machine: &Machine,
    plan: &GuestPlan,
) -> Result<(Boot, Token, reaper::TempDir)> {
    let token = Token::random()?;
    let init = plan.script(&machine.channel, &token);
    let dir = reaper::TempDir::new()?;
    let home = Home::from_env()?;
    let initrd = write_image(shell, &home, machine, plan, &init, dir.path())?;
    let mut boot = Boot::new(machine.clone(), initrd);
    boot.machine.dtb = dtb::boot_tree(shell, &home, machine, dir.path());
    boot.cmdline = plan.kernel_args(&machine.channel);
    boot.timeout = plan.timeout;
    Ok((boot, token, dir))
}

/// Boot `plan` on `machine` and read it back. `on_seen` gets every console line and event
/// as it arrives (for `-v`, progress, and `run --exec`'s live output). Errors are for a boot
/// that could not start (no qemu, no busybox, an unreadable file); what happened in the
/// guest is in the [`GuestRun`].
pub fn run_plan(
    shell: &Shell,
    machine: &Machine,
    plan: &GuestPlan,
    mut on_seen: impl FnMut(Seen<'_>),
) -> Result<GuestRun> {
    let resume = snapshot::applies(machine, plan)?;
    let batch;
    let machine = if plan.then == Then::PowerOff {
        batch = machine.for_batch();
        &batch
    } else {
        machine
    };
    if resume {
        match prepare_resumed(shell, machine, plan) {
            Ok(Some((snap, boot, token, _dir))) => {
                let run = watch(shell, machine, plan, &boot, token, &mut on_seen)?;
                if run.transcript.begin_taint.is_some() {
                    return Ok(run);
                }
                // Not one line: the snapshot did not resume (qemu refused the file, or the
                // guest said nothing). Else the guest resumed and died before its script
                // began (its files, not the snapshot): the cold boot says why.
                if run.boot.lines.is_empty() && run.boot.channel.is_empty() {
                    snap.discard(shell, &resume_failure(&run.boot));
                } else {
                    shell.verbose(
                        "Booting",
                        format_args!("cold: the resumed guest stopped before its script began"),
                    );
                }
            }
            Ok(None) => {}
            Err(e) => shell.verbose(
                "Skipping",
                format_args!("the snapshot, booting cold: {e:#}"),
            ),
        }
    }
    let (boot, token, _dir) = prepare(shell, machine, plan)?;
    watch(shell, machine, plan, &boot, token, &mut on_seen)
}

/// A resumed boot of `plan`: the snapshot (made now if needed) and its boot, or `None` when
/// the run's files do not fit its disk.
fn prepare_resumed(
    shell: &Shell,
    machine: &Machine,
    plan: &GuestPlan,
) -> Result<Option<(snapshot::Snapshot, Boot, Token, reaper::TempDir)>> {
    let token = Token::random()?;
    let script = plan.resumed_script(&machine.channel, &token, &snapshot::seed()?);
    let Some(disk) = snapshot::run_disk_for(shell, plan, &script)? else {
        return Ok(None);
    };
    let home = Home::from_env()?;
    let cmdline = plan.kernel_args(&machine.channel);
    let snap = snapshot::Snapshot::get(shell, &home, machine, &cmdline, plan)?;
    let dir = reaper::TempDir::new()?;
    let boot = snap.boot(shell, machine, &cmdline, plan.timeout, &disk, dir.path())?;
    Ok(Some((snap, boot, token, dir)))
}

/// Why a resumed boot printed nothing: it timed out, or qemu's own last words.
fn resume_failure(log: &BootLog) -> String {
    if log.end == BootEnd::TimedOut {
        return format!("the guest said nothing for {} s", log.elapsed.as_secs());
    }
    let qemu = log.qemu_stderr.trim();
    format!(
        "qemu: {}",
        qemu.lines()
            .last()
            .unwrap_or("exited before the guest said anything")
    )
}

/// Run `boot` and read it into a transcript for `plan`, stopping qemu once it is complete.
fn watch(
    shell: &Shell,
    machine: &Machine,
    plan: &GuestPlan,
    boot: &Boot,
    token: Token,
    on_seen: &mut impl FnMut(Seen<'_>),
) -> Result<GuestRun> {
    let shared = machine.channel == Channel::SharedConsole;
    let mut t = Transcript::new(token, shared, plan.steps.len());
    let wait = plan.then == Then::Wait;
    let log = boot.run(shell, |source, line| {
        match t.feed(source, line) {
            Some(e) => on_seen(Seen::Event(&e)),
            None if source == Source::Console => on_seen(Seen::Console(line)),
            None => {}
        }
        if t.complete() || (wait && t.ready) {
            Flow::Stop
        } else {
            Flow::Continue
        }
    })?;
    Ok(GuestRun {
        transcript: t,
        boot: log,
    })
}

/// Boot `plan` with the terminal attached to the guest's console (Ctrl-A X quits qemu).
pub fn run_interactive(
    shell: &Shell,
    machine: &Machine,
    plan: &GuestPlan,
) -> Result<std::process::ExitStatus> {
    let (boot, _token, _dir) = prepare(shell, machine, plan)?;
    boot.run_interactive(shell)
}

/// A long-running guest (see [`spawn_plan`]). Dropping it kills qemu.
pub struct RunningGuest {
    boot: RunningBoot,
    pub transcript: Transcript,
    timeout: Duration,
    _dir: reaper::TempDir,
}

impl RunningGuest {
    /// Wait until the guest reports `ready` (its steps all ran), at most `timeout`. A guest
    /// that stops or hangs first is an error naming where its log stopped.
    pub fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let deadline = boot::deadline(Instant::now(), timeout);
        while !self.transcript.ready {
            match self.boot.recv(deadline) {
                Recv::Line(source, l) => {
                    self.transcript.feed(source, &l);
                }
                Recv::TimedOut => {
                    crate::bail_user!(
                        "the guest was not ready within {}s; its log stopped at: `{}`",
                        timeout.as_secs(),
                        self.transcript.last_words()
                    )
                }
                Recv::Closed => crate::bail_user!(
                    "the guest stopped before it was ready; its log stopped at: `{}`",
                    self.transcript.last_words()
                ),
                Recv::Overrun(source, o) => return Err(boot::overrun_error(source, o).into()),
            }
        }
        Ok(())
    }

    /// The next line the guest printed (fed into the transcript too), waiting at most until
    /// `deadline`.
    pub fn recv(&mut self, deadline: Instant) -> Recv {
        let r = self.boot.recv(deadline);
        if let Recv::Line(source, l) = &r {
            self.transcript.feed(*source, l);
        }
        r
    }

    /// qemu's process id.
    pub fn pid(&self) -> u32 {
        self.boot.pid()
    }

    /// Kill the guest and return everything it printed.
    pub fn stop(self) -> Result<GuestRun> {
        let log = self.boot.finish(Some(BootEnd::Stopped))?;
        Ok(GuestRun {
            transcript: self.transcript,
            boot: log,
        })
    }

    /// The plan's timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }
}

/// Start `plan` (normally with [`Then::Wait`]) in the background, e.g. with
/// `machine.extra_args` forwarding a port; qemu is killed when the handle is dropped or
/// cargo-kmod exits.
pub fn spawn_plan(shell: &Shell, machine: &Machine, plan: &GuestPlan) -> Result<RunningGuest> {
    let (boot, token, dir) = prepare(shell, machine, plan)?;
    let shared = machine.channel == Channel::SharedConsole;
    let running = boot.spawn(shell)?;
    Ok(RunningGuest {
        boot: running,
        transcript: Transcript::new(token, shared, plan.steps.len()),
        timeout: plan.timeout,
        _dir: dir,
    })
}
