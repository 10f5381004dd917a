//! KTAP, the kernel's test output format (`Documentation/dev-tools/ktap.rst`), parsed from a
//! kernel log.
//!
//! KUnit prints one KTAP document per module load:
//!
//! ```text
//! KTAP version 1
//! 1..1
//!     KTAP version 1
//!     # Subtest: hello_suite
//!     1..2
//!     ok 1 adds
//!     # fails: ASSERTION FAILED at hello_main.rs:44
//!     Expected 2 + 2 == 5 to be true, but is false
//!     not ok 2 fails
//! # hello_suite: pass:1 fail:1 skip:0 total:2
//! not ok 1 hello_suite
//! ```
//!
//! Nesting is by indentation (four spaces a level). Lines before a result line at the same
//! level (`# ...` diagnostics and free text such as KUnit's `Expected ...`) belong to that
//! test. `# SKIP` and `# TODO` directives follow a result's description. Other kernel messages
//! may be interleaved; a log that ends inside a document (a crash, a timeout) leaves the open
//! tests [`Outcome::Missing`]. [`parse`] returns the tree, [`Test::leaves`] the flat cases
//! that `cargo kmod test` reports.

/// What a test's result line said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    Fail,
    /// `# SKIP reason`.
    Skip(String),
    /// `# TODO reason` (a known failure, reported as ignored).
    Todo(String),
    /// No result line: the log ended (or another document began) first.
    Missing,
}

impl Outcome {
    pub fn is_failure(&self) -> bool {
        matches!(self, Outcome::Fail | Outcome::Missing)
    }
}

/// One test: a suite, a case, or a parameter of a case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Test {
    pub name: String,
    /// The number on its result line (0 until seen).
    pub number: usize,
    pub outcome: Outcome,
    /// `1..N`, when given.
    pub plan: Option<usize>,
    /// Diagnostic and other lines that came before its result, indentation removed.
    pub diagnostics: Vec<String>,
    pub children: Vec<Test>,
}

impl Test {
    fn new(name: &str) -> Test {
        Test {
            name: name.to_string(),
            number: 0,
            outcome: Outcome::Missing,
            plan: None,
            diagnostics: Vec::new(),
            children: Vec::new(),
        }
    }

    /// The reportable cases below this test, each with its path of names (`suite`, `case`,
    /// and for parameterized cases the parameter). A test with no children that is
    /// [`Outcome::Missing`], or whose plan promised more children than reported, yields an
    /// extra failing leaf named after the test so a truncated log is never a pass.
    pub fn leaves(&self) -> Vec<Leaf> {
        let mut out = Vec::new();
        self.collect(&mut Vec::new(), &mut out);
        out
    }

    fn collect(&self, path: &mut Vec<String>, out: &mut Vec<Leaf>) {
        path.push(self.name.clone());
        if self.children.is_empty() {
            // KUnit's attribute lines (`# adds.speed: normal`) say nothing about the result.
            let attr = format!("# {}.", self.name);
            let diagnostics = self
                .diagnostics
                .iter()
                .filter(|d| !d.starts_with(&attr))
                .cloned()
                .collect();
            out.push(Leaf {
                path: path.clone(),
                outcome: self.outcome.clone(),
                diagnostics,
            });
        } else {
            for c in &self.children {
                c.collect(path, out);
            }
            let short = self.plan.is_some_and(|p| p > self.children.len());
            if short || (self.outcome == Outcome::Missing) {
                let mut diagnostics = self.diagnostics.clone();
                diagnostics.push(match self.plan {
                    Some(p) => format!(
                        "the log ended before `{}` finished: {} of {} results",
                        self.name,
                        self.children.len(),
                        p
                    ),
                    None => format!("the log ended before `{}` finished", self.name),
                });
                out.push(Leaf {
                    path: path.clone(),
                    outcome: Outcome::Missing,
                    diagnostics,
                });
            } else if self.outcome == Outcome::Fail
                && self.children.iter().all(|c| !c.outcome.is_failure())
            {
                // The suite failed on its own (e.g. its init or exit): report that too.
                out.push(Leaf {
                    path: path.clone(),
                    outcome: Outcome::Fail,
                    diagnostics: self.diagnostics.clone(),
                });
            }
        }
        path.pop();
    }
}

/// One reportable case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leaf {
    pub path: Vec<String>,
    pub outcome: Outcome,
    pub diagnostics: Vec<String>,
}

impl Leaf {
    /// `suite::case`.
    pub fn name(&self) -> String {
        self.path.join("::")
    }
}

enum Line<'a> {
    Version,
    Plan(usize),
    Subtest(&'a str),
    Result {
        ok: bool,
        number: usize,
        desc: &'a str,
        directive: Option<(&'a str, &'a str)>,
    },
    Other(&'a str),
}

fn classify(text: &str) -> Line<'_> {
    if text.starts_with("KTAP version ") || text.starts_with("TAP version ") {
        return Line::Version;
    }
    if let Some(n) = text.strip_prefix("1..").and_then(|n| n.trim().parse().ok()) {
        return Line::Plan(n);
    }
    if let Some(name) = text.strip_prefix("# Subtest:") {
        return Line::Subtest(name.trim());
    }
    let (ok, rest) = if let Some(r) = text.strip_prefix("not ok ") {
        (false, r)
    } else if let Some(r) = text.strip_prefix("ok ") {
        (true, r)
    } else {
        return Line::Other(text);
    };
    let digits = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    let Ok(number) = rest[..digits].parse() else {
        return Line::Other(text);
    };
    let rest = rest[digits..].trim_start();
    let rest = rest.strip_prefix("- ").unwrap_or(rest);
    let (desc, directive) = match rest
        .find(" # ")
        .map(|i| (&rest[..i], &rest[i + 3..]))
        .or_else(|| rest.strip_prefix("# ").map(|d| ("", d)))
    {
        Some((desc, d)) => {
            let word_end = d.find(' ').unwrap_or(d.len());
            (desc.trim(), Some((&d[..word_end], d[word_end..].trim())))
        }
        None => (rest.trim(), None),
    };
    Line::Result {
        ok,
        number,
        desc,
        directive,
    }
}

/// Remove what the kernel log adds in front of a message: a syslog level `<6>` and a
/// timestamp `[    1.234567]` (and one space after it).
pub fn strip_log_prefix(line: &str) -> &str {
    let mut l = line.trim_end();
    if l.starts_with('<') {
        if let Some(end) = l.find('>') {
            if l[1..end].chars().all(|c| c.is_ascii_digit()) && end > 1 {
                l = &l[end + 1..];
            }
        }
    }
    if l.starts_with('[') {
        if let Some(end) = l.find(']') {
            if l[1..end]
                .trim()
                .chars()
                .all(|c| c.is_ascii_digit() || c == '.')
                && end > 1
            {
                l = &l[end + 1..];
                l = l.strip_prefix(' ').unwrap_or(l);
            }
        }
    }
    l
}

/// Parse every KTAP document in a kernel log. Lines outside documents are ignored. Each
/// returned root stands for one document; its children are the suites.
pub fn parse<S: AsRef<str>>(log: &[S]) -> Vec<Test> {
    let mut docs = Vec::new();
    let mut p = Parser::default();
    for raw in log {
        let line = strip_log_prefix(raw.as_ref());
        let indent = line.len() - line.trim_start().len();
        let text = line.trim();
        if p.stack.is_empty() {
            // KUnit starts a module's document at the left margin.
            if indent == 0 && matches!(classify(text), Line::Version) {
                p.open(indent);
            }
            continue;
        }
        if indent < p.base {
            // Less indented than the document: a kernel message, not KTAP.
            continue;
        }
        let level = (indent - p.base) / 4;
        // KUnit indents by four spaces a level: anything else is free text, however much it
        // looks like a header or a result.
        let kind = if (indent - p.base).is_multiple_of(4) {
            classify(text)
        } else {
            Line::Other(text)
        };
        match kind {
            Line::Version if level == 0 => {
                if let Some(d) = p.finish() {
                    docs.push(d);
                }
                p.open(indent);
            }
            Line::Version => p.subtest(level, None),
            Line::Subtest(name) => p.subtest(level, Some(name)),
            Line::Plan(n) => {
                if let Some(t) = p.stack.get_mut(level) {
                    // Lines between a test's header and its plan (KUnit's `# speed:`,
                    // `# module:` attributes) are the test's own.
                    let header = std::mem::take(&mut t.1);
                    t.0.diagnostics.extend(header);
                    t.0.plan = Some(n);
                }
            }
            Line::Result {
                ok,
                number,
                desc,
                directive,
            } => {
                let outcome = match directive {
                    Some((d, reason)) if d.eq_ignore_ascii_case("SKIP") => {
                        Outcome::Skip(reason.to_string())
                    }
                    Some((d, reason)) if d.eq_ignore_ascii_case("TODO") => {
                        Outcome::Todo(reason.to_string())
                    }
                    _ if ok => Outcome::Pass,
                    _ => Outcome::Fail,
                };
                p.result(level, number, desc, outcome);
                if level == 0 && p.stack.len() == 1 {
                    // The root of a one-suite document has no result line of its own;
                    // finishing here keeps later kernel messages out of it.
                    if p.stack[0]
                        .0
                        .plan
                        .is_some_and(|n| p.stack[0].0.children.len() >= n)
                    {
                        if let Some(d) = p.finish() {
                            docs.push(d);
                        }
                    }
                }
            }
            Line::Other(text) => {
                if text.is_empty() {
                    continue;
                }
                let level = level.min(p.stack.len() - 1);
                p.stack[level].1.push(text.to_string());
            }
        }
    }
    if let Some(d) = p.finish() {
        docs.push(d);
    }
    docs
}

#[derive(Default)]
struct Parser {
    /// Open tests, outermost first, each with the lines pending for its next child result.
    stack: Vec<(Test, Vec<String>, bool)>,
    base: usize,
}

impl Parser {
    fn open(&mut self, indent: usize) {
        self.base = indent;
        self.stack = vec![(Test::new(""), Vec::new(), true)];
    }

    /// A `KTAP version` (name `None`) or `# Subtest:` line for a test at `level`.
    fn subtest(&mut self, level: usize, name: Option<&str>) {
        // Close deeper tests that never got a result (their parent's result will not come
        // either, but their children are kept).
        while self.stack.len() > level + 1 {
            self.close_missing();
        }
        if self.stack.len() == level + 1 && level > 0 {
            let top = &mut self.stack[level];
            let fresh = top.0.children.is_empty() && top.0.plan.is_none();
            if fresh && (name.is_none() || top.0.name.is_empty()) {
                if let Some(n) = name {
                    top.0.name = n.to_string();
                }
                return;
            }
            self.close_missing();
        }
        if self.stack.len() == level && level > 0 {
            self.stack
                .push((Test::new(name.unwrap_or("")), Vec::new(), true));
        }
    }

    fn close_missing(&mut self) {
        if let Some((mut t, pending, _)) = self.stack.pop() {
            t.diagnostics.extend(pending);
            if let Some(parent) = self.stack.last_mut() {
                parent.0.children.push(t);
            }
        }
    }

    fn result(&mut self, level: usize, number: usize, desc: &str, outcome: Outcome) {
        while self.stack.len() > level + 2 {
            self.close_missing();
        }
        if level >= self.stack.len() {
            return;
        }
        let mut test = if self.stack.len() == level + 2 {
            let (mut t, pending, _) = self.stack.pop().expect("len checked");
            t.diagnostics.extend(pending);
            if t.name.is_empty() {
                t.name = desc.to_string();
            }
            t
        } else {
            Test::new(desc)
        };
        test.number = number;
        test.outcome = outcome;
        let parent = &mut self.stack[level];
        test.diagnostics.splice(0..0, std::mem::take(&mut parent.1));
        parent.0.children.push(test);
    }

    fn finish(&mut self) -> Option<Test> {
        while self.stack.len() > 1 {
            self.close_missing();
        }
        let (mut root, pending, _) = self.stack.pop()?;
        root.diagnostics.extend(pending);
        if root.plan.is_some_and(|n| root.children.len() >= n) || root.plan.is_none() {
            root.outcome = if root.children.iter().any(|c| c.outcome.is_failure()) {
                Outcome::Fail
            } else {
                Outcome::Pass
            };
        }
        Some(root)
    }
}

/// All reportable cases of all documents in `log`.
pub fn cases<S: AsRef<str>>(log: &[S]) -> Vec<Leaf> {
    let mut out = Vec::new();
    for doc in parse(log) {
        for suite in &doc.children {
            out.extend(suite.leaves());
        }
        if doc.plan.is_some_and(|n| n > doc.children.len()) {
            out.push(Leaf {
                path: vec!["<ktap>".into()],
                outcome: Outcome::Missing,
                diagnostics: vec![format!(
                    "the log ended after {} of {} suites",
                    doc.children.len(),
                    doc.plan.unwrap_or(0)
                )],
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(s: &str) -> Vec<&str> {
        s.lines().collect()
    }

    const HELLO: &str = "\
[    1.000000] hello: loaded
KTAP version 1
1..1
    KTAP version 1
    # Subtest: hello_suite
    # speed: normal
    1..2
    ok 1 adds
    # fails: ASSERTION FAILED at hello_main.rs:44
    Expected 2 + 2 == 5 to be true, but is false
    # fails.speed: normal
    not ok 2 fails
# hello_suite: pass:1 fail:1 skip:0 total:2
# Totals: pass:1 fail:1 skip:0 total:2
not ok 1 hello_suite
hello: unloaded
";

    #[test]
    fn one_suite_pass_and_fail() {
        let docs = parse(&lines(HELLO));
        assert_eq!(docs.len(), 1);
        let suite = &docs[0].children[0];
        assert_eq!(suite.name, "hello_suite");
        assert_eq!(suite.outcome, Outcome::Fail);
        assert_eq!(suite.plan, Some(2));
        let c = cases(&lines(HELLO));
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].name(), "hello_suite::adds");
        assert_eq!(c[0].outcome, Outcome::Pass);
        assert!(c[0].diagnostics.is_empty());
        assert_eq!(c[1].name(), "hello_suite::fails");
        assert_eq!(c[1].outcome, Outcome::Fail);
        assert_eq!(
            c[1].diagnostics,
            [
                "# fails: ASSERTION FAILED at hello_main.rs:44",
                "Expected 2 + 2 == 5 to be true, but is false"
            ]
        );
        // Kernel messages after the document are not part of it.
        assert!(!format!("{:?}", docs[0]).contains("unloaded"));
    }

    #[test]
    fn nested_parameterized_cases() {
        let log = "\
KTAP version 1
1..1
    KTAP version 1
    # Subtest: math
    1..2
        KTAP version 1
        # Subtest: add_param
        ok 1 zero
        not ok 2 one
    # add_param: pass:1 fail:1 skip:0 total:2
    not ok 1 add_param
    ok 2 plain
not ok 1 math
";
        let c = cases(&lines(log));
        let names: Vec<_> = c.iter().map(|l| (l.name(), l.outcome.clone())).collect();
        assert_eq!(
            names,
            [
                ("math::add_param::zero".to_string(), Outcome::Pass),
                ("math::add_param::one".to_string(), Outcome::Fail),
                ("math::plain".to_string(), Outcome::Pass),
            ]
        );
    }

    #[test]
    fn skip_and_todo_directives() {
        let log = "\
KTAP version 1
1..1
    KTAP version 1
    # Subtest: s
    1..4
    ok 1 a # SKIP needs hardware
    not ok 2 b # TODO not written yet
    ok 3 - c
    ok 4 d #SKIP
ok 1 s
";
        let c = cases(&lines(log));
        assert_eq!(c[0].outcome, Outcome::Skip("needs hardware".into()));
        assert_eq!(c[1].outcome, Outcome::Todo("not written yet".into()));
        assert_eq!(c[2].name(), "s::c");
        assert_eq!(c[2].outcome, Outcome::Pass);
        // `#SKIP` without a space is part of the description, as ktap.rst says.
        assert_eq!(c[3].path[1], "d #SKIP");
    }

    #[test]
    fn timestamps_and_levels_are_stripped() {
        assert_eq!(strip_log_prefix("<6>[    2.5] ok 1 x"), "ok 1 x");
        assert_eq!(strip_log_prefix("[    2.5]     ok 1 x"), "    ok 1 x");
        assert_eq!(strip_log_prefix("[x] y"), "[x] y");
        let log: Vec<String> = HELLO
            .lines()
            .map(|l| format!("[   12.345678] {l}"))
            .collect();
        assert_eq!(cases(&log).len(), 2);
    }

    #[test]
    fn truncated_log_is_a_failure() {
        let log = "\
KTAP version 1
1..1
    KTAP version 1
    # Subtest: hello_suite
    1..3
    ok 1 adds
    # hangs: about to hang
";
        let c = cases(&lines(log));
        assert_eq!(c.len(), 2, "{c:?}");
        assert_eq!(c[0].outcome, Outcome::Pass);
        assert_eq!(c[1].name(), "hello_suite");
        assert_eq!(c[1].outcome, Outcome::Missing);
        assert!(
            c[1].diagnostics
                .iter()
                .any(|d| d.contains("1 of 3 results")),
            "{c:?}"
        );
        assert!(
            c[1].diagnostics.iter().any(|d| d.contains("about to hang")),
            "{c:?}"
        );
    }

    #[test]
    fn suite_without_results_yet() {
        let c = cases(&lines(
            "KTAP version 1\n1..1\n    KTAP version 1\n    # Subtest: s\n    1..1\n",
        ));
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].outcome, Outcome::Missing);
    }

    #[test]
    fn two_documents_and_interleaved_messages() {
        let mut log = String::from(HELLO);
        log.push_str(
            "random: crng init done\nKTAP version 1\n1..1\n    KTAP version 1\n    # Subtest: other\n    1..1\n    ok 1 x\nok 1 other\n",
        );
        let c = cases(&lines(&log));
        assert_eq!(
            c.iter().map(|l| l.name()).collect::<Vec<_>>(),
            ["hello_suite::adds", "hello_suite::fails", "other::x"]
        );
    }

    #[test]
    fn odd_indents_are_text_not_structure() {
        // A module printing KTAP-looking lines from inside its test case, at indents KUnit
        // never uses, changes neither the structure nor the verdict.
        let log = "\
KTAP version 1
1..1
    KTAP version 1
    # Subtest: s
    1..2
  KTAP version 1
  1..1
      ok 1 forged
   not ok 7 forged_too
    not ok 1 fails
    ok 2 passes
not ok 1 s
";
        let c = cases(&lines(log));
        let names: Vec<_> = c.iter().map(|l| (l.name(), l.outcome.clone())).collect();
        assert_eq!(
            names,
            [
                ("s::fails".to_string(), Outcome::Fail),
                ("s::passes".to_string(), Outcome::Pass),
            ]
        );
        assert!(c[0].diagnostics.iter().any(|d| d == "ok 1 forged"), "{c:?}");
        // A document never starts at an indent.
        assert!(cases(&lines("  KTAP version 1\n  1..1\n  ok 1 x\n")).is_empty());
    }

    #[test]
    fn garbage_is_not_ktap() {
        let c = cases(&["\u{fffd}\u{fffd}ok", "not ok", "1..x", "ok one"]);
        assert!(c.is_empty());
        // Garbage inside a document becomes diagnostics, never results.
        let c = cases(&lines("KTAP version 1\n1..1\n    # Subtest: s\n    1..1\n    \u{fffd}\u{fffd}\n    ok 1 a\nok 1 s\n"));
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].outcome, Outcome::Pass);
        assert_eq!(c[0].diagnostics, ["\u{fffd}\u{fffd}"]);
    }
}
