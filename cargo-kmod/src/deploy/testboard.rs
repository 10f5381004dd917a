//! A board without hardware, for the deploy tests and benchmark: the arm64 dev kernel under
//! qemu `-M virt` with a virtio network card (virtio-mmio) on qemu's user network, reached
//! over ssh on a loopback port forward (`hostfwd=tcp:127.0.0.1:PORT-:22`).
//!
//! Its root file system is an initramfs: the static busybox every guest gets, Debian's
//! `dropbear` with its libraries (unpacked by `cargo xtask setup` into
//! `$CARGO_KMOD_HOME/rootfs/arm64-sshd/`), and what this module writes: `/etc/passwd`, the
//! caller's public key as root's `authorized_keys`, and one shell step ([`SSHD`]) that brings
//! up `10.0.2.15/24` (gateway `10.0.2.2`, slirp's), makes a fresh ed25519 host key and starts
//! dropbear (keys only). The guest is the library's one qemu entry point: a
//! [`GuestPlan`] with [`Then::Wait`], started by [`spawn_plan`] with the port forward in the
//! machine's extra arguments; it reports `ready` once sshd listens and runs until
//! [`TestBoard::stop`] (or the handle is dropped).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};

use crate::guest::plan::{FileSource, GuestFile, GuestPlan, Step, Then};
use crate::guest::run::GuestRun;
use crate::kernel::home::Home;
use crate::kernel::{Arch, KernelTree};
use crate::qemu::machine::{Accel, Machine};
use crate::qemu::session::{spawn_plan, RunningGuest};
use crate::shell::Shell;

/// The file `cargo xtask setup` writes last into a finished root file system.
pub const ROOTFS_STAMP: &str = "cargo-kmod-rootfs.json";

/// Where the arm64 ssh root file system lives.
pub fn rootfs_dir(home: &Home) -> PathBuf {
    home.rootfs("arm64-sshd")
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

/// A running board. Dropping it kills qemu.
pub struct TestBoard {
    /// The loopback port that reaches the board's sshd.
    pub port: u16,
    guest: RunningGuest,
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
        let mut files = Vec::new();
        add_tree(&mut files, &rootfs(&home)?, "")?;
        let mut bytes = |path: &str, data: String, mode: u32| {
            files.push(GuestFile {
                guest_path: path.to_string(),
                source: FileSource::Bytes(data.into_bytes()),
                mode,
            })
        };
        bytes(
            "/etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\n".into(),
            0o644,
        );
        bytes("/etc/group", "root:x:0:\n".into(), 0o644);
        bytes("/etc/shells", "/bin/sh\n".into(), 0o644);
        bytes(
            "/root/.ssh/authorized_keys",
            format!("{}\n", spec.authorized_key.trim()),
            0o600,
        );
        let plan = GuestPlan {
            files,
            steps: vec![Step::shell("sshd", SSHD)],
            then: Then::Wait,
            cmdline: spec.cmdline.clone(),
            timeout: spec.lifetime,
            ..GuestPlan::default()
        };
        let mut last_err = None;
        // A free port can be taken between the probe and qemu's bind: try a few.
        for _ in 0..3 {
            let port = free_port()?;
            let mut machine = Machine::for_tree(&spec.tree, Accel::Tcg)?;
            // `-nic user,model=virtio-net-device` is refused by `-M virt` ("not supported by
            // this machine"): its `-nic` only makes PCI cards. A virtio-mmio device needs the
            // long form.
            machine.extra_args = vec![
                "-netdev".into(),
                format!("user,id=net0,hostfwd=tcp:127.0.0.1:{port}-:22").into(),
                "-device".into(),
                "virtio-net-device,netdev=net0".into(),
            ];
            let mut guest = spawn_plan(shell, &machine, &plan)?;
            match guest.wait_ready(spec.boot_timeout) {
                Ok(()) => return Ok(TestBoard { port, guest }),
                Err(e) => {
                    let run = guest.stop()?;
                    if !run.boot.qemu_stderr.contains("hostfwd") {
                        return Err(e.context(format!(
                            "the test board did not come up (qemu: {})",
                            run.boot.qemu_stderr.trim()
                        )));
                    }
                    last_err = Some(e);
                }
            }
        }
        Err(last_err.expect("tried"))
    }

    /// Kill qemu and return what the board printed.
    pub fn stop(self) -> Result<GuestRun> {
        self.guest.stop()
    }
}

fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("cannot find a free loopback port")?;
    Ok(l.local_addr()?.port())
}

/// The board's one step: the network (`10.0.2.15/24`, slirp's gateway `10.0.2.2`), a fresh
/// host key, dropbear (keys only, its own log in `/tmp/dropbear.log`), done once it listens.
pub const SSHD: &str = r#"mkdir -p /dev/pts /var/run /etc/dropbear
mount -t devpts devpts /dev/pts 2>/dev/null
hostname board
ip link set lo up
ip link set eth0 up
ip addr add 10.0.2.15/24 dev eth0
ip route add default via 10.0.2.2
/usr/bin/dropbearkey -t ed25519 -f /etc/dropbear/dropbear_ed25519_host_key >/dev/null 2>&1
/usr/sbin/dropbear -F -E -s -p 22 -r /etc/dropbear/dropbear_ed25519_host_key </dev/null >/dev/null 2>/tmp/dropbear.log &
until grep -q ':0016 00000000:0000 0A' /proc/net/tcp 2>/dev/null; do usleep 20000; done"#;

/// The files of a host directory tree for the initramfs under `prefix` (files keep their
/// permission bits, symlinks stay symlinks).
fn add_tree(files: &mut Vec<GuestFile>, dir: &Path, prefix: &str) -> Result<()> {
    let entries = crate::fsutil::sorted_entries(dir)?;
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
            files.push(GuestFile {
                guest_path: guest,
                source: FileSource::Symlink(target.to_string_lossy().into_owned()),
                mode: 0o777,
            });
        } else if meta.is_dir() {
            add_tree(files, &path, &guest)?;
        } else {
            use std::os::unix::fs::PermissionsExt;
            files.push(GuestFile {
                guest_path: guest,
                source: FileSource::Host(path),
                mode: meta.permissions().mode() & 0o777,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sshd_step_brings_up_network_then_waits_for_the_listener() {
        let ip = SSHD.find("ip addr add 10.0.2.15/24 dev eth0").unwrap();
        let gw = SSHD.find("ip route add default via 10.0.2.2").unwrap();
        let sshd = SSHD.find("/usr/sbin/dropbear -F -E -s -p 22").unwrap();
        let wait = SSHD.find("until grep -q ':0016 00000000:0000 0A'").unwrap();
        assert!(ip < gw && gw < sshd && sshd < wait);
    }
}
