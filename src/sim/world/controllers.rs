//! The controllers' loop: reacts to every store change (pod deletions, PDB and pod changes,
//! cordons) and to time (statuses, pending pods, etcd, Longhorn, leases).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::broadcast::error::RecvError;

use super::World;
use crate::sim::build::LONGHORN_NS;
use crate::sim::resources::*;
use crate::sim::store::{Change, EventType};
use crate::sim::sync::lock;

impl World {
    /// React to a change in the store.
    pub(super) fn on_change(self: &Arc<Self>, c: &Change) {
        let res = c.resource;
        if res == PODS || res == PDBS {
            lock(&self.state).dirty.insert(c.namespace.clone());
        }
        if res == PODS && c.kind == EventType::Deleted {
            let world = self.clone();
            let deleted = c.value();
            tokio::spawn(async move {
                tokio::time::sleep(world.delay(world.timing.recreate)).await;
                world.recreate_for_owner(&deleted);
            });
        }
        if res == NODES
            && c.kind == EventType::Modified
            && let Some(old) = c.old_value()
        {
            let object = c.value();
            let was = old.pointer("/spec/unschedulable") == Some(&Value::Bool(true));
            let is = object.pointer("/spec/unschedulable") == Some(&Value::Bool(true));
            if was != is {
                self.on_cordon_change(&c.name, is);
            }
        }
    }

    /// Start the controllers; they stop when the returned handle is aborted.
    pub fn spawn(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let world = self.clone();
        let mut rx = self.store.subscribe();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut last = Instant::now();
            let mut last_longhorn = Instant::now() - Duration::from_secs(10);
            let mut last_leases = Instant::now();
            // Longhorn's reconcile parses every replica and instance manager: less often on
            // big clusters.
            let longhorn_every = if world.inventory.hosts.len() > 50 {
                Duration::from_secs(2)
            } else {
                Duration::from_millis(500)
            };
            loop {
                tokio::select! {
                    msg = rx.recv() => match msg {
                        Ok(c) => world.on_change(&c),
                        Err(RecvError::Lagged(_)) => {
                            let mut s = lock(&world.state);
                            s.dirty.extend(["apps", "kube-system", LONGHORN_NS, "monitoring"].map(String::from));
                        }
                        Err(RecvError::Closed) => return,
                    },
                    _ = tick.tick() => {
                        let dt = last.elapsed().as_secs_f64();
                        last = Instant::now();
                        world.recompute_dirty();
                        world.schedule_pending();
                        world.tick_etcd(dt);
                        if last_longhorn.elapsed() >= longhorn_every {
                            last_longhorn = Instant::now();
                            world.reconcile_longhorn();
                        }
                        if last_leases.elapsed() >= Duration::from_secs(10) {
                            last_leases = Instant::now();
                            world.renew_leases();
                        }
                    }
                }
            }
        })
    }
}
