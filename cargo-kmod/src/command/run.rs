//! `cargo kmod run`.

use crate::Context;

#[derive(Debug, clap::Args)]
pub struct RunCmd {}

impl RunCmd {
    pub fn run(&self, _ctx: &Context) -> anyhow::Result<()> {
        crate::bail_user!("`cargo kmod run` is not implemented yet")
    }
}
