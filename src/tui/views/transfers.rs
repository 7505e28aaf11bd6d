//! Transfers: an aggregate line, then one pane per disk (stage, gauge,
//! bytes, current/average rate, ETA, retries, 60-second sparkline); panes
//! scroll to keep the selected disk in view. Results: validation, cleanup,
//! revocation and where the report is.

use super::{fit, panel, rate};
use crate::engine::event::Stage;
use crate::tui::app::App;
use crate::tui::app::transfers::{DiskPane, RunState};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, LineGauge, Paragraph, Sparkline, Wrap};
use std::time::Duration;

/// Rows one disk pane takes: title border + gauge + bytes + rates/sparkline.
const PANE_HEIGHT: u16 = 4;

pub fn draw_transfers(frame: &mut Frame, app: &App, area: Rect) {
    let Some(run) = &app.run else {
        frame.render_widget(Paragraph::new("no run yet"), area);
        return;
    };
    let [aggregate, panes] =
        Layout::vertical([Constraint::Length(1), Constraint::Min(1)]).areas(area);
    let fit_count = usize::from((panes.height / PANE_HEIGHT).max(1));
    let first = (run.selected + 1).saturating_sub(fit_count);
    let mut line = aggregate_line(app, run);
    if run.disks.len() > fit_count {
        let note = format!(
            "[{}–{} of {}] ",
            first + 1,
            (first + fit_count).min(run.disks.len()),
            run.disks.len()
        );
        line.spans
            .insert(1, Span::styled(note, app.theme.ui.bar_key));
    }
    frame.render_widget(Paragraph::new(line), aggregate);
    if run.disks.is_empty() {
        let text = match &run.engine_error {
            Some(err) => err.clone(),
            None => "starting: taking snapshots…".into(),
        };
        frame.render_widget(Paragraph::new(text).wrap(Wrap { trim: true }), panes);
        return;
    }
    for (slot, (index, disk)) in run
        .disks
        .iter()
        .enumerate()
        .skip(first)
        .take(fit_count)
        .enumerate()
    {
        let rect = Rect {
            y: panes.y + slot as u16 * PANE_HEIGHT,
            height: PANE_HEIGHT.min(panes.height),
            ..panes
        };
        if rect.y + rect.height > panes.y + panes.height {
            break;
        }
        draw_disk(frame, app, disk, index == run.selected, rect);
    }
}

fn aggregate_line(app: &App, run: &RunState) -> Line<'static> {
    let theme = &app.theme;
    let (scanned, total, current, average) = run.aggregate();
    let (done, failed, count) = run.counts();
    let left = total.0.saturating_sub(scanned.0);
    let eta = if average > 0 && run.active() {
        humantime::format_duration(Duration::from_secs(left.div_ceil(average))).to_string()
    } else {
        "-".into()
    };
    let state = if let Some(outcome) = &run.finished {
        Span::styled(
            if outcome.ok {
                " finished "
            } else {
                " finished with errors "
            },
            if outcome.ok {
                theme.throughput.done
            } else {
                theme.throughput.failed
            },
        )
    } else if run.engine_done {
        Span::styled(" stopped ", theme.throughput.failed)
    } else if app.stopping {
        Span::styled(" stopping ", theme.throughput.paused)
    } else {
        Span::styled(" running ", theme.throughput.stage)
    };
    Line::from(vec![
        state,
        Span::styled(
            format!(
                "{done}/{count} done{} · {scanned} of {total} · now {} · avg {} · ETA {eta}",
                if failed > 0 {
                    format!(", {failed} failed")
                } else {
                    String::new()
                },
                rate(current),
                rate(average)
            ),
            theme.plan.total,
        ),
    ])
}

fn stage_style(app: &App, stage: Stage) -> Style {
    let t = &app.theme.throughput;
    match stage {
        Stage::Done => t.done,
        Stage::Failed | Stage::Cancelled => t.failed,
        Stage::Paused => t.paused,
        _ => t.stage,
    }
}

fn draw_disk(frame: &mut Frame, app: &App, disk: &DiskPane, selected: bool, area: Rect) {
    let theme = &app.theme;
    let title_style = if selected {
        theme.ui.border_focused.patch(theme.table.selected)
    } else {
        theme.ui.border
    };
    let title = Line::from(vec![
        Span::styled(
            format!("{} {} ", if selected { "▶" } else { " " }, disk.key),
            title_style,
        ),
        Span::styled(format!("[{}]", disk.stage), stage_style(app, disk.stage)),
        Span::styled(
            if disk.progress.retries > 0 {
                format!(" retries {}", disk.progress.retries)
            } else {
                String::new()
            },
            theme.throughput.paused,
        ),
    ]);
    let block = Block::new()
        .borders(Borders::TOP)
        .border_style(if selected {
            theme.ui.border_focused
        } else {
            theme.ui.border
        })
        .title(title);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let [gauge, bytes, rates] = Layout::vertical([Constraint::Length(1); 3]).areas(inner);
    let p = &disk.progress;
    let label = format!("{:>3.0}%", disk.ratio() * 100.0);
    frame.render_widget(
        LineGauge::default()
            .ratio(disk.ratio())
            .label(label)
            .filled_symbol("█")
            .unfilled_symbol("░")
            .filled_style(theme.throughput.gauge)
            .unfilled_style(theme.ui.border),
        gauge,
    );
    let bytes_text = match &disk.error {
        Some(error) => Line::styled(
            fit(&format!("failed: {error}"), usize::from(inner.width)),
            theme.throughput.failed,
        ),
        None => Line::styled(
            fit(
                &format!(
                    "{} / {} alloc / {} virt · sent {} · zero {}",
                    p.bytes_scanned,
                    if p.bytes_total.0 > 0 {
                        p.bytes_total
                    } else {
                        disk.allocated
                    },
                    disk.virtual_size,
                    p.bytes_sent,
                    p.bytes_skipped
                ),
                usize::from(inner.width),
            ),
            theme.plan.item,
        ),
    };
    frame.render_widget(Paragraph::new(bytes_text), bytes);
    let eta = disk
        .eta()
        .map(|d| humantime::format_duration(d).to_string())
        .unwrap_or_else(|| "-".into());
    let stats = format!(
        "now {:>10} avg {:>10} ETA {eta:<8}",
        rate(disk.current_rate()),
        rate(disk.average_rate())
    );
    let stats_width = (stats.chars().count() as u16 + 1).min(rates.width);
    let [left, right] =
        Layout::horizontal([Constraint::Length(stats_width), Constraint::Min(0)]).areas(rates);
    frame.render_widget(Paragraph::new(stats).style(theme.plan.item), left);
    let samples = disk.history.padded();
    let shown = usize::from(right.width).min(samples.len());
    let data = &samples[samples.len() - shown..];
    // Right-aligned: the newest second is always at the pane's right edge.
    let spark = Rect {
        x: right.x + right.width - shown as u16,
        width: shown as u16,
        ..right
    };
    frame.render_widget(
        Sparkline::default()
            .data(data)
            .style(theme.throughput.sparkline),
        spark,
    );
}

pub fn draw_report(frame: &mut Frame, app: &App, area: Rect) {
    let theme = &app.theme;
    let Some(run) = &app.run else {
        frame.render_widget(Paragraph::new("no run yet"), area);
        return;
    };
    let ok = |passed: bool| {
        if passed {
            Span::styled(" ok  ", theme.approval.ok)
        } else {
            Span::styled(" FAIL", theme.approval.refused)
        }
    };
    let mut lines: Vec<Line> = Vec::new();
    // The outcome and the report's path first: always visible at 80x24.
    match &run.finished {
        Some(outcome) => {
            lines.push(Line::styled(
                format!("Run {}: {}", if outcome.ok { "succeeded" } else { "failed" }, outcome.summary),
                if outcome.ok { theme.throughput.done } else { theme.throughput.failed },
            ));
            lines.push(Line::raw(format!("Report: {}", outcome.report.display())));
        }
        None if run.engine_done => lines.push(Line::styled(
            format!(
                "The engine stopped before finishing; `altishift apply` resumes from the journal in {}",
                run.run_dir.display()
            ),
            theme.ui.error,
        )),
        None => lines.push(Line::raw("Run in progress…")),
    }
    let (done, failed, count) = run.counts();
    lines.push(Line::styled(
        format!("Transfers: {done}/{count} disks done, {failed} failed or cancelled"),
        theme.plan.total,
    ));
    for (instance, id) in &run.deployed {
        lines.push(Line::raw(format!("  deployed {instance} as {id}")));
    }
    lines.push(Line::styled("Validation", theme.ui.title));
    if run.checks.is_empty() {
        lines.push(Line::raw(if run.active() {
            "  waiting for deployment…"
        } else {
            "  no checks ran"
        }));
    }
    for (instance, checks) in &run.checks {
        for check in checks {
            lines.push(Line::from(vec![
                ok(check.passed),
                Span::raw(format!(" {instance}: {} — {}", check.name, check.detail)),
            ]));
        }
    }
    lines.push(Line::styled("Cleanup", theme.ui.title));
    for (resource, passed, detail) in &run.cleanup {
        lines.push(Line::from(vec![
            ok(*passed),
            Span::raw(format!(" {resource}: {detail}")),
        ]));
    }
    lines.push(Line::styled("Revocation", theme.ui.title));
    for (cloud, items) in &run.revoked {
        let what = if items.is_empty() {
            "nothing temporary to revoke; secrets wiped".to_string()
        } else {
            items.join(", ")
        };
        lines.push(Line::from(vec![
            ok(true),
            Span::raw(format!(" {cloud}: {what}")),
        ]));
    }
    let block = panel(app, " results ", true);
    let scroll = u16::try_from(run.results_scroll).unwrap_or(u16::MAX);
    frame.render_widget(
        Paragraph::new(lines)
            .block(block)
            .wrap(Wrap { trim: false })
            .scroll((scroll, 0)),
        area,
    );
}
