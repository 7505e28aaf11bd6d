//! The run as a process of its own: `apply --detach`, `runs`, viewers that
//! come and go, read-only viewers, the socket's guards, and a killed viewer
//! that leaves the run going. Everything through the real binary on a lab.

use altishift_testkit::cli as support;

use altishift::engine::event::{Command, Event, Stage};
use altishift::engine::link;
use altishift::engine::wire::{self, ServerMessage};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};
use support::{Lab, alive, engine_pid, only_run_dir, text};

const LIMIT: Duration = Duration::from_secs(180);

fn runs_json(lab: &Lab) -> serde_json::Value {
    let out = lab.run(&["runs", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    serde_json::from_slice(&out.stdout).expect("runs --json")
}

/// A lab with db-1 planned and approved.
fn approved_lab() -> Lab {
    let lab = Lab::new();
    assert!(lab.plan(&["db-1"], &[]).status.success());
    let out = lab.approve();
    assert!(out.status.success(), "{}", text(&out));
    lab
}

fn report(run_dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(run_dir.join("report.json")).expect("report.json");
    serde_json::from_str(&text).expect("report")
}

#[test]
fn detach_returns_at_once_and_apply_then_watches_the_run_to_its_end() {
    let lab = approved_lab();
    let out = lab.apply(&["--detach", "--throttle", "2MiB/s"]);
    assert!(out.status.success(), "{}", text(&out));
    let said = text(&out);
    assert!(said.contains("running in the background"), "{said}");
    assert!(said.contains("altishift attach run-"), "{said}");

    let run_dir = only_run_dir(&lab);
    let runs = runs_json(&lab);
    let row = &runs[0];
    assert!(
        ["running", "starting", "paused"].contains(&row["state"].as_str().unwrap_or("")),
        "{runs:#}"
    );
    assert_eq!(row["source"], "lab-east");
    assert_eq!(row["target"], "lab-west");
    let pid = row["pid"].as_u64().expect("a running engine has a pid") as u32;
    assert_eq!(pid, engine_pid(&run_dir));
    assert!(alive(pid));
    let listing = text(&lab.run(&["runs"]));
    assert!(
        listing.contains(row["run_id"].as_str().unwrap()),
        "{listing}"
    );
    assert!(listing.contains("lab-east → lab-west"), "{listing}");

    // The run folder and its socket are the engine user's alone.
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&run_dir), 0o700);
    assert_eq!(mode(&wire::socket_path(&run_dir)), 0o600);

    // A second apply does not start a second engine: it watches this one.
    let out = lab.apply(&[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("already running; watching it"),
        "{}",
        text(&out)
    );
    assert!(text(&out).contains("report:"), "{}", text(&out));
    let runs = runs_json(&lab);
    assert_eq!(runs[0]["state"], "finished", "{runs:#}");
    let report = report(&run_dir);
    assert_eq!(report["ok"], true);
    assert_eq!(
        report["resumed"], false,
        "one engine ran it from start to end"
    );
    // The socket goes with the engine.
    let start = Instant::now();
    while wire::socket_path(&run_dir).exists() {
        assert!(start.elapsed() < LIMIT, "socket left behind");
        std::thread::sleep(Duration::from_millis(100));
    }
    let start = Instant::now();
    while alive(pid) {
        assert!(
            start.elapsed() < LIMIT,
            "the engine never exits after its run"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn killing_apply_loses_a_viewer_not_the_run() {
    let lab = approved_lab();
    let mut child = support::bin()
        .arg("--config")
        .arg(lab.config())
        .args(["apply", lab.plan_path().to_str().unwrap(), "--json"])
        .args(["--throttle", "2MiB/s"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
    loop {
        let line = lines.next().expect("events until blocks flow").unwrap();
        let timed: altishift::engine::event::TimedEvent = serde_json::from_str(&line).unwrap();
        if let Event::Progress(p) = timed.event
            && p.bytes_sent.0 > 0
        {
            break;
        }
    }
    let run_dir = only_run_dir(&lab);
    let pid = engine_pid(&run_dir);
    // SAFETY: plain kill(2) of our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    child.wait().unwrap();
    assert!(alive(pid), "the engine died with its viewer");
    let out = lab.apply(&[]);
    assert!(out.status.success(), "{}", text(&out));
    let report = report(&run_dir);
    assert_eq!(report["ok"], true);
    assert_eq!(
        report["resumed"], false,
        "the first engine finished the run"
    );
}

/// Waits for a message matching `want` on a viewer's stream.
async fn wait_for(
    link: &mut link::RunLink,
    what: &str,
    want: impl Fn(&ServerMessage) -> bool,
) -> ServerMessage {
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let message = tokio::time::timeout_at(deadline, link.messages.recv())
            .await
            .unwrap_or_else(|_| panic!("never saw {what}"))
            .unwrap_or_else(|| panic!("stream ended before {what}"));
        if want(&message) {
            return message;
        }
    }
}

fn stage_is(message: &ServerMessage, disk: &str, stage: Stage) -> bool {
    matches!(message, ServerMessage::Event(t)
        if t.event == Event::Stage { disk: disk.to_string(), stage })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_viewers_see_one_run_and_a_read_only_one_cannot_steer_it() {
    let lab = approved_lab();
    let out = lab.apply(&["--detach", "--throttle", "1MiB/s"]);
    assert!(out.status.success(), "{}", text(&out));
    let run_dir = only_run_dir(&lab);
    let mut control = link::connect(&run_dir, "test-control", false)
        .await
        .unwrap();
    let mut watcher = link::connect(&run_dir, "test-watcher", true).await.unwrap();
    assert_eq!(control.welcome.protocol, wire::PROTOCOL);
    assert_eq!(control.welcome.run.run_id, watcher.welcome.run.run_id);
    assert!(watcher.welcome.viewers >= 2, "{:?}", watcher.welcome);

    // Both learn the disks from the catch-up, whenever they connected.
    let started = wait_for(
        &mut control,
        "RunStarted",
        |m| matches!(m, ServerMessage::Event(t) if matches!(t.event, Event::RunStarted { .. })),
    )
    .await;
    let ServerMessage::Event(started) = started else {
        unreachable!()
    };
    let Event::RunStarted { disks, .. } = started.event else {
        unreachable!()
    };
    let disk = disks[0].disk.clone();

    // The read-only viewer's pause is refused, and audited as refused.
    watcher
        .commands
        .send(Command::Pause { disk: disk.clone() })
        .unwrap();
    let refused = wait_for(&mut watcher, "a refusal", |m| {
        matches!(m, ServerMessage::Refused { .. })
    })
    .await;
    assert!(format!("{refused:?}").contains("read-only"), "{refused:?}");

    // The controlling viewer's pause is carried out: both viewers see it.
    wait_for(&mut control, "transfer", |m| {
        stage_is(m, &disk, Stage::Transfer)
    })
    .await;
    control
        .commands
        .send(Command::Pause { disk: disk.clone() })
        .unwrap();
    wait_for(&mut control, "paused (control)", |m| {
        stage_is(m, &disk, Stage::Paused)
    })
    .await;
    wait_for(&mut watcher, "paused (watcher)", |m| {
        stage_is(m, &disk, Stage::Paused)
    })
    .await;
    let runs = runs_json(&lab);
    let paused_or_moving = ["paused", "running"];
    assert!(
        paused_or_moving.contains(&runs[0]["state"].as_str().unwrap_or("")),
        "{runs:#}"
    );

    let audit = std::fs::read_to_string(lab.state().join("audit.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = audit
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let pauses: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|e| e["action"] == "command_pause")
        .collect();
    assert_eq!(pauses.len(), 2, "{audit}");
    let refused_entry = pauses[0]["outcome"].as_str().unwrap();
    assert!(
        refused_entry.starts_with("refused: read-only viewer test-watcher (uid "),
        "{refused_entry}"
    );
    let carried = pauses[1]["outcome"].as_str().unwrap();
    assert!(carried.starts_with("from test-control (uid "), "{carried}");
    assert!(
        carried.contains(", pid "),
        "the kernel's pid is recorded: {carried}"
    );

    // Shut down from a viewer: the engine stops at a consistent point and
    // goes; `apply` resumes the run from its journal.
    control.commands.send(Command::Shutdown).unwrap();
    while control.messages.recv().await.is_some() {}
    while watcher.messages.recv().await.is_some() {}
    let runs = runs_json(&lab);
    assert_ne!(runs[0]["state"], "running", "{runs:#}");
    let out = lab.apply(&[]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(report(&run_dir)["ok"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_of_another_protocol_is_told_which_one_to_speak() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let lab = approved_lab();
    let out = lab.apply(&["--detach", "--throttle", "1MiB/s"]);
    assert!(out.status.success(), "{}", text(&out));
    let run_dir = only_run_dir(&lab);
    let stream = tokio::net::UnixStream::connect(wire::socket_path(&run_dir))
        .await
        .unwrap();
    let (read, mut write) = stream.into_split();
    write
        .write_all(
            b"{\"type\":\"hello\",\"protocol\":99,\"viewer\":\"future\",\"read_only\":true}\n",
        )
        .await
        .unwrap();
    let mut line = String::new();
    BufReader::new(read).read_line(&mut line).await.unwrap();
    let answer: ServerMessage = serde_json::from_str(line.trim()).unwrap();
    let ServerMessage::Rejected { reason } = answer else {
        panic!("{line}")
    };
    assert!(
        reason.contains(&format!("protocol {}", wire::PROTOCOL)),
        "{reason}"
    );
    assert!(reason.contains("99"), "{reason}");
    // Garbage and an oversized line do not harm the engine: it still serves.
    let stream = tokio::net::UnixStream::connect(wire::socket_path(&run_dir))
        .await
        .unwrap();
    let (_read, mut write) = stream.into_split();
    let huge = vec![b'x'; wire::MAX_LINE + 10];
    let _ = write.write_all(&huge).await;
    drop(write);
    let viewer = link::connect(&run_dir, "after-garbage", true)
        .await
        .unwrap();
    assert_eq!(viewer.welcome.protocol, wire::PROTOCOL);
    drop(viewer);
    let out = lab.apply(&[]);
    assert!(out.status.success(), "{}", text(&out));
}
