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
use crate::tui::keymap::{Action, Scope};
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
        // Typing goes to the approve screen's fields first.
        if self.screen == Screen::Approve && self.on_approve_key(key) {
            return;
        }
        let scope = match self.screen {
            Screen::Inventory => Scope::Inventory,
            Screen::Plan => Scope::Plan,
            Screen::Transfers => Scope::Transfers,
            Screen::Report => Scope::Report,
            Screen::Approve => Scope::Global,
        };
        if self.screen == Screen::Inventory && self.on_pane_key(key) {
            return;
        }
        if self.screen == Screen::Plan && self.on_plan_edit_key(key) {
            return;
        }
        let Some(action) = self.keymap.action(scope, key.code) else {
            return;
        };
        let done = match scope {
            Scope::Inventory => self.inventory_action(action),
            Scope::Plan => self.plan_action(action),
            Scope::Transfers => self.transfers_action(action),
            Scope::Report => self.report_action(action),
            Scope::Global => false,
        };
        if !done {
            self.global_action(action);
        }
    }

    /// The keys every screen shares (unless its own took the key).
    fn global_action(&mut self, action: Action) {
        match action {
            Action::Quit => self.request_quit(),
            Action::Help => self.overlay = Some(Overlay::Help),
            Action::ToggleLog => self.show_log = !self.show_log,
            Action::CommandLine => {
                self.line = Some((LineKind::Command, super::LineInput::new(":")))
            }
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

    /// The focused pane's own keys (cursor, mark, details, lists).
    fn on_pane_key(&mut self, key: &KeyEvent) -> bool {
        let focus = self.focus;
        match self.pane_mut(focus).handle_key(key) {
            Handled::Action(PaneAction::Details) => {
                self.overlay = Some(Overlay::Details(focus));
                true
            }
            Handled::Action(PaneAction::Mark) => {
                self.pane_mut(focus).toggle_mark();
                true
            }
            Handled::Consumed => true,
            Handled::NotConsumed => false,
        }
    }

    fn inventory_action(&mut self, action: Action) -> bool {
        let focus = self.focus;
        match action {
            Action::NextPane => self.focus = focus.other(),
            Action::SourcePane => self.focus = SideId::Source,
            Action::TargetPane => self.focus = SideId::Target,
            Action::Filter => {
                let current = self.pane(focus).filter.clone();
                self.line = Some((
                    LineKind::Filter(focus),
                    super::LineInput::new("/").with_value(&current),
                ));
            }
            Action::ClearFilter => self.pane_mut(focus).set_filter(""),
            Action::OpenPlan => self.open_plan(),
            _ => return false,
        }
        true
    }

    /// The size or name being edited takes every key while it is open.
    fn on_plan_edit_key(&mut self, key: &KeyEvent) -> bool {
        let Some(state) = &mut self.plan else {
            self.screen = Screen::Inventory;
            return false;
        };
        let Some(edit) = &mut state.edit else {
            return false;
        };
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
        true
    }

    fn plan_action(&mut self, action: Action) -> bool {
        let Some(state) = &mut self.plan else {
            return false;
        };
        match action {
            Action::Down => state.move_by(1),
            Action::Up => state.move_by(-1),
            Action::PageDown => state.scroll_actions(3),
            Action::PageUp => state.scroll_actions(-3),
            Action::Resize => state.begin_edit(),
            Action::Rename => state.begin_rename(),
            Action::NextWave => {
                if let Some(done) = state.cycle_wave() {
                    self.approve = super::ApproveState::new();
                    self.info(format!("{done}; the plan hash changed"));
                }
            }
            Action::ToggleConfig => state.show_config = !state.show_config,
            Action::Rehearse => self.rehearse(),
            Action::Cutover => {
                let done = state.cycle_cutover();
                let inspected = !state.plan.preparation.is_empty() || state.inspecting;
                self.approve = super::ApproveState::new();
                self.info(format!("{done}; the plan hash changed"));
                // A cutover decides which copy can take the changes.
                if inspected {
                    self.inspect_guests();
                }
            }
            Action::Approve => {
                self.screen = Screen::Approve;
                self.approve.refused = None;
            }
            Action::Back => self.screen = Screen::Inventory,
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
                if state.inspecting {
                    self.approve.refused = Some(
                        "the guests' inspection for preparation has not completed (see the log)"
                            .into(),
                    );
                    return true;
                }
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

    fn transfers_action(&mut self, action: Action) -> bool {
        let Some(run) = &mut self.run else {
            return false;
        };
        let disk = run.selected_disk().map(|d| d.key.clone());
        let last = run.disks.len().saturating_sub(1);
        match action {
            Action::Down => run.selected = (run.selected + 1).min(last),
            Action::Up => run.selected = run.selected.saturating_sub(1),
            Action::First => run.selected = 0,
            Action::Last => run.selected = last,
            Action::Pause => {
                if let Some(disk) = disk {
                    self.engine(Command::Pause { disk });
                }
            }
            Action::Resume => {
                if let Some(disk) = disk {
                    self.engine(Command::Resume { disk });
                }
            }
            Action::CancelDisk => {
                if let Some(disk) = disk {
                    self.overlay = Some(Overlay::Confirm(Confirm::Cancel(disk)));
                }
            }
            Action::BudgetUp | Action::BudgetDown if !run.active() => {
                self.error("the run has ended: no budget to change");
            }
            Action::BudgetUp | Action::BudgetDown => {
                match run.budget_step(action == Action::BudgetUp) {
                    Ok(rate) => {
                        run.budget = Some(rate);
                        self.engine(Command::SetBandwidth { rate: Some(rate) });
                        self.info(format!("bandwidth budget for the run: {rate}/s"));
                    }
                    // Nothing to change (unlimited, or nothing measured): a note.
                    Err(why) => self.info(why),
                }
            }
            Action::Results => self.screen = Screen::Report,
            _ => return false,
        }
        true
    }

    fn report_action(&mut self, action: Action) -> bool {
        if let Some(scroll) = self.run.as_mut().map(|r| &mut r.results_scroll) {
            match action {
                Action::Down => *scroll += 1,
                Action::Up => *scroll = scroll.saturating_sub(1),
                Action::PageDown => *scroll += 10,
                Action::PageUp => *scroll = scroll.saturating_sub(10),
                Action::First => *scroll = 0,
                _ => {}
            }
        }
        match action {
            Action::Down | Action::Up | Action::PageDown | Action::PageUp | Action::First => {}
            Action::Transfers => self.screen = Screen::Transfers,
            Action::Inventory if !self.run_active() => {
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
        let scope = match self.screen {
            Screen::Inventory => Scope::Inventory,
            Screen::Plan if self.plan.as_ref().is_some_and(|p| p.edit.is_some()) => {
                return vec![hint("Enter", "set size"), hint("Esc", "cancel")];
            }
            Screen::Plan => Scope::Plan,
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
            Screen::Transfers => Scope::Transfers,
            Screen::Report => Scope::Report,
        };
        let mut hints = match scope {
            Scope::Inventory => self.pane(self.focus).hints(),
            _ => Vec::new(),
        };
        let active = self.run_active();
        hints.extend(
            self.keymap
                .bar(scope)
                .into_iter()
                // Back to the inventory only once the run is over.
                .filter(|h| !(active && scope == Scope::Report && h.action == "inventory")),
        );
        hints
    }

    /// Every key of the current screen, for the `?` overlay: the keymap's
    /// (rebound keys included) and the approve screen's fields.
    pub fn help(&self) -> Vec<KeyHint> {
        match self.screen {
            Screen::Inventory => self.keymap.help(Scope::Inventory),
            Screen::Plan => self.keymap.help(Scope::Plan),
            Screen::Transfers => self.keymap.help(Scope::Transfers),
            Screen::Report => self.keymap.help(Scope::Report),
            Screen::Approve => {
                let mut all = vec![
                    hint("0-9 a-f", "type the plan's short hash"),
                    hint("Tab", "cross-border field: type 'yes' to acknowledge"),
                    hint(
                        "Tab",
                        "lossy field: type 'yes' to acknowledge what is not carried exactly",
                    ),
                    hint("Enter", "approve and start; a wrong hash changes nothing"),
                    hint("PgDn/PgUp", "scroll the plan"),
                    hint("Esc", "back to the plan"),
                ];
                all.extend(self.keymap.help(Scope::Global));
                all
            }
        }
    }
}
