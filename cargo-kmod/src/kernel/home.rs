//! Prepared trees under `$CARGO_KMOD_HOME` (its layout is [`crate::kernel::layout`]): the
//! stamp that marks a tree as prepared ([`TreeMeta`]), listing them, and the home's
//! location from the environment.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::kernel::Arch;

pub use crate::kernel::layout::{Home, TREE_LOG, TREE_STAMP};

/// What `cargo-kmod-tree.json` records about a prepared tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeMeta {
    pub key: String,
    pub arch: Arch,
    /// `include/config/kernel.release`, e.g. `7.2.13`.
    pub release: String,
    pub source: String,
    pub rustc: String,
    pub bindgen: String,
    pub clang: String,
    /// The `LLVM=` value the tree was built with.
    pub llvm: String,
    pub modversions: bool,
    pub fragments: Vec<String>,
    pub build_seconds: u64,
    /// How many kbuild output lines the build printed (the next build's progress estimate).
    pub build_lines: u64,
    /// The key of the inputs without tool versions (how a named target finds its tree).
    #[serde(default)]
    pub inputs: String,
    /// The board preset the tree was prepared for (`rpi4`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub board: Option<String>,
    /// The SoC fragment merged for the board (`bcm2835`: rpi3 and rpi4 share the tree).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soc: Option<String>,
    /// The board configuration the tree started from (a file or a defconfig name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_config: Option<String>,
    #[serde(default)]
    pub cc: CcKind,
    /// The `CROSS_COMPILE` a GCC tree was built with (empty: the host's gcc).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cross_compile: Option<String>,
    /// `gcc --version` of a GCC tree.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub gcc: String,
}

/// Which compiler built a prepared tree.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CcKind {
    #[default]
    Clang,
    Gcc,
}

impl TreeMeta {
    /// A development tree: tinyconfig + the dev fragments, built with LLVM, no board. These
    /// are the trees `--arch` picks when no tree is named.
    pub fn is_dev_tree(&self) -> bool {
        self.board.is_none()
            && self.soc.is_none()
            && self.base_config.is_none()
            && self.cc == CcKind::Clang
            // A tree with the user's `--config` fragments has extra features: it never becomes
            // the tree of packages that did not ask for them.
            && self.fragments.is_empty()
    }

    /// The symbols a feature tree adds to the dev tree (`PCI=y DEBUG_FS=y`): a tree `init`
    /// prepared for the packages' `kernel-config` ([`crate::kernel::prepare::features_fragment`]).
    pub fn features(&self) -> Option<&str> {
        match self.fragments.as_slice() {
            [f] => f.strip_prefix(crate::kernel::prepare::FEATURES_PREFIX),
            _ => None,
        }
    }

    /// A dev tree, or a dev tree with the features packages asked for: the trees a build
    /// with no tree named chooses from.
    pub fn is_dev_or_feature_tree(&self) -> bool {
        self.is_dev_tree()
            || (self.features().is_some()
                && self.board.is_none()
                && self.soc.is_none()
                && self.base_config.is_none()
                && self.cc == CcKind::Clang)
    }

    /// What `--list` and messages say about a non-dev tree: `rpi4`, `bcm2711_defconfig, gcc`.
    pub fn kind_label(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        if let Some(b) = &self.board {
            parts.push(format!("board {b}"));
        }
        if let Some(b) = &self.base_config {
            parts.push(format!("base {b}"));
        }
        if self.cc == CcKind::Gcc {
            parts.push("gcc".into());
        }
        if let Some(f) = self.features() {
            parts.push(format!("features {}", crate::text::escape(f)));
        } else if self.fragments == [crate::kernel::prepare::SANITIZE_FRAGMENT] {
            parts.push("sanitize: KASAN".into());
        } else if !self.fragments.is_empty() {
            parts.push(format!("config {}", self.fragments.join(" ")));
        }
        if parts.is_empty() {
            "dev".into()
        } else {
            parts.join(", ")
        }
    }
}

/// A prepared tree found under the home.
#[derive(Debug, Clone)]
pub struct PreparedTree {
    pub dir: PathBuf,
    pub meta: TreeMeta,
}

impl Home {
    /// `CARGO_KMOD_HOME`, else `~/.cargo-kmod`.
    pub fn from_env() -> Result<Home> {
        let env = crate::env::Env::get();
        match Home::locate(env.path("CARGO_KMOD_HOME"), env.home_dir()) {
            Some(h) => Ok(h),
            None => crate::bail_user!(
                "cannot find a home directory for cargo-kmod's trees";
                hint = "set `CARGO_KMOD_HOME` to a writable directory"
            ),
        }
    }

    /// Create a directory under the home, with a one-line error when it is not writable.
    pub fn ensure_dir(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| {
            crate::error::UserError::new(format!(
                "cannot create `{}`: {}",
                dir.display(),
                e.to_string().to_lowercase()
            ))
            .with_hint("set `CARGO_KMOD_HOME` to a writable directory")
        })?;
        // create_dir_all succeeds on an existing read-only dir: probe writability.
        tempfile::tempfile_in(dir).map_err(|e| {
            crate::error::UserError::new(format!(
                "`{}` is not writable: {}",
                dir.display(),
                e.to_string().to_lowercase()
            ))
            .with_hint("set `CARGO_KMOD_HOME` to a writable directory")
        })?;
        Ok(())
    }

    /// Every prepared tree (those with a stamp): dev trees first (what `--arch` and the
    /// `--list` readers that look for "the arm64 tree" want), then board and GCC trees; newest
    /// kernel first within each, and of one kernel the most recently prepared first (after
    /// an upgrade of cargo-kmod changed the dev fragments, the tree `init` just built, not
    /// the one before it).
    pub fn list(&self) -> Vec<PreparedTree> {
        let mut out = Vec::new();
        let mut stamped = std::collections::HashMap::new();
        let Ok(entries) = std::fs::read_dir(self.trees_dir()) else {
            return out;
        };
        for e in entries.flatten() {
            let dir = e.path();
            // Trees are `<arch>-<key>`; `<arch>-<key>.seed` is a copy being made.
            if e.file_name().to_string_lossy().contains('.') {
                continue;
            }
            let Ok(text) = std::fs::read_to_string(dir.join(TREE_STAMP)) else {
                continue;
            };
            if let Ok(meta) = serde_json::from_str::<TreeMeta>(&text) {
                let when = std::fs::metadata(dir.join(TREE_STAMP))
                    .and_then(|m| m.modified())
                    .ok();
                stamped.insert(dir.clone(), when);
                out.push(PreparedTree { dir, meta });
            }
        }
        out.sort_by(|a, b| {
            let va = crate::kernel::Version::find(&a.meta.release);
            let vb = crate::kernel::Version::find(&b.meta.release);
            b.meta
                .is_dev_tree()
                .cmp(&a.meta.is_dev_tree())
                .then(vb.cmp(&va))
                .then(a.meta.arch.cmp(&b.meta.arch))
                .then(stamped[&b.dir].cmp(&stamped[&a.dir]))
                .then(a.dir.cmp(&b.dir))
        });
        out
    }

    /// Mark a prepared tree as the one `init` was last asked for (its stamp's mtime): of two
    /// dev trees of one kernel, `--arch` picks the one `init` prepared or confirmed last, not
    /// one an older cargo-kmod (other built-in fragments) left behind.
    pub fn mark_used(dir: &Path) {
        if let Ok(f) = std::fs::File::options()
            .write(true)
            .open(dir.join(TREE_STAMP))
        {
            let _ = f.set_modified(std::time::SystemTime::now());
        }
    }

    pub fn read_meta(dir: &Path) -> Option<TreeMeta> {
        let text = std::fs::read_to_string(dir.join(TREE_STAMP)).ok()?;
        serde_json::from_str(&text).ok()
    }

    pub fn write_meta(dir: &Path, meta: &TreeMeta) -> Result<()> {
        let text = serde_json::to_string_pretty(meta).context("cannot serialize tree metadata")?;
        crate::fsutil::write_atomic(&dir.join(TREE_STAMP), text.as_bytes())
    }
}

/// The cache key of a tree: a hash over every input that changes the result.
pub fn tree_key(inputs: &[(&str, &str)]) -> String {
    // JSON keeps values with newlines from colliding with other splits.
    let text = serde_json::to_string(inputs).expect("strings serialize");
    crate::fsutil::sha256_hex(text.as_bytes())[..16].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_depends_on_every_input_and_order() {
        let base = [
            ("arch", "x86_64"),
            ("rustc", "rustc 1.95.0"),
            ("fragment", "CONFIG_A=y\n"),
        ];
        let k = tree_key(&base);
        assert_eq!(k.len(), 16);
        assert_eq!(k, tree_key(&base));
        for i in 0..base.len() {
            let mut changed = base;
            changed[i].1 = "other";
            assert_ne!(k, tree_key(&changed), "input {i} must change the key");
        }
        // `a=b` + `c=d` must not collide with `a=b\nc` + `d`.
        assert_ne!(
            tree_key(&[("a", "b\nc=d")]),
            tree_key(&[("a", "b"), ("c", "d")])
        );
    }

    #[test]
    fn list_ignores_unstamped_trees() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home {
            root: dir.path().to_path_buf(),
        };
        std::fs::create_dir_all(home.trees_dir().join("x86_64-half")).unwrap();
        let good = home.trees_dir().join("arm64-good");
        std::fs::create_dir_all(&good).unwrap();
        let meta = TreeMeta {
            key: "good".into(),
            arch: Arch::Arm64,
            release: "7.2.13".into(),
            source: "s".into(),
            rustc: "rustc 1.95.0".into(),
            bindgen: "bindgen 0.73.2".into(),
            clang: "clang 19".into(),
            llvm: "-19".into(),
            modversions: true,
            fragments: vec![],
            build_seconds: 1,
            build_lines: 1,
            inputs: String::new(),
            board: None,
            soc: None,
            base_config: None,
            cc: CcKind::Clang,
            cross_compile: None,
            gcc: String::new(),
        };
        Home::write_meta(&good, &meta).unwrap();
        let list = home.list();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].meta, meta);
        assert!(meta.is_dev_tree());
        // A tree with the user's fragments has extra features: not a dev tree, and said so.
        let extra = TreeMeta {
            fragments: vec!["pci.config".into()],
            ..meta.clone()
        };
        assert!(!extra.is_dev_tree());
        assert_eq!(extra.kind_label(), "config pci.config");
        // Of two dev trees of one kernel, the one `init` confirmed last comes first.
        let older = home.trees_dir().join("arm64-older");
        std::fs::create_dir_all(&older).unwrap();
        Home::write_meta(
            &older,
            &TreeMeta {
                key: "older".into(),
                ..meta.clone()
            },
        )
        .unwrap();
        assert_eq!(home.list()[0].dir, older);
        std::thread::sleep(std::time::Duration::from_millis(20));
        Home::mark_used(&good);
        assert_eq!(home.list()[0].dir, good);
    }

    #[test]
    fn stamps_from_before_boards_read_as_dev_trees() {
        let old = r#"{"key":"k","arch":"arm64","release":"7.2.13","source":"s","rustc":"r","bindgen":"b","clang":"c","llvm":"-19","modversions":true,"fragments":[],"build_seconds":1,"build_lines":1}"#;
        let meta: TreeMeta = serde_json::from_str(old).unwrap();
        assert!(meta.is_dev_tree());
        assert_eq!(meta.kind_label(), "dev");
        let board = TreeMeta {
            board: Some("rpi4".into()),
            soc: Some("bcm2835".into()),
            ..meta.clone()
        };
        assert!(!board.is_dev_tree());
        assert_eq!(board.kind_label(), "board rpi4");
        let gcc = TreeMeta {
            cc: CcKind::Gcc,
            base_config: Some("rpi.config".into()),
            ..meta
        };
        assert_eq!(gcc.kind_label(), "base rpi.config, gcc");
        let text = serde_json::to_string(&gcc).unwrap();
        assert!(!text.contains("\"board\""), "{text}");
    }

    #[test]
    fn unwritable_home_is_a_user_error() {
        let home = Home {
            root: PathBuf::from("/proc/cargo-kmod-test"),
        };
        let e = home.ensure_dir(&home.trees_dir()).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("cannot create `/proc/cargo-kmod-test/trees`"),
            "{e}"
        );
    }
}
