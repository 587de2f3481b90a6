//! The object store behind the simulated API server: every object is a `serde_json::Value`
//! keyed by resource, namespace and name, versioned by one global resourceVersion counter.
//! Every change is broadcast to watchers and kept in a bounded history so a watch can resume
//! from a recent resourceVersion (older ones get 410 Gone, like etcd compaction).
//!
//! The store is here; `error` (API errors as `Status`), `change` (watch events) and `object`
//! (an object's index, names, timestamps) are what it hands out.

mod change;
mod error;
mod object;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Bytes;
use serde_json::{Value, json};
use tokio::sync::broadcast;

pub use self::change::{Change, ChangeRx, EventType};
pub use self::error::ApiError;
pub use self::object::{
    Meta, controller_of, is_ready, name_of, namespace_of, now, parse, short_suffix, timestamp,
};
use self::object::{encode, make_uid};
use super::resources::Resource;

/// The namespace `obj` is stored under: its own for namespaced resources, else "".
fn object_namespace(res: &Resource, obj: &Value) -> String {
    if res.namespaced {
        namespace_of(obj).to_string()
    } else {
        String::new()
    }
}

/// How many past changes a watch can resume from.
const HISTORY: usize = 10_000;

#[derive(Debug, Clone)]
struct Entry {
    bytes: Bytes,
    meta: Arc<Meta>,
}

impl Entry {
    fn new(v: &Value) -> Self {
        Self {
            bytes: encode(v),
            meta: Arc::new(Meta::of(v)),
        }
    }
}

/// Objects by (namespace, name), serialized, with their index.
type Objects = BTreeMap<(String, String), Entry>;

struct Inner {
    rv: u64,
    uid: u64,
    objects: HashMap<Resource, Objects>,
    history: VecDeque<Arc<Change>>,
}

/// The store. Cheap to share behind an `Arc`.
pub struct Store {
    inner: Mutex<Inner>,
    tx: broadcast::Sender<Arc<Change>>,
}

impl Default for Store {
    fn default() -> Self {
        Self::new()
    }
}

impl Store {
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(8192);
        Self {
            inner: Mutex::new(Inner {
                rv: 1000,
                uid: 0,
                objects: HashMap::new(),
                history: VecDeque::new(),
            }),
            tx,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves consistent data (every write is one insert).
        super::sync::lock(&self.inner)
    }

    /// The current resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.lock().rv
    }

    pub fn get(&self, res: &Resource, ns: &str, name: &str) -> Option<Arc<Value>> {
        self.get_raw(res, ns, name).map(|b| Arc::new(parse(&b)))
    }

    /// The stored JSON of an object.
    pub fn get_raw(&self, res: &Resource, ns: &str, name: &str) -> Option<Bytes> {
        let inner = self.lock();
        inner
            .objects
            .get(res)?
            .get(&(ns.to_string(), name.to_string()))
            .map(|e| e.bytes.clone())
    }

    /// Objects of a resource (in one namespace, or all), sorted by namespace and name, with
    /// the resourceVersion the list is consistent with.
    pub fn list(&self, res: &Resource, ns: Option<&str>) -> (Vec<Arc<Value>>, u64) {
        let (raw, rv) = self.list_raw(res, ns);
        (raw.iter().map(|b| Arc::new(parse(b))).collect(), rv)
    }

    /// Parse objects one at a time and keep what `f` extracts (bounded memory for big lists).
    pub fn map<T>(
        &self,
        res: &Resource,
        ns: Option<&str>,
        mut f: impl FnMut(&Value) -> Option<T>,
    ) -> Vec<T> {
        let (raw, _) = self.list_raw(res, ns);
        raw.iter().filter_map(|b| f(&parse(b))).collect()
    }

    /// Like `list`, without parsing.
    pub fn list_raw(&self, res: &Resource, ns: Option<&str>) -> (Vec<Bytes>, u64) {
        let (items, rv) = self.list_indexed(res, ns);
        (items.into_iter().map(|(b, _)| b).collect(), rv)
    }

    /// The index of every object (no JSON parsed).
    pub fn metas(&self, res: &Resource, ns: Option<&str>) -> Vec<Arc<Meta>> {
        let (items, _) = self.list_indexed(res, ns);
        items.into_iter().map(|(_, m)| m).collect()
    }

    /// Objects with their index, sorted by namespace and name.
    pub fn list_indexed(&self, res: &Resource, ns: Option<&str>) -> (Vec<(Bytes, Arc<Meta>)>, u64) {
        let inner = self.lock();
        let pair = |e: &Entry| (e.bytes.clone(), e.meta.clone());
        let items = match inner.objects.get(res) {
            None => Vec::new(),
            Some(objs) => match ns {
                None | Some("") => objs.values().map(pair).collect(),
                Some(ns) => objs
                    .range((ns.to_string(), String::new())..)
                    .take_while(|((n, _), _)| n == ns)
                    .map(|(_, e)| pair(e))
                    .collect(),
            },
        };
        (items, inner.rv)
    }

    /// Store `obj` under `key` at `rv` and tell watchers (`old`: what it replaces).
    #[allow(clippy::too_many_arguments)]
    fn put(
        inner: &mut Inner,
        tx: &broadcast::Sender<Arc<Change>>,
        res: &Resource,
        key: (String, String),
        obj: &Value,
        rv: u64,
        kind: EventType,
        old: Option<Bytes>,
    ) {
        let entry = Entry::new(obj);
        let object = entry.bytes.clone();
        inner
            .objects
            .entry(*res)
            .or_default()
            .insert(key.clone(), entry);
        let (namespace, name) = key;
        Self::record(
            inner,
            tx,
            Change {
                rv,
                resource: *res,
                kind,
                namespace,
                name,
                object,
                old,
            },
        );
    }

    /// Keep `change` in the history and send it to the watchers.
    fn record(inner: &mut Inner, tx: &broadcast::Sender<Arc<Change>>, change: Change) {
        let change = Arc::new(change);
        inner.history.push_back(change.clone());
        while inner.history.len() > HISTORY {
            inner.history.pop_front();
        }
        let _ = tx.send(change);
    }

    /// Create an object: fills uid, creationTimestamp, resourceVersion, generation.
    pub fn create(&self, res: &Resource, mut obj: Value) -> Result<Arc<Value>, ApiError> {
        let ns = object_namespace(res, &obj);
        let mut name = name_of(&obj).to_string();
        let mut inner = self.lock();
        if name.is_empty() {
            let prefix = obj
                .pointer("/metadata/generateName")
                .and_then(Value::as_str)
                .map(str::to_string);
            match prefix {
                Some(p) => {
                    inner.uid += 1;
                    name = format!("{p}{}", short_suffix(inner.uid));
                }
                None => {
                    return Err(ApiError::invalid(
                        res,
                        "",
                        "metadata.name",
                        "Required value: name or generateName is required",
                    ));
                }
            }
        }
        let key = (ns.clone(), name.clone());
        if inner.objects.get(res).is_some_and(|o| o.contains_key(&key)) {
            return Err(ApiError::already_exists(res, &name));
        }
        inner.rv += 1;
        inner.uid += 1;
        let rv = inner.rv;
        let uid = make_uid(inner.uid);
        if !obj.is_object() {
            return Err(ApiError::bad_request("the body is not a JSON object"));
        }
        obj["apiVersion"] = json!(res.api_version());
        obj["kind"] = json!(res.kind);
        let meta = obj
            .as_object_mut()
            .map(|o| o.entry("metadata").or_insert_with(|| json!({})));
        if let Some(meta) = meta {
            if !meta.is_object() {
                *meta = json!({});
            }
            meta["name"] = json!(name);
            if res.namespaced {
                meta["namespace"] = json!(ns);
            } else if let Some(m) = meta.as_object_mut() {
                m.remove("namespace");
            }
            meta["uid"] = json!(uid);
            meta["resourceVersion"] = json!(rv.to_string());
            if meta.get("creationTimestamp").is_none_or(Value::is_null) {
                meta["creationTimestamp"] = json!(now());
            }
            meta["generation"] = json!(1);
        }
        Self::put(
            &mut inner,
            &self.tx,
            res,
            key,
            &obj,
            rv,
            EventType::Added,
            None,
        );
        Ok(Arc::new(obj))
    }

    /// Replace an object. When the new object carries a resourceVersion it must match the
    /// stored one (optimistic concurrency, 409 otherwise). Identity fields are kept.
    pub fn update(&self, res: &Resource, mut obj: Value) -> Result<Arc<Value>, ApiError> {
        let ns = object_namespace(res, &obj);
        let name = name_of(&obj).to_string();
        let mut inner = self.lock();
        let key = (ns, name.clone());
        let Some(old_bytes) = inner
            .objects
            .get(res)
            .and_then(|o| o.get(&key))
            .map(|e| e.bytes.clone())
        else {
            return Err(ApiError::not_found(res, &name));
        };
        let old = parse(&old_bytes);
        let old_rv = old
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .unwrap_or("");
        if let Some(given) = obj
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            && !given.is_empty()
            && given != old_rv
        {
            return Err(ApiError::conflict(res, &name));
        }
        if old == obj {
            return Ok(Arc::new(old));
        }
        let spec_changed = old.get("spec") != obj.get("spec");
        inner.rv += 1;
        let rv = inner.rv;
        obj["apiVersion"] = json!(res.api_version());
        obj["kind"] = json!(res.kind);
        if let Some(meta) = obj.get_mut("metadata").filter(|m| m.is_object()) {
            for f in ["uid", "creationTimestamp"] {
                if let Some(v) = old.pointer(&format!("/metadata/{f}")) {
                    meta[f] = v.clone();
                }
            }
            let generation = old
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            meta["generation"] = json!(if spec_changed {
                generation + 1
            } else {
                generation
            });
            meta["resourceVersion"] = json!(rv.to_string());
        }
        Self::put(
            &mut inner,
            &self.tx,
            res,
            key,
            &obj,
            rv,
            EventType::Modified,
            Some(old_bytes),
        );
        Ok(Arc::new(obj))
    }

    /// Change an object in place (controllers). No change → no new resourceVersion.
    pub fn modify(
        &self,
        res: &Resource,
        ns: &str,
        name: &str,
        f: impl FnOnce(&mut Value),
    ) -> Result<Arc<Value>, ApiError> {
        let Some(old) = self.get(res, ns, name) else {
            return Err(ApiError::not_found(res, name));
        };
        let mut new = (*old).clone();
        f(&mut new);
        if new == *old {
            return Ok(old);
        }
        // (`get` parsed a fresh copy; comparing values ignores key order.)
        // Keep the stored resourceVersion so the update is unconditional.
        if let Some(m) = new.get_mut("metadata") {
            m["resourceVersion"] = json!("");
        }
        self.update(res, new)
    }

    /// Remove an object.
    pub fn delete(&self, res: &Resource, ns: &str, name: &str) -> Result<Arc<Value>, ApiError> {
        let mut inner = self.lock();
        let key = (ns.to_string(), name.to_string());
        let Some(old) = inner
            .objects
            .get_mut(res)
            .and_then(|o| o.remove(&key))
            .map(|e| e.bytes)
        else {
            return Err(ApiError::not_found(res, name));
        };
        inner.rv += 1;
        let rv = inner.rv;
        let mut gone = parse(&old);
        gone["metadata"]["resourceVersion"] = json!(rv.to_string());
        Self::record(
            &mut inner,
            &self.tx,
            Change {
                rv,
                resource: *res,
                kind: EventType::Deleted,
                namespace: key.0,
                name: key.1,
                object: encode(&gone),
                old: Some(old),
            },
        );
        Ok(Arc::new(gone))
    }

    /// Start watching: the changes after `since` still in the history, and a receiver for
    /// the ones to come. `None` when `since` is older than the history (410 Gone).
    pub fn watch_from(&self, since: u64) -> Option<(Vec<Arc<Change>>, ChangeRx)> {
        let inner = self.lock();
        let rx = self.tx.subscribe();
        if let Some(first) = inner.history.front()
            && since + 1 < first.rv
        {
            return None;
        }
        if since > inner.rv {
            // A resourceVersion from the future: treat as now (real servers wait; close enough).
            return Some((Vec::new(), rx));
        }
        let backlog = inner
            .history
            .iter()
            .filter(|c| c.rv > since)
            .cloned()
            .collect();
        Some((backlog, rx))
    }

    /// Every change from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Change>> {
        self.tx.subscribe()
    }

    /// The oldest resourceVersion a watch can still start from.
    pub fn oldest_watchable(&self) -> u64 {
        let inner = self.lock();
        inner
            .history
            .front()
            .map_or(inner.rv, |c| c.rv.saturating_sub(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::resources::PODS;

    fn pod(name: &str) -> Value {
        json!({"metadata": {"name": name, "namespace": "default"}, "spec": {"nodeName": "a"}})
    }

    #[test]
    fn create_update_conflict_delete() {
        let s = Store::new();
        let p = s.create(&PODS, pod("p1")).unwrap();
        let rv = p["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(s.create(&PODS, pod("p1")).unwrap_err().code == 409);
        let mut changed = (*p).clone();
        changed["spec"]["nodeName"] = json!("b");
        let p2 = s.update(&PODS, changed.clone()).unwrap();
        assert_ne!(p2["metadata"]["resourceVersion"], json!(rv));
        assert_eq!(p2["metadata"]["generation"], json!(2));
        // The old resourceVersion now conflicts.
        let err = s.update(&PODS, changed).unwrap_err();
        assert_eq!((err.code, err.reason), (409, "Conflict"));
        s.delete(&PODS, "default", "p1").unwrap();
        assert_eq!(s.delete(&PODS, "default", "p1").unwrap_err().code, 404);
    }

    #[test]
    fn the_index_follows_writes() {
        let s = Store::new();
        let mut p = pod("p1");
        p["metadata"]["labels"] = json!({"app": "web"});
        p["metadata"]["ownerReferences"] =
            json!([{"kind": "ReplicaSet", "name": "web-1", "controller": true}]);
        p["status"] =
            json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]});
        s.create(&PODS, p).unwrap();
        let m = &s.metas(&PODS, Some("default"))[0];
        assert_eq!(
            (m.name.as_str(), m.node.as_deref(), m.phase.as_deref()),
            ("p1", Some("a"), Some("Running"))
        );
        assert_eq!(m.owner, Some(("ReplicaSet".into(), "web-1".into())));
        assert!(m.ready && !m.deleting);
        assert_eq!(m.labels["metadata"]["labels"]["app"], "web");
        s.modify(&PODS, "default", "p1", |p| {
            p["metadata"]["deletionTimestamp"] = json!(now())
        })
        .unwrap();
        let m = &s.metas(&PODS, None)[0];
        assert!(!m.ready && m.deleting);
        let (raw, _) = s.list_raw(&PODS, None);
        assert_eq!(parse(&raw[0])["metadata"]["name"], "p1");
    }

    #[test]
    fn watch_backlog_and_namespaced_list() {
        let s = Store::new();
        let start = s.resource_version();
        s.create(&PODS, pod("a")).unwrap();
        let mut other = pod("b");
        other["metadata"]["namespace"] = json!("zzz");
        s.create(&PODS, other).unwrap();
        let (items, _) = s.list(&PODS, Some("default"));
        assert_eq!(items.len(), 1);
        let (backlog, _rx) = s.watch_from(start).unwrap();
        assert_eq!(backlog.len(), 2);
        assert!(backlog.iter().all(|c| c.kind == EventType::Added));
    }
}
