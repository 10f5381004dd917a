//! Stripping debug info like `make modules_install INSTALL_MOD_STRIP=1`: `$(STRIP)
//! --strip-debug`, where `$(STRIP)` is the tree's own toolchain (`llvm-strip` with the tree's
//! `LLVM=` suffix for clang trees, `$(CROSS_COMPILE)strip` for GCC trees).

use std::path::Path;

use anyhow::{Context, Result};

use crate::kernel::KernelTree;
use crate::shell::Shell;

/// The `strip` program for a tree: its toolchain's, as kbuild's `$(STRIP)`.
pub fn strip_program(tree: &KernelTree) -> String {
    tree.tools.binutil("strip")
}

/// Strip debug info from unsigned module bytes, using a scratch directory.
pub fn strip_debug(
    shell: &Shell,
    tree: &KernelTree,
    elf: &[u8],
    scratch: &Path,
) -> Result<Vec<u8>> {
    let input = scratch.join("in.ko");
    let output = scratch.join("out.ko");
    std::fs::write(&input, elf).with_context(|| format!("cannot write `{}`", input.display()))?;
    let program = strip_program(tree);
    let sh = xshell::Shell::new()?;
    crate::process::run(
        shell,
        xshell::cmd!(sh, "{program} --strip-debug -o {output} {input}"),
    )?;
    std::fs::read(&output).with_context(|| format!("cannot read `{}`", output.display()))
}
