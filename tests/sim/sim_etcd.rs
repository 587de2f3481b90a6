//! The simulated etcd JSON gateway, compared with the real etcd of scripts/test-env.sh, and
//! its behaviour when members go down.

use crate::common;

use std::collections::BTreeSet;
use std::time::Duration;

use homeinfra_tui::sim::{Scenario, SimHandle};
use serde_json::Value;

async fn start(scenarios: Vec<Scenario>) -> (SimHandle, tempfile::TempDir) {
    common::sim::start_with(scenarios, 20.0).await
}

fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap()
}

async fn post(c: &reqwest::Client, base: &str, path: &str) -> reqwest::Result<Value> {
    c.post(format!("{base}{path}"))
        .body("{}")
        .send()
        .await?
        .json()
        .await
}

/// Keys of an object, recursively for nested objects ("header.cluster_id").
fn shape(v: &Value, prefix: &str, out: &mut BTreeSet<String>) {
    if let Value::Object(m) = v {
        for (k, x) in m {
            let key = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            out.insert(key.clone());
            shape(x, &key, out);
        }
    }
}

fn keys(v: &Value) -> BTreeSet<String> {
    let mut s = BTreeSet::new();
    shape(v, "", &mut s);
    s
}

fn metric_families(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| l.split_whitespace().take(2).collect::<Vec<_>>().join(" "))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shaped_like_the_real_etcd() {
    let Some(real) = common::require_env("HOMEINFRA_TEST_ETCD_ENDPOINTS", "real etcd") else {
        return;
    };
    let Some(real_metrics) =
        common::require_env("HOMEINFRA_TEST_ETCD_METRICS", "real etcd metrics")
    else {
        return;
    };
    let real = real.split(',').next().unwrap().to_string();
    let real_metrics = real_metrics.split(',').next().unwrap().to_string();
    let (h, _dir) = start(vec![]).await;
    let c = http();
    let ours = &h.etcd_urls()[0];

    let (a, b) = (
        post(&c, &real, "/v3/maintenance/status").await.unwrap(),
        post(&c, ours, "/v3/maintenance/status").await.unwrap(),
    );
    assert_eq!(keys(&a), keys(&b), "real {a}\nsim {b}");
    for k in [
        "dbSize",
        "leader",
        "raftIndex",
        "raftTerm",
        "raftAppliedIndex",
        "dbSizeInUse",
    ] {
        assert!(
            b[k].as_str().is_some_and(|s| s.parse::<u64>().is_ok()),
            "{k} must be a string of digits: {b}"
        );
    }
    assert!(
        b["header"]["member_id"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .is_ok()
    );

    let (a, b) = (
        post(&c, &real, "/v3/cluster/member/list").await.unwrap(),
        post(&c, ours, "/v3/cluster/member/list").await.unwrap(),
    );
    assert_eq!(keys(&a["header"]), keys(&b["header"]));
    assert_eq!(
        keys(&a["members"][0]),
        keys(&b["members"][0]),
        "real {a}\nsim {b}"
    );
    let members = b["members"].as_array().unwrap();
    assert_eq!(members.len(), 3);
    // Ids as strings; the leader is one of them.
    let ids: Vec<u64> = members
        .iter()
        .map(|m| m["ID"].as_str().unwrap().parse().unwrap())
        .collect();
    let status = post(&c, ours, "/v3/maintenance/status").await.unwrap();
    assert!(ids.contains(&status["leader"].as_str().unwrap().parse().unwrap()));
    // Every member's client URL is its host's own loopback address.
    for (m, url) in members.iter().zip(h.etcd_urls()) {
        assert_eq!(m["clientURLs"][0].as_str().unwrap(), url);
    }
    let hosts: Vec<String> = h
        .inventory()
        .control_planes()
        .map(|x| x.ip.to_string())
        .collect();
    for (url, ip) in h.etcd_urls().iter().zip(&hosts) {
        assert!(url.starts_with(&format!("http://{ip}:")), "{url} vs {ip}");
    }

    let (a, b): (Value, Value) = (
        c.get(format!("{real}/health"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap(),
        c.get(format!("{ours}/health"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap(),
    );
    assert_eq!(a["health"], b["health"]);

    let real_text = c
        .get(&real_metrics)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let our_text = c
        .get(format!("{ours}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let want = [
        "etcd_disk_wal_fsync_duration_seconds histogram",
        "etcd_disk_backend_commit_duration_seconds histogram",
        "etcd_server_has_leader gauge",
        "etcd_mvcc_db_total_size_in_bytes gauge",
        "etcd_server_quota_backend_bytes gauge",
        "etcd_server_leader_changes_seen_total counter",
    ];
    let (rf, of) = (metric_families(&real_text), metric_families(&our_text));
    for w in want {
        assert!(rf.contains(w), "real etcd lacks {w}");
        assert!(of.contains(w), "sim lacks {w}");
    }
    let bucket_lines = |t: &str| -> Vec<String> {
        t.lines()
            .filter(|l| l.starts_with("etcd_disk_wal_fsync_duration_seconds_bucket"))
            .map(|l| l.split_whitespace().next().unwrap().to_string())
            .collect()
    };
    assert_eq!(bucket_lines(&real_text), bucket_lines(&our_text));
    h.shutdown().await;
}

/// Wait (up to 5 s) until a member stops answering.
async fn gone(c: &reqwest::Client, url: &str) -> bool {
    for _ in 0..50 {
        if post(c, url, "/v3/maintenance/status").await.is_err() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// p99 from a Prometheus histogram, interpolated like `histogram_quantile`.
fn p99(text: &str, name: &str) -> f64 {
    let mut buckets: Vec<(f64, f64)> = Vec::new();
    for l in text
        .lines()
        .filter(|l| l.starts_with(&format!("{name}_bucket")))
    {
        let le = l.split("le=\"").nth(1).unwrap().split('"').next().unwrap();
        let v: f64 = l.rsplit(' ').next().unwrap().parse().unwrap();
        buckets.push((
            if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().unwrap()
            },
            v,
        ));
    }
    let total = buckets.last().unwrap().1;
    let rank = 0.99 * total;
    let mut prev = (0.0, 0.0);
    for (le, c) in buckets {
        if c >= rank {
            return prev.0 + (le - prev.0) * (rank - prev.1) / (c - prev.1);
        }
        prev = (le, c);
    }
    f64::NAN
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_disk_and_member_down() {
    let (h, _dir) = start(vec![Scenario::SlowDisk, Scenario::EtcdMemberDown]).await;
    let c = http();
    let urls = h.etcd_urls().to_vec();
    let text0 = c
        .get(format!("{}/metrics", urls[0]))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let text1 = c
        .get(format!("{}/metrics", urls[1]))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let fast = p99(&text0, "etcd_disk_wal_fsync_duration_seconds");
    let slow = p99(&text1, "etcd_disk_wal_fsync_duration_seconds");
    assert!(fast < 0.010, "healthy member p99 {fast}");
    assert!((0.070..0.095).contains(&slow), "slow member p99 {slow}");

    // The third member is down: it does not answer at all, but is still listed.
    assert!(gone(&c, &urls[2]).await, "a stopped member still answers");
    let list = post(&c, &urls[0], "/v3/cluster/member/list").await.unwrap();
    assert_eq!(list["members"].as_array().unwrap().len(), 3);
    let status = post(&c, &urls[0], "/v3/maintenance/status").await.unwrap();
    assert!(
        status.get("errors").is_none(),
        "two of three keep quorum: {status}"
    );

    // Losing a second member loses quorum: no leader, errors, unhealthy.
    h.world().reboot("node2").unwrap();
    assert!(gone(&c, &urls[1]).await, "a rebooting member still answers");
    let status = post(&c, &urls[0], "/v3/maintenance/status").await.unwrap();
    assert_eq!(
        status["errors"],
        serde_json::json!(["etcdserver: no leader"]),
        "{status}"
    );
    assert!(status.get("leader").is_none());
    let health = c.get(format!("{}/health", urls[0])).send().await.unwrap();
    assert_eq!(health.status(), 503);
    assert_eq!(health.json::<Value>().await.unwrap()["health"], "false");
    let text = c
        .get(format!("{}/metrics", urls[0]))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("\netcd_server_has_leader 0\n"));

    // Back: the member answers again and a leader is elected.
    let mut back = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Ok(s) = post(&c, &urls[1], "/v3/maintenance/status").await
            && s.get("leader").is_some()
        {
            back = true;
            break;
        }
    }
    assert!(back, "member 2 did not come back after its reboot");
    h.shutdown().await;
}
