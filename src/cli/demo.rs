//! `altishift demo`: a fresh lab, then the console (or, headless, one
//! planned, approved and applied migration printed as it runs).

use super::common::{Globals, Session};
use crate::cloud::lab::generate::{self, LabScale};
use crate::units::Bytes;
use anyhow::{Context, Result};
use std::path::PathBuf;

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
    }
    Globals {
        config: Some(dir.join("config.toml")),
        state_dir: None,
    }
    .load()
}

/// Plans web-1 from lab-east to lab-west, approves it and applies it.
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
    super::plan::make(
        &globals,
        super::plan::PlanArgs {
            from: "lab-east".into(),
            to: "lab-west".into(),
            select: vec!["web-1".into(), "db-1".into()],
            sizes: Vec::new(),
            region: None,
            format: None,
            keep_access: false,
            test_migration: false,
            cutover: None,
            waves: Default::default(),
            configuration: Default::default(),
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
