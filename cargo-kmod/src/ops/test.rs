//! `cargo kmod test`, and the guest set-up `test` and `run` share.
//!
//! [`prepare`]: the modules a test or run boot loads, with the tree it boots: the `--ko`
//! files as given, or the selected packages built now (with tests compiled in for `test`),
//! resolved once; the test devices of those packages and of `--device` files, compiled for
//! the guest; and the qemu machine. [`test`]: the test plan (loads, unloads, settle) with
//! the devices set up around the modules, one boot, and the verdict with the devices'
//! cases.

use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::context::{ModuleRequest, Modules, Selection, Session, TreeSelection};
use crate::guest::modules::{load_order, KoModule};
use crate::kernel::KernelTree;
use crate::ops::build::{self, BuildOptions};
use crate::qemu::machine::Machine;

/// What to boot with.
#[derive(Debug, Clone, Default)]
pub struct GuestModules {
    /// `--ko` files (then nothing is built).
    pub ko: Vec<PathBuf>,
    /// `--param` values.
    pub params: Vec<String>,
    /// How the packages are built (`test`: with their KUnit tests compiled in).
    pub build: BuildOptions,
    /// `--device` files: device tables (`.toml`) or overlays (`.dtso`) for this run.
    pub devices: Vec<PathBuf>,
    /// `--secure-boot`: boot in UEFI firmware with Secure Boot on, this key's certificate
    /// enrolled as a Machine Owner Key, and the modules signed with it.
    pub secure_boot: Option<SecureBootKey>,
}

/// The key of `--secure-boot` (`--key`, `--cert`; the tree's own by default).
#[derive(Debug, Clone, Default)]
pub struct SecureBootKey {
    pub key: Option<PathBuf>,
    pub cert: Option<PathBuf>,
}

/// What a test or run boot boots with.
#[derive(Debug)]
pub struct Guest {
    pub tree: KernelTree,
    /// In load order, with their parameters.
    pub modules: Vec<KoModule>,
    /// The test devices of the packages and of `--device` files, ready for the guest.
    pub devices: Option<crate::devices::Prepared>,
    /// The qemu machine that boots `tree`: its board's model, or the arch's default.
    pub machine: Machine,
    /// With `--secure-boot`: the signed modules and the firmware's variables, kept for
    /// the boot.
    pub secure_boot: Option<SecureBootFiles>,
}

/// What a Secure Boot boot holds on to: the signed copies of the modules and the firmware.
#[derive(Debug)]
pub struct SecureBootFiles {
    _signed: tempfile::TempDir,
    _firmware: crate::qemu::uefi::SecureBootFirmware,
}

/// The tree, the modules (in load order, with parameters) and the devices for `test` and
/// `run`. `run` outside any package boots the bare kernel. Device files are read before
/// anything is built, so a bad one is an error before any build or boot.
pub fn prepare(
    session: &Session,
    select: &Selection,
    trees: &TreeSelection,
    req: &GuestModules,
) -> Result<Guest> {
    let extra: Vec<crate::devices::Devices> = req
        .devices
        .iter()
        .map(|p| crate::devices::spec::from_file(p))
        .collect::<Result<_>>()?;
    let asked = if req.build.test {
        ModuleRequest::Packages
    } else {
        ModuleRequest::PackagesIfAny
    };
    for path in &req.ko {
        if path.extension().is_none_or(|e| e != "ko") {
            crate::bail_user!(
                "`{}` is not a kernel module: its name does not end in `.ko`", path.display();
                hint = "pass the `.ko` that kbuild produced"
            );
        }
    }
    let resolved = crate::context::resolve(
        session,
        select,
        trees,
        &ModuleRequest::files_or(&req.ko, asked),
        None,
    )?;
    let target = resolved.target.clone();
    // The key is read before anything is built: a wrong one is an error first.
    let signing = match &req.secure_boot {
        Some(k) => Some(secure_boot_key(session, &resolved.tree, k)?),
        None => None,
    };
    let mut modules = Vec::new();
    // The devices are compiled (and the helper built) before the modules, so a bad overlay
    // is an error before anything is built or booted.
    let (tree, mut devices) = match resolved.modules {
        Modules::Files(_) | Modules::None => {
            for path in &req.ko {
                modules.push(KoModule::read(path, resolved.tree.arch)?);
            }
            let names: Vec<String> = modules.iter().map(|m| m.name.clone()).collect();
            let devices = guest_devices(session, &resolved.tree, &[], &extra, req, &names, None)?;
            (resolved.tree, devices)
        }
        Modules::Packages(_) => {
            let ctx = resolved.build_context();
            let declared: Vec<(String, &crate::devices::Devices)> = ctx
                .modules
                .iter()
                .filter(|m| !m.devices.is_empty())
                .map(|m| (m.name.clone(), &m.devices))
                .collect();
            let names: Vec<String> = ctx.modules.iter().map(|m| m.name.clone()).collect();
            let out_dir = ctx.kmod_dir().join("devices");
            let devices = guest_devices(
                session,
                &ctx.tree,
                &declared,
                &extra,
                req,
                &names,
                Some(&out_dir),
            )?;
            for artifact in build::build(session, &ctx, &req.build)? {
                modules.push(KoModule::read(&artifact.ko, ctx.tree.arch)?);
            }
            (ctx.tree, devices)
        }
    };
    crate::guest::modules::apply_params(&mut modules, &req.params)?;
    // Signed before the distribution's own modules join them: those carry its signature.
    let signed = match &signing {
        Some((key, _)) => Some(sign_for_boot(key, &mut modules, devices.as_mut())?),
        None => None,
    };
    // A distribution's kernel: the modules' load-time dependencies from its own modules.
    if let Some(dir) =
        crate::kernel::distro::complete::Completion::read(&tree.dir).and_then(|c| c.modules)
    {
        let out = tree.dir.join("cargo-kmod-deps");
        let deps = crate::guest::modules::distro_dependencies(&modules, &dir, &out, tree.arch)?;
        if !deps.is_empty() {
            let names: Vec<&str> = deps.iter().map(|m| m.name.as_str()).collect();
            session.shell.status(
                "Adding",
                format_args!("{} from the distribution's modules", names.join(", ")),
            );
        }
        modules.extend(deps);
    }
    let accel = crate::qemu::accel::choose(&session.shell, &tree)?;
    let mut machine = match crate::kernel::board::machine_for(
        &tree,
        target.as_ref().map(|t| t.machine_keys()),
    )? {
        Some(b) => Machine::for_board(&tree, accel, &b)?,
        None => Machine::for_tree(&tree, accel)?,
    };
    if let Some(d) = &devices {
        if let Some(g) = d
            .devices
            .iter()
            .find(|g| g.bus == crate::devices::Bus::VirtioMmio)
        {
            // The transports are `virt`'s; a board model has its own devices, or none.
            if let Some(model) = machine.model.as_deref().filter(|_| !machine.is_virt()) {
                crate::bail_user!(
                    "test device {} ({}) is a virtio-mmio device, and this target boots the board model `{}`, without qemu's `virt` transports", g.label(), g.origin, crate::text::escape(model);
                    hint = "test it on a target without `board` or `qemu-machine` (`--arch arm64`)"
                );
            }
        }
        crate::qemu::tools::check_qemu_models(
            &session.shell,
            &session.home()?,
            &machine.qemu,
            machine.model.as_deref(),
            &d.qemu_models(),
        )?;
        machine
            .extra_args
            .extend(d.qemu_args.iter().map(std::ffi::OsString::from));
    }
    let secure_boot = match (signed, &signing) {
        (Some(signed), Some((key, image))) => {
            if let Some(model) = machine.model.as_deref().filter(|_| !machine.is_virt()) {
                crate::bail_user!(
                    "`--secure-boot` starts qemu's `virt` (arm64) or `pc` (x86_64) in UEFI firmware, and this target boots the board model `{}`", crate::text::escape(model);
                    hint = "use a target without `board` or `qemu-machine` for the Secure Boot test"
                );
            }
            let home = session.home()?;
            let fw = crate::qemu::uefi::secure_boot_firmware(
                &session.shell,
                tree.arch,
                image,
                &key.cert_der()?,
                &home.uefi_vars_dir(),
            )?;
            session.shell.verbose(
                "Enrolling",
                format_args!(
                    "`{}` as a Machine Owner Key; Secure Boot on (UEFI firmware `{}`)",
                    key.cert_path.display(),
                    fw.code.display()
                ),
            );
            machine = machine.with_secure_boot(&fw);
            Some(SecureBootFiles {
                _signed: signed,
                _firmware: fw,
            })
        }
        _ => None,
    };
    Ok(Guest {
        tree,
        modules: load_order(modules)?,
        devices,
        machine,
        secure_boot,
    })
}

/// The key `--secure-boot` signs with and enrolls (`--key`, `--cert`: a Secure Boot kernel is
/// a distribution's, which has no key of the user's), and the tree's image with its
/// signature, once the firmware is known to be there.
fn secure_boot_key(
    session: &Session,
    tree: &KernelTree,
    k: &SecureBootKey,
) -> Result<(
    crate::ship::sign::SigningKey,
    crate::qemu::uefi::SignedImage,
)> {
    let (Some(key), Some(cert)) = (&k.key, &k.cert) else {
        crate::bail_user!(
            "`--secure-boot` needs your own `--key` and `--cert`: the modules are signed with the key and its certificate is enrolled as a Machine Owner Key";
            hint = "make a key pair (`openssl req -new -x509 -newkey rsa:2048 -nodes -keyout mok.key -out mok.pem -subj /CN=me`), then pass `--key mok.key --cert mok.pem`"
        );
    };
    // What the firmware needs, before anything is built.
    let image = crate::qemu::uefi::signed_image(tree.arch, &tree.image())?;
    Ok((
        crate::ship::load_key(&session.shell, tree, Some(key), Some(cert))?,
        image,
    ))
}

/// Sign the modules under test (and the test-device helper) with `key` into a directory of
/// their own; the boot loads the signed copies.
fn sign_for_boot(
    key: &crate::ship::sign::SigningKey,
    modules: &mut [KoModule],
    devices: Option<&mut crate::devices::Prepared>,
) -> Result<tempfile::TempDir> {
    let dir = tempfile::Builder::new()
        .prefix("cargo-kmod-signed-")
        .tempdir()
        .context("cannot create a temporary directory")?;
    let sign = |from: &std::path::Path, name: &str| -> Result<PathBuf> {
        // The decompressed module: a signature covers the ELF, which the kernel checks
        // after it decompresses a `.ko.xz`.
        let bytes = crate::ko::read_module(from)?.bytes;
        let to = dir.path().join(format!("{name}.ko"));
        std::fs::write(&to, key.sign(&bytes)?)
            .with_context(|| format!("cannot write `{}`", to.display()))?;
        Ok(to)
    };
    for m in modules.iter_mut() {
        m.ko = sign(&m.ko, &m.name)?;
    }
    if let Some(d) = devices {
        if !d.helper.ko.as_os_str().is_empty() {
            d.helper.ko = sign(&d.helper.ko, crate::devices::helper::MODULE)?;
        }
        if let Some(ko) = &d.usb_function {
            d.usb_function = Some(sign(ko, crate::devices::helper::USB_FUNCTION.name)?);
        }
    }
    Ok(dir)
}

/// The devices of a boot: each package's own (`declared`, bound by its own drivers) and the
/// `--device` files' (`extra`, bound by any of `modules`), compiled into `out_dir`.
fn guest_devices(
    session: &Session,
    tree: &KernelTree,
    declared: &[(String, &crate::devices::Devices)],
    extra: &[crate::devices::Devices],
    req: &GuestModules,
    modules: &[String],
    out_dir: Option<&std::path::Path>,
) -> Result<Option<crate::devices::Prepared>> {
    let mut sets: Vec<crate::devices::DeviceSet<'_>> = declared
        .iter()
        .map(|(name, devices)| crate::devices::DeviceSet {
            modules: vec![name.clone()],
            devices,
            what: format!("module {name}"),
        })
        .collect();
    sets.extend(
        extra
            .iter()
            .zip(&req.devices)
            .map(|(devices, path)| crate::devices::DeviceSet {
                modules: modules.to_vec(),
                devices,
                what: format!("`{}`", path.display()),
            }),
    );
    let devices = crate::devices::prepare(&session.shell, &session.home()?, tree, &sets, out_dir)?;
    if let Some(d) = &devices {
        for w in &d.warnings {
            session.shell.warn(w);
        }
    }
    Ok(devices)
}

/// What `test` was asked for, besides the guest.
#[derive(Debug, Clone, Default)]
pub struct TestRequest {
    pub guest: GuestModules,
    pub options: crate::guest::verdict::TestOptions,
}

/// A kernel without `CONFIG_KUNIT` (a distribution's) cannot run the modules' KUnit suites:
/// said plainly, and the run checks loading and unloading only (no `N passed` for cases
/// that never ran); with `require` it is an error.
/// So does a kernel before 6.15, whose kernel crate has no `#[kunit_tests]`: kmod-macros'
/// stand-in compiles the suites out there.
fn without_kunit(session: &Session, guest: &mut Guest, require: bool) -> Result<()> {
    let too_old = guest
        .tree
        .version()
        .is_some_and(|v| v < crate::kernel::Version(6, 15, 0));
    let why = if too_old {
        "its kernel crate has no `#[kunit_tests]` (Linux 6.15 added it), so the suites were compiled out"
    } else {
        "it has no `CONFIG_KUNIT`"
    };
    if guest.tree.config.is_enabled("KUNIT") && !too_old {
        return Ok(());
    }
    // Without `CONFIG_KUNIT` the kernel crate's `#[kunit_tests]` compiles to nothing, so the
    // modules' suites cannot even be counted: every module is named.
    let with: Vec<String> = guest
        .modules
        .iter()
        .map(|m| format!("`{}`", m.name))
        .collect();
    if with.is_empty() {
        return Ok(());
    }
    let kernel = format!(
        "the {} {} kernel",
        guest.tree.arch,
        crate::text::escape(&guest.tree.release)
    );
    if require {
        crate::bail_user!(
            "the KUnit cases of {} cannot run on {}: {}", with.join(", "), kernel, why;
            hint = "test on a dev tree (`cargo kmod init`), or drop `--require-kunit` to check loading and unloading only"
        );
    }
    session.shell.warn(format_args!(
        "KUnit cases were not run on {kernel}: {why}; {} were only loaded and unloaded (`--require-kunit` makes this a failure)",
        with.join(", ")
    ));
    for m in &mut guest.modules {
        m.kunit_suites = 0;
    }
    Ok(())
}

/// Prepare the guest, boot it once with the test plan, and judge it; `on_line` gets a
/// readable line for everything the guest shows.
pub fn test(
    session: &Session,
    select: &Selection,
    trees: &TreeSelection,
    req: &TestRequest,
    on_start: impl FnOnce(&Guest),
    on_line: impl FnMut(&str),
) -> Result<(Guest, crate::guest::verdict::TestReport)> {
    let mut guest = prepare(session, select, trees, &req.guest)?;
    let opts = &req.options;
    without_kunit(session, &mut guest, opts.require_kunit)?;
    if opts.leak_scan && !guest.tree.config.is_enabled("DEBUG_KMEMLEAK") {
        crate::bail_user!(
            "`--sanitize` needs kmemleak, and the {} {} kernel has no `CONFIG_DEBUG_KMEMLEAK`",
            guest.tree.arch, crate::text::escape(&guest.tree.release);
            hint = "test on a dev tree (`cargo kmod init`), or build this kernel with `CONFIG_DEBUG_KMEMLEAK=y`"
        );
    }
    if opts.leak_scan && !guest.tree.config.is_enabled("KASAN") {
        session.shell.note(format_args!(
            "the {} {} kernel has no KASAN: out-of-bounds accesses and use-after-free are not reported (`cargo kmod init --arch {} --sanitize` prepares the sanitizer tree that `--sanitize` then boots)",
            guest.tree.arch,
            crate::text::escape(&guest.tree.release),
            guest.tree.arch
        ));
    }
    on_start(&guest);
    let mut plan = crate::guest::GuestPlan::test(&guest.modules, !opts.no_fail_fast);
    if let Some(d) = &guest.devices {
        d.extend_test_plan(&mut plan);
    }
    if opts.leak_scan {
        crate::guest::leaks::extend_test_plan(&mut plan, &guest.modules);
    }
    let mut report = crate::qemu::testrun::run_test_plan(
        &session.shell,
        &guest.machine,
        plan.clone(),
        &guest.modules,
        opts,
        on_line,
    )?;
    if let Some(d) = &guest.devices {
        let (cases, explained, bindings) = d.judge(&report, &plan, &guest.modules);
        report.cases.retain(|c| !explained.contains(&c.name));
        report.cases.extend(cases);
        report.bindings = bindings;
    }
    if opts.leak_scan {
        let leaks = crate::guest::leaks::judge(&report.transcript, &plan, &guest.modules);
        report.cases.extend(leaks);
    }
    Ok((guest, report))
}
