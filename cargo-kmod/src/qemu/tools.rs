//! The host programs a boot needs, each found by one function that `cargo kmod doctor` uses
//! too: the qemu binary of an arch ([`qemu_program`]), a static busybox for the guest
//! ([`busybox`]) and qemu's minimal x86 firmware ([`qboot`]).

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::kernel::home::Home;
use crate::kernel::Arch;

/// The qemu binary for `arch`: `CARGO_KMOD_QEMU_<ARCH>` when set, else `qemu-system-*` on
/// `PATH`, or a user error naming the package to install.
pub fn qemu_program(arch: Arch) -> Result<PathBuf> {
    if let Some(p) =
        crate::env::Env::get().path(&format!("CARGO_KMOD_QEMU_{}", arch.name().to_uppercase()))
    {
        return Ok(p);
    }
    match crate::kernel::toolchain::which(arch.qemu()) {
        Some(p) => Ok(p),
        None => crate::bail_user!(
            "`{}` not found in `PATH`: cannot boot {} kernels", arch.qemu(), arch;
            hint = "install Debian's `{}` package", qemu_package(arch)
        ),
    }
}

/// The Debian package that ships `arch`'s qemu.
pub fn qemu_package(arch: Arch) -> &'static str {
    match arch {
        Arch::X86_64 => "qemu-system-x86",
        Arch::Arm64 => "qemu-system-arm",
    }
}

/// The static busybox for `arch`'s guests: `$CARGO_KMOD_HOME/busybox/<arch>/busybox` when
/// present, else, for the host's arch, Debian's busybox-static at `/bin/busybox` or
/// `/usr/bin/busybox`. A candidate that is not a static ELF for `arch` is refused with the
/// reason: the initramfs has no C library and no loader, so a dynamically linked busybox
/// cannot even start as `/init`.
pub fn busybox(home: &Home, arch: Arch) -> Result<PathBuf> {
    let own = home.busybox(arch.name());
    let mut candidates = vec![own.clone()];
    if arch == Arch::host() {
        candidates.push(PathBuf::from("/bin/busybox"));
        candidates.push(PathBuf::from("/usr/bin/busybox"));
    }
    let mut refused = None;
    for c in &candidates {
        if !c.is_file() {
            continue;
        }
        match elf_kind(c, arch) {
            Ok(()) => return Ok(c.clone()),
            Err(why) => {
                refused.get_or_insert((c.clone(), why));
            }
        }
    }
    let deb_arch = match arch {
        Arch::X86_64 => "amd64",
        Arch::Arm64 => "arm64",
    };
    match refused {
        Some((path, why)) => crate::bail_user!(
            "busybox `{}` cannot run in {} guests: {}", path.display(), arch, why;
            hint = "install Debian's `busybox-static` (for {}: `dpkg -x busybox-static_*_{}.deb DIR`, then copy its `bin/busybox` to `{}`)",
            arch, deb_arch, own.display()
        ),
        None => crate::bail_user!(
            "no static busybox for {}: `{}` does not exist", arch, own.display();
            hint = "install Debian's `busybox-static` for {} and copy its `bin/busybox` there (`dpkg -x busybox-static_*_{}.deb DIR`)",
            arch, deb_arch
        ),
    }
}

/// `Ok` when `path` is a statically linked ELF executable for `arch`, else why not.
fn elf_kind(path: &Path, arch: Arch) -> Result<(), String> {
    use object::read::elf::{FileHeader, ProgramHeader};
    // The ELF and program headers sit at the start of the file.
    let mut data = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| std::io::Read::read_to_end(&mut std::io::Read::take(f, 64 * 1024), &mut data))
        .map_err(|e| crate::ko::io_reason(&e))?;
    let header = object::elf::FileHeader64::<object::Endianness>::parse(&*data)
        .map_err(|_| "it is not a 64-bit ELF executable".to_string())?;
    let endian = header
        .endian()
        .map_err(|_| "its ELF header is corrupt".to_string())?;
    let machine = header.e_machine(endian);
    if machine != arch.elf_machine() {
        return Err(format!(
            "it is built for {}, not {}",
            crate::ko::machine_name(machine),
            arch
        ));
    }
    let phdrs = header
        .program_headers(endian, &*data)
        .map_err(|_| "its program headers are corrupt".to_string())?;
    if phdrs
        .iter()
        .any(|p| p.p_type(endian) == object::elf::PT_INTERP)
    {
        return Err(
            "it is dynamically linked, and the initramfs has no C library to run it".to_string(),
        );
    }
    Ok(())
}

/// qemu's minimal x86 firmware (`qboot.rom`, shipped with Debian's qemu 10): it hands over
/// to the kernel about 0.2 s sooner than SeaBIOS under TCG. `None` when this qemu lacks it.
pub fn qboot(qemu: &Path) -> Option<PathBuf> {
    let mut dirs = vec![PathBuf::from("/usr/share/qemu")];
    if let Some(prefix) = qemu.parent().and_then(Path::parent) {
        dirs.insert(0, prefix.join("share/qemu"));
    }
    dirs.into_iter()
        .map(|d| d.join("qboot.rom"))
        .find(|p| p.is_file())
}

/// Refuse a test device whose `qemu-device` is not a model of `qemu` for its bus (`qemu
/// -device help` lists them as `name "edu", bus PCI`, `name "virtio-rng-device", bus
/// virtio-bus`) before anything boots. The list is cached per qemu (path, size, mtime) and
/// machine, and trusted only to accept: a model it lacks asks qemu again (a wrapper script
/// in `CARGO_KMOD_QEMU_<ARCH>` keeps its identity when the qemu it runs changes).
pub fn check_qemu_models(
    shell: &crate::shell::Shell,
    home: &Home,
    qemu: &Path,
    machine: Option<&str>,
    models: &[QemuModel<'_>],
) -> Result<()> {
    if models.is_empty() {
        return Ok(());
    }
    // No cache for a qemu whose size and mtime cannot be read (a bare name): its key could
    // not tell one qemu from the next.
    let cache = crate::fsutil::file_identity(qemu).map(|id| {
        let key = crate::fsutil::sha256_hex(
            format!(
                "{}\n{id}\n{}\n",
                qemu.display(),
                machine.unwrap_or_default()
            )
            .as_bytes(),
        );
        home.qemu_models(&key[..16])
    });
    if let Some(text) = cache.as_ref().and_then(|c| std::fs::read_to_string(c).ok()) {
        if models
            .iter()
            .all(|m| models_on_bus(&text, m.bus).contains(&m.model))
        {
            return Ok(());
        }
    }
    let sh = xshell::Shell::new()?;
    let machine_args: Vec<&str> = machine.map(|m| vec!["-M", m]).unwrap_or_default();
    let text = crate::process::run(
        shell,
        xshell::cmd!(sh, "{qemu} {machine_args...} -device help"),
    )?;
    // A cache that cannot be written costs the next boot one `-device help`, nothing else.
    if let Some((cache, dir)) = cache.as_ref().and_then(|c| Some((c, c.parent()?))) {
        if std::fs::create_dir_all(dir).is_ok() {
            let _ = crate::fsutil::write_atomic(cache, text.as_bytes());
        }
    }
    for m in models {
        let on_bus = models_on_bus(&text, m.bus);
        if !on_bus.contains(&m.model) {
            let near = crate::text::nearest(m.model, on_bus.iter().copied(), 0.7);
            crate::bail_user!(
                "`qemu-device = \"{}\"` ({}) is not a {} device of `{}`", crate::text::escape(m.model), m.origin, m.what, qemu.display();
                hint = "{}", match near {
                    Some(n) => format!("did you mean `{n}`?"),
                    None => format!("`{} -device help` lists the models (those with `bus {}`)", qemu.display(), m.bus),
                }
            );
        }
    }
    Ok(())
}

/// The models `-device help` lists on `bus` (`name "edu", bus PCI` is `edu` on `PCI`).
fn models_on_bus<'t>(text: &'t str, bus: &str) -> Vec<&'t str> {
    let tail = format!(", bus {bus}");
    text.lines()
        .filter(|l| l.contains(&tail))
        .filter_map(|l| l.trim().strip_prefix("name \"")?.split('"').next())
        .collect()
}

/// A qemu model a test device names, for [`check_qemu_models`].
#[derive(Debug, Clone, Copy)]
pub struct QemuModel<'a> {
    pub model: &'a str,
    /// Where it was declared.
    pub origin: &'a str,
    /// The bus `-device help` names for it: `PCI`, `virtio-bus`.
    pub bus: &'a str,
    /// How messages name that kind of device: `PCI`, `virtio-mmio`.
    pub what: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dynamic_or_foreign_busybox_is_refused_with_the_reason() {
        let home = tempfile::tempdir().unwrap();
        let h = Home {
            root: home.path().to_path_buf(),
        };
        let dir = h.root.join("busybox").join(Arch::host().name());
        std::fs::create_dir_all(&dir).unwrap();
        // The test binary itself: dynamically linked, for the host.
        std::fs::copy(std::env::current_exe().unwrap(), dir.join("busybox")).unwrap();
        let why = elf_kind(&dir.join("busybox"), Arch::host()).unwrap_err();
        assert!(why.contains("dynamically linked"), "{why}");
        let other = match Arch::host() {
            Arch::X86_64 => Arch::Arm64,
            Arch::Arm64 => Arch::X86_64,
        };
        let why = elf_kind(&dir.join("busybox"), other).unwrap_err();
        assert!(why.starts_with("it is built for "), "{why}");
        std::fs::write(dir.join("busybox"), "#!/bin/sh\n").unwrap();
        let why = elf_kind(&dir.join("busybox"), Arch::host()).unwrap_err();
        assert_eq!(why, "it is not a 64-bit ELF executable");
    }

    #[test]
    fn the_model_list_is_cached_and_only_trusted_to_accept() {
        let home = tempfile::tempdir().unwrap();
        let h = Home {
            root: home.path().to_path_buf(),
        };
        let shell = crate::shell::Shell::new(
            crate::shell::Verbosity::Quiet,
            crate::shell::MessageFormat::Human,
            crate::shell::ColorChoice::Never,
        );
        // A qemu that cannot run (a file, not a program): an answer can only come from the
        // cache.
        let qemu = home.path().join("no-such-qemu");
        std::fs::write(&qemu, "not a program\n").unwrap();
        let model = |m: &'static str| QemuModel {
            model: m,
            origin: "Cargo.toml",
            bus: "PCI",
            what: "PCI",
        };
        let id = crate::fsutil::file_identity(&qemu).unwrap();
        let key = crate::fsutil::sha256_hex(format!("{}\n{id}\nvirt\n", qemu.display()).as_bytes());
        let cache = h.qemu_models(&key[..16]);
        std::fs::create_dir_all(cache.parent().unwrap()).unwrap();
        std::fs::write(
            &cache,
            "name \"edu\", bus PCI\nname \"pci-testdev\", bus PCI, desc \"PCI Test Device\"\nname \"virtio-rng-device\", bus virtio-bus\n",
        )
        .unwrap();
        check_qemu_models(
            &shell,
            &h,
            &qemu,
            Some("virt"),
            &[model("pci-testdev"), model("edu")],
        )
        .unwrap();
        // Not in the list: qemu is asked again (and here cannot be run).
        let e = check_qemu_models(
            &shell,
            &h,
            &qemu,
            Some("virt"),
            &[model("virtio-rng-device")],
        )
        .unwrap_err();
        assert!(format!("{e:#}").contains("no-such-qemu"), "{e:#}");
        assert_eq!(
            models_on_bus(&std::fs::read_to_string(&cache).unwrap(), "virtio-bus"),
            ["virtio-rng-device"]
        );
    }
}
