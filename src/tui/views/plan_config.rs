//! The plan screen's configuration view (`c`): the selected item's network,
//! firewall rules, tags, keys and user-data, source beside target, with
//! what cannot be carried exactly marked ✗.

use super::{fit, panel, safe};
use crate::plan::Plan;
use crate::plan::config_text::pairs;
use crate::tui::app::App;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

pub fn draw(frame: &mut Frame, app: &App, plan: &Plan, selected: usize, scroll: usize, area: Rect) {
    let theme = &app.theme;
    let Some(item) = plan.items.get(selected) else {
        return;
    };
    let rows = pairs(&item.configuration);
    let lossy = item.configuration.lossy.len();
    let title = format!(
        " configuration of {} → {} on {}{} ",
        safe(&item.instance_name),
        safe(&item.target_name),
        safe(&plan.target.cloud),
        if lossy > 0 {
            format!(" · {lossy} lossy")
        } else {
            String::new()
        }
    );
    let block = panel(app, title, false);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let width = usize::from(inner.width);
    // Source on the left third, target on the rest.
    let left = (width / 3).clamp(12, 48);
    let right = width.saturating_sub(left + 3);
    let mut lines = vec![Line::from(vec![
        Span::styled(format!("{:<left$}", "SOURCE"), theme.table.header),
        Span::styled(" → ", theme.table.header),
        Span::styled("TARGET", theme.table.header),
    ])];
    if rows.is_empty() {
        lines.push(Line::styled(
            " the source tells no configuration for this instance",
            theme.plan.item,
        ));
    }
    lines.extend(
        rows.iter()
            .skip(scroll.min(rows.len().saturating_sub(1)))
            .take(usize::from(inner.height).saturating_sub(1))
            .map(|row| {
                let style = if row.lossy {
                    theme.plan.warning
                } else {
                    theme.plan.item
                };
                // A reason has no source side: it takes the whole width.
                if row.source.is_empty() {
                    return Line::styled(fit(&row.target, width), style);
                }
                Line::from(vec![
                    Span::styled(
                        format!("{:<left$}", fit(&row.source, left)),
                        theme.plan.item,
                    ),
                    Span::styled(" → ", theme.plan.action),
                    Span::styled(fit(&row.target, right), style),
                ])
            }),
    );
    frame.render_widget(Paragraph::new(lines), inner);
}
