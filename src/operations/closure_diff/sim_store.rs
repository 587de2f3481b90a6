//! The simulated homelab's store as a [`ClosureSource`]: its control API (`/sim/v1/nix/...`,
//! the same server and credentials as its Kubernetes API) answers what nix would — the
//! flake's systems (evaluated or "built"), and for two systems the text of
//! `nix store diff-closures`, their boot links and `nix path-info -S --json`. The app's own
//! parser and classifier read that text ([`super::classify_raw`]), so a demo on a machine
//! without nix shows real classified diffs.
//!
//! Chosen only by `[nix] closure_source = "sim"` (the config `homeinfra-tui sim` writes), with
//! `sim_url` on loopback, `sim_ca_file` and `sim_token_file`.

use std::time::Duration;

use color_eyre::eyre::{Result, WrapErr, eyre};
use futures::future::BoxFuture;
use serde::Deserialize;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::nix::{Cancelled, Reporter};
use super::source::{ClosureSource, RawDiff};
use crate::config::{HttpAuth, NixConfig};
use crate::inventory::Host;
use crate::model::closure::BootLink;

/// The simulator's store, over its control API.
#[derive(Debug, Clone)]
pub struct SimClosures {
    base: String,
    client: reqwest::Client,
}

#[derive(Deserialize)]
struct PathAnswer {
    path: String,
    #[serde(default)]
    log: Vec<String>,
}

#[derive(Deserialize)]
struct LockAnswer {
    fingerprint: Option<String>,
}

#[derive(Deserialize)]
struct DiffAnswer {
    old: String,
    new: String,
    diff_closures: String,
    boot_links: Option<Vec<BootLink>>,
    path_info: String,
}

impl SimClosures {
    /// From `[nix] sim_url`, `sim_ca_file`, `sim_token_file`.
    pub fn from_config(nix: &NixConfig) -> Result<Self> {
        let base = nix
            .sim_url
            .clone()
            .ok_or_else(|| eyre!("[nix] closure_source = \"sim\" needs sim_url"))?;
        let auth = HttpAuth {
            bearer_token_file: nix.sim_token_file.clone(),
            ca_file: nix.sim_ca_file.clone(),
            ..Default::default()
        };
        let client =
            crate::sources::http::http_client("nix", None, &auth, Duration::from_secs(30))?;
        Ok(Self {
            base: base.trim_end_matches('/').to_string(),
            client,
        })
    }

    fn url(&self, rest: &str) -> String {
        format!("{}/sim/v1/nix/{rest}", self.base)
    }

    /// Send, fail with the simulator's message on a non-2xx answer, decode; cancellable.
    async fn call<T: for<'de> Deserialize<'de>>(
        &self,
        req: reqwest::RequestBuilder,
        what: &str,
        cancel: &CancellationToken,
    ) -> Result<T> {
        let send = async {
            let resp = req.send().await.map_err(|e| {
                eyre!(
                    "{what}: the simulator's store did not answer: {}",
                    crate::sources::http::root_cause(&e)
                )
            })?;
            let status = resp.status();
            let body = resp
                .bytes()
                .await
                .wrap_err_with(|| format!("{what}: reading the simulator's answer"))?;
            if !status.is_success() {
                let msg = serde_json::from_slice::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| {
                        v.get("message")
                            .and_then(|m| m.as_str())
                            .map(str::to_string)
                    })
                    .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
                return Err(eyre!("{what}: {msg} (HTTP {})", status.as_u16()));
            }
            serde_json::from_slice(&body).wrap_err_with(|| {
                format!("{what}: the simulator's answer is not what nix would say")
            })
        };
        tokio::select! {
            r = send => r,
            () = cancel.cancelled() => Err(Cancelled.into()),
        }
    }

    async fn toplevel(
        &self,
        host: &str,
        build: bool,
        reporter: &Reporter,
        cancel: &CancellationToken,
    ) -> Result<String> {
        let what = if build { "building" } else { "evaluating" };
        let req = self
            .client
            .get(self.url(&format!("toplevel/{host}")))
            .query(&[("build", if build { "true" } else { "false" })]);
        let a: PathAnswer = self
            .call(req, &format!("{what} the system of {host}"), cancel)
            .await?;
        for line in a.log {
            reporter.output(line).await;
        }
        Ok(a.path)
    }
}

impl ClosureSource for SimClosures {
    fn describe(&self) -> String {
        format!("the simulator's store ({})", self.base)
    }

    fn lock_fingerprint(&self) -> BoxFuture<'_, Option<String>> {
        Box::pin(async move {
            let req = self.client.get(self.url("lock"));
            self.call::<LockAnswer>(req, "reading the flake's lock", &CancellationToken::new())
                .await
                .ok()
                .and_then(|a| a.fingerprint)
        })
    }

    fn eval_toplevel<'a>(
        &'a self,
        host: &'a str,
        reporter: &'a Reporter,
        cancel: &'a CancellationToken,
    ) -> BoxFuture<'a, Result<String>> {
        Box::pin(self.toplevel(host, false, reporter, cancel))
    }

    fn build_toplevel<'a>(
        &'a self,
        host: &'a str,
        reporter: &'a Reporter,
        cancel: &'a CancellationToken,
    ) -> BoxFuture<'a, Result<String>> {
        Box::pin(self.toplevel(host, true, reporter, cancel))
    }

    fn fetch_deployed<'a>(
        &'a self,
        host: &'a Host,
        path: &'a str,
        _reporter: &'a Reporter,
        cancel: &'a CancellationToken,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            // Every simulated host's store is the simulator's: nothing to copy, but the path
            // must be one it knows.
            let req = self.client.get(self.url("path")).query(&[("path", path)]);
            self.call::<serde_json::Value>(
                req,
                &format!("the deployed system of {}", host.id),
                cancel,
            )
            .await
            .map(|_| ())
        })
    }

    fn raw_diff<'a>(
        &'a self,
        old: &'a str,
        new: &'a str,
        reporter: &'a Reporter,
        cancel: &'a CancellationToken,
    ) -> BoxFuture<'a, Result<RawDiff>> {
        Box::pin(async move {
            reporter
                .step(format!(
                    "nix store diff-closures {old} {new} (simulated store)"
                ))
                .await;
            let req = self
                .client
                .post(self.url("diff"))
                .json(&json!({"old": old, "new": new}));
            let a: DiffAnswer = self.call(req, "diffing the closures", cancel).await?;
            Ok(RawDiff {
                old: a.old,
                new: a.new,
                diff_closures: a.diff_closures,
                boot_links: a.boot_links,
                path_info: a.path_info,
            })
        })
    }
}
