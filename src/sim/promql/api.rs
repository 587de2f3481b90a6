//! The Prometheus HTTP query API (Mimir's layout, under `/prometheus`): `query`, `query_range`,
//! `labels`, `label/<name>/values`, `series`. GET and POST (form) both work, as in Prometheus.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use super::eval::{self, EvalError, QueryValue};
use super::{Labels, Provider};

type Shared = Arc<dyn Provider>;

/// The Prometheus query API over `provider`, with routes under `/prometheus/api/v1/`.
pub fn router(provider: Arc<dyn Provider>) -> Router {
    Router::new()
        .route("/prometheus/api/v1/query", get(query).post(query))
        .route(
            "/prometheus/api/v1/query_range",
            get(query_range).post(query_range),
        )
        .route("/prometheus/api/v1/labels", get(labels).post(labels))
        .route("/prometheus/api/v1/label/{name}/values", get(label_values))
        .route("/prometheus/api/v1/series", get(series).post(series))
        .route(
            "/prometheus/-/ready",
            get(|| async { "Prometheus Server is Ready.\n" }),
        )
        .route(
            "/prometheus/-/healthy",
            get(|| async { "Prometheus Server is Healthy.\n" }),
        )
        .with_state(provider)
}

/// Query-string and form parameters, in order (`match[]` may repeat).
fn params(raw: Option<String>, body: &Bytes) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = raw
        .as_deref()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    out.extend(form_urlencoded::parse(body).into_owned());
    out
}

fn param<'a>(p: &'a [(String, String)], name: &str) -> Option<&'a str> {
    p.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn error(e: EvalError) -> Response {
    let (status, kind, msg) = match e {
        EvalError::BadData(m) => (StatusCode::BAD_REQUEST, "bad_data", m),
        EvalError::Execution(m) => (StatusCode::UNPROCESSABLE_ENTITY, "execution", m),
    };
    (
        status,
        axum::Json(json!({"status": "error", "errorType": kind, "error": msg})),
    )
        .into_response()
}

fn success(data: Value) -> Response {
    axum::Json(json!({"status": "success", "data": data})).into_response()
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// A Prometheus time: unix seconds (fractions allowed) or RFC 3339.
pub fn parse_time(s: &str) -> Option<i64> {
    if let Ok(f) = s.parse::<f64>() {
        return f.is_finite().then(|| (f * 1000.0).round() as i64);
    }
    s.parse::<jiff::Timestamp>()
        .ok()
        .map(|t| t.as_millisecond())
}

/// A Prometheus duration: seconds (`30`, `0.5`) or `1h30m`, `15s`, `500ms`.
pub fn parse_duration(s: &str) -> Option<i64> {
    if let Ok(f) = s.parse::<f64>() {
        return (f.is_finite() && f >= 0.0).then(|| (f * 1000.0).round() as i64);
    }
    let mut total = 0i64;
    let mut rest = s;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let n_end = rest.find(|c: char| !c.is_ascii_digit())?;
        if n_end == 0 {
            return None;
        }
        let n: i64 = rest[..n_end].parse().ok()?;
        rest = &rest[n_end..];
        let u_end = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = match &rest[..u_end] {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 7 * 86_400_000,
            "y" => 365 * 86_400_000,
            _ => return None,
        };
        total = total.checked_add(n.checked_mul(unit)?)?;
        rest = &rest[u_end..];
    }
    Some(total)
}

/// A timestamp as Prometheus writes it: seconds, with a fraction only when there is one.
fn ts(ms: i64) -> Value {
    if ms % 1000 == 0 {
        json!(ms / 1000)
    } else {
        json!(ms as f64 / 1000.0)
    }
}

/// A value as Prometheus writes it (Go's `FormatFloat(v, 'f', -1, 64)`).
pub fn fmt_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

fn metric(l: &Labels) -> Value {
    Value::Object(
        l.iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

fn time_param(p: &[(String, String)], name: &str, default: i64) -> Result<i64, EvalError> {
    match param(p, name) {
        None | Some("") => Ok(default),
        Some(s) => parse_time(s).ok_or_else(|| {
            EvalError::BadData(format!(
                "invalid parameter \"{name}\": cannot parse \"{s}\" to a valid timestamp"
            ))
        }),
    }
}

/// Evaluation runs on a blocking thread: a big query never stalls the runtime.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, EvalError> + Send + 'static,
) -> Result<T, EvalError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| EvalError::Execution(format!("evaluation failed: {e}")))?
}

async fn query(State(p): State<Shared>, RawQuery(raw): RawQuery, body: Bytes) -> Response {
    let ps = params(raw, &body);
    let run = async {
        let q = param(&ps, "query")
            .ok_or_else(|| {
                EvalError::BadData("invalid parameter \"query\": query is empty".into())
            })?
            .to_string();
        let t = time_param(&ps, "time", now_ms())?;
        let expr = eval::parse(&q)?;
        let v = blocking(move || eval::instant(p.as_ref(), &expr, t)).await?;
        Ok::<_, EvalError>(match v {
            QueryValue::Scalar(v) => {
                json!({"resultType": "scalar", "result": [ts(t), fmt_value(v)]})
            }
            QueryValue::Vector(vs) => json!({
                "resultType": "vector",
                "result": vs.iter().map(|s| json!({"metric": metric(&s.labels), "value": [ts(t), fmt_value(s.value)]})).collect::<Vec<_>>(),
            }),
            QueryValue::Matrix(ms) => json!({
                "resultType": "matrix",
                "result": ms.iter().map(|s| json!({
                    "metric": metric(&s.labels),
                    "values": s.samples.iter().map(|(t, v)| json!([ts(*t), fmt_value(*v)])).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
            }),
        })
    };
    match run.await {
        Ok(d) => success(d),
        Err(e) => error(e),
    }
}

async fn query_range(State(p): State<Shared>, RawQuery(raw): RawQuery, body: Bytes) -> Response {
    let ps = params(raw, &body);
    let run = async {
        let q = param(&ps, "query")
            .ok_or_else(|| {
                EvalError::BadData("invalid parameter \"query\": query is empty".into())
            })?
            .to_string();
        let need = |name: &str| -> Result<i64, EvalError> {
            let s = param(&ps, name).unwrap_or("");
            parse_time(s).ok_or_else(|| {
                EvalError::BadData(format!(
                    "invalid parameter \"{name}\": cannot parse \"{s}\" to a valid timestamp"
                ))
            })
        };
        let start = need("start")?;
        let end = need("end")?;
        let step_s = param(&ps, "step").unwrap_or("");
        let step = parse_duration(step_s).ok_or_else(|| {
            EvalError::BadData(format!(
                "invalid parameter \"step\": cannot parse \"{step_s}\" to a valid duration"
            ))
        })?;
        let expr = eval::parse(&q)?;
        let series = blocking(move || eval::range(p.as_ref(), &expr, start, end, step)).await?;
        Ok::<_, EvalError>(json!({
            "resultType": "matrix",
            "result": series.iter().map(|s| json!({
                "metric": metric(&s.labels),
                "values": s.samples.iter().map(|(t, v)| json!([ts(*t), fmt_value(*v)])).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        }))
    };
    match run.await {
        Ok(d) => success(d),
        Err(e) => error(e),
    }
}

fn selected_label_sets(p: &Shared, ps: &[(String, String)]) -> Result<Vec<Labels>, EvalError> {
    let selectors: Vec<&str> = ps
        .iter()
        .filter(|(k, _)| k == "match[]")
        .map(|(_, v)| v.as_str())
        .collect();
    if selectors.is_empty() {
        return Ok(p.label_sets(&[]));
    }
    let mut out = BTreeSet::new();
    for s in selectors {
        let ms = eval::parse_selector(s)?;
        out.extend(p.label_sets(&ms));
    }
    Ok(out.into_iter().collect())
}

async fn labels(State(p): State<Shared>, RawQuery(raw): RawQuery, body: Bytes) -> Response {
    let ps = params(raw, &body);
    match selected_label_sets(&p, &ps) {
        Ok(sets) => {
            let names: BTreeSet<&String> = sets.iter().flat_map(|l| l.keys()).collect();
            success(json!(names))
        }
        Err(e) => error(e),
    }
}

async fn label_values(
    State(p): State<Shared>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let ps = params(raw, &Bytes::new());
    match selected_label_sets(&p, &ps) {
        Ok(sets) => {
            let vals: BTreeSet<&String> = sets.iter().filter_map(|l| l.get(&name)).collect();
            success(json!(vals))
        }
        Err(e) => error(e),
    }
}

async fn series(State(p): State<Shared>, RawQuery(raw): RawQuery, body: Bytes) -> Response {
    let ps = params(raw, &body);
    if !ps.iter().any(|(k, _)| k == "match[]") {
        return error(EvalError::BadData("no match[] parameter provided".into()));
    }
    match selected_label_sets(&p, &ps) {
        Ok(sets) => success(Value::Array(sets.iter().map(metric).collect())),
        Err(e) => error(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_times() {
        assert_eq!(parse_duration("30"), Some(30_000));
        assert_eq!(parse_duration("1m30s"), Some(90_000));
        assert_eq!(parse_duration("500ms"), Some(500));
        assert_eq!(parse_duration("x"), None);
        assert_eq!(parse_time("1700000000.5"), Some(1_700_000_000_500));
        assert_eq!(parse_time("2023-11-14T22:13:20Z"), Some(1_700_000_000_000));
        assert_eq!(fmt_value(0.1), "0.1");
        assert_eq!(fmt_value(1e21), "1000000000000000000000");
        assert_eq!(fmt_value(f64::INFINITY), "+Inf");
    }
}
