//! From a profile to a connected provider.

use super::{Cloud, CloudError};
use crate::config::{CloudProfile, Config, ProviderKind};
use crate::secret::Prompter;
use std::sync::Arc;

/// Connects the named cloud of a config. `prompt` answers secrets that the
/// profile says to ask for (the CLI reads a masked line; the console has its
/// own input).
pub async fn connect(
    config: &Config,
    name: &str,
    prompt: Prompter<'_>,
) -> Result<Arc<dyn Cloud>, CloudError> {
    let profile: &CloudProfile = config
        .cloud(name)
        .map_err(|e| CloudError::Permanent(e.to_string()))?;
    // No credential in clear text: http endpoints only where the profile says so.
    super::http::check_profile(&config.file_label(), name, profile)?;
    match profile.provider {
        ProviderKind::Lab => {
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
        ProviderKind::Cloudstack => {
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
        ProviderKind::Digitalocean => {
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
        ProviderKind::Ssh => {
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
        ProviderKind::Aws => Ok(Arc::new(
            super::aws::AwsCloud::from_profile(name, profile, prompt).await?,
        )),
        ProviderKind::Gcp => Ok(Arc::new(super::gcp::GcpCloud::from_profile(
            name,
            profile,
            &config.base_dir(),
        )?)),
    }
}
