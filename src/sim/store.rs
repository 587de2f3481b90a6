//! The object store behind the simulated API server: every object is a `serde_json::Value`
//! keyed by resource, namespace and name, versioned by one global resourceVersion counter.
//! Every change is broadcast to watchers and kept in a bounded history so a watch can resume
//! from a recent resourceVersion (older ones get 410 Gone, like etcd compaction).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Bytes;
use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::resources::Resource;

/// How many past changes a watch can resume from.
const HISTORY: usize = 10_000;

/// A Kubernetes API error, rendered as a `Status` object.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Value>,
}

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    pub fn not_found(res: &Resource, name: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", res.qualified()),
        )
        .with_details(json!({"name": name, "group": res.group, "kind": res.plural}))
    }

    pub fn already_exists(res: &Resource, name: &str) -> Self {
        Self::new(
            409,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", res.qualified()),
        )
        .with_details(json!({"name": name, "group": res.group, "kind": res.plural}))
    }

    pub fn conflict(res: &Resource, name: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; \
                 please apply your changes to the latest version and try again",
                res.qualified()
            ),
        )
        .with_details(json!({"name": name, "group": res.group, "kind": res.plural}))
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    pub fn invalid(res: &Resource, name: &str, field: &str, message: &str) -> Self {
        Self::new(
            422,
            "Invalid",
            format!("{} \"{name}\" is invalid: {field}: {message}", res.kind),
        )
        .with_details(json!({"name": name, "group": res.group, "kind": res.kind,
            "causes": [{"reason": "FieldValueInvalid", "message": message, "field": field}]}))
    }

    pub fn gone(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    /// The `Status` body the real API server sends.
    pub fn status(&self) -> Value {
        let mut v = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            v["details"] = d.clone();
        }
        v
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change, as watchers see it. Objects are kept serialized (compact; written to
/// watchers as they are) and parsed only when a filter or controller needs them.
#[derive(Debug)]
pub struct Change {
    pub rv: u64,
    pub resource: Resource,
    pub kind: EventType,
    pub namespace: String,
    pub name: String,
    pub object: Bytes,
    /// The object before a modification or deletion (for selector transitions).
    pub old: Option<Bytes>,
}

impl Change {
    pub fn value(&self) -> Value {
        parse(&self.object)
    }

    pub fn old_value(&self) -> Option<Value> {
        self.old.as_deref().map(parse)
    }
}

/// A receiver of store changes.
pub type ChangeRx = broadcast::Receiver<Arc<Change>>;

/// What controllers and selectors need of an object, kept beside its JSON so that big
/// lists are filtered and counted without parsing every object.
#[derive(Debug, Clone, Default)]
pub struct Meta {
    pub namespace: String,
    pub name: String,
    /// `{"metadata": {"labels": ...}}`: what label selectors look at.
    pub labels: Value,
    /// `spec.nodeName`.
    pub node: Option<String>,
    /// `status.phase`.
    pub phase: Option<String>,
    /// The controller owner's (kind, name).
    pub owner: Option<(String, String)>,
    /// Ready condition True and not being deleted.
    pub ready: bool,
    pub deleting: bool,
}

impl Meta {
    pub fn of(v: &Value) -> Self {
        let ready = v
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
            .is_some_and(|c| c["status"] == "True");
        let deleting = v.pointer("/metadata/deletionTimestamp").is_some();
        let owner = v
            .pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
            .and_then(|o| o.iter().find(|o| o["controller"] == true))
            .map(|o| {
                (
                    o["kind"].as_str().unwrap_or("").to_string(),
                    o["name"].as_str().unwrap_or("").to_string(),
                )
            });
        Self {
            namespace: namespace_of(v).to_string(),
            name: name_of(v).to_string(),
            labels: json!({"metadata": {"labels": v.pointer("/metadata/labels").cloned().unwrap_or(Value::Null)}}),
            node: v
                .pointer("/spec/nodeName")
                .and_then(Value::as_str)
                .map(str::to_string),
            phase: v
                .pointer("/status/phase")
                .and_then(Value::as_str)
                .map(str::to_string),
            owner,
            ready: ready && !deleting,
            deleting,
        }
    }

    /// The fields an indexed field selector can look at.
    pub fn selectable(&self) -> Value {
        json!({
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": {"nodeName": self.node},
            "status": {"phase": self.phase},
        })
    }
}

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

/// Parse a stored object (always valid JSON: the store wrote it).
pub fn parse(b: &[u8]) -> Value {
    serde_json::from_slice(b).unwrap_or(Value::Null)
}

fn encode(v: &Value) -> Bytes {
    Bytes::from(serde_json::to_vec(v).unwrap_or_default())
}

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

/// `metadata.namespace` or "".
pub fn namespace_of(v: &Value) -> &str {
    v.pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("")
}

pub fn name_of(v: &Value) -> &str {
    v.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// Seconds-precision RFC 3339 time, as Kubernetes writes it.
pub fn timestamp(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

pub fn now() -> String {
    timestamp(jiff::Timestamp::now())
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
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
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
        let ns = if res.namespaced {
            namespace_of(&obj).to_string()
        } else {
            String::new()
        };
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
        let entry = Entry::new(&obj);
        let bytes = entry.bytes.clone();
        inner
            .objects
            .entry(*res)
            .or_default()
            .insert(key.clone(), entry);
        Self::record(
            &mut inner,
            &self.tx,
            Change {
                rv,
                resource: *res,
                kind: EventType::Added,
                namespace: key.0,
                name: key.1,
                object: bytes,
                old: None,
            },
        );
        Ok(Arc::new(obj))
    }

    /// Replace an object. When the new object carries a resourceVersion it must match the
    /// stored one (optimistic concurrency, 409 otherwise). Identity fields are kept.
    pub fn update(&self, res: &Resource, mut obj: Value) -> Result<Arc<Value>, ApiError> {
        let ns = if res.namespaced {
            namespace_of(&obj).to_string()
        } else {
            String::new()
        };
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
        let entry = Entry::new(&obj);
        let bytes = entry.bytes.clone();
        inner
            .objects
            .entry(*res)
            .or_default()
            .insert(key.clone(), entry);
        Self::record(
            &mut inner,
            &self.tx,
            Change {
                rv,
                resource: *res,
                kind: EventType::Modified,
                namespace: key.0,
                name: key.1,
                object: bytes,
                old: Some(old_bytes),
            },
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

fn make_uid(n: u64) -> String {
    // Deterministic, unique, UUID-shaped.
    let h = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        (h >> 32) as u32,
        (h >> 16) as u16,
        (h & 0xfff) as u16,
        (n & 0xfff) as u16,
        n & 0xffff_ffff_ffff
    )
}

/// Five lowercase alphanumerics, as generateName uses.
pub fn short_suffix(n: u64) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut x = n.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ 0x5bd1_e995;
    let mut s = String::with_capacity(5);
    for _ in 0..5 {
        s.push(ALPHABET[(x % ALPHABET.len() as u64) as usize] as char);
        x /= ALPHABET.len() as u64;
    }
    s
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
