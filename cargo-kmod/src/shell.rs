//! Terminal output in cargo's manner.
//!
//! Right-aligned green status verbs on stderr (`   Compiling hello`), warnings and notes,
//! progress bars for long work, `-q` for silence and `--message-format json` for machines
//! (JSON objects, one per line, on stdout). Every command gets a `&Shell`.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use console::Style;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How chatty the output is: `-q` gives `Quiet`, `-v` gives `Verbose`, `-vv` `VeryVerbose`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verbosity {
    Quiet,
    Normal,
    Verbose,
    VeryVerbose,
}

/// `--message-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum MessageFormat {
    #[default]
    Human,
    Json,
}

/// `--color`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ColorChoice {
    #[default]
    Auto,
    Always,
    Never,
}

/// The output sink every command writes through.
#[derive(Debug, Clone)]
pub struct Shell {
    pub verbosity: Verbosity,
    pub format: MessageFormat,
    color: bool,
}

impl Shell {
    pub fn new(verbosity: Verbosity, format: MessageFormat, color: ColorChoice) -> Self {
        let color = match color {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                std::io::stderr().is_terminal()
                    && crate::env::Env::get().var_os("NO_COLOR").is_none()
            }
        };
        console::set_colors_enabled_stderr(color);
        Shell {
            verbosity,
            format,
            color,
        }
    }

    /// A shell for tests and library callers: normal verbosity, human format, no color.
    pub fn plain() -> Self {
        Shell {
            verbosity: Verbosity::Normal,
            format: MessageFormat::Human,
            color: false,
        }
    }

    pub fn is_json(&self) -> bool {
        self.format == MessageFormat::Json
    }

    /// Whether stderr gets colors (`--color`, else a terminal without `NO_COLOR`).
    pub fn is_color(&self) -> bool {
        self.color
    }

    pub fn is_verbose(&self) -> bool {
        self.verbosity >= Verbosity::Verbose
    }

    fn style(&self, s: Style) -> Style {
        if self.color {
            s.force_styling(true)
        } else {
            s.force_styling(false)
        }
    }

    /// `   Compiling hello v0.1.0`: a green, right-aligned verb and a message.
    pub fn status(&self, verb: &str, message: impl std::fmt::Display) {
        if self.verbosity > Verbosity::Quiet {
            let verb = self
                .style(Style::new().green().bold())
                .apply_to(format!("{verb:>12}"));
            eprintln!("{verb} {message}");
        }
    }

    /// A status line that only shows with `-v` (e.g. the full command lines).
    pub fn verbose(&self, verb: &str, message: impl std::fmt::Display) {
        if self.is_verbose() {
            let verb = self
                .style(Style::new().cyan().bold())
                .apply_to(format!("{verb:>12}"));
            eprintln!("{verb} {message}");
        }
    }

    pub fn warn(&self, message: impl std::fmt::Display) {
        if self.verbosity > Verbosity::Quiet {
            let w = self.style(Style::new().yellow().bold()).apply_to("warning");
            eprintln!("{w}: {message}");
        }
    }

    pub fn note(&self, message: impl std::fmt::Display) {
        if self.verbosity > Verbosity::Quiet {
            let n = self.style(Style::new().cyan().bold()).apply_to("note");
            eprintln!("{n}: {message}");
        }
    }

    /// `error: ...` and an optional `help: ...` line; printed even under `-q`.
    pub fn error(&self, message: impl std::fmt::Display, hint: Option<&str>) {
        let e = self.style(Style::new().red().bold()).apply_to("error");
        eprintln!("{e}: {message}");
        if let Some(hint) = hint {
            let h = self.style(Style::new().cyan().bold()).apply_to("help");
            eprintln!("{h}: {hint}");
        }
    }

    /// Plain text for stdout (reports such as `info`, `doctor`).
    pub fn out(&self, line: impl std::fmt::Display) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
    }

    /// One JSON object on one line of stdout, for `--message-format json`.
    pub fn json(&self, value: &serde_json::Value) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{value}");
    }

    /// A spinner for open-ended work (kernel builds, boots); hidden when quiet, in JSON mode
    /// or when stderr is not a terminal, so logs stay clean.
    pub fn spinner(&self, verb: &str, message: impl Into<String>) -> ProgressBar {
        let bar = ProgressBar::with_draw_target(None, self.draw_target());
        let template = format!("{{spinner:.green}} {:>11} {{msg:.dim}} [{{elapsed}}]", verb);
        bar.set_style(ProgressStyle::with_template(&template).expect("static template"));
        bar.set_message(message.into());
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    }

    /// A bar with a known length (e.g. kbuild's objects against the last build's count).
    pub fn progress(&self, verb: &str, len: u64) -> ProgressBar {
        let bar = ProgressBar::with_draw_target(Some(len), self.draw_target());
        let template = format!(
            "{:>12} [{{bar:27.green}}] {{pos}}/{{len}} {{wide_msg:.dim}} [{{elapsed}}]",
            verb
        );
        bar.set_style(
            ProgressStyle::with_template(&template)
                .expect("static template")
                .progress_chars("=> "),
        );
        bar
    }

    fn draw_target(&self) -> ProgressDrawTarget {
        if self.verbosity == Verbosity::Quiet || self.is_json() || !std::io::stderr().is_terminal()
        {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        }
    }
}
