//! What a target cloud cannot take, checked when the plan is built so the
//! operator hears the reason before approving, not half-way through a run.
//! Providers check the same rules again when they write (defence in depth).

use super::PlanItem;
use crate::inventory::Platform;
use crate::units::Bytes;

/// DigitalOcean's limit for custom images (uncompressed).
pub const DIGITALOCEAN_MAX_IMAGE_BYTES: u64 = 100 * 1_000_000_000;

/// What a target does with a disk that the operator must approve knowingly,
/// written into the plan's action so the approved hash covers it.
pub fn write_disclosure(provider: &str) -> Option<&'static str> {
    match provider {
        // DigitalOcean's importer takes no presigned (query-string) URL, so
        // the staged object is public-read for the import: see
        // cloud/digitalocean/staging.rs.
        "digitalocean" => Some(
            "staged in the profile's bucket, readable by anyone with its unguessable URL \
             while DigitalOcean imports it, private again after",
        ),
        _ => None,
    }
}

/// What "snapshot disk" means on a source, said in the plan's action when
/// it is more than the operator would guess (it costs money, opens a login,
/// or is no snapshot at all).
pub fn snapshot_detail(provider: &str, device: &str) -> String {
    match provider {
        // Compute Engine has no API that returns disk bytes: see
        // cloud/gcp/source.rs.
        "gcp" => format!(
            "point-in-time copy of {device}; creates a temporary disk from it and a worker VM \
             (the profile's worker_machine_type) that reads it over SSH; all three are removed \
             at cleanup"
        ),
        "digitalocean" | "ssh" => format!(
            "no cloud snapshot: {device} is read live over SSH by the altishift-agent (removed \
             at cleanup); only a cutover's final pass is consistent"
        ),
        _ => format!("point-in-time copy of {device}"),
    }
}

/// How a cutover quiesces a source when the operator names no command: a
/// cloud that reaches no guest stops the instance through its API instead.
pub fn default_quiesce(provider: &str) -> &'static str {
    match provider {
        "aws" => "stops the instance (EC2 StopInstances) so the final snapshot holds every write",
        _ => "freezes the filesystems mounted from its disks (fsfreeze)",
    }
}

/// [`default_quiesce`] in a word or two, for the plan's summary line.
pub fn default_quiesce_short(provider: &str) -> &'static str {
    match provider {
        "aws" => "EC2 StopInstances",
        _ => "fsfreeze",
    }
}

/// What the run copies to a source host to read its disks, for sources read
/// over SSH by the agent.
pub fn agent_detail(provider: &str) -> Option<String> {
    let host = match provider {
        "ssh" => "the source host",
        "digitalocean" => "the droplet",
        "gcp" => "the worker VM",
        _ => return None,
    };
    Some(format!(
        "copies the small altishift-agent reader to a private folder on {host}, checked by \
         SHA-256 there before it runs (or streams with dd where it cannot run); removed at \
         cleanup"
    ))
}

/// Why `item` cannot be deployed on a `provider` target, if it cannot.
pub fn refusal(provider: &str, item: &PlanItem) -> Option<String> {
    match provider {
        "digitalocean" => {
            let boot = item.disks.iter().find(|d| d.boot)?;
            digitalocean_image_refusal(boot.virtual_size, &item.platform)
                .or_else(|| digitalocean_data_disk_refusal(item))
        }
        _ => None,
    }
}

/// Why a boot disk cannot become a DigitalOcean custom image, if it cannot:
/// custom images are Linux only and under 100 GB uncompressed. An OS the
/// source does not name is let through (and said so in the plan's platform).
pub fn digitalocean_image_refusal(virtual_size: Bytes, platform: &Platform) -> Option<String> {
    if virtual_size.0 >= DIGITALOCEAN_MAX_IMAGE_BYTES {
        return Some(format!(
            "DigitalOcean custom images must be under 100 GB uncompressed; the boot disk is {} \
             ({} bytes)",
            virtual_size, virtual_size.0
        ));
    }
    if platform.is_windows() {
        return Some(format!(
            "DigitalOcean custom images must be Linux; the source runs '{}'",
            platform.os.as_deref().unwrap_or_default()
        ));
    }
    None
}

/// Why `item`'s data disks cannot follow it to DigitalOcean, if they
/// cannot. A droplet boots from one custom image; a data disk would have to
/// become a block-storage volume (`POST /v2/volumes`, attached to the new
/// droplet) filled through the droplet over SSH, because DigitalOcean has no
/// API that writes bytes into a volume. This version does not do that, so a
/// plan with data disks is refused rather than deployed without them.
pub fn digitalocean_data_disk_refusal(item: &PlanItem) -> Option<String> {
    let data: Vec<String> = item
        .disks
        .iter()
        .filter(|d| !d.boot)
        .map(|d| format!("{} ({})", d.device, d.virtual_size))
        .collect();
    if data.is_empty() {
        return None;
    }
    Some(format!(
        "DigitalOcean droplets boot from one custom image, and this version does not \
         create volumes for data disks (DigitalOcean has no API to write a volume's bytes; \
         they would go through the new droplet over SSH); '{}' has {} data disk{}: {}",
        item.instance_name,
        data.len(),
        if data.len() == 1 { "" } else { "s" },
        data.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::DiskFormat;
    use crate::plan::PlanDisk;

    fn disk(device: &str, boot: bool, gib: u64) -> PlanDisk {
        PlanDisk {
            disk_id: device.into(),
            device: device.into(),
            boot,
            virtual_size: Bytes::gib(gib),
            allocated: Bytes::gib(1),
            source_format: DiskFormat::Raw,
            target_format: DiskFormat::Raw,
            source_snapshot: None,
        }
    }

    fn item(disks: Vec<PlanDisk>) -> PlanItem {
        PlanItem {
            instance_id: "i-1".into(),
            instance_name: "db".into(),
            source_size: "m".into(),
            vcpus: 2,
            memory: Bytes::gib(4),
            target_name: "db".into(),
            target_size: "s-2vcpu-4gb".into(),
            target_region: "fra1".into(),
            wave: 1,
            disks,
            platform: Platform::default(),
            configuration: Default::default(),
        }
    }

    #[test]
    fn digitalocean_refuses_data_disks_and_names_them() {
        let alone = item(vec![disk("vda", true, 20)]);
        assert_eq!(refusal("digitalocean", &alone), None);
        let with_data = item(vec![
            disk("vda", true, 20),
            disk("vdb", false, 50),
            disk("vdc", false, 10),
        ]);
        let reason = refusal("digitalocean", &with_data).unwrap();
        assert!(reason.contains("does not create volumes"), "{reason}");
        assert!(
            reason.contains("'db' has 2 data disks: vdb (50.0 GiB), vdc (10.0 GiB)"),
            "{reason}"
        );
        // Other targets take data disks.
        assert_eq!(refusal("aws", &with_data), None);
    }

    fn windows() -> Platform {
        Platform {
            os: Some("Windows Server 2022".into()),
            ..Platform::default()
        }
    }

    #[test]
    fn digitalocean_refuses_big_or_windows_boot_disks() {
        let linux = Platform {
            os: Some("Ubuntu 24.04".into()),
            ..Platform::default()
        };
        assert!(digitalocean_image_refusal(Bytes::gib(20), &linux).is_none());
        assert!(digitalocean_image_refusal(Bytes::gib(20), &Platform::default()).is_none());
        let big = digitalocean_image_refusal(Bytes(DIGITALOCEAN_MAX_IMAGE_BYTES), &linux);
        assert!(big.is_some_and(|r| r.contains("under 100 GB")));
        let win = digitalocean_image_refusal(Bytes::gib(20), &windows());
        assert!(win.is_some_and(|r| r.contains("must be Linux")));
    }

    #[test]
    fn snapshot_actions_say_what_a_source_creates_or_that_it_reads_live() {
        assert_eq!(snapshot_detail("lab", "vda"), "point-in-time copy of vda");
        let gcp = snapshot_detail("gcp", "sda");
        assert!(
            gcp.contains("worker VM") && gcp.contains("removed at cleanup"),
            "{gcp}"
        );
        for live in ["ssh", "digitalocean"] {
            let text = snapshot_detail(live, "/dev/vda");
            assert!(text.starts_with("no cloud snapshot"), "{text}");
        }
        assert!(write_disclosure("digitalocean").is_some_and(|d| d.contains("unguessable")));
        assert!(write_disclosure("aws").is_none());
    }
}
