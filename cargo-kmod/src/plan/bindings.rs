//! Bindings for the manifest's `bindings` headers, generated with the bindgen library using
//! the include paths, defines and target that kbuild uses for modules of the tree.
//!
//! The flags come from kbuild itself: a probe Kbuild prints `$(c_flags)` (cached per tree
//! `.config`), filtered to what clang needs to parse headers. Each output starts with a
//! hash of its inputs, so it is regenerated only when the header or the flags change.

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::error::UserError;
use crate::kernel::toolchain::Toolchain;
use crate::kernel::{Compiler, KernelTree};
use crate::manifest::Binding;
use crate::shell::Shell;

/// The C flags kbuild uses for this tree's modules, probed once per tree configuration.
pub fn kbuild_cflags(
    shell: &Shell,
    tree: &KernelTree,
    tc: &Toolchain,
    probe_dir: &Path,
) -> Result<Vec<String>> {
    let probe = crate::kbuild::Probe {
        dir: probe_dir,
        target: "kmod_probe.i",
        output: "cflags.txt",
        what: "C flags for bindgen",
    };
    // The cache holds filtered flags: its name changes with the filter (2: the kernel's
    // `-fms-extensions` dialect kept; 3: relative paths of kernels before 6.13 resolved in
    // the tree).
    // Kernel C flags always define `__KERNEL__` and name include directories.
    // Before Linux 6.13, kbuild compiled external modules from the tree's directory (`make
    // -C KDIR`), so the flags' relative paths (`-I./include`) are the tree's; since 6.13 it
    // changes to the module's directory (the probe's).
    let cwd = match tree.version() {
        Some(v) if v < crate::kernel::Version(6, 13, 0) => tree.dir.clone(),
        _ => probe_dir.to_path_buf(),
    };
    let complete = |flags: &[String]| {
        flags.iter().any(|f| f == "-D__KERNEL__") && flags.iter().any(|f| f.starts_with("-I"))
    };
    probe.flags(
        shell,
        tree,
        tc,
        "cflags3",
        |raw| filter_for_clang(raw.lines(), &cwd, tree),
        complete,
    )
}

/// Keep what clang needs to parse kernel headers like kbuild does (include paths, forced
/// includes, defines, language standard, target); drop code-generation and warning flags,
/// some of which are GCC-only. Relative paths are relative to `cwd`, the directory kbuild
/// compiled in.
///
/// This is an allowlist, so it is stricter than the kernel's own `bindgen_skip_c_flags`
/// (`rust/Makefile`), which removes a known list of GCC-only flags from `c_flags`: every flag
/// on that list (`-mabi=lp64`, `-mgeneral-regs-only`, `-fconserve-stack`, `--param=...`,
/// `-mstack-protector-guard*`, ...) is dropped here too. Like the kernel, GCC-built trees
/// get `-w` and the clang target of the arch (`aarch64-linux-gnu`).
pub fn filter_for_clang<'a>(
    flags: impl Iterator<Item = &'a str>,
    cwd: &Path,
    tree: &KernelTree,
) -> Vec<String> {
    let abs = |p: &str| -> String {
        let path = Path::new(p);
        if path.is_absolute() {
            p.to_string()
        } else {
            cwd.join(path).display().to_string()
        }
    };
    let mut out = Vec::new();
    let mut it = flags.map(str::trim).filter(|f| !f.is_empty()).peekable();
    while let Some(f) = it.next() {
        if let Some(p) = f.strip_prefix("-I") {
            if p.is_empty() {
                if let Some(n) = it.next() {
                    out.push(format!("-I{}", abs(n)));
                }
            } else {
                out.push(format!("-I{}", abs(p)));
            }
        } else if matches!(f, "-include" | "-isystem" | "-iquote") {
            if let Some(n) = it.next() {
                out.push(f.to_string());
                out.push(abs(n));
            }
        } else if f.starts_with("-D")
            || f.starts_with("-U")
            || f.starts_with("-std=")
            || f.starts_with("--target=")
        {
            // KBUILD_MODNAME and friends are per-object; bindings do not need them.
            if !(f.starts_with("-DKBUILD_") || f.starts_with("-D__KBUILD_")) {
                out.push(f.to_string());
            }
        } else if matches!(
            f,
            "-nostdinc"
                | "-fshort-wchar"
                | "-funsigned-char"
                | "-fsigned-char"
                | "-m64"
                | "-mlittle-endian"
        ) {
            out.push(f.to_string());
        } else if matches!(f, "-fms-extensions" | "-fms-anonymous-structs") {
            // The kernel's C dialect (`CONFIG_CC_MS_EXTENSIONS`): its headers use anonymous
            // tagged struct members. libclang may predate the narrower flag; the broad one
            // parses the same headers.
            if !out.iter().any(|o| o == "-fms-extensions") {
                out.push("-fms-extensions".to_string());
            }
        }
    }
    if !out.iter().any(|f| f.starts_with("--target=")) {
        out.push(format!("--target={}", tree.arch.clang_target()));
    }
    if matches!(tree.compiler(), Compiler::Gcc { .. }) {
        // As the kernel's own `rust/Makefile` does for GCC-built trees: libclang parses
        // headers configured for GCC, whose attributes and warnings it may not know.
        out.push("-w".into());
    }
    out.extend([
        "-D__BINDGEN__".into(),
        "-fno-builtin".into(),
        "-Wno-unknown-warning-option".into(),
    ]);
    out
}

/// Output file name for a header: `include/helper.h` -> `helper.rs`.
pub fn output_name(header: &Path) -> String {
    let stem = header
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "bindings".into());
    format!(
        "{}.rs",
        stem.replace(|c: char| !(c.is_ascii_alphanumeric() || c == '_'), "_")
    )
}

/// Generate `out_dir/<stem>.rs` for `binding` unless it is current. Returns the path.
///
/// bindgen runs as the tree's `bindgen` program (the CLI the kernel's own `rust/bindings` are
/// made with), a visible child process that gets `LIBCLANG_PATH` on its own command line.
pub fn generate(
    shell: &Shell,
    binding: &Binding,
    manifest: &Path,
    flags: &[String],
    out_dir: &Path,
    tc: &Toolchain,
) -> Result<PathBuf> {
    let header = &binding.header;
    let Ok(header_text) = std::fs::read(header) else {
        crate::bail_user!(
            "header `{}` listed in `bindings` of `{}` does not exist", header.display(), manifest.display();
            hint = "paths in `bindings` are relative to the package"
        );
    };
    let out = out_dir.join(output_name(header));
    let program = crate::kernel::toolchain::bindgen_program();
    let identity = crate::kernel::toolchain::which(&program)
        .and_then(|p| crate::fsutil::file_identity(&p))
        .unwrap_or_default();
    let inputs = serde_json::json!({
        "header": header, "text": crate::fsutil::sha256_hex(&header_text), "flags": flags,
        "allow": binding.allowlist, "block": binding.blocklist, "bindgen": [&program, identity],
        "libclang": tc.libclang,
    });
    let hash = crate::fsutil::sha256_hex(inputs.to_string().as_bytes());
    let stamp = format!("// input-hash: {hash}");
    if std::fs::read_to_string(&out).is_ok_and(|t| t.lines().nth(1) == Some(stamp.as_str())) {
        return Ok(out);
    }
    shell.status(
        "Generating",
        format_args!("bindings for `{}`", header.display()),
    );
    let args = bindgen_args(binding, flags);
    let sh = xshell::Shell::new()?;
    let mut cmd = xshell::cmd!(sh, "{program} {args...}");
    if crate::env::Env::get().var_os("LIBCLANG_PATH").is_none() {
        if let Some(dir) = &tc.libclang {
            // bindgen loads libclang at run time through LIBCLANG_PATH.
            cmd = cmd.env("LIBCLANG_PATH", dir);
        }
    }
    let bindings = crate::process::run(shell, cmd).map_err(|e| {
        let msg = match e.downcast_ref::<crate::process::ProcessError>() {
            Some(p) => p.tail.join("\n"),
            None => e.to_string(),
        };
        let first = msg
            .lines()
            .find(|l| l.contains("error:"))
            .unwrap_or(msg.lines().next().unwrap_or(""))
            .trim()
            .to_string();
        UserError::new(format!(
            "bindgen rejected `{}`: {}",
            header.display(),
            crate::text::escape(&first)
        ))
        .with_hint(
            msg.lines()
                .filter(|l| !l.trim().is_empty())
                .take(8)
                .map(|l| crate::text::escape(l).into_owned())
                .collect::<Vec<_>>()
                .join("\n"),
        )
    })?;
    let version = tc.bindgen.clone().unwrap_or_else(|| format!("`{program}`"));
    let text = format!(
        "// Generated by cargo-kmod from `{}` with {}: hand edits are lost.\n{stamp}\n{}",
        header.display(),
        version,
        bindings
    );
    crate::fsutil::write_atomic(&out, text.as_bytes())?;
    Ok(out)
}

/// The bindgen command line for `binding` (after the program): what the kernel's
/// `rust/Makefile` asks of bindgen for its own bindings (`core`, the kernel's C types), then
/// the user's allow- and blocklists, then the C flags after `--`.
pub fn bindgen_args(binding: &Binding, flags: &[String]) -> Vec<String> {
    let header = binding.header.display().to_string();
    let mut args: Vec<String> = [
        header.as_str(),
        "--use-core",
        "--ctypes-prefix",
        "::kernel::ffi",
        "--no-layout-tests",
        "--with-derive-default",
        "--generate-cstr",
        "--formatter",
        "prettyplease",
    ]
    .map(str::to_string)
    .into();
    if binding.allowlist.is_empty() {
        // Only what the header itself declares, not the kernel headers it includes.
        args.push("--allowlist-file".into());
        args.push(regex_escape(&header));
    }
    for p in &binding.allowlist {
        for flag in [
            "--allowlist-function",
            "--allowlist-type",
            "--allowlist-var",
        ] {
            args.push(flag.into());
            args.push(p.clone());
        }
    }
    for p in &binding.blocklist {
        for flag in [
            "--blocklist-function",
            "--blocklist-type",
            "--blocklist-item",
        ] {
            args.push(flag.into());
            args.push(p.clone());
        }
    }
    args.push("--".into());
    args.extend(flags.iter().cloned());
    args
}

fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What kbuild printed for a GCC-cross-built arm64 tree (Linux 7.2, GCC 12; paths
    /// shortened): only what libclang needs to parse headers is kept, every flag of the
    /// kernel's own `bindgen_skip_c_flags` and every GCC-only warning is dropped, and the tree
    /// gets `-w` and the arm64 clang target, as `rust/Makefile` gives its own bindgen run.
    const GCC_ARM64_FLAGS: &str = "-Wp,-MMD,./.kmod_probe.i.d -nostdinc -I/src/arch/arm64/include -I/tree/arch/arm64/include/generated -I/src/include -I/tree/include -I/src/arch/arm64/include/uapi -I/tree/arch/arm64/include/generated/uapi -I/src/include/uapi -I/tree/include/generated/uapi -include /src/include/linux/compiler-version.h -include /src/include/linux/kconfig.h -include /src/include/linux/compiler_types.h -D__KERNEL__ -mlittle-endian -DKASAN_SHADOW_SCALE_SHIFT= -fshort-wchar -funsigned-char -fno-common -fno-PIE -fno-strict-aliasing -std=gnu11 -fms-extensions -mgeneral-regs-only -DCONFIG_CC_HAS_K_CONSTRAINT=1 -Wno-psabi -mabi=lp64 -fno-asynchronous-unwind-tables -fno-unwind-tables -mbranch-protection=none -Wa,-march=armv8.5-a -DARM64_ASM_ARCH=\"armv8.5-a\" -DKASAN_SHADOW_SCALE_SHIFT= -fno-delete-null-pointer-checks -Os -fno-allow-store-data-races -fno-stack-protector -fno-omit-frame-pointer -fno-optimize-sibling-calls -ftrivial-auto-var-init=zero -fno-stack-clash-protection -falign-functions=4 -fno-strict-overflow -fno-stack-check -fconserve-stack -fno-builtin-wcslen -Wall -Wextra -Wundef -Werror=implicit-function-declaration -Wimplicit-fallthrough=5 -Wno-alloc-size-larger-than -Wno-packed-not-aligned -Wno-maybe-uninitialized -g -DMODULE -DKBUILD_BASENAME=\"kmod_probe\" -DKBUILD_MODNAME=\"kmod_probe\" -D__KBUILD_MODNAME=kmod_probe";

    #[test]
    fn gcc_only_flags_are_filtered_like_bindgen_skip_c_flags() {
        let tree = KernelTree::from_parts(
            PathBuf::from("/tree"),
            PathBuf::from("/src"),
            crate::kernel::config::KConfig::parse(
                "CONFIG_ARM64=y\nCONFIG_CC_IS_GCC=y\nCONFIG_CC_VERSION_TEXT=\"aarch64-linux-gnu-gcc (Debian 12.2.0-14) 12.2.0\"\n",
            ),
            crate::kernel::Arch::Arm64,
            "7.2.13-v8".into(),
        );
        let out = filter_for_clang(
            GCC_ARM64_FLAGS.split_whitespace(),
            Path::new("/probe"),
            &tree,
        );
        // The kernel's `bindgen_skip_c_flags` (rust/Makefile, 7.2) entries this tree has, and
        // GCC-only options libclang does not know.
        for gone in [
            "-mgeneral-regs-only",
            "-mabi=lp64",
            "-fno-allow-store-data-races",
            "-fno-stack-clash-protection",
            "-fconserve-stack",
            "-Wimplicit-fallthrough=5",
            "-Wno-alloc-size-larger-than",
            "-Wno-packed-not-aligned",
            "-Wa,-march=armv8.5-a",
            "-Os",
            "-g",
            "-DKBUILD_MODNAME=\"kmod_probe\"",
        ] {
            assert!(!out.iter().any(|f| f == gone), "{gone} kept: {out:?}");
        }
        for kept in [
            "-nostdinc",
            "-I/src/include",
            "-include",
            "/src/include/linux/compiler_types.h",
            "-D__KERNEL__",
            "-DMODULE",
            "-std=gnu11",
            "-fms-extensions",
            "-mlittle-endian",
            "--target=aarch64-linux-gnu",
            "-w",
            "-D__BINDGEN__",
            "-fno-builtin",
        ] {
            assert!(out.iter().any(|f| f == kept), "{kept} dropped: {out:?}");
        }
    }

    #[test]
    fn output_names() {
        assert_eq!(output_name(Path::new("/p/include/helper.h")), "helper.rs");
        assert_eq!(output_name(Path::new("dev-regs.h")), "dev_regs.rs");
    }

    #[test]
    fn regex_escapes_paths() {
        assert_eq!(regex_escape("/a/b.h"), "/a/b\\.h");
    }
}
