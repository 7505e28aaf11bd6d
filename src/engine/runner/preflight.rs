//! Before any change: the plan must still match the clouds it names.

use super::Run;
use crate::engine::EngineError;

impl Run {
    /// Refuses, before any change, a plan that no longer matches the clouds.
    pub(super) async fn preflight(&self) -> Result<(), EngineError> {
        let plan = self.approved.plan();
        let fail = |message: String| Err(EngineError::Preflight(message));
        if self.source.name() != plan.source.cloud || self.target.name() != plan.target.cloud {
            return fail(format!(
                "plan moves {} → {}, but the clouds given are {} → {}",
                plan.source.cloud,
                plan.target.cloud,
                self.source.name(),
                self.target.name()
            ));
        }
        if !self.source.roles().source || !self.target.roles().target {
            return fail(format!(
                "{} cannot be a source or {} cannot be a target",
                self.source.name(),
                self.target.name()
            ));
        }
        let source = self
            .source
            .inventory()
            .await
            .map_err(|e| EngineError::Preflight(format!("{}: {e}", self.source.name())))?;
        let target = self
            .target
            .inventory()
            .await
            .map_err(|e| EngineError::Preflight(format!("{}: {e}", self.target.name())))?;
        for item in &plan.items {
            let Some(instance) = source.instance(&item.instance_id) else {
                return fail(format!(
                    "plan names instance '{}' ({}), which {} no longer has: make a new plan",
                    item.instance_name, item.instance_id, plan.source.cloud
                ));
            };
            for disk in &item.disks {
                if !instance.disks.iter().any(|d| d.id == disk.disk_id) {
                    return fail(format!(
                        "instance '{}' no longer has disk '{}': make a new plan",
                        item.instance_name, disk.disk_id
                    ));
                }
            }
            if target.size(&item.target_size).is_none() {
                return fail(format!(
                    "{} no longer offers size '{}' (for '{}')",
                    plan.target.cloud, item.target_size, item.instance_name
                ));
            }
            let ours = self.resume.deployed.contains_key(&item.target_name);
            if !ours && target.instance(&item.target_name).is_some() {
                return fail(format!(
                    "{} already has an instance named '{}': rename the target in the plan",
                    plan.target.cloud, item.target_name
                ));
            }
        }
        Ok(())
    }
}
