//! Compute Engine v1 resources the provider uses, as the REST reference
//! describes them.

use super::{Op, Received, Shared, State};
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State as AxState};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use std::collections::HashMap;

const GIB: u64 = 1 << 30;

pub fn error(code: u16, reason: &str, message: &str) -> Response {
    let status = StatusCode::from_u16(code).unwrap();
    let body = json!({"error": {
        "code": code,
        "message": message,
        "errors": [{"domain": "global", "reason": reason, "message": message}],
    }});
    (status, axum::Json(body)).into_response()
}

pub(super) fn not_found(path: &str) -> Response {
    error(
        404,
        "notFound",
        &format!(
            "The resource 'projects/{}/{path}' was not found",
            super::PROJECT
        ),
    )
}

fn query_map(query: &str) -> HashMap<String, String> {
    url_pairs(query).into_iter().collect()
}

fn url_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let decode = |s: &str| {
                percent_encoding::percent_decode_str(&s.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned()
            };
            (decode(k), decode(v))
        })
        .collect()
}

pub async fn handle(
    AxState(shared): AxState<Shared>,
    method: Method,
    Path((project, rest)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let query = query.unwrap_or_default();
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("")
        .to_string();
    let is_import = method == Method::POST && rest == "global/images";
    let mut record = Received {
        method: method.to_string(),
        path: rest.clone(),
        query: query.clone(),
        authorized: false,
        status: 0,
    };
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    // Decided under the lock; an import fetches its archive without it.
    let early: Result<Response, (Option<String>, std::path::PathBuf)> = {
        let mut s = shared.lock().unwrap();
        let authorized = s.tokens.contains(&token);
        record.authorized = authorized;
        let response = if !authorized {
            Ok(error(
                401,
                "authError",
                "Request had invalid authentication credentials. Expected OAuth 2 access token.",
            ))
        } else if project != super::PROJECT {
            Ok(error(
                403,
                "forbidden",
                &format!("Required 'compute.instances.list' permission for 'projects/{project}'"),
            ))
        } else if !s.fail_next.is_empty() {
            let code = s.fail_next.remove(0);
            Ok(if code == 429 {
                error(429, "rateLimitExceeded", "Rate Limit Exceeded")
            } else {
                error(code, "backendError", "Internal error. Please try again.")
            })
        } else if is_import {
            Err((s.storage_base.clone(), s.dir.clone()))
        } else {
            let query = query_map(&query);
            let request_id = query.get("requestId").filter(|_| method == Method::POST);
            let repeat = request_id
                .and_then(|id| s.request_ids.get(id))
                .and_then(|name| s.operations.get(name.as_str().unwrap_or_default()));
            match repeat {
                // A repeat: the first request's operation, nothing done again.
                Some(op) => Ok(axum::Json(op.value.clone()).into_response()),
                None => {
                    let newest_before = newest_op(&s);
                    let response = route(&mut s, &method, &rest, &query, body.clone());
                    if let Some(id) = request_id
                        && response.status().is_success()
                        && let Some(name) =
                            newest_op(&s).filter(|n| Some(n) != newest_before.as_ref())
                    {
                        s.request_ids.insert(id.clone(), Value::from(name));
                    }
                    let lost = s.lose_answer.iter().position(|p| *p == rest);
                    match lost {
                        Some(at) if method == Method::POST && response.status().is_success() => {
                            s.lose_answer.remove(at);
                            Ok(error(
                                503,
                                "backendError",
                                "The service is currently unavailable.",
                            ))
                        }
                        _ => Ok(response),
                    }
                }
            }
        };
        if let Ok(r) = &response {
            record.status = r.status().as_u16();
            s.received.push(record.clone());
        }
        response
    };
    match early {
        Ok(response) => response,
        Err((base, dir)) => {
            let imported = super::storage::import(base, dir, &body).await;
            let mut s = shared.lock().unwrap();
            let response = super::storage::register_image(&mut s, body, imported);
            record.status = response.status().as_u16();
            s.received.push(record);
            response
        }
    }
}

/// The name of the operation made last.
fn newest_op(s: &State) -> Option<String> {
    s.operations
        .iter()
        .max_by_key(|(_, op)| op.value["id"].as_str().and_then(|i| i.parse::<u64>().ok()))
        .map(|(name, _)| name.clone())
}

/// Items `[start, start+n)` of `all`, with `nextPageToken` when more remain.
pub(super) fn page<T: Clone>(
    all: &[T],
    query: &HashMap<String, String>,
    cap: usize,
) -> (Vec<T>, Option<String>) {
    let max = query
        .get("maxResults")
        .and_then(|m| m.parse::<usize>().ok())
        .unwrap_or(500)
        .clamp(1, 500)
        .min(cap);
    let start = query
        .get("pageToken")
        .map(|t| {
            t.strip_prefix("tok-")
                .and_then(|n| n.parse().ok())
                .unwrap_or(usize::MAX)
        })
        .unwrap_or(0);
    let end = (start.saturating_add(max)).min(all.len());
    let items = all.get(start..end).map(<[T]>::to_vec).unwrap_or_default();
    let next = (end < all.len()).then(|| format!("tok-{end}"));
    (items, next)
}

pub(super) fn list_body(
    kind: &str,
    items: Vec<Value>,
    next: Option<String>,
    link: String,
) -> Value {
    let mut body = json!({"kind": kind, "id": link.clone(), "items": items, "selfLink": link});
    if let Some(next) = next {
        body["nextPageToken"] = next.into();
    }
    body
}

fn aggregated(
    s: &State,
    all: &[(String, Value)],
    key: &str,
    kind: &str,
    query: &HashMap<String, String>,
    path: &str,
) -> Response {
    if query
        .get("pageToken")
        .is_some_and(|t| !t.starts_with("tok-"))
    {
        return error(400, "invalid", "Invalid value for field 'pageToken'");
    }
    let (items, next) = page(all, query, s.page_size);
    let mut scopes: Map<String, Value> = Map::new();
    for zone in s.zones.iter().filter_map(|z| z["name"].as_str()) {
        let on_page: Vec<Value> = items
            .iter()
            .filter(|(z, _)| z == zone)
            .map(|(_, v)| v.clone())
            .collect();
        let scope = if on_page.is_empty() {
            json!({"warning": {
                "code": "NO_RESULTS_ON_PAGE",
                "message": "There are no results for scope 'zones/".to_string() + zone + "' on this page.",
                "data": [{"key": "scope", "value": format!("zones/{zone}")}],
            }})
        } else {
            json!({ key: on_page })
        };
        scopes.insert(format!("zones/{zone}"), scope);
    }
    let mut body = json!({"kind": kind, "id": format!("projects/{}/{path}", super::PROJECT),
        "items": scopes, "selfLink": s.link(path)});
    if let Some(next) = next {
        body["nextPageToken"] = next.into();
    }
    axum::Json(body).into_response()
}

pub(super) fn new_op(
    s: &mut State,
    zone: Option<&str>,
    kind: &str,
    target: &str,
    error: Option<Value>,
) -> Value {
    let id = s.new_id();
    let name = format!("operation-{id}");
    let path = match zone {
        Some(z) => format!("zones/{z}/operations/{name}"),
        None => format!("global/operations/{name}"),
    };
    let mut op = json!({
        "kind": "compute#operation",
        "id": id,
        "name": name,
        "operationType": kind,
        "progress": 0,
        "status": "PENDING",
        "insertTime": "2026-11-26T12:00:00.000-08:00",
        "startTime": "2026-11-26T12:00:00.100-08:00",
        "targetLink": s.link(target),
        "selfLink": s.link(&path),
        "user": s.client_email,
    });
    if let Some(z) = zone {
        op["zone"] = s.link(&format!("zones/{z}")).into();
    }
    s.operations.insert(
        name,
        Op {
            value: op.clone(),
            polls: 0,
            error,
        },
    );
    op
}

/// An operation GET: PENDING → RUNNING → DONE (+ error when it failed);
/// with `quick_operations`, DONE at the first poll.
fn poll_op(s: &mut State, name: &str) -> Option<Value> {
    let running_polls = if s.quick_operations { 0 } else { 1 };
    let op = s.operations.get_mut(name)?;
    op.polls += 1;
    match op.polls {
        n if n <= running_polls => {
            op.value["status"] = "RUNNING".into();
            op.value["progress"] = 50.into();
        }
        _ => {
            op.value["status"] = "DONE".into();
            op.value["progress"] = 100.into();
            op.value["endTime"] = "2026-11-26T12:00:05.000-08:00".into();
            if let Some(err) = &op.error {
                op.value["error"] = json!({"errors": [err]});
                op.value["httpErrorStatusCode"] = 400.into();
                op.value["httpErrorMessage"] = "BAD REQUEST".into();
            }
        }
    }
    let value = op.value.clone();
    if value["status"] == "DONE"
        && value["operationType"] == "insert"
        && value.get("error").is_none()
    {
        let target = value["targetLink"].as_str().unwrap_or_default().to_string();
        for image in s
            .images
            .iter_mut()
            .filter(|i| i["selfLink"] == target.as_str())
        {
            image["status"] = "READY".into();
        }
    }
    Some(value)
}

fn route(
    s: &mut State,
    method: &Method,
    path: &str,
    query: &HashMap<String, String>,
    body: Value,
) -> Response {
    let parts: Vec<&str> = path.split('/').collect();
    match (method.as_str(), parts.as_slice()) {
        ("GET", ["aggregated", "instances"]) => {
            let all = s.instances.clone();
            aggregated(
                s,
                &all,
                "instances",
                "compute#instanceAggregatedList",
                query,
                path,
            )
        }
        ("GET", ["aggregated", "disks"]) => {
            let all = s.disks.clone();
            aggregated(s, &all, "disks", "compute#diskAggregatedList", query, path)
        }
        ("GET", ["aggregated", "machineTypes"]) => {
            let all = s.machine_types.clone();
            aggregated(
                s,
                &all,
                "machineTypes",
                "compute#machineTypeAggregatedList",
                query,
                path,
            )
        }
        ("GET", ["zones"]) => {
            let (items, next) = page(&s.zones, query, s.page_size);
            axum::Json(list_body("compute#zoneList", items, next, s.link(path))).into_response()
        }
        ("GET", ["global", "networks"]) => {
            let (items, next) = page(&s.networks, query, s.page_size);
            axum::Json(list_body("compute#networkList", items, next, s.link(path))).into_response()
        }
        ("GET", ["aggregated", "subnetworks"]) => {
            super::net::aggregated_subnetworks(s, query, path)
        }
        ("GET", ["global", "firewalls"]) => super::net::firewalls(s, query, path),
        ("POST", ["global", "firewalls"]) => super::config::insert_firewall(s, body),
        ("GET", ["global", "firewalls", name]) => super::config::get_firewall(s, name),
        ("DELETE", ["global", "firewalls", name]) => super::config::delete_firewall(s, name),
        ("GET", ["global", "images"]) => {
            let (items, next) = page(&s.images, query, s.page_size);
            axum::Json(list_body("compute#imageList", items, next, s.link(path))).into_response()
        }
        ("GET", ["global", "images", name]) => match s.images.iter().find(|i| i["name"] == *name) {
            Some(image) => axum::Json(image.clone()).into_response(),
            None => not_found(path),
        },
        ("DELETE", ["global", "images", name]) => {
            let Some(at) = s.images.iter().position(|i| i["name"] == *name) else {
                return not_found(path);
            };
            s.images.remove(at);
            s.image_files.remove(*name);
            axum::Json(new_op(s, None, "delete", path, None)).into_response()
        }
        ("GET", ["global", "operations", name]) => match poll_op(s, name) {
            Some(op) => axum::Json(op).into_response(),
            None => not_found(path),
        },
        ("GET", ["zones", _zone, "operations", name]) => match poll_op(s, name) {
            Some(op) => axum::Json(op).into_response(),
            None => not_found(path),
        },
        ("POST", ["zones", zone, "instances"]) => super::instances::insert(s, zone, body),
        ("POST", ["zones", zone, "instances", name, "stop"]) => {
            super::instances::stop(s, zone, name)
        }
        ("POST", ["zones", zone, "instances", name, "start"]) => {
            super::instances::start(s, zone, name)
        }
        ("GET", ["zones", zone, "instances", name, "serialPort"]) => {
            super::serial::get(s, zone, name, query, path)
        }
        ("GET", ["zones", zone, "instances", name]) => {
            let boot_polls = s.boot_polls;
            let Some((_, vm)) = s
                .instances
                .iter_mut()
                .find(|(z, i)| z == zone && i["name"] == *name)
            else {
                return not_found(path);
            };
            let polls = vm["_polls"].as_u64().unwrap_or(u64::MAX);
            if polls != u64::MAX {
                vm["_polls"] = (polls + 1).into();
                vm["status"] = match polls + 1 {
                    n if n >= u64::from(boot_polls) => "RUNNING",
                    1 => "STAGING",
                    _ => "STAGING",
                }
                .into();
            }
            let mut shown = vm.clone();
            shown.as_object_mut().unwrap().remove("_polls");
            axum::Json(shown).into_response()
        }
        ("DELETE", ["zones", zone, "instances", name]) => {
            let Some(at) = s
                .instances
                .iter()
                .position(|(z, i)| z == zone && i["name"] == *name)
            else {
                return not_found(path);
            };
            let (_, vm) = s.instances.remove(at);
            // A new instance of that name starts with an empty console.
            s.consoles.remove(&format!("{zone}/{name}"));
            super::source::detach_all(s, zone, &vm);
            axum::Json(new_op(s, Some(zone), "delete", path, None)).into_response()
        }
        _ => super::source::route(s, method, path, query, &body).unwrap_or_else(|| {
            error(
                404,
                "notFound",
                &format!("The requested URL /{path} was not found on this server."),
            )
        }),
    }
}

pub(super) fn op_for_image(s: &mut State, name: &str, error: Option<Value>) -> Value {
    new_op(s, None, "insert", &format!("global/images/{name}"), error)
}

pub(super) const GIB_BYTES: u64 = GIB;
