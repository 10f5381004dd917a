//! `cargo kmod doc`: rustdoc for the module crates, linked into the tree's `kernel` docs.
//!
//! ```text
//! kernel docs (once per tree configuration, $CARGO_KMOD_HOME/docs/<key>/):
//!   kbuild's saved rustc command for rust/kernel.o (rust/.kernel.o.cmd) ─► rustdoc
//! module docs (target/kmod/<arch>/doc/):
//!   check (kbuild's saved check command) ─► rustdoc --extern-html-root-url kernel=file://...
//! ```
//!
//! Both run rustdoc with the compiler command kbuild itself used for the crate (the tree's
//! toolchain, target, cfgs and `--extern`s), without what only the compiler takes; the
//! kernel's `make rustdoc` does the same with its own flags but writes inside the tree and
//! has no form for external modules. Module crates are documented with their private items
//! (a module's items are rarely public), as `cargo doc` does for binaries.

use std::path::PathBuf;

use anyhow::{Context as _, Result};

use crate::context::{BuildContext, Session};
use crate::kbuild::replay;
use crate::ops::build::BuildOptions;
use crate::ops::check::{CheckRequest, Driver};

/// One documented module crate.
#[derive(Debug, Clone)]
pub struct Documented {
    pub package: String,
    /// `target/kmod/<arch>/doc/<crate>/index.html`.
    pub index: PathBuf,
}

/// Document the modules of `ctx`; returns the kernel docs' directory and each module's
/// index page.
pub fn doc(
    session: &Session,
    ctx: &BuildContext,
    build: &BuildOptions,
) -> Result<(PathBuf, Vec<Documented>)> {
    let shell = &session.shell;
    let kernel = kernel_docs(session, ctx)?;
    // The check saves kbuild's command for each crate (and proves the crate compiles).
    let req = CheckRequest {
        build: build.clone(),
        driver: Driver::Rustc,
        color: false,
    };
    let checked = crate::ops::check::check(session, ctx, &req)?;
    if let Some(c) = checked.iter().find(|c| !c.success()) {
        crate::bail_user!(
            "cannot document `{}`: it does not compile ({} error(s))", c.package, c.errors;
            hint = "run `cargo kmod check` to see the errors"
        );
    }
    let out_dir = ctx.arch_dir().join("doc");
    let mut out = Vec::new();
    for m in &ctx.modules {
        shell.status(
            "Documenting",
            format_args!("{} v{} ({})", m.name, m.version, ctx.tree.arch),
        );
        let dir = ctx.kmod_dir().join(&m.package);
        let saved = replay::saved(&dir, false).with_context(|| {
            format!(
                "kbuild saved no check command for `{}` in `{}`",
                m.package,
                dir.display()
            )
        })?;
        let mut args = saved.rustdoc_args();
        args.extend([
            "--document-private-items".to_string(),
            "--extern-html-root-url".to_string(),
            format!("kernel=file://{}/", kernel.display()),
            "-o".to_string(),
            out_dir.display().to_string(),
            saved.source.clone(),
        ]);
        let log = dir.join("doc.log");
        saved
            .run_other(shell, &saved.rustdoc(), &args, false, &log)
            .with_context(|| format!("cannot document `{}`", m.package))?;
        out.push(Documented {
            package: m.package.clone(),
            index: out_dir.join(&m.crate_name).join("index.html"),
        });
    }
    Ok((kernel, out))
}

/// The tree's `kernel` crate documentation, built once per tree configuration.
fn kernel_docs(session: &Session, ctx: &BuildContext) -> Result<PathBuf> {
    let tree = &ctx.tree;
    let dir = ctx.home.kernel_docs_dir(&tree.config_key());
    let done = dir.join(".kmod-done");
    if done.is_file() {
        return Ok(dir);
    }
    let cmd_file = tree.dir.join("rust/.kernel.o.cmd");
    let text = std::fs::read_to_string(&cmd_file).map_err(|_| {
        crate::error::UserError::new(format!(
            "`{}` has no compiled `kernel` crate (`rust/.kernel.o.cmd`): docs need a built tree with CONFIG_RUST",
            tree.dir.display()
        ))
    })?;
    let mut saved =
        replay::saved_in_cmd_file(&text, "rust/kernel.o", &tree.dir).with_context(|| {
            format!(
                "cannot read kbuild's command for the kernel crate in `{}`",
                cmd_file.display()
            )
        })?;
    // kbuild exports it for every rustc and rustdoc it runs (the kernel uses unstable
    // features with a stable toolchain).
    saved.env.push(("RUSTC_BOOTSTRAP".into(), "1".into()));
    session.shell.status(
        "Documenting",
        format_args!(
            "kernel (linux {}, {}), once for this tree",
            tree.release, tree.arch
        ),
    );
    let tmp = dir.with_extension("tmp");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).with_context(|| format!("cannot create `{}`", tmp.display()))?;
    let mut args = saved.rustdoc_args();
    args.extend([
        "-o".to_string(),
        tmp.display().to_string(),
        saved.source.clone(),
    ]);
    saved
        .run_other(
            &session.shell,
            &saved.rustdoc(),
            &args,
            true,
            &tmp.join("rustdoc.log"),
        )
        .context("cannot document the kernel crate")?;
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::rename(&tmp, &dir).with_context(|| format!("cannot create `{}`", dir.display()))?;
    crate::fsutil::write_atomic(&done, b"1")?;
    Ok(dir)
}
