//! Untrusted text on a terminal, and near matches for "did you mean" hints.
//!
//! Everything inside a `.ko` (`.modinfo` values, symbol names, the signer), what a manifest
//! says that is shown back, every line a guest prints (console, protocol, kernel log) and
//! every answer of a board is attacker-controlled. Printed raw, a newline or carriage return
//! draws a fake line (`signer: Trusted Vendor`, `test result: ok. 9 passed`), an ANSI escape
//! recolours or erases the screen (or, as OSC 52, writes the clipboard), and a Unicode bidi
//! override reorders what the reader sees. [`escape`] is the one function that makes such
//! text safe: it writes exactly those characters the way Rust's `escape_debug` does (`\n`,
//! `\r`, `\t`, `\u{1b}`) and leaves every other character, including non-ASCII letters and
//! backslashes, as it is. [`line`] turns the raw bytes of one line a guest or board printed
//! into such text. Identifiers (a device's `compatible`, module names) refuse these
//! characters instead ([`unsafe_char`]).

use std::borrow::Cow;

/// Whether `c` must be escaped before it reaches a terminal: C0 and C1 controls, DEL, and the
/// invisible characters that change the display order or join lines (bidi embeddings,
/// overrides, isolates and marks, the line and paragraph separators).
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
pub fn escape(s: &str) -> Cow<'_, str> {
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

/// One line a guest or a board printed, as text that is safe to print: invalid UTF-8
/// replaced, the serial line's `\r` before the newline dropped, everything else [`escape`]d.
pub fn line(raw: &[u8]) -> String {
    let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
    match escape(&String::from_utf8_lossy(raw)) {
        Cow::Borrowed(s) => s.to_string(),
        Cow::Owned(s) => s,
    }
}

/// The first character of `s` that an identifier may not hold (one [`needs_escape`] says is
/// unsafe on a terminal), with its escape for messages.
pub fn unsafe_char(s: &str) -> Option<String> {
    s.chars()
        .find(|c| needs_escape(*c))
        .map(|c| escape(&c.to_string()).into_owned())
}

/// The candidate closest to a misspelled `word`, for "did you mean" hints: the best
/// Jaro-Winkler score above `min` (0.7 for short key lists, higher for long ones such as
/// Kconfig symbols).
pub fn nearest<'a, I>(word: &str, candidates: I, min: f64) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(word, c), c))
        .filter(|(score, _)| *score > min)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_draws_and_keeps_the_rest() {
        assert!(matches!(escape("GPL v2"), Cow::Borrowed("GPL v2")));
        assert_eq!(escape("Zoë \\ 日本"), "Zoë \\ 日本");
        assert_eq!(
            escape("x\nsigner:        Trusted\r"),
            "x\\nsigner:        Trusted\\r"
        );
        assert_eq!(
            escape("\x1b[2J\x1b[31mred\t"),
            "\\u{1b}[2J\\u{1b}[31mred\\t"
        );
        assert_eq!(
            escape("\u{7f}\u{85}\u{202e}abc\u{2066}"),
            "\\u{7f}\\u{85}\\u{202e}abc\\u{2066}"
        );
        // OSC 52 (set the clipboard) and a bell.
        assert_eq!(escape("\x1b]52;c;aGk=\x07"), "\\u{1b}]52;c;aGk=\\u{7}");
    }

    #[test]
    fn lines_from_a_guest_or_board() {
        assert_eq!(line(b"ok 1 adds\r"), "ok 1 adds");
        assert_eq!(line(b"\x1b[0mhi\x07\tx"), "\\u{1b}[0mhi\\u{7}\\tx");
        assert_eq!(line(b"\xff\xfeab"), "\u{fffd}\u{fffd}ab");
        assert_eq!(
            line("evil \u{202e}txt.exe".as_bytes()),
            "evil \\u{202e}txt.exe"
        );
    }

    #[test]
    fn identifiers_and_near_matches() {
        assert_eq!(unsafe_char("acme,blinker"), None);
        assert_eq!(unsafe_char("a\nb").as_deref(), Some("\\n"));
        assert_eq!(unsafe_char("a\u{202e}").as_deref(), Some("\\u{202e}"));
        let keys = ["c-sources", "ccflags", "rustflags"];
        assert_eq!(nearest("c-source", keys, 0.7), Some("c-sources"));
        assert_eq!(nearest("zzz", keys, 0.7), None);
    }
}
