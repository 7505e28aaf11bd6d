//! `[clouds.NAME]` with `provider = "digitalocean"`: the API token, the
//! SSH login that reads droplets, and the Spaces bucket that stages images.

use crate::secret::SecretSource;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DigitalOceanProfile {
    /// Where the API token comes from (default `DIGITALOCEAN_TOKEN` or doctl's
    /// config).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<SecretSource>,
    /// API endpoint override (how tests point a provider at a local server).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Allow `http://` endpoints (a test server on loopback): without it a
    /// profile whose endpoints would carry credentials in clear is refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub insecure_endpoint: Option<bool>,
    /// Country or bloc the cloud's data lives under, overriding the region's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jurisdiction: Option<String>,
    /// Region of deployed droplets and of the Spaces bucket.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Local staging folder (the raw disk before upload), relative to the
    /// config file (default the state folder).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// SSH login on a source droplet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Extra `ssh` arguments (`["-F", "file"]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssh_options: Option<Vec<String>>,
    /// Read through `sudo -n`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sudo: Option<bool>,
    /// The droplet's boot disk device (default `/dev/vda`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// Folder of the volumes' device links (`scsi-0DO_Volume_<NAME>`); default
    /// `/dev/disk/by-id`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume_dir: Option<String>,
    /// Spaces bucket that stages images for import.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    /// Endpoint of the S3-compatible staging storage.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub staging_endpoint: Option<String>,
    /// The Spaces access key (`env:NAME` or `prompt`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key: Option<SecretSource>,
    /// The Spaces secret key (`env:NAME` or `prompt`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_key: Option<SecretSource>,
}
