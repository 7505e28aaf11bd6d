//! `/client/api`: parameter decoding, signature verification the way the
//! server does it, pagination, and the commands the provider uses.

use super::shapes::{list, shaped};
use super::{Job, JobOutcome, Received, Snapshot, State, Template, UploadSlot, Vm, Volume};
use axum::body::Bytes;
use axum::extract::State as AxState;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use hmac::{Hmac, KeyInit as _, Mac as _};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

type Shared = Arc<Mutex<State>>;
type Answer = Result<Value, (u16, String)>;

pub const DEFAULT_PAGE_SIZE: usize = 500;

pub async fn handle(
    AxState(state): AxState<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let raw = if method == Method::POST {
        let form = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        if !form {
            return (StatusCode::UNSUPPORTED_MEDIA_TYPE, "form body expected").into_response();
        }
        String::from_utf8_lossy(&body).into_owned()
    } else {
        uri.query().unwrap_or_default().to_string()
    };
    let pairs = decode_form(&raw);
    let params: BTreeMap<String, String> = pairs.iter().cloned().collect();
    let command = params.get("command").cloned().unwrap_or_default();
    let wrapper = format!("{}response", command.to_ascii_lowercase());
    let mut s = state.lock().expect("fake state");
    let accepted = verify(&s, &pairs);
    s.received.push(Received {
        command: command.clone(),
        params: params.clone(),
        accepted,
    });
    if !accepted {
        return error(
            &wrapper,
            401,
            "unable to verify user credentials and/or request signature",
        );
    }
    let lower: BTreeMap<String, String> = params
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
        .collect();
    match dispatch(&mut s, &command.to_ascii_lowercase(), &lower) {
        Ok(value) => json_response(StatusCode::OK, json!({ wrapper: value })),
        Err((code, text)) if code == 432 => error("errorresponse", code, &text),
        Err((code, text)) => error(&wrapper, code, &text),
    }
}

fn json_response(status: StatusCode, value: Value) -> Response {
    (
        status,
        [("content-type", "application/json; charset=UTF-8")],
        value.to_string(),
    )
        .into_response()
}

/// CloudStack's error body, with the HTTP status equal to the error code.
fn error(wrapper: &str, code: u16, text: &str) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let cs_code = match code {
        401 => 9999,
        431 => 4350,
        _ => 4250,
    };
    json_response(
        status,
        json!({ wrapper: { "uuidList": [], "errorcode": code, "cserrorcode": cs_code, "errortext": text } }),
    )
}

/// `a=b&c=d` with `+` for space and %XX escapes, in order.
pub fn decode_form(raw: &str) -> Vec<(String, String)> {
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let decode = |t: &str| {
                percent_encoding::percent_decode_str(&t.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned()
            };
            (decode(k), decode(v))
        })
        .collect()
}

/// `java.net.URLEncoder.encode(value, "UTF-8").replaceAll("\\+", "%20")`.
fn java_encode(value: &str) -> String {
    let mut out = String::new();
    for &b in value.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'*' | b'_') {
            out.push(b as char);
        } else if b == b' ' {
            out.push_str("%20");
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub fn hmac_b64(key: &str, text: &str) -> String {
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(key.as_bytes()).expect("hmac key");
    mac.update(text.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// ApiServer.verifyRequest: sorted names, encoded values, lower-cased,
/// HMAC-SHA1; signatureVersion 3 needs an `expires` still in the future.
fn verify(s: &State, pairs: &[(String, String)]) -> bool {
    let get = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let (Some(api_key), Some(signature)) = (get("apiKey"), get("signature")) else {
        return false;
    };
    if api_key != s.api_key {
        return false;
    }
    if get("signatureVersion").as_deref() == Some("3") {
        let Some(expires) = get("expires").and_then(|e| parse_cs_time(&e)) else {
            return false;
        };
        if expires < s.now() {
            return false;
        }
    }
    let mut names: Vec<&(String, String)> = pairs
        .iter()
        .filter(|(k, _)| !k.eq_ignore_ascii_case("signature"))
        .collect();
    names.sort_by(|a, b| a.0.cmp(&b.0));
    let unsigned = names
        .iter()
        .map(|(k, v)| format!("{k}={}", java_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
        .to_lowercase();
    hmac_b64(&s.secret_key, &unsigned) == signature
}

/// `yyyy-MM-dd'T'HH:mm:ssZ` (offset like +0000).
pub fn parse_cs_time(text: &str) -> Option<std::time::SystemTime> {
    if text.len() < 24 {
        return None;
    }
    let base = humantime::parse_rfc3339(&format!("{}Z", &text[..19])).ok()?;
    let sign = if &text[19..20] == "-" { -1i64 } else { 1 };
    let hours: i64 = text[20..22].parse().ok()?;
    let minutes: i64 = text[22..24].parse().ok()?;
    let offset = sign * (hours * 3600 + minutes * 60);
    Some(if offset >= 0 {
        base - std::time::Duration::from_secs(offset as u64)
    } else {
        base + std::time::Duration::from_secs(offset.unsigned_abs())
    })
}

pub fn format_cs_time(at: std::time::SystemTime) -> String {
    let text = humantime::format_rfc3339_seconds(at).to_string();
    format!("{}+0000", text.trim_end_matches('Z'))
}

pub(crate) fn need<'a>(
    p: &'a BTreeMap<String, String>,
    name: &str,
    command: &str,
) -> Result<&'a String, (u16, String)> {
    p.get(name).ok_or_else(|| {
        (
            431,
            format!("Unable to execute API command {command} due to missing parameter {name}"),
        )
    })
}

pub(crate) fn not_found(what: &str, id: &str) -> (u16, String) {
    (
        431,
        format!(
            "Unable to execute API command due to invalid value. Invalid parameter id value={id} due to incorrect long value format, or entity does not exist ({what})"
        ),
    )
}

/// One page of `items`, as a server with `default.page.size` 500 pages.
pub(crate) fn page(items: Vec<Value>, p: &BTreeMap<String, String>, key: &str) -> Answer {
    let total = items.len();
    let size = match p.get("pagesize") {
        Some(v) => v
            .parse::<usize>()
            .map_err(|_| (431, format!("Invalid pagesize {v}")))?,
        None => DEFAULT_PAGE_SIZE,
    };
    if size > DEFAULT_PAGE_SIZE {
        return Err((
            431,
            format!("Page size can't exceed max allowed page size value: {DEFAULT_PAGE_SIZE}"),
        ));
    }
    let number = match p.get("page") {
        Some(v) => v
            .parse::<usize>()
            .map_err(|_| (431, format!("Invalid page {v}")))?
            .max(1),
        None => 1,
    };
    let slice: Vec<Value> = items
        .into_iter()
        .skip((number - 1) * size)
        .take(size)
        .collect();
    Ok(list(key, slice, total))
}

pub(crate) fn new_job(s: &mut State, command: &str, outcome: JobOutcome) -> String {
    let id = s.new_id();
    let failure = s.fail_jobs.remove(command);
    let outcome = match failure {
        Some(text) => JobOutcome::Failed(530, text),
        None => outcome,
    };
    let polls_left = s.pending_polls;
    s.jobs.insert(
        id.clone(),
        Job {
            command: command.to_string(),
            polls_left,
            outcome,
        },
    );
    id
}

pub(crate) fn job_fails(s: &State, command: &str) -> bool {
    s.fail_jobs.contains_key(command)
}

fn dispatch(s: &mut State, command: &str, p: &BTreeMap<String, String>) -> Answer {
    match command {
        "listvirtualmachines" => {
            let items = s
                .vms
                .iter()
                .filter(|v| p.get("id").is_none_or(|id| &v.id == id))
                .map(|v| vm_json(s, v))
                .collect();
            page(items, p, "virtualmachine")
        }
        "listvolumes" => {
            let items = s
                .volumes
                .iter()
                .filter(|v| p.get("id").is_none_or(|id| &v.id == id))
                .filter(|v| {
                    p.get("virtualmachineid")
                        .is_none_or(|id| v.vm.as_ref() == Some(id))
                })
                .map(|v| volume_json(s, v))
                .collect();
            page(items, p, "volume")
        }
        "listserviceofferings" => {
            let items = s
                .offerings
                .iter()
                .filter(|o| {
                    p.get("id").is_none_or(|id| &o.id == id)
                        && p.get("name").is_none_or(|n| &o.name == n)
                })
                .map(|o| offering_json(s, o))
                .collect();
            page(items, p, "serviceoffering")
        }
        "listzones" => page(vec![zone_json(s)], p, "zone"),
        "listnetworks" => page(vec![network_json(s)], p, "network"),
        "listostypes" => page(s.templates_json.ostypes.clone(), p, "ostype"),
        "listhypervisors" => Ok(json!({ "count": 1, "hypervisor": [{ "name": s.hypervisor }] })),
        "listsnapshots" => {
            let items = s
                .snapshots
                .iter()
                .filter(|x| p.get("id").is_none_or(|id| &x.id == id))
                .map(|x| snapshot_json(s, x))
                .collect();
            page(items, p, "snapshot")
        }
        "listtemplates" => {
            need(p, "templatefilter", command)?;
            let items = s
                .templates
                .iter()
                .filter(|t| p.get("id").is_none_or(|id| &t.id == id))
                .map(|t| template_json(s, t))
                .collect();
            page(items, p, "template")
        }
        "queryasyncjobresult" => query_job(s, need(p, "jobid", command)?.clone()),
        _ => match super::config::list(s, command, p) {
            Some(answer) => answer,
            None => super::config::mutate(s, command, p)
                .unwrap_or_else(|| super::api_mutate::mutate(s, command, p)),
        },
    }
}

fn query_job(s: &mut State, job_id: String) -> Answer {
    let base = s.templates_json.job.clone();
    let job = s
        .jobs
        .get_mut(&job_id)
        .ok_or_else(|| (530, format!("Unable to find a job by id {job_id}")))?;
    let cmd = format!("org.apache.cloudstack.api.command.user.{}", job.command);
    let common = json!({ "accountid": "acc-1", "userid": "user-1", "cmd": cmd, "jobid": job_id, "created": "2026-11-26T12:00:00+0000" });
    if job.polls_left > 0 {
        job.polls_left -= 1;
        let mut v = shaped(&base, common);
        v["jobstatus"] = json!(0);
        v["jobresultcode"] = json!(0);
        return Ok(v);
    }
    let mut v = shaped(&base, common);
    match &job.outcome {
        JobOutcome::Done(result) => {
            v["jobstatus"] = json!(1);
            v["jobresultcode"] = json!(0);
            v.as_object_mut()
                .expect("object")
                .insert("jobresult".into(), result.clone());
        }
        JobOutcome::Failed(code, text) => {
            v["jobstatus"] = json!(2);
            v["jobresultcode"] = json!(code);
            v.as_object_mut().expect("object").insert(
                "jobresult".into(),
                json!({ "errorcode": code, "errortext": text }),
            );
        }
    }
    Ok(v)
}

pub fn vm_json(s: &State, vm: &Vm) -> Value {
    let mut out = vm_shape(s, vm);
    super::config::vm_fields(s, &vm.id, &mut out);
    out
}

fn vm_shape(s: &State, vm: &Vm) -> Value {
    let offering = s.offerings.iter().find(|o| o.id == vm.offering_id);
    let nic = shaped(
        &s.templates_json.nic,
        json!({ "id": format!("nic-{}", vm.id), "networkid": vm.network_id.clone().unwrap_or_default(), "ipaddress": "10.1.1.10", "isdefault": true }),
    );
    let template = s.templates.iter().find(|t| t.id == vm.template_id);
    shaped(
        &s.templates_json.vm,
        json!({
            "id": vm.id, "name": vm.name, "displayname": vm.name, "state": vm.state,
            "zoneid": s.zone_id, "zonename": s.zone_name,
            "templateid": vm.template_id, "templatename": template.map(|t| t.name.clone()).unwrap_or_default(),
            "templatedisplaytext": template.map(|t| t.name.clone()).unwrap_or_default(),
            "serviceofferingid": vm.offering_id, "serviceofferingname": offering.map(|o| o.name.clone()).unwrap_or_default(),
            "cpunumber": offering.map(|o| o.cpus).unwrap_or(0), "memory": offering.map(|o| o.memory_mib).unwrap_or(0),
            "hypervisor": s.hypervisor, "nic": [nic], "tags": [],
        }),
    )
}

pub fn volume_json(s: &State, v: &Volume) -> Value {
    let vm =
        v.vm.as_ref()
            .and_then(|id| s.vms.iter().find(|x| &x.id == id));
    let mut out = shaped(
        &s.templates_json.volume,
        json!({
            "id": v.id, "name": v.name, "zoneid": s.zone_id, "zonename": s.zone_name, "type": v.kind,
            "deviceid": v.device, "size": v.size, "state": v.state, "hypervisor": s.hypervisor,
            "virtualmachineid": vm.map(|x| x.id.clone()).unwrap_or_default(),
            "vmname": vm.map(|x| x.name.clone()).unwrap_or_default(),
            "vmdisplayname": vm.map(|x| x.name.clone()).unwrap_or_default(),
            "vmstate": vm.map(|x| x.state.clone()).unwrap_or_default(),
            "isextractable": true,
        }),
    );
    if vm.is_none() {
        // Detached volumes carry no VM fields at all.
        let map = out.as_object_mut().expect("object");
        for key in [
            "virtualmachineid",
            "vmname",
            "vmdisplayname",
            "vmstate",
            "deviceid",
        ] {
            map.remove(key);
        }
    }
    out
}

pub fn snapshot_json(s: &State, x: &Snapshot) -> Value {
    let volume = s.volumes.iter().find(|v| v.id == x.volume_id);
    shaped(
        &s.templates_json.snapshot,
        json!({
            "id": x.id, "name": x.name, "volumeid": x.volume_id,
            "volumename": volume.map(|v| v.name.clone()).unwrap_or_default(),
            "volumetype": volume.map(|v| v.kind).unwrap_or("ROOT"), "state": "BackedUp",
        }),
    )
}

pub fn template_json(s: &State, t: &Template) -> Value {
    shaped(
        &s.templates_json.template,
        json!({
            "id": t.id, "name": t.name, "displaytext": t.name, "isready": t.ready, "format": t.format,
            "zoneid": s.zone_id, "zonename": s.zone_name, "status": t.status, "size": t.size,
            "hypervisor": t.hypervisor, "isextractable": true, "ostypename": "Other Linux (64-bit)",
        }),
    )
}

fn offering_json(s: &State, o: &super::Offering) -> Value {
    shaped(
        &s.templates_json.offering,
        json!({ "id": o.id, "name": o.name, "displaytext": o.name, "cpunumber": o.cpus, "memory": o.memory_mib }),
    )
}

fn zone_json(s: &State) -> Value {
    shaped(
        &s.templates_json.zone,
        json!({ "id": s.zone_id, "name": s.zone_name }),
    )
}

fn network_json(s: &State) -> Value {
    shaped(
        &s.templates_json.network,
        json!({ "id": s.network_id, "zoneid": s.zone_id, "zonename": s.zone_name, "name": "guest", "displaytext": "guest", "canusefordeploy": true }),
    )
}

pub(crate) fn upload_slot(
    s: &mut State,
    kind: &'static str,
    id: &str,
    format: &str,
    checksum: Option<String>,
) -> Value {
    let token = s.new_id();
    let url = format!("{}/upload/{token}", s.base_url);
    let expires = format_cs_time(s.now() + std::time::Duration::from_secs(3600));
    let metadata = base64::engine::general_purpose::STANDARD
        .encode(json!({ "id": id, "kind": kind, "format": format }).to_string());
    let signature = hmac_b64("fake-ssvm-key", &format!("{metadata}{url}{expires}"));
    s.uploads.insert(
        token,
        UploadSlot {
            kind,
            id: id.to_string(),
            signature: signature.clone(),
            metadata: metadata.clone(),
            expires: expires.clone(),
            format: format.to_string(),
            checksum,
        },
    );
    json!({ "getuploadparams": { "id": id, "postURL": url, "metadata": metadata, "expires": expires, "signature": signature } })
}

pub(crate) fn extract_json(
    s: &mut State,
    kind: &str,
    id: &str,
    name: &str,
    data: std::path::PathBuf,
) -> Value {
    let token = s.new_id();
    s.extracts.insert(token.clone(), data);
    let extract_id = s.new_id();
    json!({ kind: {
        "id": id, "name": name, "extractId": extract_id, "accountid": "acc-1", "state": "DOWNLOAD_URL_CREATED",
        "status": "", "uploadpercentage": 0, "created": "2026-11-26T12:00:00+0000", "zoneid": s.zone_id,
        "zonename": s.zone_name, "extractMode": "HTTP_DOWNLOAD", "url": format!("{}/extract/{token}", s.base_url),
    }})
}
