//! The guards on etcd: quorum, members down, leader, the node's own member.

use super::*;

pub(super) fn etcd(g: &GuardInputs<'_>, out: &mut Vec<GuardVerdict>) {
    let mut guards = vec!["etcd-no-leader", "etcd-member-down"];
    if g.entry.role.is_control_plane() {
        guards.push("etcd-quorum");
    }
    if let Some(by) = skipped_by(g.settings, "etcd-quorum") {
        for guard in guards {
            out.push(GuardVerdict::skipped(guard, by));
        }
        return;
    }
    let unseen = |out: &mut Vec<GuardVerdict>, message: String, fix: &str| {
        for guard in &guards {
            out.push(GuardVerdict::cannot_verify(
                guard,
                "etcd",
                message.clone(),
                fix,
            ));
        }
    };
    let state: &EtcdState = match &g.health.etcd {
        None => {
            unseen(
                out,
                "etcd is not monitored ([etcd] enabled = false, or no endpoints and no control plane in the inventory)".into(),
                "set [etcd] endpoints and client certificates, or add \"etcd\" to [upgrade] skip_guards",
            );
            return;
        }
        Some(r) => match fresh(
            r,
            g.health.read_at.etcd,
            g.settings.max_age.etcd,
            g.now,
            "etcd",
        ) {
            Ok(s) => s,
            Err(e) => {
                unseen(
                    out,
                    e,
                    "check [etcd] endpoints and certificates (`homeinfra-tui check`)",
                );
                return;
            }
        },
    };
    if state.members.is_empty() {
        unseen(
            out,
            "etcd answered but listed no member".into(),
            "check [etcd] endpoints (`etcdctl member list`)",
        );
        return;
    }
    if state.leader.is_none() {
        out.push(GuardVerdict::refuse(
            "etcd-no-leader",
            "etcd",
            "no etcd member reports a leader",
            "restore the etcd cluster before upgrading anything",
        ));
    } else {
        out.push(GuardVerdict::pass("etcd-no-leader", "etcd has a leader"));
    }
    let mine = g
        .entry
        .role
        .is_control_plane()
        .then(|| state.member_on_host(g.host))
        .flatten();
    let before = out.len();
    for m in state.members.iter().filter(|m| !m.healthy) {
        // Re-checking mid-node: this node's own member may be restarting with k3s.
        if g.recheck && mine.is_some_and(|mm| mm.id == m.id) {
            continue;
        }
        out.push(GuardVerdict::refuse(
            "etcd-member-down",
            m.label(),
            format!(
                "etcd member is not healthy{}",
                m.error
                    .as_deref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            ),
            "bring the member back (k3s on its host) before taking another control plane down",
        ));
    }
    if out.len() == before {
        out.push(GuardVerdict::pass(
            "etcd-member-down",
            format!("all {} etcd members healthy", state.members.len()),
        ));
    }
    if g.entry.role.is_control_plane() {
        match mine {
            Some(m) if !state.quorum_holds_without(m.id) => {
                let q = state.quorum_without(m.id);
                out.push(GuardVerdict::refuse(
                    "etcd-quorum",
                    m.label(),
                    format!(
                        "without this member etcd would have {}/{} healthy members, needs {}: quorum lost",
                        q.healthy,
                        q.voting,
                        q.needed()
                    ),
                    "restore the other members first",
                ));
            }
            Some(m) => out.push(GuardVerdict::pass(
                "etcd-quorum",
                format!(
                    "quorum holds without {}: {}",
                    m.label(),
                    state.quorum_without(m.id)
                ),
            )),
            None => out.push(GuardVerdict::cannot_verify(
                "etcd-quorum",
                &g.host.id,
                format!(
                    "no etcd member matches control plane {} (hostname {}, ip {}); members: {}",
                    g.host.id,
                    g.host.hostname,
                    g.host.ip,
                    state
                        .members
                        .iter()
                        .map(|m| m.label())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                "k3s names members <hostname>-<hex> and advertises the host's ip: fix the hostname or ip in hosts.json (`etcdctl member list`)",
            )),
        }
    }
}
