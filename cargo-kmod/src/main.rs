//! The `cargo-kmod` binary: parse argv, run the library, turn errors into exit codes.

fn main() -> std::process::ExitCode {
    cargo_kmod::main_entry()
}
