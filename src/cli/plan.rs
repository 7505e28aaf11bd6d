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
    /// `--wave`, `--waves-from-tag`, `--not-before`.
    pub waves: crate::plan::waves::WaveRequest,
    pub configuration: ConfigFlags,
    /// `--rehearse`: boot the boot disks locally before writing the plan.
    pub rehearse: Option<RehearseFlags>,
    /// What validation checks from outside each instance.
    pub checks: super::plan_checks::CheckFlags,
    /// `--unprepared`: guests that cannot be prepared migrate as they are.
    pub unprepared: bool,
    pub output: Option<std::path::PathBuf>,
}

/// `plan --rehearse [--expect REGEX] [--rehearse-timeout SECS]`.
#[derive(Debug, Clone)]
pub struct RehearseFlags {
    pub expect: Option<String>,
    pub timeout: u64,
}

/// How configuration is translated (`plan --network-map … --no-firewall`).
#[derive(Debug, Clone, Default)]
pub struct ConfigFlags {
    /// `SRC=DST` pairs as typed.
    pub network_map: Vec<String>,
    pub no_firewall: bool,
    pub no_tags: bool,
    pub public_ip: Option<bool>,
}

impl ConfigFlags {
    fn request(&self) -> Result<crate::plan::configuration::ConfigRequest> {
        let mut network_map = BTreeMap::new();
        for pair in &self.network_map {
            let (from, to) = pair
                .split_once('=')
                .filter(|(f, t)| !f.is_empty() && !t.is_empty())
                .with_context(|| format!("--network-map '{pair}': expected SRC=DST"))?;
            network_map.insert(from.to_string(), to.to_string());
        }
        Ok(crate::plan::configuration::ConfigRequest {
            network_map,
            no_firewall: self.no_firewall,
            no_tags: self.no_tags,
            public_ip: self.public_ip,
        })
    }
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
                crate::text::safe(&inventory.cloud),
                crate::text::safe(&access.describe(crate::fsutil::now_unix()))
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
            None => target.target_role()?.default_region()?,
        },
        target_format: args.format,
        keep_access: args.keep_access,
        test_migration: args.test_migration,
        cutover: args.cutover,
        waves: args.waves,
        configuration: args.configuration.request()?,
        checks: args.checks.resolve()?,
    };
    let throughput = crate::engine::estimate::lookup(&session.state_dir, &args.from, &args.to);
    let mut plan = crate::plan::build::build(
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
    // The approval covers what the cloud names mean in today's config.
    plan.clouds = super::common::fingerprints(
        &session.config,
        &[(&args.from, source.as_ref()), (&args.to, target.as_ref())],
    )
    .await?;
    // A cutover the source cannot do is refused now, not after approval.
    if plan.cutover.is_some() {
        // The final pass is estimated from the route's measured change rate.
        plan.summary.change_rate =
            crate::engine::estimate::change_rate(&session.state_dir, &args.from, &args.to);
        for item in &plan.items {
            let support = match source.cutover_role() {
                Ok(source) => source.cutover_support(&item.instance_id).await,
                Err(e) => Err(e),
            };
            if let Err(e) = support {
                bail!("--cutover refused for '{}': {e}", item.instance_name);
            }
        }
    }
    // Before the rehearsal: it boots the prepared copy.
    let preparation = crate::preparation::plan_preparation(
        source.source_role()?,
        target.target_role()?,
        &plan,
        args.unprepared,
    )
    .await?;
    crate::plan::preparation::set(&mut plan, preparation);
    if let Some(refused) = plan.preparation.refusals().first() {
        print!("{}", render::render(&plan));
        bail!(
            "plan refused: {}/{} cannot be prepared for {}: {}; no plan written (--unprepared migrates such guests as they are)",
            crate::text::safe(&refused.instance),
            crate::text::safe(&refused.disk),
            crate::text::safe(&args.to),
            crate::text::safe(&refused.detail)
        );
    }
    if let Some(flags) = &args.rehearse {
        let options =
            crate::rehearsal::RehearsalOptions {
                expect: match &flags.expect {
                    Some(text) => Some(regex::Regex::new(text).with_context(|| {
                        format!("--expect '{text}' is not a regular expression")
                    })?),
                    None => None,
                },
                timeout: std::time::Duration::from_secs(flags.timeout),
                dir: session.state_dir.join("rehearsals"),
            };
        let announce = |instance: &str, disk: &str| {
            eprintln!(
                "rehearsal: booting {}/{} in QEMU (no network, up to {}s)…",
                crate::text::safe(instance),
                crate::text::safe(disk),
                flags.timeout
            )
        };
        plan.rehearsals =
            crate::rehearsal::rehearse_plan(source.source_role()?, &plan, &options, &announce)
                .await?;
    }
    print!("{}", render::render(&plan));
    if let Some(failed) = crate::rehearsal::refusal(&plan.rehearsals) {
        for line in &failed.serial_tail {
            println!("    │ {}", crate::text::safe(line));
        }
        bail!(
            "plan refused: {}/{} did not boot in the rehearsal ({}); no plan written, nothing done in any cloud",
            crate::text::safe(&failed.instance),
            crate::text::safe(&failed.disk),
            crate::text::safe(&failed.detail)
        );
    }
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

pub async fn approve(
    globals: &Globals,
    path: &Path,
    confirm: Option<String>,
    acks: approval::Acks,
    sign: Option<&Path>,
) -> Result<()> {
    let mut plan = Plan::load(path)?;
    let session = globals.load()?;
    // Refused before the operator is asked anything: the clouds must still be
    // what the plan was made against, and its safety facts must be theirs.
    super::common::connect_checked(&session.config, &plan, path).await?;
    // An edited plan gets the same name checks as a built one.
    crate::plan::build::check_names(&plan.items)
        .with_context(|| format!("{}: refused", path.display()))?;
    print!("{}", render::render(&plan));
    let short = plan.hash().short().to_string();
    let typed = match confirm {
        Some(typed) => typed,
        None => super::prompt::ask(&format!(
            "\nTo approve, type the plan's short hash ({short}): "
        ))
        .context("no answer on standard input: nothing approved (use --confirm HASH in scripts)")?,
    };
    let mut acknowledged = acks.cross_border;
    if let Some(cross) = &plan.cross_border
        && !acknowledged
    {
        let question = format!(
            "Data will leave {} for {}. Type 'yes' to acknowledge the cross-border transfer: ",
            crate::text::safe(&cross.from),
            crate::text::safe(&cross.to)
        );
        acknowledged = super::prompt::ask(&question).is_some_and(|a| a.eq_ignore_ascii_case("yes"));
    }
    let mut lossy = acks.lossy;
    let lossy_lines = crate::plan::configuration::lossy_lines(&plan);
    if !lossy_lines.is_empty() && !lossy {
        let question = format!(
            "{} part(s) of the configuration cannot be carried exactly (listed above as LOSSY). Type 'yes' to acknowledge: ",
            lossy_lines.len()
        );
        lossy = super::prompt::ask(&question).is_some_and(|a| a.eq_ignore_ascii_case("yes"));
    }
    let operator = crate::fsutil::operator();
    let acks = approval::Acks {
        cross_border: acknowledged,
        lossy,
    };
    let record = approval::approve_with(&mut plan, &typed, acks, &operator)?;
    let signer = match sign {
        Some(key) => Some(add_signature(&session.config, &mut plan, key, &operator)?),
        None => None,
    };
    plan.save(path)?;
    let audit = crate::engine::audit::AuditLog::new(
        &session.state_dir.join("audit.jsonl"),
        &record.plan_hash.0,
        &operator,
    );
    audit
        .record("-", "approve_plan", &path.display().to_string(), "ok")
        .context("writing the audit log")?;
    if let Some(signer) = &signer {
        // The key's fingerprint, as ssh-keygen established it: not a name
        // anybody typed.
        audit
            .record(
                "-",
                "sign_approval",
                &signer.key_fingerprint,
                &signer.principal,
            )
            .context("writing the audit log")?;
        println!(
            "signed by {} ({})",
            signer.principal, signer.key_fingerprint
        );
    }
    println!(
        "approved plan {} as {operator}. Next: altishift apply {}",
        record.plan_hash.short(),
        path.display()
    );
    Ok(())
}

/// Signs the approved plan's hash with `key` and keeps the signature with the
/// approval; when the config names allowed signers, the signature is checked
/// against them now rather than at apply.
fn add_signature(
    config: &crate::config::Config,
    plan: &mut Plan,
    key: &Path,
    operator: &str,
) -> Result<crate::plan::signature::Signer> {
    use crate::plan::signature;
    let hash = plan.hash();
    let signature = signature::sign(key, &hash)?;
    let file = config
        .approval
        .as_ref()
        .and_then(|p| p.allowed_signers.as_ref())
        .map(|f| config.resolve(f))
        .context(
            "--sign: the config names no allowed_signers in [approval], so the signature could never be checked",
        )?;
    let signer = signature::verify(&file, &hash, &signature)
        .map_err(|message| anyhow::anyhow!("--sign {}: {message}", key.display()))?;
    if let Some(record) = &mut plan.approval {
        record.signatures.push(signature::PlanSignature {
            operator: operator.to_string(),
            signed_at: crate::fsutil::now_rfc3339(),
            signature,
        });
    }
    Ok(signer)
}
