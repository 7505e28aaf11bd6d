//! Before any change: the plan must still match the clouds it names.

use super::Run;
use crate::EngineError;
use crate::cloud::WriteOrder;
use crate::plan::Cutover;
use crate::plan::build::cutover_steps;

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
        if let Some(cutover) = &plan.cutover {
            self.preflight_cutover(cutover).await?;
        }
        // A cutover that powered its source off resumes without it.
        let running: Vec<&crate::plan::PlanItem> = plan
            .items
            .iter()
            .filter(|i| !self.resume.powered_off.contains(&i.instance_name))
            .collect();
        let source = if running.is_empty() {
            crate::inventory::Inventory::default()
        } else {
            self.source
                .inventory()
                .await
                .map_err(|e| EngineError::Preflight(format!("{}: {e}", self.source.name())))?
        };
        let target = self
            .target
            .inventory()
            .await
            .map_err(|e| EngineError::Preflight(format!("{}: {e}", self.target.name())))?;
        for item in &plan.items {
            if !running.contains(&item) {
                continue;
            }
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

    /// A cutover needs every step approved, a source that can send deltas,
    /// quiesce and power off, and target writers that take blocks in any order.
    async fn preflight_cutover(&self, cutover: &Cutover) -> Result<(), EngineError> {
        let plan = self.approved.plan();
        for item in &plan.items {
            for (verb, resource, _) in cutover_steps(cutover, item, &plan.source.rules.source) {
                let approved = plan.actions.iter().any(|a| {
                    a.verb == verb && a.resource == resource && a.cloud == plan.source.cloud
                });
                if !approved {
                    return Err(EngineError::Preflight(format!(
                        "the approved plan does not list the cutover step '{verb} {resource}' \
                         on {}: nothing was changed; make the plan again with --cutover and \
                         approve it",
                        plan.source.cloud
                    )));
                }
            }
        }
        for item in &plan.items {
            for disk in &item.disks {
                let order = self
                    .target
                    .as_target()
                    .and_then(|t| t.write_order(disk.target_format));
                if order == Some(WriteOrder::Sequential) {
                    return Err(EngineError::Preflight(format!(
                        "cutover refused: {} writes {} disks only in order, and delta passes \
                         rewrite blocks anywhere on the disk; nothing was changed (plan \
                         without --cutover, or choose another format or target)",
                        self.target.name(),
                        disk.target_format
                    )));
                }
            }
            if self.resume.powered_off.contains(&item.instance_name) {
                continue;
            }
            let support = match self.source.cutover_role() {
                Ok(source) => source.cutover_support(&item.instance_id).await,
                Err(e) => Err(e),
            };
            if let Err(e) = support {
                return Err(EngineError::Preflight(format!(
                    "cutover refused for '{}': {e}; nothing was changed",
                    item.instance_name
                )));
            }
        }
        Ok(())
    }
}
