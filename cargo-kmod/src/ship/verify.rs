//! Will this module load on that kernel? The checks the kernel makes at `init_module` time,
//! made on the host: ELF machine, vermagic, the CRC of every imported symbol (basic and
//! extended tables) against `Module.symvers`, GPL-only symbols, symbol namespaces, and
//! optionally the signature against a certificate.

use std::cell::OnceCell;
use std::collections::{HashMap, HashSet};
use std::path::Path;

use anyhow::Result;
use serde::Serialize;

use crate::kernel::KernelTree;
use crate::ko::{machine_name, KoFile, Module};
use crate::ship::symvers::{Exported, Symvers};
use crate::text::escape;

/// One reason the kernel would refuse the module (or a warning it would print).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// `machine`, `vermagic`, `crc`, `missing`, `gpl`, `namespace`, `signature`.
    pub kind: &'static str,
    /// The symbol the problem is about, when there is one.
    pub symbol: Option<String>,
    pub message: String,
}

impl Problem {
    fn new(kind: &'static str, symbol: Option<&str>, message: String) -> Problem {
        Problem {
            kind,
            symbol: symbol.map(str::to_string),
            message,
        }
    }
}

/// `license_is_gpl_compatible()` from `include/linux/license.h`.
pub fn license_is_gpl_compatible(license: &str) -> bool {
    matches!(
        license,
        "GPL"
            | "GPL v2"
            | "GPL and additional rights"
            | "Dual BSD/GPL"
            | "Dual MIT/GPL"
            | "Dual MPL/GPL"
    )
}

/// The tree's `VERMAGIC_STRING` (`include/linux/vermagic.h`), from its release and `.config`.
pub fn tree_vermagic(tree: &KernelTree) -> String {
    let c = &tree.config;
    let mut s = format!("{} ", tree.release);
    if c.is_enabled("SMP") {
        s.push_str("SMP ");
    }
    if c.is_enabled("PREEMPT_RT") {
        s.push_str("preempt_rt ");
    } else if c.is_enabled("PREEMPT_BUILD") {
        s.push_str("preempt ");
    }
    if c.is_enabled("MODULE_UNLOAD") {
        s.push_str("mod_unload ");
    }
    if c.is_enabled("MODVERSIONS") {
        s.push_str("modversions ");
    }
    if tree.arch == crate::kernel::Arch::Arm64 {
        s.push_str("aarch64");
    }
    if c.is_enabled("RANDSTRUCT") {
        if let Ok(h) = std::fs::read_to_string(tree.dir.join("include/generated/randstruct_hash.h"))
        {
            if let Some(seed) = h.split('"').nth(1) {
                s.push_str(&format!("RANDSTRUCT_{seed}"));
            }
        }
    }
    s
}

/// What the module is checked against: the tree plus extra symbol providers.
pub struct Target<'a> {
    pub tree: &'a KernelTree,
    pub symvers: Symvers,
    /// Other modules shipped alongside (their exports satisfy imports).
    pub peers: Vec<&'a Module>,
    /// The peers' exports by name, built on the first lookup: one map probe per imported
    /// symbol, not a scan of every peer's exports.
    peer_index: OnceCell<HashMap<&'a str, Exported>>,
}

impl<'a> Target<'a> {
    /// The tree's `Module.symvers` plus any extra files (`KBUILD_EXTRA_SYMBOLS`-style).
    pub fn new(tree: &'a KernelTree, extra: &[&Path]) -> Result<Target<'a>> {
        let path = tree.dir.join("Module.symvers");
        if !path.is_file() {
            crate::bail_user!(
                "kernel tree `{}` has no `Module.symvers`", tree.dir.display();
                hint = "build the kernel (`make modules`) so modpost writes it"
            );
        }
        let mut symvers = Symvers::read(&path)?;
        for p in extra {
            let text = std::fs::read_to_string(p).map_err(|e| {
                crate::error::UserError::new(format!(
                    "cannot read `{}`: {}",
                    p.display(),
                    crate::ko::io_reason(&e)
                ))
            })?;
            symvers.add(&text, &p.display().to_string())?;
        }
        Ok(Target::with_symvers(tree, symvers))
    }

    /// A target from symbols already read.
    pub fn with_symvers(tree: &'a KernelTree, symvers: Symvers) -> Target<'a> {
        Target {
            tree,
            symvers,
            peers: vec![],
            peer_index: OnceCell::new(),
        }
    }

    fn lookup(&self, name: &str) -> Option<Exported> {
        if let Some(e) = self.symvers.get(name) {
            return Some(e.clone());
        }
        let index = self.peer_index.get_or_init(|| {
            let mut index = HashMap::new();
            for m in &self.peers {
                for e in &m.exports {
                    // The first peer exporting a name wins, as the linear search did.
                    index.entry(e.name.as_str()).or_insert_with(|| Exported {
                        crc: e.crc.unwrap_or(0),
                        module: m.name.clone(),
                        gpl: e.gpl,
                        namespace: None,
                    });
                }
            }
            index
        });
        index.get(name).cloned()
    }
}

/// All problems of one module against a target; empty means it will load.
///
/// Linear in the module's size: every per-symbol question is a map or set probe. Symbol names
/// and `.modinfo` strings are untrusted, so messages carry them through [`escape`] (a name
/// with a newline cannot print a fake line); [`Problem::symbol`] keeps the raw name.
pub fn verify(ko: &KoFile, target: &Target<'_>) -> Vec<Problem> {
    let m = &ko.module;
    let tree = target.tree;
    let mut problems = Vec::new();

    if m.machine != tree.arch.elf_machine() {
        problems.push(Problem::new(
            "machine",
            None,
            format!(
                "module is built for {} but kernel tree `{}` is {}",
                machine_name(m.machine),
                tree.dir.display(),
                tree.arch
            ),
        ));
    }

    let want = tree_vermagic(tree);
    match m.vermagic() {
        None => problems.push(Problem::new(
            "vermagic",
            None,
            "module has no `vermagic`".into(),
        )),
        Some(have) if have != want => problems.push(Problem::new(
            "vermagic",
            None,
            format!(
                "vermagic `{}` does not match the tree's `{}`",
                escape(have),
                escape(&want)
            ),
        )),
        Some(_) => {}
    }

    let modversions = tree.config.is_enabled("MODVERSIONS");
    let license = m.license();
    if license.is_none() {
        problems.push(Problem::new(
            "license",
            None,
            "module has no `license` (the kernel taints and refuses GPL-only symbols)".into(),
        ));
    }
    let module = ModuleFacts {
        license: license.unwrap_or(""),
        gpl_ok: license.is_some_and(license_is_gpl_compatible),
        imported_ns: m
            .modinfo
            .iter()
            .filter(|(k, _)| k == "import_ns")
            .map(|(_, v)| v.as_str())
            .collect(),
    };

    let imports = m.imports();
    let mut checked = HashSet::new();
    for v in &imports {
        checked.insert(v.name.as_str());
        let shown = escape(&v.name);
        match target.lookup(&v.name) {
            None => problems.push(Problem::new(
                "missing",
                Some(&v.name),
                format!(
                    "`{shown}` (CRC 0x{:08x}) is not exported by the tree or any dependency",
                    v.crc
                ),
            )),
            Some(e) => {
                if modversions && e.crc != v.crc {
                    problems.push(Problem::new(
                        "crc",
                        Some(&v.name),
                        format!(
                            "disagrees about version of symbol `{shown}`: module has 0x{:08x}, {} has 0x{:08x}",
                            v.crc, escape(&e.module), e.crc
                        ),
                    ));
                }
                check_export(&mut problems, &v.name, &e, &module);
            }
        }
    }
    for name in &m.undefined {
        if checked.contains(name.as_str()) {
            continue;
        }
        let shown = escape(name);
        match target.lookup(name) {
            None => problems.push(Problem::new(
                "missing",
                Some(name),
                format!("unknown symbol `{shown}`: not exported by the tree or any dependency"),
            )),
            Some(e) => {
                if modversions {
                    problems.push(Problem::new(
                        "crc",
                        Some(name),
                        format!("no symbol version for `{shown}`: it is missing from `__versions`"),
                    ));
                }
                check_export(&mut problems, name, &e, &module);
            }
        }
    }
    problems
}

/// What every export check needs from the module, looked up once.
struct ModuleFacts<'m> {
    license: &'m str,
    gpl_ok: bool,
    imported_ns: HashSet<&'m str>,
}

fn check_export(problems: &mut Vec<Problem>, name: &str, e: &Exported, m: &ModuleFacts<'_>) {
    let shown = escape(name);
    if e.gpl && !m.gpl_ok {
        problems.push(Problem::new(
            "gpl",
            Some(name),
            format!(
                "`{shown}` is a GPL-only symbol but the module's license `{}` is not GPL-compatible",
                escape(m.license)
            ),
        ));
    }
    if let Some(n) = &e.namespace {
        if !m.imported_ns.contains(n.as_str()) {
            problems.push(Problem::new(
                "namespace",
                Some(name),
                format!(
                    "`{shown}` is in namespace `{}` which the module does not import (`import_ns`)",
                    escape(n)
                ),
            ));
        }
    }
}

/// Check the signature against a certificate (PEM or DER). `Ok(None)` when it verifies.
pub fn verify_signature(ko: &KoFile, cert_path: &Path) -> Result<Option<Problem>> {
    let Some(sig) = &ko.module.signature else {
        return Ok(Some(Problem::new(
            "signature",
            None,
            "module is not signed".into(),
        )));
    };
    let cert = crate::ship::sign::read_cert(cert_path)?;
    let signed = &ko.bytes[..ko.module.elf_len];
    Ok(match crate::ship::sign::check(&sig.pkcs7, &cert, signed) {
        Ok(()) => None,
        Err(e) => Some(Problem::new(
            "signature",
            None,
            format!(
                "signature does not verify with `{}`: {e}",
                cert_path.display()
            ),
        )),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpl_compatible_licenses() {
        assert!(license_is_gpl_compatible("Dual MIT/GPL"));
        assert!(!license_is_gpl_compatible("MIT"));
        assert!(!license_is_gpl_compatible("GPL-2.0"));
    }

    fn module(license: &str, imports: &[(&str, u32)]) -> KoFile {
        let versions: Vec<_> = imports
            .iter()
            .map(|(n, c)| crate::ko::SymbolVersion {
                name: n.to_string(),
                crc: *c,
            })
            .collect();
        KoFile {
            path: "m.ko".into(),
            compression: crate::ko::Compression::None,
            bytes: vec![],
            module: Module {
                name: "m".into(),
                class: 64,
                big_endian: false,
                machine: object::elf::EM_X86_64,
                modinfo: vec![
                    ("license".into(), license.into()),
                    (
                        "vermagic".into(),
                        "7.2.13 SMP mod_unload modversions ".into(),
                    ),
                    ("name".into(), "m".into()),
                ],
                params: vec![],
                versions: vec![],
                ext_versions: versions,
                exports: vec![],
                undefined: imports.iter().map(|(n, _)| n.to_string()).collect(),
                signature: None,
                elf_len: 0,
                kunit_suites: 0,
                param_slots: Some(0),
                code: Default::default(),
            },
        }
    }

    fn tree() -> KernelTree {
        KernelTree::from_parts(
            "/k".into(),
            "/k".into(),
            crate::kernel::config::KConfig::parse(
                "CONFIG_X86_64=y\nCONFIG_SMP=y\nCONFIG_MODULE_UNLOAD=y\nCONFIG_MODVERSIONS=y\n",
            ),
            crate::kernel::Arch::X86_64,
            "7.2.13".into(),
        )
    }

    #[test]
    fn problems_name_symbols_and_crcs() {
        let tree = tree();
        assert_eq!(tree_vermagic(&tree), "7.2.13 SMP mod_unload modversions ");
        let symvers = Symvers::parse(
            "0x00000001\tgpl_sym\tvmlinux\tEXPORT_SYMBOL_GPL\t\n\
             0x00000002\tplain\tvmlinux\tEXPORT_SYMBOL\t\n\
             0x00000003\tns_sym\tvmlinux\tEXPORT_SYMBOL\tMY_NS\n",
            "t",
        )
        .unwrap();
        let target = Target::with_symvers(&tree, symvers);
        let ok = module("GPL", &[("gpl_sym", 1), ("plain", 2)]);
        assert_eq!(verify(&ok, &target), []);
        let bad = module(
            "MIT",
            &[("gpl_sym", 1), ("plain", 9), ("nope", 4), ("ns_sym", 3)],
        );
        let msgs: Vec<String> = verify(&bad, &target)
            .into_iter()
            .map(|p| p.message)
            .collect();
        assert_eq!(
            msgs,
            [
                "`gpl_sym` is a GPL-only symbol but the module's license `MIT` is not GPL-compatible",
                "disagrees about version of symbol `plain`: module has 0x00000009, vmlinux has 0x00000002",
                "`nope` (CRC 0x00000004) is not exported by the tree or any dependency",
                "`ns_sym` is in namespace `MY_NS` which the module does not import (`import_ns`)",
            ]
        );
    }
}
