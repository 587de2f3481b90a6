//! PATCH bodies: JSON merge patch, JSON patch and (the part kubectl uses of) strategic merge
//! patch, where lists of known kinds merge by key instead of being replaced.

use serde_json::{Map, Value};

use super::store::ApiError;

/// The list fields that merge by a key under strategic merge patch.
fn merge_key(field: &str) -> Option<&'static str> {
    Some(match field {
        "conditions" | "addresses" => "type",
        "containers"
        | "initContainers"
        | "volumes"
        | "env"
        | "volumeMounts"
        | "ports"
        | "imagePullSecrets"
        | "ephemeralContainers" => "name",
        "taints" => "key",
        "ownerReferences" => "uid",
        "containerStatuses" | "initContainerStatuses" => "name",
        _ => return None,
    })
}

/// Apply a patch of the given content type to `doc`.
pub fn apply(doc: &mut Value, content_type: &str, body: &[u8]) -> Result<(), ApiError> {
    let ct = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let parse = || -> Result<Value, ApiError> {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))
    };
    match ct.as_str() {
        "application/merge-patch+json" => {
            let p = parse()?;
            if !p.is_object() {
                return Err(ApiError::bad_request("merge patch must be a JSON object"));
            }
            json_patch::merge(doc, &p);
            Ok(())
        }
        "application/strategic-merge-patch+json" => {
            let p = parse()?;
            if !p.is_object() {
                return Err(ApiError::bad_request(
                    "strategic merge patch must be a JSON object",
                ));
            }
            strategic_merge(doc, &p, "");
            Ok(())
        }
        "application/json-patch+json" => {
            let p: json_patch::Patch = serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
            json_patch::patch(doc, &p).map_err(|e| {
                ApiError::new(
                    422,
                    "Invalid",
                    format!("the json patch could not be applied: {e}"),
                )
            })
        }
        "application/apply-patch+yaml" => Err(ApiError::new(
            415,
            "UnsupportedMediaType",
            "server-side apply is not supported by the simulator",
        )),
        other => Err(ApiError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json (got \"{other}\")"
            ),
        )),
    }
}

/// Strategic merge: objects merge recursively, `null` deletes, lists with a merge key merge
/// element by element (`$patch: delete` removes one), other lists are replaced.
pub fn strategic_merge(doc: &mut Value, patch: &Value, field: &str) {
    match patch {
        Value::Object(p) => {
            if p.get("$patch").and_then(Value::as_str) == Some("replace") {
                let mut clean = p.clone();
                clean.remove("$patch");
                *doc = Value::Object(clean);
                return;
            }
            if !doc.is_object() {
                *doc = Value::Object(Map::new());
            }
            let Some(d) = doc.as_object_mut() else {
                return;
            };
            for (k, v) in p {
                if k.starts_with('$') {
                    // Directives ($setElementOrder/..., $retainKeys, $deleteFromPrimitiveList/...)
                    // only order or prune; the merge result is the same without them.
                    continue;
                }
                if v.is_null() {
                    d.remove(k);
                    continue;
                }
                match (merge_key(k), v, d.get_mut(k)) {
                    (Some(key), Value::Array(items), Some(Value::Array(existing))) => {
                        merge_list(existing, items, key);
                    }
                    (_, Value::Object(_), Some(target)) => strategic_merge(target, v, k),
                    _ => {
                        let mut fresh = Value::Null;
                        strategic_merge(&mut fresh, v, k);
                        d.insert(k.clone(), fresh);
                    }
                }
            }
        }
        Value::Array(items) => {
            *doc = Value::Array(
                items
                    .iter()
                    .filter(|i| i.get("$patch").is_none())
                    .cloned()
                    .collect(),
            );
            let _ = field;
        }
        other => *doc = other.clone(),
    }
}

fn merge_list(existing: &mut Vec<Value>, items: &[Value], key: &str) {
    for item in items {
        let Some(k) = item.get(key) else {
            existing.push(item.clone());
            continue;
        };
        let pos = existing.iter().position(|e| e.get(key) == Some(k));
        let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
        match (pos, delete) {
            (Some(i), true) => {
                existing.remove(i);
            }
            (None, true) => {}
            (Some(i), false) => strategic_merge(&mut existing[i], item, ""),
            (None, false) => {
                let mut fresh = Value::Null;
                strategic_merge(&mut fresh, item, "");
                existing.push(fresh);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cordon_and_uncordon() {
        let mut n = json!({"spec": {"podCIDR": "x"}});
        apply(
            &mut n,
            "application/strategic-merge-patch+json",
            br#"{"spec":{"unschedulable":true}}"#,
        )
        .unwrap();
        assert_eq!(n["spec"]["unschedulable"], json!(true));
        apply(
            &mut n,
            "application/strategic-merge-patch+json",
            br#"{"spec":{"unschedulable":null}}"#,
        )
        .unwrap();
        assert_eq!(n, json!({"spec": {"podCIDR": "x"}}));
    }

    #[test]
    fn lists_merge_by_key() {
        let mut n = json!({"spec": {"taints": [{"key": "a", "effect": "NoSchedule"}]},
            "metadata": {"finalizers": ["x"]}});
        let p = json!({"spec": {"taints": [{"key": "b", "effect": "NoExecute"}, {"key": "a", "$patch": "delete"}]},
            "metadata": {"finalizers": ["y"]}});
        strategic_merge(&mut n, &p, "");
        assert_eq!(
            n["spec"]["taints"],
            json!([{"key": "b", "effect": "NoExecute"}])
        );
        assert_eq!(n["metadata"]["finalizers"], json!(["y"]));
    }

    #[test]
    fn merge_and_json_patch() {
        let mut o = json!({"metadata": {"labels": {"a": "1", "b": "2"}}});
        apply(
            &mut o,
            "application/merge-patch+json",
            br#"{"metadata":{"labels":{"a":null}}}"#,
        )
        .unwrap();
        assert_eq!(o["metadata"]["labels"], json!({"b": "2"}));
        apply(
            &mut o,
            "application/json-patch+json",
            br#"[{"op":"add","path":"/metadata/labels/c","value":"3"}]"#,
        )
        .unwrap();
        assert_eq!(o["metadata"]["labels"]["c"], json!("3"));
        assert_eq!(apply(&mut o, "text/plain", b"{}").unwrap_err().code, 415);
        assert_eq!(
            apply(&mut o, "application/merge-patch+json", b"{")
                .unwrap_err()
                .code,
            400
        );
    }
}
