//! Rewriting a module's Rust sources into their in-tree form, token by token.
//!
//! The file is lexed (proc-macro2, with line and column spans) and edited at the byte
//! ranges of the tokens that change; everything else (comments, layout) stays as the user
//! wrote it:
//!
//! - `kmod_macros::module! { type: T, .. }` becomes the kernel's `module!` with the fields
//!   Cargo.toml gave (`name`, `authors`/`author` per the tree's dialect, `description`,
//!   `license`) written after `type`;
//! - `test` in a `cfg`/`cfg_attr`/`cfg!` predicate becomes the KUnit symbol
//!   (`CONFIG_<X>_KUNIT_TEST`), as in-tree drivers guard their tests;
//! - what has no in-tree form is refused: other uses of `kmod_macros`, `env!` of the
//!   variables only cargo-kmod's build sets, cargo features, `#[path]` modules.
//!
//! It also reports the file's `#![feature(..)]` names and its `mod name;` declarations,
//! which the caller follows to the module's other files.

use std::str::FromStr;

use proc_macro2::{Delimiter, LineColumn, Spacing, TokenStream, TokenTree};

/// The `module!` fields that come from Cargo.toml, rendered for the tree's dialect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleFields {
    pub name: String,
    /// `authors: [..]` (6.14+) or one `author: ".."`.
    pub authors_list: bool,
    pub authors: Vec<String>,
    pub description: String,
    /// The kernel's license string (`GPL v2`, `Dual MIT/GPL`).
    pub license: String,
    /// The tree's `module!` takes `params` (6.17+).
    pub native_params: bool,
    /// The tree's `module!` takes `imports_ns` (6.13+).
    pub imports_ns: bool,
    /// The tree's `module!` takes any type for `type` (7.0+), not only an identifier.
    pub type_path: bool,
    /// The tree, for messages (`7.2.0`).
    pub version: String,
}

/// What the rewrite of one file needs.
#[derive(Debug, Clone)]
pub struct Rewrite<'a> {
    /// For messages: the file as the user knows it.
    pub file: &'a str,
    /// The module's fields, for the file that declares the module (any file may).
    pub fields: &'a ModuleFields,
    /// `CONFIG_<X>_KUNIT_TEST`.
    pub test_symbol: &'a str,
}

/// One rewritten file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewritten {
    pub text: String,
    /// The file declares the module (`kmod_macros::module!`).
    pub declares_module: bool,
    /// `#![feature(..)]` names.
    pub features: Vec<String>,
    /// Out-of-line modules (`mod name;`), as paths of idents from the file's module
    /// (`["tests"]`, or `["a", "b"]` for `mod b;` inside `mod a { .. }`).
    pub mods: Vec<Vec<String>>,
}

/// A refusal: one line naming the file and line.
fn refuse(file: &str, at: LineColumn, what: String) -> anyhow::Error {
    crate::error::UserError::new(format!("{file}:{}: {what}", at.line)).into()
}

/// Rewrite `text`.
pub fn rewrite(text: &str, r: &Rewrite<'_>) -> anyhow::Result<Rewritten> {
    let stream = TokenStream::from_str(text).map_err(|e| {
        crate::error::UserError::new(format!(
            "{}:{}: cannot read the file as Rust tokens: {e}",
            r.file,
            e.span().start().line
        ))
    })?;
    let index = LineIndex::new(text);
    let mut w = Walker {
        r,
        index: &index,
        edits: Vec::new(),
        declares_module: false,
        features: Vec::new(),
        mods: Vec::new(),
    };
    w.walk(stream, &[])?;
    let mut edits = w.edits;
    edits.sort_by_key(|e| std::cmp::Reverse(e.0));
    let mut out = text.to_string();
    for (start, end, with) in edits {
        out.replace_range(start..end, &with);
    }
    Ok(Rewritten {
        text: out,
        declares_module: w.declares_module,
        features: w.features,
        mods: w.mods,
    })
}

/// Byte offsets of proc-macro2's line and column (0-based, in characters) positions.
struct LineIndex<'t> {
    text: &'t str,
    starts: Vec<usize>,
}

impl<'t> LineIndex<'t> {
    fn new(text: &'t str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { text, starts }
    }

    fn offset(&self, at: LineColumn) -> usize {
        let start = self
            .starts
            .get(at.line.saturating_sub(1))
            .copied()
            .unwrap_or(self.text.len());
        let line = &self.text[start..];
        start
            + line
                .char_indices()
                .nth(at.column)
                .map(|(i, _)| i)
                .unwrap_or(line.len())
    }
}

struct Walker<'a, 'i> {
    r: &'a Rewrite<'a>,
    index: &'i LineIndex<'i>,
    /// (start, end, replacement) byte ranges.
    edits: Vec<(usize, usize, String)>,
    declares_module: bool,
    features: Vec<String>,
    mods: Vec<Vec<String>>,
}

/// The kernel's module declarations: `module!` and the bus drivers' `module_<bus>_driver!`
/// (`module_pci_driver!`, `module_platform_driver!`, `module_i2c_driver!`, ...).
fn is_kernel_module_macro(name: &str) -> bool {
    name == "module"
        || name
            .strip_prefix("module_")
            .and_then(|r| r.strip_suffix("_driver"))
            .is_some_and(|bus| {
                !bus.is_empty()
                    && bus
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            })
}

fn is_ident(t: Option<&TokenTree>, name: &str) -> bool {
    matches!(t, Some(TokenTree::Ident(i)) if i == name)
}

fn is_punct(t: Option<&TokenTree>, c: char) -> bool {
    matches!(t, Some(TokenTree::Punct(p)) if p.as_char() == c)
}

fn paren(t: Option<&TokenTree>) -> Option<&proc_macro2::Group> {
    match t {
        Some(TokenTree::Group(g)) if g.delimiter() == Delimiter::Parenthesis => Some(g),
        _ => None,
    }
}

/// The text of a string literal token, if it is a plain one.
fn string_literal(t: Option<&TokenTree>) -> Option<String> {
    let Some(TokenTree::Literal(l)) = t else {
        return None;
    };
    let s = l.to_string();
    s.strip_prefix('"')?.strip_suffix('"').map(str::to_string)
}

impl Walker<'_, '_> {
    fn walk(&mut self, stream: TokenStream, module: &[String]) -> anyhow::Result<()> {
        let tokens: Vec<TokenTree> = stream.into_iter().collect();
        let mut i = 0;
        while i < tokens.len() {
            let t = &tokens[i];
            match t {
                TokenTree::Ident(id) if id == "kmod_macros" => {
                    i = self.module_macro(&tokens, i)?;
                    continue;
                }
                TokenTree::Ident(id)
                    if is_kernel_module_macro(&id.to_string())
                        && is_punct(tokens.get(i + 1), '!')
                        && matches!(tokens.get(i + 2), Some(TokenTree::Group(_))) =>
                {
                    // The kernel's own declaration (a sample ported as it is): in-tree already.
                    if let Some(TokenTree::Group(g)) = tokens.get(i + 2) {
                        self.native_module(id, g)?;
                    }
                }
                TokenTree::Ident(id) if id == "cfg" || id == "cfg_attr" => {
                    // `cfg(..)`, `cfg_attr(..)` in an attribute; `cfg!(..)` in code.
                    let bang = is_punct(tokens.get(i + 1), '!');
                    let group = paren(tokens.get(i + 1 + usize::from(bang)));
                    if let Some(g) = group {
                        self.predicate(g.stream(), id == "cfg_attr")?;
                    }
                }
                TokenTree::Ident(id)
                    if (id == "env" || id == "option_env") && is_punct(tokens.get(i + 1), '!') =>
                {
                    let inner: Vec<TokenTree> = paren(tokens.get(i + 2))
                        .map(|g| g.stream().into_iter().collect())
                        .unwrap_or_default();
                    if let Some(var) = string_literal(inner.first()) {
                        if var == "OUT_DIR" || var.starts_with("CARGO_") || var.starts_with("KMOD_")
                        {
                            return Err(refuse(
                                self.r.file,
                                id.span().start(),
                                format!("`{id}!(\"{var}\")` is set only by cargo-kmod's build, and in-tree code has no such variable"),
                            ));
                        }
                    }
                }
                TokenTree::Punct(p) if p.as_char() == '#' => {
                    self.attribute(&tokens, i)?;
                }
                TokenTree::Ident(id) if id == "mod" => {
                    if let (Some(TokenTree::Ident(name)), next) =
                        (tokens.get(i + 1), tokens.get(i + 2))
                    {
                        let mut path = module.to_vec();
                        path.push(name.to_string());
                        if is_punct(next, ';') {
                            self.mods.push(path);
                        } else if let Some(TokenTree::Group(g)) = next {
                            if g.delimiter() == Delimiter::Brace {
                                self.walk(g.stream(), &path)?;
                                i += 3;
                                continue;
                            }
                        }
                    }
                }
                _ => {}
            }
            if let TokenTree::Group(g) = t {
                self.walk(g.stream(), module)?;
            }
            i += 1;
        }
        Ok(())
    }

    /// The kernel's `module!` or `module_<bus>_driver!` with body `g`: the module is declared
    /// in its in-tree form already, and kept as it is; its `name` must be the module's (kbuild
    /// names the module after its object).
    fn native_module(
        &mut self,
        id: &proc_macro2::Ident,
        g: &proc_macro2::Group,
    ) -> anyhow::Result<()> {
        let file = self.r.file;
        if self.declares_module {
            return Err(refuse(
                file,
                id.span().start(),
                format!("a second module declaration (`{id}!`): a module is declared once"),
            ));
        }
        self.declares_module = true;
        let body: Vec<TokenTree> = g.stream().into_iter().collect();
        let name = body
            .windows(3)
            .find(|w| is_ident(w.first(), "name") && is_punct(w.get(1), ':'))
            .and_then(|w| string_literal(w.get(2)));
        match name {
            Some(n) if n == self.r.fields.name => Ok(()),
            Some(n) => Err(refuse(
                file,
                id.span().start(),
                format!(
                    "`{id}!` names the module `{}`, but its object is `{}` (the module name of Cargo.toml): kbuild names a module after its object",
                    crate::text::escape(&n),
                    self.r.fields.name
                ),
            )),
            None => Err(refuse(
                file,
                id.span().start(),
                format!("`{id}!` has no `name: \"..\"`, which the kernel's declaration needs"),
            )),
        }
    }

    /// `#[..]` or `#![..]` at `i`: `#![feature(..)]` names, and a refusal of `#[path]`.
    fn attribute(&mut self, tokens: &[TokenTree], i: usize) -> anyhow::Result<()> {
        let inner = is_punct(tokens.get(i + 1), '!');
        let Some(TokenTree::Group(g)) = tokens.get(i + 1 + usize::from(inner)) else {
            return Ok(());
        };
        if g.delimiter() != Delimiter::Bracket {
            return Ok(());
        }
        let body: Vec<TokenTree> = g.stream().into_iter().collect();
        if inner && is_ident(body.first(), "feature") {
            if let Some(list) = paren(body.get(1)) {
                for t in list.stream() {
                    if let TokenTree::Ident(f) = t {
                        self.features.push(f.to_string());
                    }
                }
            }
        }
        if !inner && is_ident(body.first(), "path") && is_punct(body.get(1), '=') {
            return Err(refuse(
                self.r.file,
                g.span().start(),
                "`#[path = ..]` modules are not exported: move the file where `mod` finds it"
                    .into(),
            ));
        }
        Ok(())
    }

    /// A `cfg` predicate (or `cfg_attr`'s first argument): `test` becomes the KUnit symbol,
    /// `feature = ".."` is refused.
    fn predicate(&mut self, stream: TokenStream, attr: bool) -> anyhow::Result<()> {
        let tokens: Vec<TokenTree> = stream.into_iter().collect();
        for (i, t) in tokens.iter().enumerate() {
            match t {
                // `cfg_attr(pred, attrs..)`: only the predicate.
                TokenTree::Punct(p) if attr && p.as_char() == ',' => break,
                TokenTree::Ident(id) if id == "test" && !is_punct(tokens.get(i + 1), '=') => {
                    let (s, e) = (
                        self.index.offset(id.span().start()),
                        self.index.offset(id.span().end()),
                    );
                    self.edits.push((s, e, self.r.test_symbol.to_string()));
                }
                TokenTree::Ident(id) if id == "feature" && is_punct(tokens.get(i + 1), '=') => {
                    return Err(refuse(
                        self.r.file,
                        id.span().start(),
                        "cargo features (`cfg(feature = ..)`) have no in-tree form: make the choice a Kconfig symbol, or drop it before exporting".into(),
                    ));
                }
                TokenTree::Group(g) => self.predicate(g.stream(), false)?,
                _ => {}
            }
        }
        Ok(())
    }

    /// `kmod_macros` at `i`: `kmod_macros::module! { .. }` is rewritten, anything else is
    /// refused. Returns the index after it.
    fn module_macro(&mut self, tokens: &[TokenTree], i: usize) -> anyhow::Result<usize> {
        let at = tokens[i].span().start();
        let path_ok = matches!(tokens.get(i + 1), Some(TokenTree::Punct(p)) if p.as_char() == ':' && p.spacing() == Spacing::Joint)
            && is_punct(tokens.get(i + 2), ':')
            && is_ident(tokens.get(i + 3), "module")
            && is_punct(tokens.get(i + 4), '!');
        let body = match tokens.get(i + 5) {
            Some(TokenTree::Group(g)) if path_ok => g.clone(),
            _ => {
                return Err(refuse(
                    self.r.file,
                    at,
                    "`kmod_macros` is used in a form `cargo kmod export` does not rewrite: declare the module with `kmod_macros::module! { .. }`".into(),
                ))
            }
        };
        if self.declares_module {
            return Err(refuse(
                self.r.file,
                at,
                "a second `kmod_macros::module!`: a module is declared once".into(),
            ));
        }
        self.declares_module = true;
        // `::kmod_macros::` starts at the leading `::`.
        let mut start = self.index.offset(at);
        if i >= 2 && is_punct(tokens.get(i - 1), ':') && is_punct(tokens.get(i - 2), ':') {
            start = self.index.offset(tokens[i - 2].span().start());
        }
        let bang = self.index.offset(tokens[i + 4].span().start());
        self.edits.push((start, bang, "module".to_string()));
        self.module_body(&body)?;
        Ok(i + 6)
    }

    /// The fields of the user's `module!` body: checked against the tree's dialect, and the
    /// Cargo.toml fields inserted after `type`.
    fn module_body(&mut self, body: &proc_macro2::Group) -> anyhow::Result<()> {
        let f = self.r.fields;
        let file = self.r.file;
        let tokens: Vec<TokenTree> = body.stream().into_iter().collect();
        let mut i = 0;
        let mut type_end = None;
        let mut sep = String::from("\n    ");
        while i < tokens.len() {
            let TokenTree::Ident(key) = &tokens[i] else {
                return Err(refuse(
                    file,
                    tokens[i].span().start(),
                    "`kmod_macros::module!` expects `key: value` fields".into(),
                ));
            };
            let key_name = key.to_string();
            // The value runs to the next `,` outside `<..>`.
            let mut j = i + 2;
            let mut depth = 0i32;
            while j < tokens.len() {
                match &tokens[j] {
                    TokenTree::Punct(p) if p.as_char() == '<' => depth += 1,
                    TokenTree::Punct(p) if p.as_char() == '>' => depth -= 1,
                    TokenTree::Punct(p) if p.as_char() == ',' && depth <= 0 => break,
                    _ => {}
                }
                j += 1;
            }
            match key_name.as_str() {
                "type" => {
                    let at = key.span().start();
                    let line_start = self.index.offset(LineColumn {
                        line: at.line,
                        column: 0,
                    });
                    let before = &self.index.text[line_start..self.index.offset(at)];
                    // Fields on their own lines get the indentation of `type`'s line; a
                    // one-line `module!` stays on one line.
                    sep = if before.trim().is_empty() {
                        format!("\n{before}")
                    } else {
                        " ".to_string()
                    };
                    let simple =
                        j == i + 3 && matches!(tokens.get(i + 2), Some(TokenTree::Ident(_)));
                    if !f.type_path && !simple {
                        return Err(refuse(file, key.span().start(), format!("the `module!` of Linux {} takes a plain type name for `type`: add a `use` for it", f.version)));
                    }
                    type_end = Some(match tokens.get(j) {
                        Some(comma) => (self.index.offset(comma.span().end()), true),
                        None => (self.index.offset(tokens[j - 1].span().end()), false),
                    });
                }
                "params" if !f.native_params => {
                    return Err(refuse(file, key.span().start(), format!("the `module!` of Linux {} has no `params` (from 6.17); kmod-macros emulates them, in-tree code cannot", f.version)));
                }
                "imports_ns" if !f.imports_ns => {
                    return Err(refuse(
                        file,
                        key.span().start(),
                        format!(
                            "the `module!` of Linux {} has no `imports_ns` (from 6.13)",
                            f.version
                        ),
                    ));
                }
                "params" | "imports_ns" | "alias" | "firmware" => {}
                other => {
                    return Err(refuse(file, key.span().start(), format!("`{other}` is not a field of `kmod_macros::module!` (Cargo.toml gives the name, authors, description and license)")));
                }
            }
            i = j + 1;
        }
        let Some((at, comma)) = type_end else {
            return Err(refuse(
                file,
                body.span().start(),
                "`kmod_macros::module!` has no `type`".into(),
            ));
        };
        let indent = sep;
        let mut text = String::new();
        if !comma {
            text.push(',');
        }
        let lit = |s: &str| format!("{s:?}");
        text += &format!("{indent}name: {},", lit(&f.name));
        if f.authors_list {
            if let Some(a) = f.authors.iter().find(|a| !a.is_ascii()) {
                return Err(refuse(file, body.span().start(), format!("author `{}` in `[package].authors` is not ASCII, which the kernel's `module!` requires", crate::text::escape(a))));
            }
            if !f.authors.is_empty() {
                let list: Vec<String> = f.authors.iter().map(|a| lit(a)).collect();
                text += &format!("{indent}authors: [{}],", list.join(", "));
            }
        } else if !f.authors.is_empty() {
            text += &format!("{indent}author: {},", lit(&f.authors.join(", ")));
        }
        if !f.description.is_empty() {
            text += &format!("{indent}description: {},", lit(&f.description));
        }
        text += &format!("{indent}license: {},", lit(&f.license));
        self.edits.push((at, at, text));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields() -> ModuleFields {
        ModuleFields {
            name: "hello".into(),
            authors_list: true,
            authors: vec!["Ada <ada@example.com>".into()],
            description: "A \"quoted\" module".into(),
            license: "GPL v2".into(),
            native_params: true,
            imports_ns: true,
            type_path: true,
            version: "7.2.0".into(),
        }
    }

    fn run(text: &str, f: &ModuleFields) -> anyhow::Result<Rewritten> {
        rewrite(
            text,
            &Rewrite {
                file: "src/lib.rs",
                fields: f,
                test_symbol: "CONFIG_HELLO_KUNIT_TEST",
            },
        )
    }

    #[test]
    fn module_macro_gets_the_cargo_fields_after_type() {
        let src = "// keep me\nuse kernel::prelude::*;\n\nkmod_macros::module! {\n    type: Hello,\n    params: {\n        n: i64 { default: 1, description: \"ü\" },\n    },\n}\n";
        let out = run(src, &fields()).unwrap();
        assert!(out.declares_module);
        assert_eq!(
            out.text,
            "// keep me\nuse kernel::prelude::*;\n\nmodule! {\n    type: Hello,\n    name: \"hello\",\n    authors: [\"Ada <ada@example.com>\"],\n    description: \"A \\\"quoted\\\" module\",\n    license: \"GPL v2\",\n    params: {\n        n: i64 { default: 1, description: \"ü\" },\n    },\n}\n"
        );
    }

    #[test]
    fn old_dialects_get_one_author_and_refuse_params() {
        let mut f = fields();
        f.authors_list = false;
        f.authors.push("Linus".into());
        let out = run("::kmod_macros::module!{type: M}", &f).unwrap();
        assert_eq!(
            out.text,
            "module!{type: M, name: \"hello\", author: \"Ada <ada@example.com>, Linus\", description: \"A \\\"quoted\\\" module\", license: \"GPL v2\",}"
        );
        f.native_params = false;
        let e = run("kmod_macros::module! {\n type: M,\n params: {},\n}", &f).unwrap_err();
        assert_eq!(
            e.to_string(),
            "src/lib.rs:3: the `module!` of Linux 7.2.0 has no `params` (from 6.17); kmod-macros emulates them, in-tree code cannot"
        );
    }

    #[test]
    fn test_cfgs_become_the_kunit_symbol() {
        let src = "#[cfg(test)]\nmod tests;\n#[cfg(not(test))]\nfn a() { if cfg!(test) {} }\n#[cfg_attr(all(test, unix), test)]\nfn b() {}\n#[cfg(test = \"x\")]\nfn c() {}\n";
        let out = run(src, &fields()).unwrap();
        assert_eq!(
            out.text,
            "#[cfg(CONFIG_HELLO_KUNIT_TEST)]\nmod tests;\n#[cfg(not(CONFIG_HELLO_KUNIT_TEST))]\nfn a() { if cfg!(CONFIG_HELLO_KUNIT_TEST) {} }\n#[cfg_attr(all(CONFIG_HELLO_KUNIT_TEST, unix), test)]\nfn b() {}\n#[cfg(test = \"x\")]\nfn c() {}\n"
        );
        assert_eq!(out.mods, vec![vec!["tests".to_string()]]);
        assert!(!out.declares_module);
    }

    #[test]
    fn modules_and_features_are_reported() {
        let src = "#![feature(new_uninit, let_chains)]\nmod a { mod b; }\nmod c { fn x() {} }\n";
        let out = run(src, &fields()).unwrap();
        assert_eq!(out.features, ["new_uninit", "let_chains"]);
        assert_eq!(out.mods, vec![vec!["a".to_string(), "b".to_string()]]);
    }

    /// A module declared with the kernel's own `module!` or `module_<bus>_driver!` (a sample
    /// ported as it is) is in-tree already: kept byte for byte, `cfg(test)` still rewritten.
    #[test]
    fn the_kernels_own_declarations_are_kept() {
        let src = "use kernel::prelude::*;\n\nkernel::module_pci_driver! {\n    type: D,\n    name: \"hello\",\n    authors: [\"x\"],\n    license: \"GPL v2\",\n}\n\n#[cfg(test)]\nmod tests {}\n";
        let out = run(src, &fields()).unwrap();
        assert!(out.declares_module);
        assert!(out
            .text
            .contains("kernel::module_pci_driver! {\n    type: D,\n    name: \"hello\","));
        assert!(
            out.text.contains("#[cfg(CONFIG_HELLO_KUNIT_TEST)]"),
            "{}",
            out.text
        );
        let out = run(
            "module! {\n    type: D,\n    name: \"hello\",\n}\n",
            &fields(),
        )
        .unwrap();
        assert!(out.declares_module);
    }

    #[test]
    fn what_has_no_in_tree_form_is_refused_with_its_line() {
        for (src, want) in [
            (
                "use kmod_macros::module;\n",
                "src/lib.rs:1: `kmod_macros` is used in a form",
            ),
            (
                "\ninclude!(concat!(env!(\"OUT_DIR\"), \"/b.rs\"));",
                "src/lib.rs:2: `env!(\"OUT_DIR\")` is set only by cargo-kmod's build",
            ),
            (
                "#[cfg(feature = \"x\")]\nfn a() {}",
                "src/lib.rs:1: cargo features",
            ),
            (
                "#[path = \"x.rs\"]\nmod x;",
                "src/lib.rs:1: `#[path = ..]` modules",
            ),
            (
                "kmod_macros::module! { type: A, name: \"x\" }",
                "src/lib.rs:1: `name` is not a field",
            ),
            (
                "kmod_macros::module! { alias: [\"x\"] }",
                "src/lib.rs:1: `kmod_macros::module!` has no `type`",
            ),
            (
                "fn a() { \"unterminated }",
                "src/lib.rs:1: cannot read the file as Rust tokens",
            ),
            (
                "kernel::module_pci_driver! {\n    type: D,\n    name: \"other\",\n}",
                "src/lib.rs:1: `module_pci_driver!` names the module `other`, but its object is `hello`",
            ),
            (
                "module! { type: D }",
                "src/lib.rs:1: `module!` has no `name: \"..\"`",
            ),
            (
                "module! { type: D, name: \"hello\" }\nkmod_macros::module! { type: D }",
                "src/lib.rs:2: a second `kmod_macros::module!`",
            ),
        ] {
            let e = run(src, &fields()).unwrap_err().to_string();
            assert!(e.starts_with(want), "{src}: {e}");
        }
    }

    #[test]
    fn columns_count_characters() {
        let src = "// ü ü\n#[cfg(test)] fn ä() {} #[cfg(test)] fn b() {}\n";
        let out = run(src, &fields()).unwrap();
        assert_eq!(
            out.text,
            "// ü ü\n#[cfg(CONFIG_HELLO_KUNIT_TEST)] fn ä() {} #[cfg(CONFIG_HELLO_KUNIT_TEST)] fn b() {}\n"
        );
    }
}
