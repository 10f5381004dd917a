//! The context a command works in, resolved once from its arguments.
//!
//! Like maturin's `BuildOptions` -> `BuildContext`: a command turns its clap arguments into
//! plain selections ([`Selection`], [`TreeSelection`]), then [`BuildContext::resolve`] reads
//! the workspace (`cargo metadata`, cached), selects the modules, and picks the kernel tree
//! **with its toolchain** (`LLVM=`, `CROSS_COMPILE=`, clang or gcc, decided once in
//! [`crate::kernel::TreeTools`]) and the rustc that compiles the modules. The `ops` layer takes
//! that data; nothing downstream re-reads the environment or resolves the tree again.
//!
//! [`Session`] is what every command has: the output [`Shell`] and the environment variables
//! cargo-kmod reads, read once ([`Env`]).

use std::path::PathBuf;

use anyhow::Result;

use crate::env::Env;
use crate::ko::KoFile;
use crate::manifest::{ModuleSpec, Workspace};
use crate::shell::Shell;
use crate::kernel::home::Home;
use crate::kernel::resolve::{self, Choice};
use crate::kernel::toolchain;
use crate::kernel::Version;
use crate::kernel::{Arch, KernelTree, ToolChoice};

/// What every command runs with.
pub struct Session {
    pub shell: Shell,
    /// The environment, read once ([`crate::env`]).
    pub env: &'static Env,
}

impl Session {
    pub fn new(shell: Shell) -> Session {
        Session {
            shell,
            env: Env::get(),
        }
    }

    /// `$CARGO_KMOD_HOME` (not every command needs it, so it is found on demand).
    pub fn home(&self) -> Result<Home> {
        Home::from_env()
    }

    /// `rustc --version` of the rustc that compiles modules (`RUSTC`, else `rustc`).
    pub fn rustc_version(&self) -> Option<String> {
        rustc_version(&self.env.rustc())
    }
}

/// `rustc --version` of `program`, cached under `$CARGO_KMOD_HOME/rustc/` while nothing that
/// decides which rustc runs has changed: the program found on `PATH`, and for rustup's proxy
/// `RUSTUP_TOOLCHAIN`, rustup's settings (default toolchain, directory overrides), the
/// `rust-toolchain` files above the current directory and every installed toolchain's
/// `rustc`. Spawning rustc through rustup costs more than a whole no-op build otherwise.
pub fn rustc_version(program: &str) -> Option<String> {
    let key = rustc_identity(program);
    let cache = Home::from_env().ok().map(|h| {
        h.root.join("rustc").join(format!(
            "{}.txt",
            &crate::fsutil::sha256_hex(key.as_bytes())[..16]
        ))
    });
    if let Some(line) = cache
        .as_ref()
        .and_then(|c| std::fs::read_to_string(c).ok())
        .filter(|l| l.starts_with("rustc "))
    {
        return Some(line.trim().to_string());
    }
    let sh = xshell::Shell::new().ok()?;
    let line = crate::process::version_line(&sh, program, &["--version"])?;
    if let Some(c) = &cache {
        // A cache that cannot be written only costs the next build a rustc run.
        let _ = crate::fsutil::write_atomic(c, line.as_bytes());
    }
    Some(line)
}

/// What decides which rustc `program` runs, as a string of file identities.
fn rustc_identity(program: &str) -> String {
    use crate::kbuild::fingerprint::Fingerprint;
    let mut fp = Fingerprint::default();
    fp.value("program", program);
    let found = toolchain::which(program);
    if let Some(p) = &found {
        fp.file(p);
        fp.value(
            "real",
            &std::fs::canonicalize(p)
                .unwrap_or_default()
                .display()
                .to_string(),
        );
    }
    let is_rustup = found
        .as_ref()
        .and_then(|p| std::fs::canonicalize(p).ok())
        .and_then(|p| {
            p.file_name()
                .map(|n| n.to_string_lossy().starts_with("rustup"))
        })
        .unwrap_or(false);
    if is_rustup {
        let env = crate::env::Env::get();
        fp.value("RUSTUP_TOOLCHAIN", env.var("RUSTUP_TOOLCHAIN").unwrap_or_default());
        let rustup_home = env.rustup_home().unwrap_or_default();
        fp.file(&rustup_home.join("settings.toml"));
        if let Ok(cwd) = std::env::current_dir() {
            fp.value("cwd", &cwd.display().to_string());
            for d in cwd.ancestors() {
                fp.file(&d.join("rust-toolchain"));
                fp.file(&d.join("rust-toolchain.toml"));
            }
        }
        let mut rustcs: Vec<PathBuf> = std::fs::read_dir(rustup_home.join("toolchains"))
            .map(|it| it.flatten().map(|e| e.path().join("bin/rustc")).collect())
            .unwrap_or_default();
        rustcs.sort();
        for r in &rustcs {
            fp.file(r);
        }
    }
    fp.finish()
}

/// Which packages: cargo's `--manifest-path`, `-p`, `--workspace`, as plain data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    pub manifest_path: Option<PathBuf>,
    pub packages: Vec<String>,
    pub workspace: bool,
}

impl Selection {
    /// Whether a package is named, or the current directory is inside a Cargo package.
    pub fn in_package(&self) -> bool {
        if self.manifest_path.is_some() || !self.packages.is_empty() || self.workspace {
            return true;
        }
        std::env::current_dir()
            .is_ok_and(|cwd| cwd.ancestors().any(|d| d.join("Cargo.toml").is_file()))
    }
}

/// Which kernel: `--kdir`, `--target`, `--arch`, as plain data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TreeSelection {
    pub kdir: Option<PathBuf>,
    pub target: Option<String>,
    pub arch: Option<Arch>,
}

/// A command's resolved context: the workspace, the selected modules, the kernel tree with
/// its toolchain, and the rustc that compiles the modules.
#[derive(Debug, Clone)]
pub struct BuildContext {
    pub home: Home,
    pub workspace: Workspace,
    /// The selected modules, dependencies first.
    pub modules: Vec<ModuleSpec>,
    pub tree: KernelTree,
    /// `rustc --version` of the rustc that compiles the modules.
    pub rustc: Option<String>,
}

impl BuildContext {
    /// The selected modules' crates.io dependencies, built by cargo for this tree with
    /// `features` per package, under `dir` (`deps::prepare` with this context's data).
    pub fn crate_deps(
        &self,
        shell: &crate::shell::Shell,
        tc: &crate::kernel::toolchain::Toolchain,
        features: &std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
        dir: &std::path::Path,
        opts: crate::deps::DepsOptions,
    ) -> Result<std::collections::BTreeMap<String, crate::deps::ModuleDeps>> {
        let modules: Vec<&ModuleSpec> = self.modules.iter().collect();
        crate::deps::prepare(
            shell,
            &self.workspace,
            &modules,
            &self.tree,
            tc,
            self.rustc.as_deref(),
            features,
            dir,
            opts,
        )
    }

    /// Read the workspace, select the modules, resolve the tree, and refuse a tree that
    /// cannot build Rust modules, before anything runs.
    pub fn resolve(
        session: &Session,
        select: &Selection,
        trees: &TreeSelection,
    ) -> Result<BuildContext> {
        let home = session.home()?;
        // `rustc --version` (usually cached) while cargo's metadata is read (usually cached).
        let program = session.env.rustc();
        let rustc_probe = std::thread::spawn(move || rustc_version(&program));
        let workspace = crate::manifest::load(&session.shell, select.manifest_path.as_deref())?;
        let modules: Vec<ModuleSpec> = workspace
            .select(&select.packages, select.workspace)?
            .into_iter()
            .cloned()
            .collect();
        let rustc = rustc_probe.join().unwrap_or(None);
        let refs: Vec<&ModuleSpec> = modules.iter().collect();
        let tree = resolve_tree(
            session,
            &home,
            trees,
            Some(&workspace),
            &refs,
            None,
            rustc.as_deref(),
        )?;
        preflight(&tree, rustc.as_deref())?;
        Ok(BuildContext {
            home,
            workspace,
            modules,
            tree,
            rustc,
        })
    }

    /// `target/kmod/<arch>`: where generated files and artifacts of this tree's arch live.
    pub fn kmod_dir(&self) -> PathBuf {
        self.workspace
            .target_dir
            .join("kmod")
            .join(self.tree.arch.name())
    }
}

/// The tree for already-built module files: `--kdir`/`--target`/`KDIR`, else the dev tree
/// of the modules' arch (or `--arch`). An explicit tree is not checked against the modules'
/// arch here: a module for another arch is a verify problem, not a usage error.
pub fn tree_for_files(
    session: &Session,
    trees: &TreeSelection,
    files: &[KoFile],
) -> Result<KernelTree> {
    let mut arches: Vec<Arch> = files.iter().filter_map(|k| k.module.arch()).collect();
    arches.sort();
    arches.dedup();
    let hint = match (&trees.arch, arches.as_slice()) {
        (Some(_), _) | (None, []) => None,
        (None, [one]) => Some(*one),
        (None, many) => crate::bail_user!(
            "the modules are for different architectures ({})",
            many.iter().map(|a| a.name()).collect::<Vec<_>>().join(", ")
        ),
    };
    tree_for_arch(session, trees, hint)
}

/// The tree for a command without module packages (`run` of a bare kernel, `--ko` files):
/// `--kdir`/`--target`/`KDIR`, else the dev tree of `--arch` or `arch_hint`.
pub fn tree_for_arch(
    session: &Session,
    trees: &TreeSelection,
    arch_hint: Option<Arch>,
) -> Result<KernelTree> {
    Ok(tree_and_workspace(session, trees, None, arch_hint)?.0)
}

/// [`tree_for_arch`], with the workspace (`manifest_path`'s, or the current directory's) it
/// read to find a named target (read only then).
pub fn tree_and_workspace(
    session: &Session,
    trees: &TreeSelection,
    manifest_path: Option<&std::path::Path>,
    arch_hint: Option<Arch>,
) -> Result<(KernelTree, Option<Workspace>)> {
    let home = session.home()?;
    let workspace = match &trees.target {
        Some(_) => Some(crate::manifest::load(&session.shell, manifest_path)?),
        None => None,
    };
    let rustc = session.rustc_version();
    let tree = resolve_tree(
        session,
        &home,
        trees,
        workspace.as_ref(),
        &[],
        arch_hint,
        rustc.as_deref(),
    )?;
    Ok((tree, workspace))
}

/// The one place a tree is chosen: `--kdir`, `--target` (its `kdir`, `arch`, `llvm`,
/// `cross-compile`), `KDIR`, the manifest's `kdir`, then the dev tree of the arch from
/// `--arch`, the target, the module's or workspace's `arch`, `arch_hint`, or the host.
fn resolve_tree(
    session: &Session,
    home: &Home,
    trees: &TreeSelection,
    workspace: Option<&Workspace>,
    modules: &[&ModuleSpec],
    arch_hint: Option<Arch>,
    rustc: Option<&str>,
) -> Result<KernelTree> {
    let env = &session.env;
    let mut arch = trees.arch;
    let mut choice = Choice {
        flag: trees.kdir.clone(),
        env: env.kdir(),
        rustc: rustc.map(str::to_string),
        tools: ToolChoice {
            llvm: env.llvm(),
            cross_compile: env.cross_compile(),
        },
        ..Choice::default()
    };
    if let Some(name) = &trees.target {
        let Some(ws) = workspace else {
            crate::bail_user!("`--target {}` needs a workspace that defines it", name);
        };
        let t = ws.target(name)?;
        if let Some(d) = &t.kdir {
            choice.target = Some((name.clone(), d.clone()));
        } else {
            // boards: a target with `board`/`base-config`/`cc`/`source` uses the tree `init`
            // prepared for exactly those inputs.
            let ask = t.tree_ask(session.env, 1);
            if ask.names_a_tree() {
                use crate::kernel::prepare;
                let reqs = prepare::requests(&ask, prepare::Asker::Target(name))?;
                if let Some(req) = reqs.first() {
                    let d = prepare::prepared_dir(home, req, rustc, name)?;
                    choice.target = Some((name.clone(), d));
                }
            }
        }
        arch = arch.or(t.arch);
        // A target's toolchain overrides the environment, as on the make command line.
        if t.llvm.is_some() {
            choice.tools.llvm = t.llvm.clone();
        }
        if t.cross_compile.is_some() {
            choice.tools.cross_compile = t.cross_compile.clone();
        }
    }
    if let Some(m) = modules.first() {
        if let Some(k) = &m.kdir {
            choice.manifest = Some((k.clone(), m.manifest_path.clone()));
        }
        if arch.is_none() && trees.kdir.is_none() && trees.target.is_none() && env.kdir().is_none() {
            arch = m.arch;
        }
    }
    if choice.manifest.is_none() {
        if let Some(ws) = workspace {
            if let Some(k) = &ws.kdir {
                choice.manifest = Some((k.clone(), ws.root.join("Cargo.toml")));
            }
        }
    }
    let explicit = choice.explicit().is_some();
    if arch.is_none() && !explicit {
        arch = workspace.and_then(|ws| ws.arch).or(arch_hint);
    }
    choice.arch = arch;
    resolve::resolve(home, &choice)
}

/// Refuse trees that cannot build Rust modules, before kbuild fails cryptically.
pub fn preflight(tree: &KernelTree, rustc: Option<&str>) -> Result<()> {
    if !tree.config.is_enabled("RUST") {
        crate::bail_user!(
            "kernel tree `{}` has no Rust support: `CONFIG_RUST` is not set in its `.config`", tree.dir.display();
            hint = "use a tree configured with `CONFIG_RUST=y` (`cargo kmod init` prepares one)"
        );
    }
    if !tree.config.is_enabled("MODULES") {
        crate::bail_user!(
            "kernel tree `{}` was built without `CONFIG_MODULES`",
            tree.dir.display()
        );
    }
    if !tree.dir.join("Module.symvers").is_file()
        || !tree.dir.join("rust/libkernel.rmeta").is_file()
    {
        crate::bail_user!(
            "kernel tree `{}` lacks `Module.symvers` or `rust/libkernel.rmeta`", tree.dir.display();
            hint = "build the tree fully (headers-only packages lack `rust/`); `cargo kmod doctor --kdir {}` says more", tree.dir.display()
        );
    }
    if let (Some(want), Some(have)) = (tree.rustc_version_text(), rustc) {
        if want != have {
            crate::bail_user!(
                "`{}` differs from the rustc that built `{}` (`{}`): rustc would fail with E0514", have, tree.dir.display(), want;
                hint = "install that exact toolchain (e.g. `rustup toolchain install {}`) and select it with `RUSTC` or `rustup override set`", Version::find(&want).map(|v| v.to_string()).unwrap_or_default()
            );
        }
    }
    Ok(())
}
