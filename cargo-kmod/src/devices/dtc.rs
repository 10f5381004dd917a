//! Compiling overlay sources with the device-tree compiler (`dtc`, Debian's
//! `device-tree-compiler`).
//!
//! Overlays are compiled without `-@`: `-@` adds a `__symbols__` node for the overlay's
//! labels, and the kernel refuses such an overlay ("symbols in overlay, but not in live
//! tree") unless the live tree has `/__symbols__`, which neither qemu's `-M virt` tree nor
//! the kernel's empty x86 root has. References between an overlay's own nodes still work:
//! dtc writes `__local_fixups__` for every `/plugin/`.

use std::path::{Path, PathBuf};

use anyhow::Result;
use xshell::cmd;

use crate::error::UserError;
use crate::shell::Shell;

/// The `dtc` program, or a user error naming the package to install.
pub fn program() -> Result<PathBuf> {
    match crate::kernel::toolchain::which("dtc") {
        Some(p) => Ok(p),
        None => crate::bail_user!(
            "`dtc` not found in `PATH`: test devices are compiled into a device-tree overlay";
            hint = "install Debian's `device-tree-compiler` package"
        ),
    }
}

/// Compile `source` (`.dtso`) into `output` (`.dtbo`, written atomically). `what` names the
/// source in errors. dtc's warnings are returned, its errors become a user error quoting
/// dtc (which names the file, line and column).
pub fn compile(shell: &Shell, source: &Path, output: &Path, what: &str) -> Result<Vec<String>> {
    let dtc = program()?;
    let sh = xshell::Shell::new()?;
    let dir = output.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = tempfile::Builder::new()
        .prefix(".kmod-dtbo-")
        .tempfile_in(dir)?;
    let tmp_path = tmp.path().to_path_buf();
    let c = cmd!(sh, "{dtc} -I dts -O dtb -o {tmp_path} {source}");
    let line = c.to_string();
    shell.verbose("Running", format_args!("`{line}`"));
    let out = c
        .quiet()
        .ignore_status()
        .output()
        .map_err(|e| crate::process::ProcessError {
            command: line.clone(),
            status: format!("could not start: {e}"),
            tail: vec![],
            log: None,
        })?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<String> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    if !out.status.success() {
        let errors: Vec<&str> = lines
            .iter()
            .filter(|l| !l.starts_with("FATAL ERROR: Unable to parse input tree"))
            .map(|l| l.strip_prefix("Error: ").unwrap_or(l))
            .collect();
        let first = errors.first().copied().unwrap_or("dtc failed");
        // dtc says `FILE:LINE.COL-COL message`; name the place like the rest of the errors.
        let src = source.display().to_string();
        let msg = match first
            .strip_prefix(src.as_str())
            .and_then(|r| r.strip_prefix(':'))
            .and_then(|r| r.split_once(' '))
        {
            Some((at, msg)) => format!("invalid device overlay `{src}:{at}`: {msg}"),
            None => format!("invalid device overlay {what}: {first}"),
        };
        let mut e = UserError::new(msg);
        let rest: Vec<&str> = errors.iter().skip(1).take(8).copied().collect();
        e = e.with_hint(if rest.is_empty() {
            format!("dtc said so running `{line}`")
        } else {
            format!("{}\n(dtc: `{line}`)", rest.join("\n"))
        });
        return Err(e.into());
    }
    tmp.persist(output)
        .map_err(|e| e.error)
        .map_err(|e| anyhow::anyhow!("cannot write `{}`: {e}", output.display()))?;
    Ok(lines
        .into_iter()
        .filter(|l| l.contains("Warning"))
        .collect())
}

/// Merge the compiled `overlays` into the device tree blob `base`, writing `output`
/// (`fdtoverlay`, from the same package as dtc): the devices of a boot that has them from
/// the start (`run --devices-at-boot`). An overlay that targets a node the base tree does
/// not have (the helper's I2C bus or interrupt controller, which exist only once the helper
/// module adds them) is a user error quoting fdtoverlay.
pub fn apply_overlays(
    shell: &Shell,
    base: &Path,
    overlays: &[PathBuf],
    output: &Path,
) -> Result<()> {
    let Some(tool) = crate::kernel::toolchain::which("fdtoverlay") else {
        crate::bail_user!(
            "`fdtoverlay` not found in `PATH`: devices at boot are merged into the boot device tree";
            hint = "install Debian's `device-tree-compiler` package"
        );
    };
    let sh = xshell::Shell::new()?;
    let c = cmd!(sh, "{tool} -i {base} -o {output} {overlays...}");
    let line = c.to_string();
    shell.verbose("Running", format_args!("`{line}`"));
    let out = c.quiet().ignore_status().output()?;
    if !out.status.success() {
        let text = String::from_utf8_lossy(&out.stderr);
        let first = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or("fdtoverlay failed");
        crate::bail_user!(
            "the test devices cannot go in the boot device tree: {}", crate::text::escape(first);
            hint = "only devices on the root (platform devices) exist at boot; I2C devices and interrupt lines need the helper module (run without `--devices-at-boot`)"
        );
    }
    Ok(())
}
