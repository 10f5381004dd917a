//! `cargo kmod test`.

use crate::Context;

#[derive(Debug, clap::Args)]
pub struct TestCmd {}

impl TestCmd {
    pub fn run(&self, _ctx: &Context) -> anyhow::Result<()> {
        crate::bail_user!("`cargo kmod test` is not implemented yet")
    }
}
