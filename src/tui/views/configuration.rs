//! A pane's configuration view: networks, firewalls, images and SSH keys in
//! titled sections, one line per entry (name, then what matters about it),
//! and the details overlay for the entry under the cursor.

use super::{centered, fit, panel};
use crate::inventory::Inventory;
use crate::tui::app::App;
use crate::tui::app::configuration::{ConfigKind, ConfigRow};
use crate::tui::app::inventory::SidePane;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph, Wrap};

/// One drawn line of the list: a section title, an entry, or a note.
enum Item {
    Title(ConfigKind, usize, usize),
    Entry(usize, ConfigRow),
    Note(&'static str),
}

pub fn draw_list(frame: &mut Frame, app: &App, pane: &SidePane, area: Rect) {
    let theme = &app.theme;
    let Some(inventory) = pane.inventory() else {
        return;
    };
    let focused = app.focus == pane.side;
    let filtered = !pane.filter.is_empty();
    let mut items = Vec::new();
    for kind in ConfigKind::ALL {
        let rows: Vec<(usize, ConfigRow)> = pane
            .config
            .visible
            .iter()
            .enumerate()
            .filter(|(_, r)| r.kind == kind)
            .map(|(position, r)| (position, *r))
            .collect();
        items.push(Item::Title(kind, rows.len(), kind.count(inventory)));
        if rows.is_empty() {
            items.push(Item::Note(if filtered && kind.count(inventory) > 0 {
                "  none match the filter"
            } else {
                "  none reported"
            }));
        }
        items.extend(rows.into_iter().map(|(p, r)| Item::Entry(p, r)));
    }
    let height = usize::from(area.height);
    let cursor_line = items
        .iter()
        .position(|i| matches!(i, Item::Entry(p, _) if *p == pane.config.cursor))
        .unwrap_or(0);
    // Scroll only as far as the cursor needs.
    let offset = (cursor_line + 1).saturating_sub(height);
    let width = usize::from(area.width);
    let name_width = pane
        .config
        .visible
        .iter()
        .map(|r| name(inventory, *r).chars().count())
        .max()
        .unwrap_or(0)
        .clamp(8, (width * 2 / 5).max(8));
    let lines: Vec<Line> = items
        .iter()
        .skip(offset)
        .take(height)
        .map(|item| match item {
            Item::Title(kind, shown, all) => {
                let count = if filtered {
                    format!("{shown} of {all}")
                } else {
                    all.to_string()
                };
                Line::styled(format!("{} ({count})", kind.title()), theme.table.header)
            }
            Item::Note(text) => Line::styled(*text, theme.table.stopped),
            Item::Entry(position, row) => {
                let here = *position == pane.config.cursor;
                let text = format!(
                    "{:<name_width$} {}",
                    fit(&name(inventory, *row), name_width),
                    summary(inventory, *row)
                );
                let mut style = theme.table.row;
                if here && focused {
                    style = style.patch(theme.table.selected);
                }
                Line::from(vec![
                    Span::styled(if here { "› " } else { "  " }, style),
                    Span::styled(fit(&text, width.saturating_sub(2)), style),
                ])
            }
        })
        .collect();
    frame.render_widget(Paragraph::new(lines), area);
}

fn name(inventory: &Inventory, row: ConfigRow) -> String {
    let name = match row.kind {
        ConfigKind::Network => inventory.networks.get(row.index).map(|n| &n.name),
        ConfigKind::Firewall => inventory.firewalls.get(row.index).map(|f| &f.name),
        ConfigKind::Image => inventory.images.get(row.index).map(|i| &i.name),
        ConfigKind::SshKey => inventory.ssh_keys.get(row.index).map(|k| &k.name),
    };
    name.cloned().unwrap_or_default()
}

/// What matters about an entry, after its name, on one line.
fn summary(inventory: &Inventory, row: ConfigRow) -> String {
    let parts: Vec<String> = match row.kind {
        ConfigKind::Network => inventory
            .networks
            .get(row.index)
            .map(|n| {
                // `subnet 10.0.1.0/24 eu-1 in vpc-1`: short words, no dots.
                let mut words = vec![n.kind.clone()];
                words.extend(n.cidr.clone());
                words.extend(n.region.clone());
                words.extend(n.parent.as_ref().map(|p| format!("in {p}")));
                vec![words.join(" ")]
            })
            .unwrap_or_default(),
        ConfigKind::Firewall => inventory
            .firewalls
            .get(row.index)
            .map(|f| {
                let rules = match f.rules.len() {
                    1 => "1 rule".to_string(),
                    n => format!("{n} rules"),
                };
                let mut parts = vec![rules];
                parts.extend(f.network.clone());
                parts
            })
            .unwrap_or_default(),
        ConfigKind::Image => inventory
            .images
            .get(row.index)
            .map(|i| {
                let mut parts = Vec::new();
                parts.extend(i.os.clone());
                parts.push(if i.private { "private" } else { "public" }.into());
                parts.extend(i.size.map(|s| super::inventory::compact(s.0)));
                parts
            })
            .unwrap_or_default(),
        ConfigKind::SshKey => inventory
            .ssh_keys
            .get(row.index)
            .map(|k| vec![k.fingerprint.clone().unwrap_or_else(|| "-".into())])
            .unwrap_or_default(),
    };
    parts.join(" · ")
}

/// Every field of the entry under the cursor; a firewall lists its rules.
pub fn draw_details(frame: &mut Frame, app: &App, pane: &SidePane, area: Rect) {
    let theme = &app.theme;
    let (Some(inventory), Some(row)) = (pane.inventory(), pane.config.current()) else {
        return;
    };
    let field = |label: &str, value: Option<&str>| {
        Line::raw(format!("{label:<12} {}", value.unwrap_or("-")))
    };
    let mut lines = Vec::new();
    let kind = match row.kind {
        ConfigKind::Network => "network",
        ConfigKind::Firewall => "firewall",
        ConfigKind::Image => "image",
        ConfigKind::SshKey => "SSH key",
    };
    match row.kind {
        ConfigKind::Network => {
            if let Some(n) = inventory.networks.get(row.index) {
                lines.push(field("id", Some(&n.id)));
                lines.push(field("kind", Some(&n.kind)));
                lines.push(field("cidr", n.cidr.as_deref()));
                lines.push(field("region", n.region.as_deref()));
                lines.push(field("part of", n.parent.as_deref()));
            }
        }
        ConfigKind::Firewall => {
            if let Some(f) = inventory.firewalls.get(row.index) {
                lines.push(field("id", Some(&f.id)));
                lines.push(field("network", f.network.as_deref()));
                lines.push(Line::styled("rules", theme.table.header));
                if f.rules.is_empty() {
                    lines.push(Line::raw("  none"));
                }
                lines.extend(f.rules.iter().map(|r| Line::raw(format!("  {r}"))));
            }
        }
        ConfigKind::Image => {
            if let Some(i) = inventory.images.get(row.index) {
                let size = i.size.map(|s| s.to_string());
                lines.push(field("id", Some(&i.id)));
                lines.push(field("os", i.os.as_deref()));
                lines.push(field("region", i.region.as_deref()));
                lines.push(field("size", size.as_deref()));
                lines.push(field(
                    "owner",
                    Some(if i.private {
                        "this account (private)"
                    } else {
                        "public catalogue"
                    }),
                ));
            }
        }
        ConfigKind::SshKey => {
            if let Some(k) = inventory.ssh_keys.get(row.index) {
                lines.push(field("id", Some(&k.id)));
                lines.push(field("fingerprint", k.fingerprint.as_deref()));
            }
        }
    }
    let rect = centered(area, 76, lines.len() as u16 + 2);
    frame.render_widget(Clear, rect);
    let title = format!(" {kind} {} ", name(inventory, row));
    let block = panel(app, title, true).style(theme.ui.popup);
    frame.render_widget(
        Paragraph::new(lines)
            .block(block)
            .wrap(Wrap { trim: false }),
        rect,
    );
}
