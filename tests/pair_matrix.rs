//! Every source (lab, aws, gcp, cloudstack, digitalocean, ssh) to every other
//! target (lab, aws, gcp, cloudstack, digitalocean), each through the real
//! binary (`plan`, `approve`, `apply`) against moto, the Compute Engine fake
//! with the Cloud Storage emulator, the CloudStack and DigitalOcean fakes and
//! a real sshd, all started once and shared by the pairs. For each pair:
//! nothing mutating reaches any peer before approval, the run succeeds, and
//! the target's disk, read back through an independent path (see
//! support/matrix/targets.rs), has the source's bytes.
//!
//! Seeding, planning and approving go one pair at a time (so each pair's
//! quiet check is its own); the applies then run in one lane per target,
//! the lanes side by side (each finds its results as what its target gained).
//!
//! Pairs that cannot work yet are listed in `CANNOT` with the reason; the
//! test checks that the binary still refuses them, so a pair that starts
//! working must move into the matrix. The wall time of each pair and of the
//! whole matrix is printed (`--nocapture`), never asserted.

use altishift_testkit::aws_kit;
use altishift_testkit::cli;
use altishift_testkit::matrix;

use altishift::plan::Plan;
use matrix::sources::{self, Source};
use matrix::{Kind, Peers, QUIESCE_BLOCK, compare, guest_block, targets};
use std::time::{Duration, Instant};

/// Pairs the binary refuses today, and why (checked: `plan` must fail).
const CANNOT: &[(Kind, Kind, &str)] = &[];

/// The cutover variant of these pairs runs too (sources with delta passes;
/// an AWS cutover needs a volume with a body: tests/aws_cutover.rs). The
/// guest keeps writing: on an SSH host or a droplet the quiesce command
/// writes a block the final pass must carry; Compute Engine and CloudStack
/// stop the instance through their API instead, so their fakes play the
/// guest (writes while pass 1 runs, and as it stops). The SSH host is this
/// machine, so it is thawed, never powered off.
const CUTOVER: &[(Kind, Kind)] = &[
    (Kind::Gcp, Kind::Lab),
    (Kind::CloudStack, Kind::Lab),
    (Kind::DigitalOcean, Kind::Lab),
    (Kind::Ssh, Kind::CloudStack),
];

/// Kinds that are never a target, and why (no pair is attempted).
const NOT_TARGETS: &[(Kind, &str)] = &[(
    Kind::Ssh,
    "an SSH host is a source only: there is no SSH target role (nothing to deploy an instance on)",
)];

/// A pair approved in the first phase, waiting for its `apply`.
struct Approved {
    source: Kind,
    target: Kind,
    cutover: bool,
    n: u64,
    plan: std::path::PathBuf,
    expected: std::path::PathBuf,
    /// The instance the fake must have stopped (scripted guest writes).
    scripted: Option<String>,
    /// Seeding, planning and approving.
    before_apply: Duration,
    /// The plan as `plan` printed it, and the instance's name on the target.
    shown: String,
    target_name: String,
}

type Row = (Kind, Kind, bool, Result<String, String>);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_source_to_every_other_target_through_the_cli_byte_for_byte() {
    let started = Instant::now();
    let peers = Peers::start().await;
    let setup = started.elapsed();
    let mut rows: Vec<Row> = Vec::new();
    let mut approved: Vec<Approved> = Vec::new();
    let mut n = 0;
    // PAIR_MATRIX_ONLY=aws:digitalocean,ssh:lab runs just those pairs (debugging).
    let only = std::env::var("PAIR_MATRIX_ONLY").unwrap_or_default();
    // Phase 1, one pair at a time so that each pair's "nothing mutating
    // before approval" is its own: seed, plan, approve, check every peer.
    for source in Kind::SOURCES {
        for target in Kind::TARGETS {
            let name = format!("{}:{}", source.label(), target.label());
            if source == target || !(only.is_empty() || only.split(',').any(|p| p == name)) {
                continue;
            }
            n += 1;
            match CANNOT.iter().find(|(s, t, _)| *s == source && *t == target) {
                Some((_, _, why)) => rows.push((
                    source,
                    target,
                    false,
                    refused(&peers, source, target, n, why).await,
                )),
                None => match approve_pair(&peers, source, target, n, false).await {
                    Ok(pair) => approved.push(pair),
                    Err(e) => rows.push((source, target, false, Err(e))),
                },
            }
            if CUTOVER.contains(&(source, target)) {
                n += 1;
                match approve_pair(&peers, source, target, n, true).await {
                    Ok(pair) => approved.push(pair),
                    Err(e) => rows.push((source, target, true, Err(e))),
                }
            }
        }
    }
    let planned = started.elapsed();
    // Phase 2: the applies, one lane per target (each lane finds its
    // results as what its target gained), the lanes side by side.
    let lanes = Kind::TARGETS.map(|target| {
        let pairs: Vec<&Approved> = approved.iter().filter(|p| p.target == target).collect();
        let peers = &peers;
        async move {
            let mut done = Vec::new();
            for pair in pairs {
                done.push((
                    pair.source,
                    pair.target,
                    pair.cutover,
                    apply_pair(peers, pair).await,
                ));
            }
            done
        }
    });
    for lane in futures::future::join_all(lanes).await {
        rows.extend(lane);
    }
    rows.sort_by_key(|(s, t, c, _)| (*s, *t, *c));
    for (source, target, cutover, outcome) in &rows {
        eprintln!(
            "{:>12} → {:<12} {}{}",
            source.label(),
            target.label(),
            if *cutover { "cutover: " } else { "" },
            match outcome {
                Ok(steps) => format!("ok ({steps})"),
                Err(e) => format!("FAILED: {e}"),
            }
        );
    }
    for (kind, why) in NOT_TARGETS {
        eprintln!("{:>12}   * → {}: not a target: {why}", "", kind.label());
    }
    eprintln!(
        "pair matrix: {} pairs ({} refused as listed) in {:.1} s: peers started in {:.1} s, \
         seeded, planned and approved one by one in {:.1} s, applied and read back in {:.1} s",
        rows.len(),
        CANNOT.len(),
        started.elapsed().as_secs_f64(),
        setup.as_secs_f64(),
        (planned - setup).as_secs_f64(),
        (started.elapsed() - planned).as_secs_f64()
    );
    let failed: Vec<String> = rows
        .iter()
        .filter_map(|(s, t, c, outcome)| {
            outcome.as_ref().err().map(|e| {
                let kind = if *c { " (cutover)" } else { "" };
                format!("{} → {}{kind}: {e}", s.label(), t.label())
            })
        })
        .collect();
    assert!(failed.is_empty(), "failed pairs:\n{}", failed.join("\n"));
}

/// Seeds the pair's source, plans and approves it through the binary, and
/// checks that no peer received a mutating request meanwhile.
async fn approve_pair(
    peers: &Peers,
    source: Kind,
    target: Kind,
    n: u64,
    cutover: bool,
) -> Result<Approved, String> {
    let clock = Instant::now();
    let variant = if cutover { "-cut" } else { "" };
    let Source {
        profile,
        instance,
        expected,
        snapshot,
        scripted,
    } = sources::prepare(peers, source, target, n, variant).await;
    let configured = !cutover && matrix::config::covered(source, target);
    if configured {
        matrix::config::seed(peers, source, &instance).await;
    }
    let plan_path = peers.work.path().join(format!("plan-{n}.toml"));
    let plan_arg = plan_path.to_str().unwrap();
    let quiet = peers.quiet_mark();
    let mut args = vec![
        "plan",
        "--from",
        &profile,
        "--to",
        target.target_profile(),
        "--select",
        &instance,
        "-o",
        plan_arg,
    ];
    if target == Kind::DigitalOcean {
        args.extend(["--region", "fra1"]);
    }
    args.extend(altishift_testkit::cli::fake_target_checks(target.label()));
    // The guest's last write, made by the quiesce itself.
    let block = peers.work.path().join(format!("quiesce-{n}.bin"));
    std::fs::write(&block, aws_kit::pattern(n, QUIESCE_BLOCK)).unwrap();
    let quiesce = format!(
        "dd if={} of={} bs=524288 seek={QUIESCE_BLOCK} count=1 conv=notrunc status=none",
        block.display(),
        expected.display()
    );
    if cutover {
        // The plain pair already migrated this source's network into the same
        // target, where its firewall (e.g. Compute Engine's `default-all`) now
        // belongs to that plan and is rightly refused to this one: the cutover
        // variant proves the passes, the plain pair the configuration.
        args.extend(["--cutover", "--max-delta-passes", "1", "--no-firewall"]);
        if scripted.is_none() {
            args.extend(["--quiesce", &quiesce]);
        }
        if source == Kind::Ssh {
            args.extend(["--no-power-off", "--thaw", "true"]);
        }
    }
    let out = peers.run(&args).await;
    if !out.status.success() {
        return Err(format!("plan: {}", cli::text(&out)));
    }
    let shown = cli::text(&out);
    let mut plan: Plan = toml::from_str(&std::fs::read_to_string(&plan_path).unwrap()).unwrap();
    if let Some(id) = snapshot {
        plan.items[0].disks[0].source_snapshot = Some(id);
        std::fs::write(&plan_path, toml::to_string(&plan).unwrap()).unwrap();
    }
    let short = plan.hash().short().to_string();
    let mut approve = vec![
        "approve",
        plan_arg,
        "--confirm",
        &short,
        "--ack-cross-border",
    ];
    if configured {
        // A rule that cannot be carried: refused without the acknowledgement.
        let out = peers.run(&approve).await;
        if out.status.success() || !cli::text(&out).contains("--ack-lossy") {
            return Err(format!(
                "approved a lossy plan without --ack-lossy: {}",
                cli::text(&out)
            ));
        }
    }
    approve.push("--ack-lossy");
    let out = peers.run(&approve).await;
    if !out.status.success() {
        return Err(format!("approve: {}", cli::text(&out)));
    }
    let early = peers.mutating_since(&quiet);
    if !early.is_empty() {
        return Err(format!("mutating before approval: {early:?}"));
    }
    Ok(Approved {
        source,
        target,
        cutover,
        n,
        plan: plan_path,
        expected,
        scripted,
        before_apply: clock.elapsed(),
        shown,
        target_name: plan.items[0].target_name.clone(),
    })
}

/// Applies an approved pair and compares what its target gained with the
/// source's bytes.
async fn apply_pair(peers: &Peers, pair: &Approved) -> Result<String, String> {
    let clock = Instant::now();
    let before = targets::mark(peers).await;
    let out = peers.run(&["apply", pair.plan.to_str().unwrap()]).await;
    if !out.status.success() {
        // The detached engine's reason is in its log, which the stderr names.
        let said = cli::text(&out);
        let log = said
            .split_whitespace()
            .find(|w| w.ends_with("engine.log"))
            .and_then(|path| {
                let path = std::path::Path::new(path);
                let start = Instant::now();
                while path
                    .parent()
                    .is_some_and(altishift::engine::lock::RunLock::held)
                    && start.elapsed() < Duration::from_secs(30)
                {
                    std::thread::sleep(Duration::from_millis(50));
                }
                std::fs::read_to_string(path).ok()
            })
            .unwrap_or_default();
        return Err(format!("apply: {said}\nengine.log:\n{log}"));
    }
    let applied = clock.elapsed();
    let copies = targets::read_back(
        peers,
        pair.target,
        &before,
        &peers.work.path().join(format!("back-{}", pair.n)),
    )
    .await?;
    if copies.len() != 1 {
        return Err(format!(
            "expected one disk on {}, found {copies:?}",
            pair.target.label()
        ));
    }
    if let Some(difference) = compare(&pair.expected, &copies[0]) {
        return Err(difference);
    }
    if !pair.cutover && matrix::config::covered(pair.source, pair.target) {
        matrix::config::check(
            peers,
            pair.source,
            pair.target,
            &pair.target_name,
            &pair.shown,
        )
        .await
        .map_err(|e| format!("configuration: {e}"))?;
    }
    if pair.cutover {
        // The guest's last write is on the source (so the copy holds it).
        let written = guest_block(&pair.expected, QUIESCE_BLOCK, peers.work.path());
        if written != aws_kit::pattern(pair.n, QUIESCE_BLOCK) {
            return Err("the guest's last write is not on the source disk".into());
        }
    }
    if let Some(instance) = &pair.scripted {
        let stopped = match pair.source {
            Kind::Gcp => peers.gcp.fake.state().stops.contains(instance),
            Kind::CloudStack => peers.cs.state().stops.contains(instance),
            other => return Err(format!("{} plays no scripted guest", other.label())),
        };
        if !stopped {
            return Err(format!("{instance} was not stopped through the API"));
        }
    }
    let secs = |d: Duration| d.as_secs_f64();
    Ok(format!(
        "seed+plan+approve {:.1} s, apply {:.1} s, read back {:.1} s",
        secs(pair.before_apply),
        secs(applied),
        secs(clock.elapsed() - applied)
    ))
}

/// A listed pair: `plan` must still refuse it (with its reason).
async fn refused(
    peers: &Peers,
    source: Kind,
    target: Kind,
    n: u64,
    why: &str,
) -> Result<String, String> {
    let Source {
        profile, instance, ..
    } = sources::prepare(peers, source, target, n, "").await;
    let plan_path = peers.work.path().join(format!("plan-{n}.toml"));
    let out = peers
        .run(&[
            "plan",
            "--from",
            &profile,
            "--to",
            target.target_profile(),
            "--select",
            &instance,
            "-o",
            plan_path.to_str().unwrap(),
        ])
        .await;
    if out.status.success() {
        return Err(format!(
            "listed as impossible ({why}) but planned: move it into the matrix"
        ));
    }
    Ok(format!("refused as listed: {why}"))
}

/// Benchmark, not a test (`cargo test --test pair_matrix bench -- --ignored
/// --nocapture`): the downtime of a cutover per source kind, on loopback,
/// against its full copy (see support/matrix/bench.rs). Disk size from
/// ALTISHIFT_BENCH_GIB (default 20), data from ALTISHIFT_BENCH_ALLOC_MIB
/// (default 2048); kinds from ALTISHIFT_BENCH_KINDS (default
/// gcp,cloudstack,digitalocean,ssh).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn bench_cutover_downtime_per_source_kind() {
    let env = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let shape = matrix::bench::Shape::new(
        env("ALTISHIFT_BENCH_GIB", 20),
        env("ALTISHIFT_BENCH_ALLOC_MIB", 2048),
    );
    let kinds = std::env::var("ALTISHIFT_BENCH_KINDS")
        .unwrap_or_else(|_| "gcp,cloudstack,digitalocean,ssh".into());
    let peers = Peers::start().await;
    let mut failed = Vec::new();
    for (n, label) in kinds.split(',').enumerate() {
        let Some(kind) = Kind::SOURCES.into_iter().find(|k| k.label() == label) else {
            failed.push(format!("{label}: no such kind"));
            continue;
        };
        match matrix::bench::run(&peers, kind, &shape, n as u64).await {
            Ok(f) => eprintln!(
                "bench {:>12}: {} GiB disk, {} MiB data, {} MiB rewritten after pass 1: \
                 full pass {:.1} s; final pass {:.2} s ({} MiB); downtime (stop → target \
                 validated) {:.2} s",
                f.kind.label(),
                shape.size >> 30,
                f.allocated_mib,
                f.changed_mib,
                f.full_pass_ms as f64 / 1000.0,
                f.final_pass_ms as f64 / 1000.0,
                f.final_bytes >> 20,
                f.downtime_ms as f64 / 1000.0
            ),
            Err(e) => failed.push(format!("{label}: {e}")),
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}
