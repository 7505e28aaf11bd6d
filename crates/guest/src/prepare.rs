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
use std::path::Path;

const BACKUP: &str = ".altishift-orig";
const DATASOURCE_FILE: &str = "/etc/cloud/cloud.cfg.d/99_altishift_datasource.cfg";
// The changes are plan data: the plan lists them and its hash covers them.
pub use crate::plan::preparation::Change;
use crate::plan::preparation::{DHCP_NETPLAN, SERIAL};

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
    // The target's own agent (its datasource is the target's) stays.
    let kept = needs.datasource.as_deref();
    let agents: Vec<String> = found
        .agents
        .iter()
        .filter(|agent| !found.agents_masked.contains(agent))
        .filter(|agent| {
            inspect::AGENT_UNITS
                .iter()
                .any(|(name, cloud, _)| name == agent && Some(*cloud) != kept)
        })
        .cloned()
        .collect();
    if !agents.is_empty() {
        list.push(Change::DisableAgents { agents });
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
        Change::DisableAgents { agents } => {
            fish.cmd(&["mkdir-p", inspect::SYSTEMD_ADMIN])?;
            for (_, _, units) in inspect::AGENT_UNITS
                .iter()
                .filter(|(name, _, _)| agents.iter().any(|a| a == name))
            {
                for unit in *units {
                    // Masked, not removed: `systemctl unmask` undoes it.
                    let link = format!("{}/{unit}", inspect::SYSTEMD_ADMIN);
                    fish.cmd(&["ln-sf", "/dev/null", &link])?;
                }
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
    fn another_clouds_agent_is_disabled_and_the_targets_own_is_kept() {
        let found = Inspection {
            os_type: "linux".into(),
            agents: vec!["amazon-ssm-agent".into(), "google-guest-agent".into()],
            datasources: vec!["GCE".into(), "None".into()],
            ..Inspection::default()
        };
        // A host that needs no driver and has no datasource: only the
        // agents are left to change.
        let changes = super::changes(&found, &GuestNeeds::default(), "host").unwrap();
        assert_eq!(
            changes,
            [Change::DisableAgents {
                agents: vec!["amazon-ssm-agent".into(), "google-guest-agent".into()]
            }]
        );
        // GCE needs virtio (or nvme/gve) and keeps its own agent.
        let gce = GuestNeeds::new(
            &[&["virtio_scsi", "nvme"], &["virtio_net", "gve"]],
            Some("GCE"),
        );
        let mut on_gce = found.clone();
        on_gce.drivers = ["virtio_scsi", "virtio_net"]
            .iter()
            .map(|name| inspect::Driver {
                name: name.to_string(),
                state: "module".into(),
            })
            .collect();
        let changes = super::changes(&on_gce, &gce, "gce").unwrap();
        assert_eq!(
            changes,
            [Change::DisableAgents {
                agents: vec!["amazon-ssm-agent".into()]
            }],
            "GCE keeps its own agent"
        );
        // Masked already (a prepared copy): nothing left.
        on_gce.agents_masked = vec!["amazon-ssm-agent".into()];
        assert_eq!(super::changes(&on_gce, &gce, "gce").unwrap(), []);
    }

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
