//! Plan review and approval: the items, every mutating action, bytes,
//! estimate, a cross-border warning and credentials that will not last the
//! run; then the hash to type.

use super::safe;
use super::{fit, input_line, panel};
use crate::plan::{Cutover, Plan};
use crate::tui::app::App;
use crate::tui::app::access::{RunOutlasts, Urgency, left_text};
use crate::tui::app::inventory::SideId;
use crate::tui::app::plan::ApproveField;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Row, Table, Wrap};
use std::time::Duration;

pub fn draw_plan(frame: &mut Frame, app: &App, area: Rect) {
    let Some(state) = &app.plan else {
        frame.render_widget(Paragraph::new("no plan: mark instances and press p"), area);
        return;
    };
    let plan = &state.plan;
    let theme = &app.theme;
    let items_height = (plan.items.len() as u16 + 3).min(area.height / 3).max(4);
    let edit_height = u16::from(state.edit.is_some());
    let summary_height = summary_lines(app, plan, true).len() as u16;
    let [items, edit, summary, actions] = Layout::vertical([
        Constraint::Length(items_height),
        Constraint::Length(edit_height),
        Constraint::Length(summary_height),
        Constraint::Min(3),
    ])
    .areas(area);

    let block = panel(
        app,
        format!(
            " plan: {} → {} ",
            safe(&plan.source.cloud),
            safe(&plan.target.cloud)
        ),
        state.edit.is_none(),
    );
    let inner = block.inner(items);
    frame.render_widget(block, items);
    let visible = usize::from(inner.height.saturating_sub(1)).max(1);
    let offset = (state.selected + 1).saturating_sub(visible);
    let rows: Vec<Row> = plan
        .items
        .iter()
        .enumerate()
        .skip(offset)
        .take(visible)
        .map(|(i, item)| {
            let style = if i == state.selected {
                theme.plan.item.patch(theme.table.selected)
            } else {
                theme.plan.item
            };
            Row::new(vec![
                if item.target_name == item.instance_name {
                    safe(&item.instance_name).into_owned()
                } else {
                    format!(
                        "{} → {}",
                        safe(&item.instance_name),
                        safe(&item.target_name)
                    )
                },
                format!("{} → {}", safe(&item.source_size), safe(&item.target_size)),
                safe(&item.target_region).into_owned(),
                format!("{}", item.disks.len()),
                super::inventory::compact(item.allocated().0),
                format!("{}", item.wave),
            ])
            .style(style)
        })
        .collect();
    let widths = [
        Constraint::Min(10),
        Constraint::Min(20),
        Constraint::Length(14),
        Constraint::Length(5),
        Constraint::Length(6),
        Constraint::Length(4),
    ];
    let header = Row::new(vec![
        "INSTANCE",
        "SIZE → TARGET",
        "REGION",
        "DISKS",
        "BYTES",
        "WAVE",
    ])
    .style(theme.table.header);
    frame.render_widget(
        Table::new(rows, widths).header(header).column_spacing(1),
        inner,
    );

    if let Some(input) = &state.edit {
        input_line(frame, app, edit, &format!("{}: ", input.label), input);
    }
    frame.render_widget(Paragraph::new(summary_lines(app, plan, true)), summary);
    if state.show_config {
        super::plan_config::draw(
            frame,
            app,
            plan,
            state.selected,
            state.action_scroll,
            actions,
        );
    } else {
        draw_actions(frame, app, plan, state.action_scroll, actions);
    }
}

/// Totals, estimate, cross-border and credential warnings; on the plan
/// screen also the name conflicts it can fix (`n`).
fn summary_lines(app: &App, plan: &Plan, on_plan: bool) -> Vec<Line<'static>> {
    let theme = &app.theme;
    let s = &plan.summary;
    let estimate = humantime::format_duration(Duration::from_secs(s.estimate_seconds)).to_string();
    let mut lines = vec![
        Line::styled(
            format!(
                " {} instance(s), {} disk(s): {} to move of {} virtual · estimate {estimate}",
                s.instances, s.disks, s.bytes_to_move, s.virtual_bytes
            ),
            theme.plan.total,
        ),
        Line::styled(
            format!(" estimate basis: {}", s.estimate_basis),
            theme.plan.item,
        ),
    ];
    if let Some(cross) = &plan.cross_border {
        lines.push(Line::styled(
            format!(
                " ⚠ CROSS-BORDER: {} leave {} for {}; approval must acknowledge it",
                cross.bytes, cross.from, cross.to
            ),
            theme.plan.warning,
        ));
    }
    let waves = plan.items.iter().map(|i| i.wave).max().unwrap_or(1);
    if waves > 1 || !plan.waves.windows.is_empty() {
        let windows: Vec<String> = plan
            .waves
            .windows
            .iter()
            .map(|w| format!("; wave {} not before {}", w.wave, safe(&w.not_before)))
            .collect();
        lines.push(Line::styled(
            format!(
                " {waves} wave(s), each validated before the next starts{}",
                windows.concat()
            ),
            theme.plan.item,
        ));
    }
    let lossy = crate::plan::configuration::lossy_lines(plan).len();
    if lossy > 0 {
        lines.push(Line::styled(
            format!(
                " ⚠ LOSSY: {lossy} part(s) of the configuration cannot be carried exactly (c shows them); approval must acknowledge it"
            ),
            theme.plan.warning,
        ));
    }
    if let Some(cutover) = &plan.cutover {
        lines.extend(cutover_lines(app, cutover));
    }
    lines.extend(preparation_lines(app, plan));
    lines.extend(rehearsal_lines(app, plan));
    for short in app.access_short_of(plan) {
        lines.extend(access_warning(app, &short));
    }
    for name in name_conflicts(app, plan).into_iter().filter(|_| on_plan) {
        lines.push(Line::styled(
            format!(
                " ⚠ {} already has an instance named '{name}': select it and press n to rename",
                plan.target.cloud
            ),
            theme.plan.warning,
        ));
    }
    lines
}

/// Guest preparation: being inspected, or what each guest gets (the
/// changes themselves are the plan's actions).
fn preparation_lines(app: &App, plan: &Plan) -> Vec<Line<'static>> {
    use crate::plan::preparation::Status;
    let theme = &app.theme;
    if app.plan.as_ref().is_some_and(|s| s.inspecting) {
        return vec![Line::styled(
            " inspecting the guests for preparation (libguestfs)…",
            theme.plan.item,
        )];
    }
    plan.preparation
        .guests
        .iter()
        .filter(|g| {
            matches!(g.status, Status::Prepare | Status::InspectAtRun) || g.status.refuses()
        })
        .map(|g| {
            let (text, style) = if g.status == Status::Prepare {
                (
                    format!(
                        " ⚙ prepare {}/{}: {} change(s) {}",
                        safe(&g.instance),
                        safe(&g.disk),
                        g.changes.len(),
                        g.applied_to.describe()
                    ),
                    theme.plan.item,
                )
            } else if g.status == Status::InspectAtRun {
                (
                    format!(
                        " ⚙ prepare {}/{}: inspected during the run {}",
                        safe(&g.instance),
                        safe(&g.disk),
                        g.applied_to.describe()
                    ),
                    theme.plan.item,
                )
            } else {
                (
                    format!(
                        " ✗ {}/{} cannot be prepared: {}",
                        safe(&g.instance),
                        safe(&g.disk),
                        safe(&g.detail)
                    ),
                    theme.plan.warning,
                )
            };
            Line::styled(text, style)
        })
        .collect()
}

/// The boot rehearsal (`r`): running, or what each guest did.
fn rehearsal_lines(app: &App, plan: &Plan) -> Vec<Line<'static>> {
    let theme = &app.theme;
    if let Some(now) = app.plan.as_ref().and_then(|s| s.rehearsing.as_ref()) {
        return vec![Line::styled(
            format!(" rehearsal: {} in QEMU on this machine…", safe(now)),
            theme.plan.item,
        )];
    }
    plan.rehearsals
        .iter()
        .map(|r| {
            if r.booted {
                Line::styled(
                    format!(
                        " ✓ rehearsal: {} booted in {:.1}s ({}): '{}'",
                        safe(&r.instance),
                        r.elapsed_ms as f64 / 1000.0,
                        safe(&r.accel),
                        safe(r.matched.as_deref().unwrap_or(""))
                    ),
                    theme.plan.item,
                )
            } else {
                Line::styled(
                    format!(
                        " ✗ rehearsal: {}/{} did not boot ({}): cannot be approved",
                        safe(&r.instance),
                        safe(&r.disk),
                        safe(&r.detail)
                    ),
                    theme.plan.warning,
                )
            }
        })
        .collect()
}

/// What the cutover will do, in the order it does it; the source's fate in
/// warning style (powering it off is the step an operator must not miss).
fn cutover_lines(app: &App, cutover: &Cutover) -> [Line<'static>; 2] {
    let theme = &app.theme;
    let quiesce = cutover.quiesce.as_deref().unwrap_or("fsfreeze");
    let after = if cutover.power_off {
        "then the source is powered OFF".to_string()
    } else {
        match &cutover.thaw {
            Some(thaw) => format!("then `{thaw}`; the source keeps running"),
            None => "then the source keeps running".to_string(),
        }
    };
    [
        Line::styled(
            format!(
                " ⇄ CUTOVER: copy while the source runs, up to {} delta passes,",
                cutover.max_delta_passes
            ),
            theme.plan.total,
        ),
        Line::styled(
            format!("   quiesce (`{quiesce}`), final delta pass, {after}"),
            if cutover.power_off {
                theme.plan.warning
            } else {
                theme.plan.item
            },
        ),
    ]
}

/// Two lines: when the side's credentials end, and what to do before
/// approving. An error once expired, else a warning.
fn access_warning(app: &App, short: &RunOutlasts) -> [Line<'static>; 2] {
    let theme = &app.theme;
    let side = short.side.label();
    let cloud = &short.cloud;
    let reconnect = match short.side {
        SideId::Source => format!(":from {cloud}"),
        SideId::Target => format!(":to {cloud}"),
    };
    let when = short
        .status
        .expires_at
        .map(crate::fsutil::utc_minute)
        .unwrap_or_default();
    if short.status.urgency == Urgency::Expired {
        return [
            Line::styled(
                format!(" ✖ {side} {cloud}: credentials EXPIRED {when}"),
                theme.ui.error,
            ),
            Line::styled(
                format!("   renew them and reconnect ({reconnect}) before approving"),
                theme.ui.error,
            ),
        ];
    }
    let left = left_text(short.status.left(app.now_unix).unwrap_or(0));
    let needs = humantime::format_duration(Duration::from_secs(short.estimate_seconds));
    [
        Line::styled(
            format!(" ⚠ {side} {cloud}: credentials expire {when} (in {left})"),
            theme.plan.warning,
        ),
        Line::styled(
            format!(
                "   before the run's estimated end ({needs}): renew and reconnect ({reconnect})"
            ),
            theme.plan.warning,
        ),
    ]
}

fn draw_actions(frame: &mut Frame, app: &App, plan: &Plan, scroll: usize, area: Rect) {
    let theme = &app.theme;
    let block = panel(
        app,
        format!(" {} actions, in order ", plan.actions.len()),
        false,
    );
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let width = usize::from(inner.width);
    // As wide as the longest verb (`power off source`), so details align.
    let verb_width = plan
        .actions
        .iter()
        .map(|a| a.verb.to_string().chars().count())
        .max()
        .unwrap_or(0)
        .max(15);
    let lines: Vec<Line> = plan
        .actions
        .iter()
        .skip(scroll)
        .take(usize::from(inner.height))
        .map(|a| {
            Line::from(vec![
                Span::styled(format!("{:>3}. ", a.step), theme.plan.item),
                Span::styled(
                    format!("{:<verb_width$}", a.verb.to_string()),
                    theme.plan.action,
                ),
                Span::styled(
                    fit(
                        &format!(" {} {}: {}", a.cloud, a.resource, a.detail),
                        width.saturating_sub(verb_width + 5),
                    ),
                    theme.plan.item,
                ),
            ])
        })
        .collect();
    frame.render_widget(Paragraph::new(lines), inner);
}

pub fn draw_approve(frame: &mut Frame, app: &App, area: Rect) {
    let Some(state) = &app.plan else {
        frame.render_widget(Paragraph::new("no plan to approve"), area);
        return;
    };
    let plan = &state.plan;
    let theme = &app.theme;
    let hash = plan.hash();
    let cross = plan.cross_border.is_some();
    let lossy = !crate::plan::configuration::lossy_lines(plan).is_empty();
    let form_height = 4 + 2 * u16::from(cross) + u16::from(lossy);
    let summary_text = summary_lines(app, plan, false);
    let [head, summary, actions, form] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Length(summary_text.len() as u16),
        Constraint::Min(3),
        Constraint::Length(form_height),
    ])
    .areas(area);
    let short = hash.short().to_string();
    let head_lines = vec![
        Line::from(vec![
            Span::styled(" plan hash ", theme.plan.item),
            Span::styled(short.clone(), theme.approval.hash),
            Span::styled(
                fit(
                    &hash.0[short.len()..],
                    usize::from(area.width).saturating_sub(20),
                ),
                theme.plan.item,
            ),
        ]),
        Line::styled(
            format!(
                " approving as {} · nothing in any cloud changes before this",
                app.operator
            ),
            theme.plan.item,
        ),
    ];
    frame.render_widget(Paragraph::new(head_lines), head);
    frame.render_widget(Paragraph::new(summary_text), summary);
    draw_actions(
        frame,
        app,
        plan,
        app.approve.scroll.min(plan.actions.len().saturating_sub(1)),
        actions,
    );

    let block = panel(app, " approve ", true);
    let inner = block.inner(form);
    frame.render_widget(block, form);
    let rows =
        Layout::vertical(vec![Constraint::Length(1); usize::from(inner.height)]).split(inner);
    let field = match app.approve.field {
        ApproveField::CrossBorder if cross => ApproveField::CrossBorder,
        ApproveField::Lossy if lossy => ApproveField::Lossy,
        _ => ApproveField::Hash,
    };
    let hash_focus = field == ApproveField::Hash;
    let mut row = 0;
    if let Some(r) = rows.get(row) {
        let label = format!(
            "{} type {short} to approve: ",
            if hash_focus { "›" } else { " " }
        );
        input_line_maybe(frame, app, *r, &label, &app.approve.hash, hash_focus);
    }
    row += 1;
    if cross && let Some(r) = rows.get(row) {
        let here = field == ApproveField::CrossBorder;
        let label = format!(
            "{} acknowledge {} → {}: type yes: ",
            if here { "›" } else { " " },
            plan.cross_border
                .as_ref()
                .map(|c| safe(&c.from))
                .unwrap_or_default(),
            plan.cross_border
                .as_ref()
                .map(|c| safe(&c.to))
                .unwrap_or_default()
        );
        input_line_maybe(frame, app, *r, &label, &app.approve.ack, here);
        row += 1;
    }
    if lossy && let Some(r) = rows.get(row) {
        let here = field == ApproveField::Lossy;
        let label = format!(
            "{} acknowledge the LOSSY configuration (c on the plan lists it): type yes: ",
            if here { "›" } else { " " }
        );
        input_line_maybe(frame, app, *r, &label, &app.approve.ack_lossy, here);
        row += 1;
    }
    if let Some(r) = rows.get(row..) {
        let message = match &app.approve.refused {
            Some(why) => Line::styled(format!(" refused: {why}"), theme.approval.refused),
            None => Line::styled(" Enter approves and starts the run", theme.plan.item),
        };
        if let Some(first) = r.first() {
            let height = r.len() as u16;
            frame.render_widget(
                Paragraph::new(message).wrap(Wrap { trim: false }),
                Rect { height, ..*first },
            );
        }
    }
}

fn input_line_maybe(
    frame: &mut Frame,
    app: &App,
    area: Rect,
    label: &str,
    input: &crate::tui::app::input::LineInput,
    focused: bool,
) {
    if focused {
        input_line(frame, app, area, label, input);
    } else {
        let line = Line::from(vec![
            Span::styled(label.to_string(), app.theme.plan.item),
            Span::styled(input.display(), app.theme.ui.input),
        ]);
        frame.render_widget(Paragraph::new(line), area);
    }
}

/// Target names the target cloud already uses (the run would refuse them).
fn name_conflicts(app: &App, plan: &Plan) -> Vec<String> {
    let Some(target) = app
        .pane(crate::tui::app::inventory::SideId::Target)
        .inventory()
    else {
        return Vec::new();
    };
    plan.items
        .iter()
        .filter(|item| target.instance(&item.target_name).is_some())
        .map(|item| item.target_name.clone())
        .collect()
}
