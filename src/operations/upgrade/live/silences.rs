//! Alertmanager silences for the nodes of a run, through the dashboard's Alertmanager client
//! (`[alertmanager]`): one silence per matcher of `[alertmanager] silence_matchers`, ending
//! `silence_secs` after their creation or last extension. Built only from a [`Writes`].

use std::time::Duration;

use futures::future::BoxFuture;

use crate::base::Writes;
use crate::config::AlertmanagerConfig;
use crate::inventory::Host;
use crate::operations::upgrade::world::{NodeSilence, SilenceWrite};
use crate::sources::alertmanager::{Alertmanager, host_silences};

/// The real silences.
pub struct AmSilencer {
    am: Alertmanager,
    templates: Vec<String>,
    duration: Duration,
}

impl AmSilencer {
    /// From `[alertmanager]`: `None` without a URL or with `silences = false`; an error when
    /// the client cannot be built (a secret file that cannot be read).
    pub fn new(
        _writes: &Writes,
        cfg: &AlertmanagerConfig,
    ) -> color_eyre::eyre::Result<Option<Self>> {
        if cfg.url.is_none() || !cfg.silences {
            return Ok(None);
        }
        Ok(Some(Self {
            am: Alertmanager::new(cfg)?,
            templates: cfg.silence_matchers.clone(),
            duration: Duration::from_secs(cfg.silence_secs.max(1)),
        }))
    }

    fn ends(&self) -> jiff::Timestamp {
        jiff::Timestamp::now() + jiff::SignedDuration::try_from(self.duration).unwrap_or_default()
    }
}

impl SilenceWrite for AmSilencer {
    fn matchers(&self, host: &Host) -> Vec<String> {
        host_silences(&self.templates, host)
            .iter()
            .map(|m| m.text())
            .collect()
    }

    fn duration(&self) -> Duration {
        self.duration
    }

    fn create<'a>(
        &'a self,
        host: &'a Host,
        comment: &'a str,
    ) -> BoxFuture<'a, Result<Vec<NodeSilence>, String>> {
        Box::pin(async move {
            let mut out = Vec::new();
            for m in host_silences(&self.templates, host) {
                match self
                    .am
                    .create_silence(std::slice::from_ref(&m), self.ends(), comment)
                    .await
                {
                    Ok(id) => out.push(NodeSilence {
                        id,
                        matcher: m.text(),
                    }),
                    Err(e) => {
                        // None half made: what was created goes again.
                        for s in &out {
                            let _ = self.am.expire(&s.id).await;
                        }
                        return Err(e);
                    }
                }
            }
            Ok(out)
        })
    }

    fn extend<'a>(
        &'a self,
        id: &'a str,
        comment: &'a str,
    ) -> BoxFuture<'a, Result<String, String>> {
        Box::pin(async move { self.am.extend(id, self.ends(), comment).await })
    }

    fn expire<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move { self.am.expire(id).await })
    }
}
