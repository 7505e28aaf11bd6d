//! `altishift demo`: a fresh lab, then the console (or, headless, one
//! planned, approved and applied migration printed as it runs).

use super::common::{Globals, Session};
use crate::cloud::lab::generate::{self, LabScale};
use crate::units::Bytes;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// Creates the demo lab and returns a session on it.
pub fn prepare(dir: Option<PathBuf>) -> Result<Session> {
    let dir = match dir {
        Some(dir) => dir,
        None => {
            let stamp = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or_default();
            crate::config::Paths::discover()
                .data_dir
                .join(format!("demo-{stamp}"))
        }
    };
    if !dir.join("config.toml").exists() {
        eprintln!("altishift demo: creating a lab in {}", dir.display());
        generate::init(&dir, LabScale::Standard)
            .with_context(|| format!("creating the demo lab in {}", dir.display()))?;
        add_guest(&dir);
    }
    Globals {
        config: Some(dir.join("config.toml")),
        state_dir: None,
    }
    .load()
}

/// Adds the lab's bootable guest, or says why the demo goes without it.
fn add_guest(dir: &Path) {
    match crate::cloud::lab::guest::add_guest(dir) {
        Ok(guest) => eprintln!(
            "altishift demo: lab-east/{} is a bootable Linux guest (kernel {}); \
             the migration boots it on lab-west",
            guest.instance, guest.kernel_version
        ),
        Err(e) => eprintln!(
            "altishift demo: no bootable guest in this lab ({e}).\n\
             altishift demo: the demo migrates disks only: nothing is booted after deploy"
        ),
    }
}

/// True when the demo lab holds the bootable guest.
fn has_guest(config: &Path) -> bool {
    config
        .with_file_name("lab-east")
        .join("instances")
        .join(format!("{}.toml", crate::cloud::lab::guest::GUEST_NAME))
        .is_file()
}

/// Plans web-1 (and the bootable guest, when the lab has it) from lab-east to lab-west, approves it and applies it.
pub async fn headless(
    session: &Session,
    throttle: Option<Bytes>,
    bandwidth: Option<Bytes>,
) -> Result<()> {
    let config = session
        .config
        .file
        .clone()
        .context("demo config has a file")?;
    let globals = Globals {
        config: Some(config.clone()),
        state_dir: None,
    };
    let plan = config.with_file_name("demo-plan.toml");
    let mut select = vec!["web-1".to_string(), "db-1".to_string()];
    if has_guest(&config) {
        select.push(crate::cloud::lab::guest::GUEST_NAME.into());
    }
    super::plan::make(
        &globals,
        super::plan::PlanArgs {
            from: "lab-east".into(),
            to: "lab-west".into(),
            select,
            sizes: Vec::new(),
            region: None,
            format: None,
            keep_access: false,
            test_migration: false,
            cutover: None,
            waves: Default::default(),
            configuration: Default::default(),
            rehearse: None,
            checks: super::plan_checks::CheckFlags::defaults(),
            // Without libguestfs the demo migrates tiny-1 as it is, not refused.
            unprepared: true,
            output: Some(plan.clone()),
        },
    )
    .await?;
    let hash = crate::plan::Plan::load(&plan)?.hash().short().to_string();
    println!(
        "\ndemo: approving with the short hash {hash} and acknowledging the DE → US transfer\n"
    );
    let acks = crate::plan::approval::Acks {
        cross_border: true,
        lossy: false,
    };
    super::plan::approve(&globals, &plan, Some(hash), acks, None).await?;
    super::apply::run(
        &globals,
        &plan,
        super::apply::ApplyArgs {
            json: false,
            throttle,
            bandwidth,
            in_flight: None,
            keep_debug_log: false,
            abandon: false,
            detach: false,
        },
    )
    .await
}
