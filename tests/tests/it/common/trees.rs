//! Kernel trees: the prepared dev and board trees, variants of a dev tree, private homes.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::*;

/// The prepared dev trees, from `cargo kmod init --list --message-format json`.
pub fn trees() -> Vec<serde_json::Value> {
    let o = run(&mut kmod(&["init", "--list", "--message-format", "json"]));
    ok(&o);
    stdout(&o)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The newest 7.x dev tree for `arch`. Panics with the fix when there is none: a test that
/// needs a kernel never passes without one.
pub fn dev_tree(arch: &str) -> PathBuf {
    tree_where(arch, |release| !release.starts_with("6."))
}

/// A 6.12 dev tree for `arch` (prepared with `--source /usr/src/linux-source-6.12.tar.xz`).
pub fn tree_612(arch: &str) -> PathBuf {
    tree_where(arch, |release| release.starts_with("6.12"))
}

fn tree_where(arch: &str, pick: impl Fn(&str) -> bool) -> PathBuf {
    let found = trees()
        .into_iter()
        .find(|t| t["arch"] == arch && t["release"].as_str().is_some_and(&pick));
    match found {
        Some(t) => PathBuf::from(t["path"].as_str().unwrap()),
        None => panic!(
            "no prepared {arch} kernel tree for this test (CI={}): run `cargo xtask setup` \
             (or `cargo kmod init --arch {arch}`) first",
            std::env::var("CI").unwrap_or_default()
        ),
    }
}

/// The `CARGO_KMOD_HOME` the tests share (the prepared trees, busybox, rust-src).
pub fn real_home() -> PathBuf {
    std::env::var_os("CARGO_KMOD_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cargo-kmod"))
}

/// `$CARGO_KMOD_HOME/rust-src/<ver>/usr/lib/rustlib/src/rust/library` for the `rustc` the
/// kernel's `make` runs: what `RUST_LIB_SRC` is for a hand-written Kbuild.
pub fn rust_lib_src() -> PathBuf {
    let v = String::from_utf8(
        Command::new("rustc")
            .arg("--version")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let v = v.split_whitespace().nth(1).unwrap().to_string();
    real_home()
        .join("rust-src")
        .join(v)
        .join("usr/lib/rustlib/src/rust/library")
}

/// The kernel release of a prepared tree.
pub fn release(tree: &Path) -> String {
    std::fs::read_to_string(tree.join("include/config/kernel.release"))
        .unwrap()
        .trim()
        .to_string()
}

/// A file of a tree (relative path) and how its text changes.
pub type Edit<'a> = (&'a str, &'a dyn Fn(&str) -> String);

/// Tree variants are made one at a time: two tests may want the same one.
static VARIANTS: Mutex<()> = Mutex::new(());

/// A tree that is `arch`'s dev tree in all but what `edits` rewrite, made once in
/// `target/kmod-fixtures/<arch>/<name>`: every entry a symlink to the real one, except the
/// directories on the way to the edited files, and the `Makefile`, which names this
/// directory as `KBUILD_OUTPUT`.
pub fn tree_variant(arch: &str, name: &str, edits: &[Edit<'_>]) -> PathBuf {
    let real = dev_tree(arch);
    let dir = root().join("target/kmod-fixtures").join(arch).join(name);
    let _lock = VARIANTS.lock().unwrap_or_else(|e| e.into_inner());
    let stamp = dir.join("variant.stamp");
    if stamp.is_file() {
        return dir;
    }
    let _ = std::fs::remove_dir_all(&dir);
    fn mirror(real: &Path, dir: &Path, keep: &[&str]) {
        std::fs::create_dir_all(dir).unwrap();
        for e in std::fs::read_dir(real).unwrap().flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            let sub: Vec<&str> = keep
                .iter()
                .filter_map(|k| k.strip_prefix(&format!("{n}/")))
                .collect();
            if keep.contains(&n.as_str()) || n == "Makefile" {
                continue;
            } else if !sub.is_empty() {
                mirror(&e.path(), &dir.join(&n), &sub);
            } else {
                std::os::unix::fs::symlink(e.path(), dir.join(&n)).unwrap();
            }
        }
    }
    let keep: Vec<&str> = edits.iter().map(|(p, _)| *p).collect();
    mirror(&real, &dir, &keep);
    let srctree = std::fs::canonicalize(real.join("source")).unwrap();
    std::fs::write(
        dir.join("Makefile"),
        format!(
            "export KBUILD_OUTPUT = {}\ninclude {}/Makefile\n",
            dir.display(),
            srctree.display()
        ),
    )
    .unwrap();
    for (path, edit) in edits {
        let text = std::fs::read_to_string(real.join(path)).unwrap();
        let new = edit(&text);
        assert_ne!(new, text, "{path} unchanged");
        std::fs::write(dir.join(path), new).unwrap();
    }
    std::fs::write(&stamp, "").unwrap();
    dir
}

/// A `Module.symvers` with every exported symbol's CRC changed, as when the kernel's types
/// all differ.
pub fn skew_crcs(symvers: &str) -> String {
    symvers
        .lines()
        .map(|l| match l.split_once('\t') {
            Some((crc, rest)) => {
                let crc = u32::from_str_radix(crc.trim_start_matches("0x"), 16).unwrap();
                format!("0x{:08x}\t{rest}\n", crc ^ 0x5a5a_5a5a)
            }
            None => format!("{l}\n"),
        })
        .collect()
}

/// A tree that differs from the dev tree in its exported symbols' CRCs, the way a tree
/// with a changed ABI does.
pub fn skewed_tree(arch: &str) -> PathBuf {
    tree_variant(arch, "skewed-tree", &[("Module.symvers", &skew_crcs)])
}

/// A scratch CARGO_KMOD_HOME sharing the real one's unpacked sources and rust-src, so
/// failing inits run for real without touching the user's trees.
pub fn scratch_home() -> tempfile::TempDir {
    scratch_home_sharing(&["sources", "rust-src", "busybox"])
}

/// A scratch CARGO_KMOD_HOME with symlinks to the real one's `shared` directories.
pub fn scratch_home_sharing(shared: &[&str]) -> tempfile::TempDir {
    let t = scratch();
    for d in shared {
        std::os::unix::fs::symlink(real_home().join(d), t.path().join(d)).unwrap();
    }
    t
}

/// `cargo kmod init ARGS` with `home` as `CARGO_KMOD_HOME`.
pub fn init_in(home: &Path, args: &[&str]) -> Command {
    let mut c = kmod(&[&["init"][..], args].concat());
    c.env("CARGO_KMOD_HOME", home);
    c
}

/// The newest `/usr/src/linux-source-7.*` tarball.
pub fn tarball_72() -> String {
    let mut v: Vec<PathBuf> = std::fs::read_dir("/usr/src")
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("linux-source-7.")
        })
        .collect();
    v.sort();
    v.pop()
        .expect("no /usr/src/linux-source-7.*: run `cargo xtask setup`")
        .display()
        .to_string()
}

/// Trees under `home` that count as prepared.
pub fn stamped(home: &Path) -> usize {
    std::fs::read_dir(home.join("trees"))
        .map(|it| {
            it.flatten()
                .filter(|e| e.path().join("cargo-kmod-tree.json").is_file())
                .count()
        })
        .unwrap_or(0)
}

/// Board tests share trees and one of them hides a tree for a while: one at a time.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// A file of `tests/fixtures/boards`.
pub fn board_fixture(name: &str) -> PathBuf {
    root().join("tests/fixtures/boards").join(name)
}

/// `cargo kmod init ARGS` (a no-op when prepared): the tree's path.
pub fn init(args: &[&str]) -> PathBuf {
    let o = run(kmod(&["init", "--message-format", "json"]).args(args));
    ok(&o);
    let tree = stdout(&o)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["reason"] == "kernel-tree")
        .unwrap_or_else(|| panic!("no kernel-tree line from `init {args:?}`"));
    PathBuf::from(tree["path"].as_str().unwrap())
}

/// The `rpi4` preset's tree (`rpi3` shares it).
pub fn rpi4_tree() -> PathBuf {
    init(&["--board", "rpi4"])
}

/// The GCC-cross-built tree of the vendor-style board configuration.
pub fn gcc_tree() -> PathBuf {
    let cfg = board_fixture("rpi4-vendor_defconfig");
    init(&[
        "--cc",
        "gcc",
        "--arch",
        "arm64",
        "--base-config",
        cfg.to_str().unwrap(),
    ])
}

/// Whether every prepared tree is where `init --list` says: [`Hidden`] takes it for
/// writing, a test that looks at every tree (`doctor` without `--kdir`) for reading.
static IN_PLACE: RwLock<()> = RwLock::new(());

/// Every prepared tree stays in place while the guard lives.
pub fn every_tree_in_place() -> RwLockReadGuard<'static, ()> {
    IN_PLACE.read().unwrap_or_else(|e| e.into_inner())
}

/// Renames a tree away for the guard's lifetime: nothing may reach it meanwhile, and no
/// test of this process looks at every tree meanwhile ([`every_tree_in_place`]).
pub struct Hidden {
    tree: PathBuf,
    away: PathBuf,
    _in_place: RwLockWriteGuard<'static, ()>,
}

impl Hidden {
    pub fn new(tree: &Path) -> Hidden {
        let guard = IN_PLACE.write().unwrap_or_else(|e| e.into_inner());
        let away = tree.with_extension("hidden-by-test");
        std::fs::rename(tree, &away).unwrap();
        Hidden {
            tree: tree.to_path_buf(),
            away,
            _in_place: guard,
        }
    }
}

impl Drop for Hidden {
    fn drop(&mut self) {
        std::fs::rename(&self.away, &self.tree).unwrap();
    }
}

/// A copy of the dev trees' Linux 7.x source under `parent` (hard links: seconds, not a
/// minute): what `cargo kmod export` writes into. Safe because export replaces files by
/// renaming new ones into place; a test that edits a file of the copy must replace it too
/// ([`replace_file`]), never write into it.
pub fn linux_copy_in(parent: &Path) -> PathBuf {
    let src = dev_tree("x86_64").join("source").canonicalize().unwrap();
    let dir = parent.join("linux");
    let linked = Command::new("cp")
        .arg("-al")
        .arg(&src)
        .arg(&dir)
        .status()
        .unwrap();
    if !linked.success() {
        // Another file system: a real copy.
        let _ = std::fs::remove_dir_all(&dir);
        let copied = Command::new("cp")
            .arg("-a")
            .arg(&src)
            .arg(&dir)
            .status()
            .unwrap();
        assert!(copied.success(), "cannot copy `{}`", src.display());
    }
    dir
}

/// [`linux_copy_in`] a scratch dir.
pub fn linux_copy() -> (tempfile::TempDir, PathBuf) {
    let tmp = scratch();
    let dir = linux_copy_in(tmp.path());
    (tmp, dir)
}

/// Replace `path` with a new file holding `text` (a hard-linked copy's file is never
/// written in place).
pub fn replace_file(path: &Path, text: &str) {
    let _ = std::fs::remove_file(path);
    std::fs::write(path, text).unwrap();
}
