//! Safe text: an instance name with terminal control sequences (from a lab
//! manifest, as it could come from an EC2 Name tag) is shown escaped wherever
//! it reaches the operator: inventory, plan show, approve, apply, the report.

use altishift_testkit::cli as support;

use support::{Lab, text};

/// Screen-clearing, retitling and bell: what a hostile name would send.
const HOSTILE: &str = "mon\u{1b}[2J\u{1b}]0;x\u{7}itor";
/// The same name as the operator is shown it.
const SHOWN: &str = "mon\\x1b[2J\\x1b]0;x\\x07itor";

/// No raw ESC or BEL in what the operator sees.
fn assert_clean(what: &str, bytes: &[u8]) {
    assert!(
        !bytes.contains(&0x1b) && !bytes.contains(&0x07),
        "{what} carries raw control bytes:\n{}",
        String::from_utf8_lossy(bytes)
    );
}

fn run_folder(lab: &Lab) -> std::path::PathBuf {
    std::fs::read_dir(lab.state().join("runs"))
        .unwrap()
        .flatten()
        .next()
        .expect("a run folder")
        .path()
}

#[test]
fn a_name_with_control_sequences_is_shown_escaped_from_inventory_to_report() {
    let lab = Lab::new();
    lab.rename("monitor.toml", HOSTILE);

    let out = lab.run(&["inventory", "lab-east"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_clean("inventory", &out.stdout);
    assert!(String::from_utf8_lossy(&out.stdout).contains(SHOWN));

    let out = lab.plan(&[HOSTILE], &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert_clean("plan", &out.stdout);
    let plan = lab.plan_path();
    let out = lab.run(&["plan", "show", plan.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert_clean("plan show", &out.stdout);
    let shown = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(shown.contains(SHOWN), "{shown}");
    // The lines the name could have erased are still there to read.
    assert!(shown.contains("CROSS-BORDER"), "{shown}");

    let out = lab.approve();
    assert!(out.status.success(), "{}", text(&out));
    assert_clean("approve", &out.stdout);

    let out = lab.apply(&[]);
    assert!(out.status.success(), "{}", text(&out));
    assert_clean("apply", &out.stdout);
    assert_clean("apply (stderr)", &out.stderr);
    assert!(String::from_utf8_lossy(&out.stdout).contains(SHOWN));

    let run = run_folder(&lab);
    let out = lab.run(&["report", run.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert_clean("report", &out.stdout);
    let markdown = std::fs::read(run.join("report.md")).unwrap();
    assert_clean("report.md", &markdown);
    assert!(String::from_utf8_lossy(&markdown).contains(SHOWN));

    // The migrated instance keeps its name, shown the same way.
    let out = lab.run(&["inventory", "lab-west"]);
    assert_clean("target inventory", &out.stdout);
    assert!(String::from_utf8_lossy(&out.stdout).contains(SHOWN));
}
