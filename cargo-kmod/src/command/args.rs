//! Argument groups several commands share, in one place, each turned into the plain data the
//! layers below take ([`Selection`], [`TreeSelection`], [`BuildOptions`]).

use std::path::PathBuf;

use anyhow::Result;

use crate::context::{Selection, TreeSelection};
use crate::deps::CargoMode;
use crate::kernel::Arch;
use crate::ko::Compression;
use crate::ops::build::BuildOptions;
use crate::ops::ship::ShipRequest;

/// Which kernel tree to use: `--kdir`, `--target`, `KDIR`, the manifest, or the dev tree of
/// `--arch` prepared by `cargo kmod init`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct KdirArgs {
    /// A built kernel tree (the `O=` directory), as in `make -C KDIR`
    #[arg(long, value_name = "DIR", conflicts_with = "target")]
    pub kdir: Option<PathBuf>,
    /// A named target from `[workspace.metadata.kmod.targets.NAME]`
    #[arg(long, value_name = "NAME")]
    pub target: Option<String>,
    /// Target architecture (default: the host's, or the tree's)
    #[arg(long, value_name = "ARCH")]
    pub arch: Option<String>,
}

impl KdirArgs {
    pub fn selection(&self) -> Result<TreeSelection> {
        Ok(TreeSelection {
            kdir: self.kdir.clone(),
            target: self.target.clone(),
            arch: self.arch.as_deref().map(Arch::parse).transpose()?,
            sanitize: false,
        })
    }
}

/// Which packages: cargo's `--manifest-path`, `-p`, `--workspace`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct PackageSelect {
    /// Path to Cargo.toml
    #[arg(long, value_name = "PATH")]
    pub manifest_path: Option<PathBuf>,
    /// Package(s) to act on
    #[arg(short, long = "package", value_name = "SPEC")]
    pub packages: Vec<String>,
    /// Act on all modules in the workspace
    #[arg(long)]
    pub workspace: bool,
}

impl PackageSelect {
    pub fn selection(&self) -> Selection {
        Selection {
            manifest_path: self.manifest_path.clone(),
            packages: self.packages.clone(),
            workspace: self.workspace,
        }
    }
}

/// How to build: profile, features, parallelism (cargo's flags).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct BuildArgs {
    /// Build without debug assertions and overflow checks (`-Cdebug-assertions=off`)
    #[arg(long)]
    pub release: bool,
    /// Cargo features to enable (comma or space separated)
    #[arg(short = 'F', long, value_name = "FEATURES")]
    pub features: Vec<String>,
    /// Enable all features
    #[arg(long)]
    pub all_features: bool,
    /// Do not enable the `default` feature
    #[arg(long)]
    pub no_default_features: bool,
    /// Parallel make jobs [default: the number of CPUs]
    #[arg(short, long, value_name = "N")]
    pub jobs: Option<usize>,
    #[command(flatten)]
    pub cargo: CargoModeArgs,
}

/// How cargo may resolve and fetch `[dependencies]` crates: cargo's own flags.
#[derive(Debug, Clone, Copy, Default, clap::Args)]
pub struct CargoModeArgs {
    /// Build dependency crates without touching the network (as `cargo --offline`)
    #[arg(long)]
    pub offline: bool,
    /// Require `Cargo.lock` to be up to date (as `cargo --locked`)
    #[arg(long)]
    pub locked: bool,
    /// Require `Cargo.lock` up to date and no network (as `cargo --frozen`)
    #[arg(long)]
    pub frozen: bool,
}

impl CargoModeArgs {
    pub fn mode(&self) -> CargoMode {
        CargoMode {
            offline: self.offline,
            locked: self.locked,
            frozen: self.frozen,
        }
    }
}

impl BuildArgs {
    pub fn options(&self, test: bool) -> BuildOptions {
        BuildOptions {
            release: self.release,
            test,
            features: self.features.clone(),
            all_features: self.all_features,
            no_default_features: self.no_default_features,
            jobs: self
                .jobs
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
                .max(1),
            cargo: self.cargo.mode(),
        }
    }
}

/// Everything `build` takes; `package` and `install` flatten it too (they build when given
/// no files).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct BuildSelect {
    #[command(flatten)]
    pub select: PackageSelect,
    #[command(flatten)]
    pub kdir: KdirArgs,
    #[command(flatten)]
    pub build: BuildArgs,
}

/// What `package` and `install` do to each module.
#[derive(Debug, Clone, clap::Args)]
pub struct ShipArgs {
    /// Sign the modules (with `--key`/`--cert`, default the tree's `certs/signing_key.*`);
    /// the default when the tree has `CONFIG_MODULE_SIG_ALL`, as in `modules_install`
    #[arg(long, conflicts_with = "no_sign")]
    pub sign: bool,
    /// Do not sign, even when the tree has `CONFIG_MODULE_SIG_ALL`
    #[arg(long)]
    pub no_sign: bool,
    /// Private key for signing (PEM or DER; `KBUILD_SIGN_PIN` unlocks an encrypted one)
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// Certificate matching `--key` (PEM or DER)
    #[arg(long, value_name = "FILE")]
    pub cert: Option<PathBuf>,
    /// Compression [default: the tree's `CONFIG_MODULE_COMPRESS_*`, else none]
    #[arg(long, value_enum, value_name = "KIND")]
    pub compress: Option<Compression>,
    /// Keep debug info (by default it is stripped, like `INSTALL_MOD_STRIP=1`)
    #[arg(long)]
    pub no_strip: bool,
    /// Directory under `lib/modules/<release>/`
    #[arg(
        long = "dir",
        env = "INSTALL_MOD_DIR",
        default_value = "updates",
        value_name = "DIR"
    )]
    pub dir: String,
    /// Skip the load check against the tree
    #[arg(long)]
    pub no_verify: bool,
}

impl ShipArgs {
    pub fn request(&self) -> ShipRequest {
        ShipRequest {
            sign: self.sign,
            no_sign: self.no_sign,
            key: self.key.clone(),
            cert: self.cert.clone(),
            compress: self.compress,
            strip: !self.no_strip,
            verify: !self.no_verify,
        }
    }
}

/// The modules a boot or a deploy takes instead of building packages, and their parameters
/// (`test`, `run`, `deploy`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct KoArgs {
    /// Use these already-built `.ko` files instead of building packages
    #[arg(long = "ko", value_name = "PATH")]
    pub ko: Vec<PathBuf>,
    /// A module parameter, `name=value` (`module.name=value` with several modules)
    #[arg(long = "param", value_name = "NAME=VALUE")]
    pub params: Vec<String>,
}

/// What a qemu boot of `test` and `run` gets besides its modules.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct BootArgs {
    /// Test devices for this run, besides the packages' own: a TOML file of `[[devices]]`
    /// tables, or a `.dtso` overlay
    #[arg(long = "device", value_name = "FILE")]
    pub devices: Vec<PathBuf>,
    /// Kill the guest after this many seconds
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub timeout: u64,
    /// Boot in UEFI firmware with Secure Boot on (a signed distribution kernel):
    /// the certificate of `--cert` enrolled as a Machine Owner Key, the modules signed with
    /// `--key`; the kernel locks down and enforces module signatures
    #[arg(long)]
    pub secure_boot: bool,
    /// With `--secure-boot`: the private key the modules are signed with (PEM or DER;
    /// `KBUILD_SIGN_PIN` unlocks an encrypted one)
    #[arg(long, value_name = "FILE", requires = "secure_boot")]
    pub key: Option<PathBuf>,
    /// With `--secure-boot`: the certificate of `--key`, enrolled as the Machine Owner Key
    #[arg(long, value_name = "FILE", requires = "secure_boot")]
    pub cert: Option<PathBuf>,
    /// Extra kernel command-line arguments
    #[arg(last = true, value_name = "KERNEL_ARGS")]
    pub kernel_args: Vec<String>,
}

impl BootArgs {
    /// `--timeout` as a duration: at least a second, at most a day (a larger value would
    /// overflow the clock arithmetic and means "no limit" to nobody).
    pub fn timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.timeout.clamp(1, 86_400))
    }

    /// The guest set-up of these arguments and `ko`, built with `build`.
    pub fn guest(&self, ko: &KoArgs, build: BuildOptions) -> crate::ops::test::GuestModules {
        crate::ops::test::GuestModules {
            ko: ko.ko.clone(),
            params: ko.params.clone(),
            build,
            devices: self.devices.clone(),
            secure_boot: self.secure_boot.then(|| crate::ops::test::SecureBootKey {
                key: self.key.clone(),
                cert: self.cert.clone(),
            }),
        }
    }
}

/// `--matrix`: the command over every cell of the workspace's matrix (docs/matrix.md).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct MatrixArgs {
    /// Run for every cell of the workspace's matrix, in parallel: each target of
    /// `[workspace.metadata.kmod.targets]` and the dev trees of
    /// `[workspace.metadata.kmod.matrix]` (with it, `-j` is the cells run at once)
    #[arg(long, conflicts_with_all = ["kdir", "target", "arch"])]
    pub matrix: bool,
    /// Only these cells (comma separated)
    #[arg(long, value_name = "CELLS", value_delimiter = ',', requires = "matrix")]
    pub targets: Vec<String>,
    /// Start no more cells after one failed (those are reported as not run)
    #[arg(long, requires = "matrix")]
    pub fail_fast: bool,
    /// Do not prepare the cells' missing trees: report those cells as not run, with the
    /// `cargo kmod init` that prepares each
    #[arg(long, requires = "matrix")]
    pub no_prepare: bool,
}

impl MatrixArgs {
    /// The matrix request of a command of `kind` whose other arguments are `args`.
    pub fn request(
        &self,
        kind: crate::ops::matrix::Kind,
        jobs: Option<usize>,
        args: Vec<std::ffi::OsString>,
    ) -> crate::ops::matrix::MatrixRequest {
        crate::ops::matrix::MatrixRequest {
            kind,
            cells: self.targets.clone(),
            jobs,
            fail_fast: self.fail_fast,
            no_prepare: self.no_prepare,
            args,
        }
    }
}

/// Arguments as a cell's process gets them again (`--matrix`): each group renders what it
/// parsed, so a cell runs exactly the command the user gave, for its own tree.
pub trait ToArgs {
    fn to_args(&self, out: &mut Vec<std::ffi::OsString>);
}

fn flag(out: &mut Vec<std::ffi::OsString>, on: bool, name: &str) {
    if on {
        out.push(name.into());
    }
}

fn value(out: &mut Vec<std::ffi::OsString>, name: &str, v: impl Into<std::ffi::OsString>) {
    out.push(name.into());
    out.push(v.into());
}

impl ToArgs for PackageSelect {
    fn to_args(&self, out: &mut Vec<std::ffi::OsString>) {
        if let Some(m) = &self.manifest_path {
            value(out, "--manifest-path", m);
        }
        for p in &self.packages {
            value(out, "--package", p);
        }
        flag(out, self.workspace, "--workspace");
    }
}

/// Everything but `-j`, which `--matrix` takes for cells.
impl ToArgs for BuildArgs {
    fn to_args(&self, out: &mut Vec<std::ffi::OsString>) {
        flag(out, self.release, "--release");
        for f in &self.features {
            value(out, "--features", f);
        }
        flag(out, self.all_features, "--all-features");
        flag(out, self.no_default_features, "--no-default-features");
        flag(out, self.cargo.offline, "--offline");
        flag(out, self.cargo.locked, "--locked");
        flag(out, self.cargo.frozen, "--frozen");
    }
}

impl ToArgs for KoArgs {
    fn to_args(&self, out: &mut Vec<std::ffi::OsString>) {
        for k in &self.ko {
            value(out, "--ko", k);
        }
        for p in &self.params {
            value(out, "--param", p);
        }
    }
}

/// The kernel arguments come last (after `--`): push this group last.
impl ToArgs for BootArgs {
    fn to_args(&self, out: &mut Vec<std::ffi::OsString>) {
        for d in &self.devices {
            value(out, "--device", d);
        }
        value(out, "--timeout", self.timeout.to_string());
        flag(out, self.secure_boot, "--secure-boot");
        if let Some(k) = &self.key {
            value(out, "--key", k);
        }
        if let Some(c) = &self.cert {
            value(out, "--cert", c);
        }
        if !self.kernel_args.is_empty() {
            out.push("--".into());
            out.extend(self.kernel_args.iter().map(Into::into));
        }
    }
}

impl ToArgs for ShipArgs {
    fn to_args(&self, out: &mut Vec<std::ffi::OsString>) {
        use clap::ValueEnum;
        flag(out, self.sign, "--sign");
        flag(out, self.no_sign, "--no-sign");
        if let Some(k) = &self.key {
            value(out, "--key", k);
        }
        if let Some(c) = &self.cert {
            value(out, "--cert", c);
        }
        if let Some(c) = self.compress.and_then(|c| c.to_possible_value()) {
            value(out, "--compress", c.get_name());
        }
        flag(out, self.no_strip, "--no-strip");
        value(out, "--dir", &self.dir);
        flag(out, self.no_verify, "--no-verify");
    }
}
