//! Builds that cannot be fooled, on the real dev trees: two processes in one target
//! directory (issue 8 §3), `Fresh` only when nothing the build read changed (§4), and every
//! manifest string reaching kbuild exactly as written (§5). Issue 18: `Fresh` after an edit
//! made during a build (§2), boards that answer hostile values (§3), hostile text on the
//! terminal (§4), device limits found before the boot (§5) and small faults (§6).

use crate::common::*;

use std::path::{Path, PathBuf};
use std::process::Output;

/// Two builds (and a build and a test build) in one target directory at once both succeed
/// and leave valid modules; one of them waits for the other's lock and says so.
#[test]
fn two_processes_share_one_target_directory() {
    dev_tree("x86_64");
    let d = scratch();
    let manifest = package(d.path(), "locked", "");
    let m = manifest.to_str().unwrap();
    let spawn = |args: &[&str]| {
        kmod(&[args, &["--manifest-path", m, "--arch", "x86_64"][..]].concat())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let a = spawn(&["build"]);
    let b = spawn(&["build"]);
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    ok(&a);
    ok(&b);
    let both = format!("{}{}", stderr(&a), stderr(&b));
    assert!(
        both.contains("Blocking waiting for file lock on build directory"),
        "{both}"
    );
    let ko = d.path().join("target/kmod/x86_64/locked.ko");
    ok(&run(&mut kmod(&["info", ko.to_str().unwrap()])));
    // A build and a test run (which builds with tests into `test/`) at once.
    std::fs::remove_dir_all(d.path().join("target")).unwrap();
    let a = spawn(&["build"]);
    let b = spawn(&["test"]);
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    ok(&a);
    ok(&b);
    ok(&run(&mut kmod(&["info", ko.to_str().unwrap()])));
}

/// Everything the build read counts: headers and Rust files outside the package (reached
/// through `include-dirs`, `-I` in `ccflags`, `#[path]`, `include!`, a symlinked
/// directory), and the contents of `KBUILD_EXTRA_SYMBOLS`.
#[test]
fn fresh_covers_every_file_the_build_read() {
    dev_tree("x86_64");
    let d = scratch();
    let shared = d.path().join("shared");
    write(
        &shared.join("inc/fresh_limits.h"),
        "#define FRESH_LIMIT 1\n",
    );
    write(
        &shared.join("flag/fresh_extra.h"),
        "#define FRESH_EXTRA 2\n",
    );
    write(&shared.join("rs/pathmod.rs"), "pub const A: i32 = 1;\n");
    write(&shared.join("rs/consts.rs"), "pub const B: i32 = 2;\n");
    write(&shared.join("linked/code.rs"), "pub const C: i32 = 3;\n");
    let pkg = d.path().join("pkg");
    let flag_dir = shared.join("flag");
    let manifest = package(
        &pkg,
        "fresh-deps",
        &format!(
            "c-sources = [\"src/part.c\"]\ninclude-dirs = [\"../shared/inc\"]\nccflags = [\"-I{}\"]\n",
            flag_dir.display()
        ),
    );
    std::os::unix::fs::symlink(shared.join("linked"), pkg.join("src/linked")).unwrap();
    write(
        &pkg.join("src/part.c"),
        "// SPDX-License-Identifier: GPL-2.0\n#include <fresh_limits.h>\n#include <fresh_extra.h>\nint fresh_part(void);\nint fresh_part(void) { return FRESH_LIMIT + FRESH_EXTRA; }\n",
    );
    write(
        &pkg.join("src/lib.rs"),
        &format!(
            "{PLAIN_RS}\n#[path = \"../../shared/rs/pathmod.rs\"]\nmod pathmod;\nmod consts {{ include!(\"../../shared/rs/consts.rs\"); }}\n#[path = \"linked/code.rs\"]\nmod code;\n#[no_mangle]\npub extern \"C\" fn fresh_sum() -> i32 {{ pathmod::A + consts::B + code::C }}\n"
        ),
    );
    // Extra symbols: another module's exports, changed in place later.
    let symvers = d.path().join("extra/Module.symvers");
    write(
        &symvers,
        "0x12345678\tfresh_other_a\textra/other\tEXPORT_SYMBOL\t\n",
    );
    let with_symvers = |args: &[&str]| {
        let m = manifest.to_str().unwrap();
        run(kmod(
            &[
                &["build", "--manifest-path", m, "--arch", "x86_64"][..],
                args,
            ]
            .concat(),
        )
        .env("KBUILD_EXTRA_SYMBOLS", &symvers))
    };
    ok(&with_symvers(&[]));
    assert_fresh(&with_symvers(&[]));
    let edits: [(&str, PathBuf, &str); 5] = [
        (
            "a header in `include-dirs`",
            shared.join("inc/fresh_limits.h"),
            "#define FRESH_LIMIT 10\n",
        ),
        (
            "a header found through `-I` in `ccflags`",
            shared.join("flag/fresh_extra.h"),
            "#define FRESH_EXTRA 20\n",
        ),
        (
            "a `#[path]` module outside the package",
            shared.join("rs/pathmod.rs"),
            "pub const A: i32 = 10;\n",
        ),
        (
            "an `include!`d file",
            shared.join("rs/consts.rs"),
            "pub const B: i32 = 20;\n",
        ),
        (
            "a file in a symlinked directory",
            shared.join("linked/code.rs"),
            "pub const C: i32 = 30;\n",
        ),
    ];
    for (why, path, text) in edits {
        std::thread::sleep(std::time::Duration::from_millis(20));
        write(&path, text);
        assert_rebuilt(&with_symvers(&[]), why);
        assert_fresh(&with_symvers(&[]));
    }
    // The same extra-symbols path with other contents.
    let text = std::fs::read_to_string(&symvers).unwrap();
    write(
        &symvers,
        &format!("{text}0x00000000\tfresh_unused\tvmlinux\tEXPORT_SYMBOL\t\n"),
    );
    assert_rebuilt(&with_symvers(&[]), "a change inside `KBUILD_EXTRA_SYMBOLS`");
}

/// An artifact another selection or profile overwrote is rebuilt, not handed back.
#[test]
fn fresh_never_returns_another_builds_artifact() {
    dev_tree("x86_64");
    let d = scratch();
    write(
        &d.path().join("Cargo.toml"),
        "[workspace]\nresolver = \"2\"\nmembers = [\"a\", \"b\"]\n",
    );
    package(&d.path().join("a"), "sel-a", "");
    package(&d.path().join("b"), "sel-b", "");
    let manifest = d.path().join("Cargo.toml");
    let a_release = ["-p", "sel-a", "--release"];
    ok(&build(&manifest, &a_release));
    let ko = d.path().join("target/kmod/x86_64/sel_a.ko");
    let release_bytes = std::fs::read(&ko).unwrap();
    assert_fresh(&build(&manifest, &a_release));
    ok(&build(&manifest, &["--workspace"]));
    assert_ne!(
        std::fs::read(&ko).unwrap(),
        release_bytes,
        "the debug build differs"
    );
    let o = build(&manifest, &a_release);
    assert_rebuilt(&o, "another profile replaced the artifact");
    assert_eq!(std::fs::read(&ko).unwrap(), release_bytes);
    assert_fresh(&build(&manifest, &a_release));
}

/// The cached `cargo metadata` follows a member added through a glob and a target
/// directory moved by `.cargo/config.toml`.
#[test]
fn metadata_cache_follows_globs_and_cargo_config() {
    dev_tree("x86_64");
    let d = scratch();
    write(
        &d.path().join("Cargo.toml"),
        "[workspace]\nresolver = \"2\"\nmembers = [\"mods/*\"]\n",
    );
    package(&d.path().join("mods/one"), "glob-one", "");
    // From the workspace directory, as a user runs it (cargo finds its config from there).
    let ws_build =
        || run(kmod(&["build", "--workspace", "--arch", "x86_64"]).current_dir(d.path()));
    ok(&ws_build());
    assert!(d.path().join("target/kmod/x86_64/glob_one.ko").is_file());
    package(&d.path().join("mods/two"), "glob-two", "");
    ok(&ws_build());
    assert!(d.path().join("target/kmod/x86_64/glob_two.ko").is_file());
    write(
        &d.path().join(".cargo/config.toml"),
        "[build]\ntarget-dir = \"elsewhere\"\n",
    );
    let o = ws_build();
    ok(&o);
    assert!(
        d.path().join("elsewhere/kmod/x86_64/glob_two.ko").is_file(),
        "{}",
        stderr(&o)
    );
}

/// What `make` and the shell must pass through exactly: descriptions and authors with
/// newlines, `#`, `$`, `;`, quotes and a trailing backslash (checked by the module's own
/// compile-time assertions on `env!`), flags with spaces and shell characters (checked by
/// a KUnit case in qemu, from C), and feature names with `+` and `.`.
#[test]
fn manifest_strings_reach_kbuild_exactly() {
    dev_tree("x86_64");
    let d = scratch();
    let description =
        "line one\nsemi; echo injected # not a comment $HOME $(shell id) 'q' \"dq\" \\";
    let author = "Ada $(whoami) <ada@example.com>";
    let flag = "-DKMOD_MSG=\"a b; c # d $e 'f'\"";
    write(
        &d.path().join("Cargo.toml"),
        &format!(
            "[package]\nname = \"exact\"\nversion = \"0.1.0\"\nedition = \"2021\"\nlicense = \"GPL-2.0\"\ndescription = {}\nauthors = [{}]\n\n[features]\ndefault = [\"c++.x\"]\n\"c++.x\" = []\n\n[package.metadata.kmod]\nc-sources = [\"src/msg.c\"]\nccflags = [{}]\nrustflags = [\"--cfg\", \"kmod_probe=\\\"a b#$\\\"\"]\n",
            toml_str(description),
            toml_str(author),
            toml_str(flag)
        ),
    );
    write(
        &d.path().join("src/msg.c"),
        "// SPDX-License-Identifier: GPL-2.0\nconst char *exact_msg(void);\nconst char *exact_msg(void) { return KMOD_MSG; }\n#ifndef KMOD_FEATURE_C___X\n#error feature define missing\n#endif\n",
    );
    write(
        &d.path().join("src/lib.rs"),
        &format!(
            r#"// SPDX-License-Identifier: GPL-2.0
use kernel::prelude::*;

kmod_macros::module! {{
    type: Exact,
}}

const fn same(a: &str, b: &str) -> bool {{
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {{
        return false;
    }}
    let mut i = 0;
    while i < a.len() {{
        if a[i] != b[i] {{
            return false;
        }}
        i += 1;
    }}
    true
}}

const _: () = assert!(same(env!("CARGO_PKG_DESCRIPTION"), {desc:?}));
const _: () = assert!(same(env!("CARGO_PKG_AUTHORS"), {author:?}));
#[cfg(not(kmod_probe = "a b#$"))]
compile_error!("the rustflags `--cfg` did not arrive intact");
#[cfg(not(feature = "c++.x"))]
compile_error!("feature `c++.x` did not arrive");

struct Exact;

impl kernel::Module for Exact {{
    fn init(_module: &'static ThisModule) -> Result<Self> {{
        Ok(Exact)
    }}
}}

#[cfg(test)]
#[kunit_tests(exact_flags)]
mod tests {{
    extern "C" {{
        fn exact_msg() -> *const core::ffi::c_char;
    }}

    #[test]
    fn c_define_is_exact() {{
        // SAFETY: `exact_msg` returns a NUL-terminated string literal.
        let s = unsafe {{ core::ffi::CStr::from_ptr(exact_msg()) }};
        assert_eq!(s.to_bytes(), {msg:?}.as_bytes());
    }}
}}
"#,
            desc = description,
            author = author,
            msg = "a b; c # d $e 'f'",
        ),
    );
    let manifest = d.path().join("Cargo.toml");
    ok(&build(&manifest, &[]));
    let o = run(&mut kmod(&[
        "test",
        "--manifest-path",
        manifest.to_str().unwrap(),
        "--arch",
        "x86_64",
    ]));
    ok(&o);
    assert!(
        stdout(&o).contains("test exact_flags::c_define_is_exact ... ok"),
        "{}",
        stdout(&o)
    );

    // A flag with a newline is refused with the key and the file.
    write(
        &d.path().join("Cargo.toml"),
        &std::fs::read_to_string(&manifest)
            .unwrap()
            .replace(&toml_str(flag), "\"-DX=1\\n-DY=2\""),
    );
    let e = fails(&build(&manifest, &[]));
    assert!(
        e.contains("`ccflags` in `") && e.contains("has a flag with the control character"),
        "{e}"
    );
}

/// The C-flags probe bindgen uses is checked before it is cached, and a cached answer that
/// is not complete (a partial write, a truncated file) is never used: it is probed again.
#[test]
fn a_partial_flag_probe_cache_is_probed_again() {
    dev_tree("x86_64");
    let d = scratch();
    copy_dir(&root().join("examples/mixed"), d.path());
    let _ = std::fs::remove_dir_all(d.path().join("target"));
    let manifest = d.path().join("Cargo.toml");
    let m = manifest.to_str().unwrap();
    ok(&build(&manifest, &[]));
    // In the tree's own output directory (`target/kmod/x86_64/<release>-<key>/`).
    let probe = std::fs::read_dir(d.path().join("target/kmod/x86_64"))
        .unwrap()
        .flatten()
        .map(|e| e.path().join(".probe"))
        .find(|p| p.is_dir())
        .expect("a tree directory with the probe cache");
    let cached: Vec<PathBuf> = std::fs::read_dir(&probe)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("cflags3-")
        })
        .collect();
    assert_eq!(cached.len(), 1, "{cached:?}");
    let full = std::fs::read_to_string(&cached[0]).unwrap();
    assert!(full.lines().any(|l| l == "-D__KERNEL__"), "{full}");
    // What a reader killed half-way through writing would have left.
    let half: String = full.lines().take(3).map(|l| format!("{l}\n")).collect();
    assert!(!half.contains("-D__KERNEL__"), "{half}");
    std::fs::write(&cached[0], &half).unwrap();
    // A header change makes bindgen run again, with the flags probed anew.
    let header = d.path().join("include/checksum.h");
    let text = std::fs::read_to_string(&header).unwrap();
    std::fs::write(&header, format!("{text}\n/* edited */\n")).unwrap();
    let o = run(&mut kmod(&[
        "build",
        "--manifest-path",
        m,
        "--arch",
        "x86_64",
    ]));
    ok(&o);
    assert_eq!(std::fs::read_to_string(&cached[0]).unwrap(), full);
}

/// Whether `haystack` holds `needle` (a string compiled into a `.ko`).
fn holds(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// A directory with a `rustc` that runs the real one and then, once, when it has compiled
/// the file `source`, replaces `edited` with `text`: the user's edit made after kbuild's
/// rustc read the file but while cargo-kmod is still running. First on `PATH`, it is the
/// rustc kbuild runs (the kernel's Makefile says `RUSTC = rustc`).
fn rustc_that_edits(dir: &Path, source: &Path, edited: &Path, text: &str) -> (PathBuf, PathBuf) {
    let o = std::process::Command::new("sh")
        .args(["-c", "command -v rustc"])
        .output()
        .unwrap();
    let real = String::from_utf8_lossy(&o.stdout).trim().to_string();
    assert!(!real.is_empty(), "no rustc on PATH");
    let bin = dir.join("bin");
    let trigger = dir.join("edit-once");
    write(&trigger, "");
    let text_file = dir.join("new-text");
    write(&text_file, text);
    write(
        &bin.join("rustc"),
        &format!(
            "#!/bin/sh\n'{real}' \"$@\"\ns=$?\nif [ $s -eq 0 ] && [ -e '{t}' ]; then\n\tcase \"$*\" in\n\t*'{src}'*) rm -f '{t}'; cat '{new}' > '{edited}' ;;\n\tesac\nfi\nexit $s\n",
            t = trigger.display(),
            src = source.display(),
            new = text_file.display(),
            edited = edited.display(),
        ),
    );
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(bin.join("rustc"), std::fs::Permissions::from_mode(0o755)).unwrap();
    (bin, trigger)
}

/// Issue 18 §2: a file outside the package (`#[path]`) edited after kbuild's rustc read it,
/// while cargo-kmod is still running: the next build rebuilds, and the `.ko` holds the new
/// text.
#[test]
fn fresh_sees_an_edit_made_during_the_build() {
    dev_tree("x86_64");
    let d = scratch();
    let shared = d.path().join("shared/extra.rs");
    write(
        &shared,
        "pub const TEXT: &str = \"harden-old-text-7f3a\";\n",
    );
    let pkg = d.path().join("pkgs/during");
    let manifest = package(&pkg, "during-build", "");
    let lib = pkg.join("src/lib.rs");
    write(
        &lib,
        &PLAIN_RS
            .replace(
                "        Ok(M)\n",
                "        pr_info!(\"{}\\n\", extra::TEXT);\n        Ok(M)\n",
            )
            .replace(
                "struct M;",
                "#[path = \"../../../shared/extra.rs\"]\nmod extra;\n\nstruct M;",
            ),
    );
    let (bin, trigger) = rustc_that_edits(
        d.path(),
        &lib,
        &shared,
        "pub const TEXT: &str = \"harden-new-text-7f3a\";\n",
    );
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let m = manifest.to_str().unwrap();
    let build =
        || run(kmod(&["build", "--manifest-path", m, "--arch", "x86_64"]).env("PATH", &path));
    ok(&build());
    assert!(
        !trigger.exists(),
        "the edit did not happen during the build"
    );
    let ko = d
        .path()
        .join("pkgs/during/target/kmod/x86_64/during_build.ko");
    assert!(
        holds(&std::fs::read(&ko).unwrap(), "harden-old-text-7f3a"),
        "the first build compiled the text as it was when rustc read it"
    );
    assert_rebuilt(&build(), "an edit made while the last build ran");
    let bytes = std::fs::read(&ko).unwrap();
    assert!(holds(&bytes, "harden-new-text-7f3a"));
    assert!(!holds(&bytes, "harden-old-text-7f3a"));
    assert_fresh(&build());
}

/// Issue 18 §2: `$CARGO_HOME/config.toml` is one of cargo's config files for a module with
/// `[dependencies]`: changing it rebuilds (the no-op check and the metadata cache find
/// cargo's config files the same way). `CARGO_HOME` is a temporary one, set for this test's
/// commands only, that shares the real one's registry cache.
#[test]
fn a_change_to_cargo_home_config_rebuilds() {
    dev_tree("x86_64");
    let d = scratch();
    write(
        &d.path().join("Cargo.toml"),
        "[workspace]\nresolver = \"2\"\nmembers = [\"module\", \"helper\"]\n",
    );
    write(
        &d.path().join("helper/Cargo.toml"),
        "[package]\nname = \"cfg-helper\"\nversion = \"0.1.0\"\nedition = \"2021\"\nlicense = \"GPL-2.0\"\n",
    );
    write(
        &d.path().join("helper/src/lib.rs"),
        "#![no_std]\n#[inline(never)]\npub fn answer(x: u32) -> u32 {\n    x + 1\n}\n",
    );
    let manifest = package(&d.path().join("module"), "cfg-user", "");
    let text = std::fs::read_to_string(&manifest).unwrap();
    write(
        &manifest,
        &text.replace(
            "\n[package.metadata.kmod]",
            "\n[dependencies]\ncfg-helper = { path = \"../helper\" }\n\n[package.metadata.kmod]",
        ),
    );
    write(
        &d.path().join("module/src/lib.rs"),
        &PLAIN_RS.replace("n + 1", "cfg_helper::answer(n)"),
    );
    let real_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cargo"));
    let cargo_home = d.path().join("cargo-home");
    std::fs::create_dir_all(&cargo_home).unwrap();
    for shared in ["registry", "git"] {
        if real_home.join(shared).exists() {
            std::os::unix::fs::symlink(real_home.join(shared), cargo_home.join(shared)).unwrap();
        }
    }
    let config = cargo_home.join("config.toml");
    write(&config, "[net]\nretry = 2\n");
    let m = d.path().join("Cargo.toml");
    let build = || {
        run(kmod(&[
            "build",
            "--manifest-path",
            m.to_str().unwrap(),
            "-p",
            "cfg-user",
            "--arch",
            "x86_64",
            "--offline",
        ])
        .env("CARGO_HOME", &cargo_home))
    };
    ok(&build());
    assert_fresh(&build());
    std::thread::sleep(std::time::Duration::from_millis(20));
    write(&config, "[net]\nretry = 3\n");
    assert_rebuilt(&build(), "a change to `$CARGO_HOME/config.toml`");
    assert_fresh(&build());
}

/// A fake `ssh`, first on `PATH`: the master (`-N`) creates its control socket path and
/// waits; a client logs the script it was sent to `scripts.log` and, for the board's
/// questions (the script with `@@kmod:tmp`), runs the shell text `answer`. Returns the
/// directory to put first on `PATH` and the log.
fn fake_ssh(dir: &Path, answer: &str) -> (PathBuf, PathBuf) {
    let bin = dir.join("fake-ssh-bin");
    let log = dir.join("scripts.log");
    write(
        &bin.join("ssh"),
        &format!(
            "#!/bin/sh\nlog='{log}'\ncp=\nmaster=\nfor a in \"$@\"; do\n\tcase \"$a\" in\n\tControlPath=*) cp=${{a#ControlPath=}} ;;\n\t-N) master=1 ;;\n\tesac\ndone\nif [ -n \"$master\" ]; then : > \"$cp\"; exec sleep 600; fi\nscript=$(cat)\n{{ printf '%s\\n' \"$script\"; echo '---- end of script'; }} >> \"$log\"\ncase \"$script\" in\n*'@@kmod:tmp'*)\n{answer}\n;;\nesac\nexit 0\n",
            log = log.display(),
        ),
    );
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(bin.join("ssh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    (bin, log)
}

/// The answers of a root board of `release` on x86_64 with every tool, and `tmp` as what
/// its `mktemp -d` printed.
fn board_answers(release: &str, tmp: &str) -> String {
    format!(
        "echo '@@kmod:release {release}'\necho '@@kmod:machine x86_64'\necho '@@kmod:uid 0'\necho '@@kmod:modules_disabled 0'\necho '@@kmod:sig_enforce N'\necho '@@kmod:tainted 0'\nfor t in insmod rmmod modprobe depmod dmesg mktemp; do echo \"@@kmod:tool $t\"; done\necho '@@kmod:tmp {tmp}'\necho '@@kmod:end'"
    )
}

fn deploy_with(bin: &Path, dir: &Path, args: &[&str]) -> Output {
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    run(
        kmod(&[&["deploy", "--host", "root@board.invalid"][..], args].concat())
            .env("PATH", path)
            .current_dir(dir),
    )
}

/// Issue 18 §3: a board whose `mktemp -d` printed `/tmp/cargo-kmod.x/../../etc` gets no
/// command with that path: not the copies, and not the clean-up after the failure (which
/// sent `rm -rf` to it before), whether the deploy fails at the directory or earlier.
#[test]
fn deploy_never_acts_on_a_hostile_temporary_directory() {
    let tree = dev_tree("x86_64");
    let release = trees()
        .into_iter()
        .find(|t| t["path"].as_str() == tree.to_str())
        .and_then(|t| t["release"].as_str().map(str::to_string))
        .expect("the dev tree's release");
    let d = scratch();
    let manifest = package(&d.path().join("pkg"), "hostile-tmp", "");
    ok(&build(&manifest, &[]));
    let ko = d.path().join("pkg/target/kmod/x86_64/hostile_tmp.ko");
    let hostile = "/tmp/cargo-kmod.x/../../etc";
    let (bin, log) = fake_ssh(d.path(), &board_answers(&release, hostile));
    // Checks pass; the directory is refused.
    let e = fails(&deploy_with(
        &bin,
        d.path(),
        &["--ko", ko.to_str().unwrap()],
    ));
    assert!(
        e.contains(&format!(
            "made no usable temporary directory (`mktemp -d` printed `{hostile}`)"
        )),
        "{e}"
    );
    // The deploy fails before it gets there (no package in the directory).
    let empty = d.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    fails(&deploy_with(&bin, &empty, &[]));
    let scripts = std::fs::read_to_string(&log).unwrap();
    assert!(
        scripts.contains("@@kmod:tmp"),
        "the board was asked: {scripts}"
    );
    assert!(
        !scripts.contains("../../etc") && !scripts.contains("rm -rf"),
        "a command acted on the board's unchecked path:\n{scripts}"
    );
}

const ARCHES: [&str; 2] = ["x86_64", "arm64"];

/// `cargo kmod ARGS` in `dir`, with TCG (the tests' machine has no usable KVM).
fn kmod_in(dir: &Path, args: &[&str]) -> Output {
    run(kmod(args).current_dir(dir).env("CARGO_KMOD_ACCEL", "tcg"))
}

/// A package `name` in `dir` whose `src/lib.rs` is `lib`.
fn package_with(dir: &Path, name: &str, kmod: &str, lib: &str) -> PathBuf {
    let manifest = package(dir, name, kmod);
    write(&dir.join("src/lib.rs"), lib);
    manifest
}

/// Whether `text` holds a character a terminal would act on (an escape, a bell, a bidi
/// control): what must never reach it from a `.ko`, a guest or a board.
fn has_raw_controls(text: &str) -> bool {
    text.chars().any(|c| {
        (c.is_control() && c != '\n' && c != '\t')
            || ('\u{202a}'..='\u{202e}').contains(&c)
            || ('\u{2066}'..='\u{2069}').contains(&c)
    })
}

/// A copy of `ko` whose `.modinfo` `name=` says `name` instead (padded with NULs, which
/// `.modinfo` allows between entries, so no offset moves).
fn renamed_ko(ko: &Path, old: &str, name: &[u8], to: &Path) {
    let mut data = std::fs::read(ko).unwrap();
    let from = format!("name={old}\0");
    let at = data
        .windows(from.len())
        .position(|w| w == from.as_bytes())
        .expect("name= in .modinfo");
    let mut entry = b"name=".to_vec();
    entry.extend_from_slice(name);
    assert!(entry.len() < from.len(), "the new name must be shorter");
    entry.resize(from.len(), 0);
    data[at..at + from.len()].copy_from_slice(&entry);
    std::fs::write(to, data).unwrap();
}

/// Issue 18 §4: a `--ko` whose `.modinfo` `name=` holds escape sequences (`test` and `run`
/// printed `Running h^[[2J^[]0;pwn^G`) is refused with the name escaped, and nothing raw
/// reaches the terminal.
#[test]
fn test_and_run_never_print_a_hostile_module_name() {
    dev_tree("x86_64");
    let d = scratch();
    let manifest = package(&d.path().join("pkg"), "hostilenamexxxxxxxxx", "");
    ok(&build(&manifest, &[]));
    let ko = d
        .path()
        .join("pkg/target/kmod/x86_64/hostilenamexxxxxxxxx.ko");
    let bad = d.path().join("hostile.ko");
    renamed_ko(&ko, "hostilenamexxxxxxxxx", b"h\x1b[2J\x1b]0;pwn\x07", &bad);
    for cmd in [
        vec!["test", "--arch", "x86_64", "--ko", bad.to_str().unwrap()],
        vec![
            "run",
            "--arch",
            "x86_64",
            "--ko",
            bad.to_str().unwrap(),
            "--exec",
            "true",
        ],
    ] {
        let o = kmod_in(d.path(), &cmd);
        let e = fails(&o);
        assert!(
            e.contains("names itself `h\\u{1b}[2J\\u{1b}]0;pwn\\u{7}` in `.modinfo`, which is not a module name"),
            "{e}"
        );
        assert!(
            !has_raw_controls(&e) && !has_raw_controls(&stdout(&o)),
            "{e}"
        );
    }
}

/// Issue 18 §4: a device `compatible` with a newline (which printed a fake `test result:`
/// line), an escape sequence or OSC 52 is refused, from the manifest and from `--device`,
/// before anything boots.
#[test]
fn a_compatible_with_control_characters_is_refused() {
    dev_tree("x86_64");
    let d = scratch();
    let manifest = package(
        &d.path().join("pkg"),
        "hostile-compat",
        "\n[[package.metadata.kmod.devices]]\ncompatible = \"acme,x\\ntest result: ok. 9 passed\"\n",
    );
    let m = manifest.to_str().unwrap();
    let o = kmod_in(
        d.path(),
        &["test", "--manifest-path", m, "--arch", "x86_64"],
    );
    let e = fails(&o);
    assert!(
        e.contains("invalid `compatible` in `[package.metadata.kmod].devices[0]`")
            && e.contains("`acme,x\\ntest result: ok. 9 passed` holds the control character `\\n`"),
        "{e}"
    );
    assert!(
        !stdout(&o).lines().any(|l| l.starts_with("test result: ok")),
        "{}",
        stdout(&o)
    );
    let file = d.path().join("devices.toml");
    write(
        &file,
        "[[devices]]\ncompatible = \"acme,\\u001b]52;c;aGk=\\u0007\"\n",
    );
    let plain = package(&d.path().join("plain"), "plain-compat", "");
    let o = kmod_in(
        d.path(),
        &[
            "run",
            "--manifest-path",
            plain.to_str().unwrap(),
            "--arch",
            "x86_64",
            "--device",
            file.to_str().unwrap(),
            "--exec",
            "true",
        ],
    );
    let e = fails(&o);
    assert!(
        e.contains("`acme,\\u{1b}]52;c;aGk=\\u{7}` holds the control character `\\u{1b}`"),
        "{e}"
    );
    assert!(!has_raw_controls(&e));
}

/// Issue 18 §4: what a guest prints reaches the terminal escaped on both arches: a kernel
/// log line with a bidi override and an escape sequence in a failing load's report
/// (`test`), and `run --exec`'s output.
#[test]
fn guest_text_reaches_the_terminal_escaped() {
    let lib = PLAIN_RS.replace(
        "        pr_info!(\"loaded {}\\n\", n + 1);\n        Ok(M)\n",
        // In an argument: the kernel's `pr_err!` takes only ASCII in its format string.
        "        pr_err!(\"{} {}\\n\", \"evil \\u{202e}txt.exe \\x1b[2J\", n);\n        Err(ENODEV)\n",
    );
    assert!(lib.contains("Err(ENODEV)"));
    let d = scratch();
    let manifest = package_with(&d.path().join("pkg"), "evil-log", "", &lib);
    let m = manifest.to_str().unwrap();
    for arch in ARCHES {
        dev_tree(arch);
        let o = kmod_in(d.path(), &["test", "--manifest-path", m, "--arch", arch]);
        let out = stdout(&o);
        assert_eq!(o.status.code(), Some(101), "{arch}: {out}\n{}", stderr(&o));
        assert!(
            out.contains("evil \\u{202e}txt.exe \\u{1b}[2J 41"),
            "{arch}: the line, escaped\n{out}"
        );
        assert!(!has_raw_controls(&out), "{arch}: {out}");
        let o = kmod_in(
            d.path(),
            &[
                "run",
                "--arch",
                arch,
                "--exec",
                "printf 'out \\342\\200\\256gpj.exe \\033]52;c;aGk=\\007\\n'",
            ],
        );
        ok(&o);
        assert_eq!(
            stdout(&o).trim_end(),
            "out \\u{202e}gpj.exe \\u{1b}]52;c;aGk=\\u{7}",
            "{arch}"
        );
    }
}

/// Issue 18 §4: what a board says reaches the terminal escaped, bidi controls included (a
/// fake `ssh` first on `PATH` is the board).
#[test]
fn board_text_reaches_the_terminal_escaped() {
    let d = scratch();
    let answers = board_answers("7.2.0-\u{202e}lanigiro", "/tmp/cargo-kmod.ok")
        .replace("x86_64", "x86_64\u{2066}");
    let (bin, _) = fake_ssh(d.path(), &answers);
    let o = deploy_with(&bin, d.path(), &[]);
    let e = fails(&o);
    assert!(e.contains("7.2.0-\\u{202e}lanigiro"), "{e}");
    assert!(
        !has_raw_controls(&e) && !has_raw_controls(&stdout(&o)),
        "{e}"
    );
}

/// Issue 18 §3: what a board prints is read within limits, each a one-line error naming the
/// limit: a 2 MiB line before its answers, 5 MiB of answers, and answers that never come
/// (the questions' 30 s).
#[test]
fn deploy_bounds_what_the_board_prints() {
    let d = scratch();
    let answers = board_answers("7.2.0", "/tmp/cargo-kmod.ok");
    for (answer, expect) in [
        (
            format!("head -c 2097152 /dev/zero | tr '\\0' x; echo\n{answers}"),
            "printed a line longer than 64 KiB while answering cargo-kmod's questions",
        ),
        (
            format!("yes '@@kmod:builtin padding_padding_padding' | head -c 5000000\n{answers}"),
            "printed more than 4 MiB while answering cargo-kmod's questions",
        ),
        (
            "exec sleep 100".to_string(),
            "took longer than 30s while answering cargo-kmod's questions",
        ),
    ] {
        let (bin, _) = fake_ssh(d.path(), &answer);
        let start = std::time::Instant::now();
        let e = fails(&deploy_with(&bin, d.path(), &[]));
        assert!(
            e.contains(&format!("error: `root@board.invalid` {expect}")),
            "{e}"
        );
        assert!(start.elapsed() < std::time::Duration::from_secs(50));
    }
}
/// The manifest of examples/blinker with `devices` instead of its own one device.
fn with_devices(example: &str, dir: &Path, devices: &str) -> PathBuf {
    copy_dir(&root().join("examples").join(example), dir);
    let _ = std::fs::remove_dir_all(dir.join("target"));
    let manifest = dir.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let head = &text[..text.find("[[package.metadata.kmod.devices]]").unwrap()];
    write(&manifest, &format!("{head}{devices}"));
    manifest
}

/// Issue 18 §5: 40 platform devices with 31-character names, one of them with a comma
/// (`timer,...`: split on commas, the helper took it for the guest's own `/timer` on
/// arm64), bind on both arches; the node list no longer passes through a 1024-byte
/// parameter.
#[test]
fn forty_devices_with_long_names_and_commas_bind() {
    let d = scratch();
    let mut devices = String::new();
    for i in 0..40 {
        let name = if i == 0 {
            format!("timer,{}", "t".repeat(25))
        } else {
            format!("blinker-{i:02}-{}", "n".repeat(20))
        };
        assert_eq!(name.len(), 31);
        devices.push_str(&format!(
            "[[package.metadata.kmod.devices]]\ncompatible = \"acme,blinker\"\nname = \"{name}\"\nproperties = {{ \"acme,period-ms\" = 250, \"acme,label\" = \"status\", \"acme,pins\" = [3, 5], \"acme,active-low\" = true, \"acme,max-ticks\" = {{ u64 = 0x1_0000_0000 }} }}\n"
        ));
    }
    let manifest = with_devices("blinker", &d.path().join("blinker"), &devices);
    let m = manifest.to_str().unwrap();
    for arch in ARCHES {
        dev_tree(arch);
        let o = kmod_in(d.path(), &["test", "--manifest-path", m, "--arch", arch]);
        let out = stdout(&o);
        ok(&o);
        assert!(out.contains("test result: ok."), "{arch}: {out}");
        let o = kmod_in(
            d.path(),
            &[
                "run",
                "--manifest-path",
                m,
                "--arch",
                arch,
                "--exec",
                "ls -d /sys/bus/platform/devices/blinker-* /sys/bus/platform/devices/timer,* | wc -l",
            ],
        );
        ok(&o);
        assert_eq!(stdout(&o).trim(), "40", "{arch}: {}", stderr(&o));
    }
}

/// Issue 18 §5: 33 I2C devices (the helper held at most 32, and said so only in dmesg) are
/// all created and bound on both arches.
#[test]
fn thirty_three_i2c_devices_bind() {
    let d = scratch();
    let mut devices = String::new();
    for i in 0..33u32 {
        devices.push_str(&format!(
            "[[package.metadata.kmod.devices]]\nbus = \"i2c\"\ncompatible = \"acme,tmp-sensor\"\naddress = {:#x}\nproperties = {{ \"acme,resolution-bits\" = 12, \"acme,label\" = \"board\" }}\nregisters = {{ 0x00 = [0x19, 0x80], 0x0f = 0xa1 }}\n",
            0x10 + i
        ));
    }
    let manifest = with_devices("tmp-sensor", &d.path().join("sensor"), &devices);
    let m = manifest.to_str().unwrap();
    for arch in ARCHES {
        dev_tree(arch);
        let o = kmod_in(d.path(), &["test", "--manifest-path", m, "--arch", arch]);
        let out = stdout(&o);
        ok(&o);
        assert!(!out.contains("made no i2c device"), "{arch}: {out}");
        let o = kmod_in(
            d.path(),
            &[
                "run",
                "--manifest-path",
                m,
                "--arch",
                arch,
                "--exec",
                "ls -d /sys/bus/i2c/devices/*-00* | wc -l",
            ],
        );
        ok(&o);
        assert_eq!(stdout(&o).trim(), "33", "{arch}: {}", stderr(&o));
    }
}

/// Issue 18 §6: `--param` with a name the module does not take is refused before the boot
/// (the kernel only warned and the run said `test result: ok`), for a module with
/// parameters and one without; the real parameter still works. A Rust module's `.modinfo`
/// names its parameters (`parmtype=`), checked on a real build.
#[test]
fn a_parameter_the_module_does_not_take_is_refused() {
    let d = scratch();
    copy_dir(&root().join("examples/hello"), &d.path().join("hello"));
    let _ = std::fs::remove_dir_all(d.path().join("hello/target"));
    let hello = d.path().join("hello/Cargo.toml");
    let plain = package(&d.path().join("plain"), "no-params", "");
    for arch in ARCHES {
        dev_tree(arch);
        let h = hello.to_str().unwrap();
        ok(&kmod_in(
            d.path(),
            &["build", "--manifest-path", h, "--arch", arch],
        ));
        let ko = d.path().join(format!("hello/target/kmod/{arch}/hello.ko"));
        let info = stdout(&kmod_in(d.path(), &["info", ko.to_str().unwrap()]));
        assert!(info.contains("greeting_count"), "{info}");
        let o = kmod_in(
            d.path(),
            &[
                "test",
                "--manifest-path",
                h,
                "--arch",
                arch,
                "--param",
                "nosuch=1",
            ],
        );
        let e = fails(&o);
        assert!(
            e.contains("module `hello` has no parameter `nosuch` (`--param nosuch=1`)")
                && e.contains("its parameters: `greeting_count`"),
            "{arch}: {e}"
        );
        assert!(!stdout(&o).contains("test result"), "{}", stdout(&o));
        let o = kmod_in(
            d.path(),
            &[
                "run",
                "--manifest-path",
                plain.to_str().unwrap(),
                "--arch",
                arch,
                "--param",
                "nosuch=1",
                "--exec",
                "true",
            ],
        );
        let e = fails(&o);
        assert!(
            e.contains("module `no_params` has no parameter `nosuch`")
                && e.contains("it takes no parameters"),
            "{arch}: {e}"
        );
        let o = kmod_in(
            d.path(),
            &[
                "run",
                "--manifest-path",
                h,
                "--arch",
                arch,
                "--param",
                "greeting-count=2",
                "--exec",
                "dmesg | grep -c 'Hello from Rust'",
            ],
        );
        ok(&o);
        assert_eq!(stdout(&o).trim(), "2", "{arch}");
    }
}

/// Issue 18 §6: `--timeout 18446744073709551615` (u64::MAX) is "no limit", not a panic
/// (exit 101 with "overflow when adding duration to instant"), on both arches.
#[test]
fn the_largest_timeout_is_no_limit() {
    let d = scratch();
    let manifest = package(&d.path().join("pkg"), "long-wait", "");
    let m = manifest.to_str().unwrap();
    for arch in ARCHES {
        dev_tree(arch);
        let max = u64::MAX.to_string();
        let o = kmod_in(
            d.path(),
            &[
                "test",
                "--manifest-path",
                m,
                "--arch",
                arch,
                "--timeout",
                &max,
            ],
        );
        ok(&o);
        assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
        let o = kmod_in(
            d.path(),
            &[
                "run",
                "--manifest-path",
                m,
                "--arch",
                arch,
                "--timeout",
                &max,
                "--exec",
                "echo fine",
            ],
        );
        ok(&o);
        assert_eq!(stdout(&o).trim(), "fine");
    }
}

/// Issue 18 §6: a malformed `SOURCE_DATE_EPOCH` is an error that names it (it was silently
/// 0), and nothing is written; an empty one means unset.
#[test]
fn a_malformed_source_date_epoch_is_an_error() {
    dev_tree("x86_64");
    let d = scratch();
    let manifest = package(&d.path().join("pkg"), "epoch", "");
    let m = manifest.to_str().unwrap();
    ok(&build(&manifest, &[]));
    for bad in ["2024-01-01", "-1", "abc", "1e9", " 5"] {
        let out = d.path().join(format!("out-{}", bad.trim()));
        let o = run(kmod(&[
            "package",
            "--manifest-path",
            m,
            "--arch",
            "x86_64",
            "--no-sign",
            "--out-dir",
            out.to_str().unwrap(),
        ])
        .env("SOURCE_DATE_EPOCH", bad));
        let e = fails(&o);
        assert!(
            e.contains(&format!(
                "`SOURCE_DATE_EPOCH` is `{bad}`, which is not a time in seconds since 1970"
            )),
            "{bad}: {e}"
        );
        assert!(
            std::fs::read_dir(&out).map_or(true, |mut r| r.next().is_none()),
            "{bad}: something was written"
        );
    }
    let out = d.path().join("out-empty");
    ok(&run(kmod(&[
        "package",
        "--manifest-path",
        m,
        "--arch",
        "x86_64",
        "--no-sign",
        "--out-dir",
        out.to_str().unwrap(),
    ])
    .env("SOURCE_DATE_EPOCH", "")));
}

/// Issue 18 §6: when the manifest beside a tarball cannot be written (here its path is a
/// directory; a full disk fails the same way), `package` leaves no tarball without it.
#[test]
fn package_leaves_a_complete_set_or_nothing() {
    dev_tree("x86_64");
    let d = scratch();
    let manifest = package(&d.path().join("pkg"), "set-of-two", "");
    let m = manifest.to_str().unwrap();
    let out = d.path().join("out");
    let package = || {
        run(&mut kmod(&[
            "package",
            "--manifest-path",
            m,
            "--arch",
            "x86_64",
            "--no-sign",
            "--out-dir",
            out.to_str().unwrap(),
        ]))
    };
    ok(&package());
    let names: Vec<PathBuf> = std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    let tarball = names
        .iter()
        .find(|p| p.to_string_lossy().ends_with(".tar.gz"))
        .unwrap()
        .clone();
    let json = names
        .iter()
        .find(|p| p.to_string_lossy().ends_with(".manifest.json"))
        .unwrap()
        .clone();
    std::fs::remove_file(&tarball).unwrap();
    std::fs::remove_file(&json).unwrap();
    std::fs::create_dir_all(json.join("in-the-way")).unwrap();
    let e = fails(&package());
    assert!(e.contains(".manifest.json"), "{e}");
    assert!(!tarball.exists(), "a tarball without its manifest was left");
    let left: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(left.len(), 1, "only what was in the way: {left:?}");
}

/// Issue 18 §6: the report of a failed load prints each kernel line once (busybox's
/// `insmod` runs a failing module's init twice, so the log holds its lines twice), in
/// `test` and in `run`, on both arches.
#[test]
fn a_failed_load_reports_each_kernel_line_once() {
    let lib = PLAIN_RS.replace(
        "        pr_info!(\"loaded {}\\n\", n + 1);\n        Ok(M)\n",
        "        pr_err!(\"once-only first line {}\\n\", n);\n        pr_err!(\"once-only second line\\n\");\n        Err(ENODEV)\n",
    );
    assert!(lib.contains("Err(ENODEV)"));
    let d = scratch();
    let manifest = package_with(&d.path().join("pkg"), "once-only", "", &lib);
    let m = manifest.to_str().unwrap();
    for arch in ARCHES {
        dev_tree(arch);
        let o = kmod_in(d.path(), &["test", "--manifest-path", m, "--arch", arch]);
        let out = stdout(&o);
        assert_eq!(o.status.code(), Some(101), "{arch}: {out}\n{}", stderr(&o));
        for line in ["once-only first line 41", "once-only second line"] {
            assert_eq!(out.matches(line).count(), 1, "{arch}: `{line}` in\n{out}");
        }
        assert!(out.contains("the module's init ran twice"), "{arch}: {out}");
        let o = kmod_in(
            d.path(),
            &[
                "run",
                "--manifest-path",
                m,
                "--arch",
                arch,
                "--exec",
                "true",
            ],
        );
        let e = fails(&o);
        assert!(e.contains("module `once_only` did not load"), "{arch}: {e}");
        assert_eq!(
            e.matches("once-only first line 41").count(),
            1,
            "{arch}: {e}"
        );
    }
}
