//! The runs of a journal directory that have not finished, and whether each one's engine
//! still answers on its socket: a live run (attach to it) or an interrupted one (its engine is
//! gone: resume or abandon it).

use std::path::Path;

use color_eyre::eyre::Result;

use super::wire::Hello;
use crate::operations::upgrade::journal::{self, RunSummary};

/// An unfinished run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundRun {
    pub summary: RunSummary,
    /// Its engine's hello when it answers: the run is live.
    pub engine: Option<Hello>,
}

impl FoundRun {
    pub fn is_live(&self) -> bool {
        self.engine.is_some()
    }
}

/// Every unfinished run in `dir`, live ones first, then the newest first.
pub async fn find(dir: &Path) -> Result<Vec<FoundRun>> {
    let d = dir.to_path_buf();
    let list = tokio::task::spawn_blocking(move || journal::unfinished(&d))
        .await
        .map_err(|e| color_eyre::eyre::eyre!("cannot read the journals: {e}"))??;
    let mut out = Vec::new();
    for summary in list {
        let engine = super::probe(dir, &summary.run_id).await;
        out.push(FoundRun { summary, engine });
    }
    out.sort_by(|a, b| {
        b.is_live()
            .cmp(&a.is_live())
            .then(b.summary.started.cmp(&a.summary.started))
    });
    Ok(out)
}
