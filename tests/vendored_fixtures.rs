//! A clone of this repository alone must test green: every recorded answer
//! a test reads is vendored under tests/fixtures, with its source and
//! licence in tests/fixtures/README.md. Most are unchanged copies of the
//! project's shared collection (a `shared/fixtures` folder beside the
//! checkout); when that folder is there, each copy must still equal it.

use std::path::{Path, PathBuf};

/// The vendored folders, as named in tests/fixtures/README.md.
const FOLDERS: [&str; 4] = ["cloudstack", "digitalocean", "ec2", "gce"];

/// Files written in this repository: no shared counterpart exists.
const WRITTEN_HERE: [&str; 17] = [
    "cloudstack/fake_deployVirtualMachine_error.json",
    "cloudstack/fake_listVirtualMachines.json",
    "cloudstack/fake_queryAsyncJobResult_snapshot.json",
    "ec2/describe_images_page1.xml",
    "ec2/describe_instances_page1.xml",
    "ec2/describe_instances_page2.xml",
    "ec2/describe_security_groups_page1.xml",
    "ec2/describe_security_groups_page2.xml",
    "ec2/describe_subnets_page1.xml",
    "ec2/describe_subnets_page2.xml",
    "ec2/describe_volumes_page1.xml",
    "ec2/describe_volumes_page2.xml",
    "ec2/describe_vpcs.xml",
    "ec2/get_caller_identity.xml",
    "ec2/ebs_list_snapshot_blocks_page1.json",
    "ec2/ebs_list_snapshot_blocks_page2.json",
    "ec2/README.md",
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

/// Every file under `dir`, as a path relative to `base` with `/` separators.
fn files(base: &Path, dir: &Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files(base, &path, out);
        } else {
            let relative = path.strip_prefix(base).unwrap();
            out.push(relative.to_string_lossy().replace('\\', "/"));
        }
    }
}

fn vendored() -> Vec<String> {
    let base = root().join("tests/fixtures");
    let mut out = Vec::new();
    for folder in FOLDERS {
        files(&base, &base.join(folder), &mut out);
    }
    out.sort();
    out
}

/// The copies: vendored files not written here.
fn copies() -> Vec<String> {
    vendored()
        .into_iter()
        .filter(|name| !WRITTEN_HERE.contains(&name.as_str()))
        .collect()
}

#[test]
fn every_vendored_copy_is_here_and_parses() {
    let base = root().join("tests/fixtures");
    let copies = copies();
    // 14 CloudStack, 27 DigitalOcean, 13 EC2 (5 libcloud + 8 moto), 12 GCE.
    assert_eq!(copies.len(), 66, "vendored copies: {copies:#?}");
    for name in &copies {
        let bytes = std::fs::read(base.join(name)).unwrap();
        if name.ends_with(".json") {
            serde_json::from_slice::<serde_json::Value>(&bytes)
                .unwrap_or_else(|e| panic!("tests/fixtures/{name} is not JSON: {e}"));
        } else {
            let text = String::from_utf8(bytes).unwrap();
            assert!(
                text.trim_start().starts_with('<'),
                "tests/fixtures/{name} is not XML"
            );
        }
    }
    for name in WRITTEN_HERE {
        assert!(
            base.join(name).is_file(),
            "tests/fixtures/{name} is missing"
        );
    }
}

/// Checked only when the shared collection sits beside the checkout; the
/// copies themselves are checked above either way.
#[test]
fn vendored_copies_are_byte_identical_to_the_shared_ones() {
    let shared = root().join("..").join("shared").join("fixtures");
    if !shared.is_dir() {
        eprintln!("{} absent: copies not compared", shared.display());
        return;
    }
    let vendored = root().join("tests/fixtures");
    let mut compared = 0;
    for name in copies() {
        let theirs = std::fs::read(shared.join(&name)).unwrap_or_else(|e| {
            panic!("{name}: no shared counterpart ({e}); list it as written here")
        });
        assert!(
            std::fs::read(vendored.join(&name)).unwrap() == theirs,
            "tests/fixtures/{name} differs from the shared copy"
        );
        compared += 1;
    }
    assert_eq!(compared, 66);
}

/// The README says where each folder comes from and under which licence.
#[test]
fn the_readme_names_each_folder_with_its_source_and_licence() {
    let readme = std::fs::read_to_string(root().join("tests/fixtures/README.md")).unwrap();
    for folder in FOLDERS {
        let row = readme
            .lines()
            .find(|l| l.starts_with(&format!("| `{folder}/` |")))
            .unwrap_or_else(|| panic!("tests/fixtures/README.md has no row for {folder}/"));
        assert!(row.matches('|').count() >= 5, "{row}: source and licence");
    }
    assert!(readme.contains("Apache License, Version 2.0"));
    assert!(readme.contains("6e39117d6f686e2f49b12fc8a24168d13b6e0ada"));
}

/// No test or unit test reads the shared collection: a fresh clone has none.
#[test]
fn no_reader_points_outside_the_repository() {
    let needle = ["..", "shared", "fixtures"].join("/");
    let mut sources = Vec::new();
    for dir in ["src", "tests"] {
        files(&root(), &root().join(dir), &mut sources);
    }
    let readers: Vec<String> = sources
        .iter()
        .filter(|name| name.ends_with(".rs"))
        .flat_map(|name| {
            let text = std::fs::read_to_string(root().join(name)).unwrap();
            text.lines()
                .enumerate()
                .filter(|(_, line)| !line.trim_start().starts_with("//") && line.contains(&needle))
                .map(|(n, line)| format!("{name}:{}: {}", n + 1, line.trim()))
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(
        readers.is_empty(),
        "reads outside the checkout: {readers:#?}"
    );
}
