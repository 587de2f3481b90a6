//! No network beyond in-process stand-ins: the upgrade engine on its in-memory world, scripted etcd/Loki/TLS servers, the layering rules, the fuzz targets' regression cases.

#[path = "../common/mod.rs"]
mod common;

mod engine_support;
mod etcd_fake_gateway;
mod fuzz_corpus;
mod layering;
mod loki_client;
mod metrics_tls;
mod upgrade_engine;
mod upgrade_pacing;
mod upgrade_safety;
mod upgrade_snapshot;
