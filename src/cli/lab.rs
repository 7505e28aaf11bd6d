//! `altishift lab init DIR`.

use crate::cloud::lab::generate::{self, LabScale};
use anyhow::{Context, Result};
use std::path::Path;

pub fn init(dir: &Path, scale: LabScale, guest: bool) -> Result<()> {
    let started = std::time::Instant::now();
    let summary = generate::init(dir, scale)?;
    for (cloud, instances, allocated) in &summary.clouds {
        println!("{cloud}: {instances} instances, {allocated} of disk data");
    }
    if guest {
        let guest = crate::cloud::lab::guest::add_guest(dir).with_context(|| {
            format!(
                "the lab in {} is made, without its bootable guest",
                dir.display()
            )
        })?;
        println!(
            "lab-east: {} boots (kernel {}, {})",
            guest.instance,
            guest.kernel_version,
            guest.disk.display()
        );
    }
    println!(
        "lab ready in {:.1}s. Try:\n  altishift --config {} inventory lab-east",
        started.elapsed().as_secs_f64(),
        summary.config.display()
    );
    Ok(())
}
