//! Hostile inputs: files an operator (or someone else) edited, journals a
//! crash or a full disk left behind, themes, provider answers and terminal
//! sizes. Every case asserts a clear error naming the file, line or field
//! (and a non-zero exit where it goes through the CLI), that nothing
//! panicked, and that no cloud changed. Property tests check that the
//! parsers never panic on arbitrary input.
//!
//! Cases are counted by `CASES` in each module; `hostile_cases_number_at_least_100`
//! keeps the suite from shrinking unnoticed.

#[path = "hostile/bodies.rs"]
mod bodies;
use altishift_testkit::cli;
#[path = "hostile/config.rs"]
mod config;
#[path = "hostile/journal.rs"]
mod journal;
#[path = "hostile/plan.rs"]
mod plan;
#[path = "hostile/props.rs"]
mod props;
#[path = "hostile/terminal.rs"]
mod terminal;
#[path = "hostile/theme.rs"]
mod theme;

use std::process::Output;

/// Asserts a CLI run failed cleanly: a non-zero exit (not a signal), no
/// panic, and every `wanted` piece in stderr. Returns stderr.
pub fn refused(out: &Output, wanted: &[&str]) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let all = cli::text(out);
    assert!(!out.status.success(), "must fail: {all}");
    assert!(
        matches!(out.status.code(), Some(code) if code != 0),
        "must exit with a code, not a signal: {all}"
    );
    assert!(!all.contains("panicked"), "panicked: {all}");
    assert!(!all.contains("RUST_BACKTRACE"), "panicked: {all}");
    for piece in wanted {
        assert!(stderr.contains(piece), "stderr lacks {piece:?}: {all}");
    }
    stderr
}

#[test]
fn hostile_cases_number_at_least_100() {
    let total = config::CASES
        + plan::CASES
        + journal::CASES
        + theme::CASES
        + bodies::CASES
        + terminal::CASES;
    eprintln!(
        "hostile cases: config {} plan {} journal {} theme {} bodies {} terminal {} = {total}",
        config::CASES,
        plan::CASES,
        journal::CASES,
        theme::CASES,
        bodies::CASES,
        terminal::CASES
    );
    assert!(total >= 100, "{total}");
}
