//! The engine as its own process (`upgrade --detach`, `--attach`) and its control socket,
//! against the simulator: every client gets the same events, numbered; a client that attaches
//! late reads the journal, then the socket, without a gap or a duplicate; controls over the
//! socket pause and abort the run; the socket is 0600 in a 0700 directory and gone after the
//! run; Ctrl-C in `--attach` detaches and the run goes on. Over the real sshd of the test
//! environment: a run started in an SSH session survives the session's end.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::engine::{
    BIN, RawClient, alive, cluster_end_state, fast_config, is_event, planned_nodes, runs_dir,
    wait_dead, wait_finished, wait_gone, wait_run_id,
};
use homeinfra_tui::operations::upgrade::RunOutcome;
use homeinfra_tui::operations::upgrade::journal;
use homeinfra_tui::operations::upgrade::process::socket_path;
use homeinfra_tui::sim::{self, SimHandle, SimOptions};

struct Rig {
    _sim: SimHandle,
    dir: tempfile::TempDir,
    state: tempfile::TempDir,
}

impl Rig {
    async fn start(speed: f64) -> Rig {
        crate::common::sim::init_crypto();
        let dir = tempfile::tempdir().unwrap();
        let state = tempfile::tempdir().unwrap();
        let sim = sim::start(
            SimOptions {
                speed,
                ..Default::default()
            },
            dir.path(),
        )
        .await
        .unwrap();
        fast_config(&dir.path().join("config.toml"));
        Rig {
            _sim: sim,
            dir,
            state,
        }
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("config.toml")
    }

    fn upgrade(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.arg("--config")
            .arg(self.config())
            .arg("--hosts")
            .arg(self.dir.path().join("hosts.json"))
            .arg("--log-file")
            .arg(self.state.path().join("log.txt"))
            .arg("upgrade")
            .args(args)
            .env("XDG_STATE_HOME", self.state.path())
            .env("HOME", self.state.path())
            .stdin(Stdio::null());
        c
    }

    fn runs(&self) -> PathBuf {
        runs_dir(self.state.path())
    }

    /// `upgrade --detach --yes --json ARGS`: the run id and the engine's pid.
    fn detach(&self, args: &[&str]) -> (String, u32) {
        let mut all = vec!["--detach", "--yes", "--json"];
        all.extend_from_slice(args);
        let o = self.upgrade(&all).output().unwrap();
        let out = String::from_utf8_lossy(&o.stdout);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{out}\n{}",
            String::from_utf8_lossy(&o.stderr)
        );
        let v: serde_json::Value = out
            .lines()
            .find_map(|l| serde_json::from_str(l).ok())
            .unwrap_or_else(|| panic!("no JSON line: {out}"));
        let d = &v["detached"];
        assert_eq!(d["started"], true, "{v}");
        (
            d["run_id"].as_str().unwrap().to_string(),
            d["pid"].as_u64().unwrap() as u32,
        )
    }
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// The events a client saw: the journal's (before its hello's `next_seq`) then its own live
/// ones, by sequence number.
fn view(
    journal_path: &Path,
    client_next: u64,
    live: &[serde_json::Value],
) -> Vec<(u64, serde_json::Value)> {
    let mut out: Vec<(u64, serde_json::Value)> = journaled(journal_path)
        .into_iter()
        .filter(|(s, _)| *s < client_next)
        .collect();
    for v in live.iter().filter(|v| v.get("event").is_some()) {
        let mut ev = v.clone();
        let seq = ev["seq"].as_u64().unwrap();
        let o = ev.as_object_mut().unwrap();
        o.remove("seq");
        o.remove("ts");
        out.push((seq, ev));
    }
    out
}

/// Every record of a journal: its number and its event.
fn journaled(journal_path: &Path) -> Vec<(u64, serde_json::Value)> {
    journal::read(journal_path)
        .unwrap()
        .into_iter()
        .map(|r| (r.seq.unwrap(), serde_json::to_value(&r.event).unwrap()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_socket_streams_every_event_to_every_client_and_takes_controls() {
    let rig = Rig::start(10.0).await;
    let (run_id, pid) = tokio::task::block_in_place(|| rig.detach(&[]));
    let sock = socket_path(&rig.runs(), &run_id);
    assert_eq!(mode(&sock), 0o600, "the socket is the operator's alone");
    assert_eq!(mode(&rig.runs()), 0o700, "so is its directory");
    assert_eq!(mode(&process_log(&rig.runs(), &run_id)), 0o600);
    let journal_path = journal::path_of(&rig.runs(), &run_id);

    let result = tokio::task::block_in_place(|| {
        // A: attached from the start (the run has started: its first events are journaled).
        let mut a = RawClient::connect(&sock);
        assert_eq!(a.hello["run_id"], run_id.as_str());
        assert_eq!(a.pid(), pid);
        assert!(a.next_seq() > 1, "RunStarted came before: {}", a.hello);
        let mut a_live = a.until(|v| is_event(v, "step_finished") && v["step"] == "drain");
        // B: attached late, in the middle of the first node.
        let mut b = RawClient::connect(&sock);
        assert!(b.next_seq() > a.next_seq());
        // A line that is not a control is refused, and named.
        b.send("pause please");
        let mut b_live = b.until(|v| v.get("error").is_some());
        assert!(
            b_live.last().unwrap()["error"]
                .as_str()
                .unwrap()
                .contains(r#"{"control":"pause"}"#),
            "{b_live:?}"
        );
        // Pause over the socket: the run stops after this node and waits.
        b.send(r#"{"control":"pause"}"#);
        b_live.extend(b.until(|v| v.get("ack").is_some()));
        assert_eq!(b_live.last().unwrap()["ack"]["control"], "pause");
        b_live.extend(b.until(|v| is_event(v, "waiting") && v["what"] == "paused"));
        a_live.extend(a.until(|v| is_event(v, "waiting") && v["what"] == "paused"));
        // Abort over the socket (A this time): the run ends; both hear the end, then EOF.
        a.send(r#"{"control":"abort"}"#);
        a_live.extend(a.until(|v| is_event(v, "run_finished")));
        b_live.extend(b.until(|v| is_event(v, "run_finished")));
        assert!(a.next().is_none(), "A: the server closes after the end");
        assert!(b.next().is_none(), "B: the server closes after the end");
        (a.next_seq(), a_live, b.next_seq(), b_live)
    });
    let (a_next, a_live, b_next, b_live) = result;
    let end = wait_finished(rig.state.path(), &run_id, 30);
    assert_eq!(
        end,
        RunOutcome::Aborted {
            reason: "aborted while paused".into()
        }
    );
    // The socket goes with the run, and so does the engine.
    wait_gone(&sock, 10);
    wait_dead(pid, 10);

    // Each client's live stream: every event, command output too, numbered without a gap.
    for (name, live) in [("A", &a_live), ("B", &b_live)] {
        let seqs: Vec<u64> = live.iter().filter_map(|v| v["seq"].as_u64()).collect();
        assert!(
            seqs.windows(2).all(|w| w[1] == w[0] + 1),
            "{name}: {seqs:?}"
        );
        assert!(
            live.iter().any(|v| is_event(v, "output")),
            "{name}: command output comes over the socket"
        );
    }
    // A and B saw the same events where they overlap.
    let a_view = view(&journal_path, a_next, &a_live);
    let b_view = view(&journal_path, b_next, &b_live);
    let a_by: BTreeMap<u64, &serde_json::Value> = a_view.iter().map(|(s, e)| (*s, e)).collect();
    let mut overlap = 0;
    for (s, e) in &b_view {
        if let Some(ae) = a_by.get(s) {
            assert_eq!(*ae, e, "seq {s}");
            overlap += 1;
        }
    }
    assert!(overlap > 10, "A and B overlap: {overlap}");
    // B (late): journal, then live — no duplicate, no gap.
    let seqs: Vec<u64> = b_view.iter().map(|(s, _)| *s).collect();
    assert!(
        seqs.windows(2).all(|w| w[1] > w[0]),
        "strictly increasing: {seqs:?}"
    );
    let b_but_output: Vec<(u64, serde_json::Value)> = b_view
        .into_iter()
        .filter(|(_, e)| e["event"] != "output")
        .collect();
    assert_eq!(
        b_but_output,
        journaled(&journal_path),
        "the late client saw every journaled event, once, in order"
    );
}

fn process_log(runs: &Path, run_id: &str) -> PathBuf {
    homeinfra_tui::operations::upgrade::process::log_path(runs, run_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attach_ctrl_c_detaches_and_the_run_goes_on() {
    let rig = Rig::start(10.0).await;
    let (run_id, pid) = tokio::task::block_in_place(|| rig.detach(&[]));
    let journal_path = journal::path_of(&rig.runs(), &run_id);
    tokio::task::block_in_place(|| {
        let mut attach = rig
            .upgrade(&["--attach", &run_id])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // It replays the journal first: the run's start, then live events.
        let mut lines = BufReader::new(attach.stdout.take().unwrap()).lines();
        let first = lines.next().unwrap().unwrap();
        assert!(
            first.starts_with(&format!("run {run_id} started")),
            "{first}"
        );
        let mut seen = 1;
        while seen < 6 {
            lines.next().unwrap().unwrap();
            seen += 1;
        }
        // Ctrl-C: it detaches (exit 0), the run does not stop.
        let before = journal::read(&journal_path).unwrap().len();
        signal(attach.id(), "INT");
        let st = attach.wait().unwrap();
        let mut err = String::new();
        std::io::Read::read_to_string(&mut attach.stderr.take().unwrap(), &mut err).unwrap();
        assert_eq!(st.code(), Some(0), "{err}");
        assert!(
            err.contains(&format!(
                "detached from run {run_id}: it goes on (engine pid {pid})"
            )),
            "{err}"
        );
        assert!(alive(pid), "the engine stopped with Ctrl-C in --attach");
        let end = Instant::now() + Duration::from_secs(60);
        while journal::read(&journal_path).unwrap().len() <= before + 2 {
            assert!(
                Instant::now() < end,
                "the run went no further after the detach"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        let s = journal::summarize(&journal_path).unwrap();
        assert!(s.finished.is_none(), "still running: {:?}", s.finished);
        // --attach --abort: follows to the end it asked for (exit 1: aborted).
        let o = rig
            .upgrade(&["--attach", &run_id, "--abort"])
            .output()
            .unwrap();
        let out = String::from_utf8_lossy(&o.stdout);
        assert_eq!(o.status.code(), Some(1), "{out}");
        assert!(
            out.contains("run ABORTED: aborted by the operator"),
            "{out}"
        );
        // A finished run: --attach says how it ended.
        wait_dead(pid, 20);
        let o = rig.upgrade(&["--attach", &run_id]).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert!(
            err.contains(&format!("run {run_id} is over: run ABORTED")),
            "{err}"
        );
    });
    let nodes = planned_nodes(rig.state.path(), &run_id);
    let (cordoned, lease) = cluster_end_state(&rig.config(), &nodes).await;
    assert!(
        cordoned.is_empty(),
        "an abort at a safe point leaves nothing cordoned: {cordoned:?}"
    );
    assert_eq!(lease, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_outlives_a_closed_standard_output() {
    let rig = Rig::start(20.0).await;
    let state = rig.state.path().to_path_buf();
    let run_id = tokio::task::block_in_place(|| {
        // Whoever read its output goes away after the first line (`| head -1`).
        let mut child = rig
            .upgrade(&["--yes", "--json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        out.read_line(&mut first).unwrap();
        assert!(first.contains("run_started"), "{first}");
        drop(out);
        drop(child.stderr.take());
        let run_id = wait_run_id(&state, 10);
        let outcome = wait_finished(&state, &run_id, 300);
        assert_eq!(
            outcome,
            RunOutcome::Completed,
            "with nobody reading its output"
        );
        let st = child.wait().unwrap();
        assert_eq!(st.code(), Some(0));
        run_id
    });
    let log = std::fs::read_to_string(state.join("log.txt")).unwrap_or_default();
    assert!(
        log.contains("standard output is gone")
            && log.contains(r#"{"event":"run_finished","outcome":{"status":"completed"}}"#),
        "the lines went to the log instead:\n{log}"
    );
    let nodes = planned_nodes(&state, &run_id);
    let (cordoned, lease) = cluster_end_state(&rig.config(), &nodes).await;
    assert!(cordoned.is_empty(), "{cordoned:?}");
    assert_eq!(lease, None);
    // Nothing to attach to any more, and no such run at all.
    let o = rig.upgrade(&["--attach", "no-such-run"]).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(err.contains("no run no-such-run"), "{err}");
}

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{sig} {pid}");
}

/// Give `path` and everything under it to `user` (the engine runs as that user over SSH).
fn chown_to(path: &Path, user: &str) {
    let ok = Command::new("chown")
        .arg("-R")
        .arg(user)
        .arg(path)
        .status()
        .unwrap()
        .success();
    assert!(ok, "chown -R {user} {}", path.display());
}

/// `ssh -tt` into the test sshd, running `command` there; stdout piped.
fn ssh_session(s: &crate::common::ssh::SharedSshd, command: &str) -> std::process::Child {
    Command::new("ssh")
        .arg("-tt")
        .args(["-p", &s.port.to_string()])
        .arg("-i")
        .arg(&s.key)
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", s.known_hosts.display()))
        .args([
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "LogLevel=ERROR",
        ])
        .arg(format!("{}@{}", s.user, s.host))
        .arg(command)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Read the session's output until a line contains `needle`.
fn read_until(out: &mut impl BufRead, needle: &str) -> String {
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        let n = out.read_line(&mut line).unwrap_or(0);
        assert!(n > 0, "the session ended before {needle:?}:\n{seen}");
        seen.push_str(&line);
        if line.contains(needle) {
            return seen;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_started_in_an_ssh_session_survives_the_sessions_end() {
    let Some(sshd) = crate::common::ssh::shared() else {
        return;
    };
    if crate::common::require_program("ssh").is_none() {
        return;
    }
    let rig = Rig::start(10.0).await;
    // The engine runs as the SSH user: it reads the simulator's files and writes its state.
    let base = tempfile::Builder::new()
        .prefix("homeinfra-ssh-run-")
        .tempdir_in("/tmp")
        .unwrap();
    let files = base.path().join("sim");
    let state = base.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let cp = Command::new("cp")
        .arg("-a")
        .arg(rig.dir.path())
        .arg(&files)
        .status()
        .unwrap();
    assert!(cp.success());
    // The config names the simulator's files by their old path: point it at the copies.
    let cfg_path = files.join("config.toml");
    let text = std::fs::read_to_string(&cfg_path).unwrap().replace(
        &rig.dir.path().display().to_string(),
        &files.display().to_string(),
    );
    std::fs::write(&cfg_path, text).unwrap();
    chown_to(base.path(), &sshd.user);
    std::fs::set_permissions(base.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let engine = |args: &str| {
        format!(
            "exec env HOME={st} XDG_STATE_HOME={st} {BIN} --config {cfg} --hosts {hosts} upgrade {args}",
            st = state.display(),
            cfg = cfg_path.display(),
            hosts = files.join("hosts.json").display(),
        )
    };

    // 1. In the foreground of the session: the session dies mid-run (the client is killed;
    //    sshd hangs up the terminal: SIGHUP, then writes to a dead terminal).
    let mut session = ssh_session(&sshd, &engine("--yes"));
    let mut out = BufReader::new(session.stdout.take().unwrap());
    read_until(&mut out, "drain");
    session.kill().unwrap();
    let _ = session.wait();
    let run_id = wait_run_id(&state, 10);
    let pid = RawClient::connect(&socket_path(&runs_dir(&state), &run_id)).pid();
    std::thread::sleep(Duration::from_secs(2));
    assert!(alive(pid), "the engine died with its SSH session");
    let outcome = tokio::task::block_in_place(|| wait_finished(&state, &run_id, 300));
    assert_eq!(outcome, RunOutcome::Completed, "after the session's end");
    let nodes = planned_nodes(&state, &run_id);
    let (cordoned, lease) = cluster_end_state(&rig.config(), &nodes).await;
    assert!(cordoned.is_empty(), "{cordoned:?}");
    assert_eq!(lease, None);
    let log =
        std::fs::read_to_string(state.join("homeinfra-tui/homeinfra-tui.log")).unwrap_or_default();
    assert!(
        log.contains("the run goes on"),
        "the engine noticed the terminal go and kept on, logging:\n{log}"
    );

    // 2. `--detach` in a session that then dies: the run is in a session of its own.
    let mut session = ssh_session(
        &sshd,
        &format!("{}; sleep 600", engine("--detach --yes")).replacen("exec ", "", 1),
    );
    let mut out = BufReader::new(session.stdout.take().unwrap());
    let said = read_until(&mut out, "follow it: homeinfra-tui upgrade --attach");
    session.kill().unwrap();
    let _ = session.wait();
    let run_id2 = run_id_in(&said);
    assert_ne!(run_id2, run_id);
    let outcome = tokio::task::block_in_place(|| wait_finished(&state, &run_id2, 300));
    assert_eq!(outcome, RunOutcome::Completed, "the detached run finished");
    let (cordoned, lease) = cluster_end_state(&rig.config(), &nodes).await;
    assert!(cordoned.is_empty(), "{cordoned:?}");
    assert_eq!(lease, None);
}

/// `run RUN runs in the background: …`.
fn run_id_in(said: &str) -> String {
    said.lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("run ")
                .and_then(|r| r.split(' ').next())
                .filter(|id| id.len() > 10)
        })
        .unwrap_or_else(|| panic!("no run id in: {said}"))
        .to_string()
}
