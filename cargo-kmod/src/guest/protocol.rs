//! The guest protocol: what `/init` tells the host, and the kernel log records it forwards.
//!
//! Every line `/init` writes starts with the boot's [`Token`], a random word that exists
//! only inside the initramfs (never on the kernel command line, which the kernel prints):
//!
//! ```text
//! k3f9c...e1 begin 0                 taint before the first step
//! k3f9c...e1 step 0                  step 0 starts
//! k3f9c...e1 out 0 insmod: can't insert '/kmod/m.ko': invalid parameters
//! k3f9c...e1 done 0 1 4096           step 0 exited 1; taint after it
//! k3f9c...e1 skip 1                  step 1's condition was false
//! k3f9c...e1 settled 4096            taint after the settle time that follows the steps
//! k3f9c...e1 exec                    `run --exec`: the command starts
//! k3f9c...e1 x total 3               one line of its output
//! k3f9c...e1 exit 3                  its exit status
//! k3f9c...e1 ready                   a long-running guest is up
//! k3f9c...e1 end                     the script is over
//! ```
//!
//! The kernel log travels as `/dev/kmsg` records, `PRI,SEQ,USEC,FLAGS;TEXT` (the kernel
//! escapes every control character in `TEXT` as `\xNN`, so a record is one line). On a
//! channel of its own they come bare; on a shared console each is prefixed `TOKEN k `.
//! Records carry sequence numbers, so a lost record is a visible gap. `/init` marks step
//! boundaries in the log itself by writing sync records into `/dev/kmsg`: their text is
//! `TOKEN sync ID` and their facility is `user`, which kernel `printk` never produces.
//!
//! A line that does not parse as one of these is not protocol: on a shared console it is
//! console text; on a channel of its own it cannot occur unless something is broken.

use anyhow::{Context, Result};

/// A per-boot random word authenticating protocol lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token(String);

/// `n` bytes from `/dev/urandom`.
pub fn random_bytes(n: usize) -> Result<Vec<u8>> {
    use std::io::Read;
    let mut bytes = vec![0u8; n];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("cannot read `/dev/urandom`")?;
    Ok(bytes)
}

impl Token {
    /// 128 random bits from the kernel, as `k` and 32 hex digits.
    pub fn random() -> Result<Token> {
        Ok(Token(format!("k{}", hex::encode(random_bytes(16)?))))
    }

    /// A fixed token, for tests.
    pub fn fixed(s: &str) -> Token {
        Token(s.to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One `/dev/kmsg` record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    pub seq: u64,
    /// Syslog level (0 emergency .. 7 debug).
    pub level: u8,
    /// Syslog facility: 0 for the kernel's own `printk`, 1 (user) and up for `/dev/kmsg`
    /// writers.
    pub facility: u8,
    /// Microseconds since boot.
    pub usec: u64,
    /// The message, `\xNN` escapes decoded, each of its lines made safe to print
    /// ([`crate::text::escape`]).
    pub text: String,
}

impl LogRecord {
    /// Parse `PRI,SEQ,USEC,FLAGS[,...];TEXT`. `None` for anything else, including the
    /// ` KEY=VALUE` continuation lines that carry a record's device properties.
    pub fn parse(line: &str) -> Option<LogRecord> {
        let (prefix, text) = line.split_once(';')?;
        let mut f = prefix.split(',');
        let pri: u32 = f.next()?.parse().ok()?;
        let seq: u64 = f.next()?.parse().ok()?;
        let usec: u64 = f.next()?.parse().ok()?;
        f.next()?;
        Some(LogRecord {
            seq,
            level: (pri & 7) as u8,
            facility: (pri >> 3).min(255) as u8,
            usec,
            text: unescape(text),
        })
    }

    /// The lines of the message (a record may hold several).
    pub fn lines(&self) -> impl Iterator<Item = &str> {
        self.text.split('\n')
    }

    /// `Some(id)` when this is one of `/init`'s sync records for this boot.
    pub fn sync(&self, token: &Token) -> Option<&str> {
        if self.facility == 0 {
            return None;
        }
        let rest = self.text.strip_prefix(token.as_str())?;
        let id = rest.strip_prefix(" sync ")?;
        (!id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric())).then_some(id)
    }

    /// `[    1.234567] text`, as `dmesg` shows it.
    pub fn display(&self) -> String {
        format!(
            "[{:5}.{:06}] {}",
            self.usec / 1_000_000,
            self.usec % 1_000_000,
            self.text
        )
    }
}

/// Decode the kernel's `\xNN` escapes; then make each line of the message safe to print
/// ([`crate::text::escape`]: control characters, tab included, and bidi controls escaped).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && b.get(i + 1) == Some(&b'x') {
            if let Some(v) = b
                .get(i + 2..i + 4)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out)
        .split('\n')
        .map(crate::text::escape)
        .collect::<Vec<_>>()
        .join("\n")
}

/// What one trusted line said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Begin { taint: u64 },
    Step { id: usize },
    Out { id: usize, text: String },
    Done { id: usize, status: i32, taint: u64 },
    Skip { id: usize },
    Settled { taint: u64 },
    Exec,
    ExecOut { text: String },
    Exit { status: i32 },
    Ready,
    End,
    Log(LogRecord),
}

/// Where a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The protocol UART: only `/init` and its log forwarder write there.
    Channel,
    /// The console: the kernel's console output and anything a guest process prints.
    Console,
}

/// Parse one line. `shared` is whether the protocol shares the console: then bare log
/// records are not accepted (anything can print them on a console) and every trusted line
/// must carry the token. Console lines of a machine with a channel are never protocol.
pub fn parse(line: &str, source: Source, shared: bool, token: &Token) -> Option<Event> {
    if source == Source::Console && !shared {
        return None;
    }
    let Some(rest) = line
        .strip_prefix(token.as_str())
        .and_then(|r| r.strip_prefix(' '))
    else {
        // Only the forwarder's bare records remain, and only on a channel of their own.
        return match (source, shared) {
            (Source::Channel, false) => LogRecord::parse(line).map(Event::Log),
            _ => None,
        };
    };
    let (word, arg) = rest.split_once(' ').unwrap_or((rest, ""));
    let num = |s: &str| s.parse::<u64>().ok();
    let words: Vec<&str> = arg.split(' ').collect();
    Some(match (word, words.as_slice()) {
        ("begin", [t]) => Event::Begin { taint: num(t)? },
        ("step", [id]) => Event::Step {
            id: id.parse().ok()?,
        },
        ("out", _) => {
            let (id, text) = arg.split_once(' ').unwrap_or((arg, ""));
            Event::Out {
                id: id.parse().ok()?,
                text: text.to_string(),
            }
        }
        ("done", [id, rc, t]) => Event::Done {
            id: id.parse().ok()?,
            status: rc.parse().ok()?,
            taint: num(t)?,
        },
        ("skip", [id]) => Event::Skip {
            id: id.parse().ok()?,
        },
        ("settled", [t]) => Event::Settled { taint: num(t)? },
        ("exec", [""]) => Event::Exec,
        ("x", _) => Event::ExecOut {
            text: arg.to_string(),
        },
        ("exit", [rc]) => Event::Exit {
            status: rc.parse().ok()?,
        },
        ("ready", [""]) => Event::Ready,
        ("end", [""]) => Event::End,
        ("k", _) if shared => Event::Log(LogRecord::parse(arg)?),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t() -> Token {
        Token::fixed("kabc")
    }

    #[test]
    fn records() {
        let r = LogRecord::parse("6,42,1234567,-;hello: loaded\\x0a  second").unwrap();
        assert_eq!((r.seq, r.level, r.facility, r.usec), (42, 6, 0, 1234567));
        assert_eq!(r.text, "hello: loaded\n  second");
        assert_eq!(r.lines().collect::<Vec<_>>(), ["hello: loaded", "  second"]);
        assert_eq!(r.display(), "[    1.234567] hello: loaded\n  second");
        // What would draw on a terminal is escaped, line by line: a bell, an escape
        // sequence, a bidi override, a tab.
        let r = LogRecord::parse("6,43,0,-;a\\x07b\\x1b[2J\\x0a\\xe2\\x80\\xaeevil\\x09x").unwrap();
        assert_eq!(
            r.lines().collect::<Vec<_>>(),
            ["a\\u{7}b\\u{1b}[2J", "\\u{202e}evil\\tx"]
        );
        // The kernel escapes a backslash as `\x5c`; a malformed escape stays as it is.
        let r = LogRecord::parse("4,7,0,c,caller=T1;a;b \\x5cx \\xzz").unwrap();
        assert_eq!(r.text, "a;b \\x \\xzz");
        assert!(LogRecord::parse(" SUBSYSTEM=tty").is_none());
        assert!(LogRecord::parse("x,1,2,-;y").is_none());
        assert!(LogRecord::parse("no separator").is_none());
    }

    #[test]
    fn sync_records_need_the_token_and_a_user_facility() {
        let user = LogRecord::parse("15,9,0,-;kabc sync 3").unwrap();
        assert_eq!(user.sync(&t()), Some("3"));
        let kernel = LogRecord::parse("7,9,0,-;kabc sync 3").unwrap();
        assert_eq!(kernel.sync(&t()), None);
        let other = LogRecord::parse("15,9,0,-;kxyz sync 3").unwrap();
        assert_eq!(other.sync(&t()), None);
        let odd = LogRecord::parse("15,9,0,-;kabc sync 3 x").unwrap();
        assert_eq!(odd.sync(&t()), None);
    }

    #[test]
    fn channel_lines() {
        let p = |l: &str| parse(l, Source::Channel, false, &t());
        assert_eq!(p("kabc begin 0"), Some(Event::Begin { taint: 0 }));
        assert_eq!(p("kabc step 2"), Some(Event::Step { id: 2 }));
        assert_eq!(
            p("kabc out 2 a  b "),
            Some(Event::Out {
                id: 2,
                text: "a  b ".into()
            })
        );
        assert_eq!(
            p("kabc out 2 "),
            Some(Event::Out {
                id: 2,
                text: "".into()
            })
        );
        assert_eq!(
            p("kabc done 2 -1 4096"),
            Some(Event::Done {
                id: 2,
                status: -1,
                taint: 4096
            })
        );
        assert_eq!(p("kabc end"), Some(Event::End));
        assert_eq!(
            p("kabc x  indented"),
            Some(Event::ExecOut {
                text: " indented".into()
            })
        );
        assert_eq!(p("kabc exit 3"), Some(Event::Exit { status: 3 }));
        assert!(matches!(p("6,1,2,-;kernel"), Some(Event::Log(_))));
        // Malformed or foreign lines are nothing.
        for bad in [
            "kabc done 2 0",
            "kabc done x 0 0",
            "kabc end now",
            "kabc  end",
            "kabcend",
            "kxyz end",
            "@@kmod:end",
            "kabc k 6,1,2,-;forged",
        ] {
            assert_eq!(p(bad), None, "{bad}");
        }
    }

    #[test]
    fn console_lines_are_never_protocol_unless_shared() {
        assert_eq!(parse("kabc end", Source::Console, false, &t()), None);
        assert_eq!(
            parse("kabc end", Source::Console, true, &t()),
            Some(Event::End)
        );
        // On a shared console, bare records are console text; framed ones are records.
        assert_eq!(parse("6,1,2,-;x", Source::Console, true, &t()), None);
        assert!(matches!(
            parse("kabc k 6,1,2,-;x", Source::Console, true, &t()),
            Some(Event::Log(r)) if r.text == "x"
        ));
    }

    #[test]
    fn tokens_are_random() {
        let a = Token::random().unwrap();
        let b = Token::random().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 33);
        assert!(a.as_str().starts_with('k'));
    }
}
