//! `cargo kmod deploy` against a real board: the arm64 dev kernel under qemu with Debian's
//! dropbear, reached over ssh on a loopback port forward (the library's
//! `deploy::testboard`, booted through its one qemu entry point). Every test that needs a
//! board boots its own ([`Board::start`]) and holds the one board lock while it runs, so
//! boards never share state or compete for the two cores.
//!
//! ssh is pointed at the test's own key and known-hosts file through the command's
//! documented options (`--ssh-config /dev/null`, `--ssh-option ...`); `~/.ssh` is never
//! touched.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

#[test]
fn unreachable_host_is_one_line() {
    // Port 1 on loopback: nothing listens there.
    let o = run(kmod(&[
        "deploy",
        "--host",
        "root@127.0.0.1:1",
        "--ssh-config",
        "/dev/null",
        "--ssh-option",
        "BatchMode=yes",
    ])
    .current_dir(workspace()));
    let e = fails(&o);
    assert_eq!(
        one_error_line(&e),
        "error: cannot log in to `root@127.0.0.1:1` over ssh: ssh: connect to host 127.0.0.1 port 1: Connection refused",
    );
    assert!(
        e.contains("help: check that the board is up and `ssh -p 1 root@127.0.0.1` works"),
        "{e}"
    );
    // The host of a named target (`[workspace.metadata.kmod.targets.NAME] host`).
    let ws = scratch();
    copy_dir(&root().join("examples/hello"), &ws.path().join("hello"));
    std::fs::write(
        ws.path().join("Cargo.toml"),
        "[workspace]\nresolver = \"2\"\nmembers = [\"hello\"]\n\n\
         [workspace.metadata.kmod.targets.board]\nhost = \"root@127.0.0.1:1\"\n\n\
         [workspace.metadata.kmod.targets.nohost]\narch = \"arm64\"\n",
    )
    .unwrap();
    let o = run(kmod(&[
        "deploy",
        "--target",
        "board",
        "--ssh-config",
        "/dev/null",
        "--ssh-option",
        "BatchMode=yes",
    ])
    .current_dir(ws.path()));
    assert_eq!(
        one_error_line(&fails(&o)),
        "error: cannot log in to `root@127.0.0.1:1` over ssh: ssh: connect to host 127.0.0.1 port 1: Connection refused",
    );
    let o = run(kmod(&["deploy", "--target", "nohost"]).current_dir(ws.path()));
    assert_eq!(
        one_error_line(&fails(&o)),
        "error: target `nohost` has no `host`"
    );
    let o = run(kmod(&["deploy"]).current_dir(ws.path()));
    assert_eq!(one_error_line(&fails(&o)), "error: no board to deploy to");
    // A destination ssh would read as an option never reaches it.
    let o = run(kmod(&["deploy", "--host=-oProxyCommand=touch /tmp/x"]).current_dir(workspace()));
    assert!(
        fails(&o).contains("error: invalid host `-oProxyCommand=touch /tmp/x`"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn first_deploy_then_redeploy_replaces_the_module() {
    let board = Board::start(&[]);
    let ws = workspace();
    // The done-when: `cargo kmod deploy --host root@127.0.0.1:PORT` loads an example.
    let o = run(&mut board.deploy(ws, &["-p", "hello", "--param", "greeting_count=2"]));
    ok(&o);
    let (out, err) = (stdout(&o), stderr(&o));
    assert!(
        err.contains(&format!(
            "Connected root@127.0.0.1:{} (aarch64, linux 7.",
            board.port()
        )),
        "{err}"
    );
    assert!(
        err.contains("Checked hello against the board and `"),
        "{err}"
    );
    assert!(err.contains("Loading hello"), "{err}");
    assert!(!err.contains("Unloading"), "{err}");
    assert!(out.contains("Hello from Rust (2/2)"), "{out}");
    assert!(out.lines().all(|l| l.starts_with("[hello] ")), "{out}");
    assert!(board.loaded("hello"));
    assert_eq!(board.leftovers(), "");

    // Redeploy: the loaded version is unloaded first, the new one loaded with new params,
    // all over one ssh connection (one handshake).
    let before = board.connections();
    let o = run(&mut board.deploy(ws, &["-p", "hello", "--param", "greeting_count=3"]));
    ok(&o);
    assert_eq!(
        board.connections() - before,
        2,
        "one for the deploy, one for the count"
    );
    let (out, err) = (stdout(&o), stderr(&o));
    let unload = err.find("Unloading hello").expect(&err);
    let load = err.find("Loading hello").expect(&err);
    assert!(unload < load, "{err}");
    assert!(out.contains("Hello from Rust (3/3)"), "{out}");
    assert!(board.loaded("hello"));

    // JSON: one event per step, and `--exec`'s output and status.
    let o = run(&mut board.deploy(
        ws,
        &[
            "-p",
            "hello",
            "--message-format",
            "json",
            "--exec",
            "grep -c '^hello ' /proc/modules; echo to-stderr >&2; exit 3",
        ],
    ));
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let events: Vec<serde_json::Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let reasons: Vec<&str> = events
        .iter()
        .map(|e| e["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons,
        [
            "deploy-board",
            "deploy-checked",
            "deploy-copy",
            "deploy-step",
            "deploy-step",
            "deploy-exec",
            "deploy-finished"
        ],
        "{events:?}"
    );
    assert_eq!(
        events[0]["release"].as_str().unwrap().split('.').next(),
        Some("7")
    );
    assert_eq!(events[3]["kind"], "unload");
    assert_eq!(events[4]["kind"], "load");
    assert_eq!(events[4]["ok"], true);
    assert_eq!(events[5]["stdout"], serde_json::json!(["1"]));
    assert_eq!(events[5]["stderr"], serde_json::json!(["to-stderr"]));
    assert_eq!(events[5]["status"], 3);
    assert!(
        one_error_line(&stderr(&o)).contains("exited with status 3 on `root@127.0.0.1:"),
        "{}",
        stderr(&o)
    );
    assert_eq!(board.leftovers(), "");
}

#[test]
fn install_then_modprobe_without_a_reboot() {
    let board = Board::start(&[]);
    let o = run(&mut board.deploy(workspace(), &["-p", "hello", "--install"]));
    ok(&o);
    let err = stderr(&o);
    assert!(err.contains("Installing into `/lib/modules`"), "{err}");
    assert!(err.contains("Loading hello"), "{err}");
    assert!(board.loaded("hello"));
    let listing = board.ssh(
        "ls /lib/modules/$(uname -r)/updates; grep -c hello /lib/modules/$(uname -r)/modules.dep",
    );
    assert!(listing.starts_with("hello.ko\n"), "{listing}");
    // The installed module comes back with `modprobe` alone, as after a reboot.
    let again = board.ssh("rmmod hello && modprobe hello && cat /proc/modules");
    assert!(again.lines().any(|l| l.starts_with("hello ")), "{again}");
    assert_eq!(board.leftovers(), "");
}

#[test]
fn failing_init_shows_the_kernels_reason() {
    let board = Board::start(&[]);
    let o = run(&mut board.deploy(workspace(), &["-p", "init-error"]));
    let e = fails(&o);
    let out = stdout(&o);
    // The module's own words, attributed to it (pr_err adds the module prefix). busybox's
    // insmod tries finit_module and then init_module, so the init runs, and logs, twice.
    assert!(
        out.contains("[init_error] init_error: init_error: no such device, refusing to load"),
        "{out}"
    );
    let line = one_error_line(&e);
    assert!(
        line.starts_with(&format!(
            "error: module `init_error` did not load on `root@127.0.0.1:{}`: `insmod` exited with status ",
            board.port()
        )),
        "{line}"
    );
    assert!(
        line.contains("insmod: can't insert '/tmp/cargo-kmod."),
        "{line}"
    );
    assert!(line.contains("init_error.ko': No such device"), "{line}");
    assert!(!board.loaded("init_error"));
    assert_eq!(board.leftovers(), "");
}

#[test]
fn mismatches_are_refused_before_copying() {
    let board = Board::start(&[]);
    // A module built for another release of the same kernel (the board was updated since
    // the tree was built): the tree's release files say `-other`.
    let other = tree_variant(
        "arm64",
        "release-other",
        &[
            ("include/config/kernel.release", &|t| {
                format!("{}-other\n", t.trim())
            }),
            ("include/generated/utsrelease.h", &|t| {
                t.replacen("\"\n", "-other\"\n", 1)
            }),
        ],
    );
    let ws = scratch();
    copy_dir(&root().join("examples/hello"), ws.path());
    let kdir = other.display().to_string();
    let o = run(&mut board.deploy(ws.path(), &["--kdir", &kdir]));
    let e = fails(&o);
    let line = one_error_line(&e);
    assert!(
        line.contains("`hello` is built for linux `7.2.") && line.contains("-other` (vermagic `"),
        "{line}"
    );
    assert!(line.contains("but the board runs `7.2."), "{line}");
    assert!(
        e.contains("help: build against the board's own kernel tree"),
        "{e}"
    );
    assert!(!e.contains("Copying"), "{e}");
    assert!(!board.loaded("hello"));
    assert_eq!(board.leftovers(), "");

    // The same release, but the tree's exported symbols have other CRCs: the check
    // `cargo kmod verify` makes, before copying.
    let skewed = skewed_tree("arm64");
    // Built against the real tree, checked against the skewed one (`--ko` with `--kdir`):
    // the tree says the kernel's symbols have other CRCs than the module was built with.
    ok(&run(
        kmod(&["build", "-p", "hello", "--arch", "arm64"]).current_dir(workspace())
    ));
    let ko = workspace().join("target/kmod/arm64/hello.ko");
    let o = run(&mut board.deploy(
        workspace(),
        &[
            "--ko",
            &ko.display().to_string(),
            "--kdir",
            &skewed.display().to_string(),
        ],
    ));
    let e = fails(&o);
    assert!(e.contains("disagrees about version of symbol `"), "{e}");
    assert!(!e.contains("Copying"), "{e}");
    assert!(!board.loaded("hello"));
}

#[test]
fn unsigned_module_refused_on_an_enforcing_board() {
    let board = Board::start(&["module.sig_enforce=1"]);
    let o = run(&mut board.deploy(workspace(), &["-p", "hello"]));
    let e = fails(&o);
    assert!(e.contains(", signatures enforced)"), "{e}");
    assert_eq!(
        one_error_line(&e),
        format!(
            "error: refusing to deploy to `root@127.0.0.1:{}`: `hello` is not signed and the board enforces module signatures (`/sys/module/module/parameters/sig_enforce` is `Y`)",
            board.port()
        )
    );
    assert!(!e.contains("Copying"), "{e}");
    assert!(!board.loaded("hello"));
    assert_eq!(board.leftovers(), "");

    // The same module signed with the tree's key (what the board's kernel trusts) goes.
    ok(&run(
        kmod(&["build", "-p", "hello", "--arch", "arm64"]).current_dir(workspace())
    ));
    let root = scratch();
    ok(&run(kmod(&[
        "install",
        "--sign",
        "--root",
        &root.path().display().to_string(),
        &workspace()
            .join("target/kmod/arm64/hello.ko")
            .display()
            .to_string(),
    ])
    .current_dir(workspace())));
    let signed = std::fs::read_dir(root.path().join("lib/modules"))
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path()
        .join("updates/hello.ko");
    let o = run(&mut board.deploy(workspace(), &["--ko", &signed.display().to_string()]));
    ok(&o);
    assert!(stdout(&o).contains("Hello from Rust"), "{}", stdout(&o));
    assert!(board.loaded("hello"));
}

#[test]
fn refused_key_is_one_line() {
    let board = Board::start(&[]);
    let other = scratch();
    keygen(&other.path().join("other"));
    let mut c = kmod(&["deploy", "--host", &board.host()]);
    c.args(board.ssh_flags(&other.path().join("other")))
        .current_dir(workspace());
    let o = run(&mut c);
    let e = fails(&o);
    assert_eq!(
        one_error_line(&e),
        "error: cannot log in to `root@127.0.0.1:PORT` over ssh: root@127.0.0.1: Permission denied (publickey)"
            .replace("PORT", &board.port().to_string())
    );
    assert!(
        e.contains("help: cargo-kmod logs in with your ssh keys, agent and config"),
        "{e}"
    );
}

#[test]
fn ctrl_c_during_follow_leaves_nothing_running() {
    let board = Board::start(&[]);
    for unload in [false, true] {
        let mut c = board.deploy(workspace(), &["-p", "hello", "--follow"]);
        if unload {
            c.arg("--unload-on-exit");
        }
        // Its own process group, as a terminal's foreground job: Ctrl-C goes to the group.
        use std::os::unix::process::CommandExt;
        c.process_group(0)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        let pid = child.id();
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let err = child.stderr.take().unwrap();
        let etx = tx.clone();
        let e = std::thread::spawn(move || {
            for l in BufReader::new(err).lines().map_while(Result::ok) {
                let _ = etx.send(format!("E {l}"));
            }
        });
        let out = child.stdout.take().unwrap();
        let o = std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(format!("O {l}"));
            }
        });
        let mut seen = Vec::new();
        let wait_for = |what: &str, seen: &mut Vec<String>| {
            let start = Instant::now();
            while !seen.iter().any(|l| l.contains(what)) {
                let left = Duration::from_secs(300).saturating_sub(start.elapsed());
                match rx.recv_timeout(left) {
                    Ok(l) => seen.push(l),
                    Err(_) => panic!("never saw `{what}`: {seen:#?}"),
                }
            }
        };
        wait_for("Following the kernel log", &mut seen);
        // A kernel-log line written on the board shows up.
        board.ssh("echo cargo-kmod-test-mark > /dev/kmsg");
        wait_for("O [", &mut seen);
        wait_for("cargo-kmod-test-mark", &mut seen);
        let running = descendants(pid);
        assert!(!running.is_empty(), "ssh should be running");
        // `--`: a negative pid is a process group, not an option.
        let sent = Command::new("kill")
            .args(["-s", "INT", "--", &format!("-{pid}")])
            .status()
            .unwrap();
        assert!(sent.success());
        let start = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if start.elapsed() > Duration::from_secs(60) {
                let _ = child.kill();
                panic!("cargo-kmod did not end after Ctrl-C: {seen:#?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let _ = (e.join(), o.join());
        seen.extend(rx.try_iter());
        assert_eq!(status.code(), Some(0), "{seen:#?}");
        let start = Instant::now();
        while let Some(p) = running.iter().find(|p| alive(**p)) {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "process {p} outlived cargo-kmod: {seen:#?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        // Nothing left on the board either, and the module stays loaded unless asked.
        let ps = board.ssh("ps");
        assert!(!ps.contains("cat /dev/kmsg"), "{ps}");
        assert_eq!(board.loaded("hello"), !unload, "{seen:#?}");
        if unload {
            assert!(
                seen.iter().any(|l| l.contains("Unloading hello")),
                "{seen:#?}"
            );
        }
    }
}
