//! `cargo kmod new`: a kernel module package that builds, loads and passes its tests with
//! no edits.
//!
//! The files are minijinja templates under `templates/new/`, embedded with `include_str!` and
//! rendered from one [`Scaffold`] context. The package is written into a temporary directory
//! next to the destination and renamed into place, so a failure leaves nothing behind.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use serde::Serialize;

/// The kinds of package `new` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Template {
    /// A module with a parameter and KUnit tests
    #[default]
    Minimal,
    /// A platform driver with an OF match table, and a test device in its manifest
    Platform,
    /// An I2C driver with OF and I2C id tables, and a test client in its manifest
    I2c,
    /// A misc character device
    Misc,
}

impl Template {
    pub fn name(self) -> &'static str {
        match self {
            Template::Minimal => "minimal",
            Template::Platform => "platform",
            Template::I2c => "i2c",
            Template::Misc => "misc",
        }
    }
}

pub use crate::kernel::MAX_MODULE_NAME;

/// Names a module package cannot have: Rust keywords, and crates every module crate sees.
const RESERVED: &[&str] = &[
    "as",
    "async",
    "await",
    "break",
    "const",
    "continue",
    "crate",
    "dyn",
    "else",
    "enum",
    "extern",
    "false",
    "fn",
    "for",
    "if",
    "impl",
    "in",
    "let",
    "loop",
    "match",
    "mod",
    "move",
    "mut",
    "pub",
    "ref",
    "return",
    "self",
    "static",
    "struct",
    "super",
    "trait",
    "true",
    "type",
    "unsafe",
    "use",
    "where",
    "while",
    "abstract",
    "become",
    "box",
    "do",
    "final",
    "gen",
    "macro",
    "override",
    "priv",
    "try",
    "typeof",
    "unsized",
    "virtual",
    "yield",
    "alloc",
    "core",
    "std",
    "kernel",
    "bindings",
    "ffi",
    "macros",
    "pin_init",
    "kmod_macros",
    "build_error",
    "uapi",
    "test",
];

/// Check a package name and return the module name (dashes become underscores, as kbuild
/// does for `.ko` names).
pub fn module_name(name: &str) -> Result<String> {
    const HINT: &str = "kernel module names use only `A-Z`, `a-z`, `0-9` and `_` (`-` becomes `_`)";
    if name.is_empty() {
        crate::bail_user!("the package name is empty"; hint = "{}", HINT);
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
    {
        crate::bail_user!("`{}` is not a valid module name: `{}` is not allowed", name, bad; hint = "{}", HINT);
    }
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        crate::bail_user!("`{}` is not a valid module name: it starts with a digit", name; hint = "{}", HINT);
    }
    let module = name.replace('-', "_");
    if module.chars().all(|c| c == '_') {
        crate::bail_user!("`{}` is not a valid module name: it has no letters or digits", name; hint = "{}", HINT);
    }
    if module.len() > MAX_MODULE_NAME {
        crate::bail_user!(
            "`{}` is not a valid module name: it is {} characters long", name, module.len();
            hint = "the kernel allows at most {} characters", MAX_MODULE_NAME
        );
    }
    if RESERVED.contains(&module.as_str()) {
        crate::bail_user!(
            "`{}` cannot be a module name: it is a Rust keyword or a crate every module uses", name;
            hint = "choose another name, e.g. `{}_mod`", module
        );
    }
    Ok(module)
}

/// `my_driver` -> `MyDriver`: the type that implements `kernel::Module`.
pub fn type_name(module: &str) -> String {
    let mut out = String::new();
    for part in module.split('_').filter(|p| !p.is_empty()) {
        let mut chars = part.chars();
        if let Some(first) = chars.next() {
            out.push(first.to_ascii_uppercase());
            out.extend(chars);
        }
    }
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert_str(0, "Module");
    }
    out
}

/// Everything the templates see.
#[derive(Debug, Clone, Serialize)]
pub struct Scaffold {
    /// The package name, as given.
    pub name: String,
    /// The module name (`[A-Za-z0-9_]`).
    pub module: String,
    /// The `kernel::Module` type.
    pub type_name: String,
    pub author: String,
    pub description: String,
    /// With a C source and header.
    pub c: bool,
    /// The C file stem: `helper` (never the module's own name, which kbuild's `.ko` takes).
    pub c_stem: String,
    /// The header's include guard.
    pub guard: String,
    pub template: Template,
    /// The I2C id (`i2c_device_id.name` holds 19 characters): the package name, shortened.
    pub i2c_id: String,
    /// The misc device's name under `/dev`.
    pub device: String,
}

impl Scaffold {
    pub fn new(name: &str, author: &str, c: bool) -> Result<Scaffold> {
        Self::with_template(name, author, c, Template::Minimal)
    }

    pub fn with_template(
        name: &str,
        author: &str,
        c: bool,
        template: Template,
    ) -> Result<Scaffold> {
        let module = module_name(name)?;
        if c && template != Template::Minimal {
            crate::bail_user!(
                "`--c` cannot be combined with `--template {}`", template.name();
                hint = "add C sources to the package by hand (`c-sources` in `[package.metadata.kmod]`)"
            );
        }
        let c_stem = if module == "helper" {
            "c_helper".to_string()
        } else {
            "helper".to_string()
        };
        Ok(Scaffold {
            name: name.to_string(),
            type_name: type_name(&module),
            author: author.to_string(),
            description: format!("The {module} kernel module"),
            c,
            guard: format!(
                "{}_{}_H",
                module.to_ascii_uppercase(),
                c_stem.to_ascii_uppercase()
            ),
            c_stem,
            template,
            i2c_id: name.chars().take(19).collect(),
            device: name.replace('_', "-"),
            module,
        })
    }

    /// The package's files: relative path and contents.
    pub fn render(&self) -> Result<Vec<(PathBuf, String)>> {
        let mut env = minijinja::Environment::new();
        env.set_keep_trailing_newline(true);
        env.add_filter("toml", |s: String| toml::Value::String(s).to_string());
        for (name, source) in TEMPLATES {
            env.add_template(name, source)
                .with_context(|| format!("template `{name}`"))?;
        }
        let lib = match self.template {
            Template::Minimal => "lib.rs.j2",
            Template::Platform => "platform.rs.j2",
            Template::I2c => "i2c.rs.j2",
            Template::Misc => "misc.rs.j2",
        };
        let mut files = vec![
            (PathBuf::from("Cargo.toml"), "Cargo.toml.j2"),
            (PathBuf::from(".gitignore"), "gitignore.j2"),
            (PathBuf::from("src/lib.rs"), lib),
        ];
        if self.c {
            files.push((
                PathBuf::from(format!("src/{}.c", self.c_stem)),
                "helper.c.j2",
            ));
            files.push((
                PathBuf::from(format!("include/{}.h", self.c_stem)),
                "helper.h.j2",
            ));
        }
        files
            .into_iter()
            .map(|(path, template)| {
                let text = env
                    .get_template(template)
                    .and_then(|t| t.render(self))
                    .with_context(|| format!("cannot render `{template}`"))?;
                Ok((path, text))
            })
            .collect()
    }
}

/// The templates, embedded (by cargo-kmod-templates) so an installed cargo-kmod carries them.
const TEMPLATES: &[(&str, &str)] = cargo_kmod_templates::new::FILES;

/// `Name <email>` from git's configuration, else the login name, like cargo's old default.
pub fn default_author() -> String {
    let git = |key: &str| {
        let sh = xshell::Shell::new().ok()?;
        let v = xshell::cmd!(sh, "git config --get {key}")
            .quiet()
            .ignore_stderr()
            .read()
            .ok()?;
        Some(v.trim().to_string()).filter(|v| !v.is_empty())
    };
    let env = |key: &str| crate::env::Env::get().var(key).map(str::to_string);
    let name = env("CARGO_NAME")
        .or_else(|| git("user.name"))
        .or_else(|| env("USER"))
        .or_else(|| env("LOGNAME"))
        .unwrap_or_else(|| "unknown".into());
    match env("CARGO_EMAIL").or_else(|| git("user.email")) {
        Some(email) => format!("{name} <{email}>"),
        None => name,
    }
}

/// Write `files` under `dest`, which must not exist: into a sibling temporary directory first,
/// renamed into place at the end.
pub fn write_package(dest: &Path, files: &[(PathBuf, String)]) -> Result<()> {
    if dest.exists() || dest.symlink_metadata().is_ok() {
        crate::bail_user!(
            "destination `{}` already exists", dest.display();
            hint = "use `--path` to create the package somewhere else"
        );
    }
    let parent = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(|e| {
        crate::error::UserError::new(format!(
            "cannot create `{}`: {}",
            parent.display(),
            e.to_string().to_lowercase()
        ))
    })?;
    // 0777 narrowed by the umask (0755 under 022), like `mkdir`: a bare tempdir is 0700 and
    // would stay 0700 after the rename.
    let tmp = tempfile::Builder::new()
        .prefix(".kmod-new-")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o777))
        .tempdir_in(&parent)
        .map_err(|e| {
            crate::error::UserError::new(format!("cannot create `{}`: {}", dest.display(), e))
        })?;
    for (path, text) in files {
        let full = tmp.path().join(path);
        if let Some(dir) = full.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create `{}`", dir.display()))?;
        }
        std::fs::write(&full, text)
            .with_context(|| format!("cannot write `{}`", full.display()))?;
    }
    let tmp = tmp.keep();
    if let Err(e) = std::fs::rename(&tmp, dest) {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e).with_context(|| format!("cannot create `{}`", dest.display()));
    }
    Ok(())
}

/// What `new` wrote.
#[derive(Debug, Clone)]
pub struct Created {
    pub scaffold: Scaffold,
    pub dest: PathBuf,
}

/// Render the package `name` of `template` and write it to `path` (default `./NAME`);
/// `editor`: with [`EDITOR_SETTINGS`] in `.vscode/settings.json`.
pub fn new(
    name: &str,
    template: Template,
    c: bool,
    path: Option<&Path>,
    editor: bool,
) -> Result<Created> {
    let scaffold = Scaffold::with_template(name, &default_author(), c, template)?;
    let dest = path
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(name));
    let mut files = scaffold.render()?;
    if editor {
        files.push((PathBuf::from(EDITOR_SETTINGS), editor_settings()));
    }
    write_package(&dest, &files)?;
    Ok(Created { scaffold, dest })
}

/// Where `new` writes rust-analyzer's settings (VS Code's workspace settings).
pub const EDITOR_SETTINGS: &str = ".vscode/settings.json";

/// rust-analyzer's settings for a module package: the project is `rust-project.json`
/// (`cargo kmod ide` writes it), and check-on-save runs `cargo kmod check` in cargo's JSON
/// instead of `cargo check`, which cannot build a kernel module.
pub fn editor_settings() -> String {
    let settings = serde_json::json!({
        "rust-analyzer.linkedProjects": ["rust-project.json"],
        "rust-analyzer.check.overrideCommand":
            ["cargo", "kmod", "check", "--message-format", "json"],
    });
    serde_json::to_string_pretty(&settings).unwrap_or_default() + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(name: &str) -> String {
        let err = module_name(name).unwrap_err();
        crate::error::user_error(&err)
            .expect("a user error")
            .message
            .clone()
    }

    #[test]
    fn names() {
        assert_eq!(module_name("hello").unwrap(), "hello");
        assert_eq!(module_name("my-driver").unwrap(), "my_driver");
        assert_eq!(
            message("my.driver"),
            "`my.driver` is not a valid module name: `.` is not allowed"
        );
        assert_eq!(
            message("2fast"),
            "`2fast` is not a valid module name: it starts with a digit"
        );
        assert_eq!(message(""), "the package name is empty");
        assert_eq!(
            message("--"),
            "`--` is not a valid module name: it has no letters or digits"
        );
        assert_eq!(
            message("kernel"),
            "`kernel` cannot be a module name: it is a Rust keyword or a crate every module uses"
        );
        assert_eq!(
            message(&"a".repeat(56)),
            format!(
                "`{}` is not a valid module name: it is 56 characters long",
                "a".repeat(56)
            )
        );
        assert!(module_name(&"a".repeat(55)).is_ok());
        assert_eq!(
            message("hé"),
            "`hé` is not a valid module name: `é` is not allowed"
        );
    }

    #[test]
    fn type_names() {
        assert_eq!(type_name("hello"), "Hello");
        assert_eq!(type_name("my_spi_driver"), "MySpiDriver");
        assert_eq!(type_name("a__b"), "AB");
        assert_eq!(type_name("x2_3"), "X23");
    }

    fn snapshot(name: &str, c: bool) {
        let s = Scaffold::new(name, "Ada Lovelace <ada@example.com>", c).unwrap();
        for (path, text) in s.render().unwrap() {
            let snap =
                format!("{name}{}-{}", if c { "-c" } else { "" }, path.display()).replace('/', "_");
            insta::assert_snapshot!(snap, text);
        }
    }

    #[test]
    fn renders_rust_only() {
        snapshot("hello", false);
    }

    fn snapshot_template(name: &str, template: Template) {
        let s = Scaffold::with_template(name, "Ada Lovelace <ada@example.com>", false, template)
            .unwrap();
        for (path, text) in s.render().unwrap() {
            let snap = format!("{name}-{}-{}", template.name(), path.display()).replace('/', "_");
            insta::assert_snapshot!(snap, text);
        }
    }

    #[test]
    fn renders_drivers_with_their_test_devices() {
        snapshot_template("blink", Template::Platform);
        snapshot_template("temp-sensor", Template::I2c);
        snapshot_template("echo", Template::Misc);
        // The manifests' devices are what the device tables expect.
        for t in [Template::Platform, Template::I2c] {
            let s = Scaffold::with_template("blink", "a", false, t).unwrap();
            let files = s.render().unwrap();
            let manifest: toml::Value = toml::from_str(&files[0].1).unwrap();
            let dev = &manifest["package"]["metadata"]["kmod"]["devices"][0];
            assert_eq!(dev["compatible"].as_str(), Some("acme,blink"));
            assert!(files[2].1.contains("of::DeviceId::new(c\"acme,blink\")"));
        }
        let long = Scaffold::with_template(&"a".repeat(30), "a", false, Template::I2c).unwrap();
        assert_eq!(
            long.i2c_id.len(),
            19,
            "i2c_device_id.name holds 20 bytes with the NUL"
        );
        let e = Scaffold::with_template("x", "a", true, Template::Platform).unwrap_err();
        assert_eq!(
            e.to_string(),
            "`--c` cannot be combined with `--template platform`"
        );
    }

    #[test]
    fn renders_rust_and_c_with_a_dashed_name() {
        snapshot("my-driver", true);
    }

    #[test]
    fn rendered_manifest_is_valid_toml_with_quotes_escaped() {
        let s = Scaffold::new("hello", "Jo \"JJ\" O'Neil <jo@example.com>", true).unwrap();
        let files = s.render().unwrap();
        let manifest: toml::Value = toml::from_str(&files[0].1).unwrap();
        assert_eq!(
            manifest["package"]["authors"][0].as_str(),
            Some("Jo \"JJ\" O'Neil <jo@example.com>")
        );
        assert_eq!(manifest["package"]["license"].as_str(), Some("GPL-2.0"));
        let kmod = &manifest["package"]["metadata"]["kmod"];
        assert_eq!(kmod["c-sources"][0].as_str(), Some("src/helper.c"));
        assert_eq!(
            kmod["bindings"][0]["header"].as_str(),
            Some("include/helper.h")
        );
        assert!(
            kmod.get("name").is_none(),
            "the default module name needs no key"
        );
        let helper = Scaffold::new("helper", "a", true).unwrap();
        assert_eq!(helper.c_stem, "c_helper");
    }

    #[test]
    fn refuses_an_existing_destination_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("hello");
        let files = Scaffold::new("hello", "a", false)
            .unwrap()
            .render()
            .unwrap();
        write_package(&dest, &files).unwrap();
        assert!(dest.join("src/lib.rs").is_file());
        let err = write_package(&dest, &files).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("destination `{}` already exists", dest.display())
        );
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names, ["hello"]);
    }
}
