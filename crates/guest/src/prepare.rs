//! Guest preparation for the target: what an inspection says must change
//! (`changes`, pure — these are what a plan lists and its hash covers) and
//! applying them to the target's copy of the disk through libguestfs
//! (`apply` — never to the source). Each file changed keeps a backup
//! beside it (`*.altishift-orig`). What cannot be prepared (no OS found,
//! Windows, a driver the target needs is missing) is refused with the reason.

use super::GuestError;
use super::fish::Fish;
use super::inspect::{self, Inspection};
use crate::inventory::DiskFormat;
use crate::inventory::declared::GuestNeeds;
use serde::{Deserialize, Serialize};
use std::path::Path;

const BACKUP: &str = ".altishift-orig";
const DHCP_NETPLAN: &str = "/etc/netplan/90-altishift-dhcp.yaml";
const DATASOURCE_FILE: &str = "/etc/cloud/cloud.cfg.d/99_altishift_datasource.cfg";
const SERIAL: &str = "console=tty0 console=ttyS0,115200";

/// One change to the guest, as the plan shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "kebab-case")]
pub enum Change {
    /// fstab entries named by device get their filesystem's UUID.
    FstabByUuid { mountpoints: Vec<String> },
    /// Static network files are set aside; the first NIC uses DHCP.
    NetworkDhcp { disabled: Vec<String> },
    /// cloud-init looks for the target's datasource first.
    Datasource { list: Vec<String> },
    /// The kernel writes to the serial console (the target's console log).
    SerialConsole { config: String },
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Change::FstabByUuid { mountpoints } => write!(
                f,
                "/etc/fstab: mount {} by filesystem UUID instead of device name",
                mountpoints.join(", ")
            ),
            Change::NetworkDhcp { disabled } => write!(
                f,
                "network: set aside {} (static), DHCP on the first NIC ({DHCP_NETPLAN})",
                disabled.join(", ")
            ),
            Change::Datasource { list } => {
                write!(f, "cloud-init: datasource_list [{}]", list.join(", "))
            }
            Change::SerialConsole { config } => {
                write!(f, "{config}: kernel command line gains {SERIAL}")
            }
        }
    }
}

/// Why a guest cannot be prepared for a target.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot prepare the guest for {target}: {reason}")]
pub struct Refusal {
    pub target: String,
    pub reason: String,
}

/// What must change for a target that `needs` this (its provider declares
/// it; `target` names it in messages), or why it cannot be prepared.
pub fn changes(
    found: &Inspection,
    needs: &GuestNeeds,
    target: &str,
) -> Result<Vec<Change>, Refusal> {
    let refuse = |reason: String| Refusal {
        target: target.to_string(),
        reason,
    };
    if found.os_type != "linux" {
        return Err(refuse(format!(
            "the guest is {} ({}); only Linux guests are prepared",
            if found.os_type.is_empty() {
                "unknown"
            } else {
                &found.os_type
            },
            found.product
        )));
    }
    for group in &needs.drivers {
        if !group.iter().any(|d| found.has_driver(d)) {
            return Err(refuse(format!(
                "its kernel ({}) has no {} driver",
                found.driver_kernel.as_deref().unwrap_or("none found"),
                group.join(" or ")
            )));
        }
    }
    let mut list = Vec::new();
    let by_device: Vec<String> = found
        .fstab
        .iter()
        .filter(|e| e.by_device)
        .map(|e| e.mountpoint.clone())
        .collect();
    if !by_device.is_empty() {
        list.push(Change::FstabByUuid {
            mountpoints: by_device,
        });
    }
    let disabled: Vec<String> = found
        .network
        .iter()
        .filter(|n| n.kind == "netplan" && (!n.static_addresses.is_empty() || n.mac_pinned))
        .map(|n| n.path.clone())
        .collect();
    if !disabled.is_empty() {
        list.push(Change::NetworkDhcp { disabled });
    }
    if let Some(source) = &needs.datasource {
        let wanted = vec![source.to_string(), "None".to_string()];
        if found.datasources != wanted {
            list.push(Change::Datasource { list: wanted });
        }
    }
    if let Some(config) = found
        .bootloader_config
        .as_ref()
        .filter(|_| !found.serial_console())
    {
        list.push(Change::SerialConsole {
            config: config.clone(),
        });
    }
    Ok(list)
}

/// Applies `changes` to the disk at `disk` (the target's copy). Every file
/// is backed up before it is changed; the disk is synced before returning.
pub fn apply(disk: &Path, format: DiskFormat, changes: &[Change]) -> Result<(), GuestError> {
    let fish = Fish::open(disk, format, true)?;
    let found = inspect::inspect_with(&fish, true)?;
    for change in changes {
        apply_one(&fish, &found, change)?;
    }
    fish.close()
}

fn backup(fish: &Fish, path: &str) -> Result<(), GuestError> {
    let copy = format!("{path}{BACKUP}");
    // A second apply (a resumed run) keeps the first, true original.
    if !fish.is_true(&["exists", &copy])? {
        fish.cmd(&["cp-a", path, &copy])?;
    }
    Ok(())
}

fn apply_one(fish: &Fish, found: &Inspection, change: &Change) -> Result<(), GuestError> {
    match change {
        Change::FstabByUuid { .. } => {
            let text = fish.read("/etc/fstab")?.unwrap_or_default();
            let mut out = String::new();
            for line in text.lines() {
                out.push_str(&fstab_line(fish, found, line)?);
                out.push('\n');
            }
            backup(fish, "/etc/fstab")?;
            fish.write("/etc/fstab", &out)
        }
        Change::NetworkDhcp { disabled } => {
            for path in disabled {
                if fish.is_true(&["is-file", path])? {
                    // netplan reads only *.yaml: the renamed file is the backup.
                    fish.cmd(&["mv", path, &format!("{path}{BACKUP}")])?;
                }
            }
            fish.write(
                DHCP_NETPLAN,
                "# Written by altishift: DHCP on the first NIC, whatever its name.\n\
                 network:\n  version: 2\n  ethernets:\n    primary:\n      match:\n        \
                 name: \"e*\"\n      dhcp4: true\n      dhcp6: false\n",
            )?;
            fish.cmd(&["chmod", "0600", DHCP_NETPLAN]).map(|_| ())
        }
        Change::Datasource { list } => {
            fish.cmd(&["mkdir-p", "/etc/cloud/cloud.cfg.d"])?;
            fish.write(
                DATASOURCE_FILE,
                &format!(
                    "# Written by altishift for the target cloud.\ndatasource_list: [ {} ]\n",
                    list.join(", ")
                ),
            )
        }
        Change::SerialConsole { config } => {
            let text = fish
                .read(config)?
                .ok_or_else(|| GuestError::Other(format!("{config}: gone since the inspection")))?;
            let changed = add_serial_console(&text);
            backup(fish, config)?;
            fish.write(config, &changed)?;
            if let Some(grub) = fish.read("/etc/default/grub")? {
                backup(fish, "/etc/default/grub")?;
                fish.write("/etc/default/grub", &add_serial_to_default_grub(&grub))?;
            }
            Ok(())
        }
    }
}

/// An fstab line with a device name replaced by its filesystem's UUID.
fn fstab_line(fish: &Fish, found: &Inspection, line: &str) -> Result<String, GuestError> {
    let mut fields: Vec<&str> = line.split_whitespace().collect();
    if line.trim_start().starts_with('#') || fields.len() < 2 || !inspect::is_device_name(fields[0])
    {
        return Ok(line.to_string());
    }
    // libguestfs maps the guest's names to its own devices at inspection.
    let Some((_, device)) = found.mountpoints.iter().find(|(m, _)| m == fields[1]) else {
        return Ok(line.to_string());
    };
    let uuid = fish.cmd(&["vfs-uuid", device])?.trim().to_string();
    if uuid.is_empty() {
        return Ok(line.to_string());
    }
    let spec = format!("UUID={uuid}");
    fields[0] = &spec;
    Ok(fields.join("  "))
}

/// Adds the serial console to every extlinux `APPEND` and GRUB `linux` line
/// that lacks one.
pub fn add_serial_console(config: &str) -> String {
    let mut out = String::new();
    for line in config.lines() {
        let trimmed = line.trim_start().to_ascii_lowercase();
        let is_cmdline = trimmed.starts_with("append ")
            || trimmed.starts_with("linux ")
            || trimmed.starts_with("linuxefi ");
        if is_cmdline && !line.contains("console=ttyS") {
            out.push_str(line.trim_end());
            out.push(' ');
            out.push_str(SERIAL);
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

fn add_serial_to_default_grub(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        match line.strip_prefix("GRUB_CMDLINE_LINUX=\"") {
            Some(rest) if !line.contains("console=ttyS") => {
                let value = rest.trim_end().trim_end_matches('"');
                out.push_str(&format!(
                    "GRUB_CMDLINE_LINUX=\"{}\"",
                    format!("{value} {SERIAL}").trim()
                ));
            }
            _ => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_serial_console_joins_each_kernel_command_line_once() {
        let text = "LABEL l\n  KERNEL /boot/vmlinuz\n  APPEND root=/dev/vda1 ro quiet\n";
        let once = add_serial_console(text);
        assert!(once.contains("APPEND root=/dev/vda1 ro quiet console=tty0 console=ttyS0,115200"));
        assert_eq!(
            add_serial_console(&once),
            once,
            "applied twice changes nothing"
        );
        let grub = add_serial_to_default_grub("GRUB_CMDLINE_LINUX=\"\"\nX=1\n");
        assert_eq!(
            grub,
            "GRUB_CMDLINE_LINUX=\"console=tty0 console=ttyS0,115200\"\nX=1\n"
        );
    }
}
