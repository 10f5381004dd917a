//! `[package.metadata.kmod]` and `[workspace.metadata.kmod]`: what a module is made of.
