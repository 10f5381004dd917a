//! Errors a user must act on.
//!
//! Two tiers, as in espflash and nextest: `anyhow` with `.context(..)` inside the library, and
//! [`UserError`] for what the user has to fix. A `UserError` is one lowercase line naming the
//! file, key or symbol, optionally followed by a hint, and carries its own exit code.

use std::fmt;

/// Exit code for a failure the user must fix (bad input, missing tool, refused module).
pub const EXIT_FAILURE: u8 = 1;
/// Exit code for usage errors, the same as clap's.
pub const EXIT_USAGE: u8 = 2;
/// Exit code when tests ran and some failed (what `cargo test` uses).
pub const EXIT_TESTS_FAILED: u8 = 101;

/// An error whose message is meant for the user, with an optional hint line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserError {
    pub message: String,
    pub hint: Option<String>,
    pub exit_code: u8,
}

impl UserError {
    pub fn new(message: impl Into<String>) -> Self {
        UserError {
            message: message.into(),
            hint: None,
            exit_code: EXIT_FAILURE,
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn with_exit_code(mut self, code: u8) -> Self {
        self.exit_code = code;
        self
    }
}

impl fmt::Display for UserError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for UserError {}

/// Build a [`UserError`] and return it as an `anyhow::Error` from the current function.
///
/// `bail_user!("no kernel tree for `{arch}`"; hint = "run `cargo kmod init --arch {arch}`")`
#[macro_export]
macro_rules! bail_user {
    ($($msg:expr),+ ; hint = $($hint:expr),+) => {
        return Err($crate::error::UserError::new(format!($($msg),+))
            .with_hint(format!($($hint),+))
            .into())
    };
    ($($msg:expr),+) => {
        return Err($crate::error::UserError::new(format!($($msg),+)).into())
    };
}

/// Find the [`UserError`] in an error chain, if there is one.
pub fn user_error(err: &anyhow::Error) -> Option<&UserError> {
    err.chain().find_map(|e| e.downcast_ref::<UserError>())
}

/// Render an error the way cargo does: `error: outer: inner` plus a `help:` line.
pub fn render(err: &anyhow::Error) -> (String, Option<String>, u8) {
    let mut message = String::new();
    for (i, cause) in err.chain().enumerate() {
        if i > 0 {
            message.push_str(": ");
        }
        message.push_str(&cause.to_string());
    }
    match user_error(err) {
        Some(u) => (message, u.hint.clone(), u.exit_code),
        None => (message, None, EXIT_FAILURE),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn render_joins_context_and_keeps_hint() {
        let err: anyhow::Error = UserError::new("no `Module.symvers` in `/k`")
            .with_hint("build the tree first")
            .into();
        let err = err.context("cannot build `hello`");
        let (msg, hint, code) = render(&err);
        assert_eq!(msg, "cannot build `hello`: no `Module.symvers` in `/k`");
        assert_eq!(hint.as_deref(), Some("build the tree first"));
        assert_eq!(code, EXIT_FAILURE);
    }

    #[test]
    fn bail_user_formats() {
        fn f(arch: &str) -> anyhow::Result<()> {
            bail_user!("no tree for `{}`", arch; hint = "run `cargo kmod init --arch {}`", arch);
        }
        let err = f("arm64").unwrap_err();
        let u = user_error(&err).unwrap();
        assert_eq!(u.message, "no tree for `arm64`");
        assert_eq!(
            u.hint.as_deref(),
            Some("run `cargo kmod init --arch arm64`")
        );
    }

    #[test]
    fn plain_errors_exit_one() {
        let err = anyhow::anyhow!("boom").context("outer");
        assert_eq!(render(&err), ("outer: boom".into(), None, EXIT_FAILURE));
        let _ = std::fs::read("/nonexistent").context("x").unwrap_err();
    }
}
