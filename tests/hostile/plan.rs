//! Plan files: truncated, of another version, edited by hand (before or
//! after approval), with negative or huge sizes, unknown verbs and a hash
//! that does not match. `plan show`, `approve` and `apply` must each refuse
//! with the file (and line or field), exit non-zero, and change no cloud.

use crate::cli::{self, Lab};
use crate::refused;

#[derive(Clone, Copy, Debug)]
enum Command {
    /// `plan show FILE`
    Show,
    /// `approve FILE --confirm <the unedited plan's hash>`
    Approve,
    /// `apply FILE` on a plan approved, then edited.
    Apply,
}

type Edit = fn(&str) -> String;

/// `text` with the first line starting with `key =` replaced.
fn set(text: &str, key: &str, value: &str) -> String {
    let mut done = false;
    text.lines()
        .map(|line| {
            if !done && line.starts_with(&format!("{key} =")) {
                done = true;
                format!("{key} = {value}")
            } else {
                line.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// (what was done, edit, command, pieces the error must hold).
const TABLE: &[(&str, Edit, Command, &[&str])] = &[
    (
        "cut in half",
        |t| t[..t.len() / 2].to_string(),
        Command::Show,
        &["hostile-plan.toml:"],
    ),
    (
        "cut to nothing",
        |_| String::new(),
        Command::Show,
        &["hostile-plan.toml:", "missing"],
    ),
    (
        "cut inside a string",
        |t| t[..t.find("created_at = \"").unwrap() + 16].to_string(),
        Command::Show,
        &["hostile-plan.toml:"],
    ),
    (
        "version 2",
        |t| set(t, "version", "2"),
        Command::Show,
        &["hostile-plan.toml", "plan version 2 is not supported"],
    ),
    (
        "version 0",
        |t| set(t, "version", "0"),
        Command::Show,
        &["hostile-plan.toml", "version 0"],
    ),
    (
        "a negative version",
        |t| set(t, "version", "-1"),
        Command::Show,
        &["hostile-plan.toml:3:", "version"],
    ),
    (
        "a version in quotes",
        |t| set(t, "version", "\"1\""),
        Command::Show,
        &["hostile-plan.toml:3:", "version"],
    ),
    (
        "an unknown top-level key",
        |t| format!("owner = \"me\"\n{t}"),
        Command::Show,
        &["hostile-plan.toml:1:", "owner"],
    ),
    (
        "an unknown key in an item",
        |t| t.replacen("wave = 1", "wave = 1\npriority = 9", 1),
        Command::Show,
        &["hostile-plan.toml:", "priority"],
    ),
    (
        "an unknown key in a disk",
        |t| t.replacen("boot = true", "boot = true\nencrypted = false", 1),
        Command::Show,
        &["hostile-plan.toml:", "encrypted"],
    ),
    (
        "a negative disk size",
        |t| set(t, "virtual_size", "-2147483648"),
        Command::Show,
        &["hostile-plan.toml:", "virtual_size"],
    ),
    (
        "a disk size beyond 64 bits",
        |t| set(t, "virtual_size", "184467440737095516150"),
        Command::Show,
        &["hostile-plan.toml:", "virtual_size"],
    ),
    (
        "a fractional disk size",
        |t| set(t, "allocated", "1.5"),
        Command::Show,
        &["hostile-plan.toml:", "allocated"],
    ),
    (
        "a size in words",
        |t| set(t, "allocated", "\"a lot\""),
        Command::Show,
        &["hostile-plan.toml:", "allocated"],
    ),
    (
        "negative memory",
        |t| set(t, "memory", "-4"),
        Command::Show,
        &["hostile-plan.toml:", "memory"],
    ),
    (
        "vcpus beyond 32 bits",
        |t| set(t, "vcpus", "4294967296"),
        Command::Show,
        &["hostile-plan.toml:", "vcpus"],
    ),
    (
        "a negative step",
        |t| set(t, "step", "-1"),
        Command::Show,
        &["hostile-plan.toml:", "step"],
    ),
    (
        "an unknown verb",
        |t| t.replacen("verb = \"snapshot_disk\"", "verb = \"format_disk\"", 1),
        Command::Show,
        &["hostile-plan.toml:", "format_disk"],
    ),
    (
        "a verb that is a shell command",
        |t| t.replacen("verb = \"snapshot_disk\"", "verb = \"rm -rf /\"", 1),
        Command::Show,
        &["hostile-plan.toml:", "verb"],
    ),
    (
        "an unknown disk format",
        |t| t.replacen("source_format = \"raw\"", "source_format = \"iso\"", 1),
        Command::Show,
        &["hostile-plan.toml:", "iso"],
    ),
    (
        "a boolean in words",
        |t| set(t, "boot", "\"yes\""),
        Command::Show,
        &["hostile-plan.toml:", "boot"],
    ),
    (
        "a key given twice",
        |t| t.replacen("wave = 1", "wave = 1\nwave = 2", 1),
        Command::Show,
        &["hostile-plan.toml:"],
    ),
    (
        "items as a string",
        |t| t.replacen("[[items]]", "items = \"all\"\n[[itemz]]", 1),
        Command::Show,
        &["hostile-plan.toml:"],
    ),
    (
        "a NUL byte",
        |t| t.replacen("web-2", "web\0-2", 1),
        Command::Show,
        &["hostile-plan.toml:"],
    ),
    (
        "a negative cross-border byte count",
        |t| t.replacen("[cross_border]", "[cross_border]\nbytes = -5", 1),
        Command::Show,
        &["hostile-plan.toml:"],
    ),
    (
        "an edited target size, approved with the old hash",
        |t| set(t, "target_size", "\"w.xlarge\""),
        Command::Approve,
        &["does not match", "nothing approved"],
    ),
    (
        "an edited disk id, approved with the old hash",
        |t| t.replacen("disk_id = \"root\"", "disk_id = \"../../etc\"", 1),
        Command::Approve,
        &["does not match"],
    ),
    (
        "an edited target size after approval",
        |t| set(t, "target_size", "\"w.xlarge\""),
        Command::Apply,
        &["hostile-plan.toml", "changed since it was approved"],
    ),
    (
        "an edited target cloud after approval",
        |t| t.replacen("cloud = \"lab-west\"", "cloud = \"lab-east\"", 1),
        Command::Apply,
        &["hostile-plan.toml", "refused"],
    ),
    (
        "a removed action after approval",
        |t| t.replacen("verb = \"delete_snapshot\"", "verb = \"write_disk\"", 1),
        Command::Apply,
        &["changed since it was approved"],
    ),
    (
        "an approval hash that is not hex",
        |t| set(t, "plan_hash", "\"zz\""),
        Command::Apply,
        &["hostile-plan.toml", "changed since it was approved"],
    ),
    (
        "an approval hash of another plan",
        |t| set(t, "plan_hash", &format!("\"{}\"", "ab".repeat(32))),
        Command::Apply,
        &["changed since it was approved"],
    ),
    (
        "the approval removed",
        |t| t[..t.find("[approval]").unwrap()].to_string(),
        Command::Apply,
        &["hostile-plan.toml", "not approved"],
    ),
    (
        "an approval without a hash",
        |t| {
            t.lines()
                .filter(|l| !l.starts_with("plan_hash"))
                .collect::<Vec<_>>()
                .join("\n")
        },
        Command::Apply,
        &["hostile-plan.toml:", "plan_hash"],
    ),
    (
        "a cross-border acknowledgement in words",
        |t| set(t, "cross_border_acknowledged", "\"sure\""),
        Command::Apply,
        &["hostile-plan.toml:", "cross_border_acknowledged"],
    ),
];

pub const CASES: usize = TABLE.len() + 3;

struct Planned {
    lab: Lab,
    text: String,
    short: String,
}

/// A lab with web-2 (two disks) planned east → west; with `approve`, the
/// plan file is approved too.
fn planned(approve: bool) -> Planned {
    let lab = Lab::new();
    let out = lab.plan(&["web-2"], &[]);
    assert!(out.status.success(), "{}", cli::text(&out));
    let short = lab.short_hash();
    if approve {
        let out = lab.approve();
        assert!(out.status.success(), "{}", cli::text(&out));
    }
    let text = std::fs::read_to_string(lab.plan_path()).unwrap();
    Planned { lab, text, short }
}

fn run(planned: &Planned, command: Command, file: &std::path::Path) -> std::process::Output {
    let file = file.to_str().unwrap();
    match command {
        Command::Show => planned.lab.run(&["plan", "show", file]),
        Command::Approve => planned.lab.run(&[
            "approve",
            file,
            "--confirm",
            &planned.short,
            "--ack-cross-border",
        ]),
        Command::Apply => planned.lab.run(&["apply", file]),
    }
}

#[test]
fn every_hostile_plan_is_refused_and_no_cloud_changes() {
    let fresh = planned(false);
    let approved = planned(true);
    for (planned, commands) in [
        (&fresh, [Command::Show, Command::Approve]),
        (&approved, [Command::Apply, Command::Apply]),
    ] {
        let before = cli::tree(&planned.lab.root());
        let file = planned.lab.dir.path().join("hostile-plan.toml");
        for (name, edit, command, wanted) in TABLE {
            if !commands
                .iter()
                .any(|c| std::mem::discriminant(c) == std::mem::discriminant(command))
            {
                continue;
            }
            let edited = edit(&planned.text);
            assert_ne!(
                edited, planned.text,
                "{name}: the edit must change the plan"
            );
            std::fs::write(&file, &edited).unwrap();
            eprintln!("case: {name}");
            refused(&run(planned, *command, &file), wanted);
            let after = std::fs::read_to_string(&file).unwrap();
            assert_eq!(
                after, edited,
                "{name}: a refused plan file is left as it was"
            );
        }
        assert_eq!(cli::tree(&planned.lab.root()), before, "no cloud changed");
    }
}

#[test]
fn a_plan_file_that_is_a_folder_missing_or_not_utf8_names_its_path() {
    let planned = planned(false);
    let folder = planned.lab.dir.path().to_path_buf();
    let missing = folder.join("missing.toml");
    let binary = folder.join("binary.toml");
    std::fs::write(&binary, b"version = 1\ncreated_at = \"\xff\"\n").unwrap();
    for path in [folder.clone(), missing, binary] {
        refused(
            &run(&planned, Command::Show, &path),
            &[&path.display().to_string()],
        );
    }
}
