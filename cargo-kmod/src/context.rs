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
use crate::kernel::home::Home;
use crate::kernel::resolve::{self, Choice};
use crate::kernel::toolchain;
use crate::kernel::Version;
use crate::kernel::{Arch, KernelTree, ToolChoice};
use crate::ko::KoFile;
use crate::manifest::{ModuleSpec, TargetSpec, Workspace};
use crate::shell::Shell;

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
        h.rustc_cache_dir().join(format!(
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
        fp.value(
            "RUSTUP_TOOLCHAIN",
            env.var("RUSTUP_TOOLCHAIN").unwrap_or_default(),
        );
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
    /// `test --sanitize`: without a named tree, the arch's sanitizer tree (KASAN).
    pub sanitize: bool,
}

/// Where a command's modules come from: the one place that decides "the given `.ko` files, or
/// build the selected packages now".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModuleRequest {
    /// Files named on the command line (`--ko`, `FILE...`); never built.
    Files(Vec<PathBuf>),
    /// The selected packages, built now.
    Packages,
    /// The selected packages when the command runs inside one, else none (`run` of a bare
    /// kernel).
    PackagesIfAny,
    /// No modules (`kit`): only the tree.
    None,
}

impl ModuleRequest {
    /// Files when any were given, else `otherwise`.
    pub fn files_or(files: &[PathBuf], otherwise: ModuleRequest) -> ModuleRequest {
        if files.is_empty() {
            otherwise
        } else {
            ModuleRequest::Files(files.to_vec())
        }
    }
}

/// The workspace and the named target, read once: what the rest of a command's resolution
/// (and a deploy's destination) is decided from.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// Read when packages are selected or a target is named.
    pub workspace: Option<Workspace>,
    /// `--target NAME`'s table.
    pub target: Option<TargetSpec>,
}

impl Scope {
    /// Read the workspace when `need_workspace` or a target is named, and look the target up.
    pub fn read(
        session: &Session,
        select: &Selection,
        trees: &TreeSelection,
        need_workspace: bool,
    ) -> Result<Scope> {
        let workspace = if need_workspace || trees.target.is_some() {
            Some(crate::manifest::load(
                &session.shell,
                select.manifest_path.as_deref(),
            )?)
        } else {
            None
        };
        let target = match (&trees.target, &workspace) {
            (Some(name), Some(ws)) => Some(ws.target(name)?.clone()),
            _ => None,
        };
        Ok(Scope { workspace, target })
    }
}

/// A command's resolved world: the environment, the workspace and target, the kernel tree
/// with its toolchain, the rustc that compiles modules, and the modules themselves.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub env: &'static Env,
    pub home: Home,
    pub workspace: Option<Workspace>,
    pub target: Option<TargetSpec>,
    pub tree: KernelTree,
    /// `rustc --version` of the rustc that compiles the modules.
    pub rustc: Option<String>,
    pub modules: Modules,
}

/// The modules a command works on.
#[derive(Debug, Clone)]
pub enum Modules {
    /// Given `.ko` files, read.
    Files(Vec<KoFile>),
    /// The selected packages (dependencies first), to build with [`Resolved::build_context`].
    Packages(Vec<ModuleSpec>),
    /// No modules: a bare kernel.
    None,
}

/// Resolve a command's world once: the workspace and target (unless `scope` already holds
/// them), the modules, and the tree they are built for or checked against. A tree that
/// cannot build Rust modules is refused here when packages are to be built.
pub fn resolve(
    session: &Session,
    select: &Selection,
    trees: &TreeSelection,
    modules: &ModuleRequest,
    scope: Option<Scope>,
) -> Result<Resolved> {
    let home = session.home()?;
    let packages = match modules {
        ModuleRequest::Files(_) | ModuleRequest::None => false,
        ModuleRequest::Packages => true,
        ModuleRequest::PackagesIfAny => select.in_package(),
    };
    // `rustc --version` (usually cached) while cargo's metadata is read (usually cached).
    let program = session.env.rustc();
    let rustc_probe = std::thread::spawn(move || rustc_version(&program));
    let scope = match scope {
        Some(s) if s.workspace.is_some() || !packages => s,
        _ => Scope::read(session, select, trees, packages)?,
    };
    let mut ko_imports: Vec<String> = Vec::new();
    let (modules, specs, arch_hint) = match modules {
        ModuleRequest::Files(paths) => {
            let kos = read_kos(paths)?;
            let hint = files_arch(trees, &kos)?;
            // What the files import from the kernel, not from each other.
            let exported: std::collections::HashSet<&str> = kos
                .iter()
                .flat_map(|k| k.module.exports.iter().map(|e| e.name.as_str()))
                .collect();
            ko_imports = kos
                .iter()
                .flat_map(|k| k.module.undefined.iter())
                .filter(|s| !exported.contains(s.as_str()))
                .cloned()
                .collect();
            ko_imports.sort();
            ko_imports.dedup();
            (Modules::Files(kos), Vec::new(), hint)
        }
        _ if packages => {
            let ws = scope.workspace.as_ref().expect("read for packages");
            let specs: Vec<ModuleSpec> = ws
                .select(&select.packages, select.workspace)?
                .into_iter()
                .cloned()
                .collect();
            (Modules::Packages(specs.clone()), specs, None)
        }
        _ => (Modules::None, Vec::new(), None),
    };
    let mut rustc = rustc_probe.join().unwrap_or(None);
    let refs: Vec<&ModuleSpec> = specs.iter().collect();
    let tree = resolve_tree(
        session,
        &home,
        trees,
        scope.workspace.as_ref(),
        scope.target.as_ref(),
        &refs,
        arch_hint,
        rustc.as_deref(),
        &ko_imports,
    )
    .map_err(|e| match (&trees.target, packages) {
        (Some(t), false) => e.context(format!("target `{t}`")),
        _ => e,
    })?;
    if let Some(program) = tree
        .rustc
        .as_ref()
        .filter(|_| session.env.var("RUSTC").is_none())
    {
        // A tree that names its rustc (a completed distribution kernel) is built with it.
        toolchain::use_tree_rustc(program);
        rustc = rustc_version(&program.display().to_string());
    }
    if packages {
        preflight(&tree, rustc.as_deref())?;
        check_kernel_config(&tree, &specs)?;
    }
    Ok(Resolved {
        env: session.env,
        home,
        workspace: scope.workspace,
        target: scope.target,
        tree,
        rustc,
        modules,
    })
}

/// Read every `.ko` file, failing on the first unreadable one.
pub fn read_kos(files: &[PathBuf]) -> Result<Vec<KoFile>> {
    files.iter().map(|p| crate::ko::read_module(p)).collect()
}

/// The arch of already-built module files, when `--arch` does not say it: an explicit tree
/// is not checked against the modules' arch here (a module for another arch is a verify
/// problem, not a usage error), but files for two arches cannot share a tree.
fn files_arch(trees: &TreeSelection, files: &[KoFile]) -> Result<Option<Arch>> {
    let mut arches: Vec<Arch> = files.iter().filter_map(|k| k.module.arch()).collect();
    arches.sort();
    arches.dedup();
    Ok(match (&trees.arch, arches.as_slice()) {
        (Some(_), _) | (None, []) => None,
        (None, [one]) => Some(*one),
        (None, many) => crate::bail_user!(
            "the modules are for different architectures ({})",
            many.iter().map(|a| a.name()).collect::<Vec<_>>().join(", ")
        ),
    })
}

impl Resolved {
    /// The packages' build context; an error when the command was given files.
    pub fn build_context(self) -> BuildContext {
        let modules = match self.modules {
            Modules::Packages(m) => m,
            _ => Vec::new(),
        };
        BuildContext {
            home: self.home,
            workspace: self.workspace.expect("packages come with their workspace"),
            modules,
            tree: self.tree,
            rustc: self.rustc,
            target: self.target,
        }
    }
}

/// What a build works in: the workspace, the selected modules, the kernel tree with its
/// toolchain, and the rustc that compiles the modules.
#[derive(Debug, Clone)]
pub struct BuildContext {
    pub home: Home,
    pub workspace: Workspace,
    /// The selected modules, dependencies first.
    pub modules: Vec<ModuleSpec>,
    pub tree: KernelTree,
    /// `rustc --version` of the rustc that compiles the modules.
    pub rustc: Option<String>,
    /// `--target NAME`'s table.
    pub target: Option<TargetSpec>,
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

    /// [`resolve`] for a build of the selected packages.
    pub fn resolve(
        session: &Session,
        select: &Selection,
        trees: &TreeSelection,
    ) -> Result<BuildContext> {
        Ok(resolve(session, select, trees, &ModuleRequest::Packages, None)?.build_context())
    }

    /// `target/kmod/<arch>/<release>-<tree key>` ([`KernelTree::output_name`]): where this
    /// tree's generated files, objects, dependency crates and artifacts live, so builds for
    /// two trees of one arch never touch each other's files.
    pub fn kmod_dir(&self) -> PathBuf {
        self.arch_dir().join(self.tree.output_name())
    }

    /// `target/kmod/<arch>`: the latest build's `.ko` files of the arch (links to the tree's
    /// own, [`crate::ops::build`]) and `doc/`.
    pub fn arch_dir(&self) -> PathBuf {
        self.workspace
            .target_dir
            .join("kmod")
            .join(self.tree.arch.name())
    }
}

/// The one place a tree is chosen: `--kdir`, `--target` (its `kdir`, `arch`, `llvm`,
/// `cross-compile`, or the tree `init` prepared for its board inputs), `KDIR`, the
/// manifest's `kdir`, then the dev tree of the arch from `--arch`, the target, the module's
/// or workspace's `arch`, `arch_hint`, or the host.
#[allow(clippy::too_many_arguments)]
fn resolve_tree(
    session: &Session,
    home: &Home,
    trees: &TreeSelection,
    workspace: Option<&Workspace>,
    target: Option<&TargetSpec>,
    modules: &[&ModuleSpec],
    arch_hint: Option<Arch>,
    rustc: Option<&str>,
    ko_imports: &[String],
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
        let Some(t) = target else {
            crate::bail_user!("`--target {}` needs a workspace that defines it", name);
        };
        if let Some(d) = &t.kdir {
            choice.target = Some((name.clone(), d.clone()));
        } else if let Some(dk) = &t.distro_kernel {
            let d = resolve::distro_tree(home, dk, name)?;
            choice.target = Some((name.clone(), d));
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
        if arch.is_none() && trees.kdir.is_none() && trees.target.is_none() && env.kdir().is_none()
        {
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
    choice.sanitize = trees.sanitize;
    choice.needs = union_needs(modules)?;
    choice.ko_imports = ko_imports.to_vec();
    let tree = resolve::resolve(home, &choice)?;
    if !choice.needs.is_empty() && !explicit {
        let needs: Vec<String> = choice
            .needs
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        session.shell.verbose(
            "Choosing",
            format_args!(
                "the {} tree `{}`: the packages need {}, and it is the {}",
                tree.arch,
                tree.dir.display(),
                crate::text::escape(&needs.join(" ")),
                if Home::read_meta(&tree.dir).is_some_and(|m| m.is_dev_tree()) {
                    "dev tree"
                } else {
                    "prepared tree that has them with the fewest extra symbols"
                }
            ),
        );
    }
    Ok(tree)
}

/// The union of the modules' `kernel-config` and of what their test devices need from the
/// tree ([`crate::devices::kernel_needs`]: USB devices need `dummy_hcd`): what the tree of
/// one build must have, and what `init` in the packages prepares. Two packages asking one
/// symbol for different values cannot share a tree.
pub fn union_needs(modules: &[&ModuleSpec]) -> Result<std::collections::BTreeMap<String, String>> {
    // The devices' needs are entries of their own, so a module's `kernel-config` that
    // contradicts them is a clash the union names, never a silent override.
    let devices: Vec<(String, std::collections::BTreeMap<String, String>)> = modules
        .iter()
        .map(|m| {
            (
                format!("{} (its test devices)", m.name),
                crate::devices::kernel_needs(&m.devices),
            )
        })
        .collect();
    union_of(
        modules
            .iter()
            .map(|m| (m.name.as_str(), m.manifest_path.as_path(), &m.kernel_config))
            .chain(
                modules
                    .iter()
                    .zip(&devices)
                    .map(|(m, (name, needs))| (name.as_str(), m.manifest_path.as_path(), needs)),
            ),
    )
}

/// [`union_needs`] over (module, manifest, needs).
fn union_of<'a>(
    items: impl Iterator<
        Item = (
            &'a str,
            &'a std::path::Path,
            &'a std::collections::BTreeMap<String, String>,
        ),
    >,
) -> Result<std::collections::BTreeMap<String, String>> {
    let mut out: std::collections::BTreeMap<String, (String, &str, &std::path::Path)> =
        Default::default();
    for (name, manifest, needs) in items {
        for (k, v) in needs {
            match out.get(k) {
                Some((other, by, by_file)) if other != v && !both_met(other, v) => {
                    crate::bail_user!(
                        "modules `{}` and `{}` need `CONFIG_{}` as `{}` and `{}` (`kernel-config` in `{}` and `{}`): one tree cannot have both",
                        by, name, k, crate::text::escape(other), crate::text::escape(v), by_file.display(), manifest.display();
                        hint = "build them separately (`-p`), or agree on one value"
                    )
                }
                // `y` meets `m`: keep the stronger.
                Some((other, _, _)) if other == "y" => {}
                _ => {
                    out.insert(k.clone(), (v.clone(), name, manifest));
                }
            }
        }
    }
    Ok(out.into_iter().map(|(k, (v, _, _))| (k, v)).collect())
}

/// `y` and `m` together: a tree with `y` meets both.
fn both_met(a: &str, b: &str) -> bool {
    matches!((a, b), ("y", "m") | ("m", "y"))
}

/// Refuse a tree that lacks the kernel configuration a module declares (`kernel-config`),
/// before anything is compiled: each symbol named, explained with the source's Kconfig when
/// the tree has its source (the nearest real symbol, another arch's, a value its type cannot
/// take, what keeps it off).
pub fn check_kernel_config(tree: &KernelTree, specs: &[ModuleSpec]) -> Result<()> {
    use crate::kernel::config::{unmet_needs, KconfigIndex};
    for m in specs.iter().filter(|m| !m.kernel_config.is_empty()) {
        if unmet_needs(&tree.config, tree.arch, None, &m.kernel_config, None).is_empty() {
            continue;
        }
        let index = tree
            .srctree
            .join("Kconfig")
            .is_file()
            .then(|| KconfigIndex::scan(&tree.srctree).ok())
            .flatten();
        let unmet = unmet_needs(
            &tree.config,
            tree.arch,
            Some(&tree.srctree),
            &m.kernel_config,
            index.as_ref(),
        );
        let distro = crate::kernel::distro::complete::is_completion(&tree.dir);
        let fragment: Vec<String> = m
            .kernel_config
            .iter()
            .filter(|(k, v)| !crate::kernel::config::meets(&tree.config, k, v))
            .map(|(k, v)| format!("CONFIG_{k}={v}"))
            .collect();
        crate::bail_user!(
            "module `{}` needs kernel configuration that the {} {} tree `{}` lacks (`kernel-config` in `{}`): {}",
            m.name, tree.arch, crate::text::escape(&tree.release), tree.dir.display(), m.manifest_path.display(), unmet.join("; ");
            hint = "{}", if distro {
                "a distribution's kernel is built as it is: build for a kernel that has it".to_string()
            } else {
                if Home::read_meta(&tree.dir).is_some_and(|m| m.is_dev_or_feature_tree()) {
                    format!("run `cargo kmod init --arch {}` in the package: it prepares the dev tree with the packages' `kernel-config` added (a feature tree), which `build` and `test` then choose", tree.arch)
                } else {
                    format!("prepare a tree that has it: put `{}` in a fragment and run `cargo kmod init --config FRAGMENT`, or give the target `kernel-config`", fragment.join(" "))
                }
            }
        );
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    fn needs(v: &[(&str, &str)]) -> BTreeMap<String, String> {
        v.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Two packages' needs share one tree: `y` meets `m`; `y` against `n` cannot.
    #[test]
    fn needs_of_several_packages_unite_or_clash() {
        let a = needs(&[("PCI", "y"), ("DEBUG_FS", "m")]);
        let b = needs(&[("DEBUG_FS", "y"), ("CONFIGFS_FS", "y")]);
        let (pa, pb) = (Path::new("/a/Cargo.toml"), Path::new("/b/Cargo.toml"));
        let u = super::union_of([("a", pa, &a), ("b", pb, &b)].into_iter()).unwrap();
        assert_eq!(
            u,
            needs(&[("CONFIGFS_FS", "y"), ("DEBUG_FS", "y"), ("PCI", "y")])
        );
        let u = super::union_of([("b", pb, &b), ("a", pa, &a)].into_iter()).unwrap();
        assert_eq!(u["DEBUG_FS"], "y", "in either order");
        let c = needs(&[("PCI", "n")]);
        let e = super::union_of([("a", pa, &a), ("c", pb, &c)].into_iter()).unwrap_err();
        let (msg, hint, _) = crate::error::render(&e);
        assert_eq!(
            msg,
            "modules `a` and `c` need `CONFIG_PCI` as `y` and `n` (`kernel-config` in `/a/Cargo.toml` and `/b/Cargo.toml`): one tree cannot have both"
        );
        assert!(hint.unwrap().contains("-p"));
    }
}
