//! Authorised JSON calls to Compute Engine and Cloud Storage: bearer token,
//! Google's error body turned into a [`CloudError`], bounded retries of
//! throttling and server errors, `pageToken` paging, operation polling.

use super::auth::TokenSource;
use crate::CloudError;
use crate::body::MAX_ANSWER_BYTES;
use crate::http::{Home, error_text};
use serde_json::Value;
use std::time::Duration;

/// How long to wait between operation polls and retries.
#[derive(Debug, Clone, Copy)]
pub struct PollPolicy {
    pub first: Duration,
    pub max: Duration,
    /// Give up waiting for an operation (or an instance state) after this.
    pub deadline: Duration,
    /// Attempts for a call answered with 429 or 5xx.
    pub attempts: u32,
}

impl Default for PollPolicy {
    fn default() -> Self {
        PollPolicy {
            first: Duration::from_millis(500),
            max: Duration::from_secs(10),
            deadline: Duration::from_secs(3600),
            attempts: 6,
        }
    }
}

impl PollPolicy {
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 1u32 << attempt.min(10);
        (self.first * factor).min(self.max)
    }
}

pub struct Client {
    pub http: reqwest::Client,
    pub auth: TokenSource,
    /// `https://compute.googleapis.com/compute/v1/projects/PROJECT`
    pub compute: String,
    /// `https://storage.googleapis.com`
    pub storage: String,
    pub project: String,
    pub poll: PollPolicy,
    /// Where the token may go: the compute and the storage endpoints.
    compute_home: Home,
    storage_home: Home,
}

/// The names Google gives its own APIs in selfLinks and `Location`s; such
/// a link is taken as a path on the configured endpoint.
const GOOGLE_ORIGINS: &[&str] = &[
    "https://www.googleapis.com",
    "https://compute.googleapis.com",
    "https://storage.googleapis.com",
];

/// Google's JSON error body: `{"error":{"code","message","errors":[{reason}]}}`.
pub fn error_from(status: u16, body: &str, what: &str) -> CloudError {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    let error = parsed.as_ref().map(|v| &v["error"]);
    let message = error
        .and_then(|e| e["message"].as_str())
        .map(crate::body::clip)
        .unwrap_or_else(|| format!("HTTP {status}"));
    let reason = error
        .and_then(|e| e["errors"][0]["reason"].as_str())
        .map(crate::body::clip)
        .unwrap_or_default();
    let text = if reason.is_empty() {
        format!("{what}: {message}")
    } else {
        format!("{what}: {message} ({reason})")
    };
    match status {
        401 | 403 if reason != "rateLimitExceeded" && reason != "userRateLimitExceeded" => {
            CloudError::Auth(text)
        }
        404 => CloudError::NotFound(text),
        403 | 408 | 429 => CloudError::Transient(text),
        s if s >= 500 => CloudError::Transient(text),
        _ => CloudError::Permanent(text),
    }
}

/// The last path segment of a selfLink or partial URL.
pub fn last_segment(url: &str) -> &str {
    url.rsplit('/').next().unwrap_or(url)
}

/// int64 fields arrive as JSON strings; accept numbers too.
pub fn int64(value: &Value) -> Option<u64> {
    match value {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_u64(),
        _ => None,
    }
}

impl Client {
    /// `compute`: `…/compute/v1/projects/PROJECT`; `storage`: the Cloud
    /// Storage endpoint.
    pub fn new(
        http: reqwest::Client,
        auth: TokenSource,
        compute: String,
        storage: String,
        project: String,
    ) -> Result<Client, CloudError> {
        Ok(Client {
            compute_home: Home::new(&compute, "the compute endpoint")?,
            storage_home: Home::new(&storage, "the storage endpoint")?,
            http,
            auth,
            compute,
            storage,
            project,
            poll: PollPolicy::default(),
        })
    }

    /// An absolute URL under the project (`zones/z/instances`); an absolute
    /// `path` only when it is on the compute endpoint (the token goes with it).
    pub fn url(&self, path: &str) -> Result<String, CloudError> {
        if path.contains("://") {
            let url = self
                .compute_home
                .admit(&format!("GET {path}"), path, GOOGLE_ORIGINS)?;
            Ok(url.to_string())
        } else {
            Ok(format!("{}/{}", self.compute, path.trim_start_matches('/')))
        }
    }

    /// A URL Cloud Storage handed us (a resumable session's `Location`),
    /// checked to be on the storage endpoint.
    pub fn storage_url(&self, what: &str, link: &str) -> Result<String, CloudError> {
        Ok(self
            .storage_home
            .admit(what, link, GOOGLE_ORIGINS)?
            .to_string())
    }

    /// Sends a request built by `build` with a bearer token; retries 429/5xx
    /// and network errors (for idempotent calls, or when nothing was done),
    /// refreshes the token once after a 401.
    pub async fn send(
        &self,
        what: &str,
        idempotent: bool,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, CloudError> {
        let mut attempt = 0;
        let mut refreshed = false;
        loop {
            let token = self.auth.token().await?;
            let result = build().bearer_auth(token.expose()).send().await;
            let err = match result {
                Ok(response) if response.status().is_success() => return Ok(response),
                Ok(response) if response.status().as_u16() == 308 => return Ok(response),
                Ok(response) => {
                    let status = response.status().as_u16();
                    let body = crate::body::read_text(response, MAX_ANSWER_BYTES, what)
                        .await
                        .unwrap_or_default();
                    if status == 401 && !refreshed {
                        refreshed = true;
                        self.auth.invalidate().await;
                        continue;
                    }
                    let err = error_from(status, &body, what);
                    // A 429 was refused before anything happened: always safe.
                    if !(idempotent || status == 429) {
                        return Err(err);
                    }
                    err
                }
                Err(e) if idempotent || e.is_connect() => {
                    CloudError::Transient(format!("{what}: {}", error_text(e)))
                }
                Err(e) => {
                    return Err(CloudError::Transient(format!("{what}: {}", error_text(e))));
                }
            };
            if !err.is_transient() || attempt + 1 >= self.poll.attempts {
                return Err(err);
            }
            tokio::time::sleep(self.poll.delay(attempt)).await;
            attempt += 1;
        }
    }

    pub async fn get(&self, path: &str) -> Result<Value, CloudError> {
        let url = self.url(path)?;
        let response = self
            .send(&format!("GET {path}"), true, || self.http.get(&url))
            .await?;
        json(response, path).await
    }

    /// A POST with a fresh `requestId`: Compute Engine ignores a repeat of
    /// the same id (for 60 minutes) and answers with the first operation, so
    /// a create whose answer was lost can be sent again without acting twice.
    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, CloudError> {
        let sep = if path.contains('?') { '&' } else { '?' };
        let url = format!("{}{sep}requestId={}", self.url(path)?, request_id()?);
        let response = self
            .send(&format!("POST {path}"), true, || {
                self.http.post(&url).json(body)
            })
            .await?;
        json(response, path).await
    }

    pub async fn delete(&self, path: &str) -> Result<Value, CloudError> {
        let url = self.url(path)?;
        let response = self
            .send(&format!("DELETE {path}"), true, || self.http.delete(&url))
            .await?;
        json(response, path).await
    }

    /// Every item of a list, following `nextPageToken` to the end.
    pub async fn list_all(&self, path: &str) -> Result<Vec<Value>, CloudError> {
        let mut items = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let url = page_url(path, token.as_deref());
            let page = self.get(&url).await?;
            if let Some(list) = page["items"].as_array() {
                items.extend(list.iter().cloned());
            }
            match page["nextPageToken"].as_str() {
                Some(next) if !next.is_empty() && Some(next) != token.as_deref() => {
                    token = Some(next.to_string())
                }
                _ => return Ok(items),
            }
        }
    }

    /// Every item of an `aggregatedList` (`items` keyed by scope, each with a
    /// list under `key` or a `warning`), following `nextPageToken`.
    pub async fn aggregated(&self, path: &str, key: &str) -> Result<Vec<Value>, CloudError> {
        let mut items = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let url = page_url(path, token.as_deref());
            let page = self.get(&url).await?;
            if let Some(scopes) = page["items"].as_object() {
                for scoped in scopes.values() {
                    if let Some(list) = scoped[key].as_array() {
                        items.extend(list.iter().cloned());
                    }
                }
            }
            match page["nextPageToken"].as_str() {
                Some(next) if !next.is_empty() && Some(next) != token.as_deref() => {
                    token = Some(next.to_string())
                }
                _ => return Ok(items),
            }
        }
    }

    /// Polls an operation (zonal or global) until DONE; DONE with `error`
    /// is a failure that names every error the operation reports.
    pub async fn wait(&self, operation: Value) -> Result<Value, CloudError> {
        let started = std::time::Instant::now();
        let mut op = operation;
        let mut attempt = 0;
        loop {
            if op["status"] == "DONE" {
                return check_done(op);
            }
            if started.elapsed() > self.poll.deadline {
                return Err(CloudError::Transient(format!(
                    "operation {} still {} after {:?}",
                    op["name"].as_str().unwrap_or("?"),
                    op["status"].as_str().unwrap_or("?"),
                    self.poll.deadline
                )));
            }
            tokio::time::sleep(self.poll.delay(attempt)).await;
            attempt += 1;
            let link = op["selfLink"].as_str().map(str::to_string);
            let name = op["name"].as_str().unwrap_or_default().to_string();
            let path = match (link, op["zone"].as_str()) {
                // The token follows a selfLink only to our compute endpoint.
                (Some(link), _) => self
                    .compute_home
                    .admit(&format!("operation {name}"), &link, GOOGLE_ORIGINS)?
                    .to_string(),
                (None, Some(zone)) => format!("zones/{}/operations/{name}", last_segment(zone)),
                (None, None) => format!("global/operations/{name}"),
            };
            op = self.get(&path).await?;
        }
    }
}

fn check_done(op: Value) -> Result<Value, CloudError> {
    let errors = op["error"]["errors"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if errors.is_empty() && op["httpErrorStatusCode"].is_null() {
        return Ok(op);
    }
    let what = errors
        .iter()
        .map(|e| {
            format!(
                "{}: {}",
                e["code"].as_str().unwrap_or("ERROR"),
                e["message"].as_str().unwrap_or("")
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    let text = format!(
        "operation {} ({}) failed: {}{}",
        op["name"].as_str().unwrap_or("?"),
        op["operationType"].as_str().unwrap_or("?"),
        what,
        op["httpErrorMessage"]
            .as_str()
            .map(|m| format!(" [{m}]"))
            .unwrap_or_default()
    );
    Err(match op["httpErrorStatusCode"].as_u64() {
        Some(429) | Some(500..=599) => CloudError::Transient(text),
        _ => CloudError::Permanent(text),
    })
}

fn page_url(path: &str, token: Option<&str>) -> String {
    let sep = if path.contains('?') { '&' } else { '?' };
    match token {
        Some(token) => format!(
            "{path}{sep}maxResults=500&pageToken={}",
            percent_encoding::utf8_percent_encode(token, percent_encoding::NON_ALPHANUMERIC)
        ),
        None => format!("{path}{sep}maxResults=500"),
    }
}

async fn json(response: reqwest::Response, what: &str) -> Result<Value, CloudError> {
    let text = crate::body::read_text(response, MAX_ANSWER_BYTES, what).await?;
    if text.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(&text)
        .map_err(|e| CloudError::Permanent(format!("{what}: answer is not JSON ({e})")))
}

/// A random (version 4) UUID, never the zero UUID the API refuses.
fn request_id() -> Result<String, CloudError> {
    let mut b = [0u8; 16];
    aws_lc_rs::rand::fill(&mut b)
        .map_err(|_| CloudError::Permanent("no random bytes for a requestId".into()))?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn google_error_bodies_map_to_kinds() {
        let body = r#"{"error":{"code":404,"message":"The resource 'x' was not found","errors":[{"domain":"global","reason":"notFound","message":"x"}]}}"#;
        assert!(matches!(
            error_from(404, body, "GET x"),
            CloudError::NotFound(_)
        ));
        let limited = r#"{"error":{"code":403,"message":"Rate Limit Exceeded","errors":[{"reason":"rateLimitExceeded"}]}}"#;
        assert!(error_from(403, limited, "x").is_transient());
        assert!(matches!(
            error_from(
                403,
                r#"{"error":{"code":403,"message":"denied","errors":[{"reason":"forbidden"}]}}"#,
                "x"
            ),
            CloudError::Auth(_)
        ));
        assert!(error_from(429, "", "x").is_transient());
        assert!(error_from(503, "<html>", "x").is_transient());
    }

    #[test]
    fn done_operations_with_errors_fail() {
        let op: Value = serde_json::from_str(
            r#"{"name":"op","status":"DONE","operationType":"insert","error":{"errors":[{"code":"QUOTA_EXCEEDED","message":"no cpus"}]},"httpErrorStatusCode":403}"#,
        )
        .unwrap();
        let err = check_done(op).unwrap_err();
        assert!(err.to_string().contains("QUOTA_EXCEEDED: no cpus"), "{err}");
        assert!(check_done(serde_json::json!({"status":"DONE"})).is_ok());
    }

    #[test]
    fn int64_strings_parse() {
        assert_eq!(int64(&serde_json::json!("10")), Some(10));
        assert_eq!(int64(&serde_json::json!(10)), Some(10));
        assert_eq!(int64(&serde_json::json!("x")), None);
        assert_eq!(
            last_segment("https://x/zones/us-central1-a"),
            "us-central1-a"
        );
    }
}
