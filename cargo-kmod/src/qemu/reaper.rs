//! No qemu outlives cargo-kmod.
//!
//! Every qemu is started (1) in its own process group, so a terminal's Ctrl-C reaches
//! cargo-kmod and not the guest, (2) with `PR_SET_PDEATHSIG(SIGKILL)`, so the kernel kills it
//! if cargo-kmod itself dies for any reason, and (3) registered here: a Ctrl-C/SIGTERM/SIGHUP
//! handler kills every registered process group before cargo-kmod exits with 130, and a
//! [`Guard`] kills its child when dropped (early return, panic).
//!
//! A boot's temporary directory (its initramfs, console and channel files) is a [`TempDir`]:
//! removed when dropped, and by the same handler, which exits without dropping anything.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, Once};

use anyhow::{Context, Result};

static CHILDREN: Mutex<Vec<i32>> = Mutex::new(Vec::new());
static TEMP_DIRS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
static HANDLER: Once = Once::new();

/// Prepare `command` so the child dies with cargo-kmod. `own_group` puts it in a new process
/// group (not for an interactive qemu that must read the terminal).
pub fn configure(command: &mut Command, own_group: bool) {
    use std::os::unix::process::CommandExt;
    if own_group {
        command.process_group(0);
    }
    // SAFETY: the closure runs between fork and exec and only calls async-signal-safe
    // functions (prctl, getppid, raise).
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died before prctl: then nobody would reap us.
            if libc::getppid() == 1 {
                libc::raise(libc::SIGKILL);
            }
            Ok(())
        });
    }
    install_handler();
}

fn install_handler() {
    HANDLER.call_once(|| {
        // Another handler (a library caller's) wins; the guards and PDEATHSIG still apply.
        let _ = ctrlc::set_handler(|| {
            kill_all();
            let dirs = TEMP_DIRS.lock().map(|v| v.clone()).unwrap_or_default();
            for d in dirs {
                let _ = std::fs::remove_dir_all(d);
            }
            std::process::exit(130);
        });
    });
}

/// Kill every registered child (and its process group).
pub fn kill_all() {
    let pids = CHILDREN.lock().map(|v| v.clone()).unwrap_or_default();
    for pid in pids {
        kill(pid);
    }
}

fn kill(pid: i32) {
    // SAFETY: plain syscalls on a pid we spawned; a stale pid is harmless (ESRCH) because it
    // is unregistered only after the child has been waited for.
    unsafe {
        libc::kill(-pid, libc::SIGKILL);
        libc::kill(pid, libc::SIGKILL);
    }
}

/// Registration of one running child; dropping it kills the child if still registered.
#[derive(Debug)]
pub struct Guard {
    pid: i32,
}

impl Guard {
    pub fn register(pid: u32) -> Guard {
        let pid = pid as i32;
        if let Ok(mut v) = CHILDREN.lock() {
            v.push(pid);
        }
        Guard { pid }
    }

    /// Kill the child now (it is still registered until dropped, after it has been waited for).
    pub fn kill(&self) {
        kill(self.pid);
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Ok(mut v) = CHILDREN.lock() {
            if let Some(i) = v.iter().position(|p| *p == self.pid) {
                v.swap_remove(i);
            }
        }
    }
}

/// A temporary directory that the Ctrl-C handler removes too.
#[derive(Debug)]
pub struct TempDir {
    dir: tempfile::TempDir,
}

impl TempDir {
    pub fn new() -> Result<TempDir> {
        let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
        if let Ok(mut v) = TEMP_DIRS.lock() {
            v.push(dir.path().to_path_buf());
        }
        install_handler();
        Ok(TempDir { dir })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Ok(mut v) = TEMP_DIRS.lock() {
            if let Some(i) = v.iter().position(|p| p == self.dir.path()) {
                v.swap_remove(i);
            }
        }
    }
}
