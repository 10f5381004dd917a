//! What is inside a `.ko`: the ELF sections the kernel and kmod read, parsed with `object`.
//!
//! [`read`] takes a path (`.ko`, `.ko.xz`, `.ko.zst`, `.ko.gz`), decompresses it, splits off
//! an appended signature and parses the ELF ([`parse`]): `.modinfo` ([`modinfo`]), the basic
//! and extended symbol-version tables ([`versions`]), the exported symbols and their CRCs,
//! the undefined (imported) symbols and the signature ([`signature`]). Every ELF class and
//! byte order the kernel supports is handled; bad input is an error naming the section, never
//! a panic (the parser is fuzzed: see `fuzz/`).

pub mod compress;
pub mod der;
pub mod modinfo;

pub mod signature;
pub mod versions;

use std::path::{Path, PathBuf};

use anyhow::Result;
use object::{Object, ObjectSection, ObjectSymbol};
use serde::Serialize;

pub use compress::Compression;
pub use modinfo::Param;
pub use signature::Signature;
pub use versions::SymbolVersion;

/// `KSYM_FLAG_GPL_ONLY` in `__kflagstab` (`include/linux/module_symbol.h`).
pub const KSYM_FLAG_GPL_ONLY: u8 = 1;

/// A symbol the module exports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Export {
    pub name: String,
    /// `EXPORT_SYMBOL_GPL`.
    pub gpl: bool,
    /// The CRC from `__kcrctab`, when the module was built with modversions.
    #[serde(serialize_with = "ser_opt_crc")]
    pub crc: Option<u32>,
}

fn ser_opt_crc<S: serde::Serializer>(crc: &Option<u32>, s: S) -> Result<S::Ok, S::Error> {
    match crc {
        Some(c) => s.serialize_str(&format!("0x{c:08x}")),
        None => s.serialize_none(),
    }
}

/// A parsed kernel module.
#[derive(Debug, Clone, Serialize)]
pub struct Module {
    /// `name=` from `.modinfo`.
    pub name: String,
    /// ELF class: 32 or 64.
    pub class: u8,
    pub big_endian: bool,
    /// ELF `e_machine`.
    pub machine: u16,
    /// The `.modinfo` entries in file order.
    pub modinfo: Vec<(String, String)>,
    pub params: Vec<Param>,
    /// `__versions`.
    pub versions: Vec<SymbolVersion>,
    /// `__version_ext_crcs` + `__version_ext_names`.
    pub ext_versions: Vec<SymbolVersion>,
    pub exports: Vec<Export>,
    /// Undefined symbols: what the module needs from the kernel or other modules.
    pub undefined: Vec<String>,
    pub signature: Option<Signature>,
    /// Length of the module without its signature.
    #[serde(skip)]
    pub elf_len: usize,
    /// How many KUnit suites the module registers: the entries (pointers) of its
    /// `.kunit_test_suites` section. Each one must report in the KTAP the module prints
    /// when loaded.
    #[serde(skip)]
    pub kunit_suites: usize,
    /// How many parameters the kernel will know: the `struct kernel_param` entries of its
    /// `__param` section (`None` when the section's size is not a whole number of them).
    #[serde(skip)]
    pub param_slots: Option<usize>,
    /// What maps an address inside the loaded module back to a function: the sizes of its
    /// loaded (`SHF_ALLOC`) sections and its function symbols.
    #[serde(skip)]
    pub code: CodeMap,
}

/// The loaded sections of a module and the functions in them, to name a code address
/// (a kernel backtrace frame) given where the kernel put each section
/// (`/sys/module/<name>/sections/<section>`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CodeMap {
    /// `(section, size)` of each section the kernel loads.
    pub sections: Vec<(String, u64)>,
    /// Function symbols: `(section, offset, size, name)`, sorted.
    pub functions: Vec<(String, u64, u64, String)>,
}

impl CodeMap {
    /// `addr` as `function+0xoff/0xsize` (or `section+0xoff` outside any function), given
    /// each loaded section's address; `None` when `addr` is not inside this module.
    pub fn name(&self, loaded: &[(String, u64)], addr: u64) -> Option<String> {
        let (section, off) = loaded.iter().find_map(|(name, start)| {
            let size = self.sections.iter().find(|(n, _)| n == name)?.1;
            let off = addr.checked_sub(*start)?;
            (off < size).then_some((name.as_str(), off))
        })?;
        let f = self
            .functions
            .iter()
            .filter(|(s, o, _, _)| s == section && *o <= off)
            .max_by_key(|(_, o, _, _)| *o);
        Some(match f {
            Some((_, o, size, name)) if off - o < (*size).max(1) => {
                format!("{name}+{:#x}/{size:#x}", off - o)
            }
            _ => format!("{section}+{off:#x}"),
        })
    }
}

/// The [`CodeMap`] of an ELF module.
fn code_map(file: &object::File) -> CodeMap {
    use object::{SectionFlags, SymbolKind};
    let mut map = CodeMap::default();
    for sec in file.sections() {
        let alloc = match sec.flags() {
            SectionFlags::Elf { sh_flags } => sh_flags & u64::from(object::elf::SHF_ALLOC) != 0,
            _ => false,
        };
        if let (true, Ok(name)) = (alloc && sec.size() > 0, sec.name()) {
            map.sections.push((name.to_string(), sec.size()));
        }
    }
    for sym in file.symbols() {
        if sym.kind() != SymbolKind::Text || sym.is_undefined() {
            continue;
        }
        let (Ok(name), Some(sec)) = (
            sym.name(),
            sym.section_index()
                .and_then(|i| file.section_by_index(i).ok())
                .and_then(|s| s.name().ok().map(str::to_string)),
        ) else {
            continue;
        };
        if !name.is_empty() {
            map.functions
                .push((sec, sym.address(), sym.size(), name.to_string()));
        }
    }
    map.functions.sort();
    map
}

impl Module {
    /// The first value of a `.modinfo` key.
    pub fn field(&self, key: &str) -> Option<&str> {
        self.modinfo
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn vermagic(&self) -> Option<&str> {
        self.field("vermagic")
    }

    pub fn license(&self) -> Option<&str> {
        self.field("license")
    }

    /// `depends=` split on commas.
    pub fn depends(&self) -> Vec<String> {
        self.field("depends")
            .map(|d| {
                d.split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `alias=` values: the device tables' match strings (`of:N*T*Cacme,x`, `pci:v...`).
    pub fn aliases(&self) -> Vec<String> {
        self.modinfo
            .iter()
            .filter(|(k, _)| k == "alias")
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// The kernel release the module was built for: the first word of vermagic.
    pub fn release(&self) -> Option<&str> {
        self.vermagic().and_then(|v| v.split_whitespace().next())
    }

    /// Every imported symbol with a CRC: extended entries, then basic ones not already listed.
    /// Linear in the size of both tables (a hostile module may carry hundreds of thousands).
    pub fn imports(&self) -> Vec<&SymbolVersion> {
        let mut seen: std::collections::HashSet<&str> = std::collections::HashSet::new();
        let mut out: Vec<&SymbolVersion> = Vec::new();
        for v in self.ext_versions.iter().chain(&self.versions) {
            if seen.insert(v.name.as_str()) {
                out.push(v);
            }
        }
        out
    }

    /// The names of every parameter the module takes, when `.modinfo` names them all (`parm=`
    /// or `parmtype=` for each `__param` entry: `module_param` and Rust's `module!` always
    /// write `parmtype=`; a C `module_param_cb` without a description writes neither).
    pub fn param_names(&self) -> Option<Vec<&str>> {
        let names: Vec<&str> = self.params.iter().map(|p| p.name.as_str()).collect();
        (self.param_slots? <= names.len()).then_some(names)
    }

    pub fn arch(&self) -> Option<crate::kernel::Arch> {
        crate::kernel::Arch::ALL
            .into_iter()
            .find(|a| a.elf_machine() == self.machine)
    }
}

/// Human name of an ELF machine.
pub fn machine_name(machine: u16) -> String {
    match machine {
        object::elf::EM_X86_64 => "x86_64".into(),
        object::elf::EM_AARCH64 => "aarch64".into(),
        object::elf::EM_386 => "i386".into(),
        object::elf::EM_ARM => "arm".into(),
        object::elf::EM_RISCV => "riscv".into(),
        object::elf::EM_PPC64 => "ppc64".into(),
        object::elf::EM_S390 => "s390".into(),
        object::elf::EM_LOONGARCH => "loongarch".into(),
        m => format!("machine {m}"),
    }
}

/// A module file read from disk.
#[derive(Debug, Clone)]
pub struct KoFile {
    pub path: PathBuf,
    pub compression: Compression,
    /// The decompressed bytes (ELF plus any signature).
    pub bytes: Vec<u8>,
    pub module: Module,
}

/// Why bytes are not a kernel module.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("not an ELF file")]
    NotElf,
    #[error("not a relocatable object (a module is `ET_REL`)")]
    NotRelocatable,
    #[error("no `.modinfo` section")]
    NoModinfo,
    /// Any other damage: a truncated ELF, a malformed table, a bad signature trailer.
    #[error("{0}")]
    Malformed(String),
}

impl From<String> for ParseError {
    fn from(s: String) -> ParseError {
        ParseError::Malformed(s)
    }
}

impl From<&str> for ParseError {
    fn from(s: &str) -> ParseError {
        ParseError::Malformed(s.to_string())
    }
}

/// Why a module file could not be read: the one `.ko` reader's error.
#[derive(Debug, thiserror::Error)]
pub enum KoError {
    #[error("cannot read `{}`: {reason}", path.display())]
    Io { path: PathBuf, reason: String },
    #[error("cannot read `{}`: not {kind} data (the file name says it is)", path.display())]
    NotCompressed { path: PathBuf, kind: &'static str },
    #[error("cannot read `{}`: {reason}", path.display())]
    Decompress { path: PathBuf, reason: String },
    #[error("`{}` is not a valid kernel module: {source}", path.display())]
    Parse { path: PathBuf, source: ParseError },
}

/// [`read`] for a module a user named (`--ko`, a package's build): its errors as one line
/// each with the hint that fits (a text file, an object file, an unreadable path).
pub fn read_module(ko: &Path) -> anyhow::Result<KoFile> {
    match read(ko) {
        Ok(k) => Ok(k),
        Err(KoError::Parse {
            source: ParseError::NotElf,
            ..
        }) => crate::bail_user!(
            "`{}` is not a kernel module: it is not an ELF file", ko.display();
            hint = "pass the `.ko` that `cargo kmod build` or kbuild produced"
        ),
        Err(KoError::Parse {
            source: e @ (ParseError::NoModinfo | ParseError::NotRelocatable),
            ..
        }) => crate::bail_user!(
            "`{}` is not a kernel module: {}", ko.display(),
            if e == ParseError::NotRelocatable { "it is not a relocatable object" } else { "it has no `.modinfo` section" };
            hint = "pass the linked `.ko`, not an object file or a program"
        ),
        Err(KoError::Io { reason, .. }) => {
            crate::bail_user!("cannot read module `{}`: {}", ko.display(), reason)
        }
        Err(e) => Err(crate::error::UserError::new(e.to_string()).into()),
    }
}

/// Read, decompress and parse a module file. Errors are one line naming the file.
pub fn read(path: &Path) -> Result<KoFile, KoError> {
    let raw = std::fs::read(path).map_err(|e| KoError::Io {
        path: path.to_path_buf(),
        reason: io_reason(&e),
    })?;
    let named = Compression::from_file_name(&path.to_string_lossy());
    if named != Compression::None && Compression::sniff(&raw) == Compression::None {
        return Err(KoError::NotCompressed {
            path: path.to_path_buf(),
            kind: named.name(),
        });
    }
    let (compression, bytes) = decode(&raw).map_err(|reason| KoError::Decompress {
        path: path.to_path_buf(),
        reason,
    })?;
    let module = parse(&bytes).map_err(|source| KoError::Parse {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(KoFile {
        path: path.to_path_buf(),
        compression,
        bytes,
        module,
    })
}

/// Decompress when the bytes carry a compression magic.
pub fn decode(raw: &[u8]) -> Result<(Compression, Vec<u8>), String> {
    let kind = Compression::sniff(raw);
    Ok((kind, compress::decompress(kind, raw)?))
}

pub use crate::fsutil::io_reason;

/// Parse module bytes (uncompressed, maybe signed). Never panics.
pub fn parse(data: &[u8]) -> Result<Module, ParseError> {
    if !data.starts_with(b"\x7fELF") {
        return Err(ParseError::NotElf);
    }
    let (elf, signature) = signature::split(data)?;
    let file = object::File::parse(elf)
        .map_err(|e| format!("truncated or corrupt ELF: {}", e.to_string().to_lowercase()))?;
    if file.format() != object::BinaryFormat::Elf {
        return Err(ParseError::NotElf);
    }
    if file.kind() != object::ObjectKind::Relocatable {
        return Err(ParseError::NotRelocatable);
    }
    let is_64 = file.is_64();
    let big_endian = !file.is_little_endian();
    let machine = {
        let b = [elf[18], elf[19]];
        if big_endian {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        }
    };
    let section = |name: &str| -> Result<Option<&[u8]>, String> {
        match file.section_by_name(name) {
            Some(s) => s
                .data()
                .map(Some)
                .map_err(|e| format!("cannot read section `{name}`: {e}")),
            None => Ok(None),
        }
    };
    let modinfo_data = section(".modinfo")?.ok_or(ParseError::NoModinfo)?;
    let modinfo = modinfo::parse(modinfo_data).map_err(|e| format!("malformed `.modinfo`: {e}"))?;
    let params = modinfo::params(&modinfo);
    let name = modinfo
        .iter()
        .find(|(k, _)| k == "name")
        .map(|(_, v)| v.clone())
        .ok_or("`.modinfo` has no `name=` entry")?;
    let kunit_suites = file
        .section_by_name(".kunit_test_suites")
        .map_or(0, |s| (s.size() / if is_64 { 8 } else { 4 }) as usize);
    // `struct kernel_param`: name, mod, ops, perm (u16), level (s8), flags (u8), a union of
    // pointers: 40 bytes on 64-bit, 20 on 32-bit.
    let param_size: u64 = if is_64 { 40 } else { 20 };
    let param_slots = match file.section_by_name("__param") {
        None => Some(0),
        Some(s) if s.size() % param_size == 0 => Some((s.size() / param_size) as usize),
        Some(_) => None,
    };
    let versions = match section("__versions")? {
        Some(d) => versions::parse_basic(d, is_64, big_endian)
            .map_err(|e| format!("malformed `__versions`: {e}"))?,
        None => vec![],
    };
    let ext_versions = match (section("__version_ext_crcs")?, section("__version_ext_names")?) {
        (Some(c), Some(n)) => versions::parse_extended(c, n, big_endian)
            .map_err(|e| format!("malformed extended versions: {e}"))?,
        (None, None) => vec![],
        _ => return Err("malformed extended versions: only one of `__version_ext_crcs` and `__version_ext_names`".into()),
    };

    let (exports, undefined) = symbols(&file, big_endian)?;
    Ok(Module {
        name,
        class: if is_64 { 64 } else { 32 },
        big_endian,
        machine,
        modinfo,
        params,
        versions,
        ext_versions,
        exports,
        undefined,
        signature,
        elf_len: elf.len(),
        kunit_suites,
        param_slots,
        code: code_map(&file),
    })
}

/// The module's exports (with their CRCs and GPL-only flags) and the symbols it imports,
/// both sorted, from its symbol table.
fn symbols(
    file: &object::File<'_>,
    big_endian: bool,
) -> Result<(Vec<Export>, Vec<String>), ParseError> {
    let mut exports = Vec::new();
    let mut undefined = Vec::new();
    let mut crcs = std::collections::HashMap::new();
    let mut flags = std::collections::HashMap::new();
    for sym in file.symbols() {
        let Ok(sym_name) = sym.name() else { continue };
        if sym.is_undefined() {
            if !sym_name.is_empty() {
                undefined.push(sym_name.to_string());
            }
            continue;
        }
        let sec_name = sym
            .section_index()
            .and_then(|i| file.section_by_index(i).ok())
            .and_then(|s| s.name().ok().map(str::to_string))
            .unwrap_or_default();
        if let Some(export) = sym_name.strip_prefix("__ksymtab_") {
            if sec_name.starts_with("___ksymtab") || sec_name.starts_with("__ksymtab") {
                let gpl =
                    sec_name.starts_with("___ksymtab_gpl") || sec_name.starts_with("__ksymtab_gpl");
                exports.push(Export {
                    name: export.to_string(),
                    gpl,
                    crc: None,
                });
            }
        } else if let Some(export) = sym_name.strip_prefix("__flags_") {
            // 7.x: one flags byte per export in `__kflagstab`; bit 0 is GPL-only.
            let byte = sym
                .section_index()
                .and_then(|i| file.section_by_index(i).ok())
                .and_then(|sec| sec.data().ok())
                .and_then(|d| d.get(sym.address() as usize).copied());
            if let Some(b) = byte {
                flags.insert(export.to_string(), b);
            }
        } else if let Some(export) = sym_name.strip_prefix("__crc_") {
            if let Some(sec) = sym
                .section_index()
                .and_then(|i| file.section_by_index(i).ok())
            {
                let data = sec
                    .data()
                    .map_err(|e| format!("cannot read CRC of `{export}`: {e}"))?;
                let off = sym.address() as usize;
                if let Some(b) = data.get(off..off.saturating_add(4)) {
                    let b = [b[0], b[1], b[2], b[3]];
                    let crc = if big_endian {
                        u32::from_be_bytes(b)
                    } else {
                        u32::from_le_bytes(b)
                    };
                    crcs.insert(export.to_string(), crc);
                }
            }
        }
    }
    for e in &mut exports {
        e.crc = crcs.get(&e.name).copied();
        if flags
            .get(&e.name)
            .is_some_and(|f| f & KSYM_FLAG_GPL_ONLY != 0)
        {
            e.gpl = true;
        }
    }
    exports.sort_by(|a, b| a.name.cmp(&b.name));
    undefined.sort();
    undefined.dedup();
    Ok((exports, undefined))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_non_elf_and_truncated() {
        assert_eq!(parse(b"hello").unwrap_err(), ParseError::NotElf);
        let e = parse(b"\x7fELF\x02\x01\x01").unwrap_err();
        assert!(e.to_string().starts_with("truncated or corrupt ELF"), "{e}");
    }

    fn corpus(name: &str) -> Vec<u8> {
        std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../fuzz/corpus/ko")
                .join(name),
        )
        .unwrap()
    }

    #[test]
    fn real_signed_module_from_the_corpus() {
        let m = parse(&corpus("x86_64-hello-signed.ko")).unwrap();
        assert_eq!(m.name, "hello");
        assert_eq!(m.arch(), Some(crate::kernel::Arch::X86_64));
        let sig = m.signature.unwrap();
        assert_eq!(
            sig.signer.as_deref(),
            Some("Build time autogenerated kernel key")
        );
        assert_eq!(sig.hash_algo.as_deref(), Some("sha256"));
        assert!(!sig.signed_attrs);
        assert_eq!(m.params[0].ty.as_deref(), Some("i64"));
        assert_eq!(m.kunit_suites, 0);
        assert!(m
            .exports
            .iter()
            .any(|e| e.name == "hello_c_add" && e.gpl && e.crc.is_some()));
        let (kind, bytes) = decode(&corpus("x86_64-kmod_user.ko.zst")).unwrap();
        assert_eq!(kind, Compression::Zstd);
        assert_eq!(parse(&bytes).unwrap().depends(), ["hello"]);
        let e = parse(&corpus("x86_64-hello-bad-modinfo.ko")).unwrap_err();
        assert_eq!(
            e,
            ParseError::from("malformed `.modinfo`: entry 5 (`licenseXGPL`) has no `=`")
        );
    }

    /// `elf` (a 64-bit little-endian module) with section `name` holding `data`: appended at
    /// the end and the section header repointed, the way the hostile corpus files were made.
    fn with_section(elf: &[u8], name: &str, data: &[u8]) -> Vec<u8> {
        let file = object::File::parse(elf).unwrap();
        let index = file.section_by_name(name).unwrap().index().0;
        let u64_at = |o: usize| u64::from_le_bytes(elf[o..o + 8].try_into().unwrap()) as usize;
        let shoff = u64_at(0x28);
        let shentsize = u16::from_le_bytes([elf[0x3a], elf[0x3b]]) as usize;
        let h = shoff + index * shentsize;
        let mut out = elf.to_vec();
        out.resize(out.len().next_multiple_of(8), 0);
        let at = out.len() as u64;
        out.extend_from_slice(data);
        out[h + 24..h + 32].copy_from_slice(&at.to_le_bytes());
        out[h + 32..h + 40].copy_from_slice(&(data.len() as u64).to_le_bytes());
        out
    }

    fn section<'a>(elf: &'a [u8], name: &str) -> &'a [u8] {
        let file = object::File::parse(elf).unwrap();
        let data = file.section_by_name(name).unwrap().data().unwrap();
        let start = data.as_ptr() as usize - elf.as_ptr() as usize;
        &elf[start..start + data.len()]
    }

    /// Hostile modules of several MiB, made from a real one: tens of thousands of distinct
    /// parameters with long names and of imports, an extended-names section of
    /// mostly empty names. They parse, with every entry accounted for. (That they do so in
    /// linear time is measured by `hostile_large_modules_are_handled_in_linear_time` in
    /// `tests/tests/it/ship.rs` (the `it` test binary) and reported in `docs/ship.md`; the
    /// quadratic code took minutes.)
    #[test]
    fn hostile_large_modules_parse_completely() {
        let elf = corpus("x86_64-hello-unsigned.ko");
        let base = parse(&elf).unwrap();

        let mut modinfo = section(&elf, ".modinfo").to_vec();
        let long = "n".repeat(40);
        for i in 0..60_000 {
            modinfo.extend(format!("parm=p{i}_{long}:d\0parmtype=p{i}_{long}:int\0").bytes());
        }
        let big = with_section(&elf, ".modinfo", &modinfo);
        assert!(big.len() > 6 << 20, "{}", big.len());
        let m = parse(&big).unwrap();
        assert_eq!(m.params.len(), base.params.len() + 60_000);
        assert_eq!(m.params.last().unwrap().ty.as_deref(), Some("int"));

        let mut versions = section(&elf, "__versions").to_vec();
        for i in 0..60_000u64 {
            let mut e = i.to_le_bytes().to_vec();
            e.extend(format!("imported_{i}").bytes());
            e.resize(versions::MODVERSION_INFO_LEN, 0);
            versions.extend(e);
        }
        let m = parse(&with_section(&elf, "__versions", &versions)).unwrap();
        assert_eq!(m.imports().len(), base.imports().len() + 60_000);

        // 200,000 empty names between two real ones: 800 KiB of CRCs, 200 KiB of NULs.
        let n = 200_002;
        let crcs = vec![1u8; 4 * n];
        let mut names = b"a\0".to_vec();
        names.resize(names.len() + n - 2, 0);
        names.extend(b"b\0\0\0");
        let x = with_section(&elf, "__version_ext_crcs", &crcs);
        let m = parse(&with_section(&x, "__version_ext_names", &names)).unwrap();
        assert_eq!(m.ext_versions.len(), n);
        assert_eq!(m.ext_versions.last().unwrap().name, "b");
    }

    /// The hostile corpus files (small versions of the above, committed for the fuzzer).
    #[test]
    fn hostile_corpus_files() {
        let m = parse(&corpus("x86_64-hostile-many-params.ko")).unwrap();
        assert_eq!(m.params.len(), 1001);
        let m = parse(&corpus("x86_64-hostile-many-imports.ko")).unwrap();
        assert_eq!(m.versions.len(), 604);
        let m = parse(&corpus("x86_64-hostile-empty-ext-names.ko")).unwrap();
        assert_eq!(m.ext_versions.len(), 3001);
        let m = parse(&corpus("x86_64-hostile-long-names.ko")).unwrap();
        assert_eq!(m.name.len(), 16384);
        assert_eq!(m.ext_versions.last().unwrap().name.len(), 16384);
    }

    /// Every file in `fuzz/corpus/ko` (real modules and broken copies of them) parses or
    /// fails cleanly: the fuzz target's corpus doubles as a regression test.
    #[test]
    fn fuzz_corpus_never_panics() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/ko");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir)
            .expect("fuzz corpus is committed")
            .flatten()
        {
            let data = std::fs::read(entry.path()).unwrap();
            let _ = parse(&data);
            if let Ok((_, bytes)) = decode(&data) {
                let _ = parse(&bytes);
            }
            n += 1;
        }
        assert!(n > 0, "empty corpus in {}", dir.display());
    }
}
