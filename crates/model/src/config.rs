//! `config.toml` and cloud profiles: where and how to reach a cloud, never a
//! secret value. Errors name the file, the line and the key.

use crate::secret::SecretSource;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    #[default]
    Lab,
    Aws,
    Gcp,
    Digitalocean,
    Cloudstack,
    Ssh,
}

impl std::fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = match self {
            ProviderKind::Lab => "lab",
            ProviderKind::Aws => "aws",
            ProviderKind::Gcp => "gcp",
            ProviderKind::Digitalocean => "digitalocean",
            ProviderKind::Cloudstack => "cloudstack",
            ProviderKind::Ssh => "ssh",
        };
        f.write_str(text)
    }
}

/// One `[clouds.NAME]` table. Fields are shared across providers; each
/// provider checks the ones it needs when it connects.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudProfile {
    pub provider: ProviderKind,
    /// Lab: folder of the lab cloud, relative to the config file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// API endpoint override (how tests point a provider at a local server).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Allow `http://` endpoints (a test server on loopback): without it a
    /// profile whose endpoints would carry credentials in clear is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure_endpoint: Option<bool>,
    /// Country or bloc the cloud's data lives under, overriding the region's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jurisdiction: Option<String>,
    /// AWS shared-config profile name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<SecretSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key: Option<SecretSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<SecretSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hypervisor: Option<String>,
    /// Google Cloud: project id, service-account key file, network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// Staging bucket for uploads: Cloud Storage (gcp) or S3-compatible
    /// storage such as Spaces (digitalocean, with `staging_endpoint`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    /// Google Cloud: OAuth token URI and Cloud Storage endpoint overrides (tests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_endpoint: Option<String>,
    /// Blocks in flight per disk (default chosen by the provider).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_flight: Option<usize>,
    /// SSH source: host (a name from ~/.ssh/config works), user, device to read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// DigitalOcean source: folder of the volumes' device links
    /// (`scsi-0DO_Volume_<NAME>`); default `/dev/disk/by-id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_dir: Option<String>,
    /// SSH source: run the reading commands through `sudo -n`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sudo: Option<bool>,
    /// SSH source: extra `ssh` arguments (`["-F", "file"]`, `["-o", "Port=2222"]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_options: Option<Vec<String>>,
    /// SSH source, cutover: command that powers the host off after the final
    /// pass (default `poweroff`, detached so the connection closes cleanly).
    /// It runs to its end and must succeed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power_off_command: Option<String>,
    /// Google Cloud source: the worker VM that reads a disk (Compute Engine
    /// returns no disk bytes): machine type (default `e2-small`) and boot
    /// image (default the `debian-12` family of `debian-cloud`). It is
    /// reached over SSH with `user`, `ssh_options` and `sudo`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_machine_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_image: Option<String>,
    /// Google Cloud source: public key file put into the worker's `ssh-keys`
    /// metadata for `user` (unneeded with OS Login or project-wide keys).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_ssh_public_key: Option<PathBuf>,
    /// Google Cloud source: where the worker's OS lists attached disks
    /// (default `/dev/disk/by-id`, as `google-<deviceName>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_device_dir: Option<String>,
    /// DigitalOcean target: endpoint of the S3-compatible staging storage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staging_endpoint: Option<String>,
    /// Target instances: subnet to launch into (AWS `subnet-…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet: Option<String>,
    /// Target instances: security groups (AWS `sg-…`) or firewall names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_groups: Option<Vec<String>>,
}

impl CloudProfile {
    pub fn lab(path: PathBuf, jurisdiction: &str) -> CloudProfile {
        CloudProfile {
            provider: ProviderKind::Lab,
            path: Some(path),
            jurisdiction: Some(jurisdiction.to_string()),
            ..CloudProfile::default()
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub theme: Option<String>,
    /// Where journals, audit log and reports go; relative to the config file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_dir: Option<PathBuf>,
    /// Who may approve: signed approvals, a second person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<crate::plan::signature::ApprovalPolicy>,
    #[serde(default)]
    pub clouds: BTreeMap<String, CloudProfile>,
    /// Console keys rebound: `"plan.wave" = "W"` (see tui/keymap.rs).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub keys: BTreeMap<String, String>,
    /// The file this came from (relative paths resolve against its folder).
    #[serde(skip)]
    pub file: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}:{line}:{column}: {message}")]
    Parse {
        file: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{file}: no cloud named '{name}' (configured: {known})")]
    UnknownCloud {
        file: String,
        name: String,
        known: String,
    },
    #[error("{file}: [clouds.{name}] {message}")]
    Profile {
        file: String,
        name: String,
        message: String,
    },
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: path.display().to_string(),
            source,
        })?;
        let mut config: Config = parse_toml(&text, path)?;
        config.file = Some(path.to_path_buf());
        Ok(config)
    }

    /// Folder that relative paths in this config are resolved against.
    pub fn base_dir(&self) -> PathBuf {
        self.file
            .as_deref()
            .and_then(Path::parent)
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."))
    }

    pub fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.base_dir().join(path)
        }
    }

    pub fn file_label(&self) -> String {
        self.file
            .as_ref()
            .map(|f| f.display().to_string())
            .unwrap_or_else(|| "built-in lab config".into())
    }

    pub fn cloud(&self, name: &str) -> Result<&CloudProfile, ConfigError> {
        self.clouds
            .get(name)
            .ok_or_else(|| ConfigError::UnknownCloud {
                file: self.file_label(),
                name: name.to_string(),
                known: self.clouds.keys().cloned().collect::<Vec<_>>().join(", "),
            })
    }
}

/// Parses TOML into `T`, turning serde's message into `file:line:col: …`
/// with a "did you mean" for a misspelt key.
pub fn parse_toml<T: serde::de::DeserializeOwned>(
    text: &str,
    path: &Path,
) -> Result<T, ConfigError> {
    toml::from_str(text).map_err(|err| {
        let (line, column) = err
            .span()
            .map(|span| line_and_column(text, span.start))
            .unwrap_or((1, 1));
        let mut message = explain(err.message());
        // serde names the expected type, not the key: add the key from the line.
        if let Some(key) = text
            .lines()
            .nth(line - 1)
            .and_then(|l| l.split_once('='))
            .map(|(k, _)| k.trim())
            .filter(|k| !k.is_empty() && !message.contains(&format!("'{k}'")))
        {
            message = format!("key '{key}': {message}");
        }
        ConfigError::Parse {
            file: path.display().to_string(),
            line,
            column,
            message,
        }
    })
}

/// 1-based line and column of a byte offset.
pub fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map(|nl| offset - nl)
        .unwrap_or(offset + 1);
    (line, column)
}

/// Adds a suggestion to serde's "unknown field `x`, expected one of …".
fn explain(message: &str) -> String {
    let message = message.trim().to_string();
    let Some(rest) = message.strip_prefix("unknown field `") else {
        return message;
    };
    let Some((field, expected)) = rest.split_once('`') else {
        return message;
    };
    let candidates: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    match candidates.iter().min_by_key(|c| edit_distance(field, c)) {
        Some(best) if edit_distance(field, best) <= 2 => {
            format!("unknown key '{field}' (did you mean '{best}'?)")
        }
        _ => format!(
            "unknown key '{field}' (known keys: {})",
            candidates.join(", ")
        ),
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let current = row[j + 1];
            row[j + 1] = (previous + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(current + 1);
            previous = current;
        }
    }
    row[b.len()]
}

/// Where things live when no `--config` is given.
#[derive(Debug, Clone)]
pub struct Paths {
    pub config_file: PathBuf,
    pub data_dir: PathBuf,
}

impl Paths {
    /// XDG paths through `directories`, with `ALTISHIFT_CONFIG` and
    /// `ALTISHIFT_DATA_DIR` overrides (tests and scripts use them).
    pub fn discover() -> Paths {
        let dirs = directories::ProjectDirs::from("", "", "altishift");
        let config_file = std::env::var_os("ALTISHIFT_CONFIG")
            .map(PathBuf::from)
            .or_else(|| dirs.as_ref().map(|d| d.config_dir().join("config.toml")))
            .unwrap_or_else(|| PathBuf::from("altishift.toml"));
        let data_dir = std::env::var_os("ALTISHIFT_DATA_DIR")
            .map(PathBuf::from)
            .or_else(|| dirs.as_ref().map(|d| d.data_dir().to_path_buf()))
            .unwrap_or_else(|| PathBuf::from(".altishift"));
        Paths {
            config_file,
            data_dir,
        }
    }
}

impl Config {
    /// State folder: the config's `state_dir`, else `<data dir>/state`.
    pub fn state_dir(&self, paths: &Paths) -> PathBuf {
        match &self.state_dir {
            Some(dir) => self.resolve(dir),
            None => paths.data_dir.join("state"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        parse_toml(text, Path::new("config.toml"))
    }

    #[test]
    fn misspelt_key_names_file_line_and_suggestion() {
        let text =
            "theme = \"default\"\n\n[clouds.prod]\nprovider = \"aws\"\nregoin = \"eu-west-1\"\n";
        let err = parse(text).unwrap_err().to_string();
        assert!(err.starts_with("config.toml:5:"), "{err}");
        assert!(err.contains("unknown key 'regoin'"), "{err}");
        assert!(err.contains("did you mean 'region'"), "{err}");
    }

    #[test]
    fn wrong_type_names_the_line() {
        let err = parse("[clouds.a]\nprovider = \"lab\"\nin_flight = \"many\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("config.toml:3:"), "{err}");
    }

    #[test]
    fn unknown_provider_is_refused() {
        let err = parse("[clouds.a]\nprovider = \"azure\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("azure"), "{err}");
    }

    #[test]
    fn secret_values_are_refused_in_config() {
        let err =
            parse("[clouds.a]\nprovider = \"cloudstack\"\nsecret_key = \"abc123verysecret\"\n")
                .unwrap_err()
                .to_string();
        assert!(err.contains("never stored"), "{err}");
        assert!(!err.contains("abc123verysecret"), "{err}");
    }

    #[test]
    fn a_full_profile_parses() {
        let config = parse(
            "theme = \"mono\"\nstate_dir = \"state\"\n[clouds.staging]\nprovider = \"cloudstack\"\nendpoint = \"https://x/client/api\"\napi_key = \"env:CS_API_KEY\"\nsecret_key = \"prompt\"\njurisdiction = \"DE\"\n",
        )
        .unwrap();
        let profile = config.cloud("staging").unwrap();
        assert_eq!(profile.provider, ProviderKind::Cloudstack);
        assert_eq!(profile.secret_key, Some(SecretSource::Prompt));
        assert!(
            config
                .cloud("nope")
                .unwrap_err()
                .to_string()
                .contains("staging")
        );
    }
}
