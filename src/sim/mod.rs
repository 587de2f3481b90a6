//! The simulated homelab (simulator issue): a live model of the cluster served over the same
//! protocols as the real one — the Kubernetes API over HTTPS (with Longhorn's CRDs), and the
//! etcd JSON gateway per member — so the app's real clients talk to it as to k3s.
//!
//! Layout: `store` (objects, versions, watch history), `build` (the initial world),
//! `world` (controllers: evictions, owners, PDBs, reboots, Longhorn, etcd), `api` (HTTP),
//! `etcd` (gateway), `table` (kubectl's columns), `select`, `patch`, `tls`, `hosts`,
//! `scenario`, `ssh` (each host's SSH server, answering the app's `probes`), `promql` and
//! `loki` (the Prometheus and Loki faces), `observe` (mounting them), `sync` (poison-tolerant
//! locks). Everything binds to 127.0.0.x only.
//!
//! Control API (same server and credentials as the Kubernetes API):
//! - `GET /sim/v1/state`: hosts (up, rebooting, never_returns, unreachable, reboot_needed),
//!   etcd members and leader, active scenarios, endpoints;
//! - `GET /sim/v1/requests`: every write the Kubernetes API received (`requests`: method,
//!   path, time, status) and every SSH command the hosts received (`ssh`: host, id, kind,
//!   mutating, command, time);
//! - `GET /sim/v1/scenarios`; `POST /sim/v1/faults` `{"scenario": "NAME"}` injects one,
//!   `DELETE /sim/v1/faults/NAME` clears it; `GET /sim/v1/faults`: each face's fault
//!   (`hang=FACE`, `garbage=FACE`, `http-500=FACE`, `slow=FACE:SECONDS`, `flap=FACE:SECONDS`)
//!   and since when, the watch faults, `ssh-cut` and `host-key-changed` hosts (`faults`);
//! - `POST /sim/v1/hosts/NAME/reboot`: the host goes NotReady, its etcd member and Longhorn
//!   replicas stop, and it comes back (unless `node-never-returns`), replicas rebuild;
//! - `/sim/v1/nix/...`: the simulated store and flake (`systems`): each host's system
//!   evaluated or built, and for two systems the text of `nix store diff-closures`, their boot
//!   links and `nix path-info -S --json` (`api::nix`). The config `sim` writes says
//!   `[nix] closure_source = "sim"`, so the app diffs closures without nix.

pub mod alertmanager;
pub mod api;
pub mod build;
pub mod etcd;
pub mod faults;
pub mod hosts;
pub mod loki;
pub mod observe;
pub mod patch;
pub mod promql;
pub mod resources;
pub mod scenario;
pub mod select;
pub mod ssh;
pub mod store;
pub mod sync;
pub mod systems;
pub mod table;
pub mod tls;
pub mod world;

use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use color_eyre::eyre::{Result, WrapErr, eyre};
use serde_json::json;
use tokio_util::sync::CancellationToken;

pub use scenario::Scenario;
pub use world::World;

use crate::inventory::Inventory;

/// How to build the simulated homelab.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Generate this many hosts (3 servers + agents) instead of using `inventory`.
    pub nodes: Option<usize>,
    pub scenarios: Vec<Scenario>,
    /// Time scale for every delay (2 = twice as fast).
    pub speed: f64,
    /// Hosts to simulate (moved onto loopback); default: the blog's 3 + 1 cluster.
    pub inventory: Option<Inventory>,
    /// Port of the API server on 127.0.0.1 (0 = any free port).
    pub port: u16,
    /// Pods per node and volumes beyond the defaults (`--pods-per-node`, `--volumes`).
    pub scale: build::Scale,
    /// Nothing moves by itself (`--frozen`): see [`World::frozen`].
    pub frozen: bool,
}

impl Default for SimOptions {
    fn default() -> Self {
        Self {
            nodes: None,
            scenarios: Vec::new(),
            speed: 1.0,
            inventory: None,
            port: 0,
            scale: build::Scale::default(),
            frozen: false,
        }
    }
}

impl SimOptions {
    /// Options for `--nodes`, `--scenario` names and `--speed`; unknown scenarios and bad
    /// speeds are errors.
    pub fn new(
        nodes: Option<usize>,
        scenarios: &[String],
        speed: f64,
        hosts: Option<Inventory>,
    ) -> Result<Self> {
        let scenarios = scenario::parse_all(scenarios).map_err(|e| eyre!(e))?;
        if !(speed > 0.0 && speed.is_finite()) {
            return Err(eyre!("--speed must be a positive number, not {speed}"));
        }
        Ok(Self {
            nodes,
            scenarios,
            speed,
            inventory: hosts,
            ..Self::default()
        })
    }
}

/// A running simulator. Dropping it without `shutdown` leaves its tasks running until the
/// runtime ends.
pub struct SimHandle {
    world: Arc<World>,
    stop: CancellationToken,
    controllers: tokio::task::JoinHandle<()>,
    dir: PathBuf,
    api_url: String,
    token: String,
    ca_pem: String,
    etcd_urls: Vec<String>,
    ssh: crate::config::SshConfig,
    ssh_face: ssh::SshFace,
}

impl SimHandle {
    /// The `[ssh]` settings that reach the simulated hosts (also in `config.toml`).
    pub fn ssh_config(&self) -> &crate::config::SshConfig {
        &self.ssh
    }

    /// The hosts' SSH servers (per-host quirks: failed units, weak sshd, failing switch).
    pub fn ssh(&self) -> &ssh::SshFace {
        &self.ssh_face
    }

    pub fn kubeconfig_path(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.join("config.toml")
    }

    pub fn hosts_path(&self) -> PathBuf {
        self.dir.join("hosts.json")
    }

    /// `https://127.0.0.1:PORT`.
    pub fn api_url(&self) -> String {
        self.api_url.clone()
    }

    /// A bearer token the API accepts (also in `DIR/token`).
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The CA certificate (PEM) the API server's certificate chains to.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The etcd members' client URLs (`http://127.0.0.N:PORT`).
    pub fn etcd_urls(&self) -> &[String] {
        &self.etcd_urls
    }

    /// The world, for in-process tests and the demo (faults, reboots, state).
    pub fn world(&self) -> &Arc<World> {
        &self.world
    }

    /// The hosts as simulated (loopback addresses).
    pub fn inventory(&self) -> &Inventory {
        &self.world.inventory
    }

    /// Stop serving and stop the controllers.
    pub async fn shutdown(self) {
        self.stop.cancel();
        self.controllers.abort();
        let _ = self.controllers.await;
    }
}

fn random_token() -> String {
    use rand::Rng as _;
    let mut rng = rand::rng();
    (0..40)
        .map(|_| {
            let c = rng.random_range(0..36u8);
            (if c < 10 { b'0' + c } else { b'a' + c - 10 }) as char
        })
        .collect()
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s.as_bytes())
}

fn write_file(path: &Path, text: &str, private: bool) -> Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let _ = private;
    let mut f = opts
        .open(path)
        .wrap_err_with(|| format!("cannot write {}", path.display()))?;
    f.write_all(text.as_bytes())
        .wrap_err_with(|| format!("cannot write {}", path.display()))
}

/// The kubeconfig kubectl and kube-rs use: the sim's CA and a k3s-style admin client cert.
pub fn kubeconfig_text(server: &str, ca_pem: &str, cert_pem: &str, key_pem: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    certificate-authority-data: {}\n    server: {server}\n  name: homeinfra-sim\ncontexts:\n- context:\n    cluster: homeinfra-sim\n    user: homeinfra-sim-admin\n  name: homeinfra-sim\ncurrent-context: homeinfra-sim\npreferences: {{}}\nusers:\n- name: homeinfra-sim-admin\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\n",
        b64(ca_pem),
        b64(cert_pem),
        b64(key_pem)
    )
}

/// The app's config pointing every source at the sim.
pub fn config_text(
    dir: &Path,
    api_url: &str,
    etcd_urls: &[String],
    faces: Option<(&str, &str)>,
    ssh: Option<&crate::config::SshConfig>,
) -> Result<String> {
    let mut c = crate::config::Config::default();
    // The simulated hosts accept any flake reference; nothing fetches it.
    c.nix.flake = Some("github:homelab/infra".into());
    // A simulated cluster settles fast: don't make the demo's upgrade wait half a minute a node.
    c.upgrade.settle_secs = 3;
    if let Some((mimir, loki)) = faces {
        c.mimir.url = Some(mimir.to_string());
        c.mimir.tenant = Some("homelab".into());
        c.loki.url = Some(loki.to_string());
        c.loki.tenant = Some("homelab".into());
        // The Alertmanager face on the same port as Mimir's, as Mimir serves it.
        c.alertmanager.url = Some(format!(
            "{}/alertmanager",
            mimir.trim_end_matches('/').trim_end_matches("/prometheus")
        ));
        c.alertmanager.tenant = Some("homelab".into());
    }
    // Closures come from the simulator's store (its control API): no nix needed.
    c.nix.closure_source = crate::config::ClosureSourceKind::Sim;
    c.nix.sim_url = Some(api_url.to_string());
    c.nix.sim_ca_file = Some(dir.join("ca.crt"));
    c.nix.sim_token_file = Some(dir.join("token"));
    c.kubernetes.kubeconfig = Some(dir.join("kubeconfig"));
    c.kubernetes.context = Some("homeinfra-sim".into());
    c.etcd.endpoints = etcd_urls.to_vec();
    c.etcd.metrics_urls = etcd_urls.iter().map(|u| format!("{u}/metrics")).collect();
    match ssh {
        Some(ssh) => c.ssh = ssh.clone(),
        // No SSH face: don't dial the hosts' port 22.
        None => c.ssh.enabled = false,
    }
    let body = toml::to_string(&c).wrap_err("cannot write the simulator's config")?;
    Ok(format!(
        "# Written by `homeinfra-tui sim`: every source points at the simulated homelab.\n{body}"
    ))
}

/// Start the simulator: bind the API server on 127.0.0.1 and each etcd member on its host's
/// loopback address, write `dir/kubeconfig`, `dir/config.toml`, `dir/hosts.json`, `dir/token`,
/// and serve each host's SSH face (`ssh`: `dir/ssh/id_ed25519`, `dir/ssh/known_hosts`).
pub async fn start(opts: SimOptions, dir: &Path) -> Result<SimHandle> {
    let inventory = match (&opts.inventory, opts.nodes) {
        (_, Some(n)) => hosts::generated_inventory(n),
        (Some(inv), None) => hosts::to_loopback(inv),
        (None, None) => hosts::default_inventory(),
    };
    if !inventory.hosts.iter().any(|h| h.role.is_control_plane()) {
        return Err(eyre!(
            "the simulated cluster needs at least one control plane (role init or server)"
        ));
    }
    std::fs::create_dir_all(dir).wrap_err_with(|| format!("cannot create {}", dir.display()))?;
    let dir = dir.to_path_buf();
    let world = World::build(inventory, opts.speed, &opts.scale, opts.frozen)
        .map_err(|e| eyre!("cannot build the simulated cluster: {}", e.message))?;
    for sc in &opts.scenarios {
        world
            .apply_scenario(sc)
            .map_err(|e| eyre!("scenario {sc}: {}", e.message))?;
    }
    let stop = CancellationToken::new();
    let listener =
        tokio::net::TcpListener::bind(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), opts.port))
            .await
            .wrap_err_with(|| format!("cannot listen on 127.0.0.1:{}", opts.port))?;
    let addr = listener.local_addr().wrap_err("no local address")?;
    let api_url = format!("https://{addr}");
    let tls = tls::generate(&[IpAddr::V4(Ipv4Addr::LOCALHOST)])?;
    let etcd_urls = etcd::start(world.clone(), stop.clone()).await?;
    let faces = observe::start(world.clone(), stop.clone()).await?;
    let ssh_face = ssh::start(world.clone(), stop.clone(), &dir).await?;
    let token = random_token();
    let info = json!({"api": api_url, "etcd": etcd_urls});
    let router = api::router(api::Api {
        world: world.clone(),
        token: Arc::new(token.clone()),
        info: Arc::new(info),
        ssh: ssh_face.request_log(),
    });
    tokio::spawn(api::serve_tls(
        listener,
        tls.server_config.clone(),
        router,
        stop.clone(),
    ));
    let controllers = world.spawn();

    write_file(
        &dir.join("kubeconfig"),
        &kubeconfig_text(
            &api_url,
            &tls.ca_pem,
            &tls.client_cert_pem,
            &tls.client_key_pem,
        ),
        true,
    )?;
    write_file(&dir.join("token"), &format!("{token}\n"), true)?;
    write_file(&dir.join("ca.crt"), &tls.ca_pem, false)?;
    write_file(
        &dir.join("config.toml"),
        &config_text(
            &dir,
            &api_url,
            &etcd_urls,
            Some((&faces.mimir_url, &faces.loki_url)),
            Some(&ssh_face.client_config()),
        )?,
        false,
    )?;
    let hosts_json = serde_json::to_string_pretty(&world.inventory.to_json())
        .wrap_err("cannot serialize hosts.json")?;
    write_file(&dir.join("hosts.json"), &format!("{hosts_json}\n"), false)?;
    Ok(SimHandle {
        world,
        stop,
        controllers,
        dir,
        api_url,
        token,
        ca_pem: tls.ca_pem,
        etcd_urls,
        ssh: ssh_face.client_config(),
        ssh_face,
    })
}
