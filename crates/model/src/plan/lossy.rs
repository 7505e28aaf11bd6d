//! Lossy lines a plan file cannot hide: besides the `lossy` list the
//! translation wrote, every rule without a translation and every tag marked
//! lossy is itself a loss. Approval and apply read both, so deleting the
//! list from a hand-edited plan file does not skip `--ack-lossy`.

use super::PlanItem;

/// The losses an item's configuration shows by its shape that its `lossy`
/// list does not already name.
pub fn unlisted(item: &PlanItem) -> Vec<String> {
    let c = &item.configuration;
    let listed = |text: &str| c.lossy.iter().any(|l| l.contains(text));
    let mut out = Vec::new();
    for fw in &c.firewalls {
        for rule in fw.rules.iter().filter(|r| r.target.is_none()) {
            if !listed(&format!("rule '{}'", rule.source)) {
                out.push(format!(
                    "rule '{}' of '{}': not carried (its reason is missing from the plan file)",
                    rule.source, fw.source
                ));
            }
        }
    }
    for tag in c.tags.iter().filter(|t| t.lossy) {
        if !listed(&format!("tag '{}'", tag.source_key)) {
            out.push(format!(
                "tag '{}': {}",
                tag.source_key,
                tag.note.as_deref().unwrap_or("not carried exactly")
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::plan::approval::{ApprovalError, approve};
    use crate::plan::configuration::{FirewallPlan, RulePlan};
    use crate::plan::tests::sample_plan;

    #[test]
    fn a_plan_file_without_its_lossy_list_is_still_refused() {
        let mut plan = sample_plan(false);
        plan.items[0].configuration.firewalls.push(FirewallPlan {
            name: "db".into(),
            source: "db".into(),
            network: None,
            rules: vec![RulePlan {
                source: "in tcp 22 from group bastion".into(),
                target: None,
            }],
        });
        // The translation's reason, deleted by hand: the untranslated rule
        // still says what is lost.
        plan.items[0].configuration.lossy.clear();
        let short = plan.hash().short().to_string();
        let err = approve(&mut plan, &short, true, "ops@host").unwrap_err();
        assert!(
            matches!(&err, ApprovalError::LossyNotAcknowledged { first, .. }
                if first.contains("in tcp 22 from group bastion")),
            "{err}"
        );
    }
}
