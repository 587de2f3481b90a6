//! etcd's JSON gateway, one per member, on its host's loopback address: `/v3/maintenance/status`,
//! `/v3/cluster/member/list`, `/health` and `/metrics`, shaped like etcd 3.5. A member that is
//! down stops listening, so it does not answer at all.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use color_eyre::eyre::{Result, WrapErr};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::world::{BUCKETS, Histogram, World};

pub const ETCD_VERSION: &str = "3.5.16";

#[derive(Clone)]
struct Member {
    world: Arc<World>,
    index: usize,
}

fn header_json(cluster_id: u64, member_id: u64, term: u64, revision: Option<u64>) -> Value {
    let mut h = json!({"cluster_id": cluster_id.to_string(), "member_id": member_id.to_string()});
    if let Some(r) = revision {
        h["revision"] = json!(r.to_string());
    }
    h["raft_term"] = json!(term.to_string());
    h
}

/// `etcd-metrics-missing`: the gateway serves nothing.
fn missing(m: &Member) -> Option<Response> {
    m.world.faults().etcd_missing.then(|| {
        (
            StatusCode::NOT_FOUND,
            "404 page not found (simulated: etcd-metrics-missing)\n",
        )
            .into_response()
    })
}

fn json_ok(v: Value) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], v.to_string()).into_response()
}

async fn status(State(m): State<Member>) -> Response {
    if let Some(r) = missing(&m) {
        return r;
    }
    let v = m.world.with_etcd(|etcd, _| {
        let me = &etcd.members[m.index];
        let mut v = json!({
            "header": header_json(etcd.cluster_id, me.id, etcd.raft_term, Some(etcd.revision)),
            "version": ETCD_VERSION,
            "dbSize": me.db_size.to_string(),
        });
        match etcd.leader {
            Some(l) => v["leader"] = json!(l.to_string()),
            None => v["errors"] = json!(["etcdserver: no leader"]),
        }
        v["raftIndex"] = json!(etcd.raft_index.to_string());
        v["raftTerm"] = json!(etcd.raft_term.to_string());
        v["raftAppliedIndex"] = json!(
            me.applied_index
                .max(etcd.raft_index.saturating_sub(3))
                .to_string()
        );
        v["dbSizeInUse"] = json!((me.db_size * 4 / 5).to_string());
        if me.nospace {
            // At the 2 GiB default quota, mostly free pages: NOSPACE until defragmented.
            let quota = crate::model::etcd::DEFAULT_QUOTA_BYTES;
            v["dbSize"] = json!((quota - (4 << 20)).to_string());
            v["dbSizeInUse"] = json!((quota / 3).to_string());
            let alarm = format!("memberID:{} alarm:NOSPACE ", me.id);
            match v.get_mut("errors").and_then(Value::as_array_mut) {
                Some(errs) => errs.push(json!(alarm)),
                None => v["errors"] = json!([alarm]),
            }
        }
        v
    });
    json_ok(v)
}

async fn member_list(State(m): State<Member>) -> Response {
    if let Some(r) = missing(&m) {
        return r;
    }
    let v = m.world.with_etcd(|etcd, _| {
        let me = &etcd.members[m.index];
        let members: Vec<Value> = etcd
            .members
            .iter()
            .map(|x| {
                json!({
                    "ID": x.id.to_string(),
                    "name": x.name,
                    "peerURLs": [format!("https://{}:2380", x.ip)],
                    "clientURLs": [format!("http://{}:{}", x.ip, x.port)],
                })
            })
            .collect();
        json!({"header": header_json(etcd.cluster_id, me.id, etcd.raft_term, None), "members": members})
    });
    json_ok(v)
}

async fn health(State(m): State<Member>) -> Response {
    if let Some(r) = missing(&m) {
        return r;
    }
    let has_leader = m.world.with_etcd(|etcd, _| etcd.leader.is_some());
    if has_leader {
        json_ok(json!({"health": "true", "reason": ""}))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::CONTENT_TYPE, "application/json")],
            json!({"health": "false", "reason": "RAFT NO LEADER"}).to_string(),
        )
            .into_response()
    }
}

fn histogram(out: &mut String, name: &str, help: &str, h: &Histogram) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} histogram");
    let cum = h.cumulative();
    for (i, b) in BUCKETS.iter().enumerate() {
        let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {}", cum[i]);
    }
    let total = cum.last().copied().unwrap_or(0);
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {total}");
    let _ = writeln!(out, "{name}_sum {}", h.sum);
    let _ = writeln!(out, "{name}_count {total}");
}

/// Prometheus text exposition of the member's metrics.
pub fn metrics_text(world: &World, index: usize) -> String {
    world.with_etcd(|etcd, _| {
        let me = &etcd.members[index];
        let mut out = String::new();
        histogram(&mut out, "etcd_disk_backend_commit_duration_seconds",
            "The latency distributions of commit called by backend.", &me.commit);
        histogram(&mut out, "etcd_disk_wal_fsync_duration_seconds",
            "The latency distributions of fsync called by WAL.", &me.fsync);
        let gauges = [
            ("etcd_mvcc_db_total_size_in_bytes", "gauge",
                "Total size of the underlying database physically allocated in bytes.", me.db_size.to_string()),
            ("etcd_mvcc_db_total_size_in_use_in_bytes", "gauge",
                "Total size of the underlying database logically in use in bytes.", (me.db_size * 4 / 5).to_string()),
            ("etcd_server_has_leader", "gauge",
                "Whether or not a leader exists. 1 is existence, 0 is not.",
                if etcd.leader.is_some() { "1".into() } else { "0".into() }),
            ("etcd_server_is_leader", "gauge",
                "Whether or not this member is a leader. 1 if is, 0 otherwise.",
                if etcd.leader == Some(me.id) { "1".into() } else { "0".into() }),
            ("etcd_server_leader_changes_seen_total", "counter",
                "The number of leader changes seen.", etcd.leader_changes.to_string()),
            ("etcd_server_proposals_committed_total", "gauge",
                "The total number of consensus proposals committed.", etcd.raft_index.to_string()),
            ("etcd_server_quota_backend_bytes", "gauge",
                "Current backend storage quota size in bytes.", format!("{:e}", etcd.quota_bytes as f64)),
        ];
        for (name, ty, help, value) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {ty}");
            let _ = writeln!(out, "{name} {value}");
        }
        let _ = writeln!(out, "# HELP etcd_server_version Which version is running. 1 for 'server_version' label with current version.");
        let _ = writeln!(out, "# TYPE etcd_server_version gauge");
        let _ = writeln!(out, "etcd_server_version{{server_version=\"{ETCD_VERSION}\"}} 1");
        out
    })
}

async fn metrics(State(m): State<Member>) -> Response {
    if let Some(r) = missing(&m) {
        return r;
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        metrics_text(&m.world, m.index),
    )
        .into_response()
}

fn router(world: Arc<World>, index: usize) -> Router {
    let faults = world.face_faults.clone();
    let r = Router::new()
        .route("/v3/maintenance/status", post(status))
        .route("/v3/cluster/member/list", post(member_list))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .with_state(Member { world, index });
    super::faults::guard(r, faults, "etcd")
}

/// Start every member's gateway. Each binds an ephemeral port on its host's ip; the port is
/// recorded in the world. Returns the client URLs.
pub async fn start(world: Arc<World>, stop: CancellationToken) -> Result<Vec<String>> {
    let count = world.with_etcd(|e, _| e.members.len());
    let mut urls = Vec::new();
    for index in 0..count {
        let ip: IpAddr = world
            .with_etcd(|e, _| e.members[index].ip.clone())
            .parse()
            .wrap_err("bad etcd member address")?;
        let listener = TcpListener::bind(SocketAddr::new(ip, 0))
            .await
            .wrap_err_with(|| format!("cannot listen on {ip} for an etcd member"))?;
        let addr = listener.local_addr().wrap_err("no local address")?;
        world.with_etcd(|e, _| e.members[index].port = addr.port());
        urls.push(format!("http://{addr}"));
        tokio::spawn(run_member(
            world.clone(),
            index,
            addr,
            Some(listener),
            stop.clone(),
        ));
    }
    Ok(urls)
}

fn is_up(world: &World, index: usize) -> bool {
    world.with_etcd(|e, hosts| World::member_up(&e.members[index], hosts))
}

/// Serve while the member is up; stop listening while it is down.
async fn run_member(
    world: Arc<World>,
    index: usize,
    addr: SocketAddr,
    mut listener: Option<TcpListener>,
    stop: CancellationToken,
) {
    loop {
        if stop.is_cancelled() {
            return;
        }
        if !is_up(&world, index) {
            drop(listener.take());
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_millis(100)) => continue,
            }
        }
        let l = match listener.take() {
            Some(l) => l,
            None => match TcpListener::bind(addr).await {
                Ok(l) => l,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            },
        };
        let down = CancellationToken::new();
        let watcher = {
            let (world, down, stop) = (world.clone(), down.clone(), stop.clone());
            tokio::spawn(async move {
                loop {
                    if stop.is_cancelled() || !is_up(&world, index) {
                        down.cancel();
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            })
        };
        let d = down.clone();
        let _ = axum::serve(l, router(world.clone(), index))
            .with_graceful_shutdown(async move { d.cancelled().await })
            .await;
        watcher.abort();
    }
}
