//! One inventory pane: a cloud's instances with a filter, a cursor and (on
//! the source side) marks for the plan.

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
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaneAction {
    Details,
    Mark,
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
        match key.code {
            KeyCode::Down | KeyCode::Char('j') => self.move_by(1),
            KeyCode::Up | KeyCode::Char('k') => self.move_by(-1),
            KeyCode::PageDown => self.move_by(page),
            KeyCode::PageUp => self.move_by(-page),
            KeyCode::Char('d') if key.modifiers.contains(KeyModifiers::CONTROL) => {
                self.move_by(page)
            }
            KeyCode::Char('u') if key.modifiers.contains(KeyModifiers::CONTROL) => {
                self.move_by(-page)
            }
            KeyCode::Home | KeyCode::Char('g') => self.cursor = 0,
            KeyCode::End | KeyCode::Char('G') => self.cursor = self.visible.len().saturating_sub(1),
            KeyCode::Enter if self.current().is_some() => {
                return Handled::Action(PaneAction::Details);
            }
            KeyCode::Char(' ') if self.side == SideId::Source && self.current().is_some() => {
                return Handled::Action(PaneAction::Mark);
            }
            _ => return Handled::NotConsumed,
        }
        Handled::Consumed
    }

    fn hints(&self) -> Vec<KeyHint> {
        let mut hints = vec![
            hint("j/k", "move"),
            hint("g/G", "top/end"),
            hint("Enter", "details"),
        ];
        if self.side == SideId::Source {
            hints.push(hint("Space", "mark"));
        }
        hints
    }
}
