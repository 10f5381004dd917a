// SPDX license expressions (Cargo's `[package].license`) mapped to the strings the kernel's
// `MODULE_LICENSE` understands.
//
// The kernel knows a fixed set of tags (`include/linux/license.h`,
// `license_is_gpl_compatible`); any other tag taints the kernel as proprietary and hides
// every `EXPORT_SYMBOL_GPL` symbol from the module. Rust modules always use GPL-only symbols,
// so a license outside that set is refused at compile time instead of failing at load.

/// Why a license expression cannot be a kernel module's license.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LicenseError {
    /// `license` is not set in Cargo.toml.
    Missing,
    /// The expression does not give the GPL v2 as an option.
    Proprietary(String),
    /// An expression this mapping does not understand (`AND`, unbalanced parentheses, ...).
    Unsupported(String),
}

impl std::fmt::Display for LicenseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const TAGS: &str = "use `GPL-2.0`, `GPL-2.0-or-later`, or a dual license such as \
                            `MIT OR GPL-2.0`, `BSD-3-Clause OR GPL-2.0`, `MPL-2.0 OR GPL-2.0`";
        match self {
            LicenseError::Missing => write!(
                f,
                "no `license` in `[package]` of Cargo.toml: a kernel module needs one; {TAGS}"
            ),
            LicenseError::Proprietary(spdx) => write!(
                f,
                "license `{spdx}` in Cargo.toml is proprietary to the kernel, but Rust modules \
                 use GPL-only symbols; {TAGS}"
            ),
            LicenseError::Unsupported(spdx) => write!(
                f,
                "cannot map license `{spdx}` in Cargo.toml to a kernel license string; {TAGS}"
            ),
        }
    }
}

/// The GPL family of one SPDX id, if it is one the kernel's GPL tags cover.
fn gpl_tag(id: &str) -> Option<&'static str> {
    match id {
        "GPL-2.0" | "GPL-2.0-only" => Some("GPL v2"),
        "GPL-2.0+" | "GPL-2.0-or-later" => Some("GPL"),
        _ => None,
    }
}

/// The kernel's `Dual X/GPL` family of a non-GPL SPDX id.
fn dual_family(id: &str) -> Option<&'static str> {
    if id == "MIT" || id == "X11" {
        Some("MIT")
    } else if id == "0BSD" || id.starts_with("BSD-") {
        Some("BSD")
    } else if id.starts_with("MPL-") {
        Some("MPL")
    } else {
        None
    }
}

/// Map an SPDX expression to the kernel's license string.
///
/// - `GPL-2.0`, `GPL-2.0-only` -> `GPL v2`; `GPL-2.0-or-later`, `GPL-2.0+` -> `GPL`;
/// - `X OR GPL-2.0` (either order, any GPL-2.0 variant) -> `Dual MIT/GPL`, `Dual BSD/GPL` or
///   `Dual MPL/GPL` when one of the alternatives is MIT, BSD or MPL (in that preference);
///   with only other alternatives (`Apache-2.0 OR GPL-2.0`) the module is offered under the
///   GPL v2, which is what it is tagged with;
/// - `WITH` exceptions are dropped (`GPL-2.0 WITH Linux-syscall-note` is still `GPL v2`);
/// - anything without a GPL-2.0 alternative is proprietary to the kernel: an error.
pub fn kernel_license(spdx: &str) -> Result<&'static str, LicenseError> {
    let trimmed = spdx.trim();
    if trimmed.is_empty() {
        return Err(LicenseError::Missing);
    }
    // Cargo also accepts the old `/` separator for OR.
    let flat = trimmed.replace('/', " OR ");
    let flat: String = flat.chars().filter(|c| *c != '(' && *c != ')').collect();
    if trimmed.matches('(').count() != trimmed.matches(')').count() {
        return Err(LicenseError::Unsupported(trimmed.to_string()));
    }
    let words: Vec<&str> = flat.split_whitespace().collect();
    if words.iter().any(|w| w.eq_ignore_ascii_case("AND")) {
        return Err(LicenseError::Unsupported(trimmed.to_string()));
    }
    // Split on OR, dropping `WITH exception` suffixes.
    let mut ids = Vec::new();
    let mut iter = words.iter().peekable();
    while let Some(w) = iter.next() {
        if w.eq_ignore_ascii_case("OR") {
            continue;
        }
        if w.eq_ignore_ascii_case("WITH") {
            iter.next();
            continue;
        }
        ids.push(*w);
    }
    let gpl =
        ids.iter()
            .filter_map(|id| gpl_tag(id))
            .min_by_key(|t| if *t == "GPL v2" { 0 } else { 1 });
    let Some(gpl) = gpl else {
        return Err(LicenseError::Proprietary(trimmed.to_string()));
    };
    if ids.len() == 1 || ids.iter().all(|id| gpl_tag(id).is_some()) {
        return Ok(gpl);
    }
    let families: Vec<&str> = ids.iter().filter_map(|id| dual_family(id)).collect();
    for (family, tag) in [
        ("MIT", "Dual MIT/GPL"),
        ("BSD", "Dual BSD/GPL"),
        ("MPL", "Dual MPL/GPL"),
    ] {
        if families.contains(&family) {
            return Ok(tag);
        }
    }
    Ok(gpl)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpl_ids() {
        assert_eq!(kernel_license("GPL-2.0"), Ok("GPL v2"));
        assert_eq!(kernel_license("GPL-2.0-only"), Ok("GPL v2"));
        assert_eq!(kernel_license("GPL-2.0-or-later"), Ok("GPL"));
        assert_eq!(kernel_license("GPL-2.0+"), Ok("GPL"));
        assert_eq!(
            kernel_license(" GPL-2.0 WITH Linux-syscall-note "),
            Ok("GPL v2")
        );
    }

    #[test]
    fn duals_in_either_order() {
        assert_eq!(kernel_license("MIT OR GPL-2.0"), Ok("Dual MIT/GPL"));
        assert_eq!(kernel_license("GPL-2.0-only OR MIT"), Ok("Dual MIT/GPL"));
        assert_eq!(
            kernel_license("(BSD-3-Clause OR GPL-2.0-or-later)"),
            Ok("Dual BSD/GPL")
        );
        assert_eq!(
            kernel_license("BSD-2-Clause OR GPL-2.0"),
            Ok("Dual BSD/GPL")
        );
        assert_eq!(kernel_license("MPL-2.0 OR GPL-2.0"), Ok("Dual MPL/GPL"));
        assert_eq!(kernel_license("MIT/GPL-2.0"), Ok("Dual MIT/GPL"));
        assert_eq!(
            kernel_license("Apache-2.0 OR MIT OR GPL-2.0"),
            Ok("Dual MIT/GPL")
        );
        assert_eq!(kernel_license("Apache-2.0 OR GPL-2.0"), Ok("GPL v2"));
        assert_eq!(kernel_license("GPL-2.0 OR GPL-2.0-or-later"), Ok("GPL v2"));
    }

    #[test]
    fn proprietary_and_unsupported() {
        assert_eq!(kernel_license(""), Err(LicenseError::Missing));
        assert_eq!(
            kernel_license("MIT OR Apache-2.0"),
            Err(LicenseError::Proprietary("MIT OR Apache-2.0".into()))
        );
        assert_eq!(
            kernel_license("GPL-3.0-only"),
            Err(LicenseError::Proprietary("GPL-3.0-only".into()))
        );
        assert_eq!(
            kernel_license("LGPL-2.1"),
            Err(LicenseError::Proprietary("LGPL-2.1".into()))
        );
        assert_eq!(
            kernel_license("GPL-2.0 AND MIT"),
            Err(LicenseError::Unsupported("GPL-2.0 AND MIT".into()))
        );
        let msg = kernel_license("MIT").unwrap_err().to_string();
        assert!(
            msg.starts_with("license `MIT` in Cargo.toml is proprietary to the kernel"),
            "{msg}"
        );
    }
}
