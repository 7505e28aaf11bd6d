//! The inventory as an operator meets it beyond the instance lists: who each
//! side acts as and until when (credential expiry), and each cloud's
//! configuration — networks, firewalls, images, SSH keys — a key away.

use altishift::tui::app::configuration::{ConfigKind, PaneView};
use altishift::tui::app::inventory::SideId;
use altishift::tui::app::{Msg, Overlay, Redraw};
use altishift::tui::harness::{Harness, synthetic_access, synthetic_inventory, with_configuration};
use altishift::tui::theme::ColorDepth;
use ratatui::backend::TestBackend;
use ratatui::style::Style;

const SIZES: [(u16, u16); 2] = [(80, 24), (120, 40)];

/// 2026-11-28 10:00 UTC.
const NOW: u64 = 1_795_860_000;

const ROLE: &str = "arn:aws:sts::123456789012:assumed-role/migrate/altishift";
const SERVICE_ACCOUNT: &str = "migrator@example-project.iam.gserviceaccount.com";

fn snap(name: &str, h: &Harness) {
    for (w, ht) in SIZES {
        let terminal = h.render(w, ht);
        insta::assert_snapshot!(format!("{name}_{w}x{ht}"), terminal.backend());
    }
}

fn text(h: &Harness, w: u16, ht: u16) -> String {
    format!("{}", h.render(w, ht).backend())
}

/// Source credentials with `source_left` seconds to go (negative: expired
/// that long ago), target credentials with `target_left`.
fn with_access(source_left: Option<i64>, target_left: Option<i64>) -> Harness {
    let mut h = Harness::offline("default", ColorDepth::TrueColor);
    h.set_clock(NOW);
    let at = |left: i64| NOW.checked_add_signed(left);
    let mut east = with_configuration(synthetic_inventory("east", 12, &[("eu-central", "DE")]));
    east.access = source_left.map(|left| synthetic_access(ROLE, at(left)));
    let mut west = with_configuration(synthetic_inventory("west", 6, &[("us-west", "US")]));
    west.access = target_left.map(|left| synthetic_access(SERVICE_ACCOUNT, at(left)));
    h.load(SideId::Source, "east", "DE", east);
    h.load(SideId::Target, "west", "US", west);
    h
}

/// Where `symbol` is first drawn, and its style.
fn find(backend: &TestBackend, symbol: &str) -> Option<(u16, u16, Style)> {
    let buffer = backend.buffer();
    let area = buffer.area;
    (area.y..area.y + area.height)
        .flat_map(|y| (area.x..area.x + area.width).map(move |x| (x, y)))
        .find(|&(x, y)| buffer[(x, y)].symbol() == symbol)
        .map(|(x, y)| (x, y, buffer[(x, y)].style()))
}

// ------------------------------------------------------------ credential expiry

#[test]
fn each_pane_says_who_it_acts_as_and_until_when() {
    // Source: 40 minutes left (a warning). Target: expired 10 minutes ago.
    let h = with_access(Some(40 * 60), Some(-600));
    snap("access_soon_and_expired", &h);
    let wide = text(&h, 120, 40);
    assert!(
        wide.contains("expires 2026-11-28 10:40 UTC (in 40 min)"),
        "{wide}"
    );
    assert!(wide.contains("EXPIRED 2026-11-28 09:50 UTC"), "{wide}");
    // At 80 columns the identity is cut, never the expiry.
    let narrow = text(&h, 80, 24);
    assert!(narrow.contains("expires in 40 min"), "{narrow}");
    assert!(narrow.contains("EXPIRED"), "{narrow}");
}

#[test]
fn expiry_is_a_warning_under_an_hour_and_an_error_once_past() {
    let h = with_access(Some(40 * 60), Some(-600));
    let theme = h.app.theme.clone();
    let terminal = h.render(120, 40);
    let (x, _, warning) = find(terminal.backend(), "⚠").expect("warning sign");
    assert!(x < 60, "on the source pane (left)");
    assert_eq!(warning.fg, theme.plan.warning.fg);
    let (x, _, error) = find(terminal.backend(), "✖").expect("error sign");
    assert!(x >= 60, "on the target pane (right)");
    assert_eq!(error.fg, theme.ui.error.fg);
    assert_ne!(warning.fg, error.fg);

    // Three hours left, or no expiry at all: plain text, no sign.
    let mut h = with_access(Some(3 * 3600), None);
    let mut west = synthetic_inventory("west", 6, &[("us-west", "US")]);
    west.access = Some(synthetic_access(SERVICE_ACCOUNT, None));
    h.load(SideId::Target, "west", "US", west);
    let terminal = h.render(120, 40);
    assert!(find(terminal.backend(), "⚠").is_none());
    assert!(find(terminal.backend(), "✖").is_none());
    let wide = format!("{}", terminal.backend());
    assert!(
        wide.contains("13:00 UTC (in 3 h)") && wide.contains("no expiry"),
        "{wide}"
    );
}

#[test]
fn a_cloud_that_names_no_identity_shows_no_access_line() {
    let h = with_access(None, None);
    let wide = text(&h, 120, 40);
    assert!(!wide.contains("expir"), "{wide}");
    assert!(h.app.access(SideId::Source).is_none());
    assert!(!h.app.watches_expiry(), "nothing to watch: no minute tick");
}

#[test]
fn the_minute_tick_redraws_only_when_the_expiry_reads_differently() {
    let mut h = with_access(Some(90), Some(3 * 3600 + 1800));
    assert!(h.app.watches_expiry());
    assert_eq!(h.app.update(Msg::Minute), Redraw::No, "same minute");
    h.set_clock(NOW + 20);
    assert_eq!(h.app.update(Msg::Minute), Redraw::No, "still 2 min left");
    h.set_clock(NOW + 60);
    assert_eq!(h.app.update(Msg::Minute), Redraw::Now, "2 min → 1 min");
    h.set_clock(NOW + 90);
    assert_eq!(h.app.update(Msg::Minute), Redraw::Now, "now expired");
    let narrow = text(&h, 80, 24);
    assert!(
        narrow.contains("✖") && narrow.contains("EXPIRED"),
        "{narrow}"
    );
}

// ------------------------------------------------------------ configuration

#[test]
fn c_shows_the_configuration_lists_and_back() {
    let mut h = with_access(None, None);
    h.keys("c");
    let pane = h.app.pane(SideId::Source);
    assert_eq!(pane.view, PaneView::Configuration);
    assert_eq!(pane.config.total(), 3 + 2 + 2 + 2);
    snap("configuration", &h);
    let narrow = text(&h, 80, 24);
    for title in [
        "networks (3)",
        "firewalls (2)",
        "images (2)",
        "SSH keys (2)",
    ] {
        assert!(narrow.contains(title), "{title}: {narrow}");
    }
    assert!(
        narrow.contains("c instances"),
        "the key bar says how back: {narrow}"
    );
    // The other pane keeps its own view.
    assert_eq!(h.app.pane(SideId::Target).view, PaneView::Instances);
    h.keys("c");
    assert_eq!(h.app.pane(SideId::Source).view, PaneView::Instances);
}

#[test]
fn configuration_is_keyboard_navigable_with_details() {
    let mut h = with_access(None, None);
    h.keys("cjj");
    let current = |h: &Harness| h.app.pane(SideId::Source).config.current();
    assert_eq!(
        current(&h).map(|r| (r.kind, r.index)),
        Some((ConfigKind::Network, 2))
    );
    h.keys("]");
    assert_eq!(current(&h).map(|r| r.kind), Some(ConfigKind::Firewall));
    h.keys("j");
    h.keys("<Enter>");
    assert_eq!(h.app.overlay, Some(Overlay::Details(SideId::Source)));
    snap("configuration_firewall_details", &h);
    let narrow = text(&h, 80, 24);
    for rule in [
        "in tcp 80 from 0.0.0.0/0",
        "in tcp 443 from 0.0.0.0/0",
        "out all",
    ] {
        assert!(narrow.contains(rule), "{rule}: {narrow}");
    }
    h.keys("<Esc>G");
    assert_eq!(
        current(&h).map(|r| (r.kind, r.index)),
        Some((ConfigKind::SshKey, 1))
    );
    h.keys("[[");
    assert_eq!(current(&h).map(|r| r.kind), Some(ConfigKind::Image));
    h.keys("g");
    assert_eq!(
        current(&h).map(|r| (r.kind, r.index)),
        Some((ConfigKind::Network, 0))
    );
    // Space marks instances only: in this view it does nothing.
    h.keys("<Space>");
    assert!(h.app.pane(SideId::Source).marked.is_empty());
}

#[test]
fn the_filter_reaches_configuration_entries() {
    let mut h = with_access(None, None);
    h.keys("<Tab>c/443<Enter>");
    let pane = h.app.pane(SideId::Target);
    assert_eq!(pane.config.visible.len(), 1);
    snap("configuration_filtered", &h);
    let narrow = text(&h, 80, 24);
    assert!(narrow.contains("web-public"), "{narrow}");
    assert!(narrow.contains("firewalls (1 of 2)"), "{narrow}");
    assert!(narrow.contains("none match the filter"), "{narrow}");
}

#[test]
fn a_cloud_without_configuration_lists_says_so() {
    let mut h = Harness::offline("default", ColorDepth::TrueColor);
    h.load(
        SideId::Source,
        "bare",
        "DE",
        synthetic_inventory("bare", 2, &[("eu-1", "DE")]),
    );
    h.keys("c<Enter>j");
    assert!(h.app.overlay.is_none(), "nothing to open");
    let narrow = text(&h, 80, 24);
    assert_eq!(narrow.matches("none reported").count(), 4, "{narrow}");
}

#[test]
fn help_lists_the_configuration_keys() {
    let mut h = with_access(None, None);
    h.keys("?");
    let wide = text(&h, 120, 40);
    assert!(
        wide.contains("show networks, firewalls, images, SSH keys"),
        "{wide}"
    );
    assert!(
        wide.contains("previous / next configuration list"),
        "{wide}"
    );
}
