//! `cargo kmod info FILE`: what is inside a `.ko` (or `.ko.xz`/`.ko.zst`/`.ko.gz`): the
//! `.modinfo` fields as `modinfo` prints them, the signature, the imported symbols with their
//! CRCs (basic and extended tables) and the exported symbols. `--json` for machines.

use std::collections::HashSet;
use std::path::PathBuf;

use anyhow::Result;
use serde_json::json;

use crate::context::Session;
use crate::ko::signature::colon_hex;
use crate::ko::{self, KoFile};
use crate::text::escape;

#[derive(Debug, clap::Args)]
pub struct InfoCmd {
    /// The module file(s): `.ko`, `.ko.xz`, `.ko.zst` or `.ko.gz`
    #[arg(value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,
    /// Print one JSON object per module (same as `--message-format json`)
    #[arg(long)]
    pub json: bool,
}

impl InfoCmd {
    pub fn run(&self, session: &Session) -> Result<()> {
        for (i, path) in self.files.iter().enumerate() {
            let ko = ko::read(path)?;
            if self.json || session.shell.is_json() {
                session.shell.json(&to_json(&ko));
            } else {
                if i > 0 {
                    session.shell.out("");
                }
                for line in render(&ko) {
                    session.shell.out(line);
                }
            }
        }
        Ok(())
    }
}

/// The JSON form: the parsed module plus file facts.
pub fn to_json(ko: &KoFile) -> serde_json::Value {
    let m = &ko.module;
    json!({
        "reason": "module-info",
        "filename": ko.path.display().to_string(),
        "compression": ko.compression,
        "name": m.name,
        "arch": m.arch().map(|a| a.name().to_string()),
        "machine": ko::machine_name(m.machine),
        "class": m.class,
        "endian": if m.big_endian { "big" } else { "little" },
        "modinfo": m.modinfo.iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>(),
        "vermagic": m.vermagic(),
        "depends": m.depends(),
        "params": m.params,
        "signature": m.signature,
        "versions": m.versions,
        "ext_versions": m.ext_versions,
        "exports": m.exports,
    })
}

/// One `key: value` line. Both come from the module and are untrusted: control characters
/// (a newline would draw a fake line, an ANSI escape repaint the screen) are escaped.
fn row(key: &str, value: &str) -> String {
    format!("{:<16}{}", format!("{}:", escape(key)), escape(value))
}

/// Human output: `modinfo`'s layout first, then symbols. Linear in the module's size, and
/// every string from the module goes through [`escape`].
pub fn render(ko: &KoFile) -> Vec<String> {
    let m = &ko.module;
    let mut out = vec![row("filename", &ko.path.display().to_string())];
    for (k, v) in &m.modinfo {
        if k != "parm" && k != "parmtype" {
            out.push(row(k, v));
        }
    }
    if let Some(s) = &m.signature {
        out.push(row("sig_id", &s.id_type));
        if let Some(signer) = &s.signer {
            out.push(row("signer", signer));
        }
        out.push(row("sig_key", &colon_hex(&s.key_id)));
        if let Some(h) = &s.hash_algo {
            out.push(row("sig_hashalgo", h));
        }
        let hex = colon_hex(&s.signature);
        // modinfo wraps the signature at 20 bytes per line.
        for (i, chunk) in hex.as_bytes().chunks(60).enumerate() {
            let text = String::from_utf8_lossy(chunk);
            if i == 0 {
                out.push(row("signature", &text));
            } else {
                out.push(format!("{:16}{text}", ""));
            }
        }
    }
    for p in &m.params {
        let mut v = format!("{}:{}", p.name, p.description.as_deref().unwrap_or(""));
        if let Some(t) = &p.ty {
            v.push_str(&format!(" ({t})"));
        }
        out.push(row("parm", &v));
    }
    out.push(row(
        "file",
        &format!(
            "ELF{} {}-endian {}{}",
            m.class,
            if m.big_endian { "big" } else { "little" },
            ko::machine_name(m.machine),
            match ko.compression.extension() {
                Some(_) => format!(", {}-compressed", ko.compression.name()),
                None => String::new(),
            }
        ),
    ));
    out.push(row(
        "imports",
        &format!(
            "{} with CRCs ({} basic, {} extended)",
            m.imports().len(),
            m.versions.len(),
            m.ext_versions.len()
        ),
    ));
    let basic: HashSet<&str> = m.versions.iter().map(|b| b.name.as_str()).collect();
    let ext: HashSet<&str> = m.ext_versions.iter().map(|e| e.name.as_str()).collect();
    for v in m.imports() {
        let tables = match (
            basic.contains(v.name.as_str()),
            ext.contains(v.name.as_str()),
        ) {
            (true, true) => "basic+ext",
            (true, false) => "basic",
            _ => "ext",
        };
        out.push(format!(
            "    0x{:08x}  {:<9}  {}",
            v.crc,
            tables,
            escape(&v.name)
        ));
    }
    out.push(row("exports", &m.exports.len().to_string()));
    for e in &m.exports {
        let crc = e
            .crc
            .map(|c| format!("0x{c:08x}"))
            .unwrap_or_else(|| "-".repeat(10));
        out.push(format!(
            "    {crc}  {:<9}  {}",
            if e.gpl { "GPL" } else { "" },
            escape(&e.name)
        ));
    }
    out
}
