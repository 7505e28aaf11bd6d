//! `[clouds.NAME]` with `provider = "lab"`: a lab cloud's folder.

use crate::secret::SecretSource;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabProfile {
    /// Folder of the lab cloud, relative to the config file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// Country or bloc the cloud's data lives under, overriding the region's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jurisdiction: Option<String>,
    /// An access token the lab asks for (`env:NAME` or `prompt`), to try the
    /// secret prompts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<SecretSource>,
}
