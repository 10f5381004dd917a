//! The deploy tests' board as a program, for `cargo xtask bench deploy` (xtask cannot link
//! cargo-kmod: it must build on a machine before setup has installed OpenSSL's headers).
//!
//! `cargo run -p cargo-kmod --example test_board -- --key ID.pub [--cmdline ARG]...` boots
//! the arm64 dev kernel with dropbear (`cargo_kmod::deploy::testboard`), prints
//! `port PORT` on stdout once the board's sshd listens on `127.0.0.1:PORT`, and stops the
//! board when its standard input closes.

use std::io::Read;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use cargo_kmod::deploy::testboard::{BoardSpec, TestBoard};
use cargo_kmod::kernel::home::Home;
use cargo_kmod::kernel::resolve;
use cargo_kmod::kernel::{Arch, ToolChoice};
use cargo_kmod::shell::{ColorChoice, MessageFormat, Shell, Verbosity};

fn main() -> Result<()> {
    let mut key = None;
    let mut cmdline = Vec::new();
    let mut shell = Shell::plain();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--key" => key = args.next(),
            "--cmdline" => cmdline.extend(args.next()),
            // The board's console on stderr.
            "--verbose" => {
                shell = Shell::new(Verbosity::Verbose, MessageFormat::Human, ColorChoice::Never)
            }
            _ => bail!("usage: test_board --key ID.pub [--cmdline ARG]... [--verbose]"),
        }
    }
    let key = key.context("usage: test_board --key ID.pub [--cmdline ARG]... [--verbose]")?;
    let authorized_key =
        std::fs::read_to_string(&key).with_context(|| format!("cannot read `{key}`"))?;
    let tree = resolve::dev_tree(
        &Home::from_env()?,
        Arch::Arm64,
        None,
        &ToolChoice::default(),
    )?;
    let board = TestBoard::start(
        &shell,
        &BoardSpec {
            tree,
            authorized_key,
            cmdline,
            lifetime: Duration::from_secs(3600),
            boot_timeout: Duration::from_secs(180),
        },
    )?;
    println!("port {}", board.port);
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    board.stop()?;
    Ok(())
}
