//! The real binary in a real terminal (tmux): keys in, screen out, terminal restored after
//! `q`, SIGTERM, a panic (UI thread or background task), and when the terminal goes away;
//! Ctrl-Z, SIGTSTP and `fg` under a shell with job control.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub(crate) struct Tmux {
    sock: PathBuf,
    pub(crate) dir: tempfile::TempDir,
}

impl Tmux {
    pub(crate) fn new() -> Option<Tmux> {
        common::require_program("tmux")?;
        let dir = tempfile::tempdir().unwrap();
        Some(Tmux {
            sock: dir.path().join("tmux.sock"),
            dir,
        })
    }

    pub(crate) fn cmd(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-S")
            .arg(&self.sock)
            .arg("-f")
            .arg("/dev/null")
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Start the dashboard in a new session; the shell prints a marker before and the exit
    /// code after, so we can see the main screen come back.
    pub(crate) fn start(&self, name: &str, extra: &str) {
        self.start_with_env(name, "", extra);
    }

    /// The command line that runs the dashboard (`env` are extra `NAME=value` words) and
    /// leaves its pid in `<name>.pid`.
    fn command(&self, name: &str, env: &str, extra: &str) -> String {
        let bin = env!("CARGO_BIN_EXE_homeinfra-tui");
        let hosts = Path::new(env!("CARGO_MANIFEST_DIR")).join("hosts.json");
        let d = self.dir.path().display();
        format!(
            "sh -c 'echo $$ > {d}/{name}.pid; exec env XDG_CONFIG_HOME={d}/cfg XDG_STATE_HOME={d}/state HOME={d} {env} {bin} --hosts {hosts} {extra}'",
            hosts = hosts.display()
        )
    }

    fn start_with_env(&self, name: &str, env: &str, extra: &str) {
        let script = format!(
            "printf 'BEFORE-MARKER\\n'; {}; rc=$?; printf '\\r\\nEXIT=%s\\r\\n' $rc; sleep 60",
            self.command(name, env, extra)
        );
        self.cmd(&[
            "new-session",
            "-d",
            "-s",
            name,
            "-x",
            "100",
            "-y",
            "30",
            &script,
        ]);
    }

    /// Start the binary with exactly these arguments (no default `--hosts`) in a session of
    /// this size; the same marker, pid file and exit line as [`Tmux::start`].
    pub(crate) fn start_sized(&self, name: &str, w: u16, h: u16, args: &str) {
        let bin = env!("CARGO_BIN_EXE_homeinfra-tui");
        let d = self.dir.path().display();
        let script = format!(
            "printf 'BEFORE-MARKER\\n'; sh -c 'echo $$ > {d}/{name}.pid; exec env XDG_CONFIG_HOME={d}/cfg XDG_STATE_HOME={d}/state HOME={d} {bin} {args}'; rc=$?; printf '\\r\\nEXIT=%s\\r\\n' $rc; sleep 60"
        );
        self.cmd(&[
            "new-session",
            "-d",
            "-s",
            name,
            "-x",
            &w.to_string(),
            "-y",
            &h.to_string(),
            &script,
        ]);
    }

    /// The `XDG_STATE_HOME` of the binaries started here.
    pub(crate) fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// Start the dashboard from an interactive shell with job control (as a user would: Ctrl-Z
    /// stops the job and the shell takes the terminal back). Returns once it is drawn.
    fn start_in_shell(&self, name: &str, extra: &str) {
        let bash = common::require_program("bash").unwrap();
        self.cmd(&[
            "new-session",
            "-d",
            "-s",
            name,
            "-x",
            "100",
            "-y",
            "30",
            &format!("env PS1='$ ' {} --norc --noprofile -i", bash.display()),
        ]);
        // (capture-pane drops the prompt's trailing space)
        self.wait_for(name, "$");
        self.type_line(name, "printf 'BEFORE-MARKER\\n'");
        self.wait_for(name, "BEFORE-MARKER");
        self.type_line(name, &self.command(name, "", extra));
        self.wait_for(name, "satellite_1");
        assert_eq!(self.flag(name, "#{alternate_on}"), "1");
    }

    /// The shell has the terminal: main screen, cursor shown, the job stopped.
    fn assert_stopped(&self, name: &str) {
        let s = self.wait_for(name, "Stopped");
        assert!(s.contains("BEFORE-MARKER"), "main screen not back:\n{s}");
        assert_eq!(self.flag(name, "#{alternate_on}"), "0", "{s}");
        assert_eq!(
            self.flag(name, "#{cursor_flag}"),
            "1",
            "cursor hidden:\n{s}"
        );
        let st = Command::new("ps")
            .args(["-o", "stat=", "-p", &self.pid(name).to_string()])
            .output()
            .unwrap();
        let st = String::from_utf8_lossy(&st.stdout).trim().to_string();
        assert!(st.starts_with('T'), "not stopped: {st:?}");
    }

    /// `fg`: the dashboard is back on the alternate screen, drawn whole, and answers keys.
    fn assert_fg(&self, name: &str) {
        self.type_line(name, "fg");
        self.wait_for(name, "satellite_1");
        let s = self.wait_for(name, "no findings");
        assert!(!s.contains("BEFORE-MARKER"), "not redrawn whole:\n{s}");
        assert_eq!(self.flag(name, "#{alternate_on}"), "1");
        self.keys(name, &["?"]);
        self.wait_for(name, "Keys — any key closes");
        self.keys(name, &["j"]);
        self.wait_gone(name, "Keys — any key closes");
    }

    /// Type `line` (literally, not as key names) and Enter.
    fn type_line(&self, name: &str, line: &str) {
        self.cmd(&["send-keys", "-t", name, "-l", line]);
        self.keys(name, &["Enter"]);
    }

    pub(crate) fn screen(&self, name: &str) -> String {
        self.cmd(&["capture-pane", "-p", "-t", name])
    }

    pub(crate) fn wait_for(&self, name: &str, needle: &str) -> String {
        self.wait_for_secs(name, needle, 20)
    }

    pub(crate) fn wait_for_secs(&self, name: &str, needle: &str, secs: u64) -> String {
        let end = Instant::now() + Duration::from_secs(secs);
        loop {
            let s = self.screen(name);
            if s.contains(needle) {
                return s;
            }
            assert!(Instant::now() < end, "never saw {needle:?}; screen:\n{s}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub(crate) fn wait_gone(&self, name: &str, needle: &str) {
        let end = Instant::now() + Duration::from_secs(20);
        loop {
            let s = self.screen(name);
            if !s.contains(needle) {
                return;
            }
            assert!(
                Instant::now() < end,
                "{needle:?} never went away; screen:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub(crate) fn keys(&self, name: &str, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", name];
        args.extend_from_slice(keys);
        self.cmd(&args);
    }

    pub(crate) fn flag(&self, name: &str, fmt: &str) -> String {
        self.cmd(&["display", "-p", "-t", name, fmt])
            .trim()
            .to_string()
    }

    pub(crate) fn pid(&self, name: &str) -> i32 {
        let p = self.dir.path().join(format!("{name}.pid"));
        std::fs::read_to_string(p).unwrap().trim().parse().unwrap()
    }

    pub(crate) fn assert_restored(&self, name: &str, exit: &str) {
        let s = self.wait_for(name, exit);
        assert!(
            s.contains("BEFORE-MARKER"),
            "main screen not restored:\n{s}"
        );
        assert_eq!(
            self.flag(name, "#{alternate_on}"),
            "0",
            "still on the alternate screen"
        );
        assert_eq!(
            self.flag(name, "#{cursor_flag}"),
            "1",
            "cursor still hidden"
        );
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .arg("-S")
            .arg(&self.sock)
            .arg("kill-server")
            .output();
    }
}

#[test]
fn keys_work_and_q_restores_the_terminal() {
    let Some(t) = Tmux::new() else { return };
    t.start("a", "--offline");
    let s = t.wait_for("a", "satellite_1");
    assert!(s.contains("homeinfra-tui"), "{s}");
    assert!(s.contains("no findings"), "{s}");
    assert_eq!(t.flag("a", "#{alternate_on}"), "1");

    t.keys("a", &["?"]);
    t.wait_for("a", "Keys — any key closes");
    t.keys("a", &["j"]);
    t.wait_gone("a", "Keys — any key closes");
    t.keys("a", &["/", "s", "a", "t", "Enter"]);
    t.wait_for("a", "(1/4) /sat");
    t.keys("a", &["Enter"]);
    t.wait_for("a", "Hosts › satellite_1");
    // One Esc at a time: two in a row read as Alt-Esc.
    t.keys("a", &["Escape"]);
    t.wait_for("a", "(1/4) /sat ");
    t.keys("a", &["Escape"]);
    t.wait_for("a", "Hosts (4)");
    t.keys("a", &["2"]);
    t.wait_for("a", "Kubernetes: offline");
    t.keys("a", &["Tab"]);
    t.wait_for("a", "etcd: offline");
    t.keys("a", &["q"]);
    t.assert_restored("a", "EXIT=0");
}

#[test]
fn ctrl_c_quits() {
    let Some(t) = Tmux::new() else { return };
    t.start("c", "--offline");
    t.wait_for("c", "satellite_1");
    t.keys("c", &["C-c"]);
    t.assert_restored("c", "EXIT=0");
}

#[test]
fn sigterm_restores_the_terminal() {
    let Some(t) = Tmux::new() else { return };
    t.start("b", "--offline");
    t.wait_for("b", "satellite_1");
    let pid = t.pid("b");
    Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status()
        .unwrap();
    t.assert_restored("b", "EXIT=0");
}

#[test]
fn exits_when_the_terminal_goes_away() {
    let Some(t) = Tmux::new() else { return };
    t.start("h", "--offline");
    t.wait_for("h", "satellite_1");
    let pid = t.pid("h");
    t.cmd(&["kill-session", "-t", "h"]);
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let stat = Command::new("ps")
            .args(["-o", "stat=", "-p", &pid.to_string()])
            .output()
            .unwrap();
        let st = String::from_utf8_lossy(&stat.stdout).trim().to_string();
        if st.is_empty() || st.starts_with('Z') {
            break;
        }
        assert!(
            Instant::now() < end,
            "still running ({st}) after its terminal went away"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn bad_theme_is_a_clear_error_before_the_screen_changes() {
    let Some(t) = Tmux::new() else { return };
    t.start("t", "--offline --theme neon");
    let s = t.wait_for("t", "EXIT=3");
    assert!(s.contains("error: unknown theme \"neon\""), "{s}");
}

#[test]
fn demo_shows_the_simulated_cluster() {
    let Some(t) = Tmux::new() else { return };
    t.start("d", "demo");
    let s = t.wait_for("d", "demo (simulated homelab)");
    assert!(!s.contains("offline"), "{s}");
    t.keys("d", &["2"]);
    let s = t.wait_for("d", "v1.31");
    assert!(s.contains("node1") && s.contains("Ready"), "{s}");
    t.keys("d", &["3"]);
    t.wait_for("d", "3/3 healthy");
    t.keys("d", &["q"]);
    t.assert_restored("d", "EXIT=0");
}

/// Without nix anywhere on `PATH`: the Hosts pane's DRIFT column shows the drifted host and
/// the others' pending update, and `d` shows the classified closure diff.
#[test]
fn demo_without_nix_shows_drift_and_diffs() {
    let Some(t) = Tmux::new() else { return };
    let empty = t.dir.path().join("empty-path");
    std::fs::create_dir_all(&empty).unwrap();
    t.start_with_env(
        "n",
        &format!("PATH={}", empty.display()),
        "demo --scenario drifted-host",
    );
    t.wait_for("n", "demo (simulated homelab)");
    let s = t.wait_for("n", "drifted");
    assert!(s.contains("DRIFT") && s.contains("update"), "{s}");
    // The health line counts the drifted host, a warning (in one of its forms at 100 columns);
    // the hosts with a pending update are not drift.
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let s = t.screen("n");
        let line = s.lines().nth(1).unwrap_or_default();
        if ["▲ 1 host drifted: ", "▲ 1 drift", "▲1 drift"]
            .iter()
            .any(|f| line.contains(f))
        {
            assert!(!line.contains("update"), "{s}");
            break;
        }
        assert!(
            Instant::now() < end,
            "no drifted host in the health line: {s}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The first host is selected: its diff, classified.
    t.keys("n", &["d"]);
    let s = t.wait_for("n", "Reboot required");
    assert!(s.contains("Service restarts"), "{s}");
    assert!(!s.contains("cannot run"), "{s}");
    t.keys("n", &["q"]);
}

#[test]
fn cordon_and_uncordon_a_node_in_the_demo() {
    let Some(t) = Tmux::new() else { return };
    t.start("k", "demo --speed 20");
    t.wait_for("k", "demo (simulated homelab)");
    t.keys("k", &["2"]);
    t.wait_for("k", "v1.31");
    t.keys("k", &["c"]);
    t.wait_for("k", "Cordon node1? New pods will not be scheduled there.");
    t.keys("k", &["y"]);
    t.wait_for("k", "node1 cordoned");
    // the watch brings it back: the finding names the annotation the engine's cordon step set
    t.wait_for("k", "node node1 is cordoned by hand");
    t.keys("k", &["c"]);
    t.wait_for("k", "Uncordon node1?");
    t.keys("k", &["n"]);
    t.wait_for("k", "cancelled");
    t.keys("k", &["c"]);
    t.wait_for("k", "Uncordon node1?");
    t.keys("k", &["y"]);
    t.wait_for("k", "node1 uncordoned");
    t.keys("k", &["q"]);
    t.assert_restored("k", "EXIT=0");
}

#[test]
fn read_only_refuses_cordon() {
    let Some(t) = Tmux::new() else { return };
    t.start("r", "--read-only demo");
    t.wait_for("r", "READ-ONLY");
    t.keys("r", &["2"]);
    t.wait_for("r", "v1.31");
    t.keys("r", &["c"]);
    t.wait_for("r", "read-only mode: cordon and uncordon are disabled");
    t.keys("r", &["q"]);
    t.assert_restored("r", "EXIT=0");
}

#[test]
fn rolling_upgrade_plan_run_and_abort_in_the_demo() {
    let Some(t) = Tmux::new() else { return };
    t.start("u", "demo --speed 50");
    t.wait_for("u", "demo (simulated homelab)");
    t.keys("u", &["U"]);
    let s = t.wait_for("u", "Dry run: nothing has changed");
    assert!(s.contains("1. sat1 (agent)  every guard passes now"), "{s}");
    assert!(
        s.contains("(init, etcd leader)"),
        "the leader goes last: {s}"
    );
    t.keys("u", &["y"]);
    t.wait_for("u", "Start the rolling upgrade of 4 node(s)?");
    t.keys("u", &["y"]);
    // the first node goes all the way through, live
    let s = t.wait_for_secs("u", "upgrade 1/4", 90);
    assert!(s.contains("sat1") && s.contains("switch✓"), "{s}");
    t.keys("u", &["a"]);
    t.wait_for("u", "Abort the upgrade at the next safe point?");
    t.keys("u", &["y"]);
    let s = t.wait_for_secs("u", "run ABORTED: aborted by the operator", 90);
    assert!(
        s.contains("sat1          done"),
        "the finished node stays done: {s}"
    );
    // back on the dashboard, the header keeps the outcome
    t.keys("u", &["Escape"]);
    t.wait_gone("u", "Rolling upgrade");
    t.wait_for("u", "upgrade ");
    t.keys("u", &["q"]);
    t.assert_restored("u", "EXIT=0");
}

#[test]
fn ctrl_z_and_sigtstp_leave_the_screen_and_fg_brings_the_dashboard_back() {
    let Some(t) = Tmux::new() else { return };
    t.start_in_shell("z", "--offline");
    t.keys("z", &["C-z"]);
    t.assert_stopped("z");
    t.assert_fg("z");
    // Stopped from outside (`kill -TSTP`), not by the key: the same, terminal first.
    let pid = t.pid("z");
    Command::new("kill")
        .arg("-TSTP")
        .arg(pid.to_string())
        .status()
        .unwrap();
    t.assert_stopped("z");
    t.assert_fg("z");
    t.keys("z", &["q"]);
    t.wait_gone("z", "satellite_1");
    t.type_line("z", "echo EXIT=$?");
    t.assert_restored("z", "EXIT=0");
}

/// A panic (F12 with the tests' `HOMEINFRA_TEST_PANIC`, compiled in with the `test-util`
/// feature only): the terminal restored, the report printed, the process gone with 101.
fn panic_restores_the_terminal_and_ends_the_process(name: &str, kind: &str, message: &str) {
    let Some(t) = Tmux::new() else { return };
    // No backtrace: the report fits the screen, above it the marker the shell printed.
    t.start_with_env(
        name,
        &format!("HOMEINFRA_TEST_PANIC={kind} RUST_BACKTRACE=0 RUST_LIB_BACKTRACE=0"),
        "--offline",
    );
    t.wait_for(name, "satellite_1");
    t.keys(name, &["F12"]);
    t.assert_restored(name, "EXIT=101");
    let s = t.screen(name);
    assert!(s.contains(message), "no panic report:\n{s}");
}

#[test]
fn a_panic_on_the_ui_thread_restores_the_terminal_and_exits() {
    panic_restores_the_terminal_and_ends_the_process("pu", "ui", "test panic on the UI thread");
}

#[test]
fn a_panic_in_a_background_task_restores_the_terminal_and_exits() {
    panic_restores_the_terminal_and_ends_the_process(
        "pt",
        "task",
        "test panic in a background task",
    );
}

/// The column beside the run follows the dashboard's sources: the node the run reboots goes
/// NotReady (its kubelet stops reporting) and its etcd member down, then both come back.
#[test]
fn the_upgrade_view_shows_live_health_beside_the_run_while_a_node_reboots() {
    let Some(t) = Tmux::new() else { return };
    t.start_sized(
        "h",
        120,
        35,
        &format!(
            "--hosts {} demo --speed 5",
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("hosts.json")
                .display()
        ),
    );
    t.wait_for_secs("h", "demo (simulated homelab)", 30);
    t.keys("h", &["U"]);
    t.wait_for_secs("h", "Dry run: nothing has changed", 60);
    t.keys("h", &["y"]);
    t.wait_for("h", "Start the rolling upgrade");
    t.keys("h", &["y"]);
    // Beside the run: etcd and its quorum, the volumes, every node.
    t.wait_for_secs("h", "live health", 60);
    let s = t.wait_for_secs("h", "3/3 healthy — tolerates 1 failure", 60);
    assert!(s.contains(" sat1 Ready"), "{s}");
    // A control plane reboots: the column shows its etcd member down (quorum with no failure
    // to spare) or its node NotReady, then healthy again, the run still in view.
    let end = Instant::now() + Duration::from_secs(240);
    loop {
        let s = t.screen("h");
        let column_down = s.contains("2/3 healthy — no further failure tolerated")
            || ["sat1", "node1", "node2", "node3"]
                .iter()
                .any(|n| s.contains(&format!(" {n} NotReady")));
        if column_down {
            assert!(s.contains("Rolling upgrade") && s.contains("reboot"), "{s}");
            break;
        }
        assert!(
            Instant::now() < end,
            "the column never showed a host down: {s}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let s = t.wait_for_secs("h", "3/3 healthy — tolerates 1 failure", 120);
    assert!(s.contains("live health"), "{s}");
    // The health line stays above the view.
    assert!(s.lines().nth(1).is_some_and(|l| l.contains("etcd")), "{s}");
    t.wait_for_secs("h", "run finished", 300);
    // Esc and q apart (together they read as Alt-q).
    t.keys("h", &["Escape"]);
    t.wait_gone("h", "live health");
    t.keys("h", &["q"]);
    t.assert_restored("h", "EXIT=0");
}
