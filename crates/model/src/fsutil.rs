//! File helpers the state layer relies on: atomic replace, fsync of folders,
//! and private modes. Every state file we create (journal, audit log,
//! reports, plans, debug log) goes through here, so none is readable by other
//! users of the machine: they name resources, hosts and operators.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

/// Mode of state files we create: the operator only.
pub const PRIVATE_FILE: u32 = 0o600;
/// Mode of state folders we create.
pub const PRIVATE_DIR: u32 = 0o700;

/// `create_dir_all` whose new folders are 0700 (existing ones are left as
/// they are: the operator may have chosen their modes).
pub fn create_private_dir_all(dir: &Path) -> std::io::Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(PRIVATE_DIR)
        .create(dir)
}

/// Opens a state file for appending, creating it 0600 (and its folder 0700).
pub fn open_private_append(path: &Path) -> std::io::Result<File> {
    if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_private_dir_all(dir)?;
    }
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(PRIVATE_FILE)
        .open(path)
}

/// Creates (truncating) a state file 0600, its folder 0700.
pub fn create_private(path: &Path) -> std::io::Result<File> {
    if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_private_dir_all(dir)?;
    }
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(PRIVATE_FILE)
        .open(path)
}

/// Writes `data` to `path` through a temporary file and a rename, so a reader
/// never sees half a file and a crash leaves the old one.
pub fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    create_private_dir_all(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    {
        let mut file = create_private(&temp)?;
        file.write_all(data)?;
        file.sync_all()?;
    }
    std::fs::rename(&temp, path)?;
    sync_dir(dir)
}

/// Makes a folder's entries (new files, renames) durable.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// `user@host` of whoever runs this, for approvals and the audit log.
pub fn operator() -> String {
    let user = std::env::var("ALTISHIFT_OPERATOR")
        .or_else(|_| std::env::var("USER"))
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into());
    if user.contains('@') {
        return user;
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into());
    format!("{user}@{host}")
}

/// Seconds since the Unix epoch, now (0 if the clock is before 1970).
pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `2026-11-27 14:05 UTC` for Unix seconds.
pub fn utc_minute(unix: u64) -> String {
    // Clamped to the year 9999 so the text keeps its fixed width.
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix.min(253_402_300_799));
    let text = humantime::format_rfc3339_seconds(at).to_string();
    // `2026-11-27T14:05:09Z` → `2026-11-27 14:05 UTC`
    format!("{} {} UTC", &text[..10], &text[11..16])
}

/// Current time as RFC 3339 (UTC, seconds).
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

/// Longest file name made from a resource name: NAME_MAX is 255 bytes, and
/// suffixes (`.qcow2.partial`, `-disk0`) need room.
pub const MAX_FILE_NAME: usize = 200;

/// A resource name (instance, disk, image, snapshot: a provider's or a
/// plan's) as the name of one file in one folder. `[A-Za-z0-9._-]` stay,
/// every other byte becomes `%XX` (`%` too, so different names never share
/// a file): `a/b` is `a%2Fb`, `../x` is `..%2Fx`, and no name can leave its
/// folder. Refused, with the reason: empty, `.`, `..`, and names longer
/// than [`MAX_FILE_NAME`] once mapped.
pub fn file_name(name: &str) -> Result<String, String> {
    if name.is_empty() {
        return Err("an empty name cannot be a file name".into());
    }
    if name == "." || name == ".." {
        return Err(format!("'{name}' cannot be a file name"));
    }
    let mut out = String::with_capacity(name.len());
    for byte in name.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-' => out.push(byte as char),
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    if out.len() > MAX_FILE_NAME {
        return Err(format!(
            "the name is too long for a file name ({} bytes once mapped, at most {MAX_FILE_NAME})",
            out.len()
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn state_files_and_their_new_folders_are_private() {
        let root = tempfile::tempdir().unwrap();
        let report = root.path().join("runs/run-1/report.md");
        write_atomic(&report, b"# report").unwrap();
        assert_eq!(mode(&report), PRIVATE_FILE);
        assert_eq!(mode(&root.path().join("runs")), PRIVATE_DIR);
        assert_eq!(mode(&root.path().join("runs/run-1")), PRIVATE_DIR);

        let log = root.path().join("audit/audit.jsonl");
        open_private_append(&log).unwrap();
        assert_eq!(mode(&log), PRIVATE_FILE);
        assert_eq!(mode(&root.path().join("audit")), PRIVATE_DIR);
    }

    #[test]
    fn names_map_to_file_names_that_stay_in_their_folder() {
        assert_eq!(file_name("web-1.db_2").unwrap(), "web-1.db_2");
        assert_eq!(file_name("a/b").unwrap(), "a%2Fb");
        assert_eq!(file_name("../../etc/x").unwrap(), "..%2F..%2Fetc%2Fx");
        assert_eq!(file_name("mon\u{1b}[2J").unwrap(), "mon%1B%5B2J");
        // Injective: the escape character is escaped too.
        assert_ne!(file_name("a%2Fb").unwrap(), file_name("a/b").unwrap());
        for bad in ["", ".", ".."] {
            assert!(file_name(bad).is_err(), "{bad:?}");
        }
        assert!(file_name(&"x".repeat(201)).is_err());
        assert!(file_name(&"é".repeat(40)).is_err()); // 80 bytes → 240 mapped
        for name in ["a/b", "../../etc/x", "/abs", "x\0y", "..\\.."] {
            let mapped = file_name(name).unwrap();
            assert!(!mapped.contains('/') && mapped != "." && mapped != "..");
        }
    }
}
