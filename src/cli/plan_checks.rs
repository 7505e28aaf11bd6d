//! `plan --check-port N --check URL[=STATUS] --expect RE --check-timeout S`:
//! what validation checks from outside each deployed instance, with the
//! defaults an operator expects (SSH answers, the console shows a login
//! prompt or cloud-init's "finished"), resolved into the plan.

use crate::plan::checks::{HttpCheck, OutsideChecks};
use anyhow::{Context, Result, bail};

/// The `plan` flags, as main.rs parses them: direct `PlanBuild` fields
/// (as a nested flattened group, clap parsed `plan --from …` as no build).
#[derive(Debug, Clone, Default)]
pub struct CheckFlags {
    /// After deploy, TCP port N of each instance must accept a connection
    /// from this machine (repeatable; default 22).
    pub ports: Vec<u16>,
    /// Check no TCP port (e.g. instances this machine cannot reach).
    pub no_check_port: bool,
    /// After deploy, GET URL must answer STATUS (default 200); `{address}`
    /// is the instance's address, e.g. 'http://{address}:8080/health=204'
    /// (repeatable).
    pub http: Vec<String>,
    /// Do not look for the marker on the target's serial console.
    pub no_serial_check: bool,
    /// Seconds each check keeps trying before it fails validation.
    pub check_timeout: u64,
    /// Seconds one attempt (a connect, a request, a console read) may take.
    pub check_attempt_timeout: u64,
    /// Seconds between attempts.
    pub check_interval: u64,
    /// The serial marker: `plan --expect` (shared with the rehearsal).
    pub expect: Option<String>,
}

impl CheckFlags {
    /// The operator's defaults, as `plan` without these flags gives them.
    pub fn defaults() -> CheckFlags {
        CheckFlags {
            check_timeout: OutsideChecks::DEFAULT_TIMEOUT_SECONDS,
            check_attempt_timeout: OutsideChecks::DEFAULT_ATTEMPT_SECONDS,
            check_interval: OutsideChecks::DEFAULT_INTERVAL_SECONDS,
            ..CheckFlags::default()
        }
    }

    /// The checks the plan records.
    pub fn resolve(&self) -> Result<OutsideChecks> {
        if self.ports.contains(&0) {
            bail!("--check-port 0: not a port a service listens on");
        }
        if self.check_timeout == 0 || self.check_attempt_timeout == 0 {
            bail!("--check-timeout and --check-attempt-timeout must be at least 1 second");
        }
        let serial_marker = if self.no_serial_check {
            None
        } else {
            let marker = self
                .expect
                .clone()
                .unwrap_or_else(|| crate::guest::rehearse::DEFAULT_EXPECT.to_string());
            regex::Regex::new(&marker).with_context(|| format!("--expect '{marker}'"))?;
            Some(marker)
        };
        let ports = match (self.no_check_port, self.ports.is_empty()) {
            (true, _) => Vec::new(),
            (false, true) => vec![OutsideChecks::DEFAULT_PORT],
            (false, false) => {
                let mut ports = self.ports.clone();
                ports.dedup();
                ports
            }
        };
        let http = self
            .http
            .iter()
            .map(|given| HttpCheck::parse(given))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(OutsideChecks {
            ports,
            http,
            serial_marker,
            timeout_seconds: self.check_timeout,
            attempt_seconds: self.check_attempt_timeout,
            interval_seconds: self.check_interval,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_flags_ssh_and_the_login_marker_are_checked() {
        let checks = CheckFlags::defaults().resolve().unwrap();
        assert_eq!(checks.ports, vec![22]);
        assert_eq!(
            checks.serial_marker.as_deref(),
            Some(crate::guest::rehearse::DEFAULT_EXPECT)
        );
        assert!(checks.http.is_empty());
        assert_eq!(checks.timeout_seconds, 300);
        // The console's plans check the same.
        assert_eq!(
            checks,
            OutsideChecks::standard(crate::guest::rehearse::DEFAULT_EXPECT.into())
        );
    }

    #[test]
    fn flags_replace_the_defaults_and_bad_ones_are_refused() {
        let flags = CheckFlags {
            ports: vec![80, 443],
            http: vec!["http://{address}:8080/health=204".into()],
            expect: Some("Linux version".into()),
            check_timeout: 30,
            ..CheckFlags::defaults()
        };
        let checks = flags.resolve().unwrap();
        assert_eq!(checks.ports, vec![80, 443]);
        assert_eq!(checks.http[0].status, 204);
        assert_eq!(checks.serial_marker.as_deref(), Some("Linux version"));
        assert_eq!(checks.timeout_seconds, 30);
        let off = CheckFlags {
            no_check_port: true,
            no_serial_check: true,
            ..CheckFlags::defaults()
        };
        assert!(off.resolve().unwrap().is_empty());
        let bad = CheckFlags {
            expect: Some("(".into()),
            ..CheckFlags::defaults()
        };
        assert!(
            bad.resolve()
                .unwrap_err()
                .to_string()
                .contains("--expect '('")
        );
        let https = CheckFlags {
            http: vec!["https://{address}/".into()],
            ..CheckFlags::defaults()
        };
        assert!(https.resolve().is_err());
    }
}
