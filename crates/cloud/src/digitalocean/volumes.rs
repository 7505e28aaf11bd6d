//! A droplet's disks as the guest sees them: the boot disk on the boot
//! device, each volume on its own by-id link; and the snapshot ids that
//! say which one a reader opens.

/// Where DigitalOcean documents a volume's device link, and its prefix.
pub(super) const VOLUME_DIR: &str = "/dev/disk/by-id";
pub(super) const VOLUME_LINK_PREFIX: &str = "scsi-0DO_Volume_";

/// `ssh:ID` for the boot disk (as journals before volumes were read say),
/// `ssh:ID:DEVICE` for a volume.
pub(super) fn snapshot_id(instance: &str, device: &str, boot: &str) -> String {
    if device == boot {
        format!("ssh:{instance}")
    } else {
        format!("ssh:{instance}:{device}")
    }
}

pub(super) fn parse_snapshot_id<'a>(id: &'a str, boot: &str) -> Option<(&'a str, String)> {
    let rest = id.strip_prefix("ssh:")?;
    Some(match rest.split_once(':') {
        Some((instance, device)) => (instance, device.to_string()),
        None => (rest, boot.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_ids_name_the_device_of_a_volume_only() {
        let volume = "/dev/disk/by-id/scsi-0DO_Volume_data";
        assert_eq!(snapshot_id("42", "/dev/vda", "/dev/vda"), "ssh:42");
        let id = snapshot_id("42", volume, "/dev/vda");
        assert_eq!(
            parse_snapshot_id(&id, "/dev/vda"),
            Some(("42", volume.to_string()))
        );
        assert_eq!(
            parse_snapshot_id("ssh:42", "/dev/vda"),
            Some(("42", "/dev/vda".to_string()))
        );
        assert_eq!(parse_snapshot_id("snap-1", "/dev/vda"), None);
    }
}
