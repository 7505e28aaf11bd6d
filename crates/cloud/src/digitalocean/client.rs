//! DigitalOcean API v2 client: bearer token, `per_page=200` with
//! `links.pages.next` followed to the end, the `ratelimit-*` headers
//! respected and 429 answered with a bounded backoff.

use crate::CloudError;
use crate::body::MAX_ANSWER_BYTES;
use crate::http::{Home, error_text};
use crate::secret::Secret;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const DEFAULT_ENDPOINT: &str = "https://api.digitalocean.com";
pub const PER_PAGE: u32 = 200;
/// What the API calls itself in `links.pages.next`, whatever endpoint we use.
const API_ORIGIN: &str = "https://api.digitalocean.com";

/// How long to wait on throttling and how often to poll async work.
#[derive(Debug, Clone, Copy)]
pub struct Pacing {
    pub first_backoff: Duration,
    pub max_backoff: Duration,
    /// Attempts of one request when throttled or failing transiently.
    pub attempts: u32,
    pub poll_every: Duration,
    pub poll_deadline: Duration,
}

impl Default for Pacing {
    fn default() -> Self {
        Pacing {
            first_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            attempts: 6,
            poll_every: Duration::from_secs(5),
            poll_deadline: Duration::from_secs(3600),
        }
    }
}

pub struct DoClient {
    http: reqwest::Client,
    base: String,
    /// The only origin the token goes to.
    home: Home,
    token: Mutex<Option<Secret>>,
    pub pacing: Pacing,
    /// 429 answers seen (for the report and tests).
    pub throttled: std::sync::atomic::AtomicU32,
}

impl DoClient {
    pub fn new(endpoint: Option<&str>, token: Secret) -> Result<DoClient, CloudError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .user_agent(concat!("altishift/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| CloudError::Permanent(format!("http client: {e}")))?;
        let base = endpoint
            .unwrap_or(DEFAULT_ENDPOINT)
            .trim_end_matches('/')
            .to_string();
        Ok(DoClient {
            http,
            home: Home::new(&base, "the DigitalOcean endpoint")?,
            base,
            token: Mutex::new(Some(token)),
            pacing: Pacing::default(),
            throttled: Default::default(),
        })
    }

    /// Drops the token; later requests fail with a clear error.
    pub fn forget_token(&self) -> bool {
        self.token
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .is_some()
    }

    fn bearer(&self) -> Result<String, CloudError> {
        let token = self.token.lock().unwrap_or_else(|p| p.into_inner());
        match &*token {
            Some(secret) => Ok(format!("Bearer {}", secret.expose())),
            None => Err(CloudError::Auth(
                "the DigitalOcean token was already revoked for this run".into(),
            )),
        }
    }

    /// A `links.pages.next` URL, checked before the token goes with it: on
    /// our endpoint, or on the API's own name (then taken as a path on our
    /// endpoint). Any other host, port or scheme is refused.
    fn follow(&self, what: &str, next: &str) -> Result<String, CloudError> {
        Ok(self.home.admit(what, next, &[API_ORIGIN])?.to_string())
    }

    pub async fn get(&self, path: &str) -> Result<Value, CloudError> {
        self.request(Method::GET, &format!("{}{path}", self.base), None)
            .await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, CloudError> {
        self.request(Method::POST, &format!("{}{path}", self.base), Some(body))
            .await
    }

    pub async fn delete(&self, path: &str) -> Result<(), CloudError> {
        match self
            .request(Method::DELETE, &format!("{}{path}", self.base), None)
            .await
        {
            Ok(_) | Err(CloudError::NotFound(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Every item of a listing, page by page until no `next` link is left.
    pub async fn list(&self, path: &str, key: &str) -> Result<Vec<Value>, CloudError> {
        let sep = if path.contains('?') { '&' } else { '?' };
        let mut url = format!("{}{path}{sep}page=1&per_page={PER_PAGE}", self.base);
        let mut items = Vec::new();
        for _ in 0..100_000 {
            let page = self.request(Method::GET, &url, None).await?;
            match page.get(key) {
                Some(Value::Array(list)) => items.extend(list.iter().cloned()),
                _ => {
                    return Err(CloudError::Permanent(format!(
                        "GET {path}: the answer has no '{key}' list"
                    )));
                }
            }
            match page.pointer("/links/pages/next").and_then(Value::as_str) {
                Some(next) if !next.is_empty() => {
                    url = self.follow(&format!("GET {path}: links.pages.next"), next)?
                }
                _ => return Ok(items),
            }
        }
        Err(CloudError::Permanent(format!(
            "GET {path}: pagination does not end"
        )))
    }

    async fn request(
        &self,
        method: Method,
        url: &str,
        body: Option<&Value>,
    ) -> Result<Value, CloudError> {
        let what = format!("{method} {}", url.strip_prefix(&self.base).unwrap_or(url));
        // A POST whose answer is lost may have acted: its caller looks for
        // what it made before asking again (see `target::create_once`).
        let blind_retry = method != Method::POST;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut request = self
                .http
                .request(method.clone(), url)
                .header("authorization", self.bearer()?)
                .header("accept", "application/json");
            if let Some(body) = body {
                request = request.json(body);
            }
            let response = match request.send().await {
                Ok(response) => response,
                Err(e) if blind_retry && attempt < self.pacing.attempts => {
                    tracing::debug!("{what}: {}; retrying", error_text(e));
                    tokio::time::sleep(self.backoff(attempt)).await;
                    continue;
                }
                Err(e) => {
                    return Err(CloudError::Transient(format!("{what}: {}", error_text(e))));
                }
            };
            let status = response.status();
            let wait = rate_limit_wait(response.headers());
            let text = crate::body::read_text(response, MAX_ANSWER_BYTES, &what).await?;
            if status == StatusCode::TOO_MANY_REQUESTS {
                self.throttled
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if attempt < self.pacing.attempts {
                    let delay = wait
                        .unwrap_or_default()
                        .max(self.backoff(attempt))
                        .min(self.pacing.max_backoff);
                    tracing::info!("{what}: rate limited, waiting {delay:?}");
                    tokio::time::sleep(delay).await;
                    continue;
                }
            } else if status.is_server_error() && blind_retry && attempt < self.pacing.attempts {
                tokio::time::sleep(self.backoff(attempt)).await;
                continue;
            }
            if status.is_success() {
                if text.trim().is_empty() {
                    return Ok(Value::Null);
                }
                return serde_json::from_str(&text).map_err(|e| {
                    CloudError::Permanent(format!("{what}: unreadable answer ({e})"))
                });
            }
            return Err(api_error(&what, status, &text));
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        self.pacing
            .first_backoff
            .saturating_mul(1 << attempt.min(10).saturating_sub(1))
            .min(self.pacing.max_backoff)
    }
}

/// Time until `ratelimit-reset` (epoch seconds) when `ratelimit-remaining`
/// is spent, or `retry-after` seconds.
fn rate_limit_wait(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let number = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    if let Some(seconds) = number("retry-after") {
        return Some(Duration::from_secs(seconds));
    }
    let remaining = number("ratelimit-remaining")?;
    if remaining > 0 {
        return None;
    }
    let reset = number("ratelimit-reset")?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    Some(Duration::from_secs(reset.saturating_sub(now)))
}

/// An error body `{id, message, request_id}` as a [`CloudError`].
pub fn api_error(what: &str, status: StatusCode, body: &str) -> CloudError {
    let parsed: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let id = crate::body::clip(parsed["id"].as_str().unwrap_or_default());
    let message = parsed["message"]
        .as_str()
        .map(crate::body::clip)
        .unwrap_or_else(|| body.chars().take(200).collect());
    let request = parsed["request_id"]
        .as_str()
        .map(|r| format!(", request {}", crate::body::clip(r)))
        .unwrap_or_default();
    let text = format!("{what}: {message} (HTTP {}{}{request})", status.as_u16(), {
        if id.is_empty() {
            String::new()
        } else {
            format!(", {id}")
        }
    });
    match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => CloudError::Auth(text),
        StatusCode::NOT_FOUND => CloudError::NotFound(text),
        StatusCode::TOO_MANY_REQUESTS => CloudError::Transient(text),
        s if s.is_server_error() => CloudError::Transient(text),
        _ => CloudError::Permanent(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_links_stay_on_our_endpoint() {
        let client = DoClient::new(Some("http://127.0.0.1:9/"), Secret::new("t".into())).unwrap();
        assert_eq!(
            client
                .follow(
                    "GET /v2/droplets",
                    "https://api.digitalocean.com/v2/droplets?page=2&per_page=200"
                )
                .unwrap(),
            "http://127.0.0.1:9/v2/droplets?page=2&per_page=200"
        );
        // The forms a string check let through: another host every time.
        for next in [
            "@evil.example/v2/droplets?page=2",
            ".evil.example/v2/droplets?page=2",
            "https://api.digitalocean.com@evil.example/v2/droplets?page=2",
            "https://api.digitalocean.com.evil.example/v2/droplets?page=2",
            "http://api.digitalocean.com/v2/droplets?page=2",
            "http://127.0.0.1:10/v2/droplets?page=2",
        ] {
            let err = client.follow("GET /v2/droplets", next).unwrap_err();
            assert!(
                err.to_string()
                    .contains("credentials only go to http://127.0.0.1:9"),
                "{next}: {err}"
            );
        }
    }

    #[test]
    fn error_bodies_name_id_message_and_request() {
        let e = api_error(
            "POST /v2/droplets",
            StatusCode::UNPROCESSABLE_ENTITY,
            r#"{"id":"unprocessable_entity","message":"You specified an invalid image for Droplet creation.","request_id":"r-1"}"#,
        );
        let text = e.to_string();
        assert!(
            text.contains("invalid image") && text.contains("r-1"),
            "{text}"
        );
        assert!(matches!(
            api_error("GET /v2/account", StatusCode::UNAUTHORIZED, "{}"),
            CloudError::Auth(_)
        ));
    }
}
