// What the target kernel's `module!` accepts, chosen by its version (`KMOD_KERNEL_VERSION`).
//
// Measured on two lines: 6.12 takes `author: ".."` and has no `params`, and its parser only
// takes an identifier for `type`; 7.2 takes `authors: [..]`, `imports_ns` and `params` (and
// no longer knows `author`). The same `module!` source fails on one of them. The switch
// points in between follow the kernel's history: `authors` from 6.14, `params` from 6.17;
// before `params`, kmod-macros declares the parameters itself with the same access API.

/// A kernel version `major.minor.patch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct KernelVersion(pub u32, pub u32, pub u32);

impl KernelVersion {
    /// Parse `7.2.13`, `6.12.117-rc1`, `7.2`, or a release string like `7.2.13-amd64`.
    pub fn parse(text: &str) -> Option<KernelVersion> {
        let text = text.trim();
        let end = text
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(text.len());
        let mut parts = text[..end].split('.').filter(|p| !p.is_empty());
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        let patch = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        Some(KernelVersion(major, minor, patch))
    }
}

impl std::fmt::Display for KernelVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// The `module!` syntax of one kernel version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dialect {
    pub version: KernelVersion,
    /// `authors: ["a", "b"]` (true) or `author: "a, b"` (false).
    pub authors_list: bool,
    /// `module!` declares `params` itself; otherwise kmod-macros emits them.
    pub native_params: bool,
    /// `imports_ns: [..]` is known.
    pub imports_ns: bool,
    /// `type:` may be any type (syn parser) rather than a bare identifier.
    pub type_path: bool,
    /// The kernel crate has `#[kunit_tests]` (in its prelude): Rust KUnit suites, from 6.15.
    pub kunit_tests: bool,
}

impl Dialect {
    pub fn for_version(version: KernelVersion) -> Dialect {
        let at_least = |major, minor| version >= KernelVersion(major, minor, 0);
        Dialect {
            version,
            authors_list: at_least(6, 14),
            native_params: at_least(6, 17),
            imports_ns: at_least(6, 13),
            type_path: at_least(7, 0),
            kunit_tests: at_least(6, 15),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_releases() {
        assert_eq!(
            KernelVersion::parse("7.2.13"),
            Some(KernelVersion(7, 2, 13))
        );
        assert_eq!(
            KernelVersion::parse("6.12.117-rc1"),
            Some(KernelVersion(6, 12, 117))
        );
        assert_eq!(KernelVersion::parse("7.2"), Some(KernelVersion(7, 2, 0)));
        assert_eq!(
            KernelVersion::parse(" 7.3.0+ "),
            Some(KernelVersion(7, 3, 0))
        );
        assert_eq!(KernelVersion::parse("seven"), None);
        assert_eq!(KernelVersion::parse("7"), None);
        assert_eq!(KernelVersion::parse(""), None);
    }

    #[test]
    fn switches_on_version() {
        let old = Dialect::for_version(KernelVersion(6, 12, 117));
        assert!(!old.authors_list && !old.native_params && !old.imports_ns && !old.type_path);
        assert!(!old.kunit_tests);
        let new = Dialect::for_version(KernelVersion(7, 2, 13));
        assert!(new.authors_list && new.native_params && new.imports_ns && new.type_path);
        assert!(new.kunit_tests);
        assert!(Dialect::for_version(KernelVersion(6, 14, 0)).authors_list);
        assert!(!Dialect::for_version(KernelVersion(6, 16, 9)).native_params);
    }
}
