//! No network beyond in-process stand-ins: the upgrade engine on its in-memory world, scripted etcd/Loki/TLS servers, the layering rules.

#[path = "../common/mod.rs"]
mod common;

mod etcd_fake_gateway;
mod layering;
mod loki_client;
mod metrics_tls;
mod upgrade_engine;
mod upgrade_safety;
