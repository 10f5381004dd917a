//! Running the kernel's own build on a plan: `make -C KDIR M=target/kmod/<arch> ARCH=..
//! LLVM=.. modules`, with the toolchain the tree was configured with.
//!
//! kbuild's own status lines are silenced (`-s`) unless `-v`; what remains (compiler
//! diagnostics, modpost errors) is forwarded to stderr as the tools wrote it.

pub mod fingerprint;

use std::path::{Path, PathBuf};

use anyhow::Result;
use xshell::cmd;

use crate::plan::Plan;
use crate::shell::Shell;
use crate::tree::toolchain::Toolchain;
use crate::tree::KernelTree;

/// The full `make` argument list for building a plan's modules.
pub fn make_args(tree: &KernelTree, plan: &Plan, jobs: usize, verbose: bool) -> Vec<String> {
    let mut args = vec![
        "-C".to_string(),
        tree.dir.display().to_string(),
        format!("M={}", plan.base.display()),
    ];
    args.extend(plan.make_args.iter().cloned());
    args.push(format!("-j{}", jobs.max(1)));
    if !verbose {
        args.push("-s".into());
    }
    args.push("--no-print-directory".into());
    args.push("modules".into());
    args
}

/// Run kbuild. The log goes to `base/kbuild.log`; diagnostics are forwarded to stderr.
pub fn run(shell: &Shell, tree: &KernelTree, tc: &Toolchain, plan: &Plan, jobs: usize) -> Result<PathBuf> {
    let sh = xshell::Shell::new()?;
    for (k, v) in tc.kbuild_env() {
        sh.set_var(k, v);
    }
    let args = make_args(tree, plan, jobs, shell.is_verbose());
    let log = plan.base.join("kbuild.log");
    let _ = std::fs::remove_file(&log);
    let quiet = shell.verbosity == crate::shell::Verbosity::Quiet;
    crate::process::run_logged(shell, cmd!(sh, "make {args...}"), &log, |line| {
        if !quiet {
            eprintln!("{line}");
        }
    })
    .map_err(|e| {
        // The lines were already shown; keep the error to the command and the log.
        match e.downcast::<crate::process::ProcessError>() {
            Ok(mut pe) => {
                if !quiet {
                    pe.tail.clear();
                }
                anyhow::Error::from(pe)
            }
            Err(e) => e,
        }
    })?;
    Ok(log)
}

/// Remove a module's Rust object when the environment exported for rustc changed, since
/// kbuild's dependency tracking does not see environment variables.
pub fn invalidate_on_env_change(module_dir: &Path, name: &str, env_hash: &str) -> Result<()> {
    let stamp = module_dir.join(".kmod-env");
    if std::fs::read_to_string(&stamp).is_ok_and(|s| s == env_hash) {
        return Ok(());
    }
    let _ = std::fs::remove_file(module_dir.join(format!("{name}_rs.o")));
    crate::fsutil::write_atomic(&stamp, env_hash.as_bytes())
}
