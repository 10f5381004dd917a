//! `cargo kmod init`: prepare Rust-ready kernel trees under `$CARGO_KMOD_HOME`: the dev trees,
//! board trees (`--board`, `--base-config`) and GCC-built trees (`--cc gcc`).

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use serde_json::json;

use crate::context::Session;
use crate::tree::board::{Board, BOARDS};
use crate::tree::home::Home;
use crate::tree::prepare::{self, BaseConfig, Cc, Request, Source};
use crate::tree::toolchain::Toolchain;
use crate::tree::Arch;

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
    /// List the prepared trees (and the board presets) and exit
    #[arg(long)]
    pub list: bool,
}

impl InitCmd {
    pub fn run(&self, session: &Session) -> Result<()> {
        let home = Home::from_env()?;
        if self.list {
            return list(session, &home);
        }
        let jobs = self
            .jobs
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        let mut fragments = Vec::new();
        for path in &self.configs {
            let text = std::fs::read_to_string(path).map_err(|e| {
                crate::error::UserError::new(format!(
                    "cannot read config fragment `{}`: {}",
                    path.display(),
                    e.to_string().to_lowercase()
                ))
            })?;
            fragments.push((path.display().to_string(), text));
        }
        let requests = match &self.target {
            Some(name) => {
                let ws = crate::manifest::load(&session.shell, self.manifest_path.as_deref())?;
                let t = ws.target(name)?;
                let Some(req) = prepare::target_request(t, jobs)? else {
                    crate::bail_user!(
                        "target `{}` names no tree to prepare: it has no `board`, `base-config`, `cc` or `source`", name;
                        hint = "add `board = \"rpi4\"` (or `base-config`) to `[workspace.metadata.kmod.targets.{}]`, or give it a `kdir`", name
                    );
                };
                vec![req]
            }
            None => self.requests(fragments, jobs)?,
        };
        let tc = Toolchain::detect(&home);
        for req in requests {
            let label = req.label();
            let (tree, fresh) = prepare::prepare(&session.shell, &home, &tc, &req)
                .with_context(|| format!("cannot prepare the {label} tree"))?;
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
                    label,
                    tree.dir.display()
                ),
            );
        }
        Ok(())
    }

    /// The trees the flags ask for (one per arch).
    fn requests(&self, fragments: Vec<(String, String)>, jobs: usize) -> Result<Vec<Request>> {
        let board = self.board.as_deref().map(Board::find).transpose()?;
        let base = match &self.base_config {
            Some(arg) => BaseConfig::from_arg(arg)?,
            None => BaseConfig::Tiny,
        };
        let asked: Option<Vec<Arch>> = match self.arch.as_deref() {
            None => None,
            Some("all") => Some(Arch::ALL.to_vec()),
            Some(a) => Some(vec![Arch::parse(a)?]),
        };
        let arches = match (board, base.arch(), asked) {
            (Some(b), _, Some(a)) if a != [b.arch] => crate::bail_user!(
                "board `{}` is {}, not {}", b.name, b.arch,
                a.iter().map(|a| a.name()).collect::<Vec<_>>().join(", ");
                hint = "drop `--arch`: the board decides it"
            ),
            (Some(b), _, _) => vec![b.arch],
            (None, Some(from_file), Some(a)) if a != [from_file] => crate::bail_user!(
                "base config `{}` is an {} configuration, not {}",
                base.describe().unwrap_or_default(), from_file,
                a.iter().map(|a| a.name()).collect::<Vec<_>>().join(", ");
                hint = "drop `--arch`: the base config decides it"
            ),
            (None, Some(from_file), _) => vec![from_file],
            (None, None, Some(a)) if base != BaseConfig::Tiny && a.len() > 1 => crate::bail_user!(
                "`--base-config {}` is for one arch", base.describe().unwrap_or_default();
                hint = "pass `--arch arm64` or `--arch x86_64`"
            ),
            (None, None, Some(a)) => a,
            (None, None, None) if base != BaseConfig::Tiny => crate::bail_user!(
                "`--base-config {}` needs `--arch`: it does not say which arch it is for (no `CONFIG_ARM64=y` or `CONFIG_X86_64=y`)",
                base.describe().unwrap_or_default();
                hint = "pass `--arch arm64` or `--arch x86_64`"
            ),
            (None, None, None) => Arch::ALL.to_vec(),
        };
        let source = match &self.source {
            Some(p) => Source::from_path(p)?,
            None => Source::default_in(std::path::Path::new("/usr/src"))?,
        };
        let cross = crate::env::Env::get().cross_compile();
        arches
            .into_iter()
            .map(|arch| {
                Ok(Request {
                    source: source.clone(),
                    arch,
                    fragments: fragments.clone(),
                    jobs,
                    base: base.clone(),
                    board,
                    cc: Cc::parse(&self.cc, arch, cross.as_deref())?,
                })
            })
            .collect()
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
