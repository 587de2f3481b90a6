//! Fleet drift: is each host running what the flake builds for it now?
//!
//! The flake's systems are evaluated, not built (`system.build.toplevel.outPath` with the
//! flake's lock), for every host at once with bounded concurrency ([`eval_targets`]); the
//! result is keyed by the lock's fingerprint, so a caller caches it until the lock changes.
//! Each host's deployed system (its `/run/current-system`, from its facts) is then compared
//! ([`drift_of`]):
//!
//! - `in sync`: the deployed system is the one the flake builds;
//! - `update`: it is not, and the flake's system is a newer NixOS release (the lock moved on
//!   since the host was deployed: the next upgrade changes it);
//! - `drifted`: it is not, and the deployed system is the same release or newer — someone
//!   deployed by hand, or an auto-upgrade pulled something else;
//! - `unknown`: the deployed system or the flake's is not known (why, in the detail).
//!
//! The release is read from the store path's name (`nixos-system-<hostname>-<release>`).

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::classify::compare_versions;
use super::nix::Reporter;
use super::source::ClosureSource;
use crate::inventory::Host;

/// The flake's system of every host, evaluated with one lock.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetTargets {
    /// The lock's fingerprint (`None`: not known, e.g. a remote flake).
    pub fingerprint: Option<String>,
    /// Host id → the out path, or why it could not be evaluated.
    pub targets: BTreeMap<String, Result<String, String>>,
}

/// Evaluate every host's system, `concurrency` at a time; progress goes to `reporter`.
pub async fn eval_targets(
    source: Arc<dyn ClosureSource>,
    hosts: &[Host],
    concurrency: usize,
    reporter: &Reporter,
    cancel: &CancellationToken,
) -> FleetTargets {
    let fingerprint = source.lock_fingerprint().await;
    let total = hosts.len();
    type Evaluated = (String, Result<String, String>);
    // Boxed one by one: a stream of borrowing async closures is not `Send` for every lifetime.
    let jobs: Vec<futures::future::BoxFuture<'_, Evaluated>> = hosts
        .iter()
        .map(|h| {
            let source = source.clone();
            let f: futures::future::BoxFuture<'_, Evaluated> = Box::pin(async move {
                let silent = Reporter::silent();
                let r = source
                    .eval_toplevel(&h.id, &silent, cancel)
                    .await
                    .map_err(|e| crate::base::error_chain(&e));
                (h.id.clone(), r)
            });
            f
        })
        .collect();
    let results: Vec<Evaluated> = futures::stream::iter(jobs)
        .buffer_unordered(concurrency.max(1))
        .enumerate()
        .then(|(i, r)| async move {
            reporter
                .step(format!("evaluated {}/{total}: {}", i + 1, r.0))
                .await;
            r
        })
        .collect()
        .await;
    FleetTargets {
        fingerprint,
        targets: results.into_iter().collect(),
    }
}

/// How a host's deployed system compares with the flake's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DriftState {
    InSync,
    Drifted,
    Update,
    Unknown,
}

impl DriftState {
    /// As the Hosts pane shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            DriftState::InSync => "in sync",
            DriftState::Drifted => "drifted",
            DriftState::Update => "update",
            DriftState::Unknown => "unknown",
        }
    }
}

impl fmt::Display for DriftState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One host's drift, with why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drift {
    pub state: DriftState,
    pub detail: String,
}

/// The release in a system's store path: `/nix/store/<hash>-nixos-system-node1-25.05.1` →
/// `25.05.1` (for `hostname` node1).
pub fn system_release<'a>(path: &'a str, hostname: &str) -> Option<&'a str> {
    let name = path.strip_prefix("/nix/store/")?.split_once('-')?.1;
    let rest = name.strip_prefix("nixos-system-")?;
    let release = match rest
        .strip_prefix(hostname)
        .and_then(|r| r.strip_prefix('-'))
    {
        Some(r) => r,
        // Another hostname: nix's own split (the first `-` before a non-letter).
        None => super::nixtext::drv_name(name).1,
    };
    (!release.is_empty()).then_some(release)
}

/// The drift of one host: its deployed system (`None`: its facts are not in) against the
/// flake's (`None`: not evaluated yet).
pub fn drift_of(
    hostname: &str,
    deployed: Option<&str>,
    target: Option<&Result<String, String>>,
) -> Drift {
    let unknown = |detail: String| Drift {
        state: DriftState::Unknown,
        detail,
    };
    let Some(deployed) = deployed else {
        return unknown("the deployed system is not known yet (no SSH facts)".into());
    };
    let target = match target {
        None => return unknown("the flake's system has not been evaluated yet".into()),
        Some(Err(e)) => return unknown(format!("the flake's system could not be evaluated: {e}")),
        Some(Ok(t)) => t,
    };
    if deployed == target {
        return Drift {
            state: DriftState::InSync,
            detail: format!("runs what the flake builds ({target})"),
        };
    }
    let runs = system_release(deployed, hostname);
    let builds = system_release(target, hostname);
    match (runs, builds) {
        (Some(r), Some(b)) if compare_versions(b, r) == Ordering::Greater => Drift {
            state: DriftState::Update,
            detail: format!(
                "the flake builds NixOS {b}, newer than the deployed {r}: the next upgrade changes it"
            ),
        },
        (Some(r), Some(b)) => Drift {
            state: DriftState::Drifted,
            detail: format!(
                "runs {deployed} (NixOS {r}), which the flake does not build: it builds {target} (NixOS {b}); deployed by hand, or pulled by an auto-upgrade?"
            ),
        },
        _ => Drift {
            state: DriftState::Drifted,
            detail: format!("runs {deployed}, which the flake does not build: it builds {target}"),
        },
    }
}

/// Findings for `check`: a drifted host is a warning (`host.drifted`), a pending update and
/// an unknown state are information (`host.update_pending`, `host.drift_unknown`).
pub fn findings(
    hosts: &[Host],
    deployed: &dyn Fn(&str) -> Option<String>,
    targets: &FleetTargets,
) -> Vec<crate::model::Finding> {
    use crate::model::{Finding, Severity};
    hosts
        .iter()
        .filter_map(|h| {
            let d = drift_of(
                &h.hostname,
                deployed(&h.id).as_deref(),
                targets.targets.get(&h.id),
            );
            let (severity, code) = match d.state {
                DriftState::InSync => return None,
                DriftState::Drifted => (Severity::Warning, "host.drifted"),
                DriftState::Update => (Severity::Info, "host.update_pending"),
                DriftState::Unknown => (Severity::Info, "host.drift_unknown"),
            };
            Some(Finding::new(severity, code, &h.id, d.detail))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "/nix/store/aaaa-nixos-system-node1-25.05.20251119.e4f5a6b";
    const B: &str = "/nix/store/bbbb-nixos-system-node1-25.05.20251124.c7d8e9f";
    const C: &str = "/nix/store/cccc-nixos-system-node1-25.05.20251124.c7d8e9f";

    #[test]
    fn releases_from_store_names() {
        assert_eq!(system_release(A, "node1"), Some("25.05.20251119.e4f5a6b"));
        assert_eq!(
            system_release("/nix/store/x-nixos-system-my-host-24.05.1", "my-host"),
            Some("24.05.1")
        );
        assert_eq!(system_release("/nix/store/x-hello-2.12", "node1"), None);
        assert_eq!(system_release("relative", "node1"), None);
    }

    #[test]
    fn states() {
        let ok = |p: &str| Some(Ok(p.to_string()));
        assert_eq!(
            drift_of("node1", Some(A), ok(A).as_ref()).state,
            DriftState::InSync
        );
        let d = drift_of("node1", Some(A), ok(B).as_ref());
        assert_eq!(d.state, DriftState::Update);
        assert!(d.detail.contains("newer than the deployed"), "{}", d.detail);
        let d = drift_of("node1", Some(C), ok(B).as_ref());
        assert_eq!(d.state, DriftState::Drifted);
        assert!(d.detail.contains("does not build"), "{}", d.detail);
        // Newer than the flake's: pulled by an auto-upgrade.
        assert_eq!(
            drift_of("node1", Some(B), ok(A).as_ref()).state,
            DriftState::Drifted
        );
        assert_eq!(
            drift_of("node1", None, ok(A).as_ref()).state,
            DriftState::Unknown
        );
        assert_eq!(drift_of("node1", Some(A), None).state, DriftState::Unknown);
        let d = drift_of("node1", Some(A), Some(&Err("cannot run `nix`".into())));
        assert_eq!(d.state, DriftState::Unknown);
        assert!(d.detail.contains("cannot run `nix`"));
    }
}
