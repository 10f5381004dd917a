//! A reader for flattened device trees (`.dtb`/`.dtbo`), enough to list what a compiled
//! overlay adds: its fragments, their targets, and the nodes with a `compatible` under them.
//!
//! The blob is untrusted input (a user's overlay through dtc): every offset and length is
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

/// Parse a flattened device tree into its root [`Node`].
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

/// A node an overlay adds that has a `compatible`: a device the kernel will create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverlayDevice {
    /// Its path in the live tree once applied (`/blinker`, `/cargo-kmod-i2c/sensor@48`).
    pub path: String,
    pub compatible: Vec<String>,
    /// The parent's `compatible` (to tell I2C clients on cargo-kmod's bus from the rest).
    pub parent_compatible: Vec<String>,
    /// Its depth below the fragment's target (1 for a direct child).
    pub depth: usize,
}

/// What an overlay blob holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OverlayInfo {
    /// Number of fragments with an `__overlay__` node.
    pub fragments: usize,
    /// Fragments whose target is a phandle (`target = <&label>`) rather than a path.
    pub phandle_targets: usize,
    /// Whether it carries `__symbols__` (labels compiled with `dtc -@`).
    pub symbols: bool,
    /// The nodes it adds (or changes) directly under the root (`/blinker`).
    pub root_nodes: Vec<String>,
    pub devices: Vec<OverlayDevice>,
}

/// List the fragments and device nodes of a compiled overlay.
pub fn overlay_info(blob: &[u8]) -> Result<OverlayInfo> {
    let root = parse(blob)?;
    let mut info = OverlayInfo {
        symbols: root.child("__symbols__").is_some(),
        ..OverlayInfo::default()
    };
    for frag in &root.children {
        let Some(ov) = frag.child("__overlay__") else {
            continue;
        };
        info.fragments += 1;
        let target = match frag.strings("target-path") {
            Some(t) if !t.is_empty() => t[0].clone(),
            _ => {
                info.phandle_targets += 1;
                continue;
            }
        };
        let base = target.trim_end_matches('/').to_string();
        if base.is_empty() {
            info.root_nodes
                .extend(ov.children.iter().map(|c| format!("/{}", c.name)));
        }
        walk(ov, &base, 1, &mut info.devices);
    }
    Ok(info)
}

fn walk(node: &Node, path: &str, depth: usize, out: &mut Vec<OverlayDevice>) {
    let own = node.strings("compatible").unwrap_or_default();
    for c in &node.children {
        let p = format!("{path}/{}", c.name);
        if let Some(compatible) = c.strings("compatible") {
            out.push(OverlayDevice {
                path: p.clone(),
                compatible,
                parent_compatible: own.clone(),
                depth,
            });
        }
        walk(c, &p, depth + 1, out);
    }
}
