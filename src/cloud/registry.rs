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
        ProviderKind::Aws => Ok(Arc::new(
            super::aws::AwsCloud::from_profile(name, profile, prompt).await?,
        )),
        other => Err(CloudError::Unsupported(format!(
            "[clouds.{name}] provider '{other}' is not available in this build yet"
        ))),
    }
}
