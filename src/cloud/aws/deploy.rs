//! RegisterImage + RunInstances, the wait until running, the checks, and
//! removal of what a run made (instances, images, snapshots).

use super::AwsCloud;
use super::client::{RegionClients, classify};
use super::target::{client_token, device_name};
use super::{join_region, split_region};
use crate::cloud::{Capability, Check, CloudError, DeploySpec, DeployedInstance};
use aws_sdk_ec2::types::{
    ArchitectureValues, BlockDeviceMapping, BootModeValues, EbsBlockDevice, InstanceStateName,
    InstanceType, ResourceType, Tag, TagSpecification, VolumeType,
};

/// Tag on a deployed instance naming the AMI it was launched from.
pub const IMAGE_TAG: &str = "altishift:image";
/// Optional tags a source may set on the deploy spec to carry attributes over.
pub const BOOT_MODE_TAG: &str = "altishift:boot-mode";
pub const ARCH_TAG: &str = "altishift:architecture";

fn tag(key: &str, value: &str) -> Tag {
    Tag::builder().key(key).value(value).build()
}

pub(super) async fn deploy(
    cloud: &AwsCloud,
    c: &RegionClients,
    region: Option<&str>,
    cap: &Capability,
    spec: &DeploySpec,
) -> Result<DeployedInstance, CloudError> {
    if spec.disks.is_empty() {
        return Err(CloudError::Permanent(format!(
            "deploy {}: no disks to boot from",
            spec.name
        )));
    }
    let (plan_key, plan_value) = cap.tag();
    let mut mappings = Vec::new();
    for (position, disk) in spec.disks.iter().enumerate() {
        let (disk_region, snapshot) = split_region(&disk.id);
        if disk_region != region {
            return Err(CloudError::Permanent(format!(
                "deploy {}: disk {} is not in region {}",
                spec.name,
                disk.id,
                region.unwrap_or(cloud.clients.region())
            )));
        }
        mappings.push(
            BlockDeviceMapping::builder()
                .device_name(device_name(position))
                .ebs(
                    EbsBlockDevice::builder()
                        .snapshot_id(snapshot)
                        .delete_on_termination(true)
                        .volume_type(VolumeType::Gp3)
                        .build(),
                )
                .build(),
        );
    }
    let (_, root_snapshot) = split_region(&spec.disks[0].id);
    let image_name = format!("altishift-{}-{}", spec.name, root_snapshot);
    let architecture = spec
        .tags
        .get(ARCH_TAG)
        .map(|a| ArchitectureValues::from(a.as_str()))
        .unwrap_or(ArchitectureValues::X8664);
    let mut register = c
        .ec2
        .register_image()
        .name(&image_name)
        .description(format!("altishift: {}", spec.name))
        .architecture(architecture)
        .root_device_name(device_name(0))
        .virtualization_type("hvm")
        // Instances built from migrated disks get ENA: current types need it.
        .ena_support(true)
        .set_block_device_mappings(Some(mappings))
        .tag_specifications(
            TagSpecification::builder()
                .resource_type(ResourceType::Image)
                .tags(tag(&plan_key, &plan_value))
                .tags(tag("Name", &spec.name))
                .build(),
        );
    if let Some(mode) = spec.tags.get(BOOT_MODE_TAG) {
        register = register.boot_mode(BootModeValues::from(mode.as_str()));
    }
    let image = register
        .send()
        .await
        .map_err(|e| classify(&format!("ec2 RegisterImage {image_name}"), e))?;
    let image_id = image.image_id().map(str::to_string).ok_or_else(|| {
        CloudError::Permanent("ec2 RegisterImage: no image id in the answer".into())
    })?;

    let mut instance_tags = TagSpecification::builder()
        .resource_type(ResourceType::Instance)
        .tags(tag("Name", &spec.name))
        .tags(tag(&plan_key, &plan_value))
        .tags(tag(IMAGE_TAG, &image_id));
    for (k, v) in spec
        .tags
        .iter()
        .filter(|(k, _)| *k != BOOT_MODE_TAG && *k != ARCH_TAG)
    {
        instance_tags = instance_tags.tags(tag(k, v));
    }
    let run = c
        .ec2
        .run_instances()
        .image_id(&image_id)
        .instance_type(InstanceType::from(spec.size.as_str()))
        .min_count(1)
        .max_count(1)
        .client_token(client_token(
            &cap.plan_hash().0,
            &format!("instance {}", spec.name),
        ))
        .tag_specifications(instance_tags.build())
        .tag_specifications(
            TagSpecification::builder()
                .resource_type(ResourceType::Volume)
                .tags(tag(&plan_key, &plan_value))
                .tags(tag("Name", &spec.name))
                .build(),
        )
        .send()
        .await;
    let instance_id = match run
        .map_err(|e| classify(&format!("ec2 RunInstances {}", spec.name), e))
        .and_then(|r| {
            r.instances()
                .first()
                .and_then(|i| i.instance_id())
                .map(str::to_string)
                .ok_or_else(|| {
                    CloudError::Permanent("ec2 RunInstances: no instance in the answer".into())
                })
        }) {
        Ok(id) => id,
        Err(err) => {
            if let Err(e) = c.ec2.deregister_image().image_id(&image_id).send().await {
                tracing::warn!(image = %image_id, error = %classify("ec2 DeregisterImage", e), "aws: could not remove an image after a failure");
            }
            return Err(err);
        }
    };
    wait_running(cloud, c, &instance_id).await?;
    Ok(DeployedInstance {
        id: join_region(region, &instance_id),
        name: spec.name.clone(),
    })
}

async fn describe(c: &RegionClients, id: &str) -> Result<aws_sdk_ec2::types::Instance, CloudError> {
    let answer = c
        .ec2
        .describe_instances()
        .instance_ids(id)
        .send()
        .await
        .map_err(|e| classify(&format!("ec2 DescribeInstances {id}"), e))?;
    answer
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .next()
        .cloned()
        .ok_or_else(|| CloudError::NotFound(format!("instance {id}")))
}

async fn wait_running(cloud: &AwsCloud, c: &RegionClients, id: &str) -> Result<(), CloudError> {
    let mut waiter = cloud.poll.waiter();
    loop {
        let instance = describe(c, id).await?;
        match instance.state().and_then(|s| s.name()) {
            Some(InstanceStateName::Running) => return Ok(()),
            Some(InstanceStateName::Pending) => {}
            other => {
                return Err(CloudError::Permanent(format!(
                    "instance {id} is {} instead of starting",
                    other.map_or("in no state", |s| s.as_str())
                )));
            }
        }
        waiter.wait(&format!("instance {id} to run")).await?;
    }
}

pub(super) async fn probe(
    _cloud: &AwsCloud,
    c: &RegionClients,
    id: &str,
    spec: &DeploySpec,
) -> Result<Vec<Check>, CloudError> {
    let instance = describe(c, id).await?;
    let state = instance
        .state()
        .and_then(|s| s.name())
        .map_or("unknown", |s| s.as_str())
        .to_string();
    let size = instance
        .instance_type()
        .map_or("unknown", |t| t.as_str())
        .to_string();
    let image = instance.image_id().unwrap_or("").to_string();
    let image_state = match c.ec2.describe_images().image_ids(&image).send().await {
        Ok(answer) => answer
            .images()
            .first()
            .and_then(|i| i.state())
            .map_or("missing".to_string(), |s| s.as_str().to_string()),
        Err(e) => format!("unreadable ({})", classify("ec2 DescribeImages", e)),
    };
    Ok(vec![
        Check {
            name: "instance running".into(),
            passed: state == "running",
            detail: format!("{id} is {state}"),
        },
        Check {
            name: "instance type".into(),
            passed: size == spec.size,
            detail: format!("{size} (plan: {})", spec.size),
        },
        Check {
            name: "image".into(),
            passed: image_state == "available",
            detail: format!("{image} is {image_state}"),
        },
    ])
}

/// Terminates an instance and deregisters the AMI it was made from (named
/// by its altishift:image tag). Gone already counts as done.
pub(super) async fn remove_instance(c: &RegionClients, id: &str) -> Result<(), CloudError> {
    let instance = match describe(c, id).await {
        Ok(i) => i,
        Err(CloudError::NotFound(_)) => return Ok(()),
        Err(e) => return Err(e),
    };
    let image = instance
        .tags()
        .iter()
        .find(|t| t.key() == Some(IMAGE_TAG))
        .and_then(|t| t.value())
        .map(str::to_string);
    c.ec2
        .terminate_instances()
        .instance_ids(id)
        .send()
        .await
        .map_err(|e| classify(&format!("ec2 TerminateInstances {id}"), e))?;
    if let Some(image) = image {
        remove_image(c, &image).await?;
    }
    Ok(())
}

pub(super) async fn remove_image(c: &RegionClients, id: &str) -> Result<(), CloudError> {
    match c.ec2.deregister_image().image_id(id).send().await {
        Ok(_) => Ok(()),
        Err(e) => match classify(&format!("ec2 DeregisterImage {id}"), e) {
            CloudError::NotFound(_) => Ok(()),
            other => Err(other),
        },
    }
}

pub(super) async fn remove_snapshot(c: &RegionClients, id: &str) -> Result<(), CloudError> {
    match c.ec2.delete_snapshot().snapshot_id(id).send().await {
        Ok(_) => Ok(()),
        Err(e) => match classify(&format!("ec2 DeleteSnapshot {id}"), e) {
            CloudError::NotFound(_) => Ok(()),
            other => Err(other),
        },
    }
}
