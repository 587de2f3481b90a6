//! Every bad input gives a clear error and a non-zero exit from the real binary, never a panic.

use std::path::Path;
use std::process::Command;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(dir: &Path, args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_homeinfra-tui"))
        .args(args)
        .current_dir(dir)
        .env("HOME", dir)
        .env("XDG_CONFIG_HOME", dir.join("cfg"))
        .env("XDG_STATE_HOME", dir.join("state"))
        .env_remove("KUBECONFIG")
        .output()
        .unwrap();
    let r = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert!(!r.stderr.contains("panicked"), "panic: {}", r.stderr);
    r
}

fn good_hosts(dir: &Path) {
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("hosts.json"),
        dir.join("hosts.json"),
    )
    .unwrap();
}

#[test]
fn example_inventory_checks_clean_offline() {
    let d = tempfile::tempdir().unwrap();
    good_hosts(d.path());
    let r = run(d.path(), &["--offline", "check"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("OK: 4 hosts"), "{}", r.stdout);
    let r = run(d.path(), &["--offline", "check", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["status"], "ok");
}

#[test]
fn missing_inventory() {
    let d = tempfile::tempdir().unwrap();
    let r = run(d.path(), &["--offline", "check"]);
    assert_eq!(r.code, 3);
    assert!(
        r.stderr
            .starts_with("error: hosts.json: cannot read inventory:"),
        "{}",
        r.stderr
    );
}

#[test]
fn inventory_errors_name_file_host_and_field() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("bad.json"),
        "{\n  \"h1\": {\"hostname\": \"a\",}\n}\n",
    )
    .unwrap();
    let r = run(d.path(), &["--offline", "--hosts", "bad.json", "check"]);
    assert_eq!(r.code, 3);
    assert!(
        r.stderr
            .starts_with("error: bad.json:2:26: invalid JSON: trailing comma"),
        "{}",
        r.stderr
    );

    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("hosts.json"))
        .unwrap()
        .replace("192.0.2.12", "10.0.0.300");
    std::fs::write(d.path().join("ip.json"), text).unwrap();
    let r = run(
        d.path(),
        &["--offline", "--hosts", "ip.json", "check", "--json"],
    );
    assert_eq!(r.code, 3);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["status"], "unknown");
    assert_eq!(
        v["findings"][0]["message"],
        "ip.json: host \"instance_2\": field \"ip\": \"10.0.0.300\" is not an IPv4 address"
    );
    // the dashboard refuses it the same way, before touching the terminal
    let r = run(d.path(), &["--offline", "--hosts", "ip.json"]);
    assert_eq!(r.code, 3);
    assert!(
        r.stderr
            .contains("field \"ip\": \"10.0.0.300\" is not an IPv4 address"),
        "{}",
        r.stderr
    );
}

#[test]
fn inventory_warnings_are_findings() {
    let d = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("hosts.json"))
        .unwrap()
        .replace("\"aarch64-linux\"", "\"aarch64-darwin\"");
    std::fs::write(d.path().join("hosts.json"), text).unwrap();
    let r = run(d.path(), &["--offline", "check"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(
        r.stdout.contains("inventory.unknown_system"),
        "{}",
        r.stdout
    );
}

#[test]
fn config_errors() {
    let d = tempfile::tempdir().unwrap();
    good_hosts(d.path());
    let r = run(d.path(), &["--offline", "--config", "nope.toml", "check"]);
    assert_eq!(r.code, 3);
    assert!(
        r.stderr
            .starts_with("error: nope.toml: cannot read config:"),
        "{}",
        r.stderr
    );

    std::fs::write(d.path().join("c.toml"), "[etcd]\ntimeout_ms = \"fast\"\n").unwrap();
    let r = run(d.path(), &["--offline", "--config", "c.toml", "check"]);
    assert_eq!(r.code, 3);
    assert!(
        r.stderr
            .starts_with("error: c.toml:2:14: key \"etcd.timeout_ms\": invalid type"),
        "{}",
        r.stderr
    );

    std::fs::write(d.path().join("k.toml"), "[ui.keys]\nx = \"explode\"\n").unwrap();
    let r = run(d.path(), &["--offline", "--config", "k.toml"]);
    assert_eq!(r.code, 3);
    assert!(
        r.stderr
            .contains("k.toml: key \"ui.keys.x\": \"explode\" is not an action"),
        "{}",
        r.stderr
    );

    // the default config file may be absent, but when present it is checked too
    std::fs::create_dir_all(d.path().join("cfg/homeinfra-tui")).unwrap();
    std::fs::write(
        d.path().join("cfg/homeinfra-tui/config.toml"),
        "[grafana]\n",
    )
    .unwrap();
    let r = run(d.path(), &["--offline", "check"]);
    assert_eq!(r.code, 3);
    assert!(
        r.stderr.contains("config.toml:1:") && r.stderr.contains("unknown field `grafana`"),
        "{}",
        r.stderr
    );
}

#[test]
fn theme_errors() {
    let d = tempfile::tempdir().unwrap();
    good_hosts(d.path());
    std::fs::write(
        d.path().join("t.toml"),
        "[styles]\nok = { fg = \"greenish\" }\n",
    )
    .unwrap();
    let r = run(d.path(), &["--offline", "--theme", "t.toml"]);
    assert_eq!(r.code, 3);
    assert!(r.stderr.starts_with("error: t.toml:2:"), "{}", r.stderr);
    assert!(r.stderr.contains("key \"styles.ok\""), "{}", r.stderr);
}

#[test]
fn dashboard_without_a_terminal_says_so() {
    let d = tempfile::tempdir().unwrap();
    good_hosts(d.path());
    let r = run(d.path(), &["--offline"]);
    assert_eq!(r.code, 3);
    assert!(
        r.stderr.contains("the dashboard needs a terminal"),
        "{}",
        r.stderr
    );
}

#[test]
fn usage_errors_and_unknown_scenario() {
    let d = tempfile::tempdir().unwrap();
    good_hosts(d.path());
    let r = run(d.path(), &["frobnicate"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("unrecognized subcommand"), "{}", r.stderr);
    let r = run(d.path(), &["demo", "--scenario", "meteor-strike"]);
    assert_eq!(r.code, 3);
    assert!(
        r.stderr.contains(
            "unknown scenario \"meteor-strike\"; valid scenarios: healthy, degraded-volume"
        ),
        "{}",
        r.stderr
    );
    let r = run(d.path(), &["--help"]);
    assert_eq!(r.code, 0);
    for sub in ["dashboard", "demo", "sim", "check", "diff", "upgrade"] {
        assert!(r.stdout.contains(sub), "--help lacks {sub}: {}", r.stdout);
    }
}
