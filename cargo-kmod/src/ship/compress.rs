//! Compressing modules the way the kernel's `scripts/Makefile.modinst` does:
//!
//! - xz: `xz --check=crc32 --lzma2=dict=1MiB` (the in-kernel xz decompressor supports only
//!   CRC32 checks and needs a bounded dictionary);
//! - zstd: `zstd` at its default level 3, with the content size and a checksum;
//! - gzip: `gzip -n` (no file name, no timestamp), default level 6.
//!
//! All three are deterministic: the same module always gives the same bytes.

use std::io::Write;

use anyhow::{Context, Result};

use crate::ko::Compression;

/// Compress module bytes.
pub fn compress(kind: Compression, data: &[u8]) -> Result<Vec<u8>> {
    Ok(match kind {
        Compression::None => data.to_vec(),
        Compression::Xz => {
            let mut opts = xz2::stream::LzmaOptions::new_preset(6).context("xz preset")?;
            opts.dict_size(1 << 20);
            let mut filters = xz2::stream::Filters::new();
            filters.lzma2(&opts);
            let stream =
                xz2::stream::Stream::new_stream_encoder(&filters, xz2::stream::Check::Crc32)
                    .context("cannot start the xz encoder")?;
            let mut enc = xz2::write::XzEncoder::new_stream(Vec::new(), stream);
            enc.write_all(data)?;
            enc.finish()?
        }
        Compression::Zstd => {
            let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 3)?;
            enc.include_checksum(true)?;
            enc.include_contentsize(true)?;
            enc.set_pledged_src_size(Some(data.len() as u64))?;
            enc.write_all(data)?;
            enc.finish()?
        }
        Compression::Gzip => {
            // `gzip -n`: mtime 0, no name; OS byte 3 (Unix) as GNU gzip writes it.
            let mut enc = flate2::GzBuilder::new()
                .mtime(0)
                .operating_system(3)
                .write(Vec::new(), flate2::Compression::new(6));
            enc.write_all(data)?;
            enc.finish()?
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ko::compress::decompress;

    #[test]
    fn round_trips_and_is_deterministic() {
        let data: Vec<u8> = (0..100_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        for kind in [Compression::Xz, Compression::Zstd, Compression::Gzip] {
            let a = compress(kind, &data).unwrap();
            assert_eq!(a, compress(kind, &data).unwrap(), "{kind:?}");
            assert_eq!(Compression::sniff(&a), kind);
            assert_eq!(decompress(kind, &a).unwrap(), data);
        }
    }

    #[test]
    fn xz_uses_crc32_check() {
        let a = compress(Compression::Xz, b"module").unwrap();
        // Stream flags (bytes 6..8): 0x00, check type 0x01 = CRC32.
        assert_eq!(&a[6..8], &[0x00, 0x01]);
    }

    #[test]
    fn gzip_has_no_name_or_time() {
        let a = compress(Compression::Gzip, b"module").unwrap();
        assert_eq!(a[3], 0, "FLG: no FNAME");
        assert_eq!(&a[4..8], &[0, 0, 0, 0], "MTIME");
        assert_eq!(a[9], 3);
    }
}
