//! Closure diffs against REAL Nix (nix-bin 2.8, offline): fixture "systems" built from tiny
//! derivations, the real `nix store diff-closures`, the real `homeinfra-tui diff` binary, and
//! drift over the real sshd of `scripts/test-env.sh`.
//!
//! Needs `nix-build` on PATH and root (own nix.conf, no daemon), or the test env's nix-daemon
//! (`HOMEINFRA_TEST_NIX_CONF_DIR`) otherwise. Skips loudly locally, fails in CI.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

use homeinfra_tui::model::closure::{Bump, ChangeKind, ClosureDiff, PackageChange};
use homeinfra_tui::operations::closure_diff::{
    self, FetchClosure, Nix, NixCopyFromSsh, Reporter, SshTarget,
};
use tokio_util::sync::CancellationToken;

// Fixture sizes (bytes of payload); the expected deltas are computed from these.
const LINUX_OLD: i64 = 4_000_000;
const LINUX_NEW: i64 = 4_200_000;
const LINUX_REBUILT: i64 = 4_100_000;
const K3S_OLD: i64 = 1_000_000;
const K3S_NEW: i64 = 900_000;
const OPENSSH: i64 = 5_000;
const OPENSSH_REBUILT: i64 = 50_000;
const HTOP: i64 = 300_000;
const NFS: i64 = 200_000;

fn fixtures_nix() -> String {
    format!(
        r#"{{ system }}:
let
  sh = name: script: derivation {{
    inherit name system; builder = "/bin/sh"; PATH = "/usr/bin:/bin"; args = [ "-c" script ];
  }};
  pkg = pname: version: size: sh "${{pname}}-${{version}}" ''
    mkdir -p $out/bin
    printf '#!/bin/sh\necho ${{pname}} ${{version}}\n' > $out/bin/${{pname}}
    chmod +x $out/bin/${{pname}}
    head -c ${{toString size}} /dev/zero > $out/payload
  '';
  kernel = version: size: {{
    kernel = pkg "linux" version size;
    modules = pkg "linux" "${{version}}-modules" 100000;
    initrd = pkg "initrd-linux" version 50000;
  }};
  mkSystem = version: k: pkgs: sh "nixos-system-node1-${{version}}" ''
    mkdir -p $out
    for p in ${{toString pkgs}}; do echo "$p" >> $out/packages; done
    ln -s ${{k.kernel}} $out/kernel
    ln -s ${{k.initrd}} $out/initrd
    ln -s ${{k.modules}} $out/kernel-modules
  '';
  k661 = kernel "6.6.1" {LINUX_OLD};
  k668 = kernel "6.6.8" {LINUX_NEW};
  k661rebuilt = kernel "6.6.1" {LINUX_REBUILT};
  k3s_old = pkg "k3s" "1.30.2" {K3S_OLD};
  k3s_new = pkg "k3s" "1.31.0" {K3S_NEW};
  openssh = pkg "openssh" "9.7p1" {OPENSSH};
  openssh_rebuilt = pkg "openssh" "9.7p1" {OPENSSH_REBUILT};
  systemd = pkg "systemd" "255.4" 20000;
  htop = pkg "htop" "3.3.0" {HTOP};
  nfs = pkg "nfs-utils" "2.6.4" {NFS};
  base = [ k3s_old openssh systemd nfs ];
in {{
  old = mkSystem "24.05.1" k661 base;
  new = mkSystem "24.05.2" k668 [ k3s_new openssh_rebuilt systemd htop ];
  k3sOnly = mkSystem "24.05.3" k661 [ k3s_new openssh systemd nfs ];
  kernelRebuilt = mkSystem "24.05.1" k661rebuilt base;
  extraLinux = mkSystem "24.05.1" k661 (base ++ [ (pkg "linux" "6.6.9" 10000) ]);
  broken = sh "nixos-system-node1-broken" "echo 'this build is broken' >&2; exit 3";
  # Never finishes (the test cancels it), so it is never cached.
  slow = sh "nixos-system-node1-slow" "echo builder-started >&2; exec sleep 3141";
}}
"#
    )
}

/// A private nix configuration (or the test env's daemon) and the fixture file.
struct NixEnv {
    dir: tempfile::TempDir,
    conf_dir: PathBuf,
    daemon: bool,
    system: String,
}

fn nix_env() -> Option<NixEnv> {
    common::require_program("nix-build")?;
    common::require_program("nix")?;
    let dir = tempfile::tempdir().expect("tempdir");
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let (conf_dir, daemon) = if root {
        let conf = dir.path().join("nix");
        std::fs::create_dir_all(&conf).unwrap();
        std::fs::write(
            conf.join("nix.conf"),
            "build-users-group =\nsandbox = false\nsubstituters =\n\
             experimental-features = nix-command flakes\nflake-registry =\n",
        )
        .unwrap();
        (conf, false)
    } else {
        let conf = common::require_env("HOMEINFRA_TEST_NIX_CONF_DIR", "the nix-daemon")?;
        (PathBuf::from(conf), true)
    };
    let out = Command::new("uname").arg("-m").output().expect("uname");
    let system = format!("{}-linux", String::from_utf8_lossy(&out.stdout).trim());
    std::fs::write(dir.path().join("fixtures.nix"), fixtures_nix()).unwrap();
    Some(NixEnv {
        dir,
        conf_dir,
        daemon,
        system,
    })
}

impl NixEnv {
    fn envs(&self) -> Vec<(&'static str, String)> {
        let mut e = vec![
            ("NIX_CONF_DIR", self.conf_dir.display().to_string()),
            ("NIX_CONFIG", "flake-registry =".to_string()),
        ];
        if self.daemon {
            e.push(("NIX_REMOTE", "daemon".into()));
        }
        e
    }

    fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new(program);
        c.envs(self.envs());
        c
    }

    fn nix(&self) -> Nix {
        let mut n = Nix::new("nix");
        for (k, v) in self.envs() {
            n = n.with_env(k, v);
        }
        n.offline = true;
        n
    }

    /// `nix-build fixtures.nix -A attr` → store path.
    fn build(&self, attr: &str) -> String {
        let out = self
            .command("nix-build")
            .arg(self.dir.path().join("fixtures.nix"))
            .args([
                "--argstr",
                "system",
                &self.system,
                "-A",
                attr,
                "--no-out-link",
            ])
            .output()
            .expect("run nix-build");
        assert!(
            out.status.success(),
            "nix-build -A {attr} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    /// A flake (the "user's checkout") whose node1 is fixture `attr`, pinned to a path input
    /// `versions` that says which fixture to use; returns its directory.
    fn flake(&self, attr: &str) -> PathBuf {
        let input = self.dir.path().join("versions");
        std::fs::create_dir_all(&input).unwrap();
        std::fs::write(
            input.join("flake.nix"),
            format!("{{ outputs = {{ self }}: {{ attr = \"{attr}\"; }}; }}\n"),
        )
        .unwrap();
        let flake = self.dir.path().join("checkout");
        std::fs::create_dir_all(&flake).unwrap();
        std::fs::copy(
            self.dir.path().join("fixtures.nix"),
            flake.join("fixtures.nix"),
        )
        .unwrap();
        std::fs::write(
            flake.join("flake.nix"),
            format!(
                r#"{{
  inputs.versions.url = "path:{}";
  outputs = {{ self, versions }}:
    let f = import ./fixtures.nix {{ system = "{}"; }};
    in {{ nixosConfigurations.node1.config.system.build.toplevel = f.${{versions.attr}}; }};
}}
"#,
                input.display(),
                self.system
            ),
        )
        .unwrap();
        let _ = std::fs::remove_file(flake.join("flake.lock"));
        let out = self
            .command("nix")
            .args(["flake", "lock"])
            .arg(&flake)
            .output()
            .expect("nix flake lock");
        assert!(
            out.status.success(),
            "nix flake lock: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        flake
    }

    /// Point the flake's input at another fixture (what `nix flake update` will pick up).
    fn bump_input(&self, attr: &str) {
        std::fs::write(
            self.dir.path().join("versions/flake.nix"),
            format!("{{ outputs = {{ self }}: {{ attr = \"{attr}\"; }}; }}\n"),
        )
        .unwrap();
    }
}

async fn diff(env: &NixEnv, old: &str, new: &str) -> ClosureDiff {
    closure_diff::diff_paths(
        &env.nix(),
        old,
        new,
        &Reporter::silent(),
        &CancellationToken::new(),
    )
    .await
    .unwrap_or_else(|e| panic!("diff {old} {new}: {e:?}"))
}

fn find<'a>(changes: &'a [PackageChange], name: &str) -> &'a PackageChange {
    changes
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("{name} not in {changes:#?}"))
}

fn names(changes: &[PackageChange]) -> Vec<&str> {
    changes.iter().map(|c| c.name.as_str()).collect()
}

/// nix prints sizes rounded to 0.1 KiB; the size of a whole (added or removed) path also
/// counts its small script and the NAR framing: up to 1 KiB more than the payload.
fn assert_size(c: &PackageChange, bytes: i64) {
    let got = c
        .size_delta
        .unwrap_or_else(|| panic!("{} has no size", c.name));
    let slack = match c.kind {
        ChangeKind::Added | ChangeKind::Removed => 1024,
        _ => 52,
    };
    assert!(
        (got - bytes).abs() <= slack,
        "{}: size {got}, expected about {bytes}",
        c.name
    );
}

#[tokio::test]
async fn real_diff_is_parsed_and_classified() {
    let Some(env) = nix_env() else { return };
    let (old, new) = (env.build("old"), env.build("new"));
    let d = diff(&env, &old, &new).await;
    assert_eq!((d.old_path.as_str(), d.new_path.as_str()), (&*old, &*new));
    assert!(d.unparsed.is_empty(), "unparsed: {:?}", d.unparsed);
    let s = &d.sections;

    assert_eq!(names(&s.reboot_required), ["initrd-linux", "linux"]);
    let linux = find(&s.reboot_required, "linux");
    assert_eq!(linux.kind, ChangeKind::Upgrade);
    // nix strips `-modules` as an output name: the modules count as linux 6.6.x.
    assert_eq!(linux.old, ["6.6.1"]);
    assert_eq!(linux.new, ["6.6.8"]);
    assert_eq!(linux.bump, Some(Bump::Patch));
    assert_size(linux, LINUX_NEW - LINUX_OLD);

    let k3s = find(&s.service_restarts, "k3s");
    assert_eq!(
        (k3s.kind, k3s.bump),
        (ChangeKind::Upgrade, Some(Bump::Minor))
    );
    assert_size(k3s, K3S_NEW - K3S_OLD);
    assert_eq!(names(&s.service_restarts), ["k3s"]);

    assert_eq!(names(&s.upgrades), ["nixos-system-node1"]);
    assert_eq!(names(&s.added), ["htop"]);
    assert_size(&s.added[0], HTOP);
    assert_eq!(names(&s.removed), ["nfs-utils"]);
    assert_size(&s.removed[0], -NFS);
    assert_eq!(names(&s.rebuilt), ["openssh"]);
    assert!(s.rebuilt[0].impact.security);
    assert_size(&s.rebuilt[0], OPENSSH_REBUILT - OPENSSH);
    assert!(s.downgrades.is_empty());

    assert!(d.reboot.required);
    assert_eq!(d.reboot.reason, "kernel, initrd, kernel-modules changed");
    assert!(d.reboot.boot_links.iter().all(|l| l.changed()));
    assert_eq!(d.totals.changes, 7);

    // Closure sizes from nix path-info -S; their delta agrees with the per-package deltas
    // within what nix leaves out (< 8 KiB per unlisted change) and rounding.
    let (a, b) = (
        d.totals.old_closure_size.unwrap(),
        d.totals.new_closure_size.unwrap(),
    );
    assert!(a > LINUX_OLD as u64 && b > LINUX_NEW as u64);
    let delta = d.totals.closure_size_delta.unwrap();
    assert_eq!(delta, b as i64 - a as i64);
    assert!(
        (delta - d.totals.listed_size_delta).abs() < 8 * 1024 * 3,
        "closure delta {delta} vs listed {}",
        d.totals.listed_size_delta
    );
    assert_eq!(d.badge(), "7 changes, reboot");
}

#[tokio::test]
async fn identical_systems_are_up_to_date() {
    let Some(env) = nix_env() else { return };
    let old = env.build("old");
    let d = diff(&env, &old, &old).await;
    assert!(d.is_up_to_date());
    assert!(d.sections.is_empty() && d.unparsed.is_empty());
    assert!(!d.reboot.required);
    assert_eq!(d.reboot.reason, "up to date");
    assert_eq!(d.totals.closure_size_delta, Some(0));
    assert_eq!(d.badge(), "up to date");
}

#[tokio::test]
async fn kernel_link_change_needs_reboot() {
    let Some(env) = nix_env() else { return };
    // Same versions everywhere; only the kernel was rebuilt (new store path, new size).
    let (old, new) = (env.build("old"), env.build("kernelRebuilt"));
    let d = diff(&env, &old, &new).await;
    assert!(d.reboot.required, "{:?}", d.reboot);
    assert_eq!(d.reboot.reason, "kernel changed");
    let changed: Vec<&str> = d
        .reboot
        .boot_links
        .iter()
        .filter(|l| l.changed())
        .map(|l| l.name.as_str())
        .collect();
    assert_eq!(changed, ["kernel"]);
    let linux = find(&d.sections.reboot_required, "linux");
    assert_eq!(linux.kind, ChangeKind::Rebuilt);
    assert_size(linux, LINUX_REBUILT - LINUX_OLD);
    assert_eq!(d.badge(), "1 change, reboot");
}

#[tokio::test]
async fn kernel_package_without_link_change_needs_no_reboot() {
    let Some(env) = nix_env() else { return };
    let (old, new) = (env.build("old"), env.build("extraLinux"));
    let d = diff(&env, &old, &new).await;
    assert!(!d.reboot.required, "{:?}", d.reboot);
    assert!(
        d.reboot.reason.contains("links are the same"),
        "{}",
        d.reboot.reason
    );
    let linux = find(&d.sections.added, "linux");
    assert_eq!(linux.new, ["6.6.9"]);
    assert!(d.sections.reboot_required.is_empty());
}

#[tokio::test]
async fn k3s_change_restarts_without_reboot() {
    let Some(env) = nix_env() else { return };
    let (old, new) = (env.build("old"), env.build("k3sOnly"));
    let d = diff(&env, &old, &new).await;
    assert!(!d.reboot.required);
    assert_eq!(names(&d.sections.service_restarts), ["k3s"]);
    assert_eq!(names(&d.sections.upgrades), ["nixos-system-node1"]);
    assert_eq!(d.badge(), "2 changes, restarts");
}

fn write_inventory(dir: &Path) -> PathBuf {
    let p = dir.join("hosts.json");
    std::fs::write(
        &p,
        r#"{"node1": {"hostname":"node1","system":"x86_64-linux","profile":"server",
            "role":"init","region":"home","zone":"a","ip":"127.0.0.1","gateway":"127.0.0.1",
            "maskLength":8}}"#,
    )
    .unwrap();
    p
}

#[test]
fn diff_command_end_to_end() {
    let Some(env) = nix_env() else { return };
    let (old, new) = (env.build("old"), env.build("new"));
    let hosts = write_inventory(env.dir.path());
    let bin = env!("CARGO_BIN_EXE_homeinfra-tui");
    let run = |extra: &[&str]| {
        let out = env
            .command(bin)
            .args(["diff", "--offline", "--hosts"])
            .arg(&hosts)
            .args(["--from", &old, "--to", &new])
            .args(extra)
            .env("NO_COLOR", "1")
            .output()
            .expect("run homeinfra-tui");
        assert!(
            out.status.success(),
            "diff failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        (
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };

    let (json, stderr) = run(&["--json"]);
    assert!(stderr.contains("nix store diff-closures"), "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&json).expect("JSON on stdout");
    assert_eq!(v["mode"], "paths");
    assert_eq!(v["up_to_date"], false);
    assert_eq!(v["reboot"]["required"], true);
    assert_eq!(v["sections"]["service_restarts"][0]["name"], "k3s");
    assert_eq!(v["sections"]["service_restarts"][0]["bump"], "minor");
    assert_eq!(v["sections"]["added"][0]["name"], "htop");
    assert_eq!(v["sections"]["removed"][0]["new"], serde_json::json!([]));
    assert_eq!(v["totals"]["changes"], 7);
    let parsed: ClosureDiff = serde_json::from_value(v.clone()).expect("ClosureDiff from JSON");
    assert_eq!(parsed.new_path, new);

    let (text, _) = run(&[]);
    assert!(text.contains("Reboot required (2)"), "{text}");
    assert!(text.contains("Service restarts (1)"), "{text}");
    let k3s_line = text
        .lines()
        .find(|l| l.trim_start().starts_with("k3s "))
        .unwrap();
    assert!(k3s_line.contains("1.30.2 → 1.31.0") && k3s_line.contains("-97.7 KiB"));
    assert!(text.contains("REBOOT REQUIRED: kernel, initrd, kernel-modules changed"));

    // Identical systems, and a path that does not exist.
    let out = env
        .command(bin)
        .args(["diff", "--offline", "--from", &old, "--to", &old])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("UP TO DATE"));
    let out = env
        .command(bin)
        .args(["diff", "--offline", "--from", &old, "--to"])
        .arg(env.dir.path().join("missing"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not in the local store"));
}

#[test]
fn update_mode_end_to_end_leaves_checkout_untouched() {
    let Some(env) = nix_env() else { return };
    let flake = env.flake("old");
    let lock_before = std::fs::read(flake.join("flake.lock")).unwrap();
    env.bump_input("k3sOnly");
    let hosts = write_inventory(env.dir.path());
    let config = env.dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!("[nix]\nflake = \"path:{}\"\n", flake.display()),
    )
    .unwrap();
    let out = env
        .command(env!("CARGO_BIN_EXE_homeinfra-tui"))
        .args(["diff", "node1", "--mode", "update", "--json", "--offline"])
        .arg("--hosts")
        .arg(&hosts)
        .arg("--config")
        .arg(&config)
        .output()
        .expect("run homeinfra-tui");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "update diff failed: {stderr}");
    assert!(stderr.contains("with the updated lock"), "{stderr}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["mode"], "update");
    assert_eq!(v["host"], "node1");
    assert_eq!(v["old_path"], env.build("old"));
    assert_eq!(v["new_path"], env.build("k3sOnly"));
    assert_eq!(v["sections"]["service_restarts"][0]["name"], "k3s");
    assert_eq!(v["reboot"]["required"], false);
    assert!(
        v["lock_changes"].as_array().is_some_and(|l| l
            .iter()
            .any(|x| x.as_str().unwrap_or("").contains("'versions'"))),
        "{}",
        v["lock_changes"]
    );
    // The user's checkout is untouched.
    assert_eq!(
        std::fs::read(flake.join("flake.lock")).unwrap(),
        lock_before
    );
}

#[tokio::test]
async fn failed_build_surfaces_nix_error_text() {
    let Some(env) = nix_env() else { return };
    let flake = env.flake("broken");
    let err = closure_diff::build_toplevel(
        &env.nix(),
        &format!("path:{}", flake.display()),
        "node1",
        &[],
        &Reporter::silent(),
        &CancellationToken::new(),
    )
    .await
    .unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains("error: builder for"), "{msg}");
    assert!(msg.contains("this build is broken"), "{msg}");
}

#[tokio::test]
async fn cancel_stops_a_running_build() {
    let Some(env) = nix_env() else { return };
    // A build that would take five minutes; unique so that it is never cached.
    let flake = env.flake("old");
    let slow = flake.join("slow.nix");
    let nonce = format!("{:?}", std::time::SystemTime::now());
    std::fs::write(
        &slow,
        format!(
            "derivation {{ name = \"slow\"; system = \"{}\"; builder = \"/bin/sh\"; \
             PATH = \"/usr/bin:/bin\"; args = [ \"-c\" \"echo {nonce}; echo started >&2; sleep 300\" ]; }}",
            env.system
        ),
    )
    .unwrap();
    let cancel = CancellationToken::new();
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    let task = {
        let cancel = cancel.clone();
        let nix = env.nix();
        let slow = slow.display().to_string();
        tokio::spawn(async move {
            nix.run(
                ["build", "--no-link", "-L", "-f", slow.as_str()],
                &Reporter::new(tx),
                &cancel,
            )
            .await
        })
    };
    // Wait until the builder runs, then cancel.
    while let Some(p) = rx.recv().await {
        if matches!(&p, closure_diff::Progress::Output { line, .. } if line.contains("started")) {
            break;
        }
    }
    let started = std::time::Instant::now();
    cancel.cancel();
    let err = task.await.unwrap().unwrap_err();
    assert!(
        err.downcast_ref::<closure_diff::Cancelled>().is_some(),
        "{err:?}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    // No builder is left sleeping.
    let ps = Command::new("ps")
        .args(["-eo", "stat=,args="])
        .output()
        .unwrap();
    let left: Vec<String> = String::from_utf8_lossy(&ps.stdout)
        .lines()
        .filter(|l| l.contains(&nonce) && !l.starts_with('Z'))
        .map(str::to_string)
        .collect();
    assert!(left.is_empty(), "left running: {left:?}");
}

#[tokio::test]
async fn drift_over_real_sshd() {
    let Some(env) = nix_env() else { return };
    let Some(host) = common::require_env("HOMEINFRA_TEST_SSH_HOST", "sshd") else {
        return;
    };
    let port: u16 = std::env::var("HOMEINFRA_TEST_SSH_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(2222);
    let target = SshTarget {
        host,
        user: std::env::var("HOMEINFRA_TEST_SSH_USER").ok(),
        port: Some(port),
        identity_files: std::env::var("HOMEINFRA_TEST_SSH_KEY")
            .ok()
            .map(PathBuf::from)
            .into_iter()
            .collect(),
        known_hosts: std::env::var("HOMEINFRA_TEST_SSH_KNOWN_HOSTS")
            .ok()
            .map(PathBuf::from)
            .into_iter()
            .collect(),
    };
    // The "host" reports the fixture's old system as its current system; the link lives in
    // a directory the SSH user can read.
    let old = env.build("old");
    let run_dir = tempfile::Builder::new()
        .prefix("nixdiff-run-")
        .tempdir_in("/tmp")
        .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(run_dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let link = run_dir.path().join("current-system");
    std::os::unix::fs::symlink(&old, &link).unwrap();

    let reporter = Reporter::silent();
    let cancel = CancellationToken::new();
    let deployed = closure_diff::deployed_system_via_ssh(
        &target,
        &link.display().to_string(),
        &reporter,
        &cancel,
    )
    .await
    .expect("read the deployed system over SSH");
    assert_eq!(deployed, old);

    // Fetching the closure over SSH (`nix copy --from ssh://`) really talks to the host's
    // store; a path the host does not have is an error naming the host.
    let nix = env.nix();
    // OpenSSH checks the host key strictly against the app's known_hosts files: a host whose
    // key is in none of them is not talked to (no prompt, no trust on first use).
    let stranger = SshTarget {
        known_hosts: vec![run_dir.path().join("empty_known_hosts")],
        ..target.clone()
    };
    let e = closure_diff::deployed_system_via_ssh(
        &stranger,
        &link.display().to_string(),
        &reporter,
        &cancel,
    )
    .await
    .unwrap_err();
    assert!(
        format!("{e:#}").contains("Host key verification failed"),
        "{e:#}"
    );
    let e = NixCopyFromSsh {
        target: stranger,
        trust_host_store: false,
    }
    .fetch(&nix, &deployed, &reporter, &cancel)
    .await
    .unwrap_err();
    assert!(format!("{e:#}").contains("ssh://"), "{e:#}");
    // Signatures are checked by default (no --no-check-sigs); the deployed closure is
    // already valid here, so nothing unsigned has to be copied.
    let source = NixCopyFromSsh {
        target,
        trust_host_store: false,
    };
    source
        .fetch(&nix, &deployed, &reporter, &cancel)
        .await
        .expect("nix copy --from ssh://");
    let missing = "/nix/store/00000000000000000000000000000000-nixos-system-missing";
    let err = source
        .fetch(&nix, missing, &reporter, &cancel)
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("ssh://"), "{err:#}");

    // Drift: deployed (old) vs what the flake builds now (new).
    let flake = env.flake("new");
    let d = closure_diff::drift_diff(
        &nix,
        &deployed,
        &source,
        &format!("path:{}", flake.display()),
        "node1",
        &reporter,
        &cancel,
    )
    .await
    .expect("drift diff");
    assert_eq!(d.old_path, old);
    assert_eq!(d.new_path, env.build("new"));
    assert!(d.reboot.required);
    assert_eq!(names(&d.sections.service_restarts), ["k3s"]);

    // Deployed == target: up to date.
    let flake = env.flake("old");
    let d = closure_diff::drift_diff(
        &nix,
        &deployed,
        &source,
        &format!("path:{}", flake.display()),
        "node1",
        &reporter,
        &cancel,
    )
    .await
    .expect("drift diff");
    assert!(d.is_up_to_date());
}

#[test]
fn ctrl_c_cancels_the_command_and_its_nix_builds() {
    use std::io::BufRead;
    let Some(env) = nix_env() else { return };
    let flake = env.flake("slow");
    let hosts = write_inventory(env.dir.path());
    let config = env.dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!("[nix]\nflake = \"path:{}\"\n", flake.display()),
    )
    .unwrap();
    let mut child = env
        .command(env!("CARGO_BIN_EXE_homeinfra-tui"))
        .args(["diff", "node1", "--mode", "update", "--offline"])
        .arg("--hosts")
        .arg(&hosts)
        .arg("--config")
        .arg(&config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run homeinfra-tui");
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        if stderr.read_line(&mut line).unwrap() == 0 {
            panic!("exited before the build started: {seen}");
        }
        seen.push_str(&line);
        if line.contains("builder-started") {
            break;
        }
    }
    // What a terminal's Ctrl-C sends to the foreground process (nix runs in its own group).
    // SAFETY: kill only sends a signal to our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(3), "{seen}{rest}");
    assert!(rest.contains("error: cancelled"), "{rest}");
    let ps = Command::new("ps")
        .args(["-eo", "stat=,args="])
        .output()
        .unwrap();
    let left: Vec<String> = String::from_utf8_lossy(&ps.stdout)
        .lines()
        .filter(|l| l.contains("sleep 3141") && !l.starts_with('Z'))
        .map(str::to_string)
        .collect();
    assert!(left.is_empty(), "left running: {left:?}");
}

/// The plan's per-node forecast on real closures: every node's deployed system (the fixture
/// `old`, as its host reports it) diffed with what the flake builds for it, with real Nix. The
/// summary of each node is the summary of `nix store diff-closures` between the two systems
/// (what `diff HOST` shows), the node with no change is left out, the k3s minor change orders
/// the control plane first, and only the node whose kernel changes reboots.
#[tokio::test]
async fn the_plan_forecasts_each_node_from_real_closures() {
    use homeinfra_tui::config::RebootPolicy;
    use homeinfra_tui::inventory::Role;
    use homeinfra_tui::operations::closure_diff::summary::{RiskKind, Verdict};
    use homeinfra_tui::operations::closure_diff::{ChangeSummary, NixClosures};
    use homeinfra_tui::operations::upgrade::eta::Estimates;
    use homeinfra_tui::operations::upgrade::fake::FakeWorld;
    use homeinfra_tui::operations::upgrade::forecast::{self, ForecastInputs};
    use homeinfra_tui::testing;

    let Some(env) = nix_env() else { return };
    let old = env.build("old");
    let new = env.build("new");
    let k3s_only = env.build("k3sOnly");

    // The flake: node1 (the control plane) gets a new kernel and k3s 1.31, node2 stays, node3
    // (an agent) gets k3s 1.31 only.
    let flake = env.dir.path().join("fleet");
    std::fs::create_dir_all(&flake).unwrap();
    std::fs::copy(
        env.dir.path().join("fixtures.nix"),
        flake.join("fixtures.nix"),
    )
    .unwrap();
    std::fs::write(
        flake.join("flake.nix"),
        format!(
            r#"{{
  outputs = {{ self }}:
    let f = import ./fixtures.nix {{ system = "{}"; }};
        sys = s: {{ config.system.build.toplevel = s; }};
    in {{ nixosConfigurations = {{ node1 = sys f.new; node2 = sys f.old; node3 = sys f.k3sOnly; }}; }};
}}
"#,
            env.system
        ),
    )
    .unwrap();

    let inv = testing::inventory(vec![
        testing::host("node1", Role::Init, [127, 0, 0, 1]),
        testing::host("node2", Role::Agent, [127, 0, 0, 1]),
        testing::host("node3", Role::Agent, [127, 0, 0, 1]),
    ]);
    let world = FakeWorld::healthy(&inv);
    {
        let mut st = world.state();
        for h in st.hosts.values_mut() {
            h.current = old.clone();
            h.booted = old.clone();
        }
    }
    let source = NixClosures {
        nix: env.nix(),
        flake: Some(format!("path:{}", flake.display())),
        ssh: Default::default(),
        trust_host_store: false,
    };
    let read = world.read_world();
    let inputs = ForecastInputs {
        world: &read,
        inventory: &inv,
        source: std::sync::Arc::new(source),
        reboot: RebootPolicy::Auto,
        configured_order: false,
        estimates: Estimates::default(),
        concurrency: 2,
        skip_skew: false,
        confirm_timeout_secs: 120,
    };
    // Today's order puts agents first; the k3s minor change must turn it round.
    let plan = testing::plan(
        "20261201-forecast",
        [
            testing::entry("node3", "node3", Role::Agent),
            testing::entry("node2", "node2", Role::Agent),
            testing::entry("node1", "node1", Role::Init),
        ],
    );
    let lines = std::sync::Mutex::new(Vec::new());
    let (planned, f) = forecast::forecast(
        &plan,
        &inputs,
        &|l| lines.lock().unwrap().push(l),
        &CancellationToken::new(),
    )
    .await;

    // One progress line per diff.
    let lines = lines.into_inner().unwrap();
    assert_eq!(lines.len(), 3, "{lines:#?}");
    assert!(lines.iter().any(|l| l.contains("node1")), "{lines:#?}");

    // Order: servers first for a k3s minor change; node2 (no change) left out.
    assert_eq!(f.order.rule, "servers-first", "{:?}", f.order);
    let order: Vec<&str> = planned.entries.iter().map(|e| e.node.as_str()).collect();
    assert_eq!(order, ["node1", "node3"]);
    assert_eq!(f.skipped.len(), 1, "{:?}", f.skipped);
    assert_eq!(f.skipped[0].node, "node2");
    assert!(f.refusals.is_empty(), "{:#?}", f.refusals);

    // node1: what `diff node1` shows (real diff-closures between the two systems).
    let n1 = f.node("node1").expect("node1 forecast");
    assert_eq!(n1.deployed.as_deref(), Some(old.as_str()));
    assert_eq!(n1.target.as_deref(), Some(new.as_str()));
    let s1 = n1.summary.as_ref().expect("node1 summary");
    assert_eq!(s1, &ChangeSummary::of(&diff(&env, &old, &new).await));
    assert!(!s1.up_to_date);
    assert_eq!(s1.reboot, Verdict::Yes);
    assert_eq!(s1.boot_links_changed, Some(true));
    let k = s1.bump("kernel").expect("kernel bump");
    assert_eq!(
        (k.from.as_deref(), k.to.as_deref()),
        (Some("6.6.1"), Some("6.6.8"))
    );
    let k3s = s1.bump("k3s").expect("k3s bump");
    assert_eq!(
        (k3s.from.as_deref(), k3s.to.as_deref()),
        (Some("1.30.2"), Some("1.31.0"))
    );
    assert!(s1.restarts.iter().any(|r| r == "k3s"), "{:?}", s1.restarts);
    assert!(
        s1.risks.iter().any(|r| r.kind == RiskKind::Ssh),
        "the rebuilt openssh is a high-risk change: {:?}",
        s1.risks
    );
    // The closure grows by the new kernel, htop and the rebuilt openssh, and shrinks by k3s and
    // nfs-utils (within nix's rounding and the paths' small scripts).
    let expected =
        (LINUX_NEW - LINUX_OLD) + (K3S_NEW - K3S_OLD) + (OPENSSH_REBUILT - OPENSSH) + HTOP - NFS;
    let delta = s1.closure_size_delta.expect("closure size delta");
    assert!(
        (delta - expected).abs() < 16 * 1024,
        "closure delta {delta}, expected about {expected}"
    );
    assert_eq!(n1.reboot.will, Verdict::Yes, "{}", n1.reboot.why);

    // node3: k3s only, same kernel: restarts k3s, no reboot.
    let n3 = f.node("node3").expect("node3 forecast");
    assert_eq!(n3.target.as_deref(), Some(k3s_only.as_str()));
    let s3 = n3.summary.as_ref().expect("node3 summary");
    assert_eq!(s3, &ChangeSummary::of(&diff(&env, &old, &k3s_only).await));
    assert_eq!(s3.boot_links_changed, Some(false));
    assert_eq!(n3.reboot.will, Verdict::No, "{}", n3.reboot.why);
    assert!(s3.bump("kernel").is_none(), "{:?}", s3.bumps);
    assert_eq!(f.reboots, ["node1"]);

    // The text the dry run prints says the same.
    let text = forecast::text(&f).join("\n");
    assert!(text.contains("order: servers-first"), "{text}");
    assert!(text.contains("skipped: node2"), "{text}");
    assert!(text.contains("reboots: node1"), "{text}");
}
