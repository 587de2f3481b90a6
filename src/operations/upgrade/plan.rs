//! The order of a run: agents first, then servers, the etcd leader last — or `[upgrade] order`;
//! `--only` narrows it.

use color_eyre::eyre::{Result, eyre};

use super::{Plan, PlanEntry};
use crate::inventory::{Host, Inventory};
use crate::model::etcd::EtcdState;

/// Build the plan. `order` (host ids or hostnames) replaces the default order when non-empty;
/// `only` keeps just those hosts. Unknown names are errors that list the known hosts.
pub fn plan(
    inv: &Inventory,
    etcd: Option<&EtcdState>,
    order: &[String],
    only: &[String],
    flake: &str,
    run_id: &str,
) -> Result<Plan> {
    let find = |name: &str, what: &str| -> Result<&Host> {
        inv.by_name(name).ok_or_else(|| {
            let known: Vec<&str> = inv.hosts.iter().map(|h| h.id.as_str()).collect();
            eyre!(
                "{what}: `{name}` is not a host of {} (known: {})",
                inv.path.display(),
                known.join(", ")
            )
        })
    };
    let leader_host = |h: &Host| {
        etcd.and_then(|e| e.leader_member())
            .is_some_and(|m| h.role.is_control_plane() && m.is_on_host(h))
    };
    let mut hosts: Vec<&Host> = if order.is_empty() {
        let mut agents: Vec<&Host> = Vec::new();
        let mut servers: Vec<&Host> = Vec::new();
        let mut leader: Vec<&Host> = Vec::new();
        for h in &inv.hosts {
            if !h.role.is_control_plane() {
                agents.push(h);
            } else if leader_host(h) {
                leader.push(h);
            } else {
                servers.push(h);
            }
        }
        agents.into_iter().chain(servers).chain(leader).collect()
    } else {
        let mut v: Vec<&Host> = Vec::new();
        for name in order {
            let h = find(name, "[upgrade] order")?;
            if !v.iter().any(|x| x.id == h.id) {
                v.push(h);
            }
        }
        v
    };
    if !only.is_empty() {
        let mut keep = Vec::new();
        for name in only {
            keep.push(find(name, "--only")?.id.clone());
        }
        hosts.retain(|h| keep.contains(&h.id));
    }
    if hosts.is_empty() {
        return Err(eyre!("nothing to upgrade: the plan is empty"));
    }
    Ok(Plan {
        run_id: run_id.to_string(),
        flake: flake.to_string(),
        kind: Default::default(),
        entries: hosts
            .into_iter()
            .map(|h| PlanEntry {
                host: h.id.clone(),
                node: h.hostname.clone(),
                role: h.role,
                etcd_leader: leader_host(h),
            })
            .collect(),
    })
}

/// Per node of `p`, the matchers of the Alertmanager silences a run makes for it before its
/// cordon (one silence each); empty without `[alertmanager] url` or with `silences = false`.
pub fn planned_silences(
    cfg: &crate::config::AlertmanagerConfig,
    inv: &Inventory,
    p: &Plan,
) -> std::collections::BTreeMap<String, Vec<String>> {
    if cfg.url.is_none() || !cfg.silences {
        return Default::default();
    }
    p.entries
        .iter()
        .filter_map(|e| {
            let h = inv.host(&e.host)?;
            let m = crate::sources::alertmanager::host_silences(&cfg.silence_matchers, h)
                .iter()
                .map(|m| m.text())
                .collect();
            Some((e.node.clone(), m))
        })
        .collect()
}
