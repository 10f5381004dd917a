//! `cargo kmod verify`.

use crate::Context;

#[derive(Debug, clap::Args)]
pub struct VerifyCmd {}

impl VerifyCmd {
    pub fn run(&self, _ctx: &Context) -> anyhow::Result<()> {
        crate::bail_user!("`cargo kmod verify` is not implemented yet")
    }
}
