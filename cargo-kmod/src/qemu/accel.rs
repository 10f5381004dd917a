//! KVM when it works, TCG otherwise.
//!
//! `/dev/kvm` can exist and still not work (on this project's CI machines `-enable-kvm` hung
//! or aborted), so KVM is used only after a probe boot of the very kernel about to be tested
//! printed a marker within a short deadline. The verdict is cached per qemu version and host
//! kernel in `$CARGO_KMOD_HOME/kvm-probe.json`. `CARGO_KMOD_ACCEL=tcg|kvm|auto` overrides.

use std::time::Duration;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::guest::plan::GuestPlan;
use crate::kernel::home::Home;
use crate::kernel::{Arch, KernelTree};
use crate::qemu::machine::{Accel, Machine};
use crate::qemu::session;
use crate::qemu::tools::qemu_program;
use crate::shell::Shell;

/// How long the probe boot may take before KVM is declared broken.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Verdict {
    qemu: String,
    host: String,
    works: bool,
    reason: String,
}

/// The accelerator for booting `tree`.
pub fn choose(shell: &Shell, tree: &KernelTree) -> Result<Accel> {
    match crate::env::Env::get()
        .var("CARGO_KMOD_ACCEL")
        .unwrap_or_default()
    {
        "tcg" => return Ok(Accel::Tcg),
        "kvm" => return Ok(Accel::Kvm),
        "" | "auto" => {}
        other => crate::bail_user!(
            "`CARGO_KMOD_ACCEL` is `{}`", other;
            hint = "use `tcg`, `kvm` or `auto`"
        ),
    }
    if tree.arch != Arch::host() || !kvm_device_usable() {
        return Ok(Accel::Tcg);
    }
    let home = Home::from_env()?;
    let qemu = qemu_program(tree.arch)?;
    let sh = xshell::Shell::new()?;
    let Some(qemu_version) =
        crate::process::version_line(&sh, &qemu.to_string_lossy(), &["--version"])
    else {
        // qemu does not run at all: the boot itself will say so.
        return Ok(Accel::Tcg);
    };
    let host = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string();
    let cache = home.kvm_probe();
    if let Some(v) = std::fs::read(&cache)
        .ok()
        .and_then(|d| serde_json::from_slice::<Verdict>(&d).ok())
    {
        if v.qemu == qemu_version && v.host == host {
            return Ok(if v.works { Accel::Kvm } else { Accel::Tcg });
        }
    }
    shell.status(
        "Probing",
        "whether KVM works (once per qemu and host kernel)",
    );
    let plan = GuestPlan {
        timeout: PROBE_TIMEOUT,
        ..GuestPlan::default()
    };
    let probe = Machine::for_tree(tree, Accel::Kvm)
        .and_then(|m| session::run_plan(shell, &m, &plan, |_| {})?.ensure_complete(PROBE_TIMEOUT));
    let (works, reason) = match probe {
        Ok(()) => (true, "the probe boot ran its script".to_string()),
        Err(e) => (false, crate::error::render(&e).0),
    };
    // A failure that is not about KVM (a broken image, say) tells nothing: don't cache it.
    let about_kvm =
        works || reason.contains("did not finish") || reason.to_lowercase().contains("kvm");
    if !works {
        shell.note(format!("KVM does not work here, using TCG: {reason}"));
    }
    if about_kvm {
        let v = Verdict {
            qemu: qemu_version,
            host,
            works,
            reason,
        };
        let _ = home.ensure_dir(&home.root);
        let _ = crate::fsutil::write_atomic(&cache, serde_json::to_string_pretty(&v)?.as_bytes());
    }
    Ok(if works { Accel::Kvm } else { Accel::Tcg })
}

fn kvm_device_usable() -> bool {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok()
}
