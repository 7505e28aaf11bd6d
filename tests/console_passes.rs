//! A cutover as an operator watches it: each disk is copied in passes (a
//! full pass while the source runs, deltas of what changed, a final delta
//! after it stops), and the disk panes and the results say how each went.
//! Driven by synthetic engine events, the same ones the engine sends.

use altishift::block::DiskDigest;
use altishift::engine::event::{DiskInfo, DiskProgress, Event, PassKind, Stage};
use altishift::tui::app::inventory::SideId;
use altishift::tui::app::{Msg, Screen};
use altishift::tui::harness::{Harness, synthetic_inventory};
use altishift::tui::theme::ColorDepth;
use altishift::units::Bytes;

const SIZES: [(u16, u16); 2] = [(80, 24), (120, 40)];

fn snap(name: &str, h: &Harness) {
    for (w, ht) in SIZES {
        let terminal = h.render(w, ht);
        insta::assert_snapshot!(format!("{name}_{w}x{ht}"), terminal.backend());
    }
}

fn text(h: &Harness, w: u16, ht: u16) -> String {
    format!("{}", h.render(w, ht).backend())
}

fn pass(disk: &str, pass: u32, kind: PassKind, bytes: Bytes, elapsed_ms: u64) -> Event {
    Event::PassFinished {
        disk: disk.into(),
        pass,
        kind,
        blocks_sent: bytes.0.div_ceil(512 * 1024),
        bytes_sent: bytes,
        elapsed_ms,
    }
}

fn progress(disk: &str, scanned: Bytes, total: Bytes, seconds: u64) -> Event {
    Event::Progress(DiskProgress {
        disk: disk.into(),
        bytes_scanned: scanned,
        bytes_skipped: Bytes::ZERO,
        bytes_sent: scanned,
        bytes_resumed: Bytes::ZERO,
        bytes_total: total,
        retries: 0,
        elapsed_ms: seconds * 1000,
    })
}

/// Three disks mid-cutover: web-0/root has made its full and two delta
/// passes and is in the final one; db-1/root its full pass; db-1/data is a
/// plain one-pass copy.
fn cutting_over() -> Harness {
    let mut h = Harness::offline("default", ColorDepth::TrueColor);
    h.load(
        SideId::Source,
        "east",
        "DE",
        synthetic_inventory("east", 4, &[("eu-central", "DE")]),
    );
    h.load(
        SideId::Target,
        "west",
        "US",
        synthetic_inventory("west", 2, &[("us-west", "US")]),
    );
    h.app.run = Some(Default::default());
    h.app.screen = Screen::Transfers;
    let disks = [("web-0/root", 2), ("db-1/root", 4), ("db-1/data", 1)];
    h.engine(Event::RunStarted {
        run_id: "run-cutover".into(),
        plan_hash: "ef".repeat(32),
        resumed: false,
        run_dir: "/state/runs/run-cutover".into(),
        disks: disks
            .iter()
            .map(|(disk, gib)| DiskInfo {
                disk: disk.to_string(),
                virtual_size: Bytes::gib(20),
                allocated: Bytes::gib(*gib),
            })
            .collect(),
    });
    for (disk, _) in disks {
        h.engine(Event::Stage {
            disk: disk.into(),
            stage: Stage::Transfer,
        });
    }
    h.engine(pass("web-0/root", 1, PassKind::Full, Bytes::gib(2), 41_000));
    h.engine(pass(
        "web-0/root",
        2,
        PassKind::Delta,
        Bytes::mib(96),
        3_200,
    ));
    h.engine(pass("web-0/root", 3, PassKind::Delta, Bytes::mib(20), 900));
    h.engine(pass("db-1/root", 1, PassKind::Full, Bytes::gib(4), 80_000));
    for second in 1..=5u64 {
        h.engine(progress(
            "web-0/root",
            Bytes::mib(2 * second),
            Bytes::mib(12),
            second,
        ));
        h.engine(progress(
            "db-1/root",
            Bytes::mib(30 * second),
            Bytes::mib(400),
            second,
        ));
        h.engine(progress(
            "db-1/data",
            Bytes::mib(50 * second),
            Bytes::gib(1),
            second,
        ));
        h.send(Msg::Tick);
    }
    h
}

#[test]
fn disk_panes_show_the_passes_made_so_far() {
    let h = cutting_over();
    snap("transfers_cutover", &h);
    let narrow = text(&h, 80, 24);
    assert!(
        narrow.contains("pass 1 full 2.0 GiB"),
        "the first pass stays in view: {narrow}"
    );
    assert!(
        narrow.contains("pass 3 delta 20.0 MiB"),
        "so does the latest: {narrow}"
    );
    let wide = text(&h, 120, 40);
    assert!(
        wide.contains("pass 1 full 2.0 GiB · pass 2 delta 96.0 MiB · pass 3 delta 20.0 MiB"),
        "{wide}"
    );
    // The cutover window in numbers: deltas of 96 then 20 MiB project a
    // final pass of 20 × 20/96 ≈ 4.2 MiB, timed on the line through the two
    // deltas (a fixed cost per pass plus a cost per byte): ~421 ms.
    assert!(wide.contains("final ≈ 4.2 MiB in ~421ms"), "{wide}");
    assert!(narrow.contains("final ≈ 4.2 MiB in ~421ms"), "{narrow}");
    assert_eq!(
        wide.matches("final ≈").count(),
        1,
        "no projection before a delta pass: {wide}"
    );
    let run = h.app.run.as_ref().expect("run");
    assert_eq!(run.disks[0].passes.len(), 3);
    assert_eq!(run.disks[1].passes.len(), 1);
    assert!(run.disks[2].passes.is_empty(), "a one-pass copy lists none");
}

#[test]
fn results_list_every_pass_with_its_time() {
    let mut h = cutting_over();
    h.engine(pass("web-0/root", 4, PassKind::Final, Bytes::mib(12), 850));
    h.engine(pass("db-1/root", 2, PassKind::Final, Bytes::mib(7), 640));
    for disk in ["web-0/root", "db-1/root", "db-1/data"] {
        h.engine(Event::DiskFinished {
            disk: disk.into(),
            digest: DiskDigest {
                linear_sha256: "ab".repeat(32),
                blocks: 64,
            },
        });
        h.engine(Event::Stage {
            disk: disk.into(),
            stage: Stage::Done,
        });
    }
    h.engine(Event::RunFinished {
        ok: true,
        report: "/state/runs/run-cutover/report.md".into(),
        summary: "2 instances cut over".into(),
    });
    assert_eq!(h.app.screen, Screen::Report);
    snap("results_cutover", &h);
    let wide = text(&h, 120, 40);
    let rows: Vec<&str> = wide.lines().collect();
    let web = rows
        .iter()
        .position(|r| {
            r.contains("web-0/root  pass 1 full 2.0 GiB in 41s · pass 2 delta 96.0 MiB in 3.2s")
        })
        .unwrap_or_else(|| panic!("{wide}"));
    assert!(
        rows[web].contains("pass 3 delta 20.0 MiB in 900ms")
            || rows[web + 1].contains("            pass 3 delta 20.0 MiB in 900ms"),
        "{wide}"
    );
    assert!(
        rows[web..web + 2]
            .iter()
            .any(|r| r.contains("pass 4 final 12.0 MiB in 850ms")),
        "{wide}"
    );
    assert!(
        wide.contains("db-1/root   pass 1 full 4.0 GiB in 1m 20s · pass 2 final 7.0 MiB in 640ms"),
        "{wide}"
    );
    assert!(!wide.contains("db-1/data "), "no passes, no line: {wide}");
    // The disk pane keeps the final pass too.
    h.keys("t");
    let narrow = text(&h, 80, 24);
    assert!(narrow.contains("pass 4 final 12.0 MiB"), "{narrow}");
    assert!(
        !narrow.contains("final ≈"),
        "no projection once the final pass ran: {narrow}"
    );
}

#[test]
fn a_pass_reported_again_after_a_resume_is_not_listed_twice() {
    let mut h = cutting_over();
    h.engine(pass("db-1/root", 1, PassKind::Full, Bytes::gib(4), 80_000));
    let run = h.app.run.as_ref().expect("run");
    assert_eq!(run.disks[1].passes.len(), 1);
    let wide = text(&h, 120, 40);
    assert_eq!(wide.matches("pass 1 full 4.0 GiB").count(), 1, "{wide}");
}

#[test]
fn credentials_running_out_mid_run_are_flagged_above_the_disks() {
    // 2026-11-28 10:00 UTC; the source's credentials end at 10:25.
    let now = 1_795_860_000;
    let mut h = cutting_over();
    h.set_clock(now);
    let mut east = synthetic_inventory("east", 4, &[("eu-central", "DE")]);
    east.access = Some(altishift::tui::harness::synthetic_access(
        "arn:aws:sts::1:assumed-role/m/a",
        Some(now + 25 * 60),
    ));
    h.load(SideId::Source, "east", "DE", east);
    let narrow = text(&h, 80, 24);
    assert!(
        narrow.contains("⚠ source east: credentials end in 25 min; renew them"),
        "{narrow}"
    );
    // Once expired it is an error; once the run is over it is no news.
    h.set_clock(now + 25 * 60);
    h.send(Msg::Tick);
    let narrow = text(&h, 80, 24);
    assert!(
        narrow.contains("✖ source east: credentials EXPIRED"),
        "{narrow}"
    );
    h.engine(Event::RunFinished {
        ok: false,
        report: "/state/runs/run-cutover/report.md".into(),
        summary: "stopped".into(),
    });
    h.keys("t");
    assert!(!text(&h, 80, 24).contains("credentials"));
}

#[test]
fn plus_and_minus_set_the_runs_budget_and_the_header_shows_it() {
    use altishift::engine::event::Command;
    use altishift::tui::app::Effect;
    use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
    let mut h = cutting_over();
    // Keys straight to the app, so the effects it asks for can be read.
    let press = |h: &mut Harness, c: char| {
        h.app.update(Msg::Key(KeyEvent::new(
            KeyCode::Char(c),
            KeyModifiers::NONE,
        )));
        h.app.take_effects()
    };
    let budget_sent = |effects: &[Effect]| -> Vec<Option<Bytes>> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::Engine(Command::SetBandwidth { rate }) => Some(*rate),
                _ => None,
            })
            .collect()
    };
    // Unlimited: `+` has nothing to raise, and says so.
    assert!(budget_sent(&press(&mut h, '+')).is_empty());
    assert!(
        h.app
            .status
            .as_ref()
            .is_some_and(|(_, s)| s.contains("unlimited"))
    );
    // `-` starts from the last second's rate of all disks: 2 + 30 + 50 MiB/s.
    let measured = Bytes::mib(82).0;
    let lowered = Bytes(measured / 5 * 4);
    assert_eq!(budget_sent(&press(&mut h, '-')), vec![Some(lowered)]);
    assert_eq!(h.app.run.as_ref().and_then(|r| r.budget), Some(lowered));
    let header = text(&h, 120, 40);
    assert!(header.contains(&format!("budget {lowered}/s")), "{header}");
    let raised = Bytes(lowered.0 * 5 / 4);
    assert_eq!(budget_sent(&press(&mut h, '+')), vec![Some(raised)]);
    assert!(text(&h, 120, 40).contains(&format!("budget {raised}/s")));
    // The keys are in the bar and in `?`.
    assert!(h.app.hints().iter().any(|k| k.key == "+/-"));
    let help = h.app.help();
    assert!(
        help.iter()
            .any(|k| k.key == "+" && k.action.contains("raise"))
    );
    assert!(
        help.iter()
            .any(|k| k.key == "-" && k.action.contains("lower"))
    );
}
