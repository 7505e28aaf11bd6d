//! `instances.insert`: machine type, network and disks checked as Compute
//! Engine does; boot disks from this project's images or a public image
//! family, existing disks attached (`disks[].source`), an external address
//! when `accessConfigs` asks for one.

use super::State;
use super::api::{error, new_op, not_found};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

pub fn insert(s: &mut State, zone: &str, body: Value) -> Response {
    if !s.zones.iter().any(|z| z["name"] == zone) {
        return not_found(&format!("zones/{zone}"));
    }
    let Some(name) = body["name"].as_str().map(str::to_string) else {
        return error(
            400,
            "required",
            "Required field 'resource.name' not specified",
        );
    };
    if s.instances
        .iter()
        .any(|(z, i)| z == zone && i["name"] == name.as_str())
    {
        return error(
            409,
            "alreadyExists",
            &format!(
                "The resource 'projects/{}/zones/{zone}/instances/{name}' already exists",
                super::PROJECT
            ),
        );
    }
    let machine = body["machineType"].as_str().unwrap_or_default();
    let machine_name = machine.rsplit('/').next().unwrap_or_default().to_string();
    if !machine.starts_with(&format!("zones/{zone}/machineTypes/"))
        && !machine.contains(&format!("/zones/{zone}/machineTypes/"))
    {
        return error(
            400,
            "invalid",
            &format!("Invalid value for field 'resource.machineType': '{machine}'."),
        );
    }
    if !s
        .machine_types
        .iter()
        .any(|(z, m)| z == zone && m["name"] == machine_name.as_str())
    {
        return not_found(&format!("zones/{zone}/machineTypes/{machine_name}"));
    }
    let (labels, tags, metadata) = match super::config::instance_parts(&body) {
        Ok(parts) => parts,
        Err(refused) => return *refused,
    };
    let subnetwork = match super::config::subnetwork_of(s, &body["networkInterfaces"][0]) {
        Ok(found) => found,
        Err(refused) => return *refused,
    };
    let network = body["networkInterfaces"][0]["network"]
        .as_str()
        .or(subnetwork.as_ref().map(|(_, n)| n.as_str()))
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
    if let Some((_, of)) = &subnetwork
        && of.rsplit('/').next() != Some(network_name.as_str())
    {
        return error(
            400,
            "invalid",
            &format!("Subnetwork does not belong to network '{network_name}'."),
        );
    }
    let mut disks = Vec::new();
    let mut attached = Vec::new();
    for (index, disk) in body["disks"].as_array().into_iter().flatten().enumerate() {
        if disk["source"].is_string() {
            attached.push((index, disk.clone()));
            disks.push(Value::Null);
            continue;
        }
        let source = disk["initializeParams"]["sourceImage"]
            .as_str()
            .unwrap_or_default();
        let disk_name = if index == 0 {
            name.clone()
        } else {
            format!("{name}-{index}")
        };
        if super::source::public_image(source) {
            // Another project's image: a boot disk with nothing to read.
            let link = s.link(&format!("zones/{zone}/disks/{disk_name}"));
            let id = s.new_id();
            s.disks.push((
                zone.to_string(),
                json!({
                    "kind": "compute#disk", "id": id, "name": disk_name, "sizeGb": "10",
                    "zone": s.link(&format!("zones/{zone}")), "status": "READY",
                    "selfLink": link, "sourceImage": source,
                    "type": s.link(&format!("zones/{zone}/diskTypes/pd-standard")),
                }),
            ));
            disks.push(json!({
                "kind": "compute#attachedDisk", "type": "PERSISTENT", "mode": "READ_WRITE",
                "boot": disk["boot"].as_bool().unwrap_or(false), "index": index,
                "deviceName": disk["deviceName"].as_str().unwrap_or(&format!("persistent-disk-{index}")),
                "autoDelete": disk["autoDelete"].as_bool().unwrap_or(false),
                "source": link,
            }));
            continue;
        }
        if source.starts_with("projects/")
            && !source.starts_with(&format!("projects/{}/", super::PROJECT))
        {
            return not_found(
                source
                    .trim_start_matches("projects/")
                    .split_once('/')
                    .map(|(_, r)| r)
                    .unwrap_or(source),
            );
        }
        let image_name = source.rsplit('/').next().unwrap_or_default();
        let Some(image) = s.images.iter().find(|i| i["name"] == image_name).cloned() else {
            return not_found(&format!("global/images/{image_name}"));
        };
        if image["status"] != "READY" {
            return error(
                400,
                "resourceNotReady",
                &format!(
                    "The resource 'projects/{}/global/images/{image_name}' is not ready",
                    super::PROJECT
                ),
            );
        }
        let size = disk["initializeParams"]["diskSizeGb"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| image["diskSizeGb"].as_str().unwrap_or("10").to_string());
        let image_gb: u64 = image["diskSizeGb"]
            .as_str()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let disk_type = disk["initializeParams"]["diskType"]
            .as_str()
            .unwrap_or("pd-standard");
        if let Some(refused) = below_type_minimum(
            &format!("resource.disks[{index}].initializeParams.diskSizeGb"),
            disk_type,
            &size,
        ) {
            return refused;
        }
        if size.parse::<u64>().unwrap_or(0) < image_gb {
            return error(
                400,
                "invalid",
                &format!(
                    "Requested disk size cannot be smaller than the image size ({image_gb} GB)"
                ),
            );
        }
        let link = s.link(&format!("zones/{zone}/disks/{disk_name}"));
        let id = s.new_id();
        s.disks.push((
            zone.to_string(),
            json!({
                "kind": "compute#disk", "id": id, "name": disk_name, "sizeGb": size,
                "zone": s.link(&format!("zones/{zone}")), "status": "READY", "selfLink": link,
                "sourceImage": image["selfLink"], "sourceImageId": image["id"],
                "type": s.link(&format!("zones/{zone}/diskTypes/pd-standard")),
                "creationTimestamp": "2026-11-26T12:00:00.000-08:00",
            }),
        ));
        disks.push(json!({
            "kind": "compute#attachedDisk", "type": "PERSISTENT", "mode": "READ_WRITE",
            "boot": disk["boot"].as_bool().unwrap_or(false), "index": index,
            "deviceName": disk["deviceName"].as_str().unwrap_or(&format!("persistent-disk-{index}")),
            "autoDelete": disk["autoDelete"].as_bool().unwrap_or(false),
            "source": link,
        }));
    }
    if disks.is_empty()
        || (disks[0]["boot"] != true
            && attached
                .first()
                .is_none_or(|(i, d)| *i != 0 || d["boot"] != true))
    {
        return error(
            400,
            "invalid",
            "Invalid value for field 'resource.disks': a boot disk is required.",
        );
    }
    for (index, disk) in attached {
        match super::source::attach(s, zone, &name, index, &disk) {
            Ok(link) => disks[index] = link,
            Err(refused) => return *refused,
        }
    }
    let mut nic = json!({"name": "nic0", "network": s.link(&format!("global/networks/{network_name}")), "networkIP": "10.240.0.2"});
    if let Some((link, _)) = &subnetwork {
        nic["subnetwork"] = link.clone().into();
    }
    if body["networkInterfaces"][0]["accessConfigs"].is_array() {
        // The worker's "external" address: the sshd harness on loopback.
        nic["accessConfigs"] = json!([{"kind": "compute#accessConfig", "name": "External NAT",
            "natIP": "127.0.0.1", "type": "ONE_TO_ONE_NAT"}]);
    }
    let id = s.new_id();
    let vm = json!({
        "kind": "compute#instance", "id": id, "name": name,
        "creationTimestamp": "2026-11-26T12:00:00.000-08:00",
        "machineType": s.link(&format!("zones/{zone}/machineTypes/{machine_name}")),
        "status": "PROVISIONING", "_polls": 0,
        "zone": s.link(&format!("zones/{zone}")),
        "canIpForward": false,
        "disks": disks,
        "networkInterfaces": [nic],
        "labels": labels,
        "tags": tags,
        "metadata": {"kind": "compute#metadata", "fingerprint": "42WmSpB8rSM=",
            "items": metadata},
        "scheduling": {"automaticRestart": true, "onHostMaintenance": "MIGRATE"},
        "selfLink": s.link(&format!("zones/{zone}/instances/{name}")),
    });
    s.instances.push((zone.to_string(), vm));
    let target = format!("zones/{zone}/instances/{name}");
    axum::Json(new_op(s, Some(zone), "insert", &target, None)).into_response()
}

/// `instances.stop`: a clean shutdown (the guest's last writes land on its
/// disks), then TERMINATED with its disks still attached; the operation
/// is DONE once the instance is stopped. Stopping a stopped instance is no
/// error.
pub fn stop(s: &mut State, zone: &str, name: &str) -> Response {
    let path = format!("zones/{zone}/instances/{name}");
    let Some(at) = s
        .instances
        .iter()
        .position(|(z, i)| z == zone && i["name"] == name)
    else {
        return not_found(&path);
    };
    if s.instances[at].1["status"] != "TERMINATED" {
        let disks: Vec<String> = s.instances[at].1["disks"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|d| d["source"].as_str())
            .map(|l| format!("{zone}/{}", l.rsplit('/').next().unwrap_or_default()))
            .collect();
        for key in disks {
            let writes = s
                .guest_writes
                .get_mut(&key)
                .map(|w| std::mem::take(&mut w.at_stop));
            if let (Some(writes), Some(file)) = (writes, s.disk_files.get(&key)) {
                super::source::apply_writes(file, &writes);
            }
        }
        let vm = &mut s.instances[at].1;
        vm["status"] = "TERMINATED".into();
        vm.as_object_mut().map(|o| o.remove("_polls"));
        s.stops.push(name.to_string());
    }
    axum::Json(new_op(s, Some(zone), "stop", &path, None)).into_response()
}

/// `instances.start`: a stopped instance boots again (STAGING, then
/// RUNNING); a running one is left as it is.
pub fn start(s: &mut State, zone: &str, name: &str) -> Response {
    let path = format!("zones/{zone}/instances/{name}");
    let Some((_, vm)) = s
        .instances
        .iter_mut()
        .find(|(z, i)| z == zone && i["name"] == name)
    else {
        return not_found(&path);
    };
    if vm["status"] == "TERMINATED" {
        vm["status"] = "STAGING".into();
        vm["_polls"] = 0.into();
    }
    axum::Json(new_op(s, Some(zone), "start", &path, None)).into_response()
}

/// The smallest persistent disk of each type, in GB: Compute Engine refuses
/// anything below with a 400 on the size field. `pd-standard` is the type a
/// disk gets when the request names none.
pub fn type_minimum_gb(disk_type: &str) -> u64 {
    match disk_type.rsplit('/').next().unwrap_or(disk_type) {
        "pd-standard" | "pd-balanced" | "pd-ssd" => 10,
        _ => 1,
    }
}

/// The API's answer to a disk smaller than its type allows, or `None`.
pub fn below_type_minimum(field: &str, disk_type: &str, size: &str) -> Option<Response> {
    let minimum = type_minimum_gb(disk_type);
    let gb: u64 = size.parse().unwrap_or(0);
    (gb < minimum).then(|| {
        error(
            400,
            "invalid",
            &format!(
                "Invalid value for field '{field}': '{size}'. Disk size cannot be smaller than {minimum} GB."
            ),
        )
    })
}
