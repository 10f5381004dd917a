//! The signature the kernel's `scripts/sign-file` appends to a module:
//!
//! ```text
//! [ module ELF ][ PKCS#7 (CMS) DER ][ struct module_signature ][ "~Module signature appended~\n" ]
//! ```
//!
//! `struct module_signature` is 12 bytes: `algo`, `hash`, `id_type` (2 = PKCS#7), `signer_len`,
//! `key_id_len`, three pad bytes and the big-endian signature length. For PKCS#7 everything but
//! `id_type` and `sig_len` is zero; the signer, key id and digest live inside the PKCS#7
//! `SignerInfo`, which this module reads the way kmod's `modinfo` does: the signer is the
//! issuer's common name, the key id the certificate serial number.

use serde::Serialize;

use crate::ko::der::{self, Reader};

/// The magic string that ends a signed module.
pub const MAGIC: &[u8] = b"~Module signature appended~\n";
/// `sizeof(struct module_signature)`.
pub const SIG_STRUCT_LEN: usize = 12;
/// `PKEY_ID_PKCS7`.
pub const PKEY_ID_PKCS7: u8 = 2;

/// What `modinfo` shows about a signature, plus what `verify` needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Signature {
    /// `PKCS#7` (the only kind the kernel produces today).
    pub id_type: String,
    /// The issuer's common name.
    pub signer: Option<String>,
    /// The certificate serial number (or subject key identifier), as bytes.
    #[serde(serialize_with = "ser_hex")]
    pub key_id: Vec<u8>,
    /// `sha256`, `sha512`, ...
    pub hash_algo: Option<String>,
    /// The raw signature value from the `SignerInfo`.
    #[serde(serialize_with = "ser_hex")]
    pub signature: Vec<u8>,
    /// Whether the `SignerInfo` carries signed (authenticated) attributes.
    pub signed_attrs: bool,
    /// The PKCS#7 blob, exactly as appended.
    #[serde(skip)]
    pub pkcs7: Vec<u8>,
}

fn ser_hex<S: serde::Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&colon_hex(bytes))
}

/// `AB:CD:..`, the way `modinfo` prints key ids and signatures.
pub fn colon_hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Split a module into (ELF part, signature) when it ends with the magic. A module without
/// the magic is unsigned: `Ok((all, None))`.
pub fn split(data: &[u8]) -> Result<(&[u8], Option<Signature>), String> {
    let Some(body) = data.strip_suffix(MAGIC) else {
        return Ok((data, None));
    };
    if body.len() < SIG_STRUCT_LEN {
        return Err("signature trailer is truncated".into());
    }
    let (rest, info) = body.split_at(body.len() - SIG_STRUCT_LEN);
    let (algo, hash, id_type, signer_len, key_id_len) =
        (info[0], info[1], info[2], info[3], info[4]);
    let sig_len = u32::from_be_bytes([info[8], info[9], info[10], info[11]]) as usize;
    if id_type != PKEY_ID_PKCS7 {
        return Err(format!("signature id type {id_type} is not PKCS#7 (2)"));
    }
    if algo != 0 || hash != 0 || signer_len != 0 || key_id_len != 0 || info[5..8] != [0, 0, 0] {
        return Err("signature header has non-zero fields for a PKCS#7 signature".into());
    }
    if sig_len == 0 || sig_len > rest.len() {
        return Err(format!(
            "signature length {sig_len} does not fit in the file"
        ));
    }
    let (elf, pkcs7) = rest.split_at(rest.len() - sig_len);
    let sig = parse_pkcs7(pkcs7).map_err(|e| format!("malformed PKCS#7 signature: {e}"))?;
    Ok((elf, Some(sig)))
}

const OID_SIGNED_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02];
const OID_COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];

/// Digest algorithm OIDs (DER contents) and the names the kernel uses.
const HASHES: &[(&[u8], &str)] = &[
    (&[0x2b, 0x0e, 0x03, 0x02, 0x1a], "sha1"),
    (
        &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x04],
        "sha224",
    ),
    (
        &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01],
        "sha256",
    ),
    (
        &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02],
        "sha384",
    ),
    (
        &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03],
        "sha512",
    ),
    (
        &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x08],
        "sha3-256",
    ),
    (
        &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x09],
        "sha3-384",
    ),
    (
        &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x0a],
        "sha3-512",
    ),
    (&[0x2a, 0x81, 0x1c, 0xcf, 0x55, 0x01, 0x83, 0x11], "sm3"),
];

/// Read the first `SignerInfo` of a PKCS#7 `ContentInfo`.
pub fn parse_pkcs7(pkcs7: &[u8]) -> Result<Signature, String> {
    let mut top = Reader::new(pkcs7);
    let content_info = top.expect(der::SEQUENCE, "ContentInfo")?;
    let mut ci = der::inside(content_info);
    let oid = ci.expect(der::OID, "contentType")?;
    if oid != OID_SIGNED_DATA {
        return Err("content type is not signedData".into());
    }
    let explicit = ci.expect(der::CTX0, "content")?;
    let signed_data = der::inside(explicit).expect(der::SEQUENCE, "SignedData")?;
    let mut sd = der::inside(signed_data);
    sd.expect(der::INTEGER, "version")?;
    sd.expect(der::SET, "digestAlgorithms")?;
    sd.expect(der::SEQUENCE, "encapContentInfo")?;
    sd.optional(der::CTX0)?; // certificates
    sd.optional(der::CTX1)?; // crls
    let signer_infos = sd.expect(der::SET, "signerInfos")?;
    let signer_info = der::inside(signer_infos).expect(der::SEQUENCE, "SignerInfo")?;
    let mut si = der::inside(signer_info);
    si.expect(der::INTEGER, "SignerInfo version")?;
    let (signer, key_id) = match si.peek_tag() {
        Some(der::SEQUENCE) => {
            let ias = si.expect(der::SEQUENCE, "issuerAndSerialNumber")?;
            let mut ias = der::inside(ias);
            let issuer = ias.expect(der::SEQUENCE, "issuer")?;
            let serial = ias.expect(der::INTEGER, "serialNumber")?;
            let first_nonzero = serial.iter().position(|&b| b != 0).unwrap_or(serial.len());
            (common_name(issuer)?, serial[first_nonzero..].to_vec())
        }
        Some(der::CTX0_PRIM) => (None, si.read()?.body.to_vec()),
        Some(t) => return Err(format!("unknown signer identifier tag 0x{t:02x}")),
        None => return Err("SignerInfo ends early".into()),
    };
    let digest_alg = si.expect(der::SEQUENCE, "digestAlgorithm")?;
    let digest_oid = der::inside(digest_alg).expect(der::OID, "digestAlgorithm OID")?;
    let hash_algo = HASHES
        .iter()
        .find(|(o, _)| *o == digest_oid)
        .map(|(_, n)| n.to_string());
    let signed_attrs = si.optional(der::CTX0)?.is_some();
    si.expect(der::SEQUENCE, "signatureAlgorithm")?;
    let signature = si.expect(der::OCTET_STRING, "signature")?.to_vec();
    Ok(Signature {
        id_type: "PKCS#7".into(),
        signer,
        key_id,
        hash_algo,
        signature,
        signed_attrs,
        pkcs7: pkcs7.to_vec(),
    })
}

/// The first common name (`CN`) in an X.501 `Name`, as kmod reports the signer.
fn common_name(name: &[u8]) -> Result<Option<String>, String> {
    let mut rdns = der::inside(name);
    while !rdns.is_empty() {
        let set = rdns.expect(der::SET, "RelativeDistinguishedName")?;
        let mut atvs = der::inside(set);
        while !atvs.is_empty() {
            let atv = atvs.expect(der::SEQUENCE, "AttributeTypeAndValue")?;
            let mut atv = der::inside(atv);
            let oid = atv.expect(der::OID, "attribute type")?;
            let value = atv.read()?;
            if oid == OID_COMMON_NAME {
                return Ok(Some(String::from_utf8_lossy(value.body).into_owned()));
            }
        }
    }
    Ok(None)
}

/// Append a signature to module bytes: PKCS#7, `struct module_signature`, magic.
pub fn append(module: &[u8], pkcs7: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(module.len() + pkcs7.len() + SIG_STRUCT_LEN + MAGIC.len());
    out.extend_from_slice(module);
    out.extend_from_slice(pkcs7);
    out.extend_from_slice(&[0, 0, PKEY_ID_PKCS7, 0, 0, 0, 0, 0]);
    out.extend_from_slice(&(pkcs7.len() as u32).to_be_bytes());
    out.extend_from_slice(MAGIC);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsigned_passes_through() {
        let (elf, sig) = split(b"\x7fELF...").unwrap();
        assert_eq!(elf, b"\x7fELF...");
        assert!(sig.is_none());
    }

    #[test]
    fn bad_trailers_are_errors() {
        let mut short = b"abc".to_vec();
        short.extend_from_slice(MAGIC);
        assert_eq!(split(&short).unwrap_err(), "signature trailer is truncated");
        let signed = append(b"elf", &[0x30, 0x00]);
        assert!(split(&signed)
            .unwrap_err()
            .starts_with("malformed PKCS#7 signature"));
        let mut huge = append(b"elf", &[0x30, 0x00]);
        let n = huge.len() - MAGIC.len() - 4;
        huge[n..n + 4].copy_from_slice(&1000u32.to_be_bytes());
        assert_eq!(
            split(&huge).unwrap_err(),
            "signature length 1000 does not fit in the file"
        );
    }

    #[test]
    fn colon_hex_matches_modinfo() {
        assert_eq!(colon_hex(&[0x0a, 0xff, 0x10]), "0A:FF:10");
    }
}
