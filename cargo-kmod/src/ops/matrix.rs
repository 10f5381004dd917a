//! `--matrix`: one command (`build`, `test`, `package`) over every cell of the workspace's
//! matrix on this machine (docs/matrix.md).
//!
//! ```text
//! cells (crate::matrix) ─► trees: prepared? else `cargo kmod init …` (one at a time)
//!                       ─► cells in parallel (-j): `cargo-kmod kmod <command> <tree> <args>`
//!                          each its own process, its output in target/kmod/matrix/<cell>.log,
//!                          its JSON events read back ─► one result per cell, as it finishes
//! ```
//!
//! A cell is its own cargo-kmod process, exactly the command a developer (or a CI job) runs
//! for that tree: it builds into its tree's own directory ([`crate::ops::build`]), boots its
//! own qemu and cannot disturb another cell. Scheduling stays here, with no daemon: the CI
//! engines and Kubernetes get the same cells as files ([`crate::matrix::ci`],
//! [`crate::matrix::kmm`]).

use std::collections::VecDeque;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use anyhow::Result;
use serde_json::Value;

use crate::context::{ModuleRequest, Scope, Selection, Session, TreeSelection};
use crate::kernel::home::Home;
use crate::manifest::Workspace;
use crate::matrix::{self, Cell, CellTree, Outcome, Row};

/// The command each cell runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Build,
    Test,
    Package,
}

impl Kind {
    pub fn subcommand(self) -> &'static str {
        match self {
            Kind::Build => "build",
            Kind::Test => "test",
            Kind::Package => "package",
        }
    }
}

/// A matrix run, as plain data.
#[derive(Debug, Clone)]
pub struct MatrixRequest {
    pub kind: Kind,
    /// `--targets`: the cells to run (empty: all).
    pub cells: Vec<String>,
    /// Cells at once (`-j`); `None`: what the machine's cores and memory allow.
    pub jobs: Option<usize>,
    pub fail_fast: bool,
    /// Do not prepare missing trees: such cells are not run, with the `init` that prepares
    /// them.
    pub no_prepare: bool,
    /// The command's other arguments, passed to every cell (packages, features, filter, ...).
    pub args: Vec<OsString>,
}

/// How one cell ended.
#[derive(Debug, Clone)]
pub struct CellResult {
    pub cell: Cell,
    pub row: Row,
    /// The cell's output (its process's stdout and stderr).
    pub log: PathBuf,
    /// Why it failed or did not run, in one line.
    pub message: Option<String>,
    /// The cell's JSON events (`kmod-artifact`, `suite`, ...), as data.
    pub events: Vec<Value>,
    /// The tree the cell ran on, when it was found.
    pub tree: Option<PathBuf>,
}

/// The cells of the workspace that `names` selects (all without names).
pub fn cells(ws: &Workspace, names: &[String]) -> Result<Vec<Cell>> {
    let file = ws.root.join("Cargo.toml");
    matrix::select(
        matrix::cells(&ws.targets, ws.matrix.as_ref(), &file)?,
        names,
    )
}

/// How many cells run at once by default: one per core, fewer when the memory available
/// would not hold a build and a guest for each (about 1.5 GiB).
pub fn default_jobs() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mem_kib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("MemAvailable:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse::<u64>().ok())
        })
        .unwrap_or(u64::MAX);
    let by_mem = (mem_kib / (1536 * 1024)).max(1) as usize;
    cores.min(by_mem).max(1)
}

/// The dev tree of a dev cell, when prepared: the newest prepared dev tree of the arch whose
/// release is the cell's kernel.
fn dev_tree(home: &Home, kernel: &str, arch: crate::kernel::Arch) -> Option<PathBuf> {
    home.list()
        .into_iter()
        .find(|t| {
            t.meta.arch == arch
                && t.meta.is_dev_tree()
                && matrix::release_matches(kernel, &t.meta.release)
        })
        .map(|t| t.dir)
}

/// Debian's `linux-source-<kernel>` tarball, the source a dev cell's tree is prepared from.
fn dev_source(kernel: &str) -> Option<PathBuf> {
    let want = format!("linux-source-{kernel}.tar");
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/src")
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&want))
        })
        .collect();
    found.sort();
    found.into_iter().next()
}

/// The tree a cell runs on when it is prepared: `Ok(dir)`, else the reason.
fn find_tree(
    session: &Session,
    home: &Home,
    select: &Selection,
    scope: &Scope,
    cell: &Cell,
) -> std::result::Result<PathBuf, String> {
    match &cell.tree {
        CellTree::Dev { kernel, arch } => dev_tree(home, kernel, *arch)
            .ok_or_else(|| format!("no {arch} dev tree of Linux {kernel} is prepared")),
        CellTree::Target { target, .. } => {
            let trees = TreeSelection {
                target: Some(target.clone()),
                ..TreeSelection::default()
            };
            let scope = Scope {
                workspace: scope.workspace.clone(),
                target: scope
                    .workspace
                    .as_ref()
                    .and_then(|ws| ws.targets.get(target).cloned()),
            };
            crate::context::resolve(session, select, &trees, &ModuleRequest::None, Some(scope))
                .map(|r| r.tree.dir)
                .map_err(|e| crate::error::render(&e).0)
        }
    }
}

/// The program every cell runs: this very cargo-kmod.
fn program() -> PathBuf {
    std::env::current_exe().unwrap_or_else(|_| PathBuf::from("cargo-kmod"))
}

/// Run `kmod <args>` as a cell's process, its output appended to `log`; returns its JSON
/// events and whether it succeeded (with its last line of error when not).
fn run_child(
    session: &Session,
    args: &[OsString],
    log: &Path,
) -> (Vec<Value>, std::result::Result<(), String>) {
    let sh = match xshell::Shell::new() {
        Ok(sh) => sh,
        Err(e) => return (Vec::new(), Err(e.to_string())),
    };
    let exe = program();
    let cmd = xshell::cmd!(sh, "{exe} kmod {args...}");
    let mut events = Vec::new();
    let mut last_error: Option<String> = None;
    let outcome = crate::process::run_logged(&session.shell, cmd, log, |l| {
        if l.starts_with('{') {
            if let Ok(v) = serde_json::from_str::<Value>(l) {
                events.push(v);
                return;
            }
        }
        if let Some(e) = l.strip_prefix("error: ") {
            last_error = Some(crate::text::escape(e).into_owned());
        }
    });
    let outcome = outcome.map_err(|e| {
        last_error.unwrap_or_else(|| {
            crate::error::render(&e)
                .0
                .lines()
                .next()
                .unwrap_or("")
                .to_string()
        })
    });
    (events, outcome)
}

/// Run the matrix: prepare the missing trees (one at a time: each already uses every core),
/// then the cells, `jobs` at once, calling `done` as each ends. Results in the matrix's order.
pub fn run(
    session: &Session,
    select: &Selection,
    req: &MatrixRequest,
    done: &(dyn Fn(&CellResult) + Sync),
) -> Result<Vec<CellResult>> {
    let shell = &session.shell;
    let scope = Scope::read(session, select, &TreeSelection::default(), true)?;
    let ws = scope.workspace.as_ref().expect("read for the matrix");
    let cells = cells(ws, &req.cells)?;
    let home = session.home()?;
    let dir = ws.target_dir.join("kmod").join("matrix");
    home.ensure_dir(&dir)?;
    let build = req.kind == Kind::Build;

    // Trees first.
    let mut queue: VecDeque<(usize, Cell, PathBuf)> = VecDeque::new();
    let mut results: Vec<Option<CellResult>> = vec![None; cells.len()];
    for (i, cell) in cells.iter().enumerate() {
        let log = dir.join(format!("{}.log", cell.name));
        let _ = std::fs::remove_file(&log);
        let not_done = |outcome: Outcome, message: String| CellResult {
            cell: cell.clone(),
            row: Row {
                cell: cell.name.clone(),
                kernel: String::new(),
                arch: cell
                    .arch()
                    .map(|a| a.name().to_string())
                    .unwrap_or_default(),
                machine: String::new(),
                outcome,
                seconds: 0.0,
            },
            log: log.clone(),
            message: Some(message),
            events: Vec::new(),
            tree: None,
        };
        let tree = match find_tree(session, &home, select, &scope, cell) {
            Ok(t) => t,
            Err(why) => {
                let source = match &cell.tree {
                    CellTree::Dev { kernel, .. } => dev_source(kernel),
                    CellTree::Target { .. } => None,
                };
                let init = cell.init_args(source.as_deref());
                let command = format!(
                    "cargo kmod {}",
                    init.iter()
                        .map(|w| crate::process::shell_word(w))
                        .collect::<Vec<_>>()
                        .join(" ")
                );
                if req.no_prepare {
                    let r = not_done(
                        Outcome::NotRun,
                        format!("{why}; prepare it with `{command}`"),
                    );
                    done(&r);
                    results[i] = Some(r);
                    continue;
                }
                if matches!(cell.tree, CellTree::Dev { .. }) && source.is_none() {
                    let r = not_done(
                        Outcome::Failed,
                        format!("{why}, and `/usr/src` has no `linux-source-{}.tar.*` to prepare it from (Debian's `linux-source-{}` package)", match &cell.tree { CellTree::Dev { kernel, .. } => kernel.as_str(), _ => "" }, match &cell.tree { CellTree::Dev { kernel, .. } => kernel.as_str(), _ => "" }),
                    );
                    done(&r);
                    results[i] = Some(r);
                    continue;
                }
                shell.status(
                    "Preparing",
                    format_args!("the tree of cell `{}`: `{command}`", cell.name),
                );
                let mut args: Vec<OsString> = init.into_iter().map(OsString::from).collect();
                if let (CellTree::Target { .. }, Some(m)) = (&cell.tree, &select.manifest_path) {
                    args.push("--manifest-path".into());
                    args.push(m.into());
                }
                let (_, ran) = run_child(session, &args, &log);
                match ran
                    .map_err(|e| format!("`{command}` failed: {e}"))
                    .and_then(|()| find_tree(session, &home, select, &scope, cell))
                {
                    Ok(t) => t,
                    Err(e) => {
                        let r = not_done(Outcome::Failed, e);
                        done(&r);
                        results[i] = Some(r);
                        continue;
                    }
                }
            }
        };
        queue.push_back((i, cell.clone(), tree));
    }

    // Then the cells, `jobs` at once.
    let jobs = req.jobs.unwrap_or_else(default_jobs).max(1);
    let stop = AtomicBool::new(false);
    let queue = Mutex::new(queue);
    let results = Mutex::new(results);
    std::thread::scope(|s| {
        for _ in 0..jobs.min(cells.len()) {
            s.spawn(|| loop {
                let next = queue.lock().expect("queue").pop_front();
                let Some((i, cell, tree)) = next else { break };
                let log = dir.join(format!("{}.log", cell.name));
                let result = if stop.load(Ordering::SeqCst) {
                    CellResult {
                        row: Row {
                            cell: cell.name.clone(),
                            kernel: String::new(),
                            arch: cell
                                .arch()
                                .map(|a| a.name().to_string())
                                .unwrap_or_default(),
                            machine: String::new(),
                            outcome: Outcome::NotRun,
                            seconds: 0.0,
                        },
                        cell,
                        log,
                        message: Some(
                            "not run: `--fail-fast` stopped the matrix after a cell failed"
                                .to_string(),
                        ),
                        events: Vec::new(),
                        tree: Some(tree),
                    }
                } else {
                    let r = run_cell(session, req, &cell, &tree, &log, build);
                    if r.row.outcome == Outcome::Failed && req.fail_fast {
                        stop.store(true, Ordering::SeqCst);
                    }
                    r
                };
                done(&result);
                results.lock().expect("results")[i] = Some(result);
            });
        }
    });
    Ok(results
        .into_inner()
        .expect("results")
        .into_iter()
        .flatten()
        .collect())
}

/// One cell: its process, its events, its row.
fn run_cell(
    session: &Session,
    req: &MatrixRequest,
    cell: &Cell,
    tree: &Path,
    log: &Path,
    build: bool,
) -> CellResult {
    let started = Instant::now();
    let mut args: Vec<OsString> = vec![req.kind.subcommand().into()];
    match &cell.tree {
        CellTree::Target { target, .. } => {
            args.push("--target".into());
            args.push(target.into());
        }
        CellTree::Dev { .. } => {
            args.push("--kdir".into());
            args.push(tree.into());
        }
    }
    if req.kind == Kind::Package {
        // Each cell's packages apart: two trees may share a release and an arch.
        let out = log
            .parent()
            .and_then(Path::parent)
            .map(|kmod| kmod.join("package").join(&cell.name))
            .unwrap_or_default();
        args.push("--out-dir".into());
        args.push(out.into());
    }
    args.extend(req.args.iter().cloned());
    args.extend(["--message-format", "json", "--color", "never"].map(OsString::from));
    let (events, ran) = run_child(session, &args, log);
    let opened = crate::kernel::KernelTree::open(tree).ok();
    let suite = events
        .iter()
        .rev()
        .find(|e| e.get("type").and_then(Value::as_str) == Some("suite"));
    let field = |k: &str| {
        suite
            .and_then(|s| s.get(k))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let kernel = field("kernel")
        .or_else(|| opened.as_ref().map(|t| t.release.clone()))
        .unwrap_or_default();
    let arch = field("arch")
        .or_else(|| opened.as_ref().map(|t| t.arch.name().to_string()))
        .unwrap_or_default();
    let machine = if build || req.kind == Kind::Package {
        String::new()
    } else {
        field("machine").unwrap_or_default()
    };
    let (outcome, message) = match ran {
        Ok(()) => (Outcome::Passed, None),
        Err(e) => (Outcome::Failed, Some(e)),
    };
    CellResult {
        cell: cell.clone(),
        row: Row {
            cell: cell.name.clone(),
            kernel,
            arch,
            machine,
            outcome,
            seconds: started.elapsed().as_secs_f64(),
        },
        log: log.to_path_buf(),
        message,
        events,
        tree: Some(tree.to_path_buf()),
    }
}
