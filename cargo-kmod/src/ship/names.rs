//! The strings a package or an installed tree is made of, checked before anything is written.
//!
//! A `.ko`'s `.modinfo` is input, not a trusted name: `name=../../etc/x` would become a path,
//! `version=1.0"; rm -rf /; "` a line of `dkms.conf` (which dkms sources with the shell, as
//! root, on the device), `author=x\nDepends: evil` a second field of a Debian `control` file.
//! The rule, by what a string becomes:
//!
//! - **Identifiers are refused** unless they match a narrow character set, because they end up
//!   in file names, paths, Debian fields and shell words all at once: the module name
//!   ([`module_name`]), the package name and version ([`package_name`], [`package_version`]),
//!   the kernel release ([`release`]) and the install directory ([`install_dir`]). None of the
//!   allowed characters is special to the shell inside double quotes, to make, or to a Debian
//!   `control` file, and no component can be `.` or `..`.
//! - **Free text is escaped**: the author and description only reach the `Maintainer:` and
//!   `Description:` fields of a `.deb`, where [`control_text`] turns every control character
//!   (a newline would start a new field) into a space.
//!
//! Errors name the key and the file the value came from, with the value escaped so that the
//! message stays on one line: ``error: `.modinfo` `name=` of `evil.ko` is `../../x`: not a
//! kernel module name (letters, digits and `_`, at most 55 bytes)``.

use anyhow::Result;

use crate::ko::KoFile;
use crate::text::escape;

/// `MODULE_NAME_LEN - 1` (`include/linux/module.h`: `64 - sizeof(unsigned long)`, minus the
/// NUL) for a 64-bit module; 59 for a 32-bit one.
pub fn max_module_name_len(class: u8) -> usize {
    if class == 32 {
        59
    } else {
        55
    }
}

/// Longest package name or version accepted.
pub const MAX_PACKAGE_WORD: usize = 128;

fn refuse(origin: &str, value: &str, why: &str, hint: Option<&str>) -> anyhow::Error {
    let e = crate::error::UserError::new(format!("{origin} is `{}`: {why}", escape(value)));
    match hint {
        Some(h) => e.with_hint(h).into(),
        None => e.into(),
    }
}

/// The module's `name=`, when it can be a file name: what kbuild writes there
/// (`KBUILD_MODNAME`: letters, digits and `_`, at most `MODULE_NAME_LEN - 1` bytes).
pub fn module_name(ko: &KoFile) -> Result<&str> {
    let name = ko.module.name.as_str();
    let max = max_module_name_len(ko.module.class);
    let ok = !name.is_empty()
        && name.len() <= max
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !ok {
        return Err(refuse(
            &format!("`.modinfo` `name=` of `{}`", ko.path.display()),
            name,
            &format!("not a kernel module name (letters, digits and `_`, at most {max} bytes)"),
            None,
        ));
    }
    Ok(name)
}

/// A word of a package (name or version): starts with a letter or digit, then letters,
/// digits and `extra`.
pub(crate) fn is_word(s: &str, extra: &str) -> bool {
    s.len() <= MAX_PACKAGE_WORD
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || extra.contains(c))
}

/// A package name (`--name`, the cargo package, or the module's name): it becomes file names,
/// the Debian `Package:` and dkms `PACKAGE_NAME`.
pub fn package_name(value: &str, origin: &str) -> Result<()> {
    if !is_word(value, "._+-") {
        return Err(refuse(
            origin,
            value,
            &format!(
                "not a package name (letters, digits and `._+-`, starting with a letter or digit, at most {MAX_PACKAGE_WORD} bytes)"
            ),
            Some("pass `--name NAME` to choose the package name"),
        ));
    }
    Ok(())
}

/// A package version (`--pkg-version`, the cargo package's version, or `.modinfo`
/// `version=`): it becomes file names, the Debian `Version:` and dkms `PACKAGE_VERSION`.
/// Every semver version (`1.2.3-rc.1+build.5`) passes; `_` and `:` do not (they separate the
/// fields of a `.deb` file name and a Debian epoch).
pub fn package_version(value: &str, origin: &str) -> Result<()> {
    if !is_word(value, ".+~-") {
        return Err(refuse(
            origin,
            value,
            &format!(
                "not a package version (letters, digits and `.+~-`, starting with a letter or digit, at most {MAX_PACKAGE_WORD} bytes)"
            ),
            Some("pass `--pkg-version VERSION` to choose the package version"),
        ));
    }
    Ok(())
}

/// The kernel release (`include/config/kernel.release` of the tree): it names
/// `lib/modules/<release>/` and is an argument of `depmod` in a `.deb`'s `postinst`.
pub fn release(value: &str, origin: &str) -> Result<()> {
    if !is_word(value, "._+~-") {
        return Err(refuse(
            origin,
            value,
            "cannot name a directory under `lib/modules/` (letters, digits and `._+~-`)",
            None,
        ));
    }
    Ok(())
}

/// `--dir` (`INSTALL_MOD_DIR`): a relative path below `lib/modules/<release>/`, each component
/// letters, digits and `._+-`, none of them `.` or `..`. Leading and trailing `/` are
/// ignored, as [`crate::ship::module_dir`] does; empty means the release directory itself.
pub fn install_dir(value: &str) -> Result<()> {
    let trimmed = value.trim_matches('/');
    let ok = trimmed.is_empty()
        || trimmed.split('/').all(|c| {
            !c.is_empty()
                && c != "."
                && c != ".."
                && c.chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || "._+-".contains(ch))
        });
    if !ok {
        return Err(refuse(
            "`--dir` (`INSTALL_MOD_DIR`)",
            value,
            "not a directory below `lib/modules/<release>/` (components of letters, digits and `._+-`, no `.` or `..`)",
            None,
        ));
    }
    Ok(())
}

/// Free text for a one-line Debian `control` field: every control character (and every
/// character [`crate::text::escape`] escapes) becomes a space, runs of spaces collapse, the
/// ends are trimmed. `None` when nothing is left.
pub fn control_text(value: &str) -> Option<String> {
    let spaced: String = value
        .chars()
        .map(|c| if crate::text::needs_escape(c) { ' ' } else { c })
        .collect();
    let out = spaced.split_whitespace().collect::<Vec<_>>().join(" ");
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ko(name: &str) -> KoFile {
        let bytes = std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../fuzz/corpus/ko/x86_64-hello-unsigned.ko"),
        )
        .unwrap();
        let mut module = crate::ko::parse(&bytes).unwrap();
        module.name = name.into();
        KoFile {
            path: "evil.ko".into(),
            compression: crate::ko::Compression::None,
            bytes,
            module,
        }
    }

    fn err(r: Result<impl std::fmt::Debug>) -> String {
        let e = r.unwrap_err();
        let mut s = e.to_string();
        if let Some(h) = crate::error::user_error(&e).and_then(|u| u.hint.clone()) {
            s.push_str(&format!(" [help: {h}]"));
        }
        s
    }

    #[test]
    fn module_names() {
        assert_eq!(module_name(&ko("hello_2")).unwrap(), "hello_2");
        assert_eq!(module_name(&ko(&"a".repeat(55))).unwrap().len(), 55);
        for bad in [
            "",
            "../../x",
            "/tmp/x",
            "a-b",
            "a b",
            "x\n",
            &"a".repeat(56),
        ] {
            assert!(module_name(&ko(bad)).is_err(), "{bad:?}");
        }
        assert_eq!(
            err(module_name(&ko("../x\ny"))),
            "`.modinfo` `name=` of `evil.ko` is `../x\\ny`: not a kernel module name (letters, digits and `_`, at most 55 bytes)"
        );
    }

    #[test]
    fn versions_and_names() {
        for good in ["0.1.0", "1.2.3-rc.1+build.5", "2.6.0-k", "1~beta", "v3"] {
            package_version(good, "v").unwrap();
        }
        for bad in [
            "",
            "-1",
            ".1",
            "1.0 beta",
            "1.0\nDepends: x",
            "1\"; rm -rf /; \"",
            "$(id)",
            "`id`",
            "1_0",
            "1:0",
            "1/0",
            &"1".repeat(129),
        ] {
            assert!(package_version(bad, "v").is_err(), "{bad:?}");
        }
        assert_eq!(
            err(package_version("1.0\n$(reboot)", "`.modinfo` `version=` of `x.ko`")),
            "`.modinfo` `version=` of `x.ko` is `1.0\\n$(reboot)`: not a package version (letters, digits and `.+~-`, starting with a letter or digit, at most 128 bytes) [help: pass `--pkg-version VERSION` to choose the package version]"
        );
        package_name("hello-world_2", "n").unwrap();
        for bad in ["../x", "a b", "-x", "a;b", "a$b"] {
            assert!(package_name(bad, "n").is_err(), "{bad:?}");
        }
        release("7.2.13", "r").unwrap();
        release("6.1.0-13-amd64", "r").unwrap();
        for bad in ["..", "7.2/../../x", "7 2", "7;2", ""] {
            assert!(release(bad, "r").is_err(), "{bad:?}");
        }
    }

    #[test]
    fn install_dirs() {
        for good in ["updates", "/extra/kmod/", "", "/", "a.b/c+d-e"] {
            install_dir(good).unwrap();
        }
        for bad in [
            "..",
            "../..",
            "updates/../../x",
            "a//b",
            "./x",
            "a b",
            "a\nb",
            "$x",
        ] {
            assert!(install_dir(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn control_text_is_one_line() {
        assert_eq!(
            control_text("Jane <j@x>\nDepends: evil\r\n\tPre-Depends: x").unwrap(),
            "Jane <j@x> Depends: evil Pre-Depends: x"
        );
        assert_eq!(control_text("\x1b[31m"), Some("[31m".into()));
        assert_eq!(control_text(" \n\t "), None);
    }
}
