//! Firewall rules (`firewalls.insert/get/delete`) and the configuration
//! parts of `instances.insert` (labels, network tags, metadata, the
//! subnetwork, access configs), checked as the Compute Engine v1 reference
//! states them:
//! - firewall `name`: RFC 1035, 1–63 characters; `network` defaults to
//!   `global/networks/default`; `direction` defaults to INGRESS, `priority`
//!   to 1000 (0–65535); INGRESS takes no `destinationRanges` and needs one
//!   of `sourceRanges`/`sourceTags`/`sourceServiceAccounts`; EGRESS takes
//!   no `sourceRanges`/`sourceTags`; `sourceServiceAccounts` cannot be used
//!   with `sourceTags` or `targetTags`; `targetTags` and
//!   `targetServiceAccounts` exclude each other; `IPProtocol` is required
//!   (tcp, udp, icmp, esp, ah, ipip, sctp, all or a number), `ports` only
//!   for tcp, udp and sctp, each a number or a range;
//! - labels: at most 64; keys 1–63 characters, start with a lowercase
//!   letter, then lowercase letters, digits, `_` and `-`; values the same
//!   characters, 0–63;
//! - network tags (`tags.items`): RFC 1035, at most 64;
//! - metadata keys `[a-zA-Z0-9-_]{1,128}`, a value at most 256 KB, all
//!   values together at most 512 KB;
//! - an access config's `type` is ONE_TO_ONE_NAT (the default).

use super::State;
use super::api::{error, new_op, not_found};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

fn invalid(field: &str, value: &str, why: &str) -> Response {
    error(
        400,
        "invalid",
        &format!("Invalid value for field '{field}': '{value}'. {why}"),
    )
}

pub fn rfc1035(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[b.len() - 1] != b'-'
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect()
}

fn port_ok(p: &str) -> bool {
    let n = |x: &str| x.parse::<u16>().is_ok();
    match p.split_once('-') {
        Some((a, b)) => n(a) && n(b) && a.parse::<u16>().ok() <= b.parse::<u16>().ok(),
        None => n(p),
    }
}

pub fn insert_firewall(s: &mut State, mut body: Value) -> Response {
    let name = body["name"].as_str().unwrap_or_default().to_string();
    if name.is_empty() {
        return error(
            400,
            "required",
            "Required field 'resource.name' not specified",
        );
    }
    if !rfc1035(&name) {
        return invalid(
            "resource.name",
            &name,
            "Must be a match of regex '(?:[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?)'",
        );
    }
    if s.firewalls.iter().any(|f| f["name"] == name.as_str()) {
        return error(
            409,
            "alreadyExists",
            &format!(
                "The resource 'projects/{}/global/firewalls/{name}' already exists",
                super::PROJECT
            ),
        );
    }
    let network = body["network"]
        .as_str()
        .unwrap_or("global/networks/default")
        .to_string();
    let network_name = network.rsplit('/').next().unwrap_or_default().to_string();
    if !s
        .networks
        .iter()
        .any(|n| n["name"] == network_name.as_str())
    {
        return not_found(&format!("global/networks/{network_name}"));
    }
    let direction = body["direction"].as_str().unwrap_or("INGRESS").to_string();
    if direction != "INGRESS" && direction != "EGRESS" {
        return invalid("resource.direction", &direction, "");
    }
    let priority = body["priority"].as_i64().unwrap_or(1000);
    if !(0..=65535).contains(&priority) {
        return invalid("resource.priority", &priority.to_string(), "");
    }
    let has = |k: &str| !strings(&body[k]).is_empty();
    if direction == "INGRESS" && has("destinationRanges") {
        return invalid(
            "resource.destinationRanges",
            "",
            "destinationRanges cannot be set for INGRESS rules.",
        );
    }
    if direction == "INGRESS"
        && !has("sourceRanges")
        && !has("sourceTags")
        && !has("sourceServiceAccounts")
    {
        return error(
            400,
            "invalid",
            "For INGRESS traffic, one of sourceRanges, sourceTags or sourceServiceAccounts is required.",
        );
    }
    if direction == "EGRESS" && (has("sourceRanges") || has("sourceTags")) {
        return invalid(
            "resource.sourceRanges",
            "",
            "sourceRanges and sourceTags cannot be set for EGRESS rules.",
        );
    }
    if has("sourceServiceAccounts") && (has("sourceTags") || has("targetTags")) {
        return invalid(
            "resource.sourceServiceAccounts",
            "",
            "sourceServiceAccounts cannot be used at the same time as sourceTags or targetTags.",
        );
    }
    if has("targetTags") && has("targetServiceAccounts") {
        return invalid(
            "resource.targetServiceAccounts",
            "",
            "targetServiceAccounts cannot be used at the same time as targetTags.",
        );
    }
    for tag in strings(&body["targetTags"])
        .iter()
        .chain(&strings(&body["sourceTags"]))
    {
        if !rfc1035(tag) {
            return invalid(
                "resource.targetTags",
                tag,
                "Must be a match of regex '[a-z]([-a-z0-9]*[a-z0-9])?'",
            );
        }
    }
    let (key, entries) = match (body["allowed"].as_array(), body["denied"].as_array()) {
        (Some(a), None) if !a.is_empty() => ("allowed", a.clone()),
        (None, Some(d)) if !d.is_empty() => ("denied", d.clone()),
        _ => {
            return error(
                400,
                "invalid",
                "Exactly one of 'allowed' or 'denied' must be specified.",
            );
        }
    };
    for (i, entry) in entries.iter().enumerate() {
        let protocol = entry["IPProtocol"].as_str().unwrap_or_default();
        let known = matches!(
            protocol,
            "tcp" | "udp" | "icmp" | "esp" | "ah" | "ipip" | "sctp" | "all"
        ) || protocol.parse::<u8>().is_ok();
        if !known {
            return invalid(&format!("resource.{key}[{i}].IPProtocol"), protocol, "");
        }
        let ports = strings(&entry["ports"]);
        if !ports.is_empty() && !matches!(protocol, "tcp" | "udp" | "sctp") {
            return invalid(
                &format!("resource.{key}[{i}].ports"),
                &ports.join(","),
                "Ports may only be specified for TCP, UDP and SCTP.",
            );
        }
        if let Some(bad) = ports.iter().find(|p| !port_ok(p)) {
            return invalid(&format!("resource.{key}[{i}].ports"), bad, "");
        }
    }
    if direction == "EGRESS" && !has("destinationRanges") {
        body["destinationRanges"] = json!(["0.0.0.0/0"]);
    }
    body["kind"] = "compute#firewall".into();
    body["id"] = s.new_id().into();
    body["creationTimestamp"] = "2026-11-26T12:00:00.000-08:00".into();
    body["network"] = s.link(&format!("global/networks/{network_name}")).into();
    body["direction"] = direction.into();
    body["priority"] = priority.into();
    body["disabled"] = body["disabled"].as_bool().unwrap_or(false).into();
    body["selfLink"] = s.link(&format!("global/firewalls/{name}")).into();
    s.firewalls.push(body);
    let target = format!("global/firewalls/{name}");
    axum::Json(new_op(s, None, "insert", &target, None)).into_response()
}

pub fn get_firewall(s: &State, name: &str) -> Response {
    match s.firewalls.iter().find(|f| f["name"] == name) {
        Some(f) => axum::Json(f.clone()).into_response(),
        None => not_found(&format!("global/firewalls/{name}")),
    }
}

pub fn delete_firewall(s: &mut State, name: &str) -> Response {
    let Some(at) = s.firewalls.iter().position(|f| f["name"] == name) else {
        return not_found(&format!("global/firewalls/{name}"));
    };
    s.firewalls.remove(at);
    let target = format!("global/firewalls/{name}");
    axum::Json(new_op(s, None, "delete", &target, None)).into_response()
}

fn label_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-'
}

/// Labels, network tags and metadata of an `instances.insert` body, as
/// the instance will hold them, or the API's refusal.
pub fn instance_parts(body: &Value) -> Result<(Value, Value, Value), Box<Response>> {
    let labels = body["labels"].as_object().cloned().unwrap_or_default();
    if labels.len() > 64 {
        return Err(Box::new(invalid(
            "resource.labels",
            &labels.len().to_string(),
            "Resources can have at most 64 labels.",
        )));
    }
    for (k, v) in &labels {
        let v = v.as_str().unwrap_or_default();
        let key_ok = (1..=63).contains(&k.chars().count())
            && k.starts_with(|c: char| c.is_ascii_lowercase())
            && k.chars().all(label_char);
        let value_ok = v.chars().count() <= 63 && v.chars().all(label_char);
        if !key_ok || !value_ok {
            return Err(Box::new(invalid(
                &format!("resource.labels.{k}"),
                v,
                "Label keys and values can contain only lowercase letters, numeric characters, underscores and dashes; keys start with a letter; at most 63 characters.",
            )));
        }
    }
    let tags = strings(&body["tags"]["items"]);
    if tags.len() > 64 {
        return Err(Box::new(invalid(
            "resource.tags.items",
            "",
            "At most 64 tags.",
        )));
    }
    if let Some(bad) = tags.iter().find(|t| !rfc1035(t)) {
        return Err(Box::new(invalid(
            "resource.tags.items",
            bad,
            "Must be a match of regex '[a-z]([-a-z0-9]*[a-z0-9])?'",
        )));
    }
    let items = body["metadata"]["items"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut total = 0;
    for item in &items {
        let key = item["key"].as_str().unwrap_or_default();
        let value = item["value"].as_str().unwrap_or_default();
        let key_ok = (1..=128).contains(&key.len())
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !key_ok {
            return Err(Box::new(invalid("resource.metadata.items.key", key, "")));
        }
        if value.len() > 256 * 1024 {
            return Err(Box::new(invalid(
                &format!("resource.metadata.items[{key}].value"),
                "",
                "Metadata values are limited to 256 KB.",
            )));
        }
        total += value.len();
    }
    if total > 512 * 1024 {
        return Err(Box::new(invalid(
            "resource.metadata",
            "",
            "Metadata is limited to 512 KB in total.",
        )));
    }
    for config in body["networkInterfaces"][0]["accessConfigs"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let kind = config["type"].as_str().unwrap_or("ONE_TO_ONE_NAT");
        if kind != "ONE_TO_ONE_NAT" {
            return Err(Box::new(invalid(
                "resource.networkInterfaces[0].accessConfigs[0].type",
                kind,
                "",
            )));
        }
    }
    let tags = if tags.is_empty() {
        Value::Null
    } else {
        json!({"items": tags, "fingerprint": "FYLDgkTKlA4="})
    };
    Ok((Value::Object(labels), tags, Value::Array(items)))
}

/// The subnetwork a NIC names (link or `regions/R/subnetworks/N`), with
/// the network it belongs to.
pub fn subnetwork_of(s: &State, nic: &Value) -> Result<Option<(String, String)>, Box<Response>> {
    let Some(link) = nic["subnetwork"].as_str() else {
        return Ok(None);
    };
    // `regions/R/subnetworks/N`, whatever precedes it.
    fn key(l: &str) -> Vec<&str> {
        l.rsplit('/').take(4).collect()
    }
    let found = s
        .subnetworks
        .iter()
        .find(|(_, sub)| sub["selfLink"].as_str().map(key) == Some(key(link)));
    match found {
        Some((_, sub)) => Ok(Some((
            sub["selfLink"].as_str().unwrap_or_default().to_string(),
            sub["network"].as_str().unwrap_or_default().to_string(),
        ))),
        None => Err(Box::new(not_found(link))),
    }
}
