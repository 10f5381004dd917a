//! `cargo xtask setup`: everything a fresh machine needs, idempotently.
//!
//! What it does and why each step is done this way is measured in `shared/kernel-lab.md`:
//! newer Debian suites (trixie-backports, sid) are reached through a sources file of our own,
//! pinned at priority 50 so nothing else on the machine is upgraded from them.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use xshell::{cmd, Shell};

use crate::{kmod_home as home, step};

/// Debian packages the kernel builds, bindgen and the kmod tools need.
const PACKAGES: &[&str] = &[
    "clang-19",
    "lld-19",
    "llvm-19",
    "libclang-19-dev",
    "flex",
    "bison",
    "bc",
    "libelf-dev",
    "libdw-dev",
    "libssl-dev",
    "cpio",
    "kmod",
    "zstd",
    "xz-utils",
    "dwarves",
    "rsync",
    "busybox-static",
    "python3",
    // `dtc`: test devices are compiled into device-tree overlays (docs/devices.md).
    "device-tree-compiler",
    // `iasl`: ACPI test devices (x86_64) are compiled into an SSDT (docs/subsystems.md).
    "acpica-tools",
    // `test --secure-boot` (docs/distro.md): UEFI firmware with Secure Boot, and the tool
    // that enrolls keys in its variable store.
    "ovmf",
    "qemu-efi-aarch64",
    "python3-virt-firmware",
    // GCC-built arm64 trees (`cargo kmod init --cc gcc --arch arm64`): Debian's cross GCC
    // and binutils (`CROSS_COMPILE=aarch64-linux-gnu-`).
    "gcc-aarch64-linux-gnu",
    // `cargo kmod deploy` talks to boards with the system OpenSSH client; its tests make keys
    // with `ssh-keygen`.
    "openssh-client",
    // The distribution-kernel tests build a dkms package with the real `dkms`
    // (docs/distro.md); `unshare`/overlay mounts come with util-linux and the kernel.
    "dkms",
    // `python3 -m venv` (Debian splits it out): the tests' validators (check-jsonschema).
    "python3-venv",
];
/// qemu, taken from bookworm-backports so it matches the image's backported qemu-utils.
const QEMU: &[&str] = &["qemu-system-x86", "qemu-system-arm"];
const SOURCES_FILE: &str = "/etc/apt/sources.list.d/cargo-kmod.sources";
const PREFS_FILE: &str = "/etc/apt/preferences.d/cargo-kmod";
const SOURCES: &str = "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm-backports trixie trixie-backports sid\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n";
const BINDGEN_MIN: (u32, u32, u32) = (0, 71, 1);

/// check-jsonschema (PyPI), pinned: the tests validate generated CI workflows against its
/// vendored GitHub and GitLab schemas and KMM `Module` resources against
/// `tests/schemas/kmm/module.schema.json`.
pub const CHECK_JSONSCHEMA: &str = "0.39.0";

/// The distribution kernels the tests build for (`tests/tests/it/distro.rs`).
const DISTRO_KERNELS: &[&str] = &["debian:7.2.13+deb14-amd64", "debian:7.2.13+deb14-arm64"];
/// `CONFIG_BINDGEN_VERSION_TEXT` of those kernels.
const DISTRO_BINDGEN: &str = "0.72.1";

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// A command run as root: directly when root, else through `sudo` (apt and dpkg need it).
fn root<'a>(sh: &'a Shell, argv: &[&str]) -> xshell::Cmd<'a> {
    let uid = cmd!(sh, "id -u").quiet().read().unwrap_or_default();
    if uid.trim() == "0" {
        let (program, args) = argv.split_first().expect("a program");
        cmd!(sh, "{program} {args...}")
    } else {
        cmd!(sh, "sudo {argv...}")
    }
}

fn installed(sh: &Shell, pkg: &str) -> bool {
    let format = "-f=${Status}";
    cmd!(sh, "dpkg-query -W {format} {pkg}")
        .quiet()
        .ignore_stderr()
        .read()
        .is_ok_and(|s| s.contains("install ok installed"))
}

fn version3(s: &str) -> Option<(u32, u32, u32)> {
    let w = s
        .split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .find(|w| w.matches('.').count() >= 1)?;
    let mut it = w.split('.').map(|p| p.parse::<u32>().ok());
    Some((it.next()??, it.next()??, it.next().flatten().unwrap_or(0)))
}

pub fn setup(sh: &Shell) -> Result<()> {
    // Kernel sources, trees and Debian's packages take about 25 GiB on a fresh machine; with
    // the trees there, a run needs room for the cargo target dir and the tests' scratch dirs.
    let kmod_home = crate::kmod_home();
    let need = if kmod_home.trees_dir().is_dir() {
        5
    } else {
        30
    };
    crate::disk::require(sh, &kmod_home.root, need, "`cargo xtask setup`")?;
    let env = sh.push_env("DEBIAN_FRONTEND", "noninteractive");
    // `apt-get update` once, and only when something must be fetched.
    let updated = std::cell::Cell::new(false);
    let update = |sh: &Shell| -> Result<()> {
        if !updated.get() {
            root(sh, &["apt-get", "update", "-q"]).run()?;
            updated.set(true);
        }
        Ok(())
    };

    // 1. Apt sources for the newer suites, pinned low.
    if !Path::new(SOURCES_FILE).is_file() {
        step(
            "adding Debian suites bookworm-backports, trixie, trixie-backports, sid (pinned at 50)",
        );
        let prefs: String = ["bookworm-backports", "trixie", "trixie-backports", "sid"]
            .iter()
            .map(|s| format!("Package: *\nPin: release n={s}\nPin-Priority: 50\n\n"))
            .collect();
        let tmp = tempfile_with(SOURCES)?;
        root(
            sh,
            &[
                "install",
                "-m",
                "644",
                &tmp.display().to_string(),
                SOURCES_FILE,
            ],
        )
        .run()?;
        let tmp = tempfile_with(&prefs)?;
        root(
            sh,
            &[
                "install",
                "-m",
                "644",
                &tmp.display().to_string(),
                PREFS_FILE,
            ],
        )
        .run()?;
        updated.set(false);
    }
    let foreign = cmd!(sh, "dpkg --print-foreign-architectures")
        .quiet()
        .read()
        .unwrap_or_default();
    if !foreign.lines().any(|l| l.trim() == "arm64") {
        step("adding the arm64 package architecture (for the arm64 guest's busybox)");
        root(sh, &["dpkg", "--add-architecture", "arm64"]).run()?;
        updated.set(false);
    }

    // 2. Debian packages.
    let missing: Vec<&str> = PACKAGES
        .iter()
        .copied()
        .filter(|p| !installed(sh, p))
        .collect();
    if !missing.is_empty() {
        update(sh)?;
        step(&format!("installing {}", missing.join(" ")));
        apt_install(sh, &[], &missing)?;
    }
    let missing: Vec<&str> = QEMU.iter().copied().filter(|p| !installed(sh, p)).collect();
    if !missing.is_empty() {
        update(sh)?;
        step(&format!(
            "installing {} from bookworm-backports",
            missing.join(" ")
        ));
        apt_install(sh, &["-t", "bookworm-backports"], &missing)?;
    }

    // 3. Kernel sources: the newest linux-source-7.x, and 6.12 LTS for the macro's 6.12 path.
    let has_src = |prefix: &str| -> bool {
        std::fs::read_dir("/usr/src").is_ok_and(|it| {
            it.flatten().any(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                n.starts_with(prefix) && n.contains(".tar")
            })
        })
    };
    if !has_src("linux-source-7.") {
        update(sh)?;
        step("getting linux-source-7.2 (Debian sid)");
        let (_dir, debs) = download(sh, "linux-source-7.2", "linux-source-7.2_")?;
        let debs: Vec<String> = debs.iter().map(|d| d.display().to_string()).collect();
        let mut argv = vec!["dpkg", "-i"];
        argv.extend(debs.iter().map(String::as_str));
        root(sh, &argv).run()?;
    }
    if !has_src("linux-source-6.12") {
        update(sh)?;
        step("installing linux-source-6.12 (bookworm-security)");
        apt_install(sh, &[], &["linux-source-6.12"])?;
    }

    // 4. rust-src of exactly this rustc, unpacked under $CARGO_KMOD_HOME.
    let rustc = cmd!(sh, "rustc --version")
        .read()
        .context("rustc is not installed")?;
    let (a, b, c) = version3(&rustc).context("cannot parse `rustc --version`")?;
    let ver = format!("{a}.{b}.{c}");
    let dest = home().rust_src_root(&ver);
    if !dest
        .join("usr/lib/rustlib/src/rust/library/core/src/lib.rs")
        .is_file()
    {
        update(sh)?;
        let madison = cmd!(sh, "apt-cache madison rust-src").read()?;
        let Some(pkgver) = madison
            .lines()
            .filter_map(|l| l.split('|').nth(1).map(str::trim))
            .find(|v| v.starts_with(&format!("{ver}+")) || v.starts_with(&format!("{ver}-")))
        else {
            bail!("Debian has no `rust-src` for rustc {ver}: install rust-src {ver} yourself and set `RUST_LIB_SRC`");
        };
        step(&format!("getting Debian's rust-src={pkgver} for {rustc}"));
        let (_dir, debs) = download(sh, &format!("rust-src={pkgver}"), "rust-src_")?;
        let tmp = dest.with_extension("tmp");
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp)?;
        cmd!(sh, "dpkg -x {debs...} {tmp}").run()?;
        let _ = std::fs::remove_dir_all(&dest);
        std::fs::rename(&tmp, &dest)?;
    }

    // 5. A static busybox for each guest arch.
    let bb_x86 = home().busybox("x86_64");
    if !bb_x86.is_file() {
        step("copying the x86_64 busybox");
        std::fs::create_dir_all(bb_x86.parent().unwrap())?;
        std::fs::copy("/bin/busybox", &bb_x86).context("busybox-static is not installed")?;
    }
    let bb_arm = home().busybox("arm64");
    if !bb_arm.is_file() {
        update(sh)?;
        step("getting busybox-static:arm64");
        let (dir, debs) = download(sh, "busybox-static:arm64", "busybox-static_")?;
        let x = dir.path().join("x");
        cmd!(sh, "dpkg -x {debs...} {x}").run()?;
        std::fs::create_dir_all(bb_arm.parent().unwrap())?;
        std::fs::copy(x.join("bin/busybox"), &bb_arm)?;
    }

    // 5b. The deploy tests' board: Debian's dropbear and its libraries for arm64.
    crate::rootfs::ensure(sh, &home(), &update)?;

    // 6. bindgen-cli (the kernel's Rust build runs it).
    let bindgen_ok = cmd!(sh, "bindgen --version")
        .quiet()
        .ignore_stderr()
        .read()
        .ok()
        .and_then(|v| version3(&v))
        .is_some_and(|v| v >= BINDGEN_MIN);
    if !bindgen_ok {
        step("installing bindgen-cli");
        let cargo = cargo();
        let _e = sh.push_env("LIBCLANG_PATH", "/usr/lib/llvm-19/lib");
        cmd!(sh, "{cargo} install bindgen-cli --locked").run()?;
    }

    // 7. cargo-kmod itself, so `cargo kmod` works everywhere.
    step("installing cargo-kmod into cargo's bin directory");
    let cargo = cargo();
    let target = project_root_dir().join("target");
    cmd!(
        sh,
        "{cargo} install --quiet --locked --debug --path cargo-kmod --target-dir {target}"
    )
    .run()?;
    drop(env);

    // 8. The crates.io crates of `examples/crates` and the dependency tests, into cargo's
    //    cache (a no-op when there), so their builds and `--offline` need no network later.
    step("fetching the crates of examples/crates and tests/fixtures/crates");
    for manifest in [
        "examples/crates/Cargo.toml",
        "tests/fixtures/crates/Cargo.toml",
    ] {
        let manifest = project_root_dir().join(manifest);
        cmd!(sh, "{cargo} fetch --locked --manifest-path {manifest}").run()?;
    }

    // 9. The dev trees (a no-op when prepared), and 6.12 for the macro's version switch;
    //    then `doctor` on each of them. Only on these: the home may hold other trees (a
    //    board's, a distribution's, an older cargo-kmod's) whose own problems are not
    //    set-up's to fix.
    let kmod = cargo_kmod_bin();
    let mut trees = Vec::new();
    for args in [
        &["--arch", "all"][..],
        &[
            "--arch",
            "x86_64",
            "--source",
            "/usr/src/linux-source-6.12.tar.xz",
        ][..],
        // The x86_64 sanitizer tree (KASAN) that `test --sanitize` boots (docs/qemu.md).
        &["--arch", "x86_64", "--sanitize"][..],
    ] {
        let out = cmd!(sh, "{kmod} kmod init {args...} --message-format json").read()?;
        trees.extend(tree_paths(&out));
    }
    anyhow::ensure!(!trees.is_empty(), "`cargo kmod init` named no tree");
    // The feature trees of examples/rust-driver-pci (`kernel-config = { PCI = "y" }`): plain
    // `init` in the package adds them to the dev trees (docs/subsystems.md).
    {
        let _dir = sh.push_dir(project_root_dir().join("examples/rust-driver-pci"));
        let out = cmd!(sh, "{kmod} kmod init --arch all --message-format json").read()?;
        trees.extend(tree_paths(&out));
    }
    // 10. rust-analyzer for the LSP test (Debian's, with trixie's runtime; test tooling).
    crate::rust_analyzer::ensure(sh)?;
    // 10b. check-jsonschema in a venv of its own (test tooling; a no-op when the pinned
    //      version answers).
    check_jsonschema(sh)?;
    // 11. Debian's Rust-enabled kernels, their headers completed with `rust/` (docs/distro.md):
    //     the bindgen their `.config` names (0.72.1), then `init --distro-kernel` (a no-op when
    //     completed; the packages come from Debian with cargo-kmod's private apt, cached).
    let bindgen_root = home().bindgen_root(DISTRO_BINDGEN);
    if !bindgen_root.join("bin/bindgen").is_file() {
        step(&format!(
            "installing bindgen-cli {DISTRO_BINDGEN} (Debian's kernels name it)"
        ));
        let _e = sh.push_env("LIBCLANG_PATH", "/usr/lib/llvm-19/lib");
        cmd!(
            sh,
            "{cargo} install bindgen-cli --locked --version {DISTRO_BINDGEN} --root {bindgen_root}"
        )
        .run()?;
    }
    for kernel in DISTRO_KERNELS {
        step(&format!("completing {kernel}'s headers with rust/"));
        cmd!(sh, "{kmod} kmod init --distro-kernel {kernel}").run()?;
    }
    for kdir in &trees {
        cmd!(sh, "{kmod} kmod doctor --kdir {kdir}").run()?;
    }
    Ok(())
}

/// `check-jsonschema` [`CHECK_JSONSCHEMA`] in a Python venv at `Home::validators_dir`,
/// unless its `--version` already names that version. A venv rather than the system's
/// Python, so nothing outside the home changes and the tests find it at one fixed place
/// (with its `ruamel.yaml`, which they convert YAML with).
pub fn check_jsonschema(sh: &Shell) -> Result<()> {
    let venv = home().validators_dir();
    let bin = venv.join("bin/check-jsonschema");
    let current = cmd!(sh, "{bin} --version")
        .quiet()
        .ignore_stderr()
        .read()
        .unwrap_or_default();
    if current.split_whitespace().any(|w| w == CHECK_JSONSCHEMA) {
        return Ok(());
    }
    step(&format!(
        "installing check-jsonschema {CHECK_JSONSCHEMA} (test tooling) into `{}`",
        venv.display()
    ));
    // `--clear`: a venv left broken (its Python gone, an interrupted install) starts over.
    cmd!(sh, "python3 -m venv --clear {venv}").run()?;
    let pip = venv.join("bin/pip");
    let spec = format!("check-jsonschema=={CHECK_JSONSCHEMA}");
    cmd!(sh, "{pip} install --quiet {spec}").run()?;
    let version = cmd!(sh, "{bin} --version").read()?;
    anyhow::ensure!(
        version.split_whitespace().any(|w| w == CHECK_JSONSCHEMA),
        "`{}` says `{version}`, not {CHECK_JSONSCHEMA}",
        bin.display()
    );
    Ok(())
}

/// The `path` of each `kernel-tree` message in `cargo kmod init --message-format json`'s
/// output.
fn tree_paths(json_lines: &str) -> Vec<String> {
    json_lines
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["reason"] == "kernel-tree")
        .filter_map(|v| v["path"].as_str().map(str::to_string))
        .collect()
}

/// The main job after setup: build the hello example and load it in qemu on both arches.
pub fn demo(sh: &Shell) -> Result<()> {
    let kmod = cargo_kmod_bin();
    let hello = project_root_dir().join("examples/hello");
    let manifest = hello.join("Cargo.toml");
    for arch in ["x86_64", "arm64"] {
        cmd!(
            sh,
            "{kmod} kmod build --manifest-path {manifest} --arch {arch}"
        )
        .run()?;
        cmd!(
            sh,
            "{kmod} kmod test --manifest-path {manifest} --arch {arch}"
        )
        .run()?;
    }
    Ok(())
}

pub fn cargo_kmod_bin() -> PathBuf {
    project_root_dir().join("target/debug/cargo-kmod")
}

fn project_root_dir() -> PathBuf {
    crate::project_root()
}

/// `apt-get install -y -q --no-install-recommends [OPTIONS] PACKAGES` as root.
fn apt_install(sh: &Shell, options: &[&str], packages: &[&str]) -> Result<()> {
    let argv = [
        &["apt-get", "install", "-y", "-q", "--no-install-recommends"][..],
        options,
        packages,
    ]
    .concat();
    root(sh, &argv).run()?;
    Ok(())
}

/// `apt-get download SPEC` into a fresh temp dir (readable by apt's `_apt` user); the dir and
/// the downloaded `PREFIX*.deb` files.
fn download(sh: &Shell, spec: &str, prefix: &str) -> Result<(tempfile::TempDir, Vec<PathBuf>)> {
    let dir = tempfile::tempdir()?;
    let d = dir.path();
    cmd!(sh, "chmod 755 {d}").run()?;
    let _cd = sh.push_dir(d);
    cmd!(sh, "apt-get download {spec}").run()?;
    let debs = glob(d, prefix)?;
    Ok((dir, debs))
}

fn glob(dir: &Path, prefix: &str) -> Result<Vec<PathBuf>> {
    let v: Vec<PathBuf> = std::fs::read_dir(dir)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name().is_some_and(|n| {
                n.to_string_lossy().starts_with(prefix) && n.to_string_lossy().ends_with(".deb")
            })
        })
        .collect();
    if v.is_empty() {
        bail!("no `{prefix}*.deb` was downloaded into `{}`", dir.display());
    }
    Ok(v)
}

fn tempfile_with(text: &str) -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("cargo-kmod-setup-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let p = dir.join(format!("f{}", text.len()));
    std::fs::write(&p, text)?;
    Ok(p)
}
