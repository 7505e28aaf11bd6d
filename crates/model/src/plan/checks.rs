//! What validation looks for from outside the migrated instance, recorded
//! in the plan so that the approval covers what "validated" means: the
//! target's serial console shows a marker, TCP ports answer from the jump
//! host, HTTP URLs answer with a status. Each check retries until its
//! deadline: a freshly deployed instance takes a while to boot.

use crate::text::safe;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

/// The placeholder an HTTP check's URL names the instance's address with.
pub const ADDRESS: &str = "{address}";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutsideChecks {
    /// TCP ports that must accept a connection from the jump host.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<u16>,
    /// HTTP GETs and the status each must answer with.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub http: Vec<HttpCheck>,
    /// A regex the target's serial console must show (where the target
    /// offers console output through its API).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial_marker: Option<String>,
    /// How long each check keeps trying before it fails.
    pub timeout_seconds: u64,
    /// How long one attempt (a connect, a request, a console read) may take.
    pub attempt_seconds: u64,
    /// The pause between attempts.
    pub interval_seconds: u64,
}

/// `--check URL[=STATUS]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpCheck {
    /// `http://{address}:8080/health`: `{address}` becomes the instance's.
    pub url: String,
    pub status: u16,
}

impl OutsideChecks {
    /// Five minutes: a cloud instance usually boots and starts sshd within
    /// one to three; AWS updates console output with some delay.
    pub const DEFAULT_TIMEOUT_SECONDS: u64 = 300;
    pub const DEFAULT_ATTEMPT_SECONDS: u64 = 10;
    pub const DEFAULT_INTERVAL_SECONDS: u64 = 5;
    /// The port issue 13 names: SSH answers once the guest is up.
    pub const DEFAULT_PORT: u16 = 22;
    pub const DEFAULT_STATUS: u16 = 200;

    /// What `plan` checks when the operator names nothing: SSH answers and
    /// the console shows `marker`, with the default timing. The console's
    /// plans get the same, so a plan means the same from either.
    pub fn standard(marker: String) -> OutsideChecks {
        OutsideChecks {
            ports: vec![Self::DEFAULT_PORT],
            http: Vec::new(),
            serial_marker: Some(marker),
            timeout_seconds: Self::DEFAULT_TIMEOUT_SECONDS,
            attempt_seconds: Self::DEFAULT_ATTEMPT_SECONDS,
            interval_seconds: Self::DEFAULT_INTERVAL_SECONDS,
        }
    }

    /// True when nothing is checked from outside (a plan without the
    /// field keeps its hash).
    pub fn is_empty(&self) -> bool {
        self.ports.is_empty() && self.http.is_empty() && self.serial_marker.is_none()
    }

    /// The plan text's section, empty when nothing is checked.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if self.is_empty() {
            return out;
        }
        let _ = writeln!(
            out,
            "\n  Validation from outside each instance (each check retries for {}s, {}s per attempt, every {}s):",
            self.timeout_seconds, self.attempt_seconds, self.interval_seconds
        );
        if let Some(marker) = &self.serial_marker {
            let _ = writeln!(
                out,
                "    serial console shows /{}/ (where the target offers console output)",
                safe(marker)
            );
        }
        for port in &self.ports {
            let _ = writeln!(
                out,
                "    TCP port {port} accepts a connection from this machine"
            );
        }
        for check in &self.http {
            let _ = writeln!(out, "    GET {} answers {}", safe(&check.url), check.status);
        }
        out
    }
}

impl Default for OutsideChecks {
    /// Nothing checked, default timing: what a plan built without flags
    /// (a library caller) gets. The CLI sets the operator's defaults.
    fn default() -> OutsideChecks {
        OutsideChecks {
            ports: Vec::new(),
            http: Vec::new(),
            serial_marker: None,
            timeout_seconds: OutsideChecks::DEFAULT_TIMEOUT_SECONDS,
            attempt_seconds: OutsideChecks::DEFAULT_ATTEMPT_SECONDS,
            interval_seconds: OutsideChecks::DEFAULT_INTERVAL_SECONDS,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("--check '{given}': {why}")]
pub struct HttpCheckError {
    pub given: String,
    pub why: String,
}

impl HttpCheck {
    /// Parses `URL[=STATUS]`. A URL's query may hold `=` too: only three
    /// digits after the last `=` are a status.
    pub fn parse(given: &str) -> Result<HttpCheck, HttpCheckError> {
        let refuse = |why: &str| HttpCheckError {
            given: given.to_string(),
            why: why.to_string(),
        };
        let (url, status) = match given.rsplit_once('=') {
            Some((url, status))
                if status.len() == 3 && status.bytes().all(|b| b.is_ascii_digit()) =>
            {
                let status: u16 = status.parse().map_err(|_| refuse("bad status"))?;
                (url, status)
            }
            _ => (given, OutsideChecks::DEFAULT_STATUS),
        };
        if !(100..=599).contains(&status) {
            return Err(refuse("the status must be between 100 and 599"));
        }
        let Some(rest) = url.strip_prefix("http://") else {
            return Err(refuse(
                "only http:// URLs are checked (no TLS client here: check the port of an https service with --check-port)",
            ));
        };
        let host = rest.split(['/', '?']).next().unwrap_or_default();
        if host.is_empty() {
            return Err(refuse("the URL names no host (use {address})"));
        }
        if url.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(refuse("the URL holds spaces or control characters"));
        }
        Ok(HttpCheck {
            url: url.to_string(),
            status,
        })
    }

    /// The URL with the instance's address in place of `{address}`.
    pub fn url_for(&self, address: &str) -> String {
        self.url.replace(ADDRESS, address)
    }

    /// True when the URL needs the instance's address.
    pub fn needs_address(&self) -> bool {
        self.url.contains(ADDRESS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_check_parses_with_and_without_a_status() {
        let plain = HttpCheck::parse("http://{address}:8080/health").unwrap();
        assert_eq!(plain.status, 200);
        assert_eq!(plain.url_for("10.0.0.5"), "http://10.0.0.5:8080/health");
        let with = HttpCheck::parse("http://{address}/ready=204").unwrap();
        assert_eq!(
            (with.url.as_str(), with.status),
            ("http://{address}/ready", 204)
        );
        // A query's own `=` is not a status.
        let query = HttpCheck::parse("http://{address}/q?a=b").unwrap();
        assert_eq!(
            (query.url.as_str(), query.status),
            ("http://{address}/q?a=b", 200)
        );
    }

    #[test]
    fn bad_checks_are_refused_naming_the_flag() {
        let e = HttpCheck::parse("https://{address}/").unwrap_err();
        assert!(
            e.to_string().starts_with("--check 'https://{address}/'"),
            "{e}"
        );
        assert!(HttpCheck::parse("http:///x").is_err());
        assert!(HttpCheck::parse("http://{address}/=999").is_err());
        assert!(HttpCheck::parse("http://{address}/a b").is_err());
    }

    #[test]
    fn an_empty_set_renders_nothing_and_a_full_one_says_each_check() {
        assert_eq!(OutsideChecks::default().render(), "");
        let checks = OutsideChecks {
            ports: vec![22],
            http: vec![HttpCheck::parse("http://{address}:8080/health=204").unwrap()],
            serial_marker: Some("login:".into()),
            ..Default::default()
        };
        let text = checks.render();
        assert!(text.contains("TCP port 22"), "{text}");
        assert!(
            text.contains("GET http://{address}:8080/health answers 204"),
            "{text}"
        );
        assert!(text.contains("/login:/"), "{text}");
    }

    #[test]
    fn the_plan_hash_covers_the_checks_and_an_empty_set_keeps_old_hashes() {
        let mut plan = crate::plan::tests::sample_plan(false);
        let before = plan.hash();
        // No checks: nothing serialized, so plans written before keep their hash.
        assert!(!toml::to_string(&plan).unwrap().contains("[checks]"));
        plan.checks.ports.push(22);
        let with_port = plan.hash();
        assert_ne!(before, with_port);
        plan.checks
            .http
            .push(HttpCheck::parse("http://{address}/=204").unwrap());
        assert_ne!(with_port, plan.hash());
    }
}
