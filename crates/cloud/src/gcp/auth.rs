//! Service-account authentication: the key file's RSA key signs a JWT
//! (RS256, aws-lc-rs), the token URI trades it for an access token, and the
//! token is refreshed before it expires. Key and token live only in
//! zeroizing memory and are wiped by [`TokenSource::wipe`].

use crate::CloudError;
use crate::secret::Secret;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::Deserialize;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use zeroize::Zeroizing;

pub const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// Google's default when a key file names none.
pub const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
/// Assertions live at most an hour (Google refuses longer).
const ASSERTION_LIFETIME: u64 = 3600;

/// The parts of a service-account key file we use. The private key moves
/// straight into a [`Secret`]; nothing else in the file is secret.
#[derive(Deserialize)]
struct KeyFile {
    #[serde(rename = "type")]
    kind: Option<String>,
    project_id: Option<String>,
    private_key_id: Option<String>,
    #[serde(deserialize_with = "secret")]
    private_key: Secret,
    client_email: String,
    token_uri: Option<String>,
}

fn secret<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Secret, D::Error> {
    String::deserialize(d).map(Secret::new)
}

/// A loaded service account: who it is and its signing key.
pub struct ServiceAccount {
    pub client_email: String,
    pub project_id: Option<String>,
    pub token_uri: String,
    key_id: Option<String>,
    key: RsaKeyPair,
}

impl std::fmt::Debug for ServiceAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccount")
            .field("client_email", &self.client_email)
            .field("token_uri", &self.token_uri)
            .field("key", &"[redacted]")
            .finish()
    }
}

impl ServiceAccount {
    /// Reads a key file. Errors name the file, never its content.
    pub fn from_file(path: &Path) -> Result<ServiceAccount, CloudError> {
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
            CloudError::Auth(format!("service-account key {}: {e}", path.display()))
        })?);
        ServiceAccount::from_json(&text)
            .map_err(|e| CloudError::Auth(format!("service-account key {}: {e}", path.display())))
    }

    pub fn from_json(text: &str) -> Result<ServiceAccount, String> {
        let file: KeyFile = serde_json::from_str(text)
            // serde's message may quote a value: keep only its position.
            .map_err(|e| format!("not a service-account key file (line {})", e.line()))?;
        if let Some(kind) = &file.kind
            && kind != "service_account"
        {
            return Err(format!("type is '{kind}', expected 'service_account'"));
        }
        let der = pem_to_der(file.private_key.expose())?;
        let key = RsaKeyPair::from_pkcs8(&der)
            .map_err(|e| format!("private_key is not a PKCS#8 RSA key ({e})"))?;
        Ok(ServiceAccount {
            client_email: file.client_email,
            project_id: file.project_id,
            token_uri: file
                .token_uri
                .unwrap_or_else(|| DEFAULT_TOKEN_URI.to_string()),
            key_id: file.private_key_id,
            key,
        })
    }

    /// A signed assertion for the token endpoint at `aud`, issued at `now`.
    pub fn assertion(&self, aud: &str, now: SystemTime) -> Result<Secret, CloudError> {
        let iat = now
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut header = serde_json::json!({"alg": "RS256", "typ": "JWT"});
        if let Some(kid) = &self.key_id {
            header["kid"] = kid.clone().into();
        }
        let claims = serde_json::json!({
            "iss": self.client_email,
            "scope": SCOPE,
            "aud": aud,
            "iat": iat,
            "exp": iat + ASSERTION_LIFETIME,
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut signature = vec![0u8; self.key.public_modulus_len()];
        self.key
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                signing_input.as_bytes(),
                &mut signature,
            )
            .map_err(|_| CloudError::Auth("signing the token request failed".into()))?;
        Ok(Secret::new(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature)
        )))
    }
}

/// `-----BEGIN PRIVATE KEY-----` PEM to DER, in zeroizing buffers.
fn pem_to_der(pem: &str) -> Result<Zeroizing<Vec<u8>>, String> {
    let body: Zeroizing<String> = Zeroizing::new(
        pem.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with("-----"))
            .collect(),
    );
    if !pem.contains("-----BEGIN PRIVATE KEY-----") {
        return Err("private_key is not a PEM 'PRIVATE KEY' (PKCS#8)".into());
    }
    STANDARD
        .decode(body.as_bytes())
        .map(Zeroizing::new)
        .map_err(|_| "private_key PEM is not valid base64".into())
}

struct Token {
    value: Secret,
    refresh_at: SystemTime,
    /// Unix seconds when the token stops working.
    expires_at: u64,
}

/// Hands out a valid access token, fetching a new one before the old expires.
pub struct TokenSource {
    http: reqwest::Client,
    account: Mutex<Option<ServiceAccount>>,
    token: tokio::sync::Mutex<Option<Token>>,
    /// Where assertions go; the key file's `token_uri` unless overridden.
    token_uri: String,
}

#[derive(Deserialize)]
struct TokenResponse {
    #[serde(deserialize_with = "secret")]
    access_token: Secret,
    expires_in: Option<u64>,
}

impl TokenSource {
    pub fn new(http: reqwest::Client, account: ServiceAccount, token_uri: Option<String>) -> Self {
        let token_uri = token_uri.unwrap_or_else(|| account.token_uri.clone());
        TokenSource {
            http,
            account: Mutex::new(Some(account)),
            token: tokio::sync::Mutex::new(None),
            token_uri,
        }
    }

    /// A token valid for a while yet.
    pub async fn token(&self) -> Result<Secret, CloudError> {
        let mut held = self.token.lock().await;
        if let Some(token) = held.as_ref()
            && SystemTime::now() < token.refresh_at
        {
            return Ok(token.value.clone());
        }
        let fresh = self.fetch().await?;
        let value = fresh.value.clone();
        *held = Some(fresh);
        Ok(value)
    }

    /// Who the calls are made as (the service account's email, not a
    /// secret) and until when the held token works; None once wiped.
    pub async fn access(&self) -> Option<crate::inventory::Access> {
        let identity = self
            .account
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|a| a.client_email.clone())?;
        let expires_at = self.token.lock().await.as_ref().map(|t| t.expires_at);
        // The token is fetched again from the key before it expires.
        Some(crate::inventory::Access {
            identity,
            expires_at,
            renews: true,
        })
    }

    /// Forgets the held token so the next call fetches another (after a 401).
    pub async fn invalidate(&self) {
        *self.token.lock().await = None;
    }

    async fn fetch(&self) -> Result<Token, CloudError> {
        let assertion = {
            let account = self.account.lock().unwrap_or_else(|p| p.into_inner());
            let account = account.as_ref().ok_or_else(|| {
                CloudError::Auth("credentials were wiped at the end of the run".into())
            })?;
            account.assertion(&self.token_uri, SystemTime::now())?
        };
        let body = Zeroizing::new(format!(
            "grant_type={}&assertion={}",
            percent_encoding::utf8_percent_encode(GRANT_TYPE, percent_encoding::NON_ALPHANUMERIC),
            assertion.expose()
        ));
        let response = self
            .http
            .post(&self.token_uri)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| {
                CloudError::Transient(format!(
                    "token endpoint {}: {}",
                    self.token_uri,
                    crate::http::error_text(e)
                ))
            })?;
        let status = response.status();
        if !status.is_success() {
            // OAuth error bodies name the problem, never the credential.
            let text = response.text().await.unwrap_or_default();
            let message = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| {
                    let error = v["error"].as_str()?.to_string();
                    let detail = v["error_description"].as_str().unwrap_or("");
                    Some(format!("{error}: {detail}"))
                })
                .unwrap_or_else(|| format!("HTTP {status}"));
            let err = format!("token request to {} refused: {message}", self.token_uri);
            return Err(if status.is_server_error() || status.as_u16() == 429 {
                CloudError::Transient(err)
            } else {
                CloudError::Auth(err)
            });
        }
        let text = Zeroizing::new(
            crate::body::read_text(
                response,
                crate::body::MAX_ANSWER_BYTES,
                &format!("token endpoint {}", self.token_uri),
            )
            .await?,
        );
        let parsed: TokenResponse = serde_json::from_str(&text).map_err(|_| {
            CloudError::Auth(format!(
                "token endpoint {} answered without an access_token",
                self.token_uri
            ))
        })?;
        Ok(token_from(parsed, SystemTime::now()))
    }

    /// Drops the key and the token (both zeroize on drop).
    pub async fn wipe(&self) {
        self.account
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        self.token.lock().await.take();
    }
}

/// Longest token life believed from a token endpoint (Google's last an hour).
const MAX_TOKEN_SECONDS: u64 = 24 * 3600;

/// The token a response gives, with its refresh and expiry times. A
/// server's `expires_in` is capped, so an absurd value neither overflows
/// nor keeps a token forever.
fn token_from(parsed: TokenResponse, now: SystemTime) -> Token {
    let lifetime = parsed.expires_in.unwrap_or(3600).min(MAX_TOKEN_SECONDS);
    // Refresh with a margin: 5 minutes, or half the lifetime if shorter.
    let margin = (lifetime / 2).min(300);
    Token {
        value: parsed.access_token,
        refresh_at: now
            .checked_add(Duration::from_secs(lifetime - margin))
            .unwrap_or(now),
        expires_at: now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs().saturating_add(lifetime))
            .unwrap_or(0),
    }
}

#[cfg(test)]
mod token_tests {
    use super::*;

    #[test]
    fn a_huge_expires_in_is_capped_not_an_overflow() {
        let now = SystemTime::now();
        let parsed: TokenResponse =
            serde_json::from_str(r#"{"access_token":"t","expires_in":18446744073709551615}"#)
                .unwrap();
        let token = token_from(parsed, now);
        let unix = now.duration_since(UNIX_EPOCH).unwrap().as_secs();
        assert_eq!(token.expires_at, unix + MAX_TOKEN_SECONDS);
        assert!(token.refresh_at > now);
        assert!(token.refresh_at < now + Duration::from_secs(MAX_TOKEN_SECONDS));
    }

    #[test]
    fn an_ordinary_hour_long_token_is_refreshed_five_minutes_early() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let parsed: TokenResponse =
            serde_json::from_str(r#"{"access_token":"t","expires_in":3600}"#).unwrap();
        let token = token_from(parsed, now);
        assert_eq!(token.expires_at, 1_003_600);
        assert_eq!(token.refresh_at, now + Duration::from_secs(3300));
    }
}
