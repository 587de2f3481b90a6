//! The Loki client: response parsing against recorded Loki answers, and the whole client against
//! the simulator's Loki face.

use std::sync::{Arc, Mutex};

use axum::extract::Request;
use axum::middleware::{self, Next};
use homeinfra_tui::config::LokiConfig;
use homeinfra_tui::inventory;
use homeinfra_tui::model::metrics::{LogLevel, LogsState};
use homeinfra_tui::sim::loki::{LogGenerator, LogSource, router};
use homeinfra_tui::sources::loki::{Loki, UNAUTHORIZED, parse_response, render_query};

/// Recorded from Loki 2.9 (`/loki/api/v1/query_range`, direction=backward): two streams with
/// different label sets, newest first, with the stats block Loki always adds.
const TWO_STREAMS: &str = r#"{"status":"success","data":{"resultType":"streams","result":[{"stream":{"host":"node1","job":"systemd-journal","unit":"k3s.service","service_name":"k3s"},"values":[["1732615205123456789","E1126 10:00:05.123456    1234 pod_workers.go:1298] \"Error syncing pod, skipping\" err=\"failed to \\\"StartContainer\\\" for \\\"app\\\" with CrashLoopBackOff\""],["1732615201000000000","time=\"2024-11-26T10:00:01Z\" level=error msg=\"failed to get CA certs: Get \\\"https://127.0.0.1:6443/cacerts\\\": context deadline exceeded\""]]},{"stream":{"host":"node1","job":"systemd-journal","unit":"kernel","service_name":"kernel"},"values":[["1732615203500000000","kernel: ata1.00: failed command: READ FPDMA QUEUED"]]}],"stats":{"summary":{"bytesProcessedPerSecond":1538462,"linesProcessedPerSecond":15384,"totalBytesProcessed":20000,"totalLinesProcessed":200,"execTime":0.013,"queueTime":0.000187,"subqueries":0,"totalEntriesReturned":3,"splits":1,"shards":1},"querier":{"store":{"totalChunksRef":2,"totalChunksDownloaded":2,"chunksDownloadTime":1200000,"chunk":{"headChunkBytes":0,"headChunkLines":0,"decompressedBytes":20000,"decompressedLines":200,"compressedBytes":5000,"totalDuplicates":0}}},"ingester":{"totalReached":1,"totalChunksMatched":1,"totalBatches":1,"totalLinesSent":3,"store":{"chunk":{"headChunkBytes":0,"headChunkLines":0,"decompressedBytes":0,"decompressedLines":0,"compressedBytes":0,"totalDuplicates":0}}},"cache":{"chunk":{"entriesFound":0,"entriesRequested":0,"entriesStored":0,"bytesReceived":0,"bytesSent":0,"requests":0,"downloadTime":0},"index":{"entriesFound":0,"entriesRequested":0,"entriesStored":0,"bytesReceived":0,"bytesSent":0,"requests":0,"downloadTime":0},"result":{"entriesFound":0,"entriesRequested":0,"entriesStored":0,"bytesReceived":0,"bytesSent":0,"requests":0,"downloadTime":0}}}}}"#;

/// Recorded: nothing matched.
const EMPTY: &str = r#"{"status":"success","data":{"resultType":"streams","result":[],"stats":{"summary":{"bytesProcessedPerSecond":0,"linesProcessedPerSecond":0,"totalBytesProcessed":0,"totalLinesProcessed":0,"execTime":0.001,"queueTime":0,"subqueries":0,"totalEntriesReturned":0}}}}"#;

/// Recorded: Loki's answer to bad LogQL is HTTP 400 with a plain-text body.
const PARSE_ERROR: &str = "parse error at line 1, col 7: syntax error: unexpected IDENTIFIER, expecting = or != or =~ or !~\n";

/// Recorded: a metric query answers a matrix, not streams.
const MATRIX: &str = r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"host":"node1"},"values":[[1732615200,"3"]]}],"stats":{}}}"#;

#[test]
fn parses_recorded_answers() {
    let lines = parse_response(200, TWO_STREAMS.as_bytes()).unwrap();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0].ts_ns, 1_732_615_205_123_456_789);
    assert_eq!(lines[0].labels["unit"], "k3s.service");
    assert_eq!(lines[0].level, LogLevel::Error);
    assert!(lines[0].line.contains(r#"failed to \"StartContainer\""#));
    assert_eq!(lines[1].level, LogLevel::Error);
    assert_eq!(lines[2].labels["unit"], "kernel");
    // Lines of one stream share their labels.
    assert!(Arc::ptr_eq(&lines[0].labels, &lines[1].labels));
    assert_eq!(
        lines[0].timestamp().unwrap().to_string(),
        "2024-11-26T10:00:05.123456789Z"
    );

    assert!(parse_response(200, EMPTY.as_bytes()).unwrap().is_empty());

    let e = parse_response(400, PARSE_ERROR.as_bytes()).unwrap_err();
    assert_eq!(
        e,
        "Loki: parse error at line 1, col 7: syntax error: unexpected IDENTIFIER, expecting = or != or =~ or !~"
    );
    let e = parse_response(401, b"no org id\n").unwrap_err();
    assert_eq!(e, UNAUTHORIZED);
    let e = parse_response(200, MATRIX.as_bytes()).unwrap_err();
    assert!(e.contains("matrix"), "{e}");
    let e = parse_response(502, b"").unwrap_err();
    assert_eq!(e, "Loki answered HTTP 502");
}

/// Tenant and authorization headers of one request.
type Seen = (Option<String>, Option<String>);

fn inv() -> inventory::Inventory {
    inventory::parse(
        std::path::Path::new("hosts.json"),
        r#"{
          "instance_1": {"hostname":"node1","system":"x86_64-linux","profile":"p","role":"init","region":"r","zone":"z","ip":"192.0.2.11","gateway":"192.0.2.1","maskLength":24},
          "instance_2": {"hostname":"node2","system":"x86_64-linux","profile":"p","role":"agent","region":"r","zone":"z","ip":"192.0.2.12","gateway":"192.0.2.1","maskLength":24}
        }"#,
    )
    .unwrap()
}

#[tokio::test]
async fn client_against_the_sim_face() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let inv = inv();
    let generator = Arc::new(LogGenerator::from_inventory(&inv));
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let s2 = seen.clone();
    let app = router(generator.clone() as Arc<dyn LogSource>).layer(middleware::from_fn(
        move |req: Request, next: Next| {
            let h = |n: &str| {
                req.headers()
                    .get(n)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            };
            s2.lock()
                .unwrap()
                .push((h("x-scope-orgid"), h("authorization")));
            next.run(req)
        },
    ));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    let tok = dir.path().join("token");
    std::fs::write(&tok, "tok-123\n").unwrap();
    let mut cfg = LokiConfig {
        url: Some(url),
        tenant: Some("homelab".into()),
        lines: 25,
        ..Default::default()
    };
    cfg.auth.bearer_token_file = Some(tok);
    let loki = Loki::new(&cfg).unwrap();
    assert_eq!(
        render_query(&cfg.query_template, &inv.hosts[0]),
        r#"{host="node1"} |~ "(?i)(error|fail|panic)""#
    );

    let mut state = LogsState::default();
    let now = jiff::Timestamp::now().as_nanosecond();
    loki.refresh(&inv, &mut state, now).await.unwrap();
    for h in &inv.hosts {
        let logs = &state.hosts[&h.id];
        assert!(!logs.lines.is_empty(), "{}", h.id);
        assert!(logs.lines.len() <= 25);
        // Newest first, only this host, only matching lines.
        assert!(
            logs.lines
                .iter()
                .zip(logs.lines.iter().skip(1))
                .all(|(a, b)| a.ts_ns >= b.ts_ns)
        );
        for l in logs.lines.iter() {
            assert_eq!(l.labels["host"], h.hostname);
            let low = l.line.to_lowercase();
            assert!(
                low.contains("error") || low.contains("fail") || low.contains("panic"),
                "{}",
                l.line
            );
        }
    }
    assert!(state.errors.is_empty());
    let h = seen.lock().unwrap().clone();
    assert_eq!(h.len(), 2);
    assert!(h.iter().all(|(t, a)| t.as_deref() == Some("homelab")
        && a.as_deref() == Some("Bearer tok-123")));

    // A later refresh adds only newer lines; the cap holds, no duplicates.
    let before = state.hosts["instance_1"].lines.front().unwrap().ts_ns;
    let later = now + 600_000_000_000;
    loki.refresh(&inv, &mut state, later).await.unwrap();
    let logs = &state.hosts["instance_1"];
    assert_eq!(logs.lines.len(), 25);
    assert!(logs.lines.front().unwrap().ts_ns > before);
    let mut keys: Vec<_> = logs
        .lines
        .iter()
        .map(|l| (l.ts_ns, l.line.clone()))
        .collect();
    keys.dedup();
    assert_eq!(keys.len(), 25);

    // A down host has no lines in the window; the others still work.
    generator.set_down("node2", true);
    let mut fresh = LogsState::default();
    loki.refresh(&inv, &mut fresh, later).await.unwrap();
    assert!(fresh.hosts["instance_2"].lines.is_empty());
    assert!(!fresh.hosts["instance_1"].lines.is_empty());

    // Bad LogQL: Loki's plain-text 400, kept per host.
    let mut bad = cfg.clone();
    bad.query_template = r#"{host="{hostname}"} | json"#.into();
    let e = Loki::new(&bad)
        .unwrap()
        .refresh(&inv, &mut LogsState::default(), later)
        .await
        .unwrap_err();
    assert!(e.starts_with("Loki: parse error"), "{e}");
}

/// The source task and `check`'s one-shot gather, against the sim face.
#[tokio::test]
async fn spawn_and_gather_once() {
    use homeinfra_tui::sources::{Update, loki};
    let _ = rustls::crypto::ring::default_provider().install_default();
    let inv = Arc::new(inv());
    let (_g, app) = homeinfra_tui::sim::loki::for_inventory(&inv);
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    let cfg = LokiConfig {
        url: Some(url),
        refresh_secs: 1,
        ..Default::default()
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel(4);
    let h = loki::spawn(cfg.clone(), inv.clone(), tx);
    let Some(Update::Logs(Ok(st))) = rx.recv().await else {
        panic!("expected logs")
    };
    assert_eq!(st.hosts.len(), 2);
    h.refresh_now();
    assert!(matches!(rx.recv().await, Some(Update::Logs(Ok(_)))));
    h.task.abort();

    let s = loki::gather_once(&cfg, &inv, std::time::Duration::from_secs(5)).await;
    assert!(s.status.error.is_none() && s.data.is_some());
    let s = loki::gather_once(
        &LokiConfig::default(),
        &inv,
        std::time::Duration::from_secs(5),
    )
    .await;
    assert!(!s.status.configured);
    assert_eq!(
        s.status.note.as_deref(),
        Some("Loki: not configured — set [loki] url")
    );
}
