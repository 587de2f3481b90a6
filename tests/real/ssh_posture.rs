//! The hardening-posture half of the facts script against real tools: the script runs as root
//! in its own mount and network namespace (`unshare -m -n`), with a real nftables ruleset and a
//! real fail2ban server (dummy ban action, private socket and config) — nothing on the host is
//! touched. The SSH transport of the same script is tested in ssh_facts.rs.

use crate::common::ssh as ssh_support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use homeinfra_tui::config::Thresholds;
use homeinfra_tui::inventory::{Inventory, Role};
use homeinfra_tui::model::host::{Fail2ban, HostFacts};
use homeinfra_tui::model::{self, Severity, Snapshot, Sourced};
use homeinfra_tui::sources::ssh::facts;
use ssh_support::common;

/// NixOS's nftables firewall, in miniature.
const NIXOS_FW: &str = r#"
table inet nixos-fw {
  chain input {
    type filter hook input priority filter; policy drop;
    iifname "lo" accept
    ct state established,related accept
    tcp dport 22 accept
  }
}
"#;

fn is_root() -> bool {
    // SAFETY: getuid has no preconditions.
    unsafe { libc::getuid() == 0 }
}

fn tools() -> bool {
    for p in ["unshare", "nft", "fail2ban-server", "fail2ban-client"] {
        if common::require_program(p).is_none() {
            return false;
        }
    }
    if !is_root() {
        common::skip_or_fail("namespaces need root");
        return false;
    }
    true
}

/// Run the facts script (as root, no sudo) in fresh mount + network namespaces after `setup`.
fn run_in_namespace(dir: &Path, setup: &str, teardown: &str) -> HostFacts {
    let script = dir.join("facts.sh");
    std::fs::write(&script, facts::script(false)).unwrap();
    let out = dir.join("facts.out");
    let all = format!(
        "mount -t tmpfs homeinfra-posture-run /run\n{setup}\nsh {} > {} 2>{}/facts.err || true\n{teardown}\n",
        script.display(),
        out.display(),
        dir.display()
    );
    let st = Command::new("unshare")
        .args(["-m", "-n", "--propagation", "private", "sh", "-ec"])
        .arg(all)
        .status()
        .expect("run unshare");
    assert!(st.success(), "namespace setup failed");
    let text = std::fs::read_to_string(&out).unwrap();
    facts::parse(&text)
}

/// A private fail2ban: its own jail (dummy action, polling a file of ours), socket in the
/// namespace's /run, database in memory, log to stderr.
fn fail2ban_setup(dir: &Path, bans: &[&str]) -> (String, String) {
    let jail = dir.join("jail.d");
    let f2b = dir.join("fail2ban.d");
    std::fs::create_dir_all(&jail).unwrap();
    std::fs::create_dir_all(&f2b).unwrap();
    let authlog = dir.join("auth.log");
    std::fs::write(&authlog, "").unwrap();
    std::fs::write(
        jail.join("test.conf"),
        format!(
            "[sshd]\nenabled = true\nbackend = polling\nlogpath = {}\naction = dummy\n",
            authlog.display()
        ),
    )
    .unwrap();
    std::fs::write(
        f2b.join("test.conf"),
        "[Definition]\nlogtarget = STDERR\ndbfile = :memory:\n",
    )
    .unwrap();
    let mut setup = format!(
        "mkdir -p /run/fail2ban\n\
         mount --bind {} /etc/fail2ban/jail.d\n\
         mount --bind {} /etc/fail2ban/fail2ban.d\n\
         fail2ban-server -b >{}/f2b.log 2>&1\n\
         for i in $(seq 100); do fail2ban-client ping >/dev/null 2>&1 && break; sleep 0.1; done\n",
        jail.display(),
        f2b.display(),
        dir.display()
    );
    if !bans.is_empty() {
        setup.push_str(&format!(
            "fail2ban-client set sshd banip {} >/dev/null\n",
            bans.join(" ")
        ));
    }
    (setup, "fail2ban-client stop >/dev/null 2>&1 || true".into())
}

fn findings(f: HostFacts) -> Vec<(String, Severity)> {
    let h = homeinfra_tui::testing::host("n1", Role::Agent, [192, 0, 2, 5]);
    let mut s = Sourced::configured();
    s.record(Ok(f), jiff::Timestamp::now());
    let snap = Snapshot {
        hosts: BTreeMap::from([("n1".to_string(), s)]),
        ..Default::default()
    };
    let inv = Inventory {
        hosts: vec![h],
        ..Default::default()
    };
    model::assess(&snap, &inv, &Thresholds::default(), jiff::Timestamp::now())
        .into_iter()
        .map(|f| (f.code, f.severity))
        .collect()
}

#[test]
fn firewall_and_fail2ban_running() {
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("fw.nft");
    std::fs::write(&rules, NIXOS_FW).unwrap();
    let (f2b_setup, f2b_stop) = fail2ban_setup(dir.path(), &["192.0.2.7", "192.0.2.8"]);
    let setup = format!("nft -f {}\n{f2b_setup}", rules.display());
    let f = run_in_namespace(dir.path(), &setup, &f2b_stop);
    assert_eq!(f.parse_issues, Vec::<String>::new(), "{f:#?}");
    assert_eq!(f.privileged, Some(true));
    let fw = f.posture.firewall.clone().expect("firewall read as root");
    assert!(fw.active && fw.backend == "nftables", "{fw:?}");
    assert_eq!(
        f.posture.fail2ban,
        Some(Fail2ban::Running {
            jails: vec!["sshd".into()],
            banned: 2
        })
    );
    assert_eq!(f.posture.k3s_token_present, Some(false));
    // A fresh network namespace: nothing listens.
    assert_eq!(f.posture.listening, Some(vec![]));
    let codes = findings(f);
    assert!(
        !codes.iter().any(|(c, _)| c == "host.firewall_inactive"),
        "{codes:?}"
    );
    assert!(
        !codes.iter().any(|(c, _)| c == "host.fail2ban_not_running"),
        "{codes:?}"
    );
    assert!(
        codes.contains(&("host.k3s_token_missing".into(), Severity::Critical)),
        "{codes:?}"
    );
}

#[test]
fn no_firewall_and_fail2ban_stopped() {
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // Kubernetes-like chains only: an input hook that accepts, and INPUT jumps to KUBE-*.
    let rules = dir.path().join("kube.nft");
    std::fs::write(
        &rules,
        "table ip kube-proxy {\n  chain filter-input {\n    type filter hook input priority -110; policy accept;\n    ct state new counter\n  }\n}\n",
    )
    .unwrap();
    let setup = format!("nft -f {}\nmkdir -p /run/fail2ban", rules.display());
    let f = run_in_namespace(dir.path(), &setup, "");
    assert_eq!(f.parse_issues, Vec::<String>::new(), "{f:#?}");
    let fw = f.posture.firewall.clone().expect("firewall read as root");
    assert!(!fw.active, "{fw:?}");
    assert_eq!(f.posture.fail2ban, Some(Fail2ban::NotRunning));
    let codes = findings(f);
    assert!(
        codes.contains(&("host.firewall_inactive".into(), Severity::Critical)),
        "{codes:?}"
    );
    assert!(
        codes.contains(&("host.fail2ban_not_running".into(), Severity::Warning)),
        "{codes:?}"
    );
}

#[test]
fn iptables_policy_drop_counts_as_a_firewall() {
    if !tools() || common::require_program("iptables").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let f = run_in_namespace(dir.path(), "iptables -P INPUT DROP", "");
    let fw = f.posture.firewall.clone().expect("firewall read as root");
    assert!(fw.active, "{fw:?}");
}
