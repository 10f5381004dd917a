//! `cargo xtask bench test`: one `cargo kmod test` cycle against a hand-made plain qemu boot.
//!
//! For each arch with a prepared dev tree: build `examples/hello` with its tests
//! (`cargo kmod test` once, into `target/kmod-bench`), then time, in the same run and
//! interleaved, (a) a plain boot of the same kernel with a busybox initramfs made by `cpio`
//! whose `/init` runs `insmod`, `rmmod` and `reboot -f` on that `hello.ko`, as one would by
//! hand, (b) `cargo kmod test` in the example (module already built: the no-op build check,
//! boot, load, KTAP, unload, power off) and (c) `cargo kmod test --ko hello.ko` (no build
//! check). Prints the medians and the ratios to (a); the goals are at most 0.75x on x86_64
//! and 1.0x on arm64. Then the test devices' cost: (d) `cargo kmod test --ko blinker.ko` of
//! `examples/blinker` against (e) the same with its device from a `--device` file, and the
//! same for `examples/rust-driver-pci` and qemu's `pci-testdev`; the goal
//! is at most 1.10x. The plain side is what a user would do by hand: the tree's `bzImage`
//! (or `Image`) with qemu's default firmware; cargo-kmod may boot the same kernel faster
//! (qboot, the PVH entry of `vmlinux`), but runs the whole verdict (token-authenticated
//! protocol, the kernel log streamed and checked, a settle time after the last unload).
//!
//! The dev trees are a debug kernel (`templates/fragments/debug.config`). The plain side
//! boots the dev tree unless `KMOD_BENCH_PLAIN_<arch>` (`KMOD_BENCH_PLAIN_x86_64`) names a
//! tree built from the same fragments without `debug.config`; and two more hand-made boots
//! of the dev tree, with the debug checks on and switched off on the command line
//! (`no_debug_objects kmemleak=off lockdep.prove_locking=0`), show what the checks cost a
//! boot.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::kmod_home;

const RUNS: usize = 21;

struct Arch {
    name: &'static str,
    /// The ratio to the plain boot a `cargo kmod test` cycle must stay under.
    goal: f64,
    qemu: &'static str,
    machine: &'static [&'static str],
    image: &'static str,
    console: &'static str,
    busybox: Option<&'static str>,
}

const ARCHES: [Arch; 2] = [
    Arch {
        name: "x86_64",
        goal: 0.75,
        qemu: "qemu-system-x86_64",
        machine: &[],
        image: "arch/x86/boot/bzImage",
        console: "ttyS0",
        busybox: Some("/bin/busybox"),
    },
    Arch {
        name: "arm64",
        goal: 1.0,
        qemu: "qemu-system-aarch64",
        machine: &["-M", "virt", "-cpu", "cortex-a57"],
        image: "arch/arm64/boot/Image",
        console: "ttyAMA0",
        busybox: None,
    },
];

pub(crate) fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// The dev tree `cargo kmod test --arch ARCH` boots: the first dev tree of `arch` in
/// `cargo kmod init --list`, which lists the newest kernel, then the most recently prepared,
/// first.
fn dev_tree(bin: &Path, arch: &str) -> Option<PathBuf> {
    dev_tree_where(bin, arch, |_| true)
}

/// The first dev tree of `arch` in `init --list` whose release `fits`.
fn dev_tree_where(bin: &Path, arch: &str, fits: impl Fn(&str) -> bool) -> Option<PathBuf> {
    let out = Command::new(bin)
        .args(["kmod", "init", "--list", "--message-format", "json"])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|t| t["arch"] == arch && t["dev"] == true && t["release"].as_str().is_some_and(&fits))
        .and_then(|t| t["path"].as_str().map(PathBuf::from))
}

pub(crate) fn check(cmd: &mut Command) -> Result<()> {
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({})\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// The hand-made initramfs: busybox, the module, an `/init` that loads, unloads, reboots.
pub(crate) fn plain_initramfs(busybox: &Path, ko: &Path, work: &Path) -> Result<PathBuf> {
    let dir = work.join("rootfs");
    std::fs::create_dir_all(dir.join("bin"))?;
    std::fs::create_dir_all(dir.join("proc"))?;
    std::fs::copy(busybox, dir.join("bin/busybox"))?;
    std::fs::copy(ko, dir.join("hello.ko"))?;
    let init = "#!/bin/busybox sh\n\
                /bin/busybox mount -t proc proc /proc\n\
                /bin/busybox insmod /hello.ko\n\
                /bin/busybox rmmod hello\n\
                /bin/busybox reboot -f\n";
    std::fs::write(dir.join("init"), init)?;
    check(
        Command::new("chmod")
            .arg("755")
            .arg(dir.join("init"))
            .arg(dir.join("bin/busybox")),
    )?;
    let out = work.join("plain.cpio.gz");
    check(
        Command::new("sh")
            .arg("-c")
            .arg("find . | cpio -o -H newc --quiet | gzip -1 > \"$0\"")
            .arg(&out)
            .current_dir(&dir),
    )?;
    Ok(out)
}

pub(crate) fn time(cmd: &mut Command) -> Result<Duration> {
    let start = Instant::now();
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    let took = start.elapsed();
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({})\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .rev()
                .take(20)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    Ok(took)
}

pub(crate) fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Run the benchmark and print, per arch, both medians and their ratio.
pub fn run() -> Result<()> {
    let (bin, target) = release_bin()?;
    let manifest = root().join("examples/hello/Cargo.toml");
    let bench_target = target.join("kmod-bench");
    let kmod_test = |arch: &Arch, extra: &[&std::ffi::OsStr]| {
        let mut c = Command::new(&bin);
        c.args(["kmod", "test", "-q", "--arch", arch.name, "--manifest-path"])
            .arg(&manifest)
            .args(extra)
            .env("CARGO_TARGET_DIR", &bench_target)
            .env("CARGO_KMOD_ACCEL", "tcg");
        c
    };
    let mut measured = 0;
    for arch in &ARCHES {
        let Some(tree) = dev_tree(&bin, arch.name) else {
            println!(
                "{:>8}: no prepared tree, skipped (run `cargo kmod init --arch {}`)",
                arch.name, arch.name
            );
            continue;
        };
        // Build (and test once): the timed runs find the module built.
        check(&mut kmod_test(arch, &[]))?;
        let ko = bench_target
            .join("kmod")
            .join(arch.name)
            .join("test/hello.ko");
        if !ko.is_file() {
            bail!("`{}` was not built", ko.display());
        }
        let work = tempdir(arch.name)?;
        let busybox = match arch.busybox {
            Some(p) => PathBuf::from(p),
            None => kmod_home().busybox(arch.name),
        };
        let initrd = plain_initramfs(&busybox, &ko, &work)?;
        let image = tree.join(arch.image);
        // The plain side boots the plain (non-debug) kernel when one is given: a tree built
        // from the same fragments without `debug.config`, by hand (see docs/qemu.md, Speed).
        let plain_image = match std::env::var_os(format!("KMOD_BENCH_PLAIN_{}", arch.name)) {
            Some(dir) => PathBuf::from(dir).join(arch.image),
            None => image.clone(),
        };
        let plain_boot = |image: &Path, extra: &str| {
            let mut c = Command::new(arch.qemu);
            c.args(arch.machine)
                .args(["-m", "256", "-nographic", "-no-reboot", "-kernel"])
                .arg(image)
                .arg("-initrd")
                .arg(&initrd)
                .arg("-append")
                .arg(format!("console={} panic=-1{extra}", arch.console));
            c
        };
        let checks_off = " no_debug_objects kmemleak=off lockdep.prove_locking=0";
        let (mut plain, mut package, mut prebuilt, mut debug_on, mut debug_off) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for run in 0..RUNS {
            // Each run starts with another of the five: on this machine the first of a
            // row of boots measures slower, whichever it is.
            for which in (0..5).map(|k| (run + k) % 5) {
                match which {
                    0 => plain.push(time(&mut plain_boot(&plain_image, ""))?),
                    1 => package.push(time(&mut kmod_test(arch, &[]))?),
                    2 => prebuilt.push(time(&mut kmod_test(
                        arch,
                        &["--ko".as_ref(), ko.as_os_str()],
                    ))?),
                    // The debug kernel's checks, on and off, by hand: what they cost a boot.
                    3 => debug_on.push(time(&mut plain_boot(&image, ""))?),
                    _ => debug_off.push(time(&mut plain_boot(&image, checks_off))?),
                }
            }
        }
        let (on, off) = (median(debug_on), median(debug_off));
        println!(
            "{:>8}: debug kernel, plain boot: checks on {:.2}s, switched off on the command line {:.2}s ({:+.0} ms){}",
            arch.name,
            on.as_secs_f64(),
            off.as_secs_f64(),
            (on.as_secs_f64() - off.as_secs_f64()) * 1000.0,
            if plain_image != image { "" } else { "; the plain side below boots the debug kernel too (set KMOD_BENCH_PLAIN_<arch> to a plain tree)" },
        );
        let (p, k, b) = (median(plain), median(package), median(prebuilt));
        let ratio = |d: Duration| d.as_secs_f64() / p.as_secs_f64();
        let goal = arch.goal;
        let verdict = |r: f64| if r <= goal { "ok" } else { "OVER" };
        println!(
            "{:>8}: plain qemu boot {:.2}s | cargo kmod test {:.2}s = {:.2}x ({}) | with --ko {:.2}s = {:.2}x ({})   [goal <= {goal}x, medians of {RUNS}]",
            arch.name,
            p.as_secs_f64(),
            k.as_secs_f64(),
            ratio(k),
            verdict(ratio(k)),
            b.as_secs_f64(),
            ratio(b),
            verdict(ratio(b)),
        );
        measured += 1;
        devices_overhead(arch, &bin, &bench_target, &work)?;
        let _ = std::fs::remove_dir_all(&work);
    }
    if measured == 0 {
        bail!("no prepared dev tree: nothing measured");
    }
    matrix(&bin, &target)
}

/// [`matrix`] alone (`cargo xtask bench matrix`).
pub fn run_matrix() -> Result<()> {
    let (bin, target) = release_bin()?;
    matrix(&bin, &target)
}

/// The release binary, built now, and the target directory: the binary users run (`cargo
/// install cargo-kmod` builds the release profile).
fn release_bin() -> Result<(PathBuf, PathBuf)> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    check(
        Command::new(&cargo)
            .args(["build", "-q", "--release", "-p", "cargo-kmod"])
            .current_dir(root()),
    )?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"));
    Ok((target.join("release/cargo-kmod"), target))
}

/// `cargo kmod test --matrix` of three cells at most this much of the three `test` runs one
/// after the other.
const MATRIX_GOAL: f64 = 0.8;

/// The matrix's parallelism: examples/hello in a workspace whose matrix is the 7.2 dev trees
/// of both arches and the 6.12 x86_64 one (warm: built and tested once), then, interleaved,
/// (a) the three `cargo kmod test` runs a developer would type one after the other (`--arch
/// x86_64`, `--arch arm64`, `--kdir` of the 6.12 tree) against (b) one `cargo kmod test
/// --matrix` (its default `-j`: the cores).
fn matrix(bin: &Path, target: &Path) -> Result<()> {
    let (Some(x86), Some(arm), Some(six)) = (
        dev_tree(bin, "x86_64"),
        dev_tree(bin, "arm64"),
        tree_612(bin),
    ) else {
        println!(
            "  matrix: the 7.2 dev trees and the 6.12 x86_64 tree are not all prepared: skipped"
        );
        return Ok(());
    };
    let _ = (x86, arm);
    let ws = target.join("kmod-bench-matrix");
    let _ = std::fs::remove_dir_all(&ws);
    std::fs::create_dir_all(ws.join("hello/src"))?;
    for f in ["Cargo.toml", "src/lib.rs"] {
        std::fs::copy(
            root().join("examples/hello").join(f),
            ws.join("hello").join(f),
        )?;
    }
    std::fs::write(
        ws.join("Cargo.toml"),
        "[workspace]\nresolver = \"2\"\nmembers = [\"hello\"]\n\n[workspace.metadata.kmod.matrix]\nkernels = [\"7.2\", \"6.12\"]\narches = [\"x86_64\", \"arm64\"]\nexclude = [\"6.12-arm64\"]\n",
    )?;
    let kmod = |args: &[&std::ffi::OsStr]| {
        let mut c = Command::new(bin);
        c.args(["kmod", "test", "-q"])
            .args(args)
            .current_dir(&ws)
            .env_remove("CARGO_TARGET_DIR")
            .env("CARGO_KMOD_ACCEL", "tcg");
        c
    };
    let os = |s: &'static str| std::ffi::OsStr::new(s);
    check(&mut kmod(&[os("--matrix")]))?;
    let runs = 7;
    let (mut one_by_one, mut matrix) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        one_by_one.push(
            time(&mut kmod(&[os("--arch"), os("x86_64")]))?
                + time(&mut kmod(&[os("--arch"), os("arm64")]))?
                + time(&mut kmod(&[os("--kdir"), six.as_os_str()]))?,
        );
        matrix.push(time(&mut kmod(&[os("--matrix")]))?);
    }
    let (a, b) = (median(one_by_one), median(matrix));
    let ratio = b.as_secs_f64() / a.as_secs_f64();
    println!(
        "  matrix: three `cargo kmod test` one after the other {:.2}s | `cargo kmod test --matrix` (3 cells, {} at once) {:.2}s = {:.2}x ({})   [goal <= {MATRIX_GOAL}x, medians of {runs}]",
        a.as_secs_f64(),
        std::thread::available_parallelism().map_or(1, |n| n.get()).min(3),
        b.as_secs_f64(),
        ratio,
        if ratio <= MATRIX_GOAL { "ok" } else { "OVER" }
    );
    Ok(())
}

/// The 6.12 x86_64 tree (`init --source /usr/src/linux-source-6.12.tar.xz`), if prepared.
fn tree_612(bin: &Path) -> Option<PathBuf> {
    dev_tree_where(bin, "x86_64", |r| r.starts_with("6.12"))
}

fn tempdir(arch: &str) -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("kmod-bench-{}-{arch}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// The test devices' share of a test cycle: at most this much more than the same cycle
/// without devices.
const DEVICES_GOAL: f64 = 1.10;

/// One device set-up measured by [`device_overhead`]: an example's test build, and the same
/// `--ko` cycle with and without a `--device` file.
struct DeviceCase {
    /// examples/<example>.
    example: &'static str,
    /// The test build's `.ko` file name.
    ko: &'static str,
    /// The `--device` file's text.
    device: &'static str,
    /// KUnit filter (both cycles must pass: cases that need the device are left out).
    filter: Option<&'static str>,
    /// How the report names the device.
    what: &'static str,
    /// Whether a failing build is reported and skipped rather than an error: the PCI
    /// example needs the feature trees `cargo kmod init` in it prepares.
    optional: bool,
}

/// The devices' share of a test cycle: examples/blinker with its platform device, and
/// examples/rust-driver-pci (built for the feature tree with PCI that `cargo kmod init` in it
/// prepares) with qemu's `pci-testdev`.
fn devices_overhead(arch: &Arch, bin: &Path, bench_target: &Path, work: &Path) -> Result<()> {
    for case in [
        DeviceCase {
            example: "blinker",
            ko: "blinker.ko",
            device: "[[devices]]\ncompatible = \"acme,blinker\"\nproperties = { \"acme,period-ms\" = 250, \"acme,pins\" = [3, 5] }\n",
            filter: Some("periods_are_checked"),
            what: "a device",
            optional: false,
        },
        DeviceCase {
            example: "rust-driver-pci",
            ko: "rust_driver_pci.ko",
            device: "[[devices]]\nbus = \"pci\"\nqemu-device = \"pci-testdev\"\n",
            filter: None,
            what: "a PCI device",
            optional: true,
        },
    ] {
        device_overhead(arch, bin, bench_target, work, &case)?;
    }
    Ok(())
}

/// The same `cargo kmod test --ko` cycle of `case` with and without its device, interleaved.
/// Prints the medians and their ratio.
fn device_overhead(
    arch: &Arch,
    bin: &Path,
    bench_target: &Path,
    work: &Path,
    case: &DeviceCase,
) -> Result<()> {
    let manifest = root()
        .join("examples")
        .join(case.example)
        .join("Cargo.toml");
    let test = |extra: &[&std::ffi::OsStr]| {
        let mut c = Command::new(bin);
        c.args(["kmod", "test", "-q", "--arch", arch.name])
            .args(extra)
            .env("CARGO_TARGET_DIR", bench_target)
            .env("CARGO_KMOD_ACCEL", "tcg");
        c
    };
    // Build (and test once with its own devices): the timed runs find the module built and
    // the helper module cached.
    let built = check(test(&["--manifest-path".as_ref(), manifest.as_os_str()]).current_dir(work));
    if let Err(e) = built {
        if !case.optional {
            return Err(e);
        }
        println!(
            "{:>8}: {} not measured: examples/{} did not test ({e:#}; `cargo kmod init` in it prepares its trees)",
            arch.name, case.what, case.example
        );
        return Ok(());
    }
    let ko = bench_target
        .join("kmod")
        .join(arch.name)
        .join("test")
        .join(case.ko);
    let device = work.join(format!("{}.toml", case.example));
    std::fs::write(&device, case.device)?;
    let filter: Vec<&std::ffi::OsStr> = case.filter.iter().map(|f| f.as_ref()).collect();
    let (mut without, mut with) = (Vec::new(), Vec::new());
    for run in 0..RUNS {
        // Alternate which goes first (see the test cycle's runs).
        for which in [run % 2, (run + 1) % 2] {
            let mut args: Vec<&std::ffi::OsStr> = vec!["--ko".as_ref(), ko.as_os_str()];
            if which == 1 {
                args.extend(["--device".as_ref(), device.as_os_str()]);
            }
            args.extend(&filter);
            let d = time(test(&args).current_dir(work))?;
            if which == 0 {
                without.push(d);
            } else {
                with.push(d);
            }
        }
    }
    let (a, b) = (median(without), median(with));
    let ratio = b.as_secs_f64() / a.as_secs_f64();
    println!(
        "{:>8}: test without devices {:.2}s | with {} {:.2}s = {:.2}x ({})   [goal <= {DEVICES_GOAL}x, medians of {RUNS}]",
        arch.name,
        a.as_secs_f64(),
        case.what,
        b.as_secs_f64(),
        ratio,
        if ratio <= DEVICES_GOAL { "ok" } else { "OVER" },
    );
    Ok(())
}
