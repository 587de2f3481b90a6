//! The dashboard: TestBackend snapshots, panes against the simulator's faces, and the real binary in tmux.

#[path = "../common/mod.rs"]
mod common;

mod event_loop;
mod observe_panes;
mod readme_keys;
mod tui_e2e;
mod tui_snapshots;
