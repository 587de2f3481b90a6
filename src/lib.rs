//! homeinfra-tui: a keyboard-driven dashboard and guarded rolling upgrades for a small
//! NixOS + k3s + Longhorn homelab.
//!
//! Layers (data flows one way): `sources` (async I/O) → `model` (pure snapshot and `assess`)
//! → `app`/`ui` (state, keymap, drawing). `operations` are the long operations (closure diff,
//! rolling upgrade); `tasks` is the dashboard's registry that runs them (and the sources) and
//! answers with messages; `tui` is the event loop; `sim` is the simulated homelab. `probes`
//! (every command run on a host over SSH: text, parser, renderer) sits below `sources`,
//! `operations` and `sim`, which all use it. Only `app`, `ui`, `tui` and `commands::dashboard`
//! may use ratatui or crossterm; `tasks` never imports `app` or `ui`.

pub mod app;
pub mod base;
pub mod cli;
pub mod commands;
pub mod config;
pub mod inventory;
pub mod logging;
pub mod model;
pub mod operations;
pub mod paths;
pub mod probes;
pub mod sim;
pub mod sources;
pub mod tasks;
#[cfg(any(test, feature = "test-util"))]
pub mod testing;
pub mod tui;
pub mod ui;
