//! `cargo kmod ide`.

use crate::Context;

#[derive(Debug, clap::Args)]
pub struct IdeCmd {}

impl IdeCmd {
    pub fn run(&self, _ctx: &Context) -> anyhow::Result<()> {
        crate::bail_user!("`cargo kmod ide` is not implemented yet")
    }
}
