//! What an approval covers, told as an operator's stories on a real lab with
//! the real binary: the config behind the cloud names, jurisdictions derived
//! from the clouds (never from the plan file), and signed, two-person
//! approvals checked with `ssh-keygen`.

use altishift_testkit::cli as support;

use std::path::{Path, PathBuf};
use std::process::Command;
use support::{Lab, text, tree};

fn plan_text(lab: &Lab) -> String {
    std::fs::read_to_string(lab.plan_path()).unwrap()
}

fn hash_of(lab: &Lab) -> String {
    let plan: altishift::plan::Plan = toml::from_str(&plan_text(lab)).unwrap();
    plan.hash().short().to_string()
}

fn approve_with(lab: &Lab, extra: &[&str]) -> std::process::Output {
    let hash = hash_of(lab);
    let plan = lab.plan_path();
    let mut args = vec!["approve", plan.to_str().unwrap(), "--confirm", &hash];
    args.extend_from_slice(extra);
    lab.run(&args)
}

fn config_text(lab: &Lab) -> String {
    std::fs::read_to_string(lab.config()).unwrap()
}

#[test]
fn a_config_edited_after_approval_is_refused_and_nothing_is_written() {
    let lab = Lab::new();
    assert!(lab.plan(&["web-1"], &[]).status.success());
    assert!(lab.approve().status.success());
    // Point the target's name at a copy of its folder.
    let copy = lab.dir.path().join("west-copy");
    let status = Command::new("cp")
        .arg("-a")
        .arg(lab.root().join("lab-west"))
        .arg(&copy)
        .status()
        .unwrap();
    assert!(status.success());
    let edited = config_text(&lab).replacen(
        "path = \"lab-west\"",
        &format!("path = \"{}\"", copy.display()),
        1,
    );
    assert_ne!(
        edited,
        config_text(&lab),
        "the lab config names lab-west's path"
    );
    std::fs::write(lab.config(), edited).unwrap();
    let before = (tree(&copy), tree(&lab.root().join("lab-west")));

    let out = lab.apply(&[]);
    assert!(!out.status.success(), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("[clouds.lab-west] 'path' changed"), "{err}");
    assert!(err.contains("west-copy"), "names the new value: {err}");
    assert_eq!(
        before,
        (tree(&copy), tree(&lab.root().join("lab-west"))),
        "no cloud changed"
    );
    // Approving again does not help: the plan must be made anew.
    let out = lab.approve();
    assert!(!out.status.success(), "{}", text(&out));
}

#[test]
fn a_plan_whose_cross_border_section_was_deleted_cannot_be_approved_or_applied() {
    let lab = Lab::new();
    // lab-east is DE, lab-west is US.
    assert!(lab.plan(&["web-1"], &[]).status.success());
    let original = plan_text(&lab);
    assert!(original.contains("[cross_border]"), "{original}");
    // Delete [cross_border] and claim the target is in DE.
    let mut edited = String::new();
    let mut skipping = false;
    for line in original.lines() {
        if line.starts_with('[') {
            skipping = line == "[cross_border]";
        }
        if skipping {
            continue;
        }
        if line.starts_with("jurisdiction = \"US\"") {
            edited.push_str("jurisdiction = \"DE\"\n");
        } else {
            edited.push_str(line);
            edited.push('\n');
        }
    }
    assert!(!edited.contains("\"US\""), "{edited}");
    std::fs::write(lab.plan_path(), &edited).unwrap();

    let out = approve_with(&lab, &[]);
    assert!(!out.status.success(), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("target jurisdiction is 'DE'"), "{err}");
    assert!(err.contains("'US'"), "{err}");
    assert!(
        !plan_text(&lab).contains("[approval]"),
        "nothing recorded in the plan"
    );

    // A hand-written approval record does not get it through apply either.
    let plan: altishift::plan::Plan = toml::from_str(&edited).unwrap();
    let forged = format!(
        "{edited}\n[approval]\nplan_hash = \"{}\"\noperator = \"x\"\napproved_at = \"now\"\n",
        plan.hash()
    );
    std::fs::write(lab.plan_path(), forged).unwrap();
    let west = tree(&lab.root().join("lab-west"));
    let out = lab.apply(&[]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("jurisdiction"),
        "{}",
        text(&out)
    );
    assert_eq!(west, tree(&lab.root().join("lab-west")));
}

#[test]
fn a_provider_swapped_behind_a_name_is_refused() {
    let lab = Lab::new();
    assert!(lab.plan(&["web-1"], &[]).status.success());
    assert!(lab.approve().status.success());
    let edited = config_text(&lab).replacen(
        "[clouds.lab-west]\nprovider = \"lab\"",
        "[clouds.lab-west]\nprovider = \"lab\"\njurisdiction = \"DE\"",
        1,
    );
    assert_ne!(edited, config_text(&lab), "{}", config_text(&lab));
    std::fs::write(lab.config(), edited).unwrap();
    let out = lab.apply(&[]);
    assert!(!out.status.success(), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("'jurisdiction' changed"), "{err}");
}

#[test]
fn the_plan_shows_the_settings_its_approval_covers() {
    let lab = Lab::new();
    let out = lab.plan(&["web-1"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains("the approval covers these settings"),
        "{shown}"
    );
    let west = std::fs::canonicalize(lab.root().join("lab-west")).unwrap();
    assert!(
        shown.contains(&format!("path={}", west.display())),
        "{shown}"
    );
}

fn keypair(dir: &Path, name: &str) -> PathBuf {
    let key = dir.join(name);
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
        .arg(&key)
        .status()
        .expect("ssh-keygen (openssh-client)");
    assert!(status.success());
    key
}

/// A lab whose config asks for two signed approvals from `alice` and `bob`.
fn four_eyes_lab() -> (Lab, PathBuf, PathBuf, PathBuf) {
    let lab = Lab::new();
    let keys = lab.dir.path().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    let (alice, bob, tester) = (
        keypair(&keys, "alice"),
        keypair(&keys, "bob"),
        keypair(&keys, "tester"),
    );
    let mut signers = String::new();
    for (who, key) in [("alice", &alice), ("bob", &bob), ("tester", &tester)] {
        let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
        signers.push_str(&format!("{who} {public}"));
    }
    std::fs::write(lab.root().join("allowed_signers"), signers).unwrap();
    // A table of its own, after the top-level keys.
    let config = format!(
        "{}\n[approval]\nallowed_signers = \"allowed_signers\"\napprovers = 2\n",
        config_text(&lab)
    );
    std::fs::write(lab.config(), config).unwrap();
    (lab, alice, bob, tester)
}

fn audit(lab: &Lab) -> String {
    std::fs::read_to_string(lab.state().join("audit.jsonl")).unwrap_or_default()
}

#[test]
fn two_person_approval_needs_two_signers_other_than_the_author() {
    let (lab, alice, bob, tester) = four_eyes_lab();
    assert!(lab.plan(&["web-1"], &[]).status.success());
    // Unsigned approval is recorded but apply refuses it.
    assert!(lab.approve().status.success());
    let west = tree(&lab.root().join("lab-west"));
    let out = lab.apply(&[]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("requires 2 signed approval(s)"),
        "{}",
        text(&out)
    );
    // The author (ALTISHIFT_OPERATOR=tester@ci) signing does not count.
    let out = approve_with(
        &lab,
        &["--ack-cross-border", "--sign", tester.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", text(&out));
    let out = approve_with(
        &lab,
        &["--ack-cross-border", "--sign", alice.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", text(&out));
    let out = lab.apply(&[]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("four-eyes"),
        "{}",
        text(&out)
    );
    assert_eq!(west, tree(&lab.root().join("lab-west")), "nothing written");

    // Start over with the two people who did not make the plan.
    assert!(lab.plan(&["web-1"], &[]).status.success());
    for key in [&alice, &bob] {
        let out = approve_with(
            &lab,
            &["--ack-cross-border", "--sign", key.to_str().unwrap()],
        );
        assert!(out.status.success(), "{}", text(&out));
    }
    let out = lab.apply(&[]);
    assert!(out.status.success(), "{}", text(&out));
    let log = audit(&lab);
    let signed: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("approval_signed_by"))
        .collect();
    assert_eq!(signed.len(), 2, "{log}");
    assert!(signed.iter().all(|l| l.contains("SHA256:")), "{log}");
    assert!(signed.iter().any(|l| l.contains("\"alice\"")), "{log}");
}

#[test]
fn a_signature_from_a_key_outside_allowed_signers_is_refused_at_approve() {
    let (lab, ..) = four_eyes_lab();
    let mallory = keypair(lab.dir.path(), "mallory");
    assert!(lab.plan(&["web-1"], &[]).status.success());
    let out = approve_with(
        &lab,
        &["--ack-cross-border", "--sign", mallory.to_str().unwrap()],
    );
    assert!(!out.status.success(), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not in"), "{err}");
    assert!(!plan_text(&lab).contains("SSH SIGNATURE"));
}
