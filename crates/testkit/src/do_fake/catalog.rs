//! The account and what it can choose from: `/v2/account`, sizes, regions,
//! SSH keys (`/v2/account/keys`), VPCs and firewalls.
//!
//! VPC and firewall objects follow the API v2 reference (no recorded answer
//! exists in the fixtures): a VPC has `id` (UUID), `urn`, `name`,
//! `description`, `region`, `ip_range`, `default`, `created_at`; a firewall
//! has `id` (UUID), `status`, `created_at`, `pending_changes`, `name`,
//! `droplet_ids`, `tags`, `inbound_rules` (`protocol`, `ports`, `sources`)
//! and `outbound_rules` (`protocol`, `ports`, `destinations`), where sources
//! and destinations hold `addresses`, `droplet_ids`, `load_balancer_uids`,
//! `kubernetes_ids` and `tags`.

use super::{FakeState, Req, Routed, next_id, page};
use axum::response::IntoResponse;
use serde_json::{Value, json};

pub(super) fn seed(s: &mut FakeState) {
    // The real API lists `nyc1` first (list_locations.json): a client that
    // takes "the first region" lands in New York.
    for (slug, name) in [("nyc1", "New York 1"), ("fra1", "Frankfurt 1")] {
        s.regions.push(json!({
            "slug": slug, "name": name, "available": true,
            "sizes": ["s-1vcpu-1gb", "s-2vcpu-4gb", "s-4vcpu-8gb", "s-8vcpu-16gb", "s-8vcpu-32gb"],
            "features": ["backups", "ipv6", "metadata", "install_agent"]
        }));
    }
    for (slug, vcpus, memory, disk) in [
        ("s-1vcpu-1gb", 1, 1024, 25),
        ("s-2vcpu-4gb", 2, 4096, 80),
        ("s-4vcpu-8gb", 4, 8192, 160),
        ("s-8vcpu-16gb", 8, 16384, 320),
        // Big enough for the machine the tests run on, read over SSH as a source.
        ("s-8vcpu-32gb", 8, 32768, 640),
    ] {
        s.sizes.push(json!({
            "slug": slug, "memory": memory, "vcpus": vcpus, "disk": disk,
            "transfer": 4.0, "price_monthly": 24.0, "price_hourly": 0.0357,
            "regions": ["fra1", "nyc1"], "available": true
        }));
    }
    s.keys.push(json!({
        "id": 7717, "name": "ops",
        "fingerprint": "f5:d1:78:ed:28:72:5f:e1:ac:94:fd:1f:e0:a3:48:6d",
        "public_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI example"
    }));
    add_vpc(s, "default-fra1", "fra1", "10.114.0.0/20");
    s.vpcs[0]["default"] = json!(true);
    let web = add_firewall(s, "web", 443);
    let rules = s.firewalls[web]["inbound_rules"].as_array_mut().unwrap();
    rules.push(json!({
        "protocol": "tcp", "ports": "22",
        "sources": {"addresses": ["0.0.0.0/0", "::/0"]}
    }));
    rules.push(json!({
        "protocol": "icmp", "ports": "0",
        "sources": {"tags": ["monitoring"]}
    }));
}

fn uuid(s: &mut FakeState) -> String {
    let n = next_id(s);
    format!("5a4981aa-9653-4bd1-bef5-{n:012x}")
}

pub(super) fn add_vpc(s: &mut FakeState, name: &str, region: &str, cidr: &str) {
    let id = uuid(s);
    s.vpcs.push(json!({
        "id": id, "urn": format!("do:vpc:{id}"), "name": name,
        "description": "", "region": region, "ip_range": cidr,
        "default": false, "created_at": "2026-11-20T09:00:00Z"
    }));
}

/// A firewall letting `port`/tcp in from anywhere and everything out;
/// returns its index.
pub(super) fn add_firewall(s: &mut FakeState, name: &str, port: u16) -> usize {
    let id = uuid(s);
    s.firewalls.push(json!({
        "id": id, "status": "succeeded", "created_at": "2026-11-20T09:00:00Z",
        "pending_changes": [], "name": name, "droplet_ids": [], "tags": [],
        "inbound_rules": [{
            "protocol": "tcp", "ports": port.to_string(),
            "sources": {"addresses": ["0.0.0.0/0"]}
        }],
        "outbound_rules": [
            {"protocol": "tcp", "ports": "0", "destinations": {"addresses": ["0.0.0.0/0", "::/0"]}},
            {"protocol": "udp", "ports": "53", "destinations": {"addresses": ["0.0.0.0/0"]}}
        ]
    }));
    s.firewalls.len() - 1
}

pub(super) fn route(s: &mut FakeState, req: &Req) -> Option<Routed> {
    let listing = |s: &FakeState, items: &[Value], key: &str| Some(page(s, items, key, req));
    match (req.method, req.parts.as_slice()) {
        ("GET", ["v2", "account"]) => Some(
            axum::Json(json!({"account": {
                "droplet_limit": 25, "email": "ops@example.com",
                "uuid": "a1234567890b1234567890c1234567890d12345",
                "email_verified": true, "status": "active"
            }}))
            .into_response()
            .into(),
        ),
        ("GET", ["v2", "sizes"]) => listing(s, &s.sizes, "sizes"),
        ("GET", ["v2", "regions"]) => listing(s, &s.regions, "regions"),
        ("GET", ["v2", "account", "keys"]) => listing(s, &s.keys, "ssh_keys"),
        ("GET", ["v2", "vpcs"]) => listing(s, &s.vpcs, "vpcs"),
        ("GET", ["v2", "firewalls"]) => listing(s, &s.firewalls, "firewalls"),
        _ => None,
    }
}
