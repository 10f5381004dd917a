//! Guests and boards: qemu boots through the library's one entry point, `cargo kmod test`
//! of `.ko` files, the deploy tests' ssh board, and the processes they leave (or must not).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;
use std::time::Duration;

use cargo_kmod::deploy::testboard::{BoardSpec, TestBoard};
use cargo_kmod::kernel::KernelTree;
use cargo_kmod::shell::Shell;

use super::*;

/// Every file and symlink under `stage`, as initramfs files at the same guest path.
pub fn stage_files(stage: &Path) -> Vec<cargo_kmod::guest::GuestFile> {
    use cargo_kmod::guest::{FileSource, GuestFile};
    fn walk(root: &Path, dir: &Path, out: &mut Vec<GuestFile>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let path = e.path();
            let guest = format!("/{}", path.strip_prefix(root).unwrap().display());
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&path).unwrap();
                out.push(GuestFile {
                    guest_path: guest,
                    source: FileSource::Symlink(target.display().to_string()),
                    mode: 0o777,
                });
            } else if meta.is_dir() {
                walk(root, &path, out);
            } else {
                out.push(GuestFile {
                    guest_path: guest,
                    source: FileSource::Host(path),
                    mode: 0o644,
                });
            }
        }
    }
    let mut out = Vec::new();
    walk(stage, stage, &mut out);
    out
}

/// Boot `arch`'s dev tree with `module.sig_enforce=1`, the files of `stage`, kmod's own
/// tools when `real_kmod`, and `steps`, through the library's qemu entry point.
pub fn boot_steps(
    arch: &str,
    stage: &Path,
    real_kmod: bool,
    steps: Vec<cargo_kmod::guest::Step>,
) -> cargo_kmod::guest::run::GuestRun {
    use cargo_kmod::guest::{FileSource, GuestFile, GuestPlan};
    use cargo_kmod::qemu::{run_plan, Accel, Machine};
    let tree = cargo_kmod::kernel::KernelTree::open(&built(arch).tree).unwrap();
    let machine = Machine::for_tree(&tree, Accel::Tcg).unwrap();
    let mut files = stage_files(stage);
    if real_kmod {
        files.push(GuestFile {
            guest_path: "/sbin/kmod".into(),
            source: FileSource::Program("/usr/bin/kmod".into()),
            mode: 0o755,
        });
        for tool in ["modprobe", "modinfo", "depmod", "lsmod"] {
            files.push(GuestFile {
                guest_path: format!("/sbin/{tool}"),
                source: FileSource::Symlink("kmod".into()),
                mode: 0o777,
            });
        }
    }
    let plan = GuestPlan {
        files,
        steps,
        cmdline: vec!["module.sig_enforce=1".into()],
        timeout: std::time::Duration::from_secs(300),
        ..GuestPlan::default()
    };
    let shell = cargo_kmod::shell::Shell::plain();
    let run = run_plan(&shell, &machine, &plan, |_| {}).unwrap();
    run.ensure_complete(plan.timeout).unwrap();
    run
}

/// `cargo kmod test --arch ARCH --ko KO... EXTRA` under TCG.
pub fn kmod_test(arch: &str, kos: &[&Path], extra: &[&str]) -> Output {
    let mut args = vec!["test", "--arch", arch];
    let kos: Vec<String> = kos.iter().map(|k| k.display().to_string()).collect();
    for k in &kos {
        args.push("--ko");
        args.push(k);
    }
    args.extend_from_slice(extra);
    run(kmod(&args).env("CARGO_KMOD_ACCEL", "tcg"))
}

/// The library's test boot of `kos` on `arch`, optionally with the protocol on the console.
pub fn library_test(
    arch: &str,
    kos: &[&Path],
    shared: bool,
) -> cargo_kmod::guest::verdict::TestReport {
    use cargo_kmod::guest::modules::KoModule;
    use cargo_kmod::qemu::{testrun, Accel, Machine};
    let tree = cargo_kmod::kernel::KernelTree::open(&dev_tree(arch)).unwrap();
    let mut machine = Machine::for_tree(&tree, Accel::Tcg).unwrap();
    if shared {
        machine = machine.with_shared_console();
    }
    let modules: Vec<KoModule> = kos
        .iter()
        .map(|k| KoModule::read(k, tree.arch).unwrap())
        .collect();
    let shell = cargo_kmod::shell::Shell::plain();
    testrun::run_tests(
        &shell,
        &machine,
        &modules,
        &cargo_kmod::guest::verdict::TestOptions::default(),
        |_| {},
    )
    .unwrap()
}

/// Each case of a report with its verdict word.
pub fn verdicts(r: &cargo_kmod::guest::verdict::TestReport) -> Vec<(String, &'static str)> {
    r.cases
        .iter()
        .map(|c| (c.name.clone(), c.verdict.word()))
        .collect()
}

/// Live children of `ppid` whose command name starts with `name`.
pub fn children_named(ppid: u32, name: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        let comm = &stat[stat.find('(').unwrap() + 1..close];
        let fields: Vec<&str> = stat[close + 2..].split(' ').collect();
        if comm.starts_with(name) && fields[1].parse::<u32>().ok() == Some(ppid) && fields[0] != "Z"
        {
            out.push(pid);
        }
    }
    out
}

/// The snapshots in `home`.
pub fn snapshots(home: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(home.join("qemu/snapshots"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    v.retain(|p| p.is_dir() && !p.file_name().unwrap().to_string_lossy().starts_with('.'));
    v
}

/// Every live process below `pid`.
pub fn descendants(pid: u32) -> Vec<u32> {
    let mut all = Vec::new();
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(child) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
                continue;
            };
            let Some(close) = stat.rfind(')') else {
                continue;
            };
            let f: Vec<&str> = stat[close + 2..].split(' ').collect();
            if f[1].parse::<u32>().ok() == Some(p) && f[0] != "Z" {
                all.push(child);
                todo.push(child);
            }
        }
    }
    all
}

/// Whether process `pid` is alive (not a zombie).
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| s.rfind(')').is_some_and(|c| &s[c + 2..c + 3] != "Z"))
        .unwrap_or(false)
}

// ---- the deploy tests' board ----

static BOARDS: Mutex<()> = Mutex::new(());

/// A booted board and the key that logs in to it.
pub struct Board {
    board: Option<TestBoard>,
    keys: tempfile::TempDir,
    _lock: std::sync::MutexGuard<'static, ()>,
}

impl Board {
    pub fn start(cmdline: &[&str]) -> Board {
        let lock = BOARDS.lock().unwrap_or_else(|e| e.into_inner());
        let keys = scratch();
        keygen(&keys.path().join("id"));
        let key = std::fs::read_to_string(keys.path().join("id.pub")).unwrap();
        let spec = BoardSpec {
            tree: KernelTree::open(&dev_tree("arm64")).unwrap(),
            authorized_key: key,
            cmdline: cmdline.iter().map(|s| s.to_string()).collect(),
            lifetime: Duration::from_secs(1800),
            boot_timeout: Duration::from_secs(180),
        };
        let board = TestBoard::start(&Shell::plain(), &spec)
            .unwrap_or_else(|e| panic!("the test board did not come up: {e:#}"));
        Board {
            board: Some(board),
            keys,
            _lock: lock,
        }
    }

    pub fn port(&self) -> u16 {
        self.board.as_ref().unwrap().port
    }

    pub fn host(&self) -> String {
        format!("root@127.0.0.1:{}", self.port())
    }

    /// The documented way to give ssh options to `deploy`, here: only this key and
    /// known-hosts file, no agent, no prompts.
    pub fn ssh_flags(&self, key: &Path) -> Vec<String> {
        let mut v = vec!["--ssh-config".to_string(), "/dev/null".to_string()];
        for o in [
            format!("IdentityFile={}", key.display()),
            "IdentitiesOnly=yes".into(),
            "IdentityAgent=none".into(),
            format!(
                "UserKnownHostsFile={}",
                self.keys.path().join("known_hosts").display()
            ),
            "StrictHostKeyChecking=accept-new".into(),
            "BatchMode=yes".into(),
            "LogLevel=ERROR".into(),
        ] {
            v.push("--ssh-option".into());
            v.push(o);
        }
        v
    }

    /// `cargo kmod deploy --host root@127.0.0.1:PORT ARGS...` in `dir`.
    pub fn deploy(&self, dir: &Path, args: &[&str]) -> Command {
        let mut c = kmod(&["deploy", "--host", &self.host()]);
        c.args(self.ssh_flags(&self.keys.path().join("id")))
            .args(args)
            .current_dir(dir);
        c
    }

    /// Plain `ssh` for the test's own look at the board.
    pub fn ssh(&self, cmd: &str) -> String {
        let o = Command::new("ssh")
            .args(["-F", "/dev/null", "-p", &self.port().to_string()])
            .args(["-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes"])
            .arg("-o")
            .arg(format!(
                "IdentityFile={}",
                self.keys.path().join("id").display()
            ))
            .arg("-o")
            .arg(format!(
                "UserKnownHostsFile={}",
                self.keys.path().join("known_hosts").display()
            ))
            .args([
                "-o",
                "StrictHostKeyChecking=accept-new",
                "root@127.0.0.1",
                cmd,
            ])
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "ssh `{cmd}` failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    pub fn loaded(&self, module: &str) -> bool {
        self.ssh("cat /proc/modules")
            .lines()
            .any(|l| l.split(' ').next() == Some(module))
    }

    /// How many ssh connections the board's dropbear accepted so far (this query's included).
    pub fn connections(&self) -> usize {
        self.ssh("grep -c 'connection from' /tmp/dropbear.log")
            .trim()
            .parse()
            .unwrap()
    }

    /// What the deploys left in the board's temporary directory.
    pub fn leftovers(&self) -> String {
        self.ssh("ls -a /tmp")
            .lines()
            .filter(|l| l.starts_with("cargo-kmod."))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl Drop for Board {
    fn drop(&mut self) {
        if let Some(b) = self.board.take() {
            let _ = b.stop();
        }
    }
}

/// A fresh passphrase-less ed25519 key at `path` (and `path.pub`).
pub fn keygen(path: &Path) {
    let o = Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "cargo-kmod-test",
            "-f",
        ])
        .arg(path)
        .output()
        .expect("ssh-keygen (Debian: openssh-client) is needed for the deploy tests");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}
