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
    apply_params(&mut modules, &req.params)?;
    Ok((tree, load_order(modules)?))
}

/// `--param name=value` goes to the only module, `--param module.name=value` to `module`.
fn apply_params(modules: &mut [KoModule], params: &[String]) -> Result<()> {
    for p in params {
        let Some((key, value)) = p.split_once('=') else {
            crate::bail_user!("module parameter `{}` is not `name=value`", p);
        };
        if let Some((module, name)) = key.split_once('.') {
            if let Some(m) = modules.iter_mut().find(|m| m.name == module) {
                m.params.push(format!("{name}={value}"));
                continue;
            }
        }
        match modules {
            [only] => only.params.push(p.clone()),
            _ => crate::bail_user!(
                "module parameter `{}` does not say which module it is for", p;
                hint = "write `--param MODULE.{}` with one of: {}", p,
                    modules.iter().map(|m| format!("`{}`", m.name)).collect::<Vec<_>>().join(", ")
            ),
        }
    }
    Ok(())
}

/// The qemu target for booting `tree`: its board's model (a named target's `board`,
/// `qemu-machine` and `dtb`, or the board a tree was prepared for) or the arch's default.
pub fn machine(
    session: &Session,
    select: &Selection,
    trees: &TreeSelection,
    tree: &KernelTree,
    accel: crate::qemu::machine::Accel,
) -> Result<crate::qemu::machine::Machine> {
    use crate::qemu::machine::Machine;
    let board = match &trees.target {
        Some(name) => {
            let ws = crate::manifest::load(&session.shell, select.manifest_path.as_deref())?;
            crate::tree::board::machine_for(tree, Some(ws.target(name)?))?
        }
        None => crate::tree::board::machine_for(tree, None)?,
    };
    match board {
        Some(b) => Machine::for_board(tree, accel, &b),
        None => Machine::for_tree(tree, accel),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(n: &str) -> KoModule {
        KoModule {
            name: n.into(),
            ko: PathBuf::from(n),
            depends: vec![],
            params: vec![],
            kunit_suites: 0,
        }
    }

    #[test]
    fn params_find_their_module() {
        let mut one = vec![m("a")];
        apply_params(&mut one, &["count=3".into()]).unwrap();
        assert_eq!(one[0].params, ["count=3"]);
        let mut two = vec![m("a"), m("b")];
        apply_params(&mut two, &["b.count=3".into()]).unwrap();
        assert_eq!(two[1].params, ["count=3"]);
        let e = apply_params(&mut two, &["count=3".into()]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "module parameter `count=3` does not say which module it is for"
        );
        let e = apply_params(&mut two, &["count".into()]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "module parameter `count` is not `name=value`"
        );
    }
}
