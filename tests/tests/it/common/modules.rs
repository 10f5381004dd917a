//! Modules: the fixture modules and ship's pair built by hand-written Kbuild (no
//! `cargo kmod build`), and what tests read from `.ko` files (`modinfo`, ELF sections,
//! symbols, `cargo kmod info`), or write into them to make hostile ones.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use super::*;

/// The arches of the dev trees.
pub const ARCHES: [&str; 2] = ["x86_64", "arm64"];

// ---- fixture modules (`tests/fixtures/*`), built by hand-written Kbuild ----

/// `make`'s arguments for the dev trees of `arch` (clang 19).
fn llvm_make_args(arch: &str) -> Vec<String> {
    vec![format!("ARCH={arch}"), "LLVM=-19".into()]
}

static BUILD: Mutex<()> = Mutex::new(());

/// Build fixture `name` (a directory under `tests/fixtures`) for `arch` against `tree` with a
/// hand-written Kbuild (its `src/*.c` linked into the same `.ko`; `extra` symvers files as
/// `KBUILD_EXTRA_SYMBOLS`); returns the `.ko`. `tag` separates builds against different trees.
pub fn build_fixture_with(
    arch: &str,
    name: &str,
    tree: &Path,
    tag: &str,
    extra: &[PathBuf],
) -> PathBuf {
    let _lock = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    let module = name.replace('-', "_");
    let src = root().join("tests/fixtures").join(name).join("src");
    let dir = root()
        .join("target/kmod-fixtures")
        .join(arch)
        .join(tag)
        .join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let link = |from: PathBuf, to: &str| {
        let to = dir.join(to);
        if std::fs::symlink_metadata(&to).is_err() {
            std::os::unix::fs::symlink(from, to).unwrap();
        }
    };
    let c: Vec<String> = std::fs::read_dir(&src)
        .unwrap()
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".c"))
                .map(str::to_string)
        })
        .collect();
    let mut kbuild = format!("obj-m := {module}.o\nrustflags-y += --cfg test\n");
    if c.is_empty() {
        link(src.join("lib.rs"), &format!("{module}.rs"));
    } else {
        link(src.join("lib.rs"), &format!("{module}_main.rs"));
        let mut objs = vec![format!("{module}_main.o")];
        for stem in &c {
            link(src.join(format!("{stem}.c")), &format!("{stem}.c"));
            objs.push(format!("{stem}.o"));
        }
        kbuild.push_str(&format!("{module}-y := {}\n", objs.join(" ")));
    }
    std::fs::write(dir.join("Kbuild"), kbuild).unwrap();
    let mut cmd = Command::new("make");
    cmd.arg("-C")
        .arg(tree)
        .arg(format!("M={}", dir.display()))
        .args(llvm_make_args(arch))
        .env("RUST_LIB_SRC", rust_lib_src());
    if !extra.is_empty() {
        let e: Vec<String> = extra.iter().map(|p| p.display().to_string()).collect();
        cmd.arg(format!("KBUILD_EXTRA_SYMBOLS={}", e.join(" ")));
    }
    let out = cmd.output().expect("cannot run make");
    assert!(
        out.status.success(),
        "building fixture {name} for {arch} failed\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let ko = dir.join(format!("{module}.ko"));
    assert!(ko.is_file());
    ko
}

/// [`build_fixture_with`] without extra symbols.
pub fn build_fixture_against(arch: &str, name: &str, tree: &Path, tag: &str) -> PathBuf {
    build_fixture_with(arch, name, tree, tag, &[])
}

/// Fixture `name` built for `arch` against its dev tree.
pub fn fixture(arch: &str, name: &str) -> PathBuf {
    build_fixture_against(arch, name, &dev_tree(arch), "dev")
}

// ---- ship's pair: `hello` (Rust + C, exports) and `kmod_user` (C, imports) ----

const KBUILD: &str = "obj-m := hello.o kmod_user.o\nhello-y := hello_main.o helper.o\n";

const HELLO_RS: &str = r#"// SPDX-License-Identifier: GPL-2.0
//! hello: a Rust + C test module for cargo-kmod's ship tests.
use kernel::prelude::*;

module! {
    type: Hello,
    name: "hello",
    authors: ["cargo-kmod"],
    description: "hello from rust",
    license: "GPL",
    params: {
        greeting_count: i64 {
            default: 1,
            description: "how many times to greet",
        },
    },
}

extern "C" {
    fn hello_c_add(a: i32, b: i32) -> i32;
}

struct Hello;

impl kernel::Module for Hello {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let n = *module_parameters::greeting_count.value();
        pr_info!("hello: loaded, count={} sum={}\n", n, unsafe { hello_c_add(2, 3) });
        Ok(Hello)
    }
}

impl Drop for Hello {
    fn drop(&mut self) {
        pr_info!("hello: unloaded\n");
    }
}
"#;

const HELPER_C: &str = r#"// SPDX-License-Identifier: GPL-2.0
#include <linux/module.h>
int hello_c_add(int a, int b) { return a + b; }
EXPORT_SYMBOL_GPL(hello_c_add);
"#;

const USER_C: &str = r#"// SPDX-License-Identifier: GPL-2.0
#include <linux/module.h>
#include <linux/init.h>
int hello_c_add(int a, int b);
static int __init kmod_user_init(void)
{
	pr_info("kmod_user: 2+3=%d\n", hello_c_add(2, 3));
	return 0;
}
static void __exit kmod_user_exit(void) { }
module_init(kmod_user_init);
module_exit(kmod_user_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("uses hello_c_add");
MODULE_VERSION("1.2.3");
"#;

/// Modules built once per test process for one arch.
pub struct Built {
    pub tree: PathBuf,
    pub dir: PathBuf,
    pub hello: PathBuf,
    pub user: PathBuf,
    pub release: String,
}

/// Build ship's `hello` and `kmod_user` against `arch`'s dev tree in a kept scratch dir.
fn build_modules(arch: &str) -> Built {
    let tree = dev_tree(arch);
    let dir = shared_scratch();
    std::fs::write(dir.join("Kbuild"), KBUILD).unwrap();
    std::fs::write(dir.join("hello_main.rs"), HELLO_RS).unwrap();
    std::fs::write(dir.join("helper.c"), HELPER_C).unwrap();
    std::fs::write(dir.join("kmod_user.c"), USER_C).unwrap();
    let o = Command::new("make")
        .arg("-C")
        .arg(&tree)
        .arg(format!("M={}", dir.display()))
        .arg(format!("ARCH={arch}"))
        .arg("LLVM=-19")
        .env("RUST_LIB_SRC", rust_lib_src())
        .output()
        .unwrap();
    ok(&o);
    let release = std::fs::read_to_string(tree.join("include/config/kernel.release"))
        .unwrap()
        .trim()
        .to_string();
    Built {
        hello: dir.join("hello.ko"),
        user: dir.join("kmod_user.ko"),
        tree,
        dir,
        release,
    }
}

/// Ship's pair for `arch`, built once per test process.
pub fn built(arch: &str) -> &'static Built {
    static X86: OnceLock<Built> = OnceLock::new();
    static ARM: OnceLock<Built> = OnceLock::new();
    match arch {
        "x86_64" => X86.get_or_init(|| build_modules("x86_64")),
        _ => ARM.get_or_init(|| build_modules("arm64")),
    }
}

// ---- reading modules ----

/// `cargo kmod info --json FILE`.
pub fn info_json(file: &Path) -> serde_json::Value {
    let o = run(&mut kmod(&["info", "--json", s(file)]));
    ok(&o);
    serde_json::from_str(stdout(&o).trim()).unwrap()
}

/// `modinfo -F FIELD KO`: every value of one field.
pub fn modinfo(ko: &Path, field: &str) -> Vec<String> {
    let o = std::process::Command::new("modinfo")
        .args(["-F", field])
        .arg(ko)
        .output()
        .expect("cannot run modinfo");
    assert!(
        o.status.success(),
        "modinfo {}: {}",
        ko.display(),
        stderr(&o)
    );
    stdout(&o).lines().map(str::to_string).collect()
}

/// The ELF `e_machine` of a module.
pub fn elf_machine(ko: &Path) -> u16 {
    let bytes = std::fs::read(ko).unwrap();
    assert_eq!(&bytes[..4], b"\x7fELF", "{} is not ELF", ko.display());
    u16::from_le_bytes([bytes[18], bytes[19]])
}

/// The ELF `e_machine` of `arch`.
pub fn machine(arch: &str) -> u16 {
    match arch {
        "x86_64" => 62,
        "arm64" => 183,
        _ => unreachable!(),
    }
}

/// The `.ko` for `module` exists, is for `arch`, was built for `tree`, and carries the
/// package metadata (the kernel's spelling of the license).
#[track_caller]
pub fn check_ko(
    ko: &Path,
    arch: &str,
    tree: &Path,
    version: &str,
    license: &str,
    description: &str,
) {
    assert!(ko.is_file(), "no `{}`", ko.display());
    assert_eq!(elf_machine(ko), machine(arch), "{}", ko.display());
    assert_eq!(modinfo(ko, "version"), [version]);
    assert_eq!(modinfo(ko, "license"), [license]);
    assert_eq!(modinfo(ko, "description"), [description]);
    assert_eq!(
        modinfo(ko, "author"),
        ["cargo-kmod developers <cargo-kmod@example.invalid>"]
    );
    let vermagic = modinfo(ko, "vermagic").join("");
    assert!(
        vermagic.starts_with(&format!("{} ", release(tree))),
        "{vermagic}"
    );
}

/// Defined (non-undefined) symbols of a `.ko` whose name contains `part`.
pub fn defined_symbols(ko: &Path, part: &str) -> Vec<String> {
    let o = std::process::Command::new("llvm-nm-19")
        .arg("--defined-only")
        .arg(ko)
        .output()
        .or_else(|_| {
            std::process::Command::new("nm")
                .arg("--defined-only")
                .arg(ko)
                .output()
        })
        .expect("cannot run nm");
    assert!(o.status.success(), "nm {}: {}", ko.display(), stderr(&o));
    stdout(&o)
        .lines()
        .filter(|l| l.contains(part))
        .map(str::to_string)
        .collect()
}

/// The section names of a `.ko`.
pub fn sections(ko: &Path) -> Vec<String> {
    let o = std::process::Command::new("llvm-readelf-19")
        .args(["-S", "-W"])
        .arg(ko)
        .output()
        .expect("cannot run llvm-readelf-19");
    assert!(o.status.success(), "{}", stderr(&o));
    stdout(&o)
        .lines()
        .filter_map(|l| l.split(']').nth(1))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// `modinfo -F FIELD KO`, trimmed (empty when modinfo fails).
pub fn modinfo_value(ko: &Path, field: &str) -> String {
    let o = std::process::Command::new("modinfo")
        .args(["-F", field])
        .arg(ko)
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// `modinfo FILE` as (key, value) pairs, continuation lines joined.
fn modinfo_pairs(file: &Path) -> Vec<(String, String)> {
    let o = Command::new("modinfo").arg(file).output().unwrap();
    ok(&o);
    let mut out: Vec<(String, String)> = vec![];
    for line in stdout(&o).lines() {
        if line.starts_with(char::is_whitespace) {
            out.last_mut().unwrap().1.push_str(line.trim());
        } else if let Some((k, v)) = line.split_once(':') {
            out.push((k.to_string(), v.trim().to_string()));
        }
    }
    out
}

/// Our `info --json` rendered into the pairs modinfo prints.
fn our_pairs(j: &serde_json::Value) -> Vec<(String, String)> {
    let mut out = vec![];
    for kv in j["modinfo"].as_array().unwrap() {
        let (k, v) = (kv[0].as_str().unwrap(), kv[1].as_str().unwrap());
        if k != "parm" && k != "parmtype" {
            out.push((k.to_string(), v.trim().to_string()));
        }
    }
    for p in j["params"].as_array().unwrap() {
        let mut v = format!(
            "{}:{}",
            p["name"].as_str().unwrap(),
            p["description"].as_str().unwrap_or("")
        );
        if let Some(t) = p["type"].as_str() {
            v.push_str(&format!(" ({t})"));
        }
        out.push(("parm".into(), v));
    }
    let sig = &j["signature"];
    if !sig.is_null() {
        out.push(("sig_id".into(), sig["id_type"].as_str().unwrap().into()));
        out.push(("signer".into(), sig["signer"].as_str().unwrap().into()));
        out.push(("sig_key".into(), sig["key_id"].as_str().unwrap().into()));
        out.push((
            "sig_hashalgo".into(),
            sig["hash_algo"].as_str().unwrap().into(),
        ));
        out.push((
            "signature".into(),
            sig["signature"].as_str().unwrap().into(),
        ));
    }
    out
}

/// Every field `modinfo` prints (but `filename`) is printed by `info` with the same value.
pub fn assert_info_matches_modinfo(file: &Path) {
    let theirs = modinfo_pairs(file);
    let ours = our_pairs(&info_json(file));
    let mut compared = 0;
    for (k, v) in &theirs {
        if k == "filename" {
            continue;
        }
        let values: Vec<&String> = ours
            .iter()
            .filter(|(ok, _)| ok == k)
            .map(|(_, v)| v)
            .collect();
        assert!(
            values.contains(&v),
            "{}: modinfo `{k}: {v}` not in ours {values:?}",
            file.display()
        );
        compared += 1;
    }
    let their_keys: Vec<&String> = theirs.iter().map(|(k, _)| k).collect();
    for (k, _) in &ours {
        assert!(
            their_keys.contains(&k),
            "{}: we print `{k}`, modinfo does not",
            file.display()
        );
    }
    assert!(compared >= 6, "{compared} fields compared");
}

/// Replace every little-endian occurrence of `crc` (the basic and extended tables).
pub fn alter_crc(data: &mut [u8], crc: u32, new: u32) -> usize {
    let (from, to) = (crc.to_le_bytes(), new.to_le_bytes());
    let mut n = 0;
    for i in 0..data.len().saturating_sub(3) {
        if data[i..i + 4] == from {
            data[i..i + 4].copy_from_slice(&to);
            n += 1;
        }
    }
    n
}

/// A fresh RSA key + self-signed cert (optionally encrypted with `pass`).
pub fn new_key(dir: &Path, pass: Option<&str>) -> (PathBuf, PathBuf) {
    let key = dir.join(if pass.is_some() {
        "enc.pem"
    } else {
        "other.pem"
    });
    let cert = dir.join(if pass.is_some() {
        "enc.x509"
    } else {
        "other.x509"
    });
    let mut c = Command::new("openssl");
    c.args([
        "req",
        "-new",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-days",
        "1",
        "-subj",
        "/CN=other key/",
        "-outform",
        "DER",
    ]);
    c.arg("-keyout").arg(&key).arg("-out").arg(&cert);
    match pass {
        Some(p) => c.args(["-passout", &format!("pass:{p}")]),
        None => c.arg("-noenc"),
    };
    ok(&c.output().unwrap());
    (key, cert)
}

#[track_caller]
pub fn info_error(file: &Path) -> String {
    let o = run(&mut kmod(&["info", s(file)]));
    let err = fails(&o);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(
        err.lines().filter(|l| l.starts_with("error:")).count(),
        1,
        "{err}"
    );
    err
}

/// The section header of `name` in a 64-bit little-endian ELF (both dev-tree arches):
/// (offset of the header, offset of the contents, size).
pub fn section_header(elf: &[u8], name: &str) -> (usize, usize, usize) {
    let u16_at = |o: usize| u16::from_le_bytes(elf[o..o + 2].try_into().unwrap()) as usize;
    let u32_at = |o: usize| u32::from_le_bytes(elf[o..o + 4].try_into().unwrap()) as usize;
    let u64_at = |o: usize| u64::from_le_bytes(elf[o..o + 8].try_into().unwrap()) as usize;
    assert_eq!(&elf[..6], b"\x7fELF\x02\x01", "a 64-bit little-endian ELF");
    let (shoff, shentsize, shnum, shstrndx) =
        (u64_at(0x28), u16_at(0x3a), u16_at(0x3c), u16_at(0x3e));
    let strtab = u64_at(shoff + shstrndx * shentsize + 24);
    (0..shnum)
        .map(|i| shoff + i * shentsize)
        .find(|&h| {
            let at = strtab + u32_at(h);
            elf[at..].starts_with(name.as_bytes()) && elf[at + name.len()] == 0
        })
        .map(|h| (h, u64_at(h + 24), u64_at(h + 32)))
        .unwrap_or_else(|| panic!("no section `{name}`"))
}

/// A real module with section `name` holding `data` instead: the new contents go at the end
/// of the file and the section header points there (a byte edit, the way a hostile module
/// would be made; kmod's `modinfo` reads the result).
pub fn with_section(elf: &[u8], name: &str, data: &[u8]) -> Vec<u8> {
    let (h, _, _) = section_header(elf, name);
    let mut out = elf.to_vec();
    out.resize(out.len().next_multiple_of(8), 0);
    let at = out.len() as u64;
    out.extend_from_slice(data);
    out[h + 24..h + 32].copy_from_slice(&at.to_le_bytes());
    out[h + 32..h + 40].copy_from_slice(&(data.len() as u64).to_le_bytes());
    out
}

/// The `.modinfo` entries of a module file.
pub fn modinfo_entries(elf: &[u8]) -> Vec<(String, String)> {
    let (_, off, size) = section_header(elf, ".modinfo");
    elf[off..off + size]
        .split(|&b| b == 0)
        .filter(|e| !e.is_empty())
        .map(|e| {
            let e = String::from_utf8_lossy(e);
            let (k, v) = e.split_once('=').unwrap();
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// `.modinfo` section contents for `entries`.
pub fn encode_modinfo(entries: &[(String, String)]) -> Vec<u8> {
    let mut out = vec![];
    for (k, v) in entries {
        out.extend_from_slice(format!("{k}={v}\0").as_bytes());
    }
    out
}

/// The x86_64 `kmod_user.ko` (C, `version=1.2.3`) with `.modinfo` keys set to hostile values
/// (replacing the first entry of each key, or added).
pub fn hostile(dir: &Path, file: &str, set: &[(&str, &str)]) -> PathBuf {
    let elf = std::fs::read(&built("x86_64").user).unwrap();
    let mut entries = modinfo_entries(&elf);
    for (k, v) in set {
        match entries.iter_mut().find(|(ek, _)| ek == k) {
            Some(e) => e.1 = v.to_string(),
            None => entries.insert(0, (k.to_string(), v.to_string())),
        }
    }
    let p = dir.join(file);
    std::fs::write(
        &p,
        with_section(&elf, ".modinfo", &encode_modinfo(&entries)),
    )
    .unwrap();
    p
}
