//! `[clouds.NAME]` with `provider = "aws"`: where and how to reach EC2 and
//! EBS, never a secret value.

use crate::secret::SecretSource;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsProfile {
    /// The region calls go to (e.g. eu-central-1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
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
    /// Shared-config profile name (`~/.aws/config`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// A role to assume for every call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    /// Access key id and secret key (`env:NAME` or `prompt`); neither: the
    /// SDK's default credential chain.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key: Option<SecretSource>,
    /// The secret access key (`env:NAME` or `prompt`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_key: Option<SecretSource>,
    /// Blocks in flight per disk (default chosen by the provider).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub in_flight: Option<usize>,
    /// Subnet deployed instances are launched into (`subnet-…`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subnet: Option<String>,
    /// Security groups of deployed instances (`sg-…`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub security_groups: Option<Vec<String>>,
}
