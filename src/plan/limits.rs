//! What a target cloud cannot take, checked when the plan is built so the
//! operator hears the reason before approving, not half-way through a run.
//! Providers check the same rules again when they write (defence in depth).

use super::PlanItem;
use crate::inventory::Platform;
use crate::units::Bytes;

/// DigitalOcean's limit for custom images (uncompressed).
pub const DIGITALOCEAN_MAX_IMAGE_BYTES: u64 = 100 * 1_000_000_000;

/// Why `item` cannot be deployed on a `provider` target, if it cannot.
pub fn refusal(provider: &str, item: &PlanItem) -> Option<String> {
    match provider {
        "digitalocean" => {
            let boot = item.disks.iter().find(|d| d.boot)?;
            digitalocean_image_refusal(boot.virtual_size, &item.platform)
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
