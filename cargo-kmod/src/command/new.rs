//! `cargo kmod new NAME [--template platform|i2c|misc|minimal] [--c] [--path DIR]`: a kernel
//! module package that builds, loads and passes its tests with no edits (the work is
//! [`crate::ops::new`]).

use std::path::PathBuf;

use anyhow::Result;

use crate::context::Session;
use crate::ops::{
    self,
    new::{Created, Template},
};

#[derive(Debug, clap::Args)]
pub struct NewCmd {
    /// Package name; the module name is this with `-` turned into `_`
    #[arg(value_name = "NAME")]
    pub name: String,
    /// What the module is: a plain module, a platform or I2C driver with a test device in its
    /// manifest, or a misc character device
    #[arg(long, value_enum, default_value_t = Template::Minimal)]
    pub template: Template,
    /// Add a C source and header: Rust calls C through generated bindings, C calls back
    /// (with `--template minimal`)
    #[arg(long = "c")]
    pub c: bool,
    /// Directory to create (default: `./NAME`)
    #[arg(long, value_name = "DIR")]
    pub path: Option<PathBuf>,
    /// Write no editor settings (`.vscode/settings.json` with rust-analyzer's check-on-save
    /// through `cargo kmod check`)
    #[arg(long)]
    pub no_editor: bool,
}

impl NewCmd {
    pub fn run(&self, session: &Session) -> Result<()> {
        let Created { scaffold, dest } = ops::new::new(
            &self.name,
            self.template,
            self.c,
            self.path.as_deref(),
            !self.no_editor,
        )?;
        let kind = match (self.template, self.c) {
            (Template::Minimal, true) => "kernel module (Rust + C)",
            (Template::Minimal, false) => "kernel module",
            (Template::Platform, _) => "platform driver",
            (Template::I2c, _) => "I2C driver",
            (Template::Misc, _) => "misc device",
        };
        session.shell.status(
            "Created",
            format_args!("{kind} `{}` package in `{}`", scaffold.name, dest.display()),
        );
        if scaffold.module != scaffold.name {
            session.shell.note(format_args!(
                "the module is named `{}`: kbuild turns `-` into `_` in module names",
                scaffold.module
            ));
        }
        if !self.no_editor {
            session.shell.note(format_args!(
                "rust-analyzer settings in `{}`: check-on-save runs `cargo kmod check`; run `cargo kmod ide` in the package for its `rust-project.json`",
                dest.join(ops::new::EDITOR_SETTINGS).display()
            ));
        }
        if session.shell.is_json() {
            session.shell.json(&serde_json::json!({
                "reason": "package-created",
                "name": scaffold.name,
                "module": scaffold.module,
                "path": dest,
                "c": self.c,
                "template": self.template.name(),
            }));
        }
        Ok(())
    }
}
