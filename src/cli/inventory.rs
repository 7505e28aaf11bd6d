//! `altishift inventory CLOUD [--json]`.

use super::common::{Globals, connect};
use crate::inventory::Inventory;
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
        inventory.cloud,
        inventory.provider,
        inventory.instances.len()
    );
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
            i.name,
            i.state,
            i.size,
            i.vcpus,
            i.memory.to_string(),
            disks,
            i.region,
            i.first_address().unwrap_or("-")
        );
    }
    let _ = writeln!(
        out,
        "\nsizes: {}",
        inventory
            .sizes
            .iter()
            .map(|s| format!("{} ({}c/{})", s.name, s.vcpus, s.memory))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = writeln!(
        out,
        "regions: {}",
        inventory
            .regions
            .iter()
            .map(|r| format!("{} [{}]", r.name, r.jurisdiction))
            .collect::<Vec<_>>()
            .join(", ")
    );
    out
}
