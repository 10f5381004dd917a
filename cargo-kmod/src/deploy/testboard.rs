//! A board without hardware, for the deploy tests and benchmark: the arm64 dev kernel under
//! qemu `-M virt` with a virtio network card (virtio-mmio) on qemu's user network, reached
//! over ssh on a loopback port forward (`hostfwd=tcp:127.0.0.1:PORT-:22`).
//!
//! Its root file system is an initramfs: the static busybox every guest gets, Debian's
//! `dropbear` with its libraries (unpacked by `cargo xtask setup` into
//! `$CARGO_KMOD_HOME/rootfs/arm64-sshd/`), and what this module writes: `/etc/passwd`, the
//! caller's public key as root's `authorized_keys`, and an `/init` that brings up
//! `10.0.2.15/24` (gateway `10.0.2.2`, slirp's), makes a fresh ed25519 host key, starts
//! dropbear (keys only) and prints [`READY`] once it listens. qemu runs through the library's
//! one entry point ([`Boot`]) in a background thread until [`TestBoard::stop`].

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::qemu::boot::{self, Boot, BootEnd, BootLog, Flow};
use crate::qemu::initramfs::{self, Initramfs};
use crate::shell::Shell;
use crate::tree::home::Home;
use crate::tree::{Arch, KernelTree};

/// The console line `/init` prints once sshd listens.
pub const READY: &str = "cargo-kmod: board ready";

/// The file `cargo xtask setup` writes last into a finished root file system.
pub const ROOTFS_STAMP: &str = "cargo-kmod-rootfs.json";

/// Where the arm64 ssh root file system lives.
pub fn rootfs_dir(home: &Home) -> PathBuf {
    home.root.join("rootfs").join("arm64-sshd")
}

/// The prepared root file system, or the fix.
pub fn rootfs(home: &Home) -> Result<PathBuf> {
    let dir = rootfs_dir(home);
    if !dir.join(ROOTFS_STAMP).is_file() {
        crate::bail_user!(
            "no arm64 ssh root file system in `{}`", dir.display();
            hint = "run `cargo xtask setup` (it unpacks Debian's `dropbear-bin:arm64` and its libraries there)"
        );
    }
    Ok(dir)
}

/// What to boot.
#[derive(Debug, Clone)]
pub struct BoardSpec {
    /// An arm64 tree with networking (the dev tree).
    pub tree: KernelTree,
    /// One `authorized_keys` line for root.
    pub authorized_key: String,
    /// Extra kernel command-line arguments (`module.sig_enforce=1`).
    pub cmdline: Vec<String>,
    /// How long the board may run at most.
    pub lifetime: Duration,
    /// How long it may take to come up.
    pub boot_timeout: Duration,
}

/// A running board.
pub struct TestBoard {
    /// The loopback port that reaches the board's sshd.
    pub port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<BootLog>>>,
    console: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

impl TestBoard {
    /// Boot the board and wait until its sshd listens.
    pub fn start(shell: &Shell, spec: &BoardSpec) -> Result<TestBoard> {
        if spec.tree.arch != Arch::Arm64 {
            crate::bail_user!(
                "the test board is arm64; `{}` is {}",
                spec.tree.dir.display(),
                spec.tree.arch
            );
        }
        let home = Home::from_env()?;
        let rootfs = rootfs(&home)?;
        let busybox = initramfs::busybox(&home, Arch::Arm64)?;
        let mut fs = Initramfs::with_busybox(&busybox, &init_script())?;
        add_tree(&mut fs, &rootfs, "")?;
        fs.file(
            "/etc/passwd",
            b"root:x:0:0:root:/root:/bin/sh\n".to_vec(),
            0o644,
        );
        fs.file("/etc/group", b"root:x:0:\n".to_vec(), 0o644);
        fs.file("/etc/shells", b"/bin/sh\n".to_vec(), 0o644);
        fs.dir("/root/.ssh");
        fs.file(
            "/root/.ssh/authorized_keys",
            format!("{}\n", spec.authorized_key.trim()).into_bytes(),
            0o600,
        );
        let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
        let initrd = dir.path().join("board.cpio");
        fs.write(&initrd)?;
        let mut last_err = None;
        // A free port can be taken between the probe and qemu's bind: try a few.
        for _ in 0..3 {
            match Self::boot(shell, spec, &initrd) {
                Ok((port, stop, thread, console)) => {
                    return Ok(TestBoard {
                        port,
                        stop,
                        thread: Some(thread),
                        console,
                        _dir: dir,
                    })
                }
                Err(e)
                    if e.to_string().contains("hostfwd")
                        || e.to_string().contains("host forwarding") =>
                {
                    last_err = Some(e)
                }
                Err(e) => return Err(e),
            }
        }
        Err(last_err.expect("tried"))
    }

    #[allow(clippy::type_complexity)]
    fn boot(
        shell: &Shell,
        spec: &BoardSpec,
        initrd: &Path,
    ) -> Result<(
        u16,
        Arc<AtomicBool>,
        JoinHandle<Result<BootLog>>,
        Arc<Mutex<Vec<String>>>,
    )> {
        let port = free_port()?;
        let mut b = Boot::for_tree(&spec.tree, initrd)?;
        b.timeout = spec.lifetime;
        b.cmdline = spec.cmdline.clone();
        // `-nic user,model=virtio-net-device` is refused by `-M virt` ("not supported by this
        // machine"): its `-nic` only makes PCI cards. A virtio-mmio device needs the long form.
        b.qemu_args = vec![
            "-netdev".into(),
            format!("user,id=net0,hostfwd=tcp:127.0.0.1:{port}-:22").into(),
            "-device".into(),
            "virtio-net-device,netdev=net0".into(),
        ];
        let stop = Arc::new(AtomicBool::new(false));
        b.stop = Some(stop.clone());
        let console = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel::<()>();
        let shell = shell.clone();
        let lines = console.clone();
        let thread = std::thread::spawn(move || {
            let verbose = shell.is_verbose();
            b.run(&shell, |l| {
                if verbose {
                    eprintln!("board: {l}");
                }
                if let Ok(mut v) = lines.lock() {
                    v.push(l.to_string());
                }
                if l.trim() == READY {
                    let _ = tx.send(());
                }
                Flow::Continue
            })
        });
        match rx.recv_timeout(spec.boot_timeout) {
            Ok(()) => Ok((port, stop, thread, console)),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let log = thread
                    .join()
                    .map_err(|_| anyhow::anyhow!("the board's qemu thread panicked"))??;
                Err(match log.end {
                    BootEnd::Exited(status) => boot::exit_error(&log, status, READY).into(),
                    _ => boot::timeout_error(&log, spec.boot_timeout).into(),
                })
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                stop.store(true, Ordering::SeqCst);
                let log = thread
                    .join()
                    .map_err(|_| anyhow::anyhow!("the board's qemu thread panicked"))??;
                Err(boot::timeout_error(&log, spec.boot_timeout).into())
            }
        }
    }

    /// The console so far.
    pub fn console(&self) -> Vec<String> {
        self.console.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// Kill qemu and return the whole console.
    pub fn stop(mut self) -> Result<BootLog> {
        self.stop.store(true, Ordering::SeqCst);
        let t = self.thread.take().expect("running");
        t.join()
            .map_err(|_| anyhow::anyhow!("the board's qemu thread panicked"))?
    }
}

impl Drop for TestBoard {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("cannot find a free loopback port")?;
    Ok(l.local_addr()?.port())
}

/// `/init` of the board (after busybox's prelude).
pub fn init_script() -> String {
    format!(
        "{}{}",
        boot::init_prelude(),
        r#"mkdir -p /dev/pts /var/run /etc/dropbear
mount -t devpts devpts /dev/pts 2>/dev/null
hostname board
ip link set lo up
ip link set eth0 up
ip addr add 10.0.2.15/24 dev eth0
ip route add default via 10.0.2.2
/usr/bin/dropbearkey -t ed25519 -f /etc/dropbear/dropbear_ed25519_host_key >/dev/null 2>&1
/usr/sbin/dropbear -F -E -s -p 22 -r /etc/dropbear/dropbear_ed25519_host_key 2>/tmp/dropbear.log &
until grep -q ':0016 00000000:0000 0A' /proc/net/tcp 2>/dev/null; do usleep 20000; done
echo 'cargo-kmod: board ready'
while :; do sleep 3600; done
"#
    )
}

/// Copy a host directory tree into the initramfs under `prefix` (files keep their
/// permission bits, symlinks stay symlinks).
fn add_tree(fs: &mut Initramfs, dir: &Path, prefix: &str) -> Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read `{}`", dir.display()))?
        .flatten()
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name().to_string_lossy().into_owned();
        if prefix.is_empty() && name == ROOTFS_STAMP {
            continue;
        }
        let guest = format!("{prefix}/{name}");
        let path = e.path();
        let meta = std::fs::symlink_metadata(&path)?;
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&path)?;
            fs.symlink(&guest, &target.to_string_lossy());
        } else if meta.is_dir() {
            fs.dir(&guest);
            add_tree(fs, &path, &guest)?;
        } else {
            use std::os::unix::fs::PermissionsExt;
            fs.file_from(&guest, &path, meta.permissions().mode() & 0o777)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_brings_up_network_and_sshd() {
        let s = init_script();
        assert!(s.contains("ip addr add 10.0.2.15/24 dev eth0"));
        assert!(s.contains("ip route add default via 10.0.2.2"));
        assert!(s.contains("/usr/sbin/dropbear -F -E -s -p 22"));
        let ready = s.find(READY).unwrap();
        assert!(s.find("dropbear -F").unwrap() < ready);
    }
}
