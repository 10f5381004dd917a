//! The `.ko` files a boot loads: what they say about themselves (name, `depends`, KUnit
//! suites), read through [`crate::ko`], and the order that loads dependencies first.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::kernel::Arch;

/// A module to boot with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KoModule {
    /// `name=` from `.modinfo` (what `rmmod` takes).
    pub name: String,
    pub ko: PathBuf,
    /// `depends=` from `.modinfo`.
    pub depends: Vec<String>,
    /// `name=value` parameters for `insmod`.
    pub params: Vec<String>,
    /// How many KUnit suites the module registers (`.kunit_test_suites`): its load must
    /// print a complete KTAP report for that many.
    pub kunit_suites: usize,
    /// The parameters the module takes, when its `.modinfo` names all of them
    /// ([`crate::ko::Module::param_names`]): `--param` names are checked against them.
    pub known_params: Option<Vec<String>>,
    /// Its sections and functions, to name an address inside it (a leak's allocation site).
    pub code: crate::ko::CodeMap,
    /// `alias=` from `.modinfo`: a module with any has device tables (a driver).
    pub aliases: Vec<String>,
}

impl KoModule {
    /// Read a `.ko` (through the one reader, [`crate::ko::read`]), checking that it is a
    /// kernel module for `arch`.
    pub fn read(ko: &Path, arch: Arch) -> Result<KoModule> {
        let module = crate::ko::read_module(ko)?.module;
        // The name becomes `insmod`'s and `rmmod`'s argument and is printed in every status
        // line and case name: a `.modinfo` that says anything else is refused, as deploy
        // refuses it.
        if !crate::kernel::is_valid_module_name(&module.name) {
            crate::bail_user!(
                "`{}` names itself `{}` in `.modinfo`, which is not a module name (`[A-Za-z0-9_]`)",
                ko.display(),
                crate::text::escape(&module.name)
            );
        }
        if module.machine != arch.elf_machine() {
            crate::bail_user!(
                "`{}` is not a module for {}: its ELF machine is {}", ko.display(), arch,
                crate::ko::machine_name(module.machine);
                hint = "build it for {} (`--arch {}`)", arch, arch
            );
        }
        Ok(KoModule {
            depends: module.depends(),
            aliases: module.aliases(),
            kunit_suites: module.kunit_suites,
            known_params: known_params(&module),
            code: module.code,
            name: module.name,
            ko: ko.to_path_buf(),
            params: Vec::new(),
        })
    }
}

/// The load-time dependencies of `modules` that none of them provide, from a distribution's
/// modules directory (`.../lib/modules/<release>`), as `modprobe` finds them: each module's
/// `depends=`, recursively, by module name (`-` and `_` alike) among the `.ko`, `.ko.xz`,
/// `.ko.zst` and `.ko.gz` files under `kernel/`. Each is decompressed into `out` and read like
/// the modules under test (so [`load_order`] puts it first). A dependency the directory
/// lacks is an error naming it.
pub fn distro_dependencies(
    modules: &[KoModule],
    modules_dir: &Path,
    out: &Path,
    arch: Arch,
) -> Result<Vec<KoModule>> {
    let mut have: BTreeSet<String> = modules.iter().map(|m| m.name.replace('-', "_")).collect();
    let mut wanted: Vec<(String, String)> = modules
        .iter()
        .flat_map(|m| {
            m.depends
                .iter()
                .map(move |d| (d.replace('-', "_"), m.name.clone()))
        })
        .collect();
    if wanted.iter().all(|(d, _)| have.contains(d)) {
        return Ok(Vec::new());
    }
    let mut index: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut stack = vec![modules_dir.join("kernel")];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let p = e.path();
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                stack.push(p);
            } else if let Some(stem) = ["ko", "ko.xz", "ko.zst", "ko.gz"]
                .iter()
                .find_map(|ext| p.file_name()?.to_str()?.strip_suffix(&format!(".{ext}")))
            {
                index.entry(stem.replace('-', "_")).or_insert(p);
            }
        }
    }
    std::fs::create_dir_all(out)?;
    let mut found = Vec::new();
    while let Some((dep, by)) = wanted.pop() {
        if !have.insert(dep.clone()) {
            continue;
        }
        let Some(file) = index.get(&dep) else {
            crate::bail_user!(
                "`{}` needs module `{}`, which `{}` does not have",
                by,
                dep,
                modules_dir.display()
            );
        };
        let ko = crate::ko::read_module(file)?;
        let path = out.join(format!("{dep}.ko"));
        crate::fsutil::write_atomic(&path, &ko.bytes)?;
        let m = KoModule::read(&path, arch)?;
        wanted.extend(
            m.depends
                .iter()
                .map(|d| (d.replace('-', "_"), m.name.clone())),
        );
        found.push(m);
    }
    Ok(found)
}

/// The parameters of `module` as [`KoModule::known_params`] holds them.
pub fn known_params(module: &crate::ko::Module) -> Option<Vec<String>> {
    module
        .param_names()
        .map(|v| v.into_iter().map(str::to_string).collect())
}

/// Parameters the kernel takes for every module (`kernel/module/main.c`,
/// `unknown_module_param_cb`): `async_probe`, and `dyndbg` (which a kernel without
/// `CONFIG_DYNAMIC_DEBUG` accepts with a warning of its own).
const EVERY_MODULE_TAKES: [&str; 2] = ["async_probe", "dyndbg"];

/// Refuse `name` (`--param` as `p`) when `m` names all its parameters and this is none of
/// them, as the kernel compares them (`-` and `_` are the same, `parameq`). The kernel would
/// only warn that it ignored it, and the run would go on without it.
fn check_param(m: &KoModule, name: &str, p: &str) -> Result<()> {
    let Some(known) = &m.known_params else {
        return Ok(());
    };
    let same = |a: &str, b: &str| a.replace('-', "_") == b.replace('-', "_");
    if known
        .iter()
        .map(String::as_str)
        .chain(EVERY_MODULE_TAKES)
        .any(|k| same(k, name))
    {
        return Ok(());
    }
    let listed: Vec<String> = known.iter().map(|k| format!("`{k}`")).collect();
    let e = crate::error::UserError::new(format!(
        "module `{}` has no parameter `{}` (`--param {}`)",
        m.name,
        crate::text::escape(name),
        crate::text::escape(p)
    ));
    let e = match crate::text::nearest(name, known.iter().map(String::as_str), 0.7) {
        Some(n) => e.with_hint(format!(
            "did you mean `{n}`? its parameters: {}",
            listed.join(", ")
        )),
        None if known.is_empty() => e.with_hint("it takes no parameters"),
        None => e.with_hint(format!("its parameters: {}", listed.join(", "))),
    };
    Err(e.into())
}

/// `--param name=value` goes to the only module, `--param module.name=value` to `module`.
/// A name the module does not take is refused before anything boots.
pub fn apply_params(modules: &mut [KoModule], params: &[String]) -> Result<()> {
    for p in params {
        let Some((key, value)) = p.split_once('=') else {
            crate::bail_user!("module parameter `{}` is not `name=value`", p);
        };
        if let Some((module, name)) = key.split_once('.') {
            if let Some(m) = modules.iter_mut().find(|m| m.name == module) {
                check_param(m, name, p)?;
                m.params.push(format!("{name}={value}"));
                continue;
            }
        }
        match modules {
            [only] => {
                check_param(only, key, p)?;
                only.params.push(p.clone())
            }
            _ => crate::bail_user!(
                "module parameter `{}` does not say which module it is for", p;
                hint = "write `--param MODULE.{}` with one of: {}", p,
                    modules.iter().map(|m| format!("`{}`", m.name)).collect::<Vec<_>>().join(", ")
            ),
        }
    }
    Ok(())
}

/// Order modules so every module comes after the modules it depends on (stable otherwise).
/// Dependencies outside the set are left to the kernel (they must already be loaded or
/// built in); a cycle is an error.
pub fn load_order(modules: Vec<KoModule>) -> Result<Vec<KoModule>> {
    // `depends=` names a module as modpost does, after its file (`crc-itu-t`); the kernel
    // and `.modinfo`'s `name=` use `_` (`crc_itu_t`): the same module.
    let key = |n: &str| n.replace('-', "_");
    let names: BTreeSet<String> = modules.iter().map(|m| key(&m.name)).collect();
    let mut seen = BTreeSet::new();
    for m in &modules {
        if !seen.insert(m.name.clone()) {
            crate::bail_user!("module `{}` is given twice", m.name);
        }
    }
    let mut pending: BTreeMap<usize, KoModule> = modules.into_iter().enumerate().collect();
    let mut done: BTreeSet<String> = BTreeSet::new();
    let mut out = Vec::new();
    while !pending.is_empty() {
        let ready = pending
            .iter()
            .find(|(_, m)| {
                m.depends
                    .iter()
                    .all(|d| done.contains(&key(d)) || !names.contains(&key(d)))
            })
            .map(|(i, _)| *i);
        match ready {
            Some(i) => {
                let m = pending.remove(&i).expect("present");
                done.insert(key(&m.name));
                out.push(m);
            }
            None => {
                let cycle: Vec<_> = pending.values().map(|m| format!("`{}`", m.name)).collect();
                crate::bail_user!(
                    "modules depend on each other in a cycle: {}",
                    cycle.join(", ")
                );
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(name: &str, deps: &[&str]) -> KoModule {
        KoModule {
            name: name.into(),
            ko: format!("/{name}.ko").into(),
            depends: deps.iter().map(|s| s.to_string()).collect(),
            params: vec![],
            kunit_suites: 0,
            known_params: None,
            aliases: vec![],
            code: Default::default(),
        }
    }

    #[test]
    fn dependencies_first() {
        let order = load_order(vec![
            m("user", &["provider"]),
            m("solo", &[]),
            m("provider", &["ext"]),
        ])
        .unwrap();
        let names: Vec<_> = order.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["solo", "provider", "user"]);
    }

    #[test]
    fn params_find_their_module() {
        let mut one = vec![m("a", &[])];
        apply_params(&mut one, &["count=3".into()]).unwrap();
        assert_eq!(one[0].params, ["count=3"]);
        let mut two = vec![m("a", &[]), m("b", &[])];
        apply_params(&mut two, &["b.count=3".into()]).unwrap();
        assert_eq!(two[1].params, ["count=3"]);
        let e = apply_params(&mut two, &["count=3".into()]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "module parameter `count=3` does not say which module it is for"
        );
        let e = apply_params(&mut two, &["count".into()]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "module parameter `count` is not `name=value`"
        );
    }

    /// Issue 18 §6: a parameter the module does not take is refused before the boot (the
    /// kernel only warns that it ignored it), also for a module without parameters;
    /// `-`/`_` are one, and `async_probe`/`dyndbg` are every module's.
    #[test]
    fn params_the_module_does_not_take_are_refused() {
        let with = |known: &[&str]| KoModule {
            known_params: Some(known.iter().map(|s| s.to_string()).collect()),
            aliases: vec![],
            ..m("hello", &[])
        };
        let mut one = vec![with(&["greeting_count"])];
        apply_params(
            &mut one,
            &["greeting-count=2".into(), "async_probe=1".into()],
        )
        .unwrap();
        let e = apply_params(&mut one, &["nosuch=1".into()]).unwrap_err();
        let (msg, hint, _) = crate::error::render(&e);
        assert_eq!(
            msg,
            "module `hello` has no parameter `nosuch` (`--param nosuch=1`)"
        );
        assert_eq!(hint.as_deref(), Some("its parameters: `greeting_count`"));
        let e = apply_params(&mut one, &["hello.greeting_cnt=1".into()]).unwrap_err();
        let (_, hint, _) = crate::error::render(&e);
        assert_eq!(
            hint.as_deref(),
            Some("did you mean `greeting_count`? its parameters: `greeting_count`")
        );
        let mut none = vec![with(&[])];
        let e = apply_params(&mut none, &["nosuch=1".into()]).unwrap_err();
        let (_, hint, _) = crate::error::render(&e);
        assert_eq!(hint.as_deref(), Some("it takes no parameters"));
        // Names `.modinfo` does not list all of: the kernel decides.
        let mut unknown = vec![m("c_mod", &[])];
        apply_params(&mut unknown, &["nosuch=1".into()]).unwrap();
        // The fuzz corpus's hello: one `__param` entry, named in `.modinfo`.
        let ko =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/ko/x86_64-hello-signed.ko");
        let hello = KoModule::read(&ko, Arch::X86_64).unwrap();
        assert_eq!(hello.known_params, Some(vec!["greeting_count".to_string()]));
    }

    #[test]
    fn cycles_and_duplicates_are_errors() {
        let e = load_order(vec![m("a", &["b"]), m("b", &["a"])]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "modules depend on each other in a cycle: `a`, `b`"
        );
        let e = load_order(vec![m("a", &[]), m("a", &[])]).unwrap_err();
        assert_eq!(e.to_string(), "module `a` is given twice");
    }

    #[test]
    fn not_a_module() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.ko");
        std::fs::write(&p, "hello").unwrap();
        let e = KoModule::read(&p, Arch::X86_64).unwrap_err();
        assert!(
            e.to_string()
                .ends_with("x.ko` is not a kernel module: it is not an ELF file"),
            "{e}"
        );
        // An ELF program (the test binary itself).
        let exe = std::env::current_exe().unwrap();
        let e = KoModule::read(&exe, Arch::host()).unwrap_err();
        assert!(
            e.to_string()
                .contains("is not a kernel module: it is not a relocatable object"),
            "{e}"
        );
        // A module from the fuzz corpus, for the other arch and for its own.
        let ko =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/ko/x86_64-hello-signed.ko");
        let e = KoModule::read(&ko, Arch::Arm64).unwrap_err();
        assert!(
            e.to_string()
                .ends_with("is not a module for arm64: its ELF machine is x86_64"),
            "{e}"
        );
        let m = KoModule::read(&ko, Arch::X86_64).unwrap();
        assert_eq!((m.name.as_str(), m.kunit_suites), ("hello", 0));
    }
}
