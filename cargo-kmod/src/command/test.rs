//! `cargo kmod test`: boot the tree's kernel under qemu with the modules' test builds, report
//! their KUnit cases like `cargo test`.
//!
//! All selected modules go into one boot, dependencies first. Output on stdout follows
//! libtest: `running N tests`, `test suite::case ... ok`, the failures with their kernel-log
//! lines, `test result: ...`; exit status 101 when anything failed. With
//! `--message-format json` every case is one JSON object (`{"type":"test","event":"ok",...}`)
//! followed by one `{"type":"suite",...}` summary.

use anyhow::Result;
use serde_json::json;

use crate::command::args::{
    BootArgs, BuildArgs, KdirArgs, KoArgs, MatrixArgs, PackageSelect, ToArgs,
};
use crate::context::Session;
use crate::error::{UserError, EXIT_TESTS_FAILED};
use crate::guest::verdict::{self, TestOptions, TestReport, Verdict};
use crate::kernel::KernelTree;
use crate::ops::test::TestRequest;

#[derive(Debug, clap::Args)]
pub struct TestCmd {
    #[command(flatten)]
    pub kdir: KdirArgs,
    #[command(flatten)]
    pub packages: PackageSelect,
    #[command(flatten)]
    pub build: BuildArgs,
    /// Only report cases whose `suite::case` name contains FILTER
    #[arg(value_name = "FILTER")]
    pub filter: Option<String>,
    /// Load every module even after one failed to load
    #[arg(long)]
    pub no_fail_fast: bool,
    /// Also run the checks that cost seconds: a kmemleak scan after the last unload (the
    /// kernel reports an object only 5 s after it was allocated)
    #[arg(long)]
    pub sanitize: bool,
    /// Boot with the debug kernel's checks switched off (debug objects, lockdep, kmemleak)
    #[arg(long, conflicts_with = "sanitize")]
    pub no_debug_kernel: bool,
    /// Fail when the kernel cannot run the modules' KUnit cases (it has no `CONFIG_KUNIT`,
    /// as distribution kernels do) instead of checking only that they load and unload
    #[arg(long)]
    pub require_kunit: bool,
    #[command(flatten)]
    pub ko: KoArgs,
    #[command(flatten)]
    pub boot: BootArgs,
    #[command(flatten)]
    pub matrix: MatrixArgs,
}

impl TestCmd {
    pub fn run(&self, session: &Session) -> Result<()> {
        if self.matrix.matrix {
            return self.run_matrix(session);
        }
        let shell = &session.shell;
        let req = TestRequest {
            guest: self.boot.guest(&self.ko, self.build.options(true)),
            options: TestOptions {
                timeout: self.boot.timeout(),
                filter: self.filter.clone(),
                no_fail_fast: self.no_fail_fast,
                cmdline: self.kernel_args(),
                leak_scan: self.sanitize,
                require_kunit: self.require_kunit,
                ..TestOptions::default()
            },
        };
        let bar = std::cell::OnceCell::new();
        let verbose = shell.is_verbose();
        let outcome = crate::ops::test::test(
            session,
            &self.packages.selection(),
            &crate::context::TreeSelection {
                // `--sanitize` without a named tree builds for and boots the arch's sanitizer
                // tree (KASAN), when there is one; given `.ko` files keep the tree they match.
                sanitize: self.sanitize && self.ko.ko.is_empty(),
                ..self.kdir.selection()?
            },
            &req,
            |guest| {
                let (tree, modules, machine) = (&guest.tree, &guest.modules, &guest.machine);
                let names: Vec<&str> = modules.iter().map(|m| m.name.as_str()).collect();
                shell.status(
                    "Running",
                    format!(
                        "{} on {} {} (qemu, {})",
                        names.join(", "),
                        tree.arch,
                        tree.release,
                        machine.accel.name()
                    ),
                );
                let _ = bar.set(shell.spinner("Booting", format!("{} kernel", tree.arch)));
            },
            |l| {
                let Some(bar) = bar.get() else { return };
                if verbose {
                    bar.suspend(|| eprintln!("{l}"));
                } else if !l.trim().is_empty() {
                    let first = l.lines().next().unwrap_or("");
                    bar.set_message(first.chars().take(60).collect::<String>());
                }
            },
        );
        if let Some(bar) = bar.get() {
            bar.finish_and_clear();
        }
        let (guest, report) = outcome?;
        let tree = &guest.tree;
        if let Some(f) = &self.filter {
            if report.cases.iter().all(|c| !c.kunit) && report.passed() {
                crate::bail_user!(
                    "no test matches `{}`: the modules ran {} tests", f, report.filtered_out;
                    hint = "run without FILTER to list them"
                );
            }
        }
        for w in &report.warnings {
            shell.warn(format_args!("the kernel ignored a module parameter: `{w}`"));
        }
        let missing = tree.config.missing_debug_checks();
        if self.no_debug_kernel {
            shell.note("the debug kernel's checks were off (`--no-debug-kernel`)");
        } else if !missing.is_empty() {
            shell.note(format_args!(
                "the {} {} kernel does not check for {}",
                tree.arch,
                crate::text::escape(&tree.release),
                missing.join(", ")
            ));
        }
        print_bindings(session, &guest, &report);
        print_report(session, &report, tree, &guest.machine);
        if report.passed() {
            Ok(())
        } else {
            let failed = report.count(Verdict::Failed);
            Err(UserError::new(format!(
                "{failed} test{} failed on {}",
                plural(failed),
                tree.arch
            ))
            .with_exit_code(EXIT_TESTS_FAILED)
            .into())
        }
    }
}

impl TestCmd {
    /// `--matrix`: this command, for each cell's tree, in parallel.
    fn run_matrix(&self, session: &Session) -> Result<()> {
        if !self.ko.ko.is_empty() {
            crate::bail_user!(
                "`--matrix` builds the packages for each cell's tree, so it takes no `--ko` files";
                hint = "test a `.ko` on the tree it was built for with `--kdir` or `--target`"
            );
        }
        let args = self.cell_args();
        let req = self
            .matrix
            .request(crate::ops::matrix::Kind::Test, self.build.jobs, args);
        crate::command::matrix::run(session, &self.packages.selection(), &req)
    }

    /// The arguments each cell's `test` gets: everything but the tree and the matrix's own.
    fn cell_args(&self) -> Vec<std::ffi::OsString> {
        let mut args = Vec::new();
        self.packages.to_args(&mut args);
        self.build.to_args(&mut args);
        self.ko.to_args(&mut args);
        for (on, name) in [
            (self.no_fail_fast, "--no-fail-fast"),
            (self.sanitize, "--sanitize"),
            (self.no_debug_kernel, "--no-debug-kernel"),
            (self.require_kunit, "--require-kunit"),
        ] {
            if on {
                args.push(name.into());
            }
        }
        if let Some(f) = &self.filter {
            args.push(f.into());
        }
        self.boot.to_args(&mut args);
        args
    }

    /// The user's kernel arguments, after the switches of `--no-debug-kernel` and
    /// `--sanitize`.
    fn kernel_args(&self) -> Vec<String> {
        let mut a: Vec<String> = Vec::new();
        if self.no_debug_kernel {
            a.extend(crate::kernel::config::DEBUG_OFF_ARGS.map(String::from));
        }
        if self.sanitize {
            // The dev trees build kmemleak in switched off (its tracking costs every boot).
            a.push("kmemleak=on".to_string());
        }
        a.extend(self.boot.kernel_args.iter().cloned());
        a
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// Say, for each module under test, which of its declared devices a driver bound (and that
/// it declared none), so a passing run never hides a driver that bound to nothing.
fn print_bindings(
    session: &Session,
    guest: &crate::ops::test::Guest,
    report: &crate::guest::verdict::TestReport,
) {
    let shell = &session.shell;
    for m in &guest.modules {
        let mine: Vec<&crate::guest::verdict::Binding> = report
            .bindings
            .iter()
            .filter(|b| b.module == m.name)
            .collect();
        // A module that declared no devices is named only when it has a device table
        // (`alias=` lines): a driver with nothing to bind.
        if mine.is_empty() && m.aliases.is_empty() {
            continue;
        }
        if shell.is_json() {
            let devices: Vec<serde_json::Value> = mine
                .iter()
                .map(|b| {
                    serde_json::json!({
                        "device": b.device,
                        "at": b.at,
                        "driver": b.driver.as_ref().map(|d| &d.0),
                        "driver_module": b.driver.as_ref().and_then(|d| d.1.as_ref()),
                    })
                })
                .collect();
            shell.json(&serde_json::json!({
                "type": "devices",
                "module": m.name,
                "devices": devices,
            }));
            continue;
        }
        if mine.is_empty() {
            shell.status(
                "Devices",
                format_args!(
                    "{}: declared none, so its drivers bound nothing in this run (declare test devices: docs/devices.md)",
                    m.name
                ),
            );
            continue;
        }
        let parts: Vec<String> = mine
            .iter()
            .map(|b| match &b.driver {
                Some((drv, module)) => format!(
                    "{} at {} bound by {}{}",
                    b.device,
                    crate::text::escape(&b.at),
                    crate::text::escape(drv),
                    module
                        .as_deref()
                        .filter(|x| *x != drv)
                        .map(|x| format!(" ({})", crate::text::escape(x)))
                        .unwrap_or_default()
                ),
                None => format!("{} at {} not bound", b.device, crate::text::escape(&b.at)),
            })
            .collect();
        shell.status("Devices", format_args!("{}: {}", m.name, parts.join("; ")));
    }
}

/// Print the libtest-style report (or JSON events).
fn print_report(
    session: &Session,
    report: &TestReport,
    tree: &KernelTree,
    machine: &crate::qemu::Machine,
) {
    let shell = &session.shell;
    let secs = report.boot.elapsed.as_secs_f64();
    if shell.is_json() {
        for c in &report.cases {
            shell.json(&json!({
                "type": "test",
                "event": match c.verdict { Verdict::Ok => "ok", Verdict::Failed => "failed", Verdict::Ignored => "ignored" },
                "name": c.name,
                "module": c.module,
                "arch": tree.arch.name(),
                "stdout": c.lines.join("\n"),
            }));
        }
        shell.json(&json!({
            "type": "suite",
            "event": if report.passed() { "ok" } else { "failed" },
            "passed": report.count(Verdict::Ok),
            "failed": report.count(Verdict::Failed),
            "ignored": report.count(Verdict::Ignored),
            "filtered_out": report.filtered_out,
            "arch": tree.arch.name(),
            "kernel": tree.release,
            "machine": format!(
                "{}, {}",
                machine
                    .model
                    .as_deref()
                    .and_then(|m| m.split(',').next())
                    // qemu's default machine.
                    .unwrap_or(match tree.arch {
                        crate::kernel::Arch::X86_64 => "pc",
                        crate::kernel::Arch::Arm64 => "virt",
                    }),
                machine.accel.name()
            ),
            "exec_time": secs,
        }));
        return;
    }
    let n = report
        .cases
        .iter()
        .filter(|c| !c.name.contains(" ("))
        .count();
    shell.out("");
    shell.out(format!("running {n} test{}", plural(n)));
    for c in &report.cases {
        let word = match c.verdict {
            Verdict::Ok => console::style("ok").green(),
            Verdict::Failed => console::style("FAILED").red(),
            Verdict::Ignored => console::style("ignored").yellow(),
        };
        shell.out(format!("test {} ... {}", c.name, word));
    }
    let failed: Vec<_> = report
        .cases
        .iter()
        .filter(|c| c.verdict == Verdict::Failed)
        .collect();
    if !failed.is_empty() {
        shell.out("");
        shell.out("failures:");
        for c in &failed {
            shell.out("");
            shell.out(format!("---- {} ----", c.name));
            for l in &c.lines {
                shell.out(l);
            }
        }
        shell.out("");
        shell.out("failures:");
        for c in &failed {
            shell.out(format!("    {}", c.name));
        }
    }
    shell.out("");
    shell.out(verdict::summary_line(report));
    if report.filtered_out > 0 {
        shell.out(format!("({} filtered out)", report.filtered_out));
    }
    shell.out("");
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use crate::cli::CargoCli;
    use crate::command::Command;

    fn parse(args: &[&str]) -> super::TestCmd {
        let argv = ["cargo", "kmod", "test"].iter().chain(args);
        match CargoCli::try_parse_from(argv).unwrap() {
            CargoCli::Kmod(k) => match k.command {
                Command::Test(t) => t,
                _ => unreachable!(),
            },
        }
    }

    /// What a cell's process gets parses back to the same command: every flag the user gave
    /// reaches every cell, and nothing of the matrix's own (`--matrix`, `--targets`, `-j`).
    #[test]
    fn a_cells_arguments_are_the_users() {
        let given = [
            "--matrix",
            "--targets",
            "a,b",
            "-j",
            "3",
            "--manifest-path",
            "ws/Cargo.toml",
            "-p",
            "blink",
            "--release",
            "-F",
            "spi,i2c",
            "--no-default-features",
            "--offline",
            "--param",
            "blink.hz=2",
            "--no-fail-fast",
            "--require-kunit",
            "--device",
            "dev.toml",
            "--timeout",
            "90",
            "suite::case",
            "--",
            "quiet",
            "loglevel=3",
        ];
        let cmd = parse(&given);
        let args: Vec<String> = cmd
            .cell_args()
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect();
        assert!(
            !args
                .iter()
                .any(|a| a == "--matrix" || a == "--targets" || a == "-j" || a == "--jobs"),
            "{args:?}"
        );
        let again = parse(&args.iter().map(String::as_str).collect::<Vec<_>>());
        let mut want = cmd;
        want.matrix = Default::default();
        want.build.jobs = None;
        assert_eq!(format!("{again:?}"), format!("{want:?}"));
    }
}
