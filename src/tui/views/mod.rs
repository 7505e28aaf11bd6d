//! Drawing. Every function here takes `&App` and a frame: drawing cannot
//! change state. The frame is header, screen body, optional log, optional
//! input line and the key bar; overlays go on top.

mod configuration;
mod inventory;
mod overlays;
mod plan;
mod plan_config;
mod transfers;

use crate::engine::event::Level;
pub(super) use crate::text::{safe, safe_lines};
use crate::tui::app::{App, LineKind, Overlay, Screen};
use crate::tui::component::KeyHint;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Borders, Paragraph, Wrap};

/// Smallest terminal the console lays out in; below it, a notice.
pub const MIN_WIDTH: u16 = 60;
pub const MIN_HEIGHT: u16 = 16;

pub fn draw(frame: &mut Frame, app: &App) {
    let area = frame.area();
    let theme = &app.theme;
    frame.render_widget(Block::new().style(theme.ui.base), area);
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        too_small(frame, app, area);
        return;
    }
    let log_height = if app.show_log {
        (area.height / 4).max(5)
    } else {
        0
    };
    let line_height = u16::from(app.line.is_some());
    let [header, body, log, line, bar] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(5),
        Constraint::Length(log_height),
        Constraint::Length(line_height),
        Constraint::Length(1),
    ])
    .areas(area);
    draw_header(frame, app, header);
    match app.screen {
        Screen::Inventory => inventory::draw(frame, app, body),
        Screen::Plan => plan::draw_plan(frame, app, body),
        Screen::Approve => plan::draw_approve(frame, app, body),
        Screen::Transfers => transfers::draw_transfers(frame, app, body),
        Screen::Report => transfers::draw_report(frame, app, body),
    }
    if app.show_log {
        overlays::draw_log(frame, app, log);
    }
    if let Some((kind, input)) = &app.line {
        let prefix = match kind {
            LineKind::Filter(_) => "/",
            LineKind::Command => ":",
        };
        input_line(frame, app, line, prefix, input);
    }
    key_bar(frame, app, &app.hints(), bar);
    match &app.overlay {
        Some(Overlay::Help) => overlays::draw_help(frame, app, body),
        Some(Overlay::Details(side)) => overlays::draw_details(frame, app, *side, body),
        Some(Overlay::Confirm(what)) => overlays::draw_confirm(frame, app, what, body),
        Some(Overlay::Notice(notice)) => overlays::draw_notice(frame, app, notice, body),
        None => {}
    }
    if let Some(prompt) = app.prompts.front() {
        overlays::draw_secret(frame, app, prompt, body);
    }
}

fn too_small(frame: &mut Frame, app: &App, area: Rect) {
    let text = vec![
        Line::styled("terminal too small", app.theme.ui.error),
        Line::raw(format!(
            "{}x{} here, {}x{} needed",
            area.width, area.height, MIN_WIDTH, MIN_HEIGHT
        )),
        Line::raw("enlarge the window; q quits"),
    ];
    let height = (text.len() as u16).min(area.height);
    let top = area.y + area.height.saturating_sub(height) / 2;
    let rect = Rect {
        x: area.x,
        y: top,
        width: area.width,
        height,
    };
    frame.render_widget(
        Paragraph::new(text)
            .alignment(ratatui::layout::Alignment::Center)
            .wrap(Wrap { trim: true }),
        rect,
    );
}

fn draw_header(frame: &mut Frame, app: &App, area: Rect) {
    let theme = &app.theme;
    let mut spans = vec![
        Span::styled(" altishift ", theme.ui.title),
        Span::styled(format!(" {} ", app.screen.title()), theme.ui.bar_key),
        Span::styled(
            format!(
                " {} → {} ",
                safe(&app.panes[0].cloud),
                safe(&app.panes[1].cloud)
            ),
            theme.ui.status,
        ),
    ];
    if let Some((level, text)) = &app.status {
        let style = match level {
            Level::Error | Level::Warn => theme.ui.error,
            Level::Info => theme.ui.info,
        };
        spans.push(Span::styled(format!(" {}", safe_lines(text)), style));
    }
    frame.render_widget(
        Paragraph::new(Line::from(spans)).style(theme.ui.status),
        area,
    );
}

/// The always-visible bar: the keys that work here, in order while they
/// fit. When some do not, `?` (which lists them all) keeps its place.
fn key_bar(frame: &mut Frame, app: &App, hints: &[KeyHint], area: Rect) {
    let theme = &app.theme;
    let len = |h: &KeyHint| h.key.chars().count() + h.action.chars().count() + 3;
    let room = usize::from(area.width);
    let all_fit = hints.iter().map(len).sum::<usize>() <= room;
    let help = hints.iter().find(|h| h.key == "?").filter(|_| !all_fit);
    let mut width = help.map_or(0, len);
    let mut shown: Vec<&KeyHint> = Vec::new();
    for h in hints.iter().filter(|h| h.key != "?" || help.is_none()) {
        if width + len(h) > room {
            break;
        }
        width += len(h);
        shown.push(h);
    }
    shown.extend(help);
    let mut spans = Vec::new();
    for h in shown {
        spans.push(Span::styled(format!(" {}", h.key), theme.ui.bar_key));
        spans.push(Span::styled(format!(" {} ", h.action), theme.ui.bar));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)).style(theme.ui.bar), area);
}

/// A one-line input: prefix, text, cursor, and the last refusal if any.
pub(super) fn input_line(
    frame: &mut Frame,
    app: &App,
    area: Rect,
    prefix: &str,
    input: &crate::tui::app::input::LineInput,
) {
    let theme = &app.theme;
    let text = input.display();
    let mut spans = vec![
        Span::styled(prefix.to_string(), theme.ui.bar_key),
        Span::styled(text, theme.ui.input),
    ];
    if let Some(error) = &input.error {
        spans.push(Span::styled(format!("  {error}"), theme.ui.error));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
    let x = area.x + (prefix.chars().count() + input.cursor()) as u16;
    if x < area.x + area.width {
        frame.set_cursor_position((x, area.y));
    }
}

/// A bordered block; the focused one stands out.
pub(super) fn panel<'a>(app: &App, title: impl Into<Line<'a>>, focused: bool) -> Block<'a> {
    let theme = &app.theme;
    Block::new()
        .borders(Borders::ALL)
        .border_type(if focused {
            BorderType::Thick
        } else {
            BorderType::Plain
        })
        .border_style(if focused {
            theme.ui.border_focused
        } else {
            theme.ui.border
        })
        .title(title.into().style(theme.ui.title))
}

/// A rectangle centred in `area`, clipped to it.
pub(super) fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let width = width.min(area.width);
    let height = height.min(area.height);
    Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    }
}

/// `12.3 MB/s` from bytes per second (decimal, as operators read link speeds).
pub(super) fn rate(bytes_per_second: u64) -> String {
    format!("{:.1} MB/s", bytes_per_second as f64 / 1e6)
}

/// Cuts text to `width` characters, marking the cut. Provider and file
/// text is shown by the one safe-text rule first (control characters and
/// bidi controls escaped, as the CLI and the reports show them).
pub(super) fn fit(text: &str, width: usize) -> String {
    let text = safe(text);
    if text.chars().count() <= width {
        text.to_string()
    } else if width == 0 {
        String::new()
    } else {
        let mut cut: String = text.chars().take(width - 1).collect();
        cut.push('…');
        cut
    }
}

pub(super) fn style_or(style: Style, fallback: Style) -> Style {
    if style == Style::default() {
        fallback
    } else {
        style
    }
}
