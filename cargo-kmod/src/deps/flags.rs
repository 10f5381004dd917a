//! The Rust flags kbuild uses for modules of a tree, probed from kbuild itself, and the flags
//! dependency crates get from them.
//!
//! A probe Kbuild prints `$(rust_flags)` for an object of a module (the target, codegen,
//! panic, `-Z` and cfg settings, `--cfg MODULE` and the tree's `rustc_cfg`), cached per tree
//! configuration like the C flags of [`crate::plan::bindings::kbuild_cflags`]. Dependency
//! crates keep all of it except what is the module crate's own business: the edition (each
//! crate has its own), lints (cargo caps them for registry crates; a crate's lints are its
//! author's), and `--target`, which cargo takes as an argument.

use std::path::Path;

use anyhow::Result;

use crate::kernel::toolchain::Toolchain;
use crate::kernel::KernelTree;
use crate::shell::Shell;

/// kbuild's `$(rust_flags)` for a module object of `tree`, with relative paths made absolute.
pub fn kbuild_rustflags(
    shell: &Shell,
    tree: &KernelTree,
    tc: &Toolchain,
    probe_dir: &Path,
) -> Result<Vec<String>> {
    let probe = crate::kbuild::Probe {
        dir: probe_dir,
        target: "kmod_probe.rsi",
        output: "rustflags.txt",
        what: "Rust flags for dependency crates",
    };
    let parse = |raw: &str| {
        // The first line is the directory kbuild ran the rule in: relative paths are from
        // there.
        let mut lines = raw.lines().map(str::trim).filter(|l| !l.is_empty());
        let cwd = lines
            .next()
            .map(Path::new)
            .unwrap_or(&tree.dir)
            .to_path_buf();
        absolutize(lines, &cwd)
    };
    probe.flags(shell, tree, tc, "rustflags", parse, complete)
}

/// kbuild's Rust flags always name the edition and the target.
fn complete(flags: &[String]) -> bool {
    flags.iter().any(|f| f.starts_with("--edition"))
        && flags.iter().any(|f| f.starts_with("--target"))
}

/// Make the paths in `--target=`, `@argfile`, `-L` and `--remap-path-prefix` absolute.
pub fn absolutize<'a>(flags: impl Iterator<Item = &'a str>, cwd: &Path) -> Vec<String> {
    let abs = |p: &str| -> String {
        if p.is_empty() || Path::new(p).is_absolute() {
            p.to_string()
        } else {
            cwd.join(p).display().to_string()
        }
    };
    let mut out = Vec::new();
    let mut it = flags.peekable();
    while let Some(f) = it.next() {
        if let Some(file) = f.strip_prefix('@') {
            out.push(format!("@{}", abs(file)));
        } else if let Some(t) = f.strip_prefix("--target=") {
            out.push(format!("--target={}", target_path(t, &abs)));
        } else if f == "--target" {
            if let Some(t) = it.next() {
                out.push(format!("--target={}", target_path(t, &abs)));
            }
        } else if let Some(p) = f.strip_prefix("-L") {
            let p = if p.is_empty() {
                it.next().unwrap_or_default()
            } else {
                p
            };
            match p.split_once('=') {
                Some((kind, dir)) => out.push(format!("-L{kind}={}", abs(dir))),
                None => out.push(format!("-L{}", abs(p))),
            }
        } else {
            out.push(f.to_string());
        }
    }
    out
}

/// A `--target` value: a builtin target name stays, a `.json` spec becomes absolute.
fn target_path(t: &str, abs: &impl Fn(&str) -> String) -> String {
    if t.ends_with(".json") {
        abs(t)
    } else {
        t.to_string()
    }
}

/// The target and flags for compiling dependency crates the way kbuild compiles modules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DepFlags {
    /// `--target` for cargo: a builtin target (`aarch64-unknown-none-softfloat`) or the
    /// absolute path of the tree's `scripts/target.json`.
    pub target: String,
    /// Everything else, for `CARGO_ENCODED_RUSTFLAGS`.
    pub rustflags: Vec<String>,
}

impl DepFlags {
    /// What cargo calls the target: its own directory under the target dir, and `TARGET`
    /// for build scripts (a spec file's stem, as cargo does).
    pub fn target_name(&self) -> String {
        if self.target.ends_with(".json") {
            Path::new(&self.target)
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default()
        } else {
            self.target.clone()
        }
    }
}

/// Whether a flag (with its value, if separate) is a lint level: `-D x`, `-Wx`, `--cap-lints`.
fn lint_flag(f: &str) -> Option<bool> {
    const SHORT: [&str; 4] = ["-D", "-W", "-A", "-F"];
    const LONG: [&str; 6] = [
        "--deny",
        "--warn",
        "--allow",
        "--forbid",
        "--force-warn",
        "--cap-lints",
    ];
    if SHORT.contains(&f) || LONG.contains(&f) {
        return Some(true); // the value follows
    }
    if SHORT.iter().any(|s| f.starts_with(s))
        || LONG.iter().any(|l| f.starts_with(&format!("{l}=")))
    {
        return Some(false);
    }
    None
}

/// Derive the dependency flags from kbuild's module flags (already absolute).
///
/// Kept: target, codegen (`-C`), `-Z`, cfgs and the tree's `@rustc_cfg`. Dropped: lints and
/// `--edition` (per crate). Added: what kbuild's `rust_common_cmd` adds to every object,
/// `--sysroot=/dev/null` and `-L <tree>/rust` (so `core` is the kernel's), and
/// `-Zunstable-options`.
pub fn for_dependencies(kbuild: &[String], tree: &KernelTree, release: bool) -> Result<DepFlags> {
    let mut target = None;
    let mut flags = Vec::new();
    let mut it = kbuild.iter().map(String::as_str);
    while let Some(f) = it.next() {
        if let Some(t) = f.strip_prefix("--target=") {
            target = Some(t.to_string());
        } else if f == "--edition" {
            it.next();
        } else if f.starts_with("--edition=") {
        } else if let Some(separate) = lint_flag(f) {
            if separate {
                it.next();
            }
        } else {
            flags.push(f.to_string());
        }
    }
    let Some(target) = target else {
        crate::bail_user!(
            "kbuild of `{}` passes no `--target` to rustc, so dependency crates cannot be built for it", tree.dir.display();
            hint = "`cargo kmod build -v` shows the probe; is this a Rust-enabled tree?"
        );
    };
    if !flags.iter().any(|f| f.starts_with("-Cdebuginfo")) {
        // kbuild's modules have no debug info then; cargo's dev profile would add it.
        flags.push("-Cdebuginfo=0".into());
    }
    flags.push("-Zunstable-options".into());
    flags.push("--sysroot=/dev/null".into());
    flags.push(format!("-L{}", tree.dir.join("rust").display()));
    if release {
        flags.push("-Cdebug-assertions=off".into());
        flags.push("-Coverflow-checks=off".into());
    }
    Ok(DepFlags {
        target,
        rustflags: flags,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn tree() -> KernelTree {
        KernelTree::from_parts(
            PathBuf::from("/k"),
            PathBuf::from("/k"),
            crate::kernel::config::KConfig::parse("CONFIG_X86_64=y\n"),
            crate::kernel::Arch::X86_64,
            "7.2.13".into(),
        )
    }

    #[test]
    fn relative_paths_become_absolute() {
        let flags = absolutize(
            [
                "--target=./scripts/target.json",
                "@./include/generated/rustc_cfg",
                "-L",
                "rust/",
                "-Ldependency=x",
                "--target=aarch64-unknown-none-softfloat",
                "-Copt-level=2",
            ]
            .into_iter(),
            Path::new("/k"),
        );
        assert_eq!(
            flags,
            [
                "--target=/k/./scripts/target.json",
                "@/k/./include/generated/rustc_cfg",
                "-L/k/rust/",
                "-Ldependency=/k/x",
                "--target=aarch64-unknown-none-softfloat",
                "-Copt-level=2",
            ]
        );
    }

    #[test]
    fn dependencies_keep_codegen_and_drop_lints_and_edition() {
        let kbuild: Vec<String> = [
            "--edition=2021",
            "-Zbinary_dep_depinfo=y",
            "-Astable_features",
            "-Dnon_ascii_idents",
            "-Wclippy::all",
            "-D",
            "warnings",
            "--cap-lints=warn",
            "-Cpanic=abort",
            "-Ccodegen-units=1",
            "--target=/k/scripts/target.json",
            "-Copt-level=2",
            "-Cdebuginfo=2",
            "--cfg",
            "MODULE",
            "@/k/include/generated/rustc_cfg",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let d = for_dependencies(&kbuild, &tree(), true).unwrap();
        assert_eq!(d.target, "/k/scripts/target.json");
        assert_eq!(d.target_name(), "target");
        assert_eq!(
            d.rustflags,
            [
                "-Zbinary_dep_depinfo=y",
                "-Cpanic=abort",
                "-Ccodegen-units=1",
                "-Copt-level=2",
                "-Cdebuginfo=2",
                "--cfg",
                "MODULE",
                "@/k/include/generated/rustc_cfg",
                "-Zunstable-options",
                "--sysroot=/dev/null",
                "-L/k/rust",
                "-Cdebug-assertions=off",
                "-Coverflow-checks=off",
            ]
        );
    }

    #[test]
    fn a_tree_without_target_is_refused() {
        let err = for_dependencies(&["-Copt-level=2".into()], &tree(), false).unwrap_err();
        assert!(err.to_string().contains("passes no `--target`"), "{err}");
        let arm = for_dependencies(
            &["--target=aarch64-unknown-none-softfloat".into()],
            &tree(),
            false,
        )
        .unwrap();
        assert_eq!(arm.target_name(), "aarch64-unknown-none-softfloat");
        assert!(arm.rustflags.contains(&"-Cdebuginfo=0".to_string()));
    }
}
