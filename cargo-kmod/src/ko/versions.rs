//! Symbol versions (modversions): the CRC of every symbol a module imports.
//!
//! - `__versions` (basic): an array of `struct modversion_info { unsigned long crc; char
//!   name[64 - sizeof(unsigned long)]; }`, 64 bytes per entry on 32- and 64-bit alike.
//! - `__version_ext_crcs` + `__version_ext_names` (extended, `CONFIG_EXTENDED_MODVERSIONS`):
//!   an array of 32-bit CRCs and, in the same order, NUL-terminated names of any length.

use serde::Serialize;

/// `sizeof(struct modversion_info)`.
pub const MODVERSION_INFO_LEN: usize = 64;

/// One imported symbol and the CRC the module was built with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SymbolVersion {
    pub name: String,
    #[serde(serialize_with = "ser_crc")]
    pub crc: u32,
}

pub(crate) fn ser_crc<S: serde::Serializer>(crc: &u32, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("0x{crc:08x}"))
}

/// Parse `__versions`. `is_64`/`big_endian` come from the ELF header.
pub fn parse_basic(
    data: &[u8],
    is_64: bool,
    big_endian: bool,
) -> Result<Vec<SymbolVersion>, String> {
    if !data.len().is_multiple_of(MODVERSION_INFO_LEN) {
        return Err(format!(
            "size {} is not a multiple of {MODVERSION_INFO_LEN}",
            data.len()
        ));
    }
    let crc_len = if is_64 { 8 } else { 4 };
    data.chunks_exact(MODVERSION_INFO_LEN)
        .enumerate()
        .map(|(i, entry)| {
            let (crc, name) = entry.split_at(crc_len);
            let crc = read_uint(crc, big_endian);
            let Some(end) = name.iter().position(|&b| b == 0) else {
                return Err(format!("entry {} has no NUL-terminated name", i + 1));
            };
            if end == 0 {
                return Err(format!("entry {} has an empty name", i + 1));
            }
            Ok(SymbolVersion {
                name: String::from_utf8_lossy(&name[..end]).into_owned(),
                crc: crc as u32,
            })
        })
        .collect()
}

/// Parse the extended pair of sections.
pub fn parse_extended(
    crcs: &[u8],
    names: &[u8],
    big_endian: bool,
) -> Result<Vec<SymbolVersion>, String> {
    if !crcs.len().is_multiple_of(4) {
        return Err(format!(
            "`__version_ext_crcs` size {} is not a multiple of 4",
            crcs.len()
        ));
    }
    // modpost pads the section; the NULs after the last name are padding, not names. Where the
    // padding starts is found once: asking "is the rest all NULs?" after every name is
    // quadratic on a section of many empty names.
    let content_end = names.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    let mut list: Vec<&[u8]> = Vec::new();
    let mut at = 0;
    while at < names.len() {
        let rest = &names[at..];
        let Some(end) = rest.iter().position(|&b| b == 0) else {
            return Err("`__version_ext_names` ends without a NUL".into());
        };
        list.push(&rest[..end]);
        at += end + 1;
        if at >= content_end {
            break;
        }
    }
    let count = crcs.len() / 4;
    if list.len() != count {
        return Err(format!(
            "`__version_ext_names` has {} names but `__version_ext_crcs` has {count} CRCs",
            list.len()
        ));
    }
    Ok(crcs
        .chunks_exact(4)
        .zip(list)
        .map(|(c, n)| SymbolVersion {
            name: String::from_utf8_lossy(n).into_owned(),
            crc: read_uint(c, big_endian) as u32,
        })
        .collect())
}

fn read_uint(bytes: &[u8], big_endian: bool) -> u64 {
    let it = bytes.iter().map(|&b| b as u64);
    if big_endian {
        it.fold(0, |acc, b| (acc << 8) | b)
    } else {
        it.rev().fold(0, |acc, b| (acc << 8) | b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(crc: u64, name: &str) -> Vec<u8> {
        let mut e = crc.to_le_bytes().to_vec();
        e.extend_from_slice(name.as_bytes());
        e.resize(64, 0);
        e
    }

    #[test]
    fn basic_and_extended() {
        let mut data = entry(0x1234_5678, "printk");
        data.extend(entry(0xdead_beef, "module_layout"));
        let v = parse_basic(&data, true, false).unwrap();
        assert_eq!(
            v[1],
            SymbolVersion {
                name: "module_layout".into(),
                crc: 0xdead_beef
            }
        );
        let ext = parse_extended(&[1, 0, 0, 0, 0, 0, 0, 2], b"a\0bb\0\0\0", false).unwrap();
        assert_eq!(
            ext[1],
            SymbolVersion {
                name: "bb".into(),
                crc: 0x0200_0000
            }
        );
        let be = parse_extended(&[0, 0, 0, 1], b"x\0", true).unwrap();
        assert_eq!(be[0].crc, 1);
    }

    #[test]
    fn malformed() {
        assert_eq!(
            parse_basic(&[0; 65], true, false).unwrap_err(),
            "size 65 is not a multiple of 64"
        );
        let mut full = vec![1u8; 64];
        full[..8].fill(0);
        assert_eq!(
            parse_basic(&full, true, false).unwrap_err(),
            "entry 1 has no NUL-terminated name"
        );
        assert!(parse_extended(&[0; 8], b"a\0", false)
            .unwrap_err()
            .contains("has 1 names but"));
        assert!(parse_extended(&[0; 3], b"", false).is_err());
        assert!(parse_extended(&[0; 4], b"abc", false).is_err());
    }
}
