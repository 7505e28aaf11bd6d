//! The loop: terminal events, runtime answers (inventories, engine events),
//! a one-second tick while a run is active, a one-minute tick while some
//! credentials have an expiry, and signals, in one `tokio::select!`. State changes set a dirty flag; a frame is drawn at most
//! every 66 ms (~15 fps) and only when something changed, so an idle console
//! writes nothing at all. Throughput numbers are shown on the 1 Hz tick.

use crate::tui::app::{App, Msg, Redraw};
use crate::tui::runtime::Runtime;
use crate::tui::terminal::draw_frame;
use crossterm::event::{Event as TermEvent, KeyEventKind};
use futures::{Stream, StreamExt};
use ratatui::Terminal;
use ratatui::backend::Backend;
use std::io::{self, Write};
use std::pin::pin;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::{Instant, MissedTickBehavior, interval, sleep_until};

/// Shortest time between two frames.
pub const FRAME: Duration = Duration::from_millis(66);
/// How long an orderly stop waits for the engine to reach a consistent point.
pub const STOP_GRACE: Duration = Duration::from_secs(15);

/// Why the loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Quit,
    /// SIGTERM, SIGHUP or SIGINT.
    Signal(&'static str),
    /// The terminal's input ended.
    InputClosed,
}

/// Terminal events as messages; `None` for ones that change nothing.
pub fn to_msg(event: TermEvent) -> Option<Msg> {
    match event {
        TermEvent::Key(key) if key.kind != KeyEventKind::Release => Some(Msg::Key(key)),
        TermEvent::Mouse(mouse) => Some(Msg::Mouse(mouse)),
        TermEvent::Paste(text) => Some(Msg::Paste(text)),
        TermEvent::Resize(_, _) => Some(Msg::Resize),
        _ => None,
    }
}

pub async fn run_loop<B, S, G>(
    terminal: &mut Terminal<B>,
    app: &mut App,
    runtime: &mut Runtime,
    rx: &mut UnboundedReceiver<Msg>,
    input: S,
    signals: G,
) -> io::Result<Exit>
where
    B: Backend<Error = io::Error> + Write,
    S: Stream<Item = io::Result<TermEvent>>,
    G: Stream<Item = &'static str>,
{
    let mut input = pin!(input);
    let mut signals = pin!(signals);
    let mut tick = interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // Expiry text changes by the minute; a frame is drawn only when it does.
    let mut minute = interval(Duration::from_secs(60));
    minute.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut dirty = true;
    let mut last_frame = Instant::now() - FRAME;
    let mut stop_deadline: Option<Instant> = None;
    runtime.perform_all(app);
    loop {
        if app.quit {
            return Ok(Exit::Quit);
        }
        if app.stopping && stop_deadline.is_none() {
            stop_deadline = Some(Instant::now() + STOP_GRACE);
        }
        let frame_at = dirty.then_some(last_frame + FRAME);
        let ticking = app.run_active();
        let watching = app.watches_expiry();
        let redraw = tokio::select! {
            biased;
            signal = signals.next() => {
                if let Some(name) = signal {
                    // A lost session or a killed console loses a viewer, not
                    // the run: the engine is a process of its own.
                    return Ok(Exit::Signal(name));
                }
                Redraw::No
            }
            event = input.next() => match event {
                Some(Ok(event)) => match to_msg(event) {
                    Some(msg) => app.update(msg),
                    None => Redraw::No,
                },
                Some(Err(err)) => return Err(err),
                None => return Ok(Exit::InputClosed),
            },
            Some(msg) = rx.recv() => app.update(msg),
            _ = tick.tick(), if ticking => app.update(Msg::Tick),
            _ = minute.tick(), if watching => app.update(Msg::Minute),
            _ = sleep_until(stop_deadline.unwrap_or_else(Instant::now)), if stop_deadline.is_some() => {
                // The engine did not stop in time; its journal still holds
                // every block it had flushed.
                return Ok(Exit::Quit);
            }
            _ = sleep_until(frame_at.unwrap_or_else(Instant::now)), if frame_at.is_some() => {
                draw_frame(terminal, app)?;
                last_frame = Instant::now();
                dirty = false;
                Redraw::No
            }
        };
        runtime.perform_all(app);
        if redraw == Redraw::Now {
            dirty = true;
        }
    }
}
