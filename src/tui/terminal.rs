//! The terminal, always given back: raw mode, alternate screen, mouse
//! capture and bracketed paste are undone by the guard's Drop, by the panic
//! hook, and on SIGTERM/SIGHUP/SIGINT by the loop's orderly exit. Frames are
//! drawn inside synchronized output so slow links never show half a frame.

use crate::tui::app::App;
use crate::tui::views;
use crossterm::cursor::{Hide, Show};
use crossterm::event::{
    DisableBracketedPaste, DisableMouseCapture, EnableBracketedPaste, EnableMouseCapture,
};
use crossterm::terminal::{
    BeginSynchronizedUpdate, EndSynchronizedUpdate, EnterAlternateScreen, LeaveAlternateScreen,
    disable_raw_mode, enable_raw_mode,
};
use crossterm::{execute, queue};
use ratatui::Terminal;
use ratatui::backend::{Backend, CrosstermBackend};
use std::io::{self, BufWriter, Stdout, Write};
use std::sync::atomic::{AtomicBool, Ordering};

/// True while the terminal is in console mode (so restoring twice is harmless).
static ACTIVE: AtomicBool = AtomicBool::new(false);

pub type ConsoleTerminal = Terminal<CrosstermBackend<BufWriter<Stdout>>>;

/// Owns console mode; dropping it restores the terminal.
pub struct TerminalGuard {
    _private: (),
}

impl TerminalGuard {
    /// Enters console mode and installs the panic hook.
    pub fn enter() -> io::Result<(TerminalGuard, ConsoleTerminal)> {
        install_panic_hook();
        enable_raw_mode()?;
        ACTIVE.store(true, Ordering::SeqCst);
        let guard = TerminalGuard { _private: () };
        // One write per frame: a large buffer, flushed by the draw.
        let mut out = BufWriter::with_capacity(1 << 16, io::stdout());
        execute!(
            out,
            EnterAlternateScreen,
            EnableMouseCapture,
            EnableBracketedPaste,
            Hide
        )?;
        let terminal = Terminal::new(CrosstermBackend::new(out))?;
        Ok((guard, terminal))
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore();
    }
}

/// Leaves console mode; safe to call any number of times, from anywhere.
pub fn restore() {
    if !ACTIVE.swap(false, Ordering::SeqCst) {
        return;
    }
    let mut out = io::stdout();
    // Each step on its own: one failing (a hung-up tty) must not skip the rest.
    let _ = execute!(out, DisableBracketedPaste);
    let _ = execute!(out, DisableMouseCapture);
    let _ = execute!(out, LeaveAlternateScreen);
    let _ = execute!(out, Show);
    let _ = disable_raw_mode();
}

fn install_panic_hook() {
    static INSTALLED: AtomicBool = AtomicBool::new(false);
    if INSTALLED.swap(true, Ordering::SeqCst) {
        return;
    }
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        // Restore first, so the message lands on a normal screen.
        restore();
        previous(info);
    }));
}

/// Draws one frame between Begin/EndSynchronizedUpdate.
pub fn draw_frame<B>(terminal: &mut Terminal<B>, app: &App) -> io::Result<()>
where
    B: Backend<Error = io::Error> + Write,
{
    queue!(terminal.backend_mut(), BeginSynchronizedUpdate)?;
    terminal.draw(|frame| views::draw(frame, app))?;
    queue!(terminal.backend_mut(), EndSynchronizedUpdate)?;
    Write::flush(terminal.backend_mut())
}

/// A writer that counts what passes through (benchmarks of terminal bytes).
#[derive(Debug, Default)]
pub struct CountingWriter {
    pub bytes: u64,
    pub writes: u64,
    /// Keep what was written (tests that check the escape codes).
    pub keep: Option<Vec<u8>>,
}

impl Write for CountingWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.bytes += buf.len() as u64;
        self.writes += 1;
        if let Some(keep) = &mut self.keep {
            keep.extend_from_slice(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
