//! The commands that change the fake cloud: snapshots, volumes, templates,
//! uploads, extracts and VMs. Async ones answer `{jobid[, id]}` and do their
//! work into the job's result.

use super::api::{
    extract_json, job_fails, need, new_job, not_found, snapshot_json, upload_slot, vm_json,
    volume_json,
};
use super::{JobOutcome, Snapshot, State, Template, Vm, Volume};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::PathBuf;

type Answer = Result<Value, (u16, String)>;

fn copy_data(
    s: &mut State,
    from: &Option<std::path::PathBuf>,
    what: &str,
) -> Option<std::path::PathBuf> {
    let from = from.as_ref()?;
    let to = s.path_for(what);
    std::fs::copy(from, &to).expect("copy fake data");
    Some(to)
}

pub fn mutate(s: &mut State, command: &str, p: &BTreeMap<String, String>) -> Answer {
    match command {
        "createsnapshot" => {
            let volume_id = need(p, "volumeid", command)?.clone();
            let volume = s
                .volumes
                .iter()
                .find(|v| v.id == volume_id)
                .cloned()
                .ok_or_else(|| not_found("volume", &volume_id))?;
            // The guest's writes up to this snapshot are on the volume.
            let writes = s
                .guest_writes
                .get_mut(&volume_id)
                .and_then(|w| w.before_snapshot.pop_front());
            if let (Some(writes), Some(file)) = (writes, &volume.data) {
                super::guest::apply(file, &volume.format, &writes);
            }
            let id = s.new_id();
            let data = copy_data(s, &volume.data, "snapshot");
            let snapshot = Snapshot {
                id: id.clone(),
                name: p
                    .get("name")
                    .cloned()
                    .unwrap_or_else(|| format!("snap-{id}")),
                volume_id,
                size: volume.size,
                data,
            };
            if !job_fails(s, command) {
                s.snapshots.push(snapshot.clone());
            }
            let result = json!({ "snapshot": snapshot_json(s, &snapshot) });
            let job = new_job(s, command, JobOutcome::Done(result));
            Ok(json!({ "jobid": job, "id": id }))
        }
        "deletesnapshot" => {
            let id = need(p, "id", command)?.clone();
            let Some(at) = s.snapshots.iter().position(|x| x.id == id) else {
                return Err(not_found("snapshot", &id));
            };
            // Its bytes go with it (a long run would fill the disk).
            if let Some(file) = s.snapshots.remove(at).data {
                let _ = std::fs::remove_file(file);
            }
            let job = new_job(s, command, JobOutcome::Done(json!({ "success": true })));
            Ok(json!({ "jobid": job }))
        }
        "createvolume" => {
            let name = need(p, "name", command)?.clone();
            let snapshot_id = need(p, "snapshotid", command)?.clone();
            let snapshot = s
                .snapshots
                .iter()
                .find(|x| x.id == snapshot_id)
                .cloned()
                .ok_or_else(|| not_found("snapshot", &snapshot_id))?;
            let id = s.new_id();
            let data = copy_data(s, &snapshot.data, "volume");
            let format = if s.hypervisor == "KVM" {
                "QCOW2"
            } else {
                "VHD"
            }
            .to_string();
            let volume = Volume {
                id: id.clone(),
                name,
                kind: "DATADISK",
                vm: None,
                device: 0,
                size: snapshot.size,
                state: "Ready".into(),
                data,
                format,
            };
            let result = json!({ "volume": volume_json(s, &volume) });
            if !job_fails(s, command) {
                s.volumes.push(volume);
            }
            let job = new_job(s, command, JobOutcome::Done(result));
            Ok(json!({ "id": id, "jobid": job }))
        }
        "deletevolume" => {
            let id = need(p, "id", command)?.clone();
            let volume = s
                .volumes
                .iter()
                .find(|v| v.id == id)
                .cloned()
                .ok_or_else(|| not_found("volume", &id))?;
            if volume.vm.is_some() {
                return Err((
                    431,
                    "Please specify a volume that is not attached to any VM.".into(),
                ));
            }
            s.volumes.retain(|v| v.id != id);
            if let Some(file) = volume.data {
                let _ = std::fs::remove_file(file);
            }
            Ok(json!({ "success": "true" }))
        }
        "extractvolume" => {
            let id = need(p, "id", command)?.clone();
            need(p, "zoneid", command)?;
            if need(p, "mode", command)? != "HTTP_DOWNLOAD" {
                return Err((431, "only HTTP_DOWNLOAD is supported by this fake".into()));
            }
            let volume = s
                .volumes
                .iter()
                .find(|v| v.id == id)
                .cloned()
                .ok_or_else(|| not_found("volume", &id))?;
            if volume.state != "Ready" {
                return Err((
                    431,
                    "Volume should be in ready state before attempting a extract".into(),
                ));
            }
            let running = volume
                .vm
                .as_ref()
                .and_then(|vm| s.vms.iter().find(|x| &x.id == vm))
                .is_some_and(|vm| vm.state == "Running");
            if running {
                return Err((
                    431,
                    "Unable to extract the volume as it is attached to a running VM".into(),
                ));
            }
            let data = volume
                .data
                .clone()
                .ok_or_else(|| (530, "volume has no data in this fake".to_string()))?;
            let result = extract_json(s, "volume", &id, &volume.name, data);
            let job = new_job(s, command, JobOutcome::Done(result));
            Ok(json!({ "jobid": job }))
        }
        "extracttemplate" => {
            let id = need(p, "id", command)?.clone();
            let template = s
                .templates
                .iter()
                .find(|t| t.id == id)
                .cloned()
                .ok_or_else(|| not_found("template", &id))?;
            if !template.ready {
                return Err((431, "Template is not ready to be extracted".into()));
            }
            let data = template
                .data
                .clone()
                .ok_or_else(|| (530, "template has no data".to_string()))?;
            let result = extract_json(s, "template", &id, &template.name, data);
            let job = new_job(s, command, JobOutcome::Done(result));
            Ok(json!({ "jobid": job }))
        }
        "getuploadparamsfortemplate" => {
            for key in [
                "name",
                "format",
                "zoneid",
                "hypervisor",
                "ostypeid",
                "displaytext",
            ] {
                need(p, key, command)?;
            }
            let id = s.new_id();
            let format = p["format"].to_ascii_uppercase();
            s.templates.push(Template {
                id: id.clone(),
                name: p["name"].clone(),
                format: format.clone(),
                hypervisor: p["hypervisor"].clone(),
                size: 0,
                status: String::new(),
                ready: false,
                data: None,
            });
            Ok(upload_slot(
                s,
                "template",
                &id,
                &format,
                p.get("checksum").cloned(),
            ))
        }
        "getuploadparamsforvolume" => {
            for key in ["name", "format", "zoneid"] {
                need(p, key, command)?;
            }
            let id = s.new_id();
            let format = p["format"].to_ascii_uppercase();
            s.volumes.push(Volume {
                id: id.clone(),
                name: p["name"].clone(),
                kind: "DATADISK",
                vm: None,
                device: 0,
                size: 0,
                state: "NotUploaded".into(),
                data: None,
                format: format.clone(),
            });
            Ok(upload_slot(
                s,
                "volume",
                &id,
                &format,
                p.get("checksum").cloned(),
            ))
        }
        "deletetemplate" => {
            let id = need(p, "id", command)?.clone();
            if s.vms
                .iter()
                .any(|vm| vm.template_id == id && vm.state != "Destroyed")
            {
                // Real CloudStack refuses too unless forced.
                return Err((431, format!("Template {id} is in use by a VM")));
            }
            let before = s.templates.len();
            s.templates.retain(|t| t.id != id);
            if before == s.templates.len() {
                return Err(not_found("template", &id));
            }
            let job = new_job(s, command, JobOutcome::Done(json!({ "success": true })));
            Ok(json!({ "jobid": job }))
        }
        "deployvirtualmachine" => deploy(s, command, p),
        "attachvolume" => {
            let id = need(p, "id", command)?.clone();
            let vm_id = need(p, "virtualmachineid", command)?.clone();
            if !s.vms.iter().any(|v| v.id == vm_id) {
                return Err(not_found("vm", &vm_id));
            }
            let device = s
                .volumes
                .iter()
                .filter(|v| v.vm.as_ref() == Some(&vm_id))
                .map(|v| v.device)
                .max()
                .unwrap_or(0)
                + 1;
            let fails = job_fails(s, command);
            let volume = s
                .volumes
                .iter_mut()
                .find(|v| v.id == id)
                .ok_or_else(|| not_found("volume", &id))?;
            if volume.vm.is_some() {
                return Err((431, format!("Volume {id} is already attached")));
            }
            if !matches!(volume.state.as_str(), "Uploaded" | "Ready" | "Allocated") {
                return Err((
                    431,
                    format!("Volume {id} state {} cannot be attached", volume.state),
                ));
            }
            if !fails {
                volume.vm = Some(vm_id);
                volume.device = device;
                volume.state = "Ready".into();
            }
            let volume = volume.clone();
            let result = json!({ "volume": volume_json(s, &volume) });
            let job = new_job(s, command, JobOutcome::Done(result));
            Ok(json!({ "jobid": job }))
        }
        "detachvolume" => {
            let id = need(p, "id", command)?.clone();
            let volume = s
                .volumes
                .iter_mut()
                .find(|v| v.id == id)
                .ok_or_else(|| not_found("volume", &id))?;
            volume.vm = None;
            let volume = volume.clone();
            let result = json!({ "volume": volume_json(s, &volume) });
            let job = new_job(s, command, JobOutcome::Done(result));
            Ok(json!({ "jobid": job }))
        }
        "destroyvirtualmachine" => {
            let id = need(p, "id", command)?.clone();
            let vm = s
                .vms
                .iter()
                .find(|v| v.id == id)
                .cloned()
                .ok_or_else(|| not_found("vm", &id))?;
            let expunge = p.get("expunge").is_some_and(|v| v == "true");
            let mut gone = vm.clone();
            gone.state = if expunge { "Expunging" } else { "Destroyed" }.into();
            let result = json!({ "virtualmachine": vm_json(s, &gone) });
            if expunge {
                s.vms.retain(|v| v.id != id);
                s.volumes
                    .retain(|v| !(v.vm.as_ref() == Some(&id) && v.kind == "ROOT"));
                for v in s.volumes.iter_mut().filter(|v| v.vm.as_ref() == Some(&id)) {
                    v.vm = None;
                }
            } else if let Some(v) = s.vms.iter_mut().find(|v| v.id == id) {
                v.state = "Destroyed".into();
            }
            let job = new_job(s, command, JobOutcome::Done(result));
            Ok(json!({ "jobid": job }))
        }
        "startvirtualmachine" | "stopvirtualmachine" => {
            let id = need(p, "id", command)?.clone();
            let state = if command == "startvirtualmachine" {
                "Running"
            } else {
                "Stopped"
            };
            let was = s
                .vms
                .iter()
                .find(|v| v.id == id)
                .map(|v| v.state.clone())
                .ok_or_else(|| not_found("vm", &id))?;
            if command == "stopvirtualmachine" && was == "Running" {
                // A clean shutdown: the guest's last writes land first.
                let volumes: Vec<(String, String, Option<PathBuf>)> = s
                    .volumes
                    .iter()
                    .filter(|v| v.vm.as_deref() == Some(id.as_str()))
                    .map(|v| (v.id.clone(), v.format.clone(), v.data.clone()))
                    .collect();
                for (volume, format, data) in volumes {
                    let writes = s
                        .guest_writes
                        .get_mut(&volume)
                        .map(|w| std::mem::take(&mut w.at_stop));
                    if let (Some(writes), Some(file)) = (writes, data) {
                        super::guest::apply(&file, &format, &writes);
                    }
                }
                s.stops.push(id.clone());
            }
            let vm = s
                .vms
                .iter_mut()
                .find(|v| v.id == id)
                .ok_or_else(|| not_found("vm", &id))?;
            vm.state = state.into();
            let vm = vm.clone();
            let result = json!({ "virtualmachine": vm_json(s, &vm) });
            let job = new_job(s, command, JobOutcome::Done(result));
            Ok(json!({ "jobid": job }))
        }
        other => Err((
            432,
            format!("The given command:{other} does not exist or it is not available for user"),
        )),
    }
}

fn deploy(s: &mut State, command: &str, p: &BTreeMap<String, String>) -> Answer {
    let offering_id = need(p, "serviceofferingid", command)?.clone();
    let template_id = need(p, "templateid", command)?.clone();
    let zone_id = need(p, "zoneid", command)?.clone();
    if zone_id != s.zone_id {
        return Err(not_found("zone", &zone_id));
    }
    if !s.offerings.iter().any(|o| o.id == offering_id) {
        return Err((
            431,
            format!("Unable to find service offering: {offering_id}"),
        ));
    }
    let template = s
        .templates
        .iter()
        .find(|t| t.id == template_id)
        .cloned()
        .ok_or_else(|| not_found("template", &template_id))?;
    if !template.ready {
        return Err((
            431,
            format!("Template {template_id} has not been completely downloaded to zone {zone_id}"),
        ));
    }
    if let Some(network) = p.get("networkids")
        && network != &s.network_id
    {
        return Err(not_found("network", network));
    }
    let config = super::config::deploy_config(s, p)?;
    let id = s.new_id();
    let name = p.get("name").cloned().unwrap_or_else(|| format!("VM-{id}"));
    let fails = job_fails(s, command);
    s.vm_config.insert(id.clone(), config);
    // A failed deployment leaves the VM record in Error state, as CloudStack does.
    let state = if fails { "Error" } else { "Running" };
    let vm = Vm {
        id: id.clone(),
        name: name.clone(),
        state: state.into(),
        offering_id,
        template_id,
        network_id: Some(s.network_id.clone()),
    };
    s.vms.push(vm.clone());
    if !fails {
        let data = copy_data(s, &template.data, "root");
        let volume_id = s.new_id();
        s.volumes.push(Volume {
            id: volume_id,
            name: format!("ROOT-{name}"),
            kind: "ROOT",
            vm: Some(id.clone()),
            device: 0,
            size: template.size,
            state: "Ready".into(),
            data,
            format: template.format.clone(),
        });
    }
    let result = json!({ "virtualmachine": vm_json(s, &vm) });
    let job = new_job(s, command, JobOutcome::Done(result));
    Ok(json!({ "jobid": job, "id": id }))
}
