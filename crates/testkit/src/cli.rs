//! Helpers for tests that drive the real `altishift` binary on a lab.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub struct Lab {
    pub dir: tempfile::TempDir,
}

/// `plan` flags for a target whose instances only a fake runs, where
/// validation's default outside checks (a login prompt on the serial
/// console, TCP port 22) cannot be met, said explicitly: moto answers every
/// instance's GetConsoleOutput with one fixed kernel log (no login prompt:
/// moto/ec2/responses/general.py), the GCE fake's console holds only what a
/// test writes there, DigitalOcean and CloudStack offer no console output
/// (the check is not available, not failed); no fake's instance address is
/// a host whose port 22 answers. The lab needs none: its bootable guest
/// prints the prompt, and its instances have no address.
pub fn fake_target_checks(provider: &str) -> &'static [&'static str] {
    match provider {
        "aws" => &["--no-check-port", "--expect", "Linux version"],
        "gcp" => &["--no-check-port", "--no-serial-check"],
        "lab" => &[],
        _ => &["--no-check-port"],
    }
}

pub fn bin() -> Command {
    let mut command = Command::new(crate::altishift_bin());
    // Keep the tests away from the user's own config and data.
    command.env("ALTISHIFT_CONFIG", "/nonexistent/altishift.toml");
    command.env("ALTISHIFT_OPERATOR", "tester@ci");
    command
}

impl Default for Lab {
    fn default() -> Lab {
        Lab::new()
    }
}

impl Lab {
    /// A small lab (a few MiB per disk) in a fresh temp dir.
    pub fn new() -> Lab {
        let dir = tempfile::tempdir().expect("temp dir");
        let out = bin()
            .args(["lab", "init", "--scale", "small"])
            .arg(dir.path().join("lab"))
            .output()
            .expect("run");
        assert!(out.status.success(), "lab init failed: {}", text(&out));
        Lab { dir }
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("lab")
    }

    pub fn config(&self) -> PathBuf {
        self.root().join("config.toml")
    }

    pub fn state(&self) -> PathBuf {
        self.root().join("state")
    }

    pub fn plan_path(&self) -> PathBuf {
        self.dir.path().join("plan.toml")
    }

    /// Runs `altishift --config LAB/config.toml ARGS…`.
    pub fn run(&self, args: &[&str]) -> Output {
        bin()
            .arg("--config")
            .arg(self.config())
            .args(args)
            .output()
            .expect("run altishift")
    }

    /// Plans `select` from lab-east to lab-west (extra args appended).
    pub fn plan(&self, select: &[&str], extra: &[&str]) -> Output {
        let plan = self.plan_path();
        let mut args = vec![
            "plan",
            "--from",
            "lab-east",
            "--to",
            "lab-west",
            "-o",
            plan.to_str().unwrap(),
            "--select",
        ];
        args.extend_from_slice(select);
        args.extend_from_slice(extra);
        self.run(&args)
    }

    pub fn short_hash(&self) -> String {
        let out = self.run(&["plan", "show", self.plan_path().to_str().unwrap(), "--json"]);
        assert!(out.status.success(), "{}", text(&out));
        let toml_text = std::fs::read_to_string(self.plan_path()).unwrap();
        let plan: altishift::plan::Plan = toml::from_str(&toml_text).unwrap();
        plan.hash().short().to_string()
    }

    pub fn approve(&self) -> Output {
        let hash = self.short_hash();
        self.run(&[
            "approve",
            self.plan_path().to_str().unwrap(),
            "--confirm",
            &hash,
            "--ack-cross-border",
        ])
    }

    /// Renames the lab-east instance in `file` to `name`, written as a TOML
    /// string (a manifest is a file anyone with access to the lab folder can
    /// edit; hostile-name tests use it).
    pub fn rename(&self, file: &str, name: &str) {
        let path = self.root().join("lab-east/instances").join(file);
        let manifest = std::fs::read_to_string(&path).unwrap();
        let old = file.trim_end_matches(".toml");
        let escaped: String = name
            .chars()
            .map(|c| match c {
                c if c.is_control() => format!("\\u{:04X}", c as u32),
                '"' => "\\\"".into(),
                '\\' => "\\\\".into(),
                c => c.to_string(),
            })
            .collect();
        let renamed = manifest.replacen(
            &format!("name = \"{old}\""),
            &format!("name = \"{escaped}\""),
            1,
        );
        assert_ne!(manifest, renamed, "{file} names '{old}'");
        std::fs::write(&path, renamed).unwrap();
    }

    pub fn apply(&self, extra: &[&str]) -> Output {
        let plan = self.plan_path();
        let mut args = vec!["apply", plan.to_str().unwrap()];
        args.extend_from_slice(extra);
        self.run(&args)
    }
}

pub fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Every file under `dir` with its size and modification time: equal
/// snapshots mean nothing was created, removed or rewritten.
pub fn tree(dir: &Path) -> BTreeMap<PathBuf, (u64, std::time::SystemTime)> {
    let mut files = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(folder) = stack.pop() {
        for entry in std::fs::read_dir(&folder).unwrap().flatten() {
            let path = entry.path();
            let meta = entry.metadata().unwrap();
            if meta.is_dir() {
                stack.push(path);
            } else {
                files.insert(
                    path.strip_prefix(dir).unwrap().to_path_buf(),
                    (meta.len(), meta.modified().unwrap()),
                );
            }
        }
    }
    files
}

/// `qemu-img compare`: true when the guest-visible contents are identical.
pub fn same_content(a: &Path, b: &Path) -> bool {
    let out = Command::new("qemu-img")
        .arg("compare")
        .arg(a)
        .arg(b)
        .output()
        .expect("qemu-img runs (run scripts/test: it installs qemu-utils)");
    out.status.success()
}

/// The one run folder of a lab whose state holds a single run.
pub fn only_run_dir(lab: &Lab) -> PathBuf {
    let runs: Vec<PathBuf> = std::fs::read_dir(lab.state().join("runs"))
        .expect("runs folder")
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
    runs[0].clone()
}

/// The pid of the engine process serving `run_dir` (waits for it to say).
pub fn engine_pid(run_dir: &Path) -> u32 {
    let start = std::time::Instant::now();
    loop {
        if let Ok(text) = std::fs::read_to_string(run_dir.join("engine.json"))
            && let Ok(info) = serde_json::from_str::<serde_json::Value>(text.trim())
            && let Some(pid) = info["pid"].as_u64()
        {
            return pid as u32;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(60),
            "no engine.json in {}",
            run_dir.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Whether `pid` is a live process (a zombie is not).
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            stat.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().chars().next())
        })
        .flatten()
        .is_some_and(|state| state != 'Z' && state != 'X')
}

/// `kill -9` of the run's engine, then waits until the kernel freed its lock.
pub fn kill_engine(run_dir: &Path) {
    let pid = engine_pid(run_dir);
    // SAFETY: plain kill(2) of a process this test started (through apply).
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    let start = std::time::Instant::now();
    while altishift::engine::lock::RunLock::held(run_dir) {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(30),
            "the killed engine's lock was never released"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
