//! One file per subcommand. Each is a clap `Args` struct with `run(&self, &Context)`.

pub mod build;
pub mod deploy;
pub mod doctor;
pub mod ide;
pub mod info;
pub mod init;
pub mod install;
pub mod new;
pub mod package;
pub mod run;
pub mod test;
pub mod verify;
