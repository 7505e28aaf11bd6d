//! The console's state and what changes it. Nothing here draws or does I/O:
//! keys and engine events come in as [`Msg`], work to do goes out as
//! [`Effect`] for the runtime, and views draw from `&App`.

pub mod access;
pub mod configuration;
pub mod input;
pub mod inventory;
mod keys;
pub mod plan;
mod preparation;
mod rehearsal;
pub mod transfers;

use crate::config::Config;
use crate::engine::event::{Command, Event, Level};
use crate::plan::approval::Approved;
use crate::secret::{Secret, SecretSource};
use crate::tui::theme::{ColorDepth, Theme, ThemeSource};
use crate::units::Bytes;
use crossterm::event::{KeyEvent, MouseEvent};
use input::LineInput;
use inventory::{Load, LoadedCloud, SideId, SidePane};
use plan::{ApproveState, PlanState};
use std::collections::VecDeque;
use transfers::{Change, RunState};

/// Log lines kept for the log pane.
const LOG_LINES: usize = 500;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Screen {
    Inventory,
    Plan,
    Approve,
    Transfers,
    Report,
}

impl Screen {
    pub fn title(self) -> &'static str {
        match self {
            Screen::Inventory => "Inventory",
            Screen::Plan => "Plan",
            Screen::Approve => "Approve",
            Screen::Transfers => "Transfers",
            Screen::Report => "Results",
        }
    }
}

/// What the operator asked to confirm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Confirm {
    Quit,
    Cancel(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Overlay {
    Help,
    Details(SideId),
    Confirm(Confirm),
    /// Something the operator must read in full (a refused plan).
    Notice(Notice),
}

/// A refusal with its whole reason and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub title: String,
    pub text: String,
    pub advice: String,
}

/// Where the console's idea of "now" comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Clock {
    #[default]
    System,
    /// A fixed instant (Unix seconds), for tests and snapshots.
    Fixed(u64),
}

impl Clock {
    pub fn now_unix(self) -> u64 {
        match self {
            Clock::System => crate::fsutil::now_unix(),
            Clock::Fixed(at) => at,
        }
    }
}

/// What the one-line input at the bottom is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineKind {
    Filter(SideId),
    Command,
}

/// A secret a cloud profile says to ask for, before connecting.
#[derive(Debug)]
pub struct SecretPrompt {
    pub side: SideId,
    pub cloud: String,
    /// Profile fields still to ask (`secret_key`), in order.
    pub asking: VecDeque<String>,
    pub answers: Vec<(String, Secret)>,
    pub input: LineInput,
}

#[derive(Debug, Clone)]
pub struct LogLine {
    pub level: Level,
    pub text: String,
}

/// Something for the runtime to do.
#[derive(Debug)]
pub enum Effect {
    /// Connect a cloud and read its inventory; answers with [`Msg::Loaded`].
    Connect {
        side: SideId,
        cloud: String,
        secrets: Vec<(String, Secret)>,
    },
    /// Start the engine on an approved plan; answers with engine events.
    StartRun(Box<Approved>),
    Engine(Command),
    /// Ask the engine to stop at a consistent point, then quit.
    Shutdown,
    /// Boot the plan's boot disks locally (`crate::rehearsal`); answers with
    /// [`Msg::RehearsalBooting`] per disk, then [`Msg::Rehearsed`].
    Rehearse(Box<crate::plan::Plan>),
    /// Inspect the plan's guests for preparation (`crate::preparation`);
    /// answers with [`Msg::GuestsInspected`].
    InspectGuests(Box<crate::plan::Plan>),
}

/// Everything that can change the state.
#[derive(Debug)]
pub enum Msg {
    Key(KeyEvent),
    Mouse(MouseEvent),
    Paste(String),
    Resize,
    /// One second passed while a run is active (throughput samples).
    Tick,
    /// A minute passed while some credentials have an expiry to watch.
    Minute,
    Loaded {
        side: SideId,
        cloud: String,
        result: Result<Box<LoadedCloud>, String>,
    },
    Engine(Event),
    /// The engine could not start, or its task ended.
    RunStartFailed(String),
    EngineDone(Result<(), String>),
    /// The engine did not carry out a command (a read-only viewer's, say).
    Refused(String),
    /// The rehearsal started booting `instance`'s boot disk.
    RehearsalBooting {
        instance: String,
        disk: String,
    },
    /// The rehearsal of the plan with these items ended (records, or why it
    /// could not run).
    Rehearsed {
        items: Vec<String>,
        result: Result<Vec<crate::plan::RehearsalRecord>, String>,
    },
    /// The guests of the plan with these items (and cutover or not, which
    /// decides which copy can be prepared) were inspected.
    GuestsInspected {
        items: Vec<String>,
        cutover: bool,
        result: Result<crate::plan::preparation::Preparation, String>,
    },
}

/// How the loop should treat a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Redraw {
    No,
    /// At the next throughput tick (1 Hz).
    Soon,
    /// At the next frame (≤ 15 fps).
    Now,
}

pub struct AppInit {
    pub config: Config,
    pub from: Option<String>,
    pub to: Option<String>,
    pub theme: Theme,
    pub theme_source: ThemeSource,
    pub depth: ColorDepth,
    pub throttle: Option<Bytes>,
    /// The run-wide budget a run starts with.
    pub bandwidth: Option<Bytes>,
    pub operator: String,
    /// Shown in the status bar at start (where the lab lives, …).
    pub note: Option<String>,
    /// The keys, with the config's `[keys]` applied.
    pub keymap: crate::tui::keymap::KeyMap,
}

pub struct App {
    pub screen: Screen,
    pub panes: [SidePane; 2],
    pub focus: SideId,
    pub overlay: Option<Overlay>,
    pub line: Option<(LineKind, LineInput)>,
    pub prompts: VecDeque<SecretPrompt>,
    pub plan: Option<PlanState>,
    pub approve: ApproveState,
    pub run: Option<RunState>,
    pub log: VecDeque<LogLine>,
    pub show_log: bool,
    pub status: Option<(Level, String)>,
    pub theme: Theme,
    pub theme_source: ThemeSource,
    pub depth: ColorDepth,
    pub throttle: Option<Bytes>,
    pub bandwidth: Option<Bytes>,
    pub operator: String,
    pub config: Config,
    pub keymap: crate::tui::keymap::KeyMap,
    /// The loop exits when set.
    pub quit: bool,
    /// Shutdown asked; waiting for the engine to stop.
    pub stopping: bool,
    pub clock: Clock,
    /// Unix seconds as of the last message: views draw expiry against it.
    pub now_unix: u64,
    effects: Vec<Effect>,
}

impl App {
    pub fn new(init: AppInit) -> App {
        let names: Vec<String> = init.config.clouds.keys().cloned().collect();
        let from = init
            .from
            .or_else(|| names.first().cloned())
            .unwrap_or_default();
        let to = init
            .to
            .or_else(|| names.iter().find(|n| **n != from).cloned())
            .unwrap_or_else(|| from.clone());
        let mut app = App {
            screen: Screen::Inventory,
            panes: [
                SidePane::new(SideId::Source, &from),
                SidePane::new(SideId::Target, &to),
            ],
            focus: SideId::Source,
            overlay: None,
            line: None,
            prompts: VecDeque::new(),
            plan: None,
            approve: ApproveState::new(),
            run: None,
            log: VecDeque::new(),
            show_log: false,
            status: init.note.map(|n| (Level::Info, n)),
            theme: init.theme,
            theme_source: init.theme_source,
            depth: init.depth,
            throttle: init.throttle,
            bandwidth: init.bandwidth,
            operator: init.operator,
            config: init.config,
            keymap: init.keymap,
            quit: false,
            stopping: false,
            clock: Clock::System,
            now_unix: crate::fsutil::now_unix(),
            effects: Vec::new(),
        };
        for side in [SideId::Source, SideId::Target] {
            let cloud = app.panes[side.index()].cloud.clone();
            if cloud.is_empty() {
                app.pane_mut(side).load = Load::Failed(
                    "no cloud configured: add one to config.toml or run `altishift demo`".into(),
                );
            } else {
                app.connect(side, &cloud);
            }
        }
        app
    }

    pub fn pane(&self, side: SideId) -> &SidePane {
        &self.panes[side.index()]
    }

    pub fn pane_mut(&mut self, side: SideId) -> &mut SidePane {
        &mut self.panes[side.index()]
    }

    /// Work for the runtime, oldest first.
    pub fn take_effects(&mut self) -> Vec<Effect> {
        std::mem::take(&mut self.effects)
    }

    pub fn run_active(&self) -> bool {
        self.run.as_ref().is_some_and(RunState::active)
    }

    pub fn info(&mut self, text: impl Into<String>) {
        self.status = Some((Level::Info, text.into()));
    }

    pub fn error(&mut self, text: impl Into<String>) {
        let text = text.into();
        self.push_log(Level::Error, text.clone());
        self.status = Some((Level::Error, text));
    }

    pub fn push_log(&mut self, level: Level, text: String) {
        if self.log.len() == LOG_LINES {
            self.log.pop_front();
        }
        self.log.push_back(LogLine { level, text });
    }

    /// Connects a side to a configured cloud, asking first for any secret
    /// its profile says to prompt for.
    pub fn connect(&mut self, side: SideId, cloud: &str) {
        let profile = match crate::cloud::Profile::read(&self.config, cloud) {
            Ok(profile) => profile,
            Err(err) => {
                self.error(err.to_string());
                return;
            }
        };
        let asking: VecDeque<String> = profile
            .secrets()
            .into_iter()
            .filter(|(_, source)| matches!(source, SecretSource::Prompt))
            .map(|(field, _)| field.to_string())
            .collect();
        self.pane_mut(side).connecting(cloud);
        if asking.is_empty() {
            self.effects.push(Effect::Connect {
                side,
                cloud: cloud.to_string(),
                secrets: Vec::new(),
            });
        } else {
            let label = format!("{cloud} {}", asking[0].replace('_', " "));
            self.prompts.push_back(SecretPrompt {
                side,
                cloud: cloud.to_string(),
                asking,
                answers: Vec::new(),
                input: LineInput::masked(label),
            });
        }
    }

    /// Applies a message; says how soon the screen should show it.
    pub fn update(&mut self, msg: Msg) -> Redraw {
        let expiry_before = self.expiry_shown();
        self.now_unix = self.clock.now_unix();
        match msg {
            Msg::Minute => {
                if self.expiry_shown() == expiry_before {
                    Redraw::No
                } else {
                    Redraw::Now
                }
            }
            Msg::Key(key) => {
                self.on_key(&key);
                Redraw::Now
            }
            Msg::Mouse(mouse) => self.on_mouse(mouse),
            Msg::Paste(text) => {
                if let Some(prompt) = self.prompts.front_mut() {
                    prompt.input.paste(&text);
                } else if let Some((kind, line)) = &mut self.line {
                    line.paste(&text);
                    if let LineKind::Filter(side) = *kind {
                        let value = line.value().to_string();
                        self.pane_mut(side).set_filter(&value);
                    }
                } else if self.screen == Screen::Approve {
                    self.approve.hash.paste(&text);
                } else {
                    return Redraw::No;
                }
                Redraw::Now
            }
            Msg::Resize => Redraw::Now,
            Msg::Tick => match &mut self.run {
                Some(run) if run.active() => {
                    run.tick();
                    Redraw::Now
                }
                _ => Redraw::No,
            },
            Msg::Loaded {
                side,
                cloud,
                result,
            } => {
                if self.pane(side).cloud != cloud {
                    return Redraw::No; // an answer for a cloud the operator switched away from
                }
                match result {
                    Ok(loaded) => {
                        let count = loaded.inventory.instances.len();
                        self.push_log(Level::Info, format!("{cloud}: {count} instances"));
                        self.pane_mut(side).set_loaded(*loaded);
                    }
                    Err(err) => {
                        self.error(format!("{cloud}: {err}"));
                        self.pane_mut(side).load = Load::Failed(err);
                    }
                }
                Redraw::Now
            }
            Msg::Engine(event) => self.on_engine_event(event),
            Msg::RehearsalBooting { instance, disk } => {
                self.on_rehearsal_booting(&instance, &disk);
                Redraw::Now
            }
            Msg::Rehearsed { items, result } => {
                self.on_rehearsed(&items, result);
                Redraw::Now
            }
            Msg::GuestsInspected {
                items,
                cutover,
                result,
            } => {
                self.on_guests_inspected(&items, cutover, result);
                Redraw::Now
            }
            Msg::Refused(reason) => {
                self.error(format!("refused by the engine: {reason}"));
                Redraw::Now
            }
            Msg::RunStartFailed(err) => {
                self.error(format!("the run did not start: {err}"));
                self.run = None;
                self.screen = Screen::Approve;
                Redraw::Now
            }
            Msg::EngineDone(result) => {
                if let Some(run) = &mut self.run {
                    run.engine_done = true;
                    if let Err(err) = &result {
                        run.engine_error = Some(err.clone());
                    }
                }
                if let Err(err) = result {
                    self.error(format!("engine stopped: {err}"));
                }
                if self.stopping {
                    self.quit = true;
                }
                Redraw::Now
            }
        }
    }

    fn on_engine_event(&mut self, event: Event) -> Redraw {
        let finished = matches!(event, Event::RunFinished { .. });
        let Some(run) = &mut self.run else {
            return Redraw::No;
        };
        let mut lines = Vec::new();
        let change = run.apply(event, &mut |level, text| lines.push((level, text)));
        for (level, text) in lines {
            self.push_log(level, text);
        }
        if finished && self.screen == Screen::Transfers {
            self.screen = Screen::Report;
        }
        match change {
            Change::Numbers => Redraw::Soon,
            Change::Visible => Redraw::Now,
        }
    }

    fn on_mouse(&mut self, mouse: MouseEvent) -> Redraw {
        use crossterm::event::MouseEventKind;
        let delta = match mouse.kind {
            MouseEventKind::ScrollDown => 1,
            MouseEventKind::ScrollUp => -1,
            _ => return Redraw::No, // moves and clicks change nothing: no frame, no bytes
        };
        let code = if delta > 0 {
            crossterm::event::KeyCode::Down
        } else {
            crossterm::event::KeyCode::Up
        };
        if self.overlay.is_none() && self.prompts.is_empty() && self.line.is_none() {
            self.on_key(&KeyEvent::from(code));
            Redraw::Now
        } else {
            Redraw::No
        }
    }

    pub fn set_theme(&mut self, name: &str) {
        match self.theme_source.load(name, self.depth) {
            Ok(theme) => {
                let shown = theme.name.clone();
                self.theme = theme;
                self.info(if shown == name {
                    format!("theme {name}")
                } else {
                    format!("theme {shown} (no colour here)")
                });
            }
            Err(err) => self.error(err.to_string()),
        }
    }

    pub fn start_run(&mut self, approved: Approved) {
        self.push_log(
            Level::Info,
            format!(
                "plan {} approved by {}",
                approved.hash().short(),
                approved.operator()
            ),
        );
        self.run = Some(RunState {
            budget: self.bandwidth,
            ..RunState::default()
        });
        self.screen = Screen::Transfers;
        self.status = None;
        self.effects.push(Effect::StartRun(Box::new(approved)));
    }

    /// Watches a run that an engine process already carries out.
    pub fn attach(&mut self, run_id: &str, read_only: bool) {
        self.run = Some(RunState::default());
        self.screen = Screen::Transfers;
        let mode = if read_only { " read-only" } else { "" };
        self.info(format!(
            "attached{mode} to {run_id}; q then d leaves it running"
        ));
    }

    /// Quit now, or ask first when work is running.
    pub fn request_quit(&mut self) {
        if self.run_active() {
            self.overlay = Some(Overlay::Confirm(Confirm::Quit));
        } else {
            self.quit = true;
        }
    }

    /// Something refused, over the screen: logged, in the status line, and
    /// the notice with its reasons and advice until Esc.
    pub(super) fn refusal_notice(&mut self, notice: Notice) {
        self.push_log(Level::Error, notice.title.clone());
        self.status = Some((Level::Error, notice.title.clone()));
        self.overlay = Some(Overlay::Notice(notice));
    }

    pub fn confirm(&mut self, what: Confirm) {
        match what {
            Confirm::Quit => {
                self.stopping = true;
                self.info("stopping the engine at a consistent point…");
                self.effects.push(Effect::Shutdown);
            }
            Confirm::Cancel(disk) => {
                self.push_log(Level::Warn, format!("{disk}: cancel requested"));
                self.effects.push(Effect::Engine(Command::Cancel { disk }));
            }
        }
    }

    pub fn engine(&mut self, command: Command) {
        self.effects.push(Effect::Engine(command));
    }
}
