//! From a profile to a connected provider, and what each provider declares.

use super::{Cloud, CloudError, Profile, ProviderKind};
use crate::config::Config;
use crate::inventory::declared::ProviderRules;
use crate::secret::Prompter;
use std::sync::Arc;

impl ProviderKind {
    /// What this provider declares for plans (also carried by its
    /// inventories): what its source steps do, what its targets take.
    pub fn rules(self) -> ProviderRules {
        match self {
            ProviderKind::Lab => super::lab::rules(),
            ProviderKind::Aws => super::aws::cutover::rules(),
            ProviderKind::Gcp => super::gcp::rules(),
            ProviderKind::Digitalocean => super::digitalocean::rules(),
            ProviderKind::Cloudstack => super::cloudstack::cutover::rules(),
            ProviderKind::Ssh => super::ssh::rules(),
        }
    }
}

/// Connects the named cloud of a config. `prompt` answers secrets that the
/// profile says to ask for (the CLI reads a masked line; the console has its
/// own input).
pub async fn connect(
    config: &Config,
    name: &str,
    prompt: Prompter<'_>,
) -> Result<Arc<dyn Cloud>, CloudError> {
    let profile = Profile::read(config, name).map_err(|e| CloudError::Permanent(e.to_string()))?;
    // No credential in clear text: http endpoints only where the profile says so.
    super::http::check_profile(&config.file_label(), name, &profile)?;
    match &profile {
        Profile::Lab(profile) => {
            let path = profile.path.as_ref().ok_or_else(|| {
                CloudError::Permanent(format!(
                    "{}: [clouds.{name}] a lab cloud needs 'path'",
                    config.file_label()
                ))
            })?;
            let mut lab = super::lab::LabCloud::open(
                name,
                &config.resolve(path),
                profile.jurisdiction.clone(),
            )?;
            if let Some(source) = &profile.token {
                let token = source
                    .resolve(&format!("{name} access token"), prompt)
                    .map_err(|e| CloudError::Auth(format!("[clouds.{name}] token: {e}")))?;
                lab = lab.with_token(token);
            }
            Ok(Arc::new(lab))
        }
        Profile::Cloudstack(profile) => {
            // Staging files (downloads, uploads): the profile's `path`, else the state dir.
            let staging = match &profile.path {
                Some(path) => config.resolve(path),
                None => config
                    .state_dir(&crate::config::Paths::discover())
                    .join("staging")
                    .join(name),
            };
            let cloud =
                super::cloudstack::CloudStackCloud::from_profile(name, profile, &staging, prompt)?;
            Ok(Arc::new(cloud))
        }
        Profile::Digitalocean(profile) => {
            // Local staging (the raw disk before upload): `path`, else the state dir.
            let staging = match &profile.path {
                Some(path) => config.resolve(path),
                None => config
                    .state_dir(&crate::config::Paths::discover())
                    .join("staging")
                    .join(name),
            };
            let cloud = super::digitalocean::DigitalOceanCloud::from_profile(
                name, profile, &staging, prompt,
            )?;
            Ok(Arc::new(cloud))
        }
        Profile::Ssh(profile) => {
            let settings = super::ssh::SshSettings {
                target: super::ssh::SshTarget {
                    host: profile.host.clone().ok_or_else(|| {
                        CloudError::Permanent(format!(
                            "{}: [clouds.{name}] an ssh source needs 'host'",
                            config.file_label()
                        ))
                    })?,
                    user: profile.user.clone(),
                    options: profile.ssh_options.clone().unwrap_or_default(),
                    sudo: profile.sudo.unwrap_or(false),
                },
                device: profile.device.clone().unwrap_or_default(),
                instance_name: None,
                agent: super::ssh::AgentPolicy::Auto,
                agent_binary: None,
                jurisdiction: profile.jurisdiction.clone(),
            };
            Ok(Arc::new(
                super::ssh::SshCloud::new(name, settings)?
                    .with_power_off_command(profile.power_off_command.clone()),
            ))
        }
        Profile::Aws(profile) => Ok(Arc::new(
            super::aws::AwsCloud::from_profile(name, profile, prompt).await?,
        )),
        Profile::Gcp(profile) => Ok(Arc::new(super::gcp::GcpCloud::from_profile(
            name,
            profile,
            &config.base_dir(),
        )?)),
    }
}
