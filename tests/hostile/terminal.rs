//! Every console screen drawn at hostile terminal sizes, from 1x1 to
//! 300x100 and one-row or one-column extremes: no panic, the whole area
//! drawn, and the screen's name on the top bar wherever it fits.

use altishift::engine::event::{DiskInfo, Event};
use altishift::tui::app::Screen;
use altishift::tui::app::inventory::SideId;
use altishift::tui::harness::{Harness, synthetic_inventory};
use altishift::tui::theme::ColorDepth;
use altishift::tui::views::{MIN_HEIGHT, MIN_WIDTH};
use altishift::units::Bytes;

const SIZES: &[(u16, u16)] = &[
    (1, 1),
    (1, 2),
    (2, 1),
    (3, 3),
    (5, 2),
    (10, 3),
    (20, 5),
    (40, 10),
    (59, 16),
    (60, 15),
    (60, 16),
    (80, 24),
    (132, 43),
    (300, 100),
    (1000, 3),
    (3, 200),
];

/// Screens (and overlays) in the state an operator reaches them in.
const STATES: &[&str] = &[
    "inventory",
    "inventory help",
    "inventory log",
    "inventory filter",
    "plan",
    "approve",
    "transfers",
    "report",
];

pub const CASES: usize = SIZES.len() * STATES.len();

fn browsing() -> Harness {
    let mut h = Harness::offline("default", ColorDepth::TrueColor);
    h.load(
        SideId::Source,
        "east",
        "DE",
        synthetic_inventory("east", 40, &[("eu-central", "DE")]),
    );
    h.load(
        SideId::Target,
        "west",
        "US",
        synthetic_inventory("west", 3, &[("us-west", "US")]),
    );
    h
}

fn state(name: &str) -> (Harness, Screen) {
    let mut h = browsing();
    let screen = match name {
        "inventory" => Screen::Inventory,
        "inventory help" => {
            h.keys("?");
            Screen::Inventory
        }
        "inventory log" => {
            h.keys("L");
            Screen::Inventory
        }
        "inventory filter" => {
            h.keys("/web");
            Screen::Inventory
        }
        "plan" => {
            h.keys("<Space>j<Space>p");
            Screen::Plan
        }
        "approve" => {
            h.keys("<Space>j<Space>pa");
            Screen::Approve
        }
        "transfers" | "report" => {
            h.keys("<Space>j<Space>p");
            h.app.run = Some(Default::default());
            h.engine(Event::RunStarted {
                run_id: "run-test".into(),
                plan_hash: "ab".repeat(32),
                resumed: false,
                run_dir: "/state/runs/run-test".into(),
                disks: (0..3)
                    .map(|d| DiskInfo {
                        disk: format!("vm-{d}/root"),
                        virtual_size: Bytes::gib(20),
                        allocated: Bytes::mib(800),
                    })
                    .collect(),
            });
            if name == "report" {
                Screen::Report
            } else {
                Screen::Transfers
            }
        }
        other => panic!("no state {other}"),
    };
    h.app.screen = screen;
    (h, screen)
}

#[test]
fn every_screen_draws_at_every_size_without_a_panic() {
    let mut drawn = 0;
    for name in STATES {
        let (h, screen) = state(name);
        assert_eq!(h.app.screen, screen, "{name}: reached");
        for &(width, height) in SIZES {
            let terminal = h.render(width, height);
            let buffer = terminal.backend().buffer();
            assert_eq!(
                (buffer.area.width, buffer.area.height),
                (width, height),
                "{name} at {width}x{height}"
            );
            let row = |y: u16| -> String {
                (0..width)
                    .map(|x| buffer[(x, y)].symbol().to_string())
                    .collect()
            };
            if width >= MIN_WIDTH && height >= MIN_HEIGHT {
                assert!(
                    row(0).contains(screen.title()),
                    "{name} at {width}x{height}: top bar {:?}",
                    row(0)
                );
            } else if width >= 20 && height >= 3 {
                let all: String = (0..height).map(row).collect();
                assert!(
                    all.contains("terminal too small"),
                    "{name} at {width}x{height}: says why it shows nothing"
                );
            }
            drawn += 1;
        }
    }
    assert_eq!(drawn, CASES);
}
