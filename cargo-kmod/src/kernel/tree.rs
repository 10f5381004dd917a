//! A built kernel tree and the toolchain that builds against it.
//!
//! A [`KernelTree`] is a built kbuild output directory (`make O=DIR`, an in-place build, or
//! an unpacked headers package): it has `.config`, `include/config/kernel.release`,
//! `Module.symvers`, the Rust metadata under `rust/` and, for a full build, a boot image. It
//! is opened with its toolchain decided ([`TreeTools`]), so nothing downstream re-detects it.

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::kernel::config::KConfig;
use crate::kernel::toolchain::{self, Llvm};
use crate::kernel::{Arch, Version};

/// Which compiler a tree was configured with (`CONFIG_CC_IS_CLANG` / `CONFIG_CC_IS_GCC`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Compiler {
    /// LLVM/clang; `llvm` says how to call it (`LLVM=1` or `LLVM=-19`).
    Clang {
        version: Option<Version>,
        llvm: Option<Llvm>,
    },
    Gcc {
        version: Option<Version>,
    },
}

/// How kbuild is invoked for a tree: the compiler its `.config` names, and the `LLVM=` or
/// `CROSS_COMPILE=` value that selects it. Decided once when the tree is resolved (from the
/// `.config`, a named target's `llvm`/`cross-compile`, and the `LLVM`/`CROSS_COMPILE` the user
/// set), then carried as data to every `make`, bindgen and strip run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeTools {
    pub compiler: Compiler,
    /// `LLVM=` for clang trees: `1`, a version suffix such as `-19`, or a directory prefix.
    pub llvm: Option<String>,
    /// `CROSS_COMPILE=` for GCC trees (`None` when the host compiles natively).
    pub cross_compile: Option<String>,
}

/// Toolchain choices made outside the tree: a named target's keys, else the environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolChoice {
    /// `LLVM=` to use instead of the one detected for the tree's clang.
    pub llvm: Option<String>,
    /// `CROSS_COMPILE=` to use for a GCC-built tree.
    pub cross_compile: Option<String>,
}

impl TreeTools {
    /// The tools for a tree configured as `config` for `arch`, honouring `choice`.
    pub fn decide(config: &KConfig, arch: Arch, choice: &ToolChoice) -> TreeTools {
        let text = config.string("CC_VERSION_TEXT").unwrap_or_default();
        let version = Version::find(&text);
        if config.is_enabled("CC_IS_CLANG") {
            let llvm = version.and_then(|v| Llvm::for_major(v.0));
            let make_value = choice
                .llvm
                .clone()
                .or_else(|| llvm.as_ref().map(|l| l.make_value.clone()))
                .or_else(|| Llvm::detect_in(&toolchain::path_dirs()).map(|l| l.make_value))
                .unwrap_or_else(|| "1".into());
            TreeTools {
                compiler: Compiler::Clang { version, llvm },
                llvm: Some(make_value),
                cross_compile: None,
            }
        } else {
            let cross_compile = choice
                .cross_compile
                .clone()
                .or_else(|| (arch != Arch::host()).then(|| arch.gnu_prefix().to_string()));
            TreeTools {
                compiler: Compiler::Gcc { version },
                llvm: None,
                cross_compile,
            }
        }
    }

    /// `make` arguments that select this toolchain (`ARCH=` is the tree's, added by
    /// [`KernelTree::make_args`]).
    pub fn make_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if let Some(v) = &self.llvm {
            args.push(format!("LLVM={v}"));
        }
        if let Some(cc) = &self.cross_compile {
            args.push(format!("CROSS_COMPILE={cc}"));
        }
        args
    }

    /// A binutils-style tool of this toolchain: `llvm-strip-19` for `LLVM=-19`,
    /// `aarch64-linux-gnu-strip` for a cross GCC tree (as kbuild's `$(STRIP)`).
    pub fn binutil(&self, tool: &str) -> String {
        match &self.llvm {
            Some(v) if v == "1" => format!("llvm-{tool}"),
            Some(v) if v.starts_with('-') => format!("llvm-{tool}{v}"),
            Some(dir) => format!("{}/llvm-{tool}", dir.trim_end_matches('/')),
            None => format!("{}{tool}", self.cross_compile.as_deref().unwrap_or("")),
        }
    }
}

/// A built kernel tree with the toolchain that builds against it.
#[derive(Debug, Clone)]
pub struct KernelTree {
    /// The kbuild output directory (what `make -C` gets).
    pub dir: PathBuf,
    /// The source tree (`dir/source` for `O=` builds, else `dir`).
    pub srctree: PathBuf,
    pub config: KConfig,
    pub arch: Arch,
    pub release: String,
    pub tools: TreeTools,
    /// The rustc this tree's modules must be compiled with when the tree says (a completed
    /// distribution kernel's: [`crate::kernel::distro::complete`]); else the user's.
    pub rustc: Option<PathBuf>,
}

impl KernelTree {
    /// Open a built tree, checking that it is one; its toolchain is detected.
    pub fn open(dir: &Path) -> Result<KernelTree> {
        KernelTree::open_with(dir, &ToolChoice::default())
    }

    /// Open a built tree with the toolchain choices made outside it.
    pub fn open_with(dir: &Path, choice: &ToolChoice) -> Result<KernelTree> {
        if !dir.is_dir() {
            crate::bail_user!("kernel tree `{}` does not exist", dir.display());
        }
        let dot_config = dir.join(".config");
        // boards: a headers package (`scripts/package/install-extmod-build`) has no `.config`,
        // only `include/config/auto.conf` (the same format, set symbols only).
        let auto_conf = dir.join("include/config/auto.conf");
        let config = if dot_config.is_file() {
            KConfig::read(&dot_config)?
        } else if auto_conf.is_file() {
            KConfig::read(&auto_conf)?
        } else {
            crate::bail_user!(
                "`{}` is not a configured kernel tree: it has no `.config`", dir.display();
                hint = "pass the kbuild output directory (the `O=` directory) of a built kernel, or an unpacked headers package"
            );
        };
        let Some(arch) = Arch::from_config(&config) else {
            crate::bail_user!(
                "kernel tree `{}` is for an architecture cargo-kmod does not support", dir.display();
                hint = "cargo-kmod supports `x86_64` and `arm64` trees"
            );
        };
        let release = std::fs::read_to_string(dir.join("include/config/kernel.release"))
            .map(|s| s.trim().to_string())
            .map_err(|_| {
                crate::error::UserError::new(format!(
                    "kernel tree `{}` has not been built: no `include/config/kernel.release`",
                    dir.display()
                ))
                .with_hint(format!(
                    "run `make -C {} modules_prepare` or a full build",
                    dir.display()
                ))
            })?;
        let srctree = match std::fs::canonicalize(dir.join("source")) {
            Ok(p) => p,
            Err(_) => dir.to_path_buf(),
        };
        let tools = TreeTools::decide(&config, arch, choice);
        let rustc = crate::kernel::distro::complete::Completion::read(dir).map(|c| c.rustc);
        Ok(KernelTree {
            dir: dir.to_path_buf(),
            srctree,
            config,
            arch,
            release,
            tools,
            rustc,
        })
    }

    /// A tree from parts already known (tests, and trees described by their `.config`), its
    /// toolchain decided from the config.
    pub fn from_parts(
        dir: PathBuf,
        srctree: PathBuf,
        config: KConfig,
        arch: Arch,
        release: String,
    ) -> KernelTree {
        let tools = TreeTools::decide(&config, arch, &ToolChoice::default());
        KernelTree {
            dir,
            srctree,
            config,
            arch,
            release,
            tools,
            rustc: None,
        }
    }

    pub fn compiler(&self) -> Compiler {
        self.tools.compiler.clone()
    }

    /// The one cache key over this tree's configuration: its directory and the contents of
    /// the file its configuration was read from (`.config`, or a headers package's
    /// `include/config/auto.conf`). Caches of what kbuild says about a tree (probed flags,
    /// the test-device helper) are keyed by it.
    pub fn config_key(&self) -> String {
        let text = std::fs::read(self.dir.join(".config"))
            .or_else(|_| std::fs::read(self.dir.join("include/config/auto.conf")))
            .unwrap_or_default();
        let mut bytes = self.dir.display().to_string().into_bytes();
        bytes.push(0);
        bytes.extend(text);
        crate::fsutil::sha256_hex(&bytes)[..16].to_string()
    }

    /// The name of this tree's build outputs (`target/kmod/<arch>/<name>/`): its release and
    /// its identity, so two trees of one arch never share an output directory. A tree
    /// prepared under `$CARGO_KMOD_HOME` (`trees/x86_64-8f36…`) keeps its key
    /// (`7.2.13-8f36…`); any other directory is named by a hash of its path. Characters a
    /// release may hold that make or a shell would trip on become `_`.
    pub fn output_name(&self) -> String {
        let prefix = format!("{}-", self.arch.name());
        let key = self
            .dir
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix(&prefix))
            .filter(|k| k.len() == 16 && k.bytes().all(|b| b.is_ascii_hexdigit()))
            .filter(|_| {
                self.dir
                    .parent()
                    .and_then(|p| p.file_name())
                    .is_some_and(|n| n == "trees")
            })
            .map(str::to_string)
            .unwrap_or_else(|| {
                let path = std::fs::canonicalize(&self.dir).unwrap_or_else(|_| self.dir.clone());
                crate::fsutil::sha256_hex(path.as_os_str().as_encoded_bytes())[..16].to_string()
            });
        let release: String = self
            .release
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '+' | '-' | '_') {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let release = if release.is_empty() || release.starts_with('.') {
            format!("linux{release}")
        } else {
            release
        };
        format!("{release}-{key}")
    }

    /// `CONFIG_RUSTC_VERSION_TEXT`: the rustc that built this tree.
    pub fn rustc_version_text(&self) -> Option<String> {
        self.config.string("RUSTC_VERSION_TEXT")
    }

    pub fn image(&self) -> PathBuf {
        self.dir.join(self.arch.image())
    }

    /// `make` arguments that select this tree's arch and toolchain: `ARCH=`, and `LLVM=` for
    /// clang trees or `CROSS_COMPILE=` for GCC trees cross-built from another host arch.
    pub fn make_args(&self) -> Vec<String> {
        let mut args = vec![format!("ARCH={}", self.arch.kbuild())];
        args.extend(self.tools.make_args());
        args
    }

    /// The `x.y.z` part of the release, for version-dependent choices.
    pub fn version(&self) -> Option<Version> {
        Version::find(&self.release)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_rejects_non_trees() {
        let dir = tempfile::tempdir().unwrap();
        let e = KernelTree::open(dir.path()).unwrap_err();
        assert!(e
            .to_string()
            .ends_with("is not a configured kernel tree: it has no `.config`"));
        std::fs::write(dir.path().join(".config"), "CONFIG_X86_64=y\n").unwrap();
        let e = KernelTree::open(dir.path()).unwrap_err();
        assert!(e.to_string().contains("has not been built"), "{e}");
        let e = KernelTree::open(&dir.path().join("nope")).unwrap_err();
        assert!(e.to_string().ends_with("does not exist"), "{e}");
    }

    /// A prepared tree's outputs are named by its release and key; any other directory by
    /// its release and a hash of its path; a hostile release cannot make a path.
    #[test]
    fn output_names_tell_trees_apart() {
        let tree = |dir: &str, release: &str| KernelTree {
            dir: PathBuf::from(dir),
            srctree: PathBuf::from(dir),
            config: KConfig::default(),
            arch: Arch::X86_64,
            release: release.to_string(),
            tools: TreeTools {
                compiler: Compiler::Clang {
                    version: None,
                    llvm: None,
                },
                llvm: None,
                cross_compile: None,
            },
            rustc: None,
        };
        let home = tree("/h/trees/x86_64-8f362d836dd82c60", "7.2.13");
        assert_eq!(home.output_name(), "7.2.13-8f362d836dd82c60");
        let other = tree("/srv/linux-build", "7.2.13");
        let name = other.output_name();
        assert!(name.starts_with("7.2.13-") && name.len() == "7.2.13-".len() + 16);
        assert_ne!(name, tree("/srv/linux-build2", "7.2.13").output_name());
        let hostile = tree("/srv/x", "../../$(x) y/z");
        let name = hostile.output_name();
        assert!(name.starts_with("linux.._..___x__y_z-"), "{name}");
        assert!(!name.contains('/'));
        assert_eq!(
            tree("/srv/x", "7.2.13+deb14-arm64").output_name()[..18],
            *"7.2.13+deb14-arm64"
        );
    }
}
