//! `info`, `verify`, `package`, `install` on real modules built against the real dev trees.
//!
//! Two modules are built by hand-written Kbuild (no `cargo kmod build` needed): `hello`
//! (Rust + C in one .ko, a parameter, exports `hello_c_add` GPL-only) and `kmod_user` (C,
//! imports `hello_c_add`, so `depends=hello`). Bad-input tests use deliberately corrupted
//! copies of these real modules.

use crate::common::*;

use std::path::PathBuf;
use std::process::Command;

fn info_agrees_with_modinfo(arch: &str) {
    let b = built(arch);
    assert_info_matches_modinfo(&b.hello);
    assert_info_matches_modinfo(&b.user);
    // Signed and compressed copies, from a package.
    let out = scratch();
    let tgz = package_into(
        out.path(),
        &["--sign", "--compress", "xz", s(&b.hello), s(&b.user)],
    );
    let x = out.path().join("x");
    untar(&tgz, &x);
    let dir = x.join(format!("lib/modules/{}/updates", b.release));
    for m in ["hello.ko.xz", "kmod_user.ko.xz"] {
        assert_info_matches_modinfo(&dir.join(m));
    }
    let o = run(&mut kmod(&["info", s(&dir.join("hello.ko.xz"))]));
    ok(&o);
    assert!(
        stdout(&o).contains("sig_hashalgo:   sha256"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn info_agrees_with_modinfo_x86_64() {
    info_agrees_with_modinfo("x86_64");
}

#[test]
fn info_agrees_with_modinfo_arm64() {
    info_agrees_with_modinfo("arm64");
}

#[test]
fn info_shows_versions_exports_and_depends() {
    let b = built("x86_64");
    let hello = info_json(&b.hello);
    let user = info_json(&b.user);
    let export = hello["exports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "hello_c_add")
        .unwrap();
    assert_eq!(export["gpl"], true);
    let crc = export["crc"].as_str().unwrap();
    assert_eq!(user["depends"], serde_json::json!(["hello"]));
    for table in ["versions", "ext_versions"] {
        let imp = user[table]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == "hello_c_add");
        assert_eq!(imp.unwrap()["crc"].as_str().unwrap(), crc, "{table}");
    }
    assert_eq!(hello["arch"], "x86_64");
    assert!(hello["ext_versions"].as_array().unwrap().len() > 2);
    assert_eq!(hello["params"][0]["type"], "i64");
    // Human output has modinfo's layout.
    let o = run(&mut kmod(&["info", s(&b.hello)]));
    ok(&o);
    let text = stdout(&o);
    assert!(
        text.contains("parm:           greeting_count:how many times to greet (i64)"),
        "{text}"
    );
    assert!(text.contains("GPL        hello_c_add"), "{text}");
}

fn verify_passes_modules_built_against_the_tree(arch: &str) {
    let b = built(arch);
    let o = run(&mut kmod(&["verify", s(&b.hello), s(&b.user)]));
    ok(&o);
    assert!(stderr(&o).contains("Verified"), "{}", stderr(&o));
    // `kmod_user` alone needs hello's symbols: from its Module.symvers.
    let o = run(&mut kmod(&[
        "verify",
        s(&b.user),
        "--symvers",
        s(&b.dir.join("Module.symvers")),
    ]));
    ok(&o);
    let o = run(&mut kmod(&["verify", s(&b.user)]));
    let err = fails(&o);
    assert!(
        stdout(&o).contains("`hello_c_add`") && stdout(&o).contains("not exported"),
        "{}",
        stdout(&o)
    );
    assert!(err.contains("1 problem found"), "{err}");
}

#[test]
fn verify_passes_modules_built_against_the_tree_x86_64() {
    verify_passes_modules_built_against_the_tree("x86_64");
}

#[test]
fn verify_passes_modules_built_against_the_tree_arm64() {
    verify_passes_modules_built_against_the_tree("arm64");
}

#[test]
fn verify_names_the_symbol_whose_crc_was_altered() {
    let b = built("x86_64");
    let j = info_json(&b.hello);
    let printk = j["ext_versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "module_layout")
        .unwrap();
    let crc =
        u32::from_str_radix(printk["crc"].as_str().unwrap().trim_start_matches("0x"), 16).unwrap();
    let mut data = std::fs::read(&b.hello).unwrap();
    assert!(alter_crc(&mut data, crc, crc ^ 0x5a5a_5a5a) >= 1);
    let t = scratch();
    let bad = t.path().join("hello.ko");
    std::fs::write(&bad, &data).unwrap();
    let o = run(&mut kmod(&["verify", s(&bad)]));
    fails(&o);
    let want = format!(
        "disagrees about version of symbol `module_layout`: module has 0x{:08x}, vmlinux has 0x{crc:08x}",
        crc ^ 0x5a5a_5a5a
    );
    assert!(stdout(&o).contains(&want), "{}", stdout(&o));
}

#[test]
fn verify_refuses_a_module_built_against_another_tree() {
    let arm = built("arm64");
    let x86 = built("x86_64");
    let o = run(&mut kmod(&[
        "verify",
        s(&arm.hello),
        "--kdir",
        s(&x86.tree),
    ]));
    fails(&o);
    let out = stdout(&o);
    assert!(
        out.contains("module is built for aarch64 but kernel tree"),
        "{out}"
    );
    assert!(out.contains("vermagic `"), "{out}");
}

#[test]
fn signature_verifies_against_the_right_cert_only() {
    let b = built("x86_64");
    let out = scratch();
    let tgz = package_into(out.path(), &["--sign", "--compress", "none", s(&b.hello)]);
    let x = out.path().join("x");
    untar(&tgz, &x);
    let signed = x.join(format!("lib/modules/{}/updates/hello.ko", b.release));
    let cert = b.tree.join("certs/signing_key.x509");
    ok(&run(&mut kmod(&["verify", s(&signed), "--cert", s(&cert)])));
    // Same bytes as the kernel's own scripts/sign-file would produce.
    let copy = out.path().join("by-sign-file.ko");
    let stripped = out.path().join("stripped.ko");
    ok(&Command::new("llvm-strip-19")
        .args(["--strip-debug", "-o", s(&stripped), s(&b.hello)])
        .output()
        .unwrap());
    ok(&Command::new(b.tree.join("scripts/sign-file"))
        .args([
            "sha256",
            s(&b.tree.join("certs/signing_key.pem")),
            s(&cert),
            s(&stripped),
            s(&copy),
        ])
        .output()
        .unwrap());
    assert_eq!(
        std::fs::read(&copy).unwrap(),
        std::fs::read(&signed).unwrap(),
        "differs from sign-file"
    );

    let (key2, cert2) = new_key(out.path(), None);
    let o = run(&mut kmod(&["verify", s(&signed), "--cert", s(&cert2)]));
    fails(&o);
    assert!(
        stdout(&o).contains("signature does not verify with"),
        "{}",
        stdout(&o)
    );
    let _ = key2;
}

fn packaging_twice_gives_identical_bytes_and_a_manifest(arch: &str) {
    let b = built(arch);
    for (compress, ext) in [
        ("xz", ".xz"),
        ("zstd", ".zst"),
        ("gzip", ".gz"),
        ("none", ""),
    ] {
        let (o1, o2) = (scratch(), scratch());
        let args = ["--sign", "--compress", compress, s(&b.hello), s(&b.user)];
        let a = package_into(o1.path(), &args);
        let b2 = package_into(o2.path(), &args);
        assert_eq!(a.file_name(), b2.file_name());
        assert_eq!(
            std::fs::read(&a).unwrap(),
            std::fs::read(&b2).unwrap(),
            "{compress} not reproducible"
        );
        let x = o1.path().join("x");
        untar(&a, &x);
        let m: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(x.join("kmod-manifest.json")).unwrap())
                .unwrap();
        assert_eq!(m["kernel_release"], b.release.as_str());
        assert_eq!(m["arch"], arch);
        let file = format!("lib/modules/{}/updates/hello.ko{ext}", b.release);
        let bytes = std::fs::read(x.join(&file)).unwrap();
        let sha = String::from_utf8(
            Command::new("sha256sum")
                .arg(x.join(&file))
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap();
        assert_eq!(
            m["files"][&file].as_str().unwrap(),
            sha.split_whitespace().next().unwrap()
        );
        assert!(!bytes.is_empty());
        // Tar metadata is fixed.
        let o = Command::new("tar").args(["-tvzf", s(&a)]).output().unwrap();
        for line in stdout(&o).lines() {
            assert!(
                line.contains("root/root") && line.contains("1970-01-01"),
                "{line}"
            );
        }
    }
}

#[test]
fn packaging_twice_gives_identical_bytes_and_a_manifest_x86_64() {
    packaging_twice_gives_identical_bytes_and_a_manifest("x86_64");
}

#[test]
fn packaging_twice_gives_identical_bytes_and_a_manifest_arm64() {
    packaging_twice_gives_identical_bytes_and_a_manifest("arm64");
}

#[test]
fn private_key_never_lands_in_a_package() {
    let b = built("x86_64");
    let out = scratch();
    let tgz = package_into(out.path(), &["--sign", s(&b.hello)]);
    let x = out.path().join("x");
    untar(&tgz, &x);
    let key = std::fs::read_to_string(b.tree.join("certs/signing_key.pem")).unwrap();
    let key_body: String = key
        .lines()
        .skip_while(|l| !l.contains("PRIVATE KEY"))
        .nth(1)
        .unwrap()
        .to_string();
    let o = Command::new("grep")
        .args(["-rl", &key_body])
        .arg(out.path())
        .output()
        .unwrap();
    assert!(stdout(&o).is_empty(), "key found in {}", stdout(&o));
}

#[test]
fn deb_package_has_modules_and_a_depmod_postinst() {
    let b = built("x86_64");
    let out = scratch();
    let deb = package_into(
        out.path(),
        &[
            "--format",
            "deb",
            "--compress",
            "xz",
            s(&b.hello),
            s(&b.user),
        ],
    );
    assert!(
        deb.to_string_lossy().ends_with("_amd64.deb"),
        "{}",
        deb.display()
    );
    let info = Command::new("dpkg-deb")
        .arg("--info")
        .arg(&deb)
        .output()
        .unwrap();
    ok(&info);
    let info = stdout(&info);
    assert!(
        info.contains(&format!("Package: hello-modules-{}", b.release)),
        "{info}"
    );
    assert!(info.contains("Architecture: amd64"), "{info}");
    let postinst = Command::new("dpkg-deb")
        .arg("-I")
        .arg(&deb)
        .arg("postinst")
        .output()
        .unwrap();
    assert!(
        stdout(&postinst).contains(&format!("depmod -b \"${{DPKG_ROOT:-/}}\" -a {}", b.release)),
        "{}",
        stdout(&postinst)
    );
    let contents = Command::new("dpkg-deb")
        .arg("--contents")
        .arg(&deb)
        .output()
        .unwrap();
    assert!(stdout(&contents).contains(&format!(
        "./lib/modules/{}/updates/kmod_user.ko.xz",
        b.release
    )));
    let again = scratch();
    let deb2 = package_into(
        again.path(),
        &[
            "--format",
            "deb",
            "--compress",
            "xz",
            s(&b.hello),
            s(&b.user),
        ],
    );
    assert_eq!(std::fs::read(&deb).unwrap(), std::fs::read(&deb2).unwrap());
}

#[test]
fn dkms_package_builds_with_plain_kbuild() {
    let b = built("x86_64");
    let out = scratch();
    let src = scratch();
    for f in ["Kbuild", "hello_main.rs", "helper.c", "kmod_user.c"] {
        std::fs::copy(b.dir.join(f), src.path().join(f)).unwrap();
    }
    let tgz = package_into(
        out.path(),
        &[
            "--format",
            "dkms",
            "--src",
            s(src.path()),
            s(&b.hello),
            s(&b.user),
        ],
    );
    let x = out.path().join("x");
    untar(&tgz, &x);
    let dir = x.join("usr/src/hello-0.0.0");
    let conf = std::fs::read_to_string(dir.join("dkms.conf")).unwrap();
    assert!(
        conf.contains("BUILT_MODULE_NAME[1]=\"kmod_user\""),
        "{conf}"
    );
    assert!(std::fs::read_to_string(dir.join("README.dkms"))
        .unwrap()
        .contains("rust/"));
    // What dkms would run, without cargo-kmod.
    let o = Command::new("make")
        .arg("-C")
        .arg(&b.tree)
        .arg(format!("M={}", dir.display()))
        .args(["ARCH=x86_64", "LLVM=-19", "modules"])
        .env("RUST_LIB_SRC", rust_lib_src())
        .output()
        .unwrap();
    ok(&o);
    assert!(dir.join("hello.ko").is_file() && dir.join("kmod_user.ko").is_file());
}

fn install_lays_out_modules_and_runs_depmod(arch: &str) {
    let b = built(arch);
    for (compress, ext) in [("xz", ".xz"), ("zstd", ".zst"), ("none", "")] {
        let root = scratch();
        let o = run(&mut kmod(&[
            "install",
            "--root",
            s(root.path()),
            "--sign",
            "--compress",
            compress,
            s(&b.hello),
            s(&b.user),
        ]));
        ok(&o);
        let base = root.path().join(format!("lib/modules/{}", b.release));
        let dep = std::fs::read_to_string(base.join("modules.dep")).unwrap();
        assert!(
            dep.contains(&format!("updates/kmod_user.ko{ext}: updates/hello.ko{ext}")),
            "{compress}: {dep}"
        );
        let o = Command::new("modprobe")
            .args([
                "-d",
                s(root.path()),
                "-S",
                &b.release,
                "--show-depends",
                "kmod_user",
            ])
            .output()
            .unwrap();
        ok(&o);
        assert!(
            stdout(&o).contains(&format!("updates/hello.ko{ext}")),
            "{}",
            stdout(&o)
        );
        let o = Command::new("modinfo")
            .args([
                "-b",
                s(root.path()),
                "-k",
                &b.release,
                "-F",
                "signer",
                "hello",
            ])
            .output()
            .unwrap();
        ok(&o);
        assert!(!stdout(&o).trim().is_empty());
        // No temporary files left behind.
        let names: Vec<String> = std::fs::read_dir(base.join("updates"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }
}

#[test]
fn install_lays_out_modules_and_runs_depmod_x86_64() {
    install_lays_out_modules_and_runs_depmod("x86_64");
}

#[test]
fn install_lays_out_modules_and_runs_depmod_arm64() {
    install_lays_out_modules_and_runs_depmod("arm64");
}

#[test]
fn install_dir_and_reinstall_with_other_compression() {
    let b = built("x86_64");
    let root = scratch();
    let r = s(root.path());
    ok(&run(&mut kmod(&[
        "install",
        "--root",
        r,
        "--dir",
        "extra/kmod",
        "--compress",
        "xz",
        s(&b.hello),
    ])));
    ok(&run(&mut kmod(&[
        "install",
        "--root",
        r,
        "--dir",
        "extra/kmod",
        "--compress",
        "zstd",
        s(&b.hello),
    ])));
    let dir = root
        .path()
        .join(format!("lib/modules/{}/extra/kmod", b.release));
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["hello.ko.zst"]);
    // The tree has `CONFIG_MODULE_SIG_ALL`: like `modules_install`, install signs by default.
    let sig = &info_json(&dir.join("hello.ko.zst"))["signature"];
    assert_eq!(sig["signer"], "Build time autogenerated kernel key");
}

// ---- bad input: one clear line, no panic, nothing half-written ----

#[test]
fn bad_ko_files_are_refused_clearly() {
    let b = built("x86_64");
    let data = std::fs::read(&b.hello).unwrap();

    let (_t, p) = copy_with("text.ko", b"obj-m := hello.o\n");
    let err = info_error(&p);
    assert!(
        err.contains(&format!(
            "error: `{}` is not a valid kernel module: not an ELF file",
            p.display()
        )),
        "{err}"
    );

    for len in [10, 64, 4096] {
        let (_t, p) = copy_with("trunc.ko", &data[..len]);
        let err = info_error(&p);
        assert!(
            err.contains("is not a valid kernel module: truncated or corrupt ELF"),
            "{len}: {err}"
        );
    }

    let mut bad = data.clone();
    let at = find(&bad, b"license=GPL\0").unwrap();
    bad[at + 7] = b'X';
    let (_t, p) = copy_with("modinfo.ko", &bad);
    let err = info_error(&p);
    assert!(
        err.contains("malformed `.modinfo`: entry") && err.contains("(`licenseXGPL`) has no `=`"),
        "{err}"
    );

    // A `__versions` entry whose name fills the whole entry (no NUL).
    let j = info_json(&b.hello);
    let v = j["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "module_layout")
        .unwrap();
    let crc = u64::from_str_radix(v["crc"].as_str().unwrap().trim_start_matches("0x"), 16).unwrap();
    let mut pat = crc.to_le_bytes().to_vec();
    pat.extend_from_slice(b"module_layout\0");
    let at = find(&data, &pat).unwrap();
    let mut bad = data.clone();
    bad[at + 8..at + 64].fill(b'A');
    let (_t, p) = copy_with("versions.ko", &bad);
    let err = info_error(&p);
    assert!(
        err.contains("malformed `__versions`: entry") && err.contains("has no NUL-terminated name"),
        "{err}"
    );

    // verify and package refuse it the same way, and write nothing.
    let out = scratch();
    let o = kmod_package(&["--out-dir", s(out.path()), s(&p)]);
    assert!(fails(&o).contains("malformed `__versions`"));
    assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 0);
}

#[test]
fn corrupt_compressed_module_is_refused() {
    let b = built("x86_64");
    let out = scratch();
    let tgz = package_into(out.path(), &["--compress", "xz", s(&b.hello)]);
    let x = out.path().join("x");
    untar(&tgz, &x);
    let mut data =
        std::fs::read(x.join(format!("lib/modules/{}/updates/hello.ko.xz", b.release))).unwrap();
    let mid = data.len() / 2;
    for b in &mut data[mid..mid + 64] {
        *b ^= 0xff;
    }
    let (_t, p) = copy_with("hello.ko.xz", &data);
    let err = info_error(&p);
    assert!(
        err.contains(&format!("cannot read `{}`: corrupt xz data", p.display())),
        "{err}"
    );
    let (_t, p) = copy_with("hello.ko.zst", &[0x28, 0xb5, 0x2f, 0xfd, 1, 2, 3, 4, 5]);
    assert!(info_error(&p).contains("corrupt zstd data"));
}

#[test]
fn mismatched_key_and_cert_are_refused() {
    let b = built("x86_64");
    let t = scratch();
    let (key, _) = new_key(t.path(), None);
    let out = t.path().join("out");
    let cert = b.tree.join("certs/signing_key.x509");
    let o = kmod_package(&[
        "--out-dir",
        s(&out),
        "--sign",
        "--key",
        s(&key),
        "--cert",
        s(&cert),
        s(&b.hello),
    ]);
    let err = fails(&o);
    assert!(
        err.contains(&format!(
            "error: signing key `{}` does not match certificate `{}`",
            key.display(),
            cert.display()
        )),
        "{err}"
    );
    assert!(!out.exists());
}

#[test]
fn encrypted_key_needs_kbuild_sign_pin() {
    let b = built("x86_64");
    let t = scratch();
    let (key, cert) = new_key(t.path(), Some("s3cret"));
    let out = t.path().join("out");
    let args = [
        "--out-dir",
        s(&out),
        "--sign",
        "--key",
        s(&key),
        "--cert",
        s(&cert),
        "--compress",
        "none",
        s(&b.hello),
    ];
    let o = run(kmod(&[&["package"], &args[..]].concat()).env_remove("KBUILD_SIGN_PIN"));
    let err = fails(&o);
    assert!(
        err.contains(&format!(
            "signing key `{}` is encrypted and `KBUILD_SIGN_PIN` is not set",
            key.display()
        )),
        "{err}"
    );
    assert!(!out.exists());
    let o = run(kmod(&[&["package"], &args[..]].concat()).env("KBUILD_SIGN_PIN", "wrong"));
    assert!(fails(&o).contains("cannot decrypt signing key"));
    let o = run(kmod(&[&["package"], &args[..]].concat()).env("KBUILD_SIGN_PIN", "s3cret"));
    ok(&o);
    let x = t.path().join("x");
    let tgz = std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with(".tar.gz"))
        .unwrap();
    untar(&tgz, &x);
    let signed = x.join(format!("lib/modules/{}/updates/hello.ko", b.release));
    ok(&run(&mut kmod(&["verify", s(&signed), "--cert", s(&cert)])));
    assert_eq!(info_json(&signed)["signature"]["signer"], "other key");
}

#[test]
fn key_readable_by_others_gets_a_warning() {
    use std::os::unix::fs::PermissionsExt;
    let b = built("x86_64");
    let t = scratch();
    let (key, cert) = new_key(t.path(), None);
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = t.path().join("out");
    let o = kmod_package(&[
        "--out-dir",
        s(&out),
        "--sign",
        "--key",
        s(&key),
        "--cert",
        s(&cert),
        s(&b.hello),
    ]);
    ok(&o);
    assert!(stderr(&o).contains(&format!(
        "warning: signing key `{}` is readable by others (mode 644)",
        key.display()
    )));
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let o = kmod_package(&[
        "--out-dir",
        s(&out),
        "--sign",
        "--key",
        s(&key),
        "--cert",
        s(&cert),
        s(&b.hello),
    ]);
    ok(&o);
    assert!(!stderr(&o).contains("readable by others"));
}

#[test]
fn unwritable_install_root_is_refused() {
    let b = built("x86_64");
    let t = scratch();
    // A root below a regular file cannot be created, even by root.
    let file = t.path().join("file");
    std::fs::write(&file, "").unwrap();
    let root = file.join("root");
    let o = run(&mut kmod(&["install", "--root", s(&root), s(&b.hello)]));
    let err = fails(&o);
    assert!(
        err.contains(&format!(
            "error: install root `{}` is not writable: not a directory",
            root.display()
        )),
        "{err}"
    );
    assert_eq!(std::fs::read(&file).unwrap(), b"");
}

// ---- hostile `.ko`: nothing from a module escapes its place ----

/// `install --root R evil.ko` whose `name=` is an absolute path or climbs with `..`: refused
/// with one line naming the key and the file, and nothing is written, in `R` or outside it.
/// (Before: the module was written to `<name>.ko` wherever that led.)
#[test]
fn install_refuses_a_modinfo_name_that_is_a_path() {
    let t = scratch();
    let outside = t.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    let absolute = outside.join("x").display().to_string();
    for name in [absolute.as_str(), "../../../../../outside/x", "x/../../y"] {
        let evil = hostile(t.path(), "evil.ko", &[("name", name)]);
        // kmod agrees this is a module, and that this is its name.
        let o = Command::new("modinfo")
            .args(["-F", "name"])
            .arg(&evil)
            .output()
            .unwrap();
        ok(&o);
        assert_eq!(stdout(&o).trim(), name);
        let root = t.path().join("root");
        // With `hello`, which provides what `kmod_user` imports: the pair would load.
        let o = run(&mut kmod(&[
            "install",
            "--root",
            s(&root),
            "--compress",
            "none",
            s(&evil),
            s(&built("x86_64").hello),
        ]));
        assert_eq!(listing(&outside), Vec::<String>::new(), "{name}");
        let line = one_error_line(&o);
        assert_eq!(
            line,
            format!(
                "error: `.modinfo` `name=` of `{}` is `{name}`: not a kernel module name (letters, digits and `_`, at most 55 bytes)",
                evil.display()
            )
        );
        assert!(!root.exists(), "{name}: {:?}", listing(&root));
        assert_eq!(listing(t.path()), ["evil.ko", "outside"]);
        // `package` refuses it too, before writing anything.
        let out = t.path().join("out");
        for format in ["tar", "deb", "dkms"] {
            let o = kmod_package(&[
                "--format",
                format,
                "--src",
                s(&built("x86_64").dir),
                "--out-dir",
                s(&out),
                s(&evil),
                s(&built("x86_64").hello),
            ]);
            assert!(
                one_error_line(&o).contains("`.modinfo` `name=` of"),
                "{format}"
            );
            assert!(!out.exists(), "{format}");
        }
    }
}

/// A `version=` with a newline or shell characters cannot become the package version: the
/// deb `control` would gain a field, and `dkms.conf` (sourced by a root shell on the device)
/// would run it. Refused for every format, naming the key and file, with nothing written; a
/// `--pkg-version` takes its place.
#[test]
fn package_refuses_a_hostile_modinfo_version() {
    let t = scratch();
    let src = &built("x86_64").dir;
    for version in [
        "1.0\nDepends: evil",
        "1.0\"; touch /tmp/kmod-pwned; \"",
        "$(reboot)",
        "1 0",
        "../1",
    ] {
        let evil = hostile(t.path(), "evil.ko", &[("version", version)]);
        let out = t.path().join("out");
        for format in ["tar", "deb", "dkms"] {
            let o = kmod_package(&[
                "--format",
                format,
                "--src",
                s(src),
                "--out-dir",
                s(&out),
                s(&evil),
                s(&built("x86_64").hello),
            ]);
            let line = one_error_line(&o);
            assert!(
                line.starts_with(&format!(
                    "error: `.modinfo` `version=` of `{}` is `",
                    evil.display()
                )) && line.ends_with("`: not a package version (letters, digits and `.+~-`, starting with a letter or digit, at most 128 bytes)"),
                "{format} {version:?}: {line}"
            );
            assert!(!line.contains('\n') && !line.contains('\r'));
            assert!(
                stderr(&o).contains("help: pass `--pkg-version VERSION`"),
                "{}",
                stderr(&o)
            );
            assert!(!out.exists(), "{format}: {:?}", listing(&out));
        }
        // The way out the hint names.
        let o = kmod_package(&[
            "--format",
            "dkms",
            "--src",
            s(src),
            "--out-dir",
            s(&out),
            "--pkg-version",
            "1.0",
            s(&evil),
        ]);
        ok(&o);
        std::fs::remove_dir_all(&out).unwrap();
    }
    // Flags are checked the same way.
    let out = t.path().join("out");
    let o = kmod_package(&[
        "--out-dir",
        s(&out),
        "--pkg-version",
        "1;reboot",
        s(&built("x86_64").user),
    ]);
    assert_eq!(
        one_error_line(&o),
        "error: `--pkg-version` is `1;reboot`: not a package version (letters, digits and `.+~-`, starting with a letter or digit, at most 128 bytes)"
    );
    let o = kmod_package(&[
        "--out-dir",
        s(&out),
        "--name",
        "../x",
        s(&built("x86_64").user),
    ]);
    assert!(one_error_line(&o).starts_with("error: `--name` is `../x`: not a package name"));
    let o = kmod_package(&[
        "--out-dir",
        s(&out),
        "--dir",
        "../../../x",
        s(&built("x86_64").user),
    ]);
    assert!(one_error_line(&o).starts_with("error: `--dir` (`INSTALL_MOD_DIR`) is `../../../x`"));
    assert!(!out.exists());
}

/// Free text (`author=`, `description=`) reaches only the `.deb`'s `Maintainer:` and
/// `Description:` fields: control characters become spaces, so a newline cannot add a field.
#[test]
fn deb_control_fields_stay_one_line() {
    let t = scratch();
    let evil = hostile(
        t.path(),
        "evil.ko",
        &[
            ("author", "Mallory <m@x>\nDepends: evil-pkg\nPre-Depends: x"),
            ("description", "nice\r\nEssential: yes\x1b[2J"),
        ],
    );
    let out = t.path().join("out");
    // `hello` beside it provides the symbol `kmod_user` imports.
    let hello = &built("x86_64").hello;
    let deb = package_into(
        &out,
        &["--format", "deb", "--compress", "none", s(&evil), s(hello)],
    );
    let field = |f: &str| {
        let o = Command::new("dpkg-deb")
            .arg("--field")
            .arg(&deb)
            .arg(f)
            .output()
            .unwrap();
        ok(&o);
        stdout(&o).trim_end().to_string()
    };
    assert_eq!(
        field("Maintainer"),
        "Mallory <m@x> Depends: evil-pkg Pre-Depends: x"
    );
    assert_eq!(field("Depends"), "kmod");
    // The control file has exactly the fields cargo-kmod writes, each on one line.
    let o = Command::new("dpkg-deb")
        .arg("--info")
        .arg(&deb)
        .arg("control")
        .output()
        .unwrap();
    ok(&o);
    let control = stdout(&o);
    let fields: Vec<&str> = control
        .lines()
        .filter(|l| !l.starts_with(' '))
        .filter_map(|l| l.split_once(':').map(|(k, _)| k))
        .collect();
    assert_eq!(
        fields,
        [
            "Package",
            "Version",
            "Architecture",
            "Maintainer",
            "Installed-Size",
            "Depends",
            "Section",
            "Priority",
            "Description"
        ],
        "{control}"
    );
    assert!(
        field("Description").starts_with("nice Essential: yes [2J\n"),
        "{}",
        field("Description")
    );
}

/// `install --root R` follows a symlink inside `R` only when it stays inside `R` (a merged-`/usr`
/// rootfs has `lib -> usr/lib`); `R/lib/modules -> /elsewhere` is refused before anything is
/// written there. (Before: the module and depmod's files landed in `/elsewhere`.)
#[test]
fn install_never_writes_through_a_symlink_out_of_the_root() {
    let b = built("x86_64");
    let t = scratch();
    let root = t.path().join("root");
    let elsewhere = t.path().join("elsewhere");
    std::fs::create_dir_all(root.join("lib")).unwrap();
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, root.join("lib/modules")).unwrap();
    let o = run(&mut kmod(&[
        "install",
        "--root",
        s(&root),
        "--compress",
        "none",
        s(&b.hello),
    ]));
    assert_eq!(
        one_error_line(&o),
        format!(
            "error: `{}` is a symlink to `{}`, outside the install root `{}`",
            root.join("lib/modules").display(),
            elsewhere.display(),
            root.display()
        )
    );
    assert_eq!(listing(&elsewhere), Vec::<String>::new());
    // The same one level deeper, through a relative link that climbs out.
    std::fs::remove_file(root.join("lib/modules")).unwrap();
    std::fs::create_dir_all(root.join("lib/modules")).unwrap();
    std::os::unix::fs::symlink(
        "../../../elsewhere",
        root.join("lib/modules").join(&b.release),
    )
    .unwrap();
    let o = run(&mut kmod(&[
        "install",
        "--root",
        s(&root),
        "--compress",
        "none",
        s(&b.hello),
    ]));
    assert!(one_error_line(&o).contains("outside the install root"));
    assert_eq!(listing(&elsewhere), Vec::<String>::new());
    // `--dir` cannot climb out either.
    std::fs::remove_file(root.join("lib/modules").join(&b.release)).unwrap();
    let o = run(&mut kmod(&[
        "install",
        "--root",
        s(&root),
        "--dir",
        "../../../../elsewhere",
        s(&b.hello),
    ]));
    assert!(one_error_line(&o)
        .starts_with("error: `--dir` (`INSTALL_MOD_DIR`) is `../../../../elsewhere`"));
    assert_eq!(listing(&elsewhere), Vec::<String>::new());
    assert_eq!(listing(&root), ["lib", "lib/modules"]);

    // A merged-/usr root: `lib -> usr/lib` stays inside and works, depmod included.
    let merged = t.path().join("merged");
    std::fs::create_dir_all(merged.join("usr/lib")).unwrap();
    std::os::unix::fs::symlink("usr/lib", merged.join("lib")).unwrap();
    ok(&run(&mut kmod(&[
        "install",
        "--root",
        s(&merged),
        "--compress",
        "none",
        s(&b.hello),
        s(&b.user),
    ])));
    let dep =
        std::fs::read_to_string(merged.join(format!("usr/lib/modules/{}/modules.dep", b.release)))
            .unwrap();
    assert!(
        dep.contains("updates/kmod_user.ko: updates/hello.ko"),
        "{dep}"
    );
}

/// `info` prints `.modinfo` values with control characters escaped: a newline, a carriage
/// return or an ANSI escape in a value cannot draw a fake `signer:` line or repaint the
/// terminal. `verify` escapes symbol names the same way.
#[test]
fn info_and_verify_escape_control_characters() {
    let t = scratch();
    let evil = hostile(
        t.path(),
        "evil.ko",
        &[
            ("author", "x\nsigner:         Trusted Vendor\r"),
            ("description", "\x1b[2J\x1b[31mred\x1b[0m\u{202e}txt.exe"),
            ("parm", "p\nfake:line"),
        ],
    );
    let o = run(&mut kmod(&["info", s(&evil)]));
    ok(&o);
    let out = stdout(&o);
    assert!(
        !out.contains('\r') && !out.contains('\x1b') && !out.contains('\u{202e}'),
        "{out:?}"
    );
    assert!(
        !out.lines()
            .any(|l| l.starts_with("signer:") || l.starts_with("fake")),
        "{out}"
    );
    assert!(
        out.contains("author:         x\\nsigner:         Trusted Vendor\\r\n"),
        "{out}"
    );
    assert!(
        out.contains("description:    \\u{1b}[2J\\u{1b}[31mred\\u{1b}[0m\\u{202e}txt.exe\n"),
        "{out}"
    );
    assert!(out.contains("parm:           p\\nfake:line"), "{out}");
    // JSON keeps the exact value.
    assert_eq!(
        info_json(&evil)["modinfo"]
            .as_array()
            .unwrap()
            .iter()
            .find(|kv| kv[0] == "author")
            .unwrap()[1],
        "x\nsigner:         Trusted Vendor\r"
    );

    // An imported symbol whose name carries a newline: one escaped problem line.
    let elf = std::fs::read(&evil).unwrap();
    let (_, off, size) = section_header(&elf, "__versions");
    let mut versions = elf[off..off + size].to_vec();
    let mut entry = 0x1234u64.to_le_bytes().to_vec();
    entry.extend_from_slice(b"evil\nerror: fake\0");
    entry.resize(64, 0);
    versions.extend_from_slice(&entry);
    std::fs::write(&evil, with_section(&elf, "__versions", &versions)).unwrap();
    let o = run(&mut kmod(&["verify", s(&built("x86_64").hello), s(&evil)]));
    fails(&o);
    let out = stdout(&o);
    assert!(
        out.contains("`evil\\nerror: fake` (CRC 0x00001234) is not exported"),
        "{out}"
    );
    assert_eq!(out.lines().count(), 1, "{out}");
}

/// A few MiB of hostile `.modinfo`, `__versions` and `__version_ext_names` (60,000 distinct
/// `parm=` entries with long names, 60,000 imports, 200,000 empty names): `info`, `verify` and
/// `package` handle them in linear time. The bound here is a hang guard, far above the
/// measured times (see `docs/ship.md`); the quadratic code took up to a minute per command.
#[test]
fn hostile_large_modules_are_handled_in_linear_time() {
    let b = built("x86_64");
    let t = scratch();
    let elf = std::fs::read(&b.hello).unwrap();
    let mut entries = modinfo_entries(&elf);
    let long = "n".repeat(40);
    for i in 0..60_000 {
        entries.push(("parm".into(), format!("p{i:06}_{long}:how many times {i}")));
        entries.push(("parmtype".into(), format!("p{i:06}_{long}:int")));
    }
    let params = with_section(&elf, ".modinfo", &encode_modinfo(&entries));
    let (_, off, size) = section_header(&elf, "__versions");
    let mut versions = elf[off..off + size].to_vec();
    for i in 0..60_000u64 {
        let mut e = i.to_le_bytes().to_vec();
        e.extend_from_slice(format!("imported_symbol_number_{i:08}_{}", "x".repeat(20)).as_bytes());
        e.resize(64, 0);
        versions.extend_from_slice(&e);
    }
    let imports = with_section(&elf, "__versions", &versions);
    // 200,000 empty extended names between two real ones (the NUL padding was rescanned
    // after every name).
    let n = 200_002;
    let mut names = b"a\0".to_vec();
    names.resize(names.len() + n - 2, 0);
    names.extend(b"b\0\0\0");
    let ext = with_section(
        &with_section(&elf, "__version_ext_crcs", &vec![1; 4 * n]),
        "__version_ext_names",
        &names,
    );
    let p_params = t.path().join("params.ko");
    let p_imports = t.path().join("imports.ko");
    let p_ext = t.path().join("ext.ko");
    std::fs::write(&p_params, &params).unwrap();
    std::fs::write(&p_imports, &imports).unwrap();
    std::fs::write(&p_ext, &ext).unwrap();
    assert!(
        params.len() > 4 << 20 && imports.len() > 3 << 20 && ext.len() > 1 << 20,
        "{} {} {}",
        params.len(),
        imports.len(),
        ext.len()
    );

    // Measured with the debug binary: 0.2 to 0.5 s each (1.5 s for `package` on a busy
    // machine); the quadratic code took 22 to 69 s.
    let guard = std::time::Duration::from_secs(15);
    let timed = |args: &[&str]| {
        let start = std::time::Instant::now();
        let o = run(&mut kmod(args));
        let took = start.elapsed();
        assert!(took < guard, "`{}` took {took:?}", args.join(" "));
        eprintln!("{took:>10.3?}  cargo kmod {}", args.join(" "));
        o
    };
    let o = timed(&["info", s(&p_params)]);
    ok(&o);
    assert_eq!(
        stdout(&o)
            .lines()
            .filter(|l| l.starts_with("parm:"))
            .count(),
        60_001
    );
    ok(&timed(&["info", "--json", s(&p_params)]));
    ok(&timed(&["verify", s(&p_params)]));
    let out = t.path().join("out");
    ok(&timed(&[
        "package",
        "--out-dir",
        s(&out),
        "--compress",
        "none",
        s(&p_params),
    ]));
    let o = timed(&["info", s(&p_imports)]);
    ok(&o);
    assert!(
        stdout(&o).contains(&format!(
            "imports:        {} with CRCs",
            info_json(&b.hello)["ext_versions"]
                .as_array()
                .unwrap()
                .len()
                + 60_000
        )),
        "{}",
        stdout(&o)
            .lines()
            .find(|l| l.starts_with("imports:"))
            .unwrap_or("")
    );
    let o = timed(&["verify", s(&p_imports)]);
    assert_eq!(
        stdout(&o)
            .lines()
            .filter(|l| l.contains("is not exported by the tree"))
            .count(),
        60_000
    );
    ok(&timed(&[
        "package",
        "--out-dir",
        s(&out),
        "--no-verify",
        "--compress",
        "none",
        s(&p_imports),
    ]));
    let o = timed(&["info", "--json", s(&p_ext)]);
    ok(&o);
    let j: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(j["ext_versions"].as_array().unwrap().len(), n);
    fails(&timed(&["verify", s(&p_ext)]));
}

// ---- ordinary file modes ----

/// `new` makes 0755 directories, and the `.ko`, the generated Kbuild and Makefile,
/// `rust-project.json` and packages are 0644 (under the usual umask 022; the modes any
/// compiler output gets), not the 0600/0700 of a temporary file renamed into place.
#[test]
fn artifacts_and_generated_files_get_ordinary_modes() {
    let _ = dev_tree("x86_64");
    let u = umask();
    assert_eq!(
        u & 0o044,
        0,
        "this test needs a umask that lets group and others read (is {u:o})"
    );
    let (file, dir) = (0o666 & !u, 0o777 & !u);
    let t = scratch();
    ok(&run(kmod(&["new", "modes"]).current_dir(t.path())));
    let pkg = t.path().join("modes");
    for d in [pkg.clone(), pkg.join("src")] {
        assert_eq!(mode(&d), dir, "{}", d.display());
    }
    assert_eq!(mode(&pkg.join("Cargo.toml")), file);
    let arch = pkg.join("target/kmod/x86_64");
    ok(&run(kmod(&["build", "--arch", "x86_64"]).current_dir(&pkg)));
    ok(&run(kmod(&["ide", "--arch", "x86_64"]).current_dir(&pkg)));
    ok(&run(kmod(&[
        "package",
        "--arch",
        "x86_64",
        "--compress",
        "none",
    ])
    .current_dir(&pkg)));
    ok(&run(kmod(&[
        "package", "--arch", "x86_64", "--format", "deb",
    ])
    .current_dir(&pkg)));
    let mut checked = vec![];
    let mut check = |p: PathBuf| {
        assert!(p.is_file(), "{}", p.display());
        assert_eq!(mode(&p), file, "{:o}: {}", mode(&p), p.display());
        checked.push(p);
    };
    check(arch.join("modes.ko"));
    check(pkg.join("rust-project.json"));
    for rel in listing(&arch) {
        let p = arch.join(&rel);
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if p.is_file() && (name == "Kbuild" || name == "Makefile") {
            check(p);
        }
    }
    for p in std::fs::read_dir(pkg.join("target/kmod/package"))
        .unwrap()
        .flatten()
    {
        check(p.path());
    }
    let names: Vec<String> = checked
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.contains(&"Kbuild".to_string()) && names.contains(&"Makefile".to_string()),
        "{names:?}"
    );
    assert!(
        names.iter().any(|n| n.ends_with(".tar.gz")) && names.iter().any(|n| n.ends_with(".deb")),
        "{names:?}"
    );
    // Installed modules too.
    let root = t.path().join("root");
    ok(&run(kmod(&[
        "install",
        "--arch",
        "x86_64",
        "--root",
        s(&root),
        "--compress",
        "xz",
    ])
    .current_dir(&pkg)));
    let release = built("x86_64").release.clone();
    assert_eq!(
        mode(&root.join(format!("lib/modules/{release}/updates/modes.ko.xz"))),
        file
    );
    assert_eq!(
        mode(&root.join(format!("lib/modules/{release}/updates"))),
        dir
    );
}

// ---- in the guest: qemu booted with module.sig_enforce=1 ----

fn guest_test(arch: &str, compress: &str, ext: &str, real_kmod: bool) {
    use cargo_kmod::guest::Step;
    let b = built(arch);
    let t = scratch();
    let stage = t.path().join("stage");
    // The shipped modules: signed with the tree's key, compressed, installed with depmod.
    ok(&run(&mut kmod(&[
        "install",
        "--root",
        s(&stage),
        "--sign",
        "--compress",
        compress,
        s(&b.hello),
        s(&b.user),
    ])));
    // The refused ones: unsigned, tampered after signing, signed with another key.
    let mods = stage.join("mods");
    let out = t.path().join("pkg");
    let unsigned = package_into(
        &out.join("u"),
        &["--no-sign", "--compress", "none", s(&b.hello)],
    );
    untar(&unsigned, &mods.join("u"));
    let signed_tgz = package_into(
        &out.join("s"),
        &["--sign", "--compress", "none", s(&b.hello)],
    );
    untar(&signed_tgz, &mods.join("s"));
    let (key, cert) = new_key(t.path(), None);
    let other = package_into(
        &out.join("o"),
        &[
            "--sign",
            "--key",
            s(&key),
            "--cert",
            s(&cert),
            "--compress",
            "none",
            s(&b.hello),
        ],
    );
    untar(&other, &mods.join("o"));
    let rel = format!("lib/modules/{}/updates/hello.ko", b.release);
    for (name, from) in [("unsigned", "u"), ("tampered", "s"), ("wrongkey", "o")] {
        std::fs::create_dir_all(mods.join(name)).unwrap();
        let mut data = std::fs::read(mods.join(from).join(&rel)).unwrap();
        if name == "tampered" {
            let at = find(&data, b"hello from rust").unwrap();
            data[at] = b'H';
        }
        std::fs::write(mods.join(name).join("hello.ko"), data).unwrap();
    }
    for from in ["u", "s", "o"] {
        std::fs::remove_dir_all(mods.join(from)).unwrap();
    }
    assert!(info_json(&mods.join("unsigned/hello.ko"))["signature"].is_null());
    let load = if real_kmod {
        "/sbin/modprobe kmod_user".to_string()
    } else if ext.is_empty() {
        "modprobe kmod_user".to_string()
    } else {
        // Debian's busybox `modprobe` does not match compressed names in `modules.dep`;
        // its `insmod` decompresses them itself.
        let d = format!("/lib/modules/{}/updates", b.release);
        format!("insmod {d}/hello.ko{ext} && insmod {d}/kmod_user.ko{ext}")
    };
    let mut steps = vec![Step::shell(
        "sig_enforce",
        "cat /sys/module/module/parameters/sig_enforce",
    )];
    for refused in ["unsigned", "tampered", "wrongkey"] {
        steps.push(Step::shell(
            refused,
            &format!("insmod /mods/{refused}/hello.ko"),
        ));
    }
    steps.push(Step::shell("modprobe", &load));
    steps.push(Step::shell(
        "modules",
        "cut -d' ' -f1 /proc/modules | tr '\\n' ' '",
    ));
    if real_kmod {
        steps.push(Step::shell(
            "deps",
            "/sbin/modprobe --show-depends kmod_user",
        ));
    }
    let guest = boot_steps(arch, &stage, real_kmod, steps);
    let t = &guest.transcript;
    let step = |i: usize| (&t.steps[i], t.step_log(i).lines());
    let everything: String = (0..t.steps.len())
        .flat_map(|i| {
            let (s, log) = step(i);
            s.out.iter().cloned().chain(log).collect::<Vec<_>>()
        })
        .collect::<Vec<_>>()
        .join("\n");
    let expect = |what: &str| {
        assert!(
            everything.contains(what),
            "{arch}/{compress}: no `{what}` in:\n{everything}"
        )
    };
    assert_eq!(step(0).0.out, ["Y"], "{arch}: sig_enforce");
    expect("Loading of unsigned module is rejected");
    expect("Loading of module with unavailable key is rejected");
    for (i, refused) in ["unsigned", "tampered", "wrongkey"].iter().enumerate() {
        assert_ne!(step(i + 1).0.status, Some(0), "{arch}: {refused} loaded");
    }
    expect("Key was rejected by service");
    assert_eq!(step(4).0.status, Some(0), "{arch}/{compress}: {everything}");
    // Only the shipped module ran: none of the refused copies did.
    assert_eq!(
        everything.matches("hello: loaded, count=1 sum=5").count(),
        1,
        "{everything}"
    );
    expect("kmod_user: 2+3=5");
    let modules = step(5).0.out.join(" ");
    assert!(
        modules.contains("kmod_user") && modules.contains("hello"),
        "{modules}"
    );
    if real_kmod {
        // kmod's modprobe resolved the dependency from the depmod output we installed.
        let deps = step(6).0.out.join("\n");
        for m in ["hello", "kmod_user"] {
            let want = format!("insmod /lib/modules/{}/updates/{m}.ko{ext}", b.release);
            assert!(deps.contains(&want), "{arch}: no `{want}` in:\n{deps}");
        }
    }
}

#[test]
fn guest_x86_64_sig_enforce_and_modprobe_xz() {
    guest_test("x86_64", "xz", ".xz", true);
}

#[test]
fn guest_x86_64_modprobe_zstd() {
    guest_test("x86_64", "zstd", ".zst", true);
}

#[test]
fn guest_arm64_sig_enforce_and_modprobe() {
    guest_test("arm64", "none", "", false);
}

#[test]
fn guest_arm64_insmod_gzip_with_busybox() {
    guest_test("arm64", "gzip", ".gz", false);
}

#[test]
fn package_and_install_build_the_cargo_package_when_no_file_is_given() {
    let t = scratch();
    let pkg = t.path().join("hello");
    copy_dir(&root().join("examples/hello"), &pkg);
    let manifest = pkg.join("Cargo.toml");
    let o = run(&mut kmod(&[
        "package",
        "--manifest-path",
        s(&manifest),
        "--arch",
        "x86_64",
        "--sign",
        "--compress",
        "xz",
    ]));
    ok(&o);
    let release = built("x86_64").release.clone();
    let tgz = pkg.join(format!(
        "target/kmod/package/hello-0.1.0-{release}-x86_64.tar.gz"
    ));
    assert!(tgz.is_file(), "{}", stderr(&o));
    let root_dir = t.path().join("root");
    let o = run(&mut kmod(&[
        "install",
        "--manifest-path",
        s(&manifest),
        "--arch",
        "x86_64",
        "--root",
        s(&root_dir),
    ]));
    ok(&o);
    let dep = std::fs::read_to_string(root_dir.join(format!("lib/modules/{release}/modules.dep")))
        .unwrap();
    assert!(dep.contains("updates/hello.ko"), "{dep}");
}
