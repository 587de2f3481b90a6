//! Starting the simulated homelab in a test, and reading it as the app does.
#![allow(dead_code)]

use std::path::Path;

use homeinfra_tui::base::Env;
use homeinfra_tui::sim::{self, SimHandle, SimOptions};

/// The process-wide TLS provider (ring), once.
pub fn init_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Start the simulator with these scenarios (by name) and time scale; its files go in `dir`.
pub async fn start_in(scenarios: &[&str], speed: f64, dir: &Path) -> SimHandle {
    init_crypto();
    let names: Vec<String> = scenarios.iter().map(|s| s.to_string()).collect();
    let opts = SimOptions {
        scenarios: sim::scenario::parse_all(&names).unwrap(),
        speed,
        ..Default::default()
    };
    sim::start(opts, dir).await.unwrap()
}

/// Start the simulator with these scenario values in a new temporary directory.
pub async fn start_with(
    scenarios: Vec<sim::Scenario>,
    speed: f64,
) -> (SimHandle, tempfile::TempDir) {
    init_crypto();
    let dir = tempfile::tempdir().unwrap();
    let opts = SimOptions {
        scenarios,
        speed,
        ..Default::default()
    };
    let h = sim::start(opts, dir.path()).await.unwrap();
    (h, dir)
}

/// Start the simulator with these options in a new temporary directory.
pub async fn start_opts(opts: SimOptions) -> (SimHandle, tempfile::TempDir) {
    init_crypto();
    let dir = tempfile::tempdir().unwrap();
    let h = sim::start(opts, dir.path()).await.unwrap();
    (h, dir)
}

/// Start the simulator with these scenarios (by name) in a new temporary directory.
pub async fn start(scenarios: &[&str], speed: f64) -> (SimHandle, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let h = start_in(scenarios, speed, dir.path()).await;
    (h, dir)
}

/// The config and inventory the simulator wrote, loaded as the app loads them.
pub fn env(h: &SimHandle) -> Env {
    let (config, path) = homeinfra_tui::config::load(Some(&h.config_path())).unwrap();
    let inventory = homeinfra_tui::inventory::load(&h.hosts_path()).unwrap();
    let mut env = Env::new(config, inventory);
    env.config_path = path;
    env
}

/// `check --json` by the real binary against the simulator, with its own HOME under `home`:
/// (exit code, the document).
pub async fn check_json(h: &SimHandle, home: &Path) -> (i32, serde_json::Value) {
    // The simulator's config gives etcd 1 s, as a real LAN would; an in-process simulator on
    // a loaded test machine may take longer to answer, which is not what these tests check.
    let mut cfg: toml::Value =
        toml::from_str(&std::fs::read_to_string(h.config_path()).unwrap()).unwrap();
    cfg["etcd"]["timeout_ms"] = toml::Value::Integer(5000);
    std::fs::create_dir_all(home).unwrap();
    let cfg_path = home.join("check-config.toml");
    std::fs::write(&cfg_path, toml::to_string(&cfg).unwrap()).unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_homeinfra-tui"))
        .arg("--config")
        .arg(&cfg_path)
        .arg("--hosts")
        .arg(h.hosts_path())
        .args(["check", "--json", "--timeout", "10"])
        .env("HOME", home)
        .env("XDG_STATE_HOME", home.join("state"))
        .env("XDG_CONFIG_HOME", home.join("cfg"))
        .env_remove("KUBECONFIG")
        .output()
        .await
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    (out.status.code().unwrap_or(-1), doc)
}
