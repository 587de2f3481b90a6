//! The rolling upgrade view: the plan with every guard's verdict, then the live run — a
//! timeline per node, the running step's output, what it waits for.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};

use super::Theme;
use crate::app::{Action, App, Layer};
use crate::operations::upgrade::Step;
use crate::operations::upgrade::progress::{NodeState, StepState};

/// At least this wide, the run and the live health column show side by side; narrower, the
/// `health` key switches between them.
pub const SPLIT_MIN_WIDTH: u16 = 100;

/// The health column's width beside the run: from its content, within these bounds.
const HEALTH_MIN_WIDTH: u16 = 38;
const HEALTH_MAX_WIDTH: u16 = 56;

pub fn draw(f: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    // The header and the health line stay in sight above the view, the footer (where
    // messages show) below it.
    let below = Rect {
        y: area.y + 2.min(area.height),
        height: area.height.saturating_sub(3),
        ..area
    };
    let r = super::popups::popup_exact(
        below,
        below.width.saturating_sub(2).max(20),
        below.height.max(5),
    );
    f.render_widget(Clear, r);
    let v = &app.upgrade;
    let hints = |actions: &[Action]| app.keymap.hint_line(Layer::Upgrade, actions);
    let split = r.width.saturating_sub(2) >= SPLIT_MIN_WIDTH;
    let toggle = if !split && v.progress.is_some() {
        format!(" · {}", hints(&[Action::Health]))
    } else {
        String::new()
    };
    let keys = if v.running() {
        format!(
            " — {} (the run goes on) · {}{toggle} ",
            hints(&[Action::Back]),
            hints(&[Action::Pause, Action::Abort, Action::Refresh, Action::Skip])
        )
    } else if v.starting {
        format!(" — {} ", hints(&[Action::Back]))
    } else if v.interrupted.is_some() && !app.read_only {
        format!(
            " — {} ",
            hints(&[Action::ResumeRun, Action::AbandonRun, Action::Back])
        )
    } else if v.progress.is_some() {
        format!(" — {}{toggle} ", hints(&[Action::Back, Action::Upgrade]))
    } else {
        format!(" — {} ", hints(&[Action::Start, Action::Back]))
    };
    let drain = v
        .progress
        .as_ref()
        .map(|p| crate::operations::upgrade::drain::is_drain_run(&p.run_id))
        .or_else(|| {
            v.planned
                .as_ref()
                .and_then(|p| p.as_ref().ok())
                .map(|p| p.plan.kind == crate::operations::upgrade::RunKind::Drain)
        })
        .unwrap_or(false);
    let what = if drain {
        "Maintenance (drain)"
    } else {
        "Rolling upgrade"
    };
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(theme.border_focused)
        .title(Span::styled(format!(" {what}{keys}"), theme.title_focused))
        .style(theme.popup);
    let inner = block.inner(r);
    f.render_widget(block, r);
    if let Some(p) = &v.progress {
        let column = health_lines(app, theme);
        if split {
            let width = health_width(&column, inner.width);
            let [run, health] =
                Layout::horizontal([Constraint::Fill(1), Constraint::Length(width)]).areas(inner);
            draw_run(f, run, app, p, theme);
            draw_health(f, health, column, theme, true);
        } else if v.show_health {
            draw_health(f, inner, column, theme, false);
        } else {
            draw_run(f, inner, app, p, theme);
        }
        return;
    }
    if v.starting {
        let line = Line::from(Span::styled(
            "starting the run: connecting to the cluster and the hosts, taking the lock…",
            theme.warning,
        ));
        f.render_widget(Paragraph::new(line), inner);
        return;
    }
    let start_key = app
        .keymap
        .keys_for(Layer::Upgrade, Action::Start)
        .first()
        .map_or_else(|| "start (unbound)".to_string(), |k| k.to_string());
    let mut lines: Vec<Line> = interrupted_lines(app, theme);
    lines.extend(match &v.planned {
        None => {
            let mut out = vec![Line::from(Span::styled(
                "computing the plan and every guard's verdict…",
                theme.muted,
            ))];
            // The latest node diffed (`diff 3/4: node2 — ...`).
            if let Some(line) = app
                .tasks
                .iter()
                .find(|(id, _)| Some(*id) == v.plan_task)
                .and_then(|(_, r)| r.progress.clone())
            {
                out.push(Line::from(Span::styled(line, theme.muted)));
            }
            out
        }
        Some(Err(e)) => vec![Line::from(Span::styled(
            format!("no upgrade possible: {e}"),
            theme.critical,
        ))],
        Some(Ok(p)) if !p.notes.is_empty() => {
            let mut out: Vec<Line> = p
                .notes
                .iter()
                .map(|l| {
                    let style = if l.trim_start().starts_with('✗') {
                        theme.critical
                    } else if l.trim_start().starts_with('✓') {
                        theme.ok
                    } else {
                        theme.muted
                    };
                    Line::from(Span::styled(l.clone(), style))
                })
                .collect();
            if let Some(l) = &p.lock {
                out.push(Line::from(Span::styled(
                    format!("lock held: {l}"),
                    theme.warning,
                )));
            }
            out.push(Line::from(""));
            out.push(Line::from(Span::styled(
                format!(
                    "Dry run: nothing has changed. {start_key} drains it (you will be asked once more)."
                ),
                theme.info,
            )));
            out
        }
        Some(Ok(p)) => {
            let order = match &p.forecast {
                Some(f) => f.order.reason.clone(),
                None => "agents first, the etcd leader last".into(),
            };
            let mut out = vec![
                Line::from(Span::styled(
                    format!("run {} · flake {} · {order}", p.plan.run_id, p.plan.flake),
                    theme.muted,
                )),
                Line::from(vec![
                    Span::styled(
                        match &p.lock {
                            Some(l) => format!("lock held: {l}"),
                            None => "lock: free".into(),
                        },
                        if p.lock.is_some() {
                            theme.warning
                        } else {
                            theme.muted
                        },
                    ),
                    // The run's own first step: the etcd snapshot (or why there is none).
                    Span::styled(
                        format!(
                            " · {}",
                            crate::operations::upgrade::snapshot::snapshot_plan(
                                &p.plan,
                                &app.inventory,
                                app.config.upgrade.pre_snapshot,
                                0,
                            )
                            .short()
                        ),
                        theme.muted,
                    ),
                ]),
                Line::from(""),
            ];
            // The silences, once for all nodes (the matchers' labels; `--dry-run` lists each).
            let silences = crate::operations::upgrade::planned_silences(
                &app.config.alertmanager,
                &app.inventory,
                &p.plan,
            );
            if let Some(ms) = silences.values().next() {
                let labels: Vec<&str> = ms
                    .iter()
                    .map(|m| m.split(['=', '!']).next().unwrap_or(m))
                    .collect();
                out.insert(
                    out.len() - 1,
                    Line::from(Span::styled(
                        format!(
                            "silences: each node in Alertmanager from its cordon to its uncordon (on {})",
                            labels.join(", ")
                        ),
                        theme.muted,
                    )),
                );
            }
            for (i, (e, verdicts)) in p.verdicts.iter().enumerate() {
                let ok = verdicts.iter().all(|v| v.pass);
                out.push(Line::from(vec![
                    Span::styled(format!("{}. {} ", i + 1, e.node), theme.table_header),
                    Span::styled(
                        format!(
                            "({}{})  ",
                            e.role,
                            if e.etcd_leader { ", etcd leader" } else { "" }
                        ),
                        theme.muted,
                    ),
                    if ok {
                        Span::styled("every guard passes now", theme.ok)
                    } else {
                        Span::styled(
                            "REFUSED now (checked again right before it)",
                            theme.critical,
                        )
                    },
                ]));
                for g in verdicts.iter().filter(|g| !g.pass) {
                    out.push(Line::from(Span::styled(
                        format!("     ✗ {}", g.line()),
                        theme.critical,
                    )));
                }
                if let Some(n) = p.forecast.as_ref().and_then(|f| f.node(&e.node)) {
                    // A reboot that cannot boot its new generation once first says so
                    // (`[upgrade] boot_once`: the boot-once guard's line); one that can is
                    // the norm and costs no room.
                    let boot = verdicts
                        .iter()
                        .find(|g| {
                            g.pass && g.guard == "boot-once" && !g.message.starts_with("boot once:")
                        })
                        .map(|g| g.message.as_str());
                    forecast_lines(n, boot, theme, &mut out);
                }

            }
            if let Some(f) = &p.forecast {
                for sk in &f.skipped {
                    out.push(Line::from(Span::styled(
                        format!("–  {} skipped: {}", sk.node, sk.reason),
                        theme.muted,
                    )));
                }
                out.push(Line::from(Span::styled(
                    if f.reboots.is_empty() {
                        "reboots: none".to_string()
                    } else {
                        format!("reboots: {}", f.reboots.join(", "))
                    },
                    theme.info,
                )));
                out.push(Line::from(Span::styled(f.eta_line(), theme.muted)));
                // Longhorn's settings: only what warns (the screen is short; `--dry-run`
                // lists every note).
                for l in crate::operations::upgrade::storage::text(&f.storage)
                    .into_iter()
                    .filter(|l| l.contains('⚠'))
                {
                    out.push(Line::from(Span::styled(l, theme.warning)));
                }
                // The refusals are among each node's verdicts above; with no node left to
                // run, they are said here.
                for r in f.refusals.iter().filter(|_| p.verdicts.is_empty()) {
                    out.push(Line::from(Span::styled(
                        format!("✗ REFUSED {}", r.line()),
                        theme.critical,
                    )));
                }
            }
            out.push(Line::from(""));
            out.push(Line::from(Span::styled(
                format!(
                    "Dry run: nothing has changed. {start_key} starts the run (you will be asked once more)."
                ),
                theme.info,
            )));
            out
        }
    });
    f.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), inner);
}

/// What a planned node goes through: its diff in one line, its reboot, its estimate.
fn forecast_lines(
    n: &crate::operations::upgrade::forecast::NodeForecast,
    boot: Option<&str>,
    theme: &Theme,
    out: &mut Vec<Line<'static>>,
) {
    let (text, style) = match (&n.summary, &n.error) {
        (Some(s), _) if !s.risks.is_empty() => (s.line(), theme.warning),
        (Some(s), _) => (s.line(), theme.muted),
        (None, Some(e)) => (format!("diff failed: {e}"), theme.critical),
        (None, None) => ("not diffed".to_string(), theme.muted),
    };
    out.push(Line::from(Span::styled(format!("     {text}"), style)));
    let eta = n
        .estimate_secs
        .map(|s| {
            format!(
                " · ~{}",
                crate::operations::upgrade::eta::short(std::time::Duration::from_secs(s))
            )
        })
        .unwrap_or_default();
    // A node that may reboot says whether it boots its new generation once first.
    let boot = match boot {
        Some(b) if n.reboot.will != crate::operations::closure_diff::summary::Verdict::No => {
            format!(" · {b}")
        }
        _ => String::new(),
    };
    out.push(Line::from(Span::styled(
        format!(
            "     reboot: {} — {}{eta}{boot}",
            n.reboot.will, n.reboot.why
        ),
        theme.muted,
    )));
}

/// An interrupted run: where it stopped, the commands, the keys.
fn interrupted_lines(app: &App, theme: &Theme) -> Vec<Line<'static>> {
    let Some(i) = &app.upgrade.interrupted else {
        return Vec::new();
    };
    let at =
        i.at.as_ref()
            .map(|(n, s)| format!(" at {n} {s}"))
            .unwrap_or_default();
    let mut out = vec![
        Line::from(Span::styled(
            format!(
                "run {} was interrupted{at}: its engine is gone before the run finished.",
                i.run_id
            ),
            theme.warning,
        )),
        Line::from(Span::styled(
            format!("From a terminal: {}", i.commands()),
            theme.muted,
        )),
    ];
    if !app.read_only {
        let keys = app
            .keymap
            .hint_line(Layer::Upgrade, &[Action::ResumeRun, Action::AbandonRun]);
        out.push(Line::from(Span::styled(
            format!("Here: {keys} (each asks first)."),
            theme.info,
        )));
    }
    out.push(Line::from(""));
    out
}

fn draw_run(
    f: &mut Frame,
    area: Rect,
    app: &App,
    p: &crate::operations::upgrade::progress::RunProgress,
    theme: &Theme,
) {
    let extra: usize = p
        .nodes
        .iter()
        .map(|n| {
            usize::from(n.waiting.is_some())
                + n.verdicts.iter().filter(|g| !g.pass).count()
                + n.silences.len()
        })
        .sum();
    let snap_rows = p.snapshot.as_ref().map_or(0, |s| {
        1 + usize::from(matches!(s.state, StepState::Failed { .. }))
    });
    let rows = (p.nodes.len() + extra + snap_rows) as u16 + 4;
    let [top, bottom] = Layout::vertical([
        Constraint::Length(rows.min(area.height / 2)),
        Constraint::Fill(1),
    ])
    .areas(area);
    let mut lines = vec![Line::from(Span::styled(
        app.upgrade.summary().unwrap_or_default(),
        if p.outcome.as_ref().is_some_and(|o| !o.is_success()) {
            theme.critical
        } else {
            theme.info
        },
    ))];
    let engine = match (&app.upgrade.interrupted, app.upgrade.pid) {
        (Some(i), _) => format!(
            "run {}: its engine is gone before the run finished — {}",
            p.run_id,
            i.commands()
        ),
        (None, Some(pid)) if !p.is_finished() => format!(
            "run {} · engine pid {pid}, a process of its own: leaving the dashboard leaves it running",
            p.run_id
        ),
        _ => format!("run {}", p.run_id),
    };
    lines.push(Line::from(Span::styled(engine, theme.muted)));
    // The run's own step before its nodes: the etcd snapshot.
    if let Some(s) = &p.snapshot {
        let (label, style) = match &s.state {
            StepState::Running => ("running ", theme.warning),
            StepState::Ok { .. } => ("done    ", theme.ok),
            StepState::Skipped { .. } => ("skipped ", theme.muted),
            StepState::Failed { .. } if s.is_warning() => ("warning ", theme.warning),
            StepState::Failed { .. } => ("FAILED  ", theme.critical),
        };
        let d = s
            .duration_ms
            .map(|ms| format!(" {:.1}s", ms as f64 / 1000.0))
            .unwrap_or_default();
        let what = match &s.state {
            StepState::Ok { detail: Some(d) } => d.clone(),
            StepState::Skipped { reason } => reason.clone(),
            _ => format!("{} on {}", s.file.as_deref().unwrap_or(&s.name), s.node),
        };
        lines.push(Line::from(vec![
            Span::styled(format!("{:<14}", "etcd snapshot"), theme.table_header),
            Span::styled(format!("{label} "), style),
            Span::styled(format!("{what}{d}"), style),
        ]));
        if let StepState::Failed { message } = &s.state {
            lines.push(Line::from(Span::styled(
                format!("{:14} ✗ {message}", ""),
                style,
            )));
        }
    }
    for n in &p.nodes {
        let (label, style) = match n.state {
            NodeState::Pending => ("waiting ", theme.muted),
            NodeState::Running => ("running ", theme.warning),
            NodeState::Waiting => ("waiting!", theme.warning),
            NodeState::Done => ("done    ", theme.ok),
            NodeState::Skipped => ("skipped ", theme.muted),
            NodeState::Failed => ("FAILED  ", theme.critical),
            NodeState::Stopped => ("stopped ", theme.warning),
        };
        let mut spans = vec![
            Span::styled(format!("{:<14}", n.node), theme.table_header),
            Span::styled(format!("{label} "), style),
        ];
        for s in &n.steps {
            let (mark, st) = match &s.state {
                StepState::Running => ("…", theme.warning),
                StepState::Ok { .. } => ("✓", theme.ok),
                StepState::Skipped { .. } => ("–", theme.muted),
                StepState::Failed { .. } => ("✗", theme.critical),
            };
            let d = s
                .duration_ms
                .map(|ms| format!(" {:.1}s", ms as f64 / 1000.0))
                .unwrap_or_default();
            spans.push(Span::styled(format!("{}{mark}{d}  ", s.step), st));
        }
        lines.push(Line::from(spans));
        if let Some((what, detail)) = &n.waiting {
            lines.push(Line::from(Span::styled(
                format!("{:14} waits for {what}: {detail}", ""),
                theme.warning,
            )));
        }
        // Its Alertmanager silences, while the run keeps them alive.
        for s in &n.silences {
            lines.push(Line::from(Span::styled(
                format!("{:14} silenced: {} (silence {})", "", s.matcher, s.id),
                theme.muted,
            )));
        }
        // The guards that hold the node back, with their fix.
        if matches!(n.state, NodeState::Waiting | NodeState::Failed) {
            for g in n.verdicts.iter().filter(|g| !g.pass) {
                lines.push(Line::from(Span::styled(
                    format!("{:14} ✗ {}", "", g.line()),
                    theme.critical,
                )));
            }
        }
    }
    f.render_widget(Paragraph::new(lines), top);
    // The current node's output, else the run's log.
    let (title, body) = match p.current() {
        Some(n) if !n.output.is_empty() => (format!(" output of {} ", n.node), &n.output),
        _ => (" run log ".to_string(), &app.upgrade.log),
    };
    let h = bottom.height.saturating_sub(2) as usize;
    let text: Vec<Line> = body.tail(h).map(|l| Line::raw(l.clone())).collect();
    f.render_widget(
        Paragraph::new(text).block(
            Block::default()
                .borders(Borders::TOP)
                .border_style(theme.border)
                .title(Span::styled(title, theme.title)),
        ),
        bottom,
    );
}

/// The live health column: etcd members and quorum, volumes not healthy (rebuilding with their
/// replicas' progress), every node with its state and what the run does to it — from the
/// dashboard's own sources.
fn health_lines(app: &App, theme: &Theme) -> Vec<Line<'static>> {
    let mut lines: Vec<Line> = Vec::new();
    let head = |t: &str| Line::from(Span::styled(t.to_string(), theme.table_header));
    lines.push(head("etcd"));
    match &app.snapshot.etcd.data {
        Some(st) => {
            let q = st.quorum();
            let style = if !q.holds() {
                theme.critical
            } else if q.tolerates() == 0 {
                theme.warning
            } else {
                theme.ok
            };
            lines.push(Line::from(Span::styled(format!(" {q}"), style)));
            for m in &st.members {
                let (state, style) = if m.healthy {
                    ("healthy", theme.ok)
                } else {
                    ("down", theme.critical)
                };
                let leader = if m.is_leader { " ★" } else { "" };
                lines.push(Line::from(vec![
                    Span::raw(format!(" {}{leader} ", m.name)),
                    Span::styled(state, style),
                ]));
            }
        }
        None => lines.push(Line::from(Span::styled(" no data", theme.muted))),
    }
    lines.push(Line::default());
    lines.push(head("volumes"));
    match &app.snapshot.cluster.data {
        Some(cl) => {
            let lh = &cl.longhorn;
            let mut shown = 0;
            let rebuilding_set = lh.rebuilding_volumes();
            for v in &lh.volumes {
                let rebuilding = rebuilding_set.contains(v.name.as_str());
                if v.robustness == "healthy" && !rebuilding {
                    continue;
                }
                shown += 1;
                let healthy = lh.replicas_of(&v.name).filter(|r| r.healthy).count();
                let style = match v.robustness.as_str() {
                    "faulted" => theme.critical,
                    _ => theme.warning,
                };
                let what = if rebuilding {
                    "rebuilding"
                } else {
                    v.robustness.as_str()
                };
                let name = v.pvc.clone().unwrap_or_else(|| v.name.clone());
                lines.push(Line::from(vec![
                    Span::raw(format!(" {name} ")),
                    Span::styled(format!("{what} {healthy}/{}", v.number_of_replicas), style),
                ]));
                // Each replica being rebuilt: its node, progress and ETA.
                for r in app.upgrade.rebuilds.iter().filter(|r| r.volume == v.name) {
                    lines.push(Line::from(Span::styled(
                        format!(
                            "   ↳ {} {}%{}",
                            r.node.as_deref().unwrap_or(r.replica.as_str()),
                            r.progress,
                            r.eta_text()
                        ),
                        theme.warning,
                    )));
                }
            }
            if shown == 0 {
                lines.push(Line::from(Span::styled(
                    format!(" all {} healthy", lh.volumes.len()),
                    theme.ok,
                )));
            }
            lines.push(Line::default());
            lines.push(head("nodes"));
            // What the run does now, and to which node.
            let doing = app.upgrade.progress.as_ref().and_then(|p| {
                let n = p.current()?;
                let s = n
                    .steps
                    .last()
                    .filter(|s| matches!(s.state, StepState::Running))?;
                Some((n.node.clone(), s.step))
            });
            for n in &cl.nodes {
                // Unknown is a node whose kubelet stopped reporting (a reboot, a host down):
                // NotReady, as kubectl says.
                let (state, style) = match n.ready {
                    Some(true) => ("Ready", theme.ok),
                    Some(false) => ("NotReady", theme.critical),
                    None => ("NotReady (unknown)", theme.critical),
                };
                let mut spans = vec![
                    Span::raw(format!(" {} ", n.name)),
                    Span::styled(state, style),
                ];
                if n.unschedulable {
                    spans.push(Span::styled(" cordoned", theme.warning));
                }
                match &doing {
                    Some((node, Step::Reboot)) if *node == n.name => {
                        spans.push(Span::styled(" · rebooting", theme.warning));
                    }
                    Some((node, Step::Hold)) if *node == n.name => {
                        spans.push(Span::styled(" · in maintenance", theme.info));
                    }
                    Some((node, step)) if *node == n.name => {
                        spans.push(Span::styled(format!(" · {step}"), theme.info));
                    }
                    _ => {}
                }
                lines.push(Line::from(spans));
            }
        }
        None => lines.push(Line::from(Span::styled(" no data", theme.muted))),
    }
    lines
}

/// The column's width beside the run: its longest line (and its border), at least
/// [`HEALTH_MIN_WIDTH`], at most [`HEALTH_MAX_WIDTH`] and half of `total`.
fn health_width(lines: &[Line], total: u16) -> u16 {
    let longest = lines.iter().map(Line::width).max().unwrap_or(0);
    let want = u16::try_from(longest + 2).unwrap_or(u16::MAX);
    want.clamp(
        HEALTH_MIN_WIDTH,
        HEALTH_MAX_WIDTH.min(total / 2).max(HEALTH_MIN_WIDTH),
    )
}

fn draw_health(f: &mut Frame, area: Rect, lines: Vec<Line<'static>>, theme: &Theme, beside: bool) {
    let block = if beside {
        Block::default()
            .borders(Borders::LEFT)
            .border_style(theme.border)
            .title(Span::styled(" live health ", theme.title))
    } else {
        Block::default().title(Span::styled(" live health ", theme.title))
    };
    f.render_widget(
        Paragraph::new(lines)
            .block(block)
            .wrap(Wrap { trim: false }),
        area,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::Role;
    use crate::operations::closure_diff::summary::Verdict;
    use crate::operations::upgrade::forecast::{NodeForecast, RebootForecast};

    fn node(will: Verdict) -> NodeForecast {
        NodeForecast {
            node: "node4".into(),
            host: "node4".into(),
            role: Role::Agent,
            deployed: None,
            target: None,
            summary: None,
            error: None,
            reboot: RebootForecast {
                will,
                why: "kernel 6.6.1 → 6.6.8".into(),
            },
            estimate_secs: None,
        }
    }

    fn text(lines: &[Line<'_>]) -> Vec<String> {
        lines.iter().map(|l| l.to_string()).collect()
    }

    #[test]
    fn a_node_that_reboots_says_how_its_new_generation_boots() {
        let theme = Theme::default();
        let boot = "cannot boot once: GRUB without a saved default — reboots straight into the new generation";
        let mut out = Vec::new();
        forecast_lines(&node(Verdict::Yes), Some(boot), &theme, &mut out);
        let t = text(&out);
        assert!(
            t[1].starts_with("     reboot: ") && t[1].ends_with(&format!(" · {boot}")),
            "{t:?}"
        );
        // Unknown (decided after the switch) may reboot too.
        let mut out = Vec::new();
        forecast_lines(&node(Verdict::Unknown), Some(boot), &theme, &mut out);
        assert!(text(&out)[1].contains(boot), "{:?}", text(&out));
        // A node that does not reboot needs no boot line.
        let mut out = Vec::new();
        forecast_lines(&node(Verdict::No), Some(boot), &theme, &mut out);
        assert!(!text(&out)[1].contains("boot once"), "{:?}", text(&out));
    }
}
