//! Read-only inventory: regions, instances (with vCPU/memory from
//! DescribeInstanceTypes, platform, boot mode, ENA), volume sizes, VPCs and
//! subnets, security groups and the account's images, every list paginated
//! to the end through [`collect_pages`] (tested on recorded pages in
//! tests/aws_paging.rs: moto never pages).

use super::client::{RegionClients, classify};
use super::neutral;
use super::paging::collect_pages;
use crate::CloudError;
use crate::inventory::{Inventory, Region, Size};
use crate::units::Bytes;
use std::collections::HashMap;

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

/// Everything in the profile's region (instances, networks, firewalls,
/// images) plus the region list and the instance types.
pub async fn read(
    c: &RegionClients,
    cloud: &str,
    region: &str,
    jurisdiction: Option<&str>,
) -> Result<Inventory, CloudError> {
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
            .map(|v| {
                let id = v.volume_id().filter(|id| !id.is_empty()).ok_or_else(|| {
                    CloudError::Permanent(
                        "ec2 DescribeVolumes: the answer holds a volume without <volumeId>; not a usable answer".into(),
                    )
                })?;
                Ok((id.to_string(), v.size().unwrap_or(0).max(0) as u64))
            })
            .collect::<Result<Vec<_>, CloudError>>()?;
        Ok((list, page.next_token().map(str::to_string)))
    })
    .await?;
    let volume_gib: HashMap<&str, u64> = volumes.iter().map(|(id, g)| (id.as_str(), *g)).collect();

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
    let mut instances = raw_instances
        .iter()
        .map(|i| neutral::instance(i, region, &by_type, &volume_gib))
        .collect::<Result<Vec<_>, _>>()?;

    let mut networks = collect_pages("ec2 DescribeVpcs", |token| async move {
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
            .map(|v| neutral::vpc(v, region))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((list, page.next_token().map(str::to_string)))
    })
    .await?;
    let subnets = collect_pages("ec2 DescribeSubnets", |token| async move {
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
            .map(neutral::subnet)
            .collect::<Result<Vec<_>, _>>()?;
        Ok((list, page.next_token().map(str::to_string)))
    })
    .await?;
    networks.extend(subnets);
    let groups = collect_pages("ec2 DescribeSecurityGroups", |token| async move {
        let page = ec2
            .describe_security_groups()
            .set_next_token(token)
            .max_results(1000)
            .send()
            .await
            .map_err(|e| classify("ec2 DescribeSecurityGroups", e))?;
        Ok((
            page.security_groups().to_vec(),
            page.next_token().map(str::to_string),
        ))
    })
    .await?;
    let firewalls = groups
        .iter()
        .map(neutral::firewall)
        .collect::<Result<Vec<_>, _>>()?;
    super::config::fill(c, &raw_instances, &mut instances, &groups, &networks).await?;
    let images = collect_pages("ec2 DescribeImages", |token| async move {
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
            .map(|i| neutral::image(i, region))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((list, page.next_token().map(str::to_string)))
    })
    .await?;
    Ok(Inventory {
        cloud: cloud.to_string(),
        provider: "aws".into(),
        instances,
        sizes: types,
        regions,
        networks,
        firewalls,
        images,
        config_rules: Some(super::config::config_rules()),
        rules: super::cutover::rules(),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_map_to_jurisdictions() {
        assert_eq!(region_jurisdiction("eu-central-1"), "DE");
        assert_eq!(region_jurisdiction("us-west-2"), "US");
        assert_eq!(region_jurisdiction("xx-nowhere-9"), "unknown");
    }
}
