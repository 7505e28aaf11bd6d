//! Read-only inventory: regions, instances (with vCPU/memory from
//! DescribeInstanceTypes, platform, boot mode, ENA), volumes, subnets, VPCs,
//! security groups, images and snapshots of this account, every list
//! paginated to the end through [`collect_pages`].
//!
//! moto never pages (it ignores `MaxResults`), so the paging loop is tested
//! on a fake page source in the unit tests below, not against moto.

use super::client::{RegionClients, classify};
use crate::cloud::CloudError;
use crate::inventory::{Disk, DiskFormat, Instance, InstanceState, Inventory, Nic, Region, Size};
use crate::units::Bytes;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;

/// Upper bound on pages of one listing: a server that keeps answering with
/// new tokens is broken, and we say so rather than loop for ever.
pub const MAX_PAGES: usize = 100_000;

/// Calls `fetch` with the previous page's token until a page comes back
/// without one. An empty token ends the listing (AWS sends none, some
/// proxies send `""`); a token repeated immediately is an error.
pub async fn collect_pages<T, F, Fut>(what: &str, mut fetch: F) -> Result<Vec<T>, CloudError>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: Future<Output = Result<(Vec<T>, Option<String>), CloudError>>,
{
    let mut all = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let (items, next) = fetch(token.clone()).await?;
        all.extend(items);
        match next.filter(|t| !t.is_empty()) {
            None => return Ok(all),
            Some(next) if Some(&next) == token.as_ref() => {
                return Err(CloudError::Permanent(format!(
                    "{what}: the server answered the same page token twice; stopping"
                )));
            }
            Some(next) => token = Some(next),
        }
    }
    Err(CloudError::Permanent(format!(
        "{what}: more than {MAX_PAGES} pages; stopping"
    )))
}

/// AWS-specific details the neutral inventory has no room for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AwsDetails {
    pub instances: Vec<InstanceDetail>,
    pub volumes: Vec<VolumeDetail>,
    pub subnets: Vec<(String, String, String)>,
    pub vpcs: Vec<(String, String)>,
    pub security_groups: Vec<(String, String, String)>,
    pub images: Vec<(String, String)>,
    pub snapshots: Vec<SnapshotDetail>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct InstanceDetail {
    pub id: String,
    pub platform: Option<String>,
    pub boot_mode: Option<String>,
    pub ena: Option<bool>,
    pub architecture: Option<String>,
    pub subnet: Option<String>,
    pub security_groups: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct VolumeDetail {
    pub id: String,
    pub size_gib: u64,
    pub volume_type: String,
    pub attached_to: Option<String>,
    pub device: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SnapshotDetail {
    pub id: String,
    pub size_gib: u64,
    pub state: String,
    pub volume: Option<String>,
}

/// ISO code (or bloc) an AWS region's data lives under.
pub fn region_jurisdiction(region: &str) -> &'static str {
    const MAP: &[(&str, &str)] = &[
        ("eu-central-1", "DE"),
        ("eu-central-2", "CH"),
        ("eu-west-1", "IE"),
        ("eu-west-2", "GB"),
        ("eu-west-3", "FR"),
        ("eu-north-1", "SE"),
        ("eu-south-1", "IT"),
        ("eu-south-2", "ES"),
        ("ap-northeast-1", "JP"),
        ("ap-northeast-2", "KR"),
        ("ap-northeast-3", "JP"),
        ("ap-southeast-1", "SG"),
        ("ap-southeast-2", "AU"),
        ("ap-southeast-3", "ID"),
        ("ap-southeast-4", "AU"),
        ("ap-southeast-5", "MY"),
        ("ap-south-1", "IN"),
        ("ap-south-2", "IN"),
        ("ap-east-1", "HK"),
        ("sa-east-1", "BR"),
        ("me-south-1", "BH"),
        ("me-central-1", "AE"),
        ("af-south-1", "ZA"),
        ("il-central-1", "IL"),
        ("mx-central-1", "MX"),
    ];
    if let Some((_, code)) = MAP.iter().find(|(r, _)| *r == region) {
        return code;
    }
    if region.starts_with("us-") {
        "US"
    } else if region.starts_with("ca-") {
        "CA"
    } else if region.starts_with("cn-") {
        "CN"
    } else {
        "unknown"
    }
}

fn tags_of(tags: &[aws_sdk_ec2::types::Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or("").to_string())))
        .collect()
}

fn state_of(name: Option<&aws_sdk_ec2::types::InstanceStateName>) -> InstanceState {
    use aws_sdk_ec2::types::InstanceStateName as S;
    match name {
        Some(S::Running) => InstanceState::Running,
        Some(S::Stopped) | Some(S::Stopping) => InstanceState::Stopped,
        Some(S::Pending) => InstanceState::Pending,
        Some(S::Terminated) | Some(S::ShuttingDown) => InstanceState::Terminated,
        _ => InstanceState::Unknown,
    }
}

/// Everything in the profile's region (instances, volumes…) plus the region list.
pub async fn read(
    c: &RegionClients,
    cloud: &str,
    region: &str,
    jurisdiction: Option<&str>,
) -> Result<(Inventory, AwsDetails), CloudError> {
    let ec2 = &c.ec2;
    let regions = ec2
        .describe_regions()
        .send()
        .await
        .map_err(|e| classify("ec2 DescribeRegions", e))?;
    let mut names: Vec<String> = regions
        .regions()
        .iter()
        .filter_map(|r| r.region_name().map(str::to_string))
        .collect();
    // The profile's region first: a plan deploys there unless told otherwise.
    names.retain(|n| n != region);
    names.insert(0, region.to_string());
    let regions = names
        .into_iter()
        .map(|name| Region {
            jurisdiction: jurisdiction
                .map(str::to_string)
                .unwrap_or_else(|| region_jurisdiction(&name).to_string()),
            name,
        })
        .collect();

    let types = collect_pages("ec2 DescribeInstanceTypes", |token| async move {
        let page = ec2
            .describe_instance_types()
            .set_next_token(token)
            .max_results(100)
            .send()
            .await
            .map_err(|e| classify("ec2 DescribeInstanceTypes", e))?;
        let sizes = page
            .instance_types()
            .iter()
            .filter_map(|t| {
                Some(Size {
                    name: t.instance_type()?.as_str().to_string(),
                    vcpus: t.v_cpu_info()?.default_v_cpus()?.max(0) as u32,
                    memory: Bytes::mib(t.memory_info()?.size_in_mib()?.max(0) as u64),
                })
            })
            .collect();
        Ok((sizes, page.next_token().map(str::to_string)))
    })
    .await?;
    let by_type: HashMap<&str, &Size> = types.iter().map(|s| (s.name.as_str(), s)).collect();

    let volumes = collect_pages("ec2 DescribeVolumes", |token| async move {
        let page = ec2
            .describe_volumes()
            .set_next_token(token)
            .max_results(500)
            .send()
            .await
            .map_err(|e| classify("ec2 DescribeVolumes", e))?;
        let list = page
            .volumes()
            .iter()
            .filter_map(|v| {
                let attachment = v.attachments().first();
                Some(VolumeDetail {
                    id: v.volume_id()?.to_string(),
                    size_gib: v.size().unwrap_or(0).max(0) as u64,
                    volume_type: v
                        .volume_type()
                        .map(|t| t.as_str().to_string())
                        .unwrap_or_default(),
                    attached_to: attachment.and_then(|a| a.instance_id()).map(str::to_string),
                    device: attachment.and_then(|a| a.device()).map(str::to_string),
                })
            })
            .collect();
        Ok((list, page.next_token().map(str::to_string)))
    })
    .await?;
    let volume_size: HashMap<&str, u64> = volumes
        .iter()
        .map(|v| (v.id.as_str(), v.size_gib))
        .collect();

    let raw_instances = collect_pages("ec2 DescribeInstances", |token| async move {
        let page = ec2
            .describe_instances()
            .set_next_token(token)
            .max_results(1000)
            .send()
            .await
            .map_err(|e| classify("ec2 DescribeInstances", e))?;
        let list: Vec<aws_sdk_ec2::types::Instance> = page
            .reservations()
            .iter()
            .flat_map(|r| r.instances().iter().cloned())
            .collect();
        Ok((list, page.next_token().map(str::to_string)))
    })
    .await?;

    let mut instances = Vec::new();
    let mut details = AwsDetails::default();
    for i in &raw_instances {
        let Some(id) = i.instance_id() else { continue };
        let tags = tags_of(i.tags());
        let size = i
            .instance_type()
            .map(|t| t.as_str().to_string())
            .unwrap_or_default();
        let known = by_type.get(size.as_str());
        let root = i.root_device_name().unwrap_or("");
        let disks = i
            .block_device_mappings()
            .iter()
            .filter_map(|m| {
                let volume = m.ebs()?.volume_id()?;
                let device = m.device_name().unwrap_or("").to_string();
                Some(Disk {
                    id: volume.to_string(),
                    boot: device == root,
                    device,
                    format: DiskFormat::Raw,
                    virtual_size: Bytes::gib(volume_size.get(volume).copied().unwrap_or(0)),
                    allocated: None,
                })
            })
            .collect::<Vec<_>>();
        let mut disks = disks;
        disks.sort_by_key(|d| !d.boot);
        let nics = i
            .network_interfaces()
            .iter()
            .map(|n| Nic {
                name: n.network_interface_id().unwrap_or("").to_string(),
                network: n.subnet_id().unwrap_or("").to_string(),
                address: n.private_ip_address().map(str::to_string),
            })
            .collect();
        instances.push(Instance {
            id: id.to_string(),
            name: tags.get("Name").cloned().unwrap_or_else(|| id.to_string()),
            state: state_of(i.state().and_then(|s| s.name())),
            vcpus: known.map_or(0, |s| s.vcpus),
            memory: known.map_or(Bytes::ZERO, |s| s.memory),
            size,
            region: region.to_string(),
            disks,
            nics,
            tags,
            platform: Default::default(),
        });
        details.instances.push(InstanceDetail {
            id: id.to_string(),
            platform: i.platform_details().map(str::to_string),
            boot_mode: i.boot_mode().map(|b| b.as_str().to_string()),
            ena: i.ena_support(),
            architecture: i.architecture().map(|a| a.as_str().to_string()),
            subnet: i.subnet_id().map(str::to_string),
            security_groups: i
                .security_groups()
                .iter()
                .filter_map(|g| g.group_id().map(str::to_string))
                .collect(),
        });
    }
    details.volumes = volumes;
    read_network(c, &mut details).await?;
    Ok((
        Inventory {
            cloud: cloud.to_string(),
            provider: "aws".into(),
            instances,
            sizes: types,
            regions,
            ..Default::default()
        },
        details,
    ))
}

/// Subnets, VPCs, security groups, own images and snapshots.
async fn read_network(c: &RegionClients, details: &mut AwsDetails) -> Result<(), CloudError> {
    let ec2 = &c.ec2;
    details.subnets = collect_pages("ec2 DescribeSubnets", |token| async move {
        let page = ec2
            .describe_subnets()
            .set_next_token(token)
            .max_results(1000)
            .send()
            .await
            .map_err(|e| classify("ec2 DescribeSubnets", e))?;
        let list = page
            .subnets()
            .iter()
            .map(|s| {
                (
                    s.subnet_id().unwrap_or("").to_string(),
                    s.vpc_id().unwrap_or("").to_string(),
                    s.availability_zone().unwrap_or("").to_string(),
                )
            })
            .collect();
        Ok((list, page.next_token().map(str::to_string)))
    })
    .await?;
    details.vpcs = collect_pages("ec2 DescribeVpcs", |token| async move {
        let page = ec2
            .describe_vpcs()
            .set_next_token(token)
            .max_results(1000)
            .send()
            .await
            .map_err(|e| classify("ec2 DescribeVpcs", e))?;
        let list = page
            .vpcs()
            .iter()
            .map(|v| {
                (
                    v.vpc_id().unwrap_or("").to_string(),
                    v.cidr_block().unwrap_or("").to_string(),
                )
            })
            .collect();
        Ok((list, page.next_token().map(str::to_string)))
    })
    .await?;
    details.security_groups = collect_pages("ec2 DescribeSecurityGroups", |token| async move {
        let page = ec2
            .describe_security_groups()
            .set_next_token(token)
            .max_results(1000)
            .send()
            .await
            .map_err(|e| classify("ec2 DescribeSecurityGroups", e))?;
        let list = page
            .security_groups()
            .iter()
            .map(|g| {
                (
                    g.group_id().unwrap_or("").to_string(),
                    g.group_name().unwrap_or("").to_string(),
                    g.vpc_id().unwrap_or("").to_string(),
                )
            })
            .collect();
        Ok((list, page.next_token().map(str::to_string)))
    })
    .await?;
    details.images = collect_pages("ec2 DescribeImages", |token| async move {
        let page = ec2
            .describe_images()
            .owners("self")
            .set_next_token(token)
            .max_results(1000)
            .send()
            .await
            .map_err(|e| classify("ec2 DescribeImages", e))?;
        let list = page
            .images()
            .iter()
            .map(|i| {
                (
                    i.image_id().unwrap_or("").to_string(),
                    i.name().unwrap_or("").to_string(),
                )
            })
            .collect();
        Ok((list, page.next_token().map(str::to_string)))
    })
    .await?;
    details.snapshots = collect_pages("ec2 DescribeSnapshots", |token| async move {
        let page = ec2
            .describe_snapshots()
            .owner_ids("self")
            .set_next_token(token)
            .max_results(1000)
            .send()
            .await
            .map_err(|e| classify("ec2 DescribeSnapshots", e))?;
        let list = page
            .snapshots()
            .iter()
            .map(|s| SnapshotDetail {
                id: s.snapshot_id().unwrap_or("").to_string(),
                size_gib: s.volume_size().unwrap_or(0).max(0) as u64,
                state: s
                    .state()
                    .map(|x| x.as_str().to_string())
                    .unwrap_or_default(),
                volume: s.volume_id().map(str::to_string),
            })
            .collect();
        Ok((list, page.next_token().map(str::to_string)))
    })
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A fake page source: three pages chained by tokens, recording the
    /// tokens it was asked for (moto never pages, so this is the test).
    #[tokio::test]
    async fn pages_are_followed_to_the_end_in_order() {
        let pages: Vec<(Vec<u32>, Option<String>)> = vec![
            (vec![1, 2], Some("t1".into())),
            (vec![3], Some("t2".into())),
            (vec![4, 5], None),
        ];
        let asked = Mutex::new(Vec::new());
        let all = collect_pages("fake", |token| {
            asked.lock().unwrap().push(token.clone());
            let index = match token.as_deref() {
                None => 0,
                Some("t1") => 1,
                Some("t2") => 2,
                Some(other) => panic!("unexpected token {other}"),
            };
            let page = pages[index].clone();
            async move { Ok(page) }
        })
        .await
        .unwrap();
        assert_eq!(all, vec![1, 2, 3, 4, 5]);
        assert_eq!(
            *asked.lock().unwrap(),
            vec![None, Some("t1".to_string()), Some("t2".to_string())]
        );
    }

    #[tokio::test]
    async fn an_empty_token_ends_and_a_repeated_token_is_an_error() {
        let all = collect_pages("fake", |_| async { Ok((vec![7u8], Some(String::new()))) })
            .await
            .unwrap();
        assert_eq!(all, vec![7]);
        let err = collect_pages("ec2 DescribeVolumes", |_| async {
            Ok((vec![1u8], Some("same".to_string())))
        })
        .await
        .unwrap_err();
        assert!(err.to_string().contains("same page token twice"), "{err}");
    }

    #[tokio::test]
    async fn an_error_on_a_later_page_fails_the_listing() {
        let err = collect_pages("fake", |token| async move {
            match token {
                None => Ok((vec![1u8], Some("next".into()))),
                Some(_) => Err(CloudError::Transient("HTTP 503".into())),
            }
        })
        .await
        .unwrap_err();
        assert!(err.is_transient());
    }

    #[test]
    fn regions_map_to_jurisdictions() {
        assert_eq!(region_jurisdiction("eu-central-1"), "DE");
        assert_eq!(region_jurisdiction("us-west-2"), "US");
        assert_eq!(region_jurisdiction("xx-nowhere-9"), "unknown");
    }
}
