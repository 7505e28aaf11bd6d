//! Things drawn over a screen: help, instance details, confirmations, the
//! masked secret prompt, and the log pane.

use super::{centered, fit, input_line, panel};
use super::{safe, safe_lines};
use crate::engine::event::Level;
use crate::tui::app::configuration::PaneView;
use crate::tui::app::inventory::SideId;
use crate::tui::app::{App, Confirm, Notice, SecretPrompt};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph, Wrap};

pub fn draw_help(frame: &mut Frame, app: &App, area: Rect) {
    let theme = &app.theme;
    let keys = app.help();
    let key_width = keys
        .iter()
        .map(|k| k.key.chars().count())
        .max()
        .unwrap_or(4);
    let lines: Vec<Line> = keys
        .iter()
        .map(|k| {
            Line::from(vec![
                Span::styled(format!(" {:<key_width$}  ", k.key), theme.ui.bar_key),
                Span::styled(k.action.clone(), theme.ui.popup),
            ])
        })
        .collect();
    let rect = centered(area, 72, lines.len() as u16 + 2);
    frame.render_widget(Clear, rect);
    let block = panel(app, format!(" keys: {} ", app.screen.title()), true).style(theme.ui.popup);
    frame.render_widget(Paragraph::new(lines).block(block), rect);
}

pub fn draw_details(frame: &mut Frame, app: &App, side: SideId, area: Rect) {
    let theme = &app.theme;
    if app.pane(side).view == PaneView::Configuration {
        super::configuration::draw_details(frame, app, app.pane(side), area);
        return;
    }
    let Some(instance) = app.pane(side).current() else {
        return;
    };
    let mut lines = vec![
        Line::raw(format!("id       {}", safe(&instance.id))),
        Line::raw(format!("state    {}", instance.state)),
        Line::raw(format!(
            "size     {} ({} vCPU, {})",
            safe(&instance.size),
            instance.vcpus,
            instance.memory
        )),
        Line::raw(format!("region   {}", safe(&instance.region))),
        Line::styled("disks", theme.table.header),
    ];
    for disk in &instance.disks {
        lines.push(Line::raw(format!(
            "  {:<6} {:<5} {:<6} {} virtual, {} allocated{}",
            safe(&disk.id),
            safe(&disk.device),
            disk.format.to_string(),
            disk.virtual_size,
            disk.allocated
                .map(|a| a.to_string())
                .unwrap_or_else(|| "?".into()),
            if disk.boot { ", boot" } else { "" }
        )));
    }
    lines.push(Line::styled("network", theme.table.header));
    for nic in &instance.nics {
        lines.push(Line::raw(format!(
            "  {} on {}: {}",
            safe(&nic.name),
            safe(&nic.network),
            safe(nic.address.as_deref().unwrap_or("no address"))
        )));
    }
    lines.push(Line::styled("tags", theme.table.header));
    if instance.tags.is_empty() {
        lines.push(Line::raw("  none"));
    }
    for (key, value) in &instance.tags {
        lines.push(Line::raw(format!("  {} = {}", safe(key), safe(value))));
    }
    let rect = centered(area, 76, lines.len() as u16 + 2);
    frame.render_widget(Clear, rect);
    let block = panel(app, format!(" {} ", safe(&instance.name)), true).style(theme.ui.popup);
    frame.render_widget(
        Paragraph::new(lines)
            .block(block)
            .wrap(Wrap { trim: false }),
        rect,
    );
}

pub fn draw_confirm(frame: &mut Frame, app: &App, what: &Confirm, area: Rect) {
    let theme = &app.theme;
    let (title, text) = match what {
        Confirm::Quit => (
            " quit while work runs? ",
            vec![
                "Transfers are still running, in their own engine process.".to_string(),
                "d: leave the run going and close the console (`altishift attach` shows it)."
                    .to_string(),
                "y: stop every disk at a consistent point; the journal keeps what is done,"
                    .to_string(),
                "   and `altishift apply` resumes from it without resending blocks.".to_string(),
                String::new(),
                "Stop it? y / d / n".to_string(),
            ],
        ),
        Confirm::Cancel(disk) => (
            " cancel this disk? ",
            vec![
                format!("Cancel the transfer of {disk}?"),
                "The other disks keep going; this one will not be deployed.".to_string(),
                String::new(),
                "Cancel it? y / n".to_string(),
            ],
        ),
    };
    let lines: Vec<Line> = text
        .into_iter()
        .map(|t| Line::styled(t, theme.ui.popup))
        .collect();
    let rect = centered(area, 78, lines.len() as u16 + 2);
    frame.render_widget(Clear, rect);
    let block = panel(app, title, true).style(theme.ui.popup);
    frame.render_widget(
        Paragraph::new(lines)
            .block(block)
            .wrap(Wrap { trim: false }),
        rect,
    );
}

/// A refusal in full: what, why (wrapped, never cut) and what to do.
pub fn draw_notice(frame: &mut Frame, app: &App, notice: &Notice, area: Rect) {
    let theme = &app.theme;
    let width = 76.min(area.width);
    let inner_width = usize::from(width.saturating_sub(2)).max(1);
    let rows = |text: &str| wrapped_rows(text, inner_width);
    let lines = vec![
        Line::styled(safe_lines(&notice.text).into_owned(), theme.ui.error),
        Line::raw(""),
        Line::styled(safe_lines(&notice.advice).into_owned(), theme.ui.popup),
    ];
    let height = rows(&notice.text) + rows(&notice.advice) + 1 + 2;
    let rect = centered(area, width, height);
    frame.render_widget(Clear, rect);
    let block = panel(app, format!(" {} ", notice.title), true).style(theme.ui.popup);
    frame.render_widget(
        Paragraph::new(lines).block(block).wrap(Wrap { trim: true }),
        rect,
    );
}

/// Rows `text` takes when wrapped at words into `width` columns (as the
/// paragraph wraps it; a word longer than a row is broken).
fn wrapped_rows(text: &str, width: usize) -> u16 {
    let mut rows = 1u16;
    let mut used = 0usize;
    for word in text.split_whitespace() {
        let len = word.chars().count();
        if used > 0 && used + 1 + len <= width {
            used += 1 + len;
            continue;
        }
        if used > 0 {
            rows += 1;
        }
        // A word wider than the row fills whole rows.
        rows += (len.saturating_sub(1) / width.max(1)) as u16;
        used = (len - 1) % width.max(1) + 1;
    }
    rows
}

pub fn draw_secret(frame: &mut Frame, app: &App, prompt: &SecretPrompt, area: Rect) {
    let theme = &app.theme;
    let rect = centered(area, 70, 6);
    frame.render_widget(Clear, rect);
    let block =
        panel(app, format!(" {} needs a secret ", prompt.cloud), true).style(theme.ui.popup);
    let inner = block.inner(rect);
    frame.render_widget(block, rect);
    let explain = Line::styled(
        "Kept in memory only, wiped after the run; never written anywhere.",
        theme.ui.popup,
    );
    frame.render_widget(
        Paragraph::new(explain).wrap(Wrap { trim: true }),
        Rect {
            height: 2.min(inner.height),
            ..inner
        },
    );
    if inner.height > 2 {
        let row = Rect {
            y: inner.y + 2,
            height: 1,
            ..inner
        };
        input_line(
            frame,
            app,
            row,
            &format!("{}: ", prompt.input.label),
            &prompt.input,
        );
    }
}

pub fn draw_log(frame: &mut Frame, app: &App, area: Rect) {
    let theme = &app.theme;
    let block = panel(app, " log ", false);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let width = usize::from(inner.width);
    let shown = usize::from(inner.height);
    let lines: Vec<Line> = app
        .log
        .iter()
        .skip(app.log.len().saturating_sub(shown))
        .map(|line| {
            let (tag, style) = match line.level {
                Level::Info => ("info ", theme.plan.item),
                Level::Warn => ("warn ", theme.throughput.paused),
                Level::Error => ("error", theme.ui.error),
            };
            Line::from(vec![
                Span::styled(tag, style),
                Span::raw(" "),
                Span::raw(fit(&line.text, width.saturating_sub(6))),
            ])
        })
        .collect();
    frame.render_widget(Paragraph::new(lines), inner);
}

#[cfg(test)]
mod tests {
    use super::wrapped_rows;

    #[test]
    fn rows_follow_word_wrapping() {
        assert_eq!(wrapped_rows("", 10), 1);
        assert_eq!(wrapped_rows("one two", 7), 1);
        assert_eq!(wrapped_rows("one two", 6), 2);
        assert_eq!(wrapped_rows("one twothree", 6), 3, "a long word is broken");
        assert_eq!(wrapped_rows("abcdefghijkl", 6), 2);
    }
}
