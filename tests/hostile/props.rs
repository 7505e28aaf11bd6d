//! Property tests for the parsers: arbitrary input never panics (config,
//! plan, journal lines, theme colours), and what we write reads back the
//! same (plans, journal records).

use altishift::config::{Config, parse_toml};
use altishift::engine::journal::{Journal, Record, replay};
use altishift::plan::Plan;
use proptest::prelude::*;
use std::path::Path;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 200,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Text that looks a little like TOML: keys, tables, quotes, numbers.
fn tomlish() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just("[clouds.x]\n".to_string()),
            Just("[[items]]\n".to_string()),
            Just("provider = \"lab\"\n".to_string()),
            Just("version = 1\n".to_string()),
            Just("= ".to_string()),
            Just("\"".to_string()),
            Just("'''".to_string()),
            Just("\n".to_string()),
            Just("é".to_string()),
            Just("[".to_string()),
            Just("{".to_string()),
            "[a-z_]{1,8}".prop_map(|k| format!("{k} = ")),
            any::<i64>().prop_map(|n| n.to_string()),
            ".{0,12}",
        ],
        0..40,
    )
    .prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn config_parsing_never_panics(text in prop_oneof![tomlish(), ".{0,300}"]) {
        if let Err(err) = parse_toml::<Config>(&text, Path::new("c.toml")) {
            prop_assert!(err.to_string().starts_with("c.toml:"), "{err}");
        }
    }

    #[test]
    fn plan_parsing_never_panics(text in prop_oneof![tomlish(), ".{0,300}"]) {
        if let Err(err) = parse_toml::<Plan>(&text, Path::new("p.toml")) {
            prop_assert!(err.to_string().starts_with("p.toml:"), "{err}");
        }
    }

    #[test]
    fn a_lab_plan_with_any_edited_line_never_panics(line in 0usize..120, value in ".{0,20}") {
        let text = lab_plan_text();
        let edited: Vec<String> = text
            .lines()
            .enumerate()
            .map(|(n, l)| match (n == line, l.split_once(" = ")) {
                (true, Some((key, _))) => format!("{key} = {value}"),
                _ => l.to_string(),
            })
            .collect();
        let edited = edited.join("\n");
        if let Ok(plan) = parse_toml::<Plan>(&edited, Path::new("p.toml")) {
            // Whatever parses also hashes and writes back.
            prop_assert_eq!(plan.hash().0.len(), 64);
            prop_assert!(plan.to_toml().is_ok());
        }
    }

    #[test]
    fn journal_replay_never_panics(lines in prop::collection::vec(journalish(), 0..12)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        std::fs::write(&path, lines.join("\n")).unwrap();
        if let Err(err) = replay(&path) {
            prop_assert!(err.to_string().contains("journal.jsonl"), "{err}");
        }
    }

    #[test]
    fn journal_records_read_back_as_written(
        disk in "[a-z0-9/-]{1,20}",
        blocks in prop::collection::btree_set(0u64..1 << 40, 0..30),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        let (journal, _) = Journal::open(&path).unwrap();
        for &i in &blocks {
            journal
                .append(&Record::Block {
                    disk: disk.clone(),
                    i,
                    d: altishift::block::BlockDigest::of(&i.to_le_bytes()),
                    p: 0,
                })
                .unwrap();
        }
        let state = replay(&path).unwrap();
        let sent: Vec<u64> = state.disk(&disk).sent.keys().map(|b| b.0).collect();
        prop_assert_eq!(sent, blocks.into_iter().collect::<Vec<_>>());
    }

    #[test]
    fn theme_colours_never_panic(text in ".{0,12}") {
        let _ = altishift::tui::theme::parse_color(&text);
        let theme = format!("[ui]\nbase = {{ fg = {text:?} }}\n");
        if let Err(err) = altishift::tui::theme::parse_standalone(
            "t.toml",
            &theme,
            altishift::tui::theme::ColorDepth::Ansi256,
        ) {
            prop_assert!(err.to_string().contains("t.toml"), "{err}");
        }
    }
}

/// Journal-like lines: real records, cut or with values swapped.
fn journalish() -> impl Strategy<Value = String> {
    let record = prop_oneof![
        Just(r#"{"rec":"block","disk":"d","i":1,"d":"DIGEST"}"#.to_string()),
        Just(r#"{"rec":"zero","disk":"d","i":2}"#.to_string()),
        Just(r#"{"rec":"checkpoint","at":"t","covers":3}"#.to_string()),
        Just(r#"{"rec":"restarted","disk":"d"}"#.to_string()),
        Just(r#"{"rec":"pass_started","disk":"d","pass":1,"kind":"full"}"#.to_string()),
        Just(r#"{"rec":"run_finished","ok":true,"at":"t"}"#.to_string()),
    ];
    (record, any::<u64>(), 0usize..80, ".{0,8}").prop_map(|(line, n, cut, junk)| {
        let line = line
            .replace("DIGEST", &"ab".repeat(32))
            .replace("\"i\":1", &format!("\"i\":{n}"));
        match cut % 4 {
            0 => line,
            1 => line.chars().take(cut).collect(),
            2 => line.replace("\"d\"", &format!("\"{junk}\"")),
            _ => format!("{line}{junk}"),
        }
    })
}

/// A real plan's text (the lab's web-1, built without the CLI).
fn lab_plan_text() -> String {
    use std::sync::OnceLock;
    static TEXT: OnceLock<String> = OnceLock::new();
    TEXT.get_or_init(|| {
        let out = crate::cli::Lab::new();
        let plan = out.plan(&["web-1"], &[]);
        assert!(plan.status.success(), "{}", crate::cli::text(&plan));
        let text = std::fs::read_to_string(out.plan_path()).unwrap();
        // The lab's temp dir goes when `out` drops; the text stays.
        text
    })
    .clone()
}
