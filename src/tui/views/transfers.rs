//! Transfers: an aggregate line, then one pane per disk (stage, gauge,
//! bytes, current/average rate, ETA, retries, the cutover passes so far,
//! 60-second sparkline); panes scroll to keep the selected disk in view.
//! Results: passes, validation, cleanup, revocation and where the report is.

use super::{fit, panel, rate};
use crate::engine::event::Stage;
use crate::tui::app::App;
use crate::tui::app::access::{Urgency, left_text};
use crate::tui::app::inventory::SideId;
use crate::tui::app::transfers::{DiskPane, PassRecord, RunState};
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
    let alerts = if run.active() {
        access_alerts(app)
    } else {
        Vec::new()
    };
    let [aggregate, alert, panes] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(alerts.len() as u16),
        Constraint::Min(1),
    ])
    .areas(area);
    frame.render_widget(Paragraph::new(alerts), alert);
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
            Some(err) => super::safe_lines(err).into_owned(),
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

/// Credentials running out while the run goes on: a line per side, above
/// the disks, from under an hour left (the run stops when they end).
fn access_alerts(app: &App) -> Vec<Line<'static>> {
    let theme = &app.theme;
    [SideId::Source, SideId::Target]
        .into_iter()
        .filter_map(|side| {
            let access = app.access(side)?;
            let who = format!("{} {}", side.label(), app.pane(side).cloud);
            match access.urgency {
                Urgency::Fine => None,
                Urgency::Soon => Some(Line::styled(
                    format!(
                        " ⚠ {who}: credentials end in {}; renew them before they stop the run",
                        left_text(access.left(app.now_unix).unwrap_or(0))
                    ),
                    theme.plan.warning,
                )),
                Urgency::Expired => Some(Line::styled(
                    format!(" ✖ {who}: credentials EXPIRED; its requests will be refused"),
                    theme.ui.error,
                )),
            }
        })
        .collect()
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
        Span::styled(
            match run.budget {
                Some(budget) => format!(" · budget {budget}/s"),
                None => String::new(),
            },
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
    let mut title = Line::from(vec![
        Span::styled(
            format!(
                "{} {} ",
                if selected { "▶" } else { " " },
                super::safe(&disk.key)
            ),
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
    if !disk.passes.is_empty() {
        // What is left of the title row, less a space either side.
        let room = usize::from(area.width).saturating_sub(title.width() + 3);
        let text = passes_text(&disk.passes, room, false);
        if !text.is_empty() {
            title.push_span(Span::styled(format!(" {text} "), theme.plan.item));
        }
    }
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
    let mut stats = format!(
        "now {:>10} avg {:>10} ETA {eta:<8}",
        rate(disk.current_rate()),
        rate(disk.average_rate())
    );
    if let Some(projected) = disk.projected_final() {
        // The downtime to expect: what the final pass will send, and how long.
        stats.push_str(&format!(
            " final ≈ {} in ~{} ",
            crate::units::Bytes(projected.bytes),
            short_duration(projected.ms)
        ));
    }
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

/// `pass 1 full 2.0 GiB · pass 2 final 12.0 MiB` (with each pass's time when
/// `timed`). When `width` runs out the middle passes fold into `…`: the first
/// (the bulk) and the latest matter most.
pub(super) fn passes_text(passes: &[PassRecord], width: usize, timed: bool) -> String {
    let parts = pass_parts(passes, timed);
    let all = parts.join(" · ");
    if all.chars().count() <= width {
        return all;
    }
    // First pass, `…`, then as many of the latest as fit.
    if let [first, .., last] = parts.as_slice() {
        let mut tail = vec![last.as_str()];
        let fits = |tail: &[&str]| {
            let mut shown = vec![first.as_str(), "…"];
            shown.extend(tail.iter().rev());
            let text = shown.join(" · ");
            (text.chars().count() <= width).then_some(text)
        };
        let mut best = fits(&tail);
        for part in parts[1..parts.len() - 1].iter().rev() {
            tail.push(part.as_str());
            match fits(&tail) {
                Some(text) => best = Some(text),
                None => break,
            }
        }
        if let Some(text) = best {
            return text;
        }
        let latest = format!("… {last}");
        if latest.chars().count() <= width {
            return latest;
        }
    }
    fit(&all, width)
}

fn pass_parts(passes: &[PassRecord], timed: bool) -> Vec<String> {
    passes
        .iter()
        .map(|p| {
            let mut text = format!("pass {} {} {}", p.pass, p.kind, p.bytes_sent);
            if timed {
                text.push_str(&format!(" in {}", short_duration(p.elapsed_ms)));
            }
            text
        })
        .collect()
}

/// The results' `Passes` section: per disk that made passes, every pass with
/// its time, wrapped under the first so the disk names stand in a column.
fn pass_lines(app: &App, run: &RunState, width: usize) -> Vec<Line<'static>> {
    let disks: Vec<&DiskPane> = run.disks.iter().filter(|d| !d.passes.is_empty()).collect();
    if disks.is_empty() {
        return Vec::new();
    }
    let key_width = disks
        .iter()
        .map(|d| d.key.chars().count())
        .max()
        .unwrap_or(0);
    let indent = key_width + 4;
    let mut lines = vec![Line::styled("Passes", app.theme.ui.title)];
    for disk in disks {
        let mut line = format!("  {:<key_width$}  ", disk.key);
        let mut fresh = true;
        for part in pass_parts(&disk.passes, true) {
            let sep = if fresh { "" } else { " · " };
            if !fresh && line.chars().count() + sep.len() + part.chars().count() > width {
                lines.push(Line::raw(std::mem::replace(&mut line, " ".repeat(indent))));
                fresh = true;
            }
            if !fresh {
                line.push_str(" · ");
            }
            line.push_str(&part);
            fresh = false;
        }
        lines.push(Line::raw(line));
    }
    lines
}

/// `850ms`, `4.2s`, `1m 40s`.
fn short_duration(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 10_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else {
        humantime::format_duration(Duration::from_secs(ms / 1000)).to_string()
    }
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
    if !run.created.is_empty() {
        lines.push(Line::styled("Created on the target", theme.ui.title));
        for c in &run.created {
            lines.push(Line::raw(format!(
                "  {} {} {} → {} on {}",
                c.state, c.kind, c.name, c.id, c.cloud
            )));
        }
    }
    lines.extend(pass_lines(
        app,
        run,
        usize::from(area.width.saturating_sub(2)),
    ));
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
            // What the check saw (a serial console's tail).
            for line in &check.evidence {
                lines.push(Line::styled(
                    format!("      │ {}", crate::text::safe(line)),
                    theme.ui.info,
                ));
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::event::PassKind;
    use crate::units::Bytes;

    fn passes(count: u32) -> Vec<PassRecord> {
        (1..=count)
            .map(|pass| PassRecord {
                pass,
                kind: match pass {
                    1 => PassKind::Full,
                    n if n == count => PassKind::Final,
                    _ => PassKind::Delta,
                },
                blocks_sent: 10,
                bytes_sent: Bytes::mib(if pass == 1 { 2048 } else { 12 }),
                elapsed_ms: 1500,
            })
            .collect()
    }

    #[test]
    fn passes_read_in_order_and_fold_the_middle_when_narrow() {
        let two = passes(2);
        assert_eq!(
            passes_text(&two, 80, false),
            "pass 1 full 2.0 GiB · pass 2 final 12.0 MiB"
        );
        assert_eq!(
            passes_text(&two, 80, true),
            "pass 1 full 2.0 GiB in 1.5s · pass 2 final 12.0 MiB in 1.5s"
        );
        let five = passes(5);
        assert_eq!(
            passes_text(&five, 70, false),
            "pass 1 full 2.0 GiB · … · pass 5 final 12.0 MiB"
        );
        assert_eq!(
            passes_text(&five, 71, false),
            "pass 1 full 2.0 GiB · … · pass 4 delta 12.0 MiB · pass 5 final 12.0 MiB"
        );
        assert_eq!(passes_text(&five, 30, false), "… pass 5 final 12.0 MiB");
        assert_eq!(passes_text(&five, 5, false).chars().count(), 5);
    }
}
