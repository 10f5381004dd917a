//! Distribution kernels (docs/distro.md) against Debian's real packages:
//!
//! - `cargo kmod init --distro-kernel debian:7.2.13+deb14-{amd64,arm64}` fetches the headers,
//!   the source of the same version and the kernel's own rustc and gcc with a private apt,
//!   and completes the headers with `rust/`; every Rust symbol the rebuilt crates export is in
//!   Debian's `Module.symvers`;
//! - the hello, mixed (C + bindings), miscdev and crates examples build against that kernel
//!   through a named target (`distro-kernel = "debian:..."`) and verify against it, for amd64
//!   and cross-built arm64;
//! - `test` and `run` boot Debian's own kernel image (amd64 `-M pc`, arm64 `-M virt`) and
//!   load the examples into it: `/sys/module/<name>` exists, the miscdev example's device node
//!   answers, and the run says that the KUnit cases were not run (Debian's kernels have no
//!   `CONFIG_KUNIT`), which `--require-kunit` turns into a failure; a boot that enforces
//!   signatures (`module.sig_enforce=1`) refuses the unsigned module, and a Secure Boot boot
//!   (UEFI firmware, the user's certificate enrolled as a MOK) accepts the module signed with
//!   the user's key; a module `cargo kmod new`
//!   made loads into the arm64 kernel through a target naming it;
//! - a module that needs one of Debian's modules (`crc_itu_t`) gets it from Debian's own
//!   `linux-modules-<release>`, loaded first, as `modprobe` would;
//! - `kit` writes the Rust headers package; with Debian's own headers packages it lets plain
//!   `make` and the real `dkms` build a Rust module that loads into Debian's kernel;
//! - `package --format deb` for Debian's kernel depends on its `linux-modules-<release>`,
//!   installs `usr/lib/modules/<release>/updates/<name>.ko.xz`, and the real `dpkg` installs
//!   it with Debian's modules package into an empty root, whose `depmod` then knows it; the
//!   module from the package loads into Debian's kernel; signing needs the user's own key;
//! - the headers directory itself stands for its completion (`--kdir`), and headers not
//!   completed get the command that completes them, from `build` and `doctor`;
//! - bad input: a kernel without Rust, an unknown release (with the nearest), a name that is
//!   not one, a target whose arch contradicts its kernel, a target not prepared, a truncated
//!   download in the cache, two preparations at once, a rustc that lies about its version, an
//!   edited `.config`, a rustc Debian does not have, headers whose source cannot be found.
//!
//! The completions are prepared by `cargo xtask setup` (about 1.5 minutes each on 2 cores,
//! downloads cached); a test prepares what is missing itself.

use crate::common::*;

use std::path::{Path, PathBuf};

const AMD64: &str = "debian:7.2.13+deb14-amd64";
const ARM64: &str = "debian:7.2.13+deb14-arm64";

/// `init --distro-kernel NAME` (a no-op when completed): the `kernel-tree` line.
fn completed(name: &str) -> serde_json::Value {
    let o = run(&mut kmod(&[
        "init",
        "--message-format",
        "json",
        "--distro-kernel",
        name,
    ]));
    ok(&o);
    stdout(&o)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["reason"] == "kernel-tree")
        .unwrap_or_else(|| panic!("no kernel-tree line from `init --distro-kernel {name}`"))
}

/// An example with a `[workspace]` naming the two Debian kernels as targets.
fn distro_example(name: &str) -> (tempfile::TempDir, PathBuf) {
    let (tmp, dir) = example(name);
    let manifest = dir.join("Cargo.toml");
    let mut text = std::fs::read_to_string(&manifest).unwrap();
    text.push_str(&format!(
        "\n[workspace]\n\n[workspace.metadata.kmod.targets.sid]\ndistro-kernel = \"{AMD64}\"\n\n\
         [workspace.metadata.kmod.targets.sid-arm64]\ndistro-kernel = \"{ARM64}\"\n"
    ));
    write(&manifest, &text);
    (tmp, dir)
}

#[test]
fn debian_kernels_build_and_verify_the_examples_for_amd64_and_arm64() {
    for (name, target, release, machine) in [
        (AMD64, "sid", "7.2.13+deb14-amd64", 62u16),
        (ARM64, "sid-arm64", "7.2.13+deb14-arm64", 183),
    ] {
        let tree = completed(name);
        assert_eq!(tree["release"], release);
        assert!(tree["symbols_checked"].as_u64().unwrap() > 1000, "{tree}");
        assert_eq!(
            tree["rustc"],
            "rustc 1.97.1 (8bab26f4f 2026-07-14) (built from a source tarball)"
        );
        let dir = PathBuf::from(tree["path"].as_str().unwrap());
        for f in [
            "rust/libkernel.rmeta",
            "rust/libmacros.so",
            "scripts/module.lds",
        ] {
            assert!(dir.join(f).exists(), "{f}");
        }
        // Debian's own configuration, unchanged.
        let headers = PathBuf::from(tree["headers"].as_str().unwrap());
        assert_eq!(
            std::fs::read(headers.join(".config")).unwrap(),
            std::fs::read(dir.join(".config")).unwrap()
        );
        for example in ["hello", "mixed", "miscdev", "crates"] {
            let (_tmp, pkg) = distro_example(example);
            let a = build_artifact(&pkg, &["--target", target]);
            assert_eq!(a["kernel_release"], release, "{example}");
            let ko = PathBuf::from(a["path"].as_str().unwrap());
            assert_eq!(elf_machine(&ko), machine, "{example}");
            let info = modinfo_field(&ko, "vermagic");
            assert!(
                info.starts_with(&format!("{release} SMP")),
                "{example}: {info}"
            );
            let o = run(kmod(&["verify", "--target", target])
                .arg(&ko)
                .current_dir(&pkg));
            ok(&o);
        }
    }
}

/// `modinfo -F FIELD` of a module file.
fn modinfo_field(ko: &Path, field: &str) -> String {
    let o = run(std::process::Command::new("/sbin/modinfo")
        .args(["-F", field])
        .arg(ko));
    ok(&o);
    stdout(&o).trim().to_string()
}

#[test]
fn the_headers_directory_stands_for_its_completion_and_bare_headers_get_the_command() {
    let tree = completed(AMD64);
    let headers = PathBuf::from(tree["headers"].as_str().unwrap());
    let (_tmp, pkg) = distro_example("hello");
    // The package's own headers directory: its completion is found by its contents.
    let a = build_artifact(&pkg, &["--kdir", s(&headers)]);
    assert_eq!(a["kernel_release"], "7.2.13+deb14-amd64");

    // Other headers (their Module.symvers differs): not completed yet.
    let other = scratch();
    let copy = other.path().join("linux-headers-7.2.13+deb14-amd64");
    // As the package installs it: `scripts` and `tools` are symlinks (`cp -a` keeps them).
    ok(&run(std::process::Command::new("cp")
        .arg("-a")
        .arg(&headers)
        .arg(&copy)));
    let symvers = copy.join("Module.symvers");
    let text = std::fs::read_to_string(&symvers).unwrap();
    write(
        &symvers,
        &format!("{text}0x00000000\tcargo_kmod_other\tvmlinux\tEXPORT_SYMBOL\t\n"),
    );
    let o = run(kmod(&["build", "--kdir", s(&copy)]).current_dir(&pkg));
    let (err, help) = error_and_help(&fails(&o));
    assert!(
        err.contains("distribution's kernel headers without `rust/`"),
        "{err}"
    );
    assert!(
        help.contains(&format!("cargo kmod init --kdir {}", copy.display())),
        "{help}"
    );
    let o = run(&mut kmod(&["doctor", "--kdir", s(&copy)]));
    assert!(
        stdout(&o).contains(&format!("cargo kmod init --kdir {}", copy.display())),
        "{}",
        stdout(&o)
    );
    // Nothing was written into the headers.
    assert!(!copy.join("rust").exists());
    assert!(!headers.join("rust").exists());
}

#[test]
fn a_kernel_without_rust_and_unknown_names_are_refused_in_one_line() {
    let home = scratch_home_sharing(&["distro", "sources"]);
    // Debian 13's 6.12 kernel is built without Rust.
    let o = run(&mut init_in(
        home.path(),
        &["--distro-kernel", "debian:6.12.117+deb13-amd64"],
    ));
    let (err, help) = error_and_help(&fails(&o));
    assert!(
        err.contains("has no Rust support: `CONFIG_RUST` is not set"),
        "{err}"
    );
    assert!(help.contains("CONFIG_RUST=y"), "{help}");

    let o = run(&mut init_in(
        home.path(),
        &["--distro-kernel", "debian:7.2.99+deb14-amd64"],
    ));
    let (err, help) = error_and_help(&fails(&o));
    assert!(
        err.contains("unknown distribution kernel `debian:7.2.99+deb14-amd64`"),
        "{err}"
    );
    assert!(
        help.contains("did you mean `debian:7.2.13+deb14-amd64`?"),
        "{help}"
    );

    for (bad, says) in [
        ("7.2.13+deb14-amd64", "does not name a distribution kernel"),
        (
            "debian:7.2.13+deb14-armhf",
            "has no flavour cargo-kmod supports",
        ),
        ("debian:7.2.13/../../x-amd64", "is not a kernel release"),
    ] {
        let o = run(&mut init_in(home.path(), &["--distro-kernel", bad]));
        let err = one_error_line(&fails(&o));
        assert!(err.contains(says), "{bad}: {err}");
    }
}

#[test]
fn targets_naming_a_distribution_kernel_are_checked() {
    let (_tmp, pkg) = example("hello");
    let manifest = pkg.join("Cargo.toml");
    let base = std::fs::read_to_string(&manifest).unwrap();
    for (table, says) in [
        (
            format!("distro-kernel = \"{ARM64}\"\narch = \"x86_64\"\n"),
            "says `arch = \"x86_64\"`, but `debian:7.2.13+deb14-arm64` is a kernel for arm64",
        ),
        (
            format!("distro-kernel = \"{AMD64}\"\nkdir = \"/tmp\"\n"),
            "has both `distro-kernel` and `kdir`",
        ),
        (
            "distro-kernel = \"debian:7.2\"\n".to_string(),
            "`distro-kernel` in `[workspace.metadata.kmod.targets.d]`",
        ),
    ] {
        write(
            &manifest,
            &format!("{base}\n[workspace]\n\n[workspace.metadata.kmod.targets.d]\n{table}"),
        );
        let o = run(kmod(&["build", "--target", "d"]).current_dir(&pkg));
        let err = one_error_line(&fails(&o));
        assert!(err.contains(says), "{err}");
        assert!(
            err.contains(s(&manifest)) || says.contains("distro-kernel` in"),
            "{err}"
        );
    }
    // A target whose kernel was not completed in this home: the command that does it.
    write(
        &manifest,
        &format!("{base}\n[workspace]\n\n[workspace.metadata.kmod.targets.d]\ndistro-kernel = \"{AMD64}\"\n"),
    );
    let home = scratch_home();
    let o = run(kmod(&["build", "--target", "d"])
        .env("CARGO_KMOD_HOME", home.path())
        .current_dir(&pkg));
    let (err, help) = error_and_help(&fails(&o));
    assert!(err.contains("whose headers are not completed yet"), "{err}");
    assert!(help.contains("cargo kmod init --target d"), "{help}");
    // And `--arch` contradicting it.
    completed(AMD64);
    let o = run(kmod(&["build", "--target", "d", "--arch", "arm64"]).current_dir(&pkg));
    let err = one_error_line(&fails(&o));
    assert!(err.contains("is for x86_64, not arm64"), "{err}");
}

#[test]
fn a_truncated_download_is_fetched_again_and_two_preparations_share_one_unpack() {
    // A private home whose apt cache holds a truncated copy of a headers package.
    let home = scratch_home_sharing(&["sources"]);
    let real = real_home().join("distro/debian");
    let mine = home.path().join("distro/debian");
    std::fs::create_dir_all(mine.join("apt/cache/archives")).unwrap();
    copy_dir(&real.join("apt/lists"), &mine.join("apt/lists"));
    let name = "debian:6.12.117+deb13-amd64";
    let o = run(&mut init_in(home.path(), &["--distro-kernel", name]));
    fails(&o);
    let archives = mine.join("apt/cache/archives");
    let deb = std::fs::read_dir(&archives)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("linux-headers-6.12.117+deb13-amd64_")
        })
        .expect("the headers package in the archive cache");
    let size = std::fs::metadata(&deb).unwrap().len();
    let bytes = std::fs::read(&deb).unwrap();
    std::fs::write(&deb, &bytes[..bytes.len() / 2]).unwrap();
    for e in std::fs::read_dir(mine.join("packages")).unwrap().flatten() {
        std::fs::remove_dir_all(e.path()).unwrap();
    }
    // Two at once: one fetches (again, the cached copy fails its check), the other waits.
    let both: Vec<_> = (0..2)
        .map(|_| {
            let mut c = init_in(home.path(), &["--distro-kernel", name]);
            std::thread::spawn(move || run(&mut c))
        })
        .collect();
    for o in both.into_iter().map(|t| t.join().unwrap()) {
        let err = one_error_line(&fails(&o));
        assert!(err.contains("has no Rust support"), "{err}");
    }
    assert_eq!(std::fs::metadata(&deb).unwrap().len(), size);
    let unpacked: Vec<String> = std::fs::read_dir(mine.join("packages"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        unpacked
            .iter()
            .filter(|n| n.starts_with("linux-headers-6.12.117+deb13-amd64_"))
            .count(),
        1,
        "{unpacked:?}"
    );
    assert!(
        !unpacked.iter().any(|n| n.starts_with(".unpack-")),
        "{unpacked:?}"
    );
}

#[test]
fn debian_kernels_boot_under_qemu_and_load_the_examples() {
    for (name, target, arch) in [(AMD64, "sid", "x86_64"), (ARM64, "sid-arm64", "arm64")] {
        completed(name);
        for (example, module) in [
            ("hello", "hello"),
            ("mixed", "mixed"),
            ("miscdev", "miscdev"),
            ("crates", "crates"),
        ] {
            let (_tmp, pkg) = distro_example(example);
            let o = run(kmod(&["test", "--target", target]).current_dir(&pkg));
            ok(&o);
            let err = stderr(&o);
            assert!(
                err.contains("KUnit cases were not run") && err.contains("no `CONFIG_KUNIT`"),
                "{arch} {example}: {err}"
            );
            // Never a count of cases that did not run.
            assert!(
                stdout(&o).contains("test result: ok. 0 passed"),
                "{}",
                stdout(&o)
            );
            let o = run(kmod(&[
                "run",
                "--target",
                target,
                "--exec",
                &format!("uname -r; ls -d /sys/module/{module}"),
            ])
            .current_dir(&pkg));
            ok(&o);
            let out = stdout(&o);
            assert!(out.contains(&name["debian:".len()..]), "{arch}: {out}");
            assert!(
                out.contains(&format!("/sys/module/{module}")),
                "{arch}: {out}"
            );
            if example == "miscdev" {
                let o = run(kmod(&[
                    "run",
                    "--target",
                    target,
                    "--exec",
                    "echo kmod-hello > /dev/kmod-echo && cat /dev/kmod-echo",
                ])
                .current_dir(&pkg));
                ok(&o);
                assert!(stdout(&o).contains("kmod-hello"), "{arch}: {}", stdout(&o));
            }
        }
        let (_tmp, pkg) = distro_example("hello");
        // An enforcing boot refuses the unsigned module, in the kernel's words.
        let o = run(
            kmod(&["test", "--target", target, "--", "module.sig_enforce=1"]).current_dir(&pkg),
        );
        fails(&o);
        let out = stdout(&o);
        assert!(
            out.contains("Loading of unsigned module is rejected"),
            "{arch}: {out}"
        );
        let o = run(kmod(&["test", "--target", target, "--require-kunit"]).current_dir(&pkg));
        let (err, help) = error_and_help(&fails(&o));
        assert!(
            err.contains("the KUnit cases of `hello` cannot run")
                && err.contains("it has no `CONFIG_KUNIT`"),
            "{err}"
        );
        assert!(help.contains("--require-kunit"), "{help}");
    }
}

/// Secure Boot with the user's key (docs/distro.md): `test --secure-boot --key --cert` boots
/// Debian's kernel in UEFI firmware with Secure Boot on, the kernel's own signer in
/// `db` and the user's certificate enrolled as a Machine Owner Key; the kernel locks down and
/// enforces signatures, and the module signed with the user's key loads (taint `O` only, no
/// `E`). The same on arm64 (AAVMF). Without a key of the user's, and for a kernel image
/// without a Secure Boot signature, the run is refused in one line.
#[test]
fn an_enforcing_secure_boot_accepts_the_users_key_enrolled_as_a_mok() {
    completed(AMD64);
    completed(ARM64);
    let (tmp, pkg) = distro_example("hello");
    let (key, cert) = new_key(tmp.path(), None);
    let sb = ["--secure-boot", "--key", s(&key), "--cert", s(&cert)];
    for target in ["sid", "sid-arm64"] {
        let o = run(
            kmod(&[&["test", "-v", "--target", target][..], &sb[..]].concat()).current_dir(&pkg),
        );
        ok(&o);
        let err = stderr(&o);
        assert!(
            err.contains("as a Machine Owner Key; Secure Boot on") && err.contains("if=pflash"),
            "{target}: {err}"
        );
        assert!(stdout(&o).contains("test result: ok"), "{}", stdout(&o));
        let o = run(kmod(
            &[
                &["run", "--target", target][..],
                &sb[..],
                &[
                    "--exec",
                    "cat /sys/module/module/parameters/sig_enforce /proc/sys/kernel/tainted; \
                     dmesg | grep -E 'locked down|MokListRT|other key'; grep -c '^hello ' /proc/modules",
                ][..],
            ]
            .concat(),
        )
        .current_dir(&pkg));
        ok(&o);
        let out = stdout(&o);
        assert!(out.starts_with("Y\n4096\n"), "{target}: {out}");
        assert!(
            out.contains("Kernel is locked down from EFI Secure Boot")
                && out.contains("Loading X.509 certificate: UEFI:MokListRT")
                && out.contains("Loaded X.509 cert 'other key"),
            "{target}: {out}"
        );
        assert!(out.trim_end().ends_with("\n1"), "{target}: {out}");
    }

    // Debian's kernel has no key of the user's: `--key` and `--cert` are required.
    let o = run(kmod(&["test", "--target", "sid", "--secure-boot"]).current_dir(&pkg));
    let (err, help) = error_and_help(&fails(&o));
    assert!(err.contains("needs your own `--key` and `--cert`"), "{err}");
    assert!(help.contains("--key mok.key --cert mok.pem"), "{help}");
    // The dev tree's image is not signed for Secure Boot.
    let (_tmp2, hello) = example("hello");
    let o = run(kmod(&[&["test", "--arch", "x86_64"][..], &sb[..]].concat()).current_dir(&hello));
    let err = one_error_line(&fails(&o));
    assert!(err.contains("has no UEFI Secure Boot signature"), "{err}");
    assert!(!stderr(&o).contains("Compiling"), "{}", stderr(&o));
}

#[test]
fn a_new_module_loads_into_debians_arm64_kernel() {
    completed(ARM64);
    let tmp = scratch();
    ok(&run(kmod(&["new", "x"]).current_dir(tmp.path())));
    let pkg = tmp.path().join("x");
    let manifest = pkg.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    write(
        &manifest,
        &format!("{text}\n[workspace.metadata.kmod.targets.pi]\ndistro-kernel = \"{ARM64}\"\n"),
    );
    let o = run(kmod(&["test", "--target", "pi"]).current_dir(&pkg));
    ok(&o);
    let o = run(kmod(&[
        "run",
        "--target",
        "pi",
        "--exec",
        "grep -c '^x ' /proc/modules; uname -m",
    ])
    .current_dir(&pkg));
    ok(&o);
    let out = stdout(&o);
    assert!(out.contains("1\naarch64"), "{out}");
}

/// A module whose C part calls `crc_itu_t`, which Debian builds as a module (`crc-itu-t`).
fn needs_crc_itu_t() -> (tempfile::TempDir, PathBuf) {
    let tmp = scratch();
    ok(&run(kmod(&["new", "dep1"]).current_dir(tmp.path())));
    let pkg = tmp.path().join("dep1");
    let manifest = pkg.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).unwrap().replacen(
        "[package.metadata.kmod]",
        "[package.metadata.kmod]\nc-sources = [\"src/crc.c\"]",
        1,
    );
    write(
        &manifest,
        &format!("{text}\n[workspace.metadata.kmod.targets.sid]\ndistro-kernel = \"{AMD64}\"\n"),
    );
    write(
        &pkg.join("src/crc.c"),
        "#include <linux/module.h>\n#include <linux/crc-itu-t.h>\n\nu16 dep1_crc(void);\n\
         u16 dep1_crc(void)\n{\n\tstatic const u8 b[] = { 1, 2, 3 };\n\n\treturn crc_itu_t(0, b, sizeof(b));\n}\n",
    );
    (tmp, pkg)
}

#[test]
fn load_time_dependencies_come_from_debians_modules_package() {
    completed(AMD64);
    let (_tmp, pkg) = needs_crc_itu_t();
    let o = run(kmod(&["test", "--target", "sid"]).current_dir(&pkg));
    ok(&o);
    assert!(
        stderr(&o).contains("Adding crc_itu_t from the distribution's modules"),
        "{}",
        stderr(&o)
    );
    let o = run(kmod(&[
        "run",
        "--target",
        "sid",
        "--exec",
        "cut -d' ' -f1,4 /proc/modules",
    ])
    .current_dir(&pkg));
    ok(&o);
    let out = stdout(&o);
    assert!(
        out.contains("dep1 -") && out.contains("crc_itu_t dep1,"),
        "{out}"
    );
}

#[test]
fn a_deb_for_debians_kernel_installs_with_dpkg_beside_debians_modules_and_loads() {
    let tree = completed(ARM64);
    let release = tree["release"].as_str().unwrap().to_string();
    let (_tmp, pkg) = distro_example("hello");
    // Debian's kernel was signed with Debian's key: `--sign` needs the user's own.
    let o = run(kmod(&[
        "package",
        "--format",
        "deb",
        "--target",
        "sid-arm64",
        "--sign",
    ])
    .current_dir(&pkg));
    let (err, help) = error_and_help(&fails(&o));
    assert!(err.contains("`--sign` needs `--key` and `--cert`"), "{err}");
    assert!(help.contains("mokutil --import"), "{help}");

    ok(&run(kmod(&[
        "package",
        "--format",
        "deb",
        "--target",
        "sid-arm64",
    ])
    .current_dir(&pkg)));
    let debs: Vec<PathBuf> = std::fs::read_dir(pkg.join("target/kmod/package"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "deb"))
        .collect();
    assert_eq!(debs.len(), 1, "{debs:?}");
    let deb = &debs[0];
    let field = |f: &str| {
        let o = run(std::process::Command::new("dpkg-deb")
            .args(["-f"])
            .arg(deb)
            .arg(f));
        ok(&o);
        stdout(&o).trim().to_string()
    };
    assert_eq!(field("Depends"), format!("kmod, linux-modules-{release}"));
    assert_eq!(field("Architecture"), "arm64");
    let o = run(std::process::Command::new("dpkg-deb").arg("-c").arg(deb));
    let listing = stdout(&o);
    let inside = format!("usr/lib/modules/{release}/updates/hello.ko.xz");
    assert!(listing.contains(&inside), "{listing}");

    // An empty root with a dpkg database: Debian's modules package, then ours, by dpkg.
    let root = scratch();
    let r = root.path();
    for d in ["var/lib/dpkg/info", "var/lib/dpkg/updates", "usr/lib"] {
        std::fs::create_dir_all(r.join(d)).unwrap();
    }
    std::fs::write(r.join("var/lib/dpkg/status"), "").unwrap();
    std::os::unix::fs::symlink("usr/lib", r.join("lib")).unwrap();
    // Debian's `.deb` as the completion fetched it (downloaded again with the same private
    // apt when only its unpacked copy was kept).
    let apt = real_home().join("distro/debian/apt");
    let archives = apt.join("cache/archives");
    let find = || {
        std::fs::read_dir(&archives)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                let n = p.file_name().unwrap().to_string_lossy().into_owned();
                n.starts_with(&format!("linux-modules-{release}_")) && n.ends_with(".deb")
            })
    };
    if find().is_none() {
        ok(&run(std::process::Command::new("apt-get")
            .arg("-c")
            .arg(apt.join("apt.conf"))
            .args(["-q", "-o", "Debug::NoLocking=1", "download"])
            .arg(format!("linux-modules-{release}:arm64"))
            .current_dir(&archives)));
    }
    let modules_deb = find().expect("Debian's modules package");
    // Debian's package unpacked by dpkg (its own postinst runs `depmod` for the machine's
    // `/lib/modules`, not chrootless), then ours installed and configured: its postinst runs
    // `depmod` in the root (`DPKG_ROOT`).
    let dpkg = |args: &[&str], deb: &Path| {
        run(std::process::Command::new("dpkg")
            .arg(format!("--root={}", r.display()))
            .args([
                "--force-script-chrootless",
                "--force-depends",
                "--force-architecture",
                "--force-not-root",
                "--force-unsafe-io",
            ])
            .args(args)
            .arg(deb))
    };
    ok(&dpkg(&["--unpack"], &modules_deb));
    let o = dpkg(&["-i"], deb);
    ok(&o);
    let dep =
        std::fs::read_to_string(r.join(format!("usr/lib/modules/{release}/modules.dep"))).unwrap();
    assert!(
        dep.lines().any(|l| l.starts_with("updates/hello.ko.xz:")),
        "modules.dep lacks hello"
    );
    let o = run(std::process::Command::new("/sbin/modinfo")
        .args(["-b"])
        .arg(r)
        .args(["-k", &release, "-F", "vermagic", "hello"]));
    ok(&o);
    assert!(
        stdout(&o).starts_with(&format!("{release} SMP")),
        "{}",
        stdout(&o)
    );

    // The packaged module loads into Debian's kernel.
    let ko = r.join("hello.ko");
    let o = run(std::process::Command::new("xz")
        .args(["-dc"])
        .arg(r.join(&inside)));
    ok(&o);
    std::fs::write(&ko, &o.stdout).unwrap();
    let o = run(kmod(&[
        "run",
        "--target",
        "sid-arm64",
        "--ko",
        s(&ko),
        "--exec",
        "ls -d /sys/module/hello",
    ])
    .current_dir(&pkg));
    ok(&o);
    assert!(stdout(&o).contains("/sys/module/hello"), "{}", stdout(&o));
}

/// A scratch home sharing the real one's downloads, toolchains and sources (so a completion
/// runs for real without touching the user's completed trees).
fn distro_scratch_home() -> tempfile::TempDir {
    let home = scratch_home_sharing(&["sources", "bindgen"]);
    let real = real_home().join("distro/debian");
    let mine = home.path().join("distro/debian");
    std::fs::create_dir_all(&mine).unwrap();
    for d in ["apt", "packages", "toolchains"] {
        std::os::unix::fs::symlink(real.join(d), mine.join(d)).unwrap();
    }
    home
}

#[test]
fn another_rustc_an_altered_config_or_no_source_is_refused_naming_what() {
    let tree = completed(AMD64);
    let headers = PathBuf::from(tree["headers"].as_str().unwrap());
    let home = distro_scratch_home();
    // A rustc that claims the kernel's version but is another (the machine's own).
    let host_rustc = String::from_utf8(
        std::process::Command::new("sh")
            .args(["-c", "command -v rustc"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let fake = home.path().join("fake-rustc");
    write(
        &fake,
        &format!(
            "#!/bin/sh\nif [ \"$1\" = --version ] && [ -z \"$2\" ]; then echo '{}'; exit 0; fi\nexec {} \"$@\"\n",
            tree["rustc"].as_str().unwrap(),
            host_rustc.trim()
        ),
    );
    ok(&run(std::process::Command::new("chmod")
        .arg("755")
        .arg(&fake)));
    let o = run(init_in(home.path(), &["--distro-kernel", AMD64]).env("RUSTC", &fake));
    let err = one_error_line(&fails(&o));
    assert!(
        err.contains("kconfig would change the kernel's configuration: CONFIG_"),
        "{err}"
    );
    assert!(err.contains("CONFIG_RUSTC_"), "{err}");

    // Headers whose `.config` was edited (a GCC version the compiler does not have).
    let other = scratch();
    let copy = other.path().join("linux-headers-7.2.13+deb14-amd64");
    ok(&run(std::process::Command::new("cp")
        .arg("-a")
        .arg(&headers)
        .arg(&copy)));
    let config = copy.join(".config");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("CONFIG_GCC_VERSION=160200\n"));
    write(
        &config,
        &text.replace("CONFIG_GCC_VERSION=160200\n", "CONFIG_GCC_VERSION=150200\n"),
    );
    let o = run(&mut init_in(home.path(), &["--kdir", s(&copy)]));
    let err = one_error_line(&fails(&o));
    assert!(
        err.contains("CONFIG_GCC_VERSION (150200 -> 160200)"),
        "{err}"
    );
    // A rustc Debian does not have.
    write(
        &config,
        &text.replace(
            "CONFIG_RUSTC_VERSION_TEXT=\"rustc 1.97.1 (8bab26f4f 2026-07-14) (built from a source tarball)\"",
            "CONFIG_RUSTC_VERSION_TEXT=\"rustc 1.96.9 (0000000 2026-01-01)\"",
        ),
    );
    let o = run(&mut init_in(home.path(), &["--kdir", s(&copy)]));
    let err = one_error_line(&fails(&o));
    assert!(
        err.contains("the kernel was built by `rustc 1.96.9 (0000000 2026-01-01)`, and Debian's index has no rustc 1.96.9"),
        "{err}"
    );
    // Headers of a release Debian does not list: no source of that version to complete from.
    write(&config, &text);
    write(
        &copy.join("include/config/kernel.release"),
        "7.2.13+deb99-amd64\n",
    );
    let o = run(&mut init_in(home.path(), &["--kdir", s(&copy)]));
    let err = one_error_line(&fails(&o));
    assert!(
        err.contains(
            "Debian's index has no `linux-headers-7.2.13+deb99-amd64`: cannot find the source of"
        ),
        "{err}"
    );
    // Nothing half-made is left, and the headers were not written.
    assert!(!copy.join("rust").exists());
    let left: Vec<String> = std::fs::read_dir(home.path().join("distro/debian/complete"))
        .map(|it| {
            it.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.ends_with(".lock"))
                .collect()
        })
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
}

/// `apt-get download NAME` of Debian's package with cargo-kmod's private apt, into `dir`.
fn debian_deb(name: &str, dir: &Path) -> PathBuf {
    let apt = real_home().join("distro/debian/apt/apt.conf");
    ok(&run(std::process::Command::new("apt-get")
        .arg("-c")
        .arg(&apt)
        .args(["-q", "-o", "Debug::NoLocking=1", "download", name])
        .current_dir(dir)));
    let stem = name.split(':').next().unwrap();
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(&format!("{stem}_"))
        })
        .unwrap_or_else(|| panic!("apt-get downloaded no {name}"))
}

#[test]
fn the_rust_headers_package_lets_plain_make_build_a_rust_module_for_debians_kernel() {
    let tree = completed(AMD64);
    let release = tree["release"].as_str().unwrap().to_string();
    let headers = PathBuf::from(tree["headers"].as_str().unwrap());
    let completion = PathBuf::from(tree["path"].as_str().unwrap());
    let work = scratch();
    let w = work.path();
    let o = run(&mut kmod(&[
        "kit",
        "--kdir",
        s(&headers),
        "--dir",
        s(&w.join("kit")),
        "--message-format",
        "json",
    ]));
    ok(&o);
    let kit: serde_json::Value = stdout(&o)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .find(|v: &serde_json::Value| v["reason"] == "kit")
        .expect("a kit line");
    let deb = PathBuf::from(kit["headers_deb"].as_str().unwrap());
    let field = |f: &str| {
        let o = run(std::process::Command::new("dpkg-deb")
            .arg("-f")
            .arg(&deb)
            .arg(f));
        stdout(&o).trim().to_string()
    };
    assert_eq!(field("Package"), format!("linux-headers-{release}-rust"));
    assert!(
        field("Depends").starts_with(&format!(
            "linux-headers-{release} (= 7.2.13-1), rustc (= 1.97.1+"
        )),
        "{}",
        field("Depends")
    );
    // The arm64 kernel's would carry this machine's proc macros: refused, with the way.
    let arm = completed(ARM64);
    let o = run(&mut kmod(&[
        "kit",
        "--kdir",
        arm["headers"].as_str().unwrap(),
        "--dir",
        s(&w.join("kit-arm64")),
    ]));
    let err = one_error_line(&fails(&o));
    assert!(
        err.contains("would carry proc macros for this x86_64 machine"),
        "{err}"
    );

    // A root as Debian installs the headers: the flavour's, `-common`, `linux-kbuild`, and
    // the Rust headers package; mounted over `/usr/src` and `/usr/lib` in a mount namespace
    // of this test only (Debian's headers name their absolute paths).
    let debs = w.join("debs");
    std::fs::create_dir_all(&debs).unwrap();
    let root = w.join("root");
    let abi = release.trim_end_matches("-amd64");
    for d in [
        debian_deb(&format!("linux-headers-{release}:amd64"), &debs),
        debian_deb(&format!("linux-headers-{abi}-common"), &debs),
        debian_deb(&format!("linux-kbuild-{abi}:amd64"), &debs),
        deb.clone(),
    ] {
        ok(&run(std::process::Command::new("dpkg-deb")
            .arg("-x")
            .arg(&d)
            .arg(&root)));
    }
    assert!(root
        .join(format!(
            "usr/src/linux-headers-{release}/rust/libkernel.rmeta"
        ))
        .is_file());
    // Debian's kbuild host programs (`objtool`, `modpost`, ...) need sid's C library, newer
    // than this Debian 12 machine's: in this root they are replaced by the same programs built
    // here from the same source (the completion's), as a sid build machine would run them.
    let kbuild = root.join(format!("usr/lib/linux-kbuild-{abi}"));
    let mut stack = vec![kbuild.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                stack.push(p);
            } else if std::fs::read(&p).is_ok_and(|b| b.starts_with(b"\x7fELF")) {
                let ours = completion.join(p.strip_prefix(&kbuild).unwrap());
                if ours.is_file() {
                    std::fs::remove_file(&p).unwrap();
                    std::fs::copy(&ours, &p).unwrap();
                }
            }
        }
    }
    let module = w.join("plain_minimal");
    write(&module.join("Kbuild"), "obj-m := plain_minimal.o\n");
    write(
        &module.join("plain_minimal.rs"),
        "// SPDX-License-Identifier: GPL-2.0\n\n//! A module built by plain kbuild.\n\nuse kernel::prelude::*;\n\n\
         module! {\n    type: PlainMinimal,\n    name: \"plain_minimal\",\n    authors: [\"cargo-kmod\"],\n    \
         description: \"Built with make against Debian's headers\",\n    license: \"GPL\",\n}\n\n\
         struct PlainMinimal;\n\nimpl kernel::Module for PlainMinimal {\n    \
         fn init(_module: &'static ThisModule) -> Result<Self> {\n        \
         pr_info!(\"plain_minimal (init)\\n\");\n        Ok(PlainMinimal)\n    }\n}\n",
    );
    // The machine's gcc-16 and rustc: Debian's, from the completion's toolchain.
    let stamp: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(completion.join("cargo-kmod-completion.json")).unwrap(),
    )
    .unwrap();
    let bin = stamp["path"][0].as_str().unwrap();
    let script = format!(
        "set -e\n\
         mount -t overlay overlay -o lowerdir={root}/usr/src:/usr/src /usr/src\n\
         mount -t overlay overlay -o lowerdir={root}/usr/lib:/usr/lib /usr/lib\n\
         make -C /usr/src/linux-headers-{release} M={module} modules\n",
        root = root.display(),
        module = module.display(),
    );
    let o = run(std::process::Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .env("PATH", format!("{bin}:{}", std::env::var("PATH").unwrap())));
    ok(&o);
    let ko = module.join("plain_minimal.ko");
    assert!(ko.is_file(), "{}", stdout(&o));
    // It loads into Debian's kernel.
    let o = run(&mut kmod(&[
        "run",
        "--kdir",
        s(&headers),
        "--ko",
        s(&ko),
        "--exec",
        "dmesg | grep 'plain_minimal (init)'",
    ]));
    ok(&o);
    assert!(
        stdout(&o).contains("plain_minimal (init)"),
        "{}",
        stdout(&o)
    );

    // The same module as cargo-kmod's dkms package, built and installed by the real `dkms`
    // (its trees under the scratch directory, its signing key on a tmpfs of this mount
    // namespace) against the same headers.
    let pkgs = w.join("dkms-pkg");
    let o = run(&mut kmod(&[
        "package",
        "--format",
        "dkms",
        "--kdir",
        s(&headers),
        "--src",
        s(&module),
        "--name",
        "plain-minimal",
        "--pkg-version",
        "0.1.0",
        "--out-dir",
        s(&pkgs),
        s(&ko),
    ]));
    ok(&o);
    let tgz = std::fs::read_dir(&pkgs)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with("-dkms.tar.gz"))
        .expect("a dkms tarball");
    let dk = w.join("dkms");
    untar(&tgz, &dk);
    for d in ["var/lib/dkms".to_string(), format!("lib/modules/{release}")] {
        std::fs::create_dir_all(dk.join(d)).unwrap();
    }
    // The sources as dkms finds them, without the objects of the plain build above.
    for f in ["plain_minimal.o", "plain_minimal.ko", "plain_minimal.mod.o"] {
        let _ = std::fs::remove_file(dk.join("usr/src/plain-minimal-0.1.0").join(f));
    }
    let opts = format!(
        "-m plain-minimal -v 0.1.0 --dkmstree {d}/var/lib/dkms --sourcetree {d}/usr/src --installtree {d}/lib/modules -k {release} --kernelsourcedir /usr/src/linux-headers-{release}",
        d = dk.display()
    );
    let script = format!(
        "set -e\n\
         mount -t overlay overlay -o lowerdir={root}/usr/src:/usr/src /usr/src\n\
         mount -t overlay overlay -o lowerdir={root}/usr/lib:/usr/lib /usr/lib\n\
         mount -t tmpfs tmpfs /var/lib/dkms\n\
         dkms add {opts}\n\
         dkms build {opts}\n\
         dkms install --force {opts}\n",
        root = root.display(),
    );
    let o = run(std::process::Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .env("PATH", format!("{bin}:{}", std::env::var("PATH").unwrap())));
    ok(&o);
    let installed: Vec<std::path::PathBuf> = {
        let mut found = Vec::new();
        let mut stack = vec![dk.join("lib/modules")];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                if e.file_type().unwrap().is_dir() {
                    stack.push(e.path());
                } else if e
                    .file_name()
                    .to_string_lossy()
                    .starts_with("plain_minimal.ko")
                {
                    found.push(e.path());
                }
            }
        }
        found
    };
    assert_eq!(installed.len(), 1, "{}\n{}", stdout(&o), stderr(&o));
    let mut ko = installed[0].clone();
    if ko.extension().is_some_and(|e| e == "xz") {
        let o = run(std::process::Command::new("xz").arg("-dc").arg(&ko));
        ok(&o);
        ko = w.join("dkms-built.ko");
        std::fs::write(&ko, &o.stdout).unwrap();
    }
    let o = run(&mut kmod(&[
        "run",
        "--kdir",
        s(&headers),
        "--ko",
        s(&ko),
        "--exec",
        "dmesg | grep 'plain_minimal (init)'",
    ]));
    ok(&o);
    assert!(
        stdout(&o).contains("plain_minimal (init)"),
        "{}",
        stdout(&o)
    );
}
