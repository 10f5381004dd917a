//! rust-analyzer for the LSP test (`tests/tests/it/cargo_loop.rs`): test tooling, not part
//! of cargo-kmod.
//!
//! rustup cannot fetch its `rust-analyzer` component on this machine; Debian's build
//! (trixie-backports) runs on bookworm when started through trixie's dynamic loader with
//! trixie's libraries unpacked beside it (`shared/kernel-lab.md`). The packages are fetched
//! with apt-get through a sources list and lists directory of our own under the cache, so
//! the system's apt configuration and state are untouched, then unpacked with `dpkg-deb -x`
//! into `~/.cache/cargo-kmod-tests/rust-analyzer/<version>/root`. A `ready` file written
//! last makes the step a no-op on the next run.
//!
//! The test starts it as
//! `ROOT/usr/lib64/ld-linux-x86-64.so.2 --library-path ROOT/usr/lib/x86_64-linux-gnu:ROOT/usr/lib/llvm-22/lib ROOT/usr/bin/rust-analyzer`
//! (the test's `common::rust_analyzer` keeps the same layout).

use std::path::PathBuf;

use anyhow::{Context, Result};
use xshell::{cmd, Shell};

/// The Debian version of the `rust-analyzer` package.
pub const VERSION: &str = "1.97.1+dfsg1-1~bpo13+1";

/// `package/suite`: rust-analyzer, the Rust runtime it links (`librustc_driver`, which needs
/// LLVM 22), and trixie's C and C++ runtime with LLVM's libraries.
const PACKAGES: &[&str] = &[
    "rust-analyzer/trixie-backports",
    "libstd-rust-1.97/trixie-backports",
    "libllvm22/trixie",
    "libc6/trixie",
    "libgcc-s1/trixie",
    "libstdc++6/trixie",
    "libxml2/trixie",
    "libz3-4/trixie",
    "libzstd1/trixie",
    "libffi8/trixie",
    "libedit2/trixie",
    "libicu76/trixie",
    "libbsd0/trixie",
    "libmd0/trixie",
    "libtinfo6/trixie",
    "zlib1g/trixie",
    "liblzma5/trixie",
];

const SOURCES: &str = "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main\n\
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie-backports main\n";

/// `~/.cache/cargo-kmod-tests/rust-analyzer` (`$XDG_CACHE_HOME` when set).
pub fn cache_dir() -> PathBuf {
    let var = |k: &str| std::env::var_os(k).map(PathBuf::from);
    var("XDG_CACHE_HOME")
        .or_else(|| var("HOME").map(|h| h.join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"))
        .join("cargo-kmod-tests/rust-analyzer")
}

/// Fetch and unpack rust-analyzer unless it is there; returns the unpacked root.
pub fn ensure(sh: &Shell) -> Result<PathBuf> {
    let dir = cache_dir().join(VERSION.replace(['~', '+'], "_"));
    let root = dir.join("root");
    let ready = dir.join("ready");
    if ready.is_file() {
        return Ok(root);
    }
    crate::step(&format!(
        "rust-analyzer {VERSION} (Debian, with trixie's runtime) for the LSP test into `{}`",
        dir.display()
    ));
    let apt = dir.join("apt");
    let parts = apt.join("sources.list.d");
    let lists = apt.join("lists");
    let archives = apt.join("archives");
    for d in [&parts, &lists.join("partial"), &archives.join("partial")] {
        std::fs::create_dir_all(d).with_context(|| format!("cannot create `{}`", d.display()))?;
    }
    let sources = apt.join("sources.list");
    std::fs::write(&sources, SOURCES)?;
    let opts = &[
        format!("-oDir::Etc::SourceList={}", sources.display()),
        format!("-oDir::Etc::SourceParts={}", parts.display()),
        format!("-oDir::State::Lists={}", lists.display()),
        format!("-oDir::Cache::Archives={}", archives.display()),
        format!("-oDir::Cache={}", apt.display()),
        "-oDir::Etc::Preferences=/dev/null".to_string(),
        format!("-oDir::Etc::PreferencesParts={}", parts.display()),
        "-oAPT::Sandbox::User=root".to_string(),
        "-oDebug::NoLocking=1".to_string(),
        "-q".to_string(),
    ];
    cmd!(sh, "apt-get {opts...} update").run()?;
    let debs = tempfile::Builder::new()
        .prefix("debs-")
        .tempdir_in(&dir)
        .context("cannot create a download directory")?;
    {
        let _cd = sh.push_dir(debs.path());
        cmd!(sh, "apt-get {opts...} download {PACKAGES...}").run()?;
    }
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root)?;
    for deb in std::fs::read_dir(debs.path())?.flatten() {
        let deb = deb.path();
        if deb.extension().is_some_and(|e| e == "deb") {
            cmd!(sh, "dpkg-deb -x {deb} {root}").run()?;
        }
    }
    let version = cmd!(
        sh,
        "{root}/usr/lib64/ld-linux-x86-64.so.2 --library-path {root}/usr/lib/x86_64-linux-gnu:{root}/usr/lib/llvm-22/lib {root}/usr/bin/rust-analyzer --version"
    )
    .read()
    .context("the unpacked rust-analyzer does not run")?;
    anyhow::ensure!(
        version.starts_with("rust-analyzer "),
        "unexpected `rust-analyzer --version`: {version}"
    );
    let _ = std::fs::remove_dir_all(apt.join("archives"));
    std::fs::write(&ready, version)?;
    Ok(root)
}
