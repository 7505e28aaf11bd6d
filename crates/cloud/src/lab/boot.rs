//! A lab instance whose boot disk holds a boot sector really boots: `deploy`
//! starts it in QEMU with the local rehearsal's boot (`guest::rehearse`:
//! no network, the disk never written, TCG unless KVM is known to work) and
//! its serial console in `consoles/NAME.log`; validation (`probe`) waits for
//! the boot to end and reports how it went ("boot"); the plan's serial
//! marker is checked on that log by the same check as every target's
//! console (`Target::serial_console`, engine `outside_checks`). QEMU stops
//! at the rehearsal's marker: the lab has no long-running instances. Disks
//! without a boot sector (the generated data disks) are not booted and have
//! no console.

use super::LabCloud;
use crate::guest::GuestError;
use crate::guest::rehearse::{self, Accel, Rehearsal, RehearsalSpec};
use crate::inventory::DiskFormat;
use crate::local_disk::LocalDiskReader;
use crate::units::BlockIndex;
use crate::{Check, CloudError, DiskReader};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use tokio::task::JoinHandle;

/// Lines of the serial console the report shows.
pub const EVIDENCE_LINES: usize = 12;

type Boot = JoinHandle<Result<Rehearsal, GuestError>>;

/// The boots `deploy` started, by instance name, until `probe` waits.
#[derive(Default)]
pub(super) struct Boots(Mutex<HashMap<String, Boot>>);

impl Boots {
    fn put(&self, name: &str, boot: Boot) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(old) = map.insert(name.to_string(), boot) {
            old.abort();
        }
    }

    fn take(&self, name: &str) -> Option<Boot> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name)
    }
}

impl Drop for Boots {
    fn drop(&mut self) {
        // An aborted boot drops its QEMU child, which kills it.
        for (_, boot) in self.0.get_mut().unwrap_or_else(|p| p.into_inner()).drain() {
            boot.abort();
        }
    }
}

/// True when the disk's first sector is a BIOS boot sector: boot code
/// before the partition table and the MBR signature. A GPT disk's
/// protective MBR (the generated lab disks) has the signature but no code.
pub async fn has_boot_sector(path: &Path, format: DiskFormat) -> Result<bool, CloudError> {
    starts_with_boot_sector(&LocalDiskReader::open(path, format)?).await
}

/// `has_boot_sector` for any disk reader (one block read: a cloud's
/// snapshot too).
pub async fn starts_with_boot_sector(reader: &dyn DiskReader) -> Result<bool, CloudError> {
    let block = reader.read_block(BlockIndex(0)).await?;
    Ok(is_boot_sector(&block.bytes))
}

fn is_boot_sector(sector: &[u8]) -> bool {
    let code = sector.get(..440).is_some_and(|c| c.iter().any(|&b| b != 0));
    code && sector.get(510..512) == Some(&[0x55, 0xaa][..])
}

impl LabCloud {
    fn console_log(&self, name: &str) -> Result<std::path::PathBuf, CloudError> {
        let file = crate::fsutil::file_name(name).map_err(CloudError::Permanent)?;
        let dir = self.root.join("consoles");
        std::fs::create_dir_all(&dir).map_err(|e| CloudError::from_io(dir.display(), e))?;
        Ok(dir.join(format!("{file}.log")))
    }

    /// What the instance's console shows so far; None when it never booted
    /// (no console log).
    pub(super) fn console_text(&self, name: &str) -> Result<Option<String>, CloudError> {
        let log = self.console_log(name)?;
        match std::fs::read(&log) {
            Ok(bytes) => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(CloudError::from_io(log.display(), e)),
        }
    }

    /// Starts the instance's boot when its disk has a boot sector.
    pub(super) async fn start_boot(
        &self,
        name: &str,
        disk: &Path,
        format: DiskFormat,
    ) -> Result<bool, CloudError> {
        if !has_boot_sector(disk, format).await? {
            // An older instance's console under this name is not this one's.
            let log = self.console_log(name)?;
            match std::fs::remove_file(&log) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(CloudError::from_io(log.display(), e)),
            }
            return Ok(false);
        }
        let mut spec = RehearsalSpec::new(disk, format, &self.console_log(name)?);
        spec.accel = self.manifest.accel.unwrap_or(Accel::Tcg);
        self.boots.put(
            name,
            tokio::spawn(async move { rehearse::rehearse(&spec).await }),
        );
        Ok(true)
    }

    /// The boot check of a booted instance (started here when `deploy` did
    /// not: a resumed run), or None for a disk that does not boot. It waits
    /// for QEMU to stop, so the console log is complete for the serial check.
    pub(super) async fn boot_check(
        &self,
        name: &str,
        disk: &Path,
        format: DiskFormat,
    ) -> Result<Option<Check>, CloudError> {
        let boot = match self.boots.take(name) {
            Some(boot) => boot,
            None => match self.start_boot(name, disk, format).await {
                Ok(true) => match self.boots.take(name) {
                    Some(boot) => boot,
                    None => return Ok(None),
                },
                Ok(false) => return Ok(None),
                Err(e) => {
                    return Ok(Some(Check::new(
                        "boot",
                        false,
                        format!("the boot disk cannot be read: {e}"),
                    )));
                }
            },
        };
        let log = self.console_log(name)?;
        let result = match boot.await {
            Ok(result) => result,
            Err(e) => Err(GuestError::Other(format!("the boot task failed: {e}"))),
        };
        Ok(Some(match result {
            Ok(r) if r.booted => Check::new(
                "boot",
                true,
                format!(
                    "QEMU {} reached `{}` after {:.1}s; console {}",
                    accel_name(r.accel),
                    crate::text::safe(r.matched.as_deref().unwrap_or("").trim()),
                    r.elapsed.as_secs_f64(),
                    log.display()
                ),
            ),
            Ok(r) => Check {
                name: "boot".into(),
                passed: false,
                detail: format!("did not boot: {} ({})", r.detail, log.display()),
                // The tail says why; the serial check may not run (no marker
                // in the plan).
                evidence: rehearse::serial_tail(&log, EVIDENCE_LINES)
                    .lines()
                    .map(str::to_string)
                    .collect(),
            },
            Err(e) => Check::new("boot", false, format!("could not boot: {e}")),
        }))
    }
}

fn accel_name(accel: Accel) -> &'static str {
    match accel {
        Accel::Tcg => "TCG",
        Accel::Kvm => "KVM",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_protective_mbr_without_boot_code_does_not_boot() {
        let mut sector = vec![0u8; 512];
        sector[450] = 0xee;
        sector[510] = 0x55;
        sector[511] = 0xaa;
        assert!(!is_boot_sector(&sector));
        sector[0] = 0xfa; // cli, as boot code starts
        assert!(is_boot_sector(&sector));
        sector[511] = 0;
        assert!(!is_boot_sector(&sector));
    }
}
