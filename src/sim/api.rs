//! The HTTP face of the simulated Kubernetes API server: routing, authentication, discovery,
//! get/list/watch, writes, the eviction subresource, Tables, and the `/sim/v1` control API.
//! Everything that changes the world goes through `World`; this layer only translates.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Extension, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use super::build::K3S_VERSION;
use super::resources::{self, NAMESPACES, PODS, Resource};
use super::scenario::Scenario;
use super::select::{FieldSelector, LabelSelector};
use super::store::{ApiError, Change, EventType, name_of, namespace_of};
use super::table;
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

fn json_response(code: u16, v: &Value) -> Response {
    let body = serde_json::to_vec(v).unwrap_or_default();
    Response::builder()
        .status(StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
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
    match segs.as_slice() {
        ["version"] => json_response(200, &version()),
        ["healthz"] | ["readyz"] | ["livez"] => (StatusCode::OK, "ok").into_response(),
        ["api"] => json_response(
            200,
            &json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs":
                [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:6443"}]}),
        ),
        ["apis"] => json_response(200, &resources::group_list()),
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
        ["sim", "v1", rest @ ..] => control(api, method, rest, body),
        ["api", "v1", rest @ ..] => {
            resource_request(api, "", "v1", rest, method, params, headers, body).await
        }
        ["apis", group, version, rest @ ..] => {
            resource_request(api, group, version, rest, method, params, headers, body).await
        }
        _ => not_found_path(path),
    }
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
                return watch(api, &t, params, accept).await;
            }
            return list(api, &t, params, accept);
        }
        (&Method::GET, Some(name), None | Some("status")) => get(api, &t, name, params, accept),
        (&Method::POST, None, _) => create(api, &t, &body),
        (&Method::POST, Some(name), Some("eviction")) if t.res == PODS => {
            let ns = t.ns.unwrap_or("default");
            parse_json(&body)
                .and_then(|b| api.world.evict(ns, name, &b))
                .map(|v| (201, v))
        }
        (&Method::PUT, Some(name), None | Some("status")) => update(api, &t, name, &body),
        (&Method::PATCH, Some(name), None | Some("status")) => {
            patch(api, &t, name, &content_type, &body)
        }
        (&Method::DELETE, Some(name), None) => delete(api, &t, name, params, &body),
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

fn selectors(res: &Resource, params: &Params) -> Result<(LabelSelector, FieldSelector), ApiError> {
    let ls = LabelSelector::parse(params.get("labelSelector").map_or("", String::as_str))?;
    let fs = FieldSelector::parse(res, params.get("fieldSelector").map_or("", String::as_str))?;
    Ok((ls, fs))
}

fn get(
    api: &Api,
    t: &Target,
    name: &str,
    params: &Params,
    accept: &str,
) -> Result<(u16, Value), ApiError> {
    let ns = if t.res.namespaced {
        t.ns.unwrap_or("default")
    } else {
        ""
    };
    let obj = api
        .world
        .store
        .get(&t.res, ns, name)
        .ok_or_else(|| ApiError::not_found(&t.res, name))?;
    if table::wants_table(accept) {
        let rv = obj
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .unwrap_or("");
        let include = params
            .get("includeObject")
            .map_or("Metadata", String::as_str);
        return Ok((200, table::table(&t.res, &[&obj], rv, include, None)));
    }
    Ok((200, (*obj).clone()))
}

fn list(api: &Api, t: &Target, params: &Params, accept: &str) -> Response {
    let (ls, fs) = match selectors(&t.res, params) {
        Ok(s) => s,
        Err(e) => return error_response(&e),
    };
    let (indexed, rv) = api.world.store.list_indexed(&t.res, t.ns);
    let want_table = table::wants_table(accept);
    // Filter on the index when it has what the selectors look at; parse otherwise.
    let indexed_fields = fs.indexed();
    let keep: Vec<usize> = if ls.is_empty() && fs.is_empty() {
        (0..indexed.len()).collect()
    } else {
        (0..indexed.len())
            .filter(|&i| {
                let (raw, meta) = &indexed[i];
                if !ls.matches(&meta.labels) {
                    return false;
                }
                if fs.is_empty() {
                    true
                } else if indexed_fields {
                    fs.matches(&meta.selectable())
                } else {
                    fs.matches(&super::store::parse(raw))
                }
            })
            .collect()
    };
    let raw: Vec<&Bytes> = indexed.iter().map(|(b, _)| b).collect();
    // Pagination: `continue` is the offset into this (sorted) result.
    let start: usize = params
        .get("continue")
        .and_then(|c| c.strip_prefix("sim-offset-"))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let limit: usize = params
        .get("limit")
        .and_then(|l| l.parse().ok())
        .filter(|l| *l > 0)
        .unwrap_or(usize::MAX);
    let end = start.saturating_add(limit).min(keep.len());
    let page = &keep[start.min(end)..end];
    let cont = (end < keep.len()).then(|| format!("sim-offset-{end}"));
    let rv = rv.to_string();
    if want_table {
        let include = params
            .get("includeObject")
            .map_or("Metadata", String::as_str);
        let items = page.iter().map(|&i| super::store::parse(raw[i]));
        let body = table::write_table(&t.res, items, &rv, include, cont.as_deref());
        return Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body))
            .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response());
    }
    // Stream the list out without cloning every object.
    let size: usize = page.iter().map(|&i| raw[i].len() + 1).sum();
    let mut out = Vec::with_capacity(size + 256);
    let mut meta = json!({"resourceVersion": rv});
    if let Some(c) = &cont {
        meta["continue"] = json!(c);
        meta["remainingItemCount"] = json!(keep.len() - end);
    }
    let _ = write!(
        out,
        "{{\"kind\":\"{}\",\"apiVersion\":\"{}\",\"metadata\":{},\"items\":[",
        t.res.list_kind(),
        t.res.api_version(),
        meta
    );
    for (n, &i) in page.iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        out.extend_from_slice(raw[i]);
    }
    out.extend_from_slice(b"]}");
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(out))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

fn check_body_identity(
    t: &Target,
    body: &mut Value,
    url_name: Option<&str>,
) -> Result<(), ApiError> {
    let want_av = t.res.api_version();
    if let Some(av) = body.get("apiVersion").and_then(Value::as_str)
        && av != want_av
    {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({av}) does not match the expected API version ({want_av})"
        )));
    }
    if let Some(k) = body.get("kind").and_then(Value::as_str)
        && k != t.res.kind
    {
        return Err(ApiError::bad_request(format!(
            "the kind in the data ({k}) does not match the expected kind ({})",
            t.res.kind
        )));
    }
    if !body.get("metadata").is_some_and(Value::is_object) {
        body["metadata"] = json!({});
    }
    if t.res.namespaced {
        let url_ns = t.ns.unwrap_or("default");
        match body.pointer("/metadata/namespace").and_then(Value::as_str) {
            Some(ns) if !ns.is_empty() && ns != url_ns => {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            _ => body["metadata"]["namespace"] = json!(url_ns),
        }
    }
    if let Some(n) = url_name {
        match body.pointer("/metadata/name").and_then(Value::as_str) {
            Some(b) if b != n => {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({b}) does not match the name on the URL ({n})"
                )));
            }
            Some(_) => {}
            None => body["metadata"]["name"] = json!(n),
        }
    }
    Ok(())
}

fn create(api: &Api, t: &Target, body: &[u8]) -> Result<(u16, Value), ApiError> {
    let mut obj = parse_json(body)?;
    check_body_identity(t, &mut obj, None)?;
    if t.res.namespaced {
        let ns = t.ns.unwrap_or("default");
        if api.world.store.get(&NAMESPACES, "", ns).is_none() {
            return Err(
                ApiError::new(404, "NotFound", format!("namespaces \"{ns}\" not found"))
                    .with_details(json!({"name": ns, "kind": "namespaces"})),
            );
        }
    }
    if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("resourceVersion");
        m.remove("uid");
    }
    let created = api.world.store.create(&t.res, obj)?;
    if t.res == PODS {
        api.world
            .adopt_pod(namespace_of(&created), name_of(&created));
    }
    Ok((201, (*created).clone()))
}

/// Keep the parts a request may not change: status on the main resource, everything but
/// status on `/status`.
fn merge_for_subresource(old: &Value, mut new: Value, sub: Option<&str>) -> Value {
    match sub {
        Some("status") => {
            let mut merged = old.clone();
            merged["status"] = new.get("status").cloned().unwrap_or(Value::Null);
            if let Some(rv) = new.pointer("/metadata/resourceVersion") {
                merged["metadata"]["resourceVersion"] = rv.clone();
            }
            merged
        }
        _ => {
            if let Some(s) = old.get("status") {
                new["status"] = s.clone();
            }
            new
        }
    }
}

fn update(api: &Api, t: &Target, name: &str, body: &[u8]) -> Result<(u16, Value), ApiError> {
    let mut obj = parse_json(body)?;
    check_body_identity(t, &mut obj, Some(name))?;
    let ns = if t.res.namespaced {
        t.ns.unwrap_or("default")
    } else {
        ""
    };
    let old = api
        .world
        .store
        .get(&t.res, ns, name)
        .ok_or_else(|| ApiError::not_found(&t.res, name))?;
    if obj
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        return Err(ApiError::invalid(
            &t.res,
            name,
            "metadata.resourceVersion",
            "Invalid value: 0x0: must be specified for an update",
        ));
    }
    let merged = merge_for_subresource(&old, obj, t.sub);
    let updated = api.world.store.update(&t.res, merged)?;
    Ok((200, (*updated).clone()))
}

fn patch(
    api: &Api,
    t: &Target,
    name: &str,
    content_type: &str,
    body: &[u8],
) -> Result<(u16, Value), ApiError> {
    let ns = if t.res.namespaced {
        t.ns.unwrap_or("default")
    } else {
        ""
    };
    for _ in 0..5 {
        let old = api
            .world
            .store
            .get(&t.res, ns, name)
            .ok_or_else(|| ApiError::not_found(&t.res, name))?;
        let mut doc = (*old).clone();
        super::patch::apply(&mut doc, content_type, body)?;
        if name_of(&doc) != name {
            return Err(ApiError::bad_request(
                "metadata.name: the patch may not change the name",
            ));
        }
        let merged = merge_for_subresource(&old, doc, t.sub);
        match api.world.store.update(&t.res, merged) {
            Ok(v) => return Ok((200, (*v).clone())),
            Err(e) if e.reason == "Conflict" => {
                // A precondition in the patch itself is final; a race with a controller
                // is retried, as the real server does.
                let patch_rv = serde_json::from_slice::<Value>(body)
                    .ok()
                    .and_then(|p| p.pointer("/metadata/resourceVersion").cloned());
                if patch_rv.is_some() {
                    return Err(e);
                }
            }
            Err(e) => return Err(e),
        }
    }
    Err(ApiError::conflict(&t.res, name))
}

fn delete(
    api: &Api,
    t: &Target,
    name: &str,
    params: &Params,
    body: &[u8],
) -> Result<(u16, Value), ApiError> {
    let ns = if t.res.namespaced {
        t.ns.unwrap_or("default")
    } else {
        ""
    };
    let opts: Value = if body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("bad DeleteOptions: {e}")))?
    };
    let grace = params
        .get("gracePeriodSeconds")
        .and_then(|g| g.parse::<i64>().ok())
        .or_else(|| opts.get("gracePeriodSeconds").and_then(Value::as_i64));
    if let Some(pre) = opts
        .pointer("/preconditions/resourceVersion")
        .and_then(Value::as_str)
    {
        let cur = api
            .world
            .store
            .get(&t.res, ns, name)
            .ok_or_else(|| ApiError::not_found(&t.res, name))?;
        if cur
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            != Some(pre)
        {
            return Err(ApiError::conflict(&t.res, name));
        }
    }
    if t.res == PODS {
        let v = api.world.terminate_pod(ns, name, grace)?;
        return Ok((200, (*v).clone()));
    }
    let v = api.world.store.delete(&t.res, ns, name)?;
    Ok((200, (*v).clone()))
}

/// Where a change stands against a watch's filters: the event type to send, if any.
fn watch_event_type(
    c: &Change,
    res: &Resource,
    ns: Option<&str>,
    ls: &LabelSelector,
    fs: &FieldSelector,
) -> Option<&'static str> {
    if c.resource != *res {
        return None;
    }
    if let Some(ns) = ns
        && c.namespace != ns
    {
        return None;
    }
    if ls.is_empty() && fs.is_empty() {
        return Some(c.kind.as_str());
    }
    let m = |o: &Value| ls.matches(o) && fs.matches(o);
    match c.kind {
        EventType::Added => m(&c.value()).then_some("ADDED"),
        EventType::Deleted => m(&c.old_value().unwrap_or_else(|| c.value())).then_some("DELETED"),
        EventType::Modified => {
            let now = m(&c.value());
            let before = c.old_value().is_some_and(|o| m(&o));
            match (before, now) {
                (true, true) => Some("MODIFIED"),
                (false, true) => Some("ADDED"),
                (true, false) => Some("DELETED"),
                (false, false) => None,
            }
        }
    }
}

fn event_line(kind: &str, object: &Value) -> Bytes {
    let mut out = Vec::with_capacity(1024);
    let _ = write!(out, "{{\"type\":\"{kind}\",\"object\":");
    let _ = serde_json::to_writer(&mut out, object);
    out.extend_from_slice(b"}\n");
    Bytes::from(out)
}

/// A watch event line around an already serialized object.
fn event_line_raw(kind: &str, object: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(object.len() + 32);
    let _ = write!(out, "{{\"type\":\"{kind}\",\"object\":");
    out.extend_from_slice(object);
    out.extend_from_slice(b"}\n");
    Bytes::from(out)
}

/// Watch events carry objects, or one-row Tables when kubectl asks (`get -w`).
#[derive(Clone)]
struct Render {
    res: Resource,
    table: Option<String>,
}

impl Render {
    fn line(&self, kind: &str, raw: &[u8]) -> Bytes {
        match &self.table {
            None => event_line_raw(kind, raw),
            Some(include) => {
                let obj = super::store::parse(raw);
                let rv = obj
                    .pointer("/metadata/resourceVersion")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                event_line(kind, &table::table(&self.res, &[&obj], &rv, include, None))
            }
        }
    }
}

async fn watch(api: &Api, t: &Target<'_>, params: &Params, accept: &str) -> Response {
    let render = Render {
        res: t.res,
        table: table::wants_table(accept).then(|| {
            params
                .get("includeObject")
                .cloned()
                .unwrap_or_else(|| "Metadata".into())
        }),
    };
    let (ls, fs) = match selectors(&t.res, params) {
        Ok(s) => s,
        Err(e) => return error_response(&e),
    };
    let res = t.res;
    let ns = t.ns.map(str::to_string);
    let timeout = params
        .get("timeoutSeconds")
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(1800)
        .min(3600);
    let bookmarks = params
        .get("allowWatchBookmarks")
        .is_some_and(|b| b == "true");
    let rv_param = params.get("resourceVersion").cloned().unwrap_or_default();
    let store = api.world.store.clone();
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(1024);

    // Initial state: from "" / "0" the current objects as ADDED; from a version, the backlog.
    let mut initial: Vec<Bytes> = Vec::new();
    let (backlog, mut changes) = if rv_param.is_empty() || rv_param == "0" {
        let rx = store.subscribe();
        let (items, rv) = store.list_raw(&res, ns.as_deref());
        let filtered = !(ls.is_empty() && fs.is_empty());
        for raw in &items {
            if filtered {
                let o = super::store::parse(raw);
                if !(ls.matches(&o) && fs.matches(&o)) {
                    continue;
                }
            }
            initial.push(render.line("ADDED", raw));
        }
        // Changes after the list are in the receiver; skip those already reflected.
        (Vec::new(), Some((rx, rv)))
    } else {
        match rv_param.parse::<u64>() {
            Err(_) => {
                return error_response(&ApiError::bad_request(format!(
                    "resourceVersion: Invalid value: \"{rv_param}\": must be an integer"
                )));
            }
            Ok(since) => match store.watch_from(since) {
                Some((backlog, rx)) => (backlog, Some((rx, since))),
                None => {
                    let gone = ApiError::gone(format!(
                        "too old resource version: {since} ({})",
                        store.oldest_watchable()
                    ));
                    initial.push(event_line("ERROR", &gone.status()));
                    (Vec::new(), None)
                }
            },
        }
    };
    let kind = res.kind;
    let api_version = res.api_version();
    let bookmark_every = api.world.delay(10.0).max(Duration::from_millis(200));
    tokio::spawn(async move {
        let deadline = tokio::time::sleep(Duration::from_secs(timeout));
        tokio::pin!(deadline);
        for line in initial {
            if tx.send(line).await.is_err() {
                return;
            }
        }
        let Some((mut rx, mut last_rv)) = changes.take() else {
            return;
        };
        for c in backlog {
            last_rv = last_rv.max(c.rv);
            if let Some(ty) = watch_event_type(&c, &res, ns.as_deref(), &ls, &fs)
                && tx.send(render.line(ty, &c.object)).await.is_err()
            {
                return;
            }
        }
        // Bookmarks every 10 s of simulated time.
        let mut bookmark = tokio::time::interval(bookmark_every);
        bookmark.tick().await;
        loop {
            tokio::select! {
                _ = &mut deadline => return,
                _ = tx.closed() => return,
                _ = bookmark.tick(), if bookmarks => {
                    let b = json!({"kind": kind, "apiVersion": api_version,
                        "metadata": {"resourceVersion": last_rv.to_string()}});
                    if tx.send(event_line("BOOKMARK", &b)).await.is_err() {
                        return;
                    }
                }
                msg = rx.recv() => match msg {
                    Ok(c) => {
                        if c.rv <= last_rv {
                            continue;
                        }
                        last_rv = c.rv;
                        if let Some(ty) = watch_event_type(&c, &res, ns.as_deref(), &ls, &fs)
                            && tx.send(render.line(ty, &c.object)).await.is_err()
                        {
                            return;
                        }
                    }
                    Err(RecvError::Lagged(_)) => {
                        let gone = ApiError::gone("too old resource version: the watch fell behind");
                        let _ = tx.send(event_line("ERROR", &gone.status())).await;
                        return;
                    }
                    Err(RecvError::Closed) => return,
                },
            }
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<Bytes, Infallible>(b), rx))
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// `/sim/v1/...`: state, received writes, faults, reboots.
fn control(api: &Api, method: &Method, rest: &[&str], body: Bytes) -> Response {
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
        (&Method::GET, ["scenarios"]) => Ok((200, json!({"scenarios": super::scenario::NAMES}))),
        (&Method::POST, ["faults"]) => parse_json(&body).and_then(|b| {
            let name = b.get("scenario").and_then(Value::as_str).unwrap_or("");
            let sc: Scenario = name
                .parse()
                .map_err(|e: super::scenario::UnknownScenario| {
                    ApiError::bad_request(e.to_string())
                })?;
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
