//! Embeds the kmod-macros sources and lock file from wherever cargo put that package.
//!
//! An `include_str!` path may not leave its own package (the `.crate` carries nothing
//! outside it), so this crate cannot name `../kmod-macros/` itself. kmod-macros declares
//! `links = "kmod_macros"` and its build script prints its directory, which cargo hands to
//! the build scripts of direct dependents as `DEP_KMOD_MACROS_DIR`: the workspace's
//! `kmod-macros/` or the unpacked registry package. This writes `$OUT_DIR/macros.rs` with
//! an `include_str!` of each file by its absolute path, so rustc tracks them as usual.

use std::path::{Path, PathBuf};

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    let dir = PathBuf::from(
        std::env::var("DEP_KMOD_MACROS_DIR")
            .expect("kmod-macros (a direct dependency with `links`) sets `DEP_KMOD_MACROS_DIR`"),
    );
    let src = dir.join("src");
    let lock = dir.join("Cargo.lock");
    // A directory is scanned as a whole: a new source file reruns this script.
    println!("cargo::rerun-if-changed={}", src.display());
    println!("cargo::rerun-if-changed={}", lock.display());

    let mut files = Vec::new();
    walk(&src, &mut files);
    files.sort();
    assert!(!files.is_empty(), "no sources in `{}`", src.display());
    let mut out = String::from(
        "/// The kmod-macros sources, by their path in that crate (`src/lib.rs`).\n\
         pub const SOURCES: &[(&str, &str)] = &[\n",
    );
    for file in &files {
        let name = file
            .strip_prefix(&dir)
            .unwrap()
            .to_str()
            .expect("kmod-macros file names are UTF-8");
        out += &format!("    ({name:?}, include_str!({:?})),\n", utf8(file));
    }
    out += "];\n\n";
    out += &format!(
        "/// kmod-macros' own lock file, the versions cargo-kmod builds the sources with.\n\
         pub const LOCK: &str = include_str!({:?});\n",
        utf8(&lock)
    );
    // Two of its modules are plain Rust cargo-kmod uses too (`cargo kmod export` writes the
    // `module!` the macro would): compiled here from the same files, so the license mapping
    // and the `module!` dialect have one owner.
    for (module, doc) in [
        (
            "license",
            "SPDX license expressions mapped to the kernel's license strings.",
        ),
        ("dialect", "What a kernel version's `module!` accepts."),
    ] {
        let file = src.join(format!("{module}.rs"));
        out += &format!(
            "\n/// {doc}\npub mod {module} {{\n    include!({:?});\n}}\n",
            utf8(&file)
        );
    }
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets `OUT_DIR`"));
    std::fs::write(out_dir.join("macros.rs"), out).expect("cannot write `macros.rs`");
}

/// Every `.rs` file under `dir`.
fn walk(dir: &Path, files: &mut Vec<PathBuf>) {
    let entries =
        std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot read `{}`: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            walk(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
}

fn utf8(path: &Path) -> &str {
    path.to_str()
        .unwrap_or_else(|| panic!("`{}` is not UTF-8", path.display()))
}
