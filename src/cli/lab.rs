//! `altishift lab init DIR`.

use crate::cloud::lab::generate::{self, LabScale};
use anyhow::Result;
use std::path::Path;

pub fn init(dir: &Path, scale: LabScale) -> Result<()> {
    let started = std::time::Instant::now();
    let summary = generate::init(dir, scale)?;
    for (cloud, instances, allocated) in &summary.clouds {
        println!("{cloud}: {instances} instances, {allocated} of disk data");
    }
    println!(
        "lab ready in {:.1}s. Try:\n  altishift --config {} inventory lab-east",
        started.elapsed().as_secs_f64(),
        summary.config.display()
    );
    Ok(())
}
