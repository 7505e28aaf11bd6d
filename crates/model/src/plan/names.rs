//! Plan-time checks of target names: they become resource names and, in
//! the lab and local staging, file names.

use super::PlanItem;
use super::build::PlanError;
use std::collections::BTreeMap;

/// Target names become resource names and, in the lab and local staging,
/// file names: each must map to a file name ([`crate::fsutil::file_name`]),
/// and no two items may end up with the same instance or disk name (one
/// would overwrite the other). Names in the errors are shown safe.
pub fn check_names(items: &[PlanItem]) -> Result<(), PlanError> {
    use crate::text::safe;
    let mut instances: BTreeMap<&str, &PlanItem> = BTreeMap::new();
    let mut disks: BTreeMap<String, &PlanItem> = BTreeMap::new();
    for item in items {
        let unusable = |name: &str, reason: String| PlanError::UnusableName {
            instance: safe(&item.instance_name).into_owned(),
            name: safe(name).into_owned(),
            reason,
        };
        let same = |other: &PlanItem, name: &str| PlanError::SameTargetName {
            first: format!(
                "{} ({})",
                safe(&other.instance_name),
                safe(&other.instance_id)
            ),
            second: format!(
                "{} ({})",
                safe(&item.instance_name),
                safe(&item.instance_id)
            ),
            name: safe(name).into_owned(),
        };
        if let Some(other) = instances.insert(&item.target_name, item) {
            return Err(same(other, &item.target_name));
        }
        crate::fsutil::file_name(&item.target_name)
            .map_err(|why| unusable(&item.target_name, why))?;
        for disk in &item.disks {
            // The writer's disk name and the snapshot's (with a short hash).
            let written = format!("{}-{}", item.target_name, disk.disk_id);
            let snapshot = format!(
                "altishift-{}-{}-{}",
                "0".repeat(16),
                item.instance_name,
                disk.disk_id
            );
            for name in [&written, &snapshot] {
                crate::fsutil::file_name(name).map_err(|why| unusable(name, why))?;
            }
            if let Some(other) = disks.insert(written.clone(), item) {
                return Err(same(other, &written));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{PlanError, check_names};

    #[test]
    fn two_items_with_one_target_name_or_an_unusable_name_are_refused() {
        let mut plan = crate::plan::tests::sample_plan(false);
        let mut twin = plan.items[0].clone();
        twin.instance_id = "i-2".into();
        twin.instance_name = "web-copy".into();
        plan.items.push(twin);
        let err = check_names(&plan.items).unwrap_err();
        assert!(matches!(err, PlanError::SameTargetName { .. }), "{err}");
        let text = err.to_string();
        assert!(
            text.contains("web (") && text.contains("web-copy (i-2)"),
            "{text}"
        );
        plan.items[1].target_name = "../../etc/x".into();
        assert!(check_names(&plan.items).is_ok(), "mapped, not refused");
        plan.items[1].target_name = "..".into();
        let err = check_names(&plan.items).unwrap_err().to_string();
        assert!(err.contains("'..' cannot be a file name"), "{err}");
        plan.items[1].target_name = "x".repeat(300);
        let err = check_names(&plan.items).unwrap_err().to_string();
        assert!(err.contains("too long"), "{err}");
    }
}
