//! Operations that change things or take long: closure diffs, cordon, the rolling upgrade.
//! Each streams progress events; the dashboard runs them through its task registry
//! (`crate::tasks`), the headless commands directly. Nothing here draws.

pub mod closure_diff;
pub mod upgrade;
