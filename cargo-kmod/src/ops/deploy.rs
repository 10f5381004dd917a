//! `cargo kmod deploy`: resolve the board (`--host` or the target's `host`), then let
//! [`crate::deploy`] ask it, build for it, check, copy and load. The workspace and the named
//! target are read once ([`Scope`]) and serve the destination, the arch decision and the
//! build.

use std::path::PathBuf;

use anyhow::Result;

use crate::context::{ModuleRequest, Scope, Selection, Session, TreeSelection};
use crate::deploy::board::Board;
use crate::deploy::host::Destination;
use crate::deploy::{Built, Event, Outcome, Request};
use crate::ops::build::BuildOptions;

/// What `deploy` was asked for, as plain data.
#[derive(Debug, Clone)]
pub struct DeployRequest {
    /// `--host`.
    pub host: Option<String>,
    pub select: Selection,
    pub trees: TreeSelection,
    pub build: BuildOptions,
    /// `--ko` files (then nothing is built).
    pub ko: Vec<PathBuf>,
    /// Everything [`crate::deploy::deploy`] needs but the destination.
    pub deploy: Request,
}

/// Deploy; `on` hears every event. Returns the outcome and where it went.
pub fn deploy(
    session: &Session,
    mut req: DeployRequest,
    on: &mut dyn FnMut(&Event),
) -> Result<(Outcome, Destination)> {
    let scope = Scope::read(session, &req.select, &req.trees, false)?;
    let dest = destination(req.host.as_deref(), &req.trees, &scope)?;
    req.deploy.dest = dest.clone();
    let build = |board: &Board| build_for(session, &req, scope.clone(), board);
    let outcome = crate::deploy::deploy(&session.shell, &req.deploy, build, on)?;
    Ok((outcome, dest))
}

/// `--host`, else the named target's `host`.
fn destination(host: Option<&str>, trees: &TreeSelection, scope: &Scope) -> Result<Destination> {
    if let Some(h) = host {
        return Ok(Destination::parse(h)?);
    }
    if let (Some(name), Some(t)) = (&trees.target, &scope.target) {
        return match &t.host {
            Some(h) => Destination::parse(h).map_err(|e| {
                e.with_hint(format!(
                    "fix `host` in `[workspace.metadata.kmod.targets.{name}]`"
                ))
                .into()
            }),
            None => crate::bail_user!(
                "target `{}` has no `host`", name;
                hint = "add `host = \"[USER@]HOST[:PORT]\"` to `[workspace.metadata.kmod.targets.{}]`, or pass `--host`", name
            ),
        };
    }
    crate::bail_user!(
        "no board to deploy to";
        hint = "pass `--host [USER@]HOST[:PORT]`, or `--target NAME` with `host` in `[workspace.metadata.kmod.targets.NAME]`"
    )
}

/// Build the selected packages for the board: its arch unless `--arch`/`--kdir`/`--target`
/// say otherwise, through `cargo kmod build`'s entry point (a no-op when fresh). With
/// `--ko`, the files as given, and a tree only when one is named (another tree's vermagic
/// would say nothing about this board).
fn build_for(session: &Session, req: &DeployRequest, scope: Scope, board: &Board) -> Result<Built> {
    let mut trees = req.trees.clone();
    if !req.ko.is_empty() {
        let tree = if trees.kdir.is_some() || trees.target.is_some() {
            Some(
                crate::context::resolve(
                    session,
                    &req.select,
                    &trees,
                    &ModuleRequest::None,
                    Some(scope),
                )?
                .tree,
            )
        } else {
            None
        };
        return Ok(Built {
            kos: req.ko.clone(),
            tree,
        });
    }
    if trees.arch.is_none() && trees.kdir.is_none() {
        // A target's own `arch` or `kdir` decides; else the board does.
        let target_decides = scope
            .target
            .as_ref()
            .is_some_and(|t| t.arch.is_some() || t.kdir.is_some());
        if !target_decides {
            trees.arch = board.arch();
        }
    }
    let ctx = crate::context::resolve(
        session,
        &req.select,
        &trees,
        &ModuleRequest::Packages,
        Some(scope),
    )?
    .build_context();
    let artifacts = crate::ops::build::build(session, &ctx, &req.build)?;
    Ok(Built {
        kos: artifacts.into_iter().map(|a| a.ko).collect(),
        tree: Some(ctx.tree),
    })
}
