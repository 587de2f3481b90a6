//! Changes as watchers see them: the event type and the object, kept serialized.

use std::sync::Arc;

use axum::body::Bytes;
use serde_json::Value;
use tokio::sync::broadcast;

use super::parse;
use crate::sim::resources::Resource;

/// What happened to an object.
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
