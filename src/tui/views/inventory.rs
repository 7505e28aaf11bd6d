//! Inventory: source pane left, target pane right. Columns are added by
//! priority while they fit, so 80 columns shows name/state/size and a wide
//! terminal shows everything. Only the visible rows are built, so 10,000
//! instances cost no more per frame than 20. Who each side acts as, and
//! until when, sits on the pane's bottom border.

use super::{fit, panel};
use crate::inventory::{Instance, InstanceState};
use crate::tui::app::App;
use crate::tui::app::access::{AccessStatus, Urgency};
use crate::tui::app::configuration::PaneView;
use crate::tui::app::inventory::{Load, SideId, SidePane};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Row, Table, Wrap};

pub fn draw(frame: &mut Frame, app: &App, area: Rect) {
    let [left, right] =
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(area);
    draw_pane(frame, app, app.pane(SideId::Source), left);
    draw_pane(frame, app, app.pane(SideId::Target), right);
}

struct Column {
    title: &'static str,
    width: u16,
    cell: fn(&Instance) -> String,
}

const COLUMNS: [Column; 7] = [
    Column {
        title: "NAME",
        width: 10,
        cell: |i| i.name.clone(),
    },
    Column {
        title: "STATE",
        width: 7,
        cell: |i| i.state.to_string(),
    },
    Column {
        title: "SIZE",
        width: 10,
        cell: |i| i.size.clone(),
    },
    Column {
        title: "CPU/MEM",
        width: 8,
        cell: |i| format!("{}/{}", i.vcpus, compact(i.memory.0)),
    },
    Column {
        title: "DISKS",
        width: 9,
        cell: |i| format!("{}·{}", i.disks.len(), compact(i.allocated().0)),
    },
    Column {
        title: "REGION",
        width: 14,
        cell: |i| i.region.clone(),
    },
    Column {
        title: "ADDRESS",
        width: 13,
        cell: |i| i.first_address().unwrap_or("-").to_string(),
    },
];

/// Columns that fit `width`, in priority order; the name takes what is left.
fn columns_for(width: u16) -> Vec<(usize, u16)> {
    let mut chosen = vec![(0usize, COLUMNS[0].width)];
    let mut used = COLUMNS[0].width;
    for (index, column) in COLUMNS.iter().enumerate().skip(1) {
        if used + 1 + column.width <= width {
            used += 1 + column.width;
            chosen.push((index, column.width));
        }
    }
    chosen[0].1 += width.saturating_sub(used);
    chosen
}

/// `4G`, `114M`, `1.5G`: short sizes for narrow columns.
pub(super) fn compact(bytes: u64) -> String {
    const GIB: f64 = (1u64 << 30) as f64;
    const MIB: f64 = (1u64 << 20) as f64;
    let b = bytes as f64;
    if b >= GIB {
        let g = b / GIB;
        if (g - g.round()).abs() < 0.05 {
            format!("{:.0}G", g)
        } else {
            format!("{g:.1}G")
        }
    } else if b >= MIB {
        format!("{:.0}M", b / MIB)
    } else {
        format!("{}K", bytes / 1024)
    }
}

/// `identity · expires … (in 53 min)` when it fits, else the identity cut
/// short so the expiry always shows; a warning under an hour, an error once
/// expired (with a sign, for terminals without colour).
fn access_line(app: &App, access: &AccessStatus, width: usize) -> Line<'static> {
    let theme = &app.theme;
    let (sign, style): (&str, Style) = match access.urgency {
        Urgency::Fine => ("", theme.plan.item),
        Urgency::Soon => ("⚠ ", theme.plan.warning),
        Urgency::Expired => ("✖ ", theme.ui.error),
    };
    let width = width.saturating_sub(sign.chars().count());
    let full = access.line();
    let cut = |detail: &str, least: usize| {
        let room = width.saturating_sub(detail.chars().count() + 3);
        (room >= least).then(|| format!("{} · {detail}", fit(&access.identity, room)))
    };
    let text = if full.chars().count() <= width {
        full
    } else {
        cut(&access.detail, 8)
            .or_else(|| cut(&access.short, 8))
            .unwrap_or_else(|| fit(&access.short, width))
    };
    Line::from(Span::styled(format!(" {sign}{text} "), style))
}

fn draw_pane(frame: &mut Frame, app: &App, pane: &SidePane, area: Rect) {
    let theme = &app.theme;
    let focused = app.focus == pane.side;
    let configuration = pane.view == PaneView::Configuration;
    let mut title = vec![
        Span::raw(format!(" {} ", pane.side.label())),
        Span::raw(format!("{} ", super::safe(&pane.cloud))),
    ];
    if configuration {
        title.push(Span::raw("config "));
    }
    if let Some(loaded) = &pane.loaded {
        let count = if configuration {
            pane.config.total()
        } else {
            loaded.inventory.instances.len()
        };
        title.push(Span::raw(format!("({count}) ")));
    }
    if !pane.filter.is_empty() {
        title.push(Span::styled(
            format!("/{} [{}] ", pane.filter, pane.shown()),
            theme.ui.input,
        ));
    }
    if !pane.marked.is_empty() {
        title.push(Span::styled(
            format!("{} marked ", pane.marked.len()),
            theme.table.marked,
        ));
    }
    let mut block = panel(app, Line::from(title), focused);
    if pane.load == Load::Ready
        && let Some(access) = app.access(pane.side)
    {
        let width = usize::from(area.width.saturating_sub(4));
        block = block.title_bottom(access_line(app, &access, width));
    }
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if configuration && pane.load == Load::Ready {
        super::configuration::draw_list(frame, app, pane, inner);
        return;
    }
    let message = match &pane.load {
        Load::Idle => Some("no cloud".to_string()),
        Load::Connecting => Some(format!("connecting to {}…", super::safe(&pane.cloud))),
        Load::Failed(err) => Some(super::safe_lines(err).into_owned()),
        Load::Ready if pane.visible.is_empty() && !pane.filter.is_empty() => {
            Some("nothing matches the filter (Esc clears)".into())
        }
        Load::Ready if pane.visible.is_empty() => Some("no instances".into()),
        Load::Ready => None,
    };
    if let Some(message) = message {
        let style = if matches!(pane.load, Load::Failed(_)) {
            theme.ui.error
        } else {
            theme.table.row
        };
        frame.render_widget(
            Paragraph::new(message)
                .style(style)
                .wrap(Wrap { trim: true }),
            inner,
        );
        return;
    }
    let mark_width = if pane.side == SideId::Source { 2 } else { 0 };
    let columns = columns_for(inner.width.saturating_sub(mark_width));
    let rows_shown = usize::from(inner.height.saturating_sub(1));
    // Keep the cursor on screen: scroll only as far as needed.
    let offset = (pane.cursor + 1).saturating_sub(rows_shown);
    let instances = pane.instances();
    let rows: Vec<Row> = pane
        .visible
        .iter()
        .enumerate()
        .skip(offset)
        .take(rows_shown)
        .filter_map(|(position, &index)| instances.get(index).map(|i| (position, i)))
        .map(|(position, instance)| {
            let marked = pane.marked.contains(&instance.name);
            let mut cells: Vec<String> = columns
                .iter()
                .map(|&(c, width)| fit(&(COLUMNS[c].cell)(instance), usize::from(width)))
                .collect();
            if mark_width > 0 {
                cells.insert(0, if marked { "●".into() } else { " ".into() });
            }
            let mut style = match instance.state {
                InstanceState::Running => super::style_or(theme.table.running, theme.table.row),
                InstanceState::Stopped | InstanceState::Terminated => {
                    super::style_or(theme.table.stopped, theme.table.row)
                }
                _ => theme.table.row,
            };
            if marked {
                style = style.patch(theme.table.marked);
            }
            if focused && position == pane.cursor {
                style = style.patch(theme.table.selected);
            }
            Row::new(cells).style(style)
        })
        .collect();
    let mut widths: Vec<Constraint> = columns
        .iter()
        .map(|&(_, w)| Constraint::Length(w))
        .collect();
    let mut header: Vec<&str> = columns.iter().map(|&(c, _)| COLUMNS[c].title).collect();
    if mark_width > 0 {
        widths.insert(0, Constraint::Length(1));
        header.insert(0, " ");
    }
    let table = Table::new(rows, widths)
        .header(Row::new(header).style(theme.table.header))
        .column_spacing(1);
    frame.render_widget(table, inner);
    // The cursor row of the unfocused pane stays findable without colour.
    if !focused && let Some(_) = pane.current() {
        let y = inner.y + 1 + (pane.cursor - offset) as u16;
        if y < inner.y + inner.height {
            frame.render_widget(
                Paragraph::new("›"),
                Rect {
                    x: inner.x + inner.width.saturating_sub(1),
                    y,
                    width: 1,
                    height: 1,
                },
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_grow_with_width_and_name_takes_the_rest() {
        let narrow = columns_for(36);
        assert_eq!(
            narrow.iter().map(|c| c.0).collect::<Vec<_>>(),
            vec![0, 1, 2]
        );
        assert_eq!(columns_for(38).len(), 4);
        assert_eq!(
            narrow.iter().map(|c| c.1).sum::<u16>() + narrow.len() as u16 - 1,
            36
        );
        assert_eq!(columns_for(120).len(), 7);
    }

    #[test]
    fn compact_sizes() {
        assert_eq!(compact(4 << 30), "4G");
        assert_eq!(compact(3 << 29), "1.5G");
        assert_eq!(compact(114 << 20), "114M");
    }
}
