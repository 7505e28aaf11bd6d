//! What every command needs: the config (or the built-in lab), the state
//! folder, connected clouds.

use crate::cloud::Cloud;
use crate::cloud::Profile;
use crate::cloud::lab::generate::{self, LabScale};
use crate::cloud::lab::profile::LabProfile;
use crate::config::{Config, Paths};
use crate::plan::Plan;
use crate::plan::build::Side;
use crate::plan::trust::{self, CloudFingerprint, Live};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Options shared by all commands.
#[derive(Debug, Clone, Default)]
pub struct Globals {
    pub config: Option<PathBuf>,
    pub state_dir: Option<PathBuf>,
}

pub struct Session {
    pub config: Config,
    pub paths: Paths,
    pub state_dir: PathBuf,
}

impl Globals {
    /// Loads `--config`, else the user's config file, else the built-in lab
    /// in the data folder (created on first use).
    pub fn load(&self) -> Result<Session> {
        let paths = Paths::discover();
        let config = match &self.config {
            Some(path) => load(path)?,
            None if paths.config_file.exists() => load(&paths.config_file)?,
            None => builtin_lab(&paths.data_dir)?,
        };
        let state_dir = match &self.state_dir {
            Some(dir) => dir.clone(),
            None => config.state_dir(&paths),
        };
        Ok(Session {
            config,
            paths,
            state_dir,
        })
    }
}

/// The lab under the data folder, made on first use.
pub fn builtin_lab(data_dir: &Path) -> Result<Config> {
    let dir = data_dir.join("lab");
    let file = dir.join("config.toml");
    if !file.exists() {
        eprintln!(
            "altishift: no config found; creating the built-in lab in {}",
            dir.display()
        );
        generate::init(&dir, LabScale::Standard)
            .with_context(|| format!("creating the built-in lab in {}", dir.display()))?;
    }
    load(&file)
}

/// A config file, every cloud read as its provider's profile: a wrong key
/// anywhere refuses the file, whichever cloud a command uses.
fn load(file: &Path) -> Result<Config> {
    let config = Config::load(file)?;
    Profile::check_all(&config)?;
    Ok(config)
}

/// A config with just the lab's two clouds, for `demo` and tests.
pub fn lab_config(dir: &Path) -> Config {
    let mut config = Config {
        file: Some(dir.join("config.toml")),
        state_dir: Some("state".into()),
        ..Config::default()
    };
    for (name, jurisdiction) in [("lab-east", "DE"), ("lab-west", "US")] {
        let profile = Profile::Lab(LabProfile {
            path: Some(name.into()),
            jurisdiction: Some(jurisdiction.into()),
            token: None,
        });
        // A lab profile of UTF-8 text always serialises.
        let table = profile.table().expect("a lab profile is a TOML table");
        config.clouds.insert(name.into(), table);
    }
    config
}

pub async fn connect(config: &Config, name: &str) -> Result<Arc<dyn Cloud>> {
    let mut prompt = super::prompt::masked_prompt;
    connect_with(config, name, &mut prompt).await
}

/// [`connect`] with the secrets a profile asks for answered by `prompt`.
pub async fn connect_with(
    config: &Config,
    name: &str,
    prompt: crate::secret::Prompter<'_>,
) -> Result<Arc<dyn Cloud>> {
    crate::cloud::connect(config, name, prompt)
        .await
        .with_context(|| format!("connecting to cloud '{name}'"))
}

/// The fingerprints of connected clouds: their profiles in the live config
/// plus the account each provider reports.
pub async fn fingerprints(
    config: &Config,
    clouds: &[(&str, &dyn Cloud)],
) -> Result<std::collections::BTreeMap<String, CloudFingerprint>> {
    let mut prints = std::collections::BTreeMap::new();
    for (name, cloud) in clouds {
        let account = cloud
            .account()
            .await
            .with_context(|| format!("asking cloud '{name}' which account it acts in"))?;
        prints.insert(
            name.to_string(),
            CloudFingerprint::of_cloud(config, name, account)?,
        );
    }
    Ok(prints)
}

/// Connects the plan's clouds from the live config and checks that they are
/// what the plan was made against: the same settings behind each name, and
/// the jurisdictions and cross-border flag the clouds give today (never the
/// ones written in the file). Returns the connected source and target.
pub async fn connect_checked(
    config: &Config,
    plan: &Plan,
    file: &Path,
) -> Result<(Arc<dyn Cloud>, Arc<dyn Cloud>)> {
    let mut prompt = super::prompt::masked_prompt;
    connect_checked_with(config, plan, file, &mut prompt).await
}

/// [`connect_checked`] with secrets answered by `prompt`.
pub async fn connect_checked_with(
    config: &Config,
    plan: &Plan,
    file: &Path,
    prompt: crate::secret::Prompter<'_>,
) -> Result<(Arc<dyn Cloud>, Arc<dyn Cloud>)> {
    let (source_name, target_name) = (plan.source.cloud.as_str(), plan.target.cloud.as_str());
    let refused = || format!("{}: refused", file.display());
    let source = connect_with(config, source_name, &mut *prompt).await?;
    let target = connect_with(config, target_name, prompt).await?;
    let prints = fingerprints(
        config,
        &[
            (source_name, source.as_ref()),
            (target_name, target.as_ref()),
        ],
    )
    .await
    .with_context(refused)?;
    let source_inventory = source.inventory().await?;
    let target_inventory = target.inventory().await?;
    let live = Live {
        source: Side {
            cloud: source_name,
            provider: source.provider().to_string(),
            jurisdiction: source.jurisdiction(),
            inventory: &source_inventory,
        },
        target: Side {
            cloud: target_name,
            provider: target.provider().to_string(),
            jurisdiction: target.jurisdiction(),
            inventory: &target_inventory,
        },
        fingerprints: prints,
    };
    trust::check(plan, &live).with_context(refused)?;
    Ok((source, target))
}
