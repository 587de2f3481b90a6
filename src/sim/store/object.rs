//! Reading stored objects: their index ([`Meta`]), their name, namespace and controller,
//! serialization, and Kubernetes' timestamps and generated suffixes.

use axum::body::Bytes;
use serde_json::{Value, json};

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
    /// `spec.unschedulable` (nodes).
    pub unschedulable: bool,
}

impl Meta {
    pub fn of(v: &Value) -> Self {
        let deleting = v.pointer("/metadata/deletionTimestamp").is_some();
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
            owner: controller_of(v),
            ready: is_ready(v),
            deleting,
            unschedulable: v.pointer("/spec/unschedulable") == Some(&Value::Bool(true)),
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

/// Parse a stored object (always valid JSON: the store wrote it).
pub fn parse(b: &[u8]) -> Value {
    serde_json::from_slice(b).unwrap_or(Value::Null)
}

pub(super) fn encode(v: &Value) -> Bytes {
    Bytes::from(serde_json::to_vec(v).unwrap_or_default())
}

/// `metadata.namespace` or "".
pub fn namespace_of(v: &Value) -> &str {
    v.pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// `metadata.name` or "".
pub fn name_of(v: &Value) -> &str {
    v.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// Seconds-precision RFC 3339 time, as Kubernetes writes it.
pub fn timestamp(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Now, as [`timestamp`] writes it.
pub fn now() -> String {
    timestamp(jiff::Timestamp::now())
}

/// The controller owner's `(kind, name)` of an object.
pub fn controller_of(v: &Value) -> Option<(String, String)> {
    v.pointer("/metadata/ownerReferences")?
        .as_array()?
        .iter()
        .find(|o| o["controller"] == true)
        .map(|o| {
            (
                o["kind"].as_str().unwrap_or("").to_string(),
                o["name"].as_str().unwrap_or("").to_string(),
            )
        })
}

/// The object's `Ready` condition is True and it is not being deleted.
pub fn is_ready(v: &Value) -> bool {
    let ready = v
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
        .is_some_and(|c| c["status"] == "True");
    ready && v.pointer("/metadata/deletionTimestamp").is_none()
}

pub(super) fn make_uid(n: u64) -> String {
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
