//! Waves through the engine on a real lab: wave N+1 starts only once wave N
//! is validated, a failed wave leaves the later ones untouched (not one
//! call that changes a cloud), `apply` again carries on from the failed
//! wave, and a wave's window holds its start. Both clouds are wrapped in
//! the fault-injecting wrapper, which notes every mutating call in order.

use altishift_testkit::cli;
use altishift_testkit::faulty;

use altishift::cloud::Cloud;
use altishift::cloud::lab::generate::{self, LabScale};
use altishift::engine::{self, Command, EngineOptions, Event, RunOutcome};
use altishift::inventory::Inventory;
use altishift::plan::approval::{self, Approved};
use altishift::plan::build::{self, Request, Side, Throughput};
use altishift::plan::waves::{WaveRequest, WaveWindow};
use faulty::Faulty;
use std::sync::{Arc, Mutex};

struct Lab {
    _dir: tempfile::TempDir,
    config: altishift::config::Config,
    state: std::path::PathBuf,
}

fn lab() -> Lab {
    let dir = tempfile::tempdir().unwrap();
    let summary = generate::init(&dir.path().join("lab"), LabScale::Small).unwrap();
    let config = altishift::config::Config::load(&summary.config).unwrap();
    let state = dir.path().join("state");
    Lab {
        _dir: dir,
        config,
        state,
    }
}

type Calls = Arc<Mutex<Vec<String>>>;

/// Both lab clouds behind recording wrappers sharing one call log; the
/// target fails every write to `broken` (a target disk name).
async fn clouds(lab: &Lab, broken: &str, calls: &Calls) -> (Arc<dyn Cloud>, Arc<dyn Cloud>) {
    let mut wrapped = Vec::new();
    for name in ["lab-east", "lab-west"] {
        let inner = altishift::cloud::connect(&lab.config, name, &mut |_| None)
            .await
            .unwrap();
        let cloud: Arc<dyn Cloud> = Arc::new(Faulty {
            inner: Some(inner),
            broken_disk: broken.to_string(),
            calls: calls.clone(),
            ..Faulty::default()
        });
        wrapped.push(cloud);
    }
    let target = wrapped.pop().unwrap();
    (wrapped.pop().unwrap(), target)
}

async fn approved(
    source: &dyn Cloud,
    target: &dyn Cloud,
    select: &[&str],
    waves: WaveRequest,
) -> Approved {
    let (si, ti) = (
        source.inventory().await.unwrap(),
        target.inventory().await.unwrap(),
    );
    fn side<'a>(cloud: &'a dyn Cloud, inventory: &'a Inventory) -> Side<'a> {
        Side {
            cloud: cloud.name(),
            provider: "lab".into(),
            jurisdiction: cloud.jurisdiction(),
            inventory,
        }
    }
    let request = Request {
        select: select.iter().map(|s| s.to_string()).collect(),
        waves,
        ..Request::default()
    };
    let throughput = Throughput {
        bytes_per_second: 1 << 30,
        basis: "test".into(),
    };
    let mut plan = build::build(
        &side(source, &si),
        &side(target, &ti),
        &request,
        &throughput,
        "tester",
    )
    .unwrap();
    let short = plan.hash().short().to_string();
    approval::approve(&mut plan, &short, true, "tester").unwrap();
    approval::verify(plan).unwrap()
}

fn assign(pairs: &[(&str, u32)]) -> WaveRequest {
    WaveRequest {
        assign: pairs.iter().map(|(n, w)| (n.to_string(), *w)).collect(),
        ..WaveRequest::default()
    }
}

/// Runs to the end, answering events with `on_event`; every event kept.
async fn drive(
    mut handle: engine::RunHandle,
    mut on_event: impl FnMut(&Event, &tokio::sync::mpsc::UnboundedSender<Command>),
) -> (RunOutcome, Vec<Event>) {
    let mut events = Vec::new();
    while let Some(event) = handle.events.recv().await {
        on_event(&event, &handle.commands);
        events.push(event);
    }
    (handle.done.await.unwrap().unwrap(), events)
}

fn logs(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Log { message, .. } => Some(message.clone()),
            _ => None,
        })
        .collect()
}

fn position(calls: &[String], what: impl Fn(&str) -> bool) -> Vec<usize> {
    calls
        .iter()
        .enumerate()
        .filter(|(_, c)| what(c))
        .map(|(i, _)| i)
        .collect()
}

/// Calls that name `instance`, whether mutating or the probe.
fn about(calls: &[String], instance: &str) -> Vec<String> {
    calls
        .iter()
        .filter(|c| c.contains(instance))
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wave_two_starts_only_after_wave_one_is_validated() {
    let lab = lab();
    let calls = Calls::default();
    let (source, target) = clouds(&lab, "", &calls).await;
    // web-1 is listed first, but db-1 goes first.
    let plan = approved(
        &*source,
        &*target,
        &["web-1", "db-1"],
        assign(&[("db-1", 1), ("web-1", 2)]),
    )
    .await;
    let handle = engine::start(plan, source, target, &lab.state, EngineOptions::default()).unwrap();
    let (outcome, events) = drive(handle, |_, _| {}).await;
    assert!(outcome.ok, "{}", outcome.report.to_markdown());
    let calls = calls.lock().unwrap().clone();
    let db_probe = position(&calls, |c| c == "probe db-1");
    let web = position(&calls, |c| c.contains("web-1"));
    assert_eq!(db_probe.len(), 1, "{calls:#?}");
    assert!(
        web.len() > 3 && web[0] > db_probe[0],
        "web-1's first call comes after db-1 is validated: {calls:#?}"
    );
    // Every change to db-1 but the clean-up of its snapshots precedes wave 2.
    let last_db = position(&calls, |c| c.contains("db-1") && !c.starts_with("delete"));
    assert!(last_db.iter().all(|&i| i < web[0]), "{calls:#?}");
    let log = logs(&events);
    let at = |text: &str| {
        log.iter()
            .position(|l| l == text)
            .unwrap_or_else(|| panic!("no '{text}' in {log:#?}"))
    };
    assert!(at("wave 1 of 2: starting (db-1)") < at("wave 1 validated"));
    assert!(at("wave 1 validated") < at("wave 2 of 2: starting (web-1)"));
    assert!(at("wave 2 of 2: starting (web-1)") < at("wave 2 validated"));
    // The plan's items stay in their order in the report.
    let names: Vec<&str> = outcome
        .report
        .instances
        .iter()
        .map(|i| i.instance.as_str())
        .collect();
    assert_eq!(names, vec!["web-1", "db-1"]);
    assert_eq!(outcome.report.failed_wave, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_wave_leaves_the_next_untouched_and_apply_resumes_from_it() {
    let lab = lab();
    let first_calls = Calls::default();
    // Wave 1 (web-2) goes through, wave 2 (db-1) fails, wave 3 (web-1) waits.
    let (source, target) = clouds(&lab, "db-1-data1", &first_calls).await;
    let waves = assign(&[("web-2", 1), ("db-1", 2), ("web-1", 3)]);
    let select = ["web-1", "db-1", "web-2"];
    let plan = approved(&*source, &*target, &select, waves).await;
    let same_plan = plan.plan().clone();
    let options = EngineOptions {
        retry: engine::RetryPolicy {
            attempts: 2,
            base_delay: std::time::Duration::from_millis(1),
            max_delay: std::time::Duration::from_millis(2),
        },
        ..EngineOptions::default()
    };
    let handle = engine::start(plan, source, target, &lab.state, options.clone()).unwrap();
    let (outcome, events) = drive(handle, |_, _| {}).await;
    assert!(!outcome.ok);
    let report = &outcome.report;
    assert_eq!(report.failed_wave, Some(2), "{}", report.to_markdown());
    let calls = first_calls.lock().unwrap().clone();
    assert_eq!(
        about(&calls, "web-1"),
        Vec::<String>::new(),
        "wave 3 must not be touched"
    );
    assert!(!about(&calls, "db-1").is_empty() && !about(&calls, "web-2").is_empty());
    for disk in report.disks.iter().filter(|d| d.disk.starts_with("web-1/")) {
        assert_eq!(disk.status, "not started", "{disk:?}");
        assert_eq!(disk.bytes_sent.0, 0);
    }
    let web1 = report
        .instances
        .iter()
        .find(|i| i.instance == "web-1")
        .unwrap();
    assert!(!web1.validated);
    assert!(
        web1.checks[0].detail.contains("wave 2 failed"),
        "{:?}",
        web1.checks
    );
    let markdown = report.to_markdown();
    assert!(markdown.contains("Stopped at wave 2"), "{markdown}");
    assert!(
        markdown.contains("`altishift apply` resumes from wave 2"),
        "{markdown}"
    );
    assert!(
        logs(&events).iter().any(|l| l
            == "wave 2 of 3 failed: waves 3–3 do not start; `altishift apply` resumes from wave 2"),
        "{:#?}",
        logs(&events)
    );
    // No stage event for web-1 either: its panes stay queued.
    assert!(!events.iter().any(|e| matches!(
        e,
        Event::Stage { disk, .. } if disk.starts_with("web-1/")
    )));
    // The audit log never names web-1.
    let audit = std::fs::read_to_string(lab.state.join("audit.jsonl")).unwrap();
    assert!(!audit.contains("web-1"), "{audit}");

    // The quota is lifted; `apply` again (the same approved plan) resumes.
    let second_calls = Calls::default();
    let (source, target) = clouds(&lab, "", &second_calls).await;
    let plan = approval::verify(same_plan).unwrap();
    let handle = engine::start(plan, source, target, &lab.state, options).unwrap();
    let (outcome, _) = drive(handle, |_, _| {}).await;
    assert!(outcome.ok, "{}", outcome.report.to_markdown());
    assert!(outcome.report.resumed);
    let calls = second_calls.lock().unwrap().clone();
    // Wave 1 was done: only its validation runs again, nothing is re-made.
    assert_eq!(about(&calls, "web-2"), vec!["probe web-2".to_string()]);
    let db_probe = position(&calls, |c| c == "probe db-1");
    let web1 = position(&calls, |c| c.contains("web-1"));
    assert!(
        !web1.is_empty() && web1[0] > db_probe[0],
        "wave 3 after wave 2: {calls:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wave_waits_for_its_window_and_a_shutdown_meanwhile_starts_nothing() {
    let lab = lab();
    let calls = Calls::default();
    let (source, target) = clouds(&lab, "", &calls).await;
    let tomorrow = std::time::SystemTime::now() + std::time::Duration::from_secs(86_400);
    let not_before = humantime::format_rfc3339_seconds(tomorrow).to_string();
    let mut waves = assign(&[("web-2", 1), ("web-1", 2)]);
    waves.windows.push(WaveWindow {
        wave: 2,
        not_before: not_before.clone(),
    });
    let plan = approved(&*source, &*target, &["web-1", "web-2"], waves).await;
    assert!(
        altishift::plan::render::render(plan.plan()).contains(&format!(
            "not before {not_before} (its start waits until then)"
        ))
    );
    let handle = engine::start(plan, source, target, &lab.state, EngineOptions::default()).unwrap();
    let (outcome, events) = drive(handle, |event, commands| {
        if let Event::Log { message, .. } = event
            && message.starts_with("wave 2: waiting until")
        {
            commands.send(Command::Shutdown).unwrap();
        }
    })
    .await;
    let log = logs(&events);
    let waiting = log
        .iter()
        .find(|l| l.starts_with("wave 2: waiting until"))
        .unwrap_or_else(|| panic!("{log:#?}"));
    assert!(
        waiting.contains(&format!("{not_before} before its start")),
        "{waiting}"
    );
    assert!(!outcome.ok);
    assert_eq!(outcome.report.failed_wave, Some(2));
    let calls = calls.lock().unwrap().clone();
    assert_eq!(about(&calls, "web-1"), Vec::<String>::new());
    assert!(calls.contains(&"probe web-2".to_string()), "{calls:#?}");
}

#[test]
fn plan_flags_set_waves_and_windows_and_name_themselves_in_errors() {
    let lab = cli::Lab::new();
    let failed = |out: &std::process::Output, wanted: &str| {
        assert!(!out.status.success(), "{}", cli::text(out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(wanted), "{}", cli::text(out));
    };
    failed(
        &lab.plan(&["web-1", "db-1"], &["--wave", "nosuch=2"]),
        "--wave nosuch=…: 'nosuch' is not a selected instance (selected: web-1, db-1)",
    );
    failed(&lab.plan(&["web-1"], &["--wave", "web-1=zero"]), "--wave");
    failed(
        &lab.plan(&["web-1"], &["--not-before", "1=tomorrow"]),
        "--not-before",
    );
    failed(
        &lab.plan(
            &["web-1", "db-1"],
            &["--wave", "db-1=2", "--not-before", "3=2026-12-05T02:00:00Z"],
        ),
        "--not-before 3=…: the plan has no wave 3 (its waves: 1, 2)",
    );
    failed(
        &lab.plan(&["web-1"], &["--waves-from-tag", "tier"]),
        "--waves-from-tag 'tier': no selected instance has this tag",
    );
    failed(
        &lab.plan(
            &["web-1"],
            &["--waves-from-tag", "role", "--wave", "web-1=1"],
        ),
        "cannot be used with",
    );

    // Without waves, then from the lab's `role` tag: db before web.
    let plain = lab.plan(&["web-1", "db-1", "web-2"], &[]);
    assert!(plain.status.success(), "{}", cli::text(&plain));
    let plain_hash = lab.short_hash();
    let out = lab.plan(
        &["web-1", "db-1", "web-2"],
        &[
            "--waves-from-tag",
            "role",
            "--not-before",
            "2=2026-12-05T02:00Z",
        ],
    );
    assert!(out.status.success(), "{}", cli::text(&out));
    let shown = String::from_utf8_lossy(&out.stdout);
    for line in [
        "ordered by the source tag 'role'",
        "  wave 1: db-1",
        "  wave 2: web-1, web-2",
        "    not before 2026-12-05T02:00:00Z (its start waits until then)",
    ] {
        assert!(shown.contains(line), "no '{line}' in\n{shown}");
    }
    assert_ne!(lab.short_hash(), plain_hash, "waves are in the hash");
    let plan = altishift::plan::Plan::load(&lab.plan_path()).unwrap();
    let waves: Vec<(&str, u32)> = plan
        .items
        .iter()
        .map(|i| (i.instance_name.as_str(), i.wave))
        .collect();
    assert_eq!(waves, vec![("web-1", 2), ("db-1", 1), ("web-2", 2)]);
    // The action list follows the waves: db-1's steps come first (after the
    // firewalls and keys, which exist before any instance).
    let first_disk_step = plan
        .actions
        .iter()
        .find(|a| a.resource.contains('/'))
        .expect("disk steps");
    assert_eq!(first_disk_step.resource, "db-1/root");
}
