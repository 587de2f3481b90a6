//! Shared helpers for integration tests.
#![allow(dead_code)]

/// True when running in CI (`CI=true`): missing components are failures there.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// The value of a `HOMEINFRA_TEST_*` variable that `scripts/test-env.sh start` exports.
/// Missing: says so loudly and returns `None` (skip) locally, panics in CI.
pub fn require_env(var: &str, what: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ => {
            skip_or_fail(&format!(
                "{what} is not available (${var} unset): run `source <(scripts/test-env.sh start)` or scripts/test.sh"
            ));
            None
        }
    }
}

/// A program the test needs on PATH (e.g. `kubectl`, `tmux`, `nix`).
pub fn require_program(name: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path) {
        let p = dir.join(name);
        if p.is_file() {
            return Some(p);
        }
    }
    skip_or_fail(&format!("program `{name}` is not on PATH"));
    None
}

/// Skip loudly locally, fail in CI.
pub fn skip_or_fail(reason: &str) {
    if in_ci() {
        panic!("MISSING COMPONENT (CI=true makes this a failure): {reason}");
    }
    eprintln!("\n=== SKIPPED: {reason} ===\n");
}
pub mod engine;
pub mod nixos_host;
pub mod sim;
pub mod ssh;

/// An inventory host reached over SSH at 127.0.0.1:`port` as `user`, hostname `<id>-host`.
pub fn ssh_host(
    id: &str,
    role: homeinfra_tui::inventory::Role,
    ip: std::net::Ipv4Addr,
    port: u16,
    user: &str,
) -> homeinfra_tui::inventory::Host {
    homeinfra_tui::inventory::Host {
        hostname: format!("{id}-host"),
        profile: "test".into(),
        ssh_host: Some("127.0.0.1".into()),
        ssh_user: Some(user.into()),
        ssh_port: Some(port),
        secrets: Vec::new(),
        ..homeinfra_tui::testing::host(id, role, ip)
    }
}

/// Set `section.key = v` in a config table, making the section when missing.
pub fn set_key(cfg: &mut toml::Table, section: &str, key: &str, v: toml::Value) {
    cfg.entry(section)
        .or_insert_with(|| toml::Value::Table(Default::default()))
        .as_table_mut()
        .expect("a config section is a table")
        .insert(key.into(), v);
}

/// Short timeouts for every source of a simulator's config: each gives up within a few
/// seconds, so a hung face is reported soon (the fault tests).
pub fn short_source_timeouts(cfg: &mut toml::Table) {
    set_key(cfg, "kubernetes", "timeout_secs", 3.into());
    set_key(cfg, "etcd", "timeout_ms", 2000.into());
    set_key(cfg, "mimir", "timeout_secs", 3.into());
    set_key(cfg, "loki", "timeout_secs", 3.into());
    set_key(cfg, "alertmanager", "timeout_secs", 3.into());
    set_key(cfg, "ssh", "connect_timeout_secs", 3.into());
    set_key(cfg, "ssh", "command_timeout_secs", 4.into());
}
