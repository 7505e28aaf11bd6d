//! Whether a change preparation applied is what a fresh inspection of the
//! prepared disk finds: the report says what was verified, not what was
//! attempted. Pure: works on the inspection read back after applying.

use super::inspect::Inspection;
use super::prepare::Change;

/// What the inspection shows for `change`: `Ok(evidence)` when it holds.
pub fn verify(change: &Change, after: &Inspection) -> Result<String, String> {
    match change {
        Change::FstabByUuid { mountpoints } => {
            let left: Vec<&str> = after
                .fstab
                .iter()
                .filter(|e| e.by_device && mountpoints.contains(&e.mountpoint))
                .map(|e| e.spec.as_str())
                .collect();
            if left.is_empty() {
                let specs: Vec<String> = after
                    .fstab
                    .iter()
                    .filter(|e| mountpoints.contains(&e.mountpoint))
                    .map(|e| format!("{} {}", e.spec, e.mountpoint))
                    .collect();
                Ok(format!("fstab: {}", specs.join(", ")))
            } else {
                Err(format!("fstab still names {}", left.join(", ")))
            }
        }
        Change::NetworkDhcp { disabled } => {
            let still: Vec<&str> = after
                .network
                .iter()
                .filter(|n| disabled.contains(&n.path))
                .map(|n| n.path.as_str())
                .collect();
            if !still.is_empty() {
                Err(format!("still read: {}", still.join(", ")))
            } else if !after.network.iter().any(|n| n.dhcp) {
                Err("no network file uses DHCP".into())
            } else {
                let dhcp: Vec<&str> = after
                    .network
                    .iter()
                    .filter(|n| n.dhcp)
                    .map(|n| n.path.as_str())
                    .collect();
                Ok(format!("DHCP in {}", dhcp.join(", ")))
            }
        }
        Change::Datasource { list } => {
            if &after.datasources == list {
                Ok(format!(
                    "datasource_list [{}]",
                    after.datasources.join(", ")
                ))
            } else {
                Err(format!(
                    "datasource_list is [{}]",
                    after.datasources.join(", ")
                ))
            }
        }
        Change::DisableAgents { agents } => {
            let running: Vec<&str> = agents
                .iter()
                .filter(|a| !after.agents_masked.contains(a))
                .map(String::as_str)
                .collect();
            if running.is_empty() {
                Ok(format!("masked: {}", agents.join(", ")))
            } else {
                Err(format!("not masked: {}", running.join(", ")))
            }
        }
        Change::SerialConsole { .. } => {
            if after.serial_console() {
                let line = after
                    .kernel_cmdline
                    .iter()
                    .find(|l| l.contains("console=ttyS"))
                    .cloned()
                    .unwrap_or_default();
                Ok(format!("kernel command line: {}", line.trim()))
            } else {
                Err("no console=ttyS on the kernel command line".into())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::{FstabEntry, NetworkFile};

    fn before() -> Inspection {
        Inspection {
            fstab: vec![FstabEntry {
                spec: "/dev/vda1".into(),
                mountpoint: "/".into(),
                fstype: "ext4".into(),
                by_device: true,
            }],
            network: vec![NetworkFile {
                path: "/etc/netplan/50-cloud-init.yaml".into(),
                kind: "netplan".into(),
                static_addresses: vec!["10.1.3.40/24".into()],
                dhcp: false,
                mac_pinned: false,
            }],
            datasources: vec!["NoCloud".into(), "ConfigDrive".into(), "None".into()],
            kernel_cmdline: vec!["root=/dev/vda1 ro".into()],
            agents: vec!["amazon-ssm-agent".into()],
            ..Inspection::default()
        }
    }

    fn changes() -> Vec<Change> {
        vec![
            Change::FstabByUuid {
                mountpoints: vec!["/".into()],
            },
            Change::NetworkDhcp {
                disabled: vec!["/etc/netplan/50-cloud-init.yaml".into()],
            },
            Change::Datasource {
                list: vec!["NoCloud".into(), "None".into()],
            },
            Change::SerialConsole {
                config: "/boot/extlinux/extlinux.conf".into(),
            },
            Change::DisableAgents {
                agents: vec!["amazon-ssm-agent".into()],
            },
        ]
    }

    #[test]
    fn an_unprepared_guest_fails_every_verification_and_a_prepared_one_passes() {
        let found = before();
        for change in changes() {
            assert!(verify(&change, &found).is_err(), "{change}");
        }
        let mut after = before();
        after.fstab[0].spec = "UUID=abc".into();
        after.fstab[0].by_device = false;
        after.network = vec![NetworkFile {
            path: "/etc/netplan/90-altishift-dhcp.yaml".into(),
            kind: "netplan".into(),
            static_addresses: vec![],
            dhcp: true,
            mac_pinned: false,
        }];
        after.datasources = vec!["NoCloud".into(), "None".into()];
        after.kernel_cmdline = vec!["root=/dev/vda1 ro console=ttyS0,115200".into()];
        after.agents_masked = vec!["amazon-ssm-agent".into()];
        let evidence: Vec<String> = changes()
            .iter()
            .map(|c| verify(c, &after).unwrap())
            .collect();
        assert_eq!(evidence[0], "fstab: UUID=abc /");
        assert_eq!(evidence[1], "DHCP in /etc/netplan/90-altishift-dhcp.yaml");
        assert!(evidence[3].ends_with("console=ttyS0,115200"));
        assert_eq!(evidence[4], "masked: amazon-ssm-agent");
    }
}
