//! One inventory pane: a cloud's instances with a filter, a cursor and (on
//! the source side) marks for the plan; or, toggled with `c`, the cloud's
//! configuration lists (see [`super::configuration`]).

use super::configuration::{ConfigList, PaneView};
use crate::inventory::{Instance, Inventory};
use crate::tui::component::{Component, Handled, KeyHint, hint};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use std::collections::BTreeSet;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SideId {
    Source,
    Target,
}

impl SideId {
    pub fn index(self) -> usize {
        match self {
            SideId::Source => 0,
            SideId::Target => 1,
        }
    }

    pub fn other(self) -> SideId {
        match self {
            SideId::Source => SideId::Target,
            SideId::Target => SideId::Source,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            SideId::Source => "source",
            SideId::Target => "target",
        }
    }
}

/// Where a pane's cloud is in being reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Load {
    /// No cloud chosen (or its secret prompt was cancelled).
    Idle,
    Connecting,
    Ready,
    Failed(String),
}

/// What a connected cloud told us, as the plan builder needs it.
#[derive(Debug, Clone)]
pub struct LoadedCloud {
    pub provider: String,
    pub jurisdiction: Option<String>,
    pub inventory: Inventory,
    /// The profile's settings that an approval covers (see `plan::trust`).
    pub fingerprint: crate::plan::trust::CloudFingerprint,
    /// It can be a source: plans from it prepare their guests, as
    /// `altishift plan` does (inspected now where its disks are files here,
    /// during the run otherwise).
    pub plans_guests: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaneAction {
    Details,
    Mark,
}

/// How far a cursor moves.
#[derive(Debug, Clone, Copy)]
enum Step {
    By(isize),
    Top,
    End,
}

#[derive(Debug)]
pub struct SidePane {
    pub side: SideId,
    pub cloud: String,
    pub load: Load,
    pub loaded: Option<LoadedCloud>,
    pub filter: String,
    /// Rows that pass the filter, as indices into the inventory.
    pub visible: Vec<usize>,
    /// Cursor within `visible`.
    pub cursor: usize,
    /// Instance names marked for the plan (source side only).
    pub marked: BTreeSet<String>,
    pub view: PaneView,
    /// The configuration lists, filtered by the same text.
    pub config: ConfigList,
    /// Lower-cased text each row is matched against, built once per load so a
    /// keystroke at 10,000 rows is one pass of `contains`.
    haystack: Vec<String>,
}

impl SidePane {
    pub fn new(side: SideId, cloud: &str) -> SidePane {
        SidePane {
            side,
            cloud: cloud.to_string(),
            load: Load::Idle,
            loaded: None,
            filter: String::new(),
            visible: Vec::new(),
            cursor: 0,
            marked: BTreeSet::new(),
            view: PaneView::Instances,
            config: ConfigList::default(),
            haystack: Vec::new(),
        }
    }

    pub fn connecting(&mut self, cloud: &str) {
        if self.cloud != cloud {
            self.marked.clear();
            self.filter.clear();
        }
        self.cloud = cloud.to_string();
        self.load = Load::Connecting;
    }

    pub fn set_loaded(&mut self, loaded: LoadedCloud) {
        self.haystack = loaded.inventory.instances.iter().map(haystack).collect();
        let names: BTreeSet<&str> = loaded
            .inventory
            .instances
            .iter()
            .map(|i| i.name.as_str())
            .collect();
        self.marked.retain(|m| names.contains(m.as_str()));
        self.config.load(&loaded.inventory, &self.filter);
        self.loaded = Some(loaded);
        self.load = Load::Ready;
        self.refilter();
    }

    pub fn inventory(&self) -> Option<&Inventory> {
        self.loaded.as_ref().map(|l| &l.inventory)
    }

    pub fn instances(&self) -> &[Instance] {
        self.inventory()
            .map(|i| i.instances.as_slice())
            .unwrap_or_default()
    }

    pub fn set_filter(&mut self, filter: &str) {
        self.filter = filter.to_string();
        self.refilter();
        self.config.refilter(filter);
    }

    /// Instances ↔ configuration lists.
    pub fn toggle_view(&mut self) {
        self.view = match self.view {
            PaneView::Instances => PaneView::Configuration,
            PaneView::Configuration => PaneView::Instances,
        };
    }

    /// Rows the current view shows after the filter.
    pub fn shown(&self) -> usize {
        match self.view {
            PaneView::Instances => self.visible.len(),
            PaneView::Configuration => self.config.visible.len(),
        }
    }

    fn refilter(&mut self) {
        let needle = self.filter.to_lowercase();
        let keep_name = self.current().map(|i| i.name.clone());
        self.visible = self
            .haystack
            .iter()
            .enumerate()
            .filter(|(_, text)| needle.is_empty() || text.contains(&needle))
            .map(|(i, _)| i)
            .collect();
        // Keep the cursor on the same instance when it is still shown.
        let instances = self.instances();
        self.cursor = keep_name
            .and_then(|name| self.visible.iter().position(|&i| instances[i].name == name))
            .unwrap_or(0);
    }

    pub fn current(&self) -> Option<&Instance> {
        self.visible
            .get(self.cursor)
            .and_then(|&i| self.instances().get(i))
    }

    pub fn rows(&self) -> impl Iterator<Item = &Instance> {
        self.visible.iter().filter_map(|&i| self.instances().get(i))
    }

    fn move_by(&mut self, delta: isize) {
        let last = self.visible.len().saturating_sub(1);
        self.cursor = self.cursor.saturating_add_signed(delta).min(last);
    }

    /// Moves the cursor of whichever view is shown.
    fn step(&mut self, step: Step) {
        match (self.view, step) {
            (PaneView::Instances, Step::By(delta)) => self.move_by(delta),
            (PaneView::Instances, Step::Top) => self.cursor = 0,
            (PaneView::Instances, Step::End) => self.cursor = self.visible.len().saturating_sub(1),
            (PaneView::Configuration, Step::By(delta)) => self.config.move_by(delta),
            (PaneView::Configuration, Step::Top) => self.config.cursor = 0,
            (PaneView::Configuration, Step::End) => self.config.to_end(),
        }
    }

    /// Something is under the cursor of the current view.
    fn has_current(&self) -> bool {
        match self.view {
            PaneView::Instances => self.current().is_some(),
            PaneView::Configuration => self.config.current().is_some(),
        }
    }

    /// Marks or unmarks the instance under the cursor, then moves down.
    pub fn toggle_mark(&mut self) {
        if let Some(name) = self.current().map(|i| i.name.clone()) {
            if !self.marked.remove(&name) {
                self.marked.insert(name);
            }
            self.move_by(1);
        }
    }

    /// Marked instance names in inventory order (the plan keeps that order).
    pub fn marked_in_order(&self) -> Vec<String> {
        self.instances()
            .iter()
            .filter(|i| self.marked.contains(&i.name))
            .map(|i| i.name.clone())
            .collect()
    }
}

fn haystack(instance: &Instance) -> String {
    let mut text = format!(
        "{} {} {} {} {}",
        instance.name, instance.id, instance.state, instance.size, instance.region
    );
    if let Some(address) = instance.first_address() {
        text.push(' ');
        text.push_str(address);
    }
    for (key, value) in &instance.tags {
        text.push_str(&format!(" {key}={value}"));
    }
    text.to_lowercase()
}

impl Component for SidePane {
    type Action = PaneAction;

    fn handle_key(&mut self, key: &KeyEvent) -> Handled<PaneAction> {
        let page = 10;
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        let configuration = self.view == PaneView::Configuration;
        match key.code {
            KeyCode::Down | KeyCode::Char('j') => self.step(Step::By(1)),
            KeyCode::Up | KeyCode::Char('k') => self.step(Step::By(-1)),
            KeyCode::PageDown => self.step(Step::By(page)),
            KeyCode::PageUp => self.step(Step::By(-page)),
            KeyCode::Char('d') if ctrl => self.step(Step::By(page)),
            KeyCode::Char('u') if ctrl => self.step(Step::By(-page)),
            KeyCode::Home | KeyCode::Char('g') => self.step(Step::Top),
            KeyCode::End | KeyCode::Char('G') => self.step(Step::End),
            KeyCode::Char(']') if configuration => self.config.jump_section(true),
            KeyCode::Char('[') if configuration => self.config.jump_section(false),
            KeyCode::Char('c') => self.toggle_view(),
            KeyCode::Enter if self.has_current() => {
                return Handled::Action(PaneAction::Details);
            }
            KeyCode::Char(' ')
                if self.side == SideId::Source && !configuration && self.current().is_some() =>
            {
                return Handled::Action(PaneAction::Mark);
            }
            _ => return Handled::NotConsumed,
        }
        Handled::Consumed
    }

    /// This pane's own keys, most useful first (moving is shown by the
    /// screen, after them: arrows need no hint at 80 columns).
    fn hints(&self) -> Vec<KeyHint> {
        match self.view {
            PaneView::Instances if self.side == SideId::Source => vec![
                hint("Space", "mark"),
                hint("c", "config"),
                hint("Enter", "details"),
            ],
            PaneView::Instances => vec![hint("c", "config"), hint("Enter", "details")],
            PaneView::Configuration => vec![
                hint("c", "instances"),
                hint("Enter", "details"),
                hint("[/]", "list"),
            ],
        }
    }
}
