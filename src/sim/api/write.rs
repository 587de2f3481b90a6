//! The write verbs: create (pods are adopted by the world's scheduler), update and patch
//! (status kept apart from the rest, controller races retried), delete (pods terminate
//! gracefully). Request bodies must name the resource's kind, version and namespace.

use serde_json::{Value, json};

use super::{Api, Params, Target, parse_json};
use crate::sim::resources::{NAMESPACES, PODS};
use crate::sim::store::{ApiError, name_of, namespace_of};

/// The body names this resource's version and kind, and the namespace and name of the URL
/// (filled in when missing).
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

pub(super) fn create(api: &Api, t: &Target, body: &[u8]) -> Result<(u16, Value), ApiError> {
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

pub(super) fn update(
    api: &Api,
    t: &Target,
    name: &str,
    body: &[u8],
) -> Result<(u16, Value), ApiError> {
    let mut obj = parse_json(body)?;
    check_body_identity(t, &mut obj, Some(name))?;
    let ns = t.namespace();
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

pub(super) fn patch(
    api: &Api,
    t: &Target,
    name: &str,
    content_type: &str,
    body: &[u8],
) -> Result<(u16, Value), ApiError> {
    let ns = t.namespace();
    for _ in 0..5 {
        let old = api
            .world
            .store
            .get(&t.res, ns, name)
            .ok_or_else(|| ApiError::not_found(&t.res, name))?;
        let mut doc = (*old).clone();
        crate::sim::patch::apply(&mut doc, content_type, body)?;
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

pub(super) fn delete(
    api: &Api,
    t: &Target,
    name: &str,
    params: &Params,
    body: &[u8],
) -> Result<(u16, Value), ApiError> {
    let ns = t.namespace();
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
