//! `cargo kmod export`'s stage: a module package in its in-tree form, as plain data.
//!
//! [`plan`] takes a [`ModuleSpec`] and a kernel source tree and returns every file the
//! module becomes under its directory of the tree (the Rust and C sources, rewritten by
//! [`rewrite`], its `Kconfig` and `Makefile`) and the lines the parent directory's
//! `Kconfig` and `Makefile` get. What cannot go upstream is refused with one line each:
//! crates.io and path dependencies, bindgen `bindings`, cargo features, unstable features
//! outside the tree's `rust_allowed_features`, a module name or Kconfig symbol the tree
//! already has, a path outside the tree. Nothing here writes: `ops::export` does, with
//! its record of what it wrote.

pub mod patch;
pub mod rewrite;

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result};

use crate::kernel::Version;
use crate::manifest::ModuleSpec;
use rewrite::{ModuleFields, Rewrite};

/// The record of an export, in the exported directory (a dotfile: the kernel's
/// `.gitignore` ignores it, so it stays out of `git status` and of patches).
pub const RECORD: &str = ".cargo-kmod-export.json";

/// What to export and where.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub module: &'a ModuleSpec,
    /// The kernel source tree (`--into`).
    pub srctree: &'a Path,
    /// `--path`, relative to the tree.
    pub path: Option<&'a str>,
    /// `--symbol`, with or without `CONFIG_`.
    pub symbol: Option<&'a str>,
}

/// A line added to a parent directory's `Kconfig` or `Makefile`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParentEdit {
    /// Relative to the tree (`drivers/misc/Kconfig`).
    pub file: String,
    /// The line (without newline).
    pub line: String,
    /// The file as it is now.
    pub current: String,
    /// The file without the module's line (what a patch starts from).
    pub base: String,
    /// The file with it.
    pub after: String,
}

/// A module in its in-tree form.
#[derive(Debug, Clone)]
pub struct Export {
    pub name: String,
    /// The Kconfig symbol, without `CONFIG_`.
    pub symbol: String,
    /// Its KUnit symbol (`<SYMBOL>_KUNIT_TEST`), without `CONFIG_`.
    pub test_symbol: String,
    /// The module's directory, relative to the tree (`drivers/misc/hello`).
    pub dir: String,
    /// How the default directory was chosen (`a PCI driver`), `None` with `--path`.
    pub kind: Option<&'static str>,
    pub version: Version,
    /// Every file of the directory, by its path relative to the directory.
    pub files: BTreeMap<String, String>,
    pub parents: Vec<ParentEdit>,
}

/// The driver kinds whose default directory is not `drivers/misc`: a text the module's
/// sources contain, what it is, and where such drivers live.
const KINDS: &[(&str, &str, &str)] = &[
    ("pci::Driver", "a PCI driver", "drivers/misc"),
    ("i2c::Driver", "an I2C driver", "drivers/i2c"),
    ("usb::Driver", "a USB driver", "drivers/usb/misc"),
    ("phy::Driver", "a PHY driver", "drivers/net/phy"),
    ("platform::Driver", "a platform driver", "drivers/misc"),
    ("miscdevice", "a misc device", "drivers/misc"),
];

/// Plan the export of `req.module` into `req.srctree`.
pub fn plan(req: &Request<'_>) -> Result<Export> {
    let m = req.module;
    let src = req.srctree;
    let version = kernel_source_version(src)?;
    refuse_manifest(m)?;

    let symbol = symbol_for(&m.name, req.symbol)?;
    let test_symbol = format!("{symbol}_KUNIT_TEST");
    let dialect = cargo_kmod_templates::macros::dialect::Dialect::for_version(
        cargo_kmod_templates::macros::dialect::KernelVersion(version.0, version.1, version.2),
    );
    let license = cargo_kmod_templates::macros::license::kernel_license(
        m.license.as_deref().unwrap_or_default(),
    )
    .map_err(|e| crate::error::UserError::new(format!("{}: {e}", m.manifest_path.display())))?;
    let fields = ModuleFields {
        name: m.name.clone(),
        authors_list: dialect.authors_list,
        authors: m.authors.clone(),
        description: m.description.clone().unwrap_or_default(),
        license: license.to_string(),
        native_params: dialect.native_params,
        imports_ns: dialect.imports_ns,
        type_path: dialect.type_path,
        version: version.to_string(),
    };

    let composite = !m.c_sources.is_empty();
    let root_name = if composite {
        format!("{}_main.rs", m.name)
    } else {
        format!("{}.rs", m.name)
    };
    let config_test = format!("CONFIG_{test_symbol}");
    let rust = rust_files(m, &fields, &config_test, &root_name)?;
    let allowed = allowed_features(src);
    for (file, feature) in rust
        .iter()
        .flat_map(|(f, r)| r.1.iter().map(move |x| (f, x)))
    {
        if let Some(allowed) = &allowed {
            if !allowed.contains(feature) {
                crate::bail_user!(
                    "{}: unstable feature `{}` is not in the tree's `rust_allowed_features`", file, feature;
                    hint = "in-tree Rust may use only {}", allowed.join(", ")
                );
            }
        }
    }

    let all_text: String = rust.values().map(|(t, _)| t.as_str()).collect();
    let (kind, dir) = match req.path {
        Some(p) => (None, p.trim_end_matches('/').to_string()),
        None => {
            let (what, base) = KINDS
                .iter()
                .find(|(needle, _, _)| all_text.contains(needle))
                .map(|(_, what, base)| (*what, *base))
                .unwrap_or(("a module", "drivers/misc"));
            (Some(what), format!("{base}/{}", m.name))
        }
    };
    check_dir(src, &dir)?;
    // An earlier export's directory is this module's own: its symbols and object are not
    // clashes. Any other directory is the tree's.
    let earlier = src.join(&dir).join(RECORD).is_file();
    check_clashes(
        src,
        earlier.then_some(dir.as_str()),
        &m.name,
        &[&symbol, &test_symbol],
    )?;

    let mut files: BTreeMap<String, String> = BTreeMap::new();
    for (dest, (text, _)) in rust {
        files.insert(dest, text);
    }
    // C sources and the include directories' files, where the package has them (without a
    // leading `src/`).
    let mut c_objects = Vec::new();
    for c in &m.c_sources {
        let dest = package_relative(m, c)?;
        if !dest.ends_with(".c") {
            crate::bail_user!("C source `{}` does not end in `.c`", c.display());
        }
        c_objects.push(format!("{}.o", dest.trim_end_matches(".c")));
        let text =
            std::fs::read_to_string(c).with_context(|| format!("cannot read `{}`", c.display()))?;
        insert_new(&mut files, dest, text)?;
    }
    let mut include_flags = Vec::new();
    for d in &m.include_dirs {
        let dest = package_relative(m, d)?;
        include_flags.push(format!("-I $(src)/{dest}"));
        for f in walk_files(d)? {
            let rel = package_relative(m, &f)?;
            let text = std::fs::read_to_string(&f)
                .with_context(|| format!("cannot read `{}`", f.display()))?;
            insert_new(&mut files, rel, text)?;
        }
    }
    let kconfig = kconfig(m, &symbol, &test_symbol, &fields.description);
    insert_new(&mut files, "Kconfig".into(), kconfig)?;
    let mut ccflags = include_flags;
    ccflags.extend(flags(m, "ccflags", &m.ccflags)?);
    let rustflags = flags(m, "rustflags", &m.rustflags)?;
    let makefile = makefile(
        &m.name, &symbol, &root_name, &c_objects, &ccflags, &rustflags,
    );
    insert_new(&mut files, "Makefile".into(), makefile)?;

    let mut parents = parent_edits(src, &dir, &symbol)?;
    parents.extend(maintainers_edit(src, &dir, &m.name, &m.authors)?);
    Ok(Export {
        name: m.name.clone(),
        symbol,
        test_symbol,
        dir,
        kind,
        version,
        files,
        parents,
    })
}

fn insert_new(files: &mut BTreeMap<String, String>, dest: String, text: String) -> Result<()> {
    if files.contains_key(&dest) {
        crate::bail_user!(
            "two files of the module would both be `{}` in the tree",
            dest
        );
    }
    files.insert(dest, text);
    Ok(())
}

/// The version of a kernel source tree, which must be one.
fn kernel_source_version(src: &Path) -> Result<Version> {
    let v = crate::kernel::prepare::makefile_version(src);
    match v {
        Some(v) if src.join("Kconfig").is_file() && src.join("scripts").is_dir() => Ok(v),
        _ => crate::bail_user!(
            "`{}` is not a kernel source tree (no top-level `Makefile` with a version, `Kconfig` and `scripts/`)", src.display();
            hint = "pass the top directory of a Linux source tree to `--into`"
        ),
    }
}

/// What the manifest has that in-tree code cannot.
fn refuse_manifest(m: &ModuleSpec) -> Result<()> {
    let manifest = m.manifest_path.display();
    if !m.crate_deps.is_empty() {
        crate::bail_user!(
            "{}: `[dependencies]` {} cannot go upstream: in-tree code has no crates.io or path dependencies", manifest, quoted(&m.crate_deps);
            hint = "vendor what the module needs into its sources, or export without them"
        );
    }
    if !m.module_deps.is_empty() {
        crate::bail_user!(
            "{}: it depends on the workspace's module(s) {}: export each module and use their exported symbols", manifest, quoted(&m.module_deps)
        );
    }
    if let Some(b) = m.bindings.first() {
        crate::bail_user!(
            "{}: `bindings` (`{}`) has no in-tree form: kbuild runs bindgen only for the kernel's own `bindings` crate", manifest, b.header.display();
            hint = "declare the C functions in Rust (`extern \"C\"`), or add the header to `rust/bindings/bindings_helper.h` in the tree and use `kernel::bindings`"
        );
    }
    if !m.feature_objects.is_empty() {
        let names: Vec<String> = m.feature_objects.keys().cloned().collect();
        crate::bail_user!(
            "{}: per-feature objects and flags ({}) have no in-tree form: cargo features are not Kconfig symbols", manifest, quoted(&names)
        );
    }
    Ok(())
}

fn quoted(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The Kconfig symbol: `--symbol` (with or without `CONFIG_`) or the module name in capitals.
fn symbol_for(name: &str, given: Option<&str>) -> Result<String> {
    let s = match given {
        Some(g) => g.strip_prefix("CONFIG_").unwrap_or(g).to_string(),
        None => name.to_ascii_uppercase(),
    };
    if s.is_empty()
        || !s
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
    {
        crate::bail_user!(
            "`{}` is not a Kconfig symbol: use `A-Z`, `0-9` and `_`", crate::text::escape(given.unwrap_or(name));
            hint = "pass `--symbol CONFIG_NAME`"
        );
    }
    Ok(s)
}

/// The Rust files: the crate root and the files of its `mod name;` declarations, by their
/// destination (the root as `root_name`), rewritten, with their `#![feature]`s.
#[allow(clippy::type_complexity)]
fn rust_files(
    m: &ModuleSpec,
    fields: &ModuleFields,
    test_symbol: &str,
    root_name: &str,
) -> Result<BTreeMap<String, (String, Vec<String>)>> {
    let root = &m.crate_root;
    let base = root.parent().unwrap_or(Path::new(".")).to_path_buf();
    let mut out = BTreeMap::new();
    // The file that declares the module.
    let mut declared: Option<String> = None;
    // (file, the directory its `mod name;` declarations resolve in)
    let mut queue = vec![(root.clone(), base.clone(), root_name.to_string())];
    while let Some((file, dir, dest)) = queue.pop() {
        let shown = file
            .strip_prefix(&m.dir)
            .unwrap_or(&file)
            .display()
            .to_string();
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("cannot read `{}`", file.display()))?;
        let r = rewrite::rewrite(
            &text,
            &Rewrite {
                file: &shown,
                fields,
                test_symbol,
            },
        )?;
        if r.declares_module {
            if let Some(first) = &declared {
                crate::bail_user!(
                    "{}: a second module declaration (the first is in `{}`): a module is declared once",
                    shown,
                    first
                );
            }
            declared = Some(shown.clone());
        }
        for path in &r.mods {
            let mut d = dir.clone();
            for p in &path[..path.len() - 1] {
                d.push(p);
            }
            let last = &path[path.len() - 1];
            let flat = d.join(format!("{last}.rs"));
            let nested = d.join(last).join("mod.rs");
            let (found, child_dir) = if flat.is_file() {
                (flat, d.join(last))
            } else if nested.is_file() {
                (nested, d.join(last))
            } else {
                crate::bail_user!(
                    "{}: `mod {};` has no file (`{}` or `{}`)",
                    shown,
                    last,
                    flat.display(),
                    nested.display()
                );
            };
            let rel = found
                .strip_prefix(&base)
                .map(|p| p.to_string_lossy().replace('\\', "/"))
                .unwrap_or_default();
            if rel.is_empty() || rel == root_name {
                crate::bail_user!(
                    "{}: module file `{}` would take the crate root's in-tree name `{}`",
                    shown,
                    found.display(),
                    root_name
                );
            }
            queue.push((found, child_dir, rel));
        }
        if out.insert(dest.clone(), (r.text, r.features)).is_some() {
            crate::bail_user!("{}: `{}` is declared twice as a module file", shown, dest);
        }
    }
    if declared.is_none() {
        crate::bail_user!(
            "{}: no module declaration: neither `kmod_macros::module!` (which export rewrites) nor the kernel's `module!` or `module_<bus>_driver!` (kept as they are)", root.display();
            hint = "declare the module with `kmod_macros::module! {{ type: .. }}` (docs/macros.md)"
        );
    }
    Ok(out)
}

/// The tree's `rust_allowed_features` (`scripts/Makefile.build`), when it says.
fn allowed_features(src: &Path) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(src.join("scripts/Makefile.build")).ok()?;
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("rust_allowed_features"))?;
    let value = line.split_once(":=").or_else(|| line.split_once('='))?.1;
    Some(
        value
            .split(',')
            .map(|f| f.trim().to_string())
            .filter(|f| !f.is_empty())
            .collect(),
    )
}

/// `path` (below the package) relative to the package, without a leading `src/`.
fn package_relative(m: &ModuleSpec, path: &Path) -> Result<String> {
    let rel = path.strip_prefix(&m.dir).map_err(|_| {
        crate::error::UserError::new(format!(
            "`{}` is outside the package `{}`: export copies only the package's files",
            path.display(),
            m.dir.display()
        ))
    })?;
    let rel = rel.strip_prefix("src").unwrap_or(rel);
    if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
        crate::bail_user!("`{}` is not a plain path below the package", path.display());
    }
    Ok(rel.to_string_lossy().replace('\\', "/"))
}

fn walk_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in crate::fsutil::sorted_entries(&d)? {
            let ft = e.file_type()?;
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() {
                out.push(e.path());
            }
        }
    }
    out.sort();
    Ok(out)
}

/// `ccflags`/`rustflags` as Makefile words: plain flags only.
fn flags(m: &ModuleSpec, key: &str, flags: &[String]) -> Result<Vec<String>> {
    for f in flags {
        if f.is_empty()
            || f.chars()
                .any(|c| c.is_whitespace() || "$#\\'\"`".contains(c))
        {
            crate::bail_user!(
                "{}: `{}` flag `{}` is not a plain word, which a Makefile line needs",
                m.manifest_path.display(),
                key,
                crate::text::escape(f)
            );
        }
    }
    Ok(flags.to_vec())
}

/// Refuse a `--path` that is not a plain relative path inside the tree, below a directory
/// with a `Kconfig` and a `Makefile`.
fn check_dir(src: &Path, dir: &str) -> Result<()> {
    let p = Path::new(dir);
    let plain = !dir.is_empty()
        && p.components().all(|c| match c {
            Component::Normal(s) => s.to_str().is_some_and(|s| {
                !s.starts_with('.')
                    && s.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_-.+".contains(c))
            }),
            _ => false,
        });
    if !plain {
        crate::bail_user!(
            "path `{}` is not a directory inside the kernel tree", crate::text::escape(dir);
            hint = "pass `--path` relative to the tree's top, e.g. `drivers/misc/NAME`"
        );
    }
    let parent = p.parent().filter(|p| !p.as_os_str().is_empty()).ok_or_else(|| {
        crate::error::UserError::new(format!(
            "path `{dir}` is the tree's top level: a module goes below a directory such as `drivers/misc`"
        ))
    })?;
    let top = src
        .canonicalize()
        .with_context(|| format!("cannot read `{}`", src.display()))?;
    // An existing directory (the parent, or the module's from an earlier export) must stay
    // inside the tree once its links are followed.
    for d in [src.join(p), src.join(parent)] {
        if let Ok(real) = d.canonicalize() {
            if !real.starts_with(&top) {
                crate::bail_user!(
                    "path `{}` leads outside the kernel tree (to `{}`)",
                    dir,
                    real.display()
                );
            }
        }
    }
    for f in ["Kconfig", "Makefile"] {
        if !src.join(parent).join(f).is_file() {
            crate::bail_user!(
                "`{}/{}` does not exist: the module's directory must be below one that kbuild builds", parent.display(), f;
                hint = "choose `--path` below a directory with a `Kconfig` and a `Makefile`, e.g. `drivers/misc/NAME`"
            );
        }
    }
    Ok(())
}

/// Refuse a module name or Kconfig symbols the tree already has (outside `own`, the
/// directory of an earlier export of this module).
fn check_clashes(src: &Path, own: Option<&str>, name: &str, symbols: &[&str]) -> Result<()> {
    let own = own.map(|d| src.join(d));
    let object = format!("{name}.o");
    let mut stack = vec![src.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            let Ok(ft) = e.file_type() else { continue };
            let fname = e.file_name();
            let fname = fname.to_string_lossy();
            if ft.is_dir() {
                if !fname.starts_with('.') && own.as_ref() != Some(&path) {
                    stack.push(path);
                }
                continue;
            }
            let kconfig = fname.starts_with("Kconfig");
            let make = fname == "Makefile" || fname == "Kbuild";
            if !ft.is_file() || !(kconfig || make) {
                continue;
            }
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            let shown = path.strip_prefix(src).unwrap_or(&path).display();
            for line in text.lines() {
                let line = line.trim();
                if kconfig {
                    let mut w = line.split_whitespace();
                    if let (Some("config" | "menuconfig"), Some(sym)) = (w.next(), w.next()) {
                        if symbols.contains(&sym) {
                            crate::bail_user!(
                                "Kconfig symbol `CONFIG_{}` is already defined in `{}`", sym, shown;
                                hint = "choose another with `--symbol CONFIG_NAME`"
                            );
                        }
                    }
                } else if line.starts_with("obj-") {
                    if let Some((_, objs)) = line.split_once('=') {
                        if objs.split_whitespace().any(|o| o == object) {
                            crate::bail_user!(
                                "module name `{}` is taken in the tree: `{}` builds `{}`", name, shown, object;
                                hint = "rename the module (`name` in `[package.metadata.kmod]`) before exporting"
                            );
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

/// The module's `Kconfig`: the tristate symbol and its KUnit symbol.
fn kconfig(m: &ModuleSpec, symbol: &str, test_symbol: &str, description: &str) -> String {
    let prompt = if description.is_empty() {
        format!("{} driver", m.name)
    } else {
        description.trim_end_matches('.').to_string()
    };
    let mut depends = vec!["RUST".to_string()];
    for (sym, value) in &m.kernel_config {
        depends.push(match value.as_str() {
            "y" | "m" => sym.clone(),
            "n" => format!("!{sym}"),
            v if v.parse::<i64>().is_ok() || v.starts_with("0x") => format!("{sym} = {v}"),
            v => format!("{sym} = \"{}\"", v.replace(['"', '\\'], "")),
        });
    }
    let mut help = String::new();
    if !description.is_empty() {
        help += &wrap(&format!("{}.", description.trim_end_matches('.')), "\t  ");
        help += "\n";
    }
    help += &wrap(
        &format!(
            "The driver is written in Rust and needs a kernel with Rust support (CONFIG_RUST). Say Y here to build it into the kernel. To compile this driver as a module, choose M here: the module will be called {}.",
            m.name
        ),
        "\t  ",
    );
    let mut out = String::from("# SPDX-License-Identifier: GPL-2.0\n\n");
    out += &format!(
        "config {symbol}\n\ttristate \"{}\"\n",
        prompt.replace('"', "'")
    );
    for d in &depends {
        out += &format!("\tdepends on {d}\n");
    }
    out += &format!("\thelp\n{help}\n");
    out += &format!(
        "config {test_symbol}\n\tbool \"KUnit tests for {name}\" if !KUNIT_ALL_TESTS\n\tdepends on {symbol} && KUNIT && (KUNIT=y || {symbol}=m)\n\tdefault KUNIT_ALL_TESTS\n\thelp\n{}",
        wrap(
            &format!(
                "Builds the KUnit tests of {name} into the driver: the suite runs when the driver is loaded, or at boot when it is built in. Only useful for kernel developers running tests. If unsure, say N.",
                name = m.name
            ),
            "\t  "
        ),
        name = m.name
    );
    out
}

/// `text` wrapped at 72 columns (a tab counted as 8), each line with `indent`.
fn wrap(text: &str, indent: &str) -> String {
    wrap_lines(text, 72 - (indent.len() - 1 + 8))
        .iter()
        .map(|l| format!("{indent}{l}\n"))
        .collect()
}

/// The lines of `text` wrapped at `width` columns, words kept whole (help texts, and the
/// patch's commit message).
pub fn wrap_lines(text: &str, width: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            out.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        out.push(line);
    }
    out
}

/// The module's `Makefile`: one object, or the Rust object and the C objects.
fn makefile(
    name: &str,
    symbol: &str,
    root_name: &str,
    c_objects: &[String],
    ccflags: &[String],
    rustflags: &[String],
) -> String {
    let mut out = String::from("# SPDX-License-Identifier: GPL-2.0\n\n");
    out += &format!("obj-$(CONFIG_{symbol}) += {name}.o\n");
    if !c_objects.is_empty() {
        let rust_object = format!("{}.o", root_name.trim_end_matches(".rs"));
        out += &format!("{name}-y := {rust_object} {}\n", c_objects.join(" "));
    }
    if !ccflags.is_empty() {
        out += &format!("\nccflags-y += {}\n", ccflags.join(" "));
    }
    if !rustflags.is_empty() {
        out += &format!("rustflags-y += {}\n", rustflags.join(" "));
    }
    out
}

/// The lines the parent directory's `Kconfig` and `Makefile` get: `source` before the
/// parent's closing `endmenu` (or at the end), `obj-$(CONFIG_X) += dir/` at the end. A line
/// already there is left as it is; an `obj-` line for the directory with another symbol
/// (an earlier export's) is replaced.
fn parent_edits(src: &Path, dir: &str, symbol: &str) -> Result<Vec<ParentEdit>> {
    let p = Path::new(dir);
    let parent = p.parent().unwrap_or(Path::new(""));
    let leaf = p
        .file_name()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_default();
    let kconfig_rel = format!("{}/Kconfig", parent.display());
    let make_rel = format!("{}/Makefile", parent.display());
    let read = |rel: &str| {
        std::fs::read_to_string(src.join(rel)).with_context(|| format!("cannot read `{rel}`"))
    };

    let source_line = format!("source \"{dir}/Kconfig\"");
    let current = read(&kconfig_rel)?;
    let base = without(&current, |l| l.trim() == source_line);
    let after = if current.lines().any(|l| l.trim() == source_line) {
        current.clone()
    } else {
        let mut lines: Vec<&str> = base.lines().collect();
        let last = lines
            .iter()
            .rposition(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'));
        match last {
            Some(i) if lines[i].trim() == "endmenu" => lines.insert(i, &source_line),
            _ => lines.push(&source_line),
        }
        lines.join("\n") + "\n"
    };
    let kconfig = ParentEdit {
        file: kconfig_rel,
        line: source_line,
        current,
        base,
        after,
    };

    let obj_line = format!("obj-$(CONFIG_{symbol})\t+= {leaf}/");
    let current = read(&make_rel)?;
    let is_ours = |l: &str| {
        l.trim_start().starts_with("obj-")
            && l.split_once("+=").is_some_and(|(_, o)| {
                o.split_whitespace().collect::<Vec<_>>() == [format!("{leaf}/")]
            })
    };
    let base = without(&current, is_ours);
    let after = if current.lines().any(|l| l == obj_line) {
        current.clone()
    } else if current.lines().any(is_ours) {
        current
            .lines()
            .map(|l| if is_ours(l) { obj_line.as_str() } else { l })
            .collect::<Vec<_>>()
            .join("\n")
            + "\n"
    } else {
        let mut text = base.clone();
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text + &obj_line + "\n"
    };
    let make = ParentEdit {
        file: make_rel,
        line: obj_line,
        current,
        base,
        after,
    };
    Ok(vec![kconfig, make])
}

/// The module's entry in `MAINTAINERS` (`<NAME> RUST DRIVER`, its authors with an email as
/// `M:`, the directory as `F:`), in the list's alphabetical order; `None` when the tree has
/// no `MAINTAINERS` or no author has an email. An entry with the directory already there
/// is left as it is.
fn maintainers_edit(
    src: &Path,
    dir: &str,
    name: &str,
    authors: &[String],
) -> Result<Option<ParentEdit>> {
    let file = "MAINTAINERS";
    let Ok(current) = std::fs::read_to_string(src.join(file)) else {
        return Ok(None);
    };
    let people: Vec<&String> = authors
        .iter()
        .filter(|a| a.contains('@') && a.contains('<') && a.ends_with('>'))
        .collect();
    if people.is_empty() {
        return Ok(None);
    }
    let title = format!("{} RUST DRIVER", name.to_ascii_uppercase());
    let f_line = format!("F:\t{dir}/");
    let mut block = format!("{title}\n");
    for p in &people {
        block += &format!("M:\t{p}\n");
    }
    block += &format!("S:\tMaintained\n{f_line}\n");

    // Remove an entry this export wrote before (its title, up to the blank line).
    let lines: Vec<&str> = current.lines().collect();
    let mut base_lines: Vec<&str> = Vec::new();
    let mut i = 0;
    let mut had = false;
    while i < lines.len() {
        if lines[i] == title {
            let end = lines[i..]
                .iter()
                .position(|l| l.trim().is_empty())
                .map_or(lines.len(), |p| i + p);
            if lines[i..end].contains(&f_line.as_str()) {
                had = true;
                i = end + 1;
                continue;
            }
        }
        base_lines.push(lines[i]);
        i += 1;
    }
    let base = base_lines.join("\n") + "\n";
    if had {
        return Ok(Some(ParentEdit {
            file: file.into(),
            line: title,
            after: current.clone(),
            current,
            base,
        }));
    }
    // Titles follow a blank line below "Maintainers List"; ours goes before the first that
    // sorts after it.
    let start = base_lines
        .iter()
        .position(|l| l.trim() == "Maintainers List")
        .unwrap_or(0);
    // The list is sorted, mostly: the entry goes after the greatest title below it, before
    // the title that follows that one.
    let mut titles = Vec::new();
    for k in start + 1..base_lines.len() {
        let l = base_lines[k];
        let is_title = k > 0
            && base_lines[k - 1].trim().is_empty()
            && !l.trim().is_empty()
            && l.chars()
                .next()
                .is_some_and(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
            && !l.contains(":\t")
            && base_lines
                .get(k + 1)
                .is_some_and(|n| n.len() > 2 && &n[1..2] == ":");
        if is_title {
            titles.push(k);
        }
    }
    let below = titles
        .iter()
        .enumerate()
        .filter(|(_, &k)| base_lines[k] < title.as_str())
        .max_by_key(|(_, &k)| base_lines[k]);
    let at = match below {
        Some((n, _)) => titles.get(n + 1).copied(),
        None => titles.first().copied(),
    };
    let mut out: Vec<String> = base_lines.iter().map(|l| l.to_string()).collect();
    match at {
        Some(k) => out.insert(k, block.clone()),
        None => {
            out.push(String::new());
            out.push(block.trim_end().to_string());
        }
    }
    let after = out.join("\n") + "\n";
    Ok(Some(ParentEdit {
        file: file.into(),
        line: title,
        current,
        base,
        after,
    }))
}

/// `text` without the lines `drop` matches.
fn without(text: &str, drop: impl Fn(&str) -> bool) -> String {
    if !text.lines().any(&drop) {
        return text.to_string();
    }
    let mut out: String = text
        .lines()
        .filter(|l| !drop(l))
        .map(|l| format!("{l}\n"))
        .collect();
    if !text.ends_with('\n') {
        out.pop();
    }
    out
}

#[cfg(test)]
mod tests;
