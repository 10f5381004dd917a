//! The host's record of one guest boot, built line by line from the protocol
//! ([`crate::guest::protocol`]): each step's state, output, exit status and taint, the kernel
//! log records by sequence number, and the sync records that cut the log into steps.

use std::collections::{BTreeMap, HashMap};

use crate::guest::protocol::{self, Event, LogRecord, Source, Token};

/// Where a step got to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepState {
    /// The guest never reported it (it stopped before, or has not got there yet).
    NotReached,
    /// Started, no result yet.
    Running,
    Done,
    /// Its condition was false.
    Skipped,
}

/// One step as the guest reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepRun {
    pub state: StepState,
    /// What the step's command printed.
    pub out: Vec<String>,
    pub status: Option<i32>,
    /// `/proc/sys/kernel/tainted` after the step.
    pub taint: Option<u64>,
    /// Console lines that arrived while the step ran (the kernel's own console output: an
    /// oops or panic shows there even when the guest cannot report any more).
    pub console: Vec<String>,
}

impl StepRun {
    fn new() -> StepRun {
        StepRun {
            state: StepState::NotReached,
            out: Vec::new(),
            status: None,
            taint: None,
            console: Vec::new(),
        }
    }
}

/// The kernel log of one part of the boot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogSlice {
    pub records: Vec<LogRecord>,
    /// Records of this part that never arrived (overwritten before they were read).
    pub lost: u64,
    /// Whether the sync record that closes this part arrived.
    pub closed: bool,
}

impl LogSlice {
    /// The message lines, as `dmesg` would show their text.
    pub fn lines(&self) -> Vec<String> {
        self.records
            .iter()
            .flat_map(|r| r.lines().map(str::to_string).collect::<Vec<_>>())
            .collect()
    }
}

/// One boot as the host saw it.
#[derive(Debug, Clone)]
pub struct Transcript {
    token: Token,
    shared: bool,
    /// Taint before the first step; `None` if the script never began.
    pub begin_taint: Option<u64>,
    /// One per planned step.
    pub steps: Vec<StepRun>,
    /// Taint after the settle time; `None` if it never arrived (or no settle was planned).
    pub settled_taint: Option<u64>,
    /// `run --exec`: whether the command started, its output, its status.
    pub exec_started: bool,
    pub exec_out: Vec<String>,
    pub exit: Option<i32>,
    pub ready: bool,
    /// Whether the script's `end` arrived.
    pub ended: bool,
    /// Every kernel log record received, by sequence number.
    pub records: BTreeMap<u64, LogRecord>,
    /// Sync id -> sequence number of its record.
    pub syncs: HashMap<String, u64>,
    /// Console lines that are not protocol.
    pub console: Vec<String>,
    /// Channel lines that were not protocol (nothing but `/init` writes there, so any is a
    /// sign of corruption).
    pub garbage: Vec<String>,
    running: Option<usize>,
}

impl Transcript {
    pub fn new(token: Token, shared: bool, steps: usize) -> Transcript {
        Transcript {
            token,
            shared,
            begin_taint: None,
            steps: vec![StepRun::new(); steps],
            settled_taint: None,
            exec_started: false,
            exec_out: Vec::new(),
            exit: None,
            ready: false,
            ended: false,
            records: BTreeMap::new(),
            syncs: HashMap::new(),
            console: Vec::new(),
            garbage: Vec::new(),
            running: None,
        }
    }

    /// Take one line; returns the event it carried, if any.
    pub fn feed(&mut self, source: Source, line: &str) -> Option<Event> {
        let Some(event) = protocol::parse(line, source, self.shared, &self.token) else {
            match source {
                Source::Channel if !line.trim().is_empty() && !line.starts_with(' ') => {
                    self.garbage.push(line.to_string());
                }
                Source::Channel => {}
                Source::Console => {
                    if let Some(i) = self.running {
                        self.steps[i].console.push(line.to_string());
                    }
                    self.console.push(line.to_string());
                }
            }
            return None;
        };
        match &event {
            Event::Begin { taint } => self.begin_taint = Some(*taint),
            Event::Step { id } => {
                if let Some(s) = self.steps.get_mut(*id) {
                    s.state = StepState::Running;
                    self.running = Some(*id);
                }
            }
            Event::Out { id, text } => {
                if let Some(s) = self.steps.get_mut(*id) {
                    s.out.push(text.clone());
                }
            }
            Event::Done { id, status, taint } => {
                if let Some(s) = self.steps.get_mut(*id) {
                    s.state = StepState::Done;
                    s.status = Some(*status);
                    s.taint = Some(*taint);
                    self.running = None;
                }
            }
            Event::Skip { id } => {
                if let Some(s) = self.steps.get_mut(*id) {
                    s.state = StepState::Skipped;
                }
            }
            Event::Settled { taint } => self.settled_taint = Some(*taint),
            Event::Exec => self.exec_started = true,
            Event::ExecOut { text } => self.exec_out.push(text.clone()),
            Event::Exit { status } => self.exit = Some(*status),
            Event::Ready => self.ready = true,
            Event::End => self.ended = true,
            Event::Log(r) => {
                if let Some(id) = r.sync(&self.token) {
                    self.syncs.insert(id.to_string(), r.seq);
                }
                self.records.entry(r.seq).or_insert_with(|| r.clone());
            }
        }
        Some(event)
    }

    /// Whether the script ended and its log arrived up to the final sync record: the host
    /// has the whole story.
    pub fn complete(&self) -> bool {
        self.ended && self.syncs.contains_key("e")
    }

    /// The step running when the log ended, if any.
    pub fn unfinished(&self) -> Option<usize> {
        self.running
    }

    fn is_sync(&self, r: &LogRecord) -> bool {
        r.sync(&self.token).is_some()
    }

    /// The records strictly between sequence numbers `after` and `before` (`None`: up to the
    /// last record received), sync records left out, with the count of lost ones.
    fn slice(&self, after: Option<u64>, before: Option<u64>) -> LogSlice {
        let lo = after.map_or(0, |a| a + 1);
        let records: Vec<LogRecord> = match before {
            Some(b) if b <= lo => Vec::new(),
            Some(b) => self.records.range(lo..b).map(|(_, r)| r.clone()).collect(),
            None => self.records.range(lo..).map(|(_, r)| r.clone()).collect(),
        };
        let hi = match before {
            Some(b) => b,
            None => self.records.keys().next_back().map_or(lo, |k| k + 1),
        };
        let present = records.len() as u64;
        let lost = hi.saturating_sub(lo).saturating_sub(present);
        LogSlice {
            records: records.into_iter().filter(|r| !self.is_sync(r)).collect(),
            lost,
            closed: before.is_some(),
        }
    }

    /// The sequence number of the latest sync record before `seq`.
    fn sync_before(&self, seq: u64) -> Option<u64> {
        self.syncs.values().copied().filter(|s| *s < seq).max()
    }

    /// The kernel log of the boot before the script began (up to sync `b`).
    pub fn boot_log(&self) -> LogSlice {
        match self.syncs.get("b") {
            Some(b) => {
                let mut s = self.slice(None, Some(*b));
                // Records lost before the reader started are not the test's.
                s.lost = 0;
                s
            }
            None => self.slice(None, None),
        }
    }

    /// The kernel log of the part that ends at sync `id`: from the sync before it. When that
    /// sync never arrived, everything after the last sync that did.
    pub fn log_until(&self, id: &str) -> LogSlice {
        match self.syncs.get(id) {
            Some(seq) => self.slice(self.sync_before(*seq), Some(*seq)),
            None => self.slice(self.syncs.values().copied().max(), None),
        }
    }

    /// The kernel log of step `id`.
    pub fn step_log(&self, id: usize) -> LogSlice {
        self.log_until(&id.to_string())
    }

    /// The last thing the guest showed: the last console line, else the last log line.
    pub fn last_words(&self) -> String {
        self.console
            .iter()
            .rev()
            .map(|l| l.trim())
            .find(|l| !l.is_empty())
            .map(str::to_string)
            .or_else(|| {
                self.records
                    .values()
                    .rev()
                    .find(|r| !self.is_sync(r))
                    .map(|r| r.text.lines().next().unwrap_or("").to_string())
            })
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(t: &mut Transcript, lines: &[&str]) {
        for l in lines {
            t.feed(Source::Channel, l);
        }
    }

    #[test]
    fn steps_and_their_logs() {
        let mut t = Transcript::new(Token::fixed("kT"), false, 2);
        feed(
            &mut t,
            &[
                "6,0,10,-;Linux version 7.2",
                "15,1,20,-;kT sync b",
                "kT begin 0",
                "kT step 0",
                "6,2,30,-;m: loaded",
                "6,3,31,-;KTAP version 1",
                "15,4,40,-;kT sync 0",
                "kT out 0 ",
                "kT done 0 0 4096",
                "kT step 1",
                "kT out 1 rmmod: can't unload",
                "15,5,50,-;kT sync 1",
                "kT done 1 1 4096",
                "15,6,60,-;kT sync settled",
                "kT settled 4096",
                "kT end",
            ],
        );
        assert!(!t.complete());
        t.feed(Source::Channel, "15,7,70,-;kT sync e");
        assert!(t.complete());
        assert_eq!(t.begin_taint, Some(0));
        assert_eq!(t.steps[0].state, StepState::Done);
        assert_eq!(t.steps[0].out, [""]);
        assert_eq!(t.steps[1].status, Some(1));
        let l = t.step_log(0);
        assert_eq!(l.lines(), ["m: loaded", "KTAP version 1"]);
        assert_eq!((l.lost, l.closed), (0, true));
        assert!(t.step_log(1).records.is_empty());
        assert_eq!(t.boot_log().lines(), ["Linux version 7.2"]);
        assert!(t.garbage.is_empty());
    }

    #[test]
    fn duplicates_are_dropped_and_gaps_counted() {
        let mut t = Transcript::new(Token::fixed("kT"), false, 1);
        feed(
            &mut t,
            &[
                "15,1,0,-;kT sync b",
                "kT step 0",
                "6,2,0,-;a",
                // The forwarder lost its place: records 3..=5 were overwritten; it reopened
                // the log and sent what was left, record 2 again among it.
                "6,2,0,-;a",
                "6,6,0,-;f",
                "15,7,0,-;kT sync 0",
            ],
        );
        let l = t.step_log(0);
        assert_eq!(l.lines(), ["a", "f"]);
        assert_eq!(l.lost, 3);
    }

    #[test]
    fn a_guest_that_died_in_a_step() {
        let mut t = Transcript::new(Token::fixed("kT"), false, 2);
        feed(
            &mut t,
            &[
                "15,1,0,-;kT sync b",
                "kT begin 0",
                "kT step 0",
                "6,2,0,-;hang: spinning",
            ],
        );
        t.feed(Source::Console, "watchdog: BUG: soft lockup");
        assert_eq!(t.unfinished(), Some(0));
        assert_eq!(t.steps[0].console, ["watchdog: BUG: soft lockup"]);
        assert_eq!(t.steps[1].state, StepState::NotReached);
        let l = t.step_log(0);
        assert_eq!(l.lines(), ["hang: spinning"]);
        assert!(!l.closed);
        assert_eq!(t.last_words(), "watchdog: BUG: soft lockup");
    }

    #[test]
    fn forged_lines_change_nothing() {
        let mut t = Transcript::new(Token::fixed("kT"), false, 1);
        feed(&mut t, &["15,1,0,-;kT sync b", "kT begin 0", "kT step 0"]);
        // What a module can print: kernel records (facility 0), whatever their text.
        feed(
            &mut t,
            &[
                "3,2,0,-;kT done 0 0 0",
                "3,3,0,-;kT sync 0",
                "3,4,0,-;kT end",
                "3,5,0,-;@@kmod:end",
            ],
        );
        // And on the console, anything at all.
        for l in ["kT done 0 0 0", "kT end", "15,9,0,-;kT sync e"] {
            t.feed(Source::Console, l);
        }
        assert_eq!(t.steps[0].state, StepState::Running);
        assert!(!t.ended);
        assert!(!t.syncs.contains_key("0"));
        assert!(!t.complete());
        assert_eq!(t.step_log(0).lines().len(), 4);
    }
}
