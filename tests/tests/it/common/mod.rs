//! Shared helpers, and the only place the tests define helpers: the real `cargo-kmod`
//! binary and its output (here), files in scratch dirs (`files`), kernel trees (`trees`),
//! module packages and the commands run on them (`packages`), modules built by hand-written
//! Kbuild and what tests read from `.ko` files (`modules`), and guests, boards and processes
//! (`guests`).
//!
//! Tests that need a kernel tree find it the way users do (`cargo kmod init --list`) and
//! fail loudly when it is missing; they never pass silently.
//!
//! Every test runs in one process, so what tests share is built once behind a `OnceLock`
//! (the binary, `modules::built`, `guests::workspace`) or taken under a lock (fixture builds,
//! tree variants, boards), and no helper changes the process's environment or working
//! directory: a child gets its own through `Command::env` and `Command::current_dir`.

mod files;
mod guests;
mod lsp;
mod modules;
mod packages;
mod trees;

pub use files::*;
pub use guests::*;
pub use lsp::*;
pub use modules::*;
pub use packages::*;
pub use trees::*;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The workspace's target directory (`CARGO_TARGET_DIR` when set).
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}

/// The cargo that runs the tests (`$CARGO`), as a Command.
pub fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// The `cargo-kmod` binary, built once per test process.
pub fn bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let status = cargo()
            .args([
                "build",
                "--quiet",
                "-p",
                "cargo-kmod",
                "--bin",
                "cargo-kmod",
            ])
            .current_dir(root())
            .status()
            .expect("cannot run cargo");
        assert!(status.success(), "building cargo-kmod failed");
        target_dir().join("debug/cargo-kmod")
    })
    .clone()
}

/// `cargo-kmod kmod ARGS...` as a Command (not yet run).
pub fn kmod(args: &[&str]) -> Command {
    let mut c = Command::new(bin());
    c.arg("kmod").args(args);
    c
}

/// Run and return the output; the caller asserts on it.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("cannot run cargo-kmod")
}

/// Run `cmd`, naming the program when it cannot start, and assert success.
#[track_caller]
pub fn ok_cmd(cmd: &mut Command) -> Output {
    let o = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run `{}`: {e}", cmd.get_program().display()));
    ok(&o);
    o
}

/// stdout as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The exit code, -1 when a signal ended the process.
pub fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

/// Assert success, printing both streams when it fails.
#[track_caller]
pub fn ok(o: &Output) {
    assert!(
        o.status.success(),
        "command failed ({})\n--- stdout\n{}\n--- stderr\n{}",
        o.status,
        stdout(o),
        stderr(o)
    );
}

/// Assert failure, returning stderr for message checks.
#[track_caller]
pub fn fails(o: &Output) -> String {
    assert!(
        !o.status.success(),
        "command unexpectedly succeeded\n--- stdout\n{}\n--- stderr\n{}",
        stdout(o),
        stderr(o)
    );
    stderr(o)
}

/// What [`one_error_line`] reads the `error:` lines from.
pub trait ErrorText {
    fn error_text(&self) -> String;
}

/// A command's stderr as text.
impl ErrorText for str {
    fn error_text(&self) -> String {
        self.to_string()
    }
}

impl ErrorText for String {
    fn error_text(&self) -> String {
        self.clone()
    }
}

/// A command that must have failed, without a panic.
impl ErrorText for Output {
    #[track_caller]
    fn error_text(&self) -> String {
        let err = fails(self);
        assert!(!err.contains("panicked"), "{err}");
        err
    }
}

/// The one `error:` line of a stderr, or of a command that failed (without a panic).
#[track_caller]
pub fn one_error_line<T: ErrorText + ?Sized>(from: &T) -> String {
    let err = from.error_text();
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{err}");
    errors[0].to_string()
}

/// The last line that starts with `error:`, and the `help:` after it.
pub fn error_and_help(err: &str) -> (String, String) {
    let error = err
        .lines()
        .rfind(|l| l.starts_with("error:"))
        .unwrap_or_else(|| panic!("no `error:` line in\n{err}"))
        .to_string();
    let help = err
        .lines()
        .skip_while(|l| *l != error)
        .find(|l| l.trim_start().starts_with("help:"))
        .unwrap_or("")
        .to_string();
    (error, help)
}

/// The failure section `---- NAME ----` of a libtest report: its lines.
pub fn failure<'a>(out: &'a str, name: &str) -> Vec<&'a str> {
    let head = format!("---- {name} ----");
    let Some(at) = out.find(&head) else {
        panic!("no failure `{name}` in:\n{out}");
    };
    out[at + head.len()..]
        .lines()
        .skip(1)
        .take_while(|l| !l.is_empty())
        .collect()
}
