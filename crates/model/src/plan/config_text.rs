//! The configuration part of a plan as text: the section `plan show` and
//! the console print, and the details of its actions.

use super::configuration::{ItemConfig, Object, lossy_lines};
use super::{ActionVerb, Plan};
use crate::text::safe;
use std::fmt::Write as _;

/// The action that creates one configuration object.
pub fn object_action(object: &Object) -> (ActionVerb, String, String) {
    match object {
        Object::Firewall(f) => {
            let carried = f.rules.iter().filter(|r| r.target.is_some()).count();
            let rules: Vec<String> = f
                .rules
                .iter()
                .filter_map(|r| r.target.as_ref().map(ToString::to_string))
                .collect();
            (
                ActionVerb::CreateFirewall,
                f.name.clone(),
                format!(
                    "from source rule set '{}'{}: {carried} rules ({})",
                    f.source,
                    f.network
                        .as_ref()
                        .map(|n| format!(" in {n}"))
                        .unwrap_or_default(),
                    rules.join("; ")
                ),
            )
        }
        Object::Key(k) => (
            ActionVerb::ImportKey,
            k.name.clone(),
            format!(
                "public key '{}' ({}{})",
                k.source,
                k.public_key
                    .split_whitespace()
                    .next()
                    .unwrap_or("unknown type"),
                k.fingerprint
                    .as_ref()
                    .map(|f| format!(", fingerprint {f}"))
                    .unwrap_or_default()
            ),
        ),
    }
}

/// `; network subnet-1, public address, 3 tags, user-data 120 bytes, firewalls web, key ops`.
pub fn deploy_detail(config: &ItemConfig) -> String {
    let mut parts = Vec::new();
    if let Some(network) = &config.network {
        parts.push(match &network.target {
            Some(t) => format!("network {t}"),
            None => "the target's default network".into(),
        });
    }
    match config.public_ip {
        Some(true) => parts.push("public address".into()),
        Some(false) => parts.push("no public address".into()),
        None => {}
    }
    let firewalls: Vec<&str> = config
        .firewalls
        .iter()
        .filter(|f| f.rules.is_empty() || f.rules.iter().any(|r| r.target.is_some()))
        .map(|f| f.name.as_str())
        .collect();
    if !firewalls.is_empty() {
        parts.push(format!("firewalls {}", firewalls.join(", ")));
    }
    let tags = config.tags.iter().filter(|t| t.key.is_some()).count();
    if tags > 0 {
        parts.push(format!("{tags} tag(s)"));
    }
    if !config.ssh_keys.is_empty() {
        let names: Vec<&str> = config.ssh_keys.iter().map(|k| k.name.as_str()).collect();
        parts.push(format!("key {}", names.join(", ")));
    }
    if let Some(data) = &config.user_data {
        parts.push(format!("user-data {} bytes", data.len()));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("; {}", parts.join(", "))
    }
}

/// Per instance: network, firewalls with each rule source → target, tags
/// with renames, keys, user-data; then every lossy line.
pub fn section(plan: &Plan) -> String {
    let mut out = String::new();
    if plan.items.iter().all(|i| i.configuration.is_empty()) {
        return out;
    }
    let _ = writeln!(out, "\nConfiguration (source → target)");
    for item in &plan.items {
        let c = &item.configuration;
        if c.is_empty() {
            continue;
        }
        let _ = writeln!(out, "  {}", safe(&item.instance_name));
        for line in lines(c) {
            let _ = writeln!(out, "    {}", safe(&line));
        }
    }
    let lossy = lossy_lines(plan);
    if !lossy.is_empty() {
        let _ = writeln!(
            out,
            "\n  ⚠ LOSSY: {} part(s) of the configuration cannot be carried exactly. Approval must acknowledge it (--ack-lossy).",
            lossy.len()
        );
        for line in lossy {
            let _ = writeln!(out, "    ✗ {}", safe(&line));
        }
    }
    out
}

/// The configuration of one item as lines (also the console's).
pub fn lines(c: &ItemConfig) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(n) = &c.network {
        out.push(format!(
            "network   {} → {} ({})",
            n.source,
            n.target.as_deref().unwrap_or("default"),
            n.how
        ));
    }
    if let Some(public) = c.public_ip {
        out.push(format!("public    {}", if public { "yes" } else { "no" }));
    }
    for f in &c.firewalls {
        out.push(format!("firewall  {} → {}", f.source, f.name));
        for r in &f.rules {
            match &r.target {
                Some(t) => out.push(format!("  rule    {} → {t}", r.source)),
                None => out.push(format!("  rule    {} → ✗ not carried", r.source)),
            }
        }
    }
    for t in &c.tags {
        out.push(format!("tag       {}", t.line()));
    }
    for k in &c.ssh_keys {
        out.push(format!("key       {} → imported as {}", k.source, k.name));
    }
    if let Some(data) = &c.user_data {
        out.push(format!("user-data {} bytes, carried unchanged", data.len()));
    }
    out
}

/// One row of the side-by-side view: source, target, and whether the row
/// is lossy (not carried exactly).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    pub source: String,
    pub target: String,
    pub lossy: bool,
}

fn pair(source: impl Into<String>, target: impl Into<String>, lossy: bool) -> Pair {
    Pair {
        source: source.into(),
        target: target.into(),
        lossy,
    }
}

/// The configuration of one item as source → target rows, lossy reasons last.
pub fn pairs(c: &ItemConfig) -> Vec<Pair> {
    let mut out = Vec::new();
    if let Some(n) = &c.network {
        out.push(pair(
            format!("network {}", n.source),
            format!(
                "{} ({})",
                n.target.as_deref().unwrap_or("default network"),
                n.how
            ),
            false,
        ));
    }
    if let Some(public) = c.public_ip {
        out.push(pair(
            "public address",
            if public { "yes" } else { "no" },
            false,
        ));
    }
    for f in &c.firewalls {
        out.push(pair(
            format!("rule set {}", f.source),
            format!("firewall {}", f.name),
            false,
        ));
        for r in &f.rules {
            match &r.target {
                Some(t) => out.push(pair(format!("  {}", r.source), format!("  {t}"), false)),
                None => out.push(pair(format!("  {}", r.source), "  ✗ not carried", true)),
            }
        }
    }
    for t in &c.tags {
        let source = if t.source_value.is_empty() {
            format!("tag {}", t.source_key)
        } else {
            format!("tag {}={}", t.source_key, t.source_value)
        };
        let target = match &t.key {
            Some(k) if t.value.is_empty() => k.clone(),
            Some(k) => format!("{k}={}", t.value),
            None => "✗ not written".into(),
        };
        let target = match &t.note {
            Some(note) => format!("{target} ({note})"),
            None => target,
        };
        out.push(pair(source, target, t.lossy));
    }
    for k in &c.ssh_keys {
        out.push(pair(
            format!("key {}", k.source),
            format!("imported as {}", k.name),
            false,
        ));
    }
    if let Some(data) = &c.user_data {
        out.push(pair(
            format!("user-data {} bytes", data.len()),
            "carried unchanged",
            false,
        ));
    }
    for reason in &c.lossy {
        out.push(pair("", format!("✗ {reason}"), true));
    }
    out
}
