//! `cargo kmod run`: the guest of [`crate::ops::test::prepare`] booted with its modules
//! loaded (and its devices first), then a shell on the console or one command's output and
//! exit status.

use std::time::Duration;

use anyhow::Result;

use crate::context::{Selection, Session, TreeSelection};
use crate::guest::plan::{GuestPlan, Then};
use crate::ops::test::{Guest, GuestModules};
use crate::qemu::exec;

/// What `run` does once booted.
#[derive(Debug, Clone, Default)]
pub struct RunRequest {
    pub guest: GuestModules,
    /// `--exec`: one command instead of a shell.
    pub exec: Option<String>,
    /// Extra kernel arguments.
    pub kernel_args: Vec<String>,
    /// With `--exec`: the guest's time limit.
    pub timeout: Duration,
    /// `--devices-at-boot`: the test devices are in the boot device tree, for drivers built
    /// into the kernel, instead of added by the helper module after boot.
    pub devices_at_boot: bool,
}

/// The plan of a run boot: the modules loaded (the devices' helper first), then `then`.
pub fn plan(guest: &Guest, then: Then, kernel_args: &[String], timeout: Duration) -> GuestPlan {
    let mut plan = exec::plan(&guest.modules, then, kernel_args, timeout);
    if let Some(d) = &guest.devices {
        d.extend_run_plan(&mut plan);
    }
    plan
}

/// Boot: a shell when there is no command (returns `None`), else the command's exit status.
/// `on_start` hears of the guest before it boots; `out` gets the command's output lines.
pub fn run(
    session: &Session,
    select: &Selection,
    trees: &TreeSelection,
    req: &RunRequest,
    on_start: impl FnOnce(&Guest),
    out: impl FnMut(&str),
    log: impl FnMut(&str),
) -> Result<Option<i32>> {
    let shell = &session.shell;
    let mut guest = crate::ops::test::prepare(session, select, trees, &req.guest)?;
    // Held for the boot: the merged tree and the overlays it was made from.
    let _at_boot = if req.devices_at_boot {
        Some(devices_at_boot(session, &mut guest)?)
    } else {
        None
    };
    on_start(&guest);
    let Some(cmd) = &req.exec else {
        let plan = plan(&guest, Then::Shell, &req.kernel_args, Duration::ZERO);
        exec::run_shell_plan(shell, &guest.machine, &plan)?;
        return Ok(None);
    };
    let plan = plan(
        &guest,
        Then::Exec(cmd.clone()),
        &req.kernel_args,
        req.timeout,
    );
    exec::run_exec_plan(shell, &guest.machine, &plan, cmd, out, log).map(Some)
}

/// Move the guest's test devices into its boot device tree: the machine boots with its tree
/// (qemu's compact `virt` tree, or a board's) merged with the devices' overlays, and the
/// helper module is neither put in the guest nor loaded. Returns what must live through the
/// boot.
fn devices_at_boot(
    session: &Session,
    guest: &mut Guest,
) -> Result<(tempfile::TempDir, crate::devices::Prepared)> {
    let shell = &session.shell;
    let Some(devices) = guest.devices.take() else {
        crate::bail_user!(
            "`--devices-at-boot` without test devices";
            hint = "pass `--device FILE`, or declare `devices` in the package"
        );
    };
    if guest.tree.arch != crate::kernel::Arch::Arm64 {
        crate::bail_user!(
            "`--devices-at-boot` needs a device tree at boot, and {} boots without one", guest.tree.arch;
            hint = "use `--arch arm64`"
        );
    }
    if devices.devices.iter().any(|d| {
        matches!(
            d.bus,
            crate::devices::Bus::Pci | crate::devices::Bus::VirtioMmio
        )
    }) {
        crate::bail_user!(
            "PCI and virtio-mmio test devices are qemu's and there from the start: `--devices-at-boot` is for device-tree devices";
            hint = "run without `--devices-at-boot`"
        );
    }
    if devices
        .devices
        .iter()
        .any(|d| d.bus == crate::devices::Bus::Usb)
    {
        crate::bail_user!(
            "USB test devices are gadgets the guest builds after it boots: `--devices-at-boot` is for device-tree devices";
            hint = "run without `--devices-at-boot` (drivers built into the kernel bind a USB device whenever it enumerates)"
        );
    }
    let overlays: Vec<std::path::PathBuf> = devices
        .helper
        .overlays
        .iter()
        .map(|(_, host)| host.clone())
        .collect();
    let dir = tempfile::Builder::new()
        .prefix("cargo-kmod-boot-dtb-")
        .tempdir()?;
    let home = session.home()?;
    let Some(base) = crate::qemu::dtb::boot_tree(shell, &home, &guest.machine, dir.path()) else {
        crate::bail_user!(
            "qemu's device tree for this machine cannot be read back (`-M {}`), so the devices cannot be added to it",
            guest.machine.model.as_deref().unwrap_or("?")
        );
    };
    let merged = dir.path().join("boot-devices.dtb");
    crate::devices::dtc::apply_overlays(shell, &base, &overlays, &merged)?;
    shell.status(
        "Adding",
        format_args!(
            "{} test device(s) to the boot device tree",
            devices.devices.len()
        ),
    );
    guest.machine.dtb = Some(merged);
    Ok((dir, devices))
}
