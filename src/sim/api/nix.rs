//! `/sim/v1/nix/...`: the simulated store and flake, answering what nix would on a machine
//! that has them (the app's `SimClosures` asks; `[nix] closure_source = "sim"`):
//!
//! - `GET lock` → `{"fingerprint"}`: the flake's lock (it changes with the k3s and kernel
//!   scenarios);
//! - `POST update` → `{"fingerprint"}`: `nix flake update` — the lock moves to the next
//!   nixpkgs revision (a new kernel patch), so every host has an update again;
//! - `GET toplevel/HOST?build=true|false` → `{"path", "log"}`: the host's
//!   `system.build.toplevel` with the flake's lock, evaluated or built (a build log);
//! - `GET path?path=P` → `{"path", "valid"}`: a store path the store has (else 404);
//! - `POST diff {"old","new"}` → `{"old","new","diff_closures","boot_links","path_info"}`:
//!   the text `nix store diff-closures OLD NEW` prints, both systems' boot links, and the
//!   text of `nix path-info -S --json OLD NEW` — written by
//!   `crate::probes::nixtext`, read by the app's own parsers.

use axum::body::Bytes;
use axum::http::Method;
use axum::response::Response;
use serde_json::{Value, json};

use super::{Api, Params, error_response, json_response, parse_json};
use crate::model::closure::BootLink;
use crate::probes::nixtext;
use crate::sim::store::ApiError;
use crate::sim::systems::System;

pub(super) fn nix(
    api: &Api,
    method: &Method,
    rest: &[&str],
    params: &Params,
    body: Bytes,
) -> Response {
    let world = &api.world;
    let result: Result<Value, ApiError> = match (method, rest) {
        (&Method::GET, ["lock"]) => Ok(json!({"fingerprint": world.flake_fingerprint()})),
        (&Method::GET, ["toplevel", host]) => match world.flake_system(host) {
            Some(s) => {
                let build = params.get("build").is_some_and(|b| b == "true");
                let path = s.path();
                let log: Vec<String> = if build {
                    vec![
                        format!(
                            "building '/nix/store/{}-{}.drv'...",
                            crate::sim::systems::store_hash(&path),
                            s.name()
                        ),
                        path.clone(),
                    ]
                } else {
                    Vec::new()
                };
                Ok(json!({"path": path, "log": log}))
            }
            None => Err(ApiError::new(
                404,
                "NotFound",
                format!(
                    "error: flake 'github:homelab/infra' does not provide attribute 'nixosConfigurations.{host}.config.system.build.toplevel'"
                ),
            )),
        },
        (&Method::POST, ["update"]) => Ok(json!({"fingerprint": world.flake_update()})),
        (&Method::GET, ["path"]) => {
            let path = params.get("path").map(String::as_str).unwrap_or("");
            lookup(world, path).map(|_| json!({"path": path, "valid": true}))
        }
        (&Method::POST, ["diff"]) => parse_json(&body).and_then(|b| {
            let field = |k: &str| b.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            let (old, new) = (field("old"), field("new"));
            let a = lookup(world, &old)?;
            let z = lookup(world, &new)?;
            Ok(json!({
                "old": old,
                "new": new,
                "diff_closures": nixtext::diff_closures(&a.items(), &z.items()),
                "boot_links": boot_links(&a, &z),
                "path_info": nixtext::path_info(&[a.path_info(), z.path_info()]),
            }))
        }),
        _ => Err(ApiError::new(
            404,
            "NotFound",
            format!("no nix endpoint {method} /sim/v1/nix/{}", rest.join("/")),
        )),
    };
    match result {
        Ok(v) => json_response(200, &v),
        Err(e) => error_response(&e),
    }
}

/// A system of the simulated store, or nix's error for a path it does not have.
fn lookup(world: &crate::sim::World, path: &str) -> Result<std::sync::Arc<System>, ApiError> {
    world.store_system(path).ok_or_else(|| {
        ApiError::new(
            404,
            "NotFound",
            format!("error: path '{path}' is not valid in the simulated store"),
        )
    })
}

/// The `kernel`, `initrd` and `kernel-modules` links of both systems.
fn boot_links(a: &System, z: &System) -> Vec<BootLink> {
    let (x, y) = (a.boot_files(), z.boot_files());
    [
        ("kernel", x.kernel, y.kernel),
        ("initrd", x.initrd, y.initrd),
        ("kernel-modules", x.kernel_modules, y.kernel_modules),
    ]
    .into_iter()
    .map(|(name, old, new)| BootLink {
        name: name.into(),
        old,
        new,
    })
    .collect()
}
