//! The `/sim/v1` control API: the world's state, the writes received, scenarios (faults)
//! turned on and off (`GET /sim/v1/faults`: each face's fault and since when), host reboots.

use axum::body::Bytes;
use axum::http::Method;
use axum::response::Response;
use serde_json::{Value, json};

use super::{Api, error_response, json_response, parse_json};
use crate::sim::scenario::{self, Scenario, UnknownScenario};
use crate::sim::store::ApiError;

/// `/sim/v1/...`: state, received writes, faults, reboots.
pub(super) fn control(api: &Api, method: &Method, rest: &[&str], body: Bytes) -> Response {
    let world = &api.world;
    let result: Result<(u16, Value), ApiError> = match (method, rest) {
        (&Method::GET, ["state"]) => {
            let mut s = world.state_json();
            s["endpoints"] = (*api.info).clone();
            Ok((200, s))
        }
        (&Method::GET, ["requests"]) => Ok((
            200,
            json!({"requests": world.writes(), "ssh": api.ssh.all()}),
        )),
        (&Method::GET, ["faults"]) => Ok((200, world.face_faults.json())),
        (&Method::GET, ["scenarios"]) => Ok((200, json!({"scenarios": scenario::NAMES}))),
        (&Method::POST, ["faults"]) => parse_json(&body).and_then(|b| {
            let name = b.get("scenario").and_then(Value::as_str).unwrap_or("");
            let sc: Scenario = name
                .parse()
                .map_err(|e: UnknownScenario| ApiError::bad_request(e.to_string()))?;
            world.apply_scenario(&sc)?;
            Ok((200, json!({"applied": sc.to_string()})))
        }),
        (&Method::DELETE, ["faults", name]) => world
            .clear_scenario(name)
            .map(|_| (200, json!({"cleared": name}))),
        (&Method::POST, ["hosts", host, "reboot"]) => world
            .reboot(host)
            .map(|_| (202, json!({"rebooting": host}))),
        _ => Err(ApiError::new(
            404,
            "NotFound",
            format!("no control endpoint {method} /sim/v1/{}", rest.join("/")),
        )),
    };
    match result {
        Ok((code, v)) => json_response(code, &v),
        Err(e) => error_response(&e),
    }
}
