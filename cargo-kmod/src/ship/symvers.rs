//! `Module.symvers`: what a kernel tree (or a module build) exports, one symbol per line:
//! `0xCRC<TAB>symbol<TAB>module<TAB>EXPORT_SYMBOL[_GPL]<TAB>namespace`.

use std::collections::HashMap;
use std::path::Path;

use anyhow::Result;

/// One exported symbol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exported {
    pub crc: u32,
    /// `vmlinux` or the exporting module's path without `.ko`.
    pub module: String,
    pub gpl: bool,
    pub namespace: Option<String>,
}

/// The symbols of one or more `Module.symvers` files (later files do not override earlier).
#[derive(Debug, Clone, Default)]
pub struct Symvers {
    pub symbols: HashMap<String, Exported>,
}

impl Symvers {
    pub fn parse(text: &str, origin: &str) -> Result<Symvers> {
        let mut s = Symvers::default();
        s.add(text, origin)?;
        Ok(s)
    }

    pub fn read(path: &Path) -> Result<Symvers> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            crate::error::UserError::new(format!(
                "cannot read `{}`: {}",
                path.display(),
                crate::ko::io_reason(&e)
            ))
        })?;
        Symvers::parse(&text, &path.display().to_string())
    }

    pub fn add(&mut self, text: &str, origin: &str) -> Result<()> {
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let cols: Vec<&str> = line.split('\t').collect();
            let crc = cols
                .first()
                .and_then(|c| u32::from_str_radix(c.trim_start_matches("0x"), 16).ok());
            let (Some(crc), true) = (crc, cols.len() >= 4) else {
                crate::bail_user!("malformed `{}` line {}: `{}`", origin, i + 1, line);
            };
            let namespace = cols.get(4).filter(|n| !n.is_empty()).map(|n| n.to_string());
            self.symbols.entry(cols[1].to_string()).or_insert(Exported {
                crc,
                module: cols[2].to_string(),
                gpl: cols[3] == "EXPORT_SYMBOL_GPL",
                namespace,
            });
        }
        Ok(())
    }

    pub fn get(&self, name: &str) -> Option<&Exported> {
        self.symbols.get(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lines() {
        let s = Symvers::parse("0x1a2b3c4d\tprintk\tvmlinux\tEXPORT_SYMBOL\t\n0x00000001\tg\tdrv/x\tEXPORT_SYMBOL_GPL\tNS\n", "t").unwrap();
        assert_eq!(s.get("printk").unwrap().crc, 0x1a2b3c4d);
        let g = s.get("g").unwrap();
        assert!(g.gpl);
        assert_eq!(g.namespace.as_deref(), Some("NS"));
        assert_eq!(
            Symvers::parse("zz\n", "f").unwrap_err().to_string(),
            "malformed `f` line 1: `zz`"
        );
    }
}
