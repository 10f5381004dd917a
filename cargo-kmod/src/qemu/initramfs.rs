//! A generated initramfs: an uncompressed `newc` cpio archive written in Rust.
//!
//! The kernel unpacks a plain `newc` archive without any decompressor, so nothing is
//! compressed: a 2 MB busybox is copied faster than it is gzipped. The archive holds
//! busybox-static as `/bin/busybox` (with `/bin/sh`), `/dev/console` (so `/init` has a
//! console before devtmpfs is mounted), the `/init` script the caller generates and any
//! extra files (modules, test data).

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{Context, Result};

use crate::shell::Shell;

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;
const S_IFCHR: u32 = 0o020000;
const S_IFIFO: u32 = 0o010000;

#[derive(Debug, Clone)]
enum Body {
    Dir,
    File(Vec<u8>),
    Symlink(String),
    CharDev(u32, u32),
    Fifo,
}

#[derive(Debug, Clone)]
struct Entry {
    path: String,
    mode: u32,
    body: Body,
}

/// An initramfs under construction. Paths are absolute guest paths (`/bin/busybox`); parent
/// directories are created implicitly.
#[derive(Debug, Clone, Default)]
pub struct Initramfs {
    entries: Vec<Entry>,
    dirs: BTreeSet<String>,
}

impl Initramfs {
    pub fn new() -> Self {
        Self::default()
    }

    /// The base every cargo-kmod guest uses: busybox as `/bin/busybox`, `/bin/sh` and the
    /// applets a generated `/init` calls (a script that needs more runs
    /// `busybox --install`), the usual mount points with an `/etc/fstab` for `/proc` and
    /// devtmpfs, `/dev/console`, and `init` as the executable `/init` script.
    pub fn with_busybox(busybox: &Path, init: &str) -> Result<Self> {
        let data = std::fs::read(busybox)
            .with_context(|| format!("cannot read `{}`", busybox.display()))?;
        Ok(Self::with_busybox_bytes(data, init))
    }

    /// [`Initramfs::with_busybox`] with busybox's bytes given (empty: the layout alone, what
    /// a cache key covers besides busybox's own identity).
    pub fn with_busybox_bytes(busybox: Vec<u8>, init: &str) -> Self {
        let mut fs = Initramfs::new();
        for d in ["/bin", "/dev", "/proc", "/sys", "/tmp", "/root"] {
            fs.dir(d);
        }
        fs.char_dev("/dev/console", 0o600, 5, 1);
        fs.char_dev("/dev/null", 0o666, 1, 3);
        fs.file("/etc/fstab", FSTAB.as_bytes().to_vec(), 0o644);
        // Nobody writes to it: `read -t` on it is a sleep without starting a process.
        fs.fifo(WAIT_FIFO, 0o600);
        fs.file("/bin/busybox", busybox, 0o755);
        for applet in BASE_APPLETS {
            fs.symlink(&format!("/bin/{applet}"), "busybox");
        }
        fs.file("/init", init.as_bytes().to_vec(), 0o755);
        fs
    }

    /// A host program at `path` and the shared libraries it needs (what `ldd` lists, the
    /// dynamic loader included), each at its host path: glibc userspace such as kmod's tools
    /// or an sshd runs in the guest this way.
    pub fn program_from(&mut self, shell: &Shell, path: &str, src: &Path) -> Result<&mut Self> {
        self.file_from(path, src, 0o755)?;
        let sh = xshell::Shell::new()?;
        let out = crate::process::run(shell, xshell::cmd!(sh, "ldd {src}"))
            .with_context(|| format!("cannot list the libraries of `{}`", src.display()))?;
        for lib in libraries(&out) {
            if self.has(&lib) {
                continue;
            }
            let real =
                std::fs::canonicalize(&lib).with_context(|| format!("cannot resolve `{lib}`"))?;
            self.file_from(&lib, &real, 0o755)?;
        }
        Ok(self)
    }

    /// Whether an entry exists at `path`.
    pub fn has(&self, path: &str) -> bool {
        self.entries.iter().any(|e| e.path == path)
    }

    fn parents(&mut self, path: &str) {
        let mut acc = String::new();
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        for part in &parts[..parts.len().saturating_sub(1)] {
            acc.push('/');
            acc.push_str(part);
            if self.dirs.insert(acc.clone()) {
                self.entries.push(Entry {
                    path: acc.clone(),
                    mode: S_IFDIR | 0o755,
                    body: Body::Dir,
                });
            }
        }
    }

    /// A directory (and its parents).
    pub fn dir(&mut self, path: &str) -> &mut Self {
        self.parents(path);
        let path = path.trim_end_matches('/').to_string();
        if self.dirs.insert(path.clone()) {
            self.entries.push(Entry {
                path,
                mode: S_IFDIR | 0o755,
                body: Body::Dir,
            });
        }
        self
    }

    /// A regular file with `data` and permission bits `perm` (e.g. `0o644`).
    pub fn file(&mut self, path: &str, data: Vec<u8>, perm: u32) -> &mut Self {
        self.parents(path);
        self.entries.push(Entry {
            path: path.to_string(),
            mode: S_IFREG | (perm & 0o7777),
            body: Body::File(data),
        });
        self
    }

    /// A regular file copied from the host.
    pub fn file_from(&mut self, path: &str, src: &Path, perm: u32) -> Result<&mut Self> {
        let data =
            std::fs::read(src).with_context(|| format!("cannot read `{}`", src.display()))?;
        Ok(self.file(path, data, perm))
    }

    pub fn symlink(&mut self, path: &str, target: &str) -> &mut Self {
        self.parents(path);
        self.entries.push(Entry {
            path: path.to_string(),
            mode: S_IFLNK | 0o777,
            body: Body::Symlink(target.to_string()),
        });
        self
    }

    pub fn char_dev(&mut self, path: &str, perm: u32, major: u32, minor: u32) -> &mut Self {
        self.parents(path);
        self.entries.push(Entry {
            path: path.to_string(),
            mode: S_IFCHR | perm,
            body: Body::CharDev(major, minor),
        });
        self
    }

    /// A named pipe.
    pub fn fifo(&mut self, path: &str, perm: u32) -> &mut Self {
        self.parents(path);
        self.entries.push(Entry {
            path: path.to_string(),
            mode: S_IFIFO | perm,
            body: Body::Fifo,
        });
        self
    }

    /// The archive bytes (`newc`, terminated by `TRAILER!!!`).
    pub fn to_bytes(&self) -> Vec<u8> {
        let size: usize = self
            .entries
            .iter()
            .map(|e| match &e.body {
                Body::File(d) => d.len() + e.path.len() + 128,
                _ => e.path.len() + 256,
            })
            .sum();
        let mut out = Vec::with_capacity(size + 256);
        for (i, e) in self.entries.iter().enumerate() {
            let name = e.path.trim_start_matches('/');
            let (data, rdev): (&[u8], (u32, u32)) = match &e.body {
                Body::Dir => (&[], (0, 0)),
                Body::File(d) => (d, (0, 0)),
                Body::Symlink(t) => (t.as_bytes(), (0, 0)),
                Body::CharDev(ma, mi) => (&[], (*ma, *mi)),
                Body::Fifo => (&[], (0, 0)),
            };
            let nlink = if matches!(e.body, Body::Dir) { 2 } else { 1 };
            write_header(
                &mut out,
                i as u32 + 1,
                e.mode,
                nlink,
                data.len() as u32,
                rdev,
                name,
            );
            out.extend_from_slice(data);
            pad4(&mut out);
        }
        write_header(&mut out, 0, 0, 1, 0, (0, 0), "TRAILER!!!");
        out
    }

    /// Write the archive atomically to `path`.
    pub fn write(&self, path: &Path) -> Result<()> {
        crate::fsutil::write_atomic(path, &self.to_bytes())
    }
}

/// A named pipe `/init` waits on (see [`Initramfs::with_busybox`]).
pub const WAIT_FIFO: &str = "/run/wait";

/// What `/init`'s `mount -a` mounts.
pub const FSTAB: &str = "proc /proc proc defaults 0 0\ndevtmpfs /dev devtmpfs defaults 0 0\n";

/// The applets every generated `/init` uses.
pub const BASE_APPLETS: [&str; 11] = [
    "sh", "mount", "dd", "cat", "sleep", "insmod", "rmmod", "reboot", "setsid", "cttyhack", "echo",
];

/// The absolute library paths in `ldd`'s output (`libc.so.6 => /lib/.../libc.so.6 (0x...)`,
/// `/lib64/ld-linux-x86-64.so.2 (0x...)`); `linux-vdso.so.1` has none.
fn libraries(ldd: &str) -> Vec<String> {
    ldd.lines()
        .filter_map(|l| l.split_whitespace().find(|w| w.starts_with('/')))
        .map(str::to_string)
        .collect()
}

fn write_header(
    out: &mut Vec<u8>,
    ino: u32,
    mode: u32,
    nlink: u32,
    size: u32,
    rdev: (u32, u32),
    name: &str,
) {
    let fields = [
        ino,
        mode,
        0,
        0,
        nlink,
        0,
        size,
        0,
        0,
        rdev.0,
        rdev.1,
        name.len() as u32 + 1,
        0,
    ];
    out.extend_from_slice(b"070701");
    for f in fields {
        out.extend_from_slice(format!("{f:08x}").as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    pad4(out);
}

fn pad4(out: &mut Vec<u8>) {
    while out.len() & 3 != 0 {
        out.push(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newc_layout() {
        let mut fs = Initramfs::new();
        fs.file("/a/b", b"hi".to_vec(), 0o644);
        let bytes = fs.to_bytes();
        // Implicit dir `/a`, then the file, then the trailer; every record 4-aligned.
        assert!(bytes.starts_with(b"070701"));
        let text = String::from_utf8_lossy(&bytes);
        assert_eq!(text.matches("070701").count(), 3);
        assert!(text.contains("a\0"));
        assert!(text.contains("a/b\0"));
        assert!(text.contains("TRAILER!!!\0"));
        assert_eq!(bytes.len() % 4, 0);
        // The file header: mode 0o100644, size 2, name size 4 ("a/b\0").
        let at = text.find("a/b\0").unwrap() - 110;
        let h = &text[at..at + 110];
        assert_eq!(&h[14..22], format!("{:08x}", S_IFREG | 0o644));
        assert_eq!(&h[54..62], "00000002");
        assert_eq!(&h[94..102], "00000004");
    }

    #[test]
    fn ldd_output() {
        let out = "\tlinux-vdso.so.1 (0x00007ffd)\n\tlibz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x7f)\n\t/lib64/ld-linux-x86-64.so.2 (0x7f)\n";
        assert_eq!(
            libraries(out),
            [
                "/lib/x86_64-linux-gnu/libz.so.1",
                "/lib64/ld-linux-x86-64.so.2"
            ]
        );
    }

    #[test]
    fn cpio_tool_reads_it() {
        // The archive is what GNU cpio (and so the kernel's newc unpacker) understands.
        let Some(cpio) = crate::kernel::toolchain::which("cpio") else {
            return;
        };
        let mut fs = Initramfs::new();
        fs.file("/bin/x", b"data".to_vec(), 0o755)
            .symlink("/bin/y", "x")
            .char_dev("/dev/console", 0o600, 5, 1)
            .fifo("/run/wait", 0o600);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("i.cpio");
        fs.write(&path).unwrap();
        let out = std::process::Command::new(cpio)
            .args(["-t", "-v", "-F"])
            .arg(&path)
            .output()
            .unwrap();
        let list = String::from_utf8_lossy(&out.stdout);
        assert!(list.contains("bin/y -> x"), "{list}");
        assert!(list.contains("crw-------"), "{list}");
        assert!(list.contains("prw-------"), "{list}");
        assert!(list.contains("-rwxr-xr-x"), "{list}");
    }
}
