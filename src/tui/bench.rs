//! Measurements, not asserts: bytes written to the terminal while idle and
//! while watching 8 live transfers (80x24 and 200x60), keystroke-to-frame
//! time with 10,000 inventory rows, and peak RSS. Terminal bytes are counted
//! through the real loop and the real crossterm backend into a counting
//! writer; time is wall time on this machine.

use crate::engine::event::{DiskInfo, DiskProgress, Event, Stage};
use crate::tui::app::inventory::SideId;
use crate::tui::app::transfers::RunState;
use crate::tui::app::{Msg, Screen};
use crate::tui::event_loop::run_loop;
use crate::tui::harness::{Harness, synthetic_inventory};
use crate::tui::terminal::{CountingWriter, draw_frame};
use crate::tui::theme::ColorDepth;
use crate::units::Bytes;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::backend::CrosstermBackend;
use ratatui::layout::Rect;
use ratatui::{Terminal, TerminalOptions, Viewport};
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A counting writer whose total can be read while the loop owns it.
struct SharedCount(Arc<AtomicU64>);

impl std::io::Write for SharedCount {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.fetch_add(buf.len() as u64, Ordering::Relaxed);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn terminal<W: std::io::Write>(
    writer: W,
    width: u16,
    height: u16,
) -> std::io::Result<Terminal<CrosstermBackend<W>>> {
    Terminal::with_options(
        CrosstermBackend::new(writer),
        TerminalOptions {
            viewport: Viewport::Fixed(Rect::new(0, 0, width, height)),
        },
    )
}

fn loaded_harness(rows: usize) -> Harness {
    let mut h = Harness::offline("default", ColorDepth::TrueColor);
    h.load(
        SideId::Source,
        "bench-east",
        "DE",
        synthetic_inventory("bench-east", rows, &[("eu-1", "DE")]),
    );
    h.load(
        SideId::Target,
        "bench-west",
        "DE",
        synthetic_inventory("bench-west", 20, &[("eu-2", "DE")]),
    );
    h
}

/// Bytes per second the real loop writes over `seconds`, after its first
/// frame, while `live_disks` disks report progress four times a second.
async fn loop_bytes(
    h: Harness,
    width: u16,
    height: u16,
    seconds: u64,
    live_disks: usize,
) -> std::io::Result<f64> {
    let count = Arc::new(AtomicU64::new(0));
    let mut term = terminal(SharedCount(count.clone()), width, height)?;
    let tx = h.runtime.sender();
    let (mut app, mut runtime, mut rx) = h.into_parts();
    let feeder = tokio::spawn(async move {
        if live_disks == 0 {
            return;
        }
        let mut scanned = vec![0u64; live_disks];
        let mut interval = tokio::time::interval(Duration::from_millis(250));
        for step in 0u64.. {
            interval.tick().await;
            for (d, done) in scanned.iter_mut().enumerate() {
                *done += (30 + 5 * d as u64 + step % 7) << 18;
                let progress = DiskProgress {
                    disk: format!("vm-{d}/root"),
                    bytes_scanned: Bytes(*done),
                    bytes_skipped: Bytes(*done / 10),
                    bytes_sent: Bytes(*done - *done / 10),
                    bytes_resumed: Bytes::ZERO,
                    bytes_total: Bytes::gib(64),
                    retries: 0,
                    elapsed_ms: step * 250 + 250,
                };
                if tx.send(Msg::Engine(Event::Progress(progress))).is_err() {
                    return;
                }
            }
        }
    });
    let app = &mut app;
    let settle = Duration::from_millis(1500);
    let measure = Duration::from_secs(seconds);
    let input = futures::stream::pending();
    let signals = futures::stream::pending();
    let result = tokio::time::timeout(settle + measure + Duration::from_secs(5), async {
        let counting = async {
            tokio::time::sleep(settle).await;
            let before = count.load(Ordering::Relaxed);
            tokio::time::sleep(measure).await;
            count.load(Ordering::Relaxed) - before
        };
        tokio::select! {
            bytes = counting => Ok(bytes),
            exit = run_loop(&mut term, app, &mut runtime, &mut rx, input, signals) => exit.map(|_| 0),
        }
    })
    .await;
    feeder.abort();
    match result {
        Ok(Ok(bytes)) => Ok(bytes as f64 / measure.as_secs_f64()),
        Ok(Err(err)) => Err(err),
        Err(_) => Ok(f64::NAN),
    }
}

fn start_transfers(h: &mut Harness, disks: usize) {
    h.app.run = Some(RunState::default());
    h.app.screen = Screen::Transfers;
    h.engine(Event::RunStarted {
        run_id: "run-bench".into(),
        plan_hash: "0".repeat(64),
        resumed: false,
        run_dir: "/tmp/run-bench".into(),
        disks: (0..disks)
            .map(|d| DiskInfo {
                disk: format!("vm-{d}/root"),
                virtual_size: Bytes::gib(100),
                allocated: Bytes::gib(64),
            })
            .collect(),
    });
    for d in 0..disks {
        h.engine(Event::Stage {
            disk: format!("vm-{d}/root"),
            stage: Stage::Transfer,
        });
    }
}

/// Mean and worst time from a filter keystroke to a drawn frame.
fn keystroke_times(rows: usize) -> std::io::Result<(Duration, Duration, usize)> {
    let mut h = loaded_harness(rows);
    let mut term = terminal(CountingWriter::default(), 120, 40)?;
    draw_frame(&mut term, &h.app)?;
    let mut script: Vec<KeyCode> = vec![KeyCode::Char('/')];
    script.extend("web-1".chars().map(KeyCode::Char));
    script.extend([
        KeyCode::Backspace,
        KeyCode::Backspace,
        KeyCode::Char('2'),
        KeyCode::Enter,
        KeyCode::Char('j'),
        KeyCode::Char('G'),
    ]);
    script.extend("/".chars().map(KeyCode::Char));
    script.extend([KeyCode::Esc, KeyCode::Char('g')]);
    let mut total = Duration::ZERO;
    let mut worst = Duration::ZERO;
    for code in &script {
        let start = Instant::now();
        h.key(KeyEvent::new(*code, KeyModifiers::NONE));
        draw_frame(&mut term, &h.app)?;
        let took = start.elapsed();
        total += took;
        worst = worst.max(took);
    }
    Ok((total / script.len() as u32, worst, script.len()))
}

/// Peak resident set size of this process, from /proc.
pub fn peak_rss() -> Option<Bytes> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(Bytes(kib * 1024))
}

/// Runs every measurement and says what it found.
pub async fn run_bench(seconds: u64) -> anyhow::Result<String> {
    let mut out = String::new();
    let idle = loop_bytes(loaded_harness(200), 80, 24, seconds, 0).await?;
    writeln!(out, "idle, inventory screen 80x24:        {idle:.0} B/s")?;
    for (width, height) in [(80u16, 24u16), (200, 60)] {
        let mut h = loaded_harness(20);
        start_transfers(&mut h, 8);
        let live = loop_bytes(h, width, height, seconds, 8).await?;
        writeln!(
            out,
            "8 live transfer panes {width}x{height}:     {live:.0} B/s"
        )?;
    }
    let (mean, worst, keys) = keystroke_times(10_000)?;
    writeln!(
        out,
        "filter keystroke → frame, 10k rows:  mean {mean:.2?}, worst {worst:.2?} over {keys} keys (120x40)"
    )?;
    if let Some(rss) = peak_rss() {
        writeln!(out, "peak RSS of this process:            {rss}")?;
    }
    Ok(out)
}
