//! `cargo kmod info`.

use crate::Context;

#[derive(Debug, clap::Args)]
pub struct InfoCmd {}

impl InfoCmd {
    pub fn run(&self, _ctx: &Context) -> anyhow::Result<()> {
        crate::bail_user!("`cargo kmod info` is not implemented yet")
    }
}
