//! Cargo's `[lints]` table as the rustc flags cargo makes of it.
//!
//! `[lints.rust]`, `[lints.clippy]` and `[lints.rustdoc]` map a lint (or group) name to a
//! level (`"allow"`, `"warn"`, `"deny"`, `"forbid"`) or to `{ level = "...", priority = N }`;
//! `[lints] workspace = true` takes `[workspace.lints]` of the workspace's root manifest.
//! Like cargo, the flags are ordered by priority, then by name, and spelled
//! `--warn=clippy::name` (a tool's lints carry its prefix; `rust`'s have none). cargo
//! metadata does not report the table, so it is read from the manifests here.

use std::path::Path;

use anyhow::{Context as _, Result};

/// The lint levels cargo accepts.
const LEVELS: &[&str] = &["allow", "warn", "deny", "forbid"];

/// The lint tools whose lints go to rustc.
const TOOLS: &[&str] = &["rust", "clippy", "rustdoc"];

/// `[lints.cargo]`: cargo's own lints, none of rustc's business.
const CARGO_TOOL: &str = "cargo";

/// The lint flags of the package at `manifest`, whose workspace root manifest is
/// `root_manifest` (for `workspace = true`).
pub fn flags(manifest: &Path, root_manifest: &Path) -> Result<Vec<String>> {
    let doc = read(manifest)?;
    let Some(lints) = doc.get("lints") else {
        return Ok(Vec::new());
    };
    let lints = lints
        .as_table()
        .ok_or_else(|| user(manifest, "`[lints]` must be a table"))?;
    match lints.get("workspace") {
        Some(toml::Value::Boolean(true)) => {
            if let Some(other) = lints.keys().find(|k| *k != "workspace") {
                return Err(user(
                    manifest,
                    &format!("`[lints]` has `workspace = true` and `{other}`: cargo takes one or the other"),
                ));
            }
            let root = read(root_manifest)?;
            match root.get("workspace").and_then(|w| w.get("lints")) {
                Some(toml::Value::Table(t)) => table_flags(t, "workspace.lints", root_manifest),
                Some(_) => Err(user(root_manifest, "`[workspace.lints]` must be a table")),
                None => Err(user(
                    manifest,
                    &format!(
                        "`[lints] workspace = true`, but `{}` has no `[workspace.lints]`",
                        root_manifest.display()
                    ),
                )),
            }
        }
        Some(toml::Value::Boolean(false)) | None => table_flags(lints, "lints", manifest),
        Some(_) => Err(user(manifest, "`workspace` in `[lints]` must be `true`")),
    }
}

/// The flags of one `[lints]` (or `[workspace.lints]`) table; `section` names it in errors.
pub fn table_flags(table: &toml::Table, section: &str, file: &Path) -> Result<Vec<String>> {
    let mut lints: Vec<(i64, String, &str)> = Vec::new();
    for (tool, entries) in table {
        if (tool == "workspace" && section == "lints") || tool == CARGO_TOOL {
            continue;
        }
        if !TOOLS.contains(&tool.as_str()) {
            let mut msg = format!("unknown lint tool `{tool}` in `[{section}]`");
            if let Some(n) = super::nearest(tool, TOOLS) {
                msg.push_str(&format!(" (did you mean `{n}`?)"));
            }
            return Err(user(file, &msg));
        }
        let entries = entries
            .as_table()
            .ok_or_else(|| user(file, &format!("`[{section}.{tool}]` must be a table")))?;
        for (name, value) in entries {
            let key = format!("{section}.{tool}.{name}");
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return Err(user(file, &format!("`{key}` is not a lint name")));
            }
            let (level, priority) = level_of(value, &key, file)?;
            let name = if tool == "rust" {
                name.clone()
            } else {
                format!("{tool}::{name}")
            };
            lints.push((priority, name, level));
        }
    }
    lints.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
    Ok(lints
        .into_iter()
        .map(|(_, name, level)| format!("--{level}={name}"))
        .collect())
}

/// A lint's level and priority: `"warn"` or `{ level = "warn", priority = -1 }`.
fn level_of<'a>(value: &'a toml::Value, key: &str, file: &Path) -> Result<(&'a str, i64)> {
    let (level, priority) = match value {
        toml::Value::String(s) => (s.as_str(), 0),
        toml::Value::Table(t) => {
            if let Some(k) = t.keys().find(|k| *k != "level" && *k != "priority") {
                return Err(user(
                    file,
                    &format!("unknown key `{k}` in `{key}` (expected `level` and `priority`)"),
                ));
            }
            let level = match t.get("level") {
                Some(toml::Value::String(s)) => s.as_str(),
                _ => return Err(user(file, &format!("`{key}` needs `level = \"...\"`"))),
            };
            let priority = match t.get("priority") {
                None => 0,
                Some(toml::Value::Integer(n)) => *n,
                Some(_) => {
                    return Err(user(
                        file,
                        &format!("`priority` of `{key}` must be an integer"),
                    ))
                }
            };
            (level, priority)
        }
        _ => {
            return Err(user(
                file,
                &format!("`{key}` must be a level (`\"warn\"`) or a table with `level`"),
            ))
        }
    };
    if !LEVELS.contains(&level) {
        let mut msg = format!(
            "unknown lint level `{level}` for `{key}` (expected `allow`, `warn`, `deny` or `forbid`)"
        );
        if let Some(n) = super::nearest(level, LEVELS) {
            msg = format!("unknown lint level `{level}` for `{key}` (did you mean `{n}`?)");
        }
        return Err(user(file, &msg));
    }
    Ok((level, priority))
}

fn read(file: &Path) -> Result<toml::Table> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read `{}`", file.display()))?;
    text.parse::<toml::Table>()
        .map_err(|e| user(file, &format!("invalid TOML: {}", e.message())))
}

/// A one-line error naming the file.
fn user(file: &Path, message: &str) -> anyhow::Error {
    crate::error::UserError::new(format!("{message} in `{}`", file.display())).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags_of(text: &str) -> Result<Vec<String>> {
        let table: toml::Table = text.parse().unwrap();
        let lints = table["lints"].as_table().unwrap();
        table_flags(lints, "lints", Path::new("/p/Cargo.toml"))
    }

    #[test]
    fn levels_become_cargo_flags_by_priority_then_name() {
        let f = flags_of(
            r#"
            [lints.rust]
            unsafe_code = "forbid"
            missing_docs = { level = "allow", priority = 1 }
            [lints.clippy]
            needless_return = "allow"
            all = { level = "deny", priority = -1 }
            [lints.cargo]
            unused_optional_dependency = "warn"
            "#,
        )
        .unwrap();
        assert_eq!(
            f,
            [
                "--deny=clippy::all",
                "--allow=clippy::needless_return",
                "--forbid=unsafe_code",
                "--allow=missing_docs",
            ]
        );
    }

    #[test]
    fn bad_levels_tools_and_keys_are_one_line_errors() {
        let e = flags_of("[lints.clippy]\nneedless_return = \"allw\"\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown lint level `allw` for `lints.clippy.needless_return` (did you mean `allow`?) in `/p/Cargo.toml`"
        );
        let e = flags_of("[lints.clipy]\nx = \"allow\"\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown lint tool `clipy` in `[lints]` (did you mean `clippy`?) in `/p/Cargo.toml`"
        );
        let e = flags_of("[lints.rust]\nx = { level = \"warn\", prio = 1 }\n").unwrap_err();
        assert!(
            e.to_string()
                .contains("unknown key `prio` in `lints.rust.x`"),
            "{e}"
        );
        let e = flags_of("[lints.rust]\nx = 3\n").unwrap_err();
        assert!(
            e.to_string().starts_with("`lints.rust.x` must be a level"),
            "{e}"
        );
        let e = flags_of("[lints.rust]\n\"a b\" = \"warn\"\n").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("`lints.rust.a b` is not a lint name"),
            "{e}"
        );
        for e in [
            flags_of("[lints.clippy]\nneedless_return = \"allw\"\n").unwrap_err(),
            flags_of("[lints.rust]\nx = { level = 1 }\n").unwrap_err(),
        ] {
            assert!(crate::error::user_error(&e).is_some());
            assert!(!e.to_string().contains('\n'));
        }
    }

    #[test]
    fn workspace_lints_come_from_the_root_manifest() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("Cargo.toml");
        let member = d.path().join("m/Cargo.toml");
        std::fs::create_dir_all(d.path().join("m")).unwrap();
        std::fs::write(
            &root,
            "[workspace]\nmembers = [\"m\"]\n[workspace.lints.clippy]\nneedless_return = \"deny\"\n",
        )
        .unwrap();
        std::fs::write(
            &member,
            "[package]\nname = \"m\"\n[lints]\nworkspace = true\n",
        )
        .unwrap();
        assert_eq!(
            flags(&member, &root).unwrap(),
            ["--deny=clippy::needless_return"]
        );

        std::fs::write(&root, "[workspace]\nmembers = [\"m\"]\n").unwrap();
        let e = flags(&member, &root).unwrap_err();
        assert!(e.to_string().contains("has no `[workspace.lints]`"), "{e}");

        std::fs::write(
            &member,
            "[package]\nname = \"m\"\n[lints]\nworkspace = true\n[lints.rust]\nx = \"warn\"\n",
        )
        .unwrap();
        let e = flags(&member, &root).unwrap_err();
        assert!(
            e.to_string().contains("`workspace = true` and `rust`"),
            "{e}"
        );

        std::fs::write(&member, "[package]\nname = \"m\"\n").unwrap();
        assert!(flags(&member, &root).unwrap().is_empty());
    }
}
