//! Key dispatch: the topmost thing on screen gets the key first (secret
//! prompt, overlay, input line), then the screen's component, then the keys
//! that work everywhere. Each layer also lists its keys for the bar and `?`.

use super::input::InputAction;
use super::inventory::{PaneAction, SideId};
use super::plan::ApproveField;
use super::{App, Confirm, LineKind, Overlay, Screen};
use crate::engine::event::Command;
use crate::secret::Secret;
use crate::tui::component::{Component, Handled, KeyHint, hint};
use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

impl App {
    pub(super) fn on_key(&mut self, key: &KeyEvent) {
        if key.kind == KeyEventKind::Release {
            return;
        }
        if key.code == KeyCode::Char('c') && key.modifiers.contains(KeyModifiers::CONTROL) {
            self.overlay = None;
            self.request_quit();
            return;
        }
        if !self.prompts.is_empty() {
            self.on_prompt_key(key);
            return;
        }
        if let Some(overlay) = self.overlay.clone() {
            self.on_overlay_key(overlay, key);
            return;
        }
        if self.line.is_some() {
            self.on_line_key(key);
            return;
        }
        let consumed = match self.screen {
            Screen::Inventory => self.on_inventory_key(key),
            Screen::Plan => self.on_plan_key(key),
            Screen::Approve => self.on_approve_key(key),
            Screen::Transfers => self.on_transfers_key(key),
            Screen::Report => self.on_report_key(key),
        };
        if consumed {
            return;
        }
        match key.code {
            KeyCode::Char('q') => self.request_quit(),
            KeyCode::Char('?') => self.overlay = Some(Overlay::Help),
            KeyCode::Char('L') => self.show_log = !self.show_log,
            KeyCode::Char(':') => self.line = Some((LineKind::Command, super::LineInput::new(":"))),
            _ => {}
        }
    }

    fn on_prompt_key(&mut self, key: &KeyEvent) {
        let Some(prompt) = self.prompts.front_mut() else {
            return;
        };
        match prompt.input.handle_key(key) {
            Handled::Action(InputAction::Submit(value)) => {
                let field = prompt.asking.pop_front().unwrap_or_default();
                // Straight into the zeroizing type; the field was emptied by take().
                prompt.answers.push((field, Secret::new(value)));
                if let Some(next) = prompt.asking.front() {
                    prompt.input.label = format!("{} {}", prompt.cloud, next.replace('_', " "));
                    return;
                }
                if let Some(done) = self.prompts.pop_front() {
                    self.effects.push(super::Effect::Connect {
                        side: done.side,
                        cloud: done.cloud,
                        secrets: done.answers,
                    });
                }
            }
            Handled::Action(InputAction::Cancel) => {
                if let Some(done) = self.prompts.pop_front() {
                    let pane = self.pane_mut(done.side);
                    pane.load = super::Load::Failed(format!(
                        "{}: secret not given; `:{} {}` asks again",
                        done.cloud,
                        if done.side == SideId::Source {
                            "from"
                        } else {
                            "to"
                        },
                        done.cloud
                    ));
                }
            }
            _ => {}
        }
    }

    fn on_overlay_key(&mut self, overlay: Overlay, key: &KeyEvent) {
        match overlay {
            Overlay::Confirm(what) => match key.code {
                KeyCode::Char('y') | KeyCode::Char('Y') => {
                    self.overlay = None;
                    self.confirm(what);
                }
                KeyCode::Char('d') | KeyCode::Char('D') if what == Confirm::Quit => {
                    // The engine is a process of its own: leaving is not stopping.
                    self.overlay = None;
                    self.quit = true;
                }
                KeyCode::Char('n') | KeyCode::Char('N') | KeyCode::Esc | KeyCode::Char('q') => {
                    self.overlay = None
                }
                _ => {}
            },
            Overlay::Help | Overlay::Details(_) | Overlay::Notice(_) => {
                if matches!(
                    key.code,
                    KeyCode::Esc | KeyCode::Enter | KeyCode::Char('q') | KeyCode::Char('?')
                ) {
                    self.overlay = None;
                }
            }
        }
    }

    fn on_line_key(&mut self, key: &KeyEvent) {
        let Some((kind, line)) = &mut self.line else {
            return;
        };
        let kind = *kind;
        match line.handle_key(key) {
            Handled::Action(InputAction::Changed) => {
                if let LineKind::Filter(side) = kind {
                    let value = line.value().to_string();
                    self.pane_mut(side).set_filter(&value);
                }
            }
            Handled::Action(InputAction::Submit(value)) => {
                self.line = None;
                if kind == LineKind::Command {
                    self.run_command(&value);
                }
            }
            Handled::Action(InputAction::Cancel) => {
                self.line = None;
                if let LineKind::Filter(side) = kind {
                    self.pane_mut(side).set_filter("");
                }
            }
            _ => {}
        }
    }

    /// `:from NAME`, `:to NAME`, `:theme NAME`, `:plan`, `:quit`.
    pub fn run_command(&mut self, text: &str) {
        let text = text.trim().trim_start_matches(':');
        let (verb, arg) = text
            .split_once(char::is_whitespace)
            .map(|(v, a)| (v, a.trim()))
            .unwrap_or((text, ""));
        match (verb, arg) {
            ("", _) => {}
            ("from" | "source" | "cloud", name) if !name.is_empty() => {
                if self.run_active() {
                    self.error("a run is in progress: clouds cannot change now");
                } else {
                    self.connect(SideId::Source, name);
                }
            }
            ("to" | "target", name) if !name.is_empty() => {
                if self.run_active() {
                    self.error("a run is in progress: clouds cannot change now");
                } else {
                    self.connect(SideId::Target, name);
                }
            }
            ("theme", name) if !name.is_empty() => self.set_theme(name),
            ("plan", _) => self.open_plan(),
            ("q" | "quit", _) => self.request_quit(),
            ("from" | "to" | "theme", _) => self.error(format!(
                ":{verb} needs a name (clouds: {})",
                self.cloud_names()
            )),
            (other, _) => self.error(format!(
                "unknown command ':{other}' (from, to, theme, plan, quit)"
            )),
        }
    }

    fn cloud_names(&self) -> String {
        self.config
            .clouds
            .keys()
            .cloned()
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn on_inventory_key(&mut self, key: &KeyEvent) -> bool {
        let focus = self.focus;
        match self.pane_mut(focus).handle_key(key) {
            Handled::Action(PaneAction::Details) => {
                self.overlay = Some(Overlay::Details(focus));
                return true;
            }
            Handled::Action(PaneAction::Mark) => {
                self.pane_mut(focus).toggle_mark();
                return true;
            }
            Handled::Consumed => return true,
            Handled::NotConsumed => {}
        }
        match key.code {
            KeyCode::Tab
            | KeyCode::BackTab
            | KeyCode::Char('h')
            | KeyCode::Char('l')
            | KeyCode::Left
            | KeyCode::Right => {
                self.focus = match key.code {
                    KeyCode::Char('h') | KeyCode::Left => SideId::Source,
                    KeyCode::Char('l') | KeyCode::Right => SideId::Target,
                    _ => focus.other(),
                };
            }
            KeyCode::Char('/') => {
                let current = self.pane(focus).filter.clone();
                self.line = Some((
                    LineKind::Filter(focus),
                    super::LineInput::new("/").with_value(&current),
                ));
            }
            KeyCode::Esc => self.pane_mut(focus).set_filter(""),
            KeyCode::Char('p') => self.open_plan(),
            _ => return false,
        }
        true
    }

    fn on_plan_key(&mut self, key: &KeyEvent) -> bool {
        let Some(state) = &mut self.plan else {
            self.screen = Screen::Inventory;
            return false;
        };
        if let Some(edit) = &mut state.edit {
            match edit.handle_key(key) {
                Handled::Action(InputAction::Submit(value)) => {
                    let target = self.panes[SideId::Target.index()]
                        .loaded
                        .as_ref()
                        .map(|l| &l.inventory);
                    let result = match target {
                        Some(target) => state.apply_edit(&value, target),
                        None => Err("the target cloud is not connected".into()),
                    };
                    match result {
                        Ok(done) => {
                            state.edit = None;
                            self.approve = super::ApproveState::new();
                            self.info(format!("{done}; the plan hash changed"));
                        }
                        Err(err) => {
                            if let Some(edit) = &mut state.edit {
                                edit.error = Some(err);
                            }
                        }
                    }
                }
                Handled::Action(InputAction::Cancel) => state.edit = None,
                _ => {}
            }
            return true;
        }
        match key.code {
            KeyCode::Down | KeyCode::Char('j') => state.move_by(1),
            KeyCode::Up | KeyCode::Char('k') => state.move_by(-1),
            KeyCode::Char('J') | KeyCode::PageDown => state.scroll_actions(3),
            KeyCode::Char('K') | KeyCode::PageUp => state.scroll_actions(-3),
            KeyCode::Char('e') => state.begin_edit(),
            KeyCode::Char('n') => state.begin_rename(),
            KeyCode::Char('w') => {
                if let Some(done) = state.cycle_wave() {
                    self.approve = super::ApproveState::new();
                    self.info(format!("{done}; the plan hash changed"));
                }
            }
            KeyCode::Char('c') => state.show_config = !state.show_config,
            KeyCode::Char('x') => {
                let done = state.cycle_cutover();
                self.approve = super::ApproveState::new();
                self.info(format!("{done}; the plan hash changed"));
            }
            KeyCode::Char('a') | KeyCode::Enter => {
                self.screen = Screen::Approve;
                self.approve.refused = None;
            }
            KeyCode::Esc => self.screen = Screen::Inventory,
            _ => return false,
        }
        true
    }

    fn on_approve_key(&mut self, key: &KeyEvent) -> bool {
        let cross_border = self
            .plan
            .as_ref()
            .is_some_and(|p| p.plan.cross_border.is_some());
        let lossy = self
            .plan
            .as_ref()
            .is_some_and(|p| !crate::plan::configuration::lossy_lines(&p.plan).is_empty());
        match key.code {
            KeyCode::Esc => {
                self.screen = Screen::Plan;
                return true;
            }
            KeyCode::Tab | KeyCode::BackTab if cross_border || lossy => {
                self.approve.field = self.approve.field.next(cross_border, lossy);
                return true;
            }
            KeyCode::PageDown => self.approve.scroll += 5,
            KeyCode::PageUp => self.approve.scroll = self.approve.scroll.saturating_sub(5),
            KeyCode::Enter => {
                let operator = self.operator.clone();
                let checked = match &self.plan {
                    Some(state) => self.trust_check(&state.plan),
                    None => return true,
                };
                if let Err(refused) = checked {
                    self.approve.refused = Some(refused);
                    return true;
                }
                let Some(state) = &mut self.plan else {
                    return true;
                };
                if let Some(approved) = self.approve.submit(&mut state.plan, &operator) {
                    self.start_run(approved);
                }
                return true;
            }
            _ => {}
        }
        if matches!(key.code, KeyCode::PageDown | KeyCode::PageUp) {
            return true;
        }
        let field = match self.approve.field {
            ApproveField::CrossBorder if cross_border => &mut self.approve.ack,
            ApproveField::Lossy if lossy => &mut self.approve.ack_lossy,
            _ => &mut self.approve.hash,
        };
        // Typing goes to the field; `q` and `?` are letters here only when
        // they could be part of an answer ('yes' has neither).
        if matches!(
            key.code,
            KeyCode::Char('q') | KeyCode::Char('?') | KeyCode::Char('L') | KeyCode::Char(':')
        ) {
            return false;
        }
        field.handle_key(key).consumed()
    }

    fn on_transfers_key(&mut self, key: &KeyEvent) -> bool {
        let Some(run) = &mut self.run else {
            return false;
        };
        let disk = run.selected_disk().map(|d| d.key.clone());
        match key.code {
            KeyCode::Down | KeyCode::Char('j') => {
                run.selected = (run.selected + 1).min(run.disks.len().saturating_sub(1))
            }
            KeyCode::Up | KeyCode::Char('k') => run.selected = run.selected.saturating_sub(1),
            KeyCode::Home | KeyCode::Char('g') => run.selected = 0,
            KeyCode::End | KeyCode::Char('G') => run.selected = run.disks.len().saturating_sub(1),
            KeyCode::Char('p') => {
                if let Some(disk) = disk {
                    self.engine(Command::Pause { disk });
                }
            }
            KeyCode::Char('r') => {
                if let Some(disk) = disk {
                    self.engine(Command::Resume { disk });
                }
            }
            KeyCode::Char('c') => {
                if let Some(disk) = disk {
                    self.overlay = Some(Overlay::Confirm(Confirm::Cancel(disk)));
                }
            }
            KeyCode::Char('+') | KeyCode::Char('-') if !run.active() => {
                self.error("the run has ended: no budget to change");
            }
            KeyCode::Char(c @ ('+' | '-')) => match run.budget_step(c == '+') {
                Ok(rate) => {
                    run.budget = Some(rate);
                    self.engine(Command::SetBandwidth { rate: Some(rate) });
                    self.info(format!("bandwidth budget for the run: {rate}/s"));
                }
                // Nothing to change (unlimited, or nothing measured): a note.
                Err(why) => self.info(why),
            },
            KeyCode::Char('v') | KeyCode::Tab => self.screen = Screen::Report,
            _ => return false,
        }
        true
    }

    fn on_report_key(&mut self, key: &KeyEvent) -> bool {
        let scroll = self.run.as_mut().map(|r| &mut r.results_scroll);
        match (key.code, scroll) {
            (KeyCode::Down | KeyCode::Char('j'), Some(scroll)) => *scroll += 1,
            (KeyCode::Up | KeyCode::Char('k'), Some(scroll)) => *scroll = scroll.saturating_sub(1),
            (KeyCode::PageDown, Some(scroll)) => *scroll += 10,
            (KeyCode::PageUp, Some(scroll)) => *scroll = scroll.saturating_sub(10),
            (KeyCode::Home | KeyCode::Char('g'), Some(scroll)) => *scroll = 0,
            _ => return self.on_report_nav(key),
        }
        true
    }

    fn on_report_nav(&mut self, key: &KeyEvent) -> bool {
        match key.code {
            KeyCode::Char('t') | KeyCode::Tab | KeyCode::Esc => self.screen = Screen::Transfers,
            KeyCode::Char('i') if !self.run_active() => {
                // Back to browsing: the target inventory now lists what was deployed.
                self.screen = Screen::Inventory;
                let cloud = self.pane(SideId::Target).cloud.clone();
                self.connect(SideId::Target, &cloud);
            }
            _ => return false,
        }
        true
    }

    /// Keys that work right now, most useful first (the bottom bar).
    pub fn hints(&self) -> Vec<KeyHint> {
        if let Some(prompt) = self.prompts.front() {
            return prompt.input.hints();
        }
        match &self.overlay {
            Some(Overlay::Confirm(_)) => return vec![hint("y", "yes"), hint("n/Esc", "no")],
            Some(Overlay::Help | Overlay::Details(_) | Overlay::Notice(_)) => {
                return vec![hint("Esc", "close")];
            }
            None => {}
        }
        if let Some((kind, line)) = &self.line {
            let mut hints = line.hints();
            if matches!(kind, LineKind::Filter(_)) {
                hints[1] = hint("Esc", "clear");
            }
            return hints;
        }
        let mut hints = match self.screen {
            Screen::Inventory => {
                let mut hints = self.pane(self.focus).hints();
                hints.extend([
                    hint("Tab", "pane"),
                    hint("/", "filter"),
                    hint("p", "plan"),
                    hint("j/k", "move"),
                    hint(":", "command"),
                ]);
                hints
            }
            Screen::Plan if self.plan.as_ref().is_some_and(|p| p.edit.is_some()) => {
                return vec![hint("Enter", "set size"), hint("Esc", "cancel")];
            }
            Screen::Plan => vec![
                hint("j/k", "item"),
                hint("e", "resize"),
                hint("n", "rename"),
                hint("w", "wave"),
                hint("x", "cutover"),
                hint("c", "config"),
                hint("a", "approve"),
                hint("Esc", "back"),
                hint("J/K", "scroll"),
            ],
            Screen::Approve => {
                let mut hints = vec![hint("type", "short hash"), hint("Enter", "approve")];
                if self.plan.as_ref().is_some_and(|p| {
                    p.plan.cross_border.is_some()
                        || !crate::plan::configuration::lossy_lines(&p.plan).is_empty()
                }) {
                    hints.push(hint("Tab", "next field"));
                }
                hints.push(hint("Esc", "back"));
                return hints;
            }
            Screen::Transfers => vec![
                hint("j/k", "disk"),
                hint("p", "pause"),
                hint("r", "resume"),
                hint("c", "cancel"),
                hint("+/-", "budget"),
                hint("v", "results"),
            ],
            Screen::Report => {
                let mut hints = vec![hint("j/k", "scroll"), hint("t", "transfers")];
                if !self.run_active() {
                    hints.push(hint("i", "inventory"));
                }
                hints
            }
        };
        hints.extend([hint("L", "log"), hint("?", "help"), hint("q", "quit")]);
        hints
    }

    /// Every key of the current screen, for the `?` overlay.
    pub fn help(&self) -> Vec<KeyHint> {
        let mut all = match self.screen {
            Screen::Inventory => vec![
                hint("j/k ↓/↑", "move the cursor"),
                hint("g/G", "first / last row"),
                hint("PgDn/PgUp", "page down / up"),
                hint("Tab h/l", "switch pane (source / target)"),
                hint("Space", "mark an instance for the plan (source)"),
                hint("Enter", "details: disks, NICs, tags (or the entry's)"),
                hint("c", "show networks, firewalls, images, SSH keys (c: back)"),
                hint("[ ]", "previous / next configuration list"),
                hint("/", "filter (substring, any case); Esc clears"),
                hint("p", "plan the marked instances"),
                hint(":from NAME", "source cloud"),
                hint(":to NAME", "target cloud"),
                hint(":theme NAME", "default, light, high-contrast, ansi16, mono"),
                hint(":plan", "same as p"),
            ],
            Screen::Plan => vec![
                hint("j/k", "select an item"),
                hint(
                    "e",
                    "edit the item's target size (checked against the catalogue)",
                ),
                hint(
                    "n",
                    "rename the target instance (when the target has that name)",
                ),
                hint(
                    "w",
                    "move the item to the next wave (wave N+1 starts once N is validated)",
                ),
                hint(
                    "x",
                    "cutover: off → source powered off → kept running → off",
                ),
                hint(
                    "c",
                    "configuration of the item: network, firewall rules, tags, keys, \
                     user-data, source → target; ✗ marks what is lossy (c: actions)",
                ),
                hint("J/K", "scroll the action list"),
                hint("a Enter", "review and approve"),
                hint("Esc", "back to the inventory (the plan is kept)"),
            ],
            Screen::Approve => vec![
                hint("0-9 a-f", "type the plan's short hash"),
                hint("Tab", "cross-border field: type 'yes' to acknowledge"),
                hint(
                    "Tab",
                    "lossy field: type 'yes' to acknowledge what is not carried exactly",
                ),
                hint("Enter", "approve and start; a wrong hash changes nothing"),
                hint("PgDn/PgUp", "scroll the plan"),
                hint("Esc", "back to the plan"),
            ],
            Screen::Transfers => vec![
                hint("j/k", "select a disk (panes scroll)"),
                hint("p", "pause the selected disk"),
                hint("r", "resume it"),
                hint("c", "cancel it (asks first)"),
                hint(
                    "+ -",
                    "raise / lower the run's bandwidth budget (×1.25 / ÷1.25; - starts from the measured rate)",
                ),
                hint("v Tab", "validation, cleanup and report"),
            ],
            Screen::Report => vec![
                hint("j/k PgDn/PgUp", "scroll"),
                hint("t Tab Esc", "back to the transfer panes"),
                hint("i", "back to the inventory when done"),
            ],
        };
        all.extend([
            hint(":quit", "quit"),
            hint("L", "show or hide the log"),
            hint("?", "this help"),
            hint("q Ctrl-C", "quit (asks while work runs)"),
        ]);
        all
    }
}
