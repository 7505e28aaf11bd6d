//! `altishift plan …`, `plan show`, `approve`.

use super::common::{Globals, connect};
use crate::inventory::DiskFormat;
use crate::plan::build::{Request, Side};
use crate::plan::{Plan, approval, render};
use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;
use std::path::Path;

pub struct PlanArgs {
    pub from: String,
    pub to: String,
    pub select: Vec<String>,
    /// `NAME=SIZE` overrides.
    pub sizes: Vec<String>,
    pub region: Option<String>,
    pub format: Option<DiskFormat>,
    pub keep_access: bool,
    pub test_migration: bool,
    /// Make the run a cutover.
    pub cutover: Option<crate::plan::Cutover>,
    pub output: Option<std::path::PathBuf>,
}

pub async fn make(globals: &Globals, args: PlanArgs) -> Result<()> {
    let session = globals.load()?;
    let source = connect(&session.config, &args.from).await?;
    let target = connect(&session.config, &args.to).await?;
    if !source.roles().source {
        bail!(
            "{} ({}) cannot be a migration source",
            args.from,
            source.provider()
        );
    }
    if !target.roles().target {
        bail!(
            "{} ({}) cannot be a migration target",
            args.to,
            target.provider()
        );
    }
    let source_inventory = source.inventory().await?;
    let target_inventory = target.inventory().await?;
    // Temporary credentials that run out mid-transfer fail a run late: say
    // when they expire before the operator approves.
    for inventory in [&source_inventory, &target_inventory] {
        if let Some(access) = &inventory.access {
            eprintln!(
                "{}: acting as {}",
                inventory.cloud,
                access.describe(crate::fsutil::now_unix())
            );
        }
    }
    let mut sizes = BTreeMap::new();
    for pair in &args.sizes {
        let (name, size) = pair
            .split_once('=')
            .with_context(|| format!("--size '{pair}': expected NAME=SIZE"))?;
        sizes.insert(name.to_string(), size.to_string());
    }
    let request = Request {
        select: args.select,
        sizes,
        // The target profile's region unless --region names one.
        target_region: match args.region {
            Some(region) => Some(region),
            None => target.default_region()?,
        },
        target_format: args.format,
        keep_access: args.keep_access,
        test_migration: args.test_migration,
        cutover: args.cutover,
    };
    let throughput = crate::engine::estimate::lookup(&session.state_dir, &args.from, &args.to);
    let plan = crate::plan::build::build(
        &Side {
            cloud: &args.from,
            provider: source.provider().to_string(),
            jurisdiction: source.jurisdiction(),
            inventory: &source_inventory,
        },
        &Side {
            cloud: &args.to,
            provider: target.provider().to_string(),
            jurisdiction: target.jurisdiction(),
            inventory: &target_inventory,
        },
        &request,
        &throughput,
        &crate::fsutil::operator(),
    )?;
    // A cutover the source cannot do is refused now, not after approval.
    if plan.cutover.is_some() {
        for item in &plan.items {
            if let Err(e) = source.cutover_support(&item.instance_id).await {
                bail!("--cutover refused for '{}': {e}", item.instance_name);
            }
        }
    }
    print!("{}", render::render(&plan));
    match &args.output {
        Some(path) => {
            plan.save(path)?;
            println!(
                "\nplan written to {}. Review it, then: altishift approve {}",
                path.display(),
                path.display()
            );
        }
        None => println!("\n(not saved: add -o plan.toml to keep it)"),
    }
    Ok(())
}

pub fn show(path: &Path, json: bool) -> Result<()> {
    let plan = Plan::load(path)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&plan)?);
    } else {
        print!("{}", render::render(&plan));
    }
    Ok(())
}

pub fn approve(
    globals: &Globals,
    path: &Path,
    confirm: Option<String>,
    ack_cross_border: bool,
) -> Result<()> {
    let mut plan = Plan::load(path)?;
    print!("{}", render::render(&plan));
    let short = plan.hash().short().to_string();
    let typed = match confirm {
        Some(typed) => typed,
        None => super::prompt::ask(&format!(
            "\nTo approve, type the plan's short hash ({short}): "
        ))
        .context("no answer on standard input: nothing approved (use --confirm HASH in scripts)")?,
    };
    let mut acknowledged = ack_cross_border;
    if let Some(cross) = &plan.cross_border
        && !acknowledged
    {
        let question = format!(
            "Data will leave {} for {}. Type 'yes' to acknowledge the cross-border transfer: ",
            cross.from, cross.to
        );
        acknowledged = super::prompt::ask(&question).is_some_and(|a| a.eq_ignore_ascii_case("yes"));
    }
    let operator = crate::fsutil::operator();
    let record = approval::approve(&mut plan, &typed, acknowledged, &operator)?;
    plan.save(path)?;
    let session = globals.load()?;
    crate::engine::audit::AuditLog::new(
        &session.state_dir.join("audit.jsonl"),
        &record.plan_hash.0,
        &operator,
    )
    .record("-", "approve_plan", &path.display().to_string(), "ok")
    .context("writing the audit log")?;
    println!(
        "approved plan {} as {operator}. Next: altishift apply {}",
        record.plan_hash.short(),
        path.display()
    );
    Ok(())
}
