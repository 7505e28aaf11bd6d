//! `altishift report RUN`: the run's report, by run id or folder.

use super::common::Globals;
use crate::engine::RunReport;
use anyhow::{Result, bail};
use std::path::{Path, PathBuf};

pub fn show(globals: &Globals, run: &str, json: bool) -> Result<()> {
    let path = locate(globals, run)?;
    let report = RunReport::load(&path).map_err(anyhow::Error::msg)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.to_markdown());
    }
    Ok(())
}

/// A run id (`run-…`, or a plan hash prefix), a run folder or a report file.
fn locate(globals: &Globals, run: &str) -> Result<PathBuf> {
    let direct = Path::new(run);
    if direct.is_file() {
        return Ok(direct.to_path_buf());
    }
    if direct.join("report.json").is_file() {
        return Ok(direct.join("report.json"));
    }
    let runs = globals.load()?.state_dir.join("runs");
    let wanted = run.trim_start_matches("run-");
    let mut found = Vec::new();
    if let Ok(entries) = std::fs::read_dir(&runs) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.trim_start_matches("run-").starts_with(wanted)
                && entry.path().join("report.json").is_file()
            {
                found.push(entry.path().join("report.json"));
            }
        }
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => bail!(
            "no finished run '{run}' in {} (give a run id, a run folder or a report.json)",
            runs.display()
        ),
        _ => bail!("'{run}' matches {} runs: give more of the id", found.len()),
    }
}
