//! Running the kernel's own build: `make -C KDIR M=DIR ARCH=.. LLVM=.. modules` with the
//! toolchain the tree was configured with, kbuild's probes of its flags, and the files a
//! pass read. It takes plain data (directories and arguments), never a plan.
//!
//! kbuild's own status lines are silenced (`-s`) unless `-v`; what remains (compiler
//! diagnostics, modpost errors) is forwarded to stderr as the tools wrote it.

pub mod fingerprint;
pub mod replay;

use std::path::{Path, PathBuf};

use anyhow::Result;
use xshell::cmd;

use crate::kernel::toolchain::Toolchain;
use crate::kernel::KernelTree;
use crate::shell::Shell;

/// The Kbuild of the probe (`templates/kbuild/probe.Kbuild`): rules that print the C and Rust
/// flags kbuild uses for a module object of the tree.
pub const PROBE_KBUILD: &str = cargo_kmod_templates::kbuild::PROBE_KBUILD;

/// One `make -C KDIR M=DIR ... modules` run: the one recipe by which external modules are
/// built (the packages' pass, the test-device helper).
#[derive(Debug, Clone)]
pub struct ModulesRun<'a> {
    /// The external module directory (`M=`).
    pub dir: &'a Path,
    /// `make` arguments: the tree's `ARCH=`/`LLVM=`/`CROSS_COMPILE=` and any others
    /// (`KBUILD_EXTRA_SYMBOLS=`).
    pub make_args: &'a [String],
    /// `-jN`, when given.
    pub jobs: Option<usize>,
    /// Where the output goes, line by line.
    pub log: &'a Path,
    /// Forward kbuild's output (compiler diagnostics) to stderr as it comes.
    pub forward: bool,
}

/// The full `make` argument list of `run`.
pub fn make_args(tree: &KernelTree, run: &ModulesRun<'_>, verbose: bool) -> Vec<String> {
    let mut args = vec![
        "-C".to_string(),
        tree.dir.display().to_string(),
        format!("M={}", run.dir.display()),
    ];
    args.extend(run.make_args.iter().cloned());
    if let Some(jobs) = run.jobs {
        args.push(format!("-j{}", jobs.max(1)));
    }
    if !verbose {
        args.push("-s".into());
    }
    args.push("--no-print-directory".into());
    args.push("modules".into());
    args
}

/// Run kbuild's `modules` target with the tree's toolchain. With `forward`, what kbuild
/// prints goes to stderr as it comes (unless `-q`), and a failure carries only the command
/// and the log's path (the lines were shown); otherwise it carries the output's tail.
pub fn run(shell: &Shell, tree: &KernelTree, tc: &Toolchain, run: &ModulesRun<'_>) -> Result<()> {
    let sh = xshell::Shell::new()?;
    for (k, v) in tc.kbuild_env() {
        sh.set_var(k, v);
    }
    let args = make_args(tree, run, shell.is_verbose());
    let _ = std::fs::remove_file(run.log);
    let show = run.forward && shell.verbosity != crate::shell::Verbosity::Quiet;
    crate::process::run_logged(shell, cmd!(sh, "make {args...}"), run.log, |line| {
        if show {
            eprintln!("{line}");
        }
    })
    .map_err(|e| {
        // The lines were already shown; keep the error to the command and the log.
        match e.downcast::<crate::process::ProcessError>() {
            Ok(mut pe) => {
                if show {
                    pe.tail.clear();
                }
                anyhow::Error::from(pe)
            }
            Err(e) => e,
        }
    })
}

/// One type-check of a module crate by kbuild (`cargo kmod check`, `clippy`): the plan's check
/// goal, which runs kbuild's own rustc command for the crate with `--emit=metadata`.
#[derive(Debug, Clone)]
pub struct CheckRun<'a> {
    /// The plan's base directory (`M=`).
    pub dir: &'a Path,
    /// `make` arguments after the tree's: the plan's and the `KMOD_CHECK_FLAGS=` the check
    /// goal appends to rustc's command line.
    pub make_args: &'a [String],
    /// The goal, relative to `dir` (`<package>/<stem>.rsi`).
    pub goal: &'a str,
    /// kbuild's `CLIPPY=1` with this `clippy-driver` in place of rustc.
    pub clippy: Option<&'a str>,
    /// Where the output goes besides the returned lines.
    pub log: &'a Path,
}

/// What a check printed (rustc's diagnostics, make's own lines), and its failure, if it
/// failed: whether that is the compiler's verdict or a broken run is the caller's to tell.
#[derive(Debug)]
pub struct Checked {
    pub lines: Vec<String>,
    pub failure: Option<anyhow::Error>,
}

/// Run the check goal of `run` with the tree's toolchain.
pub fn check(
    shell: &Shell,
    tree: &KernelTree,
    tc: &Toolchain,
    run: &CheckRun<'_>,
) -> Result<Checked> {
    let sh = xshell::Shell::new()?;
    for (k, v) in tc.kbuild_env() {
        sh.set_var(k, v);
    }
    let mut args = vec![
        "-C".to_string(),
        tree.dir.display().to_string(),
        format!("M={}", run.dir.display()),
    ];
    args.extend(run.make_args.iter().cloned());
    if let Some(driver) = run.clippy {
        args.push("CLIPPY=1".into());
        args.push(format!("CLIPPY_DRIVER={driver}"));
    }
    if !shell.is_verbose() {
        args.push("-s".into());
    }
    args.push("--no-print-directory".into());
    args.push(run.goal.to_string());
    let _ = std::fs::remove_file(run.log);
    let mut lines = Vec::new();
    let result = crate::process::run_logged(shell, cmd!(sh, "make {args...}"), run.log, |l| {
        lines.push(l.to_string())
    });
    Ok(Checked {
        lines,
        failure: result.err(),
    })
}

/// Remove a module's Rust object when the environment exported for rustc changed, since
/// kbuild's dependency tracking does not see environment variables.
pub fn invalidate_on_env_change(
    module_dir: &Path,
    rust_object: &str,
    env_hash: &str,
) -> Result<()> {
    let stamp = module_dir.join(".kmod-env");
    if std::fs::read_to_string(&stamp).is_ok_and(|s| s == env_hash) {
        return Ok(());
    }
    let _ = std::fs::remove_file(module_dir.join(rust_object));
    crate::fsutil::write_atomic(&stamp, env_hash.as_bytes())
}

/// Remove the objects kbuild compiled in a module's directory (`*.o`), so that its next
/// pass compiles every source again. For an input edited while kbuild ran: kbuild decides
/// by modification times, and a step after the compile (objtool rewriting the object on
/// x86_64) can leave the object newer than the edit it never saw.
pub fn forget_objects(module_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(module_dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "o") && p.is_file() {
            let _ = std::fs::remove_file(&p);
        }
    }
}

/// The probe files (`templates/kbuild/probe.Kbuild`) a tree's kbuild fills in.
pub struct Probe<'a> {
    /// `target/kmod/<arch>/<tree>/.probe`.
    pub dir: &'a Path,
    /// The make target (`kmod_probe.i` prints the C flags, `kmod_probe.rsi` the Rust flags).
    pub target: &'a str,
    /// The file the rule writes.
    pub output: &'a str,
    /// What is probed, for messages (`C flags for bindgen`).
    pub what: &'a str,
}

impl Probe<'_> {
    /// Where the checked result is cached: one file per tree and `.config`.
    pub fn cache(&self, tree: &KernelTree, name: &str) -> PathBuf {
        self.dir.join(format!("{name}-{}.txt", tree.config_key()))
    }

    /// The probed flags: from the cache `name` when it holds a `complete` answer, else from a
    /// run of the probe, read by `parse`; only a complete answer is cached, an incomplete one
    /// is an error.
    pub fn flags(
        &self,
        shell: &Shell,
        tree: &KernelTree,
        tc: &Toolchain,
        name: &str,
        parse: impl FnOnce(&str) -> Vec<String>,
        complete: impl Fn(&[String]) -> bool,
    ) -> Result<Vec<String>> {
        let cache = self.cache(tree, name);
        if let Ok(text) = std::fs::read_to_string(&cache) {
            let flags: Vec<String> = text.lines().map(str::to_string).collect();
            if complete(&flags) {
                return Ok(flags);
            }
        }
        let flags = parse(&self.run(shell, tree, tc)?);
        if !complete(&flags) {
            crate::bail_user!(
                "kbuild's probe of {} in `{}` printed no usable flags for `{}`", self.what, self.dir.display(), tree.dir.display();
                hint = "run `cargo kmod build -v` to see the probe's `make` command, and check the tree with `cargo kmod doctor`"
            );
        }
        crate::fsutil::write_atomic(&cache, flags.join("\n").as_bytes())?;
        Ok(flags)
    }

    /// Run the probe rule with the tree's toolchain and return what it printed.
    pub fn run(&self, shell: &Shell, tree: &KernelTree, tc: &Toolchain) -> Result<String> {
        use anyhow::Context as _;
        std::fs::create_dir_all(self.dir)
            .with_context(|| format!("cannot create `{}`", self.dir.display()))?;
        crate::fsutil::write_if_changed(&self.dir.join("Kbuild"), PROBE_KBUILD.as_bytes())?;
        let out = self.dir.join(self.output);
        let _ = std::fs::remove_file(&out);
        let sh = xshell::Shell::new()?;
        for (k, v) in tc.kbuild_env() {
            sh.set_var(k, v);
        }
        let kdir = &tree.dir;
        let args = tree.make_args();
        let m = format!("M={}", self.dir.display());
        let target = self.target;
        crate::process::run(
            shell,
            cmd!(
                sh,
                "make -s --no-print-directory -C {kdir} {m} {args...} {target}"
            ),
        )
        .with_context(|| format!("cannot probe kbuild's {}", self.what))?;
        std::fs::read_to_string(&out)
            .with_context(|| format!("kbuild's probe for its {} wrote nothing", self.what))
    }
}

/// Every file the last kbuild pass over the module directories `dirs` read, from the
/// dependency lists kbuild keeps in its `.<target>.cmd` files (for Rust objects these include
/// rustc's dep-info: modules found through `#[path]`, files read by
/// `include!`/`include_str!`). Relative paths are relative to the tree kbuild ran in;
/// `$(wildcard ...)` config entries are skipped.
pub fn dependencies<'a>(
    tree: &KernelTree,
    dirs: impl IntoIterator<Item = &'a Path>,
) -> Vec<PathBuf> {
    let mut out = std::collections::BTreeSet::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            let name = name.to_string_lossy();
            if !(name.starts_with('.') && name.ends_with(".cmd")) {
                continue;
            }
            if let Ok(text) = std::fs::read_to_string(e.path()) {
                out.extend(cmd_file_deps(&text, &tree.dir));
            }
        }
    }
    out.into_iter().collect()
}

/// The prerequisites listed in one `.cmd` file's `deps_<target> := ...` variable.
pub fn cmd_file_deps(text: &str, base: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut in_deps = false;
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with("deps_") && t.contains(":=") {
            in_deps = true;
            let rest = t.split_once(":=").map(|x| x.1).unwrap_or("");
            push_words(rest, base, &mut out);
            if !t.ends_with('\\') {
                in_deps = false;
            }
            continue;
        }
        if in_deps {
            push_words(t, base, &mut out);
            if !t.ends_with('\\') {
                in_deps = false;
            }
        }
    }
    out
}

fn push_words(text: &str, base: &Path, out: &mut Vec<PathBuf>) {
    let text = text.trim_end_matches('\\');
    if text.contains("$(wildcard") {
        return;
    }
    for w in text.split_whitespace() {
        let p = Path::new(w);
        out.push(if p.is_absolute() {
            p.to_path_buf()
        } else {
            base.join(p)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmd_file_dependencies() {
        let text = "savedcmd_m.o := clang ...\n\
            source_m.o := /src/m.c\n\
            deps_m.o := \\\n\
              /src/m.c \\\n\
              include/linux/kconfig.h \\\n\
                $(wildcard include/config/CPU_BIG_ENDIAN) \\\n\
              /src/inc/h.h \\\n\
            \n\
            m.o: $(deps_m.o)\n\
            $(deps_m.o):\n";
        let deps = cmd_file_deps(text, Path::new("/k"));
        assert_eq!(
            deps,
            [
                PathBuf::from("/src/m.c"),
                PathBuf::from("/k/include/linux/kconfig.h"),
                PathBuf::from("/src/inc/h.h")
            ]
        );
    }
}
