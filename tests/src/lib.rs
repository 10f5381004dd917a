//! Integration tests for cargo-kmod live in `tests/`.
