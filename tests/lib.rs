//! Integration tests for cargo-kmod: one test binary, `tests/it/main.rs`, with a module per
//! area and the shared helpers in `tests/it/common/`.
