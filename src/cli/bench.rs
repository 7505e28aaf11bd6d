//! `altishift bench transfer`: times the lab transfer path against the tools
//! an operator would otherwise use, on the same image in the same run.
//! Every contender's time includes making its output durable (fsync), as
//! the engine does.

use crate::cloud::TargetDiskSpec;
use crate::cloud::lab::writer;
use crate::cloud::local_disk::LocalDiskReader;
use crate::cloud::{DiskReader, DiskWriter};
use crate::engine::control::{DiskControl, DiskCounters};
use crate::engine::journal::{DiskState, Journal};
use crate::engine::pipeline::DiskTransfer;
use crate::engine::retry::RetryPolicy;
use crate::inventory::DiskFormat;
use crate::units::{Bytes, mb_per_s, parse_bytes};
use anyhow::{Context, Result, bail};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub struct BenchArgs {
    pub dir: PathBuf,
    pub runs: usize,
    pub in_flight: usize,
    /// (virtual, allocated) cases.
    pub cases: Vec<(Bytes, Bytes)>,
}

pub async fn transfer(args: BenchArgs) -> Result<()> {
    std::fs::create_dir_all(&args.dir)?;
    println!(
        "altishift bench transfer — {} timed runs each (median), warm page cache, output fsynced",
        args.runs
    );
    for &(virtual_size, allocated) in &args.cases {
        let source = args.dir.join("source.raw");
        make_image(&source, virtual_size, allocated)?;
        println!(
            "\nimage: {virtual_size} virtual, {allocated} allocated (random data in 4 MiB extents)"
        );
        let ours = median(args.runs + 1, || {
            ours(&args.dir, &source, virtual_size, args.in_flight)
        })?;
        let qemu = median(args.runs + 1, || {
            external(&args.dir, "qemu-img", &["convert", "-O", "raw"], &source)
        })?;
        let cp = median(args.runs + 1, || {
            external(&args.dir, "cp", &["--sparse=always"], &source)
        })?;
        let rate = |d: Duration| mb_per_s(allocated.0, d.as_secs_f64());
        println!(
            "{:<32} {:>9} {:>11} {:>14}",
            "contender", "seconds", "MB/s", "altishift speed vs it"
        );
        for (name, time) in [
            ("altishift (read+SHA-256+write)", ours),
            ("qemu-img convert -O raw", qemu),
            ("cp --sparse=always", cp),
        ] {
            let ratio = time.as_secs_f64() / ours.as_secs_f64();
            println!(
                "{name:<32} {:>9.3} {:>11.0} {:>13.2}x",
                time.as_secs_f64(),
                rate(time),
                ratio
            );
        }
        std::fs::remove_file(&source)?;
    }
    Ok(())
}

/// First run warms the cache and is dropped; the median of the rest counts.
fn median(runs: usize, mut once: impl FnMut() -> Result<Duration>) -> Result<Duration> {
    let mut times = Vec::new();
    for _ in 0..runs {
        times.push(once()?);
    }
    times.remove(0);
    times.sort();
    Ok(times[times.len() / 2])
}

fn ours(dir: &Path, source: &Path, virtual_size: Bytes, in_flight: usize) -> Result<Duration> {
    let root = dir.join("ours");
    let _ = std::fs::remove_dir_all(&root);
    let started = Instant::now();
    let runtime = tokio::runtime::Handle::current();
    let source = source.to_path_buf();
    let root_for_task = root.clone();
    // The bench command runs on a multi-thread runtime; block_in_place lets
    // this synchronous timing loop drive the async pipeline.
    tokio::task::block_in_place(|| {
        runtime.block_on(async move {
            let reader = LocalDiskReader::open(&source, DiskFormat::Raw)?;
            let spec = TargetDiskSpec {
                name: "bench".into(),
                virtual_size,
                format: DiskFormat::Raw,
                region: "bench".into(),
                boot: true,
                resume: None,
                platform: Default::default(),
            };
            let writer: Box<dyn DiskWriter> = Box::new(writer::open(&root_for_task, &spec)?);
            let (journal, _) = Journal::open(&root_for_task.join("journal.jsonl"))?;
            let counters = DiskCounters::default();
            let digests = DiskTransfer {
                key: "bench",
                reader: &reader as &dyn DiskReader,
                writer: &*writer,
                resume: &DiskState::default(),
                counters: &counters,
                control: &DiskControl::default(),
                throttle: None,
                budget: None,
                journal: &journal,
                retry: RetryPolicy::default(),
                in_flight,
                checkpoint_every: Duration::from_secs(1),
            }
            .run()
            .await?;
            writer.finish(digests.len() as u64).await?;
            anyhow::Ok(())
        })
    })?;
    let elapsed = started.elapsed();
    std::fs::remove_dir_all(&root)?;
    Ok(elapsed)
}

fn external(dir: &Path, program: &str, args: &[&str], source: &Path) -> Result<Duration> {
    let target = dir.join(format!("{program}.out"));
    let _ = std::fs::remove_file(&target);
    let started = Instant::now();
    let status = crate::child::command(program)
        .args(args)
        .arg(source)
        .arg(&target)
        .status()
        .with_context(|| format!("running {program}"))?;
    if !status.success() {
        bail!("{program} failed: {status}");
    }
    std::fs::File::open(&target)?.sync_all()?;
    let elapsed = started.elapsed();
    std::fs::remove_file(&target)?;
    Ok(elapsed)
}

/// A sparse raw image with `allocated` bytes of random data in 4 MiB
/// extents spread evenly over its virtual size.
fn make_image(path: &Path, virtual_size: Bytes, allocated: Bytes) -> Result<()> {
    let file = std::fs::File::create(path)?;
    file.set_len(virtual_size.0)?;
    let extent = 4u64 << 20;
    let count = allocated.0.div_ceil(extent).max(1);
    let stride = (virtual_size.0 / count) & !(extent - 1);
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut buffer = vec![0u8; extent as usize];
    for n in 0..count {
        for chunk in buffer.chunks_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
        }
        file.write_all_at(&buffer, n * stride.max(extent))?;
    }
    file.sync_all()?;
    Ok(())
}

/// `altishift bench hash`: SHA-256 and zero-check speed of one core on
/// 512 KiB blocks — the ceiling the transfer pipeline works under.
pub fn hash() {
    let block = vec![0x5au8; crate::units::BLOCK_SIZE as usize];
    let zero = vec![0u8; crate::units::BLOCK_SIZE as usize];
    let rounds = 2048u64; // 1 GiB
    let started = Instant::now();
    for _ in 0..rounds {
        std::hint::black_box(crate::block::BlockDigest::of(std::hint::black_box(&block)));
    }
    let sha = started.elapsed();
    let started = Instant::now();
    for _ in 0..rounds {
        std::hint::black_box(crate::block::is_all_zero(std::hint::black_box(&zero)));
    }
    let scan = started.elapsed();
    let bytes = rounds * crate::units::BLOCK_SIZE;
    println!(
        "SHA-256, one core:          {:.0} MB/s",
        mb_per_s(bytes, sha.as_secs_f64())
    );
    println!(
        "zero check of zero blocks:  {:.0} MB/s",
        mb_per_s(bytes, scan.as_secs_f64())
    );
}

/// `altishift bench …`: each figure beside the tool an operator would otherwise use.
#[derive(clap::Subcommand)]
pub enum BenchCommand {
    /// SHA-256 and zero-check speed of one core (the pipeline's ceiling).
    Hash,
    /// Console: bytes written idle and with 8 live panes, keystroke latency at 10k rows, RSS.
    Console {
        #[arg(long, default_value_t = 5)]
        seconds: u64,
    },
    /// Lab transfer vs qemu-img convert and cp --sparse on the same images.
    Transfer {
        #[arg(long, default_value = "target/bench")]
        dir: PathBuf,
        #[arg(long, default_value_t = 3)]
        runs: usize,
        #[arg(long, default_value_t = 16)]
        in_flight: usize,
        /// Cases as VIRTUAL:ALLOCATED (default: 16GiB:2GiB and 64GiB:256MiB).
        #[arg(long = "case")]
        cases: Vec<String>,
    },
}

pub async fn run(command: BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Hash => {
            hash();
            Ok(())
        }
        BenchCommand::Console { seconds } => {
            println!("{}", crate::tui::bench::run_bench(seconds).await?);
            Ok(())
        }
        BenchCommand::Transfer {
            dir,
            runs,
            in_flight,
            cases,
        } => {
            let cases = if cases.is_empty() {
                vec![
                    (Bytes::gib(16), Bytes::gib(2)),
                    (Bytes::gib(64), Bytes::mib(256)),
                ]
            } else {
                cases
                    .iter()
                    .map(|c| parse_case(c))
                    .collect::<Result<_, _>>()
                    .map_err(anyhow::Error::msg)?
            };
            transfer(BenchArgs {
                dir,
                runs: runs.max(1),
                in_flight,
                cases,
            })
            .await
        }
    }
}

fn parse_case(text: &str) -> Result<(Bytes, Bytes), String> {
    let (virtual_size, allocated) = text.split_once(':').ok_or(format!(
        "--case '{text}': expected VIRTUAL:ALLOCATED, e.g. 16GiB:2GiB"
    ))?;
    Ok((parse_bytes(virtual_size)?, parse_bytes(allocated)?))
}
