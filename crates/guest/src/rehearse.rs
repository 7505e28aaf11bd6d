//! A local boot rehearsal: the disk boots in QEMU on this machine, with no
//! network, its serial console captured to a file, until a success marker
//! (a login prompt, cloud-init's "finished", or the operator's regex)
//! appears or the time is up. The disk itself is never written: QEMU boots
//! a copy-on-write overlay of it (`snapshot=on`). QEMU is killed on every
//! path, including when the future is dropped.

use super::{GuestError, io, require};
use crate::inventory::DiskFormat;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// What counts as booted when the operator names nothing.
/// getty's prompt (`HOST login: ` ending the line, unlike "Last login: …").
pub const DEFAULT_EXPECT: &str = r"(?m)^\S+ login: ?\r?$|Cloud-init v\. \S+ finished";
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(180);

/// How QEMU runs the guest. KVM is much faster where it works; on some hosts
/// (nested virtualisation, this project's CI) `/dev/kvm` exists yet a KVM
/// guest stops in the boot loader, so TCG is the default and KVM is chosen
/// by the operator.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Accel {
    Tcg,
    Kvm,
}

impl Accel {
    /// KVM where this user can open `/dev/kvm`, TCG otherwise. A KVM that
    /// opens yet fails falls back to TCG in [`rehearse`].
    pub fn host_default() -> Accel {
        let usable = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/kvm")
            .is_ok();
        if usable { Accel::Kvm } else { Accel::Tcg }
    }
}

#[derive(Debug, Clone)]
pub struct RehearsalSpec {
    pub disk: PathBuf,
    pub format: DiskFormat,
    pub expect: regex::Regex,
    pub timeout: Duration,
    pub accel: Accel,
    pub memory_mib: u32,
    /// Where the serial console is written (replaced if it exists).
    pub serial_log: PathBuf,
}

impl RehearsalSpec {
    /// A rehearsal with the default marker, timeout and TCG.
    pub fn new(disk: &Path, format: DiskFormat, serial_log: &Path) -> RehearsalSpec {
        RehearsalSpec {
            disk: disk.to_path_buf(),
            format,
            // The default pattern is a constant known to compile.
            expect: regex::Regex::new(DEFAULT_EXPECT).unwrap_or_else(|_| unreachable!()),
            timeout: DEFAULT_TIMEOUT,
            accel: Accel::Tcg,
            memory_mib: 256,
            serial_log: serial_log.to_path_buf(),
        }
    }
}

/// How a rehearsal ended.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Rehearsal {
    pub booted: bool,
    /// The text the marker matched.
    pub matched: Option<String>,
    pub elapsed: Duration,
    pub accel: Accel,
    /// Why it did not boot (time up, QEMU exited, …).
    pub detail: String,
    pub serial_log: PathBuf,
    /// KVM was asked for and failed (QEMU's words): this boot is the TCG retry.
    pub kvm_failure: Option<String>,
}

/// QEMU's words when KVM cannot run a guest on this host (nested
/// virtualisation: an MSR the host refuses, then an assertion abort within
/// a second; or "KVM internal error", after which QEMU pauses the guest and
/// never exits), or cannot be opened at all. The line that says so, if any.
pub fn kvm_failure(accel: Accel, stderr: &str) -> Option<String> {
    const SIGNS: &[&str] = &[
        "failed to set MSR",
        "kvm_buf_set_msrs",
        "KVM internal error",
        "Could not access KVM kernel module",
        "failed to initialize kvm",
        "failed to initialize KVM",
    ];
    if accel != Accel::Kvm {
        return None;
    }
    stderr
        .lines()
        .find(|line| SIGNS.iter().any(|sign| line.contains(sign)))
        .map(|line| line.trim().to_string())
}

/// Boots `spec.disk` and waits for the marker. When KVM fails the way it
/// does under nested virtualisation, the guest boots again with TCG and the
/// result says so (`kvm_failure`).
pub async fn rehearse(spec: &RehearsalSpec) -> Result<Rehearsal, GuestError> {
    let first = rehearse_once(spec).await?;
    let Some(why) = first.kvm_failure.clone() else {
        return Ok(first);
    };
    let mut tcg = spec.clone();
    tcg.accel = Accel::Tcg;
    let mut second = rehearse_once(&tcg).await?;
    second.kvm_failure = Some(why);
    Ok(second)
}

/// One boot with `spec.accel`; `kvm_failure` set when KVM failed.
async fn rehearse_once(spec: &RehearsalSpec) -> Result<Rehearsal, GuestError> {
    let qemu = require("qemu-system-x86_64", "qemu-system-x86")?;
    if !spec.disk.is_file() {
        return Err(GuestError::Other(format!(
            "{}: no such disk image",
            spec.disk.display()
        )));
    }
    match std::fs::remove_file(&spec.serial_log) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(&spec.serial_log)(e)),
    }
    let mut command = crate::child::tokio_command(&qemu);
    command.args(qemu_args(spec));
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let started = Instant::now();
    let mut child = command.spawn().map_err(|e| GuestError::Command {
        program: qemu.display().to_string(),
        detail: e.to_string(),
    })?;
    // QEMU's own complaints, for the error when it exits early, and read
    // while it runs: a KVM failure can leave QEMU paused, not exited.
    let said = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let stderr = child.stderr.take().map(|pipe| {
        let said = said.clone();
        tokio::spawn(async move {
            use tokio::io::AsyncBufReadExt;
            let mut lines = tokio::io::BufReader::new(pipe).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let mut text = said.lock().unwrap_or_else(|p| p.into_inner());
                text.push_str(&line);
                text.push('\n');
            }
        })
    });
    let result = watch(spec, &mut child, started, &said).await;
    // Every path ends QEMU: the guest never outlives its rehearsal.
    let _ = child.start_kill();
    let status = child.wait().await;
    if let Some(task) = stderr {
        let _ = task.await;
    }
    let complaints = said.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let mut rehearsal = result?;
    if !rehearsal.booted {
        rehearsal.kvm_failure = kvm_failure(spec.accel, &complaints);
    }
    if rehearsal.detail == EXITED || rehearsal.detail == KVM_FAILED {
        rehearsal.detail = format!(
            "QEMU exited before the marker ({}){}",
            status
                .map(|s| s.to_string())
                .unwrap_or_else(|e| e.to_string()),
            match complaints.trim() {
                "" => String::new(),
                text => format!(": {}", crate::text::safe_lines(text)),
            }
        );
    }
    Ok(rehearsal)
}

const EXITED: &str = "exited";
const KVM_FAILED: &str = "kvm failed";

async fn watch(
    spec: &RehearsalSpec,
    child: &mut tokio::process::Child,
    started: Instant,
    stderr: &std::sync::Mutex<String>,
) -> Result<Rehearsal, GuestError> {
    let outcome = |booted: bool, matched: Option<String>, detail: String| Rehearsal {
        booted,
        matched,
        elapsed: started.elapsed(),
        accel: spec.accel,
        detail,
        serial_log: spec.serial_log.clone(),
        kvm_failure: None,
    };
    loop {
        let exited = child
            .try_wait()
            .map_err(|e| GuestError::Other(format!("waiting for QEMU: {e}")))?
            .is_some();
        // Read after the exit check, so the last words of an exiting guest
        // are seen.
        let log = std::fs::read(&spec.serial_log).unwrap_or_default();
        if let Some(found) = spec.expect.find(&String::from_utf8_lossy(&log)) {
            return Ok(outcome(
                true,
                Some(found.as_str().to_string()),
                String::new(),
            ));
        }
        if exited {
            return Ok(outcome(false, None, EXITED.into()));
        }
        let said = stderr.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if kvm_failure(spec.accel, &said).is_some() {
            return Ok(outcome(false, None, KVM_FAILED.into()));
        }
        if started.elapsed() >= spec.timeout {
            return Ok(outcome(
                false,
                None,
                format!(
                    "no `{}` on the serial console within {}s",
                    spec.expect.as_str(),
                    spec.timeout.as_secs()
                ),
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn qemu_args(spec: &RehearsalSpec) -> Vec<String> {
    let mut args: Vec<String> = match spec.accel {
        Accel::Tcg => vec!["-accel".into(), "tcg".into()],
        Accel::Kvm => vec!["-accel".into(), "kvm".into(), "-cpu".into(), "host".into()],
    };
    // QEMU's option syntax uses commas: a path holding one is doubled.
    let path = spec.disk.display().to_string().replace(',', ",,");
    let serial = spec.serial_log.display().to_string().replace(',', ",,");
    args.extend(
        [
            "-m",
            &spec.memory_mib.to_string(),
            "-smp",
            "1",
            "-display",
            "none",
            "-monitor",
            "none",
            "-nic",
            "none",
            "-no-reboot",
            "-serial",
            &format!("file:{serial}"),
            "-drive",
            &format!(
                "file={path},format={},if=virtio,snapshot=on",
                spec.format.qemu_name()
            ),
        ]
        .map(str::to_string),
    );
    args
}

/// The serial log's last `lines` lines, readable: ANSI sequences dropped,
/// line ends normalised, anything else unsafe escaped.
pub fn serial_tail(log: &Path, lines: usize) -> String {
    let bytes = std::fs::read(log).unwrap_or_default();
    let text = strip_ansi(&String::from_utf8_lossy(&bytes));
    let kept: Vec<&str> = text
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty())
        .collect();
    let start = kept.len().saturating_sub(lines);
    crate::text::safe_lines(&kept[start..].join("\n")).into_owned()
}

/// Drops `ESC [ … letter` and `ESC c`-style sequences and carriage returns.
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => {
                if chars.peek() == Some(&'[') {
                    chars.next();
                    for n in chars.by_ref() {
                        if n.is_ascii_alphabetic() {
                            break;
                        }
                    }
                } else {
                    chars.next();
                }
            }
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_and_carriage_returns_leave_the_tail() {
        let text = "\u{1b}c\u{1b}[?7l\u{1b}[2JSeaBIOS\r\n\r\ntiny-1 login: ";
        assert_eq!(strip_ansi(text), "SeaBIOS\n\ntiny-1 login: ");
    }

    #[test]
    fn the_default_marker_is_a_login_prompt_or_cloud_init_finished() {
        let spec = RehearsalSpec::new(Path::new("d"), DiskFormat::Raw, Path::new("s"));
        assert!(spec.expect.is_match("\ntiny-1 login: "));
        assert!(spec.expect.is_match(
            "Cloud-init v. 23.1.1 finished at Fri, 04 Dec 2026 13:00:00 +0000. Datasource DataSourceEc2."
        ));
        assert!(!spec.expect.is_match("Last login: yesterday"));
    }

    #[test]
    fn only_kvm_failures_under_kvm_fall_back_to_tcg() {
        // As QEMU 7.2 says it on this project's CI host (nested KVM).
        let msr = "qemu-system-x86_64: error: failed to set MSR 0x10a to 0xc000069\n\
                   qemu-system-x86_64: target/i386/kvm/kvm.c:3849: kvm_buf_set_msrs: \
                   Assertion `ret == cpu->kvm_msr_buf->nmsrs' failed.\n";
        assert_eq!(
            kvm_failure(Accel::Kvm, msr).as_deref(),
            Some("qemu-system-x86_64: error: failed to set MSR 0x10a to 0xc000069")
        );
        let internal = "KVM internal error. Suberror: 1\nextra data[0]: 0x0000000000000000\n";
        assert_eq!(
            kvm_failure(Accel::Kvm, internal).as_deref(),
            Some("KVM internal error. Suberror: 1")
        );
        // The same words under TCG, or another failure under KVM: no retry.
        assert_eq!(kvm_failure(Accel::Tcg, msr), None);
        let disk = "qemu-system-x86_64: -drive file=/x: Could not open '/x': No such file\n";
        assert_eq!(kvm_failure(Accel::Kvm, disk), None);
        assert_eq!(kvm_failure(Accel::Kvm, ""), None);
    }

    #[test]
    fn commas_in_paths_are_doubled_for_qemu() {
        let spec = RehearsalSpec::new(Path::new("/tmp/a,b.raw"), DiskFormat::Raw, Path::new("s"));
        let args = qemu_args(&spec);
        assert!(args.contains(&"file=/tmp/a,,b.raw,format=raw,if=virtio,snapshot=on".to_string()));
        assert_eq!(&args[..2], ["-accel", "tcg"]);
    }
}
