//! The modules a test or run boot loads, with the tree it boots: the `--ko` files as given,
//! or the selected packages built now (with tests compiled in for `test`), resolved once;
//! and the test devices of those packages and of `--device` files, compiled for the guest.

use std::path::PathBuf;

use anyhow::Result;

use crate::context::{BuildContext, Selection, Session, TreeSelection};
use crate::ops::build::{self, BuildOptions};
use crate::qemu::machine::Machine;
use crate::qemu::modules::{load_order, KoModule};
use crate::kernel::KernelTree;

/// What to boot with.
#[derive(Debug, Clone, Default)]
pub struct GuestModules {
    /// `--ko` files (then nothing is built).
    pub ko: Vec<PathBuf>,
    /// `--param` values.
    pub params: Vec<String>,
    /// How the packages are built (`test`: with their KUnit tests compiled in).
    pub build: BuildOptions,
    /// `--device` files: device tables (`.toml`) or overlays (`.dtso`) for this run.
    pub devices: Vec<PathBuf>,
}

/// What a test or run boot boots with.
#[derive(Debug)]
pub struct Guest {
    pub tree: KernelTree,
    /// In load order, with their parameters.
    pub modules: Vec<KoModule>,
    /// The test devices of the packages and of `--device` files, ready for the guest.
    pub devices: Option<crate::devices::Prepared>,
    /// The qemu machine that boots `tree`: its board's model, or the arch's default.
    pub machine: Machine,
}

/// The tree, the modules (in load order, with parameters) and the devices for `test` and
/// `run`. `run` outside any package boots the bare kernel. Device files are read before
/// anything is built, so a bad one is an error before any build or boot.
pub fn prepare(
    session: &Session,
    select: &Selection,
    trees: &TreeSelection,
    req: &GuestModules,
) -> Result<Guest> {
    let extra: Vec<crate::devices::Devices> = req
        .devices
        .iter()
        .map(|p| crate::devices::spec::from_file(p))
        .collect::<Result<_>>()?;
    let mut modules = Vec::new();
    // The devices are compiled (and the helper built) before the modules, so a bad overlay
    // is an error before anything is built or booted.
    let (tree, devices, target) = if !req.ko.is_empty() || (!req.build.test && !select.in_package())
    {
        let (tree, workspace) = crate::context::tree_and_workspace(
            session,
            trees,
            select.manifest_path.as_deref(),
            None,
        )
        .map_err(|e| match &trees.target {
            Some(t) => e.context(format!("target `{t}`")),
            None => e,
        })?;
        let target = match (&trees.target, &workspace) {
            (Some(name), Some(ws)) => Some(ws.target(name)?.clone()),
            _ => None,
        };
        for path in &req.ko {
            if path.extension().is_none_or(|e| e != "ko") {
                crate::bail_user!(
                    "`{}` is not a kernel module: its name does not end in `.ko`", path.display();
                    hint = "pass the `.ko` that kbuild produced"
                );
            }
            modules.push(KoModule::read(path, tree.arch)?);
        }
        let names: Vec<String> = modules.iter().map(|m| m.name.clone()).collect();
        let devices = guest_devices(session, &tree, &[], &extra, req, &names, None)?;
        (tree, devices, target)
    } else {
        let ctx = BuildContext::resolve(session, select, trees)?;
        let declared: Vec<(String, &crate::devices::Devices)> = ctx
            .modules
            .iter()
            .filter(|m| !m.devices.is_empty())
            .map(|m| (m.name.clone(), &m.devices))
            .collect();
        let names: Vec<String> = ctx.modules.iter().map(|m| m.name.clone()).collect();
        let out_dir = ctx.kmod_dir().join("devices");
        let devices = guest_devices(
            session,
            &ctx.tree,
            &declared,
            &extra,
            req,
            &names,
            Some(&out_dir),
        )?;
        for artifact in build::build(session, &ctx, &req.build)? {
            modules.push(KoModule::read(&artifact.ko, ctx.tree.arch)?);
        }
        let target = match &trees.target {
            Some(name) => Some(ctx.workspace.target(name)?.clone()),
            None => None,
        };
        (ctx.tree, devices, target)
    };
    crate::qemu::modules::apply_params(&mut modules, &req.params)?;
    let accel = crate::qemu::accel::choose(&session.shell, &tree)?;
    let machine = match crate::kernel::board::machine_for(&tree, target.as_ref().map(|t| t.machine_keys()))? {
        Some(b) => Machine::for_board(&tree, accel, &b)?,
        None => Machine::for_tree(&tree, accel)?,
    };
    Ok(Guest {
        tree,
        modules: load_order(modules)?,
        devices,
        machine,
    })
}

/// The devices of a boot: each package's own (`declared`, bound by its own drivers) and the
/// `--device` files' (`extra`, bound by any of `modules`), compiled into `out_dir`.
fn guest_devices(
    session: &Session,
    tree: &KernelTree,
    declared: &[(String, &crate::devices::Devices)],
    extra: &[crate::devices::Devices],
    req: &GuestModules,
    modules: &[String],
    out_dir: Option<&std::path::Path>,
) -> Result<Option<crate::devices::Prepared>> {
    let mut sets: Vec<crate::devices::DeviceSet<'_>> = declared
        .iter()
        .map(|(name, devices)| crate::devices::DeviceSet {
            modules: vec![name.clone()],
            devices,
            what: format!("module {name}"),
        })
        .collect();
    sets.extend(
        extra
            .iter()
            .zip(&req.devices)
            .map(|(devices, path)| crate::devices::DeviceSet {
                modules: modules.to_vec(),
                devices,
                what: format!("`{}`", path.display()),
            }),
    );
    let devices = crate::devices::prepare(&session.shell, &session.home()?, tree, &sets, out_dir)?;
    if let Some(d) = &devices {
        for w in &d.warnings {
            session.shell.warn(w);
        }
    }
    Ok(devices)
}
