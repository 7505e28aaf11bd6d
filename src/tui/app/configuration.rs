//! A pane's configuration view: the cloud's networks, firewalls, images and
//! SSH keys as one list in sections, with the same filter and a cursor of its
//! own, so an operator can check what a target offers before planning.

use crate::inventory::Inventory;

/// The configuration lists, in the order they are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ConfigKind {
    Network,
    Firewall,
    Image,
    SshKey,
}

impl ConfigKind {
    pub const ALL: [ConfigKind; 4] = [
        ConfigKind::Network,
        ConfigKind::Firewall,
        ConfigKind::Image,
        ConfigKind::SshKey,
    ];

    pub fn title(self) -> &'static str {
        match self {
            ConfigKind::Network => "networks",
            ConfigKind::Firewall => "firewalls",
            ConfigKind::Image => "images",
            ConfigKind::SshKey => "SSH keys",
        }
    }

    pub fn count(self, inventory: &Inventory) -> usize {
        match self {
            ConfigKind::Network => inventory.networks.len(),
            ConfigKind::Firewall => inventory.firewalls.len(),
            ConfigKind::Image => inventory.images.len(),
            ConfigKind::SshKey => inventory.ssh_keys.len(),
        }
    }
}

/// One entry of a configuration list: which list, and where in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfigRow {
    pub kind: ConfigKind,
    pub index: usize,
}

/// Which of its two views a pane shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PaneView {
    #[default]
    Instances,
    Configuration,
}

#[derive(Debug, Default)]
pub struct ConfigList {
    /// Entries that pass the filter, in section order.
    pub visible: Vec<ConfigRow>,
    /// Cursor within `visible`.
    pub cursor: usize,
    all: Vec<(ConfigRow, String)>,
}

impl ConfigList {
    /// Rebuilds from a freshly loaded inventory.
    pub fn load(&mut self, inventory: &Inventory, filter: &str) {
        self.all = ConfigKind::ALL
            .into_iter()
            .flat_map(|kind| (0..kind.count(inventory)).map(move |index| ConfigRow { kind, index }))
            .map(|row| (row, haystack(inventory, row)))
            .collect();
        self.cursor = 0;
        self.refilter(filter);
    }

    pub fn refilter(&mut self, filter: &str) {
        let needle = filter.to_lowercase();
        let keep = self.current();
        self.visible = self
            .all
            .iter()
            .filter(|(_, text)| needle.is_empty() || text.contains(&needle))
            .map(|(row, _)| *row)
            .collect();
        self.cursor = keep
            .and_then(|row| self.visible.iter().position(|r| *r == row))
            .unwrap_or(0);
    }

    pub fn current(&self) -> Option<ConfigRow> {
        self.visible.get(self.cursor).copied()
    }

    /// Entries in the whole inventory (before the filter).
    pub fn total(&self) -> usize {
        self.all.len()
    }

    pub fn move_by(&mut self, delta: isize) {
        let last = self.visible.len().saturating_sub(1);
        self.cursor = self.cursor.saturating_add_signed(delta).min(last);
    }

    pub fn to_end(&mut self) {
        self.cursor = self.visible.len().saturating_sub(1);
    }

    /// Moves to the first entry of the next (or previous) list that has one.
    pub fn jump_section(&mut self, forward: bool) {
        let Some(here) = self.current() else {
            return;
        };
        let target = if forward {
            self.visible.iter().position(|r| r.kind > here.kind)
        } else {
            // The start of the previous section, or of this one when the
            // cursor is inside it.
            let start = self.visible.iter().position(|r| r.kind == here.kind);
            match start {
                Some(start) if start < self.cursor => Some(start),
                _ => self
                    .visible
                    .iter()
                    .rev()
                    .find(|r| r.kind < here.kind)
                    .and_then(|prev| self.visible.iter().position(|r| r.kind == prev.kind)),
            }
        };
        if let Some(position) = target {
            self.cursor = position;
        }
    }
}

fn haystack(inventory: &Inventory, row: ConfigRow) -> String {
    let text = match row.kind {
        ConfigKind::Network => inventory.networks.get(row.index).map(|n| {
            format!(
                "{} {} {} {} {} {}",
                n.name,
                n.id,
                n.kind,
                n.cidr.as_deref().unwrap_or_default(),
                n.region.as_deref().unwrap_or_default(),
                n.parent.as_deref().unwrap_or_default()
            )
        }),
        ConfigKind::Firewall => inventory.firewalls.get(row.index).map(|f| {
            format!(
                "{} {} {} {}",
                f.name,
                f.id,
                f.network.as_deref().unwrap_or_default(),
                f.rules.join(" ")
            )
        }),
        ConfigKind::Image => inventory.images.get(row.index).map(|i| {
            format!(
                "{} {} {} {} {}",
                i.name,
                i.id,
                i.os.as_deref().unwrap_or_default(),
                i.region.as_deref().unwrap_or_default(),
                if i.private { "private" } else { "public" }
            )
        }),
        ConfigKind::SshKey => inventory.ssh_keys.get(row.index).map(|k| {
            format!(
                "{} {} {}",
                k.name,
                k.id,
                k.fingerprint.as_deref().unwrap_or_default()
            )
        }),
    };
    text.unwrap_or_default().to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::{Firewall, Network, SshKey};

    fn inventory() -> Inventory {
        Inventory {
            networks: vec![
                Network {
                    id: "vpc-1".into(),
                    name: "main".into(),
                    kind: "vpc".into(),
                    cidr: Some("10.0.0.0/16".into()),
                    region: None,
                    parent: None,
                },
                Network {
                    id: "subnet-1".into(),
                    name: "web".into(),
                    kind: "subnet".into(),
                    cidr: Some("10.0.1.0/24".into()),
                    region: None,
                    parent: Some("vpc-1".into()),
                },
            ],
            firewalls: vec![Firewall {
                id: "sg-1".into(),
                name: "ssh".into(),
                network: None,
                rules: vec!["in tcp 22 from 0.0.0.0/0".into()],
            }],
            ssh_keys: vec![SshKey {
                id: "k1".into(),
                name: "ops".into(),
                fingerprint: None,
            }],
            ..Inventory::default()
        }
    }

    #[test]
    fn sections_keep_their_order_and_the_filter_reaches_rules() {
        let mut list = ConfigList::default();
        list.load(&inventory(), "");
        let kinds: Vec<ConfigKind> = list.visible.iter().map(|r| r.kind).collect();
        use ConfigKind::*;
        assert_eq!(kinds, vec![Network, Network, Firewall, SshKey]);
        list.refilter("tcp 22");
        assert_eq!(list.visible.len(), 1);
        assert_eq!(list.current().map(|r| r.kind), Some(Firewall));
    }

    #[test]
    fn section_jumps_skip_empty_lists() {
        let mut list = ConfigList::default();
        list.load(&inventory(), "");
        list.jump_section(true);
        assert_eq!(list.cursor, 2, "first firewall");
        list.jump_section(true);
        assert_eq!(list.cursor, 3, "no images: straight to the SSH keys");
        list.jump_section(true);
        assert_eq!(list.cursor, 3, "nothing after the last list");
        list.jump_section(false);
        assert_eq!(list.cursor, 2);
        list.move_by(-1);
        list.jump_section(false);
        assert_eq!(list.cursor, 0, "inside a list: back to its start");
    }
}
