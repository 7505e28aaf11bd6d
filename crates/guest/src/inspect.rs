//! Read-only inspection of a boot disk through libguestfs: what the guest
//! is, how it boots, and what in it is tied to the cloud it comes from
//! (device names in fstab, static addresses, the cloud-init datasource, the
//! cloud's agents) or missing for the target (drivers).

use super::GuestError;
use super::fish::Fish;
pub use super::parse::{
    is_device_name, kernel_cmdlines, parse_datasource_list, parse_fstab, parse_network,
};
use crate::inventory::DiskFormat;
use serde::Serialize;
use std::path::Path;

/// Drivers a target may need, looked up in the guest's newest kernel.
pub const DRIVERS: &[&str] = &[
    "virtio_blk",
    "virtio_scsi",
    "virtio_net",
    "nvme",
    "ena",
    "gve",
    "xen_blkfront",
];

/// Files that show a source cloud's agent is installed.
const AGENTS: &[(&str, &str)] = &[
    ("amazon-ssm-agent", "/usr/bin/amazon-ssm-agent"),
    ("amazon-ssm-agent", "/snap/bin/amazon-ssm-agent"),
    ("google-guest-agent", "/usr/bin/google_guest_agent"),
    ("droplet-agent", "/opt/digitalocean/bin/droplet-agent"),
    (
        "cloudstack-set-guest-password",
        "/etc/init.d/cloud-set-guest-password",
    ),
];

/// Each source-cloud agent: the cloud-init datasource of its own cloud
/// (where it stays enabled) and the systemd units that start it.
pub const AGENT_UNITS: &[(&str, &str, &[&str])] = &[
    (
        "amazon-ssm-agent",
        "Ec2",
        &[
            "amazon-ssm-agent.service",
            "snap.amazon-ssm-agent.amazon-ssm-agent.service",
        ],
    ),
    ("google-guest-agent", "GCE", &["google-guest-agent.service"]),
    ("droplet-agent", "DigitalOcean", &["droplet-agent.service"]),
    (
        "cloudstack-set-guest-password",
        "CloudStack",
        &["cloud-set-guest-password.service"],
    ),
];

/// Where a masked unit's link lives.
pub const SYSTEMD_ADMIN: &str = "/etc/systemd/system";

#[derive(Debug, Clone, Default, Serialize)]
pub struct Inspection {
    /// The root filesystem as libguestfs names it (`/dev/sda1`).
    pub root: String,
    pub os_type: String,
    pub distro: String,
    pub version: String,
    pub product: String,
    pub hostname: String,
    /// `msdos` or `gpt`.
    pub partition_table: String,
    /// `bios` or `uefi`.
    pub boot_mode: String,
    /// (mount point, libguestfs device) as inspection found them.
    pub mountpoints: Vec<(String, String)>,
    pub kernels: Vec<String>,
    pub initramfs: Vec<String>,
    /// The boot loader config holding the kernel command line.
    pub bootloader_config: Option<String>,
    pub kernel_cmdline: Vec<String>,
    pub fstab: Vec<FstabEntry>,
    pub network: Vec<NetworkFile>,
    /// cloud-init's datasource_list, from the last file that sets it.
    pub datasources: Vec<String>,
    pub agents: Vec<String>,
    /// Agents of `agents` whose every unit is masked (a link to /dev/null).
    pub agents_masked: Vec<String>,
    /// Kernel version the drivers were looked up in.
    pub driver_kernel: Option<String>,
    pub drivers: Vec<Driver>,
    /// Files preparation kept (`*.altishift-orig`).
    pub backups: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FstabEntry {
    pub spec: String,
    pub mountpoint: String,
    pub fstype: String,
    /// Named by kernel device name (`/dev/xvda1`): breaks when the target
    /// names disks differently.
    pub by_device: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NetworkFile {
    pub path: String,
    /// netplan, ifupdown, systemd-networkd, NetworkManager.
    pub kind: String,
    pub static_addresses: Vec<String>,
    pub dhcp: bool,
    /// An interface matched or renamed by MAC address.
    pub mac_pinned: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Driver {
    pub name: String,
    /// `built-in`, `module`, or `missing`.
    pub state: String,
}

impl Inspection {
    pub fn has_driver(&self, name: &str) -> bool {
        self.drivers
            .iter()
            .any(|d| d.name == name && d.state != "missing")
    }

    pub fn serial_console(&self) -> bool {
        self.kernel_cmdline.iter().any(|line| {
            line.split_whitespace()
                .any(|a| a.starts_with("console=ttyS"))
        })
    }

    pub fn static_addresses(&self) -> Vec<String> {
        self.network
            .iter()
            .flat_map(|n| n.static_addresses.iter().cloned())
            .collect()
    }

    /// A few lines for a person.
    pub fn summary(&self) -> Vec<String> {
        let drivers: Vec<String> = self
            .drivers
            .iter()
            .map(|d| format!("{} {}", d.name, d.state))
            .collect();
        let by_device: Vec<&str> = self
            .fstab
            .iter()
            .filter(|e| e.by_device)
            .map(|e| e.spec.as_str())
            .collect();
        vec![
            format!(
                "os: {} {} {} ({}), hostname {}",
                self.os_type, self.distro, self.version, self.product, self.hostname
            ),
            format!(
                "boot: {} on {}, kernels {}, serial console {}",
                self.boot_mode,
                self.partition_table,
                self.kernels.join(" "),
                if self.serial_console() { "on" } else { "off" }
            ),
            format!("fstab by device name: {}", list(&by_device)),
            format!("static addresses: {}", list(&self.static_addresses())),
            format!("cloud-init datasources: {}", list(&self.datasources)),
            format!("source-cloud agents: {}", list(&self.agents)),
            format!(
                "drivers ({}): {}",
                self.driver_kernel.as_deref().unwrap_or("no kernel"),
                drivers.join(", ")
            ),
        ]
        .into_iter()
        .map(|l| crate::text::safe(&l).into_owned())
        .collect()
    }
}

fn list<T: AsRef<str>>(items: &[T]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items
            .iter()
            .map(|s| s.as_ref())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The error when the disk holds no operating system libguestfs knows.
pub const NO_OS: &str = "libguestfs found no operating system on the disk";

/// Inspects `disk` read-only.
pub fn inspect(disk: &Path, format: DiskFormat) -> Result<Inspection, GuestError> {
    let fish = Fish::open(disk, format, false)?;
    let result = inspect_with(&fish, false);
    fish.close()?;
    result
}

/// Inspects through an open session, mounting the guest's filesystems
/// (read-write when `writable`, for preparation).
pub fn inspect_with(fish: &Fish, writable: bool) -> Result<Inspection, GuestError> {
    let roots = fish.lines(&["inspect-os"])?;
    let root = roots
        .first()
        .cloned()
        .ok_or_else(|| GuestError::Other(NO_OS.into()))?;
    let get = |what: &str| -> Result<String, GuestError> {
        Ok(fish
            .cmd(&[&format!("inspect-get-{what}"), &root])?
            .trim()
            .to_string())
    };
    let mut found = Inspection {
        os_type: get("type")?,
        distro: get("distro")?,
        product: get("product-name")?,
        hostname: get("hostname")?,
        version: format!("{}.{}", get("major-version")?, get("minor-version")?),
        root: root.clone(),
        ..Inspection::default()
    };
    let mut mountpoints: Vec<(String, String)> = fish
        .lines(&["inspect-get-mountpoints", &root])?
        .iter()
        .filter_map(|l| l.split_once(": "))
        .map(|(m, d)| (m.to_string(), d.to_string()))
        .collect();
    mountpoints.sort_by_key(|(m, _)| m.len());
    for (mountpoint, device) in &mountpoints {
        let verb = if writable { "mount" } else { "mount-ro" };
        fish.cmd(&[verb, device, mountpoint])?;
    }
    found.mountpoints = mountpoints;
    let device = fish
        .lines(&["list-devices"])?
        .into_iter()
        .next()
        .unwrap_or_else(|| "/dev/sda".into());
    found.partition_table = fish
        .cmd(&["part-get-parttype", &device])?
        .trim()
        .to_string();
    found.boot_mode = boot_mode(fish, &device, &found.partition_table)?;
    if found.os_type != "linux" {
        return Ok(found);
    }
    for name in fish.lines(&["ls", "/boot"])? {
        if name.starts_with("vmlinuz") {
            found.kernels.push(name);
        } else if name.starts_with("initrd") || name.starts_with("initramfs") {
            found.initramfs.push(name);
        }
    }
    for config in [
        "/boot/extlinux/extlinux.conf",
        "/boot/grub/grub.cfg",
        "/boot/grub2/grub.cfg",
    ] {
        if let Some(text) = fish.read(config)? {
            found.kernel_cmdline = kernel_cmdlines(&text);
            found.bootloader_config = Some(config.into());
            break;
        }
    }
    if let Some(text) = fish.read("/etc/fstab")? {
        found.fstab = parse_fstab(&text);
    }
    found.network = network(fish)?;
    found.datasources = datasources(fish)?;
    for (agent, path) in AGENTS {
        if fish.is_true(&["exists", path])? && !found.agents.iter().any(|a| a == agent) {
            found.agents.push(agent.to_string());
        }
    }
    for agent in &found.agents {
        if masked(fish, agent)? {
            found.agents_masked.push(agent.clone());
        }
    }
    drivers(fish, &mut found)?;
    for pattern in [
        "/etc/*.altishift-orig",
        "/etc/netplan/*.altishift-orig",
        "/etc/network/*.altishift-orig",
        "/boot/extlinux/*.altishift-orig",
        "/boot/grub/*.altishift-orig",
    ] {
        found.backups.extend(fish.lines(&["glob-expand", pattern])?);
    }
    Ok(found)
}

/// UEFI when a GPT disk holds an EFI system partition; BIOS otherwise.
fn boot_mode(fish: &Fish, device: &str, table: &str) -> Result<String, GuestError> {
    if table != "gpt" {
        return Ok("bios".into());
    }
    for line in fish.lines(&["part-list", device])? {
        if let Some(n) = line.strip_prefix("part_num: ") {
            let kind = fish.cmd(&["part-get-gpt-type", device, n.trim()])?;
            if kind
                .trim()
                .eq_ignore_ascii_case("C12A7328-F81F-11D2-BA4B-00A0C93EC93B")
            {
                return Ok("uefi".into());
            }
        }
    }
    Ok("bios".into())
}

fn network(fish: &Fish) -> Result<Vec<NetworkFile>, GuestError> {
    let mut files = Vec::new();
    let globs = [
        ("netplan", "/etc/netplan/*.yaml"),
        ("systemd-networkd", "/etc/systemd/network/*.network"),
        ("NetworkManager", "/etc/NetworkManager/system-connections/*"),
    ];
    for (kind, pattern) in globs {
        for path in fish.lines(&["glob-expand", pattern])? {
            if let Some(text) = fish.read(&path)? {
                files.push(parse_network(kind, &path, &text));
            }
        }
    }
    let interfaces = "/etc/network/interfaces";
    if let Some(text) = fish.read(interfaces)? {
        files.push(parse_network("ifupdown", interfaces, &text));
    }
    Ok(files)
}

fn datasources(fish: &Fish) -> Result<Vec<String>, GuestError> {
    let mut files = vec!["/etc/cloud/cloud.cfg".to_string()];
    let mut drop_ins = fish.lines(&["glob-expand", "/etc/cloud/cloud.cfg.d/*.cfg"])?;
    drop_ins.sort(); // cloud-init reads them in this order; the last wins
    files.extend(drop_ins);
    let mut list = Vec::new();
    for path in files {
        if let Some(found) = fish.read(&path)?.and_then(|t| parse_datasource_list(&t)) {
            list = found;
        }
    }
    Ok(list)
}

/// Whether every systemd unit of `agent` is masked.
fn masked(fish: &Fish, agent: &str) -> Result<bool, GuestError> {
    let Some((_, _, units)) = AGENT_UNITS.iter().find(|(name, _, _)| *name == agent) else {
        return Ok(false);
    };
    for unit in *units {
        let link = format!("{SYSTEMD_ADMIN}/{unit}");
        if !fish.is_true(&["is-symlink", &link])?
            || fish.cmd(&["readlink", &link])?.trim() != "/dev/null"
        {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Each driver of [`DRIVERS`] in the newest kernel: built in, a module file
/// that is really there, or missing.
fn drivers(fish: &Fish, found: &mut Inspection) -> Result<(), GuestError> {
    // No modules folder: no kernel to look in (an error from `ls` would
    // stop the whole inspection).
    if !fish.is_true(&["is-dir", "/lib/modules"])? {
        return Ok(());
    }
    let mut kernels = fish.lines(&["ls", "/lib/modules"])?;
    kernels.sort();
    let Some(kernel) = kernels.pop() else {
        return Ok(());
    };
    let base = format!("/lib/modules/{kernel}");
    let builtin = fish
        .read(&format!("{base}/modules.builtin"))?
        .unwrap_or_default();
    let dep = fish
        .read(&format!("{base}/modules.dep"))?
        .unwrap_or_default();
    for name in DRIVERS {
        let wanted = |path: &str| {
            let file = path.rsplit('/').next().unwrap_or(path);
            file.split(".ko").next().unwrap_or(file).replace('-', "_") == *name
        };
        let state = if builtin.lines().any(wanted) {
            "built-in"
        } else {
            match dep
                .lines()
                .filter_map(|l| l.split_once(':').map(|(f, _)| f))
                .find(|f| wanted(f))
            {
                Some(file) if fish.is_true(&["is-file", &format!("{base}/{file}")])? => "module",
                _ => "missing",
            }
        };
        found.drivers.push(Driver {
            name: name.to_string(),
            state: state.into(),
        });
    }
    found.driver_kernel = Some(kernel);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fstab_entries_by_device_name_are_told_from_uuids() {
        let entries = parse_fstab(
            "# comment\n/dev/xvda1 / ext4 defaults 0 1\nUUID=abc /data xfs defaults 0 2\n\
             /dev/nvme1n1 /srv ext4 defaults 0 2\ntmpfs /tmp tmpfs defaults 0 0\n",
        );
        let by_device: Vec<&str> = entries
            .iter()
            .filter(|e| e.by_device)
            .map(|e| e.spec.as_str())
            .collect();
        assert_eq!(by_device, ["/dev/xvda1", "/dev/nvme1n1"]);
        assert_eq!(entries.len(), 4);
    }

    #[test]
    fn netplan_static_addresses_are_not_confused_with_nameservers() {
        let text = "network:\n  version: 2\n  ethernets:\n    eth0:\n      match:\n        \
                    macaddress: 02:00:00:aa:bb:cc\n      addresses: [10.1.3.40/24]\n      \
                    nameservers:\n        addresses: [10.1.3.1]\n    eth1:\n      addresses:\n        \
                    - 192.168.7.2/24\n      dhcp4: false\n";
        let file = parse_network("netplan", "/etc/netplan/50.yaml", text);
        assert_eq!(file.static_addresses, ["10.1.3.40/24", "192.168.7.2/24"]);
        assert!(file.mac_pinned);
        assert!(!file.dhcp);
    }

    #[test]
    fn ifupdown_and_networkd_and_datasource_lists() {
        let ifupdown = parse_network(
            "ifupdown",
            "/etc/network/interfaces",
            "auto eth0\niface eth0 inet static\n  address 10.0.0.5/24\n",
        );
        assert_eq!(ifupdown.static_addresses, ["10.0.0.5/24"]);
        let networkd = parse_network("systemd-networkd", "x", "[Network]\nDHCP=yes\n");
        assert!(networkd.dhcp);
        assert_eq!(
            parse_datasource_list("datasource_list: [ Ec2, 'None' ]\n"),
            Some(vec!["Ec2".to_string(), "None".to_string()])
        );
        assert_eq!(
            parse_datasource_list("x: 1\ndatasource_list:\n  - GCE\n  - None\nother: 2\n"),
            Some(vec!["GCE".to_string(), "None".to_string()])
        );
        assert_eq!(
            kernel_cmdlines(
                "LABEL l\n  APPEND root=/dev/vda1 ro\n\tlinux /vmlinuz-6 root=UUID=x ro quiet\n"
            ),
            ["root=/dev/vda1 ro", "root=UUID=x ro quiet"]
        );
    }
}
