//! The simulated homelab (simulator issue): served over the same protocols as the real one.
pub mod loki;
pub mod promql;
