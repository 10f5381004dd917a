//! Repository policy the compiler cannot see, checked as tests (as rust-analyzer's and
//! xshell's tidy tests do): the layers of `src/` import only downwards.

use std::path::{Path, PathBuf};

/// The layers of the crate, bottom first. A module may import modules of a lower rank only;
/// modules of one rank never import each other (but the support modules of rank 0-2, which
/// may use the ones ranked below them). The picture is ARCHITECTURE.md's.
const LAYERS: &[(&str, u32)] = &[
    // Support: the environment, errors, text, files, output, processes, device trees.
    ("env", 0),
    ("error", 0),
    ("text", 0),
    ("fsutil", 1),
    ("shell", 1),
    ("fdt", 1),
    ("process", 2),
    // The leaf kernel module: trees, arches, versions, toolchain, home, boards.
    ("kernel", 3),
    // Stages, in pipeline order.
    ("ko", 4),
    ("kbuild", 5),
    ("guest", 5),
    ("ship", 6),
    ("qemu", 6),
    ("devices", 7),
    ("deploy", 7),
    ("manifest", 8),
    ("deps", 9),
    ("plan", 10),
    ("export", 10),
    ("matrix", 10),
    // Above the stages: resolution, each command's work, the commands, the entry points.
    ("context", 11),
    ("ops", 12),
    ("command", 13),
    ("cli", 14),
    ("lib", 15),
    ("main", 16),
];

fn rank(module: &str) -> Option<u32> {
    LAYERS.iter().find(|(m, _)| *m == module).map(|(_, r)| *r)
}

/// The top-level module a file under `src/` belongs to (`kernel/tree.rs` -> `kernel`).
fn module_of(rel: &Path) -> String {
    let first = rel.components().next().expect("a path under src/");
    first
        .as_os_str()
        .to_string_lossy()
        .trim_end_matches(".rs")
        .to_string()
}

/// The code of a file without comments and without its unit tests (a `#[cfg(test)]` module
/// may use anything to build its inputs).
fn code_of(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => text,
    };
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) if !l[..i].contains('"') => &l[..i],
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The top-level modules `code` names through `crate::`.
fn imports(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            out.push(name);
        } else if rest.starts_with('{') {
            // `use crate::{a, b::c}`
            let group = &rest[1..rest.find('}').unwrap_or(rest.len())];
            out.extend(group.split(',').filter_map(|p| {
                let p = p.trim();
                let n: String = p
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                (!n.is_empty()).then_some(n)
            }));
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Every import that goes up or sideways: `(file, its module, the imported module)`.
fn back_edges(files: &[(PathBuf, String)]) -> Vec<(PathBuf, String, String)> {
    let mut out = Vec::new();
    for (rel, text) in files {
        if rel
            .file_name()
            .is_some_and(|n| n == "tests.rs" || n == "tidy.rs")
        {
            continue;
        }
        let from = module_of(rel);
        let Some(from_rank) = rank(&from) else {
            out.push((rel.clone(), from.clone(), "(no layer)".into()));
            continue;
        };
        for to in imports(&code_of(text)) {
            if to == from || to == "bail_user" {
                continue;
            }
            match rank(&to) {
                Some(r) if r < from_rank => {}
                Some(_) | None => out.push((rel.clone(), from.clone(), to)),
            }
        }
    }
    out
}

fn source_files(dir: &Path, root: &Path, out: &mut Vec<(PathBuf, String)>) {
    for e in std::fs::read_dir(dir).expect("src/ is readable").flatten() {
        let p = e.path();
        if p.is_dir() {
            source_files(&p, root, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            let text = std::fs::read_to_string(&p).expect("a readable source file");
            out.push((
                p.strip_prefix(root).expect("under src/").to_path_buf(),
                text,
            ));
        }
    }
}

#[test]
fn layers_import_only_downwards() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    source_files(&src, &src, &mut files);
    assert!(files.len() > 50, "found only {} files", files.len());
    let edges = back_edges(&files);
    assert!(
        edges.is_empty(),
        "imports against the layers (see LAYERS in src/tidy.rs and ARCHITECTURE.md):\n{}",
        edges
            .iter()
            .map(|(f, from, to)| format!("  {}: `{from}` imports `{to}`", f.display()))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn a_stage_importing_ops_or_command_is_caught() {
    let files = vec![
        (
            PathBuf::from("kernel/tree.rs"),
            "use crate::ops::build::Artifact;\n".to_string(),
        ),
        (
            PathBuf::from("qemu/boot.rs"),
            "fn f() { crate::command::args::KdirArgs::default(); }\n".to_string(),
        ),
        (
            PathBuf::from("ship/mod.rs"),
            "use crate::{ko::KoFile, qemu::Machine};\n// crate::ops in a comment is fine\n"
                .to_string(),
        ),
        (
            PathBuf::from("ops/test.rs"),
            "use crate::{qemu, kernel::Arch, context::Session};\n".to_string(),
        ),
    ];
    let edges: Vec<(String, String)> = back_edges(&files)
        .into_iter()
        .map(|(_, from, to)| (from, to))
        .collect();
    assert_eq!(
        edges,
        [
            ("kernel".to_string(), "ops".to_string()),
            ("qemu".into(), "command".into()),
            ("ship".into(), "qemu".into()),
        ]
    );
}
