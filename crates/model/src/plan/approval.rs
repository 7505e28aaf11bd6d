//! The approval gate. An operator approves a plan by typing its short hash;
//! [`verify`] turns an approved, unchanged plan into [`Approved`], and only an
//! `Approved` plan hands out the [`Capability`] that mutating cloud calls need.
//!
//! ```compile_fail
//! // A capability cannot be made outside this module:
//! let cap = altishift::plan::approval::Capability { plan_hash: todo!(), operator: todo!() };
//! ```

use super::{Plan, PlanHash};
use serde::{Deserialize, Serialize};

/// Who approved what, and when. Stored with the plan; not part of its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalRecord {
    pub plan_hash: PlanHash,
    pub operator: String,
    pub approved_at: String,
    #[serde(default)]
    pub cross_border_acknowledged: bool,
    /// The operator acknowledged the configuration the plan cannot carry
    /// exactly (its lossy lines).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub lossy_acknowledged: bool,
    /// SSH signatures over the plan hash (`approve --sign KEY`), checked at
    /// apply against the config's allowed signers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signatures: Vec<super::signature::PlanSignature>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ApprovalError {
    #[error("plan is not approved: run `altishift approve PLAN` first")]
    NotApproved,
    #[error(
        "plan changed since it was approved (approved {approved}, now {current}): review it and approve again"
    )]
    Changed { approved: String, current: String },
    #[error("typed '{typed}' does not match the plan's short hash: nothing approved")]
    WrongHash { typed: String },
    #[error(
        "this plan moves data from {from} to {to}: acknowledge the cross-border transfer (--ack-cross-border, or answer 'yes' when asked)"
    )]
    CrossBorderNotAcknowledged { from: String, to: String },
    #[error(
        "{count} part(s) of the configuration cannot be carried exactly (first: {first}): acknowledge them (--ack-lossy, or the console's lossy field)"
    )]
    LossyNotAcknowledged { count: usize, first: String },
    #[error(
        "{instance}/{disk} did not boot in the rehearsal ({detail}): a guest that cannot boot is not approved"
    )]
    RehearsalFailed {
        instance: String,
        disk: String,
        detail: String,
    },
    #[error(
        "{instance}/{disk} cannot be prepared for the target ({detail}): plan it with --unprepared to migrate it as it is"
    )]
    GuestRefused {
        instance: String,
        disk: String,
        detail: String,
    },
}

/// What the operator acknowledged along with the hash.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Acks {
    pub cross_border: bool,
    /// Configuration the plan lists as lossy.
    pub lossy: bool,
}

fn lossy_refusal(plan: &Plan) -> Option<ApprovalError> {
    let lines = super::configuration::lossy_lines(plan);
    let first = lines.first()?.clone();
    Some(ApprovalError::LossyNotAcknowledged {
        count: lines.len(),
        first,
    })
}

/// Records the operator's approval in the plan after checking what they
/// typed; a plan with lossy configuration is refused (see [`approve_with`]).
pub fn approve(
    plan: &mut Plan,
    typed: &str,
    ack_cross_border: bool,
    operator: &str,
) -> Result<ApprovalRecord, ApprovalError> {
    approve_with(
        plan,
        typed,
        Acks {
            cross_border: ack_cross_border,
            lossy: false,
        },
        operator,
    )
}

/// Records the operator's approval with everything they acknowledged.
pub fn approve_with(
    plan: &mut Plan,
    typed: &str,
    acks: Acks,
    operator: &str,
) -> Result<ApprovalRecord, ApprovalError> {
    let ack_cross_border = acks.cross_border;
    let hash = plan.hash();
    let typed = typed.trim();
    if typed.len() < hash.short().len() || !hash.0.starts_with(&typed.to_ascii_lowercase()) {
        return Err(ApprovalError::WrongHash {
            typed: typed.chars().take(64).collect(),
        });
    }
    if let Some(cross) = &plan.cross_border
        && !ack_cross_border
    {
        return Err(ApprovalError::CrossBorderNotAcknowledged {
            from: cross.from.clone(),
            to: cross.to.clone(),
        });
    }
    // A plan file edited to keep a failed rehearsal (the CLI writes none).
    if let Some(failed) = plan.rehearsals.iter().find(|r| !r.booted) {
        return Err(ApprovalError::RehearsalFailed {
            instance: failed.instance.clone(),
            disk: failed.disk.clone(),
            detail: failed.detail.clone(),
        });
    }
    // The CLI writes no such plan; the console's may have one.
    if let Some(refused) = plan.preparation.refusals().first() {
        return Err(ApprovalError::GuestRefused {
            instance: refused.instance.clone(),
            disk: refused.disk.clone(),
            detail: refused.detail.clone(),
        });
    }
    if !acks.lossy
        && let Some(refusal) = lossy_refusal(plan)
    {
        return Err(refusal);
    }
    // A second approver signing the same plan keeps the first's signatures.
    let signatures = match &plan.approval {
        Some(earlier) if earlier.plan_hash == hash => earlier.signatures.clone(),
        _ => Vec::new(),
    };
    let record = ApprovalRecord {
        plan_hash: hash,
        operator: operator.to_string(),
        approved_at: crate::fsutil::now_rfc3339(),
        cross_border_acknowledged: plan.cross_border.is_some() && ack_cross_border,
        lossy_acknowledged: acks.lossy && lossy_refusal(plan).is_some(),
        signatures,
    };
    plan.approval = Some(record.clone());
    Ok(record)
}

/// A plan whose approval matches its current content.
#[derive(Debug, Clone)]
pub struct Approved {
    plan: Plan,
    hash: PlanHash,
    operator: String,
}

/// Checks that a plan carries an approval for exactly its current content.
pub fn verify(plan: Plan) -> Result<Approved, ApprovalError> {
    let record = plan.approval.clone().ok_or(ApprovalError::NotApproved)?;
    let current = plan.hash();
    if record.plan_hash != current {
        return Err(ApprovalError::Changed {
            approved: record.plan_hash.short().to_string(),
            current: current.short().to_string(),
        });
    }
    if let Some(cross) = &plan.cross_border
        && !record.cross_border_acknowledged
    {
        return Err(ApprovalError::CrossBorderNotAcknowledged {
            from: cross.from.clone(),
            to: cross.to.clone(),
        });
    }
    if !record.lossy_acknowledged
        && let Some(refusal) = lossy_refusal(&plan)
    {
        return Err(refusal);
    }
    Ok(Approved {
        plan,
        hash: current,
        operator: record.operator,
    })
}

impl Approved {
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    pub fn hash(&self) -> &PlanHash {
        &self.hash
    }

    pub fn operator(&self) -> &str {
        &self.operator
    }

    /// The permission to change clouds on behalf of this plan.
    pub fn capability(&self) -> Capability {
        Capability {
            plan_hash: self.hash.clone(),
            operator: self.operator.clone(),
        }
    }
}

/// Proof that an operator approved the plan being carried out. Mutating
/// `Cloud` methods take one; its fields are private, so the only way to get
/// one is [`Approved::capability`].
#[derive(Debug, Clone)]
pub struct Capability {
    plan_hash: PlanHash,
    operator: String,
}

impl Capability {
    pub fn plan_hash(&self) -> &PlanHash {
        &self.plan_hash
    }

    pub fn operator(&self) -> &str {
        &self.operator
    }

    /// Tag every created resource carries: `altishift:plan=<hash>`.
    pub fn tag(&self) -> (String, String) {
        (
            "altishift:plan".to_string(),
            self.plan_hash.short().to_string(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::tests::sample_plan;

    #[test]
    fn unapproved_plan_is_refused() {
        assert_eq!(
            verify(sample_plan(false)).unwrap_err(),
            ApprovalError::NotApproved
        );
    }

    #[test]
    fn wrong_typed_hash_changes_nothing() {
        let mut plan = sample_plan(false);
        let err = approve(&mut plan, "deadbeef", false, "ops@host").unwrap_err();
        assert!(matches!(err, ApprovalError::WrongHash { .. }));
        assert!(plan.approval.is_none());
        // A prefix shorter than the short hash is not enough either.
        let short = plan.hash().short()[..4].to_string();
        assert!(approve(&mut plan, &short, false, "ops@host").is_err());
    }

    #[test]
    fn a_guest_that_did_not_boot_in_the_rehearsal_is_not_approved() {
        let mut plan = sample_plan(false);
        plan.rehearsals.push(crate::plan::RehearsalRecord {
            instance: "web-1".into(),
            disk: "d-1".into(),
            booted: false,
            accel: "tcg".into(),
            elapsed_ms: 10_000,
            expect: "login:".into(),
            matched: None,
            detail: "no `login:` on the serial console within 10s".into(),
            accel_note: String::new(),
            prepared: false,
            serial_tail: vec!["Kernel panic".into()],
        });
        let short = plan.hash().short().to_string();
        let err = approve(&mut plan, &short, false, "ops@host").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("web-1/d-1 did not boot in the rehearsal (no `login:`"),
            "{err}"
        );
        assert!(plan.approval.is_none());
        plan.rehearsals[0].booted = true;
        let short = plan.hash().short().to_string();
        assert!(approve(&mut plan, &short, false, "ops@host").is_ok());
    }

    #[test]
    fn edited_plan_needs_new_approval() {
        let mut plan = sample_plan(false);
        let short = plan.hash().short().to_string();
        approve(&mut plan, &short, false, "ops@host").unwrap();
        assert!(verify(plan.clone()).is_ok());
        plan.items[0].target_size = "huge".into();
        assert!(matches!(
            verify(plan).unwrap_err(),
            ApprovalError::Changed { .. }
        ));
    }

    #[test]
    fn cross_border_needs_acknowledgement() {
        let mut plan = sample_plan(true);
        let short = plan.hash().short().to_string();
        let err = approve(&mut plan, &short, false, "ops@host").unwrap_err();
        assert!(matches!(
            err,
            ApprovalError::CrossBorderNotAcknowledged { .. }
        ));
        assert!(plan.approval.is_none());
        approve(&mut plan, &short, true, "ops@host").unwrap();
        let approved = verify(plan).unwrap();
        assert_eq!(approved.capability().operator(), "ops@host");
    }

    #[test]
    fn a_lossy_plan_needs_its_own_acknowledgement() {
        let mut plan = sample_plan(false);
        plan.items[0]
            .configuration
            .lossy
            .push("rule 'in tcp 22 from group bastion' of 'db': names group 'bastion', which this plan does not migrate".into());
        let short = plan.hash().short().to_string();
        let err = approve(&mut plan, &short, true, "ops@host").unwrap_err();
        assert!(
            matches!(&err, ApprovalError::LossyNotAcknowledged { count: 1, first } if first.starts_with("web: rule")),
            "{err}"
        );
        assert!(plan.approval.is_none());
        let acks = Acks {
            cross_border: false,
            lossy: true,
        };
        let record = approve_with(&mut plan, &short, acks, "ops@host").unwrap();
        assert!(record.lossy_acknowledged);
        assert!(verify(plan.clone()).is_ok());
        // An approval on file without the acknowledgement does not pass apply.
        if let Some(a) = plan.approval.as_mut() {
            a.lossy_acknowledged = false;
        }
        assert!(matches!(
            verify(plan).unwrap_err(),
            ApprovalError::LossyNotAcknowledged { .. }
        ));
    }

    #[test]
    fn hand_written_approval_without_acknowledgement_is_refused() {
        let mut plan = sample_plan(true);
        plan.approval = Some(ApprovalRecord {
            plan_hash: plan.hash(),
            operator: "x".into(),
            approved_at: "now".into(),
            cross_border_acknowledged: false,
            lossy_acknowledged: false,
            signatures: Vec::new(),
        });
        assert!(matches!(
            verify(plan).unwrap_err(),
            ApprovalError::CrossBorderNotAcknowledged { .. }
        ));
    }
}
