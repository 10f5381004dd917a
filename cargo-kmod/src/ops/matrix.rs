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

use anyhow::{Context as _, Result};
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

impl CellResult {
    /// A cell whose command never started: its tree is missing, or `--fail-fast` stopped
    /// the matrix.
    fn unstarted(
        cell: Cell,
        log: PathBuf,
        outcome: Outcome,
        message: String,
        tree: Option<PathBuf>,
    ) -> CellResult {
        CellResult {
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
            cell,
            log,
            message: Some(message),
            events: Vec::new(),
            tree,
        }
    }
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
    crate::kernel::prepare::Source::tarball_of(Path::new("/usr/src"), kernel)
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
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create `{}`", dir.display()))?;
    let build = req.kind == Kind::Build;

    // Trees first.
    let mut queue: VecDeque<(usize, Cell, PathBuf)> = VecDeque::new();
    let mut results: Vec<Option<CellResult>> = vec![None; cells.len()];
    for (i, cell) in cells.iter().enumerate() {
        let log = dir.join(format!("{}.log", cell.name));
        let _ = std::fs::remove_file(&log);
        let not_done = |outcome: Outcome, message: String| {
            // The log says it too, as the cell's report points there.
            let _ = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log)
                .and_then(|mut f| {
                    std::io::Write::write_all(&mut f, format!("{message}\n").as_bytes())
                });
            CellResult::unstarted(cell.clone(), log.clone(), outcome, message, None)
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
                // A target that names its tree (`kdir`) has nothing `init` could prepare: the
                // reason is the tree's.
                let given = match &cell.tree {
                    CellTree::Target { target, .. } => {
                        ws.targets.get(target).and_then(|t| t.kdir.as_ref())
                    }
                    CellTree::Dev { .. } => None,
                };
                if given.is_some() {
                    let r = not_done(Outcome::Failed, why);
                    done(&r);
                    results[i] = Some(r);
                    continue;
                }
                if req.no_prepare {
                    let r = not_done(
                        Outcome::NotRun,
                        format!("{why}; prepare it with `{command}`"),
                    );
                    done(&r);
                    results[i] = Some(r);
                    continue;
                }
                if let (CellTree::Dev { kernel, .. }, None) = (&cell.tree, &source) {
                    let r = not_done(
                        Outcome::Failed,
                        format!("{why}, and `/usr/src` has no `linux-source-{kernel}.tar.*` to prepare it from (Debian's `linux-source-{kernel}` package)"),
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
                    CellResult::unstarted(
                        cell,
                        log,
                        Outcome::NotRun,
                        "not run: `--fail-fast` stopped the matrix after a cell failed".into(),
                        Some(tree),
                    )
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

/// `cargo kmod ci`: which engine, where, and what the jobs run besides the cells.
#[derive(Debug, Clone)]
pub struct CiRequest {
    pub engine: Engine,
    pub cells: Vec<String>,
    /// The repository root the files go under (default: the nearest directory above the
    /// workspace with `.git`, else the workspace root).
    pub root: Option<PathBuf>,
    pub options: matrix::ci::Options,
    /// Replace files that do not start with the generated header.
    pub force: bool,
}

/// The CI engines `cargo kmod ci` writes for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Engine {
    /// GitHub Actions: `.github/workflows/kmod-matrix.yml` (one file per 256 cells)
    Github,
    /// GitLab CI: `.gitlab/kmod-matrix.yml`, to `include:` from `.gitlab-ci.yml`
    Gitlab,
}

/// Write the CI files of the workspace's matrix; returns their paths. A file that exists and
/// was not generated (its first line is not [`matrix::ci::HEADER`]) is refused without
/// `force`, before anything is written.
pub fn ci(session: &Session, select: &Selection, req: &CiRequest) -> Result<Vec<PathBuf>> {
    let ws = crate::manifest::load(&session.shell, select.manifest_path.as_deref())?;
    let cells = cells(&ws, &req.cells)?;
    let root = match &req.root {
        Some(r) => r.clone(),
        None => ws
            .root
            .ancestors()
            .find(|d| d.join(".git").exists())
            .unwrap_or(&ws.root)
            .to_path_buf(),
    };
    let mut options = req.options.clone();
    if options.workdir.is_empty() {
        let real_root = std::fs::canonicalize(&root).unwrap_or_else(|_| root.clone());
        let real_ws = std::fs::canonicalize(&ws.root).unwrap_or_else(|_| ws.root.clone());
        let Ok(rel) = real_ws.strip_prefix(&real_root) else {
            crate::bail_user!(
                "the workspace `{}` is not inside `{}`: the CI jobs run in a checkout of that directory", ws.root.display(), root.display();
                hint = "give `--root` a directory that holds the workspace"
            );
        };
        options.workdir = rel.display().to_string();
    }
    let jobs: Vec<matrix::ci::Job> = cells.iter().map(matrix::ci::Job::of).collect();
    let files = match req.engine {
        Engine::Github => matrix::ci::github(&jobs, &options),
        Engine::Gitlab => vec![matrix::ci::gitlab(&jobs, &options)],
    };
    for f in &files {
        let path = root.join(&f.path);
        if let Ok(text) = std::fs::read_to_string(&path) {
            if !req.force && !text.starts_with(matrix::ci::HEADER) {
                crate::bail_user!(
                    "`{}` exists and was not written by `cargo kmod ci`", path.display();
                    hint = "move it away, or pass `--force` to replace it"
                );
            }
        } else if path.exists() || path.is_symlink() {
            crate::bail_user!("`{}` exists and is not a readable file", path.display());
        }
    }
    let written: Vec<(PathBuf, &[u8])> = files
        .iter()
        .map(|f| (root.join(&f.path), f.text.as_bytes()))
        .collect();
    let refs: Vec<(&Path, &[u8])> = written.iter().map(|(p, t)| (p.as_path(), *t)).collect();
    crate::fsutil::write_atomic_all(&refs)?;
    Ok(written.into_iter().map(|(p, _)| p).collect())
}

/// `cargo kmod kmm`: the image repository, the resources' namespace and signing secrets, and
/// where the files go.
#[derive(Debug, Clone, Default)]
pub struct KmmRequest {
    pub cells: Vec<String>,
    pub options: matrix::kmm::Options,
    /// Default `target/kmod/kmm/` (replaced on each run); another directory must be new,
    /// empty, or one this command wrote.
    pub out: Option<PathBuf>,
    pub jobs: Option<usize>,
    /// The build's arguments, passed to every cell.
    pub args: Vec<OsString>,
}

/// What `kmm` wrote.
#[derive(Debug, Clone)]
pub struct KmmOutput {
    pub dir: PathBuf,
    /// Each image's build context and what it holds.
    pub images: Vec<(PathBuf, matrix::kmm::Image)>,
    /// The `Module` resources.
    pub resources: Vec<PathBuf>,
    /// Cells that did not build (their results, for the report).
    pub failed: Vec<CellResult>,
}

/// The marker of a directory `kmm` wrote.
const KMM_MARKER: &str = ".cargo-kmod-kmm";

/// Build every cell (as `build --matrix`), then write per kernel the kmod image's build
/// context (the modules installed under `opt/` with `depmod -b`, and a Containerfile) and per
/// module and arch the `Module` resource.
pub fn kmm(
    session: &Session,
    select: &Selection,
    req: &KmmRequest,
    done: &(dyn Fn(&CellResult) + Sync),
) -> Result<KmmOutput> {
    use std::collections::BTreeMap;
    let image = &req.options.image;
    if image.is_empty()
        || image.contains(char::is_whitespace)
        || image.contains([':', '@'])
        || image.ends_with('/')
        || image.chars().any(char::is_control)
    {
        crate::bail_user!(
            "`--image` must be an image repository without a tag, such as `registry.example/acme/hello`, not `{}`", crate::text::escape(image);
            hint = "cargo-kmod tags each kernel's image `<arch>-<release>`"
        );
    }
    let ws = crate::manifest::load(&session.shell, select.manifest_path.as_deref())?;
    let dir = match &req.out {
        Some(d) => {
            let ours = d.join(KMM_MARKER).is_file();
            let empty = std::fs::read_dir(d).map_or(true, |mut it| it.next().is_none());
            if d.exists() && !ours && !empty {
                crate::bail_user!(
                    "`{}` is not empty and was not written by `cargo kmod kmm`", d.display();
                    hint = "give `--out` a new or empty directory"
                );
            }
            d.clone()
        }
        None => ws.target_dir.join("kmod").join("kmm"),
    };
    let run_req = MatrixRequest {
        kind: Kind::Build,
        cells: req.cells.clone(),
        jobs: req.jobs,
        fail_fast: false,
        no_prepare: false,
        args: req.args.clone(),
    };
    let results = run(session, select, &run_req, done)?;
    let (built, failed): (Vec<CellResult>, Vec<CellResult>) = results
        .into_iter()
        .partition(|r| r.row.outcome == Outcome::Passed);
    // One image per arch and kernel: KMM picks it by the node's kernel release alone.
    // (arch, release) -> the cell, its `.ko` files and their module names.
    type Built<'a> = (&'a CellResult, Vec<PathBuf>, Vec<String>);
    let mut by_kernel: BTreeMap<(String, String), Built> = BTreeMap::new();
    for r in &built {
        let mut kos = Vec::new();
        let mut names = Vec::new();
        let mut key = None;
        for e in r
            .events
            .iter()
            .filter(|e| e.get("reason").and_then(Value::as_str) == Some("kmod-artifact"))
        {
            let field = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            kos.push(PathBuf::from(field("path")));
            names.push(field("module"));
            key = Some((field("arch"), field("kernel_release")));
        }
        let Some(key) = key else { continue };
        if let Some((other, _, _)) = by_kernel.get(&key) {
            crate::bail_user!(
                "cells `{}` and `{}` are both {} kernels `{}`: KMM chooses an image by the node's kernel release, so one release cannot have two", other.cell.name, r.cell.name, key.0, crate::text::escape(&key.1);
                hint = "pick one of them with `--targets` (or give one kernel its own release with `CONFIG_LOCALVERSION`)"
            );
        }
        by_kernel.insert(key, (r, kos, names));
    }
    if dir.exists() {
        std::fs::remove_dir_all(&dir)
            .with_context(|| format!("cannot clear `{}`", dir.display()))?;
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create `{}`", dir.display()))?;
    std::fs::write(
        dir.join(KMM_MARKER),
        "written by `cargo kmod kmm`; the next run replaces this directory\n",
    )?;
    let mut images = Vec::new();
    let mut releases: BTreeMap<(String, crate::kernel::Arch), Vec<String>> = BTreeMap::new();
    for (r, kos, names) in by_kernel.values() {
        let tree = r.tree.clone().expect("a built cell has its tree");
        let inputs = crate::ops::ship::inputs(
            session,
            kos,
            &Selection::default(),
            &TreeSelection {
                kdir: Some(tree),
                ..TreeSelection::default()
            },
            &crate::ops::build::BuildOptions::default(),
        )?;
        let img = matrix::kmm::Image {
            release: inputs.tree.release.clone(),
            arch: inputs.tree.arch,
            modules: names.clone(),
        };
        crate::ship::names::release(
            &img.release,
            &format!("the kernel release of cell `{}`", r.cell.name),
        )?;
        let ctx = dir.join(matrix::kmm::context_dir(&img));
        let ship = crate::ops::ship::ShipRequest {
            strip: true,
            verify: true,
            ..crate::ops::ship::ShipRequest::default()
        };
        crate::ops::ship::install(session, &inputs, &ctx.join("opt"), "extra", &ship)?;
        let dep = std::fs::read_to_string(
            ctx.join("opt/lib/modules")
                .join(&img.release)
                .join("modules.dep"),
        )
        .unwrap_or_default();
        for n in &img.modules {
            if !dep.lines().any(|l| l.starts_with(&format!("extra/{n}.ko"))) {
                crate::bail_user!(
                    "`depmod -b` wrote no `modules.dep` entry for `{}` in `{}`",
                    n,
                    ctx.display()
                );
            }
        }
        crate::fsutil::write_atomic(
            &ctx.join("Containerfile"),
            matrix::kmm::containerfile(&img, &req.options).as_bytes(),
        )?;
        for n in &img.modules {
            releases
                .entry((n.clone(), img.arch))
                .or_default()
                .push(img.release.clone());
        }
        images.push((ctx, img));
    }
    let mut resources = Vec::new();
    for ((module, arch), rels) in &releases {
        let path = dir.join(format!(
            "module-{}.yaml",
            matrix::kmm::resource_name(module, *arch)
        ));
        crate::fsutil::write_atomic(
            &path,
            matrix::kmm::module_resource(module, *arch, rels, &req.options).as_bytes(),
        )?;
        resources.push(path);
    }
    Ok(KmmOutput {
        dir,
        images,
        resources,
        failed,
    })
}
