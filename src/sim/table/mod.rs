//! Server-side `Table` responses (`Accept: application/json;as=Table;g=meta.k8s.io;v=v1`),
//! which give kubectl its familiar columns: the Table format here, the columns of each
//! resource in `columns`.

mod columns;

use serde_json::{Value, json};

use self::columns::columns;
pub use self::columns::human_age;
use super::resources::Resource;

/// Builds the cells of one object's row.
type Cells = fn(&Value) -> Vec<Value>;

/// A Table's `metadata`.
fn table_meta(resource_version: &str, cont: Option<&str>) -> Value {
    let mut meta = json!({"resourceVersion": resource_version});
    if let Some(c) = cont {
        meta["continue"] = json!(c);
    }
    meta
}

/// Does the Accept header ask for a Table?
pub fn wants_table(accept: &str) -> bool {
    accept.split(',').any(|part| {
        let p: Vec<&str> = part.split(';').map(str::trim).collect();
        p.contains(&"as=Table") && p.iter().any(|x| x.starts_with("g=meta.k8s.io"))
    })
}

/// The same Table, written row by row: one parsed object alive at a time.
pub fn write_table(
    res: &Resource,
    items: impl Iterator<Item = Value>,
    resource_version: &str,
    include_object: &str,
    cont: Option<&str>,
) -> Vec<u8> {
    let (defs, cells) = columns(res);
    let meta = table_meta(resource_version, cont);
    let mut out = Vec::with_capacity(64 * 1024);
    out.extend_from_slice(b"{\"kind\":\"Table\",\"apiVersion\":\"meta.k8s.io/v1\",\"metadata\":");
    let _ = serde_json::to_writer(&mut out, &meta);
    out.extend_from_slice(b",\"columnDefinitions\":");
    let _ = serde_json::to_writer(&mut out, &defs);
    out.extend_from_slice(b",\"rows\":[");
    for (i, o) in items.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let _ = serde_json::to_writer(&mut out, &row(&o, cells, include_object));
    }
    out.extend_from_slice(b"]}");
    out
}

/// One object's row, with the object as much as `include_object` asks.
fn row(o: &Value, cells: Cells, include_object: &str) -> Value {
    let object = match include_object {
        "None" => Value::Null,
        "Object" => o.clone(),
        _ => {
            let mut meta = o.get("metadata").cloned().unwrap_or_else(|| json!({}));
            if let Some(m) = meta.as_object_mut() {
                m.remove("managedFields");
            }
            json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": meta})
        }
    };
    let mut row = json!({"cells": cells(o)});
    if !object.is_null() {
        row["object"] = object;
    }
    row
}

/// A `meta.k8s.io/v1` Table for `items`. `include_object`: "None", "Metadata" (default) or
/// "Object".
pub fn table(
    res: &Resource,
    items: &[&Value],
    resource_version: &str,
    include_object: &str,
    cont: Option<&str>,
) -> Value {
    let (defs, cells) = columns(res);
    let rows: Vec<Value> = items
        .iter()
        .map(|o| row(o, cells, include_object))
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": table_meta(resource_version, cont),
        "columnDefinitions": defs,
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_like_kubectl() {
        assert_eq!(human_age(45), "45s");
        assert_eq!(human_age(5 * 60 + 3), "5m3s");
        assert_eq!(human_age(47 * 60), "47m");
        assert_eq!(human_age(3 * 3600 + 12 * 60), "3h12m");
        assert_eq!(human_age(26 * 3600), "26h");
        assert_eq!(human_age(4 * 86_400 + 2 * 3600), "4d2h");
        assert_eq!(human_age(41 * 86_400), "41d");
    }

    #[test]
    fn accept_header() {
        assert!(wants_table(
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
        ));
        assert!(!wants_table("application/json"));
    }
}
