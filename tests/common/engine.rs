//! Helpers for the tests of the engine as its own process: the simulator in a process of its
//! own (`sim --dir`), fast upgrade settings, a raw client of a run's control socket (the
//! protocol as documented, no library code), journals, and the cluster's end state.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use homeinfra_tui::operations::upgrade::journal;
use homeinfra_tui::operations::upgrade::live::{KubeCluster, drain_client};
use homeinfra_tui::operations::upgrade::{ClusterRead, RunOutcome};

pub const BIN: &str = env!("CARGO_BIN_EXE_homeinfra-tui");

/// `homeinfra-tui sim --dir DIR` in its own process, killed on drop.
pub struct SimProcess {
    child: Child,
    pub dir: tempfile::TempDir,
}

impl SimProcess {
    /// Start it (the built-in cluster: node1..node4) and wait for its `ready`.
    pub fn start(speed: f64) -> SimProcess {
        let dir = tempfile::Builder::new()
            .prefix("homeinfra-simproc-")
            .tempdir()
            .unwrap();
        let mut child = Command::new(BIN)
            .arg("--hosts")
            .arg(dir.path().join("no-such-hosts.json"))
            .arg("--log-file")
            .arg(dir.path().join("sim.log"))
            .args(["sim", "--dir"])
            .arg(dir.path().join("sim"))
            .args(["--speed", &speed.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(out).read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "ready", "the simulator did not start");
        let sim = SimProcess { child, dir };
        fast_config(&sim.config());
        sim
    }

    pub fn files(&self) -> PathBuf {
        self.dir.path().join("sim")
    }

    pub fn config(&self) -> PathBuf {
        self.files().join("config.toml")
    }

    pub fn hosts(&self) -> PathBuf {
        self.files().join("hosts.json")
    }
}

impl Drop for SimProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// No settling between nodes, look again every second.
pub fn fast_config(cfg_path: &Path) {
    let mut cfg: toml::Value = toml::from_str(&std::fs::read_to_string(cfg_path).unwrap()).unwrap();
    let up = cfg
        .as_table_mut()
        .unwrap()
        .entry("upgrade")
        .or_insert_with(|| toml::Value::Table(Default::default()))
        .as_table_mut()
        .unwrap();
    up.insert("settle_secs".into(), toml::Value::Integer(0));
    up.insert("poll_secs".into(), toml::Value::Integer(1));
    std::fs::write(cfg_path, toml::to_string(&cfg).unwrap()).unwrap();
}

/// The journal directory under an `XDG_STATE_HOME`.
pub fn runs_dir(state: &Path) -> PathBuf {
    state.join("homeinfra-tui/runs")
}

/// The run ids with a journal there.
pub fn run_ids(state: &Path) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(runs_dir(state)) else {
        return Vec::new();
    };
    let mut v: Vec<String> = rd
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".jsonl"))
                .map(str::to_string)
        })
        .collect();
    v.sort();
    v
}

/// Wait for the one run there to have a journal.
pub fn wait_run_id(state: &Path, secs: u64) -> String {
    let end = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(id) = run_ids(state).pop() {
            return id;
        }
        assert!(
            Instant::now() < end,
            "no journal in {}",
            runs_dir(state).display()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Wait until the journal of `run_id` says how the run ended.
pub fn wait_finished(state: &Path, run_id: &str, secs: u64) -> RunOutcome {
    let path = journal::path_of(&runs_dir(state), run_id);
    let end = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Ok(s) = journal::summarize(&path)
            && let Some(o) = s.finished
        {
            return o;
        }
        assert!(
            Instant::now() < end,
            "run {run_id} did not finish within {secs}s; journal:\n{}",
            std::fs::read_to_string(&path).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Whether process `pid` is alive (and not a zombie).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.split(' ').next())
            .is_some_and(|st| st != "Z" && st != "X"),
        Err(_) => false,
    }
}

/// Wait until process `pid` is gone.
pub fn wait_dead(pid: u32, secs: u64) {
    let end = Instant::now() + Duration::from_secs(secs);
    while alive(pid) {
        assert!(
            Instant::now() < end,
            "process {pid} still runs after {secs}s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Wait until `path` is gone.
pub fn wait_gone(path: &Path, secs: u64) {
    let end = Instant::now() + Duration::from_secs(secs);
    while path.exists() {
        assert!(
            Instant::now() < end,
            "{} still there after {secs}s",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A client of a run's control socket that speaks the protocol by hand: JSON lines.
pub struct RawClient {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    pub hello: serde_json::Value,
}

impl RawClient {
    pub fn connect(path: &Path) -> RawClient {
        let s =
            UnixStream::connect(path).unwrap_or_else(|e| panic!("connect {}: {e}", path.display()));
        s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
        let writer = s.try_clone().unwrap();
        let mut reader = BufReader::new(s);
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        let hello = v["hello"].clone();
        assert!(hello.is_object(), "the first line is a hello: {line}");
        RawClient {
            reader,
            writer,
            hello,
        }
    }

    /// The next line (`None`: the server closed).
    pub fn next(&mut self) -> Option<serde_json::Value> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => None,
            Ok(_) => Some(serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"))),
            Err(e) => panic!("reading the control socket: {e}"),
        }
    }

    /// Read up to the first line `pred` accepts; every line read, that one last.
    pub fn until(&mut self, pred: impl Fn(&serde_json::Value) -> bool) -> Vec<serde_json::Value> {
        let mut out = Vec::new();
        while let Some(v) = self.next() {
            let stop = pred(&v);
            out.push(v);
            if stop {
                return out;
            }
        }
        panic!("the socket closed before the line looked for; read: {out:#?}");
    }

    pub fn send(&mut self, line: &str) {
        self.writer.write_all(line.as_bytes()).unwrap();
        self.writer.write_all(b"\n").unwrap();
    }

    pub fn next_seq(&self) -> u64 {
        self.hello["next_seq"].as_u64().unwrap()
    }

    pub fn pid(&self) -> u32 {
        self.hello["pid"].as_u64().unwrap() as u32
    }
}

/// Whether a line is an event of this kind (`step_finished`, `run_finished`, …).
pub fn is_event(v: &serde_json::Value, kind: &str) -> bool {
    v["event"] == kind
}

/// The nodes left cordoned and the lock's holder, read from the cluster.
pub async fn cluster_end_state(config: &Path, nodes: &[String]) -> (Vec<String>, Option<String>) {
    let (cfg, _) = homeinfra_tui::config::load(Some(config)).unwrap();
    let c = KubeCluster::from_client(drain_client(&cfg.kubernetes).await.unwrap());
    let mut cordoned = Vec::new();
    for n in nodes {
        if c.node(n).await.unwrap().unschedulable {
            cordoned.push(n.clone());
        }
    }
    let lease = c.get_lease().await.unwrap().map(|l| l.holder);
    (cordoned, lease)
}

/// The planned nodes of a run, from its journal.
pub fn planned_nodes(state: &Path, run_id: &str) -> Vec<String> {
    journal::summarize(&journal::path_of(&runs_dir(state), run_id))
        .unwrap()
        .plan
        .entries
        .iter()
        .map(|e| e.node.clone())
        .collect()
}

impl SimProcess {
    /// What the simulator received, from its control API: (Kubernetes writes, SSH commands,
    /// each with its `mutating` flag).
    pub fn requests(&self) -> (Vec<serde_json::Value>, Vec<serde_json::Value>) {
        let files = self.files();
        let kubeconfig = std::fs::read_to_string(files.join("kubeconfig")).unwrap();
        let server = kubeconfig
            .lines()
            .find_map(|l| l.trim().strip_prefix("server: "))
            .expect("the simulator's kubeconfig names its server")
            .to_string();
        let token = std::fs::read_to_string(files.join("token")).unwrap();
        let out = Command::new("curl")
            .args(["-sf", "-m", "10", "--cacert"])
            .arg(files.join("ca.crt"))
            .arg("-H")
            .arg(format!("Authorization: Bearer {}", token.trim()))
            .arg(format!("{server}/sim/v1/requests"))
            .output()
            .expect("curl runs");
        assert!(out.status.success(), "GET /sim/v1/requests failed");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        (
            v["requests"].as_array().cloned().unwrap_or_default(),
            v["ssh"].as_array().cloned().unwrap_or_default(),
        )
    }
}
