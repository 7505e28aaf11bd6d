//! RegisterImage + RunInstances, the wait until running, the checks, and
//! removal of what a run made (instances, images, snapshots).

use super::AwsCloud;
use super::client::{RegionClients, classify};
use super::target::{client_token, device_name};
use super::{join_region, split_region};
use crate::inventory::Platform;
use crate::{Capability, Check, CloudError, DeploySpec, DeployedInstance};
use aws_sdk_ec2::types::{
    ArchitectureValues, BlockDeviceMapping, BootModeValues, EbsBlockDevice,
    InstanceNetworkInterfaceSpecification, InstanceStateName, InstanceType, ResourceType, Tag,
    TagSpecification, VolumeType,
};
use base64::Engine as _;

/// Tag on a deployed instance naming the AMI it was launched from.
pub const IMAGE_TAG: &str = "altishift:image";

/// What RegisterImage says about the image, from the source's platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageAttributes {
    pub architecture: ArchitectureValues,
    pub boot_mode: BootModeValues,
    pub ena: bool,
}

/// The source's platform as AMI attributes. When the source did not tell
/// (a lab disk, an SSH source, a cloud that does not say):
/// - architecture `x86_64`, the architecture of nearly every migrated VM;
/// - boot mode `legacy-bios` on x86_64: what KVM/QEMU, Xen and VMware guests
///   boot with unless set up otherwise (SeaBIOS), so a BIOS-only disk
///   (MBR + grub-pc) still boots; `uefi` on arm64, the only mode Graviton has;
/// - ENA on: current instance types require it and Linux has carried the
///   driver since 4.9. A source that says ENA is off keeps it off (such an
///   image then only launches on older Xen types, which is the truth).
pub fn image_attributes(platform: &Platform) -> ImageAttributes {
    let architecture = match platform.architecture.as_deref() {
        Some("arm64" | "aarch64") => ArchitectureValues::Arm64,
        Some("i386" | "x86") => ArchitectureValues::I386,
        Some(other) if !other.is_empty() && other != "x86_64" && other != "amd64" => {
            ArchitectureValues::from(other)
        }
        _ => ArchitectureValues::X8664,
    };
    let boot_mode = match platform.boot_mode.as_deref() {
        Some("uefi") => BootModeValues::Uefi,
        Some("legacy-bios") => BootModeValues::LegacyBios,
        Some("uefi-preferred") => BootModeValues::UefiPreferred,
        _ if architecture == ArchitectureValues::Arm64 => BootModeValues::Uefi,
        _ => BootModeValues::LegacyBios,
    };
    ImageAttributes {
        architecture,
        boot_mode,
        ena: platform.ena.unwrap_or(true),
    }
}

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
    let attributes = image_attributes(&spec.platform);
    // Where the instance goes: resolved before anything is made, so a wrong
    // group name fails here and not after an AMI was registered.
    let placement = placement(cloud, c, region, spec).await?;
    let register = c
        .ec2
        .register_image()
        .name(&image_name)
        .description(format!("altishift: {}", spec.name))
        .architecture(attributes.architecture)
        .boot_mode(attributes.boot_mode)
        .ena_support(attributes.ena)
        .root_device_name(device_name(0))
        .virtualization_type("hvm")
        .set_block_device_mappings(Some(mappings))
        .tag_specifications(
            TagSpecification::builder()
                .resource_type(ResourceType::Image)
                .tags(tag(&plan_key, &plan_value))
                .tags(tag("Name", &spec.name))
                .build(),
        );
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
    for (k, v) in &spec.tags {
        instance_tags = instance_tags.tags(tag(k, v));
    }
    // The plan's configuration: its subnet, and the groups this run created
    // beside the profile's.
    let config = &spec.config;
    let subnet = config.network.clone().or(placement.subnet);
    let mut groups = placement.security_groups.unwrap_or_default();
    for id in &config.firewalls {
        if !groups.contains(id) {
            groups.push(id.clone());
        }
    }
    let groups = (!groups.is_empty()).then_some(groups);
    let user_data = config
        .user_data
        .as_ref()
        .map(|text| match text.strip_prefix("base64:") {
            Some(encoded) => encoded.to_string(),
            None => base64::engine::general_purpose::STANDARD.encode(text),
        });
    let mut run = c
        .ec2
        .run_instances()
        .image_id(&image_id)
        .instance_type(InstanceType::from(spec.size.as_str()))
        .min_count(1)
        .max_count(1)
        .set_key_name(config.ssh_keys.first().cloned())
        .set_user_data(user_data);
    run = match config.public_ip {
        // A public address is asked for on the interface, which then
        // carries the subnet and groups too.
        Some(public) => run.network_interfaces(
            InstanceNetworkInterfaceSpecification::builder()
                .device_index(0)
                .associate_public_ip_address(public)
                .set_subnet_id(subnet)
                .set_groups(groups)
                .build(),
        ),
        None => run.set_subnet_id(subnet).set_security_group_ids(groups),
    };
    let run = run
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
    let running = wait_running(cloud, c, &instance_id).await?;
    Ok(DeployedInstance {
        id: join_region(region, &instance_id),
        name: spec.name.clone(),
        address: address_of(&running),
    })
}

/// The subnet and security group ids a deployed instance gets.
#[derive(Debug, Default)]
struct Placement {
    subnet: Option<String>,
    security_groups: Option<Vec<String>>,
}

/// The profile's `subnet` and `security_groups`, in the profile's region
/// only (ids are regional: in another region the default VPC and group are
/// used, with a warning). Groups may be given as `sg-…` ids or by name;
/// names are looked up (in the subnet's VPC when there is a subnet) and a
/// name that matches no group, or several, is an error.
async fn placement(
    cloud: &AwsCloud,
    c: &RegionClients,
    region: Option<&str>,
    spec: &DeploySpec,
) -> Result<Placement, CloudError> {
    if cloud.subnet.is_none() && cloud.security_groups.is_none() {
        return Ok(Placement::default());
    }
    if let Some(other) = region {
        tracing::warn!(
            cloud = %cloud.name,
            region = other,
            "aws: the profile's subnet and security groups belong to {}; {} goes into {other}'s default VPC",
            cloud.clients.region(),
            spec.name
        );
        return Ok(Placement::default());
    }
    let subnet = cloud.subnet.clone();
    let Some(groups) = &cloud.security_groups else {
        return Ok(Placement {
            subnet,
            security_groups: None,
        });
    };
    let vpc = match &subnet {
        Some(id) => c
            .ec2
            .describe_subnets()
            .subnet_ids(id)
            .send()
            .await
            .map_err(|e| classify(&format!("ec2 DescribeSubnets {id}"), e))?
            .subnets()
            .first()
            .and_then(|s| s.vpc_id())
            .map(str::to_string),
        None => None,
    };
    let mut ids = Vec::new();
    for group in groups {
        if group.starts_with("sg-") {
            ids.push(group.clone());
            continue;
        }
        let mut ask = c.ec2.describe_security_groups().filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("group-name")
                .values(group)
                .build(),
        );
        if let Some(vpc) = &vpc {
            ask = ask.filters(
                aws_sdk_ec2::types::Filter::builder()
                    .name("vpc-id")
                    .values(vpc)
                    .build(),
            );
        }
        let what = format!("ec2 DescribeSecurityGroups group-name={group}");
        let answer = ask.send().await.map_err(|e| classify(&what, e))?;
        let found: Vec<&str> = answer
            .security_groups()
            .iter()
            .filter_map(|g| g.group_id())
            .collect();
        match found.as_slice() {
            [one] => ids.push(one.to_string()),
            [] => {
                return Err(CloudError::NotFound(format!(
                    "security group '{group}'{} (profile {})",
                    vpc.as_ref().map(|v| format!(" in {v}")).unwrap_or_default(),
                    cloud.name
                )));
            }
            many => {
                return Err(CloudError::Permanent(format!(
                    "{what}: {} groups are named '{group}' ({}); give its sg- id in the profile",
                    many.len(),
                    many.join(", ")
                )));
            }
        }
    }
    Ok(Placement {
        subnet,
        security_groups: Some(ids),
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

/// The address the jump host reaches an instance at: its public IP, else
/// its private one (a jump host inside the VPC).
fn address_of(instance: &aws_sdk_ec2::types::Instance) -> Option<String> {
    instance
        .public_ip_address()
        .or(instance.private_ip_address())
        .filter(|a| !a.is_empty())
        .map(str::to_string)
}

/// The instance's latest console output (GetConsoleOutput, `Latest`; the
/// answer is base64); empty while the instance has written nothing yet.
pub(super) async fn console_output(c: &RegionClients, id: &str) -> Result<String, CloudError> {
    use base64::Engine as _;
    let answer = c
        .ec2
        .get_console_output()
        .instance_id(id)
        .latest(true)
        .send()
        .await
        .map_err(|e| classify(&format!("ec2 GetConsoleOutput {id}"), e))?;
    let Some(encoded) = answer.output() else {
        return Ok(String::new());
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|e| {
            CloudError::Permanent(format!(
                "ec2 GetConsoleOutput {id}: Output is not base64: {e}"
            ))
        })?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

async fn wait_running(
    cloud: &AwsCloud,
    c: &RegionClients,
    id: &str,
) -> Result<aws_sdk_ec2::types::Instance, CloudError> {
    let mut waiter = cloud.poll.waiter();
    loop {
        let instance = describe(c, id).await?;
        match instance.state().and_then(|s| s.name()) {
            Some(InstanceStateName::Running) => return Ok(instance),
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
    let mut checks = vec![
        Check::new(
            "instance running",
            state == "running",
            format!("{id} is {state}"),
        ),
        Check::new(
            "instance type",
            size == spec.size,
            format!("{size} (plan: {})", spec.size),
        ),
        Check::new(
            "image",
            image_state == "available",
            format!("{image} is {image_state}"),
        ),
    ];
    if !spec.config.is_empty() {
        let found = super::config::found(c, &instance).await?;
        checks.extend(crate::configure::checks(&spec.config, &found));
    }
    Ok(checks)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_source_platform_becomes_image_attributes_with_stated_defaults() {
        let unknown = image_attributes(&Platform::default());
        assert_eq!(
            unknown,
            ImageAttributes {
                architecture: ArchitectureValues::X8664,
                boot_mode: BootModeValues::LegacyBios,
                ena: true,
            }
        );
        let graviton = image_attributes(&Platform {
            architecture: Some("arm64".into()),
            ..Platform::default()
        });
        assert_eq!(graviton.boot_mode, BootModeValues::Uefi);
        let told = image_attributes(&Platform {
            os: Some("Linux/UNIX".into()),
            boot_mode: Some("uefi".into()),
            architecture: Some("x86_64".into()),
            ena: Some(false),
        });
        assert_eq!(
            told,
            ImageAttributes {
                architecture: ArchitectureValues::X8664,
                boot_mode: BootModeValues::Uefi,
                ena: false,
            }
        );
    }
}
