//! A guest whose disk stays in its cloud until the run (a CloudStack VM
//! here): the plan cannot inspect it, so it approves the target's needs; the
//! run inspects a copy on this machine and applies what they call for:
//! - into the lab, on the target's copy before deploy (the guest boots);
//! - into another CloudStack, on a copy of the run's snapshot staged here,
//!   which is what the target receives.
//!
//! The source is never written. Uses the lab's bootable guest (tiny-1, with
//! an fstab by device name and a static netplan) and libguestfs, as
//! tests/guest.rs.

use altishift_testkit::cloudstack_fake;

use altishift::cloud::Cloud;
use altishift::guest::inspect::Inspection;
use altishift::plan::preparation::{self, AppliedTo, Status};
use cloudstack_fake::testkit::*;
use cloudstack_fake::{API_KEY, FakeCloudStack, SECRET_KEY};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A CloudStack fake whose VM "tiny-1" has the lab guest's disk as its ROOT
/// volume (qcow2, as CloudStack on KVM keeps it), and the lab (for its
/// guest builder and as a target). Returns the stored volume's path.
async fn tiny_in_cloudstack(dir: &Path) -> (FakeCloudStack, Lab, PathBuf) {
    let fake = FakeCloudStack::start().await;
    let lab = Lab::new(dir);
    let added = altishift::cloud::lab::guest::add_guest(lab.root()).unwrap();
    let qcow2 = dir.join("tiny-1.qcow2");
    let converted = std::process::Command::new("qemu-img")
        .args(["convert", "-O", "qcow2"])
        .arg(&added.disk)
        .arg(&qcow2)
        .status()
        .unwrap();
    assert!(converted.success());
    let size = std::fs::metadata(&added.disk).unwrap().len();
    fake.add_vm("tiny-1", "Medium Instance", Some((qcow2, size)));
    let stored = root_volume(&fake, "tiny-1");
    (fake, lab, stored)
}

/// The file behind `vm`'s ROOT volume in `fake`.
fn root_volume(fake: &FakeCloudStack, vm: &str) -> PathBuf {
    let s = fake.state();
    let vm = s.vms.iter().find(|v| v.name == vm).expect("the vm");
    let root = s
        .volumes
        .iter()
        .find(|v| v.vm.as_ref() == Some(&vm.id) && v.kind == "ROOT")
        .expect("its root volume");
    root.data.clone().expect("volume data")
}

/// The source CloudStack ("cs-test"), with credentials anew (a run wipes
/// its own at the end).
fn east_cs(fake: &FakeCloudStack, dir: &Path) -> Arc<dyn Cloud> {
    Arc::new(connect(fake, &dir.join("cs-staging")))
}

/// The target CloudStack ("cs-west"), a second fake.
fn west_cs(fake: &FakeCloudStack, dir: &Path) -> Arc<dyn Cloud> {
    Arc::new(connect_named(
        "cs-west",
        fake,
        &dir.join("west-staging"),
        API_KEY,
        SECRET_KEY,
    ))
}

/// The ids of the disks runs under `state` wrote (their journals).
fn written_ids(state: &Path) -> Vec<String> {
    let mut ids = Vec::new();
    for run in std::fs::read_dir(state.join("runs")).unwrap() {
        let journal = std::fs::read_to_string(run.unwrap().path().join("journal.jsonl")).unwrap();
        for line in journal.lines() {
            let record: serde_json::Value = serde_json::from_str(line).unwrap();
            if record["rec"] == "disk_written" {
                ids.push(record["written"]["id"].as_str().unwrap().to_string());
            }
        }
    }
    ids
}

/// A cutover with one delta pass, powering the source off.
fn one_pass_cutover() -> altishift::plan::Cutover {
    altishift::plan::Cutover {
        quiesce: None,
        thaw: None,
        power_off: true,
        max_delta_passes: 1,
    }
}

/// Staged copies left in the run folders under `state`.
fn staged_copies(state: &Path) -> usize {
    std::fs::read_dir(state.join("runs"))
        .unwrap()
        .map(|run| run.unwrap().path().join("guest-copies"))
        .map(|dir| std::fs::read_dir(dir).map_or(0, |d| d.count()))
        .sum()
}

/// What tiny-1 is built with, and preparation must undo on the copy.
fn assert_prepared(found: &Inspection, datasource: &str, place: &str) {
    assert!(
        found.fstab.iter().all(|e| !e.by_device),
        "{place}: fstab still by device: {:?}",
        found.fstab
    );
    assert!(
        found
            .network
            .iter()
            .filter(|n| n.kind == "netplan")
            .all(|n| n.static_addresses.is_empty()),
        "{place}: a static netplan is left: {:?}",
        found.network
    );
    assert!(
        found.datasources.first().map(String::as_str) == Some(datasource),
        "{place}: datasources {:?}",
        found.datasources
    );
    assert!(found.serial_console(), "{place}: no serial console");
}

/// The run's checks for the guest: every `prepared: …` one verified.
fn assert_checks(report: &altishift::engine::report::RunReport) -> usize {
    let checks = &report.instances[0].checks;
    let inspection = checks.iter().find(|c| c.name == "guest inspection");
    assert!(
        inspection.is_some_and(|c| c.passed && c.detail.contains("change(s)")),
        "{checks:#?}"
    );
    let prepared: Vec<_> = checks
        .iter()
        .filter(|c| c.name.starts_with("prepared: "))
        .collect();
    assert!(
        prepared.len() >= 3,
        "fstab, network, datasource: {checks:#?}"
    );
    for check in &prepared {
        assert!(
            check.passed && check.detail.starts_with("verified: "),
            "{check:?}"
        );
    }
    prepared.len()
}

#[tokio::test]
async fn a_cloudstack_guest_is_inspected_during_the_run_and_prepared_on_the_lab_copy() {
    let dir = tempfile::tempdir().unwrap();
    let (fake, lab, stored) = tiny_in_cloudstack(dir.path()).await;
    let stored_before = sha256(&stored);
    let cloud: Arc<dyn Cloud> = east_cs(&fake, dir.path());
    let west = lab.west();
    let mut plan = plan_between(
        ("cs-test", "cloudstack", &cloud.inventory().await.unwrap()),
        ("lab-west", "lab", &lab.west_inventory().await),
        &["tiny-1"],
    );
    let planned = preparation_of(&plan, &*cloud, &*west).await;
    let guest = planned.guests[0].clone();
    assert_eq!(guest.status, Status::InspectAtRun, "{guest:?}");
    assert_eq!(guest.applied_to, AppliedTo::TargetCopy);
    assert_eq!(
        guest.needs,
        altishift::cloud::ProviderKind::Lab.rules().target.guest,
        "the lab's needs, under the hash"
    );
    assert!(guest.changes.is_empty(), "not known before the run");
    // A cutover too: the lab's copy is prepared after the last pass.
    let mut cutover = plan.clone();
    cutover.cutover = Some(one_pass_cutover());
    let after_passes = preparation_of(&cutover, &*cloud, &*west).await;
    assert_eq!(after_passes.guests[0].status, Status::InspectAtRun);
    assert_eq!(after_passes.guests[0].applied_to, AppliedTo::TargetCopy);
    assert_eq!(
        fake.mutating_received(),
        Vec::<String>::new(),
        "planning changed the cloud"
    );
    preparation::set(&mut plan, planned);
    let text = altishift::plan::render::render(&plan);
    assert!(
        text.contains("tiny-1/") && text.contains("inspected during the run on the target's copy"),
        "{text}"
    );

    let report = run(approve(plan), cloud, west, &dir.path().join("state")).await;
    assert!(report.ok, "{report:#?}");
    assert_checks(&report);
    let copy = lab.instance_disks("lab-west", "tiny-1");
    assert_prepared(&inspect_stored(&copy[0]), "NoCloud", "the lab's copy");
    assert_eq!(sha256(&stored), stored_before, "the run wrote the source");
}

#[tokio::test]
async fn a_cloudstack_guest_going_to_another_cloudstack_is_prepared_on_a_staged_copy() {
    let dir = tempfile::tempdir().unwrap();
    let (source_fake, _lab, stored) = tiny_in_cloudstack(dir.path()).await;
    let stored_before = sha256(&stored);
    let target_fake = FakeCloudStack::start().await;
    let source: Arc<dyn Cloud> = east_cs(&source_fake, dir.path());
    let target = west_cs(&target_fake, dir.path());
    let mut plan = plan_between(
        ("cs-test", "cloudstack", &source.inventory().await.unwrap()),
        ("cs-west", "cloudstack", &target.inventory().await.unwrap()),
        &["tiny-1"],
    );
    let planned = preparation_of(&plan, &*source, &*target).await;
    let guest = planned.guests[0].clone();
    assert_eq!(guest.status, Status::InspectAtRun, "{guest:?}");
    assert_eq!(guest.applied_to, AppliedTo::StagedCopy);
    assert_eq!(guest.needs.datasource.as_deref(), Some("CloudStack"));

    // A cutover would send the source's later changes over the prepared
    // copy: not planned, and said so.
    let mut cutover = plan.clone();
    cutover.cutover = Some(one_pass_cutover());
    let not = preparation_of(&cutover, &*source, &*target).await;
    assert_eq!(not.guests[0].status, Status::NotPlanned);
    assert!(not.guests[0].detail.contains("cutover"), "{not:?}");

    preparation::set(&mut plan, planned);
    let approved = approve(plan);
    let state = dir.path().join("state");
    let copies = || staged_copies(&state);
    // The first run fails uploading the prepared copy: it is kept...
    target_fake.break_next_uploads(100);
    let failed = run(approved.clone(), source.clone(), target, &state).await;
    assert!(!failed.ok, "{failed:#?}");
    assert_eq!(copies(), 1, "the prepared copy is kept for the resume");
    // ...the second sends that same copy on, and fails at deploy...
    target_fake.break_next_uploads(0);
    target_fake.fail_next_job(
        "deployVirtualMachine",
        "Unable to create a deployment for VM",
    );
    let source: Arc<dyn Cloud> = east_cs(&source_fake, dir.path());
    let failed = run(
        approved.clone(),
        source,
        west_cs(&target_fake, dir.path()),
        &state,
    )
    .await;
    assert!(!failed.ok, "{failed:#?}");
    assert!(failed.resumed, "{failed:#?}");
    assert_eq!(
        copies(),
        0,
        "the copy is gone once the target holds the disk"
    );
    // ...and the third resumes: the copy is neither staged nor prepared again.
    let source: Arc<dyn Cloud> = east_cs(&source_fake, dir.path());
    let report = run(approved, source, west_cs(&target_fake, dir.path()), &state).await;
    assert!(report.ok && report.resumed, "{report:#?}");
    assert_eq!(report.disks[0].blocks_sent, 0, "the disk was already up");
    let disk = &report.disks[0];
    assert_eq!(disk.source_digest, disk.target_digest, "{}", disk.disk);
    let prepared = assert_checks(&report);
    let audit = std::fs::read_to_string(state.join("audit.jsonl")).unwrap();
    let preparations = audit
        .lines()
        .filter(|l| l.contains("\"prepare_guest\"") && l.contains("\"started\""))
        .count();
    assert_eq!(preparations, 1, "{audit}");

    // What the target CloudStack holds, inspected independently: prepared.
    let found = inspect_stored(&root_volume(&target_fake, "tiny-1"));
    assert_prepared(&found, "CloudStack", "the target's volume");
    assert!(prepared >= 3);
    assert_eq!(sha256(&stored), stored_before, "the run wrote the source");
}

#[tokio::test]
async fn a_guest_found_not_preparable_during_the_run_sends_nothing_unless_unprepared() {
    let dir = tempfile::tempdir().unwrap();
    let (source_fake, _lab, stored) = tiny_in_cloudstack(dir.path()).await;
    let stored_before = sha256(&stored);
    let target_fake = FakeCloudStack::start().await;
    let source: Arc<dyn Cloud> = east_cs(&source_fake, dir.path());
    let target: Arc<dyn Cloud> = west_cs(&target_fake, dir.path());
    let mut plan = plan_between(
        ("cs-test", "cloudstack", &source.inventory().await.unwrap()),
        ("cs-west", "cloudstack", &target.inventory().await.unwrap()),
        &["tiny-1"],
    );
    let mut planned = preparation_of(&plan, &*source, &*target).await;
    // Approved needs that tiny-1's kernel cannot meet (gve: Google's NIC).
    planned.guests[0].needs.drivers.push(vec!["gve".into()]);
    preparation::set(&mut plan, planned);

    let state = dir.path().join("state");
    let refused = run(
        approve(plan.clone()),
        source.clone(),
        target.clone(),
        &state,
    )
    .await;
    assert!(!refused.ok, "{refused:#?}");
    let error = refused.disks[0].error.clone().unwrap_or_default();
    assert!(
        error.contains("cannot be prepared for cs-west")
            && error.contains("gve")
            && error.contains("--unprepared"),
        "{error}"
    );
    assert_eq!(refused.disks[0].blocks_sent, 0);
    assert_eq!(
        target_fake.mutating_received(),
        Vec::<String>::new(),
        "the refused guest reached the target"
    );
    assert_eq!(staged_copies(&state), 0, "the refused copy is kept");

    // With --unprepared (a new plan, a new hash) it migrates as it is
    // (with credentials anew: the first run wiped its own).
    plan.preparation.unprepared = true;
    let source: Arc<dyn Cloud> = east_cs(&source_fake, dir.path());
    let target: Arc<dyn Cloud> = west_cs(&target_fake, dir.path());
    let report = run(approve(plan), source, target, &state).await;
    assert!(report.ok, "{report:#?}");
    let checks = &report.instances[0].checks;
    let check = checks.iter().find(|c| c.name == "guest preparation");
    assert!(
        check.is_some_and(|c| c.passed
            && c.detail.contains("migrated as it is (--unprepared)")
            && c.detail.contains("gve")),
        "{checks:#?}"
    );
    let found = inspect_stored(&root_volume(&target_fake, "tiny-1"));
    assert!(
        found.fstab.iter().any(|e| e.by_device),
        "an unprepared guest was changed: {:?}",
        found.fstab
    );
    assert_eq!(sha256(&stored), stored_before, "the run wrote the source");
}

#[tokio::test]
async fn a_cloudstack_guest_going_to_aws_is_prepared_for_nitro_on_a_staged_copy() {
    use altishift_testkit::aws_kit;
    use altishift_testkit::moto::Moto;
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let (fake, _lab, stored) = tiny_in_cloudstack(dir.path()).await;
    let stored_before = sha256(&stored);
    let source = east_cs(&fake, dir.path());
    let aws = aws_kit::aws(&moto, "aws-target", "eu-central-1").await;
    let target: Arc<dyn Cloud> = Arc::new(aws_kit::aws(&moto, "aws-target", "eu-central-1").await);
    let mut plan = plan_between(
        ("cs-test", "cloudstack", &source.inventory().await.unwrap()),
        ("aws-target", "aws", &target.inventory().await.unwrap()),
        &["tiny-1"],
    );
    let planned = preparation_of(&plan, &*source, &*target).await;
    let guest = planned.guests[0].clone();
    assert_eq!(guest.status, Status::InspectAtRun, "{guest:?}");
    assert_eq!(guest.applied_to, AppliedTo::StagedCopy);
    assert_eq!(guest.needs.datasource.as_deref(), Some("Ec2"));
    preparation::set(&mut plan, planned);

    let report = run(approve(plan), source, target, &dir.path().join("state")).await;
    assert!(report.ok, "{report:#?}");
    assert_checks(&report);
    let disk = &report.disks[0];
    assert_eq!(disk.source_digest, disk.target_digest, "{}", disk.disk);

    // The snapshot the run wrote (from its journal), read back through EBS
    // direct and inspected.
    let snapshot = written_ids(&dir.path().join("state"))
        .pop()
        .expect("a written disk");
    let raw = dir.path().join("from-aws.raw");
    let file = std::fs::File::create(&raw).unwrap();
    let virtual_size = report.disks[0].virtual_size.0;
    file.set_len(virtual_size).unwrap();
    let gib = virtual_size.div_ceil(1 << 30);
    for (index, bytes) in aws_kit::read_back(&aws, &snapshot, gib).await {
        use std::os::unix::fs::FileExt;
        file.write_all_at(&bytes, index * altishift::units::BLOCK_SIZE)
            .unwrap();
    }
    drop(file);
    assert_prepared(&inspect_stored(&raw), "Ec2", "the AMI's snapshot");
    assert_eq!(sha256(&stored), stored_before, "the run wrote the source");
}

/// What run-time preparation costs: the same CloudStack → CloudStack
/// migration of tiny-1 with its guest inspected, staged and prepared, and
/// without (`cargo test --test guest_remote -- --ignored --nocapture`).
#[tokio::test]
#[ignore]
async fn bench_run_time_preparation_cost() {
    let dir = tempfile::tempdir().unwrap();
    let (source_fake, _lab, _) = tiny_in_cloudstack(dir.path()).await;
    let mut times = Vec::new();
    for prepared in [false, true, false, true] {
        let target_fake = FakeCloudStack::start().await;
        let (source, target) = (
            east_cs(&source_fake, dir.path()),
            west_cs(&target_fake, dir.path()),
        );
        let mut plan = plan_between(
            ("cs-test", "cloudstack", &source.inventory().await.unwrap()),
            ("cs-west", "cloudstack", &target.inventory().await.unwrap()),
            &["tiny-1"],
        );
        if prepared {
            let planned = preparation_of(&plan, &*source, &*target).await;
            preparation::set(&mut plan, planned);
        }
        let state = dir.path().join(format!("state-{}", times.len()));
        let started = std::time::Instant::now();
        let report = run(approve(plan), source, target, &state).await;
        let took = started.elapsed().as_secs_f64();
        assert!(report.ok, "{report:#?}");
        println!(
            "{}: run {took:.2} s (disk {:.2} s)",
            if prepared { "prepared  " } else { "unprepared" },
            report.disks[0].duration_ms as f64 / 1000.0
        );
        times.push((prepared, took));
    }
    let mean = |want: bool| {
        let picked: Vec<f64> = times.iter().filter(|t| t.0 == want).map(|t| t.1).collect();
        picked.iter().sum::<f64>() / picked.len() as f64
    };
    println!(
        "run-time preparation: {:.2} s vs {:.2} s unprepared ({:.2}x)",
        mean(true),
        mean(false),
        mean(true) / mean(false)
    );
}
