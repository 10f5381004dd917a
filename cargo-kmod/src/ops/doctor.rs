//! `cargo kmod doctor`: the host toolchain, and each kernel tree against it.
//!
//! Each check is one line: ok, or what is wrong and the fix. The mismatches found here are
//! the ones that otherwise surface later as `E0514`/`E0461`, bindgen failures, or modules
//! the kernel refuses. A tree named with `--kdir` or `KDIR` is opened by the one tree
//! resolver (`kernel::resolve`); without one, every prepared tree of the arch is checked.

use std::path::PathBuf;

use anyhow::Result;
use serde::Serialize;

use crate::context::Session;
use crate::kernel::resolve::{self, Choice};
use crate::kernel::ToolChoice;

use crate::kernel::home::Home;
use crate::kernel::toolchain::{min_tool_version, Llvm, Toolchain};
use crate::kernel::Version;
use crate::kernel::{Arch, Compiler, KernelTree};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub name: String,
    pub status: Status,
    pub message: String,
    pub fix: Option<String>,
}

impl Check {
    fn ok(name: &str, message: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            status: Status::Ok,
            message: message.into(),
            fix: None,
        }
    }
    fn fail(name: &str, message: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            status: Status::Fail,
            message: message.into(),
            fix: Some(fix.into()),
        }
    }
    fn warn(name: &str, message: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            status: Status::Warn,
            message: message.into(),
            fix: Some(fix.into()),
        }
    }

    /// `ok    rustc: rustc 1.95.0 ...` / `FAIL  bindgen: ... (fix: ...)`.
    pub fn line(&self) -> String {
        let tag = match self.status {
            Status::Ok => "ok  ",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
        };
        match &self.fix {
            Some(fix) => format!("{tag}  {}: {} (fix: {})", self.name, self.message, fix),
            None => format!("{tag}  {}: {}", self.name, self.message),
        }
    }
}

/// What `doctor` is asked to check.
#[derive(Debug, Clone, Default)]
pub struct DoctorRequest {
    /// `--kdir`.
    pub kdir: Option<PathBuf>,
    /// `--arch`.
    pub arch: Option<Arch>,
}

/// Every check, in the order they are printed: the host toolchain, each tree, the boot tools
/// of each arch.
pub fn doctor(session: &Session, req: &DoctorRequest) -> Result<Vec<Check>> {
    let home = Home::from_env()?;
    let explicit_tree = req.kdir.clone().or_else(|| session.env.kdir());
    if let Some(rustc) = explicit_tree
        .and_then(|d| {
            resolve::resolve(
                &home,
                &Choice {
                    flag: Some(d),
                    ..Choice::default()
                },
            )
            .ok()
        })
        .and_then(|t| t.rustc)
    {
        // A completed distribution kernel is built with its own rustc: judge that one.
        crate::kernel::toolchain::use_tree_rustc(&rustc);
    }
    let tc = Toolchain::detect(&home);
    let mut checks = host(&tc);
    let mut trees: Vec<(KernelTree, Option<String>)> = Vec::new();
    let choice = Choice {
        flag: req.kdir.clone(),
        env: session.env.kdir(),
        tools: ToolChoice {
            llvm: session.env.llvm(),
            cross_compile: session.env.cross_compile(),
        },
        ..Choice::default()
    };
    if let Some((dir, _)) = choice.explicit() {
        match resolve::resolve(&home, &choice) {
            Ok(t) => {
                if let Some(a) = req.arch.filter(|a| *a != t.arch) {
                    crate::bail_user!(
                        "kernel tree `{}` is for {}, not {}",
                        dir.display(),
                        t.arch,
                        a
                    );
                }
                trees.push((t, None))
            }
            Err(e) => {
                let (_, hint, _) = crate::error::render(&e);
                checks.push(Check {
                    name: "kernel tree".into(),
                    status: Status::Fail,
                    message: e.root_cause().to_string(),
                    // A distribution's bare headers: the command that completes them.
                    fix: Some(
                        hint.unwrap_or_else(|| {
                            "pass the output directory of a built kernel".into()
                        }),
                    ),
                })
            }
        }
    } else {
        let arches: Vec<Arch> = req
            .arch
            .map(|a| vec![a])
            .unwrap_or_else(|| Arch::ALL.to_vec());
        for a in arches {
            let found: Vec<_> = home
                .list()
                .into_iter()
                .filter(|t| t.meta.arch == a)
                .collect();
            if found.is_empty() {
                checks.push(Check {
                    name: format!("dev tree ({a})"),
                    status: Status::Fail,
                    message: format!("none in `{}`", home.trees_dir().display()),
                    fix: Some(format!("`cargo kmod init --arch {a}`, or pass `--kdir`")),
                });
            }
            for p in found {
                match KernelTree::open_with(&p.dir, &choice.tools) {
                    // Board and GCC trees share release and arch with the dev tree: each line
                    // says which one it is about.
                    Ok(t) => trees.push((t, (!p.meta.is_dev_tree()).then(|| p.meta.kind_label()))),
                    Err(e) => checks.push(Check {
                        name: format!("dev tree ({a})"),
                        status: Status::Fail,
                        message: crate::error::render(&e).0,
                        fix: Some(format!("`cargo kmod init --arch {a}`")),
                    }),
                }
            }
        }
    }
    let mut arches: Vec<Arch> = trees.iter().map(|(t, _)| t.arch).collect();
    if arches.is_empty() {
        arches = req
            .arch
            .map(|a| vec![a])
            .unwrap_or_else(|| Arch::ALL.to_vec());
    }
    arches.sort();
    arches.dedup();
    for (t, kind) in &trees {
        checks.extend(tree(t, &tc, kind.as_deref()));
    }
    for a in arches {
        checks.extend(boot_tools(&home, a));
    }
    Ok(checks)
}

/// The default bindgen minimum when no tree says otherwise (Linux 7.2's).
const BINDGEN_MIN: Version = Version(0, 71, 1);

/// Host checks: rustc, rust-src, bindgen, libclang, LLVM.
pub fn host(tc: &Toolchain) -> Vec<Check> {
    let mut out = Vec::new();
    out.push(match &tc.rustc {
        Some(r) => Check::ok("rustc", r.clone()),
        None => Check::fail("rustc", "`rustc` not found", "install Rust with rustup"),
    });
    out.push(match (&tc.rust_src, tc.rustc_version()) {
        (Some((p, from)), _) => Check::ok("rust-src", format!("`{}` ({from})", p.display())),
        (None, Some(v)) => Check::fail(
            "rust-src",
            format!("no rust-src for rustc {v} (`RUST_LIB_SRC`, the rustup component and `$CARGO_KMOD_HOME/rust-src/{v}` have none)"),
            format!("`cargo xtask setup` installs Debian's `rust-src={v}`; or set `RUST_LIB_SRC` to its `library` dir"),
        ),
        (None, None) => Check::fail("rust-src", "cannot tell without rustc", "install Rust with rustup"),
    });
    out.push(bindgen_check(tc, BINDGEN_MIN, "Linux 7.2"));
    out.push(match &tc.libclang {
        Some(p) => Check::ok("libclang", format!("`{}`", p.display())),
        None => Check::fail(
            "libclang",
            "no libclang for bindgen",
            "install `libclang-19-dev`, or set `LIBCLANG_PATH`",
        ),
    });
    out.push(match (&tc.llvm, &tc.clang) {
        (Some(l), Some(v)) => Check::ok(
            "llvm",
            format!("`LLVM={}` ({}, {}): {v}", l.make_value, l.clang, l.ld_lld),
        ),
        (Some(l), None) => Check::fail(
            "llvm",
            format!("`{}` does not run", l.clang),
            "install `clang-19 lld-19 llvm-19`",
        ),
        (None, _) => Check::fail(
            "llvm",
            "no `clang` + `ld.lld` (or `clang-N` + `ld.lld-N`) on `PATH`",
            "install `clang-19 lld-19 llvm-19`, or set `LLVM=-N`",
        ),
    });
    out
}

fn bindgen_check(tc: &Toolchain, min: Version, what: &str) -> Check {
    match (tc.bindgen.as_deref(), tc.bindgen_version()) {
        (Some(line), Some(v)) if v >= min => {
            Check::ok("bindgen", format!("{line} (>= {min} for {what})"))
        }
        (Some(_), Some(v)) => Check::fail(
            "bindgen",
            format!("bindgen {v} is too old: {what} needs at least {min}"),
            "`cargo install bindgen-cli --locked`",
        ),
        _ => Check::fail(
            "bindgen",
            "`bindgen` not found",
            "`cargo install bindgen-cli --locked`",
        ),
    }
}

/// qemu and a busybox for booting `arch` (for `cargo kmod test`/`run`): found by the same
/// functions the boots use, so doctor says ok exactly when a boot would find them.
pub fn boot_tools(home: &Home, arch: Arch) -> Vec<Check> {
    let fail = |name: &str, e: anyhow::Error| {
        let (message, hint, _) = crate::error::render(&e);
        Check::fail(name, message, hint.unwrap_or_default())
    };
    let q_name = format!("qemu ({arch})");
    let q = match crate::qemu::tools::qemu_program(arch) {
        Ok(p) if p.is_file() => Check::ok(&q_name, format!("`{}`", p.display())),
        Ok(p) => Check::fail(
            &q_name,
            format!("`{}` does not exist", p.display()),
            format!("install `{}`", crate::qemu::tools::qemu_package(arch)),
        ),
        Err(e) => fail(&q_name, e),
    };
    let b_name = format!("busybox ({arch})");
    let bb = match crate::qemu::tools::busybox(home, arch) {
        Ok(p) => Check::ok(&b_name, format!("`{}` (static)", p.display())),
        Err(e) => fail(&b_name, e),
    };
    vec![q, bb]
}

/// Checks of a kernel tree against the host toolchain.
pub fn tree(t: &KernelTree, tc: &Toolchain, kind: Option<&str>) -> Vec<Check> {
    let mut out = Vec::new();
    let label = |s: &str| match kind {
        Some(k) => format!("{s} [{} {}, {k}]", t.release, t.arch),
        None => format!("{s} [{} {}]", t.release, t.arch),
    };
    let cfg = &t.config;
    out.push(if cfg.is_enabled("RUST") {
        Check::ok(&label("CONFIG_RUST"), "y")
    } else {
        Check::fail(
            &label("CONFIG_RUST"),
            "not set: this tree cannot build Rust modules",
            "use a tree with `CONFIG_RUST=y` (`cargo kmod init`)",
        )
    });
    out.push(if cfg.is_enabled("MODULES") {
        Check::ok(&label("CONFIG_MODULES"), "y")
    } else {
        Check::fail(
            &label("CONFIG_MODULES"),
            "not set: this tree cannot load modules",
            "enable `CONFIG_MODULES`",
        )
    });
    out.push(
        match (
            cfg.is_enabled("MODVERSIONS"),
            cfg.is_enabled("EXTENDED_MODVERSIONS"),
        ) {
            (true, true) => Check::ok(
                &label("modversions"),
                "extended (`__version_ext_crcs`/`__version_ext_names`)",
            ),
            (true, false) => Check::ok(&label("modversions"), "basic"),
            _ => Check::ok(&label("modversions"), "off (symbols are not versioned)"),
        },
    );
    let want = t.rustc_version_text();
    out.push(match (&want, &tc.rustc) {
        (Some(w), Some(h)) if w == h => Check::ok(&label("rustc match"), format!("`{h}` built this tree")),
        (Some(w), Some(h)) => Check::fail(
            &label("rustc match"),
            format!("the tree was built by `{w}` but `rustc` is `{h}`: modules would fail with E0514/E0461"),
            format!("use exactly rustc {} (`rustup toolchain install`, then `RUSTC` or `rustup override set`)", Version::find(w).map(|v| v.to_string()).unwrap_or_default()),
        ),
        (None, _) => Check::fail(&label("rustc match"), "no `CONFIG_RUSTC_VERSION_TEXT` in `.config`", "use a tree built with Rust support"),
        (_, None) => Check::fail(&label("rustc match"), "`rustc` not found", "install Rust with rustup"),
    });
    out.extend(rust_artifacts(t).into_iter().map(|mut c| {
        c.name = label(&c.name);
        c
    }));
    out.push(if t.dir.join("Module.symvers").is_file() {
        Check::ok(&label("Module.symvers"), "present")
    } else {
        Check::fail(
            &label("Module.symvers"),
            "missing: modpost cannot check symbols",
            "build the tree (`make modules`)",
        )
    });
    let min = min_tool_version(&t.srctree, "bindgen").unwrap_or(BINDGEN_MIN);
    let mut b = bindgen_check(tc, min, &format!("linux {}", t.release));
    b.name = label("bindgen");
    out.push(b);
    out.push(compiler_check(t, &label("compiler")));
    out.push(if t.image().is_file() {
        Check::ok(&label("boot image"), format!("`{}`", t.image().display()))
    } else {
        Check::warn(
            &label("boot image"),
            format!(
                "no `{}`: `cargo kmod test`/`run` cannot boot this tree",
                t.arch.image()
            ),
            "build the kernel image too",
        )
    });
    out
}

/// What building a Rust module against a tree needs beyond C headers, as a distro headers
/// package (`linux-headers-*`) lacks it: the kernel crates' metadata and proc macros under
/// `rust/`, the Rust target spec, and the host programs kbuild runs. Each missing file is
/// named, with where it comes from.
pub fn rust_artifacts(t: &KernelTree) -> Vec<Check> {
    let mut out = Vec::new();
    let from_build = "built by the kernel's own build with `CONFIG_RUST=y` (`make` in the build tree); distro `linux-headers-*` packages and `scripts/package/install-extmod-build` do not ship them, `cargo kmod kit` exports a headers package that does";
    let missing: Vec<String> = required_rust_files(t)
        .into_iter()
        .filter(|f| !t.dir.join(f).is_file())
        .collect();
    out.push(if missing.is_empty() {
        Check::ok(
            "rust metadata",
            "`rust/*.rmeta` and the proc-macro `rust/*.so` files are present",
        )
    } else {
        Check::fail(
            "rust metadata",
            format!("missing {}", quote_list(&missing)),
            from_build,
        )
    });
    // x86_64's Rust target is a generated spec; arm64 uses rustc's built-in target.
    let arch_makefile = t
        .srctree
        .join("arch")
        .join(t.arch.srcarch())
        .join("Makefile");
    let wants_spec = std::fs::read_to_string(&arch_makefile)
        .map(|m| m.contains("scripts/target.json"))
        .unwrap_or(t.arch == Arch::X86_64);
    if wants_spec {
        out.push(if t.dir.join("scripts/target.json").is_file() {
            Check::ok("rust target spec", "`scripts/target.json`")
        } else {
            Check::fail(
                "rust target spec",
                "missing `scripts/target.json` (the Rust target `arch/x86/Makefile` passes to rustc)",
                "generated by the kernel build (`scripts/generate_rust_target`) when `CONFIG_RUST=y`; copy it from the build tree's `scripts/`",
            )
        });
    }
    let mut programs: Vec<&str> = vec!["scripts/basic/fixdep", "scripts/mod/modpost"];
    if t.config.is_enabled("MODVERSIONS") {
        programs.push(if t.config.is_enabled("GENDWARFKSYMS") {
            "scripts/gendwarfksyms/gendwarfksyms"
        } else {
            "scripts/genksyms/genksyms"
        });
    }
    if t.config.is_enabled("OBJTOOL") {
        programs.push("tools/objtool/objtool");
    }
    let host = Arch::host().elf_machine();
    let mut absent = Vec::new();
    let mut foreign = Vec::new();
    for p in &programs {
        match elf_machine(&t.dir.join(p)) {
            None => absent.push(p.to_string()),
            Some(m) if m != host => foreign.push(format!("`{p}` ({})", crate::ko::machine_name(m))),
            Some(_) => {}
        }
    }
    if !t.dir.join("scripts/module.lds").is_file() {
        absent.push("scripts/module.lds".into());
    }
    out.push(if absent.is_empty() && foreign.is_empty() {
        Check::ok(
            "host programs",
            quote_list(&programs.iter().map(|p| p.to_string()).collect::<Vec<_>>()),
        )
    } else if absent.is_empty() {
        Check::fail(
            "host programs",
            format!("{} are built for another machine than this {} host", foreign.join(", "), Arch::host()),
            format!("use headers whose `scripts/` were built for {} (`cargo kmod kit` exports them), or rebuild them with that host's compiler (`make modules_prepare` in the source)", Arch::host()),
        )
    } else {
        Check::fail(
            "host programs",
            format!("missing {}", quote_list(&absent)),
            "built by `make modules_prepare` (or the full build) in the kernel tree; headers packages ship them from `scripts/` and `tools/objtool/`",
        )
    });
    out
}

/// The `rust/` files an external module's rustc loads: the crates `scripts/Makefile.build`
/// passes with `--extern` (and what the kernel crate itself needs), each as `.rmeta`, or as
/// a `.so` for the proc-macro crates.
pub fn required_rust_files(t: &KernelTree) -> Vec<String> {
    let mut crates: Vec<String> = ["core", "compiler_builtins", "kernel", "macros"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    if let Ok(text) = std::fs::read_to_string(t.srctree.join("scripts/Makefile.build")) {
        let mut words = text.split_whitespace();
        while let Some(w) = words.next() {
            if w == "--extern" {
                if let Some(name) = words.next() {
                    let name = name.split('=').next().unwrap_or(name);
                    if name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                        && !crates.iter().any(|c| c == name)
                    {
                        crates.push(name.to_string());
                    }
                }
            }
        }
    }
    // What the tree actually has wins for proc macros: `libfoo.so` instead of `.rmeta`.
    crates
        .into_iter()
        .map(|c| {
            let so = format!("rust/lib{c}.so");
            let proc_macro = c == "macros" || c.ends_with("_derive") || c.ends_with("_internal");
            if proc_macro || t.dir.join(&so).is_file() {
                so
            } else {
                format!("rust/lib{c}.rmeta")
            }
        })
        .collect()
}

fn quote_list(items: &[String]) -> String {
    items
        .iter()
        .map(|i| format!("`{i}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The ELF machine of an executable, `None` when it is missing or not ELF.
fn elf_machine(path: &std::path::Path) -> Option<u16> {
    let mut f = std::fs::File::open(path).ok()?;
    let mut head = [0u8; 20];
    std::io::Read::read_exact(&mut f, &mut head).ok()?;
    if &head[..4] != b"\x7fELF" {
        return None;
    }
    Some(if head[5] == 2 {
        u16::from_be_bytes([head[18], head[19]])
    } else {
        u16::from_le_bytes([head[18], head[19]])
    })
}

fn compiler_check(t: &KernelTree, name: &str) -> Check {
    let text = t.config.string("CC_VERSION_TEXT").unwrap_or_default();
    if let Some(c) = crate::kernel::distro::complete::Completion::read(&t.dir) {
        let dirs: Vec<String> = c
            .path
            .iter()
            .map(|p| format!("`{}`", p.display()))
            .collect();
        return Check::ok(
            name,
            format!(
                "{text}: the kernel's own compiler, from the distribution's packages in {}",
                dirs.join(", ")
            ),
        );
    }
    match t.compiler() {
        Compiler::Clang { version, llvm } => match (version, llvm) {
            (Some(v), Some(l)) if Llvm::for_major(v.0).is_some() => {
                Check::ok(name, format!("{text} via `LLVM={}`", l.make_value))
            }
            (Some(v), _) => Check::fail(
                name,
                format!(
                    "the tree was built by {text}, and no clang {} is on `PATH`",
                    v.0
                ),
                format!("install `clang-{0} lld-{0} llvm-{0}`", v.0),
            ),
            (None, _) => Check::warn(
                name,
                format!("cannot tell the clang version from `{text}`"),
                "check `CONFIG_CC_VERSION_TEXT`",
            ),
        },
        Compiler::Gcc { version } => {
            let prefix = crate::env::Env::get().cross_compile().unwrap_or_else(|| {
                if t.arch == Arch::host() {
                    String::new()
                } else {
                    t.arch.gnu_prefix().to_string()
                }
            });
            let gcc = format!("{prefix}gcc");
            let sh = xshell::Shell::new().ok();
            let found = sh
                .as_ref()
                .and_then(|sh| crate::process::version_line(sh, &gcc, &["--version"]));
            match found {
                Some(line) if Version::find(&line).map(|v| v.0) == version.map(|v| v.0) => {
                    Check::ok(name, format!("{text} via `{gcc}`"))
                }
                Some(line) => Check::warn(
                    name,
                    format!("the tree was built by {text}, `{gcc}` is {line}"),
                    "use the same GCC major version as the tree",
                ),
                None => Check::fail(
                    name,
                    format!("the tree was built by {text}, and `{gcc}` is not on `PATH`"),
                    if prefix.is_empty() {
                        "install `gcc`".to_string()
                    } else {
                        format!(
                            "install `gcc-{}` or set `CROSS_COMPILE`",
                            prefix.trim_end_matches('-')
                        )
                    },
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::config::KConfig;
    use std::path::PathBuf;

    fn tc() -> Toolchain {
        Toolchain {
            rustc: Some("rustc 1.95.0 (59807616e 2026-04-14)".into()),
            bindgen: Some("bindgen 0.73.2".into()),
            ..Toolchain::default()
        }
    }

    #[test]
    fn tree_checks_name_each_problem() {
        let d = tempfile::tempdir().unwrap();
        let t = KernelTree::from_parts(
            d.path().to_path_buf(),
            PathBuf::from("/nonexistent"),
            KConfig::parse(
                "CONFIG_ARM64=y\nCONFIG_MODULES=y\nCONFIG_RUSTC_VERSION_TEXT=\"rustc 1.94.0 (x 2026-01-01)\"\nCONFIG_CC_IS_CLANG=y\nCONFIG_CC_VERSION_TEXT=\"clang version 99.0.0\"\n",
            ),
            Arch::Arm64,
            "7.2.13".into(),
        );
        let checks = tree(&t, &tc(), None);
        let failed: Vec<&str> = checks
            .iter()
            .filter(|c| c.status == Status::Fail)
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(
            failed,
            [
                "CONFIG_RUST [7.2.13 arm64]",
                "rustc match [7.2.13 arm64]",
                "rust metadata [7.2.13 arm64]",
                "host programs [7.2.13 arm64]",
                "Module.symvers [7.2.13 arm64]",
                "compiler [7.2.13 arm64]"
            ]
        );
        let rustc = checks
            .iter()
            .find(|c| c.name.starts_with("rustc match"))
            .unwrap();
        assert!(
            rustc
                .line()
                .contains("built by `rustc 1.94.0 (x 2026-01-01)` but `rustc` is `rustc 1.95.0"),
            "{}",
            rustc.line()
        );
        assert!(rustc.line().contains("E0514/E0461"));
    }

    #[test]
    fn a_headers_package_without_rust_gets_the_list_of_what_it_lacks() {
        let d = tempfile::tempdir().unwrap();
        let put = |p: &str, text: &str| {
            let f = d.path().join(p);
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::write(f, text).unwrap();
        };
        // What `scripts/package/install-extmod-build` ships: no `.config`, no `rust/`.
        put(
            "include/config/auto.conf",
            "CONFIG_X86_64=y\nCONFIG_RUST=y\nCONFIG_MODULES=y\nCONFIG_MODVERSIONS=y\nCONFIG_GENDWARFKSYMS=y\nCONFIG_OBJTOOL=y\n",
        );
        put("include/config/kernel.release", "7.2.13\n");
        put(
            "scripts/Makefile.build",
            "rust_common_cmd = \\\n\t-Zunstable-options --extern pin_init --extern kernel \\\n\t--extern zerocopy --extern zerocopy_derive \\\n",
        );
        put(
            "arch/x86/Makefile",
            "KBUILD_RUSTFLAGS += --target=$(objtree)/scripts/target.json\n",
        );
        put("scripts/module.lds", "");
        put("scripts/basic/fixdep", "");
        std::fs::copy("/bin/true", d.path().join("scripts/basic/fixdep")).unwrap();
        let t = KernelTree::open(d.path()).unwrap();
        assert_eq!(t.release, "7.2.13");
        assert!(
            t.config.is_enabled("RUST"),
            "auto.conf stands in for `.config`"
        );
        let checks = rust_artifacts(&t);
        let line = |name: &str| checks.iter().find(|c| c.name == name).unwrap().line();
        assert_eq!(
            line("rust metadata"),
            "FAIL  rust metadata: missing `rust/libcore.rmeta`, `rust/libcompiler_builtins.rmeta`, `rust/libkernel.rmeta`, `rust/libmacros.so`, `rust/libpin_init.rmeta`, `rust/libzerocopy.rmeta`, `rust/libzerocopy_derive.so` (fix: built by the kernel's own build with `CONFIG_RUST=y` (`make` in the build tree); distro `linux-headers-*` packages and `scripts/package/install-extmod-build` do not ship them, `cargo kmod kit` exports a headers package that does)"
        );
        assert!(line("rust target spec")
            .starts_with("FAIL  rust target spec: missing `scripts/target.json`"));
        assert!(
            line("host programs").starts_with("FAIL  host programs: missing `scripts/mod/modpost`, `scripts/gendwarfksyms/gendwarfksyms`, `tools/objtool/objtool` (fix: built by `make modules_prepare`"),
            "{}",
            line("host programs")
        );
        // A foreign host program is named with its machine.
        for p in [
            "scripts/mod/modpost",
            "scripts/gendwarfksyms/gendwarfksyms",
            "tools/objtool/objtool",
        ] {
            let mut elf = std::fs::read("/bin/true").unwrap();
            elf[18..20].copy_from_slice(&object::elf::EM_AARCH64.to_le_bytes());
            put(p, "");
            std::fs::write(d.path().join(p), elf).unwrap();
        }
        let checks = rust_artifacts(&t);
        let hp = checks
            .iter()
            .find(|c| c.name == "host programs")
            .unwrap()
            .line();
        assert!(hp.contains("`scripts/mod/modpost` (aarch64)"), "{hp}");
    }

    #[test]
    fn a_dynamically_linked_busybox_fails() {
        let d = tempfile::tempdir().unwrap();
        let home = Home {
            root: d.path().to_path_buf(),
        };
        // Not the host arch: only `$CARGO_KMOD_HOME/busybox/<arch>/busybox` counts.
        let arch = match Arch::host() {
            Arch::X86_64 => Arch::Arm64,
            Arch::Arm64 => Arch::X86_64,
        };
        let own = d.path().join("busybox").join(arch.name());
        std::fs::create_dir_all(&own).unwrap();
        let checks = boot_tools(&home, arch);
        assert_eq!(checks[1].status, Status::Fail);
        assert!(
            checks[1].message.starts_with("no static busybox"),
            "{:?}",
            checks[1]
        );
        // A dynamically linked one (the test binary, any arch) is refused with the reason.
        std::fs::copy(std::env::current_exe().unwrap(), own.join("busybox")).unwrap();
        let checks = boot_tools(&home, arch);
        assert_eq!(checks[1].status, Status::Fail);
        assert!(
            checks[1].message.contains("cannot run in "),
            "{}",
            checks[1].line()
        );
    }

    #[test]
    fn old_bindgen_and_missing_rust_src_fail() {
        let mut t = tc();
        t.bindgen = Some("bindgen 0.60.1".into());
        let checks = host(&t);
        let b = checks.iter().find(|c| c.name == "bindgen").unwrap();
        assert_eq!(b.status, Status::Fail);
        assert_eq!(b.line(), "FAIL  bindgen: bindgen 0.60.1 is too old: Linux 7.2 needs at least 0.71.1 (fix: `cargo install bindgen-cli --locked`)");
        let s = checks.iter().find(|c| c.name == "rust-src").unwrap();
        assert_eq!(s.status, Status::Fail);
        assert!(s.message.starts_with("no rust-src for rustc 1.95.0"));
    }
}
