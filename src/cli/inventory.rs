//! `altishift inventory CLOUD [--json]`.

use super::common::{Globals, connect};
use crate::inventory::Inventory;
use crate::text::safe;
use crate::units::Bytes;
use anyhow::Result;
use std::fmt::Write as _;

pub async fn run(globals: &Globals, cloud: &str, json: bool) -> Result<()> {
    let session = globals.load()?;
    let cloud = connect(&session.config, cloud).await?;
    let inventory = cloud.inventory().await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&inventory)?);
    } else {
        print!("{}", render(&inventory));
    }
    Ok(())
}

pub fn render(inventory: &Inventory) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} ({}): {} instances",
        safe(&inventory.cloud),
        inventory.provider,
        inventory.instances.len()
    );
    if let Some(access) = &inventory.access {
        let _ = writeln!(
            out,
            "acting as {}",
            safe(&access.describe(crate::fsutil::now_unix()))
        );
    }
    let _ = writeln!(
        out,
        "{:<14} {:<8} {:<11} {:>4} {:>9}  {:<26} {:<15} address",
        "NAME", "STATE", "SIZE", "VCPU", "MEMORY", "DISKS (allocated/virtual)", "REGION"
    );
    for i in &inventory.instances {
        let virtual_size: Bytes = i.disks.iter().map(|d| d.virtual_size).sum();
        let disks = format!("{} × {} / {}", i.disks.len(), i.allocated(), virtual_size);
        let _ = writeln!(
            out,
            "{:<14} {:<8} {:<11} {:>4} {:>9}  {:<26} {:<15} {}",
            safe(&i.name),
            i.state,
            safe(&i.size),
            i.vcpus,
            i.memory.to_string(),
            disks,
            safe(&i.region),
            safe(i.first_address().unwrap_or("-"))
        );
    }
    let _ = writeln!(
        out,
        "\nsizes: {}",
        inventory
            .sizes
            .iter()
            .map(|s| format!("{} ({}c/{})", safe(&s.name), s.vcpus, s.memory))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = writeln!(
        out,
        "regions: {}",
        inventory
            .regions
            .iter()
            .map(|r| format!("{} [{}]", safe(&r.name), safe(&r.jurisdiction)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    render_configuration(inventory, &mut out);
    out
}

/// Networks, firewalls, images and keys: one line each, listed only when
/// the provider reports them.
fn render_configuration(inventory: &Inventory, out: &mut String) {
    for n in &inventory.networks {
        let _ = writeln!(
            out,
            "{} {} ({}){}{}",
            safe(&n.kind),
            safe(&n.name),
            safe(&n.id),
            n.cidr
                .as_deref()
                .map(|c| format!(" {}", safe(c)))
                .unwrap_or_default(),
            n.region
                .as_deref()
                .map(|r| format!(" in {}", safe(r)))
                .unwrap_or_default()
        );
    }
    for f in &inventory.firewalls {
        let rules = if f.rules.is_empty() {
            "no rules".to_string()
        } else {
            f.rules
                .iter()
                .map(|r| safe(r))
                .collect::<Vec<_>>()
                .join("; ")
        };
        let _ = writeln!(out, "firewall {} ({}): {rules}", safe(&f.name), safe(&f.id));
    }
    let private: Vec<_> = inventory.images.iter().filter(|i| i.private).collect();
    if !inventory.images.is_empty() {
        let _ = writeln!(
            out,
            "images: {} ({} of this account{})",
            inventory.images.len(),
            private.len(),
            if private.is_empty() {
                String::new()
            } else {
                format!(
                    ": {}",
                    private
                        .iter()
                        .map(|i| safe(&i.name))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        );
    }
    if !inventory.ssh_keys.is_empty() {
        let _ = writeln!(
            out,
            "ssh keys: {}",
            inventory
                .ssh_keys
                .iter()
                .map(|k| format!("{} ({})", safe(&k.name), safe(&k.id)))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
}
