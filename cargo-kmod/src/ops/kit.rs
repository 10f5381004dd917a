//! `cargo kmod kit`: export a tree's kernel, DTBs, modules and a headers package with the
//! Rust artifacts (the export itself is `ship::kit`).

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::context::{ModuleRequest, Selection, Session, TreeSelection};
use crate::kernel::toolchain::Toolchain;
use crate::ship::kit::Kit;

/// Export the selected tree into `dir` (default `target/kmod/kit/<release>-<arch>`).
pub fn kit(session: &Session, trees: &TreeSelection, dir: Option<&Path>) -> Result<Kit> {
    let tree = crate::context::resolve(
        session,
        &Selection::default(),
        trees,
        &ModuleRequest::None,
        None,
    )?
    .tree;
    let out = dir.map(Path::to_path_buf).unwrap_or_else(|| {
        PathBuf::from("target/kmod/kit").join(format!("{}-{}", tree.release, tree.arch))
    });
    // A distribution's kernel: its Rust headers package (the rest is the distribution's).
    if let Some(c) = crate::kernel::distro::complete::Completion::read(&tree.dir) {
        return crate::ship::kit::export_completion(&c, &out);
    }
    let tc = Toolchain::for_modules(tree.rustc_version_text());
    crate::ship::kit::export(&session.shell, &tree, &tc, &out)
}
