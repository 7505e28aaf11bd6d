//! `instances.getSerialPortOutput` as the Compute Engine reference
//! describes it: `GET zones/Z/instances/N/serialPort?port=P&start=S`
//! answers a `compute#serialPortOutput` with `contents` from byte `start`,
//! `start` (the position actually returned: the API keeps the last 1 MB, so
//! an older position moves up to the oldest kept byte), `next` (the
//! position to ask from next time, whether or not content exists there) and
//! `selfLink`; int64 fields as JSON strings. A negative `start` is the
//! newest bytes (`-3`: the last three). Ports 1–4 (default 1); an unknown
//! instance is a 404. What the guest writes is scripted by the test
//! ([`super::FakeGce::write_console`]); a new instance has written nothing.

use super::State;
use super::api::{error, not_found};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::collections::HashMap;

/// The output the API keeps per port.
pub const BUFFER: usize = 1 << 20;

pub fn get(
    s: &State,
    zone: &str,
    name: &str,
    query: &HashMap<String, String>,
    path: &str,
) -> Response {
    if !s
        .instances
        .iter()
        .any(|(z, i)| z == zone && i["name"] == name)
    {
        return not_found(&format!("zones/{zone}/instances/{name}"));
    }
    let port = match query.get("port").map(|p| p.parse::<u32>()) {
        None => 1,
        Some(Ok(p)) if (1..=4).contains(&p) => p,
        Some(_) => {
            return error(
                400,
                "invalid",
                &format!(
                    "Invalid value for field 'port': '{}'. Must be in the range [1, 4].",
                    query.get("port").map(String::as_str).unwrap_or_default()
                ),
            );
        }
    };
    let start = match query.get("start").map(|p| p.parse::<i64>()) {
        None => 0,
        Some(Ok(start)) => start,
        Some(Err(_)) => {
            return error(
                400,
                "invalid",
                &format!(
                    "Invalid value for field 'start': '{}'.",
                    query.get("start").map(String::as_str).unwrap_or_default()
                ),
            );
        }
    };
    let empty = Vec::new();
    let written = match port {
        1 => s.consoles.get(&format!("{zone}/{name}")).unwrap_or(&empty),
        _ => &empty,
    };
    let end = written.len() as u64;
    let oldest = end.saturating_sub(BUFFER as u64);
    // A negative start counts back from the newest byte (bounded by what
    // is kept); a discarded position moves up to the oldest kept byte.
    let start = match u64::try_from(start) {
        Ok(start) => start.max(oldest),
        Err(_) => end.saturating_sub(start.unsigned_abs()).max(oldest),
    };
    let contents = if start < end {
        String::from_utf8_lossy(&written[start as usize..]).into_owned()
    } else {
        String::new()
    };
    let next = start.max(end);
    axum::Json(json!({
        "kind": "compute#serialPortOutput",
        "contents": contents,
        "start": start.to_string(),
        "next": next.to_string(),
        "selfLink": s.link(path),
    }))
    .into_response()
}
