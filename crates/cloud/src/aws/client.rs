//! Connecting to AWS: credentials (default chain, shared-config profile,
//! `prompt`/`env:` keys, STS AssumeRole), region, endpoint override, and the
//! one place SDK errors become [`CloudError`]s.
//!
//! No credential value is ever logged, put in an error or returned: keys from
//! a profile live in [`Secret`]s until they are handed to the SDK's
//! `Credentials` (whose `Debug` redacts them), and are wiped at `revoke`.

use super::profile::AwsProfile;
use super::whole_xml::WholeXml;
use crate::CloudError;
use crate::secret::{Prompter, Secret};
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_ec2::config::ProvideCredentials;
use aws_sdk_ec2::config::http::HttpResponse;
use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sts::config::Credentials;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

/// Session name and length for STS AssumeRole.
pub const SESSION_NAME: &str = "altishift-migration";
pub const SESSION_SECONDS: i32 = 3600;

/// Where the credentials came from, and until when they are good (never the values).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    /// `default chain`, `profile NAME`, `keys from the profile`, `assumed role ARN`.
    pub source: String,
    /// Expiry of temporary credentials, RFC 3339.
    pub expires: Option<String>,
}

/// The SDK clients for one region.
#[derive(Clone)]
pub struct RegionClients {
    pub ec2: aws_sdk_ec2::Client,
    pub ebs: aws_sdk_ebs::Client,
}

/// The SDK configuration (credentials inside) and per-region clients.
/// `wipe` drops all of it: afterwards every call fails with `Auth`.
pub struct Clients {
    name: String,
    region: String,
    config: RwLock<Option<SdkConfig>>,
    by_region: Mutex<HashMap<String, RegionClients>>,
    pub access: Access,
    /// With `role_arn`: the assumed-role ARN and the session's expiry.
    assumed: Option<crate::inventory::Access>,
}

impl Clients {
    /// From a profile. `endpoint` overrides every service endpoint (tests: moto).
    pub async fn connect(
        name: &str,
        profile: &AwsProfile,
        prompt: Prompter<'_>,
    ) -> Result<Clients, CloudError> {
        let region = profile.region.clone().ok_or_else(|| {
            CloudError::Permanent(format!(
                "[clouds.{name}] an aws cloud needs 'region' (e.g. eu-central-1)"
            ))
        })?;
        let keys = match (&profile.api_key, &profile.secret_key) {
            (Some(id), Some(secret)) => {
                let id = id
                    .resolve(&format!("{name} AWS access key id"), prompt)
                    .map_err(|e| CloudError::Auth(format!("[clouds.{name}] api_key: {e}")))?;
                let secret = secret
                    .resolve(&format!("{name} AWS secret access key"), prompt)
                    .map_err(|e| CloudError::Auth(format!("[clouds.{name}] secret_key: {e}")))?;
                Some((id, secret))
            }
            (None, None) => None,
            _ => {
                return Err(CloudError::Permanent(format!(
                    "[clouds.{name}] set both 'api_key' (access key id) and 'secret_key', or neither (default credential chain)"
                )));
            }
        };
        let base = base_config(
            &region,
            profile.endpoint.as_deref(),
            profile.profile.as_deref(),
            keys,
        )
        .await;
        let mut access = Access {
            source: match (&profile.api_key, &profile.profile) {
                (Some(_), _) => "keys from the profile".to_string(),
                (None, Some(p)) => format!("shared-config profile {p}"),
                (None, None) => "default credential chain".to_string(),
            },
            expires: None,
        };
        let mut assumed = None;
        let config = match &profile.role_arn {
            Some(role) => {
                // One AssumeRole now: it proves the role can be assumed before
                // anything is planned, and gives the identity and expiry to show.
                let session = assume_role(&base, role).await?;
                access = Access {
                    source: format!(
                        "assumed role {role} (session {SESSION_NAME}, renewed before it expires)"
                    ),
                    expires: session.expires,
                };
                assumed = Some(session.identity);
                // Calls then go through the SDK's role provider, which assumes
                // the role again whenever the cached session nears its end: a
                // transfer longer than SESSION_SECONDS must not fail half-way.
                let renewing = aws_config::sts::AssumeRoleProvider::builder(role.clone())
                    .session_name(SESSION_NAME)
                    .session_length(Duration::from_secs(SESSION_SECONDS as u64))
                    .configure(&base)
                    .build()
                    .await;
                session
                    .config
                    .to_builder()
                    .credentials_provider(aws_sdk_sts::config::SharedCredentialsProvider::new(
                        renewing,
                    ))
                    .build()
            }
            None => base,
        };
        if let Some(expires) = &access.expires {
            tracing::info!(cloud = name, expires = %expires, "aws: temporary credentials");
        }
        Ok(Clients {
            name: name.to_string(),
            region,
            config: RwLock::new(Some(config)),
            by_region: Mutex::new(HashMap::new()),
            access,
            assumed,
        })
    }

    /// Who the tool acts as and until when, for the inventory. With
    /// `role_arn`, the assumed-role ARN and the AssumeRole credentials'
    /// expiration (no further call). Otherwise STS GetCallerIdentity's ARN
    /// and the expiry the credentials carry, if any (SSO, credential_process,
    /// instance roles and session keys do; long-term keys do not). A failed
    /// GetCallerIdentity (an STS endpoint out of reach from a private
    /// network) does not fail the inventory: the identity then says where the
    /// credentials came from and that the call failed.
    pub async fn identity(&self) -> Result<crate::inventory::Access, CloudError> {
        if let Some(assumed) = &self.assumed {
            return Ok(assumed.clone());
        }
        let config = self.sdk_config()?;
        let expires_at = match config.credentials_provider() {
            Some(provider) => provider
                .provide_credentials()
                .await
                .map_err(|e| CloudError::Auth(format!("{}: loading credentials: {e}", self.name)))?
                .expiry()
                .and_then(unix_seconds),
            None => None,
        };
        let identity = match sts_client(&config).get_caller_identity().send().await {
            Ok(answer) => answer.arn().map(str::to_string).ok_or_else(|| {
                CloudError::Permanent("sts GetCallerIdentity: the answer holds no <Arn>".into())
            }),
            Err(e) => Err(classify("sts GetCallerIdentity", e)),
        };
        let identity = identity.unwrap_or_else(|err| {
            tracing::warn!(cloud = %self.name, error = %err, "aws: identity unknown");
            format!("{} (identity unknown: {err})", self.access.source)
        });
        Ok(crate::inventory::Access {
            identity,
            expires_at,
            renews: false,
        })
    }

    /// The account id STS GetCallerIdentity reports for these credentials.
    pub async fn account(&self) -> Result<Option<String>, CloudError> {
        let config = self.sdk_config()?;
        let answer = sts_client(&config)
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| classify("sts GetCallerIdentity", e))?;
        Ok(answer.account().map(str::to_string))
    }

    /// The SDK config while the credentials live (revoke wipes them).
    fn sdk_config(&self) -> Result<SdkConfig, CloudError> {
        self.config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| self.wiped())
    }

    fn wiped(&self) -> CloudError {
        CloudError::Auth(format!(
            "{}: credentials were wiped at the end of the run",
            self.name
        ))
    }

    /// The profile's region.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The profile's region and every region this process has used.
    pub fn known_regions(&self) -> Vec<String> {
        let mut regions: Vec<String> = lock(&self.by_region).keys().cloned().collect();
        regions.push(self.region.clone());
        regions.sort();
        regions.dedup();
        regions
    }

    /// Clients for `region` (the profile's when None).
    pub fn get(&self, region: Option<&str>) -> Result<RegionClients, CloudError> {
        let region = region.unwrap_or(&self.region).to_string();
        let mut cache = lock(&self.by_region);
        if let Some(c) = cache.get(&region) {
            return Ok(c.clone());
        }
        let guard = self.config.read().unwrap_or_else(|p| p.into_inner());
        let config = guard.as_ref().ok_or_else(|| self.wiped())?;
        let ec2 = aws_sdk_ec2::config::Builder::from(config)
            .region(Region::new(region.clone()))
            .interceptor(WholeXml)
            .build();
        let ebs = aws_sdk_ebs::config::Builder::from(config)
            .region(Region::new(region.clone()))
            .build();
        let clients = RegionClients {
            ec2: aws_sdk_ec2::Client::from_conf(ec2),
            ebs: aws_sdk_ebs::Client::from_conf(ebs),
        };
        cache.insert(region, clients.clone());
        Ok(clients)
    }

    /// Drops the configuration and every client (and with them the credentials).
    pub fn wipe(&self) {
        *self.config.write().unwrap_or_else(|p| p.into_inner()) = None;
        lock(&self.by_region).clear();
    }
}

async fn base_config(
    region: &str,
    endpoint: Option<&str>,
    profile: Option<&str>,
    keys: Option<(Secret, Secret)>,
) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region.to_string()))
        // Bounded: the SDK retries throttling, 5xx and resets with backoff;
        // the engine retries blocks on top (CloudError::Transient).
        .retry_config(RetryConfig::standard().with_max_attempts(4))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(10))
                .operation_attempt_timeout(Duration::from_secs(120))
                .build(),
        );
    if let Some(endpoint) = endpoint {
        loader = loader.endpoint_url(endpoint);
    }
    if let Some(profile) = profile {
        loader = loader.profile_name(profile);
    }
    if let Some((id, secret)) = keys {
        loader = loader.credentials_provider(Credentials::new(
            id.expose(),
            secret.expose(),
            None,
            None,
            "altishift-profile",
        ));
    }
    loader.load().await
}

/// What STS AssumeRole gave: a config holding the session's credentials,
/// the expiry (RFC 3339) to show, and the identity for the inventory.
struct Session {
    config: SdkConfig,
    expires: Option<String>,
    identity: crate::inventory::Access,
}

/// An STS client that refuses cut-short XML, like the EC2 one.
fn sts_client(config: &SdkConfig) -> aws_sdk_sts::Client {
    aws_sdk_sts::Client::from_conf(
        aws_sdk_sts::config::Builder::from(config)
            .interceptor(WholeXml)
            .build(),
    )
}

fn unix_seconds(t: SystemTime) -> Option<u64> {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs())
}

/// STS AssumeRole with our session name and length.
async fn assume_role(base: &SdkConfig, role: &str) -> Result<Session, CloudError> {
    let answer = sts_client(base)
        .assume_role()
        .role_arn(role)
        .role_session_name(SESSION_NAME)
        .duration_seconds(SESSION_SECONDS)
        .send()
        .await
        .map_err(|e| classify(&format!("sts AssumeRole {role}"), e))?;
    let creds = answer.credentials().ok_or_else(|| {
        CloudError::Auth(format!(
            "sts AssumeRole {role}: the answer holds no credentials"
        ))
    })?;
    let expiry = SystemTime::try_from(*creds.expiration()).ok();
    let expires = expiry.map(|t| humantime::format_rfc3339_seconds(t).to_string());
    let identity = crate::inventory::Access {
        identity: answer
            .assumed_role_user()
            .map(|u| u.arn().to_string())
            .filter(|a| !a.is_empty())
            .unwrap_or_else(|| format!("{role} (session {SESSION_NAME})")),
        expires_at: expiry.and_then(unix_seconds),
        // Calls go through AssumeRoleProvider, which assumes the role again.
        renews: true,
    };
    let provider = Credentials::new(
        creds.access_key_id(),
        creds.secret_access_key(),
        Some(creds.session_token().to_string()),
        expiry,
        "altishift-assume-role",
    );
    let config = base
        .to_builder()
        .credentials_provider(aws_sdk_sts::config::SharedCredentialsProvider::new(
            provider,
        ))
        .build();
    Ok(Session {
        config,
        expires,
        identity,
    })
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Error codes AWS uses for "slow down" and "try again".
const TRANSIENT_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "RequestLimitExceeded",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "SlowDown",
    "InternalError",
    "InternalFailure",
    "InternalServerException",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "Unavailable",
    "RequestTimeout",
    "RequestTimeoutException",
    "ConcurrentLimitExceededException",
];

const AUTH_CODES: &[&str] = &[
    "AuthFailure",
    "UnauthorizedOperation",
    "AccessDenied",
    "AccessDeniedException",
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "ExpiredTokenException",
    "UnrecognizedClientException",
];

/// Classifies an SDK error: timeouts, connection failures, throttling and
/// 5xx are transient (the engine retries them); 401/403 are `Auth`;
/// `*.NotFound` and 404 are `NotFound`; the rest is permanent.
pub fn classify<E>(context: &str, err: SdkError<E, HttpResponse>) -> CloudError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = err.raw_response().map(|r| r.status().as_u16());
    match &err {
        SdkError::TimeoutError(_) => {
            return CloudError::Transient(format!("{context}: timed out"));
        }
        SdkError::DispatchFailure(f) => {
            return CloudError::Transient(format!(
                "{context}: connection failed ({})",
                if f.is_timeout() {
                    "timeout"
                } else if f.is_io() {
                    "i/o"
                } else {
                    "dispatch"
                }
            ));
        }
        SdkError::ResponseError(_) => {
            return CloudError::Transient(format!(
                "{context}: unreadable answer (HTTP {}): {}",
                status.map_or("?".into(), |s| s.to_string()),
                std::error::Error::source(&err).map_or("no detail".into(), error_chain)
            ));
        }
        _ => {}
    }
    let code = err.code().unwrap_or("").to_string();
    let message = err.message().unwrap_or("").to_string();
    let detail = match (code.is_empty(), message.is_empty()) {
        (false, false) => format!("{code}: {message}"),
        (false, true) => code.clone(),
        (true, false) => message.clone(),
        // No error code: the answer was not the API's error shape (an HTML
        // page from a proxy, garbage) or a success we could not parse.
        (true, true) => {
            let body = err
                .raw_response()
                .and_then(|r| r.body().bytes())
                .map(excerpt)
                .unwrap_or_default();
            let why = match &err {
                SdkError::ServiceError(s) if status.is_some_and(|s| (200..300).contains(&s)) => {
                    format!(": unreadable answer: {}", error_chain(s.err()))
                }
                _ => String::new(),
            };
            format!(
                "HTTP {}{why}{}",
                status.map_or("?".into(), |s| s.to_string()),
                if body.is_empty() {
                    String::new()
                } else {
                    format!(" (body: {body})")
                }
            )
        }
    };
    classify_parts(context, status, &code, &detail)
}

/// An error and its sources, `a: b: c`.
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        let next = e.to_string();
        // The SDK's wrapper around an interceptor's error says nothing more.
        if text.ends_with("interceptor encountered an error") {
            text = next;
        } else if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = e.source();
    }
    text
}

/// The start of a body for an error message: printable, one line, short.
pub fn excerpt(body: &[u8]) -> String {
    const MAX: usize = 120;
    let text: String = String::from_utf8_lossy(body)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.chars().count() > MAX {
        format!("{}…", text.chars().take(MAX).collect::<String>())
    } else {
        text
    }
}

/// The rule behind [`classify`], on plain values (unit-tested).
pub fn classify_parts(context: &str, status: Option<u16>, code: &str, detail: &str) -> CloudError {
    let text = format!("{context}: {detail}");
    if TRANSIENT_CODES.contains(&code) || matches!(status, Some(429) | Some(500..=599)) {
        CloudError::Transient(text)
    } else if AUTH_CODES.contains(&code) || matches!(status, Some(401) | Some(403)) {
        CloudError::Auth(text)
    } else if code.ends_with(".NotFound")
        || code.ends_with("NotFoundException")
        || code == "ResourceNotFoundException"
        || status == Some(404)
    {
        CloudError::NotFound(text)
    } else {
        CloudError::Permanent(text)
    }
}

/// Shared handle to the clients.
pub type SharedClients = Arc<Clients>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_are_short_and_on_one_line() {
        assert_eq!(
            excerpt(b"<html>\n  <b>oops</b>\n</html>"),
            "<html> <b>oops</b> </html>"
        );
        let long = excerpt(&[b'x'; 500]);
        assert_eq!(long.chars().count(), 121);
    }

    #[test]
    fn throttling_and_5xx_are_transient_auth_and_not_found_are_named() {
        assert!(classify_parts("x", Some(400), "RequestLimitExceeded", "slow").is_transient());
        assert!(classify_parts("x", Some(503), "", "HTTP 503").is_transient());
        assert!(classify_parts("x", Some(429), "", "").is_transient());
        assert!(matches!(
            classify_parts("x", Some(401), "AuthFailure", "no"),
            CloudError::Auth(_)
        ));
        assert!(matches!(
            classify_parts("x", Some(400), "InvalidSnapshot.NotFound", "gone"),
            CloudError::NotFound(_)
        ));
        assert!(matches!(
            classify_parts("x", Some(400), "InvalidParameterValue", "bad"),
            CloudError::Permanent(_)
        ));
    }
}
