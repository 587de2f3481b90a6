//! homeinfra-tui: a keyboard-driven dashboard and guarded rolling upgrades for a small
//! NixOS + k3s + Longhorn homelab.
//!
//! Layers (data flows one way): `sources` (async I/O) → `model` (pure snapshot and `assess`)
//! → `app`/`ui` (state, keymap, drawing). `operations` run long tasks; `sim` is the simulated
//! homelab. Only `app`, `ui` and `tui` may use ratatui or crossterm.

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
pub mod sim;
pub mod sources;
#[cfg(any(test, feature = "test-util"))]
pub mod testing;
pub mod tui;
pub mod ui;
