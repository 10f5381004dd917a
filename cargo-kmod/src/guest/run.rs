//! What one run of a plan left behind, as data: everything the console and the protocol
//! channel printed, how the run ended, and the [`Transcript`] read from it. qemu makes these
//! (`crate::qemu::session`); the verdict rules read them ([`crate::guest::verdict`]).

use std::process::ExitStatus;
use std::time::Duration;

use crate::guest::transcript::Transcript;

/// How a boot ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootEnd {
    /// qemu exited by itself (with `-no-reboot`, a guest `reboot -f` or a panic ends here).
    Exited(ExitStatus),
    /// The callback returned [`Flow::Stop`]; qemu was killed.
    Stopped,
    /// The deadline passed; qemu was killed.
    TimedOut,
}

/// Everything one boot printed.
#[derive(Debug, Clone)]
pub struct BootLog {
    /// Console lines as [`crate::text::line`] makes them safe to print (the serial `\r`
    /// dropped, control characters and bidi controls escaped, invalid UTF-8 replaced).
    pub lines: Vec<String>,
    /// Protocol-channel lines, made safe the same way (empty for a shared console).
    pub channel: Vec<String>,
    pub end: BootEnd,
    pub elapsed: Duration,
    /// The qemu command line, for error messages.
    pub command: String,
    /// What qemu itself wrote to stderr (its own errors, not the guest's).
    pub qemu_stderr: String,
}

impl BootLog {
    /// The last non-empty console line: where the log stopped.
    pub fn last_line(&self) -> &str {
        self.lines
            .iter()
            .rev()
            .map(|l| l.trim())
            .find(|l| !l.is_empty())
            .unwrap_or("")
    }

    /// The last `n` console lines.
    pub fn tail(&self, n: usize) -> &[String] {
        &self.lines[self.lines.len().saturating_sub(n)..]
    }

    pub fn contains_line(&self, line: &str) -> bool {
        self.lines.iter().any(|l| l.trim() == line)
    }
}

/// One finished guest boot.
#[derive(Debug, Clone)]
pub struct GuestRun {
    pub transcript: Transcript,
    pub boot: BootLog,
}
