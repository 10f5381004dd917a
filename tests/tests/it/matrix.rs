//! Many kernels at once (docs/matrix.md):
//! - `test --matrix` runs the 7.2 and 6.12 x86_64 dev trees and the arm64 one as three cells,
//!   all pass, and each tree's `.ko` survives the others' builds (their vermagic differ);
//! - a module that fails on 6.12 only fails the run, and the summary names the cell;
//!   `--fail-fast`, `--no-prepare` and a misspelled `--targets` say what happened;
//! - `ci github` and `ci gitlab` write files the engines' schemas accept, and each job's own
//!   command lines, run here, pass and leave the cell's packages;
//! - `kmm` writes Module resources KMM's CRD schema accepts and kmod images whose
//!   `opt/lib/modules/<kernel>/` has the module and its `modules.dep`.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::common::*;

/// The three cells of the issue: 7.2 on both arches, and 6.12 on x86_64.
const THREE: &str = r#"
[workspace.metadata.kmod.matrix]
kernels = ["7.2", "6.12"]
arches = ["x86_64", "arm64"]
exclude = ["6.12-arm64"]
"#;

fn the_three_trees() {
    dev_tree("x86_64");
    dev_tree("arm64");
    tree_612("x86_64");
}

/// The `matrix-cell` objects of a `--message-format json` run, by cell.
fn cell_events(o: &std::process::Output) -> Vec<Value> {
    stdout(o)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["reason"] == "matrix-cell")
        .collect()
}

/// The `.ko` files of `module` under `target/kmod/<arch>/<tree>/[test/]`.
fn per_tree(ws: &Path, arch: &str, module: &str, test: bool) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(ws.join("target/kmod").join(arch))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir() && p.file_name().unwrap() != "test")
        .map(|p| if test { p.join("test") } else { p }.join(format!("{module}.ko")))
        .filter(|p| p.is_file())
        .collect();
    out.sort();
    out
}

#[test]
fn test_matrix_runs_three_cells_and_every_trees_ko_survives() {
    the_three_trees();
    let (_t, ws) = matrix_ws(&["examples/hello"], THREE);
    let o = kmod_at(&ws, &["test", "--matrix", "--message-format", "json"]);
    ok(&o);
    let cells = cell_events(&o);
    let mut names: Vec<&str> = cells.iter().map(|c| c["cell"].as_str().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["6.12-x86_64", "7.2-arm64", "7.2-x86_64"]);
    for c in &cells {
        assert_eq!(c["result"], "passed", "{c}");
        assert!(c["machine"].as_str().unwrap().contains(", "), "{c}");
        assert!(Path::new(c["log"].as_str().unwrap()).is_file(), "{c}");
    }
    let six = cells.iter().find(|c| c["cell"] == "6.12-x86_64").unwrap();
    assert!(
        six["kernel"].as_str().unwrap().starts_with("6.12."),
        "{six}"
    );
    // Both x86_64 trees' test builds are there, each its own kernel's.
    let kos = per_tree(&ws, "x86_64", "hello", true);
    assert_eq!(kos.len(), 2, "{kos:?}");
    let vermagic: Vec<String> = kos.iter().map(|k| modinfo_value(k, "vermagic")).collect();
    assert_ne!(vermagic[0], vermagic[1]);
    assert!(
        vermagic.iter().any(|v| v.starts_with("6.12.")),
        "{vermagic:?}"
    );
    assert!(
        vermagic.iter().any(|v| v.starts_with("7.2.")),
        "{vermagic:?}"
    );
    assert_eq!(per_tree(&ws, "arm64", "hello", true).len(), 1);
    // The latest build's path is kept: one of the two.
    let latest = modinfo_value(&ws.join("target/kmod/x86_64/test/hello.ko"), "vermagic");
    assert!(vermagic.contains(&latest));

    // The human summary: a table with a row per cell.
    let o = kmod_at(
        &ws,
        &["test", "--matrix", "--targets", "6.12-x86_64,7.2-x86_64"],
    );
    ok(&o);
    let out = stdout(&o);
    let head = out.lines().find(|l| l.starts_with("cell ")).expect(&out);
    for col in ["kernel", "arch", "machine", "result", "time"] {
        assert!(head.contains(col), "{head}");
    }
    for cell in ["6.12-x86_64", "7.2-x86_64"] {
        let row = out.lines().find(|l| l.starts_with(cell)).expect(&out);
        assert!(row.contains("passed"), "{row}");
    }
    assert!(!out.lines().any(|l| l.starts_with("7.2-arm64")), "{out}");
    // 6.12's kernel crate has no `#[kunit_tests]`: said, not hidden.
    assert!(
        stderr(&o).contains("its kernel crate has no `#[kunit_tests]`")
            || std::fs::read_to_string(ws.join("target/kmod/matrix/6.12-x86_64.log"))
                .unwrap()
                .contains("its kernel crate has no `#[kunit_tests]`"),
        "{}",
        stderr(&o)
    );

    // `build --matrix` builds the same cells.
    let o = kmod_at(&ws, &["build", "--matrix", "--message-format", "json"]);
    ok(&o);
    assert_eq!(cell_events(&o).len(), 3);
    assert_eq!(per_tree(&ws, "x86_64", "hello", false).len(), 2);
}

#[test]
fn a_module_failing_on_6_12_fails_the_matrix_and_the_summary_names_the_cell() {
    the_three_trees();
    let (_t, ws) = matrix_ws(
        &["tests/fixtures/not-on-6"],
        "[workspace.metadata.kmod.matrix]\nkernels = [\"6.12\", \"7.2\"]\narches = [\"x86_64\"]\n",
    );
    let o = kmod_at(&ws, &["test", "--matrix"]);
    assert_eq!(code(&o), 101, "{}", stderr(&o));
    let (err, help) = error_and_help(&fails(&o));
    assert_eq!(
        err,
        "error: 1 of 2 cells failed or did not run: `6.12-x86_64`"
    );
    assert!(help.contains("target/kmod/matrix"), "{help}");
    let out = stdout(&o);
    let row = |cell: &str| {
        out.lines()
            .find(|l| l.starts_with(cell))
            .expect(&out)
            .to_string()
    };
    assert!(row("6.12-x86_64").contains("failed"), "{out}");
    assert!(row("7.2-x86_64").contains("passed"), "{out}");
    // Its log has what the kernel said.
    let log = std::fs::read_to_string(ws.join("target/kmod/matrix/6.12-x86_64.log")).unwrap();
    assert!(log.contains("not_on_6"), "{log}");

    // `--fail-fast`, one cell at a time: the failing 6.12 cell runs first, 7.2 never starts.
    let o = kmod_at(
        &ws,
        &[
            "test",
            "--matrix",
            "--fail-fast",
            "-j",
            "1",
            "--message-format",
            "json",
        ],
    );
    assert_eq!(code(&o), 101);
    let cells = cell_events(&o);
    let seven = cells.iter().find(|c| c["cell"] == "7.2-x86_64").unwrap();
    assert_eq!(seven["result"], "not-run", "{seven}");
    assert!(seven["message"].as_str().unwrap().contains("--fail-fast"));
}

#[test]
fn missing_trees_and_unknown_cells_are_named() {
    let (_t, ws) = matrix_ws(
        &["examples/hello"],
        "[workspace.metadata.kmod.matrix]\nkernels = [\"5.4\"]\narches = [\"x86_64\"]\n",
    );
    // `--no-prepare`: not run, with the `init` that prepares it.
    let o = kmod_at(
        &ws,
        &[
            "test",
            "--matrix",
            "--no-prepare",
            "--message-format",
            "json",
        ],
    );
    assert_eq!(code(&o), 101);
    let c = &cell_events(&o)[0];
    assert_eq!(c["result"], "not-run");
    let msg = c["message"].as_str().unwrap();
    assert!(
        msg.contains("no x86_64 dev tree of Linux 5.4 is prepared")
            && msg.contains(
                "cargo kmod init --source /usr/src/linux-source-5.4.tar.xz --arch x86_64"
            ),
        "{msg}"
    );
    // Without it: no source to prepare from, said.
    let o = kmod_at(&ws, &["build", "--matrix"]);
    let err = fails(&o);
    assert!(stderr(&o).contains("linux-source-5.4"), "{err}");
    // A misspelled cell and a bad matrix: one line each, naming what is wrong.
    let o = kmod_at(&ws, &["test", "--matrix", "--targets", "5.4-x86-64"]);
    let (err, help) = error_and_help(&fails(&o));
    assert_eq!(
        err,
        "error: `--targets` names `5.4-x86-64`, which is not a cell of the matrix"
    );
    assert_eq!(help, "help: did you mean `5.4-x86_64`?");
    let manifest = ws.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(&manifest, text.replace("\"5.4\"", "\"five\"")).unwrap();
    let (err, _) = error_and_help(&fails(&kmod_at(&ws, &["test", "--matrix"])));
    assert!(
        err.contains("invalid `kernels`") && err.contains("`five`"),
        "{err}"
    );
    let o = kmod_at(&ws, &["test", "--matrix", "--kdir", "/x"]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
}

/// The run steps of a GitHub job, and the GitLab job's script, as the engines would run them.
fn run_line(ws: &Path, shim: &Path, line: &str, env: &[(&str, &str)], out: &Path) {
    let path = format!("{}:{}", shim.display(), std::env::var("PATH").unwrap());
    let o = run(std::process::Command::new("bash")
        .args(["-eo", "pipefail", "-c", line])
        .current_dir(ws)
        .env("PATH", path)
        .env("GITHUB_OUTPUT", out)
        .env_remove("CARGO_TARGET_DIR")
        .envs(env.iter().copied()));
    assert!(
        o.status.success(),
        "`{line}` with {env:?} failed:\n{}{}",
        stdout(&o),
        stderr(&o)
    );
}

#[test]
fn ci_files_validate_and_each_jobs_commands_pass_here() {
    dev_tree("x86_64");
    dev_tree("arm64");
    let (t, ws) = matrix_ws(
        &["examples/hello"],
        "[workspace.metadata.kmod.matrix]\nkernels = [\"7.2\"]\n",
    );
    ok(&kmod_at(&ws, &["ci", "github"]));
    ok(&kmod_at(&ws, &["ci", "gitlab"]));
    let gh = t.path().join(".github/workflows/kmod-matrix.yml");
    let gl = t.path().join(".gitlab/kmod-matrix.yml");
    validate(&["--builtin-schema", "vendor.github-workflows"], &[&gh]);
    validate(&["--builtin-schema", "vendor.gitlab-ci"], &[&gl]);
    let shim = cargo_shim(t.path());
    let out = t.path().join("github-output");

    // GitHub: each matrix entry's run steps that are cargo-kmod's.
    let wf = yaml_json(&gh);
    let job = &wf["jobs"]["cell"];
    assert_eq!(job["defaults"]["run"]["working-directory"], "ws");
    let include = job["strategy"]["matrix"]["include"].as_array().unwrap();
    let mut names: Vec<&str> = include
        .iter()
        .map(|e| e["cell"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["7.2-arm64", "7.2-x86_64"]);
    for e in include {
        let env = [
            ("CELL", e["cell"].as_str().unwrap()),
            ("KMOD_INIT", e["init"].as_str().unwrap()),
        ];
        for step in job["steps"].as_array().unwrap() {
            let Some(line) = step["run"].as_str() else {
                continue;
            };
            if line.contains("cargo kmod") {
                run_line(&ws, &shim, line, &env, &out);
            }
        }
        let pkg = ws.join("target/kmod/package").join(env[0].1);
        assert!(
            std::fs::read_dir(&pkg)
                .unwrap()
                .flatten()
                .any(|f| f.file_name().to_string_lossy().ends_with(".tar.gz")),
            "{}",
            pkg.display()
        );
    }
    // The cache key step wrote the trees' names.
    let keys = std::fs::read_to_string(&out).unwrap();
    assert!(keys.lines().any(|l| l.starts_with("key=x86_64-")), "{keys}");
    assert!(keys.lines().any(|l| l.starts_with("key=arm64-")), "{keys}");

    // GitLab: the parallel matrix's variables, and the script's cargo-kmod lines.
    let ci = yaml_json(&gl);
    let job = &ci["kmod-cell"];
    for e in job["parallel"]["matrix"].as_array().unwrap() {
        let env = [
            ("CELL", e["CELL"].as_str().unwrap()),
            ("KMOD_INIT", e["KMOD_INIT"].as_str().unwrap()),
        ];
        for line in job["script"].as_array().unwrap() {
            let line = line.as_str().unwrap();
            if line.contains("cargo kmod") {
                run_line(&ws, &shim, line, &env, &out);
            }
        }
    }
    // A file the user wrote is not replaced.
    std::fs::write(&gl, "include: []\n").unwrap();
    let (err, help) = error_and_help(&fails(&kmod_at(&ws, &["ci", "gitlab"])));
    assert!(
        err.ends_with("exists and was not written by `cargo kmod ci`"),
        "{err}"
    );
    assert!(help.contains("--force"));
    assert_eq!(std::fs::read_to_string(&gl).unwrap(), "include: []\n");
}

#[test]
fn kmm_images_hold_the_modules_and_the_resources_validate() {
    the_three_trees();
    let (t, ws) = matrix_ws(&["examples/hello"], THREE);
    let o = kmod_at(
        &ws,
        &[
            "kmm",
            "--image",
            "registry.example/acme/hello",
            "--namespace",
            "kmods",
            "--sign-key-secret",
            "hello-key",
            "--sign-cert-secret",
            "hello-cert",
            "--message-format",
            "json",
        ],
    );
    ok(&o);
    let images: Vec<Value> = json_lines(&o)
        .into_iter()
        .filter(|v| v["reason"] == "kmm-image")
        .collect();
    assert_eq!(images.len(), 3, "{images:?}");
    for img in &images {
        let ctx = PathBuf::from(img["context"].as_str().unwrap());
        let release = img["release"].as_str().unwrap();
        let dep = std::fs::read_to_string(
            ctx.join("opt/lib/modules")
                .join(release)
                .join("modules.dep"),
        )
        .unwrap();
        assert!(
            dep.lines().any(|l| l.starts_with("extra/hello.ko:")),
            "{dep}"
        );
        assert!(ctx
            .join("opt/lib/modules")
            .join(release)
            .join("extra/hello.ko")
            .is_file());
        let cf = std::fs::read_to_string(ctx.join("Containerfile")).unwrap();
        assert!(
            cf.contains(&format!("RUN depmod -b /opt {release}")),
            "{cf}"
        );
    }
    let kmm = ws.join("target/kmod/kmm");
    let amd64 = kmm.join("module-hello-amd64.yaml");
    let arm64 = kmm.join("module-hello-arm64.yaml");
    let schema = root().join("tests/schemas/kmm/module.strict.schema.json");
    validate(
        &["--schemafile", schema.to_str().unwrap()],
        &[&amd64, &arm64],
    );
    let cr = yaml_json(&amd64);
    let literals: Vec<&str> = cr["spec"]["moduleLoader"]["container"]["kernelMappings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["literal"].as_str().unwrap())
        .collect();
    assert_eq!(literals.len(), 2, "{literals:?}");
    assert!(literals.iter().any(|l| l.starts_with("6.12.")));
    assert_eq!(
        cr["spec"]["moduleLoader"]["container"]["modprobe"]["moduleName"],
        "hello"
    );
    assert_eq!(cr["spec"]["selector"]["kubernetes.io/arch"], "amd64");

    // Bad input: a tagged image, and an `--out` that holds someone else's files.
    let (err, _) = error_and_help(&fails(&kmod_at(
        &ws,
        &["kmm", "--image", "registry.example/x:v1"],
    )));
    assert!(
        err.starts_with("error: `--image` must be an image repository without a tag"),
        "{err}"
    );
    let theirs = t.path().join("theirs");
    std::fs::create_dir_all(&theirs).unwrap();
    std::fs::write(theirs.join("keep.txt"), "mine").unwrap();
    let (err, _) = error_and_help(&fails(&kmod_at(
        &ws,
        &[
            "kmm",
            "--image",
            "registry.example/x",
            "--out",
            theirs.to_str().unwrap(),
        ],
    )));
    assert!(
        err.ends_with("is not empty and was not written by `cargo kmod kmm`"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(theirs.join("keep.txt")).unwrap(),
        "mine"
    );
}

/// The examples workspace as it is shipped: its four cells (7.2 on both arches, 6.12 on
/// x86_64, the rpi4 board, whose tree is prepared first when missing) pass, its CI workflow
/// validates, and `kmm` refuses the two arm64 `7.2.13` kernels together, naming both cells,
/// then validates without the board.
#[test]
fn the_examples_workspace_passes_on_its_four_cells() {
    the_three_trees();
    let tmp = scratch();
    let ws = tmp.path().join("examples");
    for m in ["hello", "mixed", "miscdev", "blinker"] {
        copy_dir(&root().join("examples").join(m), &ws.join(m));
        let _ = std::fs::remove_dir_all(ws.join(m).join("target"));
    }
    std::fs::copy(root().join("examples/Cargo.toml"), ws.join("Cargo.toml")).unwrap();
    std::fs::create_dir_all(tmp.path().join(".git")).unwrap();
    let o = kmod_at(&ws, &["test", "--matrix", "--message-format", "json"]);
    ok(&o);
    let cells = cell_events(&o);
    let mut names: Vec<&str> = cells.iter().map(|c| c["cell"].as_str().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["6.12-x86_64", "7.2-arm64", "7.2-x86_64", "rpi4"]);
    for c in &cells {
        assert_eq!(c["result"], "passed", "{c}");
    }
    let rpi4 = cells.iter().find(|c| c["cell"] == "rpi4").unwrap();
    assert!(
        rpi4["machine"].as_str().unwrap().starts_with("raspi4b"),
        "{rpi4}"
    );

    ok(&kmod_at(&ws, &["ci", "github"]));
    validate(
        &["--builtin-schema", "vendor.github-workflows"],
        &[&tmp.path().join(".github/workflows/kmod-matrix.yml")],
    );

    let o = kmod_at(&ws, &["kmm", "--image", "registry.example/acme/examples"]);
    let (err, help) = error_and_help(&fails(&o));
    assert!(
        err.contains("cells `7.2-arm64` and `rpi4` are both arm64 kernels `7.2.13`"),
        "{err}"
    );
    assert!(help.contains("--targets"), "{help}");
    ok(&kmod_at(
        &ws,
        &[
            "kmm",
            "--image",
            "registry.example/acme/examples",
            "--targets",
            "7.2-x86_64,7.2-arm64,6.12-x86_64",
        ],
    ));
    let schema = root().join("tests/schemas/kmm/module.strict.schema.json");
    let kmm = ws.join("target/kmod/kmm");
    for r in ["hello-amd64", "hello-arm64", "mixed-amd64", "mixed-arm64"] {
        validate(
            &["--schemafile", schema.to_str().unwrap()],
            &[&kmm.join(format!("module-{r}.yaml"))],
        );
    }
}
