//! Board presets (`cargo kmod init --board rpi4`) and what a board kernel boots with.
//!
//! A preset is a small SoC fragment merged on top of tinyconfig and the dev fragments, plus
//! what qemu needs to boot the result as that board: the machine (`-M raspi4b`), its memory,
//! the DTB the tree builds, and the console UART. Boards of one SoC family share a fragment,
//! and so a tree: `rpi3` and `rpi4` are one kernel with two DTBs, as on the real boards.

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::error::UserError;
use crate::kernel::{Arch, KernelTree};

const BCM2835: &str = cargo_kmod_templates::fragments::boards::BCM2835;

/// A board cargo-kmod can prepare a kernel for and boot under qemu.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Board {
    pub name: &'static str,
    pub description: &'static str,
    pub arch: Arch,
    /// The SoC family: the fragment's name in `templates/fragments/boards/`.
    pub soc: &'static str,
    /// The SoC fragment's text.
    pub fragment: &'static str,
    /// The DTB, relative to the tree's `arch/<srcarch>/boot/dts/`.
    pub dtb: &'static str,
    /// qemu's model of the board (`-M`).
    pub qemu_machine: &'static str,
    /// The memory qemu's model has (it refuses other sizes).
    pub memory_mb: u32,
    /// The kernel console: the board's first UART as the kernel names it.
    pub console: &'static str,
    /// A second UART the kernel does not write to (the guest protocol's channel, qemu's
    /// second `-serial`), if the board has one.
    pub channel: Option<&'static str>,
}

/// The built-in presets.
pub const BOARDS: &[Board] = &[
    Board {
        name: "rpi3",
        description: "Raspberry Pi 3 Model B (BCM2837, 4x Cortex-A53, 1 GiB)",
        arch: Arch::Arm64,
        soc: "bcm2835",
        fragment: BCM2835,
        dtb: "broadcom/bcm2837-rpi-3-b.dtb",
        qemu_machine: "raspi3b",
        memory_mb: 1024,
        console: "ttyAMA0",
        channel: Some("ttyS1"),
    },
    Board {
        name: "rpi4",
        description: "Raspberry Pi 4 Model B (BCM2711, 4x Cortex-A72, 2 GiB)",
        arch: Arch::Arm64,
        soc: "bcm2835",
        fragment: BCM2835,
        dtb: "broadcom/bcm2711-rpi-4-b.dtb",
        qemu_machine: "raspi4b",
        memory_mb: 2048,
        console: "ttyAMA0",
        channel: Some("ttyS1"),
    },
];

impl Board {
    /// The fragment's origin, for error messages (`templates/fragments/boards/bcm2835.config`).
    pub fn fragment_origin(&self) -> String {
        format!("templates/fragments/boards/{}.config", self.soc)
    }

    /// The preset named `name`, or an error listing the presets.
    pub fn find(name: &str) -> Result<&'static Board> {
        if let Some(b) = BOARDS.iter().find(|b| b.name == name) {
            return Ok(b);
        }
        let names: Vec<&str> = BOARDS.iter().map(|b| b.name).collect();
        let near = crate::text::nearest(name, names.iter().copied(), 0.7);
        let e = UserError::new(format!("unknown board `{name}`"));
        Err(match near {
            Some(n) => e.with_hint(format!(
                "did you mean `{n}`? (boards: {})",
                names.join(", ")
            )),
            None => e.with_hint(format!(
                "boards: {}; for another board pass its configuration with `--base-config`",
                names.join(", ")
            )),
        }
        .into())
    }
}

/// Where a tree's DTBs are: `arch/<srcarch>/boot/dts/`.
pub fn dts_dir(tree_dir: &Path, arch: Arch) -> PathBuf {
    tree_dir.join("arch").join(arch.srcarch()).join("boot/dts")
}

/// How qemu boots a board kernel: its machine, memory, DTB and console. Built from a preset
/// and/or a target's `qemu-machine` and `dtb` keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoardMachine {
    /// `-M` value (`raspi4b`).
    pub qemu_machine: String,
    /// `-m` in MiB, when the model wants a particular size.
    pub memory_mb: Option<u32>,
    /// `-dtb`: an existing file.
    pub dtb: Option<PathBuf>,
    /// `console=` for the kernel command line.
    pub console: Option<String>,
    /// The board's second UART for the guest protocol; `None`: it shares the console.
    pub channel: Option<String>,
}

impl BoardMachine {
    /// The machine for a board tree: a preset's defaults, overridden by explicit
    /// `qemu-machine`/`dtb` (a DTB path is relative to the tree's `arch/<srcarch>/boot/dts/`
    /// unless absolute). `None` when nothing names a board machine (the arch's default
    /// `virt`/`pc` machine applies).
    pub fn resolve(
        tree: &KernelTree,
        board: Option<&Board>,
        qemu_machine: Option<&str>,
        dtb: Option<&Path>,
    ) -> Result<Option<BoardMachine>> {
        let machine = qemu_machine
            .map(str::to_string)
            .or(board.map(|b| b.qemu_machine.to_string()));
        let Some(machine) = machine else {
            if dtb.is_some() {
                crate::bail_user!(
                    "a `dtb` needs a `qemu-machine` to boot it";
                    hint = "add `qemu-machine = \"raspi4b\"` (or another `qemu-system-{} -M help` machine) next to `dtb`",
                    tree.arch.qemu().trim_start_matches("qemu-system-")
                );
            }
            return Ok(None);
        };
        let same_board = board.filter(|b| b.qemu_machine == machine);
        // A machine a preset models brings its memory and console even without the preset.
        let model = same_board.or_else(|| BOARDS.iter().find(|b| b.qemu_machine == machine));
        let dtb_rel = dtb
            .map(Path::to_path_buf)
            .or(same_board.map(|b| PathBuf::from(b.dtb)));
        let dtb = match dtb_rel {
            Some(p) => {
                let full = if p.is_absolute() {
                    p.clone()
                } else {
                    dts_dir(&tree.dir, tree.arch).join(&p)
                };
                if !full.is_file() {
                    crate::bail_user!(
                        "DTB `{}` does not exist", full.display();
                        hint = "the tree builds its DTBs with `make dtbs` when its configuration enables the board's SoC (`cargo kmod init --board` does)"
                    );
                }
                Some(full)
            }
            None => None,
        };
        Ok(Some(BoardMachine {
            qemu_machine: machine,
            memory_mb: model.map(|b| b.memory_mb),
            dtb,
            console: model.map(|b| b.console.to_string()),
            channel: model.and_then(|b| b.channel.map(str::to_string)),
        }))
    }
}

/// The board machine `cargo kmod test`/`run` boot `tree` with: from a named target's
/// `board`, `qemu-machine` and `dtb` (`Some`, even when all three are unset), or, without a
/// target, from the board the tree was prepared for (its stamp). `None`: the arch's default
/// machine.
pub fn machine_for(
    tree: &KernelTree,
    target: Option<(Option<&str>, Option<&str>, Option<&Path>)>,
) -> Result<Option<BoardMachine>> {
    match target {
        Some((board, qemu_machine, dtb)) => {
            let board = board.map(Board::find).transpose()?;
            BoardMachine::resolve(tree, board, qemu_machine, dtb)
        }
        None => {
            let board = crate::kernel::home::Home::read_meta(&tree.dir)
                .and_then(|m| m.board)
                .and_then(|b| Board::find(&b).ok());
            BoardMachine::resolve(tree, board, None, None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::config;

    #[test]
    fn presets_parse_and_are_found() {
        for b in BOARDS {
            let f = config::parse_fragment(b.fragment, &b.fragment_origin()).unwrap();
            assert!(f.iter().any(|a| a.symbol == "ARCH_BCM2835"), "{}", b.name);
            assert!(b.dtb.ends_with(".dtb"));
        }
        assert_eq!(Board::find("rpi4").unwrap().qemu_machine, "raspi4b");
        let e = Board::find("rpi5").unwrap_err();
        assert_eq!(e.to_string(), "unknown board `rpi5`");
        let hint = crate::error::render(&e).1.unwrap();
        assert!(hint.contains("did you mean `rpi"), "{hint}");
    }

    #[test]
    fn machine_from_preset_and_overrides() {
        let dir = tempfile::tempdir().unwrap();
        let dts = dir.path().join("arch/arm64/boot/dts/broadcom");
        std::fs::create_dir_all(&dts).unwrap();
        std::fs::write(dts.join("bcm2711-rpi-4-b.dtb"), "").unwrap();
        let tree = KernelTree::from_parts(
            dir.path().to_path_buf(),
            dir.path().to_path_buf(),
            Default::default(),
            Arch::Arm64,
            "7.2.13".into(),
        );
        let rpi4 = Board::find("rpi4").unwrap();
        let m = BoardMachine::resolve(&tree, Some(rpi4), None, None)
            .unwrap()
            .unwrap();
        assert_eq!(m.qemu_machine, "raspi4b");
        assert_eq!(m.memory_mb, Some(2048));
        assert_eq!(m.dtb.unwrap(), dts.join("bcm2711-rpi-4-b.dtb"));
        // The rpi3 DTB was not built here.
        let rpi3 = Board::find("rpi3").unwrap();
        let e = BoardMachine::resolve(&tree, Some(rpi3), None, None).unwrap_err();
        assert!(
            e.to_string()
                .contains("bcm2837-rpi-3-b.dtb` does not exist"),
            "{e}"
        );
        assert!(BoardMachine::resolve(&tree, None, None, None)
            .unwrap()
            .is_none());
        // A target that names the machine and a DTB of its own (a base-config tree).
        let m = BoardMachine::resolve(
            &tree,
            None,
            Some("raspi4b"),
            Some(Path::new("broadcom/bcm2711-rpi-4-b.dtb")),
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            (m.memory_mb, m.console.as_deref()),
            (Some(2048), Some("ttyAMA0"))
        );
        let e = BoardMachine::resolve(&tree, None, None, Some(Path::new("x.dtb"))).unwrap_err();
        assert!(e.to_string().contains("needs a `qemu-machine`"), "{e}");
    }
}
