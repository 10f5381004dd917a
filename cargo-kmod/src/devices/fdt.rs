//! What a compiled device-tree overlay adds: its fragments, their targets, and the nodes with
//! a `compatible` under them (read with [`crate::fdt`]).

use anyhow::Result;

pub use crate::fdt::{parse, Node};

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
