//! Kconfig files: `.config` and fragments, merging a fragment on top of a config, checking
//! that every requested symbol took effect, and a small index of the source tree's Kconfig
//! symbols (to name a misspelled symbol, or the dependency that blocked one).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// A Kconfig value as written in `.config`: `y`, `m`, `n` (written `# CONFIG_X is not set`),
/// or a string/number kept verbatim (quotes included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Yes,
    Module,
    No,
    Other(String),
}

impl Value {
    fn parse(raw: &str) -> Value {
        match raw {
            "y" => Value::Yes,
            "m" => Value::Module,
            "n" => Value::No,
            other => Value::Other(other.to_string()),
        }
    }

    fn render(&self) -> &str {
        match self {
            Value::Yes => "y",
            Value::Module => "m",
            Value::No => "n",
            Value::Other(s) => s,
        }
    }
}

/// One assignment from a fragment, with where it came from (for error messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// Symbol name without the `CONFIG_` prefix.
    pub symbol: String,
    pub value: Value,
    pub origin: String,
    pub line: usize,
}

impl Assignment {
    pub fn render(&self) -> String {
        match self.value {
            Value::No => format!("# CONFIG_{} is not set", self.symbol),
            ref v => format!("CONFIG_{}={}", self.symbol, v.render()),
        }
    }
}

/// Parse a fragment or `.config`. `origin` names the file in errors.
pub fn parse_fragment(text: &str, origin: &str) -> Result<Vec<Assignment>> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# CONFIG_") {
            if let Some(sym) = rest.strip_suffix(" is not set") {
                out.push(Assignment {
                    symbol: sym.to_string(),
                    value: Value::No,
                    origin: origin.to_string(),
                    line: i + 1,
                });
            }
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let Some((name, value)) = line.split_once('=') else {
            crate::bail_user!(
                "`{}` line {}: expected `CONFIG_NAME=value`, found `{}`",
                origin,
                i + 1,
                line
            );
        };
        let Some(symbol) = name.trim().strip_prefix("CONFIG_") else {
            crate::bail_user!(
                "`{}` line {}: `{}` does not start with `CONFIG_`", origin, i + 1, name.trim();
                hint = "write symbols as in `.config`, e.g. `CONFIG_KUNIT=y`"
            );
        };
        if symbol.is_empty()
            || !symbol
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            crate::bail_user!(
                "`{}` line {}: `{}` is not a Kconfig symbol name",
                origin,
                i + 1,
                name
            );
        }
        let value = value.trim();
        if value.is_empty() {
            crate::bail_user!(
                "`{}` line {}: `CONFIG_{}` has no value",
                origin,
                i + 1,
                symbol
            );
        }
        out.push(Assignment {
            symbol: symbol.to_string(),
            value: Value::parse(value),
            origin: origin.to_string(),
            line: i + 1,
        });
    }
    Ok(out)
}

/// A parsed `.config`: symbol -> value, with `is not set` entries as [`Value::No`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KConfig {
    pub values: BTreeMap<String, Value>,
}

impl KConfig {
    pub fn parse(text: &str) -> KConfig {
        // `.config` is written by kconfig, so it always parses; tolerate junk lines anyway.
        let mut values = BTreeMap::new();
        for line in text.lines() {
            if let Ok(mut a) = parse_fragment(line, ".config") {
                if let Some(a) = a.pop() {
                    values.insert(a.symbol, a.value);
                }
            }
        }
        KConfig { values }
    }

    pub fn read(path: &Path) -> Result<KConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read `{}`", path.display()))?;
        Ok(KConfig::parse(&text))
    }

    pub fn get(&self, symbol: &str) -> Option<&Value> {
        self.values
            .get(symbol.strip_prefix("CONFIG_").unwrap_or(symbol))
    }

    /// `y` (built in) — what most checks want.
    pub fn is_enabled(&self, symbol: &str) -> bool {
        matches!(self.get(symbol), Some(Value::Yes))
    }

    /// A string value without its quotes (`CONFIG_CC_VERSION_TEXT="clang 19"` -> `clang 19`).
    pub fn string(&self, symbol: &str) -> Option<String> {
        match self.get(symbol)? {
            Value::Other(s) => Some(
                s.strip_prefix('"')
                    .and_then(|s| s.strip_suffix('"'))
                    .unwrap_or(s)
                    .to_string(),
            ),
            _ => None,
        }
    }
}

/// Merge assignments into `.config` text: lines for the same symbol are replaced in place,
/// new ones appended; kconfig's `olddefconfig` then resolves dependencies.
pub fn merge(config_text: &str, fragment: &[Assignment]) -> String {
    let mut pending: BTreeMap<&str, &Assignment> = BTreeMap::new();
    for a in fragment {
        pending.insert(&a.symbol, a); // the last assignment of a symbol wins, as in kconfig
    }
    let mut out = String::with_capacity(config_text.len() + 64 * fragment.len());
    for line in config_text.lines() {
        let symbol = parse_fragment(line, ".config")
            .ok()
            .and_then(|mut v| v.pop())
            .map(|a| a.symbol);
        match symbol.as_deref().and_then(|s| pending.remove(s)) {
            Some(a) => out.push_str(&a.render()),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    // Append the rest in fragment order.
    for a in fragment {
        if pending.remove(a.symbol.as_str()).is_some() {
            out.push_str(&a.render());
            out.push('\n');
        }
    }
    out
}

/// A requested symbol that did not end up with the requested value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unmet {
    pub wanted: Assignment,
    pub got: Option<Value>,
}

/// Compare what the fragments asked for with the resolved `.config`.
pub fn unmet(requested: &[Assignment], resolved: &KConfig) -> Vec<Unmet> {
    let mut last: BTreeMap<&str, &Assignment> = BTreeMap::new();
    for a in requested {
        last.insert(&a.symbol, a);
    }
    let mut out = Vec::new();
    for a in requested {
        if !std::ptr::eq(last[a.symbol.as_str()], a) {
            continue; // overridden by a later fragment
        }
        let got = resolved.get(&a.symbol).cloned();
        let ok = match (&a.value, &got) {
            (Value::No, None | Some(Value::No)) => true,
            (want, Some(have)) => want == have,
            (_, None) => false,
        };
        if !ok {
            out.push(Unmet {
                wanted: a.clone(),
                got,
            });
        }
    }
    out
}

/// What the source tree's Kconfig files say about a symbol.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SymbolInfo {
    pub depends: Vec<String>,
    pub file: PathBuf,
}

/// An index of `config NAME` definitions and their `depends on` lines.
#[derive(Debug, Clone, Default)]
pub struct KconfigIndex {
    pub symbols: BTreeMap<String, SymbolInfo>,
}

impl KconfigIndex {
    /// Scan every `Kconfig*` file below `srctree` (about 2,000 files; tens of milliseconds).
    pub fn scan(srctree: &Path) -> Result<KconfigIndex> {
        let mut index = KconfigIndex::default();
        let mut stack = vec![srctree.to_path_buf()];
        while let Some(dir) = stack.pop() {
            let entries = std::fs::read_dir(&dir)
                .with_context(|| format!("cannot read `{}`", dir.display()))?;
            for entry in entries.flatten() {
                let path = entry.path();
                let name = entry.file_name();
                let name = name.to_string_lossy();
                let Ok(ft) = entry.file_type() else { continue };
                if ft.is_dir() {
                    if !name.starts_with('.') {
                        stack.push(path);
                    }
                } else if name.starts_with("Kconfig") {
                    if let Ok(text) = std::fs::read_to_string(&path) {
                        index.add_file(&text, &path);
                    }
                }
            }
        }
        Ok(index)
    }

    pub fn add_file(&mut self, text: &str, file: &Path) {
        let mut current: Option<String> = None;
        for raw in text.lines() {
            let line = raw.trim();
            let mut words = line.split_whitespace();
            match words.next() {
                Some("config" | "menuconfig") => {
                    let name = words.next().unwrap_or_default().to_string();
                    self.symbols
                        .entry(name.clone())
                        .or_insert_with(|| SymbolInfo {
                            depends: vec![],
                            file: file.to_path_buf(),
                        });
                    current = Some(name);
                }
                Some("depends") if current.is_some() => {
                    if let Some(expr) = line.strip_prefix("depends").map(str::trim) {
                        let expr = expr.strip_prefix("on").unwrap_or(expr).trim();
                        let sym = current.as_ref().expect("checked");
                        self.symbols
                            .get_mut(sym)
                            .expect("inserted")
                            .depends
                            .push(expr.to_string());
                    }
                }
                Some(
                    "choice" | "endchoice" | "menu" | "endmenu" | "if" | "endif" | "comment"
                    | "source" | "mainmenu",
                ) => current = None,
                _ => {}
            }
        }
    }

    pub fn contains(&self, symbol: &str) -> bool {
        self.symbols.contains_key(symbol)
    }

    /// The closest known symbol name, for "did you mean" hints.
    pub fn nearest(&self, symbol: &str) -> Option<&str> {
        self.symbols
            .keys()
            .map(|k| (strsim::jaro_winkler(k, symbol), k))
            .filter(|(score, _)| *score > 0.85)
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, k)| k.as_str())
    }
}

/// Symbols in a `depends on` expression that are not enabled in `config`.
pub fn blocking_symbols(expr: &str, config: &KConfig) -> Vec<String> {
    let mut out = Vec::new();
    let mut negated = false;
    let mut word = String::new();
    let flush = |word: &mut String, negated: &mut bool, out: &mut Vec<String>| {
        if !word.is_empty()
            && word
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
            && word.chars().next().is_some_and(|c| c.is_ascii_uppercase())
        {
            let on = matches!(config.get(word), Some(Value::Yes | Value::Module));
            if on == *negated {
                let name = if *negated {
                    format!("!{word}")
                } else {
                    word.clone()
                };
                if !out.contains(&name) {
                    out.push(name);
                }
            }
        }
        word.clear();
        *negated = false;
    };
    for c in expr.chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            word.push(c);
        } else {
            flush(&mut word, &mut negated, &mut out);
            negated = c == '!';
        }
    }
    flush(&mut word, &mut negated, &mut out);
    out
}

/// One line describing why a requested symbol did not take effect.
pub fn explain(unmet: &Unmet, index: &KconfigIndex, config: &KConfig) -> String {
    let w = &unmet.wanted;
    let at = format!("`{}` line {}", w.origin, w.line);
    if !index.contains(&w.symbol) {
        let mut msg = format!("unknown symbol `CONFIG_{}` ({at})", w.symbol);
        if let Some(near) = index.nearest(&w.symbol) {
            msg.push_str(&format!(": did you mean `CONFIG_{near}`?"));
        }
        return msg;
    }
    let got = match &unmet.got {
        None | Some(Value::No) => "not set".to_string(),
        Some(v) => format!("`{}`", v.render()),
    };
    let mut msg = format!("`{}` did not take effect ({at}): it is {got}", w.render());
    let info = &index.symbols[&w.symbol];
    let blockers: Vec<String> = info
        .depends
        .iter()
        .flat_map(|d| blocking_symbols(d, config))
        .collect();
    if !info.depends.is_empty() {
        let depends = if info.depends.len() == 1 {
            info.depends[0].clone()
        } else {
            info.depends
                .iter()
                .map(|d| format!("({d})"))
                .collect::<Vec<_>>()
                .join(" && ")
        };
        msg.push_str(&format!("; it depends on `{depends}`"));
        if !blockers.is_empty() {
            msg.push_str(&format!(", blocked by {}", blockers.join(", ")));
        }
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frag(text: &str) -> Vec<Assignment> {
        parse_fragment(text, "test.config").unwrap()
    }

    #[test]
    fn parses_values_and_not_set() {
        let a =
            frag("# comment\nCONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=\"x y\"\nCONFIG_D=0x10\n");
        assert_eq!(a.len(), 4);
        assert_eq!(a[0].value, Value::Yes);
        assert_eq!(a[1].value, Value::No);
        assert_eq!(a[2].render(), "CONFIG_C=\"x y\"");
        assert_eq!(a[3].line, 5);
    }

    #[test]
    fn bad_fragment_lines_name_file_and_line() {
        let e = parse_fragment("CONFIG_A=y\nKUNIT=y\n", "my.config").unwrap_err();
        assert_eq!(
            e.to_string(),
            "`my.config` line 2: `KUNIT` does not start with `CONFIG_`"
        );
        let e = parse_fragment("CONFIG_A\n", "my.config").unwrap_err();
        assert!(
            e.to_string()
                .contains("line 1: expected `CONFIG_NAME=value`"),
            "{e}"
        );
        let e = parse_fragment("CONFIG_A=\n", "my.config").unwrap_err();
        assert!(e.to_string().contains("has no value"), "{e}");
    }

    #[test]
    fn merge_replaces_in_place_and_appends() {
        let config = "CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=m\n";
        let merged = merge(
            config,
            &frag("CONFIG_B=y\nCONFIG_D=y\n# CONFIG_A is not set\nCONFIG_B=m\n"),
        );
        assert_eq!(
            merged,
            "# CONFIG_A is not set\nCONFIG_B=m\nCONFIG_C=m\nCONFIG_D=y\n"
        );
    }

    #[test]
    fn unmet_reports_only_final_assignments() {
        let resolved = KConfig::parse("CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_S=\"v\"\n");
        let req =
            frag("CONFIG_A=m\nCONFIG_A=y\nCONFIG_B=y\n# CONFIG_C is not set\nCONFIG_S=\"v\"\n");
        let u = unmet(&req, &resolved);
        assert_eq!(u.len(), 1);
        assert_eq!(u[0].wanted.symbol, "B");
        assert_eq!(u[0].got, Some(Value::No));
        assert_eq!(resolved.string("CONFIG_S").as_deref(), Some("v"));
    }

    #[test]
    fn explains_unknown_and_blocked_symbols() {
        let mut index = KconfigIndex::default();
        index.add_file(
            "config RUST\n\tbool \"Rust support\"\n\tdepends on HAVE_RUST\n\tdepends on !MODVERSIONS || GENDWARFKSYMS\n\nconfig MODULE_SIG\n\tbool \"sig\"\nmenu \"x\"\n\tdepends on FOO\n",
            Path::new("init/Kconfig"),
        );
        assert!(
            index.symbols["MODULE_SIG"].depends.is_empty(),
            "menu depends do not leak"
        );
        let config = KConfig::parse("CONFIG_HAVE_RUST=y\nCONFIG_MODVERSIONS=y\n");
        let req = frag("CONFIG_MODULE_SIGG=y\nCONFIG_RUST=y\n");
        let u = unmet(&req, &config);
        assert_eq!(
            explain(&u[0], &index, &config),
            "unknown symbol `CONFIG_MODULE_SIGG` (`test.config` line 1): did you mean `CONFIG_MODULE_SIG`?"
        );
        assert_eq!(
            explain(&u[1], &index, &config),
            "`CONFIG_RUST=y` did not take effect (`test.config` line 2): it is not set; it depends on `(HAVE_RUST) && (!MODVERSIONS || GENDWARFKSYMS)`, blocked by !MODVERSIONS, GENDWARFKSYMS"
        );
    }

    #[test]
    fn blocking_symbols_handles_negation() {
        let c = KConfig::parse("CONFIG_A=y\n");
        assert_eq!(blocking_symbols("A && B", &c), ["B"]);
        assert_eq!(blocking_symbols("!A || (B && 64BIT)", &c), ["!A", "B"]);
        assert_eq!(
            blocking_symbols("$(cc-option,-mfoo)", &c),
            Vec::<String>::new()
        );
    }
}
