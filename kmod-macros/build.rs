//! Tells the direct dependents' build scripts where this package's files are.
//!
//! With `links = "kmod_macros"`, cargo gives a dependent's build script
//! `DEP_KMOD_MACROS_DIR`: cargo-kmod-templates reads `src/` and `Cargo.lock` from there and
//! embeds them, so cargo-kmod can build these sources with a kernel tree's rustc. The value
//! is this package's directory, in the workspace or unpacked from a registry alike.

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets `CARGO_MANIFEST_DIR`");
    println!("cargo::metadata=dir={dir}");
}
