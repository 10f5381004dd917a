//! kmod-macros: declare a kernel module from its Cargo.toml (filled in by the build issue).
