//! The foundation: prepared trees exist, `init` is a no-op on them, bad input is refused.

mod common;
use common::*;

#[test]
fn both_dev_trees_are_prepared() {
    for arch in ["x86_64", "arm64"] {
        let dir = dev_tree(arch);
        assert!(dir.join(".config").is_file());
        assert!(dir.join("Module.symvers").is_file());
        assert!(dir.join("rust/libkernel.rmeta").is_file());
    }
}
