//! The modules a test or run boot loads, with the tree it boots: the `--ko` files as given,
//! or the selected packages built now (with tests compiled in for `test`), resolved once.

use std::path::PathBuf;

use anyhow::Result;

use crate::context::{BuildContext, Selection, Session, TreeSelection};
use crate::ops::build::{self, BuildOptions};
use crate::qemu::modules::{load_order, KoModule};
use crate::tree::KernelTree;

/// What to boot with.
#[derive(Debug, Clone, Default)]
pub struct GuestModules {
    /// `--ko` files (then nothing is built).
    pub ko: Vec<PathBuf>,
    /// `--param` values.
    pub params: Vec<String>,
    /// Build the packages with tests compiled in.
    pub test_build: bool,
}

/// The tree and the modules (in load order, with parameters) for `test` and `run`. `run`
/// outside any package boots the bare kernel.
pub fn prepare(
    session: &Session,
    select: &Selection,
    trees: &TreeSelection,
    req: &GuestModules,
) -> Result<(KernelTree, Vec<KoModule>)> {
    let mut modules = Vec::new();
    let tree = if !req.ko.is_empty() || (!req.test_build && !select.in_package()) {
        let tree = crate::context::tree_for_arch(session, trees, None).map_err(|e| match &trees
            .target
        {
            Some(t) => e.context(format!("target `{t}`")),
            None => e,
        })?;
        for path in &req.ko {
            if path.extension().is_none_or(|e| e != "ko") {
                crate::bail_user!(
                    "`{}` is not a kernel module: its name does not end in `.ko`", path.display();
                    hint = "pass the `.ko` that kbuild produced"
                );
            }
            modules.push(KoModule::read(path, tree.arch)?);
        }
        tree
    } else {
        let ctx = BuildContext::resolve(session, select, trees)?;
        let opts = BuildOptions {
            test: req.test_build,
            jobs: std::thread::available_parallelism().map_or(1, |n| n.get()),
            ..BuildOptions::default()
        };
        for artifact in build::build(session, &ctx, &opts)? {
            modules.push(KoModule::read(&artifact.ko, ctx.tree.arch)?);
        }
        ctx.tree
    };
    crate::qemu::modules::apply_params(&mut modules, &req.params)?;
    Ok((tree, load_order(modules)?))
}
