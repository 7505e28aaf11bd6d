//! Parsers of the guest files inspection reads (boot loader config, fstab,
//! network config, cloud-init datasources): plain text in, facts out, so
//! they are tested without an appliance.

use super::inspect::{FstabEntry, NetworkFile};

/// The kernel command lines of extlinux (`APPEND`) or GRUB (`linux`).
pub fn kernel_cmdlines(config: &str) -> Vec<String> {
    config
        .lines()
        .map(str::trim)
        .filter_map(|l| {
            let (word, rest) = l.split_once(char::is_whitespace)?;
            let word = word.to_ascii_lowercase();
            if word == "append" {
                Some(rest.trim().to_string())
            } else if word == "linux" || word == "linuxefi" {
                // GRUB: `linux /vmlinuz-… root=… ro` — drop the kernel path.
                Some(
                    rest.split_once(' ')
                        .map(|(_, a)| a)
                        .unwrap_or("")
                        .trim()
                        .into(),
                )
            } else {
                None
            }
        })
        .collect()
}

pub fn parse_fstab(text: &str) -> Vec<FstabEntry> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let mut fields = l.split_whitespace();
            let (spec, mountpoint, fstype) = (fields.next()?, fields.next()?, fields.next()?);
            Some(FstabEntry {
                by_device: is_device_name(spec),
                spec: spec.into(),
                mountpoint: mountpoint.into(),
                fstype: fstype.into(),
            })
        })
        .collect()
}

/// `/dev/sda1`, `/dev/xvda1`, `/dev/vdb`, `/dev/nvme0n1p1`, `/dev/hda1`: names
/// the kernel gives by bus, which change from cloud to cloud.
pub fn is_device_name(spec: &str) -> bool {
    let Some(name) = spec.strip_prefix("/dev/") else {
        return false;
    };
    ["sd", "vd", "xvd", "hd", "nvme"]
        .iter()
        .any(|p| name.starts_with(p))
}

/// Static addresses, DHCP and MAC pinning in one network file, by the
/// keywords each tool uses (a line scan: these files are small and flat).
pub fn parse_network(kind: &str, path: &str, text: &str) -> NetworkFile {
    let mut file = NetworkFile {
        path: path.into(),
        kind: kind.into(),
        static_addresses: Vec::new(),
        dhcp: false,
        mac_pinned: false,
    };
    if kind == "netplan" {
        parse_netplan(text, &mut file);
        return file;
    }
    for raw in text.lines() {
        let line = raw.split('#').next().unwrap_or("").trim();
        let lower = line.to_ascii_lowercase();
        match kind {
            "ifupdown" => {
                if lower.starts_with("iface ") && lower.ends_with(" dhcp") {
                    file.dhcp = true;
                }
                if let Some(address) = lower.strip_prefix("address ") {
                    file.static_addresses.push(address.trim().into());
                }
                if lower.starts_with("hwaddress") {
                    file.mac_pinned = true;
                }
            }
            "systemd-networkd" => {
                if let Some(address) = line.strip_prefix("Address=") {
                    file.static_addresses.push(address.trim().into());
                }
                if lower.starts_with("dhcp=") && !lower.ends_with("=no") {
                    file.dhcp = true;
                }
                if lower.starts_with("macaddress=") {
                    file.mac_pinned = true;
                }
            }
            _ => {
                // NetworkManager keyfiles: `method=manual`, `address1=…`.
                if let Some((_, v)) = line
                    .split_once('=')
                    .filter(|_| lower.starts_with("address"))
                {
                    file.static_addresses
                        .push(v.split(',').next().unwrap_or(v).trim().into());
                }
                if lower == "method=auto" {
                    file.dhcp = true;
                }
                if lower.starts_with("mac-address=") {
                    file.mac_pinned = true;
                }
            }
        }
    }
    file
}

/// netplan YAML, by indentation: `addresses` of an interface (inline or a
/// block list) are static addresses, those under `nameservers` are not.
pub(super) fn parse_netplan(text: &str, file: &mut NetworkFile) {
    let mut nameservers: Option<usize> = None;
    let mut block: Option<usize> = None;
    for raw in text.lines() {
        let content = raw.split('#').next().unwrap_or("");
        let line = content.trim();
        if line.is_empty() {
            continue;
        }
        let indent = content.len() - content.trim_start().len();
        if nameservers.is_some_and(|n| indent <= n) {
            nameservers = None;
        }
        if let Some(n) = block {
            if let Some(item) = line.strip_prefix("- ").filter(|_| indent >= n) {
                if item.contains('/') {
                    file.static_addresses
                        .push(item.trim().trim_matches(['"', '\'']).into());
                }
                continue;
            }
            block = None;
        }
        let lower = line.to_ascii_lowercase();
        if lower.starts_with("nameservers:") {
            nameservers = Some(indent);
        } else if let Some(rest) = line
            .strip_prefix("addresses:")
            .filter(|_| nameservers.is_none())
        {
            if rest.trim().is_empty() {
                block = Some(indent);
            } else {
                file.static_addresses.extend(inline_list(rest));
            }
        }
        if lower.starts_with("dhcp4: true") || lower.starts_with("dhcp6: true") {
            file.dhcp = true;
        }
        if lower.starts_with("macaddress:") {
            file.mac_pinned = true;
        }
    }
}

/// `[a, b]` → a, b (quotes dropped).
pub(super) fn inline_list(text: &str) -> Vec<String> {
    let text = text.trim();
    let Some(inner) = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')) else {
        return Vec::new();
    };
    inner
        .split(',')
        .map(|s| s.trim().trim_matches(['"', '\'']).to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// `datasource_list: [ Ec2, None ]`, or the same as a YAML block list.
pub fn parse_datasource_list(text: &str) -> Option<Vec<String>> {
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let Some(rest) = line.trim().strip_prefix("datasource_list:") else {
            continue;
        };
        let rest = rest.split('#').next().unwrap_or("").trim();
        if rest.starts_with('[') {
            return Some(inline_list(rest));
        }
        let items = lines
            .by_ref()
            .map(str::trim)
            .take_while(|l| l.starts_with("- "))
            .map(|l| l[2..].trim().trim_matches(['"', '\'']).to_string())
            .collect();
        return Some(items);
    }
    None
}
