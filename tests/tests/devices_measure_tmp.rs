mod common;
use cargo_kmod::context::{BuildContext, Selection, Session, TreeSelection};
use cargo_kmod::devices::{self, DeviceSet};
use cargo_kmod::ops::build::BuildOptions;
use cargo_kmod::qemu::guest as qguest;
use cargo_kmod::qemu::modules::KoModule;
use cargo_kmod::qemu::{boot_to_marker, Accel, MarkerBoot};
use cargo_kmod::shell::Shell;
use cargo_kmod::tree::home::Home;
use cargo_kmod::tree::{Arch, KernelTree};
use common::*;
use std::time::Instant;

fn splice(script: &str, steps: &devices::BootSteps) -> String {
    let begin = "echo \"@@kmod:begin $t\"\n";
    let at = script.find(begin).expect("begin line") + begin.len();
    let unload = script.find("&& step unload").expect("an unload line");
    let unload = script[..unload].rfind('\n').expect("a line before") + 1;
    let end = script.rfind("echo @@kmod:end").expect("end line");
    let ts = |n: &str| format!("read up _ </proc/uptime; echo \"T {n} $up\"\n");
    format!(
        "{}{}{}{}{}{}{}{}{}{}{}{}{}{}",
        steps.define,
        &script[..at],
        ts("a"),
        steps.before_loads,
        ts("b"),
        &script[at..unload],
        ts("c"),
        steps.after_loads,
        ts("d"),
        &script[unload..end],
        ts("e"),
        steps.after_unloads,
        ts("f"),
        &script[end..]
    )
}

#[test]
#[ignore]
fn measure() {
    let arch = std::env::var("MARCH").unwrap_or("x86_64".into());
    let shell = Shell::plain();
    let tree = KernelTree::open(&dev_tree(&arch)).unwrap();
    let dir = scratch();
    let pkg = dir.path().join("blinker");
    copy_dir(&root().join("examples/blinker"), &pkg);
    let session = Session::new(Shell::plain());
    let select = Selection {
        manifest_path: Some(pkg.join("Cargo.toml")),
        ..Selection::default()
    };
    let trees = TreeSelection {
        arch: Some(Arch::parse(&arch).unwrap()),
        ..TreeSelection::default()
    };
    let ctx = BuildContext::resolve(&session, &select, &trees).unwrap();
    let a = cargo_kmod::ops::build::build(
        &session,
        &ctx,
        &BuildOptions {
            test: true,
            jobs: 2,
            ..Default::default()
        },
    )
    .unwrap();
    let ko = a[0].ko.clone();
    let m = &ctx.modules[0];
    let module = KoModule::read(&ko, tree.arch).unwrap();
    let guests = qguest::guest_modules(std::slice::from_ref(&module));
    let base = qguest::test_script(&guests, true);
    let home = Home::from_env().unwrap();
    let n: usize = std::env::var("N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let mut plain = vec![];
    let mut with = vec![];
    for _ in 0..n {
        let t = Instant::now();
        let spec = MarkerBoot {
            script: base.clone(),
            files: vec![(guests[0].guest_path.clone(), ko.clone())],
            cmdline: vec!["quiet".into()],
            timeout: None,
            accel: Some(Accel::Tcg),
        };
        boot_to_marker(&shell, &tree, &spec, "@@kmod:end").unwrap();
        plain.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        let sets = [DeviceSet {
            modules: vec![m.name.clone()],
            devices: &m.devices,
            what: "x".into(),
        }];
        let p = devices::prepare(&shell, &home, &tree, &sets, &dir.path().join("dev"))
            .unwrap()
            .unwrap();
        let mut files = p.files();
        files.push((guests[0].guest_path.clone(), ko.clone()));
        let spec = MarkerBoot {
            script: splice(&base, &p.boot_steps("@@kmod:")),
            files,
            cmdline: vec!["quiet".into()],
            timeout: None,
            accel: Some(Accel::Tcg),
        };
        let log = boot_to_marker(&shell, &tree, &spec, "@@kmod:end").unwrap();
        assert!(log.lines.iter().any(
            |l| l.contains("@@kmod:device loaded /blinker platform 1 blinker blinker blinker")
        ));
        eprintln!(
            "{}",
            log.lines
                .iter()
                .filter(|l| l.starts_with("T "))
                .cloned()
                .collect::<Vec<_>>()
                .join(" | ")
        );
        with.push(t.elapsed().as_secs_f64());
    }
    plain.sort_by(f64::total_cmp);
    with.sort_by(f64::total_cmp);
    eprintln!(
        "{arch}: plain {:?}\n{arch}: with  {:?}\nmedian plain {:.3} with {:.3} ratio {:.3}",
        plain,
        with,
        plain[n / 2],
        with[n / 2],
        with[n / 2] / plain[n / 2]
    );
}
