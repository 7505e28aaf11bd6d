//! A plan as text for a person: `plan show`, `approve`, and the console.

use super::Plan;
use crate::text::safe;
use std::fmt::Write as _;

pub fn render(plan: &Plan) -> String {
    let mut out = String::new();
    let hash = plan.hash();
    let _ = writeln!(out, "Plan {}  (short hash {})", hash, hash.short());
    let _ = writeln!(
        out,
        "  {} [{} {}] → {} [{} {}]",
        safe(&plan.source.cloud),
        safe(&plan.source.provider),
        safe(&plan.source.jurisdiction),
        safe(&plan.target.cloud),
        safe(&plan.target.provider),
        safe(&plan.target.jurisdiction)
    );
    let _ = writeln!(
        out,
        "  created {} by {}",
        safe(&plan.created_at),
        safe(&plan.created_by)
    );
    let s = &plan.summary;
    let estimate = humantime::format_duration(std::time::Duration::from_secs(s.estimate_seconds));
    let _ = writeln!(
        out,
        "  {} instances, {} disks: {} to move ({} virtual), about {estimate} ({})",
        s.instances,
        s.disks,
        s.bytes_to_move,
        s.virtual_bytes,
        safe(&s.estimate_basis)
    );
    if let Some(cross) = &plan.cross_border {
        let _ = writeln!(
            out,
            "\n  ⚠ CROSS-BORDER TRANSFER: {} of data leaves {} for {}. Approval must acknowledge it.",
            cross.bytes,
            safe(&cross.from),
            safe(&cross.to)
        );
    }
    if !plan.rehearsals.is_empty() {
        let _ = writeln!(
            out,
            "\n  Boot rehearsal (QEMU on this machine, before any cloud is touched):"
        );
        for r in &plan.rehearsals {
            let seconds = r.elapsed_ms as f64 / 1000.0;
            let _ = if r.booted {
                writeln!(
                    out,
                    "    ✓ {}/{}: `{}` after {seconds:.1}s ({}{})",
                    safe(&r.instance),
                    safe(&r.disk),
                    safe(r.matched.as_deref().unwrap_or("").trim()),
                    safe(&r.accel),
                    if r.prepared { ", prepared copy" } else { "" }
                )
            } else {
                writeln!(
                    out,
                    "    ✗ {}/{}: did not boot: {}",
                    safe(&r.instance),
                    safe(&r.disk),
                    safe(&r.detail)
                )
            };
            if !r.accel_note.is_empty() {
                let _ = writeln!(out, "      ({})", safe(&r.accel_note));
            }
        }
    }
    let preparation = super::preparation::render(&plan.preparation);
    if !preparation.is_empty() {
        let _ = writeln!(out, "\n  {}", preparation.join("\n  "));
    }
    if let Some(cutover) = &plan.cutover {
        let _ = writeln!(
            out,
            "\n  CUTOVER: copy while the source runs, up to {} delta passes, then quiesce ({}), final delta pass, {}.",
            cutover.max_delta_passes,
            safe(
                cutover
                    .quiesce
                    .as_deref()
                    .unwrap_or(plan.source.rules.source.quiesce_word())
            ),
            if cutover.power_off {
                "power the source OFF".to_string()
            } else {
                format!(
                    "thaw the source ({})",
                    safe(cutover.thaw.as_deref().unwrap_or("nothing to run"))
                )
            }
        );
        if let (Some(estimate), Some(rate)) = (
            s.final_pass_estimate(cutover.max_delta_passes),
            &s.change_rate,
        ) {
            let _ = writeln!(
                out,
                "  final pass (the downtime, deploy aside): about {} ({}){}; source writes {}/s ({})",
                humantime::format_duration(std::time::Duration::from_secs(estimate.seconds)),
                estimate.bytes,
                if estimate.outpaced {
                    ", as the source writes faster than the copy moves: the deltas will not shrink"
                } else {
                    ""
                },
                crate::units::Bytes(rate.bytes_per_second),
                safe(&rate.basis)
            );
        }
    }
    let _ = writeln!(out, "\nInstances");
    for item in &plan.items {
        let _ = writeln!(
            out,
            "  {:<16} {} ({} vCPU, {}) → {} as {} in {}  wave {}",
            safe(&item.instance_name),
            safe(&item.source_size),
            item.vcpus,
            item.memory,
            safe(&item.target_name),
            safe(&item.target_size),
            safe(&item.target_region),
            item.wave
        );
        for disk in &item.disks {
            let snapshot = disk
                .source_snapshot
                .as_deref()
                .map(|s| format!(" from snapshot {}", safe(s)))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "    {:<8} {:<5} {} → {}  {} virtual, {} allocated{snapshot}",
                safe(&disk.disk_id),
                safe(&disk.device),
                disk.source_format,
                disk.target_format,
                disk.virtual_size,
                disk.allocated
            );
        }
    }
    render_waves(plan, &mut out);
    out.push_str(&plan.checks.render());
    out.push_str(&super::config_text::section(plan));
    let _ = writeln!(
        out,
        "\nChanges this plan makes (nothing changes before approval)"
    );
    for action in &plan.actions {
        let _ = writeln!(
            out,
            "  {:>3}. [{}] {} {} — {}",
            action.step,
            safe(&action.cloud),
            action.verb,
            safe(&action.resource),
            safe(&action.detail)
        );
    }
    if !plan.clouds.is_empty() {
        let _ = writeln!(
            out,
            "\nClouds as configured (the approval covers these settings; apply refuses a change)"
        );
        for (cloud, print) in &plan.clouds {
            let settings: Vec<String> = print
                .0
                .iter()
                .map(|(k, v)| format!("{}={}", safe(k), safe(v)))
                .collect();
            let _ = writeln!(out, "  {}: {}", safe(cloud), settings.join("  "));
        }
    }
    if plan.keep_access {
        let _ = writeln!(
            out,
            "\n  Temporary access will be KEPT after the run (operator's choice)."
        );
    }
    match &plan.approval {
        Some(a) if a.plan_hash == hash => {
            let _ = writeln!(
                out,
                "\nApproved by {} at {}",
                safe(&a.operator),
                safe(&a.approved_at)
            );
            for sig in &a.signatures {
                let _ = writeln!(
                    out,
                    "  signed by {} at {} (checked at apply against allowed_signers)",
                    safe(&sig.operator),
                    safe(&sig.signed_at)
                );
            }
        }
        Some(_) => {
            let _ = writeln!(
                out,
                "\nThe approval on file is for a different version of this plan: approve again."
            );
        }
        None => {
            let _ = writeln!(out, "\nNot approved.");
        }
    }
    out
}

/// The waves in order, when there is more than one or a window: what
/// waits for what, and which instances had no tag to order them by.
fn render_waves(plan: &Plan, out: &mut String) {
    let groups = super::waves::groups(&plan.items);
    if groups.len() < 2 && plan.waves.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "\nWaves (wave N+1 starts once every instance of wave N is validated; a failed wave stops the run)"
    );
    if let Some(tag) = &plan.waves.from_tag {
        let _ = writeln!(
            out,
            "  ordered by the source tag '{}' (values in natural order)",
            safe(tag)
        );
    }
    let waits_for = if plan.cutover.is_some() {
        "its final pass"
    } else {
        "its start"
    };
    for (wave, items) in &groups {
        let names: Vec<String> = items
            .iter()
            .map(|i| safe(&i.instance_name).into_owned())
            .collect();
        let _ = writeln!(out, "  wave {wave}: {}", names.join(", "));
        if let Some(window) = plan.waves.window(*wave) {
            let _ = writeln!(
                out,
                "    not before {} ({waits_for} waits until then)",
                safe(&window.not_before)
            );
        }
    }
    if !plan.waves.untagged.is_empty() {
        let names: Vec<String> = plan
            .waves
            .untagged
            .iter()
            .map(|n| safe(n).into_owned())
            .collect();
        let _ = writeln!(
            out,
            "  without the tag '{}', so in the last wave: {}",
            safe(plan.waves.from_tag.as_deref().unwrap_or("")),
            names.join(", ")
        );
    }
}
