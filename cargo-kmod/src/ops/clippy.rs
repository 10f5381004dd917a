//! `cargo kmod clippy`: [`check`](super::check) with kbuild's `CLIPPY=1`, which runs
//! `clippy-driver` in place of rustc with the same command line (kbuild's own
//! `-Wclippy::...` set, then the package's `[lints]`, then the arguments after `--`).
//!
//! The driver is rustup's `clippy-driver` (the proxy picks the toolchain the tree's `rustc`
//! comes from), accepted only when the rustc it wraps is the one that built the tree: a
//! driver of another rustc cannot read the kernel crates' metadata. Its `clippy.toml` is
//! found through `CARGO_MANIFEST_DIR`, which the module's Kbuild exports, as under cargo.

use anyhow::Result;
use xshell::cmd;

use crate::context::{BuildContext, Session};
use crate::ops::build::BuildOptions;
use crate::ops::check::{self, CheckRequest, Driver, ModuleChecked};

/// The `clippy-driver` kbuild runs.
pub const DRIVER: &str = "clippy-driver";

/// Lint the modules of `ctx` with clippy; `args` come after kbuild's and the package's lint
/// flags (`-D warnings`).
pub fn clippy(
    session: &Session,
    ctx: &BuildContext,
    build: BuildOptions,
    args: Vec<String>,
    color: bool,
) -> Result<Vec<ModuleChecked>> {
    let program = driver_for(session, ctx)?;
    let req = CheckRequest {
        build,
        driver: Driver::Clippy { program, args },
        color,
    };
    check::check(session, ctx, &req)
}

/// The `clippy-driver` for the tree's rustc, or a user error saying what to install.
pub(crate) fn driver_for(session: &Session, ctx: &BuildContext) -> Result<String> {
    let sh = xshell::Shell::new()?;
    let program = DRIVER;
    let version = crate::process::run(&session.shell, cmd!(sh, "{program} --rustc --version"))
        .ok()
        .and_then(|out| out.lines().next().map(|l| l.trim().to_string()));
    let want = ctx.tree.rustc_version_text().or_else(|| ctx.rustc.clone());
    match (version, want) {
        (None, want) => crate::bail_user!(
            "`{}` cannot run: clippy is not installed for the tree's rustc", program;
            hint = "run `rustup component add clippy` for the toolchain of `{}`", want.unwrap_or_else(|| "rustc".into())
        ),
        (Some(have), Some(want)) if have != want => crate::bail_user!(
            "`{}` wraps `{}`, but `{}` was built by `{}`", program, have, ctx.tree.dir.display(), want;
            hint = "select the tree's toolchain (`rustup override set`) and add clippy to it"
        ),
        _ => Ok(program.to_string()),
    }
}
