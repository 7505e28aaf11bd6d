//! Subnetworks and firewalls of the Compute Engine fake. The recordings in
//! tests/fixtures/gce hold networks (with their subnetwork links) but no
//! subnetwork or firewall answers: these follow the REST reference
//! (`compute#subnetwork` with `ipCidrRange`/`region`/`network`,
//! `compute#firewall` with `direction`, `sourceRanges`, `allowed[]`), the
//! subnetworks named after the recorded networks' links.

use super::State;
use super::api::{error, list_body, page};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use std::collections::HashMap;

/// Subnetworks from the recorded networks' `subnetworks` links, each with
/// a /20 of 10.128.0.0/9 as auto-mode networks get.
pub fn seed_subnetworks(s: &mut State) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let networks = s.networks.clone();
    for network in &networks {
        for link in network["subnetworks"].as_array().into_iter().flatten() {
            let link = link.as_str().unwrap_or_default();
            let parts: Vec<&str> = link.rsplit('/').collect();
            let (name, region) = (parts[0], parts[2]);
            let n = out.len() as u32;
            let id = s.new_id();
            out.push((
                region.to_string(),
                json!({
                    "kind": "compute#subnetwork", "id": id,
                    "creationTimestamp": "2016-03-25T05:34:15.077-07:00",
                    "name": name,
                    "network": network["selfLink"],
                    "ipCidrRange": format!("10.{}.{}.0/20", 128 + n / 16, (n % 16) * 16),
                    "gatewayAddress": format!("10.{}.{}.1", 128 + n / 16, (n % 16) * 16),
                    "region": s.link(&format!("regions/{region}")),
                    "selfLink": s.link(&format!("regions/{region}/subnetworks/{name}")),
                }),
            ));
        }
    }
    out
}

pub fn seed_firewalls(s: &mut State) -> Vec<Value> {
    let default = s.link("global/networks/default");
    let custom = s.link("global/networks/custom");
    let mut rules = vec![
        json!({"name": "default-allow-ssh", "network": default, "direction": "INGRESS",
            "priority": 65534, "sourceRanges": ["0.0.0.0/0"],
            "allowed": [{"IPProtocol": "tcp", "ports": ["22"]}]}),
        json!({"name": "default-allow-internal", "network": default, "direction": "INGRESS",
            "priority": 65534, "sourceRanges": ["10.128.0.0/9"],
            "allowed": [{"IPProtocol": "tcp", "ports": ["0-65535"]},
                        {"IPProtocol": "udp", "ports": ["0-65535"]}, {"IPProtocol": "icmp"}]}),
        json!({"name": "web-from-lb", "network": custom, "direction": "INGRESS",
            "priority": 1000, "sourceRanges": ["130.211.0.0/22", "35.191.0.0/16"],
            "targetTags": ["web"], "allowed": [{"IPProtocol": "tcp", "ports": ["80", "443"]}]}),
        json!({"name": "no-smtp-out", "network": custom, "direction": "EGRESS",
            "priority": 900, "destinationRanges": ["0.0.0.0/0"],
            "denied": [{"IPProtocol": "tcp", "ports": ["25"]}]}),
    ];
    for rule in &mut rules {
        let name = rule["name"].as_str().unwrap().to_string();
        rule["kind"] = "compute#firewall".into();
        rule["id"] = s.new_id().into();
        rule["creationTimestamp"] = "2016-03-25T05:34:15.077-07:00".into();
        rule["disabled"] = false.into();
        rule["selfLink"] = s.link(&format!("global/firewalls/{name}")).into();
    }
    rules
}

/// `aggregated/subnetworks`: items keyed `regions/REGION`.
pub fn aggregated_subnetworks(s: &State, query: &HashMap<String, String>, path: &str) -> Response {
    if query
        .get("pageToken")
        .is_some_and(|t| !t.starts_with("tok-"))
    {
        return error(400, "invalid", "Invalid value for field 'pageToken'");
    }
    let (items, next) = page(&s.subnetworks, query, s.page_size);
    let mut regions: Vec<&str> = s.subnetworks.iter().map(|(r, _)| r.as_str()).collect();
    regions.sort_unstable();
    regions.dedup();
    let mut scopes = Map::new();
    for region in regions {
        let on_page: Vec<Value> = items
            .iter()
            .filter(|(r, _)| r == region)
            .map(|(_, v)| v.clone())
            .collect();
        let scope = if on_page.is_empty() {
            json!({"warning": {"code": "NO_RESULTS_ON_PAGE",
                "message": format!("There are no results for scope 'regions/{region}' on this page."),
                "data": [{"key": "scope", "value": format!("regions/{region}")}]}})
        } else {
            json!({"subnetworks": on_page})
        };
        scopes.insert(format!("regions/{region}"), scope);
    }
    let mut body = json!({"kind": "compute#subnetworkAggregatedList",
        "id": format!("projects/{}/{path}", super::PROJECT), "items": scopes,
        "selfLink": s.link(path)});
    if let Some(next) = next {
        body["nextPageToken"] = next.into();
    }
    axum::Json(body).into_response()
}

pub fn firewalls(s: &State, query: &HashMap<String, String>, path: &str) -> Response {
    let (items, next) = page(&s.firewalls, query, s.page_size);
    axum::Json(list_body("compute#firewallList", items, next, s.link(path))).into_response()
}
