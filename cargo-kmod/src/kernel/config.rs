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

/// The debug kernel's checks (`templates/fragments/debug.config`): the symbol each needs and
/// what it catches, as the verdict names a check a kernel lacks.
pub const DEBUG_CHECKS: [(&str, &str); 6] = [
    ("BUG", "WARN()/BUG() reports"),
    ("DEBUG_OBJECTS_TIMERS", "timers left armed at unload"),
    ("DEBUG_OBJECTS_WORK", "work left queued at unload"),
    ("PROVE_LOCKING", "locking errors (lockdep)"),
    ("DEBUG_ATOMIC_SLEEP", "sleeping in atomic context"),
    ("DEBUG_KMEMLEAK", "leaks (`--sanitize`)"),
];

/// The kernel command-line arguments that switch the debug kernel's checks off for one boot
/// (`cargo kmod test --no-debug-kernel`): debug objects, kmemleak and lockdep's proofs.
pub const DEBUG_OFF_ARGS: [&str; 3] = [
    "no_debug_objects",
    "kmemleak=off",
    "lockdep.prove_locking=0",
];

impl KConfig {
    /// The [`DEBUG_CHECKS`] this configuration does not have, as `what (CONFIG_X)`.
    pub fn missing_debug_checks(&self) -> Vec<String> {
        DEBUG_CHECKS
            .iter()
            .filter(|(sym, _)| !self.is_enabled(sym))
            .map(|(sym, what)| format!("{what} (CONFIG_{sym})"))
            .collect()
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
    /// Its `depends on` expressions, including those of the `if`, `menu` and `choice`
    /// blocks that enclose its definition.
    pub depends: Vec<String>,
    pub file: PathBuf,
    /// `bool`, `tristate`, `string`, `int` or `hex`, when its definition says.
    pub kind: Option<String>,
    /// Whether a definition gives it a prompt: without one only `select` (or a default)
    /// turns it on, never a fragment.
    pub prompt: bool,
}

/// An index of `config NAME` definitions and their `depends on` lines.
#[derive(Debug, Clone, Default)]
pub struct KconfigIndex {
    pub symbols: BTreeMap<String, SymbolInfo>,
    /// For each symbol, the symbols whose definitions `select` it.
    pub selected_by: BTreeMap<String, Vec<String>>,
}

/// The indentation of a Kconfig line, tabs counting to the next multiple of 8.
fn indent_of(line: &str) -> usize {
    let mut col = 0;
    for c in line.chars() {
        match c {
            ' ' => col += 1,
            '\t' => col = (col / 8 + 1) * 8,
            _ => break,
        }
    }
    col
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

    /// Index one Kconfig file. `if`/`menu`/`choice` blocks add their conditions to the
    /// symbols defined inside them (as kconfig does); help texts are skipped.
    pub fn add_file(&mut self, text: &str, file: &Path) {
        /// Where a `depends on` line goes.
        enum Owner {
            None,
            Symbol(String),
            /// The innermost block (a `menu` or `choice` header).
            Block,
        }
        // Conditions of the enclosing blocks, innermost last; `None` marks a block that
        // carries no condition of its own (so `endif`/`endmenu` pop the right entry).
        let mut blocks: Vec<Vec<String>> = Vec::new();
        let mut owner = Owner::None;
        // `Some(indent of the help keyword, indent of the text once seen)` inside help.
        let mut help: Option<(usize, Option<usize>)> = None;
        for raw in text.lines() {
            let line = raw.trim();
            if let Some((kw_indent, text_indent)) = help {
                if line.is_empty() {
                    continue;
                }
                let ind = indent_of(raw);
                match text_indent {
                    None if ind > kw_indent => {
                        help = Some((kw_indent, Some(ind)));
                        continue;
                    }
                    Some(t) if ind >= t => continue,
                    _ => help = None,
                }
            }
            let mut words = line.split_whitespace();
            match words.next() {
                Some("config" | "menuconfig") => {
                    let name = words.next().unwrap_or_default().to_string();
                    let inherited: Vec<String> = blocks.iter().flatten().cloned().collect();
                    self.symbols
                        .entry(name.clone())
                        .or_insert_with(|| SymbolInfo {
                            depends: inherited,
                            file: file.to_path_buf(),
                            kind: None,
                            prompt: false,
                        });
                    owner = Owner::Symbol(name);
                }
                Some("depends") => {
                    let Some(expr) = line.strip_prefix("depends").map(str::trim) else {
                        continue;
                    };
                    let expr = expr.strip_prefix("on").unwrap_or(expr).trim().to_string();
                    match &owner {
                        Owner::Symbol(sym) => {
                            if let Some(info) = self.symbols.get_mut(sym) {
                                if info.file == file {
                                    info.depends.push(expr);
                                }
                            }
                        }
                        Owner::Block => {
                            if let Some(top) = blocks.last_mut() {
                                top.push(expr);
                            }
                        }
                        Owner::None => {}
                    }
                }
                Some(
                    kw @ ("bool" | "tristate" | "string" | "int" | "hex" | "def_bool"
                    | "def_tristate"),
                ) => {
                    if let Owner::Symbol(sym) = &owner {
                        let prompted = !kw.starts_with("def_")
                            && words.next().is_some_and(|w| w.starts_with('"'));
                        if let Some(info) = self.symbols.get_mut(sym) {
                            if info.file == file && info.kind.is_none() {
                                info.kind = Some(kw.trim_start_matches("def_").to_string());
                            }
                            info.prompt |= prompted;
                        }
                    }
                }
                Some("prompt") => {
                    if let Owner::Symbol(sym) = &owner {
                        if let Some(info) = self.symbols.get_mut(sym) {
                            info.prompt = true;
                        }
                    }
                }
                Some("select") => {
                    if let (Owner::Symbol(sym), Some(target)) = (&owner, words.next()) {
                        let by = self.selected_by.entry(target.to_string()).or_default();
                        if !by.contains(sym) {
                            by.push(sym.clone());
                        }
                    }
                }
                Some("help" | "---help---") => {
                    help = Some((indent_of(raw), None));
                }
                Some("if") => {
                    let expr = line["if".len()..].trim().to_string();
                    blocks.push(vec![expr]);
                    owner = Owner::None;
                }
                Some("menu" | "choice") => {
                    blocks.push(Vec::new());
                    owner = Owner::Block;
                }
                Some("endif" | "endmenu" | "endchoice") => {
                    blocks.pop();
                    owner = Owner::None;
                }
                Some("comment" | "source" | "mainmenu" | "rsource" | "osource" | "orsource") => {
                    owner = Owner::None
                }
                _ => {}
            }
        }
    }

    /// For a symbol without a prompt: the options that select it, those whose dependencies
    /// hold in `config` (and that have a prompt themselves) first; at most `max`.
    pub fn selectors(&self, symbol: &str, config: &KConfig, max: usize) -> Vec<(String, bool)> {
        let mut out: Vec<(String, bool)> = self
            .selected_by
            .get(symbol)
            .into_iter()
            .flatten()
            .filter_map(|s| {
                let info = self.symbols.get(s)?;
                let fits = info.prompt && info.depends.iter().all(|d| holds(d, config));
                Some((s.clone(), fits))
            })
            .collect();
        out.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        out.truncate(max);
        out
    }

    /// "it has no prompt: ..." for a symbol only `select` turns on, naming the options that
    /// select it and one that fits `config`; `None` for a symbol with a prompt.
    pub fn select_only(&self, symbol: &str, config: &KConfig) -> Option<String> {
        let info = self.symbols.get(symbol)?;
        if info.prompt {
            return None;
        }
        let sel = self.selectors(symbol, config, 5);
        if sel.is_empty() {
            return Some(
                "it has no prompt and nothing selects it: the kernel sets it itself".into(),
            );
        }
        let names: Vec<String> = sel.iter().map(|(s, _)| format!("`{s}`")).collect();
        let more = self
            .selected_by
            .get(symbol)
            .map_or(0, Vec::len)
            .saturating_sub(sel.len());
        let mut msg = format!(
            "it has no prompt: only an option that selects it turns it on ({}{})",
            names.join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        );
        if let Some((fit, _)) = sel.iter().find(|(_, fits)| *fits) {
            let value = match self.symbols.get(fit).and_then(|i| i.kind.as_deref()) {
                Some("tristate") => "m",
                _ => "y",
            };
            msg.push_str(&format!(
                "; `CONFIG_{fit}={value}` fits this tree: ask for it too"
            ));
        }
        Some(msg)
    }

    pub fn contains(&self, symbol: &str) -> bool {
        self.symbols.contains_key(symbol)
    }

    /// The closest known symbol name, for "did you mean" hints.
    pub fn nearest(&self, symbol: &str) -> Option<&str> {
        crate::text::nearest(symbol, self.symbols.keys().map(String::as_str), 0.85)
    }
}

/// A parsed Kconfig `depends on` expression.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Expr {
    Sym(String),
    /// A `$(...)` macro or anything else this parser cannot evaluate: never blamed.
    Unknown,
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Cmp(String, &'static str, String),
}

fn tokenize(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let chars: Vec<char> = expr.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '$' && chars.get(i + 1) == Some(&'(') {
            let mut depth = 0;
            let start = i;
            while i < chars.len() {
                match chars[i] {
                    '(' => depth += 1,
                    ')' => {
                        depth -= 1;
                        if depth == 0 {
                            i += 1;
                            break;
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
            out.push(chars[start..i].iter().collect());
        } else if c == '"' {
            let start = i;
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                i += 1;
            }
            i = (i + 1).min(chars.len());
            out.push(chars[start..i].iter().collect());
        } else if "&|!=<>".contains(c) {
            let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
            if ["&&", "||", "!=", "<=", ">="].contains(&two.as_str()) {
                out.push(two);
                i += 2;
            } else {
                out.push(c.to_string());
                i += 1;
            }
        } else if c == '(' || c == ')' {
            out.push(c.to_string());
            i += 1;
        } else {
            let start = i;
            while i < chars.len() && !chars[i].is_whitespace() && !"&|!=<>()\"".contains(chars[i]) {
                i += 1;
            }
            out.push(chars[start..i].iter().collect());
        }
    }
    out
}

struct Parser {
    tokens: Vec<String>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&str> {
        self.tokens.get(self.pos).map(String::as_str)
    }
    fn next(&mut self) -> Option<String> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }
    fn or(&mut self) -> Expr {
        let mut left = self.and();
        while self.peek() == Some("||") {
            self.pos += 1;
            let right = self.and();
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        left
    }
    fn and(&mut self) -> Expr {
        let mut left = self.unary();
        while self.peek() == Some("&&") {
            self.pos += 1;
            let right = self.unary();
            left = Expr::And(Box::new(left), Box::new(right));
        }
        left
    }
    fn unary(&mut self) -> Expr {
        match self.next().as_deref() {
            Some("!") => Expr::Not(Box::new(self.unary())),
            Some("(") => {
                let e = self.or();
                if self.peek() == Some(")") {
                    self.pos += 1;
                }
                e
            }
            Some(atom) => {
                let atom = atom.to_string();
                const OPS: [&str; 6] = ["=", "!=", "<", "<=", ">", ">="];
                if let Some(op) = self.peek().and_then(|p| OPS.iter().find(|o| **o == p)) {
                    self.pos += 1;
                    let right = self.next().unwrap_or_default();
                    if atom.starts_with('$') || right.starts_with('$') {
                        return Expr::Unknown;
                    }
                    return Expr::Cmp(atom, op, right);
                }
                if atom.starts_with('$') || atom.starts_with('"') {
                    Expr::Unknown
                } else {
                    Expr::Sym(atom)
                }
            }
            None => Expr::Unknown,
        }
    }
}

fn parse_expr(expr: &str) -> Expr {
    let mut p = Parser {
        tokens: tokenize(expr),
        pos: 0,
    };
    p.or()
}

/// A tristate: 0 (n), 1 (m), 2 (y).
fn sym_tristate(sym: &str, config: &KConfig) -> u8 {
    match sym {
        "y" => 2,
        "m" => 1,
        "n" => 0,
        _ => match config.get(sym) {
            Some(Value::Yes) => 2,
            Some(Value::Module) => 1,
            _ => 0,
        },
    }
}

/// The value of a comparison operand: a symbol's value, or the literal itself.
fn operand(atom: &str, config: &KConfig) -> String {
    let lit = atom.trim_matches('"');
    if atom.starts_with('"') || lit.chars().next().is_some_and(|c| c.is_ascii_digit()) {
        return lit.to_string();
    }
    match config.get(atom) {
        Some(Value::Yes) => "y".into(),
        Some(Value::Module) => "m".into(),
        Some(Value::No) | None if matches!(atom, "y" | "m" | "n") => atom.into(),
        Some(Value::No) | None => "n".into(),
        Some(Value::Other(s)) => s.trim_matches('"').to_string(),
    }
}

fn number(s: &str) -> Option<i128> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => i128::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

fn eval(e: &Expr, config: &KConfig) -> u8 {
    match e {
        Expr::Sym(s) => sym_tristate(s, config),
        Expr::Unknown => 2,
        Expr::Not(x) => 2 - eval(x, config),
        Expr::And(a, b) => eval(a, config).min(eval(b, config)),
        Expr::Or(a, b) => eval(a, config).max(eval(b, config)),
        Expr::Cmp(l, op, r) => {
            let (l, r) = (operand(l, config), operand(r, config));
            let ord = match (number(&l), number(&r)) {
                (Some(a), Some(b)) => a.cmp(&b),
                _ => l.cmp(&r),
            };
            let holds = match *op {
                "=" => ord.is_eq(),
                "!=" => !ord.is_eq(),
                "<" => ord.is_lt(),
                "<=" => ord.is_le(),
                ">" => ord.is_gt(),
                _ => ord.is_ge(),
            };
            if holds {
                2
            } else {
                0
            }
        }
    }
}

/// The atoms of `e` that keep it from evaluating to `want` (true: > n).
fn blame(e: &Expr, want: bool, config: &KConfig, out: &mut Vec<String>) {
    if (eval(e, config) > 0) == want {
        return;
    }
    let mut push = |s: String| {
        if !out.contains(&s) {
            out.push(s);
        }
    };
    match e {
        Expr::Sym(s) => push(if want { s.clone() } else { format!("!{s}") }),
        Expr::Unknown => {}
        Expr::Not(x) => blame(x, !want, config, out),
        Expr::And(a, b) | Expr::Or(a, b) => {
            blame(a, want, config, out);
            blame(b, want, config, out);
        }
        Expr::Cmp(l, op, r) => {
            let shown = |a: &str| {
                let v = operand(a, config);
                if v == a.trim_matches('"') {
                    a.to_string()
                } else {
                    format!("{a} (is {v})")
                }
            };
            let text = format!("{} {op} {}", shown(l), shown(r));
            push(if want { text } else { format!("!({text})") });
        }
    }
}

/// Whether a `depends on` expression holds in `config`.
pub fn holds(expr: &str, config: &KConfig) -> bool {
    eval(&parse_expr(expr), config) > 0
}

/// The symbols (and comparisons) in a `depends on` expression that keep it from holding in
/// `config`: `B` when `B` must be enabled, `!A` when `A` must be disabled. Empty when the
/// expression holds.
pub fn blocking_symbols(expr: &str, config: &KConfig) -> Vec<String> {
    let mut out = Vec::new();
    blame(&parse_expr(expr), true, config, &mut out);
    out
}

/// What to do about an option that keeps Rust (or modversions for Rust) from being enabled,
/// for the blockers real board configurations have. Keyed by the blamed atom.
pub fn blocker_fix(blocker: &str) -> Option<&'static str> {
    let sym = blocker.trim_start_matches('!');
    let on = blocker.starts_with('!');
    Some(match (sym, on) {
        ("RANDSTRUCT" | "GCC_PLUGIN_RANDSTRUCT" | "RANDSTRUCT_FULL" | "RANDSTRUCT_PERFORMANCE", true) => {
            "Rust does not support randomized struct layout: add `CONFIG_RANDSTRUCT_NONE=y` to a `--config` fragment"
        }
        ("GCC_PLUGINS", true) => {
            "GCC plugins (randstruct) are not supported with Rust: add `# CONFIG_GCC_PLUGINS is not set` to a `--config` fragment"
        }
        ("DEBUG_INFO_BTF", true) => {
            "BTF with Rust needs pahole >= 1.24 (`PAHOLE_HAS_LANG_EXCLUDE`; Debian's `dwarves`) and no LTO: install it, or add `# CONFIG_DEBUG_INFO_BTF is not set` to a `--config` fragment"
        }
        ("PAHOLE_HAS_LANG_EXCLUDE", false) => {
            "pahole is missing or older than 1.24: install Debian's `dwarves`, or add `# CONFIG_DEBUG_INFO_BTF is not set` to a `--config` fragment"
        }
        ("LTO" | "LTO_CLANG" | "LTO_CLANG_THIN" | "LTO_CLANG_FULL", true) => {
            "add `CONFIG_LTO_NONE=y` to a `--config` fragment (BTF and gendwarfksyms need non-LTO objects)"
        }
        ("CFI" | "CFI_CLANG", true) => {
            "this rustc cannot normalize integers for kCFI: add `# CONFIG_CFI is not set` (`CONFIG_CFI_CLANG` before 6.18) to a `--config` fragment, or use a newer rustc"
        }
        ("HAVE_CFI_ICALL_NORMALIZE_INTEGERS_RUSTC", false) => {
            "this rustc cannot build kCFI-checked code: disable `CONFIG_CFI` in a `--config` fragment, or use a newer rustc"
        }
        ("MODVERSIONS", true) => {
            "Rust with modversions needs `CONFIG_GENDWARFKSYMS=y` (7.x; it needs `CONFIG_DEBUG_INFO`), or add `# CONFIG_MODVERSIONS is not set` to a `--config` fragment"
        }
        ("GENDWARFKSYMS", false) => {
            "Rust with modversions needs gendwarfksyms: see why `CONFIG_GENDWARFKSYMS` is off, or add `# CONFIG_MODVERSIONS is not set` to a `--config` fragment"
        }
        ("DEBUG_INFO_REDUCED", true) => {
            "gendwarfksyms needs full DWARF: add `# CONFIG_DEBUG_INFO_REDUCED is not set` to a `--config` fragment"
        }
        ("DEBUG_INFO_SPLIT", true) => {
            "gendwarfksyms cannot read split DWARF: add `# CONFIG_DEBUG_INFO_SPLIT is not set` to a `--config` fragment"
        }
        ("DEBUG_INFO", false) => {
            "add `CONFIG_DEBUG_INFO_DWARF_TOOLCHAIN_DEFAULT=y` to a `--config` fragment"
        }
        ("KASAN", true) => {
            "KASAN with Rust needs a clang-built kernel: use `--cc clang`, or add `# CONFIG_KASAN is not set` to a `--config` fragment"
        }
        ("KASAN_SW_TAGS", true) => {
            "software tag-based KASAN needs a newer rustc: add `# CONFIG_KASAN_SW_TAGS is not set` to a `--config` fragment"
        }
        ("CC_IS_CLANG", false) => "build the kernel with clang (`--cc clang`)",
        ("RUST_IS_AVAILABLE", false) => {
            "the toolchain check failed: `make rustavailable` says why (`cargo kmod doctor` checks rustc, rust-src, bindgen and libclang)"
        }
        ("HAVE_RUST", false) => {
            "this architecture or configuration cannot have Rust (arm64 needs `CONFIG_CPU_LITTLE_ENDIAN=y`)"
        }
        _ => return None,
    })
}

/// Whether `config` gives `symbol` what a module needs (`kernel-config`): `y` is met by `y`,
/// `m` by `m` or `y`, `n` by `n` or unset, anything else by that exact value (quotes aside).
pub fn meets(config: &KConfig, symbol: &str, want: &str) -> bool {
    let got = config.get(symbol);
    match want {
        "y" => matches!(got, Some(Value::Yes)),
        "m" => matches!(got, Some(Value::Yes | Value::Module)),
        "n" => matches!(got, None | Some(Value::No)),
        _ => match got {
            Some(Value::Other(v)) => v.trim_matches('"') == want,
            _ => false,
        },
    }
}

/// Each need of `needs` (symbol -> value) that `config` does not meet, as one phrase naming
/// the symbol and, with the source's Kconfig (`index`), why: an unknown symbol (with the
/// nearest), one of another arch, a value its type cannot take, or the dependencies that
/// keep it off.
pub fn unmet_needs(
    config: &KConfig,
    arch: crate::kernel::Arch,
    srctree: Option<&Path>,
    needs: &BTreeMap<String, String>,
    index: Option<&KconfigIndex>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (symbol, want) in needs {
        if meets(config, symbol, want) {
            continue;
        }
        let got = match config.get(symbol) {
            None | Some(Value::No) => "not set".to_string(),
            Some(v) => format!("`{}`", v.render()),
        };
        let mut line = format!("`CONFIG_{symbol}={want}` (it is {got})");
        if let Some(index) = index {
            let Some(info) = index.symbols.get(symbol) else {
                line = format!("`CONFIG_{symbol}` is not a Kconfig symbol of this kernel");
                if let Some(near) = index.nearest(symbol) {
                    line.push_str(&format!(" (did you mean `CONFIG_{near}`?)"));
                }
                out.push(line);
                continue;
            };
            let rel = srctree
                .and_then(|s| info.file.strip_prefix(s).ok())
                .unwrap_or(&info.file);
            let mut parts = rel.components().map(|c| c.as_os_str().to_string_lossy());
            if let (Some(first), Some(other)) = (parts.next(), parts.next()) {
                if first == "arch" && other != arch.srcarch() {
                    out.push(format!(
                        "`CONFIG_{symbol}` exists only on {other} (`{}`), and this kernel is {arch}",
                        rel.display()
                    ));
                    continue;
                }
            }
            let takes = match info.kind.as_deref() {
                Some("bool") => Some(&["y", "n"][..]),
                Some("tristate") => Some(&["y", "m", "n"][..]),
                _ => None,
            };
            if let Some(values) = takes {
                if !values.contains(&want.as_str()) {
                    out.push(format!(
                        "`CONFIG_{symbol}` is a {}: it takes {}, not `{want}`",
                        info.kind.as_deref().unwrap_or_default(),
                        values
                            .iter()
                            .map(|v| format!("`{v}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                    continue;
                }
            }
            if matches!(info.kind.as_deref(), Some("int" | "hex"))
                && want.parse::<i64>().is_err()
                && !want.starts_with("0x")
            {
                out.push(format!(
                    "`CONFIG_{symbol}` is an {}: `{want}` is not a number",
                    info.kind.as_deref().unwrap_or_default()
                ));
                continue;
            }
            let failing: Vec<&String> = info.depends.iter().filter(|d| !holds(d, config)).collect();
            let mut blockers: Vec<String> = Vec::new();
            for d in &failing {
                for b in blocking_symbols(d, config) {
                    if !blockers.contains(&b) {
                        blockers.push(b);
                    }
                }
            }
            if blockers.is_empty() && want != "n" {
                if let Some(why) = index.select_only(symbol, config) {
                    line.push_str(&format!("; {why}"));
                }
            }
            if !blockers.is_empty() {
                line.push_str(&format!(
                    "; it needs {}",
                    blockers
                        .iter()
                        .map(|b| format!("`{b}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
        out.push(line);
    }
    out
}

/// One line describing why a requested symbol did not take effect, with the fix for each
/// known blocker.
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
    // Only the `depends on` lines that do not hold explain anything.
    let failing: Vec<&String> = info.depends.iter().filter(|d| !holds(d, config)).collect();
    if failing.is_empty() {
        if matches!(w.value, Value::Yes | Value::Module) {
            if let Some(why) = index.select_only(&w.symbol, config) {
                msg.push_str(&format!("; {why}"));
                return msg;
            }
        }
        if !info.depends.is_empty() && matches!(w.value, Value::Yes | Value::Module) {
            msg.push_str("; its dependencies hold, so something selects it off, a choice overrides it, or it has no prompt");
        }
        return msg;
    }
    let blockers: Vec<String> = failing
        .iter()
        .flat_map(|d| blocking_symbols(d, config))
        .fold(Vec::new(), |mut acc, b| {
            if !acc.contains(&b) {
                acc.push(b);
            }
            acc
        });
    let depends = if failing.len() == 1 {
        failing[0].clone()
    } else {
        failing
            .iter()
            .map(|d| format!("({d})"))
            .collect::<Vec<_>>()
            .join(" && ")
    };
    msg.push_str(&format!("; it depends on `{depends}`"));
    if !blockers.is_empty() {
        msg.push_str(&format!(", blocked by {}", blockers.join(", ")));
    }
    let mut fixes: Vec<&str> = Vec::new();
    for b in &blockers {
        if let Some(f) = blocker_fix(b) {
            if !fixes.contains(&f) {
                fixes.push(f);
            }
        }
    }
    if !fixes.is_empty() {
        msg.push_str(&format!(" (fix: {})", fixes.join("; ")));
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A symbol without a prompt (`AUXILIARY_BUS`) is explained by what selects it, and one
    /// selector whose dependencies hold is named.
    #[test]
    fn select_only_symbols_name_what_selects_them() {
        let mut index = KconfigIndex::default();
        index.add_file(
            "config AUXILIARY_BUS\n\tbool\n\nconfig PCI_DRV\n\ttristate \"pci drv\"\n\tdepends on PCI\n\tselect AUXILIARY_BUS\n\nconfig SAMPLE_AUX\n\ttristate \"aux sample\"\n\tselect AUXILIARY_BUS if X\n\nconfig USB\n\tbool\n\tprompt \"usb\"\n",
            Path::new("/src/drivers/base/Kconfig"),
        );
        let config = KConfig::parse("CONFIG_MODULES=y\n");
        assert!(!index.symbols["AUXILIARY_BUS"].prompt);
        assert!(index.symbols["USB"].prompt && index.symbols["PCI_DRV"].prompt);
        let why = index.select_only("AUXILIARY_BUS", &config).unwrap();
        assert_eq!(
            why,
            "it has no prompt: only an option that selects it turns it on (`SAMPLE_AUX`, `PCI_DRV`); `CONFIG_SAMPLE_AUX=m` fits this tree: ask for it too"
        );
        assert_eq!(index.select_only("USB", &config), None);
        let needs: BTreeMap<String, String> =
            [("AUXILIARY_BUS".to_string(), "y".to_string())].into();
        let unmet = unmet_needs(
            &config,
            crate::kernel::Arch::X86_64,
            None,
            &needs,
            Some(&index),
        );
        assert!(unmet[0].contains("`CONFIG_SAMPLE_AUX=m` fits"), "{unmet:?}");
    }

    #[test]
    fn needs_are_met_by_the_values_kconfig_allows() {
        let c = KConfig::parse(
            "CONFIG_A=y\nCONFIG_B=m\n# CONFIG_C is not set\nCONFIG_HZ=250\nCONFIG_S=\"x\"\n",
        );
        for (sym, want, met) in [
            ("A", "y", true),
            ("A", "m", true),
            ("B", "y", false),
            ("B", "m", true),
            ("C", "n", true),
            ("D", "n", true),
            ("A", "n", false),
            ("HZ", "250", true),
            ("HZ", "100", false),
            ("S", "x", true),
        ] {
            assert_eq!(meets(&c, sym, want), met, "{sym}={want}");
        }
        let mut index = KconfigIndex::default();
        index.add_file(
            "config PCI\n\tbool \"PCI\"\n\tdepends on HAVE_PCI\n",
            Path::new("/src/drivers/pci/Kconfig"),
        );
        index.add_file(
            "config X86_MSR\n\ttristate \"msr\"\n",
            Path::new("/src/arch/x86/Kconfig"),
        );
        let needs: BTreeMap<String, String> =
            [("PCI", "y"), ("PCII", "y"), ("X86_MSR", "m"), ("A", "y")]
                .into_iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect();
        let unmet = unmet_needs(
            &c,
            crate::kernel::Arch::Arm64,
            Some(Path::new("/src")),
            &needs,
            Some(&index),
        );
        assert_eq!(
            unmet,
            [
                "`CONFIG_PCI=y` (it is not set); it needs `HAVE_PCI`",
                "`CONFIG_PCII` is not a Kconfig symbol of this kernel (did you mean `CONFIG_PCI`?)",
                "`CONFIG_X86_MSR` exists only on x86 (`arch/x86/Kconfig`), and this kernel is arm64",
            ]
        );
    }

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
            "`CONFIG_RUST=y` did not take effect (`test.config` line 2): it is not set; it depends on `!MODVERSIONS || GENDWARFKSYMS`, blocked by !MODVERSIONS, GENDWARFKSYMS (fix: Rust with modversions needs `CONFIG_GENDWARFKSYMS=y` (7.x; it needs `CONFIG_DEBUG_INFO`), or add `# CONFIG_MODVERSIONS is not set` to a `--config` fragment; Rust with modversions needs gendwarfksyms: see why `CONFIG_GENDWARFKSYMS` is off, or add `# CONFIG_MODVERSIONS is not set` to a `--config` fragment)"
        );
    }

    /// The `RUST` entry of Linux 7.2's `init/Kconfig`, verbatim.
    const RUST_7_2: &str = "config RUST\n\tbool \"Rust support\"\n\tdepends on HAVE_RUST\n\tdepends on RUST_IS_AVAILABLE\n\tselect EXTENDED_MODVERSIONS if MODVERSIONS\n\tdepends on !MODVERSIONS || GENDWARFKSYMS\n\tdepends on !GCC_PLUGIN_RANDSTRUCT\n\tdepends on !RANDSTRUCT\n\tdepends on !DEBUG_INFO_BTF || (PAHOLE_HAS_LANG_EXCLUDE && !LTO)\n\tdepends on !CFI || HAVE_CFI_ICALL_NORMALIZE_INTEGERS_RUSTC\n\tselect CFI_ICALL_NORMALIZE_INTEGERS if CFI\n\tdepends on !KASAN || CC_IS_CLANG\n\tdepends on !KASAN_SW_TAGS || RUSTC_VERSION >= 109600\n\thelp\n\t  Enables Rust support in the kernel.\n\n\t  if unsure, say N.\n\nconfig RUSTC_VERSION_TEXT\n\tstring\n\tdepends on RUST\n";

    #[test]
    fn names_what_blocks_rust_on_board_configs_with_the_fix() {
        let mut index = KconfigIndex::default();
        index.add_file(RUST_7_2, Path::new("init/Kconfig"));
        assert_eq!(index.symbols["RUST"].depends.len(), 9);
        assert_eq!(
            index.symbols["RUSTC_VERSION_TEXT"].depends,
            ["RUST"],
            "help text (`if unsure`) opens no block"
        );
        let req = frag("CONFIG_RUST=y\n");
        let ok = "CONFIG_HAVE_RUST=y\nCONFIG_RUST_IS_AVAILABLE=y\nCONFIG_CC_IS_GCC=y\nCONFIG_RUSTC_VERSION=109500\n";
        let cases = [
            ("CONFIG_RANDSTRUCT=y\nCONFIG_RANDSTRUCT_FULL=y\n", "blocked by !RANDSTRUCT (fix: Rust does not support randomized struct layout: add `CONFIG_RANDSTRUCT_NONE=y`"),
            ("CONFIG_DEBUG_INFO_BTF=y\n", "blocked by !DEBUG_INFO_BTF, PAHOLE_HAS_LANG_EXCLUDE (fix: BTF with Rust needs pahole >= 1.24"),
            ("CONFIG_MODVERSIONS=y\n", "blocked by !MODVERSIONS, GENDWARFKSYMS (fix: Rust with modversions needs `CONFIG_GENDWARFKSYMS=y`"),
            ("CONFIG_KASAN=y\n", "blocked by !KASAN, CC_IS_CLANG (fix: KASAN with Rust needs a clang-built kernel"),
            ("CONFIG_CFI=y\n", "blocked by !CFI, HAVE_CFI_ICALL_NORMALIZE_INTEGERS_RUSTC (fix: this rustc cannot normalize integers"),
            ("CONFIG_KASAN_SW_TAGS=y\n", "blocked by !KASAN_SW_TAGS, RUSTC_VERSION (is 109500) >= 109600 (fix: software tag-based KASAN"),
        ];
        for (extra, want) in cases {
            let config = KConfig::parse(&format!("{ok}{extra}"));
            let u = unmet(&req, &config);
            let line = explain(&u[0], &index, &config);
            assert!(line.contains(want), "{extra}: {line}");
            assert!(
                !line.contains("CC_IS_CLANG") || extra.contains("KASAN"),
                "{line}"
            );
        }
        // Satisfied `depends on` lines are never blamed: a clean GCC config names nothing.
        let config = KConfig::parse(ok);
        assert!(index.symbols["RUST"]
            .depends
            .iter()
            .all(|d| holds(d, &config)));
    }

    #[test]
    fn if_menu_and_choice_blocks_add_their_conditions() {
        let mut index = KconfigIndex::default();
        index.add_file(
            "menuconfig ARCH_BCM\n\tbool \"Broadcom\"\n\nif ARCH_BCM\n\nconfig ARCH_BCM2835\n\tbool \"BCM2835\"\n\tselect ARM_GIC\n\thelp\n\t  This enables support for the BCM2711.\n\t  if you are unsure, say Y.\n\nendif\n\nmenu \"Timers\"\n\tdepends on HAS_IOMEM\n\nchoice\n\tprompt \"x\"\n\tdepends on FOO\nconfig A_CHOICE\n\tbool \"a\"\nendchoice\n\nconfig T\n\tbool \"t\"\n\tdepends on OF\nendmenu\n\nconfig OUTSIDE\n\tbool\n",
            Path::new("arch/arm64/Kconfig.platforms"),
        );
        assert!(index.symbols["ARCH_BCM"].depends.is_empty());
        assert_eq!(index.symbols["ARCH_BCM2835"].depends, ["ARCH_BCM"]);
        assert_eq!(index.symbols["A_CHOICE"].depends, ["HAS_IOMEM", "FOO"]);
        assert_eq!(index.symbols["T"].depends, ["HAS_IOMEM", "OF"]);
        assert!(index.symbols["OUTSIDE"].depends.is_empty());
        let config = KConfig::parse("CONFIG_HAS_IOMEM=y\n");
        let u = unmet(&frag("CONFIG_ARCH_BCM2835=y\n"), &config);
        assert_eq!(
            explain(&u[0], &index, &config),
            "`CONFIG_ARCH_BCM2835=y` did not take effect (`test.config` line 1): it is not set; it depends on `ARCH_BCM`, blocked by ARCH_BCM"
        );
    }

    #[test]
    fn expressions_evaluate_like_kconfig() {
        let c = KConfig::parse(
            "CONFIG_A=y\nCONFIG_M=m\nCONFIG_V=109500\nCONFIG_S=\"abc\"\nCONFIG_H=0x10\n",
        );
        assert!(holds("A && M", &c));
        assert!(holds("!B", &c));
        assert!(!holds("!(A || B)", &c));
        assert!(holds("V >= 109000 && V < 109600", &c));
        assert!(holds("H = 16 && S = \"abc\" && S != \"x\"", &c));
        assert!(holds("M = m && A = y && B = n", &c));
        assert!(holds("$(cc-option,-mfoo) && A", &c));
        assert!(!holds("B", &c));
    }

    #[test]
    fn blocking_symbols_handles_negation() {
        let c = KConfig::parse("CONFIG_A=y\n");
        assert_eq!(blocking_symbols("A && B", &c), ["B"]);
        assert_eq!(
            blocking_symbols("!A || (B && 64BIT)", &c),
            ["!A", "B", "64BIT"]
        );
        assert!(
            blocking_symbols("A || B", &c).is_empty(),
            "a holding expression blames nothing"
        );
        assert_eq!(
            blocking_symbols("$(cc-option,-mfoo)", &c),
            Vec::<String>::new()
        );
    }
}
