//! Test boots resumed from a snapshot of a booted guest.
//!
//! Most of an arm64 test boot under TCG is the kernel's own boot to `/init`: code that runs
//! once and is translated once, every boot. So a test boot on a kernel that can read a
//! virtio disk ([`Machine::virtio_disk`]) boots that kernel once with a template `/init`,
//! saves the booted guest with qemu's migration to a file (`migrate file:...`), and every
//! later test boot of the same kernel, qemu and command line resumes it
//! (`-incoming file:...`). The run's own files (its modules, the generated script with a
//! fresh token, a fresh random seed for the kernel's pool) come on a virtio disk the
//! template's `/init` polls (the page cache dropped first, so nothing of it is cached before the snapshot):
//! a header block `cargo-kmod-run N`, then a `newc` cpio of N 64 KiB blocks, unpacked into
//! the guest's root before the script runs. Everything after that is the ordinary test
//! boot: the same script, the whole kernel log from the first boot record on (the reader
//! starts after the resume and reads the log from its start), the same verdict.
//!
//! The snapshot lives in `$CARGO_KMOD_HOME/qemu/snapshots/<key>/` (`state`, the template's
//! `initramfs.cpio` and `virt.dtb`), keyed by [`key`]; the [`KEEP`] most recently used are
//! kept. A snapshot that does not resume (qemu refuses the file, or the guest says nothing
//! within 10 s) is removed and the run boots cold; so does a run whose guest resumed but
//! died before its script began, keeping the snapshot. An attempt to make one that failed
//! is noted in `<key>.failed` and not repeated. `CARGO_KMOD_SNAPSHOT=off` always boots cold.
//!
//! What a resumed guest shares with every other run of the same snapshot: its boot log,
//! its uptime at the start, its KASLR offsets, and its random state until the kernel next
//! reseeds its generator (fresh host bytes are written into the pool, which mixes them in
//! but does not reseed at once).

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

#[cfg(doc)]
use crate::guest::plan::Preload;
use crate::guest::plan::{FileSource, GuestPlan, Then};
use crate::guest::protocol::{random_bytes, Source};
use crate::kernel::home::Home;
use crate::kernel::Arch;
use crate::qemu::boot::{Boot, Recv};
use crate::qemu::dtb;
use crate::qemu::initramfs::Initramfs;
use crate::qemu::machine::{Accel, Channel, Machine};
use crate::qemu::reaper;
use crate::shell::Shell;

/// The run disk's size, the same for the template and every run (the guest knows the size
/// from its boot): a run whose files do not fit boots cold.
pub const DISK_BYTES: u64 = 64 << 20;
/// The header block and the unit of the payload's length.
const BLOCK: u64 = 64 << 10;
/// The header's first word.
const HEADER: &str = "cargo-kmod-run";
/// What the template's `/init` writes on the channel once it polls the disk.
const READY: &str = "cargo-kmod: snapshot ready";
/// What it writes on the console once a run disk is there.
const RESUMED: &str = "cargo-kmod: resumed";
/// How many snapshots `$CARGO_KMOD_HOME/qemu/snapshots/` keeps (about 30 MiB each): one
/// per kernel, and one per kernel and set of overlay test devices.
pub const KEEP: usize = 12;
/// Where the template keeps the output of the plan's preloaded step ([`Preload`]).
pub const PRELOAD_OUT: &str = "/tmp/kmod-preload.out";
/// What the template writes on the channel when the preloaded step failed.
const PRELOAD_FAILED: &str = "cargo-kmod: preload failed";
/// Where the run's script is unpacked.
pub const RUN_SCRIPT: &str = "/run/kmod/init";

/// Whether a boot of `plan` on `machine` (before [`Machine::for_batch`]) resumes a snapshot:
/// a test boot that powers off, on arm64 `-M virt` under TCG with one CPU and nothing added
/// to the machine, on a kernel that reads virtio disks, unless `CARGO_KMOD_SNAPSHOT=off`.
pub fn applies(machine: &Machine, plan: &GuestPlan) -> Result<bool> {
    Ok(suits(machine, plan) && enabled()?)
}

fn suits(m: &Machine, plan: &GuestPlan) -> bool {
    m.virtio_disk
        && m.arch == Arch::Arm64
        && m.accel == Accel::Tcg
        && m.model.as_deref() == Some("virt")
        && m.smp == Some(1)
        && m.firmware.is_none()
        && m.dtb.is_none()
        && m.adds_only_test_devices()
        && matches!(m.channel, Channel::Uart { .. })
        && plan.then == Then::PowerOff
}

/// PCI and virtio-mmio test devices ([`Machine::adds_only_test_devices`]) are part of the
/// snapshot's key (its command line), so a snapshot is made and resumed with the same
/// devices. What a model does not migrate (a `pci-testdev` forgets its BAR addresses) the
/// resumed guest writes back first, from the header the template kept ([`template_init`]).
///
/// `CARGO_KMOD_SNAPSHOT`: `on` (or unset) or `off`.
fn enabled() -> Result<bool> {
    match crate::env::Env::get()
        .var("CARGO_KMOD_SNAPSHOT")
        .unwrap_or_default()
    {
        "" | "on" => Ok(true),
        "off" => Ok(false),
        other => crate::bail_user!(
            "`CARGO_KMOD_SNAPSHOT` is `{}`", other;
            hint = "use `on` (test boots resume a snapshot of the booted kernel) or `off`"
        ),
    }
}

/// A saved, booted guest waiting for its run disk.
#[derive(Debug, Clone)]
pub struct Snapshot {
    dir: PathBuf,
}

impl Snapshot {
    /// The snapshot for test boots of `machine` (already [`Machine::for_batch`]) with the
    /// kernel arguments `cmdline`: the cached one, or one made now (one boot of the kernel).
    /// An attempt that failed is not made again for the same key: its reason is kept in
    /// `<key>.failed` beside the snapshots, and the error names that file.
    pub fn get(
        shell: &Shell,
        home: &Home,
        machine: &Machine,
        cmdline: &[String],
        plan: &GuestPlan,
    ) -> Result<Self> {
        let busybox = crate::qemu::tools::busybox(home, machine.arch)?;
        let root = home.snapshots_dir();
        let Channel::Uart { device } = &machine.channel else {
            bail!("the machine has no protocol UART of its own");
        };
        let preload = Preloaded::of(plan)?;
        let template = Template {
            device,
            cmdline,
            busybox: &busybox,
            preload: preload.as_ref(),
        };
        let key = key(machine, &template);
        let dir = root.join(&key);
        if complete(&dir) {
            // Its modification time is its last use: pruning keeps the ones in use.
            let _ = std::fs::File::open(&dir)
                .and_then(|d| d.set_modified(std::time::SystemTime::now()));
            return Ok(Snapshot { dir });
        }
        let failed = root.join(format!("{key}.failed"));
        if let Ok(why) = std::fs::read_to_string(&failed) {
            bail!(
                "an earlier attempt failed ({}); remove `{}` to try again",
                why.trim(),
                failed.display()
            );
        }
        let state = dir.join("state");
        if state.to_string_lossy().contains(',') {
            // `-incoming file:` has no quoting for a comma.
            bail!("`{}` has a comma in its path", state.display());
        }
        if let Err(e) = make(shell, home, machine, &template, &dir) {
            let _ = crate::fsutil::write_atomic(&failed, format!("{e:#}\n").as_bytes());
            return Err(e);
        }
        Ok(Snapshot { dir })
    }

    /// A boot that resumes this snapshot with `disk` (from [`run_disk_for`]) as its run
    /// disk, written into `dir`.
    pub fn boot(
        &self,
        shell: &Shell,
        machine: &Machine,
        cmdline: &[String],
        timeout: Duration,
        disk: &[u8],
        dir: &Path,
    ) -> Result<Boot> {
        let path = dir.join("run.disk");
        std::fs::File::create(&path)
            .and_then(|mut f| {
                f.write_all(disk)?;
                f.set_len(DISK_BYTES)
            })
            .with_context(|| format!("cannot write `{}`", path.display()))?;
        let mut m = machine.clone();
        let tree = self.dir.join("virt.dtb");
        m.dtb = tree.is_file().then_some(tree);
        m.extra_args.extend(disk_args(&path));
        m.extra_args.push("-incoming".into());
        m.extra_args
            .push(format!("file:{}", self.dir.join("state").display()).into());
        let mut boot = Boot::new(m, self.dir.join("initramfs.cpio"));
        boot.cmdline = cmdline.to_vec();
        boot.timeout = timeout;
        // The template says `resumed` the moment it sees the run disk; a guest that says
        // nothing for ten seconds did not resume.
        boot.first_line_within = Some(Duration::from_secs(10));
        shell.verbose(
            "Resuming",
            format_args!("the booted kernel from `{}`", self.dir.display()),
        );
        Ok(boot)
    }

    /// Remove a snapshot that did not resume; the next test boot makes a new one. Renamed
    /// away first, so nobody starts on a half-removed one.
    pub fn discard(&self, shell: &Shell, why: &str) {
        shell.verbose(
            "Discarding",
            format_args!("snapshot `{}`: {why}", self.dir.display()),
        );
        remove(&self.dir);
    }
}

/// Whether `dir` holds a whole snapshot.
fn complete(dir: &Path) -> bool {
    dir.join("state").is_file() && dir.join("initramfs.cpio").is_file()
}

/// Rename `dir` to a hidden name, then remove it.
fn remove(dir: &Path) {
    let Some(name) = dir.file_name() else {
        return;
    };
    let gone = dir.with_file_name(format!(
        ".old-{}-{}",
        std::process::id(),
        name.to_string_lossy()
    ));
    if std::fs::rename(dir, &gone).is_ok() {
        let _ = std::fs::remove_dir_all(&gone);
    }
}

/// The run disk of `plan` with `script` (see [`run_disk`]); `None` when its files do not
/// fit, so the run boots cold.
pub fn run_disk_for(shell: &Shell, plan: &GuestPlan, script: &str) -> Result<Option<Vec<u8>>> {
    let mut fs = Initramfs::new();
    // What the preloaded step read is in the snapshot already.
    let preloaded = plan.preload.as_ref().map_or(&[][..], |p| &p.files);
    let files = plan
        .files
        .iter()
        .filter(|f| !preloaded.contains(&f.guest_path));
    crate::qemu::session::add_files(shell, &mut fs, files)?;
    fs.file(RUN_SCRIPT, script.as_bytes().to_vec(), 0o755);
    let disk = run_disk(&fs.to_bytes());
    if disk.is_none() {
        shell.verbose(
            "Skipping",
            format_args!(
                "the snapshot: the run's files need more than {} MiB",
                DISK_BYTES >> 20
            ),
        );
    }
    Ok(disk)
}

/// The template's initramfs: the usual base with `busybox` (its bytes; empty for the
/// key), the template `/init` reporting on `device`, `cpio`, and the files of the step it
/// preloads.
fn template_image(busybox: Vec<u8>, device: &str, preload: Option<&Preloaded>) -> Initramfs {
    let command = preload.map(|p| p.command.as_str());
    let mut fs = Initramfs::with_busybox_bytes(busybox, &template_init(device, command));
    fs.symlink("/bin/cpio", "busybox");
    for (path, bytes, mode) in preload.map_or(&[][..], |p| &p.files) {
        fs.file(path, bytes.clone(), *mode);
    }
    fs
}

/// What a template boot is made of, besides the machine: the UART it reports on, the
/// kernel's arguments, busybox, and the step it preloads.
struct Template<'a> {
    device: &'a str,
    cmdline: &'a [String],
    busybox: &'a Path,
    preload: Option<&'a Preloaded>,
}

/// The step of a plan that its snapshot runs before it is saved ([`Preload`]): its command
/// line and the files it reads (guest path, bytes, mode).
#[derive(Debug)]
struct Preloaded {
    command: String,
    files: Vec<(String, Vec<u8>, u32)>,
}

impl Preloaded {
    fn of(plan: &GuestPlan) -> Result<Option<Preloaded>> {
        let Some(p) = &plan.preload else {
            return Ok(None);
        };
        let step = plan
            .steps
            .get(p.step)
            .context("the preloaded step is not in the plan")?;
        let mut files = Vec::new();
        for path in &p.files {
            let f = plan
                .files
                .iter()
                .find(|f| &f.guest_path == path)
                .with_context(|| {
                    format!("the preloaded step's file `{path}` is not in the plan")
                })?;
            let bytes = match &f.source {
                FileSource::Host(h) => {
                    std::fs::read(h).with_context(|| format!("cannot read `{}`", h.display()))?
                }
                FileSource::Bytes(b) => b.clone(),
                FileSource::Program(_) | FileSource::Symlink(_) => {
                    bail!("the preloaded step's file `{path}` is not a plain file")
                }
            };
            files.push((path.clone(), bytes, f.mode));
        }
        Ok(Some(Preloaded {
            command: step.command(p.step),
            files,
        }))
    }
}

/// The cache name: everything that decides what the booted guest is: cargo-kmod's version,
/// qemu and the kernel image (path, size, mtime), busybox (the same), the template image's
/// layout and script, and the whole qemu command line (temporary paths as placeholders).
fn key(machine: &Machine, t: &Template<'_>) -> String {
    let id = |p: &Path| {
        format!(
            "{} {}",
            p.display(),
            crate::fsutil::file_identity(p).unwrap_or_default()
        )
    };
    let mut boot = Boot::new(machine.clone(), PathBuf::from("INITRD"));
    boot.cmdline = t.cmdline.to_vec();
    let args: Vec<String> = boot
        .args(Some(Path::new("FILES")))
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    // With the preloaded step's command (in the script) and files.
    let layout = template_image(Vec::new(), t.device, t.preload).to_bytes();
    let inputs = [
        ("cargo-kmod", env!("CARGO_PKG_VERSION").to_string()),
        ("qemu", id(&machine.qemu)),
        ("kernel", id(&machine.kernel)),
        ("busybox", id(t.busybox)),
        ("image", crate::fsutil::sha256_hex(&layout)),
        ("args", args.join("\n")),
        ("disk", DISK_BYTES.to_string()),
        // The template boots with the compact tree where it applies, and its runs with it.
        ("tree", dtb::compacts(machine).to_string()),
    ];
    let pairs: Vec<(&str, &str)> = inputs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    crate::kernel::home::tree_key(&pairs)
}

/// The template's `/init`: mount (`/sys` too, left mounted for the runs), keep each PCI
/// device's configuration header (below), run the `preload` command (its
/// output into [`PRELOAD_OUT`]; when it fails or taints the kernel with more than `O` and
/// `E`, say so and power off), say ready, poll the run disk's header, unpack the run's
/// files, run its script.
///
/// The poll starts no process: the page cache is dropped (`drop_caches`; a first `4` makes
/// the kernel note it once, not at every poll; a kernel without the sysctl polls with `dd
/// iflag=direct`, a process each time), then the shell's own `read` takes at
/// most 64 bytes of the disk (none of it is cached from before). A poll with a process
/// (`dd iflag=direct` every 2 ms) put the saved guest anywhere in that process's life, so
/// each snapshot began its runs 20-40 ms earlier or later than another of the same kernel,
/// for as long as it lived; now the guest is saved in its 2 ms wait or in a few builtins.
/// Before it says ready it waits 0.5 s of guest time (icount skips the idle part), so that
/// one-shot work the boot or the preload queued (RCU callbacks, a module's init memory
/// freed, deferred probes) is done before the snapshot rather than in every run: runs
/// resumed without it met a 13 ms stretch of such work at their first step now and then.
///
/// PCI headers: qemu migrates a PCI model's configuration only when the model has migration
/// state, and `pci-testdev`, for one, has none: it comes back with its BARs unprogrammed
/// while the kernel's resources still say where they are. The template keeps the first 64
/// bytes (command, BARs) of each endpoint no driver has bound (bridges migrate their own; a
/// bound device is its driver's) as a `printf` of octal escapes in a function, `kmod_pci_restore`,
/// which the resumed guest calls first: what migration would have done, before anything can
/// bind. It is parsed before the snapshot, so a run pays only the writes: no step, no
/// file, no process. A header `od` could not read makes the function remove the device and
/// rescan the bus instead. A failed write is said on the console, and the device's driver
/// then fails its probe in the run, with the kernel's words. A cold boot needs none of it.
fn template_init(device: &str, preload: Option<&str>) -> String {
    let preload = preload.map_or(String::new(), |cmd| {
        format!(
            "t0=$(busybox cat /proc/sys/kernel/tainted)\n\
             busybox {cmd} >{PRELOAD_OUT} 2>&1 </dev/null; r=$?\n\
             t1=$(busybox cat /proc/sys/kernel/tainted)\n\
             if [ \"$r\" != 0 ] || [ $((t1 & ~t0 & ~12288)) != 0 ]; then\n\
             \techo \"{PRELOAD_FAILED}: exit status $r, taint $t0 -> $t1\" >/dev/{device}\n\
             \tbusybox reboot -f\n\
             fi\n"
        )
    });
    format!(
        "#!/bin/sh\n\
         export PATH=/bin:/sbin:/usr/bin:/usr/sbin\n\
         mount -a\n\
         if mount -t sysfs sysfs /sys 2>/dev/null; then\n\
         \tfor d in /sys/bus/pci/devices/*; do\n\
         \t\ta=${{d##*/}}\n\
         \t\tcase $a in *[!0-9a-f:.]*) continue;; esac\n\
         \t\t[ -e \"$d/config\" ] && [ ! -e \"$d/driver\" ] || continue\n\
         \t\tread -r k <\"$d/class\"; case $k in 0x06*) continue;; esac\n\
         \t\tc=; for b in $(busybox od -An -v -to1 -N64 \"$d/config\"); do c=\"$c\\\\$b\"; done\n\
         \t\tif [ -n \"$c\" ]; then\n\
         \t\t\tR=\"${{R}}printf '$c' >$d/config || echo 'cargo-kmod: cannot restore the configuration of $a'\n\"\n\
         \t\telse\n\
         \t\t\tR=\"${{R}}echo 1 >$d/remove; s=1\n\"\n\
         \t\tfi\n\
         \tdone\n\
         fi\n\
         [ -z \"$s\" ] || R=\"${{R}}echo 1 >/sys/bus/pci/rescan\n\"\n\
         eval \"kmod_pci_restore() {{\n:\n$R}}\"\n\
         {preload}\
         read -t 0.5 w <>{fifo}\n\
         echo '{READY}' >/dev/{device}\n\
         if echo 4 2>/dev/null >/proc/sys/vm/drop_caches; then\n\
         \tuntil echo 1 >/proc/sys/vm/drop_caches && read -r -n 64 m n </dev/vda && [ \"$m\" = {HEADER} ]; do read -t 0.002 w <>{fifo}; done\n\
         else\n\
         \tuntil dd if=/dev/vda bs=512 count=1 iflag=direct 2>/dev/null >/tmp/h && read -r m n </tmp/h && [ \"$m\" = {HEADER} ]; do read -t 0.002 w <>{fifo}; done\n\
         fi\n\
         echo '{RESUMED}'\n\
         kmod_pci_restore\n\
         dd if=/dev/vda bs={BLOCK} skip=1 count=\"$n\" iflag=direct 2>/dev/null | cpio -idu 2>/dev/null\n\
         exec /bin/sh {RUN_SCRIPT}\n",
        fifo = crate::qemu::initramfs::WAIT_FIFO,
    )
}

/// The run disk's used part: the header block, then `cpio` in whole blocks; `None` when it
/// does not fit in [`DISK_BYTES`].
fn run_disk(cpio: &[u8]) -> Option<Vec<u8>> {
    let blocks = (cpio.len() as u64).div_ceil(BLOCK);
    if (blocks + 1) * BLOCK > DISK_BYTES {
        return None;
    }
    let mut disk = format!("{HEADER} {blocks}\n").into_bytes();
    disk.resize(BLOCK as usize, 0);
    disk.extend_from_slice(cpio);
    disk.resize(((blocks + 1) * BLOCK) as usize, 0);
    Some(disk)
}

/// qemu's arguments for the run disk at `path`: read-only virtio-blk on virtio-mmio.
fn disk_args(path: &Path) -> [OsString; 4] {
    // qemu's option syntax: a comma in a value is written twice.
    let file = path.to_string_lossy().replace(',', ",,");
    [
        "-drive".into(),
        format!("file={file},if=none,id=kmodrun,format=raw,readonly=on").into(),
        "-device".into(),
        "virtio-blk-device,drive=kmodrun".into(),
    ]
}

/// Boot the template `t`, wait for it to poll its disk, save it, move the result to `dest`,
/// then prune `dest`'s siblings ([`prune`]).
fn make(
    shell: &Shell,
    home: &Home,
    machine: &Machine,
    t: &Template<'_>,
    dest: &Path,
) -> Result<()> {
    let preload = t.preload;
    let (with, per) = if preload.is_some() {
        (" with its test devices", " and set of devices")
    } else {
        ("", "")
    };
    let root = dest
        .parent()
        .context("a snapshot's directory has a parent")?;
    shell.status(
        "Snapshotting",
        format_args!(
            "a boot of `{}`{with} (once per kernel{per}; later test boots resume it)",
            machine.kernel.display(),
        ),
    );
    std::fs::create_dir_all(root).with_context(|| format!("cannot create `{}`", root.display()))?;
    let work = tempfile::Builder::new()
        .prefix(".new-")
        .tempdir_in(root)
        .with_context(|| format!("cannot write in `{}`", root.display()))?;
    let scratch = reaper::TempDir::new()?;
    let bytes = std::fs::read(t.busybox)
        .with_context(|| format!("cannot read `{}`", t.busybox.display()))?;
    let initrd = work.path().join("initramfs.cpio");
    template_image(bytes, t.device, preload).write(&initrd)?;
    let empty = scratch.path().join("empty.disk");
    std::fs::File::create(&empty)
        .and_then(|f| f.set_len(DISK_BYTES))
        .with_context(|| format!("cannot write `{}`", empty.display()))?;
    let socket = scratch.path().join("qmp");
    let mut m = machine.clone();
    m.dtb = dtb::boot_tree(shell, home, machine, work.path());
    m.extra_args.extend(disk_args(&empty));
    let sock = socket.to_string_lossy().replace(',', ",,");
    m.extra_args.extend([
        "-chardev".into(),
        format!("socket,id=kmodqmp,path={sock},server=on,wait=off").into(),
        "-mon".into(),
        "chardev=kmodqmp,mode=control".into(),
    ]);
    let mut boot = Boot::new(m, initrd);
    boot.cmdline = t.cmdline.to_vec();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut running = boot.spawn(shell)?;
    loop {
        match running.recv(deadline) {
            Recv::Line(Source::Channel, l) if l.trim() == READY => break,
            Recv::Line(Source::Channel, l) if l.starts_with(PRELOAD_FAILED) => {
                let why = l[PRELOAD_FAILED.len()..].trim_start_matches(':').trim();
                bail!(
                    "the step it runs before the snapshot failed ({}): a cold boot runs it",
                    crate::text::escape(why)
                )
            }
            Recv::Line(..) => {}
            Recv::TimedOut => bail!("the template boot was not ready within 60 s"),
            Recv::Overrun(source, o) => {
                return Err(crate::qemu::boot::overrun_error(source, o).into())
            }
            Recv::Closed => {
                let log = running.finish(None)?;
                bail!(
                    "the template boot stopped before it was ready ({}); its console ended: `{}`",
                    log.qemu_stderr.trim(),
                    log.last_line()
                );
            }
        }
    }
    let state = work.path().join("state");
    let mut qmp = Qmp::connect(&socket, deadline)?;
    qmp.execute(
        "migrate",
        json!({ "uri": format!("file:{}", state.display()) }),
    )?;
    loop {
        let r = qmp.execute("query-migrate", json!({}))?;
        match r.get("status").and_then(Value::as_str) {
            Some("completed") => break,
            Some("failed") | Some("cancelled") => bail!(
                "qemu could not save the guest: {}",
                r.get("error-desc")
                    .and_then(Value::as_str)
                    .unwrap_or("no reason given")
            ),
            _ if Instant::now() > deadline => bail!("qemu did not save the guest within 60 s"),
            _ => std::thread::sleep(Duration::from_millis(2)),
        }
    }
    drop(qmp);
    drop(running);
    let made = work.keep();
    if std::fs::rename(&made, dest).is_err() {
        // Another run made the same one meanwhile (keep theirs), or left a broken one
        // (replace it).
        if !complete(dest) {
            remove(dest);
            if std::fs::rename(&made, dest).is_ok() {
                prune(root, dest);
                return Ok(());
            }
        }
        let _ = std::fs::remove_dir_all(&made);
    }
    prune(root, dest);
    Ok(())
}

/// Keep the [`KEEP`] most recently used snapshots in `root` (and `keep`); remove what a run
/// killed while it made or removed one left behind (`.new-*`, `.old-*`, an hour old).
fn prune(root: &Path, keep: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    let mut found = Vec::new();
    for e in entries.flatten() {
        let Some(when) = e.metadata().ok().and_then(|m| m.modified().ok()) else {
            continue;
        };
        let name = e.file_name().to_string_lossy().into_owned();
        if !e.file_type().is_ok_and(|t| t.is_dir()) {
            // `<key>.failed` notes.
        } else if name.starts_with(".new-") || name.starts_with(".old-") {
            if when.elapsed().is_ok_and(|d| d > Duration::from_secs(3600)) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        } else if e.path() != keep {
            found.push((when, e.path()));
        }
    }
    found.sort();
    let excess = (found.len() + 1).saturating_sub(KEEP);
    for (_, p) in found.into_iter().take(excess) {
        let _ = std::fs::remove_dir_all(p);
    }
}

/// A QMP connection (qemu's JSON monitor) on a Unix socket.
struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Qmp {
    /// Connect, read the greeting and enter command mode.
    fn connect(path: &Path, deadline: Instant) -> Result<Qmp> {
        let stream = loop {
            match UnixStream::connect(path) {
                Ok(s) => break s,
                Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(2)),
                Err(e) => {
                    return Err(e).with_context(|| {
                        format!("cannot reach qemu's monitor `{}`", path.display())
                    })
                }
            }
        };
        let left = deadline.saturating_duration_since(Instant::now());
        stream.set_read_timeout(Some(left.max(Duration::from_millis(1))))?;
        let mut qmp = Qmp {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
        };
        qmp.read()?;
        qmp.execute("qmp_capabilities", json!({}))?;
        Ok(qmp)
    }

    fn read(&mut self) -> Result<Value> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            bail!("qemu closed its monitor");
        }
        serde_json::from_str(&line)
            .with_context(|| format!("qemu's monitor said `{}`", line.trim()))
    }

    /// Run `command`; its `return` value, or an error with qemu's reason.
    fn execute(&mut self, command: &str, arguments: Value) -> Result<Value> {
        let request = json!({ "execute": command, "arguments": arguments });
        writeln!(self.writer, "{request}")?;
        loop {
            let v = self.read()?;
            if let Some(r) = v.get("return") {
                return Ok(r.clone());
            }
            if let Some(e) = v.get("error") {
                bail!(
                    "qemu refused `{command}`: {}",
                    e.get("desc")
                        .and_then(Value::as_str)
                        .unwrap_or("no reason given")
                );
            }
            // An asynchronous event: not the answer.
        }
    }
}

/// A fresh seed for a resumed guest's random pool, as the hex text the script writes into
/// `/dev/urandom`.
pub fn seed() -> Result<String> {
    Ok(hex::encode(random_bytes(32)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn virt() -> Machine {
        let mut m = Machine::test_virt();
        m.virtio_disk = true;
        m
    }

    #[test]
    fn only_plain_arm64_virt_test_boots_resume() {
        let plan = GuestPlan::default();
        assert!(suits(&virt(), &plan));
        let mut no_disk = virt();
        no_disk.virtio_disk = false;
        assert!(!suits(&no_disk, &plan));
        let mut device = virt();
        device.extra_args = vec!["-device".into(), "x".into()];
        assert!(!suits(&device, &plan));
        // PCI test devices are part of the key: a snapshot with them is its own.
        let mut pci = virt();
        pci.extra_args = vec![
            "-device".into(),
            "pci-testdev,addr=0x10.0,id=kmod-pci0".into(),
        ];
        assert!(suits(&pci, &plan));
        pci.extra_args.extend([
            "-device".into(),
            "virtio-rng-device,bus=virtio-mmio-bus.0,id=kmod-mmio0".into(),
        ]);
        assert!(suits(&pci, &plan), "virtio-mmio test devices too");
        pci.extra_args.push("-S".into());
        assert!(!suits(&pci, &plan));
        let mut board = virt();
        board.dtb = Some("/b.dtb".into());
        assert!(!suits(&board, &plan));
        let mut kvm = virt();
        kvm.accel = Accel::Kvm;
        assert!(!suits(&kvm, &plan));
        let wait = GuestPlan {
            then: Then::Wait,
            ..GuestPlan::default()
        };
        assert!(!suits(&virt(), &wait));
    }

    #[test]
    fn the_key_follows_the_kernel_arguments_and_machine() {
        let bb = Path::new("/nonexistent/busybox");
        let m = virt();
        let k = key(&m, &tpl(&["quiet".into()], bb, None));
        assert_eq!(k, key(&m, &tpl(&["quiet".into()], bb, None)));
        assert_ne!(k, key(&m, &tpl(&["quiet".into(), "x=1".into()], bb, None)));
        let mut more = virt();
        more.memory_mb = 512;
        assert_ne!(k, key(&more, &tpl(&["quiet".into()], bb, None)));
        let mut other = virt();
        other.kernel = "/other/Image".into();
        assert_ne!(k, key(&other, &tpl(&["quiet".into()], bb, None)));
    }

    fn tpl<'a>(
        cmdline: &'a [String],
        busybox: &'a Path,
        preload: Option<&'a Preloaded>,
    ) -> Template<'a> {
        Template {
            device: "ttyAMA1",
            cmdline,
            busybox,
            preload,
        }
    }

    /// A plan whose step 1 (the helper's load) is preloaded, with two files.
    fn preloading(overlay: &[u8]) -> GuestPlan {
        use crate::guest::plan::{GuestFile, Preload, Step};
        let file = |p: &str, b: &[u8]| GuestFile {
            guest_path: p.into(),
            source: FileSource::Bytes(b.to_vec()),
            mode: 0o644,
        };
        GuestPlan {
            files: vec![
                file("/kmod/m.ko", b"module"),
                file("/kmod/devices/h.ko", b"helper"),
                file("/kmod/devices/o.dtbo", overlay),
            ],
            steps: vec![
                Step::shell("first", ":"),
                Step {
                    action: crate::guest::plan::Action::Load {
                        module: "h".into(),
                        path: "/kmod/devices/h.ko".into(),
                        params: vec!["overlay_list=/kmod/devices/overlays".into()],
                    },
                    when: crate::guest::plan::When::Always,
                },
            ],
            preload: Some(Preload {
                step: 1,
                files: vec!["/kmod/devices/h.ko".into(), "/kmod/devices/o.dtbo".into()],
            }),
            ..GuestPlan::default()
        }
    }

    #[test]
    fn a_preloaded_step_runs_in_the_template_and_keys_the_snapshot() {
        let bb = Path::new("/nonexistent/busybox");
        let m = virt();
        let p = Preloaded::of(&preloading(b"a")).unwrap().unwrap();
        assert_eq!(
            p.command,
            "insmod /kmod/devices/h.ko overlay_list=/kmod/devices/overlays"
        );
        let names: Vec<&str> = p.files.iter().map(|f| f.0.as_str()).collect();
        assert_eq!(names, ["/kmod/devices/h.ko", "/kmod/devices/o.dtbo"]);
        // Its command and every byte of its files are part of the key.
        let plain = key(&m, &tpl(&[], bb, None));
        let with = key(&m, &tpl(&[], bb, Some(&p)));
        let other = Preloaded::of(&preloading(b"b")).unwrap().unwrap();
        assert_ne!(plain, with);
        assert_ne!(with, key(&m, &tpl(&[], bb, Some(&other))));
        assert_eq!(with, key(&m, &tpl(&[], bb, Some(&p))));
        // The template runs it before it says ready; a failure or a new taint beyond O and
        // E powers the template off with its reason, so the run boots cold.
        let s = template_init("ttyAMA1", Some(&p.command));
        let run = s
            .find("busybox insmod /kmod/devices/h.ko overlay_list=/kmod/devices/overlays >/tmp/kmod-preload.out 2>&1 </dev/null; r=$?\n")
            .expect(&s);
        assert!(run < s.find("snapshot ready").unwrap(), "{s}");
        assert!(
            s.contains("if [ \"$r\" != 0 ] || [ $((t1 & ~t0 & ~12288)) != 0 ]; then\n\techo \"cargo-kmod: preload failed: exit status $r, taint $t0 -> $t1\" >/dev/ttyAMA1\n\tbusybox reboot -f\nfi\n"),
            "{s}"
        );
        assert!(!template_init("ttyAMA1", None).contains("preload"));
        // A file the plan does not have is an error, not a snapshot without it.
        let mut broken = preloading(b"a");
        broken.files.pop();
        let e = Preloaded::of(&broken).unwrap_err().to_string();
        assert!(
            e.contains("`/kmod/devices/o.dtbo` is not in the plan"),
            "{e}"
        );
    }

    #[test]
    fn a_resumed_run_reports_the_preloaded_step_and_carries_only_the_other_files() {
        let plan = preloading(b"a");
        let token = crate::guest::protocol::Token::random().unwrap();
        let ch = Channel::Uart {
            device: "ttyAMA1".into(),
        };
        let resumed = plan.resumed_script(&ch, &token, "00");
        // A report step: the kept output onto the channel, the taint `begin` read.
        assert!(resumed.contains("\nreport 1 kp\n"), "{resumed}");
        assert!(resumed.contains("\nreport() {\n"), "{resumed}");
        assert!(
            resumed.contains("do out \"$l\"; done </tmp/kmod-preload.out; }\n"),
            "{resumed}"
        );
        assert!(!resumed.contains("insmod"), "{resumed}");
        // A cold boot runs it.
        let cold = plan.script(&ch, &token);
        assert!(
            cold.contains(
                "\nstep 1 insmod /kmod/devices/h.ko overlay_list=/kmod/devices/overlays\n"
            ),
            "{cold}"
        );
        assert!(!cold.contains("kp"), "{cold}");
        let shell = Shell::plain();
        let disk = run_disk_for(&shell, &plan, "script").unwrap().unwrap();
        let has = |needle: &[u8]| disk.windows(needle.len()).any(|w| w == needle);
        assert!(has(b"kmod/m.ko"));
        assert!(!has(b"kmod/devices/h.ko") && !has(b"kmod/devices/o.dtbo"));
    }

    #[test]
    fn the_run_disk_is_a_header_block_then_whole_blocks() {
        let disk = run_disk(b"0707").unwrap();
        assert_eq!(disk.len() as u64, 2 * BLOCK);
        assert!(disk.starts_with(b"cargo-kmod-run 1\n\0"));
        assert_eq!(&disk[BLOCK as usize..BLOCK as usize + 4], b"0707");
        assert!(run_disk(&vec![0; (DISK_BYTES - BLOCK) as usize]).is_some());
        assert!(run_disk(&vec![0; (DISK_BYTES - BLOCK + 1) as usize]).is_none());
    }

    #[test]
    fn the_template_polls_uncached_and_runs_the_unpacked_script() {
        let s = template_init("ttyAMA1", None);
        // Queued work done first, in guest time, without a process.
        assert!(
            s.contains(
                "read -t 0.5 w <>/run/wait\necho 'cargo-kmod: snapshot ready' >/dev/ttyAMA1\n"
            ),
            "{s}"
        );
        // No process per poll: the page cache dropped, then the shell's own bounded read.
        assert!(
            s.contains("echo 'cargo-kmod: snapshot ready' >/dev/ttyAMA1\nif echo 4 2>/dev/null >/proc/sys/vm/drop_caches; then\n\tuntil echo 1 >/proc/sys/vm/drop_caches && read -r -n 64 m n </dev/vda && "),
            "{s}"
        );
        // Without the sysctl, a process per poll, uncached.
        assert!(
            s.contains("else\n\tuntil dd if=/dev/vda bs=512 count=1 iflag=direct 2>/dev/null >/tmp/h && read -r m n </tmp/h && "),
            "{s}"
        );
        assert!(s.contains("[ \"$m\" = cargo-kmod-run ]"), "{s}");
        // The first thing a resumed guest says, before it writes back the PCI headers and
        // unpacks anything.
        assert!(
            s.contains("done\nfi\necho 'cargo-kmod: resumed'\nkmod_pci_restore\ndd "),
            "{s}"
        );
        assert!(
            s.contains("bs=65536 skip=1 count=\"$n\" iflag=direct"),
            "{s}"
        );
        assert!(s.ends_with("exec /bin/sh /run/kmod/init\n"), "{s}");
        // Each PCI device's header, kept before the snapshot, as octal escapes.
        assert!(
            s.contains(
                "for b in $(busybox od -An -v -to1 -N64 \"$d/config\"); do c=\"$c\\\\$b\"; done\n"
            ),
            "{s}"
        );
        // Of endpoints no driver has bound, named as the kernel names them; the writes are
        // a function parsed before the snapshot, a rescan only after a removal.
        assert!(
            s.contains("\t\tcase $a in *[!0-9a-f:.]*) continue;; esac\n\t\t[ -e \"$d/config\" ] && [ ! -e \"$d/driver\" ] || continue\n\t\tread -r k <\"$d/class\"; case $k in 0x06*) continue;; esac\n"),
            "{s}"
        );
        assert!(
            s.contains("\t\t\tR=\"${R}printf '$c' >$d/config || echo 'cargo-kmod: cannot restore the configuration of $a'\n\"\n\t\telse\n\t\t\tR=\"${R}echo 1 >$d/remove; s=1\n\"\n"),
            "{s}"
        );
        assert!(
            s.contains("[ -z \"$s\" ] || R=\"${R}echo 1 >/sys/bus/pci/rescan\n\"\neval \"kmod_pci_restore() {\n:\n$R}\"\n"),
            "{s}"
        );
        // Sysfs stays mounted, so a resumed run that needs it starts no `mount`.
        assert!(
            s.contains("if mount -t sysfs sysfs /sys 2>/dev/null; then\n") && !s.contains("umount"),
            "{s}"
        );
    }

    #[test]
    fn disk_arguments_double_commas() {
        let a = disk_args(Path::new("/t/a,b/run.disk"));
        assert_eq!(
            a[1],
            OsString::from("file=/t/a,,b/run.disk,if=none,id=kmodrun,format=raw,readonly=on")
        );
    }
}
