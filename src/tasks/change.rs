//! Cordon and uncordon by hand, with the upgrade engine's own cordon step (the same
//! annotation, so the health model knows who cordoned the node).

use color_eyre::eyre::eyre;

use crate::config::KubernetesConfig;
use crate::operations::upgrade::live;

/// What to change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Change {
    Cordon,
    Uncordon,
}

/// Do it; `Ok` says what happened (for the footer), `Err` why it failed.
pub(super) async fn run(
    writes: &crate::base::Writes,
    cfg: &KubernetesConfig,
    change: Change,
    node: &str,
) -> Result<String, String> {
    let result = async {
        let client = crate::sources::kubernetes::client(cfg)
            .await
            .map_err(|e| eyre!(e))?;
        match change {
            Change::Cordon => live::cordon(writes, &client, node, &live::manual_run_id()).await,
            Change::Uncordon => live::uncordon(writes, &client, node).await,
        }
    }
    .await;
    let outcome = match (change, result) {
        (Change::Cordon, Ok(())) => Ok(format!("{node} cordoned")),
        (Change::Uncordon, Ok(())) => Ok(format!("{node} uncordoned")),
        (_, Err(e)) => Err(format!("failed: {}", crate::base::error_chain(&e))),
    };
    tracing::info!(?change, node, outcome = ?outcome, "change by the operator");
    outcome
}
