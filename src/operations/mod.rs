//! Operations that change things or take long: closure diffs, cordon, the rolling upgrade.
//! Each runs as a task and streams progress events; nothing here draws.

pub mod closure_diff;
pub mod diff_task;
pub mod upgrade;
pub mod upgrade_task;
