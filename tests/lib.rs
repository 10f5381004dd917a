//! Integration tests for cargo-kmod live in `tests/*.rs`; shared helpers in `tests/common/`.
