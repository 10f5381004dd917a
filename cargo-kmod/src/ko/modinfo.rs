//! The `.modinfo` section: NUL-terminated `key=value` strings (`license=GPL`,
//! `vermagic=7.2.13 SMP mod_unload modversions `, `parm=count:how many`, `parmtype=count:int`).

use std::collections::HashMap;

use serde::Serialize;

/// A module parameter, merged from its `parm=` and `parmtype=` entries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Param {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: Option<String>,
    pub description: Option<String>,
}

/// Split `.modinfo` into ordered `(key, value)` pairs. Padding NULs between entries are
/// allowed (the linker aligns them); an entry without `=` or without its terminating NUL is
/// malformed.
pub fn parse(data: &[u8]) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        if rest[0] == 0 {
            rest = &rest[1..];
            continue;
        }
        let Some(end) = rest.iter().position(|&b| b == 0) else {
            return Err(format!("entry {} is not NUL-terminated", out.len() + 1));
        };
        let entry = String::from_utf8_lossy(&rest[..end]);
        let Some((k, v)) = entry.split_once('=') else {
            return Err(format!(
                "entry {} (`{}`) has no `=`",
                out.len() + 1,
                entry.escape_debug()
            ));
        };
        if k.is_empty() {
            return Err(format!("entry {} has an empty key", out.len() + 1));
        }
        out.push((k.to_string(), v.to_string()));
        rest = &rest[end + 1..];
    }
    Ok(out)
}

/// Parameters in the order their first entry appears (the order `modinfo` prints them).
/// Linear: a name-to-index map, not a search per entry (a hostile `.modinfo` may hold
/// hundreds of thousands of distinct `parm=` entries).
pub fn params(fields: &[(String, String)]) -> Vec<Param> {
    let mut params: Vec<Param> = Vec::new();
    let mut index: HashMap<&str, usize> = HashMap::new();
    for (k, v) in fields {
        if k != "parm" && k != "parmtype" {
            continue;
        }
        let (name, text) = v.split_once(':').unwrap_or((v.as_str(), ""));
        let idx = *index.entry(name).or_insert_with(|| {
            params.push(Param {
                name: name.to_string(),
                ty: None,
                description: None,
            });
            params.len() - 1
        });
        if k == "parm" {
            params[idx].description = Some(text.to_string());
        } else {
            params[idx].ty = Some(text.to_string());
        }
    }
    params
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_entries_with_padding() {
        let f = parse(b"license=GPL\0\0\0parm=n:count\0parmtype=n:int\0a=b=c\0").unwrap();
        assert_eq!(f[0], ("license".into(), "GPL".into()));
        assert_eq!(f[3], ("a".into(), "b=c".into()));
        assert_eq!(
            params(&f),
            [Param {
                name: "n".into(),
                ty: Some("int".into()),
                description: Some("count".into())
            }]
        );
    }

    #[test]
    fn malformed() {
        assert_eq!(
            parse(b"license=GPL\0junk\0").unwrap_err(),
            "entry 2 (`junk`) has no `=`"
        );
        assert_eq!(
            parse(b"license=GPL").unwrap_err(),
            "entry 1 is not NUL-terminated"
        );
        assert_eq!(parse(b"=x\0").unwrap_err(), "entry 1 has an empty key");
    }
}
