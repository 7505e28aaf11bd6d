//! A real OpenSSH server on a loopback port, run as the current user with
//! throw-away host and user keys, and an `ssh_config` for the client. Killed
//! on drop.

#![allow(dead_code)]

use altishift::cloud::ssh::SshTarget;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const HOST: &str = "altishift-test";

pub struct Sshd {
    dir: tempfile::TempDir,
    port: u16,
    child: std::sync::Mutex<Option<Child>>,
}

fn keygen(path: &Path) {
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .status()
        .expect("ssh-keygen runs (install openssh-client)");
    assert!(status.success(), "ssh-keygen failed");
}

fn user() -> String {
    let out = Command::new("id").arg("-un").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Sshd {
    pub fn start() -> Sshd {
        Sshd::start_with("")
    }

    /// A server whose sessions find `dir` first on their PATH (shims of
    /// remote commands, e.g. a `sudo` that wants a password).
    pub fn start_with_path_first(dir: &Path) -> Sshd {
        Sshd::start_with(&format!(
            "SetEnv PATH={}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n",
            dir.display()
        ))
    }

    /// `extra` is appended to the server's configuration.
    pub fn start_with(extra: &str) -> Sshd {
        assert!(
            Path::new("/usr/sbin/sshd").exists(),
            "/usr/sbin/sshd is missing: run scripts/test (it installs openssh-server)"
        );
        let dir = tempfile::Builder::new()
            .prefix("altishift-sshd-")
            .tempdir()
            .unwrap();
        let d = dir.path();
        keygen(&d.join("host_key"));
        keygen(&d.join("id_user"));
        keygen(&d.join("id_other"));
        keygen(&d.join("other_host_key"));
        std::fs::copy(d.join("id_user.pub"), d.join("authorized_keys")).unwrap();
        // sshd refuses to start without its privilege-separation folder.
        let _ = std::fs::create_dir_all("/run/sshd");
        let port = free_port();
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\n\
             AuthorizedKeysFile {d}/authorized_keys\nPubkeyAuthentication yes\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n\
             StrictModes no\nPermitRootLogin prohibit-password\nPidFile {d}/sshd.pid\n\
             LogLevel ERROR\nMaxSessions 64\nMaxStartups 64\n{extra}",
            d = d.display()
        );
        std::fs::write(d.join("sshd_config"), config).unwrap();
        let host_pub = std::fs::read_to_string(d.join("host_key.pub")).unwrap();
        let other_pub = std::fs::read_to_string(d.join("other_host_key.pub")).unwrap();
        std::fs::write(
            d.join("known_hosts"),
            format!("[127.0.0.1]:{port} {}", host_pub.trim()),
        )
        .unwrap();
        std::fs::write(
            d.join("wrong_known_hosts"),
            format!("[127.0.0.1]:{port} {}", other_pub.trim()),
        )
        .unwrap();
        for (name, identity, known) in [
            ("ssh_config", "id_user", "known_hosts"),
            ("ssh_config_wrong_key", "id_other", "known_hosts"),
            ("ssh_config_wrong_host", "id_user", "wrong_known_hosts"),
        ] {
            let text = format!(
                "Host {HOST}\n  HostName 127.0.0.1\n  Port {port}\n  User {user}\n  \
                 IdentityFile {d}/{identity}\n  IdentitiesOnly yes\n  IdentityAgent none\n  \
                 UserKnownHostsFile {d}/{known}\n  GlobalKnownHostsFile /dev/null\n  \
                 StrictHostKeyChecking yes\n  LogLevel ERROR\n",
                user = user(),
                d = d.display()
            );
            std::fs::write(d.join(name), text).unwrap();
        }
        let sshd = Sshd {
            dir,
            port,
            child: std::sync::Mutex::new(None),
        };
        sshd.launch();
        sshd
    }

    fn launch(&self) {
        let child = Command::new("/usr/sbin/sshd")
            .arg("-D")
            .arg("-e")
            .arg("-f")
            .arg(self.dir.path().join("sshd_config"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sshd starts");
        *self.child.lock().unwrap() = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "sshd did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A login as the current user with the right keys.
    pub fn target(&self) -> SshTarget {
        self.target_with("ssh_config")
    }

    /// A login whose key the server does not know.
    pub fn target_wrong_key(&self) -> SshTarget {
        self.target_with("ssh_config_wrong_key")
    }

    /// A client whose known_hosts holds another key for this server.
    pub fn target_wrong_host_key(&self) -> SshTarget {
        self.target_with("ssh_config_wrong_host")
    }

    fn target_with(&self, config: &str) -> SshTarget {
        SshTarget {
            host: HOST.into(),
            user: None,
            options: vec![
                "-F".into(),
                self.dir.path().join(config).display().to_string(),
            ],
            sudo: false,
        }
    }

    /// The login the server accepts: the user running the tests.
    pub fn user(&self) -> String {
        user()
    }

    /// `ssh` options that reach this server at a bare address (a droplet's
    /// or a worker's IP, 127.0.0.1 here) with the test key. With
    /// `known_hosts`, the server's key is pinned from the harness's file;
    /// without, the caller pins it (e.g. from guest attributes).
    pub fn options_for_address(&self, known_hosts: bool) -> Vec<String> {
        let d = self.dir.path().display().to_string();
        let mut options: Vec<String> = [
            "-F",
            "/dev/null",
            "-p",
            &self.port().to_string(),
            "-i",
            &format!("{d}/id_user"),
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "IdentityAgent=none",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if known_hosts {
            for option in [
                format!("UserKnownHostsFile={d}/known_hosts"),
                "GlobalKnownHostsFile=/dev/null".into(),
                "StrictHostKeyChecking=yes".into(),
            ] {
                options.push("-o".into());
                options.push(option);
            }
        }
        options
    }

    /// Arguments for a plain `ssh` command (the benchmark's baseline).
    pub fn ssh_args(&self) -> Vec<String> {
        vec![
            "-F".into(),
            self.dir.path().join("ssh_config").display().to_string(),
            HOST.into(),
        ]
    }

    /// Kills every connection the server holds (its per-connection
    /// children), as a dropped network would; the listener stays up.
    pub fn kill_connections(&self) -> usize {
        let Some(listener) = self.child.lock().unwrap().as_ref().map(Child::id) else {
            return 0;
        };
        // The whole tree: the per-connection monitor, its network child and
        // the session's processes (killing the monitor alone leaves the
        // connection up).
        let mut tree = Vec::new();
        let mut todo = vec![listener];
        while let Some(parent) = todo.pop() {
            for pid in children_of(parent) {
                tree.push(pid);
                todo.push(pid);
            }
        }
        let mut killed = 0;
        for pid in tree {
            // SAFETY: kill(2) on a pid we just read as our sshd's child.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            killed += 1;
        }
        killed
    }

    /// Stops the server and its connections.
    pub fn stop(&self) {
        self.kill_connections();
        if let Some(mut child) = self.child.lock().unwrap().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port with the same keys.
    pub fn restart(&self) {
        self.stop();
        self.launch();
    }
}

/// Pids whose parent is `parent` (from /proc).
fn children_of(parent: u32) -> Vec<u32> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // Fields after the command name (which is in parentheses).
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let ppid = rest.split_whitespace().nth(1).and_then(|p| p.parse().ok());
        if ppid == Some(parent) {
            found.push(pid);
        }
    }
    found
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The `altishift-agent` binary the tests copy to the test host, built once
/// per test process by the cargo that builds the tests, with their profile
/// and target folder (integration tests of the root package get no
/// `CARGO_BIN_EXE_` for another package's binary).
pub fn agent_binary() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            // Test binaries live in <target>/<profile>/deps/.
            let exe = std::env::current_exe().unwrap();
            let profile_dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
            let target_dir = profile_dir.parent().unwrap();
            let profile = profile_dir
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let cargo = std::env::var_os("CARGO")
                .or_else(|| option_env!("CARGO").map(Into::into))
                .unwrap_or_else(|| "cargo".into());
            let mut build = Command::new(cargo);
            build
                .args([
                    "build",
                    "--quiet",
                    "-p",
                    "altishift-agent",
                    "--manifest-path",
                ])
                .arg(crate::repo_root().join("Cargo.toml"))
                .arg("--target-dir")
                .arg(target_dir);
            match profile.as_str() {
                "debug" => {}
                "release" => {
                    build.arg("--release");
                }
                other => {
                    build.args(["--profile", other]);
                }
            }
            let status = build.status().expect("cargo runs to build the agent");
            assert!(status.success(), "cargo build -p altishift-agent failed");
            let agent = profile_dir.join("altishift-agent");
            assert!(agent.is_file(), "{} was not built", agent.display());
            agent
        })
        .clone()
}
