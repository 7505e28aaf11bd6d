//! Planning as an operator meets it when something stands in the way: a
//! target that refuses an instance says why in full, and credentials that
//! run out before the plan's estimated end are flagged where it is approved.

use altishift::config::Config;
use altishift::inventory::Platform;
use altishift::tui::app::inventory::SideId;
use altishift::tui::app::{Overlay, Screen};
use altishift::tui::harness::{Harness, synthetic_access, synthetic_inventory};
use altishift::tui::theme::ColorDepth;
use altishift::units::Bytes;

const SIZES: [(u16, u16); 2] = [(80, 24), (120, 40)];

/// 2026-11-28 10:00 UTC.
const NOW: u64 = 1_795_860_000;

fn snap(name: &str, h: &Harness) {
    for (w, ht) in SIZES {
        let terminal = h.render(w, ht);
        insta::assert_snapshot!(format!("{name}_{w}x{ht}"), terminal.backend());
    }
}

fn text(h: &Harness, w: u16, ht: u16) -> String {
    format!("{}", h.render(w, ht).backend())
}

/// The text inside the popup box drawn on top (the one whose top-left
/// corner is `┏` furthest down), its lines joined with spaces, so a
/// wrapped sentence can be searched for whole.
fn popup_text(h: &Harness, w: u16, ht: u16) -> String {
    let terminal = h.render(w, ht);
    let buffer = terminal.backend().buffer();
    let cell = |x: u16, y: u16| buffer[(x, y)].symbol().to_string();
    let Some((left, top)) = (1..ht)
        .rev()
        .flat_map(|y| (0..w).map(move |x| (x, y)))
        .find(|&(x, y)| cell(x, y) == "┏")
    else {
        return String::new();
    };
    let right = (left + 1..w).find(|&x| cell(x, top) == "┓").unwrap_or(w);
    let mut words = Vec::new();
    for y in top + 1..ht {
        if cell(left, y) == "┗" {
            break;
        }
        let line: String = (left + 1..right).map(|x| cell(x, y)).collect();
        words.extend(line.split_whitespace().map(str::to_string));
    }
    words.join(" ")
}

// ------------------------------------------------------------ refused plans

/// East (lab) → a DigitalOcean target; web-0's boot disk is `boot` big.
fn to_digitalocean(boot: Bytes, os: Option<&str>) -> Harness {
    let mut h = Harness::offline("default", ColorDepth::TrueColor);
    let mut east = synthetic_inventory("east", 6, &[("eu-central", "DE")]);
    east.instances[0].disks[0].virtual_size = boot;
    east.instances[0].platform = Platform {
        os: os.map(str::to_string),
        ..Platform::default()
    };
    h.load(SideId::Source, "east", "DE", east);
    // What DigitalOcean's inventory carries: the rules it declares.
    let mut target = synthetic_inventory("do-ams", 2, &[("ams3", "NL")]);
    target.rules = altishift::cloud::digitalocean::rules();
    h.load_as(SideId::Target, "do-ams", "digitalocean", "NL", target);
    h
}

#[test]
fn a_plan_the_target_refuses_says_why_in_full() {
    let mut h = to_digitalocean(Bytes::gib(120), Some("Ubuntu 24.04"));
    h.keys("<Space>p");
    assert_eq!(h.app.screen, Screen::Inventory, "no plan to review");
    assert!(h.app.plan.is_none());
    let Some(Overlay::Notice(notice)) = &h.app.overlay else {
        panic!("a notice, not {:?}", h.app.overlay);
    };
    assert_eq!(notice.title, "do-ams cannot take web-0");
    snap("plan_refused_too_big", &h);
    // The whole reason is on screen even at 80 columns, not cut at the edge.
    let narrow = popup_text(&h, 80, 24);
    assert!(
        narrow.contains(
            "DigitalOcean custom images must be under 100 GB uncompressed; the boot disk is \
             120.0 GiB (128849018880 bytes)"
        ),
        "{narrow}"
    );
    assert!(narrow.contains("Unmark web-0 (Space)"), "{narrow}");
    assert!(
        h.app.log.iter().any(|l| l.text.contains("under 100 GB")),
        "the log keeps it after the notice closes"
    );
    // Esc closes it; unmarking web-0 and marking cache-2 (one disk, under
    // the limit) plans fine.
    h.keys("<Esc>");
    assert!(h.app.overlay.is_none());
    h.keys("k<Space>j<Space>p");
    assert_eq!(h.app.screen, Screen::Plan, "{:?}", h.app.overlay);
    let plan = &h.app.plan.as_ref().expect("plan").plan;
    assert_eq!(plan.items[0].instance_name, "cache-2");
}

#[test]
fn a_windows_source_is_refused_by_digitalocean_with_its_os_named() {
    let mut h = to_digitalocean(Bytes::gib(30), Some("Windows Server 2022"));
    h.keys("<Space>p");
    let Some(Overlay::Notice(notice)) = &h.app.overlay else {
        panic!("a notice, not {:?}", h.app.overlay);
    };
    assert!(notice.text.contains("must be Linux"), "{}", notice.text);
    let narrow = popup_text(&h, 80, 24);
    assert!(
        narrow.contains("the source runs 'Windows Server 2022'"),
        "{narrow}"
    );
}

// ------------------------------------------------------------ credentials

/// Two instances planned east → west with a per-disk throttle that makes the
/// estimate about two hours; credentials end `source_left`/`target_left`
/// seconds from now (negative: already expired).
fn planned_with_access(source_left: Option<i64>, target_left: Option<i64>) -> Harness {
    let mut h = Harness::offline("default", ColorDepth::TrueColor);
    h.set_clock(NOW);
    h.app.throttle = Some(Bytes(8 * 1024));
    let at = |left: i64| NOW.checked_add_signed(left);
    let mut east = synthetic_inventory("east", 12, &[("eu-central", "DE")]);
    east.access = source_left.map(|l| synthetic_access("arn:aws:sts::1:assumed-role/m/a", at(l)));
    let mut west = synthetic_inventory("west", 6, &[("us-west", "US")]);
    west.access = target_left.map(|l| synthetic_access("migrator@example.iam", at(l)));
    h.load(SideId::Source, "east", "DE", east);
    h.load(SideId::Target, "west", "US", west);
    h.keys("<Space>j<Space>p");
    assert_eq!(h.app.screen, Screen::Plan, "{:?}", h.app.overlay);
    let state = h.app.plan.as_mut().expect("a plan");
    state.plan.created_at = "2026-11-26T12:00:00Z".into();
    let estimate = state.plan.summary.estimate_seconds;
    assert!((3600..3 * 3600).contains(&estimate), "{estimate}");
    h
}

#[test]
fn approval_warns_when_credentials_end_before_the_estimated_end() {
    // Source: 90 minutes left, short of the ~2 h estimate. Target: 3 h, fine.
    let mut h = planned_with_access(Some(90 * 60), Some(3 * 3600));
    let plan = h.app.plan.as_ref().map(|p| p.plan.clone()).expect("plan");
    let short = h.app.access_short_of(&plan);
    assert_eq!(short.len(), 1);
    assert_eq!(short[0].side, SideId::Source);
    h.keys("a");
    snap("approve_source_credentials_short", &h);
    let narrow = text(&h, 80, 24);
    assert!(
        narrow.contains("⚠ source east: credentials expire 2026-11-28 11:30 UTC (in 90 min)"),
        "{narrow}"
    );
    assert!(
        narrow.contains("renew and reconnect (:from east)"),
        "{narrow}"
    );
    assert!(!narrow.contains("target west: credentials"), "{narrow}");
    let wide = text(&h, 120, 40);
    assert!(
        wide.contains("before the run's estimated end (1h 54m"),
        "{wide}"
    );
}

#[test]
fn expired_credentials_are_an_error_on_plan_and_approval() {
    let mut h = planned_with_access(Some(3 * 3600), Some(-60));
    let theme = h.app.theme.clone();
    let narrow = text(&h, 80, 24);
    assert!(
        narrow.contains("✖ target west: credentials EXPIRED 2026-11-28 09:59 UTC"),
        "{narrow}"
    );
    h.keys("a");
    let terminal = h.render(80, 24);
    let buffer = terminal.backend().buffer();
    let sign = (0..24u16)
        .flat_map(|y| (0..80u16).map(move |x| (x, y)))
        .find(|&(x, y)| buffer[(x, y)].symbol() == "✖")
        .expect("the expired sign on the approve screen");
    assert_eq!(buffer[sign].style().fg, theme.ui.error.fg);
}

#[test]
fn credentials_that_outlast_the_run_add_nothing() {
    let mut h = planned_with_access(Some(5 * 3600), None);
    h.keys("a");
    let wide = text(&h, 120, 40);
    assert!(!wide.contains("credentials"), "{wide}");
}

// ------------------------------------------------------------ cutover

#[test]
fn x_makes_the_plan_a_cutover_and_its_steps_are_approved_with_it() {
    use altishift::plan::ActionVerb;
    let mut h = planned_with_access(None, None);
    let plain = h.app.plan.as_ref().map(|p| p.plan.hash()).expect("plan");
    let verbs = |h: &Harness| -> Vec<ActionVerb> {
        let plan = &h.app.plan.as_ref().expect("plan").plan;
        plan.actions.iter().map(|a| a.verb).collect()
    };
    h.keys("x");
    let plan = &h.app.plan.as_ref().expect("plan").plan;
    assert!(plan.cutover.as_ref().is_some_and(|c| c.power_off));
    assert_ne!(plan.hash(), plain, "a cutover is a different plan");
    assert!(verbs(&h).contains(&ActionVerb::QuiesceSource));
    assert!(verbs(&h).contains(&ActionVerb::PowerOffSource));
    snap("plan_cutover", &h);
    let narrow = text(&h, 80, 24);
    assert!(
        narrow.contains("⇄ CUTOVER: copy while the source runs, up to 3 delta passes"),
        "{narrow}"
    );
    assert!(
        narrow.contains("then the source is powered OFF"),
        "{narrow}"
    );

    // The approve screen shows it too: it is what is being approved.
    h.keys("a");
    let wide = text(&h, 120, 40);
    assert!(wide.contains("then the source is powered OFF"), "{wide}");
    assert!(wide.contains("power off source"), "{wide}");
    h.keys("<Esc>x");
    let plan = &h.app.plan.as_ref().expect("plan").plan;
    assert!(plan.cutover.as_ref().is_some_and(|c| !c.power_off));
    assert!(verbs(&h).contains(&ActionVerb::ThawSource));
    assert!(text(&h, 80, 24).contains("then the source keeps running"));
    h.keys("x");
    let plan = &h.app.plan.as_ref().expect("plan").plan;
    assert!(plan.cutover.is_none());
    assert_eq!(plan.hash(), plain, "back to the plain plan, same hash");
}

// ------------------------------------------------------------ waves

#[test]
fn w_moves_the_selected_item_to_the_next_wave_and_the_hash_follows() {
    let mut h = planned_with_access(None, None);
    let plan = |h: &Harness| h.app.plan.as_ref().expect("plan").plan.clone();
    let plain = plan(&h);
    assert!(plain.items.iter().all(|i| i.wave == 1));
    h.keys("jw");
    let waved = plan(&h);
    let waves: Vec<u32> = waved.items.iter().map(|i| i.wave).collect();
    assert_eq!(waves, vec![1, 2]);
    assert_ne!(waved.hash(), plain.hash(), "waves are in the hash");
    // The moved item's actions now come after the other's.
    let first_deploy = waved
        .actions
        .iter()
        .find(|a| a.verb == altishift::plan::ActionVerb::DeployInstance)
        .expect("a deploy");
    assert_eq!(first_deploy.resource, waved.items[0].target_name);
    let narrow = text(&h, 80, 24);
    assert!(
        narrow.contains("2 wave(s), each validated before the next starts"),
        "{narrow}"
    );
    assert!(
        h.app
            .status
            .as_ref()
            .is_some_and(|(_, s)| s.contains("wave 2 of 2")),
        "{:?}",
        h.app.status
    );
    // The approval screen shows the new hash: the old one is no more.
    h.keys("a");
    assert!(text(&h, 120, 40).contains(waved.hash().short()));
    // Two items make two waves at most: the next `w` brings it back.
    h.keys("<Esc>w");
    assert_eq!(plan(&h).hash(), plain.hash());
    assert!(h.app.hints().iter().any(|k| k.key == "w"));
    assert!(h.app.help().iter().any(|k| k.key == "w"));
}

#[test]
fn keys_rebound_in_the_config_drive_handling_bar_and_help() {
    let mut config = altishift::config::Config::default();
    config.keys.insert("plan.wave".into(), "W".into());
    let mut h = Harness::new(
        config,
        "/nonexistent".into(),
        "default",
        ColorDepth::TrueColor,
    );
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
        synthetic_inventory("west", 4, &[("us-west", "US")]),
    );
    h.keys("<Space>j<Space>p");
    assert_eq!(h.app.screen, Screen::Plan, "{:?}", h.app.overlay);
    let waves = |h: &Harness| -> Vec<u32> {
        let plan = &h.app.plan.as_ref().expect("plan").plan;
        plan.items.iter().map(|i| i.wave).collect()
    };
    // `w` no longer moves the item; `W` does.
    h.keys("jw");
    assert_eq!(waves(&h), vec![1, 1]);
    h.keys("W");
    assert_eq!(waves(&h), vec![1, 2]);
    // The bar and the help say the new key, from the same table.
    assert!(
        h.app
            .hints()
            .iter()
            .any(|k| k.key == "W" && k.action == "wave")
    );
    assert!(!h.app.hints().iter().any(|k| k.key == "w"));
    assert!(
        h.app
            .help()
            .iter()
            .any(|k| k.key == "W" && k.action.contains("next wave"))
    );
    assert!(text(&h, 120, 40).contains("W wave"));
}

// ------------------------------------------------------------ rehearsal (r)

/// `r` asks the runtime for a rehearsal and says so; a guest that booted joins
/// the plan under its hash, one that did not keeps the plan from approval.
/// (The boot itself is `tests/console.rs`'s real lab run; here the answers
/// are the runtime's messages.)
#[tokio::test]
async fn the_rehearsal_key_records_boots_in_the_plan_and_a_failed_boot_blocks_approval() {
    use altishift::plan::RehearsalRecord;
    use altishift::tui::app::Msg;
    let mut h = Harness::offline("default", ColorDepth::TrueColor);
    h.load(
        SideId::Source,
        "east",
        "DE",
        synthetic_inventory("east", 2, &[("eu-central", "DE")]),
    );
    h.load(
        SideId::Target,
        "west",
        "DE",
        synthetic_inventory("west", 2, &[("eu-central", "DE")]),
    );
    h.keys("<Space>p");
    let plan = |h: &Harness| h.app.plan.as_ref().expect("plan").plan.clone();
    let before = plan(&h).hash();
    let items: Vec<String> = plan(&h)
        .items
        .iter()
        .map(|i| i.instance_id.clone())
        .collect();

    assert!(
        h.app
            .help()
            .iter()
            .any(|k| k.key == "r" && k.action.contains("QEMU"))
    );
    h.keys("r");
    assert!(h.app.plan.as_ref().is_some_and(|p| p.rehearsing.is_some()));
    assert!(
        text(&h, 120, 40).contains("rehearsal: starting QEMU"),
        "{}",
        text(&h, 120, 40)
    );
    // The offline harness has no connected cloud: the runtime says so.
    h.wait_for(
        "the rehearsal's answer",
        std::time::Duration::from_secs(10),
        |app| app.plan.as_ref().is_some_and(|p| p.rehearsing.is_none()),
    )
    .await
    .expect("answer");
    let status = h.app.status.clone().map(|(_, s)| s).unwrap_or_default();
    assert!(status.contains("east is not connected"), "{status}");
    assert_eq!(plan(&h).hash(), before, "nothing recorded");

    let record = |booted: bool| RehearsalRecord {
        instance: "east-0".into(),
        disk: "east-0-root".into(),
        booted,
        accel: "tcg".into(),
        elapsed_ms: 7_300,
        expect: "login:".into(),
        matched: booted.then(|| "tiny-1 login:".into()),
        detail: if booted {
            String::new()
        } else {
            "no `login:` within 10s".into()
        },
        accel_note: String::new(),
        prepared: false,
        serial_tail: vec!["Kernel panic - not syncing: VFS".into()],
    };
    // An answer for other items (the plan changed meanwhile) is dropped.
    h.send(Msg::Rehearsed {
        items: vec!["other".into()],
        result: Ok(vec![record(true)]),
    });
    assert_eq!(plan(&h).hash(), before);

    h.send(Msg::Rehearsed {
        items: items.clone(),
        result: Ok(vec![record(true)]),
    });
    assert_ne!(plan(&h).hash(), before, "the rehearsal is under the hash");
    assert!(
        text(&h, 120, 40).contains("✓ rehearsal: east-0 booted in 7.3s (tcg): 'tiny-1 login:'")
    );

    h.send(Msg::Rehearsed {
        items,
        result: Ok(vec![record(false)]),
    });
    assert!(
        matches!(&h.app.overlay, Some(Overlay::Notice(n)) if n.title == "east-0/east-0-root did not boot in the rehearsal")
    );
    assert!(popup_text(&h, 120, 40).contains("Kernel panic"));
    // Approving it is refused by the model, whatever is typed.
    h.keys("<Esc>a");
    let short = plan(&h).hash().short().to_string();
    h.keys(&format!("{short}<Enter>"));
    assert!(h.app.run.is_none());
    let refused = h.app.approve.refused.clone().unwrap_or_default();
    assert!(
        refused.contains("did not boot in the rehearsal"),
        "{refused}"
    );
}

/// Two instances of east marked and planned to west.
fn planned() -> Harness {
    let mut h = Harness::offline("default", ColorDepth::TrueColor);
    h.load_east_west();
    h.keys("<Space>j<Space>p");
    assert_eq!(h.app.screen, Screen::Plan, "status: {:?}", h.app.status);
    h
}

#[test]
fn edited_size_is_checked_against_the_target_catalogue() {
    let mut h = planned();
    let original = h.app.plan.as_ref().map(|p| p.plan.hash()).expect("plan");
    h.keys("e");
    for _ in 0..12 {
        h.keys("<BS>");
    }
    h.keys("t.huge<Enter>");
    let edit = h
        .app
        .plan
        .as_ref()
        .and_then(|p| p.edit.as_ref())
        .expect("edit stays open");
    assert!(
        edit.error.as_deref().unwrap_or_default().contains("not in"),
        "{:?}",
        edit.error
    );
    for _ in 0..12 {
        h.keys("<BS>");
    }
    h.keys("t.xlarge<Enter>");
    let state = h.app.plan.as_ref().expect("plan");
    assert!(state.edit.is_none());
    assert_eq!(state.plan.items[0].target_size, "t.xlarge");
    assert_ne!(state.plan.hash(), original, "an edit changes the hash");
    assert!(
        state
            .plan
            .actions
            .iter()
            .any(|a| a.detail.contains("t.xlarge")),
        "actions are refreshed"
    );
}

#[test]
fn a_target_name_already_taken_is_flagged_and_can_be_renamed() {
    // Both synthetic clouds name their first instance web-0.
    let mut h = planned();
    let text = format!("{}", h.render(120, 40).backend());
    assert!(
        text.contains("already has an instance named 'web-0'"),
        "{text}"
    );
    h.keys("n");
    for _ in 0..12 {
        h.keys("<BS>");
    }
    h.keys("db-1<Enter>");
    let refused = h
        .app
        .plan
        .as_ref()
        .and_then(|p| p.edit.as_ref())
        .and_then(|e| e.error.clone());
    assert!(
        refused.unwrap_or_default().contains("already has"),
        "db-1 exists in west too"
    );
    for _ in 0..12 {
        h.keys("<BS>");
    }
    h.keys("web-0-migrated<Enter>");
    let plan = &h.app.plan.as_ref().expect("plan").plan;
    assert_eq!(plan.items[0].target_name, "web-0-migrated");
    assert!(
        plan.actions.iter().any(|a| a.resource == "web-0-migrated"),
        "actions follow the new name"
    );
    let text = format!("{}", h.render(120, 40).backend());
    assert!(
        !text.contains("already has an instance named 'web-0'"),
        "{text}"
    );
}

#[test]
fn a_config_that_requires_signatures_never_runs_from_a_typed_hash() {
    let config: Config =
        toml::from_str("[approval]\nallowed_signers = \"allowed_signers\"\napprovers = 2\n")
            .expect("config");
    let mut h = Harness::new(
        config,
        "/nonexistent".into(),
        "default",
        ColorDepth::TrueColor,
    );
    h.load_east_west();
    h.keys("<Space>p");
    assert_eq!(h.app.screen, Screen::Plan, "status: {:?}", h.app.status);
    let short = h
        .app
        .plan
        .as_ref()
        .map(|p| p.plan.hash().short().to_string())
        .expect("a plan");
    h.keys(&format!("a{short}<Tab>yes<Enter>"));
    h.drain();
    let status = h.app.status.as_ref().map(|(_, text)| text.clone());
    assert!(
        status
            .as_deref()
            .is_some_and(|s| s.contains("requires 2 signed approval(s)")),
        "{status:?}"
    );
    assert_eq!(h.app.screen, Screen::Approve, "no run started");
    assert!(h.app.run.is_none());
}
