//! The plan's action list: every change the run will make, in the order it
//! makes them, derived from the plan alone so the approved hash covers it and
//! a console edit re-derives it.

use super::{Action, ActionVerb, Cutover, Plan, PlanItem};

pub(super) fn actions(plan: &Plan) -> Vec<Action> {
    let mut list = Vec::new();
    let mut push = |cloud: &str, verb: ActionVerb, resource: String, detail: String| {
        list.push(Action {
            step: list.len() as u32 + 1,
            cloud: cloud.to_string(),
            verb,
            resource,
            detail,
        });
    };
    let (src, dst) = (&plan.source.cloud, &plan.target.cloud);
    // Firewalls and keys exist before any instance that uses them.
    for object in super::configuration::objects(plan) {
        let (verb, resource, detail) = super::config_text::object_action(&object);
        push(dst, verb, resource, detail);
    }
    // In the order the run takes them: wave by wave.
    let mut in_waves: Vec<&PlanItem> = plan.items.iter().collect();
    in_waves.sort_by_key(|i| i.wave);
    for item in in_waves {
        if let Some(detail) = plan.source.rules.source.agent_detail() {
            push(
                src,
                ActionVerb::InstallAgent,
                item.instance_name.clone(),
                detail,
            );
        }
        for disk in &item.disks {
            let key = item.disk_key(disk);
            match &disk.source_snapshot {
                Some(snapshot) => push(
                    src,
                    ActionVerb::SnapshotDisk,
                    key.clone(),
                    format!("none: reads existing snapshot {snapshot}"),
                ),
                None => push(
                    src,
                    ActionVerb::SnapshotDisk,
                    key.clone(),
                    plan.source.rules.source.snapshot_detail(&disk.device),
                ),
            }
            let passes = match &plan.cutover {
                Some(c) => format!(
                    " while the source runs, then up to {} delta passes",
                    c.max_delta_passes
                ),
                None => String::new(),
            };
            let disclosure = plan
                .target
                .rules
                .target
                .write_disclosure
                .as_deref()
                .map(|d| format!("; {d}"))
                .unwrap_or_default();
            push(
                dst,
                ActionVerb::WriteDisk,
                format!("{}-{}", item.target_name, disk.disk_id),
                format!(
                    "{} {} virtual, {} to send{passes}{disclosure}",
                    disk.target_format, disk.virtual_size, disk.allocated
                ),
            );
        }
        if let Some(cutover) = &plan.cutover {
            for (verb, resource, detail) in cutover_steps(cutover, item, &plan.source.rules.source)
            {
                push(src, verb, resource, detail);
            }
        }
        if let Some(guest) = plan.preparation.to_apply(&item.instance_name) {
            push(
                dst,
                ActionVerb::PrepareGuest,
                format!("{}-{}", item.target_name, guest.disk),
                super::preparation::action_detail(guest),
            );
        }
        push(
            dst,
            ActionVerb::DeployInstance,
            item.target_name.clone(),
            format!(
                "size {} in {}{}",
                item.target_size,
                item.target_region,
                super::config_text::deploy_detail(&item.configuration)
            ),
        );
    }
    for item in &plan.items {
        for disk in item.disks.iter().filter(|d| d.source_snapshot.is_none()) {
            push(
                src,
                ActionVerb::DeleteSnapshot,
                item.disk_key(disk),
                "snapshot taken by this run".into(),
            );
        }
    }
    if plan.test_migration {
        for item in &plan.items {
            push(
                dst,
                ActionVerb::RemoveTestTarget,
                item.target_name.clone(),
                "test migration: once validated, the instance, its image and disks are removed"
                    .into(),
            );
        }
    }
    push(
        dst,
        ActionVerb::DeleteStaging,
        "staging".into(),
        "temporary files and objects of this run".into(),
    );
    if !plan.keep_access {
        for cloud in [src, dst] {
            push(
                cloud,
                ActionVerb::RevokeAccess,
                cloud.clone(),
                "temporary access; secrets wiped".into(),
            );
        }
    }
    list
}

/// The cutover steps of one instance, in the order the run takes them: what
/// the engine checks the approved action list against.
pub fn cutover_steps(
    cutover: &Cutover,
    item: &PlanItem,
    source: &crate::inventory::declared::SourceRules,
) -> Vec<(ActionVerb, String, String)> {
    let mut steps = vec![(
        ActionVerb::QuiesceSource,
        item.instance_name.clone(),
        match &cutover.quiesce {
            Some(command) => format!("runs `{command}` on the source"),
            None => source.quiesce_detail(),
        },
    )];
    for disk in &item.disks {
        steps.push((
            ActionVerb::FinalDelta,
            item.disk_key(disk),
            "sends the blocks changed since the last pass".into(),
        ));
    }
    steps.push(if cutover.power_off {
        (
            ActionVerb::PowerOffSource,
            item.instance_name.clone(),
            "the source stops for good; the target takes over".into(),
        )
    } else {
        (
            ActionVerb::ThawSource,
            item.instance_name.clone(),
            match &cutover.thaw {
                Some(command) => format!("runs `{command}`; the source keeps running"),
                None => "the source keeps running".into(),
            },
        )
    });
    steps
}
