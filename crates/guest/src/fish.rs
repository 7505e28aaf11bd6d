//! One libguestfs appliance per disk, driven command by command: a
//! `guestfish --listen` server and one `guestfish --remote` call per command
//! (the appliance starts once — ~12 s with TCG — and each answer comes back
//! whole). A failing command ends guestfish's server, so callers ask before
//! they read (`is-file` before `cat`). The server is ended on every path.
//!
//! libguestfs runs its appliance with KVM by default, which fails on hosts
//! where KVM guests hang; unless the operator set `LIBGUESTFS_BACKEND` or
//! `LIBGUESTFS_BACKEND_SETTINGS`, the direct backend with TCG is used.

use super::{GuestError, require, run};
use crate::inventory::DiskFormat;
use std::path::{Path, PathBuf};

pub struct Fish {
    program: PathBuf,
    pid: u32,
    disk: PathBuf,
    open: bool,
}

impl Fish {
    /// Starts the appliance on `disk`, read-only unless `writable`.
    pub fn open(disk: &Path, format: DiskFormat, writable: bool) -> Result<Fish, GuestError> {
        let program = require("guestfish", "libguestfs-tools")?;
        if !disk.is_file() {
            return Err(GuestError::Other(format!(
                "{}: no such disk image",
                disk.display()
            )));
        }
        let mut command = crate::child::command(&program);
        command.arg("--listen");
        if !writable {
            command.arg("--ro");
        }
        command
            .arg(format!("--format={}", format.qemu_name()))
            .arg("-a")
            .arg(disk);
        if std::env::var_os("LIBGUESTFS_BACKEND").is_none()
            && std::env::var_os("LIBGUESTFS_BACKEND_SETTINGS").is_none()
        {
            command
                .env("LIBGUESTFS_BACKEND", "direct")
                .env("LIBGUESTFS_BACKEND_SETTINGS", "force_tcg");
        }
        // Prints `GUESTFISH_PID=1234; export GUESTFISH_PID` and forks a
        // server that keeps the inherited pipes: read one line, never to EOF.
        command
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null());
        let failed = |detail: String| GuestError::Command {
            program: "guestfish --listen".into(),
            detail,
        };
        let mut child = command.spawn().map_err(|e| failed(e.to_string()))?;
        let mut line = String::new();
        if let Some(out) = child.stdout.take() {
            use std::io::BufRead;
            std::io::BufReader::new(out)
                .read_line(&mut line)
                .map_err(|e| failed(e.to_string()))?;
        }
        let status = child.wait().map_err(|e| failed(e.to_string()))?;
        if !status.success() {
            return Err(failed(format!(
                "{status} (run it by hand to see why: guestfish --ro -a {} run)",
                disk.display()
            )));
        }
        let pid = line
            .split(['=', ';'])
            .nth(1)
            .and_then(|p| p.trim().parse::<u32>().ok())
            .ok_or_else(|| {
                failed(format!(
                    "unexpected answer '{}'",
                    crate::text::safe(line.trim())
                ))
            })?;
        let fish = Fish {
            program,
            pid,
            disk: disk.to_path_buf(),
            open: true,
        };
        fish.cmd(&["run"])?;
        Ok(fish)
    }

    /// One command; its standard output.
    pub fn cmd(&self, args: &[&str]) -> Result<String, GuestError> {
        let out = run(crate::child::command(&self.program)
            .arg(format!("--remote={}", self.pid))
            .arg("--")
            .args(args))
        .map_err(|e| match e {
            GuestError::Command { detail, .. } => GuestError::Command {
                program: format!(
                    "guestfish {} on {}",
                    args.first().unwrap_or(&""),
                    self.disk.display()
                ),
                detail,
            },
            other => other,
        })?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    /// The lines of a command's output.
    pub fn lines(&self, args: &[&str]) -> Result<Vec<String>, GuestError> {
        Ok(self
            .cmd(args)?
            .lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect())
    }

    pub fn is_true(&self, args: &[&str]) -> Result<bool, GuestError> {
        Ok(self.cmd(args)?.trim() == "true")
    }

    /// A regular file's content, or None when there is none at `path`.
    pub fn read(&self, path: &str) -> Result<Option<String>, GuestError> {
        if !self.is_true(&["is-file", path])? {
            return Ok(None);
        }
        self.cmd(&["cat", path]).map(Some)
    }

    /// Writes `text` to `path` in the guest (through a local file: guestfish
    /// takes arguments apart, a file it does not).
    pub fn write(&self, path: &str, text: &str) -> Result<(), GuestError> {
        let local = std::env::temp_dir().join(format!(
            "altishift-fish-{}-{}",
            std::process::id(),
            self.pid
        ));
        std::fs::write(&local, text).map_err(super::io(&local))?;
        let result = self.cmd(&["upload", &local.to_string_lossy(), path]);
        let _ = std::fs::remove_file(&local);
        result.map(|_| ())
    }

    /// Unmounts, syncs and ends the appliance; errors on the way are
    /// returned (a writable session that did not sync lost its changes).
    pub fn close(mut self) -> Result<(), GuestError> {
        self.cmd(&["umount-all"])?;
        self.cmd(&["sync"])?;
        self.open = false;
        self.cmd(&["exit"]).map(|_| ())
    }
}

impl Drop for Fish {
    fn drop(&mut self) {
        if self.open {
            // Best effort on an error path; the server may be gone already.
            let _ = crate::child::command(&self.program)
                .arg(format!("--remote={}", self.pid))
                .arg("exit")
                .output();
            // SAFETY: kill with a pid we were given and a valid signal; a
            // pid that no longer exists only yields ESRCH.
            unsafe {
                libc::kill(self.pid as libc::pid_t, libc::SIGTERM);
            }
        }
    }
}
