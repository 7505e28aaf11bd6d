//! What a target cloud cannot take, checked when the plan is built so the
//! operator hears the reason before approving, not half-way through a run.
//! The rules are what each provider declares ([`TargetRules`], carried by its
//! inventory); providers check the same rules again when they write
//! (defence in depth).

use super::PlanItem;
use crate::inventory::declared::TargetRules;

/// Why `item` cannot be deployed on a target with these `rules`, if it cannot.
pub fn refusal(rules: &TargetRules, item: &PlanItem) -> Option<String> {
    let boot = item.disks.iter().find(|d| d.boot)?;
    if let Some(reason) = rules.image_refusal(boot.virtual_size, &item.platform) {
        return Some(reason);
    }
    let data: Vec<String> = item
        .disks
        .iter()
        .filter(|d| !d.boot)
        .map(|d| format!("{} ({})", d.device, d.virtual_size))
        .collect();
    rules.data_disk_refusal(&item.instance_name, &data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::{DiskFormat, Platform};
    use crate::plan::PlanDisk;
    use crate::units::Bytes;

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

    /// Rules like those a provider of custom images declares.
    fn strict() -> TargetRules {
        TargetRules {
            image_kind: "Example custom".into(),
            max_image_bytes: Some(100 * 1_000_000_000),
            linux_only: true,
            no_data_disks: Some("droplets boot from one image".into()),
            write_disclosure: None,
            ..TargetRules::default()
        }
    }

    #[test]
    fn data_disks_are_refused_by_name_where_the_target_declares_so() {
        let alone = item(vec![disk("vda", true, 20)]);
        assert_eq!(refusal(&strict(), &alone), None);
        let with_data = item(vec![
            disk("vda", true, 20),
            disk("vdb", false, 50),
            disk("vdc", false, 10),
        ]);
        let reason = refusal(&strict(), &with_data).unwrap();
        assert!(
            reason.contains("'db' has 2 data disks: vdb (50.0 GiB), vdc (10.0 GiB)"),
            "{reason}"
        );
        assert_eq!(refusal(&TargetRules::default(), &with_data), None);
    }

    #[test]
    fn big_or_windows_boot_disks_are_refused_where_the_target_declares_so() {
        let mut linux = item(vec![disk("vda", true, 20)]);
        linux.platform.os = Some("Ubuntu 24.04".into());
        assert_eq!(refusal(&strict(), &linux), None);
        let mut big = item(vec![disk("vda", true, 100)]);
        big.disks[0].virtual_size = Bytes(100 * 1_000_000_000);
        let reason = refusal(&strict(), &big).unwrap();
        assert!(reason.contains("under 100 GB"), "{reason}");
        let mut win = item(vec![disk("vda", true, 20)]);
        win.platform.os = Some("Windows Server 2022".into());
        let reason = refusal(&strict(), &win).unwrap();
        assert!(reason.contains("must be Linux"), "{reason}");
        assert_eq!(refusal(&TargetRules::default(), &win), None);
    }
}
