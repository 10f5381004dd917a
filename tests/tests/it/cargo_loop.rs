//! The cargo loop on real dev trees: `check` (type errors with the user's file and line, in
//! human and cargo's JSON form; a correct module passes without writing a `.ko`),
//! `clippy` (a lint `[lints]` silences, `-- -D warnings`), `fmt` (`--check` names the
//! file, `fmt` fixes it), and a bad `[lints]` table.

use crate::common::*;

#[test]
fn check_reports_a_type_error_with_the_users_file_and_line() {
    dev_tree("x86_64");
    let d = scratch();
    fixture_package(d.path(), "loop-broken", "", "");
    let (source, line) = lib_rs_with_type_error();
    write(&d.path().join("src/lib.rs"), &source);
    let lib = d.path().join("src/lib.rs");

    let o = kmod_at(d.path(), &["check", "--arch", "x86_64"]);
    assert_eq!(code(&o), 101, "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("Checking loop_broken v0.4.2 (x86_64, linux "),
        "{err}"
    );
    assert!(err.contains("error[E0308]: mismatched types"), "{err}");
    // The span names the user's file, not a copy under target/.
    assert!(
        err.contains(&format!("--> {}:{line}:", lib.display())),
        "{err}"
    );
    assert!(
        err.contains("error: could not compile `loop-broken` (lib) due to 1 previous error"),
        "{err}"
    );
    assert!(
        !err.contains("make["),
        "make's noise after rustc's error: {err}"
    );

    let o = kmod_at(
        d.path(),
        &["check", "--arch", "x86_64", "--message-format", "json"],
    );
    assert_eq!(code(&o), 101, "{}", stderr(&o));
    let lines = json_lines(&o);
    let last = lines.last().expect("JSON lines");
    assert_eq!(last["reason"], "build-finished");
    assert_eq!(last["success"], false);
    let messages: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|v| v["reason"] == "compiler-message")
        .collect();
    let error = messages
        .iter()
        .find(|v| v["message"]["level"] == "error" && v["message"]["code"]["code"] == "E0308")
        .unwrap_or_else(|| panic!("no E0308 in {lines:?}"));
    assert_eq!(error["message"]["message"], "mismatched types");
    let span = &error["message"]["spans"][0];
    assert_eq!(span["file_name"], lib.to_str().unwrap());
    assert_eq!(span["line_start"], line);
    assert!(error["message"]["rendered"]
        .as_str()
        .unwrap()
        .contains("E0308"));
    assert_eq!(
        error["manifest_path"],
        d.path().join("Cargo.toml").to_str().unwrap()
    );
    let id = error["package_id"].as_str().unwrap();
    assert!(id.contains("loop-broken") && id.contains("0.4.2"), "{id}");
    assert_eq!(error["target"]["name"], "loop_broken");
    assert_eq!(error["target"]["kind"][0], "lib");
    assert_eq!(error["target"]["src_path"], lib.to_str().unwrap());
    assert!(kos_under(d.path()).is_empty());
}

#[test]
fn check_of_a_correct_module_passes_quietly_and_writes_no_ko() {
    for arch in ARCHES {
        dev_tree(arch);
        let d = scratch();
        fixture_package(d.path(), "loop-clean", "", "");
        let o = kmod_at(d.path(), &["check", "--arch", arch]);
        ok(&o);
        let err = stderr(&o);
        assert!(
            err.contains(&format!("Checking loop_clean v0.4.2 ({arch}, linux ")),
            "{err}"
        );
        assert!(err.contains("Finished checking `loop-clean`"), "{err}");
        assert!(!err.contains("warning") && !err.contains("error"), "{err}");
        assert!(stdout(&o).is_empty(), "{}", stdout(&o));
        assert!(
            kos_under(d.path()).is_empty(),
            "{arch}: {:?}",
            kos_under(d.path())
        );
        // The type-check ran: its metadata is there, beside the plan build would use.
        let meta = walk(&d.path().join("target/kmod").join(arch))
            .into_iter()
            .any(|p| p.extension().is_some_and(|e| e == "rmeta"));
        assert!(meta, "{arch}: no metadata written");

        let o = kmod_at(
            d.path(),
            &["check", "--arch", arch, "--message-format", "json"],
        );
        ok(&o);
        let lines = json_lines(&o);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert_eq!(lines[0]["reason"], "build-finished");
        assert_eq!(lines[0]["success"], true);
    }
}

const NEEDLESS_RETURN: &str =
    "\n/// A helper with a needless `return`.\npub fn helper() -> u32 {\n    return 1;\n}\n";

#[test]
fn clippy_reports_a_lint_that_lints_silences_and_deny_warnings_fails() {
    dev_tree("x86_64");
    let d = scratch();
    let manifest = fixture_package(d.path(), "loop-lint", "", "");
    let lib = d.path().join("src/lib.rs");
    write(&lib, &format!("{LIB_RS}{NEEDLESS_RETURN}"));

    let o = kmod_at(d.path(), &["clippy", "--arch", "x86_64"]);
    ok(&o);
    let err = stderr(&o);
    assert!(
        err.contains("warning: unneeded `return` statement"),
        "{err}"
    );
    assert!(err.contains(&format!("--> {}:", lib.display())), "{err}");
    assert!(
        err.contains("warning: `loop-lint` (lib) generated 1 warning"),
        "{err}"
    );
    // rustc alone does not know clippy's lints.
    let o = kmod_at(d.path(), &["check", "--arch", "x86_64"]);
    ok(&o);
    assert!(!stderr(&o).contains("needless"), "{}", stderr(&o));

    let o = kmod_at(
        d.path(),
        &["clippy", "--arch", "x86_64", "--", "-D", "warnings"],
    );
    assert_eq!(code(&o), 101, "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("error: unneeded `return` statement"), "{err}");
    assert!(err.contains("could not compile `loop-lint`"), "{err}");

    let o = kmod_at(
        d.path(),
        &["clippy", "--arch", "x86_64", "--message-format", "json"],
    );
    ok(&o);
    let lines = json_lines(&o);
    assert!(
        lines.iter().any(|v| v["reason"] == "compiler-message"
            && v["message"]["code"]["code"] == "clippy::needless_return"),
        "{lines:?}"
    );
    assert_eq!(lines.last().unwrap()["reason"], "build-finished");

    // `[lints.clippy]` silences it, as under cargo, even with `-D warnings`.
    let text = std::fs::read_to_string(&manifest).unwrap();
    write(
        &manifest,
        &format!("{text}\n[lints.clippy]\nneedless_return = \"allow\"\n"),
    );
    let o = kmod_at(
        d.path(),
        &["clippy", "--arch", "x86_64", "--", "-D", "warnings"],
    );
    ok(&o);
    assert!(!stderr(&o).contains("warning"), "{}", stderr(&o));
}

#[test]
fn clippy_on_arm64_lints_too() {
    dev_tree("arm64");
    let d = scratch();
    fixture_package(d.path(), "loop-lint-arm", "", "");
    write(
        &d.path().join("src/lib.rs"),
        &format!("{LIB_RS}{NEEDLESS_RETURN}"),
    );
    let o = kmod_at(
        d.path(),
        &["clippy", "--arch", "arm64", "--", "-D", "warnings"],
    );
    assert_eq!(code(&o), 101, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("error: unneeded `return` statement"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn fmt_check_names_the_misformatted_file_and_fmt_fixes_it() {
    dev_tree("x86_64");
    let d = scratch();
    fixture_package(d.path(), "loop-fmt", "", "");
    let lib = d.path().join("src/lib.rs");
    let extra = d.path().join("src/extra.rs");
    write(
        &lib,
        &format!("{LIB_RS}\npub mod extra;\n#[path = \"../target/gen.rs\"]\npub mod gen;\n"),
    );
    write(
        &extra,
        "// SPDX-License-Identifier: GPL-2.0\n//! Extra.\n/// One.\npub fn  helper( )->u32{1}\n",
    );
    // A generated file under target/ is never formatted, even when a `#[path]` module.
    let generated = d.path().join("target/gen.rs");
    write(&generated, "//! Generated.\n/// G.\npub fn  g( ){}\n");

    let o = kmod_at(d.path(), &["fmt", "--check", "--arch", "x86_64"]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains(&format!("`{}`", extra.display())), "{err}");
    assert!(!err.contains(&format!("`{}`", lib.display())), "{err}");
    assert!(!err.contains("gen.rs"), "{err}");
    assert!(
        stdout(&o).contains(&format!("Diff in {}:", extra.display())),
        "{}",
        stdout(&o)
    );

    let o = kmod_at(d.path(), &["fmt", "--arch", "x86_64"]);
    ok(&o);
    assert_eq!(
        std::fs::read_to_string(&extra).unwrap(),
        "// SPDX-License-Identifier: GPL-2.0\n//! Extra.\n/// One.\npub fn helper() -> u32 {\n    1\n}\n"
    );
    assert_eq!(
        std::fs::read_to_string(&generated).unwrap(),
        "//! Generated.\n/// G.\npub fn  g( ){}\n"
    );
    let o = kmod_at(d.path(), &["fmt", "--check", "--arch", "x86_64"]);
    ok(&o);
    assert!(stdout(&o).is_empty(), "{}", stdout(&o));
    // The formatted module still type-checks.
    ok(&kmod_at(d.path(), &["check", "--arch", "x86_64"]));
}

#[test]
fn a_bad_lints_table_is_one_line_naming_the_file_and_key() {
    dev_tree("x86_64");
    let d = scratch();
    let manifest = fixture_package(
        d.path(),
        "loop-badlints",
        "",
        "[lints.clipy]\nneedless_return = \"allow\"\n",
    );
    let o = kmod_at(d.path(), &["check", "--arch", "x86_64"]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let line = one_error_line(&stderr(&o));
    assert_eq!(
        line,
        format!(
            "error: unknown lint tool `clipy` in `[lints]` (did you mean `clippy`?) in `{}`",
            manifest.display()
        )
    );
}

#[test]
fn check_in_a_workspace_names_the_member_and_p_selects() {
    dev_tree("x86_64");
    let d = scratch();
    write(
        &d.path().join("Cargo.toml"),
        "[workspace]\nresolver = \"2\"\nmembers = [\"good\", \"bad\"]\n",
    );
    fixture_package(&d.path().join("good"), "loop-good", "", "");
    fixture_package(&d.path().join("bad"), "loop-bad", "", "");
    let (source, line) = lib_rs_with_type_error();
    let bad_lib = d.path().join("bad/src/lib.rs");
    write(&bad_lib, &source);

    let o = kmod_at(
        d.path(),
        &[
            "check",
            "--workspace",
            "--arch",
            "x86_64",
            "--message-format",
            "json",
        ],
    );
    assert_eq!(code(&o), 101, "{}", stderr(&o));
    let lines = json_lines(&o);
    let errors: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|v| v["reason"] == "compiler-message" && v["message"]["level"] == "error")
        .filter(|v| !v["message"]["spans"].as_array().unwrap().is_empty())
        .collect();
    assert_eq!(errors.len(), 1, "{lines:?}");
    assert!(errors[0]["package_id"]
        .as_str()
        .unwrap()
        .contains("loop-bad"));
    assert_eq!(
        errors[0]["manifest_path"],
        d.path().join("bad/Cargo.toml").to_str().unwrap()
    );
    assert_eq!(
        errors[0]["message"]["spans"][0]["file_name"],
        bad_lib.to_str().unwrap()
    );
    assert_eq!(errors[0]["message"]["spans"][0]["line_start"], line);
    assert!(
        stderr(&o).contains("could not compile `loop-bad`"),
        "{}",
        stderr(&o)
    );

    // `-p` selects; `-v` prints kbuild's command with the check goal.
    let o = kmod_at(
        d.path(),
        &["check", "-p", "loop-good", "--arch", "x86_64", "-v"],
    );
    ok(&o);
    let err = stderr(&o);
    assert!(!err.contains("loop_bad"), "{err}");
    let make = err
        .lines()
        .find(|l| l.contains("Running `make") && l.contains(".rsi"))
        .unwrap_or_else(|| panic!("no make command in {err}"));
    assert!(make.contains("loop-good/loop_good.rsi"), "{make}");
    assert!(
        make.contains("KMOD_CHECK_FLAGS=--error-format=json"),
        "{make}"
    );
}

#[test]
fn check_sees_dependency_crates_and_bindings() {
    dev_tree("x86_64");
    // `[dependencies]`: their `--extern`s are on the check's command line, so a misuse of a
    // dependency's type is a type error, not an unresolved crate.
    let (_tmp, crates) = copy_of("examples/crates");
    let o = kmod_at(&crates, &["check", "--arch", "x86_64"]);
    ok(&o);
    assert!(kos_under(&crates).is_empty());
    let lib = crates.join("src/lib.rs");
    let text = std::fs::read_to_string(&lib).unwrap();
    write(
        &lib,
        &format!("{text}\n/// Wrong on purpose.\npub fn wrong() -> HVec<u8, 4> {{\n    5u8\n}}\n"),
    );
    let o = kmod_at(&crates, &["check", "--arch", "x86_64"]);
    assert_eq!(code(&o), 101, "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("error[E0308]: mismatched types"), "{err}");
    assert!(err.contains("heapless::Vec<u8, 4>"), "{err}");
    assert!(!err.contains("E0433") && !err.contains("E0463"), "{err}");

    // Bindings (generated into `OUT_DIR` and included) and a C object: the crate checks.
    let (_tmp2, mixed) = copy_of("examples/mixed");
    let o = kmod_at(&mixed, &["check", "--arch", "x86_64"]);
    ok(&o);
    assert!(kos_under(&mixed).is_empty());
}

/// Whether `-v` output shows a `make` run.
fn ran_make(o: &std::process::Output) -> bool {
    stderr(o).contains("Running `make")
}

#[test]
fn check_after_an_edit_runs_kbuilds_saved_command_without_make_and_a_noop_check_runs_nothing() {
    dev_tree("x86_64");
    let d = scratch();
    fixture_package(d.path(), "loop-fast", "", "");
    let lib = d.path().join("src/lib.rs");
    let check = |extra: &[&str]| {
        let mut args = vec!["check", "--arch", "x86_64", "-v"];
        args.extend_from_slice(extra);
        kmod_at(d.path(), &args)
    };
    // The first check goes through kbuild and saves its command.
    let o = check(&[]);
    ok(&o);
    assert!(ran_make(&o), "{}", stderr(&o));

    // A type error: rustc alone, kbuild's own command (target, cfgs, externs), no make.
    let (source, line) = lib_rs_with_type_error();
    write(&lib, &source);
    let o = check(&[]);
    assert_eq!(code(&o), 101, "{}", stderr(&o));
    let err = stderr(&o);
    assert!(!ran_make(&o), "{err}");
    assert!(err.contains("--target="), "kbuild's command: {err}");
    assert!(err.contains("--extern kernel"), "kbuild's command: {err}");
    assert!(
        err.contains(&format!("--> {}:{line}:", lib.display())),
        "{err}"
    );
    let json = |o: &std::process::Output| -> Vec<serde_json::Value> { json_lines(o) };
    let replayed = check(&["--message-format", "json"]);
    assert_eq!(code(&replayed), 101);

    // Nothing changed: the last diagnostics again, nothing run at all, the same JSON.
    let noop = check(&["--message-format", "json"]);
    assert_eq!(code(&noop), 101);
    assert!(!stderr(&noop).contains("Running `"), "{}", stderr(&noop));
    assert_eq!(json(&noop), json(&replayed));

    // A manifest change is more than sources: through kbuild again, the same verdict.
    let manifest = d.path().join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    write(&manifest, &format!("{text}\n# edited\n"));
    let through_make = check(&["--message-format", "json"]);
    assert_eq!(code(&through_make), 101);
    assert!(ran_make(&through_make), "{}", stderr(&through_make));
    assert_eq!(json(&through_make), json(&replayed));

    // Fixed: silent and successful, still without make.
    write(
        &lib,
        &source.replace("let _broken: u32 = \"not a number\";", ""),
    );
    let o = check(&[]);
    ok(&o);
    assert!(!ran_make(&o), "{}", stderr(&o));
    assert!(kos_under(d.path()).is_empty());
}

/// The settings `new` wrote for VS Code (`"rust-analyzer.a.b": v`), as rust-analyzer's
/// configuration object (`{"a": {"b": v}}`), with `cargo` in the check command replaced by
/// the cargo-kmod under test (`cargo-kmod kmod check ...` is what `cargo kmod check` runs).
fn rust_analyzer_settings(package: &std::path::Path) -> serde_json::Value {
    let text = std::fs::read_to_string(package.join(".vscode/settings.json"))
        .expect("`cargo kmod new` wrote .vscode/settings.json");
    let flat: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&text).unwrap();
    let mut out = serde_json::json!({});
    for (k, v) in flat {
        let path: Vec<&str> = k
            .strip_prefix("rust-analyzer.")
            .expect("rust-analyzer settings")
            .split('.')
            .collect();
        let mut at = &mut out;
        for p in &path[..path.len() - 1] {
            at = at
                .as_object_mut()
                .unwrap()
                .entry(p.to_string())
                .or_insert(serde_json::json!({}));
        }
        at[path[path.len() - 1]] = v;
    }
    let command = out["check"]["overrideCommand"].as_array_mut().unwrap();
    assert_eq!(command[0], "cargo");
    command[0] = bin().display().to_string().into();
    out
}

/// Where `needle` (its first character) is in `text`, as an LSP position.
fn position_of(text: &str, needle: &str) -> serde_json::Value {
    let at = text
        .find(needle)
        .unwrap_or_else(|| panic!("`{needle}` in {text}"));
    let line = text[..at].matches('\n').count();
    let col = at - text[..at].rfind('\n').map_or(0, |i| i + 1);
    serde_json::json!({ "line": line, "character": col })
}

#[test]
fn rust_analyzer_shows_check_on_save_and_goes_to_bindings_and_kernel_definitions() {
    use std::time::Duration;
    let tree = dev_tree("x86_64");
    rust_analyzer_root();
    let d = scratch();
    let o = kmod_at(d.path(), &["new", "ra-probe"]);
    ok(&o);
    let package = d.path().join("ra-probe");
    let o = kmod_at(&package, &["ide", "--kdir", tree.to_str().unwrap()]);
    ok(&o);
    let lib = package.join("src/lib.rs");
    let source = std::fs::read_to_string(&lib).unwrap();
    // Items to jump from: one from the kernel's generated bindings, one from the kernel crate.
    let source = format!(
        "{source}\n/// The size of a kernel list head.\npub fn list_head_size() -> usize {{\n    core::mem::size_of::<kernel::bindings::list_head>()\n}}\n"
    );
    write(&lib, &source);
    // The check the settings run must find the tree `ide` described.
    let settings = rust_analyzer_settings(&package);
    let log = d.path().join("rust-analyzer.log");
    let mut lsp = Lsp::start(&package, settings, &log);
    let doc = serde_json::json!({ "uri": uri(&lib) });
    lsp.notify(
        "textDocument/didOpen",
        serde_json::json!({ "textDocument": { "uri": uri(&lib), "languageId": "rust", "version": 1, "text": source } }),
    );
    // Loaded and indexed: rust-analyzer says it is quiescent.
    lsp.wait_for("experimental/serverStatus", Duration::from_secs(300), |p| {
        p["quiescent"] == true
    })
    .unwrap_or_else(|| {
        panic!(
            "rust-analyzer never became quiescent: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        )
    });

    // Go-to-definition: into the tree's generated bindings and the kernel crate's source.
    let definition = |lsp: &mut Lsp, needle: &str| -> std::path::PathBuf {
        let params =
            serde_json::json!({ "textDocument": doc, "position": position_of(&source, needle) });
        for _ in 0..60 {
            let r = lsp.request(
                "textDocument/definition",
                params.clone(),
                Duration::from_secs(60),
            );
            let first = if r.is_array() { r[0].clone() } else { r };
            if let Some(u) = first["uri"].as_str() {
                return path_of(u);
            }
            std::thread::sleep(Duration::from_secs(1));
        }
        panic!(
            "no definition of `{needle}`: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        )
    };
    let bindings = definition(&mut lsp, "list_head>");
    assert!(
        bindings.ends_with("rust/bindings/bindings_generated.rs"),
        "{}",
        bindings.display()
    );
    assert!(bindings.starts_with(&tree), "{}", bindings.display());
    let kernel = definition(&mut lsp, "ThisModule) ->");
    assert!(
        kernel.to_string_lossy().contains("/rust/kernel/")
            && kernel.extension().is_some_and(|e| e == "rs"),
        "{}",
        kernel.display()
    );

    // A type error, saved: the diagnostics of `cargo kmod check` (rustc's, with its code).
    let broken = source.replace(
        "pub fn list_head_size() -> usize {",
        "pub fn list_head_size() -> usize {\n    let _broken: u32 = \"not a number\";",
    );
    write(&lib, &broken);
    lsp.notify(
        "textDocument/didChange",
        serde_json::json!({ "textDocument": { "uri": uri(&lib), "version": 2 }, "contentChanges": [{ "text": broken }] }),
    );
    lsp.notify(
        "textDocument/didSave",
        serde_json::json!({ "textDocument": doc }),
    );
    let line = broken.lines().position(|l| l.contains("_broken")).unwrap();
    let published = lsp.wait_for(
        "textDocument/publishDiagnostics",
        Duration::from_secs(300),
        |p| {
            p["uri"] == uri(&lib)
                && p["diagnostics"].as_array().is_some_and(|ds| {
                    ds.iter().any(|d| {
                        d["source"] == "rustc"
                            && d["code"] == "E0308"
                            && d["range"]["start"]["line"] == line
                    })
                })
        },
    );
    assert!(
        published.is_some(),
        "no check diagnostic after save: {:?}\n{}",
        lsp.notifications
            .iter()
            .filter(|n| n["method"] == "textDocument/publishDiagnostics")
            .collect::<Vec<_>>(),
        std::fs::read_to_string(&log).unwrap_or_default()
    );
}

/// The `href="file://..."` targets in the HTML files under `dir`.
fn file_links(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for f in walk(dir) {
        if f.extension().is_none_or(|e| e != "html") {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap();
        for part in text.split("href=\"file://").skip(1) {
            let target = part.split(['"', '#']).next().unwrap();
            out.push(std::path::PathBuf::from(target));
        }
    }
    out
}

#[test]
fn doc_writes_html_whose_links_into_the_kernel_crate_resolve() {
    for arch in ARCHES {
        dev_tree(arch);
        let d = scratch();
        fixture_package(d.path(), "loop-doc", "", "");
        let o = kmod_at(d.path(), &["doc", "--arch", arch]);
        ok(&o);
        let doc = d.path().join("target/kmod").join(arch).join("doc/loop_doc");
        let index = doc.join("index.html");
        assert!(index.is_file(), "{arch}: {}", stderr(&o));
        assert!(
            stderr(&o).contains(&format!("Generated {}", index.display())),
            "{}",
            stderr(&o)
        );
        let links = file_links(&doc);
        let kernel: Vec<_> = links
            .iter()
            .filter(|l| l.components().any(|c| c.as_os_str() == "kernel"))
            .collect();
        assert!(
            !kernel.is_empty(),
            "{arch}: no link into the kernel crate: {links:?}"
        );
        for l in &kernel {
            assert!(l.is_file(), "{arch}: broken link `{}`", l.display());
        }
        // The kernel's docs are built once per tree: a second run only documents the module.
        let o = kmod_at(d.path(), &["doc", "--arch", arch]);
        ok(&o);
        assert!(!stderr(&o).contains("Documenting kernel"), "{}", stderr(&o));
        assert!(kos_under(d.path()).is_empty());
    }
}

#[test]
fn doc_with_a_bad_tree_or_package_is_one_line() {
    let d = scratch();
    fixture_package(d.path(), "loop-doc-bad", "", "");
    let o = kmod_at(d.path(), &["doc", "--kdir", "/nonexistent/tree"]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.starts_with("error: "), "{err}");
    assert!(err.contains("/nonexistent/tree"), "{err}");
    let o = kmod_at(
        d.path(),
        &["doc", "-p", "no-such-package", "--arch", "x86_64"],
    );
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.starts_with("error: ") && err.contains("no-such-package"),
        "{err}"
    );
}

#[test]
fn rust_analyzer_goes_to_dependency_crate_definitions() {
    use std::time::Duration;
    dev_tree("x86_64");
    rust_analyzer_root();
    let (tmp, crates) = copy_of("examples/crates");
    let o = kmod_at(&crates, &["ide", "--arch", "x86_64"]);
    ok(&o);
    let lib = crates.join("src/lib.rs");
    let source = std::fs::read_to_string(&lib).unwrap();
    let log = tmp.path().join("rust-analyzer.log");
    let settings = serde_json::json!({ "linkedProjects": ["rust-project.json"] });
    let mut lsp = Lsp::start(&crates, settings, &log);
    lsp.notify(
        "textDocument/didOpen",
        serde_json::json!({ "textDocument": { "uri": uri(&lib), "languageId": "rust", "version": 1, "text": source } }),
    );
    lsp.wait_for("experimental/serverStatus", Duration::from_secs(300), |p| {
        p["quiescent"] == true
    })
    .expect("rust-analyzer became quiescent");
    let params = serde_json::json!({
        "textDocument": { "uri": uri(&lib) },
        "position": position_of(&source, "FnvIndexMap, String as HString"),
    });
    let mut target = None;
    for _ in 0..60 {
        let r = lsp.request(
            "textDocument/definition",
            params.clone(),
            Duration::from_secs(60),
        );
        let first = if r.is_array() { r[0].clone() } else { r };
        if let Some(u) = first["uri"].as_str() {
            target = Some(path_of(u));
            break;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    let target = target.unwrap_or_else(|| {
        panic!(
            "no definition of `FnvIndexMap`: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        )
    });
    // The registry source of the `heapless` crate cargo resolved.
    assert!(
        target
            .components()
            .any(|c| c.as_os_str().to_string_lossy().starts_with("heapless-")),
        "{}",
        target.display()
    );
}
