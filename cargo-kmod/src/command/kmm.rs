//! `cargo kmod kmm`: the workspace's matrix for Kubernetes' Kernel Module Management: per
//! kernel a kmod image build context, per module and arch a `Module` resource
//! (docs/matrix.md).

use std::path::PathBuf;

use anyhow::Result;
use serde_json::json;

use crate::command::args::{BuildArgs, PackageSelect, ToArgs};
use crate::context::Session;
use crate::error::{UserError, EXIT_TESTS_FAILED};
use crate::ops::matrix::KmmRequest;

#[derive(Debug, clap::Args)]
pub struct KmmCmd {
    /// The image repository, without a tag (`registry.example/acme/hello`): each kernel's
    /// image is tagged `<arch>-<release>`
    #[arg(long, value_name = "REPOSITORY")]
    pub image: String,
    #[command(flatten)]
    pub packages: PackageSelect,
    #[command(flatten)]
    pub build: BuildArgs,
    /// Only these cells (comma separated)
    #[arg(long, value_name = "CELLS", value_delimiter = ',')]
    pub targets: Vec<String>,
    /// The namespace of the `Module` resources
    #[arg(long, value_name = "NAMESPACE")]
    pub namespace: Option<String>,
    /// The secret with the key KMM signs the modules with in the cluster (with
    /// `--sign-cert-secret`)
    #[arg(long, value_name = "SECRET", requires = "sign_cert_secret")]
    pub sign_key_secret: Option<String>,
    /// The secret with the matching certificate
    #[arg(long, value_name = "SECRET", requires = "sign_key_secret")]
    pub sign_cert_secret: Option<String>,
    /// Output directory [default: `target/kmod/kmm/`, replaced on each run]
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// A Kubernetes name: DNS-1123 label characters.
fn check_name(what: &str, v: &str) -> Result<()> {
    let ok = !v.is_empty()
        && v.len() <= 253
        && v.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && !v.starts_with(['-', '.'])
        && !v.ends_with(['-', '.']);
    if !ok {
        crate::bail_user!(
            "`{}` must be a Kubernetes name (lower-case letters, digits, `-` and `.`), not `{}`",
            what,
            crate::text::escape(v)
        );
    }
    Ok(())
}

impl KmmCmd {
    pub fn run(&self, session: &Session) -> Result<()> {
        if let Some(ns) = &self.namespace {
            check_name("--namespace", ns)?;
        }
        let sign = match (&self.sign_key_secret, &self.sign_cert_secret) {
            (Some(k), Some(c)) => {
                check_name("--sign-key-secret", k)?;
                check_name("--sign-cert-secret", c)?;
                Some((k.clone(), c.clone()))
            }
            _ => None,
        };
        let mut args = Vec::new();
        self.packages.to_args(&mut args);
        self.build.to_args(&mut args);
        let req = KmmRequest {
            cells: self.targets.clone(),
            options: crate::matrix::kmm::Options {
                image: self.image.clone(),
                namespace: self.namespace.clone(),
                sign,
            },
            out: self.out.clone(),
            jobs: self.build.jobs,
            args,
        };
        let shell = &session.shell;
        let out = crate::ops::matrix::kmm(session, &self.packages.selection(), &req, &|r| {
            if r.row.outcome == crate::matrix::Outcome::Passed {
                shell.status("Built", format_args!("cell {}", r.cell.name));
            }
        })?;
        for (ctx, img) in &out.images {
            if shell.is_json() {
                shell.json(&json!({
                    "reason": "kmm-image",
                    "context": ctx,
                    "arch": img.arch.name(),
                    "release": img.release,
                    "modules": img.modules,
                    "tag": format!("{}:{}", self.image, crate::matrix::kmm::tag(img.arch, &img.release)),
                }));
            }
            shell.status(
                "Wrote",
                format_args!(
                    "the kmod image of linux {} ({}) in `{}`",
                    crate::text::escape(&img.release),
                    img.arch,
                    ctx.display()
                ),
            );
        }
        for r in &out.resources {
            if shell.is_json() {
                shell.json(&json!({"reason": "kmm-module", "path": r}));
            }
            shell.status("Wrote", format_args!("`{}`", r.display()));
        }
        if out.failed.is_empty() {
            return Ok(());
        }
        let names: Vec<String> = out
            .failed
            .iter()
            .map(|r| {
                format!(
                    "`{}` ({})",
                    r.cell.name,
                    r.message.as_deref().unwrap_or("failed")
                )
            })
            .collect();
        Err(UserError::new(format!(
            "{} cell{} did not build, so their kernels have no image: {}",
            names.len(),
            if names.len() == 1 { "" } else { "s" },
            names.join("; ")
        ))
        .with_exit_code(EXIT_TESTS_FAILED)
        .into())
    }
}
