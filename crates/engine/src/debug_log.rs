//! The verbose log of a run: provider `tracing` events go to `debug.log` in
//! the run folder — never to the screen under the console — and the file is
//! purged when the run succeeds, unless the operator keeps it on purpose.
//!
//! One subscriber is installed per process ([`install`]); a run points it at
//! its folder ([`open`]) and lets go of it when done ([`close`]).

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

static SINK: Mutex<Option<(PathBuf, File)>> = Mutex::new(None);

/// A writer that goes to the current run's log, or nowhere between runs.
pub struct RunLogWriter;

impl Write for RunLogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match SINK.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
            Some((_, file)) => file.write(buf),
            None => Ok(buf.len()),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match SINK.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
            Some((_, file)) => file.flush(),
            None => Ok(()),
        }
    }
}

/// Installs the process-wide subscriber: level from `ALTISHIFT_LOG`
/// (`debug` by default), plain text, into the run log. Safe to call twice.
pub fn install() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("ALTISHIFT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("altishift=debug,info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(|| RunLogWriter)
        .try_init();
}

/// Sends the log to `run_dir/debug.log` (appending across resumed runs).
pub fn open(run_dir: &Path) -> std::io::Result<PathBuf> {
    let path = run_dir.join("debug.log");
    let file = crate::fsutil::open_private_append(&path)?;
    *SINK.lock().unwrap_or_else(|p| p.into_inner()) = Some((path.clone(), file));
    Ok(path)
}

/// Stops logging to the run folder; with `purge`, deletes the file.
/// Returns what happened, for the report.
pub fn close(purge: bool) -> Option<String> {
    let (path, file) = SINK.lock().unwrap_or_else(|p| p.into_inner()).take()?;
    drop(file);
    if purge {
        match std::fs::remove_file(&path) {
            Ok(()) => Some("debug log purged".into()),
            Err(e) => Some(format!("debug log {} NOT purged: {e}", path.display())),
        }
    } else {
        Some(format!("debug log kept at {}", path.display()))
    }
}
