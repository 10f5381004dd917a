//! Dotted versions of kernels and tools (`7.2.13`, `rustc 1.95.0`, `bindgen 0.73.2`).

/// A dotted version, compared numerically (`0.71.1 < 0.73.2`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Version(pub u32, pub u32, pub u32);

impl Version {
    /// The first `X.Y[.Z]` in a string: `rustc 1.95.0 (59807616e 2026-04-14)` -> 1.95.0.
    pub fn find(text: &str) -> Option<Version> {
        text.split(|c: char| !(c.is_ascii_digit() || c == '.'))
            .filter(|w| w.contains('.'))
            .find_map(|w| {
                let mut parts = w
                    .split('.')
                    .filter(|p| !p.is_empty())
                    .map(|p| p.parse::<u32>());
                let a = parts.next()?.ok()?;
                let b = parts.next()?.ok()?;
                let c = parts.next().and_then(Result::ok).unwrap_or(0);
                Some(Version(a, b, c))
            })
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_first_dotted_version() {
        assert_eq!(
            Version::find("rustc 1.95.0 (59807616e 2026-04-14)"),
            Some(Version(1, 95, 0))
        );
        assert_eq!(Version::find("7.2"), Some(Version(7, 2, 0)));
        assert!(Version(0, 71, 1) < Version(0, 73, 2));
        assert_eq!(Version::find("none"), None);
    }
}
