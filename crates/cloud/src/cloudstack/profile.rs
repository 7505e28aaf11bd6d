//! `[clouds.NAME]` with `provider = "cloudstack"`: the API endpoint and keys,
//! zone and hypervisor hints, the local staging folder.

use crate::secret::SecretSource;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudStackProfile {
    /// The API endpoint (`…/client/api`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Allow `http://` endpoints (a test server on loopback): without it a
    /// profile whose endpoints would carry credentials in clear is refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub insecure_endpoint: Option<bool>,
    /// Where the API key comes from (`env:NAME` or `prompt`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key: Option<SecretSource>,
    /// Where the secret key comes from (`env:NAME` or `prompt`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_key: Option<SecretSource>,
    /// Zone to deploy into (default the only one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// Hypervisor of registered templates (default the zone's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hypervisor: Option<String>,
    /// Country or bloc the cloud's data lives under, overriding the region's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jurisdiction: Option<String>,
    /// Blocks in flight per disk (default chosen by the provider).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub in_flight: Option<usize>,
    /// Local staging folder (downloads, uploads), relative to the config file
    /// (default the state folder).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
}
