//! Loki: recent matching log lines per host.
