//! Guest preparation at plan time: each item's boot disk, where the source
//! holds it as a file on this machine (the lab), is inspected read-only and
//! the changes the target needs are recorded in the plan (under the hash).
//! A disk that stays in its cloud until the run is inspected then, on a copy
//! here: its entry approves the target's needs and where the copy is.
//! A disk without boot code is "nothing to prepare" without starting
//! libguestfs. What cannot be prepared, or not inspected, refuses the plan
//! unless `--unprepared` (see `Preparation::refusals`).

use crate::cloud::{CloudError, Source, Target};
use crate::guest::inspect::{self, Inspection};
use crate::guest::{GuestError, prepare};
use crate::inventory::declared::GuestNeeds;
use crate::plan::Plan;
use crate::plan::PlanDisk;
use crate::plan::preparation::{AppliedTo, Change, GuestPreparation, Preparation, Status};

/// The plan's preparation: one entry per item with a boot disk.
pub async fn plan_preparation(
    source: &dyn Source,
    target: &dyn Target,
    plan: &Plan,
    unprepared: bool,
) -> Result<Preparation, CloudError> {
    let mut guests = Vec::new();
    for item in &plan.items {
        let Some(disk) = item.disks.iter().find(|d| d.boot) else {
            continue;
        };
        let copy = copy_to_prepare(source, target, plan, disk);
        let entry = |status, detail: String, changes| GuestPreparation {
            instance: item.instance_name.clone(),
            disk: disk.disk_id.clone(),
            status,
            detail,
            changes,
            applied_to: copy.clone().unwrap_or_default(),
            needs: GuestNeeds::default(),
        };
        let Some((path, format)) = source.local_disk(&item.instance_id, &disk.disk_id) else {
            guests.push(at_run(
                source,
                target,
                plan,
                entry(Status::InspectAtRun, String::new(), Vec::new()),
            ));
            continue;
        };
        // Cheap first: no boot code, nothing that boots to prepare.
        if !crate::cloud::lab::boot::has_boot_sector(&path, format).await? {
            guests.push(entry(
                Status::Nothing,
                "no BIOS boot code on the disk".into(),
                Vec::new(),
            ));
            continue;
        }
        let found = tokio::task::spawn_blocking(move || inspect::inspect(&path, format))
            .await
            .map_err(|e| CloudError::Permanent(format!("inspection task: {e}")))?;
        let (status, detail, changes) = match found {
            Ok(found) => decide(
                &found,
                // What the target's provider declares a guest needs.
                &target.provider().rules().target.guest,
                copy.clone(),
                target.name(),
            ),
            Err(e) => not_inspected(&e),
        };
        guests.push(entry(status, detail, changes));
    }
    Ok(Preparation { unprepared, guests })
}

/// The copy of `disk` its preparation can go to, or why there is none:
/// the target's, where it holds written disks as files until deploy (the
/// lab); else the run's own snapshot, where the source's snapshots are files
/// on this machine and the run reads only that one snapshot.
fn copy_to_prepare(
    source: &dyn Source,
    target: &dyn Target,
    plan: &Plan,
    disk: &PlanDisk,
) -> Result<AppliedTo, String> {
    let takes = format!(
        "{} takes the disk into the cloud before deploy",
        target.name()
    );
    if target.prepares_written_disks() {
        Ok(AppliedTo::TargetCopy)
    } else if !source.prepares_snapshots() {
        Err(format!(
            "{takes}, and {}'s snapshots are not files here",
            source.name()
        ))
    } else if plan.cutover.is_some() {
        // Later passes read new snapshots and send their changed blocks
        // over the prepared ones.
        Err(format!(
            "{takes}, and a cutover sends the source's later changes over a prepared copy"
        ))
    } else if disk.source_snapshot.is_some() {
        Err(format!(
            "{takes}, and the plan reads an existing snapshot, not one of its own"
        ))
    } else {
        Ok(AppliedTo::RunSnapshot)
    }
}

/// The entry for a disk that stays in `source`'s cloud until the run: an
/// inspection then, on the target's copy here (the lab) or on a copy of the
/// run's snapshot staged here, under the target's needs as of this plan. A
/// cutover into a cloud that takes the disk before deploy is not prepared:
/// its later passes would send the source's changes over the prepared copy.
fn at_run(
    source: &dyn Source,
    target: &dyn Target,
    plan: &Plan,
    entry: GuestPreparation,
) -> GuestPreparation {
    let kept = format!(
        "{} ({}) keeps the disk in the cloud",
        source.name(),
        source.provider()
    );
    // The target's copy is prepared after the last pass; a staged copy
    // would be sent before later passes overwrite it with the source's.
    if plan.cutover.is_some() && !target.prepares_written_disks() {
        return GuestPreparation {
            status: Status::NotPlanned,
            detail: format!(
                "{kept}, and a cutover sends the source's later changes over a prepared copy"
            ),
            ..entry
        };
    }
    // The run will need libguestfs: a plan made where it is missing says so.
    if let Err(missing) = crate::guest::require("guestfish", "libguestfs-tools") {
        return GuestPreparation {
            status: Status::NotInspected,
            detail: format!("{kept} until the run, which could not inspect it: {missing}"),
            ..entry
        };
    }
    let applied_to = if target.prepares_written_disks() {
        AppliedTo::TargetCopy
    } else {
        AppliedTo::StagedCopy
    };
    GuestPreparation {
        status: Status::InspectAtRun,
        detail: format!("{kept} until the run"),
        applied_to,
        needs: target.provider().rules().target.guest,
        ..entry
    }
}

/// A disk with boot code that libguestfs could not read: no OS on it is a
/// guest that cannot be prepared; anything else (libguestfs missing or
/// failing) leaves it not inspected.
fn not_inspected(error: &GuestError) -> (Status, String, Vec<Change>) {
    match error {
        GuestError::Other(text) if text == inspect::NO_OS => (
            Status::Refused,
            "the disk has boot code but libguestfs found no operating system on it".into(),
            Vec::new(),
        ),
        other => (Status::NotInspected, other.to_string(), Vec::new()),
    }
}

/// The entry for an inspected guest: its changes for `target`, why it
/// cannot be prepared, or why no copy can have them applied (`copy`).
pub fn decide(
    found: &Inspection,
    needs: &GuestNeeds,
    copy: Result<AppliedTo, String>,
    target: &str,
) -> (Status, String, Vec<Change>) {
    let what = format!("{} {} ({})", found.distro, found.version, found.product);
    // The one place the changes are computed.
    match prepare::changes(found, needs, target) {
        Err(refusal) => (Status::Refused, refusal.to_string(), Vec::new()),
        Ok(changes) if changes.is_empty() => (
            Status::Nothing,
            format!("{what} already fits {target}"),
            changes,
        ),
        Ok(changes) => match copy {
            Ok(_) => (Status::Prepare, what, changes),
            Err(why) => (
                Status::Refused,
                format!("{what} needs the changes below and no copy can take them: {why}"),
                changes,
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::ProviderKind;
    use crate::guest::inspect::{Driver, FstabEntry};

    fn lab_copy() -> Result<AppliedTo, String> {
        Ok(AppliedTo::TargetCopy)
    }

    fn needs(kind: ProviderKind) -> GuestNeeds {
        kind.rules().target.guest
    }

    fn linux() -> Inspection {
        let drivers = ["virtio_blk", "virtio_net", "nvme", "ena"]
            .iter()
            .map(|name| Driver {
                name: name.to_string(),
                state: "module".into(),
            })
            .collect();
        Inspection {
            os_type: "linux".into(),
            distro: "debian".into(),
            version: "12.0".into(),
            product: "Debian 12".into(),
            fstab: vec![FstabEntry {
                spec: "/dev/vda1".into(),
                mountpoint: "/".into(),
                fstype: "ext4".into(),
                by_device: true,
            }],
            datasources: vec!["NoCloud".into(), "None".into()],
            drivers,
            ..Inspection::default()
        }
    }

    #[test]
    fn a_lab_target_prepares_and_a_cloud_target_refuses_the_same_changes() {
        let (status, _, changes) =
            decide(&linux(), &needs(ProviderKind::Lab), lab_copy(), "lab-west");
        assert_eq!(status, Status::Prepare);
        assert_eq!(
            changes,
            [Change::FstabByUuid {
                mountpoints: vec!["/".into()]
            }]
        );
        let nowhere =
            Err("aws takes the disk into the cloud before deploy, and a cutover …".into());
        let (status, detail, changes) = decide(&linux(), &needs(ProviderKind::Aws), nowhere, "aws");
        assert_eq!(status, Status::Refused);
        assert!(
            detail.contains("no copy can take them: aws takes"),
            "{detail}"
        );
        assert_eq!(
            changes.len(),
            2,
            "fstab and the Ec2 datasource: {changes:?}"
        );
    }

    #[test]
    fn a_missing_driver_windows_or_no_os_refuses_and_a_fitting_guest_has_nothing() {
        let mut found = linux();
        found.drivers.retain(|d| d.name != "virtio_net");
        let (status, detail, _) = decide(&found, &needs(ProviderKind::Lab), lab_copy(), "lab-west");
        assert_eq!(status, Status::Refused);
        assert!(detail.contains("virtio_net"), "{detail}");

        let mut windows = linux();
        windows.os_type = "windows".into();
        let (status, detail, _) =
            decide(&windows, &needs(ProviderKind::Lab), lab_copy(), "lab-west");
        assert_eq!(status, Status::Refused);
        assert!(detail.contains("only Linux"), "{detail}");

        let (status, _, _) = not_inspected(&GuestError::Other(inspect::NO_OS.into()));
        assert_eq!(status, Status::Refused);
        let missing = GuestError::Missing {
            what: "program 'guestfish'".into(),
            package: "libguestfs-tools",
        };
        let (status, detail, _) = not_inspected(&missing);
        assert_eq!(status, Status::NotInspected);
        assert!(detail.contains("libguestfs-tools"), "{detail}");

        // An SSH host needs no driver and no datasource: fstab only.
        let mut fits = linux();
        fits.fstab[0].by_device = false;
        let (status, detail, _) =
            decide(&fits, &needs(ProviderKind::Ssh), Err("none".into()), "host");
        assert_eq!(status, Status::Nothing);
        assert!(detail.contains("already fits"), "{detail}");
    }
}
