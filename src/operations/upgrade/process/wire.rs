//! The control socket's protocol: line-delimited JSON, one object a line.
//!
//! Server → client:
//! - first `{"hello": {"run_id": …, "pid": …, "next_seq": N, "journal": …, "version": 1}}`:
//!   the events from `N` on come over this connection, the earlier ones are in the journal;
//! - then every event of the run as its journal record, `{"ts": …, "seq": N, "event":
//!   "step_started", …}` — command output (`"event": "output"`) too;
//! - `{"ack": {"control": "pause"}}` when the run took a control, `{"error": "…"}` when a line
//!   was not one;
//! - `{"lagged": K}` before the server drops a client that fell `K` events behind (it reads
//!   the journal and connects again).
//!
//! Client → server: one [`Control`] a line, as the engine's own type serializes it:
//! `{"control": "pause"}`, `{"control": "abort"}`, `{"control": "skip", "node": "node3"}`, …
//!
//! After the run's `run_finished` event the server closes every connection.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::operations::upgrade::Control;
use crate::operations::upgrade::journal::Record;

/// The protocol's version (in the hello).
pub const VERSION: u32 = 1;

/// What a client hears first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub run_id: String,
    /// The engine process.
    pub pid: u32,
    /// Events from this sequence number on come over this connection.
    pub next_seq: u64,
    /// The run's journal (the events before `next_seq`).
    pub journal: PathBuf,
    pub version: u32,
}

/// One line from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerLine {
    Hello(Hello),
    Event(Record),
    Ack(Control),
    Error(String),
    Lagged(u64),
}

impl ServerLine {
    /// The line, without its newline.
    pub fn encode(&self) -> String {
        let v = match self {
            ServerLine::Hello(h) => serde_json::json!({ "hello": h }),
            ServerLine::Event(r) => serde_json::to_value(r).unwrap_or_default(),
            ServerLine::Ack(c) => serde_json::json!({ "ack": c }),
            ServerLine::Error(e) => serde_json::json!({ "error": e }),
            ServerLine::Lagged(n) => serde_json::json!({ "lagged": n }),
        };
        v.to_string()
    }

    /// Read a line from the server.
    pub fn decode(line: &str) -> Result<ServerLine, String> {
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
        let obj = v
            .as_object()
            .ok_or_else(|| "not a JSON object".to_string())?;
        let bad = |what: &str, e: serde_json::Error| format!("not a {what}: {e}");
        if obj.contains_key("event") {
            return serde_json::from_value(v)
                .map(ServerLine::Event)
                .map_err(|e| bad("journal record", e));
        }
        if let Some(h) = obj.get("hello") {
            return serde_json::from_value(h.clone())
                .map(ServerLine::Hello)
                .map_err(|e| bad("hello", e));
        }
        if let Some(c) = obj.get("ack") {
            return serde_json::from_value(c.clone())
                .map(ServerLine::Ack)
                .map_err(|e| bad("control", e));
        }
        if let Some(e) = obj.get("error") {
            return Ok(ServerLine::Error(
                e.as_str().map_or_else(|| e.to_string(), str::to_string),
            ));
        }
        if let Some(n) = obj.get("lagged").and_then(|n| n.as_u64()) {
            return Ok(ServerLine::Lagged(n));
        }
        Err("not a line of the control socket".into())
    }
}

/// Encode a control for the server (without the newline).
pub fn encode_control(c: &Control) -> String {
    serde_json::to_string(c).unwrap_or_default()
}

/// Read a control from a client.
pub fn decode_control(line: &str) -> Result<Control, String> {
    serde_json::from_str(line).map_err(|e| {
        format!(
            "not a control ({e}): send one JSON object a line, e.g. {{\"control\":\"pause\"}} or {{\"control\":\"skip\",\"node\":\"node3\"}}"
        )
    })
}

/// A control typed by a person (`upgrade --attach`): `pause`, `resume`, `abort`, `retry`,
/// `skip NODE`, `approve` (or `yes`), `decline` (or `no`).
pub fn parse_typed(line: &str) -> Result<Control, String> {
    let mut words = line.split_whitespace();
    let verb = words.next().unwrap_or("").to_ascii_lowercase();
    let c = match verb.as_str() {
        "pause" => Control::Pause,
        "resume" => Control::Resume,
        "abort" => Control::Abort,
        "retry" => Control::Retry,
        "approve" | "yes" | "y" => Control::Approve,
        "decline" | "no" | "n" => Control::Decline,
        "uncordon" | "end" => Control::EndMaintenance,
        "skip" => match words.next() {
            Some(node) => Control::Skip {
                node: node.to_string(),
            },
            None => return Err("skip which node? `skip NODE`".into()),
        },
        _ => {
            return Err(format!(
                "`{}`: type pause, resume, abort, retry, skip NODE, approve or decline",
                line.trim()
            ));
        }
    };
    if words.next().is_some() {
        return Err(format!("`{}`: one control a line", line.trim()));
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operations::upgrade::{Step, UpgradeEvent};

    #[test]
    fn lines_round_trip() {
        let ts = jiff::Timestamp::from_second(1_800_000_000).unwrap();
        let lines = [
            ServerLine::Hello(Hello {
                run_id: "r1".into(),
                pid: 42,
                next_seq: 7,
                journal: "/s/runs/r1.jsonl".into(),
                version: VERSION,
            }),
            ServerLine::Event(Record {
                ts,
                seq: Some(7),
                event: UpgradeEvent::StepStarted {
                    node: "n1".into(),
                    step: Step::Drain,
                },
            }),
            ServerLine::Event(Record {
                ts,
                seq: Some(8),
                event: UpgradeEvent::Output {
                    node: "n1".into(),
                    line: "building".into(),
                },
            }),
            ServerLine::Ack(Control::Skip { node: "n2".into() }),
            ServerLine::Error("nope".into()),
            ServerLine::Lagged(3),
        ];
        for l in lines {
            let text = l.encode();
            assert!(!text.contains('\n'), "{text}");
            assert_eq!(ServerLine::decode(&text), Ok(l), "{text}");
        }
        assert_eq!(
            ServerLine::decode(
                r#"{"ts":"2027-01-15T08:00:00Z","seq":3,"event":"step_started","node":"a","step":"reboot"}"#
            ),
            Ok(ServerLine::Event(Record {
                ts: "2027-01-15T08:00:00Z".parse().unwrap(),
                seq: Some(3),
                event: UpgradeEvent::StepStarted {
                    node: "a".into(),
                    step: Step::Reboot
                },
            }))
        );
        assert!(ServerLine::decode("[]").is_err());
        assert!(ServerLine::decode("{\"what\":1}").is_err());
    }

    #[test]
    fn controls_on_the_wire_and_typed() {
        assert_eq!(encode_control(&Control::Pause), r#"{"control":"pause"}"#);
        assert_eq!(
            decode_control(r#"{"control":"skip","node":"node3"}"#),
            Ok(Control::Skip {
                node: "node3".into()
            })
        );
        assert!(
            decode_control("pause")
                .unwrap_err()
                .contains(r#"{"control":"pause"}"#)
        );
        assert_eq!(parse_typed(" Abort "), Ok(Control::Abort));
        assert_eq!(
            parse_typed("skip node2"),
            Ok(Control::Skip {
                node: "node2".into()
            })
        );
        assert_eq!(parse_typed("y"), Ok(Control::Approve));
        assert!(parse_typed("skip").is_err());
        assert!(parse_typed("abort now").is_err());
        assert!(parse_typed("reboot").unwrap_err().contains("pause, resume"));
    }
}
