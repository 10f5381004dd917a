//! Will the board take these modules? Everything that can be known before copying: the
//! board's state (module loading disabled, root), its tools, and per module the arch, the
//! kernel release in vermagic, a signature when the board enforces them, modules of the same
//! name built in or held by modules this deploy does not replace, and with the target's
//! kernel tree the same checks `cargo kmod verify` makes (vermagic, every imported symbol's
//! CRC against `Module.symvers`, GPL-only symbols, namespaces).

use std::path::PathBuf;

use crate::deploy::board::Board;
use crate::ko::{machine_name, KoFile};
use crate::ship::verify::{self, Target};
use crate::text::escape;

/// A module to deploy.
#[derive(Debug, Clone)]
pub struct Module {
    /// `.modinfo` `name=` (checked: `[A-Za-z0-9_]`).
    pub name: String,
    pub ko: PathBuf,
    pub file: KoFile,
    /// `name=value` parameters.
    pub params: Vec<String>,
}

/// Why the board would refuse (or why cargo-kmod will not try).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Refusal {
    /// The module it is about; `None` for the board as a whole.
    pub module: Option<String>,
    /// `disabled`, `root`, `tool`, `machine`, `vermagic`, `signature`, `builtin`, `in-use`,
    /// `dependency`, or a `verify` kind (`crc`, `missing`, `gpl`, `namespace`, ...).
    pub kind: &'static str,
    pub message: String,
}

impl Refusal {
    fn board(kind: &'static str, message: String) -> Refusal {
        Refusal {
            module: None,
            kind,
            message,
        }
    }

    fn module(name: &str, kind: &'static str, message: String) -> Refusal {
        Refusal {
            module: Some(name.to_string()),
            kind,
            message,
        }
    }
}

/// How the modules will be loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `insmod` from a temporary directory.
    Insmod,
    /// Into `/lib/modules/<release>/updates`, `depmod -a`, `modprobe`.
    Install,
}

/// Every reason to refuse; empty means go. `target` is the tree the modules were built
/// against (the board's kernel as cargo-kmod knows it), with the modules as peers.
pub fn check(
    board: &Board,
    modules: &[Module],
    target: Option<&Target<'_>>,
    mode: Mode,
) -> Vec<Refusal> {
    let mut out = Vec::new();
    check_board(board, mode, &mut out);
    let names: Vec<&str> = modules.iter().map(|m| m.name.as_str()).collect();
    for m in modules {
        let matches = check_build(board, m, &mut out);
        check_conflicts(board, m, &names, mode, &mut out);
        // The tree's own checks only make sense for a module that matches the board at all.
        if let (Some(t), true) = (target, matches) {
            for p in verify::verify(&m.file, t) {
                out.push(Refusal::module(
                    &m.name,
                    p.kind,
                    format!("`{}`: {}", m.name, p.message),
                ));
            }
        }
    }
    out
}

/// The board as a whole: module loading enabled, root (or `sudo -n`), the tools `mode`
/// runs, and a release that names a directory for `Mode::Install`.
fn check_board(board: &Board, mode: Mode, out: &mut Vec<Refusal>) {
    if board.modules_disabled {
        out.push(Refusal::board(
            "disabled",
            "module loading is disabled on the board (`/proc/sys/kernel/modules_disabled` is 1) until it reboots".into(),
        ));
    }
    if board.needs_sudo() && !board.sudo {
        out.push(Refusal::board(
            "root",
            "loading modules needs root, and the login is not root and `sudo -n` is not allowed"
                .into(),
        ));
    }
    let tools: &[&str] = match mode {
        Mode::Insmod => &["insmod", "rmmod", "dmesg"],
        Mode::Install => &["modprobe", "depmod", "rmmod", "dmesg"],
    };
    let missing: Vec<&str> = tools.iter().copied().filter(|t| !board.has(t)).collect();
    if !missing.is_empty() {
        out.push(Refusal::board(
            "tool",
            format!(
                "the board has no {} on `PATH`",
                missing
                    .iter()
                    .map(|t| format!("`{t}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    if mode == Mode::Insmod && !board.has("mktemp") {
        out.push(Refusal::board(
            "tool",
            "the board has no `mktemp` for a temporary directory".into(),
        ));
    }
    if mode == Mode::Install && board.release_component().is_none() {
        out.push(Refusal::board(
            "release",
            format!(
                "the board's release `{}` cannot name a directory under `/lib/modules`",
                escape(&board.release)
            ),
        ));
    }
}

/// Whether module `m` was built for the board: its arch, its kernel release, and a
/// signature when the board enforces them. Returns whether the arch and release match.
fn check_build(board: &Board, m: &Module, out: &mut Vec<Refusal>) -> bool {
    let module = &m.file.module;
    let mut arch_ok = true;
    match board.arch() {
        Some(a) if a.elf_machine() == module.machine => {}
        _ => {
            arch_ok = false;
            out.push(Refusal::module(
                &m.name,
                "machine",
                format!(
                    "`{}` is built for {} but the board is {}",
                    m.name,
                    machine_name(module.machine),
                    escape(&board.machine)
                ),
            ));
        }
    }
    let release_ok = module.release() == Some(board.release.as_str());
    if !release_ok {
        out.push(Refusal::module(
            &m.name,
            "vermagic",
            format!(
                "`{}` is built for linux `{}` (vermagic `{}`) but the board runs `{}`",
                m.name,
                escape(module.release().unwrap_or("?")),
                escape(module.vermagic().unwrap_or("")),
                escape(&board.release)
            ),
        ));
    }
    if board.enforces_signatures() && module.signature.is_none() {
        let why = match &board.lockdown {
            Some(l) => format!("kernel lockdown is `{}`", escape(l)),
            None => "`/sys/module/module/parameters/sig_enforce` is `Y`".to_string(),
        };
        out.push(Refusal::module(
            &m.name,
            "signature",
            format!(
                "`{}` is not signed and the board enforces module signatures ({why})",
                m.name
            ),
        ));
    }
    arch_ok && release_ok
}

/// What on the board stands in module `m`'s way: a built-in module of its name, holders
/// outside this deploy (`names`), and for `Mode::Insmod` dependencies nobody loads.
fn check_conflicts(board: &Board, m: &Module, names: &[&str], mode: Mode, out: &mut Vec<Refusal>) {
    if board.builtin.iter().any(|b| b == &m.name) {
        out.push(Refusal::module(
            &m.name,
            "builtin",
            format!("`{}` is built into the board's kernel", m.name),
        ));
    }
    if let Some(l) = board.loaded(&m.name) {
        let foreign: Vec<String> = l
            .holders
            .iter()
            .filter(|h| !names.contains(&h.as_str()))
            .map(|h| format!("`{}`", escape(h)))
            .collect();
        if !foreign.is_empty() {
            out.push(Refusal::module(
                &m.name,
                "in-use",
                format!(
                    "`{}` is in use by {} on the board, which this deploy does not replace",
                    m.name,
                    foreign.join(", ")
                ),
            ));
        }
    }
    if mode == Mode::Insmod {
        for dep in m.file.module.depends() {
            if !names.contains(&dep.as_str()) && board.loaded(&dep).is_none() {
                out.push(Refusal::module(
                    &m.name,
                    "dependency",
                    format!(
                        "`{}` needs `{}`, which is not loaded on the board and not part of this deploy",
                        m.name,
                        escape(&dep)
                    ),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::board::Loaded;
    use crate::ko::{Compression, Module as KoModule};

    fn module(name: &str, machine: u16, vermagic: &str, signed: bool) -> Module {
        let m = KoModule {
            name: name.into(),
            class: 64,
            big_endian: false,
            machine,
            modinfo: vec![
                ("vermagic".into(), vermagic.into()),
                ("license".into(), "GPL".into()),
                ("depends".into(), "helper".into()),
            ],
            params: vec![],
            versions: vec![],
            ext_versions: vec![],
            exports: vec![],
            undefined: vec![],
            kunit_suites: 0,
            signature: signed.then(|| crate::ko::signature::Signature {
                id_type: "PKCS#7".into(),
                signer: None,
                key_id: vec![],
                hash_algo: None,
                signature: vec![],
                signed_attrs: false,
                pkcs7: vec![],
            }),
            elf_len: 0,
            param_slots: Some(0),
            code: Default::default(),
        };
        Module {
            name: name.into(),
            ko: format!("/t/{name}.ko").into(),
            file: KoFile {
                path: format!("/t/{name}.ko").into(),
                compression: Compression::None,
                bytes: vec![],
                module: m,
            },
            params: vec![],
        }
    }

    fn board() -> Board {
        Board {
            release: "7.2.13".into(),
            machine: "aarch64".into(),
            uid: Some(0),
            tools: ["insmod", "rmmod", "dmesg", "mktemp"]
                .map(String::from)
                .to_vec(),
            loaded: vec![Loaded {
                name: "helper".into(),
                holders: vec![],
            }],
            ..Board::default()
        }
    }

    const AA: u16 = object::elf::EM_AARCH64;

    #[test]
    fn a_matching_module_goes() {
        let m = module(
            "hello",
            AA,
            "7.2.13 SMP mod_unload modversions aarch64",
            false,
        );
        assert_eq!(check(&board(), &[m], None, Mode::Insmod), []);
    }

    #[test]
    fn mismatches_are_refused_with_the_reason() {
        let mut b = board();
        b.sig_enforce = true;
        b.loaded.push(Loaded {
            name: "hello".into(),
            holders: vec!["other".into()],
        });
        let m = module(
            "hello",
            object::elf::EM_X86_64,
            "7.2.13-x SMP mod_unload modversions ",
            false,
        );
        let msgs: Vec<String> = check(&b, &[m], None, Mode::Insmod)
            .into_iter()
            .map(|r| r.message)
            .collect();
        assert_eq!(
            msgs,
            [
                "`hello` is built for x86_64 but the board is aarch64",
                "`hello` is built for linux `7.2.13-x` (vermagic `7.2.13-x SMP mod_unload modversions `) but the board runs `7.2.13`",
                "`hello` is not signed and the board enforces module signatures (`/sys/module/module/parameters/sig_enforce` is `Y`)",
                "`hello` is in use by `other` on the board, which this deploy does not replace",
            ]
        );
        // Signed, it passes the signature check (the kernel then checks the key).
        let m = module("hello", AA, "7.2.13 SMP", true);
        let mut b = board();
        b.sig_enforce = true;
        assert_eq!(check(&b, &[m], None, Mode::Insmod), []);
    }

    #[test]
    fn the_board_itself_can_refuse() {
        let mut b = board();
        b.modules_disabled = true;
        b.uid = Some(1000);
        b.release = "../x".into();
        b.loaded.clear();
        let m = module("hello", AA, "../x SMP", false);
        let r = check(&b, &[m], None, Mode::Install);
        let kinds: Vec<&str> = r.iter().map(|r| r.kind).collect();
        assert_eq!(kinds, ["disabled", "root", "tool", "release"]);
        assert_eq!(
            r[2].message,
            "the board has no `modprobe`, `depmod` on `PATH`"
        );
        // In insmod mode a dependency must be loaded or deployed too.
        let m = module("hello", AA, "7.2.13", false);
        let mut b = board();
        b.loaded.clear();
        assert_eq!(
            check(&b, &[m], None, Mode::Insmod)[0].message,
            "`hello` needs `helper`, which is not loaded on the board and not part of this deploy"
        );
    }
}
