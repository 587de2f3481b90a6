//! The real binary as a user runs it: bad input, `sim`, headless `upgrade`, kill -9 and resume,
//! `upgrade --detach` / `--attach` and the run's control socket.

#[path = "../common/mod.rs"]
mod common;

mod cli_errors;
mod closure_plans;
mod config_cmd;
mod docs;
mod drain_cli;
mod sim_command;
mod upgrade_cli;
mod upgrade_cli_kill;
mod upgrade_detach;
