//! The built binary in a real terminal: tmux at 80x24, keys sent with
//! `send-keys`, the screen read with `capture-pane`, and the terminal's
//! `stty -g` state compared before and after the console ran — after `q`,
//! after SIGTERM and after SIGHUP.
//!
//! Waiting polls the screen with a generous limit; nothing here asserts on
//! how long anything took.

use altishift::cloud::lab::generate::{LabScale, init};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(60);

fn console_binary() -> String {
    // ALTISHIFT_CONSOLE_BIN lets a development driver stand in for the binary.
    std::env::var("ALTISHIFT_CONSOLE_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_altishift").to_string())
}

/// These tests need a real terminal multiplexer: a machine without tmux
/// fails them (a skipped test would pass having checked nothing).
fn require_tmux() {
    let found = Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "tmux is not installed: run scripts/test (it installs tmux) or `apt-get install tmux`"
    );
}

struct Session {
    socket: String,
    dir: tempfile::TempDir,
}

impl Session {
    /// A lab in a temp dir and the console on it in a detached 80x24 tmux.
    fn start(name: &str, extra: &str) -> Session {
        require_tmux();
        let dir = tempfile::tempdir().expect("tempdir");
        let lab = init(&dir.path().join("lab"), LabScale::Small).expect("lab");
        let args = format!(
            "--config '{config}' --state-dir '{state}' {extra}",
            config = lab.config.display(),
            state = dir.path().join("state").display(),
        );
        Session::launch(name, dir, &args)
    }

    /// Another console (`attach`, say) on the lab and state of `self`, in a
    /// tmux server of its own.
    fn beside(&self, name: &str, extra: &str) -> Session {
        let dir = tempfile::tempdir().expect("tempdir");
        let args = format!(
            "--config '{config}' --state-dir '{state}' {extra}",
            config = self.path("lab/config.toml").display(),
            state = self.path("state").display(),
        );
        Session::launch(name, dir, &args)
    }

    fn launch(name: &str, dir: tempfile::TempDir, args: &str) -> Session {
        let script = format!(
            "stty -g > before\n\
             sh -c 'echo $$ > pid; exec \"$@\"' sh '{bin}' {args} 2> stderr\n\
             echo $? > status.tmp\n\
             stty -g > after\n\
             mv status.tmp status\n\
             exec sleep 600\n",
            bin = console_binary(),
        );
        std::fs::write(dir.path().join("run.sh"), script).expect("script");
        let socket = format!("altishift-test-{}-{name}", std::process::id());
        let status = Command::new("tmux")
            .args([
                "-L",
                &socket,
                "new-session",
                "-d",
                "-x",
                "80",
                "-y",
                "24",
                "-s",
                "main",
                "-c",
            ])
            .arg(dir.path())
            .args(["env", "TERM=xterm-256color", "sh", "run.sh"])
            .status()
            .expect("tmux");
        assert!(status.success(), "tmux new-session");
        Session { socket, dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn tmux(&self) -> Command {
        let mut command = Command::new("tmux");
        command.args(["-L", &self.socket]);
        command
    }

    /// Sends keys (tmux key names or literal text), then lets the console read them
    /// apart from the next group (a lone Esc followed at once by `j` reads as Alt-j).
    fn send(&self, keys: &[&str]) {
        let status = self
            .tmux()
            .args(["send-keys", "-t", "main"])
            .args(keys)
            .status()
            .expect("send-keys");
        assert!(status.success());
        std::thread::sleep(Duration::from_millis(150));
    }

    fn screen(&self) -> String {
        let out = self
            .tmux()
            .args(["capture-pane", "-p", "-t", "main"])
            .output()
            .expect("capture-pane");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn wait_for(&self, text: &str) -> String {
        let start = Instant::now();
        loop {
            let screen = self.screen();
            if screen.contains(text) {
                return screen;
            }
            assert!(
                start.elapsed() < LIMIT,
                "'{text}' never appeared; screen:\n{screen}\nstderr: {}",
                self.read("stderr")
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap_or_default()
    }

    fn wait_file(&self, name: &str) -> String {
        let start = Instant::now();
        while !self.path(name).exists() {
            assert!(
                start.elapsed() < LIMIT,
                "{name} never written; screen:\n{}",
                self.screen()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        self.read(name)
    }

    fn pid(&self) -> String {
        self.wait_file("pid").trim().to_string()
    }

    /// The terminal is exactly as it was before the console started.
    fn assert_restored(&self) {
        let status = self.wait_file("status");
        let (before, after) = (self.read("before"), self.read("after"));
        assert!(!before.trim().is_empty(), "no stty state recorded");
        assert_eq!(
            before,
            after,
            "stty state not restored (exit status {status}); stderr: {}",
            self.read("stderr")
        );
        // Back on the normal screen: the console's frame is gone.
        let screen = self.screen();
        assert!(
            !screen.contains("source lab-east"),
            "alternate screen still shown:\n{screen}"
        );
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.tmux().arg("kill-server").status();
    }
}

fn peak_rss(pid: &str) -> Option<String> {
    let status = std::fs::read_to_string(Path::new("/proc").join(pid).join("status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .map(|l| l.split_whitespace().skip(1).collect::<Vec<_>>().join(" "))
}

#[test]
fn migration_in_tmux_then_q_restores_the_terminal() {
    let s = Session::start("flow", "");
    s.wait_for("source lab-east (8)");
    s.wait_for("target lab-west (8)");
    s.send(&["/web-1", "Enter"]);
    s.send(&["Space"]);
    s.send(&["Escape"]);
    s.send(&["p"]);
    s.wait_for("1 instance(s), 1 disk(s)");
    s.send(&["a"]);
    let screen = s.wait_for("to approve:");
    let hash = screen
        .split("type ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("short hash on screen")
        .to_string();
    s.send(&["deadbeef", "Enter"]);
    s.wait_for("refused: typed 'deadbeef'");
    s.send(&[&hash, "Enter"]);
    s.wait_for("acknowledge");
    s.send(&["yes", "Enter"]);
    s.wait_for("Run succeeded");
    if let Some(rss) = peak_rss(&s.pid()) {
        println!("peak RSS of the console after a lab migration: {rss}");
    }
    s.send(&["q"]);
    s.assert_restored();
    assert_eq!(s.read("status").trim(), "0", "stderr: {}", s.read("stderr"));
}

#[test]
fn sigterm_restores_the_terminal() {
    let s = Session::start("term", "");
    s.wait_for("source lab-east (8)");
    let status = Command::new("kill")
        .args(["-TERM", &s.pid()])
        .status()
        .expect("kill");
    assert!(status.success());
    s.assert_restored();
}

#[test]
fn sighup_restores_the_terminal() {
    let s = Session::start("hup", "");
    s.wait_for("source lab-east (8)");
    s.send(&["/db"]); // mid-input: raw mode and the filter line are active
    let status = Command::new("kill")
        .args(["-HUP", &s.pid()])
        .status()
        .expect("kill");
    assert!(status.success());
    s.assert_restored();
}

#[test]
fn quitting_during_a_run_asks_and_explains_resume() {
    // Slow enough to still be running when q is pressed.
    let s = Session::start("quit-run", "--throttle 256KiB/s");
    start_slow_run(&s);
    s.send(&["q"]);
    s.wait_for("altishift apply");
    s.send(&["y"]);
    s.assert_restored();
    let stderr = s.read("stderr");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// Starts a slow run of db-1 from the console and waits until it transfers.
fn start_slow_run(s: &Session) {
    s.wait_for("source lab-east (8)");
    s.send(&["/db-1", "Enter"]);
    s.send(&["Space"]);
    s.send(&["p"]);
    s.send(&["a"]);
    let screen = s.wait_for("to approve:");
    let hash = screen
        .split("type ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .expect("hash")
        .to_string();
    s.send(&[&hash, "Enter"]);
    s.send(&["yes", "Enter"]);
    s.wait_for("[transfer]");
}

fn runs_json(s: &Session) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_altishift"))
        .arg("--config")
        .arg(s.path("lab/config.toml"))
        .arg("--state-dir")
        .arg(s.path("state"))
        .args(["runs", "--json"])
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("runs --json")
}

#[test]
fn a_run_outlives_its_terminal_and_attach_shows_it() {
    let s = Session::start("survive", "--throttle 64KiB/s");
    start_slow_run(&s);
    // Every terminal gone: the tmux server and the console in it.
    let status = s.tmux().arg("kill-server").status().expect("kill-server");
    assert!(status.success());
    let runs = runs_json(&s);
    let run = &runs[0];
    assert!(
        run["state"] == "running" || run["state"] == "paused",
        "the run stopped with its terminal: {runs:#}"
    );
    let pid = run["pid"].as_u64().expect("a live engine pid");
    assert!(Path::new("/proc").join(pid.to_string()).exists());
    let run_id = run["run_id"].as_str().expect("run id").to_string();

    // Two viewers: a controlling one and a read-only one.
    let viewer = s.beside("attach", "attach");
    viewer.wait_for(&format!("attached to {run_id}"));
    viewer.wait_for("db-1/");
    let watcher = s.beside("watch", &format!("attach {run_id} --read-only"));
    watcher.wait_for("attached read-only to run-");
    // The read-only viewer's pause is refused by the engine, and audited.
    watcher.send(&["p"]);
    watcher.wait_for("refused by the engine");
    let audit = std::fs::read_to_string(s.path("state/audit.jsonl")).expect("audit log");
    assert!(
        audit.contains("refused: read-only viewer attach"),
        "no refusal audited:\n{audit}"
    );

    // The controlling viewer stops it at a consistent point (q, then y):
    // the engine ends the run, and `runs` reads it from the journal.
    viewer.send(&["q"]);
    viewer.wait_for("Stop it? y / d / n");
    viewer.send(&["y"]);
    let start = Instant::now();
    loop {
        let runs = runs_json(&s);
        let state = runs[0]["state"].as_str().unwrap_or("").to_string();
        if !["running", "paused", "starting"].contains(&state.as_str()) && runs[0]["pid"].is_null()
        {
            assert_ne!(state, "finished", "stopped long before its end: {runs:#}");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the run never stopped: {runs:#}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let audit = std::fs::read_to_string(s.path("state/audit.jsonl")).expect("audit log");
    assert!(
        audit.contains("command_shutdown") && audit.contains("from attach (uid"),
        "the viewer's stop is not audited:\n{audit}"
    );
}
