//! Names are data, not paths: an instance name from a lab manifest never
//! builds a path outside the target's folder, and two plan items that would
//! become the same target are refused at plan time.

use altishift_testkit::cli as support;

use std::path::Path;
use support::{Lab, text, tree};

#[test]
fn names_that_look_like_paths_stay_inside_the_target_lab() {
    let lab = Lab::new();
    lab.rename("monitor.toml", "../../../escaped/x");
    lab.rename("web-1.toml", "a/b");
    let outside = lab.dir.path().join("escaped");
    let before = tree(lab.dir.path());

    let out = lab.plan(&["../../../escaped/x", "a/b"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(lab.approve().status.success());
    let out = lab.apply(&[]);
    assert!(out.status.success(), "{}", text(&out));

    assert!(!outside.exists(), "a file was written outside the lab");
    assert!(!lab.root().join("escaped").exists());
    let west = lab.root().join("lab-west");
    let after = tree(lab.dir.path());
    for path in after.keys().filter(|p| !before.contains_key(*p)) {
        let inside = path.starts_with("lab/lab-west")
            || path.starts_with("lab/lab-east")
            || path.starts_with("lab/state")
            || path == Path::new("plan.toml");
        assert!(
            inside,
            "new file {} outside the labs and state",
            path.display()
        );
    }
    let instances: Vec<String> = std::fs::read_dir(west.join("instances"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(
        instances.contains(&"a%2Fb.toml".to_string()),
        "{instances:?}"
    );
    assert!(
        instances.contains(&"..%2F..%2F..%2Fescaped%2Fx.toml".to_string()),
        "{instances:?}"
    );
    let inventory = lab.run(&["inventory", "lab-west"]);
    assert!(
        String::from_utf8_lossy(&inventory.stdout).contains("a/b"),
        "{}",
        text(&inventory)
    );
    assert!(Path::new(&west.join("disks")).is_dir());
}

#[test]
fn two_instances_that_would_become_one_target_are_refused_at_plan_time() {
    let lab = Lab::new();
    // Two source instances with one name (EC2 Name tags need not be unique).
    lab.rename("web-2.toml", "web-1");
    let ids: Vec<String> = ["web-1.toml", "web-2.toml"]
        .iter()
        .map(|f| {
            let text =
                std::fs::read_to_string(lab.root().join("lab-east/instances").join(f)).unwrap();
            let manifest: toml::Value = toml::from_str(&text).unwrap();
            manifest["id"].as_str().unwrap().to_string()
        })
        .collect();
    let out = lab.plan(&[&ids[0], &ids[1]], &[]);
    let shown = text(&out);
    assert!(!out.status.success(), "{shown}");
    assert!(
        shown.contains("would both be created as 'web-1'")
            && shown.contains(&ids[0])
            && shown.contains(&ids[1]),
        "{shown}"
    );
    assert!(!lab.plan_path().exists(), "no plan is written");
}
