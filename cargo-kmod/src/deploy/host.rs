//! Where a board is: `[USER@]HOST[:PORT]`, from `--host` or a named target's `host`.
//!
//! The host is handed to OpenSSH as its destination, so an alias from the user's
//! `~/.ssh/config` works as it does with `ssh` itself. It is checked first: a destination
//! that starts with `-` would be read by ssh as an option, and whitespace or control
//! characters have no place in a host name.

use std::fmt;

use crate::error::UserError;

/// An ssh destination.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Destination {
    pub user: Option<String>,
    /// A host name, an ssh config alias or an IP address (IPv6 without its brackets).
    pub host: String,
    pub port: Option<u16>,
}

impl Destination {
    /// Parse `[USER@]HOST[:PORT]`; IPv6 addresses with a port are written `[ADDR]:PORT`.
    pub fn parse(s: &str) -> Result<Destination, UserError> {
        let bad = |why: &str| {
            UserError::new(format!("invalid host `{}`: {why}", crate::text::escape(s)))
                .with_hint("write it as `[USER@]HOST[:PORT]`, e.g. `root@192.168.1.20:22`")
        };
        if s.is_empty() {
            return Err(bad("it is empty"));
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("it contains whitespace or control characters"));
        }
        let (user, rest) = match s.rsplit_once('@') {
            Some((u, r)) => (Some(u), r),
            None => (None, s),
        };
        if let Some(u) = user {
            if u.is_empty() || u.starts_with('-') || u.contains('@') || u.contains('/') {
                return Err(bad("the user name is not valid"));
            }
        }
        let (host, port) = if let Some(inner) = rest.strip_prefix('[') {
            let Some((addr, after)) = inner.split_once(']') else {
                return Err(bad("`[` without `]`"));
            };
            let port = match after {
                "" => None,
                p => match p.strip_prefix(':') {
                    Some(p) => Some(p),
                    None => return Err(bad("text after `]` is not `:PORT`")),
                },
            };
            (addr, port)
        } else if rest.matches(':').count() > 1 {
            // A bare IPv6 address: no port.
            (rest, None)
        } else {
            match rest.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (rest, None),
            }
        };
        if host.is_empty() {
            return Err(bad("the host name is empty"));
        }
        if host.starts_with('-') {
            return Err(bad("a host name cannot start with `-`"));
        }
        if !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-:%".contains(c))
        {
            return Err(bad(
                "the host name may only contain letters, digits, `.`, `-`, `_`, `:` and `%`",
            ));
        }
        let port = match port {
            None => None,
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 => Some(n),
                _ => return Err(bad("the port is not a number from 1 to 65535")),
            },
        };
        Ok(Destination {
            user: user.map(str::to_string),
            host: host.to_string(),
            port,
        })
    }

    /// The destination argument for ssh: `USER@HOST` or `HOST` (the port goes to `-p`).
    pub fn ssh_destination(&self) -> String {
        match &self.user {
            Some(u) => format!("{u}@{}", self.host),
            None => self.host.clone(),
        }
    }
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(u) = &self.user {
            write!(f, "{u}@")?;
        }
        match (self.port, self.host.contains(':')) {
            (Some(p), true) => write!(f, "[{}]:{p}", self.host),
            (Some(p), false) => write!(f, "{}:{p}", self.host),
            (None, _) => write!(f, "{}", self.host),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(user: Option<&str>, host: &str, port: Option<u16>) -> Destination {
        Destination {
            user: user.map(str::to_string),
            host: host.into(),
            port,
        }
    }

    #[test]
    fn parses_the_forms_ssh_takes() {
        let p = |s: &str| Destination::parse(s).unwrap();
        assert_eq!(p("rpi4"), d(None, "rpi4", None));
        assert_eq!(p("pi@rpi4.local"), d(Some("pi"), "rpi4.local", None));
        assert_eq!(
            p("root@127.0.0.1:2222"),
            d(Some("root"), "127.0.0.1", Some(2222))
        );
        assert_eq!(p("[::1]:22"), d(None, "::1", Some(22)));
        assert_eq!(p("fe80::1%eth0"), d(None, "fe80::1%eth0", None));
        assert_eq!(p("root@[::1]:2222").to_string(), "root@[::1]:2222");
        assert_eq!(p("root@127.0.0.1:2222").ssh_destination(), "root@127.0.0.1");
    }

    #[test]
    fn refuses_what_ssh_would_misread() {
        let e = |s: &str| Destination::parse(s).unwrap_err().message;
        assert_eq!(
            e("-oProxyCommand=x"),
            "invalid host `-oProxyCommand=x`: a host name cannot start with `-`"
        );
        assert_eq!(
            e("-l@host"),
            "invalid host `-l@host`: the user name is not valid"
        );
        assert_eq!(
            e("a b"),
            "invalid host `a b`: it contains whitespace or control characters"
        );
        assert_eq!(
            e("h:0"),
            "invalid host `h:0`: the port is not a number from 1 to 65535"
        );
        assert_eq!(
            e("h:x"),
            "invalid host `h:x`: the port is not a number from 1 to 65535"
        );
        assert!(e("h;rm").contains("may only contain"));
        assert_eq!(e(""), "invalid host ``: it is empty");
        assert_eq!(e("@h"), "invalid host `@h`: the user name is not valid");
    }
}
