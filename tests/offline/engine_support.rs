//! What the engine tests against the fake world share: today's plan of a fake cluster, start
//! options with a holder and a journal directory, a run to its end.

use std::sync::Arc;

use homeinfra_tui::inventory::Inventory;
use homeinfra_tui::operations::upgrade::engine::StartOptions;
use homeinfra_tui::operations::upgrade::fake::FakeWorld;
use homeinfra_tui::operations::upgrade::{Plan, RunOutcome, Settings, UpgradeEvent, plan, start};

/// Today's plan (every node, default order) of the fake world's cluster.
pub(crate) fn plan_of(fw: &FakeWorld, inv: &Inventory, run_id: &str) -> Plan {
    let etcd = fw.state().etcd.clone();
    plan(inv, etcd.as_ref(), &[], &[], "github:me/infra", run_id).unwrap()
}

/// Start options with a holder naming `run_id`, journaling in `dir` when given.
pub(crate) fn opts(run_id: &str, dir: Option<&std::path::Path>) -> StartOptions {
    StartOptions {
        holder: format!("tester@box 1 {run_id}"),
        journal_dir: dir.map(|d| d.to_path_buf()),
        ..Default::default()
    }
}

/// Run `plan` to its end: its outcome and every event it sent.
pub(crate) async fn run_to_end(
    fw: &Arc<FakeWorld>,
    inv: &Inventory,
    plan: Plan,
    s: Settings,
    o: StartOptions,
) -> (RunOutcome, Vec<UpgradeEvent>) {
    let (h, mut rx) = start(fw.world(), inv.clone(), plan, s, o);
    let mut events = Vec::new();
    while let Some(e) = rx.recv().await {
        events.push(e);
    }
    (h.wait().await, events)
}
