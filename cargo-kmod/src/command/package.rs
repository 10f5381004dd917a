//! `cargo kmod package`.

use crate::Context;

#[derive(Debug, clap::Args)]
pub struct PackageCmd {}

impl PackageCmd {
    pub fn run(&self, _ctx: &Context) -> anyhow::Result<()> {
        crate::bail_user!("`cargo kmod package` is not implemented yet")
    }
}
