//! Validation from outside a deployed instance, as the plan records it
//! ([`OutsideChecks`]): the target's serial console shows the marker, TCP
//! ports accept a connection from this machine (the jump host), HTTP URLs
//! answer with the expected status. Each check retries until its deadline
//! (an instance just deployed is still booting) and keeps what it saw as
//! evidence. A check that cannot run — no console API, no address — is
//! reported as not available, which does not fail validation.

use crate::cloud::{Check, Cloud, DeployedInstance};
use crate::plan::checks::{HttpCheck, OutsideChecks};
use crate::text::safe;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, sleep, timeout};

/// Lines of the serial console a check keeps as evidence.
pub const CONSOLE_LINES: usize = 12;
/// Failed attempts a check keeps as evidence (the last ones).
const ATTEMPT_LINES: usize = 6;
/// The most of an HTTP answer read: the status line and headers fit.
const HTTP_HEAD_MAX: usize = 16 * 1024;

/// How long a check keeps trying, one attempt's limit, the pause between.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub deadline: Duration,
    pub attempt: Duration,
    pub interval: Duration,
}

impl Timing {
    pub fn of(checks: &OutsideChecks) -> Timing {
        Timing {
            deadline: Duration::from_secs(checks.timeout_seconds),
            attempt: Duration::from_secs(checks.attempt_seconds.max(1)),
            interval: Duration::from_secs(checks.interval_seconds),
        }
    }
}

/// Every check the plan asks for on one instance, run at the same time.
pub async fn run(
    target: &dyn Cloud,
    instance: &DeployedInstance,
    checks: &OutsideChecks,
) -> Vec<Check> {
    let timing = Timing::of(checks);
    let mut running: Vec<futures::future::BoxFuture<'_, Check>> = Vec::new();
    if let Some(marker) = &checks.serial_marker {
        running.push(Box::pin(serial(target, instance, marker, timing)));
    }
    let address = instance.address.as_deref();
    for &port in &checks.ports {
        running.push(Box::pin(async move {
            match address {
                Some(address) => tcp(address, port, timing).await,
                None => no_address(format!("tcp {port}"), target),
            }
        }));
    }
    for check in &checks.http {
        running.push(Box::pin(async move {
            match address {
                Some(address) => http(check, address, timing).await,
                None if check.needs_address() => {
                    no_address(format!("http {} {}", check.url, check.status), target)
                }
                None => http(check, "", timing).await,
            }
        }));
    }
    futures::future::join_all(running).await
}

fn no_address(name: String, target: &dyn Cloud) -> Check {
    not_available(
        name,
        format!(
            "{} ({}) reported no address for this instance",
            target.name(),
            target.provider()
        ),
    )
}

/// A check that could not run, and why; it does not fail validation.
pub fn not_available(name: impl Into<String>, why: impl std::fmt::Display) -> Check {
    Check::new(name, true, format!("not available: {why}"))
}

/// Tries `attempt` until it answers `Ok`, or the deadline passes; the
/// failures seen go into the evidence (the last [`ATTEMPT_LINES`]).
async fn retry<T, F, Fut>(timing: Timing, mut attempt: F) -> (Result<T, String>, u32, Vec<String>)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let started = Instant::now();
    let mut failures: Vec<String> = Vec::new();
    let mut tries = 0u32;
    loop {
        tries += 1;
        let left = timing.deadline.saturating_sub(started.elapsed());
        let limit = timing.attempt.min(left.max(Duration::from_millis(1)));
        let result = match timeout(limit, attempt()).await {
            Ok(result) => result,
            Err(_) => Err(format!("no answer within {}", seconds(limit))),
        };
        match result {
            Ok(value) => return (Ok(value), tries, failures),
            Err(why) => {
                failures.push(format!("attempt {tries}: {why}"));
                if failures.len() > ATTEMPT_LINES {
                    failures.remove(0);
                }
                if started.elapsed() + timing.interval >= timing.deadline {
                    return (Err(why), tries, failures);
                }
                sleep(timing.interval).await;
            }
        }
    }
}

fn seconds(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

/// `host:port`, with brackets around an IPv6 address.
fn host_port(address: &str, port: u16) -> String {
    if address.contains(':') {
        format!("[{address}]:{port}")
    } else {
        format!("{address}:{port}")
    }
}

/// A TCP connection to `address:port` from this machine.
pub async fn tcp(address: &str, port: u16, timing: Timing) -> Check {
    let name = format!("tcp {port}");
    let at = host_port(address, port);
    let at_ref = at.as_str();
    let (result, tries, failures) = retry(timing, move || async move {
        TcpStream::connect((address, port))
            .await
            .map(drop)
            .map_err(|e| format!("connect {at_ref}: {e}"))
    })
    .await;
    match result {
        Ok(()) => Check::new(
            name,
            true,
            format!("{at} accepted a connection (attempt {tries})"),
        ),
        Err(why) => Check {
            name,
            passed: false,
            detail: format!(
                "{at} did not accept a connection in {} ({tries} attempts): {why}",
                seconds(timing.deadline)
            ),
            evidence: failures,
        },
    }
}

/// An HTTP/1.1 GET of the check's URL (the instance's address in place of
/// `{address}`) that must answer with the expected status.
pub async fn http(check: &HttpCheck, address: &str, timing: Timing) -> Check {
    let url = check.url_for(address);
    // The status in the name: two checks of one URL stay apart.
    let name = format!("http {} {}", check.url, check.status);
    let Some((host, port, path)) = split_url(&url) else {
        return Check::new(name, false, format!("{} is not an http:// URL", safe(&url)));
    };
    let (host, path) = (host.as_str(), path.as_str());
    let (result, tries, failures) = retry(timing, move || async move {
        let (status, line) = get(host, port, path).await?;
        if status == check.status {
            Ok(line)
        } else {
            Err(format!("{line} (expected {})", check.status))
        }
    })
    .await;
    match result {
        Ok(line) => Check {
            name,
            passed: true,
            detail: format!(
                "GET {} answered {} (attempt {tries})",
                safe(&url),
                check.status
            ),
            evidence: vec![line],
        },
        Err(why) => Check {
            name,
            passed: false,
            detail: format!(
                "GET {} did not answer {} in {} ({tries} attempts): {why}",
                safe(&url),
                check.status,
                seconds(timing.deadline)
            ),
            evidence: failures,
        },
    }
}

/// `http://host[:port]/path?query` → host, port, path (with the query).
fn split_url(url: &str) -> Option<(String, u16, String)> {
    let rest = url.strip_prefix("http://")?;
    let (authority, path) = match rest.find(['/', '?']) {
        Some(at) => (&rest[..at], &rest[at..]),
        None => (rest, "/"),
    };
    let path = if path.starts_with('?') {
        format!("/{path}")
    } else {
        path.to_string()
    };
    let (host, port) = match authority.rsplit_once(':') {
        // `[v6]:port`, `host:port`; a bare IPv6 literal needs brackets.
        Some((host, port)) if !port.contains(']') => (host, port.parse().ok()?),
        _ => (authority, 80),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (!host.is_empty()).then(|| (host.to_string(), port, path))
}

/// One GET; the status code and the status line.
async fn get(host: &str, port: u16, path: &str) -> Result<(u16, String), String> {
    let at = host_port(host, port);
    let mut stream = TcpStream::connect((host, port))
        .await
        .map_err(|e| format!("connect {at}: {e}"))?;
    let host_header = match (port, host.contains(':')) {
        (80, true) => format!("[{host}]"),
        (80, false) => host.to_string(),
        _ => at.clone(),
    };
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: altishift-validation\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("send to {at}: {e}"))?;
    let mut head = Vec::new();
    let mut buf = [0u8; 2048];
    while !head.windows(2).any(|w| w == b"\r\n") && head.len() < HTTP_HEAD_MAX {
        let n = stream
            .read(&mut buf)
            .await
            .map_err(|e| format!("read from {at}: {e}"))?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&head);
    let line = text
        .lines()
        .next()
        .unwrap_or_default()
        .trim_end()
        .to_string();
    let status = line
        .strip_prefix("HTTP/1.")
        .and_then(|rest| rest.get(2..5))
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| format!("{at} answered no HTTP status line: {}", safe(&line)))?;
    Ok((status, safe(&line).into_owned()))
}

/// The target's serial console shows `marker` (a regex).
pub async fn serial(
    target: &dyn Cloud,
    instance: &DeployedInstance,
    marker: &str,
    timing: Timing,
) -> Check {
    let name = "serial console";
    let pattern = match regex::Regex::new(marker) {
        Ok(p) => p,
        Err(e) => {
            return Check::new(
                name,
                false,
                format!("the plan's marker /{}/: {e}", safe(marker)),
            );
        }
    };
    let role = match target.target_role() {
        Ok(role) => role,
        Err(e) => return Check::new(name, false, e.to_string()),
    };
    // Asked once: a provider without console output has none later either.
    match role.serial_console(instance).await {
        Ok(None) => {
            return not_available(
                name,
                format!(
                    "{} ({}) offers no console output for this instance",
                    target.name(),
                    target.provider()
                ),
            );
        }
        Ok(Some(text)) if pattern.is_match(&text) => return seen(name, &pattern, &text, 1),
        Ok(Some(_)) | Err(_) => {}
    }
    // What the console showed last, for the evidence of a failure.
    let last = std::sync::Mutex::new(String::new());
    let (last_ref, pattern_ref) = (&last, &pattern);
    let (result, tries, failures) = retry(timing, move || async move {
        match role.serial_console(instance).await {
            Ok(Some(text)) if pattern_ref.is_match(&text) => Ok(text),
            Ok(Some(text)) => {
                *last_ref.lock().unwrap_or_else(|p| p.into_inner()) = text;
                Err(format!("/{}/ not on the console yet", safe(marker)))
            }
            Ok(None) => Err("the console output went away".to_string()),
            Err(e) => Err(e.to_string()),
        }
    })
    .await;
    match result {
        Ok(text) => seen(name, &pattern, &text, tries + 1),
        Err(why) => {
            let last = last.into_inner().unwrap_or_else(|p| p.into_inner());
            let mut evidence = console_tail(&last, CONSOLE_LINES);
            if evidence.is_empty() {
                evidence = failures;
            }
            Check {
                name: name.into(),
                passed: false,
                detail: format!(
                    "/{}/ not seen in {} ({} reads): {why}",
                    safe(marker),
                    seconds(timing.deadline),
                    tries + 1
                ),
                evidence,
            }
        }
    }
}

fn seen(name: &str, pattern: &regex::Regex, text: &str, reads: u32) -> Check {
    let matched = pattern.find(text).map(|m| m.as_str()).unwrap_or_default();
    Check {
        name: name.into(),
        passed: true,
        detail: format!("`{}` (read {reads})", safe(matched.trim())),
        evidence: console_tail(text, CONSOLE_LINES),
    }
}

/// The console's last non-empty lines, escape sequences and carriage
/// returns dropped, control characters shown escaped.
pub fn console_tail(text: &str, lines: usize) -> Vec<String> {
    let plain = altishift_guest::rehearse::strip_ansi(text);
    let kept: Vec<&str> = plain
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty())
        .collect();
    kept[kept.len().saturating_sub(lines)..]
        .iter()
        .map(|l| safe(l).into_owned())
        .collect()
}

#[cfg(test)]
#[path = "outside_checks_tests.rs"]
mod tests;
