//! `cargo xtask bench deploy`: a redeploy of an unchanged, already-built module against the
//! same steps written by hand.
//!
//! One arm64 board (the deploy tests' board: the dev kernel under qemu with dropbear, run by
//! `cargo run -p cargo-kmod --example test_board`) serves both sides. `examples/hello` is
//! built for arm64 and deployed once; then, interleaved and in the same run:
//!
//! - (a) by hand: `scp hello.ko` to the board, `ssh rmmod hello`, `ssh insmod` (three
//!   ordinary ssh connections, as one types them);
//! - (b) `cargo kmod deploy` in the example: the build's no-op check, the board's facts,
//!   the checks (vermagic, CRCs against the tree), copy, unload, load, each step's kernel log.
//!
//! Prints the medians and the ratio (b)/(a); the goal is at most 1.5x.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

const RUNS: usize = 7;
const GOAL: f64 = 1.5;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn check(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({})\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn time(cmds: &mut [&mut Command]) -> Result<Duration> {
    let start = Instant::now();
    for c in cmds.iter_mut() {
        check(c)?;
    }
    Ok(start.elapsed())
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// The board: a child whose stdin, when closed, stops it.
struct Board {
    child: Child,
    port: u16,
}

impl Board {
    fn start(cargo: &str, key: &Path) -> Result<Board> {
        let mut child = Command::new(cargo)
            .args([
                "run",
                "-q",
                "-p",
                "cargo-kmod",
                "--example",
                "test_board",
                "--",
            ])
            .arg("--key")
            .arg(key)
            .current_dir(root())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("cannot start the test board")?;
        let out = child.stdout.take().expect("piped");
        let mut line = String::new();
        BufReader::new(out).read_line(&mut line)?;
        let Some(port) = line
            .trim()
            .strip_prefix("port ")
            .and_then(|p| p.parse().ok())
        else {
            let _ = child.wait();
            bail!(
                "the test board did not come up (it printed `{}`)",
                line.trim()
            );
        };
        Ok(Board { child, port })
    }
}

impl Drop for Board {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

pub fn run() -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    check(
        Command::new(&cargo)
            .args([
                "build",
                "-q",
                "-p",
                "cargo-kmod",
                "--bin",
                "cargo-kmod",
                "--example",
                "test_board",
            ])
            .current_dir(root()),
    )?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"));
    let bin = target.join("debug/cargo-kmod");
    let work = target.join("kmod-bench-deploy");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let key = work.join("id");
    check(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&key),
    )?;
    let known = work.join("known_hosts");
    let opts: Vec<String> = vec![
        format!("IdentityFile={}", key.display()),
        "IdentitiesOnly=yes".into(),
        "IdentityAgent=none".into(),
        format!("UserKnownHostsFile={}", known.display()),
        "StrictHostKeyChecking=accept-new".into(),
        "BatchMode=yes".into(),
        "LogLevel=ERROR".into(),
    ];
    let manifest = root().join("examples/hello/Cargo.toml");
    let kmod = |args: &[&str]| {
        let mut c = Command::new(&bin);
        c.arg("kmod")
            .args(args)
            .arg("--manifest-path")
            .arg(&manifest)
            .env("CARGO_TARGET_DIR", &work);
        c
    };
    check(&mut kmod(&["build", "-q", "--arch", "arm64"]))?;
    let ko = work.join("kmod/arm64/hello.ko");
    if !ko.is_file() {
        bail!("`{}` was not built", ko.display());
    }

    let board = Board::start(&cargo, &work.join("id.pub"))?;
    let host = format!("root@127.0.0.1:{}", board.port);
    let port = board.port.to_string();
    let deploy = || {
        let mut c = kmod(&["deploy", "-q", "--host", &host, "--ssh-config", "/dev/null"]);
        for o in &opts {
            c.arg("--ssh-option").arg(o);
        }
        c
    };
    let ssh = |tool: &str, args: &[&str]| {
        let mut c = Command::new(tool);
        c.args(["-F", "/dev/null"]);
        for o in &opts {
            c.arg("-o").arg(o);
        }
        c.args(args);
        c
    };
    // The first deploy loads the module; every timed one replaces it.
    check(&mut deploy())?;

    let target_path = "root@127.0.0.1:/tmp/hello.ko".to_string();
    let ko_arg = ko.display().to_string();
    let (mut plain, mut ours) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        plain.push(time(&mut [
            &mut ssh("scp", &["-q", "-P", &port, &ko_arg, &target_path]),
            &mut ssh("ssh", &["-p", &port, "root@127.0.0.1", "rmmod hello"]),
            &mut ssh(
                "ssh",
                &["-p", &port, "root@127.0.0.1", "insmod /tmp/hello.ko"],
            ),
        ])?);
        ours.push(time(&mut [&mut deploy()])?);
    }
    drop(board);
    let (p, d) = (median(plain), median(ours));
    let ratio = d.as_secs_f64() / p.as_secs_f64();
    println!(
        "  arm64: scp + ssh rmmod + ssh insmod {:.2}s | cargo kmod deploy {:.2}s = {:.2}x ({})   [goal <= {GOAL}x, medians of {RUNS}]",
        p.as_secs_f64(),
        d.as_secs_f64(),
        ratio,
        if ratio <= GOAL { "ok" } else { "OVER" }
    );
    Ok(())
}
