//! `cargo kmod build`.

use crate::Context;

#[derive(Debug, clap::Args)]
pub struct BuildCmd {}

impl BuildCmd {
    pub fn run(&self, _ctx: &Context) -> anyhow::Result<()> {
        crate::bail_user!("`cargo kmod build` is not implemented yet")
    }
}
