//! Text shown to the user: the one escaper of untrusted text, and the one "did you mean"
//! matcher.
//!
//! Untrusted text on a terminal. Everything inside a `.ko` (`.modinfo` values, symbol names,
//! the signer) is attacker-controlled; printed raw, a newline or carriage return draws a fake
//! line (`signer: Trusted Vendor`), an ANSI escape recolours or erases the screen, and a Unicode
//! bidi override reorders what the reader sees. [`printable`] escapes exactly those, the way
//! Rust's `escape_debug` does (`\n`, `\r`, `\t`, `\u{1b}`), and leaves every other character,
//! including non-ASCII letters and backslashes, as it is.

use std::borrow::Cow;

/// Whether `c` must be escaped before it reaches a terminal: C0 and C1 controls, DEL, and the
/// invisible characters that change the display order or join lines (bidi embeddings,
/// overrides and isolates, the line and paragraph separators).
pub fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}'
                | '\u{200e}'
                | '\u{200f}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}'
        )
}

/// `s` with every character [`needs_escape`] says is unsafe written as an escape; borrowed
/// when nothing needed escaping (the common case).
pub fn printable(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if needs_escape(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// The candidate closest to a misspelled `key` (Jaro-Winkler similarity above `threshold`),
/// for "did you mean" hints.
pub fn nearest_with<'a>(
    key: &str,
    candidates: impl IntoIterator<Item = &'a str>,
    threshold: f64,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|v| (strsim::jaro_winkler(key, v), v))
        .filter(|(s, _)| *s > threshold)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, v)| v)
}

/// [`nearest_with`] at the threshold of names a person types (keys, boards, features).
pub fn nearest<'a>(key: &str, valid: &[&'a str]) -> Option<&'a str> {
    nearest_with(key, valid.iter().copied(), 0.7)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_draws_and_keeps_the_rest() {
        assert!(matches!(printable("GPL v2"), Cow::Borrowed("GPL v2")));
        assert_eq!(printable("Zoë \\ 日本"), "Zoë \\ 日本");
        assert_eq!(
            printable("x\nsigner:        Trusted\r"),
            "x\\nsigner:        Trusted\\r"
        );
        assert_eq!(
            printable("\x1b[2J\x1b[31mred\t"),
            "\\u{1b}[2J\\u{1b}[31mred\\t"
        );
        assert_eq!(
            printable("\u{7f}\u{85}\u{202e}abc"),
            "\\u{7f}\\u{85}\\u{202e}abc"
        );
    }
}
