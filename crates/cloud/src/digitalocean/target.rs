//! DigitalOcean as a target: blocks land in a local sparse raw file; at the
//! end it becomes a compact qcow2, is uploaded (multipart) to S3-compatible
//! staging, imported as a custom image from the object's plain URL during
//! a short import window (see [`super::staging`]), and a droplet is created
//! from it.

use super::DigitalOceanCloud;
use super::client::DoClient;
pub use super::staging::Staging;
use crate::inventory::DiskFormat;
use crate::inventory::Platform;
use crate::local_disk;
use crate::staging::{FinishStaged, StagedWriter};
use crate::{Capability, Check, DiskReader, DiskWriter, Target};
use crate::{CloudError, DeploySpec, DeployedInstance, TargetDiskSpec, WrittenDisk};
use async_trait::async_trait;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

/// Opens (or reopens, on resume) the writer of a droplet's boot disk: blocks
/// go into a local staging file, [`ImportImage`] turns it into an image.
pub fn open_image_writer(
    client: Arc<DoClient>,
    staging: Staging,
    spec: &TargetDiskSpec,
) -> Result<StagedWriter, CloudError> {
    let key = match &spec.resume {
        Some(key) => key.clone(),
        None => Staging::new_key(&spec.name)?,
    };
    let path = staging.local(&key);
    let finish = ImportImage {
        client,
        staging,
        key: key.clone(),
        spec: spec.clone(),
    };
    StagedWriter::open(&path, key, spec.virtual_size, Box::new(finish))
}

/// qcow2, multipart upload, the import window, `POST /v2/images`.
struct ImportImage {
    client: Arc<DoClient>,
    staging: Staging,
    key: String,
    spec: TargetDiskSpec,
}

#[async_trait]
impl FinishStaged for ImportImage {
    async fn finish(self: Box<Self>, raw: PathBuf) -> Result<WrittenDisk, CloudError> {
        let qcow2 = raw.with_extension("qcow2");
        let (from, to) = (raw.clone(), qcow2.clone());
        tokio::task::spawn_blocking(move || {
            local_disk::convert(&from, DiskFormat::Raw, &to, DiskFormat::Qcow2)
        })
        .await
        .map_err(|e| CloudError::Permanent(format!("convert task failed: {e}")))??;
        self.staging.upload(&self.key, &qcow2).await?;
        let size = std::fs::metadata(&qcow2)
            .map_err(|e| CloudError::from_io(qcow2.display(), e))?
            .len();
        let url = self.staging.open_window(&self.key, size).await?;
        let imported = import_image(&self.client, &self.spec, &url).await;
        self.staging.close_window(&self.key).await;
        let image = imported?;
        self.staging
            .imported
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(image.clone(), self.key.clone());
        Ok(WrittenDisk {
            id: image,
            format: DiskFormat::Qcow2,
            virtual_size: self.spec.virtual_size,
        })
    }
}

/// `POST /v2/images` from the URL, then waits for `available`.
async fn import_image(
    client: &DoClient,
    spec: &TargetDiskSpec,
    url: &str,
) -> Result<String, CloudError> {
    let body = json!({
        "name": spec.name,
        "url": url,
        "region": spec.region,
        "distribution": distribution(spec.platform.os.as_deref()),
        "description": "imported by altishift",
        "tags": ["altishift"],
    });
    let created = create_once(client, "/v2/images", &body, "image", || async {
        let found = client.list("/v2/images?private=true", "images").await?;
        Ok(found
            .into_iter()
            .filter(|i| i["name"] == spec.name.as_str() && i["description"] == body["description"])
            .collect())
    })
    .await?;
    let id = id_of(&created["image"]["id"])
        .ok_or_else(|| CloudError::Permanent("POST /v2/images gave no image id".into()))?;
    let started = Instant::now();
    loop {
        let image = client.get(&format!("/v2/images/{id}")).await?;
        let image = &image["image"];
        match image["status"].as_str().unwrap_or_default() {
            "available" => return Ok(id),
            "deleted" | "error" => {
                return Err(CloudError::Permanent(format!(
                    "image {id} import failed: {}",
                    image["error_message"].as_str().unwrap_or("no reason given")
                )));
            }
            _ => {}
        }
        if started.elapsed() > client.pacing.poll_deadline {
            return Err(CloudError::Transient(format!(
                "image {id} still not available after {:?}",
                client.pacing.poll_deadline
            )));
        }
        tokio::time::sleep(client.pacing.poll_every).await;
    }
}

/// `POST path` that never makes two: `find` lists what such a create would
/// have made. What exists before the first attempt is noted; after a failure
/// that may have reached the server (a lost answer, a 5xx), a new match is
/// adopted as `{kind: …}` instead of asking again.
async fn create_once<F, Fut>(
    client: &DoClient,
    path: &str,
    body: &Value,
    kind: &str,
    find: F,
) -> Result<Value, CloudError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<Vec<Value>, CloudError>>,
{
    let before: Vec<Value> = find().await?.iter().map(|v| v["id"].clone()).collect();
    let mut attempt = 0;
    loop {
        attempt += 1;
        match client.post(path, body).await {
            Err(CloudError::Transient(e)) => {
                let made = find()
                    .await?
                    .into_iter()
                    .find(|v| !before.contains(&v["id"]));
                if let Some(made) = made {
                    tracing::info!("POST {path}: the answer was lost; adopting what it made");
                    return Ok(json!({ kind: made }));
                }
                if attempt >= client.pacing.attempts {
                    return Err(CloudError::Transient(e));
                }
                tokio::time::sleep(client.pacing.first_backoff * attempt).await;
            }
            other => return other,
        }
    }
}

fn id_of(value: &Value) -> Option<String> {
    match value {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

/// Creates the droplet from the boot image and waits until it is active.
pub async fn deploy(client: &DoClient, spec: &DeploySpec) -> Result<DeployedInstance, CloudError> {
    let [boot] = spec.disks.as_slice() else {
        return Err(CloudError::Unsupported(format!(
            "{}: DigitalOcean droplets boot from one image; {} disks need volumes, which this \
             version does not create",
            spec.name,
            spec.disks.len()
        )));
    };
    let config = &spec.config;
    // Custom images need SSH keys: the plan's, else the account's.
    let key_ids: Vec<Value> = if config.ssh_keys.is_empty() {
        let keys = client.list("/v2/account/keys", "ssh_keys").await?;
        keys.iter().map(|k| k["id"].clone()).collect()
    } else {
        config
            .ssh_keys
            .iter()
            .map(|id| {
                id.parse::<u64>()
                    .map(Value::from)
                    .unwrap_or_else(|_| id.as_str().into())
            })
            .collect()
    };
    if key_ids.is_empty() {
        return Err(CloudError::Permanent(
            "droplets from custom images need an SSH key: add one to the account".into(),
        ));
    }
    let image: Value = boot
        .id
        .parse::<u64>()
        .map(Value::from)
        .unwrap_or_else(|_| Value::from(boot.id.clone()));
    let mut tags: Vec<String> = spec.tags.iter().map(|(k, v)| tag(k, v)).collect();
    // The tags that apply the plan's cloud firewalls.
    tags.extend(super::config::firewall_tags(client, &config.firewalls).await?);
    let mut body = json!({
        "name": spec.name,
        "region": spec.region,
        "size": spec.size,
        "image": image,
        "ssh_keys": key_ids,
        "tags": tags,
    });
    if let Some(data) = &config.user_data {
        body["user_data"] = data.as_str().into();
    }
    if let Some(vpc) = &config.network {
        body["vpc_uuid"] = vpc.as_str().into();
    }
    let same = |d: &Value| {
        d["name"] == spec.name.as_str()
            && tags.iter().all(|t| {
                d["tags"]
                    .as_array()
                    .is_some_and(|list| list.iter().any(|x| x == t))
            })
    };
    let listing = match tags.first() {
        Some(t) => format!("/v2/droplets?tag_name={t}"),
        None => "/v2/droplets".to_string(),
    };
    let created = create_once(client, "/v2/droplets", &body, "droplet", || async {
        let found = client.list(&listing, "droplets").await?;
        Ok(found.into_iter().filter(|d| same(d)).collect())
    })
    .await?;
    let id = id_of(&created["droplet"]["id"])
        .ok_or_else(|| CloudError::Permanent("POST /v2/droplets gave no droplet id".into()))?;
    let action = created["links"]["actions"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["rel"] == "create"))
        .and_then(|a| id_of(&a["id"]));
    let started = Instant::now();
    let waited = |what: &str| {
        if started.elapsed() > client.pacing.poll_deadline {
            Err(CloudError::Transient(format!(
                "droplet {id}: {what} not done after {:?}",
                client.pacing.poll_deadline
            )))
        } else {
            Ok(())
        }
    };
    if let Some(action) = action {
        loop {
            let a = client.get(&format!("/v2/actions/{action}")).await?;
            match a["action"]["status"].as_str().unwrap_or_default() {
                "completed" => break,
                "errored" => {
                    return Err(CloudError::Permanent(format!(
                        "droplet {id}: create action {action} errored"
                    )));
                }
                _ => {}
            }
            waited("create action")?;
            tokio::time::sleep(client.pacing.poll_every).await;
        }
    }
    let active = loop {
        let d = client.get(&format!("/v2/droplets/{id}")).await?;
        if d["droplet"]["status"] == "active" {
            break d;
        }
        waited("activation")?;
        tokio::time::sleep(client.pacing.poll_every).await;
    };
    Ok(DeployedInstance {
        id,
        name: spec.name.clone(),
        address: public_v4(&active["droplet"]),
    })
}

/// The droplet's public IPv4 address (`networks.v4`, type `public`): what
/// the jump host reaches it at.
fn public_v4(droplet: &Value) -> Option<String> {
    droplet["networks"]["v4"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|n| n["type"] == "public")
        .and_then(|n| n["ip_address"].as_str())
        .filter(|a| !a.is_empty())
        .map(str::to_string)
}

/// Validation of the plan's configuration on a droplet: VPC, firewalls and
/// tags. Keys and user_data are sent at create but the droplet answer does
/// not hold them, so they are not checked here.
pub async fn config_checks(
    client: &DoClient,
    droplet: &Value,
    spec: &DeploySpec,
) -> Result<Vec<crate::Check>, CloudError> {
    if spec.config.is_empty() {
        return Ok(Vec::new());
    }
    let found = super::config::found(client, droplet).await?;
    let wanted = crate::configure::DeployConfig {
        ssh_keys: Vec::new(),
        user_data: None,
        public_ip: None,
        tags: spec
            .config
            .tags
            .iter()
            .map(|(k, v)| {
                let t = tag(k, v);
                match t.split_once(':') {
                    Some((k, v)) => (k.to_string(), v.to_string()),
                    None => (t, String::new()),
                }
            })
            .collect(),
        ..spec.config.clone()
    };
    Ok(crate::configure::checks(&wanted, &found))
}

/// A DigitalOcean tag (letters, digits, `:`, `-`, `_`) from a key and value.
fn tag(key: &str, value: &str) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | ':') {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    if value.is_empty() {
        clean(key)
    } else {
        format!("{}:{}", clean(key), clean(value))
    }
}

/// DigitalOcean's `distribution` for a custom image, from the source's OS
/// text: one of the names its API v2 reference lists for `POST /v2/images`,
/// `Unknown` when none fits (AlmaLinux, say, is not in that list).
fn distribution(os: Option<&str>) -> &'static str {
    let Some(os) = os.map(str::to_ascii_lowercase) else {
        return "Unknown";
    };
    const KNOWN: &[(&str, &str)] = &[
        ("ubuntu", "Ubuntu"),
        ("debian", "Debian"),
        ("centos", "CentOS"),
        ("fedora", "Fedora"),
        ("rocky", "Rocky Linux"),
        ("arch", "Arch Linux"),
        ("coreos", "CoreOS"),
        ("freebsd", "FreeBSD"),
        ("gentoo", "Gentoo"),
        ("opensuse", "openSUSE"),
    ];
    KNOWN
        .iter()
        .find(|(needle, _)| os.contains(needle))
        .map_or("Unknown", |(_, name)| name)
}

#[async_trait]
impl Target for DigitalOceanCloud {
    /// The profile's region; without one, a refusal: the API lists `nyc1`
    /// first, so "the first region" would silently plan into the US.
    fn default_region(&self) -> Result<Option<String>, CloudError> {
        match &self.region {
            Some(region) => Ok(Some(region.clone())),
            None => Err(CloudError::Permanent(format!(
                "[clouds.{}] has no 'region': set region = \"fra1\" (or another slug) in the \
                 profile, or pass --region",
                self.name
            ))),
        }
    }

    async fn open_disk_writer(
        &self,
        _cap: &Capability,
        spec: &TargetDiskSpec,
    ) -> Result<Box<dyn DiskWriter>, CloudError> {
        // The plan refused these already; a hand-edited plan meets them here.
        if !spec.boot {
            return Err(CloudError::Unsupported(format!(
                "{}: DigitalOcean data disks would be volumes filled over SSH, which this \
                 version does not do (plans with data disks are refused)",
                spec.name
            )));
        }
        let refusal = super::rules()
            .target
            .image_refusal(spec.virtual_size, &Platform::default());
        if let Some(reason) = refusal {
            return Err(CloudError::Permanent(reason));
        }
        let writer = open_image_writer(self.client.clone(), self.staging()?.clone(), spec)?;
        Ok(Box::new(writer))
    }

    async fn deploy(
        &self,
        _cap: &Capability,
        spec: &DeploySpec,
    ) -> Result<DeployedInstance, CloudError> {
        deploy(&self.client, spec).await
    }

    /// The image itself cannot be downloaded; what can be checked is the
    /// staged object DigitalOcean imported it from.
    async fn read_back(
        &self,
        disk: &WrittenDisk,
    ) -> Result<Option<Box<dyn DiskReader>>, CloudError> {
        let Some(staging) = &self.staging else {
            return Ok(None);
        };
        let Some(path) = staging.fetch_imported(&disk.id).await? else {
            return Ok(None);
        };
        let reader = local_disk::LocalDiskReader::open(&path, DiskFormat::Qcow2)?;
        Ok(Some(Box::new(reader)))
    }

    async fn probe(
        &self,
        instance: &DeployedInstance,
        spec: &DeploySpec,
    ) -> Result<Vec<Check>, CloudError> {
        let droplet = self
            .client
            .get(&format!("/v2/droplets/{}", instance.id))
            .await?;
        let droplet = &droplet["droplet"];
        let status = droplet["status"].as_str().unwrap_or("unknown");
        let size = droplet["size_slug"].as_str().unwrap_or("unknown");
        let config = config_checks(&self.client, droplet, spec).await?;
        let mut checks = vec![
            Check::new(
                "droplet active",
                status == "active",
                format!("status {status}"),
            ),
            Check::new(
                "size",
                size == spec.size,
                format!("{size} (planned {})", spec.size),
            ),
        ];
        checks.extend(config);
        Ok(checks)
    }

    async fn create_config_object(
        &self,
        cap: &Capability,
        object: &crate::configure::ConfigObject,
    ) -> Result<String, CloudError> {
        super::config::create(&self.client, cap, object).await
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn the_image_distribution_comes_from_the_source_os() {
        assert_eq!(distribution(Some("Ubuntu 24.04 (LTS) x64")), "Ubuntu");
        assert_eq!(distribution(Some("Debian 12")), "Debian");
        assert_eq!(distribution(Some("Rocky Linux 9")), "Rocky Linux");
        assert_eq!(distribution(Some("AlmaLinux 9")), "Unknown");
        assert_eq!(distribution(None), "Unknown");
    }

    use super::*;

    #[test]
    fn tags_keep_to_the_allowed_characters() {
        assert_eq!(tag("altishift-plan", "ab12cd34"), "altishift-plan:ab12cd34");
        assert_eq!(tag("owner", "a.b@c"), "owner:a_b_c");
        assert_eq!(tag("db", ""), "db");
        // A plan's tag is already `key:value` (DigitalOcean tags are single words).
        assert_eq!(tag("env:lab", ""), "env:lab");
    }
}
