//! What a run killed between creating something and journaling it leaves
//! on AWS, found by the plan's tag: temporary source snapshots (every
//! region this process used) and the security groups and key pairs of the
//! plan's configuration (the profile's region).

use super::client::{Clients, RegionClients, classify};
use super::{join_region, paging, source};
use crate::{CloudError, CreatedResource, ResourceKind};
use aws_sdk_ec2::types::Filter;

/// Source snapshots carrying the plan's tag and the temporary tag, in the
/// profile's region and every region this process used (a snapshot left
/// in another region is not searched: the report of the killed run names
/// its disks' regions).
pub async fn snapshots(
    clients: &Clients,
    cloud: &str,
    tag: &(String, String),
) -> Result<Vec<CreatedResource>, CloudError> {
    let mut found = Vec::new();
    for region in clients.known_regions() {
        let c = clients.get(Some(&region))?;
        let ec2 = &c.ec2;
        let ids: Vec<String> = paging::collect_pages("ec2 DescribeSnapshots", |token| async move {
            let page = ec2
                .describe_snapshots()
                .owner_ids("self")
                .filters(
                    Filter::builder()
                        .name(format!("tag:{}", tag.0))
                        .values(&tag.1)
                        .build(),
                )
                .filters(
                    Filter::builder()
                        .name(format!("tag:{}", source::TEMPORARY_TAG))
                        .values("true")
                        .build(),
                )
                .set_next_token(token)
                .send()
                .await
                .map_err(|e| classify("ec2 DescribeSnapshots", e))?;
            let ids: Vec<String> = page
                .snapshots()
                .iter()
                .filter_map(|s| s.snapshot_id().map(str::to_string))
                .collect();
            Ok((ids, page.next_token().map(str::to_string)))
        })
        .await?;
        found.extend(ids.into_iter().map(|id| CreatedResource {
            cloud: cloud.to_string(),
            kind: ResourceKind::Snapshot,
            id: join_region(Some(&region), &id),
            temporary: true,
        }));
    }
    Ok(found)
}

/// The security groups and key pairs carrying the plan's tag, in the
/// profile's region (where configuration objects are made), for cleanup to
/// find those a killed run never journaled. A key pair's id is its name.
pub async fn configuration(
    c: &RegionClients,
    cloud: &str,
    (key, value): &(String, String),
) -> Result<Vec<CreatedResource>, CloudError> {
    let by_tag = || {
        Filter::builder()
            .name(format!("tag:{key}"))
            .values(value)
            .build()
    };
    let ec2 = &c.ec2;
    let groups: Vec<String> =
        paging::collect_pages("ec2 DescribeSecurityGroups", |token| async move {
            let page = ec2
                .describe_security_groups()
                .filters(by_tag())
                .set_next_token(token)
                .send()
                .await
                .map_err(|e| classify("ec2 DescribeSecurityGroups", e))?;
            let ids = page
                .security_groups()
                .iter()
                .filter_map(|g| g.group_id().map(str::to_string))
                .collect();
            Ok((ids, page.next_token().map(str::to_string)))
        })
        .await?;
    // DescribeKeyPairs is not paginated.
    let keys = c
        .ec2
        .describe_key_pairs()
        .filters(by_tag())
        .send()
        .await
        .map_err(|e| classify("ec2 DescribeKeyPairs", e))?;
    let resource = |kind, id: String| CreatedResource {
        cloud: cloud.to_string(),
        kind,
        id,
        temporary: false,
    };
    let mut found: Vec<CreatedResource> = groups
        .into_iter()
        .map(|id| resource(ResourceKind::Firewall, id))
        .collect();
    found.extend(
        keys.key_pairs()
            .iter()
            .filter_map(|k| k.key_name())
            .map(|name| resource(ResourceKind::SshKey, name.to_string())),
    );
    Ok(found)
}
