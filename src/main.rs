//! `altishift`: the console by default, and a headless twin for every mode.

use altishift::cli::{self, common::Globals};
use altishift::cloud::lab::generate::LabScale;
use altishift::inventory::DiskFormat;
use altishift::plan::checks::OutsideChecks;
use altishift::plan::waves;
use altishift::tui::{self, ColorMode};
use altishift::units::{Bytes, parse_rate};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "altishift",
    version,
    about = "Move compute instances and their disks between clouds"
)]
struct Cli {
    /// Config file (default: ~/.config/altishift/config.toml; none: the built-in lab).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Where journals, audit log and reports go (default: from the config).
    #[arg(long, global = true)]
    state_dir: Option<PathBuf>,
    /// Console: source cloud (left pane).
    #[arg(long)]
    from: Option<String>,
    /// Console: target cloud (right pane).
    #[arg(long)]
    to: Option<String>,
    /// Console colours: auto (honours NO_COLOR, COLORTERM, TERM), always, never.
    #[arg(long, global = true, value_enum, default_value = "auto")]
    color: ColorMode,
    /// Console theme (default, light, high-contrast, ansi16, mono, or a user theme).
    #[arg(long, global = true)]
    theme: Option<String>,
    /// Per-disk rate limit in the console, e.g. 40MiB/s, so a demo is watchable.
    #[arg(long, global = true, value_parser = parse_rate)]
    throttle: Option<Bytes>,
    /// One rate for the whole run in the console and demo, e.g. 200MiB/s,
    /// shared fairly by every disk (`+`/`-` change it live).
    #[arg(long, global = true, value_parser = parse_rate)]
    bandwidth: Option<Bytes>,
    #[command(subcommand)]
    command: Option<Commands>,
}

#[derive(Subcommand)]
// Parsed once at start: the plan builder's many flags make that variant big,
// and boxing it would only complicate clap's flattening.
#[allow(clippy::large_enum_variant)]
enum Commands {
    /// Open the console on a fresh lab (no account needed).
    Demo {
        /// Where to create the lab (default: a new folder in the data dir).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// No console: plan, approve and apply one instance, printing progress.
        #[arg(long)]
        headless: bool,
    },
    /// Create and inspect lab clouds (local, no account needed).
    Lab {
        #[command(subcommand)]
        command: LabCommand,
    },
    /// Boot, inspect or prepare one local disk image.
    Guest {
        #[command(subcommand)]
        command: GuestCommand,
    },
    /// List a cloud's instances, disks, sizes and regions.
    Inventory {
        cloud: String,
        #[arg(long)]
        json: bool,
    },
    /// Build a migration plan (`plan show FILE` prints one).
    #[command(args_conflicts_with_subcommands = true)]
    Plan {
        #[command(subcommand)]
        show: Option<PlanCommand>,
        #[command(flatten)]
        build: Option<PlanBuild>,
    },
    /// Approve a plan by typing its short hash.
    Approve {
        plan: PathBuf,
        /// The short hash, for scripts (instead of the prompt).
        #[arg(long)]
        confirm: Option<String>,
        /// Acknowledge that the plan moves data across borders.
        #[arg(long)]
        ack_cross_border: bool,
        /// Acknowledge the configuration the plan cannot carry exactly (its
        /// LOSSY lines).
        #[arg(long)]
        ack_lossy: bool,
        /// Sign the approval with this SSH key (`ssh-keygen -Y sign`; a
        /// public key file uses the ssh agent). A second person's signature
        /// is added to the first's.
        #[arg(long, value_name = "KEY")]
        sign: Option<PathBuf>,
    },
    /// Carry out an approved plan (resumes an interrupted run).
    Apply {
        plan: PathBuf,
        /// Events as JSON lines.
        #[arg(long)]
        json: bool,
        /// Per-disk rate limit, e.g. 40MiB/s.
        #[arg(long, value_parser = parse_rate)]
        throttle: Option<Bytes>,
        /// One rate for the whole run, e.g. 200MiB/s, shared fairly by every
        /// disk (the per-disk --throttle still applies).
        #[arg(long, value_parser = parse_rate)]
        bandwidth: Option<Bytes>,
        /// Blocks in flight per disk.
        #[arg(long)]
        in_flight: Option<usize>,
        /// Keep the run's debug log even when the run succeeds.
        #[arg(long)]
        keep_debug_log: bool,
        /// Return once the run's engine is going (`runs`, `attach` watch it).
        #[arg(long)]
        detach: bool,
    },
    /// List runs: running, paused, finished, failed, abandoned, interrupted.
    Runs {
        #[arg(long)]
        json: bool,
    },
    /// Open the console on a running run (the latest when RUN is omitted).
    Attach {
        /// Run id (run-…) or run folder.
        run: Option<String>,
        /// Watch only: pause, resume, cancel and stop are refused.
        #[arg(long)]
        read_only: bool,
    },
    /// Set a running run's bandwidth budget (every disk together), e.g. 100MiB/s or unlimited.
    Throttle {
        /// Run id (run-…) or run folder.
        run: String,
        rate: String,
    },
    /// The detached engine of a run (started by `apply` and the console).
    #[command(hide = true)]
    Engine {
        plan: PathBuf,
        #[arg(long, value_parser = parse_rate)]
        throttle: Option<Bytes>,
        #[arg(long, value_parser = parse_rate)]
        bandwidth: Option<Bytes>,
        #[arg(long)]
        in_flight: Option<usize>,
        #[arg(long)]
        keep_debug_log: bool,
    },
    /// Abandon an interrupted run of an approved plan: remove the snapshots and
    /// staging it kept for resuming, revoke access, write the report.
    Cleanup { plan: PathBuf },
    /// Show a run's report.
    Report {
        /// Run id (run-…), run folder or report.json.
        run: String,
        #[arg(long)]
        json: bool,
    },
    /// Benchmarks (measure, never assert).
    Bench {
        #[command(subcommand)]
        command: cli::bench::BenchCommand,
    },
}

#[derive(Subcommand)]
enum LabCommand {
    /// Create a lab with two clouds (lab-east in DE, lab-west in US) in DIR.
    Init {
        dir: PathBuf,
        #[arg(long, value_enum, default_value = "standard")]
        scale: LabScale,
        /// Add `tiny-1` to lab-east, a guest that really boots (built from
        /// this machine's Debian kernel and busybox; needs root).
        #[arg(long)]
        guest: bool,
    },
}

#[derive(Subcommand)]
enum GuestCommand {
    /// Boot a copy-on-write view of DISK in QEMU (no network) until the
    /// marker shows on its serial console.
    Rehearse {
        disk: PathBuf,
        #[arg(long, default_value = "raw")]
        format: DiskFormat,
        /// Success marker (default: a login prompt or cloud-init finished).
        #[arg(long, value_name = "REGEX")]
        expect: Option<String>,
        /// Seconds to wait for the marker.
        #[arg(long, default_value_t = 180)]
        timeout: u64,
        #[arg(long, value_enum, default_value = "tcg")]
        accel: altishift::guest::rehearse::Accel,
        /// Where the serial console goes (default: beside DISK).
        #[arg(long)]
        serial_log: Option<PathBuf>,
    },
    /// What is in DISK (read-only, through libguestfs).
    Inspect {
        disk: PathBuf,
        #[arg(long, default_value = "raw")]
        format: DiskFormat,
        #[arg(long)]
        json: bool,
    },
    /// Prepare DISK (a copy for the target, never the source) for a provider.
    Prepare {
        disk: PathBuf,
        #[arg(long, default_value = "raw")]
        format: DiskFormat,
        /// lab, aws, gcp, digitalocean, cloudstack or ssh.
        #[arg(long = "for", value_name = "PROVIDER")]
        target: String,
        /// List the changes without making them.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Subcommand)]
enum PlanCommand {
    /// Print a plan file for a person.
    Show {
        plan: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Args)]
struct PlanBuild {
    #[arg(long)]
    from: String,
    #[arg(long)]
    to: String,
    /// Instances to migrate.
    #[arg(long, num_args = 1.., required = true)]
    select: Vec<String>,
    /// Target size override, NAME=SIZE (repeatable).
    #[arg(long = "size")]
    sizes: Vec<String>,
    #[arg(long)]
    region: Option<String>,
    /// Target disk format for every disk (default: the source's).
    #[arg(long)]
    format: Option<DiskFormat>,
    /// Keep temporary access after the run.
    #[arg(long)]
    keep_access: bool,
    /// A rehearsal: remove the target instances, images and disks once
    /// they are validated.
    #[arg(long)]
    test_migration: bool,
    /// Boot each boot disk in QEMU on this machine before any cloud is
    /// touched (sources whose disks are local files: the lab); a disk that
    /// does not reach the marker refuses the plan.
    #[arg(long)]
    rehearse: bool,
    /// The success marker, a regex on the serial console: the rehearsal's,
    /// and validation's on the target's console (default: a login prompt
    /// or cloud-init's "finished").
    #[arg(long)]
    expect: Option<String>,
    /// Seconds the rehearsal waits for the marker.
    #[arg(long, requires = "rehearse", default_value_t = altishift::rehearsal::DEFAULT_TIMEOUT_SECS)]
    rehearse_timeout: u64,
    /// Migrate guests that cannot be prepared for the target (a missing
    /// driver, Windows, not inspectable) as they are, instead of refusing
    /// the plan (recorded in the plan).
    #[arg(long)]
    unprepared: bool,
    /// Cutover: copy while the source runs, delta passes, then quiesce, a
    /// final delta pass and power the source off before deploying.
    #[arg(long)]
    cutover: bool,
    /// Cutover: command that quiesces the source (default: fsfreeze of the
    /// filesystems mounted from its disks).
    #[arg(long, requires = "cutover")]
    quiesce: Option<String>,
    /// Cutover: command that undoes --quiesce when the source keeps running.
    #[arg(long, requires = "cutover")]
    thaw: Option<String>,
    /// Cutover: leave the source running (thawed) after the final pass.
    #[arg(long, requires = "cutover")]
    no_power_off: bool,
    /// Cutover: delta passes while the source runs, at most.
    #[arg(long, requires = "cutover")]
    max_delta_passes: Option<u32>,
    /// Put an instance in wave N (repeatable). Wave N+1 starts once every
    /// instance of wave N is validated; unnamed instances are in wave 1.
    #[arg(long = "wave", value_name = "NAME=N", value_parser = waves::parse_assignment)]
    waves: Vec<(String, u32)>,
    /// Waves from a source tag's values in natural order (numbers by
    /// value); instances without the tag make the last wave.
    #[arg(long, value_name = "TAG", conflicts_with = "waves")]
    waves_from_tag: Option<String>,
    /// A wave's window (repeatable): its start, or in a cutover its final
    /// pass, waits until TIME (UTC RFC 3339, e.g. 2=2026-12-05T02:00:00Z).
    #[arg(long = "not-before", value_name = "N=TIME", value_parser = waves::parse_window)]
    not_before: Vec<waves::WaveWindow>,
    /// Source network (name, subnet or CIDR) → target network or subnet
    /// (name or id), SRC=DST (repeatable).
    #[arg(long = "network-map")]
    network_map: Vec<String>,
    /// Create no firewalls / security groups from the source's rules.
    #[arg(long)]
    no_firewall: bool,
    /// Carry no tags or labels (altishift's own are still written).
    #[arg(long)]
    no_tags: bool,
    /// Give every instance a public address (yes) or none (no), whatever
    /// the source had.
    #[arg(long, value_parser = ["yes", "no"])]
    public_ip: Option<String>,
    /// After deploy, TCP port N of each instance must accept a connection
    /// from this machine (repeatable; default 22).
    #[arg(long = "check-port", value_name = "N")]
    check_ports: Vec<u16>,
    /// Check no TCP port (instances this machine cannot reach).
    #[arg(long, conflicts_with = "check_ports")]
    no_check_port: bool,
    /// After deploy, GET URL must answer STATUS (default 200); `{address}`
    /// is the instance's address: 'http://{address}:8080/health=204'.
    #[arg(long = "check", value_name = "URL[=STATUS]")]
    checks: Vec<String>,
    /// Do not look for the marker on the target's serial console.
    #[arg(long, conflicts_with = "expect")]
    no_serial_check: bool,
    /// Seconds each outside check keeps trying before it fails validation.
    #[arg(long, value_name = "S", default_value_t = OutsideChecks::DEFAULT_TIMEOUT_SECONDS)]
    check_timeout: u64,
    /// Seconds one attempt (a connect, a request, a console read) may take.
    #[arg(long, value_name = "S", default_value_t = OutsideChecks::DEFAULT_ATTEMPT_SECONDS)]
    check_attempt_timeout: u64,
    /// Seconds between attempts.
    #[arg(long, value_name = "S", default_value_t = OutsideChecks::DEFAULT_INTERVAL_SECONDS)]
    check_interval: u64,
    #[arg(short, long)]
    output: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    altishift::engine::debug_log::install();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("altishift: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Errors quote provider answers and file contents: one safe-text rule.
            eprintln!(
                "altishift: error: {}",
                altishift::text::safe_lines(&format!("{e:#}"))
            );
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(cli: Cli) -> anyhow::Result<()> {
    let globals = Globals {
        config: cli.config,
        state_dir: cli.state_dir,
    };
    let console = |session: cli::common::Session, from, to| tui::ConsoleArgs {
        config: session.config,
        paths: session.paths,
        from,
        to,
        color: cli.color,
        theme: cli.theme.clone(),
        throttle: cli.throttle,
        bandwidth: cli.bandwidth,
        state_dir: session.state_dir,
        attach: None,
    };
    match cli.command {
        None => tui::run(console(globals.load()?, cli.from, cli.to)).await,
        Some(Commands::Demo { dir, headless }) => {
            let session = cli::demo::prepare(dir)?;
            if headless {
                cli::demo::headless(&session, cli.throttle, cli.bandwidth).await
            } else {
                let (from, to) = (Some("lab-east".to_string()), Some("lab-west".to_string()));
                tui::run(console(session, from, to)).await
            }
        }
        Some(Commands::Lab {
            command: LabCommand::Init { dir, scale, guest },
        }) => cli::lab::init(&dir, scale, guest),
        Some(Commands::Guest { command }) => match command {
            GuestCommand::Rehearse {
                disk,
                format,
                expect,
                timeout,
                accel,
                serial_log,
            } => {
                cli::guest::rehearse(cli::guest::RehearseArgs {
                    disk,
                    format,
                    expect,
                    timeout,
                    accel,
                    serial_log,
                })
                .await
            }
            GuestCommand::Inspect { disk, format, json } => {
                cli::guest::inspect(&disk, format, json)
            }
            GuestCommand::Prepare {
                disk,
                format,
                target,
                dry_run,
            } => cli::guest::prepare(&disk, format, &target, dry_run),
        },
        Some(Commands::Inventory { cloud, json }) => {
            cli::inventory::run(&globals, &cloud, json).await
        }
        Some(Commands::Plan {
            show: Some(PlanCommand::Show { plan, json }),
            ..
        }) => cli::plan::show(&plan, json),
        Some(Commands::Plan { build: Some(b), .. }) => {
            let args = cli::plan::PlanArgs {
                from: b.from,
                to: b.to,
                select: b.select,
                sizes: b.sizes,
                region: b.region,
                format: b.format,
                keep_access: b.keep_access,
                test_migration: b.test_migration,
                cutover: b.cutover.then(|| altishift::plan::Cutover {
                    quiesce: b.quiesce,
                    thaw: b.thaw,
                    power_off: !b.no_power_off,
                    max_delta_passes: b
                        .max_delta_passes
                        .unwrap_or(altishift::plan::Cutover::DEFAULT_DELTA_PASSES),
                }),
                waves: waves::WaveRequest {
                    assign: b.waves,
                    from_tag: b.waves_from_tag,
                    windows: b.not_before,
                },
                configuration: cli::plan::ConfigFlags {
                    network_map: b.network_map,
                    no_firewall: b.no_firewall,
                    no_tags: b.no_tags,
                    public_ip: b.public_ip.map(|v| v == "yes"),
                },
                rehearse: b.rehearse.then_some(cli::plan::RehearseFlags {
                    expect: b.expect.clone(),
                    timeout: b.rehearse_timeout,
                }),
                checks: cli::plan_checks::CheckFlags {
                    ports: b.check_ports,
                    no_check_port: b.no_check_port,
                    http: b.checks,
                    no_serial_check: b.no_serial_check,
                    check_timeout: b.check_timeout,
                    check_attempt_timeout: b.check_attempt_timeout,
                    check_interval: b.check_interval,
                    expect: b.expect,
                },
                unprepared: b.unprepared,
                output: b.output,
            };
            cli::plan::make(&globals, args).await
        }
        Some(Commands::Plan { .. }) => {
            anyhow::bail!("plan needs --from, --to and --select (or `plan show FILE`)")
        }
        Some(Commands::Approve {
            plan,
            confirm,
            ack_cross_border,
            ack_lossy,
            sign,
        }) => {
            let acks = altishift::plan::approval::Acks {
                cross_border: ack_cross_border,
                lossy: ack_lossy,
            };
            cli::plan::approve(&globals, &plan, confirm, acks, sign.as_deref()).await
        }
        Some(Commands::Apply {
            plan,
            json,
            throttle,
            bandwidth,
            in_flight,
            keep_debug_log,
            detach,
        }) => {
            cli::apply::run(
                &globals,
                &plan,
                cli::apply::ApplyArgs {
                    json,
                    throttle,
                    bandwidth: bandwidth.or(cli.bandwidth),
                    in_flight,
                    keep_debug_log,
                    abandon: false,
                    detach,
                },
            )
            .await
        }
        Some(Commands::Throttle { run, rate }) => {
            let rate = match rate.as_str() {
                "unlimited" | "none" | "off" => None,
                text => Some(
                    parse_rate(text).map_err(|e| anyhow::anyhow!("throttle RATE '{text}': {e}"))?,
                ),
            };
            cli::runs::throttle(&globals, &run, rate).await
        }
        Some(Commands::Runs { json }) => cli::runs::show(&globals, json).await,
        Some(Commands::Attach { run, read_only }) => {
            let session = globals.load()?;
            let dir = cli::runs::resolve(&session.state_dir, run.as_deref()).await?;
            let link = altishift::engine::link::connect(&dir, "attach", read_only).await?;
            let mut args = console(session, None, None);
            args.attach = Some(tui::Attach { link, read_only });
            tui::run(args).await
        }
        Some(Commands::Engine {
            plan,
            throttle,
            bandwidth,
            in_flight,
            keep_debug_log,
        }) => {
            let args = cli::detach::EngineArgs {
                throttle,
                bandwidth,
                in_flight,
                keep_debug_log,
            };
            cli::detach::serve(&globals, &plan, args).await
        }
        Some(Commands::Cleanup { plan }) => {
            let args = cli::apply::ApplyArgs {
                json: false,
                throttle: None,
                bandwidth: None,
                in_flight: None,
                keep_debug_log: false,
                abandon: true,
                detach: false,
            };
            cli::apply::run(&globals, &plan, args).await
        }
        Some(Commands::Report { run, json }) => cli::report::show(&globals, &run, json),
        Some(Commands::Bench { command }) => cli::bench::run(command).await,
    }
}
