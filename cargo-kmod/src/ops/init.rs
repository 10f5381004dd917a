//! `cargo kmod init`: which trees the flags or a named target ask for, and preparing each
//! (the build itself is the `kernel::prepare` stage).

use std::path::PathBuf;

use anyhow::{Context as _, Result};

use crate::context::Session;
use crate::kernel::home::{Home, PreparedTree};
use crate::kernel::prepare::{self, Asker, Request, TreeAsk};
use crate::kernel::toolchain::Toolchain;

/// What `init` is asked to prepare.
#[derive(Debug, Clone)]
pub enum InitRequest {
    /// The trees of `init`'s flags (`--arch`, `--board`, `--base-config`, `--cc`, ...).
    Flags(TreeAsk),
    /// The tree of `[workspace.metadata.kmod.targets.NAME]`.
    Target {
        name: String,
        manifest_path: Option<PathBuf>,
        jobs: usize,
    },
}

/// A distribution kernel `init` completes: by name (fetched from the distribution), or the
/// installed headers directory (`--kdir /lib/modules/<release>/build`).
#[derive(Debug, Clone)]
pub enum DistroRequest {
    Named(crate::kernel::distro::DistroKernel),
    Installed(PathBuf),
}

/// The distribution kernel of target `name`, when it names one.
pub fn target_distro(
    session: &Session,
    name: &str,
    manifest_path: Option<&std::path::Path>,
) -> Result<Option<crate::kernel::distro::DistroKernel>> {
    let ws = crate::manifest::load(&session.shell, manifest_path)?;
    Ok(ws.target(name)?.distro_kernel.clone())
}

/// Complete a distribution kernel's headers (fetching its packages when named); `true` when
/// it was completed already.
pub fn init_distro(
    session: &Session,
    req: &DistroRequest,
    jobs: usize,
) -> Result<(crate::kernel::distro::complete::Completion, bool)> {
    use crate::kernel::distro::{self, complete};
    let home = Home::from_env()?;
    let shell = &session.shell;
    match req {
        DistroRequest::Named(dk) => {
            if let Some(c) = complete::find_named(&home, dk) {
                return Ok((c, true));
            }
            let c = complete::complete_named(shell, &home, dk, jobs)
                .with_context(|| format!("cannot prepare `{}`", dk.name()))?;
            Ok((c, false))
        }
        DistroRequest::Installed(dir) => {
            if !distro::is_debian_headers(dir) {
                crate::bail_user!(
                    "`{}` is not a distribution's headers directory (no `.kernelvariables` beside its `.config`)", dir.display();
                    hint = "`init --kdir` completes Debian's `/lib/modules/<release>/build`; a kernel tree you built needs no completion"
                );
            }
            if let Some(c) = complete::find(&home, dir) {
                return Ok((c, true));
            }
            let c = complete::complete_installed(shell, &home, dir, jobs)
                .with_context(|| format!("cannot complete `{}`", dir.display()))?;
            Ok((c, false))
        }
    }
}

/// Read each `--config` fragment: (the name as given, its text).
pub fn read_fragments(paths: &[PathBuf]) -> Result<Vec<(String, String)>> {
    paths
        .iter()
        .map(|path| {
            let text = std::fs::read_to_string(path).map_err(|e| {
                crate::error::UserError::new(format!(
                    "cannot read config fragment `{}`: {}",
                    path.display(),
                    e.to_string().to_lowercase()
                ))
            })?;
            Ok((path.display().to_string(), text))
        })
        .collect()
}

/// The trees `req` asks for.
pub fn requests(session: &Session, req: &InitRequest) -> Result<Vec<Request>> {
    match req {
        InitRequest::Flags(ask) => {
            let mut reqs = prepare::requests(ask, Asker::Flags)?;
            if is_plain_dev(ask) {
                let needs = workspace_needs(session)?;
                if !needs.is_empty() {
                    let features: Vec<Request> = reqs
                        .iter()
                        .map(|r| {
                            let mut f = r.clone();
                            f.fragments = vec![prepare::features_fragment(r.arch, &needs)];
                            f
                        })
                        .collect();
                    reqs.extend(features);
                }
            }
            Ok(reqs)
        }
        InitRequest::Target {
            name,
            manifest_path,
            jobs,
        } => {
            let ws = crate::manifest::load(&session.shell, manifest_path.as_deref())?;
            let t = ws.target(name)?;
            let ask = t.tree_ask(session.env, *jobs);
            if !ask.names_a_tree() {
                crate::bail_user!(
                    "target `{}` names no tree to prepare: it has no `board`, `base-config`, `cc` or `source`", name;
                    hint = "add `board = \"rpi4\"` (or `base-config`) to `[workspace.metadata.kmod.targets.{}]`, or give it a `kdir`", name
                );
            }
            prepare::requests(&ask, Asker::Target(name))
        }
    }
}

/// `init` with at most `--arch`, `--source` and `--jobs`: the dev trees, to which the
/// workspace's feature tree is added.
fn is_plain_dev(ask: &TreeAsk) -> bool {
    ask.board.is_none()
        && ask.base_config.is_none()
        && ask.cc.as_deref().is_none_or(|c| c == "clang")
        && ask.fragments.is_empty()
}

/// The union of the `kernel-config` of the workspace around the current directory, with what
/// its test devices need ([`crate::context::union_needs`]; none outside a workspace, or in
/// one without kernel modules).
fn workspace_needs(session: &Session) -> Result<std::collections::BTreeMap<String, String>> {
    if !crate::context::Selection::default().in_package() {
        return Ok(Default::default());
    }
    let Ok(ws) = crate::manifest::load(&session.shell, None) else {
        // Not a workspace cargo can read: `init` prepares the dev trees all the same.
        return Ok(Default::default());
    };
    let modules: Vec<&crate::manifest::ModuleSpec> = ws.modules.iter().collect();
    crate::context::union_needs(&modules)
}

/// Prepare every tree `req` asks for, one after the other; `done` hears of each as it is
/// ready (`true`: it was prepared already).
/// The names of the trees `req` prepares (`x86_64-8f36…`), without preparing them: `init
/// --print-key`, a CI cache's key.
pub fn keys(session: &Session, req: &InitRequest) -> Result<Vec<String>> {
    let home = Home::from_env()?;
    let tc = Toolchain::detect(&home);
    requests(session, req)?
        .iter()
        .map(|r| prepare::tree_name(&tc, r))
        .collect()
}

pub fn init(
    session: &Session,
    req: &InitRequest,
    mut done: impl FnMut(&Request, &PreparedTree, bool),
) -> Result<()> {
    let home = Home::from_env()?;
    let requests = requests(session, req)?;
    let tc = Toolchain::detect(&home);
    for req in requests {
        let label = req.label();
        let (tree, fresh) = prepare::prepare(&session.shell, &home, &tc, &req)
            .with_context(|| format!("cannot prepare the {label} tree"))?;
        done(&req, &tree, fresh);
    }
    Ok(())
}
