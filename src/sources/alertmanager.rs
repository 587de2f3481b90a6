//! Alertmanager's API v2 (`[alertmanager]`, or Mimir's under `/alertmanager`): the alerts it
//! holds (with whether each is silenced or inhibited) and the silences of a run — created with
//! a short end time, extended in place (same matchers, same start: the same id), expired with
//! `DELETE`. The HTTP client (tenant, basic auth or bearer token, CA) is [`super::http`]'s;
//! messages name only the server's origin.

use std::collections::BTreeMap;
use std::time::Duration;

use color_eyre::eyre::{Result, eyre};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::http::{http_client, redact_userinfo, root_cause, url_origin};
use crate::config::{AlertmanagerConfig, SilenceMatcher};
use crate::inventory::Host;

/// `createdBy` of every silence this tool makes.
pub const CREATED_BY: &str = "homeinfra-tui";

/// An Alertmanager client.
#[derive(Clone)]
pub struct Alertmanager {
    http: reqwest::Client,
    /// The URL without a trailing slash (`…/api/v2/…` is appended).
    base: String,
    origin: String,
}

impl std::fmt::Debug for Alertmanager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Alertmanager")
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

/// An alert as Alertmanager holds it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AmAlert {
    pub labels: BTreeMap<String, String>,
    /// `active`, `suppressed` or `unprocessed`.
    pub state: String,
    /// The silences that mute it.
    pub silenced_by: Vec<String>,
    /// The alerts (fingerprints) that inhibit it.
    pub inhibited_by: Vec<String>,
}

impl AmAlert {
    pub fn name(&self) -> &str {
        self.labels.get("alertname").map_or("", String::as_str)
    }

    pub fn severity(&self) -> String {
        self.labels
            .get("severity")
            .map(|s| s.to_ascii_lowercase())
            .unwrap_or_default()
    }

    /// What it is about: its `instance`, `node`, `host`, `namespace` or `job` label.
    pub fn subject(&self) -> String {
        ["instance", "node", "host", "namespace", "job"]
            .iter()
            .find_map(|k| self.labels.get(*k).cloned())
            .unwrap_or_default()
    }

    /// Muted: silenced or inhibited.
    pub fn muted(&self) -> bool {
        !self.silenced_by.is_empty() || !self.inhibited_by.is_empty()
    }
}

#[derive(Deserialize)]
struct WireAlert {
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    status: WireAlertStatus,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct WireAlertStatus {
    #[serde(default)]
    state: String,
    #[serde(default)]
    silenced_by: Vec<String>,
    #[serde(default)]
    inhibited_by: Vec<String>,
}

/// A silence as Alertmanager returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Silence {
    pub id: String,
    pub matchers: Vec<SilenceMatcher>,
    pub starts_at: String,
    pub ends_at: String,
    #[serde(default)]
    pub created_by: String,
    #[serde(default)]
    pub comment: String,
    #[serde(default)]
    pub status: SilenceStatus,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SilenceStatus {
    /// `active`, `pending` or `expired`.
    #[serde(default)]
    pub state: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PostSilence<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    matchers: &'a [SilenceMatcher],
    starts_at: String,
    ends_at: String,
    created_by: &'a str,
    comment: &'a str,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SilenceId {
    #[serde(rename = "silenceID")]
    silence_id: String,
}

/// Alertmanager's time format (RFC 3339, milliseconds, UTC).
fn am_time(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

impl Alertmanager {
    /// Build from `[alertmanager]`; fails when no URL is set or a secret cannot be read.
    pub fn new(cfg: &AlertmanagerConfig) -> Result<Self> {
        let url = cfg
            .url
            .as_deref()
            .ok_or_else(|| eyre!("[alertmanager] url is not set"))?;
        let base = url.trim_end_matches('/').to_string();
        let http = http_client(
            "alertmanager",
            cfg.tenant.as_deref(),
            &cfg.auth,
            Duration::from_secs(cfg.timeout_secs.max(1)),
        )?;
        Ok(Self {
            http,
            origin: url_origin(&base),
            base,
        })
    }

    /// Where it asks, for messages: `scheme://host:port`.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    fn url(&self, path: &str) -> String {
        format!("{}/api/v2/{path}", self.base)
    }

    /// What a failed request says: the origin and the innermost cause, never the URL's
    /// credentials.
    fn failed(&self, what: &str, e: &reqwest::Error) -> String {
        redact_userinfo(&format!(
            "Alertmanager {} {what}: {}",
            self.origin,
            root_cause(e)
        ))
    }

    async fn answer(&self, what: &str, r: reqwest::Response) -> Result<reqwest::Response, String> {
        let status = r.status();
        if status.is_success() {
            return Ok(r);
        }
        let body = r.text().await.unwrap_or_default();
        let body: String = body.trim().chars().take(200).collect();
        Err(match status.as_u16() {
            401 | 403 => format!(
                "Alertmanager {} {what}: unauthorized ({status}) — check [alertmanager] tenant and credentials",
                self.origin
            ),
            _ => redact_userinfo(&format!(
                "Alertmanager {} {what}: {status}: {body}",
                self.origin
            )),
        })
    }

    /// The alerts it holds. `muted_too`: silenced and inhibited ones as well (for the pane);
    /// else only those neither silenced nor inhibited (for the alert guard).
    pub async fn alerts(&self, muted_too: bool) -> Result<Vec<AmAlert>, String> {
        let what = "alerts";
        let mut req = self.http.get(self.url("alerts"));
        if !muted_too {
            req = req.query(&[("silenced", "false"), ("inhibited", "false")]);
        }
        let r = req.send().await.map_err(|e| self.failed(what, &e))?;
        let r = self.answer(what, r).await?;
        let wire: Vec<WireAlert> = r.json().await.map_err(|e| {
            format!(
                "Alertmanager {} {what}: unreadable answer: {e}",
                self.origin
            )
        })?;
        let mut out: Vec<AmAlert> = wire
            .into_iter()
            .map(|w| AmAlert {
                labels: w.labels,
                state: w.status.state,
                silenced_by: w.status.silenced_by,
                inhibited_by: w.status.inhibited_by,
            })
            .collect();
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(out)
    }

    /// Create a silence from now until `ends`; its id.
    pub async fn create_silence(
        &self,
        matchers: &[SilenceMatcher],
        ends: Timestamp,
        comment: &str,
    ) -> Result<String, String> {
        self.post_silence(None, matchers, Timestamp::now(), ends, comment)
            .await
    }

    async fn post_silence(
        &self,
        id: Option<&str>,
        matchers: &[SilenceMatcher],
        starts: Timestamp,
        ends: Timestamp,
        comment: &str,
    ) -> Result<String, String> {
        let what = "silence";
        let body = PostSilence {
            id,
            matchers,
            starts_at: am_time(starts),
            ends_at: am_time(ends),
            created_by: CREATED_BY,
            comment,
        };
        let r = self
            .http
            .post(self.url("silences"))
            .json(&body)
            .send()
            .await
            .map_err(|e| self.failed(what, &e))?;
        let r = self.answer(what, r).await?;
        let id: SilenceId = r.json().await.map_err(|e| {
            format!(
                "Alertmanager {} {what}: unreadable answer: {e}",
                self.origin
            )
        })?;
        Ok(id.silence_id)
    }

    /// One silence (`None`: unknown).
    pub async fn silence(&self, id: &str) -> Result<Option<Silence>, String> {
        let what = "silence";
        let r = self
            .http
            .get(self.url(&format!("silence/{id}")))
            .send()
            .await
            .map_err(|e| self.failed(what, &e))?;
        if r.status().as_u16() == 404 {
            return Ok(None);
        }
        let r = self.answer(what, r).await?;
        r.json().await.map(Some).map_err(|e| {
            format!(
                "Alertmanager {} {what}: unreadable answer: {e}",
                self.origin
            )
        })
    }

    /// Every silence it keeps (expired ones too, until they are collected).
    pub async fn silences(&self) -> Result<Vec<Silence>, String> {
        let what = "silences";
        let r = self
            .http
            .get(self.url("silences"))
            .send()
            .await
            .map_err(|e| self.failed(what, &e))?;
        let r = self.answer(what, r).await?;
        r.json().await.map_err(|e| {
            format!(
                "Alertmanager {} {what}: unreadable answer: {e}",
                self.origin
            )
        })
    }

    /// Move a silence's end to `ends`, keeping its start and matchers as they are so that
    /// Alertmanager updates it in place. Its id afterwards: a new one when it had to be
    /// replaced (it had expired or gone: then a new silence with the same matchers).
    pub async fn extend(&self, id: &str, ends: Timestamp, comment: &str) -> Result<String, String> {
        let Some(s) = self.silence(id).await? else {
            return Err(format!("silence {id} is not known to Alertmanager"));
        };
        if s.status.state == "expired" {
            return self.create_silence(&s.matchers, ends, comment).await;
        }
        let starts: Timestamp = s
            .starts_at
            .parse()
            .map_err(|e| format!("silence {id}: unreadable startsAt {:?}: {e}", s.starts_at))?;
        self.post_silence(Some(id), &s.matchers, starts, ends, comment)
            .await
    }

    /// End a silence now (`DELETE` expires it; an unknown or expired one is left as it is).
    pub async fn expire(&self, id: &str) -> Result<(), String> {
        let what = "silence";
        let r = self
            .http
            .delete(self.url(&format!("silence/{id}")))
            .send()
            .await
            .map_err(|e| self.failed(what, &e))?;
        if r.status().as_u16() == 404 {
            return Ok(());
        }
        self.answer(what, r).await.map(|_| ())
    }
}

/// The silences of one host from `[alertmanager] silence_matchers`: one matcher each, with
/// `{hostname}`, `{id}`, `{ip}` and `{any}` (the three as alternatives) replaced — regex-escaped
/// in a regex. Entries that do not parse are left out (the config check refuses them).
pub fn host_silences(templates: &[String], host: &Host) -> Vec<SilenceMatcher> {
    let ip = host.ip.to_string();
    let mut names: Vec<&str> = vec![host.hostname.as_str(), host.id.as_str(), ip.as_str()];
    names.retain(|n| !n.is_empty());
    let mut seen = std::collections::BTreeSet::new();
    names.retain(|n| seen.insert(*n));
    templates
        .iter()
        .filter_map(|t| SilenceMatcher::parse(t))
        .map(|mut m| {
            let esc = |s: &str| {
                if m.is_regex {
                    regex::escape(s)
                } else {
                    s.to_string()
                }
            };
            let any = if m.is_regex {
                let alts: Vec<String> = names.iter().map(|n| regex::escape(n)).collect();
                if alts.len() == 1 {
                    alts[0].clone()
                } else {
                    format!("({})", alts.join("|"))
                }
            } else {
                host.hostname.clone()
            };
            let value = m
                .value
                .replace("{hostname}", &esc(&host.hostname))
                .replace("{id}", &esc(&host.id))
                .replace("{ip}", &esc(&ip))
                .replace("{any}", &any);
            m.value = value;
            m
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DEFAULT_SILENCE_MATCHERS;

    fn host() -> Host {
        let inv = crate::inventory::parse(
            std::path::Path::new("hosts.json"),
            r#"{"node3":{"hostname":"node3.lan","system":"x86_64-linux","profile":"k3s","role":"server","region":"r","zone":"z","ip":"10.0.0.3","gateway":"10.0.0.1","maskLength":24}}"#,
        );
        match inv {
            Ok(i) => i.hosts[0].clone(),
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn default_silences_cover_instance_node_and_host() {
        let t: Vec<String> = DEFAULT_SILENCE_MATCHERS
            .iter()
            .map(|s| s.to_string())
            .collect();
        let m = host_silences(&t, &host());
        let texts: Vec<String> = m.iter().map(|m| m.text()).collect();
        assert_eq!(
            texts,
            [
                r#"instance=~"(node3\.lan|node3|10\.0\.0\.3)(:[0-9]+)?""#,
                r#"node=~"(node3\.lan|node3|10\.0\.0\.3)""#,
                r#"host=~"(node3\.lan|node3|10\.0\.0\.3)""#,
            ]
        );
        let re = regex::Regex::new(&format!("^(?:{})$", m[0].value)).unwrap();
        assert!(re.is_match("node3:9100") && re.is_match("10.0.0.3:9100"));
        assert!(!re.is_match("node33:9100") && !re.is_match("10.0.0.30"));
    }

    #[test]
    fn matchers_parse_and_print() {
        let m = SilenceMatcher::parse(r#"instance=~"{hostname}(:\d+)?""#).unwrap();
        assert!(m.is_regex && m.is_equal);
        assert_eq!(m.text(), r#"instance=~"{hostname}(:\d+)?""#);
        let m = SilenceMatcher::parse("node!=x").unwrap();
        assert!(!m.is_equal && !m.is_regex);
        assert!(SilenceMatcher::parse("=x").is_none());
        assert!(SilenceMatcher::parse("node=\"\"").is_none());
        assert!(SilenceMatcher::parse("no operator").is_none());
        let plain = host_silences(&["node={hostname}".into()], &host());
        assert_eq!(plain[0].value, "node3.lan");
    }
}
