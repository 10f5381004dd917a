//! The build plan: generated Kbuild, Makefile and bindings under `target/kmod/<arch>/`.
pub mod macros;
