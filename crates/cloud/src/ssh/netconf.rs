//! An SSH host's network attachments from `ip -j addr` (iproute2's JSON,
//! read-only): one per interface that is up and not loopback, with its
//! first global IPv4 address, the network it lies in and whether that
//! address is public. The host's firewall (`nft -j list ruleset`) is not
//! read yet.

use crate::inventory::config::Attachment;
use serde::Deserialize;
use std::net::Ipv4Addr;

#[derive(Deserialize)]
struct Link {
    ifname: String,
    #[serde(default)]
    flags: Vec<String>,
    #[serde(default)]
    addr_info: Vec<Address>,
}

#[derive(Deserialize)]
struct Address {
    family: String,
    local: String,
    prefixlen: u8,
    #[serde(default)]
    scope: Option<String>,
}

/// The attachments `ip -j addr` shows, or why its output is not that.
pub fn attachments(ip_json: &str) -> Result<Vec<Attachment>, String> {
    let links: Vec<Link> =
        serde_json::from_str(ip_json).map_err(|e| format!("`ip -j addr` output: {e}"))?;
    let mut out = Vec::new();
    for link in links {
        let up = link.flags.iter().any(|f| f == "UP");
        if !up || link.flags.iter().any(|f| f == "LOOPBACK") {
            continue;
        }
        let Some((address, prefix)) = link
            .addr_info
            .iter()
            .filter(|a| a.family == "inet" && a.scope.as_deref() == Some("global"))
            .find_map(|a| Some((a.local.parse::<Ipv4Addr>().ok()?, a.prefixlen.min(32))))
        else {
            continue;
        };
        let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
        let network = Ipv4Addr::from(u32::from(address) & mask);
        out.push(Attachment {
            network: link.ifname,
            subnet: None,
            cidr: Some(format!("{network}/{prefix}")),
            private_address: Some(address.to_string()),
            public: public(address),
        });
    }
    Ok(out)
}

/// Reachable from the internet: not private, loopback, link-local,
/// documentation or carrier-grade NAT (100.64.0.0/10) space.
fn public(a: Ipv4Addr) -> bool {
    let shared = a.octets()[0] == 100 && (a.octets()[1] & 0xc0) == 64;
    !(a.is_private()
        || a.is_loopback()
        || a.is_link_local()
        || a.is_documentation()
        || a.is_unspecified()
        || shared)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Recorded with `ip -j addr` (iproute2 6.1.0) on the build machine of
    /// 2026-12-04, trimmed to lo, a down interface and eth0.
    const RECORDED: &str = r#"[{"ifindex": 1, "ifname": "lo", "flags": ["LOOPBACK", "UP", "LOWER_UP"], "mtu": 65536, "qdisc": "noqueue", "operstate": "UNKNOWN", "group": "default", "txqlen": 1000, "link_type": "loopback", "address": "00:00:00:00:00:00", "broadcast": "00:00:00:00:00:00", "addr_info": [{"family": "inet", "local": "127.0.0.1", "prefixlen": 8, "scope": "host", "label": "lo", "valid_life_time": 4294967295, "preferred_life_time": 4294967295}, {"family": "inet6", "local": "::1", "prefixlen": 128, "scope": "host", "valid_life_time": 4294967295, "preferred_life_time": 4294967295}]}, {"ifindex": 2, "ifname": "ifb0", "flags": ["BROADCAST", "NOARP"], "mtu": 1500, "qdisc": "noop", "operstate": "DOWN", "group": "default", "txqlen": 32, "link_type": "ether", "address": "de:ef:6d:84:ff:44", "broadcast": "ff:ff:ff:ff:ff:ff", "addr_info": []}, {"ifindex": 4, "ifname": "eth0", "flags": ["BROADCAST", "MULTICAST", "UP", "LOWER_UP"], "mtu": 1400, "qdisc": "pfifo_fast", "operstate": "UP", "group": "default", "txqlen": 1000, "link_type": "ether", "address": "02:fc:00:00:00:01", "broadcast": "ff:ff:ff:ff:ff:ff", "addr_info": [{"family": "inet", "local": "192.0.2.2", "prefixlen": 24, "broadcast": "192.0.2.255", "scope": "global", "label": "eth0", "valid_life_time": 4294967295, "preferred_life_time": 4294967295}, {"family": "inet6", "local": "fd00::2", "prefixlen": 64, "scope": "global", "nodad": true, "valid_life_time": 4294967295, "preferred_life_time": 4294967295}, {"family": "inet6", "local": "fe80::fc:ff:fe00:1", "prefixlen": 64, "scope": "link", "valid_life_time": 4294967295, "preferred_life_time": 4294967295}]}]"#;

    #[test]
    fn the_recorded_host_has_one_attachment_on_eth0() {
        let found = attachments(RECORDED).unwrap();
        assert_eq!(
            found,
            vec![Attachment {
                network: "eth0".into(),
                subnet: None,
                cidr: Some("192.0.2.0/24".into()),
                private_address: Some("192.0.2.2".into()),
                public: false,
            }]
        );
    }

    #[test]
    fn public_addresses_and_odd_prefixes() {
        let one = |addr: &str, prefix: u8| {
            format!(
                r#"[{{"ifname": "ens3", "flags": ["UP"], "addr_info": [{{"family": "inet",
                "local": "{addr}", "prefixlen": {prefix}, "scope": "global"}}]}}]"#
            )
        };
        let a = &attachments(&one("203.0.113.7", 32)).unwrap()[0];
        assert_eq!(a.cidr.as_deref(), Some("203.0.113.7/32"));
        assert!(!a.public, "documentation space");
        let a = &attachments(&one("8.8.4.4", 0)).unwrap()[0];
        assert_eq!(a.cidr.as_deref(), Some("0.0.0.0/0"));
        assert!(a.public);
        assert!(!attachments(&one("100.64.1.2", 10)).unwrap()[0].public);
        assert!(!attachments(&one("10.1.2.3", 8)).unwrap()[0].public);
        let err = attachments("ip: command not found").unwrap_err();
        assert!(err.contains("ip -j addr"), "{err}");
    }
}
