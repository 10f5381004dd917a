//! Compressed modules (`.ko.xz`, `.ko.zst`, `.ko.gz`): which kind a file is, and reading it.
//!
//! The kind is taken from the file's magic bytes, not its name, so a mislabelled file is
//! still read correctly and a corrupt one is reported as such. Writing compressed modules
//! lives in `ship::compress`.

use std::io::Read;

use serde::Serialize;

/// Decompressed modules larger than this are refused (a guard against compression bombs).
pub const MAX_MODULE_SIZE: u64 = 1 << 30;

/// How a module file is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, clap::ValueEnum, Default)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    #[default]
    None,
    Xz,
    Zstd,
    Gzip,
}

impl Compression {
    /// The file extension after `.ko` (`xz`, `zst`, `gz`).
    pub fn extension(self) -> Option<&'static str> {
        match self {
            Compression::None => None,
            Compression::Xz => Some("xz"),
            Compression::Zstd => Some("zst"),
            Compression::Gzip => Some("gz"),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Xz => "xz",
            Compression::Zstd => "zstd",
            Compression::Gzip => "gzip",
        }
    }

    /// From the magic bytes at the start of a file.
    pub fn sniff(data: &[u8]) -> Compression {
        if data.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
            Compression::Xz
        } else if data.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else if data.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else {
            Compression::None
        }
    }

    /// From a file name's last extension (`x.ko.xz` is xz).
    pub fn from_file_name(name: &str) -> Compression {
        match name.rsplit_once('.').map(|(_, e)| e) {
            Some("xz") => Compression::Xz,
            Some("zst") => Compression::Zstd,
            Some("gz") => Compression::Gzip,
            _ => Compression::None,
        }
    }
}

/// Decompress `data` (whose kind was sniffed) into the module bytes.
pub fn decompress(kind: Compression, data: &[u8]) -> Result<Vec<u8>, String> {
    let reader: Box<dyn Read + '_> = match kind {
        Compression::None => return Ok(data.to_vec()),
        Compression::Xz => Box::new(xz2::read::XzDecoder::new(data)),
        Compression::Zstd => {
            Box::new(zstd::stream::read::Decoder::new(data).map_err(|e| e.to_string())?)
        }
        Compression::Gzip => Box::new(flate2::read::GzDecoder::new(data)),
    };
    let mut out = Vec::new();
    reader
        .take(MAX_MODULE_SIZE + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("corrupt {} data: {}", kind.name(), lower(&e.to_string())))?;
    if out.len() as u64 > MAX_MODULE_SIZE {
        return Err(format!(
            "decompresses to more than {} MiB",
            MAX_MODULE_SIZE >> 20
        ));
    }
    Ok(out)
}

fn lower(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniff_and_names() {
        assert_eq!(Compression::sniff(b"\x7fELF"), Compression::None);
        assert_eq!(Compression::sniff(&[0x1f, 0x8b, 8]), Compression::Gzip);
        assert_eq!(Compression::from_file_name("a.ko.zst"), Compression::Zstd);
        assert_eq!(Compression::Zstd.extension(), Some("zst"));
    }

    #[test]
    fn corrupt_streams_are_errors() {
        for kind in [Compression::Xz, Compression::Zstd, Compression::Gzip] {
            let magic: &[u8] = match kind {
                Compression::Xz => &[0xfd, b'7', b'z', b'X', b'Z', 0, 1, 2, 3],
                Compression::Zstd => &[0x28, 0xb5, 0x2f, 0xfd, 9, 9, 9],
                _ => &[0x1f, 0x8b, 8, 0, 1, 2],
            };
            let e = decompress(kind, magic).unwrap_err();
            assert!(
                e.starts_with(&format!("corrupt {} data", kind.name())),
                "{e}"
            );
        }
    }
}
