//! `cargo kmod doctor`.

use crate::Context;

#[derive(Debug, clap::Args)]
pub struct DoctorCmd {}

impl DoctorCmd {
    pub fn run(&self, _ctx: &Context) -> anyhow::Result<()> {
        crate::bail_user!("`cargo kmod doctor` is not implemented yet")
    }
}
