//! The cutover benchmark (issue 14, point 6), on the matrix's peers over
//! loopback: per source kind, a 20 GiB sparse disk with data in a share of
//! its blocks, copied while the source runs (pass 1), then 1% of the disk's
//! blocks rewritten by the guest after that pass, the source quiesced or
//! stopped, the final pass and the deploy into the lab. Figures, from the
//! run's report: the full pass (what a cold copy's downtime would be), the
//! final pass, and the downtime (quiesce → target validated). Printed,
//! never asserted.

use super::{Kind, Peers, raw_disk};
use crate::aws_kit::pattern;
use crate::gce_fake::testkit::ZONE;
use altishift::engine::report::RunReport;
use altishift::plan::Plan;
use altishift::units::BLOCK_SIZE;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};

/// What one source kind measured.
pub struct Figures {
    pub kind: Kind,
    pub allocated_mib: u64,
    pub changed_mib: u64,
    pub full_pass_ms: u64,
    pub final_pass_ms: u64,
    pub final_bytes: u64,
    pub downtime_ms: u64,
}

/// The bench's disk: `size` bytes, data in `allocated` blocks spread over
/// it; the guest's rewrites are the first 1% of the disk's block count
/// among them.
pub struct Shape {
    pub size: u64,
    pub allocated: Vec<u64>,
    pub changed: Vec<u64>,
}

impl Shape {
    pub fn new(gib: u64, allocated_mib: u64) -> Shape {
        let blocks = (gib << 30) / BLOCK_SIZE;
        let count = ((allocated_mib << 20) / BLOCK_SIZE).clamp(1, blocks);
        let step = (blocks / count).max(1);
        let allocated: Vec<u64> = (0..count).map(|i| i * step).collect();
        let changed = allocated
            .iter()
            .copied()
            .take((blocks / 100) as usize)
            .collect();
        Shape {
            size: gib << 30,
            allocated,
            changed,
        }
    }
}

/// Runs the cutover of one source kind into the lab and reads its report.
pub async fn run(peers: &Peers, kind: Kind, shape: &Shape, n: u64) -> Result<Figures, String> {
    let work = peers.work.path();
    let name = format!("bench-{}-{n}", kind.label());
    let seed = 5000 + n;
    let changes: Vec<(u64, Option<Vec<u8>>)> = shape
        .changed
        .iter()
        .map(|&i| (i, Some(pattern(seed + 1, i))))
        .collect();
    let disk = work.join(format!("{name}.raw"));
    raw_disk(&disk, shape.size, seed, &shape.allocated);
    let mut quiesce = None;
    let (profile, instance) = match kind {
        Kind::Gcp => {
            peers.gcp.fake.add_source_vm(ZONE, &name, "f1-micro", &disk);
            peers.gcp.fake.script_writes(
                ZONE,
                &name,
                crate::gce_fake::source::GuestWrites {
                    before_snapshot: Default::default(),
                    at_stop: changes,
                },
            );
            ("gcp".to_string(), name.clone())
        }
        Kind::CloudStack => {
            let qcow2 = work.join(format!("{name}.qcow2"));
            let status = std::process::Command::new("qemu-img")
                .args(["convert", "-f", "raw", "-O", "qcow2"])
                .arg(&disk)
                .arg(&qcow2)
                .status()
                .unwrap();
            assert!(status.success());
            let (_, volume) = peers
                .cs
                .add_vm(&name, "Small Instance", Some((qcow2, shape.size)));
            peers.cs.script_writes(
                &volume,
                crate::cloudstack_fake::guest::GuestWrites {
                    before_snapshot: Default::default(),
                    at_stop: changes,
                },
            );
            ("cs".to_string(), name.clone())
        }
        Kind::Ssh | Kind::DigitalOcean => {
            // The quiesce command is the guest's last writes: one dd per
            // run of consecutive changed blocks, from a file holding them.
            let file = work.join(format!("{name}.changes"));
            let f = std::fs::File::create(&file).unwrap();
            for (at, (index, data)) in changes.iter().enumerate() {
                let _ = index;
                f.write_all_at(data.as_ref().unwrap(), at as u64 * BLOCK_SIZE)
                    .unwrap();
            }
            let script: Vec<String> = shape
                .changed
                .iter()
                .enumerate()
                .map(|(at, index)| {
                    format!(
                        "dd if={} of={} bs=524288 skip={at} seek={index} count=1 conv=notrunc status=none",
                        file.display(),
                        disk.display()
                    )
                })
                .collect();
            let script_file = work.join(format!("{name}.sh"));
            std::fs::write(&script_file, script.join("\n") + "\n").unwrap();
            quiesce = Some(format!("sh {}", script_file.display()));
            let profile = if kind == Kind::Ssh {
                let profile = format!("ssh-{name}");
                peers.add_profile(&format!(
                    "\n[clouds.{profile}]\nprovider = \"ssh\"\nhost = \"127.0.0.1\"\nuser = \"{}\"\n\
                     sudo = false\njurisdiction = \"DE\"\ndevice = \"{}\"\nssh_options = {}\n",
                    peers.sshd.user(),
                    disk.display(),
                    peers.sshd_options()
                ));
                profile
            } else {
                peers
                    .do_fake
                    .add_droplet(&name, shape.size >> 30, "127.0.0.1");
                let profile = format!("do-{name}");
                peers.add_profile(&format!(
                    "\n[clouds.{profile}]\nprovider = \"digitalocean\"\nendpoint = \"{}\"\n\
                     insecure_endpoint = true\ntoken = \"env:ALTISHIFT_TEST_DO_TOKEN\"\n\
                     jurisdiction = \"DE\"\nuser = \"{}\"\nsudo = false\ndevice = \"{}\"\n\
                     ssh_options = {}\n",
                    peers.do_fake.base,
                    peers.sshd.user(),
                    disk.display(),
                    peers.sshd_options()
                ));
                profile
            };
            let out = peers.run(&["inventory", &profile, "--json"]).await;
            if !out.status.success() {
                return Err(format!("inventory: {}", crate::cli::text(&out)));
            }
            let inventory: altishift::inventory::Inventory =
                serde_json::from_slice(&out.stdout).unwrap();
            let instance = if kind == Kind::Ssh {
                inventory.instances[0].name.clone()
            } else {
                name.clone()
            };
            (profile, instance)
        }
        other => return Err(format!("no cutover bench for {}", other.label())),
    };
    let plan_path = work.join(format!("{name}.toml"));
    let plan_arg = plan_path.to_str().unwrap();
    let mut args = vec![
        "plan",
        "--from",
        &profile,
        "--to",
        "lab-west",
        "--select",
        &instance,
        "-o",
        plan_arg,
        "--cutover",
        "--max-delta-passes",
        "0",
    ];
    if let Some(command) = &quiesce {
        args.extend(["--quiesce", command]);
    }
    if kind == Kind::Ssh {
        args.extend(["--no-power-off", "--thaw", "true"]);
    }
    let out = peers.run(&args).await;
    if !out.status.success() {
        return Err(format!("plan: {}", crate::cli::text(&out)));
    }
    let plan: Plan = toml::from_str(&std::fs::read_to_string(&plan_path).unwrap()).unwrap();
    let short = plan.hash().short().to_string();
    let out = peers
        .run(&[
            "approve",
            plan_arg,
            "--confirm",
            &short,
            "--ack-cross-border",
            "--ack-lossy",
        ])
        .await;
    if !out.status.success() {
        return Err(format!("approve: {}", crate::cli::text(&out)));
    }
    let before = run_dirs(&peers.lab.state());
    let out = peers.run(&["apply", plan_arg]).await;
    if !out.status.success() {
        return Err(format!("apply: {}", crate::cli::text(&out)));
    }
    let run = run_dirs(&peers.lab.state())
        .into_iter()
        .find(|d| !before.contains(d))
        .ok_or("no new run folder")?;
    let report: RunReport =
        serde_json::from_slice(&std::fs::read(run.join("report.json")).map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    let passes = &report.disks[0].passes;
    let of = |kind: altishift::engine::event::PassKind| passes.iter().find(|p| p.kind == kind);
    let full = of(altishift::engine::event::PassKind::Full).ok_or("no full pass")?;
    let last = of(altishift::engine::event::PassKind::Final).ok_or("no final pass")?;
    Ok(Figures {
        kind,
        allocated_mib: (shape.allocated.len() as u64 * BLOCK_SIZE) >> 20,
        changed_mib: (shape.changed.len() as u64 * BLOCK_SIZE) >> 20,
        full_pass_ms: full.elapsed_ms,
        final_pass_ms: last.elapsed_ms,
        final_bytes: last.bytes_sent,
        downtime_ms: report.instances[0]
            .downtime_ms
            .ok_or("no downtime in the report")?,
    })
}

fn run_dirs(state: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(state.join("runs"))
        .map(|dir| dir.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}
