//! A minimal DER/BER reader: just enough of ASN.1 to walk a PKCS#7 `SignedData` and find the
//! signer, key id and digest of a module signature.
//!
//! Written for hostile input (it is fuzzed): every length is checked against the buffer,
//! nesting is bounded, and no function panics. Indefinite lengths (BER, as some signers
//! stream them) are accepted for constructed values.

/// A tag-length-value element; `body` is the contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tlv<'a> {
    pub tag: u8,
    pub body: &'a [u8],
}

pub const SEQUENCE: u8 = 0x30;
pub const SET: u8 = 0x31;
pub const INTEGER: u8 = 0x02;
pub const OCTET_STRING: u8 = 0x04;
pub const OID: u8 = 0x06;
/// `[0]` constructed, context-specific.
pub const CTX0: u8 = 0xa0;
/// `[1]` constructed, context-specific.
pub const CTX1: u8 = 0xa1;
/// `[0]` primitive, context-specific (a `SubjectKeyIdentifier` signer id).
pub const CTX0_PRIM: u8 = 0x80;

const MAX_DEPTH: u32 = 24;

/// Reads consecutive elements from a buffer.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Reader { data }
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub fn peek_tag(&self) -> Option<u8> {
        self.data.first().copied()
    }

    /// The next element.
    pub fn read(&mut self) -> Result<Tlv<'a>, String> {
        let (tlv, rest) = read_tlv(self.data, 0)?;
        self.data = rest;
        Ok(tlv)
    }

    /// The next element, which must have `tag`; returns its body.
    pub fn expect(&mut self, tag: u8, what: &str) -> Result<&'a [u8], String> {
        let tlv = self.read().map_err(|e| format!("{what}: {e}"))?;
        if tlv.tag != tag {
            return Err(format!(
                "{what}: expected tag 0x{tag:02x}, found 0x{:02x}",
                tlv.tag
            ));
        }
        Ok(tlv.body)
    }

    /// Skip the next element when it has `tag`; returns its body if it was there.
    pub fn optional(&mut self, tag: u8) -> Result<Option<&'a [u8]>, String> {
        if self.peek_tag() == Some(tag) {
            Ok(Some(self.read()?.body))
        } else {
            Ok(None)
        }
    }
}

fn read_tlv(data: &[u8], depth: u32) -> Result<(Tlv<'_>, &[u8]), String> {
    if depth > MAX_DEPTH {
        return Err("nested too deeply".into());
    }
    let (&tag, rest) = data.split_first().ok_or("unexpected end of data")?;
    if tag & 0x1f == 0x1f {
        return Err("multi-byte tags are not supported".into());
    }
    let (&len0, rest) = rest.split_first().ok_or("unexpected end of data")?;
    if len0 == 0x80 {
        // Indefinite length: constructed only, children up to an end-of-contents marker.
        if tag & 0x20 == 0 {
            return Err("indefinite length on a primitive value".into());
        }
        let mut cur = rest;
        loop {
            if cur.len() >= 2 && cur[0] == 0 && cur[1] == 0 {
                let body_len = rest.len() - cur.len();
                return Ok((
                    Tlv {
                        tag,
                        body: &rest[..body_len],
                    },
                    &cur[2..],
                ));
            }
            let (_, after) = read_tlv(cur, depth + 1)?;
            cur = after;
        }
    }
    let (len, rest) = if len0 & 0x80 == 0 {
        (len0 as usize, rest)
    } else {
        let n = (len0 & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return Err("bad length".into());
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | b as usize);
        (len, &rest[n..])
    };
    if rest.len() < len {
        return Err(format!(
            "length {len} runs past the end ({} bytes left)",
            rest.len()
        ));
    }
    Ok((
        Tlv {
            tag,
            body: &rest[..len],
        },
        &rest[len..],
    ))
}

/// The body of an indefinite-length value still holds its children; a definite one is the
/// same. Helper to start reading inside an element.
pub fn inside(body: &[u8]) -> Reader<'_> {
    Reader::new(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_short_long_and_indefinite() {
        let mut r = Reader::new(&[0x02, 0x01, 0x05, 0x04, 0x81, 0x02, 0xaa, 0xbb]);
        assert_eq!(r.read().unwrap(), Tlv { tag: 2, body: &[5] });
        assert_eq!(r.expect(OCTET_STRING, "x").unwrap(), &[0xaa, 0xbb]);
        assert!(r.is_empty());
        let data = [0x30, 0x80, 0x02, 0x01, 0x07, 0x00, 0x00, 0x05, 0x00];
        let mut r = Reader::new(&data);
        assert_eq!(r.expect(SEQUENCE, "seq").unwrap(), &[0x02, 0x01, 0x07]);
        assert_eq!(r.read().unwrap().tag, 0x05);
    }

    #[test]
    fn rejects_bad_input_without_panicking() {
        for bad in [
            &[][..],
            &[0x30],
            &[0x30, 0x05, 0x00],
            &[0x30, 0x85, 1, 1, 1, 1, 1],
            &[0x1f, 0],
        ] {
            assert!(Reader::new(bad).read().is_err(), "{bad:?}");
        }
        let mut deep = vec![];
        for _ in 0..100 {
            deep.extend([0x30, 0x80]);
        }
        assert!(Reader::new(&deep).read().is_err());
    }
}
