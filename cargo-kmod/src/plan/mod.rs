//! The build plan: what `cargo kmod build` generates under `target/kmod/<arch>/<tree>/` (the
//! tree's own directory) for one kbuild pass, before kbuild runs.
//!
//! ```text
//! target/kmod/<arch>/<release>-<tree key>/[test/]
//!   Kbuild                 obj-m := <pkg-a>/ <pkg-b>/   (one pass: shared symbols)
//!   Makefile               thin wrapper so plain `make` works by hand
//!   <package>/Kbuild       the module: exported cargo-like env, objects, flags, rules
//!   <package>/out/*.rs     bindgen output (`OUT_DIR`)
//! ```
//!
//! Sources are never copied: each object gets an explicit rule whose prerequisite is the
//! user's file, so rustc and the C compiler report diagnostics against it.

pub mod bindings;
pub mod macros;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::kernel::KernelTree;
use crate::manifest::ModuleSpec;

const MODULE_KBUILD: &str = cargo_kmod_templates::kbuild::MODULE_KBUILD;
const TOP_KBUILD: &str = cargo_kmod_templates::kbuild::TOP_KBUILD;
const MAKEFILE: &str = cargo_kmod_templates::kbuild::MAKEFILE;

/// What a plan is made from.
#[derive(Debug, Clone)]
pub struct PlanInput<'a> {
    pub modules: Vec<&'a ModuleSpec>,
    pub tree: &'a KernelTree,
    /// The tree's build directory (`target/kmod/<arch>/<tree>`), or its `test/`.
    pub base: PathBuf,
    pub test: bool,
    /// `--release`: no debug assertions or overflow checks, `-DNDEBUG`.
    pub release: bool,
    /// Enabled cargo features per package.
    pub features: BTreeMap<String, BTreeSet<String>>,
    /// `libkmod_macros.so` built for this tree, passed as `--extern kmod_macros=`.
    pub macros: Option<PathBuf>,
    /// `KBUILD_EXTRA_SYMBOLS` (the manifest's `extra-symbols` plus the environment's).
    pub extra_symbols: Vec<PathBuf>,
    /// Crates each package links ([`crate::deps`]), by package; absent for most modules.
    pub deps: BTreeMap<String, crate::deps::ModuleDeps>,
}

/// One module of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedModule {
    pub name: String,
    pub package: String,
    /// `base/<package>`: where its Kbuild is and kbuild writes its objects and `.ko`.
    pub dir: PathBuf,
    /// `OUT_DIR` for generated bindings.
    pub out_dir: PathBuf,
    /// Where kbuild leaves the `.ko`.
    pub built_ko: PathBuf,
    /// The object rustc writes for the crate (`<crate>_rs.o`, or `<module>.o` when the
    /// module is its crate alone).
    pub rust_object: String,
    /// The kbuild goal (relative to the plan's base) that type-checks the crate with the
    /// object's own rustc command, metadata only (`cargo kmod check`, `clippy`).
    pub check_goal: String,
    /// The metadata file that goal writes.
    pub check_metadata: PathBuf,
}

/// The generated files (path, contents) and the modules they describe.
#[derive(Debug, Clone)]
pub struct Plan {
    pub base: PathBuf,
    pub files: Vec<(PathBuf, String)>,
    pub modules: Vec<PlannedModule>,
    /// `make` arguments after `-C KDIR M=base`.
    pub make_args: Vec<String>,
}

#[derive(Serialize)]
struct CObject {
    object: String,
    source: String,
}

/// The right side of `VAR := ...` such that make expands it to exactly `value`: `$` doubled,
/// `#` and newlines through the helper variables the generated files define (`kmod_hash`,
/// `kmod_newline`), and leading or trailing whitespace or a trailing backslash guarded by
/// `$(kmod_empty)` so make neither strips it nor reads a line continuation.
pub fn make_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 8);
    if value.starts_with(char::is_whitespace) {
        out.push_str("$(kmod_empty)");
    }
    for c in value.chars() {
        match c {
            '$' => out.push_str("$$"),
            '#' => out.push_str("$(kmod_hash)"),
            '\n' => out.push_str("$(kmod_newline)"),
            c => out.push(c),
        }
    }
    if value.ends_with(|c: char| c == '\\' || c.is_whitespace()) {
        out.push_str("$(kmod_empty)");
    }
    out
}

/// The helper variables [`make_value`] refers to, for the top of every generated file.
pub const MAKE_HELPERS: &str = "kmod_empty :=\nkmod_hash := \\#\ndefine kmod_newline\n\n\nendef\n";

pub use crate::process::shell_word;

/// The `make` argument by which the check goal of a module's Kbuild gets extra rustc flags
/// after kbuild's (`--error-format=json`, clippy's arguments), each exactly one argument of
/// rustc. `what` names their origin; control characters are refused, as in manifest flags.
pub fn check_flags_arg(flags: &[String], what: &str) -> Result<String> {
    let mut words = Vec::new();
    for f in flags {
        if let Some(c) = f.chars().find(|c| c.is_control()) {
            crate::bail_user!(
                "{} has a flag with the control character {:?}: `{}`", what, c, f.escape_debug();
                hint = "pass each flag on one line, without control characters"
            );
        }
        words.push(make_value(&shell_word(f)));
    }
    Ok(format!("KMOD_CHECK_FLAGS={}", words.join(" ")))
}

/// A compiler flag from the manifest (`key` names where it came from): exactly one argument
/// on the compiler's command line, whatever it contains. Control characters are refused:
/// kbuild records command lines one per line in its `.cmd` files.
fn flag(value: &str, key: &str, manifest: &Path) -> Result<String> {
    if let Some(c) = value.chars().find(|c| c.is_control()) {
        crate::bail_user!(
            "`{}` in `{}` has a flag with the control character {:?}: `{}`", key, manifest.display(), c, value.escape_debug();
            hint = "write the flag on one line, without control characters"
        );
    }
    Ok(make_value(&shell_word(value)))
}

/// A value for a cargo-like environment variable: newlines are kept (a multi-line
/// `description`), a Windows line ending becomes a newline, other control characters are
/// refused.
fn env_value(key: &str, value: &str, manifest: &Path) -> Result<String> {
    let value = value.replace("\r\n", "\n");
    if let Some(c) = value
        .chars()
        .find(|c| c.is_control() && *c != '\n' && *c != '\t')
    {
        crate::bail_user!(
            "the value for `{}` from `{}` has the control character {:?}", key, manifest.display(), c;
            hint = "remove it from the manifest"
        );
    }
    Ok(make_value(&value))
}

/// A path kbuild gets as a prerequisite (or in a flag): make and kbuild cannot take
/// whitespace, `:`, `#`, `$`, wildcards, quotes, `;` or backslashes there.
fn make_path(path: &Path, what: &str, manifest: &Path) -> Result<String> {
    let s = path.display().to_string();
    let bad = |c: char| c.is_whitespace() || c.is_control() || ":#$;*?[]\\'\"%|&<>()`=".contains(c);
    if let Some(c) = s.chars().find(|c| bad(*c)) {
        crate::bail_user!(
            "{} `{}` (from `{}`) has {:?} in its path, which kbuild cannot handle", what, s.escape_debug(), manifest.display(), c;
            hint = "move or rename it"
        );
    }
    Ok(s)
}

/// Text for a `#` comment line: one line, nothing make would read.
fn comment(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

impl ModuleSpec {
    /// The cargo-like environment the generated Kbuild exports for rustc.
    pub fn env(&self, tree: &KernelTree, out_dir: &Path) -> Vec<(String, String)> {
        let env = vec![
            ("CARGO_PKG_NAME".to_string(), self.package.clone()),
            ("CARGO_PKG_VERSION".to_string(), self.version.clone()),
            ("CARGO_PKG_AUTHORS".to_string(), self.authors.join(":")),
            (
                "CARGO_PKG_DESCRIPTION".to_string(),
                self.description.clone().unwrap_or_default(),
            ),
            (
                "CARGO_PKG_LICENSE".to_string(),
                self.license.clone().unwrap_or_default(),
            ),
            (
                "CARGO_MANIFEST_DIR".to_string(),
                self.dir.display().to_string(),
            ),
            ("KMOD_NAME".to_string(), self.name.clone()),
            (
                "KMOD_KERNEL_VERSION".to_string(),
                tree.version().map(|v| v.to_string()).unwrap_or_default(),
            ),
            ("KMOD_ARCH".to_string(), tree.arch.name().to_string()),
            ("OUT_DIR".to_string(), out_dir.display().to_string()),
        ];
        env
    }
}

/// Whether the tree's kbuild passes `--crate-name` to rustc itself (6.12 does, 7.x does not;
/// passing it twice is an error).
fn kbuild_sets_crate_name(tree: &KernelTree) -> bool {
    std::fs::read_to_string(tree.srctree.join("scripts/Makefile.build"))
        .is_ok_and(|t| t.contains("--crate-name"))
}

/// Render the plan (nothing is written yet).
pub fn render(input: &PlanInput<'_>) -> Result<Plan> {
    let mut env = minijinja::Environment::new();
    env.set_keep_trailing_newline(true);
    env.set_trim_blocks(false);
    let mut files = Vec::new();
    let mut modules = Vec::new();
    let mut dirs = Vec::new();
    for m in &input.modules {
        let (kbuild, module) = render_module(&env, input, m)?;
        files.push((module.dir.join("Kbuild"), kbuild));
        dirs.push(m.package.clone());
        modules.push(module);
    }
    let top = env
        .render_str(TOP_KBUILD, minijinja::context! { dirs => dirs })
        .context("cannot render the top Kbuild template")?;
    files.push((input.base.join("Kbuild"), top));

    let mut make_args = input.tree.make_args();
    if !input.extra_symbols.is_empty() {
        let list: Vec<String> = input
            .extra_symbols
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        make_args.push(format!("KBUILD_EXTRA_SYMBOLS={}", list.join(" ")));
    }
    let makefile = env
        .render_str(
            MAKEFILE,
            minijinja::context! {
                helpers => MAKE_HELPERS,
                kdir => make_value(&input.tree.dir.display().to_string()),
                make_args => make_args.iter().map(|a| make_value(&shell_word(a))).collect::<Vec<_>>(),
            },
        )
        .context("cannot render the Makefile template")?;
    files.push((input.base.join("Makefile"), makefile));
    Ok(Plan {
        base: input.base.clone(),
        files,
        modules,
        make_args,
    })
}

/// One module's Kbuild and what the plan records about it.
fn render_module(
    env: &minijinja::Environment<'_>,
    input: &PlanInput<'_>,
    m: &ModuleSpec,
) -> Result<(String, PlannedModule)> {
    let dir = input.base.join(&m.package);
    let out_dir = dir.join("out");
    let manifest = &m.manifest_path;
    if !m.crate_root.is_file() {
        crate::bail_user!(
            "crate root `{}` of `{}` does not exist", m.crate_root.display(), manifest.display();
            hint = "create it, or set `crate-root` in `[package.metadata.kmod]`"
        );
    }
    let Flags {
        c_sources,
        ccflags,
        mut rustflags,
    } = module_flags(input, m)?;
    let mut exports = Vec::new();
    for (k, v) in m.env(input.tree, &out_dir) {
        let value = env_value(&k, &v, manifest)?;
        exports.push((k, value));
    }
    // crates.io dependencies: `--extern`s for the module crate, their objects linked in.
    let dep_objects = match input.deps.get(&m.package) {
        Some(deps) => dependency_flags(deps, manifest, &mut rustflags)?,
        None => Vec::new(),
    };

    // Named after the crate (a Rust identifier) rather than the module (which may start
    // with a digit): 6.12's kbuild derives `--crate-name` from the object's name. A
    // module that is its crate alone is that one object, as in a hand-written Kbuild
    // (`obj-m := name.o`): no subdirectory link step (`ld -r`) on every rebuild.
    let sets_crate_name = kbuild_sets_crate_name(input.tree);
    let single = c_sources.is_empty()
        && dep_objects.is_empty()
        && (!sets_crate_name || m.name == m.crate_name);
    let rust_object = if single {
        format!("{}.o", m.name)
    } else {
        format!("{}_rs.o", m.crate_name)
    };
    let stem = rust_object.trim_end_matches(".o");
    let check_goal = format!("{stem}.rsi");
    let check_metadata = format!("{stem}.rmeta");
    let c_objects = c_objects(m, &rust_object, &c_sources)?;
    let mut objects = vec![rust_object.clone()];
    objects.extend(c_objects.iter().map(|c| c.object.clone()));
    objects.extend(dep_objects.iter().map(|c| c.object.clone()));
    let text = env
        .render_str(
            MODULE_KBUILD,
            minijinja::context! {
                helpers => MAKE_HELPERS,
                manifest => comment(&manifest.display().to_string()),
                name => m.name,
                package => m.package,
                test => input.test,
                env => exports,
                objects => objects,
                ccflags => ccflags,
                rustflags => rustflags,
                rust_object => rust_object,
                // Older kbuild (6.12) names the crate after the object itself.
                crate_name => (!sets_crate_name).then_some(&m.crate_name),
                single => single,
                crate_root => make_path(&m.crate_root, "crate root", manifest)?,
                c_objects => c_objects,
                dep_objects => dep_objects,
                check_goal => check_goal,
                check_metadata => check_metadata,
            },
        )
        .context("cannot render the module Kbuild template")?;
    let module = PlannedModule {
        name: m.name.clone(),
        package: m.package.clone(),
        built_ko: dir.join(format!("{}.ko", m.name)),
        check_goal: format!("{}/{check_goal}", m.package),
        check_metadata: dir.join(&check_metadata),
        dir,
        out_dir,
        rust_object,
    };
    Ok((text, module))
}

/// A module's C sources (its features add theirs) and compiler flags. Every flag is one
/// argument of the compiler, escaped for make and the shell.
struct Flags {
    c_sources: Vec<PathBuf>,
    ccflags: Vec<String>,
    rustflags: Vec<String>,
}

/// The C sources and flags of module `m`: its enabled features', its own, and what the
/// build asks for (`test`, `--release`, the proc macro crate).
fn module_flags(input: &PlanInput<'_>, m: &ModuleSpec) -> Result<Flags> {
    let manifest = &m.manifest_path;
    let features = input.features.get(&m.package).cloned().unwrap_or_default();
    let mut flags = Flags {
        c_sources: m.c_sources.clone(),
        ccflags: Vec::new(),
        rustflags: Vec::new(),
    };
    for f in &features {
        feature_flags(m, f, &mut flags)?;
    }
    let Flags {
        ccflags, rustflags, ..
    } = &mut flags;
    for d in &m.include_dirs {
        ccflags.push(format!("-I{}", make_path(d, "include dir", manifest)?));
    }
    for v in &m.ccflags {
        ccflags.push(flag(v, "ccflags", manifest)?);
    }
    if input.test {
        ccflags.push("-DKMOD_TEST".into());
        rustflags.extend(cfg("test"));
    }
    if input.release {
        ccflags.push("-DNDEBUG".into());
        rustflags.push("-Cdebug-assertions=off".into());
        rustflags.push("-Coverflow-checks=off".into());
    }
    if let Some(so) = &input.macros {
        rustflags.push("--extern".into());
        rustflags.push(format!(
            "kmod_macros={}",
            make_path(so, "proc macro", manifest)?
        ));
    }
    // `[lints]` as cargo passes them, before the manifest's own flags (which win, as
    // `RUSTFLAGS` win over `[lints]` under cargo).
    for v in &m.lints {
        rustflags.push(flag(v, "lints", manifest)?);
    }
    for v in &m.rustflags {
        rustflags.push(flag(v, "rustflags", manifest)?);
    }
    Ok(flags)
}

/// `--cfg VALUE`, escaped for make and the shell.
fn cfg(v: &str) -> Vec<String> {
    vec!["--cfg".into(), make_value(&shell_word(v))]
}

/// What enabled feature `f` adds: `--cfg feature="f"`, `-DKMOD_FEATURE_F`, and the C
/// sources and flags of its `[package.metadata.kmod.features.f]`.
fn feature_flags(m: &ModuleSpec, f: &str, flags: &mut Flags) -> Result<()> {
    let manifest = &m.manifest_path;
    flags.rustflags.extend(cfg(&format!("feature=\"{f}\"")));
    let define: String = f
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    flags.ccflags.push(format!("-DKMOD_FEATURE_{define}"));
    if let Some(objs) = m.feature_objects.get(f) {
        let key = format!("[package.metadata.kmod.features.{f}]");
        flags.c_sources.extend(objs.c_sources.iter().cloned());
        for v in &objs.ccflags {
            flags
                .ccflags
                .push(flag(v, &format!("ccflags` of `{key}"), manifest)?);
        }
        for v in &objs.rustflags {
            flags
                .rustflags
                .push(flag(v, &format!("rustflags` of `{key}"), manifest)?);
        }
    }
    Ok(())
}

/// The crates.io dependencies of a module: their `--extern`s and `-L`s appended to
/// `rustflags`, and their objects to link in.
fn dependency_flags(
    deps: &crate::deps::ModuleDeps,
    manifest: &Path,
    rustflags: &mut Vec<String>,
) -> Result<Vec<CObject>> {
    for f in &deps.rustflags {
        // `--extern name=path` and `-L dependency=dir`: two arguments each.
        let (opt, value) = f.split_once(' ').unwrap_or((f.as_str(), ""));
        rustflags.push(make_value(&shell_word(opt)));
        if let Some((name, path)) = value.split_once('=') {
            rustflags.push(format!(
                "{}={}",
                make_value(&shell_word(name)),
                make_path(Path::new(path), "dependency", manifest)?
            ));
        } else if !value.is_empty() {
            rustflags.push(make_value(&shell_word(value)));
        }
    }
    let mut dep_objects = Vec::new();
    for o in &deps.objects {
        let object = o
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        dep_objects.push(CObject {
            object,
            source: make_path(o, "dependency object", manifest)?,
        });
    }
    Ok(dep_objects)
}

/// One object per C source, named after its file and numbered past the names already taken
/// (the module's and the Rust object's).
fn c_objects(m: &ModuleSpec, rust_object: &str, c_sources: &[PathBuf]) -> Result<Vec<CObject>> {
    let manifest = &m.manifest_path;
    let mut used: BTreeSet<String> = [m.name.clone() + ".o", rust_object.to_string()].into();
    let mut c_objects = Vec::new();
    for src in c_sources {
        if !src.is_file() {
            crate::bail_user!(
                "C source `{}` listed in `{}` does not exist", src.display(), manifest.display();
                hint = "fix the path in `c-sources` (paths are relative to the package)"
            );
        }
        let stem = src
            .file_stem()
            .map(|s| {
                s.to_string_lossy()
                    .replace(|c: char| !(c.is_ascii_alphanumeric() || c == '_'), "_")
            })
            .unwrap_or_default();
        let mut object = format!("{stem}.o");
        let mut n = 1;
        while used.contains(&object) {
            object = format!("{stem}_{n}.o");
            n += 1;
        }
        used.insert(object.clone());
        c_objects.push(CObject {
            object,
            source: make_path(src, "C source", manifest)?,
        });
    }
    Ok(c_objects)
}

impl Plan {
    /// Write every generated file, leaving unchanged ones (and their mtimes) alone.
    pub fn write(&self) -> Result<()> {
        for (path, text) in &self.files {
            crate::fsutil::write_if_changed(path, text.as_bytes())?;
        }
        for m in &self.modules {
            std::fs::create_dir_all(&m.out_dir)
                .with_context(|| format!("cannot create `{}`", m.out_dir.display()))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
