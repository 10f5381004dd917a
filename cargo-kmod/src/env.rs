//! The process environment, read once.
//!
//! As cargo does (`util/context/environment.rs`), cargo-kmod takes one snapshot of its
//! environment when it starts and every reader asks the snapshot. `std::env::var` and its
//! friends are refused by clippy (`disallowed-methods` in `clippy.toml`) everywhere else, so
//! a variable cannot be read twice with two meanings, and nothing sets one for a child: a
//! child's environment is given on its own command (`cmd!(..).env(..)`).
//!
//! One rule for every variable: **an empty value counts as unset** (`LLVM=`, `KDIR=` and
//! `CROSS_COMPILE=` included), so `X= cargo kmod ...` behaves like no `X` at all.
//!
//! The variables cargo-kmod reads are listed in the README ("Environment variables") and
//! have an accessor here; [`Env::var`] is for the few read by name (a per-arch qemu).

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::path::PathBuf;
use std::sync::OnceLock;

/// A snapshot of the environment variables.
#[derive(Debug, Clone, Default)]
pub struct Env {
    vars: HashMap<OsString, OsString>,
}

static SNAPSHOT: OnceLock<Env> = OnceLock::new();

impl Env {
    /// The process's environment, read at the first call and never again.
    pub fn get() -> &'static Env {
        SNAPSHOT.get_or_init(|| {
            #[expect(
                clippy::disallowed_methods,
                reason = "the one reader of the process environment"
            )]
            let vars = std::env::vars_os().collect();
            Env { vars }
        })
    }

    /// An environment of these pairs only (tests).
    pub fn from_pairs<K: Into<OsString>, V: Into<OsString>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Env {
        Env {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// `name`'s value when it is set, not empty and valid UTF-8.
    pub fn var(&self, name: &str) -> Option<&str> {
        self.var_os(name).and_then(OsStr::to_str)
    }

    /// `name`'s value when it is set and not empty.
    pub fn var_os(&self, name: &str) -> Option<&OsStr> {
        self.vars
            .get(OsStr::new(name))
            .map(OsString::as_os_str)
            .filter(|v| !v.is_empty())
    }

    /// `name` as a path.
    pub fn path(&self, name: &str) -> Option<PathBuf> {
        self.var_os(name).map(PathBuf::from)
    }

    /// `KDIR`: a built kernel tree.
    pub fn kdir(&self) -> Option<PathBuf> {
        self.path("KDIR")
    }

    /// `LLVM`: kbuild's `LLVM=` value.
    pub fn llvm(&self) -> Option<String> {
        self.var("LLVM").map(str::to_string)
    }

    /// `CROSS_COMPILE`: kbuild's cross prefix for GCC-built trees.
    pub fn cross_compile(&self) -> Option<String> {
        self.var("CROSS_COMPILE").map(str::to_string)
    }

    /// `KBUILD_EXTRA_SYMBOLS`: extra `Module.symvers` files, space-separated.
    pub fn extra_symbols(&self) -> Vec<PathBuf> {
        self.var("KBUILD_EXTRA_SYMBOLS")
            .map(|v| v.split_whitespace().map(PathBuf::from).collect())
            .unwrap_or_default()
    }

    /// `RUSTC`, else `rustc`.
    pub fn rustc(&self) -> String {
        self.var("RUSTC").unwrap_or("rustc").to_string()
    }

    /// `BINDGEN`, else `bindgen`.
    pub fn bindgen(&self) -> String {
        self.var("BINDGEN").unwrap_or("bindgen").to_string()
    }

    /// `CARGO` (the cargo that started us), else `cargo`.
    pub fn cargo(&self) -> String {
        self.var("CARGO").unwrap_or("cargo").to_string()
    }

    /// `HOME`.
    pub fn home_dir(&self) -> Option<PathBuf> {
        self.path("HOME")
    }

    /// `CARGO_HOME`, else `~/.cargo`.
    pub fn cargo_home(&self) -> Option<PathBuf> {
        self.path("CARGO_HOME")
            .or_else(|| self.home_dir().map(|h| h.join(".cargo")))
    }

    /// `RUSTUP_HOME`, else `~/.rustup`.
    pub fn rustup_home(&self) -> Option<PathBuf> {
        self.path("RUSTUP_HOME")
            .or_else(|| self.home_dir().map(|h| h.join(".rustup")))
    }

    /// The directories of `PATH`, in order.
    pub fn path_dirs(&self) -> Vec<PathBuf> {
        self.var_os("PATH")
            .map(|p| std::env::split_paths(p).collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_values_count_as_unset() {
        let env = Env::from_pairs([("LLVM", ""), ("KDIR", "/k"), ("CROSS_COMPILE", "")]);
        assert_eq!(env.llvm(), None);
        assert_eq!(env.cross_compile(), None);
        assert_eq!(env.kdir(), Some(PathBuf::from("/k")));
        assert_eq!(env.rustc(), "rustc");
    }

    #[test]
    fn cargo_home_defaults_under_home() {
        let env = Env::from_pairs([("HOME", "/h")]);
        assert_eq!(env.cargo_home(), Some(PathBuf::from("/h/.cargo")));
        let env = Env::from_pairs([("HOME", "/h"), ("CARGO_HOME", "/c")]);
        assert_eq!(env.cargo_home(), Some(PathBuf::from("/c")));
    }
}
