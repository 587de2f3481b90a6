//! The facts script over a real sshd against real fixture paths: a private sshd runs in its
//! own mount namespace (`unshare -m`) where `/run/current-system`, `/run/booted-system` and the
//! system profile point into real Nix store paths built offline by nix-build.

use crate::common::ssh as ssh_support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use homeinfra_tui::config::{SshConfig, Thresholds};
use homeinfra_tui::inventory::{Host, Inventory, Role};
use homeinfra_tui::model::host::HostFacts;
use homeinfra_tui::model::{self, Severity, Snapshot, Sourced};
use homeinfra_tui::sources::ssh::{HostsClient, facts};
use ssh_support::*;

const FIXTURES: &str = r#"
let
  system = builtins.currentSystem;
  mk = name: script: derivation {
    inherit name system; builder = "/bin/sh"; PATH = "/usr/bin:/bin"; args = [ "-c" script ];
  };
  kernel = v: mk "linux-${v}" "mkdir -p $out; echo ${v} > $out/bzImage";
  modules = v: mk "linux-${v}-modules" "mkdir -p $out/lib/modules/${v}";
  initrd = v: mk "initrd-linux-${v}" "mkdir -p $out; echo ${v} > $out/initrd";
  sys = ver: k: mk "nixos-system-homeinfra-test-${ver}" ''
    mkdir -p $out
    ln -s ${kernel k}/bzImage $out/kernel
    ln -s ${initrd k}/initrd $out/initrd
    ln -s ${modules k} $out/kernel-modules
    printf '%s' ${ver} > $out/nixos-version
  '';
in {
  old = sys "24.05.1" "6.6.1";
  new = sys "24.05.2" "6.6.8";
  # A new system generation with the very same kernel, initrd and modules.
  same_boot = sys "24.05.3" "6.6.1";
}
"#;

struct Fixtures {
    _dir: tempfile::TempDir,
    old: PathBuf,
    new: PathBuf,
    same_boot: PathBuf,
}

fn is_root() -> bool {
    // SAFETY: getuid has no preconditions.
    unsafe { libc::getuid() == 0 }
}

fn build_fixtures() -> Option<Fixtures> {
    let conf = common::require_env("HOMEINFRA_TEST_NIX_CONF_DIR", "the offline nix config")?;
    common::require_program("nix-build")?;
    common::require_program("unshare")?;
    if !is_root() {
        common::skip_or_fail("the mount-namespace sshd needs root");
        return None;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("fixtures.nix");
    std::fs::write(&file, FIXTURES).expect("write fixtures.nix");
    let build = |attr: &str| -> PathBuf {
        let link = dir.path().join(attr);
        let out = Command::new("nix-build")
            .env("NIX_CONF_DIR", &conf)
            .arg(&file)
            .args(["-A", attr, "-o"])
            .arg(&link)
            .output()
            .expect("run nix-build");
        assert!(
            out.status.success(),
            "nix-build {attr}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::read_link(&link).expect("result link")
    };
    let f = Fixtures {
        old: build("old"),
        new: build("new"),
        same_boot: build("same_boot"),
        _dir: dir,
    };
    assert!(f.old.starts_with("/nix/store/"), "{:?}", f.old);
    Some(f)
}

/// Commands that run inside the new mount namespace before sshd: a fresh /run with the two
/// system links, a system profile at generation `generation`, and the k3s token secret.
fn namespace_setup(
    booted: &Path,
    current: &Path,
    generation: u32,
    bind_sshd_config: bool,
) -> String {
    let mut s = format!(
        "mount -t tmpfs homeinfra-test-run /run\n\
         mkdir -m 755 /run/sshd\n\
         ln -s {booted} /run/booted-system\n\
         ln -s {current} /run/current-system\n\
         mkdir -p -m 755 /run/secrets && echo not-a-real-token > /run/secrets/k3s_token\n\
         mkdir -p /nix/var/nix/profiles\n\
         mount -t tmpfs homeinfra-test-profiles /nix/var/nix/profiles\n\
         ln -s {current} /nix/var/nix/profiles/system-{generation}-link\n\
         ln -s system-{generation}-link /nix/var/nix/profiles/system\n",
        booted = booted.display(),
        current = current.display(),
    );
    if bind_sshd_config {
        // `sshd -T` on the host then reports this server's effective settings.
        s.push_str("mount --bind \"$SSHD_CONFIG\" /etc/ssh/sshd_config\n");
    }
    s
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn inv_host(id: &str, role: Role, port: u16, user: &str) -> Host {
    common::ssh_host(id, role, [192, 0, 2, 50].into(), port, user)
}

/// Gather facts from `sshd` as `user` through the public client API.
fn gather(sshd: &PrivateSshd, user: &str, key: &Path) -> HostFacts {
    gather_sudo(sshd, user, key, true)
}

fn gather_sudo(sshd: &PrivateSshd, user: &str, key: &Path, sudo: bool) -> HostFacts {
    let cfg = SshConfig {
        sudo,
        ..Default::default()
    };
    let t = target(
        "node",
        "127.0.0.1",
        sshd.port,
        user,
        Some(key),
        &sshd.known_hosts,
    );
    let client =
        HostsClient::with_targets(&cfg, settings(), BTreeMap::from([("node".to_string(), t)]));
    rt().block_on(client.facts("node"))
        .unwrap_or_else(|e| panic!("facts: {e}\nsshd log:\n{}", sshd.log()))
}

fn findings(h: Host, f: HostFacts) -> Vec<model::Finding> {
    let mut s = Sourced::configured();
    s.record(Ok(f), jiff::Timestamp::now());
    let snap = Snapshot {
        hosts: BTreeMap::from([(h.id.clone(), s)]),
        ..Default::default()
    };
    let inv = Inventory {
        hosts: vec![h],
        ..Default::default()
    };
    model::assess(&snap, &inv, &Thresholds::default(), jiff::Timestamp::now())
}

#[test]
fn reboot_needed_when_the_kernel_changed() {
    let Some(s) = shared() else { return };
    let Some(fx) = build_fixtures() else { return };
    let sshd = PrivateSshd::start(Some(namespace_setup(&fx.old, &fx.new, 7, false)));
    let f = gather(&sshd, &s.user, &s.key);
    assert_eq!(f.parse_issues, Vec::<String>::new(), "{f:#?}");
    assert_eq!(f.current_system.as_deref(), fx.new.to_str());
    assert_eq!(f.booted_system.as_deref(), fx.old.to_str());
    assert_eq!(f.nixos_version.as_deref(), Some("24.05.2"));
    assert_eq!(f.generation, Some(7));
    let k_new = std::fs::read_link(fx.new.join("kernel")).unwrap();
    let k_old = std::fs::read_link(fx.old.join("kernel")).unwrap();
    assert_eq!(f.current_boot.kernel.as_deref(), k_new.to_str());
    assert_eq!(f.booted_boot.kernel.as_deref(), k_old.to_str());
    assert!(
        f.current_boot.complete() && f.booted_boot.complete(),
        "{f:#?}"
    );
    assert_eq!(f.reboot_needed, Some(true));
    assert_eq!(f.reboot_reasons, vec!["kernel", "initrd", "kernel-modules"]);
    // Real /proc and df on this machine.
    assert!(f.uptime_secs.is_some() && f.load.is_some() && f.root_fs_used_pct.is_some());
    assert!(f.hostname.is_some());
    // No systemd here: unknown, quietly.
    assert_eq!(f.failed_units, None);
    // The test user may not sudo: privileged parts are unknown, never errors.
    assert_eq!(f.privileged, Some(false));
    assert_eq!(f.posture.sshd, None);
    assert_eq!(f.posture.k3s_token_present, Some(true));
    let l = f.posture.listening.as_ref().expect("ss works unprivileged");
    assert!(
        l.iter()
            .any(|x| x.port == sshd.port && x.address == "127.0.0.1"),
        "{l:?}"
    );

    let out = findings(inv_host("node", Role::Agent, sshd.port, &s.user), f);
    let codes: Vec<(&str, Severity)> = out.iter().map(|x| (x.code.as_str(), x.severity)).collect();
    assert!(
        codes.contains(&("host.reboot_needed", Severity::Warning)),
        "{codes:?}"
    );
    assert!(
        codes.contains(&("host.posture_unknown", Severity::Info)),
        "{codes:?}"
    );
    assert!(
        !codes.iter().any(|(c, _)| *c == "host.facts_unreadable"),
        "{out:#?}"
    );
}

#[test]
fn no_reboot_when_only_the_system_changed_and_real_posture_as_root() {
    let Some(s) = shared() else { return };
    let Some(fx) = build_fixtures() else { return };
    // Root may log in with the test key (from a file in the test's own directory).
    let dir = tempfile::tempdir().unwrap();
    let pubkey =
        std::fs::read_to_string(format!("{}.pub", s.key.display())).expect("test key .pub");
    let ak = dir.path().join("root_authorized_keys");
    std::fs::write(&ak, pubkey).unwrap();
    let extra = format!(
        "PermitRootLogin prohibit-password\nAllowUsers operator root\nStrictModes no\n\
         AuthorizedKeysFile .ssh/authorized_keys {}\n",
        ak.display()
    );
    let sshd = PrivateSshd::start_with(
        Some(namespace_setup(&fx.old, &fx.same_boot, 12, true)),
        &extra,
    );

    let f = gather(&sshd, "root", &s.key);
    assert_eq!(f.parse_issues, Vec::<String>::new(), "{f:#?}");
    assert_eq!(f.nixos_version.as_deref(), Some("24.05.3"));
    assert_eq!(f.generation, Some(12));
    assert_ne!(f.current_system, f.booted_system);
    assert_eq!(f.reboot_needed, Some(false), "{f:#?}");
    assert_eq!(f.privileged, Some(true));
    // Real `sshd -T` of this server's config.
    let sshd_t = f.posture.sshd.as_ref().expect("sshd -T as root");
    assert_eq!(
        sshd_t.get("passwordauthentication").map(String::as_str),
        Some("no")
    );
    // OpenSSH 9.2 prints prohibit-password under its old name.
    let root_login = sshd_t.get("permitrootlogin").map(String::as_str);
    assert!(
        matches!(root_login, Some("prohibit-password" | "without-password")),
        "{root_login:?}"
    );
    assert_eq!(sshd_t.get("x11forwarding").map(String::as_str), Some("no"));
    assert_eq!(
        sshd_t.get("port").map(String::as_str),
        Some(sshd.port.to_string().as_str())
    );
    // As root, firewall and fail2ban are known (read, or not installed).
    assert!(f.posture.firewall.is_some(), "{:?}", f.posture);
    assert!(f.posture.fail2ban.is_some(), "{:?}", f.posture);
    assert_eq!(f.posture.k3s_token_present, Some(true));
    let l = f.posture.listening.as_ref().unwrap();
    let mine = l
        .iter()
        .find(|x| x.port == sshd.port)
        .expect("own port listed");
    assert!(
        mine.process.as_deref().unwrap_or("").contains("sshd"),
        "{mine:?}"
    );

    let out = findings(inv_host("node", Role::Agent, sshd.port, "root"), f.clone());
    let codes: Vec<(&str, Severity)> = out.iter().map(|x| (x.code.as_str(), x.severity)).collect();
    assert!(
        !codes.iter().any(|(c, _)| *c == "host.reboot_needed"),
        "{codes:?}"
    );
    assert!(
        codes.contains(&("host.sshd_permit_root_login", Severity::Warning)),
        "{codes:?}"
    );
    assert!(
        !codes
            .iter()
            .any(|(c, _)| *c == "host.sshd_password_authentication"),
        "{codes:?}"
    );
    if f.posture.firewall.as_ref().is_some_and(|fw| !fw.active) {
        assert!(
            codes.contains(&("host.firewall_inactive", Severity::Critical)),
            "{codes:?}"
        );
    }
}

#[test]
fn sudo_n_gives_the_posture_when_allowed() {
    let Some(s) = shared() else { return };
    let Some(fx) = build_fixtures() else { return };
    if common::require_program("sudo").is_none() {
        return;
    }
    // Inside the server's mount namespace only: a sudoers.d that lets the test user sudo.
    let sudoers = tempfile::tempdir().unwrap();
    std::fs::write(
        sudoers.path().join("homeinfra-test"),
        format!("{} ALL=(root) NOPASSWD: ALL\n", s.user),
    )
    .unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            sudoers.path().join("homeinfra-test"),
            std::fs::Permissions::from_mode(0o440),
        )
        .unwrap();
    }
    let setup = format!(
        "{}mount --bind {} /etc/sudoers.d\n",
        namespace_setup(&fx.old, &fx.new, 5, true),
        sudoers.path().display()
    );
    let sshd = PrivateSshd::start(Some(setup));
    let f = gather_sudo(&sshd, &s.user, &s.key, true);
    assert_eq!(f.parse_issues, Vec::<String>::new(), "{f:#?}");
    assert_eq!(f.privileged, Some(true), "sudo -n was not used");
    let sshd_t = f.posture.sshd.as_ref().expect("sshd -T through sudo -n");
    assert_eq!(
        sshd_t.get("passwordauthentication").map(String::as_str),
        Some("no")
    );
    assert_eq!(
        sshd_t.get("permitrootlogin").map(String::as_str),
        Some("no")
    );
    assert!(
        f.posture.firewall.is_some() && f.posture.fail2ban.is_some(),
        "{:?}",
        f.posture
    );

    // `[ssh] sudo = false`: the same host, no sudo, posture unknown.
    let f = gather_sudo(&sshd, &s.user, &s.key, false);
    assert_eq!(f.privileged, Some(false));
    assert_eq!(f.posture.sshd, None);
}

#[test]
fn same_system_booted_and_current() {
    let Some(s) = shared() else { return };
    let Some(fx) = build_fixtures() else { return };
    let sshd = PrivateSshd::start(Some(namespace_setup(&fx.new, &fx.new, 3, false)));
    let f = gather(&sshd, &s.user, &s.key);
    assert_eq!(f.current_system, f.booted_system);
    assert_eq!(f.reboot_needed, Some(false));
    assert_eq!(f.generation, Some(3));
}

#[test]
fn facts_on_a_non_nixos_host_are_unknown_not_errors() {
    // The shared sshd runs on plain Debian: no /run/current-system, no systemd.
    let Some(s) = shared() else { return };
    let cfg = SshConfig::default();
    let t = target(
        "plain",
        &s.host,
        s.port,
        &s.user,
        Some(&s.key),
        &s.known_hosts,
    );
    let client =
        HostsClient::with_targets(&cfg, settings(), BTreeMap::from([("plain".to_string(), t)]));
    let f = rt().block_on(client.facts("plain")).expect("facts");
    assert_eq!(f.parse_issues, Vec::<String>::new());
    assert_eq!(
        (f.current_system.as_deref(), f.reboot_needed, f.generation),
        (None, None, None)
    );
    assert!(f.uptime_secs.is_some());
}

#[test]
fn the_script_runs_locally_with_real_tools() {
    // The same script through a local `sh` (as the test user, root here): real `sshd -T`,
    // `ss`, `df`, /proc. Guards against shell syntax errors and tool output drift.
    let out = Command::new("sh")
        .arg("-c")
        .arg(facts::script(false))
        .output()
        .expect("run sh");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("syntax error"), "{stderr}");
    let f = facts::parse(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(f.parse_issues, Vec::<String>::new(), "{f:#?}");
    assert!(f.hostname.is_some() && f.uptime_secs.is_some());
    if is_root()
        && Path::new("/usr/sbin/sshd").exists()
        && Path::new("/etc/ssh/sshd_config").exists()
    {
        let sshd = f.posture.sshd.as_ref().expect("sshd -T as root");
        assert!(sshd.contains_key("passwordauthentication"), "{sshd:?}");
    }
    let _ = Duration::from_secs(0);
}
