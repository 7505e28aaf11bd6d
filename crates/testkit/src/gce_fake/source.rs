//! The source side of the Compute Engine fake: disks backed by files,
//! `disks.createSnapshot` and `disks.insert` from a snapshot copying the
//! bytes, attaching existing disks to new instances, and the guest side of
//! a worker VM. Where Google's guest environment would create
//! `/dev/disk/by-id/google-<deviceName>` for an attached disk (a udev
//! rule), the fake makes that link in its `by-id` folder, pointing at the
//! disk's file; the provider is told that folder instead of
//! `/dev/disk/by-id` (the profile's `worker_device_dir`), and the sshd
//! harness, which plays the worker, reads the disk through it. Host keys a
//! guest would publish as guest attributes are the harness's.

use super::api::{error, list_body, new_op, not_found, page};
use super::{State, fixture, relink};
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};

const GIB: u64 = 1 << 30;

/// One guest write: a 512 KiB block index and its bytes (None: zeros).
pub type Write = (u64, Option<Vec<u8>>);

/// Writes the running guest makes to one of its disks, as a test scripts
/// them: the disk keeps changing while the instance runs (a snapshot is
/// allowed then, and holds the disk as it is at that moment).
#[derive(Debug, Clone, Default)]
pub struct GuestWrites {
    /// Applied before each createSnapshot of the disk, in turn.
    pub before_snapshot: VecDeque<Vec<Write>>,
    /// Applied as the instance shuts down (instances.stop): its last writes.
    pub at_stop: Vec<Write>,
}

/// Applies `writes` to a raw disk file.
pub fn apply_writes(file: &Path, writes: &[Write]) {
    use std::os::unix::fs::FileExt as _;
    const BLOCK: u64 = 512 * 1024;
    let f = std::fs::OpenOptions::new().write(true).open(file).unwrap();
    for (index, data) in writes {
        let zeros = vec![0u8; BLOCK as usize];
        f.write_all_at(data.as_deref().unwrap_or(&zeros), index * BLOCK)
            .unwrap();
    }
}

/// A copy that keeps holes and costs what the data holds (not the file's
/// size, as `cp --sparse=always` reading through a 20 GiB file did).
fn copy_sparse(from: &Path, to: &Path) -> Result<(), String> {
    altishift::cloud::local_disk::sparse_copy(from, to)
        .map(|_| ())
        .map_err(|e| format!("copying {}: {e}", from.display()))
}

fn gb(value: &Value) -> u64 {
    match value {
        Value::String(s) => s.parse().unwrap_or(0),
        v => v.as_u64().unwrap_or(0),
    }
}

fn find_disk<'a>(s: &'a State, zone: &str, name: &str) -> Option<&'a Value> {
    s.disks
        .iter()
        .find(|(z, d)| z == zone && d["name"] == name)
        .map(|(_, d)| d)
}

fn in_use(path: &str, user: &str) -> Response {
    error(
        400,
        "resourceInUseByAnotherResource",
        &format!(
            "The disk resource 'projects/{}/{path}' is already being used by '{user}'",
            super::PROJECT
        ),
    )
}

/// Answers the source-side resources; None for paths it does not know.
pub fn route(
    s: &mut State,
    method: &Method,
    path: &str,
    query: &HashMap<String, String>,
    body: &Value,
) -> Option<Response> {
    let parts: Vec<&str> = path.split('/').collect();
    Some(match (method.as_str(), parts.as_slice()) {
        ("POST", ["zones", zone, "disks", disk, "createSnapshot"]) => {
            create_snapshot(s, zone, disk, body)
        }
        ("GET", ["global", "snapshots"]) => {
            let (items, next) = page(&s.snapshots, query, s.page_size);
            axum::Json(list_body("compute#snapshotList", items, next, s.link(path))).into_response()
        }
        ("GET", ["global", "snapshots", name]) => {
            match s.snapshots.iter().find(|x| x["name"] == *name) {
                Some(snap) => axum::Json(snap.clone()).into_response(),
                None => not_found(path),
            }
        }
        ("DELETE", ["global", "snapshots", name]) => {
            let Some(at) = s.snapshots.iter().position(|x| x["name"] == *name) else {
                return Some(not_found(path));
            };
            s.snapshots.remove(at);
            if let Some(file) = s.snapshot_files.remove(*name) {
                let _ = std::fs::remove_file(file);
            }
            axum::Json(new_op(s, None, "delete", path, None)).into_response()
        }
        ("POST", ["zones", zone, "disks"]) => insert_disk(s, zone, body),
        ("GET", ["zones", zone, "disks", name]) => match find_disk(s, zone, name) {
            Some(disk) => axum::Json(disk.clone()).into_response(),
            None => not_found(path),
        },
        ("DELETE", ["zones", zone, "disks", name]) => {
            let Some(at) = s
                .disks
                .iter()
                .position(|(z, d)| z == zone && d["name"] == *name)
            else {
                return Some(not_found(path));
            };
            if let Some(user) = s.disks[at].1["users"][0].as_str() {
                return Some(in_use(path, user));
            }
            s.disks.remove(at);
            if let Some(file) = s.disk_files.remove(&format!("{zone}/{name}")) {
                let _ = std::fs::remove_file(file);
            }
            axum::Json(new_op(s, Some(zone), "delete", path, None)).into_response()
        }
        ("GET", ["zones", zone, "instances", name, "getGuestAttributes"]) => {
            guest_attributes(s, zone, name, query, path)
        }
        _ => return None,
    })
}

fn create_snapshot(s: &mut State, zone: &str, disk: &str, body: &Value) -> Response {
    let Some(source) = find_disk(s, zone, disk).cloned() else {
        return not_found(&format!("zones/{zone}/disks/{disk}"));
    };
    let Some(name) = body["name"].as_str().map(str::to_string) else {
        return error(
            400,
            "required",
            "Required field 'resource.name' not specified",
        );
    };
    if s.snapshots.iter().any(|x| x["name"] == name.as_str()) {
        return error(
            409,
            "alreadyExists",
            &format!(
                "The resource 'projects/{}/global/snapshots/{name}' already exists",
                super::PROJECT
            ),
        );
    }
    if let Some(file) = s.disk_files.get(&format!("{zone}/{disk}")).cloned() {
        // The guest's writes up to this snapshot are on the disk.
        let key = format!("{zone}/{disk}");
        if let Some(writes) = s
            .guest_writes
            .get_mut(&key)
            .and_then(|w| w.before_snapshot.pop_front())
        {
            apply_writes(&file, &writes);
        }
        let copy = s.dir.join(format!("snapshot-{name}.raw"));
        if let Err(e) = copy_sparse(&file, &copy) {
            return error(500, "backendError", &e);
        }
        s.snapshot_files.insert(name.clone(), copy);
    }
    let mut snap = relink(&fixture("global_snapshots_lcsnapshot.json"), &s.base_url);
    let id = s.new_id();
    snap["id"] = id.into();
    snap["name"] = name.clone().into();
    snap["diskSizeGb"] = source["sizeGb"].clone();
    snap["sourceDisk"] = source["selfLink"].clone();
    snap["sourceDiskId"] = source["id"].clone();
    snap["selfLink"] = s.link(&format!("global/snapshots/{name}")).into();
    snap["creationTimestamp"] = "2026-11-26T12:00:00.000-08:00".into();
    snap["status"] = "READY".into();
    s.snapshots.push(snap);
    let target = format!("zones/{zone}/disks/{disk}");
    axum::Json(new_op(s, Some(zone), "createSnapshot", &target, None)).into_response()
}

fn insert_disk(s: &mut State, zone: &str, body: &Value) -> Response {
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
    if find_disk(s, zone, &name).is_some() {
        return error(
            409,
            "alreadyExists",
            &format!(
                "The resource 'projects/{}/zones/{zone}/disks/{name}' already exists",
                super::PROJECT
            ),
        );
    }
    let mut size = gb(&body["sizeGb"]);
    let mut extra = json!({});
    if let Some(source) = body["sourceSnapshot"].as_str() {
        let snap_name = source.rsplit('/').next().unwrap_or_default();
        let Some(snap) = s.snapshots.iter().find(|x| x["name"] == snap_name).cloned() else {
            return not_found(&format!("global/snapshots/{snap_name}"));
        };
        let snap_gb = gb(&snap["diskSizeGb"]);
        if size == 0 {
            size = snap_gb;
        }
        if size < snap_gb {
            return error(
                400,
                "invalid",
                &format!(
                    "Requested disk size cannot be smaller than the snapshot size ({snap_gb} GB)"
                ),
            );
        }
        if let Some(file) = s.snapshot_files.get(snap_name).cloned() {
            let copy = s.dir.join(format!("disk-{zone}-{name}.raw"));
            if let Err(e) = copy_sparse(&file, &copy).and_then(|_| {
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(&copy)
                    .and_then(|f| f.set_len(size * GIB))
                    .map_err(|e| e.to_string())
            }) {
                return error(500, "backendError", &e);
            }
            s.disk_files.insert(format!("{zone}/{name}"), copy);
        }
        extra = json!({"sourceSnapshot": snap["selfLink"], "sourceSnapshotId": snap["id"]});
    }
    if size == 0 {
        return error(
            400,
            "invalid",
            "Invalid value for field 'resource.sizeGb': '0'.",
        );
    }
    // The type's minimum. A disk restored from a snapshot is exempt here
    // only because the seeded source disks are 1 GiB (small test files);
    // real snapshots come from disks that already met it.
    let disk_type = body["type"].as_str().unwrap_or("pd-standard");
    if extra["sourceSnapshot"].is_null()
        && let Some(refused) =
            super::instances::below_type_minimum("resource.sizeGb", disk_type, &size.to_string())
    {
        return refused;
    }
    let id = s.new_id();
    let mut disk = json!({
        "kind": "compute#disk", "id": id, "name": name, "sizeGb": size.to_string(),
        "zone": s.link(&format!("zones/{zone}")), "status": "READY",
        "selfLink": s.link(&format!("zones/{zone}/disks/{name}")),
        "type": s.link(&format!("zones/{zone}/diskTypes/pd-standard")),
        "creationTimestamp": "2026-11-26T12:00:00.000-08:00",
        "labels": body["labels"].clone(),
    });
    for (k, v) in extra.as_object().into_iter().flatten() {
        disk[k] = v.clone();
    }
    s.disks.push((zone.to_string(), disk));
    let target = format!("zones/{zone}/disks/{name}");
    axum::Json(new_op(s, Some(zone), "insert", &target, None)).into_response()
}

fn guest_attributes(
    s: &State,
    zone: &str,
    name: &str,
    query: &HashMap<String, String>,
    path: &str,
) -> Response {
    let Some((_, vm)) = s
        .instances
        .iter()
        .find(|(z, i)| z == zone && i["name"] == name)
    else {
        return not_found(&format!("zones/{zone}/instances/{name}"));
    };
    let enabled = vm["metadata"]["items"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|i| i["key"] == "enable-guest-attributes" && i["value"] == "TRUE");
    let query_path = query.get("queryPath").cloned().unwrap_or_default();
    if !enabled || s.host_keys.is_empty() || query_path != "hostkeys/" {
        return not_found(&format!("{path}/{query_path}"));
    }
    let items: Vec<Value> = s
        .host_keys
        .iter()
        .map(|(kind, key)| json!({"namespace": "hostkeys", "key": kind, "value": key}))
        .collect();
    axum::Json(json!({
        "kind": "compute#guestAttributes",
        "selfLink": s.link(&format!("zones/{zone}/instances/{name}/guestAttributes/{query_path}")),
        "queryPath": query_path,
        "queryValue": {"items": items},
    }))
    .into_response()
}

/// Attaches an existing disk to a new instance (`disks[].source`): the
/// attachment as Compute Engine lists it, the disk's `users`, and the
/// by-id link the guest would see. Err is the refusal.
pub fn attach(
    s: &mut State,
    zone: &str,
    instance: &str,
    index: usize,
    disk: &Value,
) -> Result<Value, Box<Response>> {
    let source = disk["source"].as_str().unwrap_or_default();
    let name = source.rsplit('/').next().unwrap_or_default().to_string();
    let mode = disk["mode"].as_str().unwrap_or("READ_WRITE").to_string();
    let link = s.link(&format!("zones/{zone}/disks/{name}"));
    let user = s.link(&format!("zones/{zone}/instances/{instance}"));
    let Some((_, found)) = s
        .disks
        .iter_mut()
        .find(|(z, d)| z == zone && d["name"] == name.as_str())
    else {
        return Err(Box::new(not_found(&format!("zones/{zone}/disks/{name}"))));
    };
    let users = found["users"].as_array().cloned().unwrap_or_default();
    if mode == "READ_WRITE" && !users.is_empty() {
        return Err(Box::new(in_use(
            &format!("zones/{zone}/disks/{name}"),
            users[0].as_str().unwrap_or(""),
        )));
    }
    let mut users = users;
    users.push(user.into());
    found["users"] = users.into();
    let device = disk["deviceName"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| format!("persistent-disk-{index}"));
    if let Some(file) = s.disk_files.get(&format!("{zone}/{name}")) {
        let by_id = s.dir.join("by-id");
        let _ = std::fs::create_dir_all(&by_id);
        let _ = std::os::unix::fs::symlink(file, by_id.join(format!("google-{device}")));
    }
    Ok(json!({
        "kind": "compute#attachedDisk", "type": "PERSISTENT", "mode": mode,
        "boot": disk["boot"].as_bool().unwrap_or(false), "index": index,
        "deviceName": device, "autoDelete": disk["autoDelete"].as_bool().unwrap_or(false),
        "source": link,
    }))
}

/// An instance went away: its auto-delete disks go too, the others are
/// detached (and their by-id links removed).
pub fn detach_all(s: &mut State, zone: &str, vm: &Value) {
    let user = vm["selfLink"].as_str().unwrap_or_default().to_string();
    for attached in vm["disks"].as_array().into_iter().flatten() {
        let name = attached["source"]
            .as_str()
            .unwrap_or_default()
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_string();
        if let Some(device) = attached["deviceName"].as_str() {
            let _ = std::fs::remove_file(s.dir.join("by-id").join(format!("google-{device}")));
        }
        if attached["autoDelete"] == true {
            s.disks
                .retain(|(z, d)| !(z == zone && d["name"] == name.as_str()));
            if let Some(file) = s.disk_files.remove(&format!("{zone}/{name}")) {
                let _ = std::fs::remove_file(file);
            }
        } else if let Some((_, disk)) = s
            .disks
            .iter_mut()
            .find(|(z, d)| z == zone && d["name"] == name.as_str())
        {
            let users: Vec<Value> = disk["users"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|u| u.as_str() != Some(user.as_str()))
                .cloned()
                .collect();
            if users.is_empty() {
                disk.as_object_mut().map(|o| o.remove("users"));
            } else {
                disk["users"] = users.into();
            }
        }
    }
}

/// Public images a worker can boot from (other projects' images are not
/// in this project's list); anything else is Google's 404.
pub fn public_image(source: &str) -> bool {
    const KNOWN: [&str; 2] = [
        "projects/debian-cloud/global/images/family/debian-12",
        "projects/ubuntu-os-cloud/global/images/family/ubuntu-2404-lts-amd64",
    ];
    KNOWN.iter().any(|k| source.ends_with(k))
}

/// The folder where attached disks appear as `google-<deviceName>`.
pub fn by_id_dir(dir: &Path) -> PathBuf {
    dir.join("by-id")
}
