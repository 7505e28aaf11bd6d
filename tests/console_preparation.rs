//! Guest preparation of plans made in the console, as `altishift plan`
//! records it: a lab plan's guests are inspected in the background when the
//! plan opens, approval waits for it, the changes join the plan under its
//! hash, and a guest that cannot be prepared is not approved. The lab test
//! builds the lab's bootable guest and inspects it with libguestfs (as
//! tests/guest.rs; scripts/test installs what it needs).

use altishift::cloud::lab::generate::{LabScale, init};
use altishift::config::Config;
use altishift::plan::ActionVerb;
use altishift::plan::preparation::{GuestPreparation, Preparation, Status};
use altishift::tui::app::inventory::SideId;
use altishift::tui::app::{Msg, Overlay, Screen};
use altishift::tui::harness::{Harness, synthetic_inventory};
use altishift::tui::theme::ColorDepth;
use std::time::Duration;

fn text(h: &Harness) -> String {
    format!("{}", h.render(120, 40).backend())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lab_guest_is_inspected_when_planned_and_approval_waits_for_its_changes() {
    let dir = tempfile::tempdir().unwrap();
    let summary = init(dir.path(), LabScale::Small).unwrap();
    altishift::cloud::lab::guest::add_guest(dir.path()).unwrap();
    let config = Config::load(&summary.config).unwrap();
    let mut h = Harness::new(
        config,
        dir.path().join("state"),
        "default",
        ColorDepth::TrueColor,
    );
    let limit = Duration::from_secs(120);
    h.wait_for("both inventories", limit, |app| {
        app.pane(SideId::Source).loaded.is_some() && app.pane(SideId::Target).loaded.is_some()
    })
    .await
    .expect("inventories");

    h.keys("/tiny-1<Enter><Space><Esc>p");
    assert_eq!(h.app.screen, Screen::Plan, "{:?}", h.app.status);
    let state = h.app.plan.as_ref().expect("plan");
    assert!(state.inspecting, "a lab plan's guests are inspected");
    assert!(state.plan.preparation.is_empty());
    let before = state.plan.hash();
    assert!(text(&h).contains("inspecting the guests for preparation"));

    // Approval waits for the inspection, whatever is typed.
    let short = before.short().to_string();
    h.keys(&format!("a{short}<Enter>"));
    assert!(h.app.run.is_none());
    let refused = h.app.approve.refused.clone().unwrap_or_default();
    assert!(refused.contains("has not completed"), "{refused}");

    h.wait_for("the inspection", limit, |app| {
        app.plan.as_ref().is_some_and(|p| !p.inspecting)
    })
    .await
    .expect("inspection");
    let plan = &h.app.plan.as_ref().unwrap().plan;
    let guest = &plan.preparation.guests[0];
    assert_eq!(guest.status, Status::Prepare, "{guest:?}");
    assert!(guest.changes.len() >= 3, "{:?}", guest.changes);
    assert!(
        plan.actions
            .iter()
            .any(|a| a.verb == ActionVerb::PrepareGuest && a.detail.contains("/etc/fstab")),
        "{:?}",
        plan.actions
    );
    assert_ne!(plan.hash(), before, "the changes are under the hash");
    let status = h.app.status.clone().map(|(_, s)| s).unwrap_or_default();
    assert!(status.contains("guests inspected: tiny-1"), "{status}");
    h.keys("<Esc>");
    let shown = text(&h);
    assert!(shown.contains("⚙ prepare tiny-1/root"), "{shown}");
    assert!(
        shown.contains("on the target's copy before deploy"),
        "{shown}"
    );
}

/// An inspection that finds a guest it cannot prepare says why over the
/// screen, and the plan is not approved; an answer for a plan that changed
/// since (the cutover toggled) is dropped.
#[test]
fn a_guest_that_cannot_be_prepared_blocks_approval_with_the_reason() {
    let mut h = Harness::offline("default", ColorDepth::TrueColor);
    for (side, cloud) in [(SideId::Source, "east"), (SideId::Target, "west")] {
        h.load(
            side,
            cloud,
            "DE",
            synthetic_inventory(cloud, 2, &[("eu-central", "DE")]),
        );
    }
    h.keys("<Space>p");
    let plan = |h: &Harness| h.app.plan.as_ref().expect("plan").plan.clone();
    let items: Vec<String> = plan(&h)
        .items
        .iter()
        .map(|i| i.instance_id.clone())
        .collect();
    let refused = Preparation {
        unprepared: false,
        guests: vec![GuestPreparation {
            instance: "east-0".into(),
            disk: "east-0-root".into(),
            status: Status::Refused,
            detail: "no virtio_blk or virtio_scsi driver in the guest".into(),
            changes: Vec::new(),
            applied_to: Default::default(),
            needs: Default::default(),
        }],
    };
    let before = plan(&h).hash();
    h.send(Msg::GuestsInspected {
        items: items.clone(),
        cutover: true,
        result: Ok(refused.clone()),
    });
    assert_eq!(plan(&h).hash(), before, "an answer for another plan");

    h.send(Msg::GuestsInspected {
        items,
        cutover: false,
        result: Ok(refused),
    });
    let Some(Overlay::Notice(notice)) = &h.app.overlay else {
        panic!("a notice, not {:?}", h.app.overlay);
    };
    assert_eq!(
        notice.title,
        "east-0/east-0-root cannot be prepared for west"
    );
    assert!(notice.text.contains("virtio_blk"), "{}", notice.text);
    assert!(notice.advice.contains("--unprepared"), "{}", notice.advice);
    h.keys("<Esc>");
    assert!(text(&h).contains("✗ east-0/east-0-root cannot be prepared"));

    let short = plan(&h).hash().short().to_string();
    h.keys(&format!("a{short}<Enter>"));
    assert!(h.app.run.is_none());
    let why = h.app.approve.refused.clone().unwrap_or_default();
    assert!(why.contains("cannot be prepared for the target"), "{why}");
}
