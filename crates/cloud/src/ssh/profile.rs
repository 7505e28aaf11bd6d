//! `[clouds.NAME]` with `provider = "ssh"`: a host read over SSH.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SshProfile {
    /// Host (a name from ~/.ssh/config works).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Login user.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Extra `ssh` arguments (`["-F", "file"]`, `["-o", "Port=2222"]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssh_options: Option<Vec<String>>,
    /// Run the reading commands through `sudo -n`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sudo: Option<bool>,
    /// Device to read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// Cutover: command that powers the host off after the final pass (default
    /// `poweroff`, detached so the connection closes cleanly). It runs to its
    /// end and must succeed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub power_off_command: Option<String>,
    /// Country or bloc the cloud's data lives under, overriding the region's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jurisdiction: Option<String>,
}
