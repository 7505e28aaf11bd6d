//! A lab guest migrated into a cloud that takes the disk before deploy
//! (CloudStack here): the changes its target needs are applied to the run's
//! own snapshot of the source before any block is read, so the cloud
//! receives the prepared disk; the source is never written. Uses the lab's
//! bootable guest and libguestfs (`libguestfs-tools`), as tests/guest.rs.

use altishift_testkit::cloudstack_fake;

use altishift::cloud::Cloud;
use altishift::plan::preparation::{self, AppliedTo, Change, Status};
use cloudstack_fake::FakeCloudStack;
use cloudstack_fake::testkit::*;
use std::sync::Arc;

#[tokio::test]
async fn a_guest_streamed_into_cloudstack_is_prepared_on_the_runs_snapshot_and_the_source_is_untouched()
 {
    let fake = FakeCloudStack::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cloud: Arc<dyn Cloud> = Arc::new(connect(&fake, &dir.path().join("cs-staging")));
    let lab = Lab::new(dir.path());
    let added = altishift::cloud::lab::guest::add_guest(lab.root()).unwrap();
    let source_before = sha256(&added.disk);
    let east = lab.east();
    let mut plan = plan_between(
        ("lab-east", "lab", &lab.east_inventory().await),
        ("cs-test", "cloudstack", &cloud.inventory().await.unwrap()),
        &["tiny-1"],
    );

    // Planned: CloudStack's datasource, on the run's snapshot.
    let planned = preparation_of(&plan, &*east, &*cloud).await;
    let guest = planned.guests[0].clone();
    assert_eq!(guest.status, Status::Prepare, "{guest:?}");
    assert_eq!(guest.applied_to, AppliedTo::RunSnapshot);
    assert!(
        guest.changes.contains(&Change::Datasource {
            list: vec!["CloudStack".into(), "None".into()]
        }),
        "{:?}",
        guest.changes
    );
    let text = preparation::render(&planned).join("\n");
    assert!(
        text.contains("change(s) on this run's snapshot of the source, before it is sent"),
        "{text}"
    );

    // A plan that reads an existing snapshot has no copy of its own to change.
    let mut existing = plan.clone();
    existing.items[0].disks[0].source_snapshot = Some("an-operators-snapshot".into());
    let refused = preparation_of(&existing, &*east, &*cloud).await;
    assert_eq!(refused.guests[0].status, Status::Refused);
    assert!(
        refused.guests[0]
            .detail
            .contains("reads an existing snapshot"),
        "{}",
        refused.guests[0].detail
    );

    preparation::set(&mut plan, planned);
    let approved = approve(plan);
    let state = dir.path().join("state");
    // The first run fails at deploy, after the prepared disk went up...
    fake.fail_next_job(
        "deployVirtualMachine",
        "Unable to create a deployment for VM",
    );
    let failed = run(approved.clone(), east.clone(), cloud.clone(), &state).await;
    assert!(!failed.ok, "{failed:#?}");
    // ...and applying again (with credentials anew: the first run wiped
    // its own) resumes: nothing is prepared twice.
    let cloud: Arc<dyn Cloud> = Arc::new(connect(&fake, &dir.path().join("cs-staging")));
    let report = run(approved, lab.east(), cloud, &state).await;
    assert!(report.ok && report.resumed, "{report:#?}");
    assert_eq!(report.disks[0].blocks_sent, 0, "the disk was already up");
    let audit = std::fs::read_to_string(state.join("audit.jsonl")).unwrap();
    let preparations: Vec<&str> = audit
        .lines()
        .filter(|l| l.contains("\"prepare_guest\"") && l.contains("\"started\""))
        .collect();
    assert_eq!(preparations.len(), 1, "{audit}");
    assert!(
        preparations[0].contains("lab-east"),
        "on the source's snapshot: {audit}"
    );
    // The cloud got exactly the prepared snapshot's blocks.
    let disk = &report.disks[0];
    assert!(disk.source_digest.is_some());
    assert_eq!(disk.source_digest, disk.target_digest, "{}", disk.disk);
    let checks = &report.instances[0].checks;
    for change in &guest.changes {
        let name = format!("prepared: {change}");
        let check = checks.iter().find(|c| c.name == name);
        assert!(
            check.is_some_and(|c| c.passed && c.detail.starts_with("verified: ")),
            "{name}: {checks:#?}"
        );
    }
    assert_eq!(
        sha256(&added.disk),
        source_before,
        "the run wrote the source"
    );

    // What CloudStack holds, inspected independently of the run: prepared.
    let s = fake.state();
    let vm = s.vms.iter().find(|v| v.name == "tiny-1").expect("deployed");
    let root = s
        .volumes
        .iter()
        .find(|v| v.vm.as_ref() == Some(&vm.id) && v.kind == "ROOT")
        .expect("root volume");
    let stored = root.data.clone().expect("volume data");
    let found = inspect_stored(&stored);
    for change in &guest.changes {
        altishift::guest::verify::verify(change, &found)
            .unwrap_or_else(|why| panic!("{change}: not on CloudStack's volume: {why}"));
    }
    assert!(
        found.datasources.starts_with(&["CloudStack".to_string()]),
        "{:?}",
        found.datasources
    );
}
