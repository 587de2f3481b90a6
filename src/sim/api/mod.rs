//! The HTTP face of the simulated Kubernetes API server: TLS serving, authentication,
//! routing and discovery. The resource verbs are one file each: `read` (get, list, Tables),
//! `write` (create, update, patch, delete, the eviction subresource), `watch`; `control` is
//! the `/sim/v1` control API. Everything that changes the world goes through `World`; this
//! layer only translates.

mod control;
mod nix;
mod read;
mod watch;
mod write;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Extension, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::build::K3S_VERSION;
use super::resources::{self, PODS, Resource};
use super::store::ApiError;
use super::world::World;

/// Whether the TLS peer presented a client certificate signed by the sim's CA.
#[derive(Debug, Clone, Copy)]
pub struct ClientCert(pub bool);

/// Shared state of the HTTP layer.
#[derive(Clone)]
pub struct Api {
    pub world: Arc<World>,
    pub token: Arc<String>,
    /// Extra facts for `/sim/v1/state` (e.g. the etcd endpoints).
    pub info: Arc<Value>,
    /// The SSH commands the hosts received, for `/sim/v1/requests`.
    pub ssh: Arc<super::ssh::RequestLog>,
}

type Params = HashMap<String, String>;

/// A JSON response with `code`.
fn json_body(code: u16, body: Body) -> Response {
    Response::builder()
        .status(StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header(header::CONTENT_TYPE, "application/json")
        .body(body)
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

fn json_response(code: u16, v: &Value) -> Response {
    json_body(code, Body::from(serde_json::to_vec(v).unwrap_or_default()))
}

fn error_response(e: &ApiError) -> Response {
    json_response(e.code, &e.status())
}

fn unauthorized() -> Response {
    json_response(
        401,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "Unauthorized", "reason": "Unauthorized", "code": 401}),
    )
}

pub fn router(api: Api) -> Router {
    Router::new().fallback(handle).with_state(api)
}

/// Serve the router over TLS on `listener` until `stop` is cancelled.
pub async fn serve_tls(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    router: Router,
    stop: CancellationToken,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => return,
            a = listener.accept() => a,
        };
        let Ok((tcp, _)) = accepted else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let acceptor = acceptor.clone();
        let router = router.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let Ok(Ok(stream)) =
                tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await
            else {
                return;
            };
            let has_cert = stream
                .get_ref()
                .1
                .peer_certificates()
                .is_some_and(|c| !c.is_empty());
            let svc = router.layer(axum::Extension(ClientCert(has_cert)));
            let svc = hyper_util::service::TowerToHyperService::new(svc);
            let builder =
                hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
            let conn =
                builder.serve_connection_with_upgrades(hyper_util::rt::TokioIo::new(stream), svc);
            tokio::select! {
                _ = conn => {}
                _ = stop.cancelled() => {}
            }
        });
    }
}

fn authorized(api: &Api, cert: ClientCert, headers: &HeaderMap) -> bool {
    if cert.0 {
        return true;
    }
    headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .is_some_and(|t| t.trim() == api.token.as_str())
}

async fn handle(
    State(api): State<Api>,
    Extension(cert): Extension<ClientCert>,
    Query(params): Query<Params>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !authorized(&api, cert, &headers) {
        return unauthorized();
    }
    let path = uri.path().trim_end_matches('/').to_string();
    let is_write = !matches!(method, Method::GET | Method::HEAD | Method::OPTIONS);
    let sim = path.starts_with("/sim/");
    let response = dispatch(&api, &method, &path, &params, &headers, body).await;
    if is_write && !sim {
        api.world
            .record_write(method.as_str(), &path, response.status().as_u16());
    }
    response
}

async fn dispatch(
    api: &Api,
    method: &Method,
    path: &str,
    params: &Params,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    // The face's fault first (hang, garbage, 500, slow, flap): Longhorn's group is its own
    // face, everything else but the control API is the Kubernetes face.
    let face = match segs.as_slice() {
        ["sim", ..] => None,
        ["apis", "longhorn.io", ..] => Some("longhorn"),
        _ => Some("kubernetes"),
    };
    let answer = answer(api, method, path, segs, params, headers, body);
    match face {
        Some(face) => {
            let streaming = params.get("watch").is_some_and(|w| w == "true" || w == "1");
            api.world
                .face_faults
                .clone()
                .http(face, streaming, answer)
                .await
        }
        None => answer.await,
    }
}

async fn answer(
    api: &Api,
    method: &Method,
    path: &str,
    mut segs: Vec<&str>,
    params: &Params,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    let faults = api.world.faults();
    if let Some(r) = faulty_answer(api, &faults, method, &mut segs) {
        return r;
    }
    match segs.as_slice() {
        ["version"] => json_response(200, &version()),
        ["healthz"] | ["readyz"] | ["livez"] => (StatusCode::OK, "ok").into_response(),
        ["api"] => json_response(
            200,
            &json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs":
                [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:6443"}]}),
        ),
        ["apis"] => {
            let mut groups = resources::group_list();
            if faults.longhorn_v1beta1
                && let Some(list) = groups["groups"].as_array_mut()
            {
                for g in list.iter_mut().filter(|g| g["name"] == "longhorn.io") {
                    let gv = json!({"groupVersion": "longhorn.io/v1beta1", "version": "v1beta1"});
                    g["versions"] = json!([gv.clone()]);
                    g["preferredVersion"] = gv;
                }
            }
            json_response(200, &groups)
        }
        ["api", "v1"] => discovery("", "v1"),
        ["apis", group] => match resources::GROUP_VERSIONS.iter().find(|(g, _)| g == group) {
            Some((g, v)) => json_response(
                200,
                &json!({"kind": "APIGroup", "apiVersion": "v1", "name": g,
                    "versions": [{"groupVersion": format!("{g}/{v}"), "version": v}],
                    "preferredVersion": {"groupVersion": format!("{g}/{v}"), "version": v}}),
            ),
            None => not_found_path(path),
        },
        ["apis", group, version] => discovery(group, version),
        ["sim", "v1", "nix", rest @ ..] => nix::nix(api, method, rest, params, body),
        ["sim", "v1", rest @ ..] => control::control(api, method, rest, body),
        ["api", "v1", rest @ ..] => {
            resource_request(api, "", "v1", rest, method, params, headers, body).await
        }
        ["apis", group, version, rest @ ..] => {
            resource_request(api, group, version, rest, method, params, headers, body).await
        }
        _ => not_found_path(path),
    }
}

/// What a fault answers instead of the world (`Some`), or how it changes the request
/// (`segs` rewritten): `longhorn-v1beta1` serves Longhorn's kinds at `v1beta1` only (404 at
/// `v1beta2`), `longhorn-other-namespace` moves them out of `longhorn-system`, `lease-fails`
/// answers 500 to Lease writes.
fn faulty_answer(
    api: &Api,
    faults: &crate::sim::world::Faults,
    method: &Method,
    segs: &mut [&str],
) -> Option<Response> {
    let longhorn = segs.len() >= 2 && segs[0] == "apis" && segs[1] == "longhorn.io";
    if longhorn && faults.longhorn_v1beta1 {
        match segs.get(2).copied() {
            None => {
                return Some(json_response(
                    200,
                    &json!({"kind": "APIGroup", "apiVersion": "v1", "name": "longhorn.io",
                        "versions": [{"groupVersion": "longhorn.io/v1beta1", "version": "v1beta1"}],
                        "preferredVersion": {"groupVersion": "longhorn.io/v1beta1", "version": "v1beta1"}}),
                ));
            }
            Some("v1beta1") => segs[2] = "v1beta2",
            Some(_) => return Some(not_found_path(&format!("/{}", segs.join("/")))),
        }
    }
    if longhorn
        && faults.longhorn_other_namespace
        && segs.get(3) == Some(&"namespaces")
        && segs.get(4) == Some(&crate::sim::build::LONGHORN_NS)
    {
        segs[4] = "longhorn";
    }
    let lease = segs.len() >= 4
        && segs[0] == "apis"
        && segs[1] == "coordination.k8s.io"
        && segs.contains(&"leases");
    if lease
        && !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
        && api.world.lease_writes_fail()
    {
        return Some(error_response(&ApiError::new(
            500,
            "InternalError",
            "etcdserver: request timed out (simulated: lease-fails)",
        )));
    }
    None
}

fn version() -> Value {
    json!({
        "major": "1",
        "minor": "31",
        "gitVersion": K3S_VERSION,
        "gitCommit": "a8b7d5b9c1e5b3f8d0c2e4a6b8d0f2a4c6e8a0b2",
        "gitTreeState": "clean",
        "buildDate": "2024-12-12T08:53:31Z",
        "goVersion": "go1.22.9",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

fn not_found_path(path: &str) -> Response {
    error_response(&ApiError::new(
        404,
        "NotFound",
        format!("the server could not find the requested resource ({path})"),
    ))
}

fn discovery(group: &str, version: &str) -> Response {
    match resources::resource_list(group, version) {
        Some(v) => json_response(200, &v),
        None => not_found_path(&format!("/apis/{group}/{version}")),
    }
}

/// `[namespaces/NS/]PLURAL[/NAME[/SUB]]`.
struct Target<'a> {
    res: Resource,
    ns: Option<&'a str>,
    name: Option<&'a str>,
    sub: Option<&'a str>,
}

impl Target<'_> {
    /// The namespace an object of this request lives in: `""` for cluster-scoped resources,
    /// `default` when a namespaced request names none.
    fn namespace(&self) -> &str {
        if self.res.namespaced {
            self.ns.unwrap_or("default")
        } else {
            ""
        }
    }
}

fn parse_target<'a>(group: &str, version: &str, rest: &[&'a str]) -> Result<Target<'a>, ApiError> {
    let (ns, rest) = match rest {
        ["namespaces", ns, tail @ ..]
            if !tail.is_empty() && !matches!(tail, ["status"] | ["finalize"]) =>
        {
            (Some(*ns), tail)
        }
        _ => (None, rest),
    };
    let Some(plural) = rest.first() else {
        return Err(ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        ));
    };
    let Some(res) = resources::find(group, version, plural) else {
        return Err(ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
        .with_details(json!({"group": group, "kind": plural})));
    };
    if ns.is_some() && !res.namespaced {
        return Err(ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        ));
    }
    if rest.len() > 3 {
        return Err(ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        ));
    }
    Ok(Target {
        res,
        ns,
        name: rest.get(1).copied(),
        sub: rest.get(2).copied(),
    })
}

/// The request body as a JSON object.
fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            "the body of the request could not be decoded as JSON: {e}"
        ))
    })?;
    if !v.is_object() {
        return Err(ApiError::bad_request(
            "the body of the request must be a JSON object",
        ));
    }
    Ok(v)
}

#[allow(clippy::too_many_arguments)]
async fn resource_request(
    api: &Api,
    group: &str,
    version: &str,
    rest: &[&str],
    method: &Method,
    params: &Params,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    let t = match parse_target(group, version, rest) {
        Ok(t) => t,
        Err(e) => return error_response(&e),
    };
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("application/json")
        .to_string();
    let result = match (method, t.name, t.sub) {
        (&Method::GET, None, _) => {
            if params.get("watch").is_some_and(|w| w == "true" || w == "1") {
                return watch::watch(api, &t, params, accept).await;
            }
            return read::list(api, &t, params, accept);
        }
        (&Method::GET, Some(name), None | Some("status")) => {
            read::get(api, &t, name, params, accept)
        }
        (&Method::POST, None, _) => write::create(api, &t, &body),
        (&Method::POST, Some(name), Some("eviction")) if t.res == PODS => {
            let ns = t.ns.unwrap_or("default");
            parse_json(&body)
                .and_then(|b| api.world.evict(ns, name, &b))
                .map(|v| (201, v))
        }
        (&Method::PUT, Some(name), None | Some("status")) => write::update(api, &t, name, &body),
        (&Method::PATCH, Some(name), None | Some("status")) => {
            write::patch(api, &t, name, &content_type, &body)
        }
        (&Method::DELETE, Some(name), None) => write::delete(api, &t, name, params, &body),
        (&Method::DELETE, None, _)
        | (&Method::POST, Some(_), _)
        | (&Method::PUT, None, _)
        | (&Method::PATCH, None, _) => Err(ApiError::new(
            405,
            "MethodNotAllowed",
            format!(
                "the server does not allow this method on the requested resource ({})",
                t.res.qualified()
            ),
        )),
        _ => Err(ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )),
    };
    match result {
        Ok((code, v)) => json_response(code, &v),
        Err(e) => error_response(&e),
    }
}
