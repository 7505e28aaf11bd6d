//! The console: a full-screen view over the same engine the CLI drives.
//! `app` holds state and handles keys and events, `views` draw it,
//! `runtime` does the slow work off the UI task, `event_loop` ties them
//! together, `terminal` makes sure the terminal is always given back.

pub mod app;
pub mod bench;
pub mod component;
pub mod event_loop;
pub mod harness;
pub mod keymap;
pub mod runtime;
pub mod terminal;
pub mod theme;
pub mod views;

use crate::config::{Config, Paths};
use crate::units::Bytes;
use anyhow::Context;
use app::{App, AppInit};
use event_loop::Exit;
use std::path::PathBuf;
use theme::{ColorDepth, ThemeSource};
use tokio::signal::unix::{SignalKind, signal};

/// `--color`: whether to use colour at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ColorMode {
    /// Colour unless `NO_COLOR` is set; depth from `COLORTERM`/`TERM`.
    #[default]
    Auto,
    /// Colour even with `NO_COLOR`.
    Always,
    /// No colour: attributes only (the mono theme).
    Never,
}

impl ColorMode {
    /// The depth to draw with, from this mode and the environment.
    pub fn depth(
        self,
        no_color: Option<&str>,
        colorterm: Option<&str>,
        term: Option<&str>,
    ) -> ColorDepth {
        let detected = ColorDepth::detect(colorterm, term);
        match self {
            ColorMode::Never => ColorDepth::None,
            ColorMode::Always if detected == ColorDepth::None => ColorDepth::Ansi16,
            ColorMode::Always => detected,
            ColorMode::Auto if no_color.is_some_and(|v| !v.is_empty()) => ColorDepth::None,
            ColorMode::Auto => detected,
        }
    }
}

pub struct ConsoleArgs {
    pub config: Config,
    pub paths: Paths,
    pub from: Option<String>,
    pub to: Option<String>,
    pub color: ColorMode,
    pub theme: Option<String>,
    /// Per-disk rate limit, so a demo on a fast machine is watchable.
    pub throttle: Option<Bytes>,
    /// One rate for a run's disks together (`+`/`-` on the transfers screen).
    pub bandwidth: Option<Bytes>,
    pub state_dir: PathBuf,
    /// `altishift attach`: watch this run instead of browsing.
    pub attach: Option<Attach>,
}

/// A run the console opens on (`altishift attach`).
pub struct Attach {
    pub link: crate::engine::link::RunLink,
    pub read_only: bool,
}

/// Where user themes live: `<config dir>/themes/NAME.toml`.
pub fn theme_source(paths: &Paths) -> ThemeSource {
    ThemeSource {
        user_dir: paths.config_file.parent().map(|dir| dir.join("themes")),
    }
}

/// Runs the console until the operator quits or a signal arrives.
pub async fn run(args: ConsoleArgs) -> anyhow::Result<()> {
    let env = |name: &str| std::env::var(name).ok();
    let depth = args.color.depth(
        env("NO_COLOR").as_deref(),
        env("COLORTERM").as_deref(),
        env("TERM").as_deref(),
    );
    // Colour is decided by the theme (mono under NO_COLOR sets none). Left to
    // itself, crossterm under NO_COLOR writes a bare `ESC[m` for a colour
    // reset, which also drops reverse/bold and makes the selection vanish.
    crossterm::style::force_color_output(true);
    let source = theme_source(&args.paths);
    let theme_name = args
        .theme
        .clone()
        .or_else(|| args.config.theme.clone())
        .unwrap_or_else(|| "default".into());
    // A bad theme stops here, before the screen is taken, with file:line: key.
    let theme = source
        .load(&theme_name, depth)
        .with_context(|| format!("theme '{theme_name}'"))?;

    let sigterm = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let sighup = signal(SignalKind::hangup()).context("SIGHUP handler")?;
    let sigint = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    let signals = futures::stream::unfold(
        (sigterm, sighup, sigint),
        |(mut term, mut hup, mut int)| async move {
            let name = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = hup.recv() => "SIGHUP",
                _ = int.recv() => "SIGINT",
            };
            Some((name, (term, hup, int)))
        },
    );

    let note = format!("config {}", args.config.file_label());
    let (runtime, mut rx) =
        runtime::Runtime::new(args.config.clone(), args.state_dir.clone(), args.throttle);
    // Attached: the panes show the run's own clouds.
    let (from, to) = match &args.attach {
        Some(attach) => (
            Some(attach.link.welcome.run.source.clone()),
            Some(attach.link.welcome.run.target.clone()),
        ),
        None => (args.from, args.to),
    };
    let mut runtime = runtime.with_bandwidth(args.bandwidth);
    // A bad [keys] section is said before the terminal is taken over.
    let keymap = keymap::KeyMap::with_overrides(&args.config.keys).with_context(|| {
        args.config
            .file
            .as_deref()
            .map(|f| f.display().to_string())
            .unwrap_or_else(|| "the config".into())
    })?;
    let mut app = App::new(AppInit {
        config: args.config,
        from,
        to,
        theme,
        theme_source: source,
        depth,
        throttle: args.throttle,
        bandwidth: args.bandwidth,
        operator: crate::fsutil::operator(),
        note: Some(note),
        keymap,
    });

    if let Some(attach) = args.attach {
        app.attach(&attach.link.welcome.run.run_id, attach.read_only);
        runtime.attach(attach.link);
    }

    let (guard, mut terminal) =
        terminal::TerminalGuard::enter().context("cannot take over the terminal")?;
    let input = crossterm::event::EventStream::new();
    let result = event_loop::run_loop(
        &mut terminal,
        &mut app,
        &mut runtime,
        &mut rx,
        input,
        signals,
    )
    .await;
    drop(terminal);
    drop(guard);
    match result.context("terminal I/O")? {
        Exit::Quit | Exit::InputClosed => {}
        Exit::Signal(name) => {
            if let Some(run) = &app.run
                && !run.run_dir.as_os_str().is_empty()
            {
                eprintln!(
                    "altishift: {name}: console closed; {} goes on in the background: `altishift attach {}` (or `altishift runs`)",
                    run.run_id, run.run_id
                );
            }
        }
    }
    if let Some(run) = &app.run
        && let Some(outcome) = &run.finished
    {
        println!("{} — report: {}", outcome.summary, outcome.report.display());
    }
    Ok(())
}
