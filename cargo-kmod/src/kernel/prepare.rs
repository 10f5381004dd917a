//! Preparing a kernel tree (`cargo kmod init`): unpack a kernel source, configure it, check
//! that every requested symbol took effect, build it, and stamp it.
//!
//! The configuration is a base plus fragments merged on top, then `olddefconfig`:
//! - dev trees: tinyconfig + the built-in fragments (`templates/fragments/`) + the user's;
//! - board presets (`--board rpi4`): the same plus the SoC fragment of the board
//!   (`templates/fragments/boards/`);
//! - board configurations (`--base-config FILE|DEFCONFIG`): the board's own `.config`,
//!   `config.gz` or defconfig target + the Rust/modules part of the built-in fragments (see
//!   [`fragments_for`]) + the user's.
//!
//! Trees are built with LLVM (`LLVM=1`/`LLVM=-19`) or, with `--cc gcc`, with GCC
//! (`CROSS_COMPILE=aarch64-linux-gnu-` for arm64 on an x86_64 host).
//!
//! Invariant: a tree counts as prepared only when its stamp (`cargo-kmod-tree.json`) exists,
//! and the stamp is written last, atomically. A failed or interrupted build leaves an
//! unstamped directory that the next run resumes (kbuild is incremental).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use xshell::cmd;

use crate::error::UserError;
use crate::kernel::board::Board;
use crate::kernel::config::{self, Assignment, KConfig, KconfigIndex};
use crate::kernel::home::{tree_key, CcKind, Home, PreparedTree, TreeMeta, TREE_LOG, TREE_STAMP};
use crate::kernel::toolchain::{min_tool_version, Toolchain};
use crate::kernel::Arch;
use crate::kernel::Version;
use crate::shell::Shell;

const COMMON: &str = cargo_kmod_templates::fragments::COMMON;
const X86_64: &str = cargo_kmod_templates::fragments::X86_64;
const ARM64: &str = cargo_kmod_templates::fragments::ARM64;
const MODVERSIONS: &str = cargo_kmod_templates::fragments::MODVERSIONS;
const DEBUG: &str = cargo_kmod_templates::fragments::DEBUG;

/// The name under which `init --sanitize` adds the KASAN fragment to a dev request: the
/// sanitizer tree is the dev tree with this one extra fragment ([`sanitize_fragment`]).
pub const SANITIZE_FRAGMENT: &str = "cargo-kmod:kasan.config";

/// `(name, contents)` of the sanitizer tree's fragment, as a user fragment.
pub fn sanitize_fragment() -> (String, String) {
    (
        SANITIZE_FRAGMENT.to_string(),
        cargo_kmod_templates::fragments::KASAN.to_string(),
    )
}

/// How a feature tree's fragment is named: the prefix, then the symbols it adds
/// (`cargo-kmod:features PCI=y DEBUG_FS=y`). A feature tree is the dev tree plus the union of
/// the `kernel-config` the packages ask for ([`features_fragment`]); one per distinct set.
pub const FEATURES_PREFIX: &str = "cargo-kmod:features ";

/// What the arch's `qemu` machine needs besides a symbol: arm64 `virt` reaches its PCIe
/// devices through the generic ECAM host bridge.
fn arch_companions(
    arch: Arch,
    symbol: &str,
    value: &str,
) -> &'static [(&'static str, &'static str)] {
    match (arch, symbol, value) {
        (Arch::Arm64, "PCI", "y" | "m") => &[("PCI_HOST_GENERIC", "y")],
        _ => &[],
    }
}

/// `(name, contents)` of the fragment of the feature tree for `needs` on `arch`: the needs,
/// sorted, plus what the arch's machine needs with them ([`arch_companions`]). The same set
/// of symbols and values is the same fragment, whoever asks and in whatever order.
pub fn features_fragment(
    arch: Arch,
    needs: &std::collections::BTreeMap<String, String>,
) -> (String, String) {
    let mut all = needs.clone();
    for (k, v) in needs {
        for (ck, cv) in arch_companions(arch, k, v) {
            all.entry(ck.to_string()).or_insert_with(|| cv.to_string());
        }
    }
    let mut text = String::from("# cargo-kmod: the kernel-config the packages need\n");
    let mut names = Vec::new();
    for (k, v) in &all {
        match v.as_str() {
            "n" => text.push_str(&format!("# CONFIG_{k} is not set\n")),
            "y" | "m" => text.push_str(&format!("CONFIG_{k}={v}\n")),
            _ if v.parse::<i64>().is_ok() || v.starts_with("0x") => {
                text.push_str(&format!("CONFIG_{k}={v}\n"))
            }
            _ => text.push_str(&format!("CONFIG_{k}=\"{}\"\n", v.replace(['"', '\\'], ""))),
        }
        names.push(format!("{k}={v}"));
    }
    (format!("{FEATURES_PREFIX}{}", names.join(" ")), text)
}

/// A kernel source: a tarball or an unpacked tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Tarball(PathBuf),
    Dir(PathBuf),
}

impl Source {
    /// Classify a `--source` path, with one-line errors for what cannot be a kernel source.
    pub fn from_path(path: &Path) -> Result<Source> {
        let meta = std::fs::metadata(path).map_err(|_| {
            UserError::new(format!("kernel source `{}` does not exist", path.display()))
                .with_hint("pass a `linux-*.tar.xz` or an unpacked kernel tree to `--source`")
        })?;
        let path = std::fs::canonicalize(path)
            .with_context(|| format!("cannot resolve `{}`", path.display()))?;
        if meta.is_dir() {
            if !(path.join("Makefile").is_file()
                && path.join("Kconfig").is_file()
                && path.join("scripts").is_dir())
            {
                crate::bail_user!(
                    "`{}` is not a kernel source tree: no top-level `Makefile`, `Kconfig` and `scripts/`",
                    path.display()
                );
            }
            return Ok(Source::Dir(path));
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if [".tar.xz", ".tar.gz", ".tgz", ".tar.zst", ".tar.bz2", ".tar"]
            .iter()
            .any(|e| name.ends_with(e))
        {
            Ok(Source::Tarball(path))
        } else {
            crate::bail_user!(
                "`{}` is neither a kernel source tarball nor a directory", path.display();
                hint = "pass a `.tar.xz` or `.tar.gz` kernel tarball, or an unpacked tree"
            )
        }
    }

    /// Debian's `linux-source-*.tar.*` tarballs in `dir`, with their versions, oldest first.
    fn tarballs_in(dir: &Path) -> Vec<(Version, PathBuf)> {
        let mut found: Vec<(Version, PathBuf)> = std::fs::read_dir(dir)
            .map(|it| {
                it.flatten()
                    .map(|e| e.path())
                    .filter(|p| {
                        p.file_name().is_some_and(|n| {
                            let n = n.to_string_lossy();
                            n.starts_with("linux-source-") && n.contains(".tar")
                        })
                    })
                    .filter_map(|p| {
                        let n = p.file_name()?.to_string_lossy().into_owned();
                        Some((Version::find(n.trim_start_matches("linux-source-"))?, p))
                    })
                    .collect()
            })
            .unwrap_or_default();
        found.sort();
        found
    }

    /// `dir/linux-source-<kernel>.tar.*` (Debian's `linux-source-<kernel>` package), when there.
    pub fn tarball_of(dir: &Path, kernel: &str) -> Option<PathBuf> {
        let want = format!("linux-source-{kernel}.tar");
        Self::tarballs_in(dir)
            .into_iter()
            .map(|(_, p)| p)
            .find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&want))
            })
    }

    /// The newest `/usr/src/linux-source-*.tar.*` (Debian's `linux-source-X.Y` package).
    pub fn default_in(dir: &Path) -> Result<Source> {
        let mut found = Self::tarballs_in(dir);
        match found.pop() {
            Some((_, p)) => Source::from_path(&p),
            None => crate::bail_user!(
                "no kernel source found: no `{}/linux-source-*.tar.*`", dir.display();
                hint = "install Debian's `linux-source-7.2` package (or run `cargo xtask setup`), or pass `--source PATH`"
            ),
        }
    }

    pub fn path(&self) -> &Path {
        match self {
            Source::Tarball(p) | Source::Dir(p) => p,
        }
    }

    /// Whether this is the source `init` picks without `--source`.
    pub fn is_default(&self) -> bool {
        Source::default_in(Path::new("/usr/src")).is_ok_and(|d| &d == self)
    }

    /// What identifies the source in the cache key without reading it all: path, size and
    /// mtime for a tarball; path and the Makefile's version for a tree.
    fn identity(&self) -> Result<String> {
        let p = self.path();
        let meta =
            std::fs::metadata(p).with_context(|| format!("cannot read `{}`", p.display()))?;
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_secs())
            .unwrap_or(0);
        Ok(match self {
            Source::Tarball(_) => format!("tarball:{}:{}:{}", p.display(), meta.len(), mtime),
            Source::Dir(_) => {
                let v = makefile_version(p)
                    .map(|v| v.to_string())
                    .unwrap_or_default();
                format!("dir:{}:{}", p.display(), v)
            }
        })
    }
}

/// `VERSION.PATCHLEVEL.SUBLEVEL` from a source tree's top Makefile.
pub fn makefile_version(srctree: &Path) -> Option<Version> {
    let text = std::fs::read_to_string(srctree.join("Makefile")).ok()?;
    let get = |key: &str| -> Option<u32> {
        text.lines()
            .find_map(|l| l.strip_prefix(key).and_then(|r| r.trim().strip_prefix('=')))
            .and_then(|v| v.trim().parse().ok())
    };
    Some(Version(
        get("VERSION")?,
        get("PATCHLEVEL")?,
        get("SUBLEVEL").unwrap_or(0),
    ))
}

/// The configuration a tree starts from, before the fragments are merged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BaseConfig {
    /// `make tinyconfig` (dev trees and board presets).
    Tiny,
    /// A board's `.config` or `config.gz` (`/proc/config.gz`), already decompressed.
    File { origin: String, text: String },
    /// A defconfig target of the source tree (`defconfig`, `bcm2711_defconfig`).
    Defconfig(String),
}

impl BaseConfig {
    /// `--base-config ARG`: an existing file (gzip is recognised by its magic), else the name
    /// of a defconfig target of the source tree.
    pub fn from_arg(arg: &str) -> Result<BaseConfig> {
        let path = Path::new(arg);
        if path.is_file() {
            let raw = std::fs::read(path).map_err(|e| {
                UserError::new(format!(
                    "cannot read base config `{}`: {}",
                    path.display(),
                    crate::fsutil::io_reason(&e)
                ))
            })?;
            let bytes = if raw.starts_with(&[0x1f, 0x8b]) {
                let mut out = Vec::new();
                std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&raw[..]), &mut out)
                    .map_err(|_| {
                    UserError::new(format!(
                        "base config `{}` is not a valid gzip file",
                        path.display()
                    ))
                })?;
                out
            } else {
                raw
            };
            let Ok(text) = String::from_utf8(bytes) else {
                crate::bail_user!(
                    "base config `{}` is not a kernel `.config`: it is not text", path.display();
                    hint = "pass a `.config`, a `config.gz` (e.g. a copy of a board's `/proc/config.gz`), or a defconfig name"
                );
            };
            // A `.config` is assignments and comments; refuse anything else line by line.
            config::parse_fragment(&text, &path.display().to_string())?;
            if !text.lines().any(|l| l.trim_start().starts_with("CONFIG_")) {
                crate::bail_user!(
                    "base config `{}` sets no `CONFIG_` symbol", path.display();
                    hint = "pass a `.config`, a `config.gz`, or a defconfig name"
                );
            }
            return Ok(BaseConfig::File {
                origin: path.display().to_string(),
                text,
            });
        }
        let is_name = !arg.is_empty()
            && arg
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
            && (arg.ends_with("defconfig") || arg.ends_with(".config"));
        if is_name && !arg.ends_with(".config") {
            return Ok(BaseConfig::Defconfig(arg.to_string()));
        }
        crate::bail_user!(
            "base config `{}` does not exist", arg;
            hint = "pass a `.config` or `config.gz` file, or a defconfig target of the source such as `defconfig`"
        )
    }

    /// What identifies the base in the cache key (its text, not where it was read from).
    fn key(&self) -> String {
        match self {
            BaseConfig::Tiny => "tinyconfig".into(),
            BaseConfig::File { text, .. } => {
                format!("file:{}", crate::fsutil::sha256_hex(text.as_bytes()))
            }
            BaseConfig::Defconfig(name) => format!("defconfig:{name}"),
        }
    }

    /// How the tree's stamp and `--list` name it.
    pub fn describe(&self) -> Option<String> {
        match self {
            BaseConfig::Tiny => None,
            BaseConfig::File { origin, .. } => Some(origin.clone()),
            BaseConfig::Defconfig(name) => Some(name.clone()),
        }
    }

    /// The arch a base config file was made for (`CONFIG_ARM64=y`/`CONFIG_X86_64=y`).
    pub fn arch(&self) -> Option<Arch> {
        match self {
            BaseConfig::File { text, .. } => Arch::from_config(&KConfig::parse(text)),
            _ => None,
        }
    }
}

/// The compiler a tree is built with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cc {
    /// LLVM (`LLVM=1` or `LLVM=-N`): the dev trees' compiler.
    Clang,
    /// GCC, with its `CROSS_COMPILE` prefix (empty for the host's own gcc).
    Gcc { cross_compile: String },
}

impl Cc {
    /// `--cc gcc|clang` for `arch`; GCC's prefix is `CROSS_COMPILE` when set (kbuild's
    /// meaning), else Debian's cross compiler for a foreign arch.
    pub fn parse(name: &str, arch: Arch, cross_compile: Option<&str>) -> Result<Cc> {
        match name {
            "clang" | "llvm" => Ok(Cc::Clang),
            "gcc" => Ok(Cc::Gcc {
                cross_compile: match cross_compile {
                    Some(p) => p.to_string(),
                    None if arch != Arch::host() => arch.gnu_prefix().to_string(),
                    None => String::new(),
                },
            }),
            other => crate::bail_user!(
                "unknown compiler `{}`", other;
                hint = "`--cc` takes `clang` (LLVM, the default) or `gcc`"
            ),
        }
    }

    pub fn kind(&self) -> CcKind {
        match self {
            Cc::Clang => CcKind::Clang,
            Cc::Gcc { .. } => CcKind::Gcc,
        }
    }

    /// The gcc program (`aarch64-linux-gnu-gcc`).
    pub fn gcc(&self) -> Option<String> {
        match self {
            Cc::Gcc { cross_compile } => Some(format!("{cross_compile}gcc")),
            Cc::Clang => None,
        }
    }
}

/// What `cargo kmod init` was asked for.
#[derive(Debug, Clone)]
pub struct Request {
    pub source: Source,
    pub arch: Arch,
    /// User fragments: (file name, contents).
    pub fragments: Vec<(String, String)>,
    pub jobs: usize,
    pub base: BaseConfig,
    /// A board preset (its SoC fragment is merged after the dev fragments).
    pub board: Option<&'static Board>,
    pub cc: Cc,
}

impl Request {
    /// A dev tree request: tinyconfig, LLVM, no board.
    pub fn dev(
        source: Source,
        arch: Arch,
        fragments: Vec<(String, String)>,
        jobs: usize,
    ) -> Request {
        Request {
            source,
            arch,
            fragments,
            jobs,
            base: BaseConfig::Tiny,
            board: None,
            cc: Cc::Clang,
        }
    }

    /// What names the tree in messages: `arm64`, `arm64 (rpi4)`, `arm64 (bcm2711_defconfig, gcc)`.
    pub fn label(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        if let Some(b) = self.board {
            parts.push(b.name.to_string());
        }
        if self.base != BaseConfig::Tiny {
            parts.push("board config".into());
        }
        if matches!(self.cc, Cc::Gcc { .. }) {
            parts.push("gcc".into());
        }
        if let [(name, _)] = self.fragments.as_slice() {
            if let Some(f) = name.strip_prefix(FEATURES_PREFIX) {
                parts.push(format!("features {}", crate::text::escape(f)));
            } else if name == SANITIZE_FRAGMENT {
                parts.push("sanitize: KASAN".into());
            }
        }
        if parts.is_empty() {
            self.arch.to_string()
        } else {
            format!("{} ({})", self.arch, parts.join(", "))
        }
    }

    /// The `init` command line that prepares this tree (for hints).
    pub fn init_command(&self) -> String {
        let mut c = String::from("cargo kmod init");
        if let Some(b) = self.board {
            c.push_str(&format!(" --board {}", b.name));
        } else {
            c.push_str(&format!(" --arch {}", self.arch));
        }
        match &self.base {
            BaseConfig::Tiny => {}
            BaseConfig::File { origin, .. } => c.push_str(&format!(" --base-config {origin}")),
            BaseConfig::Defconfig(n) => c.push_str(&format!(" --base-config {n}")),
        }
        if matches!(self.cc, Cc::Gcc { .. }) {
            c.push_str(" --cc gcc");
        }
        if !self.source.is_default() {
            c.push_str(&format!(" --source {}", self.source.path().display()));
        }
        for (name, _) in &self.fragments {
            if name == SANITIZE_FRAGMENT {
                c.push_str(" --sanitize");
            } else if !name.starts_with(FEATURES_PREFIX) {
                // A feature tree is what plain `init` prepares in the package.
                c.push_str(&format!(" --config {name}"));
            }
        }
        c
    }
}

/// The dev fragments a board's own configuration does not get: module signing and its
/// digest stay the board's choice (a vendor's SHA-512 or unsigned modules stand).
const NOT_FOR_BASE_CONFIGS: &[&str] = &["MODULE_SIG", "MODULE_SIG_SHA256"];

/// The fragments for a tree, in merge order: built-in ones, the board's SoC fragment, then
/// the user's.
///
/// On tinyconfig (dev trees, board presets) every built-in fragment applies. On a board's own
/// configuration (`base` is its resolved `.config`) only what Rust modules and cargo-kmod's
/// tests need is merged: `common.config` (Rust, modules with unload, KUnit, and the harmless
/// guest bits: console, initrd, devtmpfs) without module signing; the arch fragment (qemu
/// `virt`/`pc` devices, networking choices) is left out; modversions are made Rust-capable
/// (gendwarfksyms) only when the board has them on, keeping its DWARF version.
pub fn fragments_for(
    arch: Arch,
    modversions: bool,
    base: Option<&KConfig>,
    board: Option<&Board>,
    user: &[(String, String)],
) -> Result<Vec<Assignment>> {
    let mut out = config::parse_fragment(COMMON, "templates/fragments/common.config")?;
    match base {
        None => {
            let (text, name) = match arch {
                Arch::X86_64 => (X86_64, "templates/fragments/x86_64.config"),
                Arch::Arm64 => (ARM64, "templates/fragments/arm64.config"),
            };
            out.extend(config::parse_fragment(text, name)?);
            if modversions {
                out.extend(config::parse_fragment(
                    MODVERSIONS,
                    "templates/fragments/modversions.config",
                )?);
            }
            if board.is_none() {
                out.extend(config::parse_fragment(
                    DEBUG,
                    "templates/fragments/debug.config",
                )?);
            }
        }
        Some(base) => {
            out.retain(|a| !NOT_FOR_BASE_CONFIGS.contains(&a.symbol.as_str()));
            if modversions && base.is_enabled("MODVERSIONS") {
                let keep_dwarf = base.is_enabled("DEBUG_INFO");
                if !keep_dwarf {
                    // DWARF for gendwarfksyms; its choice sits behind `DEBUG_KERNEL`.
                    out.extend(config::parse_fragment(
                        "CONFIG_DEBUG_KERNEL=y\n",
                        "cargo-kmod (debug info for gendwarfksyms)",
                    )?);
                }
                out.extend(
                    config::parse_fragment(MODVERSIONS, "templates/fragments/modversions.config")?
                        .into_iter()
                        .filter(|a| !(keep_dwarf && a.symbol.starts_with("DEBUG_INFO_DWARF"))),
                );
            }
        }
    }
    if let Some(b) = board {
        out.extend(config::parse_fragment(b.fragment, &b.fragment_origin())?);
    }
    for (name, text) in user {
        out.extend(config::parse_fragment(text, name)?);
    }
    Ok(out)
}

/// What a tree is made from, without the tool versions: the part of the cache key a named
/// target can compute without running anything. Dev trees keep the key they always had.
fn inputs_for(req: &Request) -> Result<Vec<(&'static str, String)>> {
    // A fragment is its contents: `./f.config` and `f.config` (or a copy elsewhere) are one
    // tree.
    let user: String = req
        .fragments
        .iter()
        .map(|(_, t)| format!("{t}\n"))
        .collect();
    let mut v = vec![
        ("source", req.source.identity()?),
        ("arch", req.arch.name().to_string()),
        (
            "builtin-fragments",
            format!("{COMMON}{X86_64}{ARM64}{MODVERSIONS}"),
        ),
        ("user-fragments", user),
    ];
    if let Some(b) = req.board {
        v.push(("board-fragment", format!("{}\n{}", b.soc, b.fragment)));
    }
    if req.board.is_none() && req.base == BaseConfig::Tiny {
        v.push(("debug-fragment", DEBUG.to_string()));
    }
    if req.base != BaseConfig::Tiny {
        v.push(("base-config", req.base.key()));
    }
    if let Cc::Gcc { cross_compile } = &req.cc {
        v.push(("cc", format!("gcc:{cross_compile}")));
    }
    Ok(v)
}

/// The key of a request's inputs (see [`inputs_for`]); recorded in the stamp.
pub fn inputs_key(req: &Request) -> Result<String> {
    let v = inputs_for(req)?;
    let pairs: Vec<(&str, &str)> = v.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Ok(tree_key(&pairs))
}

/// The cache key of a request with this toolchain.
fn key_for(req: &Request, tc: &Toolchain, gcc: Option<&str>) -> Result<String> {
    let mut v = inputs_for(req)?;
    v.push(("rustc", tc.rustc.clone().unwrap_or_default()));
    v.push(("bindgen", tc.bindgen.clone().unwrap_or_default()));
    v.push(("clang", tc.clang.clone().unwrap_or_default()));
    v.push((
        "llvm",
        tc.llvm
            .as_ref()
            .map(|l| l.make_value.clone())
            .unwrap_or_default(),
    ));
    if let Some(g) = gcc {
        v.push(("gcc", g.to_string()));
    }
    let pairs: Vec<(&str, &str)> = v.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Ok(tree_key(&pairs))
}

/// Refuse early, with the fix, when a tool the build needs is missing. Returns the GCC's
/// `--version` line for GCC trees.
pub fn check_toolchain(tc: &Toolchain, cc: &Cc) -> Result<Option<String>> {
    let Some(rustc) = &tc.rustc else {
        crate::bail_user!("`rustc` was not found"; hint = "install Rust with rustup");
    };
    if tc.rust_src.is_none() {
        let v = tc
            .rustc_version()
            .map(|v| v.to_string())
            .unwrap_or_default();
        crate::bail_user!(
            "no rust-src for `{}`: the kernel needs the Rust standard library sources of exactly this rustc", rustc;
            hint = "run `cargo xtask setup` (installs Debian's `rust-src={}`), or set `RUST_LIB_SRC` to its `library` directory", v
        );
    }
    if tc.bindgen.is_none() {
        crate::bail_user!(
            "`bindgen` was not found";
            hint = "run `cargo install bindgen-cli --locked` (with `LIBCLANG_PATH=/usr/lib/llvm-19/lib`)"
        );
    }
    match cc {
        Cc::Clang => {
            if tc.llvm.is_none() {
                crate::bail_user!(
                    "no clang/ld.lld pair found (looked for `clang` and `clang-N` with `ld.lld-N` on `PATH`)";
                    hint = "install `clang-19 lld-19 llvm-19 libclang-19-dev`, or set `LLVM=-N`"
                );
            }
            Ok(None)
        }
        Cc::Gcc { cross_compile } => {
            if tc.libclang.is_none() {
                crate::bail_user!(
                    "no libclang found: bindgen needs it for the kernel's Rust bindings, also in GCC-built trees";
                    hint = "install `libclang-19-dev`, or set `LIBCLANG_PATH`"
                );
            }
            let gcc = cc.gcc().expect("gcc");
            let sh = xshell::Shell::new()?;
            match crate::process::version_line(&sh, &gcc, &["--version"]) {
                Some(v) => Ok(Some(v)),
                None => {
                    let pkg = if cross_compile.is_empty() {
                        "gcc".to_string()
                    } else {
                        format!("gcc-{}", cross_compile.trim_end_matches('-'))
                    };
                    crate::bail_user!(
                        "`{}` was not found", gcc;
                        hint = "install Debian's `{}` (`cargo xtask setup` does), or set `CROSS_COMPILE` to your cross compiler's prefix", pkg
                    )
                }
            }
        }
    }
}

fn check_bindgen_minimum(tc: &Toolchain, srctree: &Path) -> Result<()> {
    if let (Some(min), Some(have)) = (min_tool_version(srctree, "bindgen"), tc.bindgen_version()) {
        if have < min {
            crate::bail_user!(
                "bindgen {} is too old: this kernel needs at least {}", have, min;
                hint = "run `cargo install bindgen-cli --locked`"
            );
        }
    }
    Ok(())
}

/// The name `req`'s tree has (or will have) under `trees/`: `<arch>-<key>` over its inputs and
/// this toolchain's versions, what `init --print-key` prints for a CI cache key.
pub fn tree_name(tc: &Toolchain, req: &Request) -> Result<String> {
    let gcc_version = check_toolchain(tc, &req.cc)?;
    Ok(format!(
        "{}-{}",
        req.arch,
        key_for(req, tc, gcc_version.as_deref())?
    ))
}

/// Prepare (or find) the tree for `req`. Returns the tree and whether it was already fresh.
pub fn prepare(
    shell: &Shell,
    home: &Home,
    tc: &Toolchain,
    req: &Request,
) -> Result<(PreparedTree, bool)> {
    let trees = home.trees_dir();
    home.ensure_dir(&trees)?;
    let gcc_version = check_toolchain(tc, &req.cc)?;
    let key = key_for(req, tc, gcc_version.as_deref())?;
    let dir = trees.join(format!("{}-{}", req.arch, key));
    if let Some(meta) = Home::read_meta(&dir) {
        Home::mark_used(&dir);
        return Ok((PreparedTree { dir, meta }, true));
    }
    // One preparation of a given tree at a time; a second `init` waits for the first.
    let lock = lock_file(
        shell,
        &trees.join(format!("{}-{}.lock", req.arch, key)),
        "another `cargo kmod init` of this tree",
    )?;
    if let Some(meta) = Home::read_meta(&dir) {
        return Ok((PreparedTree { dir, meta }, true));
    }

    let srctree = source_tree(shell, home, req)?;
    let version = makefile_version(&srctree);
    check_source(shell, tc, req, &srctree, version)?;
    let index = KconfigIndex::scan(&srctree)?;
    let modversions = index.contains("GENDWARFKSYMS");
    if !modversions {
        shell.note(format_args!(
            "linux {} has no `GENDWARFKSYMS`: Rust excludes `MODVERSIONS` there, so this tree is built without modversions",
            version.map(|v| v.to_string()).unwrap_or_default()
        ));
    }
    check_symbols_known(req, modversions, &index)?;

    let fresh_dir = !dir.exists();
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create `{}`", dir.display()))?;
    if fresh_dir {
        if let Some(seed) = seed_tree(home, tc, req, gcc_version.as_deref())? {
            seed_from(shell, &seed, &dir, &req.label(), None)?;
        } else if let Some((seed, seed_src)) = seed_for_copy(home, tc, req, &srctree) {
            seed_from(
                shell,
                &seed,
                &dir,
                &req.label(),
                Some((&seed_src, &srctree)),
            )?;
        }
    }
    let make = Make::new(tc, req, &srctree, &dir)?;
    let release_name = version
        .map(|v| v.to_string())
        .unwrap_or_else(|| "kernel".into());
    let (wanted, resolved) = configure(shell, &make, req, &dir, &release_name, modversions)?;
    if let Err(e) = check_config(shell, &make, &wanted, &resolved, &index) {
        // Nothing was built: leave no half-configured tree behind (the log goes with it,
        // the error says what it would have said).
        let _ = std::fs::remove_dir_all(&dir);
        drop(lock);
        return Err(e.into());
    }

    let run = build(shell, home, &make, req, &release_name)?;
    let tree = crate::kernel::KernelTree::open(&dir)?;
    check_outputs(req, &dir)?;
    let meta = tree_meta(req, tc, key, &tree, make.llvm, gcc_version, run)?;
    Home::write_meta(&dir, &meta)?;
    drop(lock);
    Ok((PreparedTree { dir, meta }, false))
}

/// The prepared dev tree a tree of the dev tree plus fragments (a feature or sanitizer tree)
/// starts from: the same source, arch and toolchain without the fragments. `None` for other
/// trees, or when that dev tree is not prepared.
fn seed_tree(
    home: &Home,
    tc: &Toolchain,
    req: &Request,
    gcc: Option<&str>,
) -> Result<Option<PathBuf>> {
    if req.fragments.is_empty()
        || req.board.is_some()
        || req.base != BaseConfig::Tiny
        || !matches!(req.cc, Cc::Clang)
    {
        return Ok(None);
    }
    let dev = Request {
        fragments: Vec::new(),
        ..req.clone()
    };
    let dir = home
        .trees_dir()
        .join(format!("{}-{}", dev.arch, key_for(&dev, tc, gcc)?));
    Ok(Home::read_meta(&dir).map(|_| dir))
}

/// For a source directory that is a copy of a prepared dev tree's source with edits made
/// since that tree was built (a tree `cargo kmod export` wrote into, copied with its
/// times): that dev tree and its source. Made with the same toolchain, arch and base, it
/// holds every object the copy's build would compile from unchanged files, and make's own
/// comparison of times rebuilds what the edits touch. Every file of the dev tree's source
/// must be in the copy with its size and time, or be newer than the end of the dev tree's
/// build (its log's time); every
/// file only in the copy must be newer than the stamp too.
fn seed_for_copy(
    home: &Home,
    tc: &Toolchain,
    req: &Request,
    srctree: &Path,
) -> Option<(PathBuf, PathBuf)> {
    if !matches!(req.source, Source::Dir(_))
        || req.board.is_some()
        || req.base != BaseConfig::Tiny
        || !matches!(req.cc, Cc::Clang)
    {
        return None;
    }
    let version = makefile_version(srctree)?.to_string();
    let real = srctree.canonicalize().ok()?;
    home.list().into_iter().find_map(|t| {
        let m = &t.meta;
        let same_tools = m.rustc == tc.rustc.clone().unwrap_or_default()
            && m.bindgen == tc.bindgen.clone().unwrap_or_default()
            && m.clang == tc.clang.clone().unwrap_or_default();
        if !m.is_dev_tree() || m.arch != req.arch || m.release != version || !same_tools {
            return None;
        }
        let seed_src = t.dir.join("source").canonicalize().ok()?;
        if seed_src == real {
            return None;
        }
        // When the build ended: its log's last write (the stamp's time is its last use).
        let built = std::fs::metadata(t.dir.join(TREE_LOG))
            .and_then(|m| m.modified())
            .ok()?;
        is_copy_edited_after(&seed_src, &real, built).then(|| (t.dir.clone(), seed_src))
    })
}

/// Whether `copy` holds every file of `original` with its size and time, or newer than
/// `after`, and nothing else older than `after`.
fn is_copy_edited_after(original: &Path, copy: &Path, after: std::time::SystemTime) -> bool {
    let stamp = |m: &std::fs::Metadata| (m.len(), m.modified().ok());
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(original.join(&rel)) else {
            return false;
        };
        for e in entries.flatten() {
            let r = rel.join(e.file_name());
            let Ok(a) = e.path().symlink_metadata() else {
                return false;
            };
            let Ok(b) = copy.join(&r).symlink_metadata() else {
                return false;
            };
            if a.is_dir() {
                if !b.is_dir() {
                    return false;
                }
                stack.push(r);
            } else if stamp(&a) != stamp(&b) && b.modified().map_or(true, |t| t <= after) {
                return false;
            }
        }
    }
    // Files only in the copy.
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(copy.join(&rel)) else {
            return false;
        };
        for e in entries.flatten() {
            let r = rel.join(e.file_name());
            let Ok(b) = e.path().symlink_metadata() else {
                return false;
            };
            let in_original = original.join(&r).symlink_metadata().is_ok();
            if b.is_dir() {
                stack.push(r);
            } else if !in_original && b.modified().map_or(true, |t| t <= after) {
                return false;
            }
        }
    }
    true
}

/// Start `dir` as a copy of the prepared tree `seed` (its objects, `.config` and generated
/// files; not its stamp or log): kbuild's per-symbol dependencies (fixdep) then rebuild only
/// what the extra configuration changes, as a developer's `make` after a config edit does.
/// An `O=` tree holds relative object paths and the source's absolute ones, so the copy
/// builds in its new place.
fn seed_from(
    shell: &Shell,
    seed: &Path,
    dir: &Path,
    label: &str,
    source: Option<(&Path, &Path)>,
) -> Result<()> {
    shell.status(
        "Seeding",
        format_args!(
            "the {label} tree from the dev tree `{}` (only what its extra configuration changes is rebuilt)",
            seed.display()
        ),
    );
    // Copied beside it and renamed into place: a copy cut short (truncated objects with
    // fresh times would look built) never becomes the tree.
    let staging = dir.with_extension("seed");
    if staging.exists() {
        std::fs::remove_dir_all(&staging)
            .with_context(|| format!("cannot remove `{}`", staging.display()))?;
    }
    let sh = xshell::Shell::new()?;
    crate::process::run(shell, cmd!(sh, "cp -a --reflink=auto {seed} {staging}"))
        .with_context(|| format!("cannot copy `{}`", seed.display()))?;
    for f in [TREE_STAMP, TREE_LOG] {
        let _ = std::fs::remove_file(staging.join(f));
    }
    // kbuild (and tools/ such as objtool) record command lines and dependencies with the
    // tree's absolute path: rewritten to the new place, the commands compare equal and
    // nothing is rebuilt for the move alone.
    rewrite_paths(
        &staging,
        &seed.display().to_string(),
        &dir.display().to_string(),
    )?;
    // A seed from another source (a copy of it with edits): the source's paths too, and
    // the `source` link kbuild made in the tree.
    if let Some((from, to)) = source {
        rewrite_paths(
            &staging,
            &from.display().to_string(),
            &to.display().to_string(),
        )?;
        let link = staging.join("source");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(to, &link)
            .with_context(|| format!("cannot link `{}`", link.display()))?;
    }
    std::fs::remove_dir(dir).with_context(|| format!("cannot replace `{}`", dir.display()))?;
    std::fs::rename(&staging, dir).with_context(|| {
        format!(
            "cannot rename `{}` to `{}`",
            staging.display(),
            dir.display()
        )
    })?;
    Ok(())
}

/// In every `.cmd` and `.d` file below `root`, replace `from` with `to`, keeping the files'
/// modification times (make compares those of the objects, never of these records).
fn rewrite_paths(root: &Path, from: &str, to: &str) -> Result<()> {
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries =
            std::fs::read_dir(&d).with_context(|| format!("cannot read `{}`", d.display()))?;
        for e in entries.flatten() {
            let path = e.path();
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                stack.push(path);
                continue;
            }
            let name = e.file_name();
            let name = name.to_string_lossy();
            if !ft.is_file() || !(name.ends_with(".cmd") || name.ends_with(".d")) {
                continue;
            }
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            if !text.contains(from) {
                continue;
            }
            let mtime = e.metadata().and_then(|m| m.modified()).ok();
            std::fs::write(&path, text.replace(from, to))
                .with_context(|| format!("cannot write `{}`", path.display()))?;
            if let Some(t) = mtime {
                let _ = std::fs::File::options()
                    .write(true)
                    .open(&path)
                    .and_then(|f| f.set_modified(t));
            }
        }
    }
    Ok(())
}

/// The source tree to build: a clean unpacked tree as it is, a tarball unpacked once.
fn source_tree(shell: &Shell, home: &Home, req: &Request) -> Result<PathBuf> {
    Ok(match &req.source {
        Source::Dir(p) => {
            if p.join(".config").exists() || p.join("include/config").exists() {
                crate::bail_user!(
                    "kernel source `{}` is not clean (it has a `.config`): kbuild cannot build it out of tree", p.display();
                    hint = "run `make mrproper` in it, or pass the tarball"
                );
            }
            p.clone()
        }
        Source::Tarball(t) => unpack(shell, home, t, &req.source.identity()?)?,
    })
}

/// Refuse (or warn about) a source the request cannot build: too new for this bindgen, a
/// GCC tree before 7.0, a defconfig the source does not have.
fn check_source(
    shell: &Shell,
    tc: &Toolchain,
    req: &Request,
    srctree: &Path,
    version: Option<Version>,
) -> Result<()> {
    check_bindgen_minimum(tc, srctree)?;
    if let (Cc::Gcc { .. }, Some(v)) = (&req.cc, version) {
        if v < Version(7, 0, 0) {
            shell.warn(format_args!(
                "linux {v} predates Rust support for GCC-built kernels: its documentation calls GCC builds of Rust \"very experimental\", and cargo-kmod supports them from 7.0 on"
            ));
        }
    }
    if let BaseConfig::Defconfig(name) = &req.base {
        check_defconfig(srctree, req.arch, name)?;
    }
    Ok(())
}

/// Misspelled symbols fail before anything is configured or built: check the widest set of
/// fragments (a base config only narrows it) against the source's Kconfig.
fn check_symbols_known(req: &Request, modversions: bool, index: &KconfigIndex) -> Result<()> {
    let widest = fragments_for(req.arch, modversions, None, req.board, &req.fragments)?;
    let unknown: Vec<String> = widest
        .iter()
        .filter(|a| !index.contains(&a.symbol))
        .map(|a| {
            config::explain(
                &config::Unmet {
                    wanted: a.clone(),
                    got: None,
                },
                index,
                &KConfig::default(),
            )
        })
        .collect();
    if let Some(first) = unknown.first() {
        let mut e = UserError::new(first.clone());
        if unknown.len() > 1 {
            e = e.with_hint(format!("also: {}", unknown[1..].join("; ")));
        }
        return Err(e.into());
    }
    Ok(())
}

/// `make` in one tree's output directory: a shell with the toolchain's environment, the
/// arguments every step shares (`-C`, `O=`, `ARCH=`, the compiler) and the build log.
struct Make {
    sh: xshell::Shell,
    args: Vec<String>,
    log: PathBuf,
    /// The `LLVM=` value (empty for GCC trees), for the stamp.
    llvm: String,
}

impl Make {
    /// The `make` for building `srctree` into `dir` as `req` asks; starts a fresh log.
    fn new(tc: &Toolchain, req: &Request, srctree: &Path, dir: &Path) -> Result<Make> {
        let log = dir.join(TREE_LOG);
        let _ = std::fs::remove_file(&log);
        let sh = xshell::Shell::new()?;
        for (k, v) in tc.kbuild_env() {
            sh.set_var(k, v);
        }
        let (compiler_arg, llvm) = match &req.cc {
            Cc::Clang => {
                let llvm = tc.llvm.as_ref().expect("checked").make_value.clone();
                (Some(format!("LLVM={llvm}")), llvm)
            }
            Cc::Gcc { cross_compile } if cross_compile.is_empty() => (None, String::new()),
            Cc::Gcc { cross_compile } => (
                Some(format!("CROSS_COMPILE={cross_compile}")),
                String::new(),
            ),
        };
        let mut args: Vec<String> = vec![
            "-C".into(),
            srctree.display().to_string(),
            format!("O={}", dir.display()),
            format!("ARCH={}", req.arch.kbuild()),
        ];
        args.extend(compiler_arg);
        Ok(Make {
            sh,
            args,
            log,
            llvm,
        })
    }

    /// `make TARGET`, its output appended to the log.
    fn logged(&self, shell: &Shell, target: &str) -> Result<()> {
        let (sh, base) = (&self.sh, &self.args);
        crate::process::run_logged(
            shell,
            cmd!(sh, "make {base...} {target}"),
            &self.log,
            |_| {},
        )
    }
}

/// Configure the tree in `dir`: the base configuration, then the fragments merged on top and
/// resolved. Returns the wanted assignments and the resolved `.config`.
fn configure(
    shell: &Shell,
    make: &Make,
    req: &Request,
    dir: &Path,
    release_name: &str,
    modversions: bool,
) -> Result<(Vec<Assignment>, KConfig)> {
    let dot_config = dir.join(".config");
    let base_config = configure_base(shell, make, req, &dot_config, release_name)?;
    let wanted = fragments_for(
        req.arch,
        modversions,
        base_config.as_ref(),
        req.board,
        &req.fragments,
    )?;
    let text = std::fs::read_to_string(&dot_config).context("cannot read the base `.config`")?;
    crate::fsutil::write_atomic(&dot_config, config::merge(&text, &wanted).as_bytes())?;
    make.logged(shell, "olddefconfig")?;
    let resolved = KConfig::read(&dot_config)?;
    Ok((wanted, resolved))
}

/// The base configuration, resolved on its own first (a board's file may be minimal, as
/// `savedefconfig` writes it, or from another kernel version). Returns it for a board's
/// configuration, `None` for tinyconfig.
fn configure_base(
    shell: &Shell,
    make: &Make,
    req: &Request,
    dot_config: &Path,
    release_name: &str,
) -> Result<Option<KConfig>> {
    let base_desc = match &req.base {
        BaseConfig::Tiny => "tinyconfig".to_string(),
        BaseConfig::File { origin, .. } => format!("`{origin}`"),
        BaseConfig::Defconfig(n) => n.clone(),
    };
    shell.status(
        "Configuring",
        format_args!(
            "linux {release_name} for {} ({base_desc} + fragments)",
            req.label()
        ),
    );
    let base_config = match &req.base {
        BaseConfig::Tiny => {
            make.logged(shell, "tinyconfig")?;
            None
        }
        BaseConfig::File { text, .. } => {
            crate::fsutil::write_atomic(dot_config, text.as_bytes())?;
            make.logged(shell, "olddefconfig")?;
            Some(KConfig::read(dot_config)?)
        }
        BaseConfig::Defconfig(name) => {
            make.logged(shell, name)?;
            Some(KConfig::read(dot_config)?)
        }
    };
    if let Some(b) = &base_config {
        if Arch::from_config(b) != Some(req.arch) {
            crate::bail_user!(
                "base config {} is not an {} configuration", base_desc, req.arch;
                hint = "pass the `--arch` the board config was made for"
            );
        }
    }
    Ok(base_config)
}

/// Every wanted assignment took effect in the resolved `.config`, or the error naming what
/// did not and why (what blocks Rust first, with `make rustavailable`'s reason).
fn check_config(
    shell: &Shell,
    make: &Make,
    wanted: &[Assignment],
    resolved: &KConfig,
    index: &KconfigIndex,
) -> Result<(), UserError> {
    let mut unmet = config::unmet(wanted, resolved);
    if unmet.is_empty() {
        return Ok(());
    }
    // What blocks Rust comes first: it is what the user came for.
    unmet.sort_by_key(|u| u.wanted.symbol != "RUST");
    let mut lines: Vec<String> = unmet
        .iter()
        .map(|u| config::explain(u, index, resolved))
        .collect();
    if unmet.iter().any(|u| u.wanted.symbol == "RUST") {
        let (sh, base) = (&make.sh, &make.args);
        if let Err(e) = crate::process::run(shell, cmd!(sh, "make {base...} rustavailable")) {
            let why = e.to_string();
            let reason = why
                .lines()
                .find(|l| l.contains("***") && l.len() > 4)
                .unwrap_or("")
                .trim_start_matches("***")
                .trim();
            lines.push(format!("`make rustavailable` says: {reason}"));
        }
    }
    let first = lines.remove(0);
    let mut e = UserError::new(first);
    if !lines.is_empty() {
        e = e.with_hint(lines.join("; "));
    }
    Err(e)
}

/// One finished kernel build, for the stamp.
struct BuildRun {
    started: Instant,
    /// The kbuild progress lines (`  CC ...`) it printed.
    lines: u64,
}

/// Build the configured tree, with a progress bar sized by the largest earlier build of the
/// arch.
fn build(
    shell: &Shell,
    home: &Home,
    make: &Make,
    req: &Request,
    release_name: &str,
) -> Result<BuildRun> {
    let estimate = home
        .list()
        .iter()
        .filter(|t| t.meta.arch == req.arch)
        .map(|t| t.meta.build_lines)
        .max()
        .unwrap_or(1100);
    let bar = shell.progress("Building", estimate);
    shell.status(
        "Building",
        format_args!(
            "linux {release_name} for {} (log: `{}`)",
            req.label(),
            make.log.display()
        ),
    );
    let started = Instant::now();
    let jobs = format!("-j{}", req.jobs.max(1));
    let mut lines = 0u64;
    let (sh, base) = (&make.sh, &make.args);
    let result =
        crate::process::run_logged(shell, cmd!(sh, "make {base...} {jobs}"), &make.log, |l| {
            if l.starts_with("  ") && l.as_bytes().get(2).is_some_and(u8::is_ascii_uppercase) {
                lines += 1;
                if lines >= bar.length().unwrap_or(0) {
                    bar.set_length(lines + 1);
                }
                bar.set_position(lines);
                bar.set_message(l.trim().to_string());
            }
        });
    bar.finish_and_clear();
    result.with_context(|| format!("building linux {release_name} for {} failed", req.label()))?;
    Ok(BuildRun { started, lines })
}

/// A finished build has what modules build against: the image, `Module.symvers`, the Rust
/// kernel crate, and a board's device tree.
fn check_outputs(req: &Request, dir: &Path) -> Result<()> {
    let mut needed = vec![
        req.arch.image().to_string(),
        "Module.symvers".to_string(),
        "rust/libkernel.rmeta".to_string(),
    ];
    if let Some(b) = req.board {
        needed.push(format!("arch/{}/boot/dts/{}", req.arch.srcarch(), b.dtb));
    }
    for needed in needed {
        if !dir.join(&needed).exists() {
            crate::bail_user!(
                "the build of `{}` finished without `{}`",
                dir.display(),
                needed
            );
        }
    }
    Ok(())
}

/// The stamp of a built tree: what it was made from, with which tools, and how long it took.
fn tree_meta(
    req: &Request,
    tc: &Toolchain,
    key: String,
    tree: &crate::kernel::KernelTree,
    llvm: String,
    gcc_version: Option<String>,
    run: BuildRun,
) -> Result<TreeMeta> {
    Ok(TreeMeta {
        key,
        arch: req.arch,
        release: tree.release.clone(),
        source: req.source.path().display().to_string(),
        rustc: tc.rustc.clone().unwrap_or_default(),
        bindgen: tc.bindgen.clone().unwrap_or_default(),
        clang: tc.clang.clone().unwrap_or_default(),
        llvm,
        modversions: tree.config.is_enabled("MODVERSIONS"),
        fragments: req.fragments.iter().map(|(n, _)| n.clone()).collect(),
        build_seconds: run.started.elapsed().as_secs(),
        build_lines: run.lines,
        inputs: inputs_key(req)?,
        board: req.board.map(|b| b.name.to_string()),
        soc: req.board.map(|b| b.soc.to_string()),
        base_config: req.base.describe(),
        cc: req.cc.kind(),
        cross_compile: match &req.cc {
            Cc::Gcc { cross_compile } => Some(cross_compile.clone()),
            Cc::Clang => None,
        },
        gcc: gcc_version.unwrap_or_default(),
    })
}

/// Who asks for trees, for messages: `init`'s flags, or a named target's table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asker<'a> {
    Flags,
    /// The target's name (`[workspace.metadata.kmod.targets.NAME]`).
    Target(&'a str),
}

/// What asks for a tree before it is checked: `init`'s flags or a named target's keys, as
/// plain data. [`requests`] turns it into one [`Request`] per arch.
#[derive(Debug, Clone, Default)]
pub struct TreeAsk {
    /// `--source` / `source`; default the newest `/usr/src/linux-source-*`.
    pub source: Option<PathBuf>,
    /// `--arch` (`all` is both) / `arch`.
    pub arches: Option<Vec<Arch>>,
    pub board: Option<String>,
    pub base_config: Option<String>,
    /// `clang` (default) or `gcc`.
    pub cc: Option<String>,
    /// `CROSS_COMPILE` for a GCC tree: the target's, else the environment's.
    pub cross_compile: Option<String>,
    /// User fragments: (file name, contents).
    pub fragments: Vec<(String, String)>,
    pub jobs: usize,
}

impl TreeAsk {
    /// Whether this asks for a tree of its own (a target with only `kdir`/`arch` does not).
    pub fn names_a_tree(&self) -> bool {
        self.board.is_some()
            || self.base_config.is_some()
            || self.cc.is_some()
            || self.source.is_some()
            || !self.fragments.is_empty()
    }
}

/// The trees `ask` asks for, one per arch: the one place the board, the base configuration
/// and the requested arch are reconciled, for `init`'s flags and named targets alike.
pub fn requests(ask: &TreeAsk, asker: Asker<'_>) -> Result<Vec<Request>> {
    let at = match asker {
        Asker::Target(name) => format!("[workspace.metadata.kmod.targets.{name}]"),
        Asker::Flags => String::new(),
    };
    let board = match &ask.board {
        Some(b) => Some(Board::find(b).map_err(|e| match asker {
            Asker::Flags => e,
            Asker::Target(_) => {
                let (msg, hint, _) = crate::error::render(&e);
                let mut u = UserError::new(format!("invalid `board` in `{at}`: {msg}"));
                if let Some(h) = hint {
                    u = u.with_hint(h);
                }
                u.into()
            }
        })?),
        None => None,
    };
    let base = match &ask.base_config {
        Some(b) => BaseConfig::from_arg(b)?,
        None => BaseConfig::Tiny,
    };
    let names = |a: &[Arch]| a.iter().map(|a| a.name()).collect::<Vec<_>>().join(", ");
    let arches = match (board, base.arch(), ask.arches.as_deref(), asker) {
        (Some(b), _, Some(a), Asker::Target(_)) if a != [b.arch] => crate::bail_user!(
            "`{}` says `arch = \"{}\"`, but board `{}` is {}", at, names(a), b.name, b.arch;
            hint = "drop `arch`: the board decides it"
        ),
        (Some(b), _, Some(a), Asker::Flags) if a != [b.arch] => crate::bail_user!(
            "board `{}` is {}, not {}", b.name, b.arch, names(a);
            hint = "drop `--arch`: the board decides it"
        ),
        (Some(b), _, _, _) => vec![b.arch],
        (None, Some(from_file), Some(a), Asker::Flags) if a != [from_file] => crate::bail_user!(
            "base config `{}` is an {} configuration, not {}",
            base.describe().unwrap_or_default(), from_file, names(a);
            hint = "drop `--arch`: the base config decides it"
        ),
        (None, Some(_), Some(a), Asker::Target(_)) => a.to_vec(),
        (None, Some(from_file), _, _) => vec![from_file],
        (None, None, Some(a), Asker::Flags) if base != BaseConfig::Tiny && a.len() > 1 => {
            crate::bail_user!(
                "`--base-config {}` is for one arch", base.describe().unwrap_or_default();
                hint = "pass `--arch arm64` or `--arch x86_64`"
            )
        }
        (None, None, Some(a), _) => a.to_vec(),
        (None, None, None, Asker::Target(_)) => crate::bail_user!(
            "`{}` needs an `arch`: nothing else says which kernel to prepare", at;
            hint = "add `arch = \"arm64\"` (or `x86_64`)"
        ),
        (None, None, None, Asker::Flags) if base != BaseConfig::Tiny => crate::bail_user!(
            "`--base-config {}` needs `--arch`: it does not say which arch it is for (no `CONFIG_ARM64=y` or `CONFIG_X86_64=y`)",
            base.describe().unwrap_or_default();
            hint = "pass `--arch arm64` or `--arch x86_64`"
        ),
        (None, None, None, Asker::Flags) => Arch::ALL.to_vec(),
    };
    let source = match &ask.source {
        Some(p) => Source::from_path(p)?,
        None => Source::default_in(Path::new("/usr/src"))?,
    };
    arches
        .into_iter()
        .map(|arch| {
            Ok(Request {
                source: source.clone(),
                arch,
                fragments: ask.fragments.clone(),
                jobs: ask.jobs,
                base: base.clone(),
                board,
                cc: Cc::parse(
                    ask.cc.as_deref().unwrap_or("clang"),
                    arch,
                    ask.cross_compile.as_deref(),
                )?,
            })
        })
        .collect()
}

/// The prepared tree `req` names, found without probing tools; an error with the `init`
/// command that makes it when it is not prepared yet (`what` names the asker).
pub fn prepared_dir(
    home: &Home,
    req: &Request,
    rustc: Option<&str>,
    target: &str,
) -> Result<PathBuf> {
    match find_prepared(home, req, rustc)? {
        Some(tree) => Ok(tree.dir),
        None => crate::bail_user!(
            "the kernel tree of target `{}` ({}) is not prepared", target, req.label();
            hint = "run `cargo kmod init --target {}` (or `{}`)", target, req.init_command()
        ),
    }
}

/// A defconfig target must exist in the source (`arch/<srcarch>/configs/<name>`).
fn check_defconfig(srctree: &Path, arch: Arch, name: &str) -> Result<()> {
    let configs = srctree.join("arch").join(arch.srcarch()).join("configs");
    if configs.join(name).is_file() {
        return Ok(());
    }
    let mut names: Vec<String> = std::fs::read_dir(&configs)
        .map(|it| {
            it.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with("defconfig"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    crate::bail_user!(
        "no defconfig `{}` in `{}`", name, configs.display();
        hint = "{}; a vendor's defconfig (e.g. the Raspberry Pi kernel's `bcm2711_defconfig`) needs that vendor's tree as `--source`",
        if names.is_empty() { "this source has no defconfigs for the arch".to_string() } else { format!("defconfigs here: {}", names.join(", ")) }
    )
}

/// The prepared tree of a request whose inputs match, without probing any tool: trees built
/// by the current rustc first, then the newest. `Ok(None)` when none is prepared.
pub fn find_prepared(
    home: &Home,
    req: &Request,
    rustc: Option<&str>,
) -> Result<Option<PreparedTree>> {
    let inputs = inputs_key(req)?;
    let found: Vec<PreparedTree> = home
        .list()
        .into_iter()
        .filter(|t| t.meta.inputs == inputs && t.meta.arch == req.arch)
        .collect();
    let best = found
        .iter()
        .find(|t| Some(t.meta.rustc.as_str()) == rustc)
        .or(found.first())
        .cloned();
    Ok(best)
}

/// An exclusive lock on `path` (created if missing), saying what it waits for when another
/// process holds it. Lock files stay where they are, like cargo's: removing one while a
/// second process waits on it would let a third lock a new file beside the first.
pub(crate) fn lock_file(shell: &Shell, path: &Path, holder: &str) -> Result<std::fs::File> {
    let lock = std::fs::File::create(path)
        .with_context(|| format!("cannot create `{}`", path.display()))?;
    if lock.try_lock().is_err() {
        shell.status("Blocking", format_args!("waiting for {holder}"));
        lock.lock()
            .with_context(|| format!("cannot lock `{}`", path.display()))?;
    }
    Ok(lock)
}

/// Unpack a tarball once into `sources/<hash>/`, atomically: under a lock per tarball (two
/// `init`s of one source unpack it once), into `.unpack-<hash>-*` renamed into place when
/// complete. An unpack killed half-way leaves its temporary directory, which the next
/// unpack of any source removes ([`sweep_unpacks`]: leftovers whose lock nobody holds).
fn unpack(shell: &Shell, home: &Home, tarball: &Path, identity: &str) -> Result<PathBuf> {
    let hash = crate::fsutil::sha256_hex(identity.as_bytes())[..16].to_string();
    let sources = home.sources_dir();
    let dest = sources.join(&hash);
    sweep_unpacks(&sources);
    if !dest.is_dir() {
        home.ensure_dir(&sources)?;
        let _lock = lock_file(
            shell,
            &sources.join(format!("{hash}.lock")),
            "another `cargo kmod init` unpacking this source",
        )?;
        if !dest.is_dir() {
            unpack_locked(shell, &sources, &hash, tarball, &dest)?;
        }
    }
    // The tarball holds one top-level directory (e.g. `linux-source-7.2/`).
    let top = std::fs::read_dir(&dest)?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.join("Makefile").is_file() && p.join("Kconfig").is_file())
        .or_else(|| dest.join("Makefile").is_file().then(|| dest.clone()));
    match top {
        Some(t) => Ok(t),
        None => crate::bail_user!(
            "`{}` does not contain a kernel source tree",
            tarball.display()
        ),
    }
}

/// A kernel source tarball unpacked once under `sources/` (as `init --source` does); the
/// source tree.
pub(crate) fn unpack_source(shell: &Shell, home: &Home, tarball: &Path) -> Result<PathBuf> {
    let source = Source::from_path(tarball)?;
    unpack(shell, home, source.path(), &source.identity()?)
}

/// Remove what killed unpacks left (`.unpack-<hash>-*` whose source lock nobody holds).
fn sweep_unpacks(sources: &Path) {
    let Ok(entries) = std::fs::read_dir(sources) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(hash) = name
            .strip_prefix(".unpack-")
            .and_then(|r| r.split('-').next())
        else {
            continue;
        };
        let Ok(lock) = std::fs::File::create(sources.join(format!("{hash}.lock"))) else {
            continue;
        };
        if lock.try_lock().is_ok() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// The unpack itself, with the source's lock held.
fn unpack_locked(
    shell: &Shell,
    sources: &Path,
    hash: &str,
    tarball: &Path,
    dest: &Path,
) -> Result<()> {
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".unpack-{hash}-"))
        .tempdir_in(sources)
        .context("cannot create a temporary directory for unpacking")?;
    shell.status("Unpacking", format_args!("`{}`", tarball.display()));
    let sh = xshell::Shell::new()?;
    let into = tmp.path();
    let spinner = shell.spinner("Unpacking", tarball.display().to_string());
    let r = crate::process::run(shell, cmd!(sh, "tar -xf {tarball} -C {into}"));
    spinner.finish_and_clear();
    if let Err(e) = r {
        return Err(UserError::new(format!(
            "cannot unpack `{}`: the archive is truncated or corrupt",
            tarball.display()
        ))
        .with_hint(
            e.to_string()
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty() && !l.starts_with("---"))
                .unwrap_or("")
                .to_string(),
        )
        .into());
    }
    // `tmp` is removed when the rename fails.
    std::fs::rename(tmp.path(), dest)
        .with_context(|| format!("cannot create `{}`", dest.display()))?;
    let _ = tmp.keep();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A source seeds from a dev tree only as a copy of that tree's source whose every
    /// difference is newer than the tree.
    #[test]
    fn a_copy_seeds_only_when_its_changes_are_newer_than_the_tree() {
        use std::time::{Duration, SystemTime};
        let d = tempfile::tempdir().unwrap();
        let (orig, copy) = (d.path().join("orig"), d.path().join("copy"));
        let old = SystemTime::now() - Duration::from_secs(3600);
        let built = SystemTime::now() - Duration::from_secs(60);
        for root in [&orig, &copy] {
            std::fs::create_dir_all(root.join("drivers/misc")).unwrap();
            for f in ["Makefile", "drivers/misc/Kconfig"] {
                std::fs::write(root.join(f), "x\n").unwrap();
                let file = std::fs::File::options()
                    .write(true)
                    .open(root.join(f))
                    .unwrap();
                file.set_modified(old).unwrap();
            }
        }
        assert!(is_copy_edited_after(&orig, &copy, built));
        // An edit and a new file after the tree was built: still a copy.
        std::fs::write(copy.join("drivers/misc/Kconfig"), "x\nsource y\n").unwrap();
        std::fs::create_dir_all(copy.join("drivers/misc/hello")).unwrap();
        std::fs::write(copy.join("drivers/misc/hello/hello.rs"), "").unwrap();
        assert!(is_copy_edited_after(&orig, &copy, built));
        // A difference older than the tree (make would not see it), or a missing file: not.
        let f = std::fs::File::options()
            .write(true)
            .open(copy.join("drivers/misc/Kconfig"))
            .unwrap();
        f.set_modified(old + Duration::from_secs(1)).unwrap();
        assert!(!is_copy_edited_after(&orig, &copy, built));
        std::fs::write(copy.join("drivers/misc/Kconfig"), "x\n").unwrap();
        std::fs::remove_file(copy.join("Makefile")).unwrap();
        assert!(!is_copy_edited_after(&orig, &copy, built));
    }

    /// A seeded tree's records name its own place; objects and other files are untouched,
    /// and the records keep their times.
    #[test]
    fn seeding_rewrites_the_recorded_paths_only() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("tools/objtool")).unwrap();
        let cmd = root.join("tools/objtool/.check.o.cmd");
        std::fs::write(&cmd, "cmd := cc -o /old/tree/tools/objtool/check.o\n").unwrap();
        let dep = root.join("kernel.d");
        std::fs::write(&dep, "kernel.o: /old/tree/include/x.h /src/y.h\n").unwrap();
        let other = root.join("Makefile");
        std::fs::write(&other, "O := /old/tree\n").unwrap();
        let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        std::fs::File::options()
            .write(true)
            .open(&cmd)
            .unwrap()
            .set_modified(old)
            .unwrap();
        rewrite_paths(root, "/old/tree", "/new/tree").unwrap();
        assert_eq!(
            std::fs::read_to_string(&cmd).unwrap(),
            "cmd := cc -o /new/tree/tools/objtool/check.o\n"
        );
        assert_eq!(std::fs::metadata(&cmd).unwrap().modified().unwrap(), old);
        assert_eq!(
            std::fs::read_to_string(&dep).unwrap(),
            "kernel.o: /new/tree/include/x.h /src/y.h\n"
        );
        assert_eq!(std::fs::read_to_string(&other).unwrap(), "O := /old/tree\n");
    }

    /// One feature tree per set of symbols and values, whoever asks and in whatever order;
    /// arm64 gets the PCIe host of `virt` with PCI.
    #[test]
    fn feature_fragments_are_the_set_of_needs() {
        let needs = |v: &[(&str, &str)]| -> std::collections::BTreeMap<String, String> {
            v.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let a = features_fragment(Arch::X86_64, &needs(&[("PCI", "y"), ("DEBUG_FS", "y")]));
        let b = features_fragment(Arch::X86_64, &needs(&[("DEBUG_FS", "y"), ("PCI", "y")]));
        assert_eq!(a, b);
        assert_eq!(a.0, "cargo-kmod:features DEBUG_FS=y PCI=y");
        assert_eq!(
            a.1,
            "# cargo-kmod: the kernel-config the packages need\nCONFIG_DEBUG_FS=y\nCONFIG_PCI=y\n"
        );
        let arm = features_fragment(
            Arch::Arm64,
            &needs(&[("PCI", "y"), ("HZ", "250"), ("X", "n"), ("S", "v")]),
        );
        assert_eq!(
            arm.0,
            "cargo-kmod:features HZ=250 PCI=y PCI_HOST_GENERIC=y S=v X=n"
        );
        assert!(arm.1.contains("CONFIG_PCI_HOST_GENERIC=y\n"));
        assert!(arm.1.contains("CONFIG_S=\"v\"\n"));
        assert!(arm.1.contains("# CONFIG_X is not set\n"));
        config::parse_fragment(&arm.1, "features").unwrap();
    }

    /// A fragment is its contents: its name or path spelling makes no other tree.
    #[test]
    fn fragments_key_trees_by_their_contents() {
        let dir = tempfile::tempdir().unwrap();
        let src = Source::Dir(dir.path().to_path_buf());
        let key = |name: &str, text: &str| {
            inputs_key(&Request::dev(
                src.clone(),
                Arch::X86_64,
                vec![(name.to_string(), text.to_string())],
                1,
            ))
            .unwrap()
        };
        assert_eq!(
            key("./f.config", "CONFIG_PCI=y\n"),
            key("f.config", "CONFIG_PCI=y\n")
        );
        assert_ne!(
            key("f.config", "CONFIG_PCI=y\n"),
            key("f.config", "CONFIG_USB=y\n")
        );
    }

    /// Two `init`s unpacking one tarball at once both get the tree, unpacked once, and a
    /// killed unpack's leftovers are gone after the next one.
    #[test]
    fn concurrent_unpacks_share_one_tree_and_leave_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("linux-x");
        std::fs::create_dir_all(&src).unwrap();
        std::fs::write(src.join("Makefile"), "all:\n").unwrap();
        std::fs::write(src.join("Kconfig"), "").unwrap();
        let tarball = dir.path().join("linux-x.tar");
        let sh = xshell::Shell::new().unwrap();
        let root = dir.path();
        cmd!(sh, "tar -cf {tarball} -C {root} linux-x")
            .run()
            .unwrap();
        let home = Home {
            root: dir.path().join("home"),
        };
        let sources = home.sources_dir();
        std::fs::create_dir_all(&sources).unwrap();
        // What an unpack killed half-way leaves.
        let hash = &crate::fsutil::sha256_hex(b"id")[..16];
        let stale = sources.join(format!(".unpack-{hash}-killed"));
        std::fs::create_dir_all(stale.join("linux-x")).unwrap();
        let shell = Shell::new(
            crate::shell::Verbosity::Quiet,
            crate::shell::MessageFormat::Human,
            crate::shell::ColorChoice::Never,
        );
        let tops: Vec<PathBuf> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..4)
                .map(|_| s.spawn(|| unpack(&shell, &home, &tarball, "id").unwrap()))
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(tops
            .iter()
            .all(|t| *t == sources.join(hash).join("linux-x")));
        let mut left: Vec<String> = std::fs::read_dir(&sources)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, [hash.to_string(), format!("{hash}.lock")]);
    }

    #[test]
    fn builtin_fragments_parse_and_differ_per_arch() {
        let x = fragments_for(Arch::X86_64, true, None, None, &[]).unwrap();
        let a = fragments_for(Arch::Arm64, false, None, None, &[]).unwrap();
        assert!(x.iter().any(|s| s.symbol == "64BIT"));
        assert!(x.iter().any(|s| s.symbol == "GENDWARFKSYMS"));
        assert!(
            !a.iter().any(|s| s.symbol == "MODVERSIONS"),
            "no modversions without GENDWARFKSYMS"
        );
        assert!(a.iter().any(|s| s.symbol == "SERIAL_AMBA_PL011_CONSOLE"));
        for sym in [
            "RUST",
            "MODULES",
            "MODULE_UNLOAD",
            "KUNIT",
            "MODULE_SIG",
            "MODULE_SIG_SHA256",
            "DEVTMPFS",
        ] {
            assert!(x.iter().any(|s| s.symbol == sym), "{sym}");
        }
    }

    #[test]
    fn user_fragments_come_last_and_errors_name_the_file() {
        let user = vec![("extra.config".to_string(), "CONFIG_KUNIT=n\n".to_string())];
        let f = fragments_for(Arch::X86_64, true, None, None, &user).unwrap();
        assert_eq!(f.last().unwrap().origin, "extra.config");
        let bad = vec![("bad.config".to_string(), "KUNIT=y\n".to_string())];
        let e = fragments_for(Arch::X86_64, true, None, None, &bad).unwrap_err();
        assert!(e.to_string().starts_with("`bad.config` line 1"), "{e}");
    }

    #[test]
    fn board_configs_get_the_rust_part_and_keep_their_own_choices() {
        let rpi4 = Board::find("rpi4").unwrap();
        let preset = fragments_for(Arch::Arm64, true, None, Some(rpi4), &[]).unwrap();
        assert!(preset.iter().any(|a| a.symbol == "SERIAL_AMBA_PL011"));
        let pos = |sym: &str| preset.iter().position(|a| a.symbol == sym).unwrap();
        assert!(
            pos("ARCH_BCM2835") > pos("SERIAL_AMBA_PL011"),
            "the SoC fragment comes after the dev fragments"
        );
        // The debug kernel is the dev trees' alone: a board's kernel is tested as it is.
        assert!(!preset.iter().any(|a| a.symbol == "PROVE_LOCKING"));
        let dev = fragments_for(Arch::Arm64, true, None, None, &[]).unwrap();
        for sym in [
            "BUG",
            "DEBUG_OBJECTS_TIMERS",
            "PROVE_LOCKING",
            "DEBUG_KMEMLEAK",
        ] {
            assert!(
                dev.iter()
                    .any(|a| a.symbol == sym && a.value == config::Value::Yes),
                "{sym}"
            );
        }
        // A board config without modversions keeps them off, and keeps its signing choice.
        let base = KConfig::parse("CONFIG_ARM64=y\nCONFIG_MODULE_SIG_SHA512=y\n");
        let f = fragments_for(Arch::Arm64, true, Some(&base), None, &[]).unwrap();
        let syms: Vec<&str> = f.iter().map(|a| a.symbol.as_str()).collect();
        for s in [
            "RUST",
            "MODULES",
            "MODULE_UNLOAD",
            "KUNIT",
            "DEVTMPFS",
            "BLK_DEV_INITRD",
        ] {
            assert!(syms.contains(&s), "{s}");
        }
        for s in [
            "MODULE_SIG",
            "MODULE_SIG_SHA256",
            "MODVERSIONS",
            "SERIAL_AMBA_PL011",
            "IPV6",
        ] {
            assert!(!syms.contains(&s), "{s}");
        }
        // With modversions on, gendwarfksyms makes them Rust-capable; its DWARF stays.
        let base = KConfig::parse("CONFIG_ARM64=y\nCONFIG_MODVERSIONS=y\nCONFIG_DEBUG_INFO=y\nCONFIG_DEBUG_INFO_DWARF5=y\n");
        let f = fragments_for(Arch::Arm64, true, Some(&base), None, &[]).unwrap();
        assert!(f.iter().any(|a| a.symbol == "GENDWARFKSYMS"));
        assert!(!f.iter().any(|a| a.symbol.starts_with("DEBUG_INFO_DWARF")));
        let base = KConfig::parse("CONFIG_ARM64=y\nCONFIG_MODVERSIONS=y\n");
        let f = fragments_for(Arch::Arm64, true, Some(&base), None, &[]).unwrap();
        assert!(f
            .iter()
            .any(|a| a.symbol == "DEBUG_INFO_DWARF_TOOLCHAIN_DEFAULT"));
    }

    #[test]
    fn base_config_arguments() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("rpi.config");
        std::fs::write(
            &plain,
            "# a board\nCONFIG_ARM64=y\nCONFIG_LOCALVERSION=\"-v8\"\n",
        )
        .unwrap();
        let b = BaseConfig::from_arg(plain.to_str().unwrap()).unwrap();
        assert_eq!(b.arch(), Some(Arch::Arm64));
        let gz = dir.path().join("config.gz");
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut enc, b"CONFIG_X86_64=y\n").unwrap();
        std::fs::write(&gz, enc.finish().unwrap()).unwrap();
        let g = BaseConfig::from_arg(gz.to_str().unwrap()).unwrap();
        assert_eq!(g.arch(), Some(Arch::X86_64));
        assert_ne!(b.key(), g.key());
        assert_eq!(
            BaseConfig::from_arg("bcm2711_defconfig").unwrap(),
            BaseConfig::Defconfig("bcm2711_defconfig".into())
        );
        assert_eq!(
            BaseConfig::from_arg("defconfig")
                .unwrap()
                .describe()
                .unwrap(),
            "defconfig"
        );
        let e = BaseConfig::from_arg("missing/rpi.config").unwrap_err();
        assert_eq!(
            e.to_string(),
            "base config `missing/rpi.config` does not exist"
        );
        let junk = dir.path().join("junk.config");
        std::fs::write(&junk, "hello world\n").unwrap();
        let e = BaseConfig::from_arg(junk.to_str().unwrap()).unwrap_err();
        assert!(
            e.to_string()
                .contains("line 1: expected `CONFIG_NAME=value`"),
            "{e}"
        );
        let bad_gz = dir.path().join("bad.gz");
        std::fs::write(&bad_gz, [0x1f, 0x8b, 0, 1, 2]).unwrap();
        let e = BaseConfig::from_arg(bad_gz.to_str().unwrap()).unwrap_err();
        assert!(e.to_string().ends_with("is not a valid gzip file"), "{e}");
    }

    #[test]
    fn keys_of_dev_trees_hash_the_debug_kernel_and_boards_differ() {
        let dir = tempfile::tempdir().unwrap();
        let t = dir.path().join("linux-source-7.2.tar.xz");
        std::fs::write(&t, "x").unwrap();
        let src = Source::from_path(&t).unwrap();
        let tc = Toolchain {
            rustc: Some("rustc 1.95.0".into()),
            ..Toolchain::default()
        };
        let dev = Request::dev(src.clone(), Arch::Arm64, vec![], 2);
        // The key a dev tree had before boards existed (same inputs, same order), with the
        // debug kernel's fragment, which only dev trees get.
        let identity = src.identity().unwrap();
        let builtin = format!("{COMMON}{X86_64}{ARM64}{MODVERSIONS}");
        let old = tree_key(&[
            ("source", &identity),
            ("arch", "arm64"),
            ("builtin-fragments", &builtin),
            ("user-fragments", ""),
            ("debug-fragment", DEBUG),
            ("rustc", "rustc 1.95.0"),
            ("bindgen", ""),
            ("clang", ""),
            ("llvm", ""),
        ]);
        assert_eq!(key_for(&dev, &tc, None).unwrap(), old);
        let rpi4 = Request {
            board: Some(Board::find("rpi4").unwrap()),
            ..dev.clone()
        };
        let rpi3 = Request {
            board: Some(Board::find("rpi3").unwrap()),
            ..dev.clone()
        };
        assert_ne!(key_for(&rpi4, &tc, None).unwrap(), old);
        assert_eq!(
            key_for(&rpi4, &tc, None).unwrap(),
            key_for(&rpi3, &tc, None).unwrap(),
            "one SoC fragment, one tree"
        );
        let gcc = Request {
            cc: Cc::parse("gcc", Arch::Arm64, None).unwrap(),
            ..dev.clone()
        };
        assert_eq!(
            gcc.cc,
            Cc::Gcc {
                cross_compile: "aarch64-linux-gnu-".into()
            }
        );
        assert_ne!(inputs_key(&gcc).unwrap(), inputs_key(&dev).unwrap());
        assert_ne!(
            key_for(&gcc, &tc, Some("gcc 12")).unwrap(),
            key_for(&gcc, &tc, Some("gcc 13")).unwrap()
        );
        assert_eq!(rpi4.label(), "arm64 (rpi4)");
        assert!(rpi4
            .init_command()
            .starts_with("cargo kmod init --board rpi4 --source "));
        assert_eq!(gcc.label(), "arm64 (gcc)");
        assert!(Cc::parse("icc", Arch::Arm64, None).is_err());
        assert_eq!(
            Cc::parse("gcc", Arch::Arm64, Some("aarch64-none-linux-gnu-"))
                .unwrap()
                .gcc()
                .unwrap(),
            "aarch64-none-linux-gnu-gcc"
        );
    }

    #[test]
    fn source_classification() {
        let dir = tempfile::tempdir().unwrap();
        let e = Source::from_path(&dir.path().join("missing.tar.xz")).unwrap_err();
        assert!(
            e.to_string().ends_with("missing.tar.xz` does not exist"),
            "{e}"
        );
        let e = Source::from_path(dir.path()).unwrap_err();
        assert!(e.to_string().contains("is not a kernel source tree"), "{e}");
        let f = dir.path().join("notes.txt");
        std::fs::write(&f, "x").unwrap();
        assert!(Source::from_path(&f)
            .unwrap_err()
            .to_string()
            .contains("neither a kernel source tarball"));
        let t = dir.path().join("linux-source-7.2.tar.xz");
        std::fs::write(&t, "x").unwrap();
        std::fs::write(dir.path().join("linux-source-6.12.tar.xz"), "x").unwrap();
        assert_eq!(
            Source::default_in(dir.path()).unwrap(),
            Source::Tarball(t.canonicalize().unwrap())
        );
        let empty = tempfile::tempdir().unwrap();
        let e = Source::default_in(empty.path()).unwrap_err();
        assert!(e.to_string().starts_with("no kernel source found"), "{e}");
    }

    #[test]
    fn makefile_version_reads_the_top_makefile() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("Makefile"),
            "# SPDX\nVERSION = 7\nPATCHLEVEL = 2\nSUBLEVEL = 13\nEXTRAVERSION =\n",
        )
        .unwrap();
        assert_eq!(makefile_version(dir.path()), Some(Version(7, 2, 13)));
    }
}
