//! `cargo kmod doctor`: check the toolchain against a kernel tree, one line per check.

use std::path::PathBuf;

use anyhow::Result;

use crate::context::Session;
use crate::tree::doctor::{self, Check, Status};
use crate::tree::home::Home;
use crate::tree::toolchain::Toolchain;
use crate::tree::{Arch, KernelTree};

#[derive(Debug, clap::Args)]
pub struct DoctorCmd {
    /// Check this built kernel tree [default: the dev trees from `cargo kmod init`]
    #[arg(long, value_name = "DIR", env = "KDIR")]
    pub kdir: Option<PathBuf>,
    /// Only this architecture (x86_64 or arm64)
    #[arg(long, value_name = "ARCH")]
    pub arch: Option<String>,
}

impl DoctorCmd {
    pub fn run(&self, session: &Session) -> Result<()> {
        let home = Home::from_env()?;
        let tc = Toolchain::detect(&home);
        let arch = self.arch.as_deref().map(Arch::parse).transpose()?;
        let mut checks = doctor::host(&tc);
        let mut trees = Vec::new();
        if let Some(dir) = &self.kdir {
            match KernelTree::open(dir) {
                Ok(t) => {
                    if let Some(a) = arch {
                        if a != t.arch {
                            crate::bail_user!(
                                "kernel tree `{}` is for {}, not {}",
                                dir.display(),
                                t.arch,
                                a
                            );
                        }
                    }
                    trees.push(t)
                }
                Err(e) => checks.push(Check {
                    name: "kernel tree".into(),
                    status: Status::Fail,
                    message: crate::error::render(&e).0,
                    fix: Some("pass the output directory of a built kernel".into()),
                }),
            }
        } else {
            let arches: Vec<Arch> = arch.map(|a| vec![a]).unwrap_or_else(|| Arch::ALL.to_vec());
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
                    match KernelTree::open(&p.dir) {
                        Ok(t) => trees.push(t),
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
        let mut arches: Vec<Arch> = trees.iter().map(|t| t.arch).collect();
        if arches.is_empty() {
            arches = arch.map(|a| vec![a]).unwrap_or_else(|| Arch::ALL.to_vec());
        }
        arches.sort();
        arches.dedup();
        for t in &trees {
            checks.extend(doctor::tree(t, &tc));
        }
        for a in arches {
            checks.extend(doctor::boot_tools(&home, a));
        }
        for c in &checks {
            if session.shell.is_json() {
                session.shell.json(&serde_json::to_value(c)?);
            } else {
                session.shell.out(c.line());
            }
        }
        let failed = checks.iter().filter(|c| c.status == Status::Fail).count();
        if failed > 0 {
            crate::bail_user!(
                "doctor found {} problem{}", failed, if failed == 1 { "" } else { "s" };
                hint = "each `FAIL` line above says its fix"
            );
        }
        Ok(())
    }
}
