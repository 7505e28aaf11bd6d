//! The CloudStack API client: signed requests, unwrapping of
//! `{"<command>response": …}`, error mapping, pagination to the end, and
//! async job polling with backoff and a deadline.
//!
//! Errors never carry a URL: the query string holds the API key and the
//! signature, so reqwest errors are stripped of it and messages name the
//! command instead.

use super::signing::{self, Dialect};
use crate::CloudError;
use crate::body::MAX_ANSWER_BYTES;
use crate::secret::Secret;
use serde_json::Value;
use std::sync::RwLock;
use std::time::{Duration, Instant, SystemTime};

/// Commands that change the cloud. Everything else reads (extract URLs and
/// upload parameters only grant read/write access to one object and are
/// requested after approval anyway).
pub const MUTATING: &[&str] = &[
    "createSnapshot",
    "deleteSnapshot",
    "createVolume",
    "deleteVolume",
    "attachVolume",
    "detachVolume",
    "createTemplate",
    "deleteTemplate",
    "registerTemplate",
    "deployVirtualMachine",
    "destroyVirtualMachine",
    "startVirtualMachine",
    "stopVirtualMachine",
    "createTags",
    "createSecurityGroup",
    "deleteSecurityGroup",
    "authorizeSecurityGroupIngress",
    "authorizeSecurityGroupEgress",
    "registerSSHKeyPair",
    "deleteSSHKeyPair",
    "getUploadParamsForVolume",
    "getUploadParamsForTemplate",
];

pub fn is_mutating(command: &str) -> bool {
    MUTATING.iter().any(|c| c.eq_ignore_ascii_case(command))
}

/// Largest page CloudStack serves (`default.page.size`).
pub const PAGE_SIZE: usize = 500;

/// How often and how long to poll an async job.
#[derive(Debug, Clone, Copy)]
pub struct PollPolicy {
    pub first: Duration,
    pub max: Duration,
    pub deadline: Duration,
}

impl Default for PollPolicy {
    fn default() -> Self {
        PollPolicy {
            first: Duration::from_millis(250),
            max: Duration::from_secs(5),
            deadline: Duration::from_secs(3600),
        }
    }
}

struct Keys {
    api_key: Secret,
    secret_key: Secret,
}

pub struct Client {
    http: reqwest::Client,
    endpoint: String,
    keys: RwLock<Option<Keys>>,
    pub poll: PollPolicy,
    pub page_size: usize,
    /// Attempts for idempotent reads that fail transiently.
    pub read_attempts: u32,
    /// Extract and upload URLs may be plain http (an http endpoint, or a
    /// profile with `insecure_endpoint = true`).
    pub allow_http_urls: bool,
}

/// `a=b&c=d` with form encoding (space as `+`), for query strings and bodies.
pub fn form_encode(params: &[(String, String)]) -> String {
    params
        .iter()
        .map(|(k, v)| format!("{}={}", form_component(k), form_component(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn form_component(text: &str) -> String {
    signing::encode_value(text, Dialect::Server).replace("%20", "+")
}

impl Client {
    pub fn new(endpoint: &str, api_key: Secret, secret_key: Secret) -> Result<Client, CloudError> {
        if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
            return Err(CloudError::Permanent(format!(
                "cloudstack endpoint '{endpoint}' must be an http(s) URL ending in /client/api"
            )));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(20))
            .read_timeout(Duration::from_secs(120))
            .build()
            .map_err(|e| {
                CloudError::Permanent(format!("cloudstack: HTTP client: {}", e.without_url()))
            })?;
        Ok(Client {
            http,
            endpoint: endpoint.to_string(),
            keys: RwLock::new(Some(Keys {
                api_key,
                secret_key,
            })),
            poll: PollPolicy::default(),
            page_size: PAGE_SIZE,
            read_attempts: 4,
            allow_http_urls: endpoint.starts_with("http://"),
        })
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Checks an extract or upload URL the server handed us (it lives on
    /// the storage VM, another host; no key of ours goes with it).
    pub fn check_handed(&self, what: &str, url: &str) -> Result<(), CloudError> {
        crate::http::check_handed(what, url, self.allow_http_urls)
    }

    /// Drops both keys (zeroized on drop); later calls fail with `Auth`.
    pub fn wipe_keys(&self) {
        if let Ok(mut keys) = self.keys.write() {
            *keys = None;
        }
    }

    /// The full signed parameter list for one request.
    fn signed(
        &self,
        command: &str,
        params: &[(&str, String)],
    ) -> Result<Vec<(String, String)>, CloudError> {
        let keys = self
            .keys
            .read()
            .map_err(|_| CloudError::Permanent("cloudstack: key store poisoned".into()))?;
        let keys = keys.as_ref().ok_or_else(|| {
            CloudError::Auth("cloudstack: credentials were wiped (revoked)".into())
        })?;
        let mut all: Vec<(String, String)> = params
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        all.push(("command".into(), command.into()));
        all.push(("apiKey".into(), keys.api_key.expose().to_string()));
        all.push(("response".into(), "json".into()));
        all.push(("signatureVersion".into(), "3".into()));
        all.push((
            "expires".into(),
            signing::format_expires(SystemTime::now() + signing::EXPIRY),
        ));
        let signature = signing::sign(&all, keys.secret_key.expose(), Dialect::Server);
        all.push(("signature".into(), signature));
        Ok(all)
    }

    /// One request; returns the unwrapped `<command>response` object.
    pub async fn call(
        &self,
        command: &str,
        params: &[(&str, String)],
    ) -> Result<Value, CloudError> {
        let attempts = if is_mutating(command) {
            1
        } else {
            self.read_attempts.max(1)
        };
        let mut delay = Duration::from_millis(200);
        let mut attempt = 1;
        loop {
            match self.call_once(command, params).await {
                Err(err) if err.is_transient() && attempt < attempts => {
                    tracing::debug!(command, attempt, error = %err, "cloudstack: retrying read");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    async fn call_once(
        &self,
        command: &str,
        params: &[(&str, String)],
    ) -> Result<Value, CloudError> {
        let signed = self.signed(command, params)?;
        let encoded = form_encode(&signed);
        drop(signed);
        // Mutating calls travel as a POST body (servers may enforce it);
        // reads as a GET query.
        let request = if is_mutating(command) {
            self.http
                .post(&self.endpoint)
                .header(
                    reqwest::header::CONTENT_TYPE,
                    "application/x-www-form-urlencoded",
                )
                .body(encoded)
        } else {
            let separator = if self.endpoint.contains('?') {
                '&'
            } else {
                '?'
            };
            self.http
                .get(format!("{}{separator}{encoded}", self.endpoint))
        };
        let response = request.send().await.map_err(|e| http_error(command, e))?;
        let status = response.status();
        let body = crate::body::read_text(response, MAX_ANSWER_BYTES, command).await?;
        unwrap_response(command, status.as_u16(), &body)
    }

    /// Lists every item across pages: `page`/`pagesize` until `count` items
    /// are held or a page comes back empty (or short, without a count).
    pub async fn list_all(
        &self,
        command: &str,
        item_key: &str,
        params: &[(&str, String)],
    ) -> Result<Vec<Value>, CloudError> {
        let mut items: Vec<Value> = Vec::new();
        let mut page = 1usize;
        let mut previous_first: Option<Value> = None;
        loop {
            let mut with_page: Vec<(&str, String)> = params.to_vec();
            with_page.push(("page", page.to_string()));
            with_page.push(("pagesize", self.page_size.to_string()));
            let body = self.call(command, &with_page).await?;
            let count = body.get("count").and_then(as_u64);
            let batch = match body.get(item_key) {
                Some(Value::Array(list)) => list.clone(),
                Some(other) => {
                    return Err(CloudError::Permanent(format!(
                        "cloudstack {command}: '{item_key}' is {} where a list was expected",
                        json_type(other)
                    )));
                }
                None => Vec::new(),
            };
            if batch.is_empty() {
                break;
            }
            // A server that ignores `page` would send page 1 forever.
            let first = batch.first().and_then(|item| item.get("id")).cloned();
            if page > 1 && first.is_some() && first == previous_first {
                return Err(CloudError::Permanent(format!(
                    "cloudstack {command}: page {page} repeats the previous page (server ignores 'page')"
                )));
            }
            previous_first = first;
            let short = batch.len() < self.page_size;
            items.extend(batch);
            match count {
                Some(total) if items.len() as u64 >= total => break,
                None if short => break,
                _ => {}
            }
            page += 1;
        }
        Ok(items)
    }

    /// Starts an async command and waits for its job; returns `jobresult`.
    pub async fn call_async(
        &self,
        command: &str,
        params: &[(&str, String)],
    ) -> Result<AsyncOutcome, CloudError> {
        let started = self.call(command, params).await?;
        let job_id = started.get("jobid").and_then(id_string).ok_or_else(|| {
            CloudError::Permanent(format!("cloudstack {command}: answer has no jobid"))
        })?;
        let object_id = started.get("id").and_then(id_string);
        let result = self.wait_job(command, &job_id).await?;
        Ok(AsyncOutcome {
            job_id,
            object_id,
            result,
        })
    }

    /// Polls `queryAsyncJobResult` until the job is done (1) or failed (2).
    pub async fn wait_job(&self, command: &str, job_id: &str) -> Result<Value, CloudError> {
        let started = Instant::now();
        let mut delay = self.poll.first;
        loop {
            let body = self
                .call("queryAsyncJobResult", &[("jobid", job_id.to_string())])
                .await?;
            let status = body.get("jobstatus").and_then(as_u64);
            match status {
                Some(0) => {}
                Some(1) => return Ok(body.get("jobresult").cloned().unwrap_or(Value::Null)),
                Some(2) => {
                    let result = body.get("jobresult");
                    let text = result
                        .and_then(|r| r.get("errortext"))
                        .and_then(Value::as_str)
                        .unwrap_or("the server gave no error text");
                    let code = result
                        .and_then(|r| r.get("errorcode"))
                        .and_then(as_u64)
                        .map(|c| format!(" (errorcode {c})"))
                        .unwrap_or_default();
                    return Err(CloudError::Permanent(format!(
                        "cloudstack job {job_id} ({command}) failed: {text}{code}"
                    )));
                }
                other => {
                    return Err(CloudError::Permanent(format!(
                        "cloudstack job {job_id} ({command}): unexpected jobstatus {other:?}"
                    )));
                }
            }
            if started.elapsed() + delay > self.poll.deadline {
                return Err(CloudError::Permanent(format!(
                    "cloudstack job {job_id} ({command}) still pending after {}s: giving up (check it in the CloudStack UI)",
                    self.poll.deadline.as_secs()
                )));
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 3 / 2).min(self.poll.max);
        }
    }
}

/// What an async command produced.
#[derive(Debug, Clone)]
pub struct AsyncOutcome {
    pub job_id: String,
    /// The `id` the command returned at once (create/deploy calls).
    pub object_id: Option<String>,
    pub result: Value,
}

impl AsyncOutcome {
    /// `jobresult.<key>`, e.g. `virtualmachine`, `volume`, `snapshot`.
    pub fn object(&self, key: &str) -> Option<&Value> {
        self.result.get(key)
    }

    /// Id of the created object: from the result, else the one returned at once.
    pub fn id(&self, key: &str) -> Option<String> {
        self.object(key)
            .and_then(|o| o.get("id"))
            .and_then(id_string)
            .or_else(|| self.object_id.clone())
    }
}

fn http_error(command: &str, err: reqwest::Error) -> CloudError {
    let transient = err.is_timeout() || err.is_connect() || err.is_request() || err.is_body();
    // The URL of a GET carries the api key and signature: never in the text.
    let text = format!("cloudstack {command}: {}", crate::http::error_text(err));
    if transient {
        CloudError::Transient(text)
    } else {
        CloudError::Permanent(text)
    }
}

/// Unwraps `{"<command>response": {...}}` and maps error bodies.
pub fn unwrap_response(command: &str, status: u16, body: &str) -> Result<Value, CloudError> {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    let Some(Value::Object(outer)) = parsed else {
        let snippet: String = body.chars().take(160).collect();
        let text = format!("cloudstack {command}: HTTP {status}, not a JSON answer: {snippet}");
        return Err(if status >= 500 || status == 429 {
            CloudError::Transient(text)
        } else {
            CloudError::Permanent(text)
        });
    };
    let wanted = format!("{}response", command.to_ascii_lowercase());
    let inner = match outer.get(&wanted) {
        Some(inner) => inner.clone(),
        // Errors for unknown commands come as `errorresponse`.
        None if outer.len() == 1 => outer.values().next().cloned().unwrap_or(Value::Null),
        None => {
            return Err(CloudError::Permanent(format!(
                "cloudstack {command}: answer has no '{wanted}' (keys: {})",
                crate::body::clip(&outer.keys().cloned().collect::<Vec<_>>().join(", "))
            )));
        }
    };
    if let Some(raw) = inner.get("errorcode") {
        let text = inner
            .get("errortext")
            .and_then(Value::as_str)
            .unwrap_or("no error text");
        let text = crate::body::clip(text);
        // An error code we cannot read is still an error, never a success.
        return Err(match as_u64(raw) {
            Some(code) => map_error_code(command, code, &text),
            None => CloudError::Permanent(format!(
                "cloudstack {command}: {text} (errorcode {})",
                crate::body::clip(&raw.to_string())
            )),
        });
    }
    if !(200..300).contains(&status) {
        let text = format!("cloudstack {command}: HTTP {status}");
        return Err(if status >= 500 || status == 429 {
            CloudError::Transient(text)
        } else {
            CloudError::Permanent(text)
        });
    }
    Ok(inner)
}

fn map_error_code(command: &str, code: u64, text: &str) -> CloudError {
    let message = format!("cloudstack {command}: {text} (errorcode {code})");
    let lower = text.to_ascii_lowercase();
    match code {
        401 | 403 | 531 => CloudError::Auth(message),
        429 => CloudError::Transient(message),
        431 if lower.contains("unable to find")
            || lower.contains("does not exist")
            || lower.contains("not found") =>
        {
            CloudError::NotFound(message)
        }
        // 537 RESOURCE_UNAVAILABLE / 503: worth another try later.
        503 | 537 => CloudError::Transient(message),
        _ => CloudError::Permanent(message),
    }
}

/// CloudStack numbers come as JSON numbers or strings.
pub fn as_u64(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Ids are integers in old servers and UUID strings in new ones: opaque text.
pub fn id_string(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

pub fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        let path = format!(
            "{}/../../tests/fixtures/cloudstack/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read_to_string(path).unwrap()
    }

    #[test]
    fn wrapped_responses_unwrap_and_empty_lists_are_empty() {
        let vms = unwrap_response(
            "listVirtualMachines",
            200,
            &fixture("listVirtualMachines_default.json"),
        )
        .unwrap();
        assert_eq!(vms["virtualmachine"].as_array().unwrap().len(), 2);
        let none = unwrap_response(
            "listTemplates",
            200,
            &fixture("listTemplates_notemplates.json"),
        )
        .unwrap();
        assert!(none.get("template").is_none());
    }

    #[test]
    fn error_bodies_become_clear_errors() {
        let err = unwrap_response(
            "deployVirtualMachine",
            200,
            &fixture("deployVirtualMachine_deployfail.json"),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("Unable to find service offering: 104"),
            "{err}"
        );
        assert!(matches!(err, CloudError::NotFound(_)));
        let err = unwrap_response(
            "registerSSHKeyPair",
            431,
            &fixture("registerSSHKeyPair_error.json"),
        )
        .unwrap_err();
        assert!(
            matches!(err, CloudError::Permanent(_))
                && err.to_string().contains("Public key is invalid")
        );
        let auth = r#"{"listzonesresponse":{"uuidList":[],"errorcode":401,"errortext":"unable to verify user credentials and/or request signature"}}"#;
        assert!(matches!(
            unwrap_response("listZones", 401, auth),
            Err(CloudError::Auth(_))
        ));
        assert!(
            unwrap_response("listZones", 502, "<html>bad gateway</html>")
                .unwrap_err()
                .is_transient()
        );
    }

    #[test]
    fn ids_and_counts_are_opaque() {
        assert_eq!(id_string(&serde_json::json!(17164)), Some("17164".into()));
        assert_eq!(
            id_string(&serde_json::json!("createvolumejob")),
            Some("createvolumejob".into())
        );
        assert_eq!(as_u64(&serde_json::json!("146")), Some(146));
    }

    #[test]
    fn form_encoding_uses_plus_for_space() {
        let text = form_encode(&[("name".into(), "Web Server*~".into())]);
        assert_eq!(text, "name=Web+Server*%7E");
    }
}
