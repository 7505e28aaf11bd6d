//! Journals a crash, a full disk or a hand edit left behind. `apply`
//! (resume) and `cleanup` must refuse a damaged journal with its path and
//! line, exit non-zero and change no cloud; a torn last line — what a kill
//! or ENOSPC leaves — must not block either of them.

use crate::cli::{self, Lab};
use crate::refused;
use std::path::PathBuf;

fn started(hash: &str) -> String {
    format!(r#"{{"rec":"run_started","plan_hash":"{hash}","operator":"o","at":"t","boot_id":"b"}}"#)
}

const DIGEST: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// (what is in the journal after a good first line, pieces of the error
/// besides the journal's path). `{D}` is a valid block digest.
const TABLE: &[(&str, &str, &[&str])] = &[
    (
        "a block digest of 5 characters",
        r#"{"rec":"block","disk":"web-2/root","i":1,"d":"abcde"}"#,
        &[":2:", "64 hex digits"],
    ),
    (
        "a block digest of 63 characters",
        r#"{"rec":"block","disk":"web-2/root","i":1,"d":"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde"}"#,
        &[":2:", "64 hex digits"],
    ),
    (
        "a block digest that is not hex",
        r#"{"rec":"block","disk":"web-2/root","i":1,"d":"zz23456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}"#,
        &[":2:", "64 hex digits"],
    ),
    (
        "a block digest of 64 non-ASCII bytes",
        r#"{"rec":"block","disk":"web-2/root","i":1,"d":"éééééééééééééééééééééééééééééééé"}"#,
        &[":2:", "64 hex digits"],
    ),
    (
        "a block digest that is a number",
        r#"{"rec":"block","disk":"web-2/root","i":1,"d":5}"#,
        &[":2:"],
    ),
    (
        "a short whole-disk digest",
        r#"{"rec":"disk_written","disk":"web-2/root","written":{"id":"x","format":"raw","virtual_size":1},"digest":{"linear_sha256":"abcde","blocks":1}}"#,
        &[":2:", "linear_sha256"],
    ),
    (
        "an unknown record kind",
        r#"{"rec":"format_disk","disk":"web-2/root"}"#,
        &[":2:", "format_disk"],
    ),
    (
        "a record without a kind",
        r#"{"disk":"web-2/root","i":1}"#,
        &[":2:", "rec"],
    ),
    (
        "a block index beyond any disk",
        r#"{"rec":"block","disk":"web-2/root","i":18446744073709551615,"d":"{D}"}"#,
        &[":2:", "beyond any disk"],
    ),
    (
        "a zero-block index beyond any disk",
        r#"{"rec":"zero","disk":"web-2/root","i":36028797018963968}"#,
        &[":2:", "beyond any disk"],
    ),
    (
        "a negative block index",
        r#"{"rec":"block","disk":"web-2/root","i":-1,"d":"{D}"}"#,
        &[":2:"],
    ),
    (
        "a block index beyond 64 bits",
        r#"{"rec":"block","disk":"web-2/root","i":18446744073709551616,"d":"{D}"}"#,
        &[":2:"],
    ),
    (
        "a negative pass",
        r#"{"rec":"zero","disk":"web-2/root","i":1,"p":-1}"#,
        &[":2:"],
    ),
    ("a line that is not JSON", "hello journal", &[":2:"]),
    ("a JSON list", "[1,2,3]", &[":2:"]),
    ("JSON nested 10000 deep", "", &[":2:"]),
    (
        "a NUL byte in a name",
        "{\"rec\":\"thawed\",\"instance\":\"a\0b\"}",
        &[":2:"],
    ),
    ("a run of another plan", "", &["belongs to"]),
];

pub const CASES: usize = TABLE.len() + 4;

struct Approved {
    lab: Lab,
    hash: String,
}

fn approved() -> Approved {
    let lab = Lab::new();
    let out = lab.plan(&["web-2"], &[]);
    assert!(out.status.success(), "{}", cli::text(&out));
    let out = lab.approve();
    assert!(out.status.success(), "{}", cli::text(&out));
    let text = std::fs::read_to_string(lab.plan_path()).unwrap();
    let plan: altishift::plan::Plan = toml::from_str(&text).unwrap();
    Approved {
        hash: plan.hash().0,
        lab,
    }
}

impl Approved {
    fn journal(&self) -> PathBuf {
        self.lab
            .state()
            .join("runs")
            .join(format!("run-{}", &self.hash[..12]))
            .join("journal.jsonl")
    }

    fn run(&self, verb: &str) -> std::process::Output {
        self.lab
            .run(&[verb, self.lab.plan_path().to_str().unwrap()])
    }
}

fn second_line(name: &str, line: &str) -> String {
    match name {
        "JSON nested 10000 deep" => format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)),
        "a run of another plan" => started(&"ab".repeat(32)),
        _ => line.replace("{D}", DIGEST),
    }
}

#[test]
fn a_damaged_journal_stops_apply_and_cleanup_with_its_line() {
    let approved = approved();
    let journal = approved.journal();
    std::fs::create_dir_all(journal.parent().unwrap()).unwrap();
    let before = cli::tree(&approved.lab.root().join("lab-west"));
    let east = cli::tree(&approved.lab.root().join("lab-east"));
    for (name, line, wanted) in TABLE {
        let body = format!("{}\n{}\n", started(&approved.hash), second_line(name, line));
        std::fs::write(&journal, &body).unwrap();
        for verb in ["apply", "cleanup"] {
            eprintln!("case: {name} ({verb})");
            let stderr = refused(&approved.run(verb), wanted);
            if *name != "a run of another plan" {
                assert!(stderr.contains("journal.jsonl"), "{name}: {stderr}");
            }
            assert_eq!(
                std::fs::read_to_string(&journal).unwrap(),
                body,
                "{name}: journal kept as found"
            );
        }
    }
    assert_eq!(
        cli::tree(&approved.lab.root().join("lab-west")),
        before,
        "target unchanged"
    );
    assert_eq!(
        cli::tree(&approved.lab.root().join("lab-east")),
        east,
        "source unchanged"
    );
}

#[test]
fn a_journal_line_that_is_not_utf8_is_named() {
    let approved = approved();
    let journal = approved.journal();
    std::fs::create_dir_all(journal.parent().unwrap()).unwrap();
    let mut body = format!("{}\n", started(&approved.hash)).into_bytes();
    body.extend_from_slice(b"{\"rec\":\"thawed\",\"instance\":\"\xff\"}\n");
    std::fs::write(&journal, &body).unwrap();
    refused(&approved.run("apply"), &["journal.jsonl:2:"]);
}

#[test]
fn a_torn_last_line_does_not_block_apply_and_is_cut() {
    // What a kill -9 or a full disk leaves: the last record half-written.
    let approved = approved();
    let journal = approved.journal();
    std::fs::create_dir_all(journal.parent().unwrap()).unwrap();
    std::fs::write(
        &journal,
        format!(
            "{}\n{{\"rec\":\"block\",\"disk\":\"web-2/root\",\"i\":1,\"d\":\"01234",
            started(&approved.hash)
        ),
    )
    .unwrap();
    let out = approved.run("apply");
    assert!(out.status.success(), "{}", cli::text(&out));
    let text = std::fs::read_to_string(&journal).unwrap();
    assert!(!text.contains("\"d\":\"01234\""), "the torn line is cut");
    assert!(
        text.lines()
            .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok())
    );
}

#[test]
fn a_torn_last_line_does_not_block_cleanup() {
    let approved = approved();
    let journal = approved.journal();
    std::fs::create_dir_all(journal.parent().unwrap()).unwrap();
    std::fs::write(
        &journal,
        format!(
            "{}\n{{\"rec\":\"created\",\"disk\":nu",
            started(&approved.hash)
        ),
    )
    .unwrap();
    let out = approved.run("cleanup");
    assert!(out.status.success(), "{}", cli::text(&out));
}

#[test]
fn state_files_of_a_run_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let approved = approved();
    let out = approved.run("apply");
    assert!(out.status.success(), "{}", cli::text(&out));
    let run = approved.journal().parent().unwrap().to_path_buf();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    for entry in std::fs::read_dir(&run).unwrap().flatten() {
        let path = entry.path();
        if path.is_file() {
            assert_eq!(mode(&path), 0o600, "{}", path.display());
        }
    }
    assert_eq!(mode(&run), 0o700, "{}", run.display());
    assert_eq!(
        mode(&approved.lab.plan_path()),
        0o600,
        "the approved plan file"
    );
}
