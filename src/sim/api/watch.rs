//! Watches: the initial list (or the backlog since a resourceVersion, 410 Gone when
//! compacted), then every matching change as it happens, with bookmarks; events carry objects
//! or one-row Tables (`kubectl get -w`). A fault put on the face (`crate::sim::faults`) reaches
//! open watches too: `hang` stalls them, any other fault and the watch faults drop them.

use std::io::Write as _;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::response::Response;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use super::read::selectors;
use super::{Api, Params, Target, error_response, json_body};
use crate::sim::faults::FaultKind;
use crate::sim::resources::Resource;
use crate::sim::select::{FieldSelector, LabelSelector};
use crate::sim::store::{self, ApiError, Change, EventType};
use crate::sim::table;

/// Where a change stands against a watch's filters: the event type to send, if any.
fn watch_event_type(
    c: &Change,
    res: &Resource,
    ns: Option<&str>,
    ls: &LabelSelector,
    fs: &FieldSelector,
) -> Option<&'static str> {
    if c.resource != *res {
        return None;
    }
    if let Some(ns) = ns
        && c.namespace != ns
    {
        return None;
    }
    if ls.is_empty() && fs.is_empty() {
        return Some(c.kind.as_str());
    }
    let m = |o: &Value| ls.matches(o) && fs.matches(o);
    match c.kind {
        EventType::Added => m(&c.value()).then_some("ADDED"),
        EventType::Deleted => m(&c.old_value().unwrap_or_else(|| c.value())).then_some("DELETED"),
        EventType::Modified => {
            let now = m(&c.value());
            let before = c.old_value().is_some_and(|o| m(&o));
            match (before, now) {
                (true, true) => Some("MODIFIED"),
                (false, true) => Some("ADDED"),
                (true, false) => Some("DELETED"),
                (false, false) => None,
            }
        }
    }
}

fn event_line(kind: &str, object: &Value) -> Bytes {
    let mut out = Vec::with_capacity(1024);
    let _ = write!(out, "{{\"type\":\"{kind}\",\"object\":");
    let _ = serde_json::to_writer(&mut out, object);
    out.extend_from_slice(b"}\n");
    Bytes::from(out)
}

/// A watch event line around an already serialized object.
fn event_line_raw(kind: &str, object: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(object.len() + 32);
    let _ = write!(out, "{{\"type\":\"{kind}\",\"object\":");
    out.extend_from_slice(object);
    out.extend_from_slice(b"}\n");
    Bytes::from(out)
}

/// Watch events carry objects, or one-row Tables when kubectl asks (`get -w`).
#[derive(Clone)]
struct Render {
    res: Resource,
    table: Option<String>,
}

impl Render {
    fn line(&self, kind: &str, raw: &[u8]) -> Bytes {
        match &self.table {
            None => event_line_raw(kind, raw),
            Some(include) => {
                let obj = store::parse(raw);
                let rv = obj
                    .pointer("/metadata/resourceVersion")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                event_line(kind, &table::table(&self.res, &[&obj], &rv, include, None))
            }
        }
    }
}
pub(super) async fn watch(api: &Api, t: &Target<'_>, params: &Params, accept: &str) -> Response {
    let render = Render {
        res: t.res,
        table: table::wants_table(accept).then(|| {
            params
                .get("includeObject")
                .cloned()
                .unwrap_or_else(|| "Metadata".into())
        }),
    };
    let (ls, fs) = match selectors(&t.res, params) {
        Ok(s) => s,
        Err(e) => return error_response(&e),
    };
    let res = t.res;
    let ns = t.ns.map(str::to_string);
    let timeout = params
        .get("timeoutSeconds")
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(1800)
        .min(3600);
    let bookmarks = params
        .get("allowWatchBookmarks")
        .is_some_and(|b| b == "true");
    let rv_param = params.get("resourceVersion").cloned().unwrap_or_default();
    let store = api.world.store.clone();
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(1024);
    // `watch-drop`, `watch-gone`, `watch-relist`: the connection is dropped when they are
    // applied.
    let faults = api.world.face_faults.clone();
    let face = if t.res.group == "longhorn.io" {
        "longhorn"
    } else {
        "kubernetes"
    };
    let mut drops = faults.watch_drops();
    drops.mark_unchanged();

    // Initial state: from "" / "0" the current objects as ADDED; from a version, the backlog.
    let mut initial: Vec<Bytes> = Vec::new();
    let (backlog, mut changes) = if rv_param.is_empty() || rv_param == "0" {
        let rx = store.subscribe();
        let (items, rv) = store.list_raw(&res, ns.as_deref());
        let filtered = !(ls.is_empty() && fs.is_empty());
        for raw in &items {
            if filtered {
                let o = store::parse(raw);
                if !(ls.matches(&o) && fs.matches(&o)) {
                    continue;
                }
            }
            initial.push(render.line("ADDED", raw));
        }
        // Changes after the list are in the receiver; skip those already reflected.
        (Vec::new(), Some((rx, rv)))
    } else {
        match rv_param.parse::<u64>() {
            Err(_) => {
                return error_response(&ApiError::bad_request(format!(
                    "resourceVersion: Invalid value: \"{rv_param}\": must be an integer"
                )));
            }
            Ok(since) if api.world.face_faults.resume_gone(since) => {
                let gone = ApiError::gone(format!(
                    "too old resource version: {since} ({}) (simulated: watch-gone)",
                    store.resource_version()
                ));
                initial.push(event_line("ERROR", &gone.status()));
                (Vec::new(), None)
            }
            Ok(since) => match store.watch_from(since) {
                Some((backlog, rx)) => (backlog, Some((rx, since))),
                None => {
                    let gone = ApiError::gone(format!(
                        "too old resource version: {since} ({})",
                        store.oldest_watchable()
                    ));
                    initial.push(event_line("ERROR", &gone.status()));
                    (Vec::new(), None)
                }
            },
        }
    };
    let kind = res.kind;
    let api_version = res.api_version();
    let bookmark_every = api.world.delay(10.0).max(Duration::from_millis(200));
    tokio::spawn(async move {
        let deadline = tokio::time::sleep(Duration::from_secs(timeout));
        tokio::pin!(deadline);
        for line in initial {
            if tx.send(Ok(line)).await.is_err() {
                return;
            }
        }
        let Some((mut rx, mut last_rv)) = changes.take() else {
            return;
        };
        for c in backlog {
            last_rv = last_rv.max(c.rv);
            if let Some(ty) = watch_event_type(&c, &res, ns.as_deref(), &ls, &fs)
                && tx.send(Ok(render.line(ty, &c.object))).await.is_err()
            {
                return;
            }
        }
        // Bookmarks every 10 s of simulated time.
        let mut bookmark = tokio::time::interval(bookmark_every);
        bookmark.tick().await;
        loop {
            tokio::select! {
                _ = &mut deadline => return,
                _ = tx.closed() => return,
                _ = drops.changed() => {
                    // A watch fault, or a fault put on this face: a hung face stops sending
                    // (and goes on once it is cleared); any other drops the connection.
                    if faults.get(face) == Some(FaultKind::Hang) {
                        faults.hang(face).await;
                        continue;
                    }
                    let cut = std::io::Error::new(
                        std::io::ErrorKind::ConnectionReset,
                        "simulated: the watch connection dropped",
                    );
                    let _ = tx.send(Err(cut)).await;
                    return;
                }
                _ = bookmark.tick(), if bookmarks => {
                    let b = json!({"kind": kind, "apiVersion": api_version,
                        "metadata": {"resourceVersion": last_rv.to_string()}});
                    if tx.send(Ok(event_line("BOOKMARK", &b))).await.is_err() {
                        return;
                    }
                }
                msg = rx.recv() => match msg {
                    Ok(c) => {
                        if c.rv <= last_rv {
                            continue;
                        }
                        last_rv = c.rv;
                        if let Some(ty) = watch_event_type(&c, &res, ns.as_deref(), &ls, &fs)
                            && tx.send(Ok(render.line(ty, &c.object))).await.is_err()
                        {
                            return;
                        }
                    }
                    Err(RecvError::Lagged(_)) => {
                        let gone = ApiError::gone("too old resource version: the watch fell behind");
                        let _ = tx.send(Ok(event_line("ERROR", &gone.status()))).await;
                        return;
                    }
                    Err(RecvError::Closed) => return,
                },
            }
        }
    });
    let stream =
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (b, rx)) });
    json_body(200, Body::from_stream(stream))
}
