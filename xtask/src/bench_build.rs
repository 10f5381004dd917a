//! `cargo xtask bench build`: build-speed benchmark against plain `make -C KDIR M=...`.

use anyhow::Result;

pub fn run(_sh: &xshell::Shell) -> Result<()> {
    anyhow::bail!("not written yet")
}
