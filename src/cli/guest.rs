//! `altishift guest rehearse|inspect|prepare DISK`: the guest tools on one
//! local disk image, for an operator (and for the lab's guest).

use crate::cloud::ProviderKind;
use crate::guest::rehearse::{self, Accel, RehearsalSpec};
use crate::guest::{inspect, prepare};
use crate::inventory::DiskFormat;
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub struct RehearseArgs {
    pub disk: PathBuf,
    pub format: DiskFormat,
    pub expect: Option<String>,
    pub timeout: u64,
    pub accel: Accel,
    pub serial_log: Option<PathBuf>,
}

/// Boots the disk (never writing it) and fails when the marker never comes.
pub async fn rehearse(args: RehearseArgs) -> Result<()> {
    let log = args
        .serial_log
        .unwrap_or_else(|| args.disk.with_extension("serial.log"));
    let mut spec = RehearsalSpec::new(&args.disk, args.format, &log);
    if let Some(expect) = &args.expect {
        spec.expect = regex::Regex::new(expect)
            .with_context(|| format!("--expect '{}' is not a regular expression", expect))?;
    }
    spec.timeout = Duration::from_secs(args.timeout);
    spec.accel = args.accel;
    let rehearsal = rehearse::rehearse(&spec).await?;
    println!("{}", rehearse::serial_tail(&log, 15));
    println!("serial console: {}", log.display());
    if !rehearsal.booted {
        bail!(
            "{} did not boot: {}",
            args.disk.display(),
            crate::text::safe(&rehearsal.detail)
        );
    }
    println!(
        "booted in {:.1}s ({:?}): `{}`",
        rehearsal.elapsed.as_secs_f64(),
        rehearsal.accel,
        crate::text::safe(rehearsal.matched.as_deref().unwrap_or(""))
    );
    Ok(())
}

pub fn inspect(disk: &Path, format: DiskFormat, json: bool) -> Result<()> {
    let found = inspect::inspect(disk, format)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&found)?);
    } else {
        for line in found.summary() {
            println!("{line}");
        }
    }
    Ok(())
}

/// Lists what preparing for `target` changes; applies it unless `dry_run`.
pub fn prepare(disk: &Path, format: DiskFormat, target: &str, dry_run: bool) -> Result<()> {
    let target = provider(target)?;
    let found = inspect::inspect(disk, format)?;
    // What the provider's targets declare a guest needs.
    let needs = target.rules().target.guest;
    let changes = prepare::changes(&found, &needs, target.name())?;
    if changes.is_empty() {
        println!("nothing to prepare for {target}");
        return Ok(());
    }
    for change in &changes {
        println!("  {}", crate::text::safe(&change.to_string()));
    }
    if dry_run {
        println!("(dry run: {} unchanged)", disk.display());
        return Ok(());
    }
    prepare::apply(disk, format, &changes)?;
    println!("prepared {} for {target}", disk.display());
    Ok(())
}

fn provider(name: &str) -> Result<ProviderKind> {
    match ProviderKind::from_name(name) {
        Some(kind) => Ok(kind),
        None => bail!(
            "--for '{}': expected lab, aws, gcp, digitalocean, cloudstack or ssh",
            crate::text::safe(name)
        ),
    }
}
