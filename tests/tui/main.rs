//! The dashboard: TestBackend snapshots, panes against the simulator's faces, and the real binary in tmux
//! (also: a run outlives the dashboards that follow it).

#[path = "../common/mod.rs"]
mod common;

mod drain_tui;
mod event_loop;
mod faults_tui;
mod health_line;
mod observe_panes;
mod read_only;
mod readme_keys;
mod tables_fit;
mod tui_detached;
mod tui_e2e;
mod tui_snapshots;
mod worlds;
