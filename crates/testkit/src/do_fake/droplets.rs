//! Droplets (list, one, create, delete, actions), their volumes and the
//! `/v2/actions/{id}` polling that moves actions to `completed`.

use super::{FakeState, Req, Routed, next_id, not_found, numeric, page, unprocessable};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::{Value, json};

/// The image a seeded droplet runs (the reference's image object).
fn ubuntu() -> Value {
    json!({
        "id": 119192817, "name": "24.04 (LTS) x64", "distribution": "Ubuntu",
        "slug": "ubuntu-24-04-x64", "public": true, "regions": ["fra1", "nyc1"],
        "created_at": "2026-04-25T10:00:00Z", "min_disk_size": 7
    })
}

/// A running droplet on the first size, with a `gb` disk; returns its id.
pub(super) fn add(s: &mut FakeState, name: &str, gb: u64, address: &str) -> u64 {
    let id = next_id(s);
    let droplet = Droplet {
        id,
        name,
        size: "s-1vcpu-1gb",
        vcpus: 1,
        memory: 1024,
        disk: gb,
        region: "fra1",
        image: ubuntu(),
        address,
        status: "active",
        tags: vec![],
    };
    s.droplets.push(droplet.json());
    id
}

/// A new volume attached to `droplet`; returns its id.
pub(super) fn attach_volume(s: &mut FakeState, droplet: u64, name: &str, gb: u64) -> String {
    let id = format!("506f78a4-e098-11e5-ad9f-{:012x}", next_id(s));
    s.volumes.push(json!({
        "id": id, "region": {"slug": "fra1", "name": "Frankfurt 1"}, "droplet_ids": [droplet],
        "name": name, "description": "", "size_gigabytes": gb,
        "created_at": "2026-11-20T09:00:00Z", "filesystem_type": "ext4",
        "filesystem_label": "", "tags": []
    }));
    if let Some(d) = s.droplets.iter_mut().find(|d| d["id"] == droplet) {
        d["volume_ids"].as_array_mut().unwrap().push(json!(id));
    }
    id
}

struct Droplet<'a> {
    id: u64,
    name: &'a str,
    size: &'a str,
    vcpus: u64,
    memory: u64,
    disk: u64,
    region: &'a str,
    image: Value,
    address: &'a str,
    status: &'a str,
    tags: Vec<Value>,
}

impl Droplet<'_> {
    fn json(self) -> Value {
        json!({
            "id": self.id, "name": self.name, "memory": self.memory, "vcpus": self.vcpus,
            "disk": self.disk, "locked": false, "status": self.status,
            "created_at": "2026-11-26T12:00:00Z",
            "features": ["virtio"], "backup_ids": [], "snapshot_ids": [],
            "image": self.image, "size_slug": self.size,
            "networks": {
                "v4": [{"ip_address": self.address, "netmask": "255.255.240.0",
                         "gateway": "10.0.0.1", "type": "public"}],
                "v6": []
            },
            "region": {"name": self.region, "slug": self.region, "sizes": [],
                       "features": ["virtio"], "available": true},
            "tags": self.tags,
            "volume_ids": []
        })
    }
}

pub(super) fn route(s: &mut FakeState, req: &Req) -> Option<Routed> {
    match (req.method, req.parts.as_slice()) {
        ("GET", ["v2", "droplets"]) => {
            // `tag_name` narrows the listing to droplets carrying that tag.
            let tagged: Vec<Value> = s
                .droplets
                .iter()
                .filter(|d| {
                    req.query.get("tag_name").is_none_or(|t| {
                        let t = percent_encoding::percent_decode_str(t).decode_utf8_lossy();
                        d["tags"]
                            .as_array()
                            .is_some_and(|l| l.iter().any(|x| x == t.as_ref()))
                    })
                })
                .cloned()
                .collect();
            Some(page(s, &tagged, "droplets", req))
        }
        ("GET", ["v2", "volumes"]) => Some(page(s, &s.volumes, "volumes", req)),
        ("GET", ["v2", "droplets", id]) => {
            // Time passes for a droplet being created whether or not anyone
            // polls its action: a client that lost the action still sees it boot.
            let creating: Vec<u64> = s
                .actions
                .iter()
                .filter(|(_, (a, _))| a["resource_id"] == numeric(id) && a["type"] == "create")
                .map(|(aid, _)| *aid)
                .collect();
            for aid in creating {
                let _ = poll_action(s, aid);
            }
            Some(match s.droplets.iter().find(|d| d["id"] == numeric(id)) {
                Some(d) => axum::Json(json!({"droplet": d})).into_response().into(),
                None => not_found(s).into(),
            })
        }
        ("GET", ["v2", "volumes", id]) => Some(match s.volumes.iter().find(|v| v["id"] == *id) {
            Some(v) => axum::Json(json!({"volume": v})).into_response().into(),
            None => not_found(s).into(),
        }),
        ("DELETE", ["v2", "droplets", id]) => {
            let before = s.droplets.len();
            s.droplets.retain(|d| d["id"] != numeric(id));
            Some(if s.droplets.len() == before {
                not_found(s).into()
            } else {
                StatusCode::NO_CONTENT.into_response().into()
            })
        }
        ("GET", ["v2", "actions", id]) => Some(poll_action(s, numeric(id))),
        ("POST", ["v2", "droplets"]) => Some(create(s, &req.body)),
        ("POST", ["v2", "droplets", id, "actions"]) => Some(action(s, numeric(id), &req.body)),
        _ => None,
    }
}

/// An action completes after its polls run out; the droplet follows it.
fn poll_action(s: &mut FakeState, id: u64) -> Routed {
    let Some((action, polls)) = s.actions.get_mut(&id) else {
        return not_found(s).into();
    };
    if *polls > 0 {
        *polls -= 1;
    } else if action["status"] == "in-progress" {
        action["status"] = json!("completed");
        action["completed_at"] = json!("2026-11-26T12:01:00Z");
        let droplet = action["resource_id"].clone();
        let status = match action["type"].as_str() {
            Some("shutdown" | "power_off") => "off",
            _ => "active",
        };
        if let Some(d) = s.droplets.iter_mut().find(|d| d["id"] == droplet) {
            d["status"] = json!(status);
        }
    }
    let action = s.actions[&id].0.clone();
    axum::Json(json!({"action": action})).into_response().into()
}

fn action(s: &mut FakeState, id: u64, body: &Value) -> Routed {
    if !s.droplets.iter().any(|d| d["id"] == id) {
        return not_found(s).into();
    }
    let kind = body["type"].as_str().unwrap_or_default().to_string();
    if !["shutdown", "power_off", "power_on", "snapshot"].contains(&kind.as_str()) {
        return unprocessable(s, "The action type is not valid.").into();
    }
    let action_id = next_id(s);
    let action = json!({
        "id": action_id, "status": "in-progress", "type": kind,
        "started_at": "2026-11-26T12:00:00Z", "completed_at": null,
        "resource_id": id, "resource_type": "droplet", "region_slug": "fra1"
    });
    s.actions.insert(action_id, (action.clone(), 1));
    (StatusCode::CREATED, axum::Json(json!({"action": action})))
        .into_response()
        .into()
}

fn create(s: &mut FakeState, body: &Value) -> Routed {
    let (Some(name), Some(region), Some(size)) = (
        body["name"].as_str(),
        body["region"].as_str(),
        body["size"].as_str(),
    ) else {
        return unprocessable(s, "name, region and size are required").into();
    };
    let Some(size_obj) = s.sizes.iter().find(|x| x["slug"] == size).cloned() else {
        return unprocessable(s, "You specified an invalid size for Droplet creation.").into();
    };
    if !s.regions.iter().any(|r| r["slug"] == region) {
        return unprocessable(s, "You specified an invalid region for Droplet creation.").into();
    }
    let image = s.images.iter().find(|i| i["id"] == body["image"]).cloned();
    let Some(image) = image else {
        return unprocessable(s, "You specified an invalid image for Droplet creation.").into();
    };
    if image["status"] != "available" {
        return unprocessable(s, "The image is not available yet.").into();
    }
    if body["ssh_keys"].as_array().is_none_or(|k| k.is_empty()) {
        return unprocessable(s, "SSH keys are required for custom images.").into();
    }
    if let Err(why) = super::config::check_droplet(s, body) {
        return unprocessable(s, &why).into();
    }
    let id = next_id(s);
    let droplet = Droplet {
        id,
        name,
        size,
        vcpus: size_obj["vcpus"].as_u64().unwrap_or(1),
        memory: size_obj["memory"].as_u64().unwrap_or(1024),
        disk: size_obj["disk"].as_u64().unwrap_or(25),
        region,
        image,
        address: "203.0.113.10",
        status: "new",
        tags: body["tags"].as_array().cloned().unwrap_or_default(),
    }
    .json();
    let mut droplet = droplet;
    if let Some(vpc) = body["vpc_uuid"].as_str() {
        droplet["vpc_uuid"] = vpc.into();
    }
    if let Some(data) = body["user_data"].as_str() {
        s.user_data.insert(id, data.to_string());
    }
    let keys = body["ssh_keys"].as_array().cloned().unwrap_or_default();
    s.droplet_keys.insert(id, keys);
    s.droplets.push(droplet.clone());
    let action_id = next_id(s);
    let action = json!({
        "id": action_id, "status": "in-progress", "type": "create", "started_at": "2026-11-26T12:00:00Z",
        "completed_at": null, "resource_id": id, "resource_type": "droplet", "region_slug": region
    });
    s.actions.insert(action_id, (action, 2));
    (StatusCode::ACCEPTED, axum::Json(json!({
        "droplet": droplet,
        "links": {"actions": [{"id": action_id, "rel": "create", "href": format!("/v2/actions/{action_id}")}]}
    })))
        .into_response()
        .into()
}
