//! The guest of a running VM writing to its volumes, as a test scripts it:
//! a volume snapshot taken while the VM runs holds the volume as it is at
//! that moment, and the VM's last writes land as it stops. Volumes stored
//! as qcow2 (KVM) are written through `qemu-io`, raw ones in place.

use std::collections::VecDeque;
use std::path::Path;

/// One guest write: a 512 KiB block index and its bytes (None: zeros).
pub type Write = (u64, Option<Vec<u8>>);

const BLOCK: u64 = 512 * 1024;

#[derive(Debug, Clone, Default)]
pub struct GuestWrites {
    /// Applied before each createSnapshot of the volume, in turn.
    pub before_snapshot: VecDeque<Vec<Write>>,
    /// Applied as the VM shuts down (stopVirtualMachine).
    pub at_stop: Vec<Write>,
}

/// Applies `writes` to a volume file in `format` (`QCOW2`, `RAW`).
pub fn apply(file: &Path, format: &str, writes: &[Write]) {
    if format.eq_ignore_ascii_case("qcow2") {
        if writes.is_empty() {
            return;
        }
        // One qemu-io for all the writes (each -c runs in turn).
        let mut command = std::process::Command::new("qemu-io");
        command.args(["-f", "qcow2"]);
        let mut sources = Vec::new();
        for (index, data) in writes {
            let write = match data {
                Some(bytes) => {
                    let block = file.with_extension(format!("write-{index}"));
                    std::fs::write(&block, bytes).unwrap();
                    let write =
                        format!("write -q -s {} {} {BLOCK}", block.display(), index * BLOCK);
                    sources.push(block);
                    write
                }
                None => format!("write -q -z {} {BLOCK}", index * BLOCK),
            };
            command.args(["-c", &write]);
        }
        let status = command
            .arg(file)
            .status()
            .expect("qemu-io runs (scripts/test installs qemu-utils)");
        for source in sources {
            let _ = std::fs::remove_file(source);
        }
        assert!(status.success(), "qemu-io writes into {}", file.display());
        return;
    }
    use std::os::unix::fs::FileExt as _;
    let f = std::fs::OpenOptions::new().write(true).open(file).unwrap();
    for (index, data) in writes {
        let zeros = vec![0u8; BLOCK as usize];
        f.write_all_at(data.as_deref().unwrap_or(&zeros), index * BLOCK)
            .unwrap();
    }
}
