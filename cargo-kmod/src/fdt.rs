//! Flattened device trees (`.dtb`/`.dtbo`): a reader into a [`Node`] tree and a writer of
//! the compact blob for one. Test devices read compiled overlays with it
//! ([`crate::devices::fdt`]); test boots pass qemu's own `virt` tree back compact
//! ([`crate::qemu::dtb`]).
//!
//! A blob is untrusted input (a user's overlay through dtc): every offset and length is
//! checked, and a malformed blob is an error, never a panic.

use anyhow::{bail, Result};

const FDT_MAGIC: u32 = 0xd00d_feed;
const FDT_BEGIN_NODE: u32 = 1;
const FDT_END_NODE: u32 = 2;
const FDT_PROP: u32 = 3;
const FDT_NOP: u32 = 4;
const FDT_END: u32 = 9;
/// Deeper nesting than this is refused (a real overlay is a handful of levels deep).
const MAX_DEPTH: usize = 64;

/// One node of a device tree.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Node {
    /// The full node name, with its unit address (`sensor@48`); empty for the root.
    pub name: String,
    pub props: Vec<(String, Vec<u8>)>,
    pub children: Vec<Node>,
}

impl Node {
    pub fn prop(&self, name: &str) -> Option<&[u8]> {
        self.props
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }

    /// A string-list property (`compatible`): its NUL-terminated strings.
    pub fn strings(&self, name: &str) -> Option<Vec<String>> {
        let v = self.prop(name)?;
        let v = v.strip_suffix(&[0]).unwrap_or(v);
        Some(
            v.split(|b| *b == 0)
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect(),
        )
    }

    pub fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.name == name)
    }
}

fn be32(b: &[u8], at: usize) -> Result<u32> {
    match b.get(at..at + 4) {
        Some(s) => Ok(u32::from_be_bytes([s[0], s[1], s[2], s[3]])),
        None => bail!("truncated at offset {at}"),
    }
}

/// Parse a flattened device tree into its root [`Node`]. The memory reservation block is
/// not read (see [`reserves_memory`]).
pub fn parse(blob: &[u8]) -> Result<Node> {
    if be32(blob, 0)? != FDT_MAGIC {
        bail!("not a flattened device tree (bad magic)");
    }
    let total = be32(blob, 4)? as usize;
    let off_struct = be32(blob, 8)? as usize;
    let off_strings = be32(blob, 12)? as usize;
    let size_strings = be32(blob, 32)? as usize;
    let size_struct = be32(blob, 36)? as usize;
    if total > blob.len()
        || off_struct
            .checked_add(size_struct)
            .is_none_or(|e| e > total)
        || off_strings
            .checked_add(size_strings)
            .is_none_or(|e| e > total)
    {
        bail!("header sizes exceed the blob");
    }
    let structs = &blob[off_struct..off_struct + size_struct];
    let strings = &blob[off_strings..off_strings + size_strings];
    let mut pos = 0;
    let mut stack: Vec<Node> = Vec::new();
    let mut root: Option<Node> = None;
    loop {
        let token = be32(structs, pos)?;
        pos += 4;
        match token {
            FDT_BEGIN_NODE => {
                let rest = structs.get(pos..).unwrap_or_default();
                let Some(len) = rest.iter().position(|b| *b == 0) else {
                    bail!("unterminated node name");
                };
                let name = String::from_utf8_lossy(&rest[..len]).into_owned();
                pos += (len + 1).div_ceil(4) * 4;
                if stack.len() >= MAX_DEPTH {
                    bail!("nodes nested deeper than {MAX_DEPTH}");
                }
                stack.push(Node {
                    name,
                    ..Node::default()
                });
            }
            FDT_END_NODE => {
                let Some(node) = stack.pop() else {
                    bail!("unbalanced end of node");
                };
                match stack.last_mut() {
                    Some(parent) => parent.children.push(node),
                    None => root = Some(node),
                }
            }
            FDT_PROP => {
                let len = be32(structs, pos)? as usize;
                let nameoff = be32(structs, pos + 4)? as usize;
                pos += 8;
                let Some(value) = structs.get(pos..pos.saturating_add(len)) else {
                    bail!("property value runs past the structure block");
                };
                pos += len.div_ceil(4) * 4;
                let name_bytes = strings.get(nameoff..).unwrap_or_default();
                let Some(nlen) = name_bytes.iter().position(|b| *b == 0) else {
                    bail!("property name outside the strings block");
                };
                let name = String::from_utf8_lossy(&name_bytes[..nlen]).into_owned();
                let Some(node) = stack.last_mut() else {
                    bail!("property outside any node");
                };
                node.props.push((name, value.to_vec()));
            }
            FDT_NOP => {}
            FDT_END => break,
            other => bail!("unknown token {other:#x} at offset {}", pos - 4),
        }
    }
    match (root, stack.is_empty()) {
        (Some(r), true) => Ok(r),
        _ => bail!("the tree ends inside a node"),
    }
}

/// Whether the blob's memory reservation block has entries (which [`parse`] does not keep).
pub fn reserves_memory(blob: &[u8]) -> Result<bool> {
    let off = be32(blob, 16)? as usize;
    let entry = blob
        .get(off..off.saturating_add(16))
        .ok_or_else(|| anyhow::anyhow!("memory reservation block outside the blob"))?;
    Ok(entry.iter().any(|b| *b != 0))
}

/// The compact blob of `root`: header, an empty memory reservation block, the structure and
/// the strings, with no free space after them (version 17, boot CPU 0).
pub fn to_blob(root: &Node) -> Vec<u8> {
    fn put(out: &mut Vec<u8>, v: u32) {
        out.extend_from_slice(&v.to_be_bytes());
    }
    fn pad(out: &mut Vec<u8>) {
        while !out.len().is_multiple_of(4) {
            out.push(0);
        }
    }
    fn node(n: &Node, structs: &mut Vec<u8>, strings: &mut Vec<u8>) {
        put(structs, FDT_BEGIN_NODE);
        structs.extend_from_slice(n.name.as_bytes());
        structs.push(0);
        pad(structs);
        for (name, value) in &n.props {
            let nameoff = match find_string(strings, name) {
                Some(at) => at,
                None => {
                    let at = strings.len();
                    strings.extend_from_slice(name.as_bytes());
                    strings.push(0);
                    at
                }
            };
            put(structs, FDT_PROP);
            put(structs, value.len() as u32);
            put(structs, nameoff as u32);
            structs.extend_from_slice(value);
            pad(structs);
        }
        for c in &n.children {
            node(c, structs, strings);
        }
        put(structs, FDT_END_NODE);
    }
    let (mut structs, mut strings) = (Vec::new(), Vec::new());
    node(root, &mut structs, &mut strings);
    put(&mut structs, FDT_END);
    const HEADER: usize = 40;
    const RESERVE: usize = 16;
    let off_struct = HEADER + RESERVE;
    let off_strings = off_struct + structs.len();
    let total = off_strings + strings.len();
    let mut out = Vec::with_capacity(total);
    for v in [
        FDT_MAGIC,
        total as u32,
        off_struct as u32,
        off_strings as u32,
        HEADER as u32,
        17,
        16,
        0,
        strings.len() as u32,
        structs.len() as u32,
    ] {
        put(&mut out, v);
    }
    out.extend_from_slice(&[0; RESERVE]);
    out.extend_from_slice(&structs);
    out.extend_from_slice(&strings);
    out
}

/// Where `name` already sits in the strings block, as a whole NUL-terminated string.
fn find_string(strings: &[u8], name: &str) -> Option<usize> {
    let mut at = 0;
    for s in strings.split(|b| *b == 0) {
        if s == name.as_bytes() {
            return Some(at);
        }
        at += s.len() + 1;
        if at >= strings.len() {
            break;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> Node {
        Node {
            name: String::new(),
            props: vec![
                ("compatible".into(), b"linux,dummy-virt\0".to_vec()),
                ("#address-cells".into(), 2u32.to_be_bytes().to_vec()),
            ],
            children: vec![Node {
                name: "chosen".into(),
                props: vec![
                    ("rng-seed".into(), vec![7; 32]),
                    ("compatible".into(), b"odd\0".to_vec()),
                    ("empty".into(), vec![]),
                    ("three".into(), vec![1, 2, 3]),
                ],
                children: vec![],
            }],
        }
    }

    #[test]
    fn a_written_tree_reads_back_the_same() {
        let blob = to_blob(&tree());
        assert_eq!(parse(&blob).unwrap(), tree());
        assert!(!reserves_memory(&blob).unwrap());
        assert_eq!(be32(&blob, 4).unwrap() as usize, blob.len());
        // Property names are stored once.
        let strings = &blob[be32(&blob, 12).unwrap() as usize..];
        assert_eq!(
            strings,
            b"compatible\0#address-cells\0rng-seed\0empty\0three\0"
        );
    }

    #[test]
    fn a_malformed_blob_is_an_error() {
        let blob = to_blob(&tree());
        for cut in [0, 8, 39, 60, blob.len() - 1] {
            assert!(parse(&blob[..cut]).is_err(), "cut at {cut}");
        }
        let mut bad = blob.clone();
        bad[56..60].copy_from_slice(&0x77u32.to_be_bytes());
        assert!(parse(&bad).is_err());
    }
}
