//! `cargo kmod install`.

use crate::Context;

#[derive(Debug, clap::Args)]
pub struct InstallCmd {}

impl InstallCmd {
    pub fn run(&self, _ctx: &Context) -> anyhow::Result<()> {
        crate::bail_user!("`cargo kmod install` is not implemented yet")
    }
}
