//! `cargo kmod new`.

use crate::Context;

#[derive(Debug, clap::Args)]
pub struct NewCmd {}

impl NewCmd {
    pub fn run(&self, _ctx: &Context) -> anyhow::Result<()> {
        crate::bail_user!("`cargo kmod new` is not implemented yet")
    }
}
