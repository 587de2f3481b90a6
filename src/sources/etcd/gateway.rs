//! etcd's JSON gateway (grpc-gateway over the v3 API): the few calls etcd health needs.
//!
//! 64-bit integers arrive as JSON strings (member ids do not even fit an i64), fields with
//! zero values are omitted, and errors come back as an HTTP error status with
//! `{"error": "...", "message": "...", "code": N}`.

use std::time::Duration;

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Header {
    #[serde(default, deserialize_with = "opt_u64")]
    pub cluster_id: Option<u64>,
    #[serde(default, deserialize_with = "opt_u64")]
    pub member_id: Option<u64>,
    #[serde(default, deserialize_with = "opt_u64")]
    pub raft_term: Option<u64>,
}

/// `POST /v3/maintenance/status`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusResponse {
    #[serde(default)]
    pub header: Header,
    pub version: Option<String>,
    #[serde(default, deserialize_with = "opt_u64")]
    pub db_size: Option<u64>,
    #[serde(default, deserialize_with = "opt_u64")]
    pub db_size_in_use: Option<u64>,
    /// etcd 3.6 reports the quota here.
    #[serde(default, deserialize_with = "opt_u64")]
    pub db_size_quota: Option<u64>,
    /// Member id of the leader this member knows; absent (0) when it knows none.
    #[serde(default, deserialize_with = "opt_u64")]
    pub leader: Option<u64>,
    #[serde(default, deserialize_with = "opt_u64")]
    pub raft_index: Option<u64>,
    #[serde(default, deserialize_with = "opt_u64")]
    pub raft_term: Option<u64>,
    #[serde(default, deserialize_with = "opt_u64")]
    pub raft_applied_index: Option<u64>,
    /// Alarms and problems, e.g. `"etcdserver: no leader"`.
    #[serde(default)]
    pub errors: Vec<String>,
    #[serde(default)]
    pub is_learner: bool,
}

impl StatusResponse {
    /// The leader id, with etcd's "0 = none" turned into `None`.
    pub fn leader_id(&self) -> Option<u64> {
        self.leader.filter(|&l| l != 0)
    }
}

/// `POST /v3/cluster/member/list`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct MemberListResponse {
    #[serde(default)]
    pub header: Header,
    #[serde(default)]
    pub members: Vec<Member>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Member {
    #[serde(rename = "ID", default, deserialize_with = "opt_u64")]
    pub id: Option<u64>,
    #[serde(default)]
    pub name: String,
    #[serde(rename = "peerURLs", default)]
    pub peer_urls: Vec<String>,
    #[serde(rename = "clientURLs", default)]
    pub client_urls: Vec<String>,
    #[serde(rename = "isLearner", default)]
    pub is_learner: bool,
}

/// `GET /health`: `{"health":"true"}` (3.5 adds `"reason"`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct HealthResponse {
    #[serde(default)]
    pub health: String,
    #[serde(default)]
    pub reason: String,
}

impl HealthResponse {
    pub fn healthy(&self) -> bool {
        self.health == "true"
    }
}

/// The gateway's error body.
#[derive(Debug, Deserialize)]
struct ErrorBody {
    #[serde(default)]
    error: String,
    #[serde(default)]
    message: String,
}

/// A u64 sent as a JSON string (or, leniently, as a number).
fn opt_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum StrOrNum {
        Str(String),
        Num(u64),
    }
    match Option::<StrOrNum>::deserialize(d)? {
        None => Ok(None),
        Some(StrOrNum::Num(n)) => Ok(Some(n)),
        Some(StrOrNum::Str(s)) => s
            .parse()
            .map(Some)
            .map_err(|_| de::Error::custom(format!("\"{s}\" is not an unsigned 64-bit integer"))),
    }
}

/// A base URL without trailing slashes, for joining paths and comparing URLs.
pub fn normalize(url: &str) -> String {
    url.trim().trim_end_matches('/').to_string()
}

/// A gateway client for one set of TLS settings.
#[derive(Debug, Clone)]
pub struct Gateway {
    http: reqwest::Client,
}

impl Gateway {
    pub fn new(http: reqwest::Client) -> Self {
        Self { http }
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    pub async fn status(&self, endpoint: &str) -> Result<StatusResponse, String> {
        self.post(endpoint, "/v3/maintenance/status").await
    }

    pub async fn member_list(&self, endpoint: &str) -> Result<MemberListResponse, String> {
        self.post(endpoint, "/v3/cluster/member/list").await
    }

    pub async fn health(&self, endpoint: &str) -> Result<HealthResponse, String> {
        let url = format!("{}/health", normalize(endpoint));
        let resp = self.http.get(&url).send().await.map_err(describe)?;
        read_json(resp).await
    }

    /// `POST /v3/kv/put` (tests write keys so the disk histograms have data).
    pub async fn put(&self, endpoint: &str, key: &[u8], value: &[u8]) -> Result<(), String> {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD;
        #[derive(Serialize)]
        struct Put {
            key: String,
            value: String,
        }
        let body = Put {
            key: b64.encode(key),
            value: b64.encode(value),
        };
        let url = format!("{}/v3/kv/put", normalize(endpoint));
        let resp = self
            .http
            .post(&url)
            .json(&body)
            .send()
            .await
            .map_err(describe)?;
        read_json::<serde_json::Value>(resp).await.map(|_| ())
    }

    /// GET a metrics page as text.
    pub async fn metrics_text(&self, url: &str) -> Result<String, String> {
        let resp = self.http.get(url).send().await.map_err(describe)?;
        let status = resp.status();
        if !status.is_success() {
            return Err(format!("HTTP {status}"));
        }
        resp.text().await.map_err(describe)
    }

    async fn post<T: for<'de> Deserialize<'de>>(
        &self,
        endpoint: &str,
        path: &str,
    ) -> Result<T, String> {
        let url = format!("{}{path}", normalize(endpoint));
        let resp = self
            .http
            .post(&url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body("{}")
            .send()
            .await
            .map_err(describe)?;
        read_json(resp).await
    }
}

async fn read_json<T: for<'de> Deserialize<'de>>(resp: reqwest::Response) -> Result<T, String> {
    let status = resp.status();
    let body = resp.bytes().await.map_err(describe)?;
    if !status.is_success() {
        let detail = serde_json::from_slice::<ErrorBody>(&body)
            .ok()
            .map(|e| {
                if e.message.is_empty() {
                    e.error
                } else {
                    e.message
                }
            })
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| {
                String::from_utf8_lossy(&body)
                    .trim()
                    .chars()
                    .take(200)
                    .collect()
            });
        return Err(format!("HTTP {}: {detail}", status.as_u16()));
    }
    serde_json::from_slice(&body).map_err(|e| format!("unexpected answer: {e}"))
}

/// A reqwest error as a short message with its causes ("connection refused", "timed out",
/// "invalid peer certificate: UnknownIssuer"), without the URL (callers name the endpoint).
pub fn describe(e: reqwest::Error) -> String {
    if e.is_timeout() {
        return "timed out".into();
    }
    let mut parts: Vec<String> = Vec::new();
    let mut src: Option<&dyn std::error::Error> = std::error::Error::source(&e);
    while let Some(s) = src {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        src = s.source();
    }
    // The innermost causes say the most ("Connection refused (os error 111)").
    let useful: Vec<&String> = parts
        .iter()
        .filter(|p| !p.starts_with("client error") && p.as_str() != "error sending request")
        .collect();
    match useful.last() {
        Some(last) => last.to_string(),
        None => e.without_url().to_string(),
    }
}

/// Timeout applied to every gateway and metrics call.
pub fn clamp_timeout(ms: u64) -> Duration {
    Duration::from_millis(ms.clamp(50, 10_000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_as_etcd_3_4_sends_it() {
        let json = r#"{"header":{"cluster_id":"1556087875441507966","member_id":"3619358829194788999","revision":"1","raft_term":"2"},"version":"3.4.23","dbSize":"20480","leader":"15308313228864965819","raftIndex":"8","raftTerm":"2","raftAppliedIndex":"8","dbSizeInUse":"16384"}"#;
        let s: StatusResponse = serde_json::from_str(json).unwrap();
        assert_eq!(s.header.member_id, Some(3619358829194788999));
        assert_eq!(s.header.cluster_id, Some(1556087875441507966));
        assert_eq!(s.leader_id(), Some(15308313228864965819));
        assert_eq!(s.db_size, Some(20480));
        assert_eq!(s.raft_index, Some(8));
        assert_eq!(s.version.as_deref(), Some("3.4.23"));
        assert!(s.errors.is_empty() && !s.is_learner);

        let no_leader = r#"{"header":{"member_id":"1"},"version":"3.4.23","dbSize":"20480","raftIndex":"9","raftTerm":"3","errors":["etcdserver: no leader"]}"#;
        let s: StatusResponse = serde_json::from_str(no_leader).unwrap();
        assert_eq!(s.leader_id(), None);
        assert_eq!(s.errors, vec!["etcdserver: no leader"]);
        let zero: StatusResponse = serde_json::from_str(r#"{"leader":"0"}"#).unwrap();
        assert_eq!(zero.leader_id(), None);
        assert!(serde_json::from_str::<StatusResponse>(r#"{"leader":"-1"}"#).is_err());
    }

    #[test]
    fn member_list_as_etcd_3_4_sends_it() {
        let json = r#"{"header":{"cluster_id":"1556087875441507966","member_id":"3619358829194788999","raft_term":"2"},"members":[{"ID":"3619358829194788999","name":"e1","peerURLs":["http://127.0.0.1:23801"],"clientURLs":["http://127.0.0.1:23791"]},{"ID":"15308313228864965819","peerURLs":["http://127.0.0.1:23802"],"isLearner":true}]}"#;
        let l: MemberListResponse = serde_json::from_str(json).unwrap();
        assert_eq!(l.members.len(), 2);
        assert_eq!(l.members[0].id, Some(3619358829194788999));
        assert_eq!(l.members[0].client_urls, vec!["http://127.0.0.1:23791"]);
        assert_eq!(l.members[1].id, Some(15308313228864965819));
        assert!(l.members[1].name.is_empty() && l.members[1].is_learner);
    }

    #[test]
    fn health_and_urls() {
        let h: HealthResponse = serde_json::from_str(r#"{"health":"true"}"#).unwrap();
        assert!(h.healthy());
        let h: HealthResponse =
            serde_json::from_str(r#"{"health":"false","reason":"RAFT NO LEADER"}"#).unwrap();
        assert!(!h.healthy());
        assert_eq!(normalize("https://a:2379/ "), "https://a:2379");
        assert_eq!(clamp_timeout(0), Duration::from_millis(50));
    }
}
