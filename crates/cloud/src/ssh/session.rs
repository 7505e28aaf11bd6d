//! One SSH connection to a source host through the system `ssh` binary, so
//! the operator's `~/.ssh/config`, agent, ProxyJump and known_hosts apply.
//!
//! A ControlMaster is started once (`ssh -M -N -f`) and every command and
//! stream multiplexes over it: opening another channel costs a round trip,
//! not a handshake. When the master dies (a dropped connection) the next
//! command starts a new one.

use crate::CloudError;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::process::{Child, Command};
use tokio::sync::Mutex;

/// How long one remote command may take unless the profile says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// Where and how to log in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshTarget {
    pub host: String,
    pub user: Option<String>,
    /// Extra arguments for `ssh`, before the host (`-F FILE`, `-o K=V`, `-p N`).
    pub options: Vec<String>,
    /// Run remote commands through `sudo -n`.
    pub sudo: bool,
}

impl SshTarget {
    /// `user@host` or `host`, for messages.
    pub fn label(&self) -> String {
        match &self.user {
            Some(user) => format!("{user}@{}", self.host),
            None => self.host.clone(),
        }
    }
}

pub struct Session {
    target: SshTarget,
    /// Holds the control socket; removed with the session.
    control_dir: PathBuf,
    master: Mutex<bool>,
    /// Limit of one remote command (and of a stream's silence), in ms.
    timeout_ms: AtomicU64,
}

/// What a finished remote command said.
#[derive(Debug)]
pub struct Output {
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Session {
    pub fn new(target: SshTarget) -> Result<Session, CloudError> {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // Short on purpose: a socket path must fit in 108 bytes.
        let control_dir =
            std::env::temp_dir().join(format!("altishift-ssh-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&control_dir)
            .map_err(|e| CloudError::from_io("control socket folder", e))?;
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&control_dir, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| CloudError::from_io("control socket folder", e))?;
        }
        Ok(Session {
            target,
            control_dir,
            master: Mutex::new(false),
            timeout_ms: AtomicU64::new(DEFAULT_TIMEOUT.as_millis() as u64),
        })
    }

    /// How long one remote command may run before it is stopped.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms.load(Ordering::Relaxed))
    }

    pub fn set_timeout(&self, limit: Duration) {
        let ms = u64::try_from(limit.as_millis()).unwrap_or(u64::MAX).max(1);
        self.timeout_ms.store(ms, Ordering::Relaxed);
    }

    /// Runs `work` (a remote `command`, or the login when None) within
    /// `limit`; past it the local `ssh` is killed (kill on drop) and the
    /// error names the command.
    pub async fn within<T>(
        &self,
        limit: Duration,
        command: Option<&str>,
        work: impl std::future::Future<Output = Result<T, CloudError>>,
    ) -> Result<T, CloudError> {
        match tokio::time::timeout(limit, work).await {
            Ok(result) => result,
            Err(_) => {
                let host = self.target.label();
                let what = match command {
                    Some(command) => format!("'{}' on {host}", short(command)),
                    None => format!("the ssh login to {host}"),
                };
                Err(CloudError::Permanent(format!(
                    "{what} did not finish within {} s and was stopped (a hung command, \
                     filesystem or connection)",
                    limit.as_secs_f64()
                )))
            }
        }
    }

    pub fn target(&self) -> &SshTarget {
        &self.target
    }

    fn control_path(&self) -> PathBuf {
        self.control_dir.join("cm")
    }

    /// `ssh` with the profile's options, the control socket and batch mode
    /// (never a password prompt on the operator's terminal).
    fn base_command(&self, master: bool) -> Command {
        // Our options come after the profile's: ssh takes the first value of
        // each, so the operator's own ConnectTimeout or keepalives win.
        let connect = self.timeout().as_secs().clamp(1, 30);
        let mut command = crate::child::tokio_command("ssh");
        command
            .args(&self.target.options)
            .arg("-o")
            .arg("BatchMode=yes")
            .arg("-o")
            .arg(format!("ConnectTimeout={connect}"))
            .arg("-o")
            .arg("ServerAliveCountMax=4")
            .arg("-o")
            .arg(format!("ControlPath={}", self.control_path().display()))
            .arg("-o")
            .arg(if master {
                "ControlMaster=yes"
            } else {
                "ControlMaster=no"
            })
            .arg("-o")
            .arg("ServerAliveInterval=15");
        if let Some(user) = &self.target.user {
            command.arg("-l").arg(user);
        }
        command.kill_on_drop(true);
        command
    }

    /// Starts the ControlMaster unless one is up.
    async fn ensure_master(&self) -> Result<(), CloudError> {
        let mut up = self.master.lock().await;
        if *up && self.control_path().exists() {
            return Ok(());
        }
        // The backgrounded master keeps its stderr: give it a file, not a
        // pipe, or reading the pipe to its end would wait for the master.
        let log = self.control_dir.join("master.log");
        let stderr =
            std::fs::File::create(&log).map_err(|e| CloudError::from_io("ssh master log", e))?;
        let mut login = self.base_command(true);
        login
            .args(["-N", "-f", "-o", "ControlPersist=no"])
            .arg(&self.target.host)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .kill_on_drop(false);
        let status = self
            .within(self.timeout(), None, async {
                login
                    .status()
                    .await
                    .map_err(|e| CloudError::Permanent(format!("cannot run ssh: {e}")))
            })
            .await?;
        if !status.success() {
            let stderr = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(classify(&self.target, status.code(), &stderr, None));
        }
        *up = true;
        Ok(())
    }

    /// Wraps a remote command in `sudo -n` when the profile asks for it.
    pub fn remote(&self, command: &str) -> String {
        if self.target.sudo {
            format!("sudo -n {command}")
        } else {
            command.to_string()
        }
    }

    /// Runs a remote shell command to its end, with `stdin` sent to it,
    /// within the session's timeout.
    pub async fn run(&self, command: &str, stdin: Option<&Path>) -> Result<Output, CloudError> {
        self.within(
            self.timeout(),
            Some(command),
            self.run_unlimited(command, stdin),
        )
        .await
    }

    async fn run_unlimited(
        &self,
        command: &str,
        stdin: Option<&Path>,
    ) -> Result<Output, CloudError> {
        self.ensure_master().await?;
        let input = match stdin {
            Some(path) => Stdio::from(
                std::fs::File::open(path).map_err(|e| CloudError::from_io(path.display(), e))?,
            ),
            None => Stdio::null(),
        };
        let output = self
            .base_command(false)
            .arg(&self.target.host)
            .arg("--")
            .arg(command)
            .stdin(input)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .await
            .map_err(|e| CloudError::Permanent(format!("cannot run ssh: {e}")))?;
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        if !output.status.success() {
            return Err(classify(
                &self.target,
                output.status.code(),
                &stderr,
                Some(command),
            ));
        }
        Ok(Output {
            stdout: output.stdout,
            stderr,
        })
    }

    /// Runs a remote command to its end with `input` on its stdin, within
    /// `limit` (a digest scan of a whole disk takes longer than a command).
    pub async fn run_with_input(
        &self,
        command: &str,
        input: Vec<u8>,
        limit: Duration,
    ) -> Result<Output, CloudError> {
        self.within(
            limit,
            Some(command),
            self.run_with_input_unlimited(command, input),
        )
        .await
    }

    async fn run_with_input_unlimited(
        &self,
        command: &str,
        input: Vec<u8>,
    ) -> Result<Output, CloudError> {
        use tokio::io::AsyncWriteExt;
        let mut child = self.spawn(command).await?;
        let stdin = child.stdin.take();
        let feed = async move {
            if let Some(mut stdin) = stdin {
                // A write error shows in the exit status below.
                let _ = stdin.write_all(&input).await;
            }
        };
        let (_, output) = tokio::join!(feed, child.wait_with_output());
        let output = output.map_err(|e| CloudError::Permanent(format!("ssh: {e}")))?;
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        if !output.status.success() {
            return Err(classify(
                &self.target,
                output.status.code(),
                &stderr,
                Some(command),
            ));
        }
        Ok(Output {
            stdout: output.stdout,
            stderr,
        })
    }

    /// Starts a remote command with piped stdin, stdout and stderr (a
    /// stream: its reader bounds each wait with [`Session::timeout`]).
    pub async fn spawn(&self, command: &str) -> Result<Child, CloudError> {
        self.within(self.timeout(), Some(command), self.ensure_master())
            .await?;
        self.base_command(false)
            .arg(&self.target.host)
            .arg("--")
            .arg(command)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| CloudError::Permanent(format!("cannot run ssh: {e}")))
    }

    /// Stops the ControlMaster (the connection closes).
    pub async fn close(&self) {
        let mut up = self.master.lock().await;
        if self.control_path().exists() {
            let mut exit = self.base_command(false);
            exit.args(["-O", "exit"])
                .arg(&self.target.host)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            let _ = tokio::time::timeout(self.timeout(), exit.status()).await;
        }
        *up = false;
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // No runtime here: ask the master to exit synchronously, best effort.
        if self.control_path().exists() {
            let _ = crate::child::command("ssh")
                .args(&self.target.options)
                .arg("-o")
                .arg(format!("ControlPath={}", self.control_path().display()))
                .args(["-O", "exit"])
                .arg(&self.target.host)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let _ = std::fs::remove_dir_all(&self.control_dir);
    }
}

/// Quotes a word for the remote POSIX shell.
pub fn quote(word: &str) -> String {
    if !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+:=@,".contains(&b))
    {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// Turns what `ssh` (or the remote command) said into an error an operator
/// can act on. Lost connections are transient; the rest are not.
pub fn classify(
    target: &SshTarget,
    code: Option<i32>,
    stderr: &str,
    command: Option<&str>,
) -> CloudError {
    let host = target.label();
    let said = last_lines(stderr);
    let has = |needle: &str| stderr.contains(needle);
    if has("REMOTE HOST IDENTIFICATION HAS CHANGED") || has("Host key verification failed") {
        return CloudError::Permanent(format!(
            "ssh to {host}: host key verification failed — the key the host offered is not the \
             one in known_hosts (a rebuilt host or a man in the middle); check it and fix \
             known_hosts ({said})"
        ));
    }
    if has("Permission denied (") || has("Too many authentication failures") {
        return CloudError::Auth(format!(
            "ssh to {host}: login refused — check the user, the key and the ssh agent ({said})"
        ));
    }
    if has("a password is required")
        || has("a terminal is required")
        || has("no tty present")
        || has("sudo: no askpass")
    {
        return CloudError::Auth(format!(
            "sudo on {host} asks for a password, and altishift never types one: give the login \
             passwordless sudo (NOPASSWD in sudoers) for the commands used (the agent, dd, \
             blockdev), or set `sudo = false` in the profile and log in as a user who can read \
             the device ({said})"
        ));
    }
    if has("sudo: command not found") || has("sudo: not found") {
        return CloudError::Permanent(format!(
            "{host} has no sudo, but the profile asks for it ({said})"
        ));
    }
    if has("No such file or directory") && (has("cannot open") || has("dd:") || has("stat:")) {
        return CloudError::NotFound(format!("device on {host}: {said}"));
    }
    let lost = has("Connection refused")
        || has("Connection reset")
        || has("Connection closed")
        || has("closed by remote host")
        || has("Broken pipe")
        || has("timed out")
        || has("Control socket connect")
        || has("mux_client")
        || has("Connection to")
        || (code == Some(255) || code.is_none());
    let what = match command {
        Some(command) => format!("'{}' on {host}", short(command)),
        None => format!("ssh to {host}"),
    };
    if lost {
        return CloudError::Transient(format!(
            "{what}: connection lost or refused ({})",
            if said.is_empty() { "no message" } else { &said }
        ));
    }
    CloudError::Permanent(format!(
        "{what} failed (exit {}): {said}",
        code.map(|c| c.to_string())
            .unwrap_or_else(|| "signal".into())
    ))
}

fn last_lines(stderr: &str) -> String {
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("@@@"))
        .collect();
    lines[lines.len().saturating_sub(3)..].join(" / ")
}

fn short(command: &str) -> String {
    let mut text: String = command.chars().take(80).collect();
    if command.len() > text.len() {
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> SshTarget {
        SshTarget {
            host: "db1".into(),
            user: Some("ops".into()),
            options: vec![],
            sudo: true,
        }
    }

    #[test]
    fn errors_say_what_went_wrong() {
        let t = target();
        let e = classify(
            &t,
            Some(255),
            "@@@@@\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\nHost key verification failed.\n",
            None,
        );
        assert!(
            e.to_string().contains("host key verification failed"),
            "{e}"
        );
        assert!(!e.is_transient());
        let e = classify(
            &t,
            Some(255),
            "ops@db1: Permission denied (publickey).\n",
            None,
        );
        assert!(matches!(e, CloudError::Auth(_)), "{e}");
        assert!(e.to_string().contains("ops@db1"), "{e}");
        let e = classify(
            &t,
            Some(1),
            "sudo: a password is required\n",
            Some("sudo -n dd"),
        );
        assert!(e.to_string().contains("asks for a password"), "{e}");
        assert!(e.to_string().contains("NOPASSWD"), "{e}");
        assert!(e.to_string().contains("sudo = false"), "{e}");
        let e = classify(
            &t,
            Some(1),
            "altishift: error: cannot open /dev/vdz: No such file or directory (os error 2)\n",
            Some("agent map /dev/vdz"),
        );
        assert!(matches!(e, CloudError::NotFound(_)), "{e}");
        assert!(e.to_string().contains("/dev/vdz"), "{e}");
        let e = classify(
            &t,
            Some(255),
            "Connection to db1 closed by remote host.\n",
            None,
        );
        assert!(e.is_transient(), "{e}");
        let e = classify(&t, Some(3), "weird\n", Some("x"));
        assert!(!e.is_transient() && e.to_string().contains("exit 3"), "{e}");
    }

    #[test]
    fn words_are_quoted_for_the_shell() {
        assert_eq!(quote("/dev/vda"), "/dev/vda");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote(""), "''");
    }
}
