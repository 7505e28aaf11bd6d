//! `[clouds.NAME]` with `provider = "gcp"`: project, key file, zone,
//! staging bucket, endpoints, and the worker VM that reads source disks.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GcpProfile {
    /// Project id (default: the key file's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// Service-account key file, relative to the config file (default
    /// `GOOGLE_APPLICATION_CREDENTIALS`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credentials_file: Option<PathBuf>,
    /// Zone instances and disks are in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// VPC network of deployed instances.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// Cloud Storage bucket that stages uploaded images.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    /// Compute Engine endpoint override (tests).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Cloud Storage endpoint override (tests).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage_endpoint: Option<String>,
    /// OAuth token URI override (tests).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_uri: Option<String>,
    /// Allow `http://` endpoints (a test server on loopback): without it a
    /// profile whose endpoints would carry credentials in clear is refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub insecure_endpoint: Option<bool>,
    /// Country or bloc the cloud's data lives under, overriding the region's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jurisdiction: Option<String>,
    /// Blocks in flight per disk (default chosen by the provider).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub in_flight: Option<usize>,
    /// The worker VM's SSH login (Compute Engine returns no disk bytes: a
    /// worker reads a source disk).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Extra `ssh` arguments for the worker.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssh_options: Option<Vec<String>>,
    /// Read through `sudo -n` on the worker (default true).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sudo: Option<bool>,
    /// Worker machine type (default `e2-small`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker_machine_type: Option<String>,
    /// Worker boot image (default the `debian-12` family of `debian-cloud`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker_image: Option<String>,
    /// Public key file put into the worker's `ssh-keys` metadata for `user`
    /// (unneeded with OS Login or project-wide keys).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker_ssh_public_key: Option<PathBuf>,
    /// Where the worker's OS lists attached disks (default `/dev/disk/by-id`,
    /// as `google-<deviceName>`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker_device_dir: Option<String>,
}
