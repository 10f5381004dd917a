//! Scratch directories and the files tests write, copy and list in them.

use std::path::{Path, PathBuf};

use std::process::Command;

use super::{ok, real_home};

/// A scratch directory, removed when the test ends.
pub fn scratch() -> tempfile::TempDir {
    let t = tempfile::Builder::new()
        .prefix("kmod-it-")
        .tempdir()
        .unwrap();
    t
}

/// A scratch directory for what a test process shares between its tests (behind a
/// `OnceLock`, never dropped): under one directory per process, `kmod-it-shared-<pid>`, which
/// the next test process removes once that pid is gone, so shared scratch dirs never pile up
/// in the temporary directory.
pub fn shared_scratch() -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let tmp = std::env::temp_dir();
        for e in std::fs::read_dir(&tmp).into_iter().flatten().flatten() {
            let name = e.file_name();
            let pid = name
                .to_str()
                .and_then(|n| n.strip_prefix("kmod-it-shared-"))
                .and_then(|p| p.parse::<u32>().ok());
            if pid.is_some_and(|p| !Path::new(&format!("/proc/{p}")).exists()) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
        let dir = tmp.join(format!("kmod-it-shared-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    });
    tempfile::Builder::new()
        .prefix("kmod-it-")
        .tempdir_in(dir)
        .unwrap()
        .keep()
}

/// Copy a directory tree (examples into scratch dirs, so tests never write in the repo).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let p = e.path();
        let name = e.file_name();
        if name == "target" {
            continue;
        }
        if p.is_dir() {
            copy_dir(&p, &to.join(&name));
        } else {
            std::fs::copy(&p, to.join(&name)).unwrap();
        }
    }
}

/// Write `text` to `path`, creating its directory.
pub fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// `data` written to a file `name` in a scratch dir of its own.
pub fn copy_with(name: &str, data: &[u8]) -> (tempfile::TempDir, PathBuf) {
    let t = scratch();
    let p = t.path().join(name);
    std::fs::write(&p, data).unwrap();
    (t, p)
}

/// Unpack the `.tar.gz` `archive` into `into`.
pub fn untar(archive: &Path, into: &Path) {
    std::fs::create_dir_all(into).unwrap();
    ok(&std::process::Command::new("tar")
        .arg("-xzf")
        .arg(archive)
        .arg("-C")
        .arg(into)
        .output()
        .unwrap());
}

/// Every file and directory under `dir`, relative.
pub fn listing(dir: &Path) -> Vec<String> {
    fn add(base: &Path, dir: &Path, out: &mut Vec<String>) {
        if let Ok(rd) = std::fs::read_dir(dir) {
            for e in rd.flatten() {
                let p = e.path();
                out.push(p.strip_prefix(base).unwrap().display().to_string());
                if e.file_type().unwrap().is_dir() {
                    add(base, &p, out);
                }
            }
        }
    }
    let mut out = vec![];
    add(dir, dir, &mut out);
    out.sort();
    out
}

/// Every file under `dir` (not directories), at any depth.
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// `p` as UTF-8, for argument lists.
pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A TOML basic string for any text.
pub fn toml_str(s: &str) -> String {
    format!(
        "\"{}\"",
        s.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
    )
}

/// The umask of this process, from `/proc/self/status`.
pub fn umask() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("Umask:")).unwrap();
    u32::from_str_radix(line.split_whitespace().nth(1).unwrap(), 8).unwrap()
}

/// The permission bits of `p`.
pub fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

/// The first offset of `needle` in `hay`.
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// check-jsonschema, from the venv `cargo xtask setup` makes (with the GitHub-workflow and
/// GitLab-CI schemas it vendors); panics with the fix when it is missing.
pub fn check_jsonschema() -> PathBuf {
    let venv = real_home().join("tools/check-jsonschema/bin");
    let exe = venv.join("check-jsonschema");
    assert!(
        exe.is_file(),
        "check-jsonschema is missing (CI={}): run `cargo xtask setup` (or `cargo xtask check-jsonschema`)",
        std::env::var("CI").unwrap_or_default()
    );
    exe
}

/// Validate `files` with check-jsonschema and `schema` (`--builtin-schema NAME` or
/// `--schemafile PATH`); panics with its report when they do not validate.
pub fn validate(schema: &[&str], files: &[&Path]) {
    let o = Command::new(check_jsonschema())
        .args(schema)
        .args(files)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{:?} do not validate against {schema:?}:\n{}{}",
        files,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A YAML file as JSON, read by ruamel.yaml (the YAML library check-jsonschema uses).
pub fn yaml_json(path: &Path) -> serde_json::Value {
    let python = check_jsonschema().with_file_name("python");
    let o = Command::new(python)
        .args([
            "-c",
            "import json,sys\nfrom ruamel.yaml import YAML\nprint(json.dumps(YAML(typ='safe').load(open(sys.argv[1]))))",
        ])
        .arg(path)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}
