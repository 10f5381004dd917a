//! `cargo kmod doctor`: check the toolchain against a kernel tree, one line per check.

use std::path::PathBuf;

use anyhow::Result;

use crate::context::Session;
use crate::kernel::Arch;
use crate::ops::doctor::{self, DoctorRequest, Status};

#[derive(Debug, clap::Args)]
pub struct DoctorCmd {
    /// Check this built kernel tree [default: `KDIR`, else the prepared trees]
    #[arg(long, value_name = "DIR")]
    pub kdir: Option<PathBuf>,
    /// Only this architecture (x86_64 or arm64)
    #[arg(long, value_name = "ARCH")]
    pub arch: Option<String>,
}

impl DoctorCmd {
    pub fn run(&self, session: &Session) -> Result<()> {
        let req = DoctorRequest {
            kdir: self.kdir.clone(),
            arch: self.arch.as_deref().map(Arch::parse).transpose()?,
        };
        let checks = doctor::doctor(session, &req)?;
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
