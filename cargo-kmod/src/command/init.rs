//! `cargo kmod init`: prepare Rust-ready kernel trees under `$CARGO_KMOD_HOME`: the dev trees,
//! board trees (`--board`, `--base-config`) and GCC-built trees (`--cc gcc`).

use std::path::PathBuf;

use anyhow::Result;
use serde_json::json;

use crate::context::Session;
use crate::kernel::board::BOARDS;
use crate::kernel::home::Home;
use crate::kernel::prepare::TreeAsk;
use crate::kernel::Arch;
use crate::ops::{self, init::InitRequest};

#[derive(Debug, clap::Args)]
pub struct InitCmd {
    /// Kernel source: a `.tar.xz`/`.tar.gz` tarball or an unpacked tree, e.g. a vendor's
    /// [default: the newest /usr/src/linux-source-*.tar.*]
    #[arg(long, value_name = "PATH")]
    pub source: Option<PathBuf>,
    /// Architecture(s) to prepare: x86_64, arm64 or all [default: all; the board's or the
    /// base config's arch]
    #[arg(long, value_name = "ARCH")]
    pub arch: Option<String>,
    /// A board preset: tinyconfig + the dev fragments + the board's SoC fragment (rpi3, rpi4)
    #[arg(long, value_name = "BOARD", conflicts_with_all = ["base_config", "target"])]
    pub board: Option<String>,
    /// Start from a board's configuration instead of tinyconfig: a `.config`, a `config.gz`
    /// (a board's `/proc/config.gz`) or a defconfig target of the source (`defconfig`)
    #[arg(long, value_name = "FILE|DEFCONFIG", conflicts_with = "target")]
    pub base_config: Option<String>,
    /// The compiler the kernel is built with: clang (LLVM) or gcc (`CROSS_COMPILE`, default
    /// `aarch64-linux-gnu-` for arm64)
    #[arg(long, value_name = "CC", default_value = "clang")]
    pub cc: String,
    /// Prepare the tree of a named target of `[workspace.metadata.kmod.targets.NAME]` (its
    /// keys say everything: the target's tree is the one `build --target NAME` looks up)
    #[arg(long, value_name = "NAME", conflicts_with_all = ["source", "arch", "cc", "configs"])]
    pub target: Option<String>,
    /// Path to Cargo.toml (with `--target`)
    #[arg(long, value_name = "PATH", requires = "target")]
    pub manifest_path: Option<PathBuf>,
    /// Extra Kconfig fragment merged after the built-in ones (repeatable)
    #[arg(long = "config", value_name = "FRAGMENT")]
    pub configs: Vec<PathBuf>,
    /// Parallel make jobs [default: the number of CPUs]
    #[arg(short, long, value_name = "N")]
    pub jobs: Option<usize>,
    /// Complete a distribution kernel's headers with `rust/`: `debian:<release>` (e.g.
    /// `debian:7.2.13+deb14-arm64`), its packages fetched from Debian
    #[arg(long, value_name = "DISTRO:RELEASE", conflicts_with_all = ["source", "arch", "board", "base_config", "target", "configs", "kdir"])]
    pub distro_kernel: Option<String>,
    /// Complete installed distribution headers (`/lib/modules/<release>/build`) with `rust/`,
    /// under `$CARGO_KMOD_HOME` (the directory is not written to)
    #[arg(long, value_name = "DIR", conflicts_with_all = ["source", "arch", "board", "base_config", "target", "configs"])]
    pub kdir: Option<PathBuf>,
    /// Prepare the sanitizer tree: the dev tree plus generic KASAN, which `cargo kmod test
    /// --sanitize` boots (out-of-bounds accesses and use-after-free reported by the kernel)
    #[arg(long, conflicts_with_all = ["board", "base_config", "target", "configs", "distro_kernel", "kdir"])]
    pub sanitize: bool,
    /// List the prepared trees (and the board presets) and exit
    #[arg(long)]
    pub list: bool,
    /// Print the name each tree has under `$CARGO_KMOD_HOME/trees` (`x86_64-8f36…`, over the
    /// inputs and the tools' versions) without preparing it, one per line: a CI cache's key
    #[arg(long, conflicts_with = "list")]
    pub print_key: bool,
}

impl InitCmd {
    pub fn run(&self, session: &Session) -> Result<()> {
        if self.list {
            return list(session, &Home::from_env()?);
        }
        let jobs = self
            .jobs
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        let distro = match (&self.distro_kernel, &self.kdir, &self.target) {
            (Some(name), _, _) => Some(ops::init::DistroRequest::Named(
                crate::kernel::distro::DistroKernel::parse(name, "`--distro-kernel`")?,
            )),
            (None, Some(dir), _) => Some(ops::init::DistroRequest::Installed(dir.clone())),
            (None, None, Some(name)) => {
                ops::init::target_distro(session, name, self.manifest_path.as_deref())?
                    .map(ops::init::DistroRequest::Named)
            }
            _ => None,
        };
        if let (Some(req), true) = (&distro, self.print_key) {
            // A distribution's kernel is its own identity: its packages' release.
            let name = match req {
                ops::init::DistroRequest::Named(dk) => dk.name(),
                ops::init::DistroRequest::Installed(dir) => dir.display().to_string(),
            };
            let key: String = name
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || "._-".contains(c) {
                        c
                    } else {
                        '-'
                    }
                })
                .collect();
            session.shell.out(format_args!("distro-{key}"));
            return Ok(());
        }
        if let Some(req) = distro {
            let (c, fresh) = ops::init::init_distro(session, &req, jobs)?;
            if session.shell.is_json() {
                session.shell.json(&json!({
                    "reason": "kernel-tree",
                    "arch": c.arch.name(),
                    "release": c.release,
                    "path": c.dir,
                    "fresh": fresh,
                    "rustc": c.rustc_version,
                    "distro": true,
                    "headers": c.headers,
                    "symbols_checked": c.symbols_checked,
                }));
            }
            session.shell.status(
                if fresh { "Fresh" } else { "Finished" },
                format_args!(
                    "{} headers completed with rust/ ({} Rust symbols match its Module.symvers) at `{}`",
                    c.release,
                    c.symbols_checked,
                    c.dir.display()
                ),
            );
            return Ok(());
        }
        let req = match &self.target {
            Some(name) => InitRequest::Target {
                name: name.clone(),
                manifest_path: self.manifest_path.clone(),
                jobs,
            },
            None => InitRequest::Flags(TreeAsk {
                source: self.source.clone(),
                arches: match self.arch.as_deref() {
                    None => None,
                    Some("all") => Some(Arch::ALL.to_vec()),
                    Some(a) => Some(vec![Arch::parse(a)?]),
                },
                board: self.board.clone(),
                base_config: self.base_config.clone(),
                cc: Some(self.cc.clone()),
                cross_compile: session.env.cross_compile(),
                fragments: if self.sanitize {
                    vec![crate::kernel::prepare::sanitize_fragment()]
                } else {
                    ops::init::read_fragments(&self.configs)?
                },
                jobs,
            }),
        };
        if self.print_key {
            for key in ops::init::keys(session, &req)? {
                session.shell.out(key);
            }
            return Ok(());
        }
        ops::init::init(session, &req, |req, tree, fresh| {
            if session.shell.is_json() {
                session.shell.json(&json!({
                    "reason": "kernel-tree",
                    "arch": req.arch.name(),
                    "release": tree.meta.release,
                    "path": tree.dir,
                    "fresh": fresh,
                    "rustc": tree.meta.rustc,
                    "modversions": tree.meta.modversions,
                    "board": tree.meta.board,
                    "base_config": tree.meta.base_config,
                    "cc": tree.meta.cc,
                }));
            }
            let verb = if fresh { "Fresh" } else { "Finished" };
            session.shell.status(
                verb,
                format_args!(
                    "linux {} for {} at `{}`",
                    tree.meta.release,
                    req.label(),
                    tree.dir.display()
                ),
            );
        })
    }
}

fn list(session: &Session, home: &Home) -> Result<()> {
    let trees = home.list();
    for t in &trees {
        if session.shell.is_json() {
            session.shell.json(&json!({
                "reason": "kernel-tree",
                "arch": t.meta.arch.name(),
                "release": t.meta.release,
                "rustc": t.meta.rustc,
                "path": t.dir,
                "modversions": t.meta.modversions,
                "dev": t.meta.is_dev_tree(),
                "fragments": t.meta.fragments,
                "board": t.meta.board,
                "base_config": t.meta.base_config,
                "cc": t.meta.cc,
            }));
        } else {
            let rustc = t.meta.rustc.split_whitespace().nth(1).unwrap_or("?");
            let kind = if t.meta.is_dev_tree() {
                String::new()
            } else {
                format!(" ({})", t.meta.kind_label())
            };
            session.shell.out(format_args!(
                "{:<10} {:<7} rustc {:<8} {}{}",
                t.meta.release,
                t.meta.arch.name(),
                rustc,
                t.dir.display(),
                kind
            ));
        }
    }
    if trees.is_empty() && !session.shell.is_json() {
        session.shell.note(format_args!(
            "no prepared trees in `{}`; run `cargo kmod init`",
            home.trees_dir().display()
        ));
    }
    if !session.shell.is_json() {
        let boards: Vec<String> = BOARDS
            .iter()
            .map(|b| format!("{} ({})", b.name, b.description))
            .collect();
        session.shell.note(format_args!(
            "board presets for `--board`: {}",
            boards.join(", ")
        ));
    }
    Ok(())
}
