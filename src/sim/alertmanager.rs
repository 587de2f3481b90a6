//! The simulator's Alertmanager face (Mimir's layout, under `/alertmanager/api/v2/`): the alerts
//! are those the world fires (the generated `ALERTS` series, which follow it), the silences are
//! stored as Alertmanager stores them — created, updated in place when the matchers and start
//! stay the same (else the old one expires and a new id is returned), expired by `DELETE` —
//! and each alert's status says which silences mute it; `silenced=false` leaves those out.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use jiff::Timestamp;
use serde::Deserialize;
use serde_json::{Value, json};

use super::promql::Provider;
use crate::config::SilenceMatcher;

#[derive(Debug, Clone)]
struct StoredSilence {
    id: String,
    matchers: Vec<SilenceMatcher>,
    starts: Timestamp,
    ends: Timestamp,
    created_by: String,
    comment: String,
    updated: Timestamp,
}

impl StoredSilence {
    fn state(&self, now: Timestamp) -> &'static str {
        if self.ends <= now {
            "expired"
        } else if self.starts > now {
            "pending"
        } else {
            "active"
        }
    }

    fn json(&self, now: Timestamp) -> Value {
        json!({
            "id": self.id,
            "matchers": self.matchers,
            "startsAt": self.starts.to_string(),
            "endsAt": self.ends.to_string(),
            "updatedAt": self.updated.to_string(),
            "createdBy": self.created_by,
            "comment": self.comment,
            "status": {"state": self.state(now)},
        })
    }

    /// Whether every matcher matches `labels` (regexes anchored, as Alertmanager's).
    fn mutes(&self, labels: &BTreeMap<String, String>) -> bool {
        self.matchers.iter().all(|m| {
            let v = labels.get(&m.name).map_or("", String::as_str);
            let hit = if m.is_regex {
                regex::Regex::new(&format!("^(?:{})$", m.value)).is_ok_and(|re| re.is_match(v))
            } else {
                v == m.value
            };
            hit == m.is_equal
        })
    }
}

/// The face's state: the world's alerts (through the generator) and the silences.
#[derive(Clone)]
pub struct AlertmanagerFace {
    alerts: Arc<dyn Provider>,
    silences: Arc<Mutex<Vec<StoredSilence>>>,
}

impl AlertmanagerFace {
    pub fn new(alerts: Arc<dyn Provider>) -> Self {
        Self {
            alerts,
            silences: Arc::new(Mutex::new(Vec::new())),
        }
    }

    fn silences(&self) -> std::sync::MutexGuard<'_, Vec<StoredSilence>> {
        self.silences.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The routes, under `/alertmanager/api/v2/`.
    pub fn router(self) -> Router {
        Router::new()
            .route("/alertmanager/api/v2/alerts", get(alerts))
            .route(
                "/alertmanager/api/v2/silences",
                get(list_silences).post(post_silence),
            )
            .route(
                "/alertmanager/api/v2/silence/{id}",
                delete(delete_silence).get(get_silence),
            )
            .route(
                "/alertmanager/api/v2/status",
                get(|| async { Json(json!({"versionInfo": {"version": "sim"}})) }),
            )
            .with_state(self)
    }
}

fn bad(msg: impl Into<String>) -> Response {
    (StatusCode::BAD_REQUEST, msg.into()).into_response()
}

async fn alerts(State(f): State<AlertmanagerFace>, RawQuery(q): RawQuery) -> Response {
    let params: Vec<(String, String)> = q
        .as_deref()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let flag = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .is_none_or(|(_, v)| v != "false")
    };
    let (silenced, active) = (flag("silenced"), flag("active"));
    let now = Timestamp::now();
    let silences = f.silences().clone();
    let mut out = Vec::new();
    for l in f.alerts.label_sets(&[]) {
        if l.get("__name__").map(String::as_str) != Some("ALERTS")
            || l.get("alertstate").map(String::as_str) != Some("firing")
        {
            continue;
        }
        let labels: BTreeMap<String, String> = l
            .into_iter()
            .filter(|(k, _)| k != "__name__" && k != "alertstate")
            .collect();
        let by: Vec<&str> = silences
            .iter()
            .filter(|s| s.state(now) == "active" && s.mutes(&labels))
            .map(|s| s.id.as_str())
            .collect();
        let muted = !by.is_empty();
        if (muted && !silenced) || (!muted && !active) {
            continue;
        }
        out.push(json!({
            "labels": labels,
            "annotations": {},
            "receivers": [{"name": "sim"}],
            "fingerprint": format!("{:016x}", fingerprint(&labels)),
            "startsAt": now.to_string(),
            "endsAt": (now + jiff::SignedDuration::from_secs(300)).to_string(),
            "updatedAt": now.to_string(),
            "status": {
                "state": if muted { "suppressed" } else { "active" },
                "silencedBy": by,
                "inhibitedBy": [],
            },
        }));
    }
    Json(Value::Array(out)).into_response()
}

fn fingerprint(l: &BTreeMap<String, String>) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    l.hash(&mut h);
    h.finish()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PostBody {
    #[serde(default)]
    id: Option<String>,
    matchers: Vec<SilenceMatcher>,
    #[serde(default)]
    starts_at: Option<String>,
    ends_at: String,
    created_by: String,
    comment: String,
}

async fn post_silence(State(f): State<AlertmanagerFace>, body: String) -> Response {
    let b: PostBody = match serde_json::from_str(&body) {
        Ok(b) => b,
        Err(e) => return bad(format!("bad silence: {e}")),
    };
    let now = Timestamp::now();
    let parse = |s: &str| s.parse::<Timestamp>();
    let starts = match b.starts_at.as_deref().filter(|s| !s.is_empty()).map(parse) {
        None => now,
        Some(Ok(t)) => t,
        Some(Err(e)) => return bad(format!("startsAt: {e}")),
    };
    let ends = match parse(&b.ends_at) {
        Ok(t) => t,
        Err(e) => return bad(format!("endsAt: {e}")),
    };
    if b.matchers.is_empty() {
        return bad("silence invalid: at least one matcher required");
    }
    if starts >= ends {
        return bad("silence invalid: start time must be before end time");
    }
    if ends < now {
        return bad("silence invalid: end time can't be in the past");
    }
    let mut all = f.silences();
    if let Some(id) = &b.id {
        let Some(old) = all.iter_mut().find(|s| &s.id == id) else {
            return (StatusCode::NOT_FOUND, "silence not found").into_response();
        };
        let state = old.state(now);
        // In place when nothing but the end (and comment) changes, as Alertmanager does.
        let same = old.matchers == b.matchers
            && ((state == "active" && old.starts.as_second() == starts.as_second())
                || (state == "pending" && starts >= now));
        if same && state != "expired" {
            old.ends = ends;
            old.comment = b.comment;
            old.updated = now;
            return Json(json!({"silenceID": old.id})).into_response();
        }
        if state != "expired" {
            old.ends = now;
            old.updated = now;
        }
    }
    let id = new_id();
    all.push(StoredSilence {
        id: id.clone(),
        matchers: b.matchers,
        starts: starts.max(now),
        ends,
        created_by: b.created_by,
        comment: b.comment,
        updated: now,
    });
    Json(json!({"silenceID": id})).into_response()
}

fn new_id() -> String {
    use rand::Rng as _;
    let b: [u8; 16] = rand::rng().random();
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

async fn list_silences(State(f): State<AlertmanagerFace>) -> Response {
    let now = Timestamp::now();
    let all: Vec<Value> = f.silences().iter().map(|s| s.json(now)).collect();
    Json(Value::Array(all)).into_response()
}

async fn get_silence(State(f): State<AlertmanagerFace>, Path(id): Path<String>) -> Response {
    let now = Timestamp::now();
    match f.silences().iter().find(|s| s.id == id) {
        Some(s) => Json(s.json(now)).into_response(),
        None => (StatusCode::NOT_FOUND, "silence not found").into_response(),
    }
}

async fn delete_silence(State(f): State<AlertmanagerFace>, Path(id): Path<String>) -> Response {
    let now = Timestamp::now();
    let mut all = f.silences();
    match all.iter_mut().find(|s| s.id == id) {
        Some(s) => {
            match s.state(now) {
                "active" => s.ends = now,
                "pending" => {
                    s.starts = now;
                    s.ends = now;
                }
                _ => {}
            }
            s.updated = now;
            StatusCode::OK.into_response()
        }
        None => (StatusCode::NOT_FOUND, "silence not found").into_response(),
    }
}
