//! Cloud firewalls (`POST/GET/DELETE /v2/firewalls`), SSH keys
//! (`POST/DELETE /v2/account/keys`) and the configuration parts of a
//! droplet create, as the API v2 reference states them:
//! - a firewall `name` begins with an alphanumeric, then alphanumerics,
//!   `.` and `-`; the request holds at least one inbound or outbound rule;
//!   a rule's `protocol` is tcp, udp or icmp; tcp and udp rules need
//!   `ports` — one port, a range `8000-9000`, or `"0"` for every port;
//!   inbound rules name `sources`, outbound rules `destinations` (addresses,
//!   droplet_ids, load_balancer_uids, kubernetes_ids, tags); the answer is
//!   `202 {"firewall": …}` with `status` "waiting" (firewall_get_waiting.json);
//! - a key needs `name` and `public_key`; the same public key twice is a 422;
//! - tag names hold letters, digits, `:`, `-` and `_`, at most 255
//!   characters; `user_data` at most 64 KiB; `ssh_keys` must exist;
//!   `vpc_uuid` names a VPC in the droplet's region.

use super::{FakeState, Req, Routed, next_id, not_found, unprocessable};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::{Value, json};

pub fn tag_ok(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 255
        && t.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '-' | '_'))
}

fn name_ok(n: &str) -> bool {
    n.starts_with(|c: char| c.is_ascii_alphanumeric())
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
}

fn ports_ok(p: &str) -> bool {
    let n = |x: &str| x.parse::<u16>().is_ok();
    match p.split_once('-') {
        Some((a, b)) => n(a) && n(b),
        None => n(p),
    }
}

fn check_rules(rules: &Value, peers: &str) -> Result<(), String> {
    for rule in rules.as_array().into_iter().flatten() {
        let protocol = rule["protocol"].as_str().unwrap_or_default();
        if !matches!(protocol, "tcp" | "udp" | "icmp") {
            return Err(format!("protocol '{protocol}' is not tcp, udp or icmp"));
        }
        if protocol != "icmp" {
            match rule["ports"].as_str() {
                Some(p) if ports_ok(p) => {}
                other => return Err(format!("ports {other:?} is not a port, a range or \"0\"")),
            }
        }
        let who = &rule[peers];
        let named = [
            "addresses",
            "droplet_ids",
            "load_balancer_uids",
            "kubernetes_ids",
            "tags",
        ]
        .iter()
        .any(|k| who[*k].as_array().is_some_and(|a| !a.is_empty()));
        if !named {
            return Err(format!("a rule must name its {peers}"));
        }
        if let Some(bad) = who["tags"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .find(|t| !tag_ok(t))
        {
            return Err(format!("tag '{bad}' is not a valid tag name"));
        }
    }
    Ok(())
}

fn create_firewall(s: &mut FakeState, body: &Value) -> Routed {
    let name = body["name"].as_str().unwrap_or_default();
    if !name_ok(name) {
        return unprocessable(s, "name must begin with an alphanumeric character and hold only alphanumerics, '.' and '-'").into();
    }
    let empty = |k: &str| body[k].as_array().is_none_or(|a| a.is_empty());
    if empty("inbound_rules") && empty("outbound_rules") {
        return unprocessable(
            s,
            "The request must contain at least one inbound or outbound access rule.",
        )
        .into();
    }
    for (key, peers) in [
        ("inbound_rules", "sources"),
        ("outbound_rules", "destinations"),
    ] {
        if let Err(why) = check_rules(&body[key], peers) {
            return unprocessable(s, &format!("{key}: {why}")).into();
        }
    }
    let tags: Vec<Value> = body["tags"].as_array().cloned().unwrap_or_default();
    if let Some(bad) = tags.iter().find(|t| !t.as_str().is_some_and(tag_ok)) {
        return unprocessable(s, &format!("tag {bad} is not a valid tag name")).into();
    }
    let n = next_id(s);
    let firewall = json!({
        "id": format!("fe6b88f2-b42b-4bf7-bbd3-{n:012x}"),
        "name": name, "status": "waiting",
        "inbound_rules": body["inbound_rules"].as_array().cloned().unwrap_or_default(),
        "outbound_rules": body["outbound_rules"].as_array().cloned().unwrap_or_default(),
        "created_at": "2026-11-26T12:00:00Z",
        "droplet_ids": body["droplet_ids"].as_array().cloned().unwrap_or_default(),
        "tags": tags, "pending_changes": [],
    });
    s.firewalls.push(firewall.clone());
    (
        StatusCode::ACCEPTED,
        axum::Json(json!({"firewall": firewall})),
    )
        .into_response()
        .into()
}

fn create_key(s: &mut FakeState, body: &Value) -> Routed {
    let (Some(name), Some(key)) = (body["name"].as_str(), body["public_key"].as_str()) else {
        return unprocessable(s, "name and public_key are required").into();
    };
    let same = |k: &Value| {
        let words = |t: &str| t.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
        k["public_key"].as_str().map(words) == Some(words(key))
    };
    if s.keys.iter().any(same) {
        return unprocessable(s, "SSH Key is already in use on your account").into();
    }
    let id = next_id(s);
    let ssh_key = json!({"id": id, "name": name, "public_key": key,
        "fingerprint": format!("3b:16:bf:e4:8b:00:8b:b8:59:8c:a9:d3:f0:19:{:02x}:{:02x}", id % 256, (id / 256) % 256)});
    s.keys.push(ssh_key.clone());
    (StatusCode::CREATED, axum::Json(json!({"ssh_key": ssh_key})))
        .into_response()
        .into()
}

fn remove(s: &mut FakeState, list: fn(&mut FakeState) -> &mut Vec<Value>, id: &str) -> Routed {
    let items = list(s);
    let Some(at) = items
        .iter()
        .position(|x| x["id"].to_string().trim_matches('"') == id)
    else {
        return not_found(s).into();
    };
    items.remove(at);
    StatusCode::NO_CONTENT.into_response().into()
}

pub(super) fn route(s: &mut FakeState, req: &Req) -> Option<Routed> {
    match (req.method, req.parts.as_slice()) {
        ("POST", ["v2", "firewalls"]) => Some(create_firewall(s, &req.body)),
        ("GET", ["v2", "firewalls", id]) => {
            Some(match s.firewalls.iter().find(|f| f["id"] == *id) {
                Some(f) => axum::Json(json!({"firewall": f})).into_response().into(),
                None => not_found(s).into(),
            })
        }
        ("DELETE", ["v2", "firewalls", id]) => Some(remove(s, |s| &mut s.firewalls, id)),
        ("POST", ["v2", "account", "keys"]) => Some(create_key(s, &req.body)),
        ("DELETE", ["v2", "account", "keys", id]) => Some(remove(s, |s| &mut s.keys, id)),
        _ => None,
    }
}

/// The configuration parts of a droplet create, or the API's refusal.
pub(super) fn check_droplet(s: &FakeState, body: &Value) -> Result<(), String> {
    for t in body["tags"].as_array().into_iter().flatten() {
        if !t.as_str().is_some_and(tag_ok) {
            return Err(format!("tag {t} is not a valid tag name"));
        }
    }
    if body["user_data"]
        .as_str()
        .is_some_and(|u| u.len() > 64 * 1024)
    {
        return Err("user_data is limited to 64 KiB".into());
    }
    for k in body["ssh_keys"].as_array().into_iter().flatten() {
        let known = s
            .keys
            .iter()
            .any(|x| x["id"] == *k || x["fingerprint"] == *k);
        if !known {
            return Err(format!("ssh key {k} is not on the account"));
        }
    }
    if let Some(vpc) = body["vpc_uuid"].as_str() {
        let region = body["region"].as_str().unwrap_or_default();
        if !s
            .vpcs
            .iter()
            .any(|v| v["id"] == vpc && v["region"] == region)
        {
            return Err(format!("vpc {vpc} is not in region {region}"));
        }
    }
    Ok(())
}
