//! Per-face faults (issue 18): each face of the simulator (`FACES`) can be made to hang,
//! answer garbage, answer 500, answer slowly or flap, at start (`--scenario hang=etcd`) or at
//! run time (`POST /sim/v1/faults {"scenario": "slow=mimir:5"}`, `DELETE
//! /sim/v1/faults/slow=mimir`). The state is one map, face name → fault, in the world
//! (`World::face_faults`); every face asks it at its request entry point:
//! - HTTP faces wrap their answer in [`FaceFaults::http`] (or [`guard`] their router);
//! - the SSH face asks [`FaceFaults::action`] before answering a command.
//!
//! A new face plugs in with its name in [`FACES`] and its router passed through
//! `faults::guard(router, world.face_faults.clone(), NAME)`.
//!
//! The Kubernetes watch has its own faults (`watch-gone`, `watch-drop`, `watch-relist`): open
//! watches are dropped ([`FaceFaults::drop_watches`], which every watch follows through
//! [`FaceFaults::watch_drops`]), and while `watch-gone`/`watch-relist` is on, a watch resuming
//! from a resourceVersion older than the drop answers `410 Gone`.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, to_bytes};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::sync::lock;

/// Every face that takes a fault, by the name the scenarios use.
pub const FACES: &[&str] = &[
    "kubernetes",
    "longhorn",
    "etcd",
    "mimir",
    "loki",
    "alertmanager",
    "ssh",
];

/// The fault kinds, by scenario name.
pub const KINDS: &[&str] = &["hang", "garbage", "http-500", "slow", "flap"];

/// What a faulty face does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FaultKind {
    /// Accepts the request and never answers (until the fault is cleared).
    Hang,
    /// Answers 200 with a body that is not what was asked: in turn the real answer cut in
    /// half (truncated JSON) and an HTML error page.
    Garbage,
    /// Answers 500 (SSH: the command fails).
    Http500,
    /// Answers after this many seconds.
    Slow(u64),
    /// Down (503; SSH: the connection is dropped) and up in turn, this many seconds each,
    /// starting down.
    Flap(u64),
}

impl FaultKind {
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Hang => "hang",
            FaultKind::Garbage => "garbage",
            FaultKind::Http500 => "http-500",
            FaultKind::Slow(_) => "slow",
            FaultKind::Flap(_) => "flap",
        }
    }

    fn seconds(self) -> Option<u64> {
        match self {
            FaultKind::Slow(s) | FaultKind::Flap(s) => Some(s),
            _ => None,
        }
    }
}

/// A fault on one face: `hang=etcd`, `slow=mimir:5`. Without a face (or, for `slow` and
/// `flap`, without seconds) it only names the fault, to clear it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FaceFault {
    pub kind: FaultKind,
    pub face: Option<String>,
    /// `slow` and `flap` given without seconds (only to name them).
    pub bare: bool,
}

impl fmt::Display for FaceFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind.name())?;
        if let Some(face) = &self.face {
            write!(f, "={face}")?;
            if let (Some(s), false) = (self.kind.seconds(), self.bare) {
                write!(f, ":{s}")?;
            }
        }
        Ok(())
    }
}

impl FaceFault {
    /// Parse `NAME` and its argument (`FACE`, `FACE:SECONDS`); `None` when `name` is no fault
    /// kind, `Some(Err)` when the argument is wrong.
    pub fn parse(name: &str, arg: Option<&str>) -> Option<Result<FaceFault, String>> {
        let timed = matches!(name, "slow" | "flap");
        if !KINDS.contains(&name) {
            return None;
        }
        let Some(arg) = arg.map(str::trim) else {
            let kind = match name {
                "hang" => FaultKind::Hang,
                "garbage" => FaultKind::Garbage,
                "http-500" => FaultKind::Http500,
                "slow" => FaultKind::Slow(0),
                _ => FaultKind::Flap(0),
            };
            return Some(Ok(FaceFault {
                kind,
                face: None,
                bare: timed,
            }));
        };
        let (face, secs) = match arg.split_once(':') {
            Some((f, s)) => (f.trim(), Some(s.trim())),
            None => (arg, None),
        };
        if !FACES.contains(&face) {
            return Some(Err(format!(
                "{name}: unknown face \"{face}\"; faces: {}",
                FACES.join(", ")
            )));
        }
        let secs = match (timed, secs) {
            (true, Some(s)) => match s.parse::<u64>() {
                Ok(n) if n > 0 => Some(n),
                _ => {
                    return Some(Err(format!(
                        "{name}={face}:{s}: SECONDS must be a positive whole number"
                    )));
                }
            },
            (true, None) => None,
            (false, Some(_)) => return Some(Err(format!("{name} takes =FACE, not {arg}"))),
            (false, None) => None,
        };
        let kind = match name {
            "hang" => FaultKind::Hang,
            "garbage" => FaultKind::Garbage,
            "http-500" => FaultKind::Http500,
            "slow" => FaultKind::Slow(secs.unwrap_or(0)),
            _ => FaultKind::Flap(secs.unwrap_or(0)),
        };
        Some(Ok(FaceFault {
            kind,
            face: Some(face.to_string()),
            bare: timed && secs.is_none(),
        }))
    }
}

/// What a face does with one request under its fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Answer normally.
    Pass,
    /// Never answer (the caller waits with [`FaceFaults::hang`]).
    Hang,
    /// Answer garbage; `html` picks the HTML page over the truncated answer.
    Garbage { html: bool },
    /// Answer 500.
    Fail,
    /// Answer after this long.
    Delay(Duration),
    /// The face is down (flapping).
    Down,
}

#[derive(Debug, Clone)]
struct Active {
    kind: FaultKind,
    since: Instant,
    since_wall: jiff::Timestamp,
    requests: u64,
}

#[derive(Debug, Default)]
struct State {
    faces: BTreeMap<String, Active>,
    /// Watches resuming from a resourceVersion below this answer 410 Gone.
    gone_below: Option<u64>,
    /// `ssh-cut=HOST`: every command on these hosts is cut off mid-output.
    ssh_cut: std::collections::BTreeSet<String>,
    /// `host-key-changed=HOST`: these hosts present another host key.
    host_key_changed: std::collections::BTreeSet<String>,
}

/// Face name → its fault, and the watch faults.
#[derive(Debug)]
pub struct FaceFaults {
    state: Mutex<State>,
    /// Bumped to drop every open watch.
    drops: tokio::sync::watch::Sender<u64>,
}

impl Default for FaceFaults {
    fn default() -> Self {
        Self {
            state: Mutex::new(State::default()),
            drops: tokio::sync::watch::channel(0).0,
        }
    }
}

impl FaceFaults {
    /// Put `kind` on `face` (replacing its fault, if any).
    pub fn set(&self, face: &str, kind: FaultKind) {
        lock(&self.state).faces.insert(
            face.to_string(),
            Active {
                kind,
                since: Instant::now(),
                since_wall: jiff::Timestamp::now(),
                requests: 0,
            },
        );
        // Open watches see the fault too (they stall or drop).
        self.drop_watches();
    }

    /// Clear `face`'s fault if it is a `kind` (any kind: `None`); every face with `face: None`.
    pub fn clear(&self, kind: Option<&str>, face: Option<&str>) {
        lock(&self.state).faces.retain(|f, a| {
            let face_matches = face.is_none_or(|x| x == f);
            let kind_matches = kind.is_none_or(|k| k == a.kind.name());
            !(face_matches && kind_matches)
        });
    }

    /// The fault on `face` now, if any.
    pub fn get(&self, face: &str) -> Option<FaultKind> {
        lock(&self.state).faces.get(face).map(|a| a.kind)
    }

    /// What `face` does with the request arriving now (counted, for garbage's turns).
    pub fn action(&self, face: &str) -> Action {
        let mut s = lock(&self.state);
        let Some(a) = s.faces.get_mut(face) else {
            return Action::Pass;
        };
        a.requests += 1;
        match a.kind {
            FaultKind::Hang => Action::Hang,
            FaultKind::Garbage => Action::Garbage {
                html: a.requests % 2 == 0,
            },
            FaultKind::Http500 => Action::Fail,
            FaultKind::Slow(s) => Action::Delay(Duration::from_secs(s)),
            FaultKind::Flap(period) => {
                let phase = a.since.elapsed().as_secs() / period.max(1);
                if phase % 2 == 0 {
                    Action::Down
                } else {
                    Action::Pass
                }
            }
        }
    }

    /// Wait while `face` hangs (returns once its fault is cleared or changed).
    pub async fn hang(&self, face: &str) {
        while self.get(face) == Some(FaultKind::Hang) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Every face's fault, for `/sim/v1/state` and `GET /sim/v1/faults`.
    pub fn json(&self) -> Value {
        let s = lock(&self.state);
        let faces: serde_json::Map<String, Value> = s
            .faces
            .iter()
            .map(|(f, a)| {
                let mut v = json!({"fault": a.kind.name(), "since": a.since_wall.to_string(),
                    "requests": a.requests});
                if let Some(secs) = a.kind.seconds() {
                    v["seconds"] = json!(secs);
                }
                (f.clone(), v)
            })
            .collect();
        json!({"faces": faces, "watchGoneBelow": s.gone_below.map(|rv| rv.to_string()),
            "sshCut": s.ssh_cut, "hostKeyChanged": s.host_key_changed})
    }

    /// `ssh-cut=HOST` on (or off).
    pub fn set_ssh_cut(&self, host: &str, on: bool) {
        let mut s = lock(&self.state);
        if on {
            s.ssh_cut.insert(host.to_string());
        } else {
            s.ssh_cut.clear();
        }
    }

    /// Whether commands on `host` are cut off mid-output.
    pub fn ssh_cut(&self, host: &str) -> bool {
        lock(&self.state).ssh_cut.contains(host)
    }

    /// `host-key-changed=HOST` on (or off).
    pub fn set_host_key_changed(&self, host: &str, on: bool) {
        let mut s = lock(&self.state);
        if on {
            s.host_key_changed.insert(host.to_string());
        } else {
            s.host_key_changed.clear();
        }
    }

    /// Whether `host` presents another host key than the one in `known_hosts`.
    pub fn host_key_changed(&self, host: &str) -> bool {
        lock(&self.state).host_key_changed.contains(host)
    }

    /// Drop every open watch now.
    pub fn drop_watches(&self) {
        self.drops.send_modify(|n| *n += 1);
    }

    /// Follow the drops: a watch ends when this changes.
    pub fn watch_drops(&self) -> tokio::sync::watch::Receiver<u64> {
        self.drops.subscribe()
    }

    /// From now on (until cleared), a watch resuming below `rv` answers 410 Gone.
    pub fn set_gone_below(&self, rv: Option<u64>) {
        lock(&self.state).gone_below = rv;
    }

    /// Whether a watch resuming from `rv` must answer 410 Gone.
    pub fn resume_gone(&self, rv: u64) -> bool {
        lock(&self.state).gone_below.is_some_and(|below| rv < below)
    }

    /// Answer an HTTP request to `face` under its fault: `answer` is the face's own answer;
    /// `streaming` answers (a watch) are not buffered (their garbage is the HTML page).
    pub async fn http<F>(&self, face: &str, streaming: bool, answer: F) -> Response
    where
        F: Future<Output = Response>,
    {
        match self.action(face) {
            Action::Pass => answer.await,
            Action::Hang => {
                self.hang(face).await;
                answer.await
            }
            Action::Delay(d) => {
                tokio::time::sleep(d).await;
                answer.await
            }
            Action::Fail => failure(face, 500, "Internal Server Error", "http-500"),
            Action::Down => failure(face, 503, "Service Unavailable", "flap"),
            Action::Garbage { html } if html || streaming => html_page(face),
            Action::Garbage { .. } => truncated(answer.await).await,
        }
    }
}

/// A 500 or 503 like a proxy in front of the face would send.
fn failure(face: &str, code: u16, reason: &str, fault: &str) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
        "message": format!("{reason} (simulated: {fault}={face})"), "reason": "InternalError",
        "code": code});
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// A reverse proxy's error page, served as a success.
fn html_page(face: &str) -> Response {
    let body = format!(
        "<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\n<body>\n<center><h1>502 Bad Gateway</h1></center>\n<hr><center>nginx</center>\n<!-- simulated: garbage={face} -->\n</body></html>\n"
    );
    (StatusCode::OK, [(header::CONTENT_TYPE, "text/html")], body).into_response()
}

/// The answer cut in half (mid-line, so no parser takes the rest for a whole document).
async fn truncated(r: Response) -> Response {
    let (mut parts, body) = r.into_parts();
    let bytes = to_bytes(body, 64 << 20).await.unwrap_or_default();
    let mut cut = bytes.len() / 2;
    while cut > 0 && bytes.get(cut - 1) == Some(&b'\n') {
        cut -= 1;
    }
    let cut = bytes.slice(..cut.max(1).min(bytes.len()));
    parts.status = StatusCode::OK;
    parts.headers.remove(header::CONTENT_LENGTH);
    if let Ok(v) = HeaderValue::from_str(&cut.len().to_string()) {
        parts.headers.insert(header::CONTENT_LENGTH, v);
    }
    Response::from_parts(parts, Body::from(cut))
}

#[derive(Clone)]
struct Gate {
    faults: Arc<FaceFaults>,
    face: &'static str,
}

async fn gate(
    axum::extract::State(g): axum::extract::State<Gate>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    g.faults.http(g.face, false, next.run(req)).await
}

/// `router` with every request going through `face`'s fault (the one line a new HTTP face
/// needs, with its name in [`FACES`]).
pub fn guard<S>(
    router: axum::Router<S>,
    faults: Arc<FaceFaults>,
    face: &'static str,
) -> axum::Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    router.layer(axum::middleware::from_fn_with_state(
        Gate { faults, face },
        gate,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_show() {
        let f = FaceFault::parse("slow", Some("etcd:5")).unwrap().unwrap();
        assert_eq!(f.kind, FaultKind::Slow(5));
        assert_eq!(f.to_string(), "slow=etcd:5");
        let f = FaceFault::parse("hang", Some("mimir")).unwrap().unwrap();
        assert_eq!(f.to_string(), "hang=mimir");
        let f = FaceFault::parse("flap", Some("ssh")).unwrap().unwrap();
        assert!(f.bare, "flap=ssh without seconds only names it");
        assert!(FaceFault::parse("hang", Some("nowhere")).unwrap().is_err());
        assert!(FaceFault::parse("hang", Some("etcd:3")).unwrap().is_err());
        assert!(FaceFault::parse("slow", Some("etcd:x")).unwrap().is_err());
        assert!(FaceFault::parse("meltdown", None).is_none());
    }

    #[test]
    fn garbage_alternates_and_flap_starts_down() {
        let f = FaceFaults::default();
        assert_eq!(f.action("etcd"), Action::Pass);
        f.set("etcd", FaultKind::Garbage);
        assert_eq!(f.action("etcd"), Action::Garbage { html: false });
        assert_eq!(f.action("etcd"), Action::Garbage { html: true });
        assert_eq!(f.action("loki"), Action::Pass);
        f.set("loki", FaultKind::Flap(60));
        assert_eq!(f.action("loki"), Action::Down);
        f.clear(Some("flap"), Some("etcd"));
        assert!(f.get("etcd").is_some(), "another kind stays");
        f.clear(None, Some("etcd"));
        assert_eq!(f.get("etcd"), None);
        f.clear(Some("flap"), None);
        assert_eq!(f.get("loki"), None);
    }
}
