//! A boot target as data: which qemu, which machine model, which kernel file, where the
//! console is and how the guest talks to the host.
//!
//! [`Machine::for_tree`] derives the fastest faithful target for a [`KernelTree`]:
//!
//! - x86_64: `-M pc` with qemu's `qboot.rom` firmware when qemu ships it, and the tree's
//!   `vmlinux` through its PVH entry point when the tree has `CONFIG_PVH=y` (no bzImage
//!   decompression); `bzImage` otherwise. Console `ttyS0`, protocol on `ttyS1`.
//! - arm64: `-M virt` with the `Image`; console `ttyAMA0`, protocol on a second PL011
//!   (`ttyAMA1`: qemu creates it when given a second `-serial`).
//!
//! Boards ([`Machine::for_board`]: `-M raspi4b`/`raspi3b` with the board's DTB) have the
//! protocol on their second UART (the raspi models' mini UART, `ttyS1`); a board with one
//! usable UART uses [`Channel::SharedConsole`]: the protocol shares the console, and only
//! lines carrying the boot's token count.

use std::ffi::OsString;
use std::path::PathBuf;

use anyhow::Result;

use crate::kernel::board::BoardMachine;
use crate::kernel::{Arch, KernelTree};
use crate::qemu::tools;

/// How qemu executes the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    /// Software emulation: slower, works everywhere (the dependable default).
    Tcg,
    /// Hardware virtualization through `/dev/kvm` (host arch only).
    Kvm,
}

impl Accel {
    pub fn name(self) -> &'static str {
        match self {
            Accel::Tcg => "tcg",
            Accel::Kvm => "kvm",
        }
    }
}

/// How the guest's `/init` reports to the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Channel {
    /// A UART of its own, not a kernel console: the kernel log cannot write to it. `device`
    /// is its name in the guest (`ttyS1`); qemu gets a second `-serial`.
    Uart { device: String },
    /// The console UART carries the protocol too (machines with one usable UART). Only
    /// well-formed lines that start with the boot's token are trusted.
    SharedConsole,
}

/// A qemu boot target.
#[derive(Debug, Clone)]
pub struct Machine {
    pub arch: Arch,
    /// The qemu binary.
    pub qemu: PathBuf,
    /// `-M` (machine model and options).
    pub model: Option<String>,
    /// `-cpu`.
    pub cpu: Option<String>,
    /// `-m`, in MiB.
    pub memory_mb: u32,
    /// `-smp` (`None`: the machine model's own, for boards with a fixed CPU count).
    pub smp: Option<u32>,
    /// `-bios`.
    pub firmware: Option<PathBuf>,
    /// `-kernel`.
    pub kernel: PathBuf,
    /// `-dtb`.
    pub dtb: Option<PathBuf>,
    /// The kernel's name for the console UART (`console=` on the command line).
    pub console: String,
    pub channel: Channel,
    pub accel: Accel,
    /// Anything else for qemu (`-nic user,hostfwd=...`, `-device ...`).
    pub extra_args: Vec<OsString>,
    /// Kernel command-line arguments this target needs (`earlycon=...` on a board), before
    /// the plan's.
    pub kernel_args: Vec<String>,
    /// The kernel reads a virtio disk on virtio-mmio (`VIRTIO_BLK`, `VIRTIO_MMIO` built in):
    /// its test boots can resume a snapshot ([`crate::qemu::snapshot`]).
    pub virtio_disk: bool,
}

/// A `-device` value of cargo-kmod's PCI or virtio-mmio test devices (`...,id=kmod-pciN`,
/// `...,id=kmod-mmioN`).
fn is_test_device(value: &str) -> bool {
    value.contains(",id=kmod-pci") || value.contains(",id=kmod-mmio")
}

impl Machine {
    /// The target for booting `tree` under qemu with `accel`. Checks that the boot image and
    /// the qemu binary exist.
    pub fn for_tree(tree: &KernelTree, accel: Accel) -> Result<Machine> {
        let image = tree.image();
        if !image.is_file() {
            crate::bail_user!(
                "kernel tree `{}` has no boot image `{}`", tree.dir.display(), tree.arch.image();
                hint = "build the kernel first (`make -C {}`)", tree.dir.display()
            );
        }
        let qemu = tools::qemu_program(tree.arch)?;
        // A distribution's kernel: its own image (its `vmlinux` is the BTF-only one of the
        // headers, not bootable), and the memory a general-purpose kernel wants.
        let distro = crate::kernel::distro::complete::is_completion(&tree.dir);
        let memory_mb = if distro { 1024 } else { 256 };
        Ok(match tree.arch {
            Arch::X86_64 => {
                // PVH: qemu loads the ELF `vmlinux` and enters it in 64-bit mode directly.
                let vmlinux = tree.dir.join("vmlinux");
                let kernel = if tree.config.is_enabled("PVH") && vmlinux.is_file() && !distro {
                    vmlinux
                } else {
                    image
                };
                Machine {
                    arch: tree.arch,
                    firmware: tools::qboot(&qemu),
                    qemu,
                    model: None,
                    cpu: None,
                    memory_mb,
                    smp: Some(1),
                    kernel,
                    dtb: None,
                    console: "ttyS0".into(),
                    channel: Channel::Uart {
                        device: "ttyS1".into(),
                    },
                    accel,
                    extra_args: Vec::new(),
                    // Under TCG on a busy host the IO-APIC timer check can miss its ticks
                    // and panic ("IO-APIC + timer doesn't work!"); the timer is fine.
                    kernel_args: vec!["no_timer_check".into()],
                    virtio_disk: false,
                }
            }
            Arch::Arm64 => Machine {
                arch: tree.arch,
                qemu,
                model: Some("virt".into()),
                cpu: Some(
                    if accel == Accel::Kvm {
                        "host"
                    } else {
                        "cortex-a57"
                    }
                    .into(),
                ),
                memory_mb,
                smp: Some(1),
                firmware: None,
                kernel: image,
                dtb: None,
                console: "ttyAMA0".into(),
                channel: Channel::Uart {
                    device: "ttyAMA1".into(),
                },
                accel,
                extra_args: Vec::new(),
                kernel_args: Vec::new(),
                virtio_disk: tree.config.is_enabled("VIRTIO_BLK")
                    && tree.config.is_enabled("VIRTIO_MMIO"),
            },
        })
    }

    /// A board model for `tree` (`-M raspi4b`, from [`crate::kernel::board`]): the model's
    /// memory and its own CPU count (the raspi models refuse others), no `-cpu`, the board's
    /// DTB, its console UART, and the protocol on the board's second UART, or on the console
    /// when the board has none.
    pub fn for_board(tree: &KernelTree, accel: Accel, board: &BoardMachine) -> Result<Machine> {
        let mut m = Machine::for_tree(tree, accel)?;
        m.model = Some(board.qemu_machine.clone());
        m.cpu = None;
        m.smp = None;
        // Snapshots are for the dev trees' `virt` boots only.
        m.virtio_disk = false;
        if let Some(mb) = board.memory_mb {
            m.memory_mb = mb;
        }
        m.dtb = board.dtb.clone();
        if let Some(c) = &board.console {
            m.console = c.clone();
        }
        m.channel = match &board.channel {
            Some(device) => Channel::Uart {
                device: device.clone(),
            },
            None => Channel::SharedConsole,
        };
        Ok(m)
    }

    /// Whether nothing is added to the machine but cargo-kmod's PCI and virtio-mmio test
    /// devices (`-device MODEL,addr=...,id=kmod-pciN`, `-device
    /// MODEL,bus=virtio-mmio-bus.N,id=kmod-mmioN`). They add no node to `virt`'s device
    /// tree: PCI devices are enumerated, and the virtio-mmio transports are there already.
    pub fn adds_only_test_devices(&self) -> bool {
        self.extra_args.chunks(2).all(|pair| match pair {
            [flag, value] => flag == "-device" && value.to_str().is_some_and(is_test_device),
            _ => false,
        })
    }

    /// Whether every `-device` among the extra arguments is a test device (other arguments,
    /// such as `-icount`, do not count).
    pub fn devices_are_test_devices(&self) -> bool {
        let mut args = self.extra_args.iter();
        while let Some(a) = args.next() {
            match a.to_str() {
                Some("-device") => {
                    if !args
                        .next()
                        .and_then(|v| v.to_str())
                        .is_some_and(is_test_device)
                    {
                        return false;
                    }
                }
                Some(s) if !s.starts_with("-device") => {}
                _ => return false,
            }
        }
        true
    }

    /// Whether the machine is qemu's `virt` (arm64's default), in any version
    /// (`virt-9.2`) and with any options (`virt,gic-version=3`), rather than a board model.
    pub fn is_virt(&self) -> bool {
        self.model.as_deref().is_some_and(|m| {
            let base = m.split(',').next().unwrap_or_default();
            base == "virt" || base.starts_with("virt-")
        })
    }

    /// The target for a boot that runs its script to the end with nobody waiting on it (a
    /// test run). Under TCG on arm64's `virt` with one CPU, the guest's clock counts
    /// instructions and jumps over idle time (`-icount shift=auto,sleep=off`): the settle
    /// time after the last unload and every other guest sleep last as long in guest time,
    /// so timers still fire inside them, but cost no wall time (about 60 ms of a 0.6 s test
    /// boot). Not for interactive, background or networked guests, whose idle time is
    /// waiting for the outside world, nor for board models with several CPUs; not for
    /// x86_64 either, whose boot is slower under icount (measured).
    pub fn for_batch(&self) -> Machine {
        let mut m = self.clone();
        if m.accel == Accel::Tcg
            && m.arch == Arch::Arm64
            && m.model.as_deref() == Some("virt")
            && m.smp == Some(1)
        {
            m.extra_args
                .extend(["-icount".into(), "shift=auto,sleep=off".into()]);
        }
        m
    }

    /// The same target started by UEFI firmware with Secure Boot on (`fw`'s code and
    /// variables as flash drives, its signed image) instead of qemu's direct boot.
    pub fn with_secure_boot(mut self, fw: &crate::qemu::uefi::SecureBootFirmware) -> Machine {
        self.firmware = None;
        self.kernel = fw.kernel.clone();
        self.extra_args.extend(fw.qemu_args());
        // A snapshot is of a direct boot; this one starts in the firmware every time.
        self.virtio_disk = false;
        self
    }

    /// The same target with the protocol on the console (as on a one-UART board).
    pub fn with_shared_console(mut self) -> Machine {
        self.channel = Channel::SharedConsole;
        self
    }

    /// qemu's arguments. `console` and `channel` are the `-serial` backends of the console
    /// UART and (for [`Channel::Uart`]) the protocol UART.
    pub fn args(&self, console: &str, channel: Option<&str>) -> Vec<OsString> {
        let mut a: Vec<OsString> = Vec::new();
        let mut push = |s: &str| a.push(s.into());
        if let Some(m) = &self.model {
            push("-M");
            push(m);
        }
        if let Some(c) = &self.cpu {
            push("-cpu");
            push(c);
        }
        for s in [
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            "-no-reboot",
        ] {
            push(s);
        }
        if let Some(n) = self.smp {
            push("-smp");
            push(&n.to_string());
        }
        push("-m");
        push(&self.memory_mb.to_string());
        push("-accel");
        push(self.accel.name());
        push("-serial");
        push(console);
        if let (Channel::Uart { .. }, Some(ch)) = (&self.channel, channel) {
            push("-serial");
            push(ch);
        }
        if let Some(f) = &self.firmware {
            a.push("-bios".into());
            a.push(f.clone().into());
        }
        a.push("-kernel".into());
        a.push(self.kernel.clone().into());
        if let Some(d) = &self.dtb {
            a.push("-dtb".into());
            a.push(d.clone().into());
        }
        a.extend(self.extra_args.iter().cloned());
        a
    }

    /// A one-CPU arm64 `virt` target under TCG, for unit tests.
    #[cfg(test)]
    pub(crate) fn test_virt() -> Machine {
        Machine {
            arch: Arch::Arm64,
            qemu: "qemu-system-aarch64".into(),
            model: Some("virt".into()),
            cpu: Some("cortex-a57".into()),
            memory_mb: 256,
            smp: Some(1),
            firmware: None,
            kernel: "/k/Image".into(),
            dtb: None,
            console: "ttyAMA0".into(),
            channel: Channel::Uart {
                device: "ttyAMA1".into(),
            },
            accel: Accel::Tcg,
            extra_args: vec![],
            kernel_args: vec![],
            virtio_disk: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arm() -> Machine {
        Machine::test_virt()
    }

    fn strings(v: Vec<OsString>) -> Vec<String> {
        v.iter().map(|s| s.to_string_lossy().into_owned()).collect()
    }

    #[test]
    fn virt_in_any_version_is_virt_and_a_board_is_not() {
        let with = |model: Option<&str>| Machine {
            model: model.map(str::to_string),
            ..Machine::test_virt()
        };
        for m in [
            "virt",
            "virt-9.2",
            "virt,gic-version=3",
            "virt-8.0,highmem=off",
        ] {
            assert!(with(Some(m)).is_virt(), "{m}");
        }
        for m in [Some("raspi4b"), Some("virtual"), Some("pc"), None] {
            assert!(!with(m).is_virt(), "{m:?}");
        }
    }

    #[test]
    fn args_carry_both_uarts() {
        let a = strings(arm().args("stdio", Some("file:/dev/fd/3")));
        assert_eq!(&a[..4], ["-M", "virt", "-cpu", "cortex-a57"]);
        let serials: Vec<&str> = a
            .windows(2)
            .filter(|w| w[0] == "-serial")
            .map(|w| w[1].as_str())
            .collect();
        assert_eq!(serials, ["stdio", "file:/dev/fd/3"]);
        assert!(a.ends_with(&["-kernel".into(), "/k/Image".into()]));
        // One UART: the channel backend is not used.
        let a = strings(
            arm()
                .with_shared_console()
                .args("mon:stdio", Some("file:/dev/fd/3")),
        );
        assert_eq!(a.iter().filter(|s| *s == "-serial").count(), 1);
    }

    #[test]
    fn firmware_dtb_and_extra_args() {
        let mut m = arm();
        m.firmware = Some("/usr/share/qemu/qboot.rom".into());
        m.dtb = Some("/b/board.dtb".into());
        m.extra_args = vec!["-nic".into(), "user".into()];
        let a = strings(m.args("stdio", None));
        let s = a.join(" ");
        assert!(
            s.contains(
                "-bios /usr/share/qemu/qboot.rom -kernel /k/Image -dtb /b/board.dtb -nic user"
            ),
            "{s}"
        );
    }

    #[test]
    fn batch_boots_skip_idle_time_only_on_one_cpu_arm64_virt_under_tcg() {
        let icount = |m: &Machine| strings(m.for_batch().args("stdio", None)).join(" ");
        assert!(icount(&arm()).ends_with("-icount shift=auto,sleep=off"));
        let mut kvm = arm();
        kvm.accel = Accel::Kvm;
        assert!(!icount(&kvm).contains("-icount"));
        let mut board = arm();
        board.model = Some("raspi4b".into());
        board.smp = None;
        assert!(!icount(&board).contains("-icount"));
        let mut x86 = arm();
        x86.arch = Arch::X86_64;
        x86.model = None;
        assert!(!icount(&x86).contains("-icount"));
    }
}
