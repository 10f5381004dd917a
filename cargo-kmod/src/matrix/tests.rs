use std::collections::BTreeMap;
use std::path::Path;

use super::*;
use crate::manifest::{MatrixSpec, TargetSpec};

fn targets(names: &[(&str, Option<Arch>)]) -> BTreeMap<String, TargetSpec> {
    names
        .iter()
        .map(|(n, a)| {
            (
                n.to_string(),
                TargetSpec {
                    name: n.to_string(),
                    arch: *a,
                    ..TargetSpec::default()
                },
            )
        })
        .collect()
}

fn spec(kernels: &[&str]) -> MatrixSpec {
    MatrixSpec {
        kernels: kernels.iter().map(|s| s.to_string()).collect(),
        arches: vec![Arch::X86_64, Arch::Arm64],
        exclude: vec![],
        targets: None,
        file: "/ws/Cargo.toml".into(),
    }
}

fn names(cells: &[Cell]) -> Vec<&str> {
    cells.iter().map(|c| c.name.as_str()).collect()
}

fn err(e: anyhow::Error) -> (String, String) {
    let (m, h, _) = crate::error::render(&e);
    (m, h.unwrap_or_default())
}

/// Dev cells are kernels x arches without the excluded, then every target.
#[test]
fn cells_are_dev_trees_then_targets() {
    let t = targets(&[("rpi4", Some(Arch::Arm64)), ("pi", None)]);
    let mut m = spec(&["7.2", "6.12"]);
    m.exclude = vec!["6.12-arm64".into()];
    let c = cells(&t, Some(&m), Path::new("/ws/Cargo.toml")).unwrap();
    assert_eq!(
        names(&c),
        ["7.2-x86_64", "7.2-arm64", "6.12-x86_64", "pi", "rpi4"]
    );
    assert_eq!(c[4].arch(), Some(Arch::Arm64));
    assert_eq!(
        c[2].init_args(None),
        [
            "init",
            "--source",
            "/usr/src/linux-source-6.12.tar.xz",
            "--arch",
            "x86_64"
        ]
    );
    assert_eq!(c[4].init_args(None), ["init", "--target", "rpi4"]);
    // Without a matrix table: the targets alone.
    let c = cells(&t, None, Path::new("/ws/Cargo.toml")).unwrap();
    assert_eq!(names(&c), ["pi", "rpi4"]);
    // `targets` picks among them.
    m.targets = Some(vec!["rpi4".into()]);
    let c = cells(&t, Some(&m), Path::new("/ws/Cargo.toml")).unwrap();
    assert_eq!(
        names(&c),
        ["7.2-x86_64", "7.2-arm64", "6.12-x86_64", "rpi4"]
    );
}

/// Misspelled names, clashes, hostile target names and an empty matrix are one-line errors.
#[test]
fn bad_matrices_are_refused_by_name() {
    let t = targets(&[("rpi4", Some(Arch::Arm64))]);
    let mut m = spec(&["7.2"]);
    m.exclude = vec!["7.2-arm46".into()];
    let (msg, hint) = err(cells(&t, Some(&m), Path::new("/ws/Cargo.toml")).unwrap_err());
    assert!(
        msg.contains("`exclude`") && msg.contains("7.2-arm46"),
        "{msg}"
    );
    assert_eq!(hint, "did you mean `7.2-arm64`?");
    let mut m = spec(&[]);
    m.targets = Some(vec!["rpi5".into()]);
    let (msg, hint) = err(cells(&t, Some(&m), Path::new("/ws/Cargo.toml")).unwrap_err());
    assert!(msg.contains("names `rpi5`"), "{msg}");
    assert_eq!(hint, "did you mean `rpi4`?");
    let t2 = targets(&[("7.2-x86_64", None)]);
    let (msg, _) = err(cells(&t2, Some(&spec(&["7.2"])), Path::new("/ws/Cargo.toml")).unwrap_err());
    assert!(msg.contains("has the name of the dev-tree cell"), "{msg}");
    let t3 = targets(&[("a b\n$(x)", None)]);
    let (msg, _) = err(cells(&t3, None, Path::new("/ws/Cargo.toml")).unwrap_err());
    assert!(
        msg.contains("cannot be a matrix cell") && !msg.contains('\n'),
        "{msg}"
    );
    let (msg, hint) = err(cells(&BTreeMap::new(), None, Path::new("/ws/Cargo.toml")).unwrap_err());
    assert!(msg.contains("has no matrix cells"), "{msg}");
    assert!(hint.contains("docs/matrix.md"));
    let all = cells(&t, Some(&spec(&["7.2"])), Path::new("/ws/Cargo.toml")).unwrap();
    let (msg, hint) = err(select(all.clone(), &["rpi44".into()]).unwrap_err());
    assert!(msg.contains("`--targets` names `rpi44`"), "{msg}");
    assert_eq!(hint, "did you mean `rpi4`?");
    assert_eq!(
        names(&select(all, &["rpi4,7.2-x86_64".into()]).unwrap()),
        ["7.2-x86_64", "rpi4"]
    );
}

#[test]
fn dev_cells_match_releases_by_version() {
    assert!(release_matches("6.12", "6.12.118"));
    assert!(release_matches("7.2", "7.2.13-v8"));
    assert!(!release_matches("7.2", "7.20.1"));
    assert!(!release_matches("6.1", "6.12.118"));
    assert!(release_matches("6.12.118", "6.12.118"));
    assert!(!release_matches("6.12.117", "6.12.118"));
}

#[test]
fn the_summary_is_an_aligned_table() {
    let rows = [
        Row {
            cell: "7.2-x86_64".into(),
            kernel: "7.2.13".into(),
            arch: "x86_64".into(),
            machine: "q35, tcg".into(),
            outcome: Outcome::Passed,
            seconds: 21.04,
        },
        Row {
            cell: "rpi4".into(),
            kernel: String::new(),
            arch: "arm64".into(),
            machine: String::new(),
            outcome: Outcome::NotRun,
            seconds: 0.0,
        },
    ];
    insta::assert_snapshot!(table(&rows, false));
}

/// A generated workflow's text: every manifest value quoted, so a cell cannot add YAML.
#[test]
fn github_and_gitlab_files_quote_what_the_manifest_says() {
    let jobs = vec![
        ci::Job {
            cell: "6.12-x86_64".into(),
            arch: "x86_64".into(),
            init: vec![
                "init".into(),
                "--source".into(),
                "/usr/src/linux-source-6.12.tar.xz".into(),
                "--arch".into(),
                "x86_64".into(),
            ],
        },
        ci::Job {
            cell: "rpi4".into(),
            arch: "arm64".into(),
            init: vec!["init".into(), "--target".into(), "rpi4".into()],
        },
    ];
    let opts = ci::Options {
        workdir: "examples".into(),
        ..ci::Options::default()
    };
    let gh = ci::github(&jobs, &opts);
    assert_eq!(gh.len(), 1);
    assert_eq!(gh[0].path, Path::new(".github/workflows/kmod-matrix.yml"));
    insta::assert_snapshot!("github", gh[0].text);
    let gl = ci::gitlab(&jobs, &opts);
    insta::assert_snapshot!("gitlab", gl.text);
    // 300 cells: two workflows for GitHub (256 each at most), two jobs for GitLab (200).
    let many: Vec<ci::Job> = (0..300)
        .map(|i| ci::Job {
            cell: format!("c{i}"),
            ..jobs[1].clone()
        })
        .collect();
    let gh = ci::github(&many, &opts);
    assert_eq!(gh.len(), 2);
    assert_eq!(gh[1].path, Path::new(".github/workflows/kmod-matrix-2.yml"));
    assert_eq!(gh[0].text.matches("- cell: ").count(), 256);
    assert_eq!(gh[1].text.matches("- cell: ").count(), 44);
    let gl = ci::gitlab(&many, &opts);
    assert_eq!(gl.text.matches("- CELL: ").count(), 300);
    assert!(gl.text.contains("kmod-cell-1:") && gl.text.contains("kmod-cell-2:"));
}

#[test]
fn kmm_resources_map_each_kernel_to_its_image() {
    let opts = kmm::Options {
        image: "registry.example/acme/hello".into(),
        namespace: Some("kmods".into()),
        sign: Some(("hello-key".into(), "hello-cert".into())),
    };
    insta::assert_snapshot!(
        "kmm_module",
        kmm::module_resource(
            "pair_provider",
            Arch::Arm64,
            &["7.2.13".into(), "7.2.13+deb14-arm64".into()],
            &opts
        )
    );
    let image = kmm::Image {
        release: "7.2.13".into(),
        arch: Arch::Arm64,
        modules: vec!["hello".into()],
    };
    insta::assert_snapshot!("kmm_containerfile", kmm::containerfile(&image, &opts));
    assert_eq!(
        kmm::resource_name("Pair_Provider", Arch::X86_64),
        "pair-provider-amd64"
    );
    assert_eq!(kmm::resource_name(&"x".repeat(80), Arch::X86_64).len(), 63);
}
