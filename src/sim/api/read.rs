//! The read verbs: get one object, list (filtered on the index, paginated, streamed out
//! without cloning), each as a `Table` when kubectl asks.

use std::io::Write as _;

use axum::body::{Body, Bytes};
use axum::response::Response;
use serde_json::{Value, json};

use super::{Api, Params, Target, error_response, json_body};
use crate::sim::resources::Resource;
use crate::sim::select::{FieldSelector, LabelSelector};
use crate::sim::store::{self, ApiError};
use crate::sim::table;

pub(super) fn selectors(
    res: &Resource,
    params: &Params,
) -> Result<(LabelSelector, FieldSelector), ApiError> {
    let ls = LabelSelector::parse(params.get("labelSelector").map_or("", String::as_str))?;
    let fs = FieldSelector::parse(res, params.get("fieldSelector").map_or("", String::as_str))?;
    Ok((ls, fs))
}

pub(super) fn get(
    api: &Api,
    t: &Target,
    name: &str,
    params: &Params,
    accept: &str,
) -> Result<(u16, Value), ApiError> {
    let obj = api
        .world
        .store
        .get(&t.res, t.namespace(), name)
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

pub(super) fn list(api: &Api, t: &Target, params: &Params, accept: &str) -> Response {
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
                    fs.matches(&store::parse(raw))
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
        let items = page.iter().map(|&i| store::parse(raw[i]));
        let body = table::write_table(&t.res, items, &rv, include, cont.as_deref());
        return json_body(200, Body::from(body));
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
    json_body(200, Body::from(out))
}
