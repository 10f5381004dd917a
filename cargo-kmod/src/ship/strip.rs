//! Stripping debug info like `make modules_install INSTALL_MOD_STRIP=1`: `$(STRIP)
//! --strip-debug`, where `$(STRIP)` is the tree's own toolchain (`llvm-strip` with the tree's
//! `LLVM=` suffix for clang trees, `$(CROSS_COMPILE)strip` for GCC trees).

use std::path::Path;

use anyhow::{Context, Result};

use crate::shell::Shell;
use crate::tree::{Compiler, KernelTree};

/// The `strip` program for a tree.
pub fn strip_program(tree: &KernelTree) -> String {
    match tree.compiler() {
        Compiler::Clang { llvm, .. } => {
            let v = std::env::var("LLVM")
                .ok()
                .filter(|v| !v.is_empty())
                .or(llvm.map(|l| l.make_value))
                .unwrap_or_else(|| "1".into());
            if v == "1" {
                "llvm-strip".into()
            } else if v.starts_with('-') {
                format!("llvm-strip{v}")
            } else {
                format!("{}/llvm-strip", v.trim_end_matches('/'))
            }
        }
        Compiler::Gcc { .. } => {
            let prefix = std::env::var("CROSS_COMPILE").unwrap_or_else(|_| {
                if tree.arch != crate::tree::Arch::host() {
                    tree.arch.gnu_prefix().into()
                } else {
                    String::new()
                }
            });
            format!("{prefix}strip")
        }
    }
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
