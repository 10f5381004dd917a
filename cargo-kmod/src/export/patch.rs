//! The patch an export amounts to, in `git format-patch`'s shape, for `checkpatch.pl`.

/// One file of the patch: its path in the tree, its text before (`None`: a new file) and
/// after.
#[derive(Debug, Clone)]
pub struct Change<'a> {
    pub path: &'a str,
    pub before: Option<&'a str>,
    pub after: &'a str,
}

/// The mail header and message of the patch.
#[derive(Debug, Clone)]
pub struct Message<'a> {
    /// `Name <email>`: `From:` and, when given, `Signed-off-by:`.
    pub from: &'a str,
    pub subject: &'a str,
    pub body: &'a str,
    pub signoff: Option<&'a str>,
}

/// The patch: a `format-patch` mail with a diffstat-free `---` and one `diff --git` per
/// changed file, in path order.
pub fn render(msg: &Message<'_>, changes: &[Change<'_>]) -> String {
    let mut out = String::new();
    out += "From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001\n";
    out += &format!("From: {}\n", msg.from);
    out += "Date: Thu, 1 Jan 1970 00:00:00 +0000\n";
    out += &format!("Subject: [PATCH] {}\n\n", msg.subject);
    out += msg.body.trim_end();
    out += "\n\n";
    if let Some(s) = msg.signoff {
        out += &format!("Signed-off-by: {s}\n");
    }
    out += "---\n";
    let mut changes: Vec<&Change<'_>> = changes
        .iter()
        .filter(|c| c.before != Some(c.after))
        .collect();
    changes.sort_by_key(|c| c.path);
    let mut bodies = String::new();
    let mut stat = Vec::new();
    for c in changes {
        bodies += &format!("diff --git a/{0} b/{0}\n", c.path);
        let body = match c.before {
            None => {
                bodies += "new file mode 100644\n--- /dev/null\n";
                bodies += &format!("+++ b/{}\n", c.path);
                let lines = split(c.after);
                let mut body = format!("@@ -0,0 +1,{} @@\n", lines.len());
                for l in lines {
                    body += &format!("+{l}\n");
                }
                body
            }
            Some(before) => {
                bodies += &format!("--- a/{0}\n+++ b/{0}\n", c.path);
                hunks(&split(before), &split(c.after), 3)
            }
        };
        let count = |p: char| {
            body.lines()
                .filter(|l| l.starts_with(p) && !l.starts_with("@@"))
                .count()
        };
        stat.push((c.path, count('+'), count('-')));
        bodies += &body;
    }
    // The diffstat, as `format-patch` writes it (checkpatch reads `MAINTAINERS |` there).
    let width = stat.iter().map(|s| s.0.len()).max().unwrap_or(0);
    let (mut plus, mut minus) = (0, 0);
    for (path, a, d) in &stat {
        out += &format!(
            " {path:<width$} | {:>3} {}{}\n",
            a + d,
            "+".repeat((*a).min(50)),
            "-".repeat((*d).min(50))
        );
        plus += a;
        minus += d;
    }
    out += &format!(
        " {} files changed, {plus} insertions(+), {minus} deletions(-)\n\n",
        stat.len()
    );
    out += &bodies;
    out += "-- \n2.0\n\n";
    out
}

fn split(text: &str) -> Vec<&str> {
    text.lines().collect()
}

/// One line of a diff: kept, removed, added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Keep(usize, usize),
    Del(usize),
    Add(usize),
}

/// The unified-diff hunks from `a` to `b` with `context` lines (a longest common
/// subsequence; the files are a parent `Kconfig` or `Makefile`, hundreds of lines).
fn hunks(a: &[&str], b: &[&str], context: usize) -> String {
    // The common head and tail are kept lines; the subsequence table covers only the middle
    // (`MAINTAINERS` has tens of thousands of lines, an export adds a few).
    let head = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let tail = a[head..]
        .iter()
        .rev()
        .zip(b[head..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let (n, m) = (a.len() - tail, b.len() - tail);
    let (rows, cols) = (n - head, m - head);
    let mut lcs = vec![vec![0u32; cols + 1]; rows + 1];
    for i in (0..rows).rev() {
        for j in (0..cols).rev() {
            lcs[i][j] = if a[head + i] == b[head + j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let lcs_at = |i: usize, j: usize| lcs[i - head][j - head];
    let mut ops: Vec<Op> = (0..head).map(|k| Op::Keep(k, k)).collect();
    let (mut i, mut j) = (head, head);
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            ops.push(Op::Keep(i, j));
            i += 1;
            j += 1;
        } else if i < n && (j == m || lcs_at(i + 1, j) >= lcs_at(i, j + 1)) {
            ops.push(Op::Del(i));
            i += 1;
        } else {
            ops.push(Op::Add(j));
            j += 1;
        }
    }
    ops.extend((0..tail).map(|k| Op::Keep(n + k, m + k)));
    // Group changes with their context into hunks.
    let changed: Vec<usize> = ops
        .iter()
        .enumerate()
        .filter(|(_, o)| !matches!(o, Op::Keep(..)))
        .map(|(k, _)| k)
        .collect();
    let mut out = String::new();
    let mut k = 0;
    while k < changed.len() {
        let start = changed[k].saturating_sub(context);
        let mut end = changed[k];
        while k < changed.len() && changed[k] <= end + 2 * context + 1 {
            end = changed[k];
            k += 1;
        }
        let end = (end + context + 1).min(ops.len());
        let span = &ops[start..end];
        // Line numbers where the hunk starts in each file (1-based).
        let (mut a0, mut b0) = (None, None);
        let (mut na, mut nb) = (0, 0);
        let (mut a_before, mut b_before) = (0, 0);
        for o in &ops[..start] {
            match o {
                Op::Keep(..) => {
                    a_before += 1;
                    b_before += 1;
                }
                Op::Del(_) => a_before += 1,
                Op::Add(_) => b_before += 1,
            }
        }
        let mut body = String::new();
        for o in span {
            match *o {
                Op::Keep(x, y) => {
                    a0.get_or_insert(x + 1);
                    b0.get_or_insert(y + 1);
                    na += 1;
                    nb += 1;
                    body += &format!(" {}\n", a[x]);
                }
                Op::Del(x) => {
                    a0.get_or_insert(x + 1);
                    na += 1;
                    body += &format!("-{}\n", a[x]);
                }
                Op::Add(y) => {
                    b0.get_or_insert(y + 1);
                    nb += 1;
                    body += &format!("+{}\n", b[y]);
                }
            }
        }
        let a_start = if na == 0 {
            a_before
        } else {
            a0.unwrap_or(a_before + 1)
        };
        let b_start = if nb == 0 {
            b_before
        } else {
            b0.unwrap_or(b_before + 1)
        };
        out += &format!("@@ -{a_start},{na} +{b_start},{nb} @@\n{body}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insertions_get_three_lines_of_context() {
        let a: Vec<String> = (1..=10).map(|i| format!("l{i}")).collect();
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        let mut b = a.clone();
        b.insert(9, "new");
        assert_eq!(
            hunks(&a, &b, 3),
            "@@ -7,4 +7,5 @@\n l7\n l8\n l9\n+new\n l10\n"
        );
        let mut c = a.clone();
        c.push("end");
        assert_eq!(hunks(&a, &c, 3), "@@ -8,3 +8,4 @@\n l8\n l9\n l10\n+end\n");
        let mut d = a.clone();
        d[0] = "first";
        d.insert(5, "mid");
        assert_eq!(
            hunks(&a, &d, 1),
            "@@ -1,2 +1,2 @@\n-l1\n+first\n l2\n@@ -5,2 +5,3 @@\n l5\n+mid\n l6\n"
        );
    }

    #[test]
    fn new_files_and_the_mail_header() {
        let p = render(
            &Message {
                from: "Ada <ada@example.com>",
                subject: "misc: hello: add a Rust module",
                body: "A module.",
                signoff: Some("Ada <ada@example.com>"),
            },
            &[
                Change {
                    path: "drivers/misc/hello/Makefile",
                    before: None,
                    after: "obj-y += hello.o\n",
                },
                Change {
                    path: "drivers/misc/Makefile",
                    before: Some("a\n"),
                    after: "a\nb\n",
                },
                Change {
                    path: "same",
                    before: Some("x\n"),
                    after: "x\n",
                },
            ],
        );
        assert_eq!(
            p,
            "From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001\nFrom: Ada <ada@example.com>\nDate: Thu, 1 Jan 1970 00:00:00 +0000\nSubject: [PATCH] misc: hello: add a Rust module\n\nA module.\n\nSigned-off-by: Ada <ada@example.com>\n---\n drivers/misc/Makefile       |   1 +\n drivers/misc/hello/Makefile |   1 +\n 2 files changed, 2 insertions(+), 0 deletions(-)\n\ndiff --git a/drivers/misc/Makefile b/drivers/misc/Makefile\n--- a/drivers/misc/Makefile\n+++ b/drivers/misc/Makefile\n@@ -1,1 +1,2 @@\n a\n+b\ndiff --git a/drivers/misc/hello/Makefile b/drivers/misc/hello/Makefile\nnew file mode 100644\n--- /dev/null\n+++ b/drivers/misc/hello/Makefile\n@@ -0,0 +1,1 @@\n+obj-y += hello.o\n-- \n2.0\n\n"
        );
    }
}
