//! etcd through its JSON gateway (cluster-health issue).
