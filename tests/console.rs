//! The console as an operator meets it: every screen at 80x24 and 120x40
//! (insta snapshots, text only), theme colours on the cells, and key scripts
//! that drive the real app state through a whole migration on a lab.

use altishift::block::DiskDigest;
use altishift::cloud::Check;
use altishift::cloud::lab::generate::{LabScale, init};
use altishift::config::Config;
use altishift::engine::event::{DiskInfo, DiskProgress, Event, Stage};
use altishift::tui::app::inventory::SideId;
use altishift::tui::app::{Overlay, Screen};
use altishift::tui::harness::{Harness, synthetic_inventory};
use altishift::tui::theme::ColorDepth;
use altishift::units::Bytes;
use std::time::Duration;

const SIZES: [(u16, u16); 2] = [(80, 24), (120, 40)];

fn snap(name: &str, h: &Harness) {
    for (w, ht) in SIZES {
        let terminal = h.render(w, ht);
        insta::assert_snapshot!(format!("{name}_{w}x{ht}"), terminal.backend());
    }
}

/// Two synthetic clouds: 12 instances in Germany, 6 in the US.
fn browsing(theme: &str, depth: ColorDepth) -> Harness {
    let mut h = Harness::offline(theme, depth);
    h.load_east_west();
    h
}

/// Marks two instances and opens the plan, with a fixed creation time so the
/// hash (and so the snapshots) are stable.
fn planned() -> Harness {
    let mut h = browsing("default", ColorDepth::TrueColor);
    h.keys("<Space>j<Space>p");
    assert_eq!(h.app.screen, Screen::Plan, "status: {:?}", h.app.status);
    let state = h.app.plan.as_mut().expect("a plan");
    state.plan.created_at = "2026-11-26T12:00:00Z".into();
    h
}

fn transferring() -> Harness {
    let mut h = planned();
    h.app.run = Some(Default::default());
    h.app.screen = Screen::Transfers;
    let disks: Vec<DiskInfo> = (0..8)
        .map(|d| DiskInfo {
            disk: format!("vm-{d}/root"),
            virtual_size: Bytes::gib(20),
            allocated: Bytes::mib(800),
        })
        .collect();
    h.engine(Event::RunStarted {
        run_id: "run-test".into(),
        plan_hash: "ab".repeat(32),
        resumed: false,
        run_dir: "/state/runs/run-test".into(),
        disks,
    });
    for second in 1..=20u64 {
        for d in 0..8u64 {
            let stage = if d == 0 && second >= 10 {
                Stage::Done
            } else if d == 3 {
                Stage::Paused
            } else {
                Stage::Transfer
            };
            let scanned = if stage == Stage::Done {
                Bytes::mib(800)
            } else {
                Bytes::mib((second * (10 + d * 3)).min(800))
            };
            h.engine(Event::Stage {
                disk: format!("vm-{d}/root"),
                stage,
            });
            h.engine(Event::Progress(DiskProgress {
                disk: format!("vm-{d}/root"),
                bytes_scanned: scanned,
                bytes_skipped: Bytes(scanned.0 / 8),
                bytes_sent: Bytes(scanned.0 - scanned.0 / 8),
                bytes_resumed: Bytes::ZERO,
                bytes_total: Bytes::mib(800),
                retries: if d == 5 { 2 } else { 0 },
                elapsed_ms: second * 1000,
            }));
        }
        h.send(altishift::tui::app::Msg::Tick);
    }
    h
}

fn finished() -> Harness {
    let mut h = transferring();
    for d in 0..8 {
        h.engine(Event::DiskFinished {
            disk: format!("vm-{d}/root"),
            digest: DiskDigest {
                linear_sha256: "cd".repeat(32),
                blocks: 1600,
            },
        });
        h.engine(Event::Stage {
            disk: format!("vm-{d}/root"),
            stage: Stage::Done,
        });
    }
    h.engine(Event::InstanceDeployed {
        instance: "web-0".into(),
        id: "west-i0007".into(),
    });
    h.engine(Event::Validated {
        instance: "web-0".into(),
        checks: vec![
            Check::new("running", true, "state running"),
            Check::new("digest vm-0/root", true, "target matches source"),
        ],
    });
    h.engine(Event::CleanedUp {
        resource: "snapshot vm-0/root".into(),
        ok: true,
        detail: "deleted".into(),
    });
    h.engine(Event::Revoked {
        cloud: "east".into(),
        items: vec![],
    });
    h.engine(Event::RunFinished {
        ok: true,
        report: "/state/runs/run-test/report.md".into(),
        summary: "1 instance migrated".into(),
    });
    h
}

#[test]
fn inventory_screens() {
    let mut h = browsing("default", ColorDepth::TrueColor);
    h.keys("<Space>jj<Space>");
    snap("inventory", &h);
    h.keys("/db");
    snap("inventory_filter", &h);
    h.keys("<Esc>");
    h.keys("<Enter>");
    snap("inventory_details", &h);
    h.keys("<Esc>?");
    snap("inventory_help", &h);
    h.keys("<Esc>L");
    snap("inventory_log", &h);
}

#[test]
fn too_small_terminal_shows_a_notice() {
    let h = browsing("default", ColorDepth::TrueColor);
    for (w, ht) in [(40, 10), (79, 15), (20, 3), (1, 1)] {
        let terminal = h.render(w, ht);
        if (w, ht) == (40, 10) {
            insta::assert_snapshot!("too_small_40x10", terminal.backend());
        }
    }
    let text = format!("{}", h.render(40, 10).backend());
    assert!(text.contains("too small"), "{text}");
}

#[test]
fn plan_screens() {
    let mut h = planned();
    snap("plan", &h);
    h.keys("e");
    for _ in 0..12 {
        h.keys("<BS>");
    }
    h.keys("t.tiny<Enter>");
    snap("plan_edit_refused", &h);
}

#[test]
fn approve_screens() {
    let mut h = planned();
    h.keys("a");
    snap("approve", &h);
    h.keys("deadbeef<Enter>");
    snap("approve_wrong_hash", &h);
}

#[test]
fn transfer_and_result_screens() {
    let mut h = transferring();
    snap("transfers", &h);
    h.keys("jjjjj");
    snap("transfers_scrolled", &h);
    h.keys("c");
    snap("transfers_confirm_cancel", &h);
    h.keys("n");
    h.keys("q");
    snap("quit_while_running", &h);
    let h = finished();
    assert_eq!(h.app.screen, Screen::Report);
    snap("results", &h);
}

#[test]
fn secret_prompt_is_masked() {
    let config: Config = toml::from_str(
        "[clouds.staging]\nprovider = \"cloudstack\"\nendpoint = \"http://127.0.0.1:9/client/api\"\ninsecure_endpoint = true\napi_key = \"prompt\"\nsecret_key = \"prompt\"\n",
    )
    .expect("config");
    let mut h = Harness::new(
        config,
        "/nonexistent".into(),
        "default",
        ColorDepth::TrueColor,
    );
    assert_eq!(h.app.prompts.len(), 2, "both sides use the one profile");
    h.keys("hunter2");
    snap("secret_prompt", &h);
    let screen = format!("{}", h.render(80, 24).backend());
    assert!(!screen.contains("hunter2"), "{screen}");
    assert!(screen.contains("•••••••"), "{screen}");
}

// ---------------------------------------------------------------- key scripts

#[test]
fn wrong_hash_changes_nothing_and_right_hash_starts_the_run() {
    let mut h = planned();
    let before = h.app.plan.as_ref().map(|p| p.plan.clone());
    h.keys("a");
    h.keys("deadbeef<Enter>");
    assert_eq!(h.app.screen, Screen::Approve);
    assert!(h.app.run.is_none());
    assert_eq!(
        h.app.plan.as_ref().map(|p| p.plan.clone()),
        before,
        "a refused approval leaves the plan as it was"
    );
    assert!(
        h.app
            .approve
            .refused
            .as_deref()
            .unwrap_or_default()
            .contains("does not match")
    );
    let short = h
        .app
        .plan
        .as_ref()
        .map(|p| p.plan.hash().short().to_string())
        .unwrap_or_default();
    // Cross-border (DE → US): the right hash alone is not enough.
    h.keys(&format!("{short}<Enter>"));
    assert!(h.app.run.is_none());
    assert!(
        h.app
            .approve
            .refused
            .as_deref()
            .unwrap_or_default()
            .contains("acknowledge")
    );
    h.keys("yes<Enter>");
    assert_eq!(h.app.screen, Screen::Transfers);
    assert!(
        h.app
            .plan
            .as_ref()
            .and_then(|p| p.plan.approval.as_ref())
            .is_some_and(|a| a.cross_border_acknowledged)
    );
}

#[test]
fn filter_finds_rows_in_ten_thousand_and_escape_clears() {
    let mut h = Harness::offline("default", ColorDepth::TrueColor);
    h.load(
        SideId::Source,
        "big",
        "DE",
        synthetic_inventory("big", 10_000, &[("eu-1", "DE")]),
    );
    h.keys("/web-996");
    let pane = h.app.pane(SideId::Source);
    assert_eq!(pane.visible.len(), 3, "web-996, web-9960 and web-9966");
    h.keys("<Enter>G");
    assert_eq!(
        h.app
            .pane(SideId::Source)
            .current()
            .map(|i| i.name.as_str()),
        Some("web-9966")
    );
    h.keys("<Esc>");
    assert_eq!(h.app.pane(SideId::Source).visible.len(), 10_000);
}

#[test]
fn quit_asks_while_work_runs_and_not_otherwise() {
    let mut h = browsing("default", ColorDepth::TrueColor);
    h.keys("q");
    assert!(h.app.quit, "idle: q quits at once");

    let mut h = transferring();
    h.keys("q");
    assert!(!h.app.quit);
    let text = format!("{}", h.render(80, 24).backend());
    assert!(
        text.contains("altishift apply"),
        "explains how to resume: {text}"
    );
    h.keys("n");
    assert!(!h.app.quit && h.app.overlay.is_none());
    h.keys("q");
    h.keys("y");
    assert!(h.app.stopping);
    // No engine behind this synthetic run: the runtime lets the app go.
    assert!(h.app.quit);
}

#[test]
fn pause_resume_and_cancel_go_to_the_engine() {
    let mut h = transferring();
    h.keys("jp");
    h.keys("r");
    h.keys("c");
    assert!(
        h.app.take_effects().is_empty(),
        "the harness runtime already took them"
    );
    // Cancel asks first: the overlay is up until y.
    assert!(h.app.overlay.is_some());
    h.keys("y");
    assert!(h.app.overlay.is_none());
    assert!(
        h.app
            .log
            .iter()
            .any(|l| l.text.contains("vm-1/root: cancel requested"))
    );
}

// ------------------------------------------------------------ a real lab run

fn same_disk(a: &std::path::Path, b: &std::path::Path) -> bool {
    std::process::Command::new("qemu-img")
        .args(["compare", "-q"])
        .arg(a)
        .arg(b)
        .status()
        .expect("qemu-img runs (run scripts/test: it installs qemu-utils)")
        .success()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lab_migration_driven_by_keys_is_byte_identical() {
    let dir = tempfile::tempdir().expect("tempdir");
    let summary = init(dir.path(), LabScale::Small).expect("lab");
    let config = Config::load(&summary.config).expect("config");
    let mut h = Harness::new(
        config,
        dir.path().join("state"),
        "default",
        ColorDepth::TrueColor,
    );
    // The run is an engine process of its own: the built binary, not this test.
    h.runtime
        .set_engine_exe(env!("CARGO_BIN_EXE_altishift").into());
    let limit = Duration::from_secs(60);
    h.wait_for("both inventories", limit, |app| {
        app.pane(SideId::Source).loaded.is_some() && app.pane(SideId::Target).loaded.is_some()
    })
    .await
    .expect("inventories");

    // Mark web-1 through the filter, then plan.
    h.keys("/web-1<Enter><Space><Esc>p");
    assert_eq!(h.app.screen, Screen::Plan, "{:?}", h.app.status);
    assert_eq!(h.app.plan.as_ref().map(|p| p.plan.items.len()), Some(1));

    // A lab plan's guests are inspected first (tests/console_preparation.rs):
    // web-1's disk has no boot code, so there is nothing to prepare.
    h.wait_for("the guest inspection", limit, |app| {
        app.plan.as_ref().is_some_and(|p| !p.inspecting)
    })
    .await
    .expect("inspection");
    assert_eq!(
        h.app
            .plan
            .as_ref()
            .map(|p| p.plan.preparation.guests[0].status),
        Some(altishift::plan::preparation::Status::Nothing)
    );

    // `r` rehearses the boot in the background: the lab's generated web-1
    // disk has no boot code, so it is refused at once (no QEMU), the notice
    // says why, and the plan keeps the record that blocks its approval.
    h.keys("r");
    h.wait_for("the rehearsal", limit, |app| {
        app.plan.as_ref().is_some_and(|p| p.rehearsing.is_none())
    })
    .await
    .expect("rehearsal");
    let Some(Overlay::Notice(notice)) = &h.app.overlay else {
        panic!(
            "a notice, not {:?} (status {:?})",
            h.app.overlay, h.app.status
        );
    };
    assert_eq!(notice.title, "web-1/root did not boot in the rehearsal");
    assert!(notice.text.contains("no BIOS boot code"), "{}", notice.text);
    // Planned again (Esc closes the notice, Esc leaves the plan, p plans):
    // a fresh plan carries no rehearsal.
    h.keys("<Esc><Esc>p");
    assert_eq!(
        h.app.plan.as_ref().map(|p| p.plan.rehearsals.len()),
        Some(0)
    );
    h.wait_for("the guest inspection", limit, |app| {
        app.plan.as_ref().is_some_and(|p| !p.inspecting)
    })
    .await
    .expect("inspection");

    // A size too small is refused; a bigger one is taken.
    h.keys("e");
    for _ in 0..16 {
        h.keys("<BS>");
    }
    h.keys("w.nano<Enter>");
    assert!(
        h.app
            .plan
            .as_ref()
            .and_then(|p| p.edit.as_ref())
            .and_then(|e| e.error.clone())
            .is_some()
    );
    for _ in 0..16 {
        h.keys("<BS>");
    }
    h.keys("w.large<Enter>");
    assert_eq!(
        h.app
            .plan
            .as_ref()
            .map(|p| p.plan.items[0].target_size.clone())
            .as_deref(),
        Some("w.large")
    );

    // Approve: wrong hash refused, then the right one plus the cross-border acknowledgement.
    h.keys("a00000000<Enter>");
    assert!(h.app.run.is_none() && h.app.screen == Screen::Approve);
    let short = h
        .app
        .plan
        .as_ref()
        .map(|p| p.plan.hash().short().to_string())
        .expect("plan");
    h.keys(&format!("{short}<Enter>yes<Enter>"));
    assert_eq!(
        h.app.screen,
        Screen::Transfers,
        "{:?}",
        h.app.approve.refused
    );

    h.wait_for("run finished", Duration::from_secs(120), |app| {
        app.run
            .as_ref()
            .is_some_and(|r| r.finished.is_some() && r.engine_done)
    })
    .await
    .expect("run");
    let run = h.app.run.as_ref().expect("run");
    assert!(
        run.finished.as_ref().is_some_and(|o| o.ok),
        "{:?}\n{:?}",
        run.finished,
        h.app.log
    );
    assert!(
        run.disks.iter().all(|d| d.stage == Stage::Done),
        "{:?}",
        run.disks.iter().map(|d| d.stage).collect::<Vec<_>>()
    );
    assert!(run.validated(), "{:?}", run.checks);
    assert_eq!(h.app.screen, Screen::Report);
    let text = format!("{}", h.render(120, 40).backend());
    assert!(
        text.contains("Validation") && text.contains("Report:"),
        "{text}"
    );

    // The target lab holds the same bytes.
    let source = dir.path().join("lab-east/disks/web-1-root.raw");
    let written: Vec<_> = std::fs::read_dir(dir.path().join("lab-west/disks"))
        .expect("target disks")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("web-1"))
        })
        .collect();
    assert_eq!(written.len(), 1, "{written:?}");
    assert!(
        same_disk(&source, &written[0]),
        "{} differs from {}",
        written[0].display(),
        source.display()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: cargo test --test console bench -- --ignored --nocapture"]
async fn bench_console() {
    let report = altishift::tui::bench::run_bench(5).await.expect("bench");
    println!("{report}");
}
