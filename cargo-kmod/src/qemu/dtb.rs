//! qemu's own device tree for `-M virt`, handed back compact.
//!
//! qemu builds the `virt` machine's tree in a 1 MiB blob that is almost all free space, and
//! gives the kernel the whole blob. The kernel checksums all of it while it boots and copies
//! all of it for `/sys/firmware/fdt`: two passes over 1 MiB, about 6M guest instructions, a
//! fifth of a dev tree's boot to `/init` under TCG. So a boot asks qemu for its tree once
//! (`-M virt,dumpdtb=FILE` with every other argument of that boot, so the tree is the one
//! this machine would get), keeps it compact under `~/.cargo-kmod/qemu/`, and boots with
//! `-dtb`: the same nodes and properties, with a fresh `rng-seed` and `kaslr-seed` each boot
//! (qemu refreshes those only in a tree it builds itself).
//!
//! Not for a machine with a tree of its own (boards) or with extra `-device`s (a dynamic
//! sysbus device adds nodes). Anything unexpected (a qemu without `dumpdtb`, a dump that is
//! not a `virt` tree, a memory reservation) keeps qemu's own tree, with a note under `-v`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::fdt::{self, Node};
use crate::guest::protocol::random_bytes;
use crate::kernel::home::Home;
use crate::kernel::Arch;
use crate::qemu::machine::Machine;
use crate::shell::Shell;

/// The `-dtb` of a boot of `machine`: its own tree (a board's), else the compact one written
/// into `dir`, else `None` (qemu's own tree).
pub fn boot_tree(shell: &Shell, home: &Home, machine: &Machine, dir: &Path) -> Option<PathBuf> {
    if machine.dtb.is_some() {
        return machine.dtb.clone();
    }
    if !compacts(machine) {
        return None;
    }
    match write_tree(shell, home, machine, dir) {
        Ok(path) => Some(path),
        Err(e) => {
            shell.verbose(
                "Skipping",
                format_args!("the compact device tree, booting with qemu's own: {e:#}"),
            );
            None
        }
    }
}

/// Whether a boot of `m` gets the compact tree: arm64 `virt` with no tree of its own and
/// nothing added to the machine but cargo-kmod's test devices (they add no node; the tree
/// is dumped with them all the same, and cached per command line).
pub(crate) fn compacts(m: &Machine) -> bool {
    m.arch == Arch::Arm64 && m.dtb.is_none() && m.is_virt() && m.devices_are_test_devices()
}

fn write_tree(shell: &Shell, home: &Home, machine: &Machine, dir: &Path) -> Result<PathBuf> {
    let args = dump_args(machine);
    let cached = home.qemu_dir().join(format!("{}.dtb", key(machine, &args)));
    let blob = match std::fs::read(&cached) {
        Ok(b) => b,
        Err(_) => {
            let blob = dump(shell, machine, args, &cached)?;
            crate::fsutil::write_atomic(&cached, &blob)?;
            blob
        }
    };
    let mut root = fdt::parse(&blob).with_context(|| format!("`{}`", cached.display()))?;
    reseed(&mut root)?;
    let path = dir.join("virt.dtb");
    std::fs::write(&path, fdt::to_blob(&root))
        .with_context(|| format!("cannot write `{}`", path.display()))?;
    Ok(path)
}

/// The boot's arguments without the kernel, with the serial backends `null`: what decides
/// the tree qemu builds.
fn dump_args(m: &Machine) -> Vec<OsString> {
    let mut a = m.args("null", Some("null"));
    if let Some(i) = a.iter().position(|s| s == "-kernel") {
        a.drain(i..(i + 2).min(a.len()));
    }
    a
}

/// The cache name: qemu (path, size, mtime) and the arguments.
fn key(m: &Machine, args: &[OsString]) -> String {
    let mut text = format!(
        "{}\n{}\n",
        m.qemu.display(),
        crate::fsutil::file_identity(&m.qemu).unwrap_or_default()
    );
    for a in args {
        text.push_str(&a.to_string_lossy());
        text.push('\n');
    }
    let hash = crate::fsutil::sha256_hex(text.as_bytes());
    format!("virt-{}", &hash[..16])
}

/// Ask qemu for the tree (`-M virt,dumpdtb=FILE`: qemu writes it and exits) and make it
/// compact. `next_to` is where the result will be cached; the raw dump is written beside it.
fn dump(shell: &Shell, m: &Machine, mut args: Vec<OsString>, next_to: &Path) -> Result<Vec<u8>> {
    let dir = next_to.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create `{}`", dir.display()))?;
    let raw = tempfile::Builder::new()
        .prefix(".kmod-dump-")
        .suffix(".dtb")
        .tempfile_in(dir)
        .with_context(|| format!("cannot write in `{}`", dir.display()))?;
    let Some(model) = args
        .iter()
        .position(|s| s == "-M")
        .and_then(|i| args.get_mut(i + 1))
    else {
        bail!("no `-M` among qemu's arguments");
    };
    // qemu's option syntax: a comma in a value is written twice.
    let file = raw.path().to_string_lossy().replace(',', ",,");
    *model = format!("{},dumpdtb={file}", model.to_string_lossy()).into();
    let sh = xshell::Shell::new()?;
    let qemu = &m.qemu;
    crate::process::run(shell, xshell::cmd!(sh, "{qemu} {args...}"))?;
    let blob = std::fs::read(raw.path())?;
    compact(&blob)
}

/// The compact form of a dumped `virt` tree; an error for anything else.
fn compact(blob: &[u8]) -> Result<Vec<u8>> {
    let root = fdt::parse(blob)?;
    if fdt::reserves_memory(blob)? {
        bail!("the tree reserves memory");
    }
    let virt = root
        .strings("compatible")
        .is_some_and(|c| c.iter().any(|s| s == "linux,dummy-virt"));
    if !virt || root.child("chosen").is_none() {
        bail!("not a `virt` machine's tree");
    }
    Ok(fdt::to_blob(&root))
}

/// Fresh random bytes for `/chosen`'s `rng-seed` and `kaslr-seed`, same lengths.
fn reseed(root: &mut Node) -> Result<()> {
    let Some(chosen) = root.children.iter_mut().find(|c| c.name == "chosen") else {
        return Ok(());
    };
    for (name, value) in &mut chosen.props {
        if name == "rng-seed" || name == "kaslr-seed" {
            *value = random_bytes(value.len())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn virt() -> Machine {
        Machine::test_virt()
    }

    fn node(name: &str, props: Vec<(&str, Vec<u8>)>, children: Vec<Node>) -> Node {
        Node {
            name: name.into(),
            props: props.into_iter().map(|(n, v)| (n.into(), v)).collect(),
            children,
        }
    }

    #[test]
    fn only_plain_virt_boots_get_a_compact_tree() {
        assert!(compacts(&virt()));
        let mut icount = virt();
        icount.extra_args = vec!["-icount".into(), "shift=auto,sleep=off".into()];
        assert!(compacts(&icount));
        let mut net = virt();
        net.extra_args = vec!["-device".into(), "virtio-net-device,netdev=n".into()];
        assert!(!compacts(&net));
        // cargo-kmod's test devices add no node: the tree is dumped with them.
        let mut pci = icount.clone();
        pci.extra_args.extend([
            "-device".into(),
            "pci-testdev,addr=0x10.0,id=kmod-pci0".into(),
        ]);
        assert!(compacts(&pci));
        pci.extra_args.extend(["-device".into()]);
        assert!(!compacts(&pci), "a -device without its value");
        let mut board = virt();
        board.model = Some("raspi4b".into());
        assert!(!compacts(&board));
        let mut own = virt();
        own.dtb = Some("/b/board.dtb".into());
        assert!(!compacts(&own));
        let mut x86 = virt();
        x86.arch = Arch::X86_64;
        x86.model = None;
        assert!(!compacts(&x86));
    }

    #[test]
    fn a_machine_with_a_tree_of_its_own_keeps_it() {
        let shell = Shell::new(
            crate::shell::Verbosity::Quiet,
            crate::shell::MessageFormat::Human,
            crate::shell::ColorChoice::Never,
        );
        let home = Home {
            root: "/nonexistent/kmod-home".into(),
        };
        let mut board = virt();
        board.model = Some("raspi4b".into());
        board.dtb = Some("/b/bcm2711-rpi-4-b.dtb".into());
        let dir = Path::new("/nonexistent/boot");
        assert_eq!(
            boot_tree(&shell, &home, &board, dir),
            Some(PathBuf::from("/b/bcm2711-rpi-4-b.dtb"))
        );
        board.dtb = None;
        assert_eq!(boot_tree(&shell, &home, &board, dir), None);
    }

    #[test]
    fn the_dump_has_the_boots_arguments_without_the_kernel() {
        let a: Vec<String> = dump_args(&virt())
            .iter()
            .map(|s| s.to_string_lossy().into_owned())
            .collect();
        assert_eq!(&a[..2], ["-M", "virt"]);
        assert!(
            !a.iter().any(|s| s == "-kernel" || s == "/k/Image"),
            "{a:?}"
        );
        let serials = a.iter().filter(|s| *s == "-serial").count();
        assert_eq!(serials, 2, "{a:?}");
        // Another machine, another tree.
        let mut more = virt();
        more.memory_mb = 512;
        assert_ne!(
            key(&virt(), &dump_args(&virt())),
            key(&more, &dump_args(&more))
        );
    }

    #[test]
    fn a_virt_tree_is_compacted_and_reseeded() {
        let tree = node(
            "",
            vec![("compatible", b"linux,dummy-virt\0".to_vec())],
            vec![node(
                "chosen",
                vec![
                    ("rng-seed", vec![1; 32]),
                    ("kaslr-seed", vec![2; 8]),
                    ("stdout-path", b"/pl011@9000000\0".to_vec()),
                ],
                vec![],
            )],
        );
        // A dump the way qemu writes it: the blob padded to 1 MiB.
        let mut padded = fdt::to_blob(&tree);
        let small = padded.len();
        padded.resize(1 << 20, 0);
        padded[4..8].copy_from_slice(&(1u32 << 20).to_be_bytes());
        let blob = compact(&padded).unwrap();
        assert_eq!(blob.len(), small);
        let mut root = fdt::parse(&blob).unwrap();
        reseed(&mut root).unwrap();
        let chosen = root.child("chosen").unwrap();
        assert_eq!(chosen.prop("rng-seed").unwrap().len(), 32);
        assert_ne!(chosen.prop("rng-seed").unwrap(), [1; 32]);
        assert_eq!(chosen.prop("kaslr-seed").unwrap().len(), 8);
        assert_eq!(chosen.prop("stdout-path").unwrap(), b"/pl011@9000000\0");
        // Not a virt tree: refused, the boot keeps qemu's own.
        let other = node(
            "",
            vec![("compatible", b"raspberrypi,4-model-b\0".to_vec())],
            vec![],
        );
        assert!(compact(&fdt::to_blob(&other)).is_err());
        assert!(compact(b"not a tree").is_err());
    }
}
