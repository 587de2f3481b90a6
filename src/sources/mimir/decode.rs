//! A successful query answer read straight into the client library's series types. The
//! library's own reading goes through two tagged enums (`status`, then `resultType`), so serde
//! buffers the whole answer twice before it builds a series; for the range answers of 200 hosts
//! (megabytes every refresh) that was about a quarter of the dashboard's idle CPU. Anything but
//! a plain success of the expected shape is left to the library (`Ok(None)`), which names the
//! error.

use prometheus_http_query::response::{Data, InstantVector, RangeVector};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::error::QueryError;
use crate::sources::http::root_cause;

#[derive(Deserialize)]
struct Answer<T> {
    status: String,
    data: Payload<T>,
}

#[derive(Deserialize)]
struct Payload<T> {
    #[serde(rename = "resultType")]
    result_type: String,
    result: Vec<T>,
}

/// The answer's series when it is a JSON success holding a matrix (`range`) or a vector;
/// `Ok(None)` for anything else (an error status or document, a scalar); `Err` when its body
/// could not be read.
pub(super) async fn success(
    answer: reqwest::Response,
    range: bool,
    origin: &str,
) -> Result<Option<Data>, QueryError> {
    let json = answer
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("application/json"));
    if !answer.status().is_success() || !json {
        return Ok(None);
    }
    let body = answer.bytes().await.map_err(|e| {
        if e.is_timeout() {
            QueryError::Unreachable(format!("{origin}: request timed out"))
        } else {
            QueryError::Other(format!(
                "{origin}: failed to read the response from server: {}",
                root_cause(&e)
            ))
        }
    })?;
    Ok(parse(&body, range))
}

/// A success document's series (see [`success`]): `range`, a matrix; else a vector.
pub fn parse(body: &[u8], range: bool) -> Option<Data> {
    fn of<T: DeserializeOwned>(body: &[u8], kind: &str) -> Option<Vec<T>> {
        let a: Answer<T> = serde_json::from_slice(body).ok()?;
        (a.status == "success" && a.data.result_type == kind).then_some(a.data.result)
    }
    if range {
        of::<RangeVector>(body, "matrix").map(Data::Matrix)
    } else {
        of::<InstantVector>(body, "vector").map(Data::Vector)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Series = Vec<(std::collections::BTreeMap<String, String>, Vec<(u64, u64)>)>;

    /// Series in a comparable form (labels sorted, NaN equal to itself).
    fn norm(d: &Data) -> Series {
        let bits = |s: &prometheus_http_query::response::Sample| {
            (s.timestamp().to_bits(), s.value().to_bits())
        };
        match d {
            Data::Matrix(m) => m
                .iter()
                .map(|r| {
                    let l = r.metric().clone().into_iter().collect();
                    (l, r.samples().iter().map(bits).collect())
                })
                .collect(),
            Data::Vector(v) => v
                .iter()
                .map(|r| {
                    (
                        r.metric().clone().into_iter().collect(),
                        vec![bits(r.sample())],
                    )
                })
                .collect(),
            Data::Scalar(s) => vec![(Default::default(), vec![bits(s)])],
        }
    }

    /// The library's own reading of a document, for comparison.
    fn lib(body: &str) -> Series {
        #[derive(Deserialize)]
        struct Doc {
            data: Data,
        }
        norm(
            &serde_json::from_str::<Doc>(body)
                .expect("the library reads it")
                .data,
        )
    }

    #[test]
    fn a_matrix_and_a_vector_read_as_the_library_reads_them() {
        let matrix = r#"{"status":"success","data":{"resultType":"matrix","result":[
            {"metric":{"instance":"node1:9100","job":"node"},"values":[[1700000000,"1.5"],[1700000015,"NaN"],[1700000030,"+Inf"]]},
            {"metric":{},"values":[]}]}}"#;
        let got = parse(matrix.as_bytes(), true).expect("a matrix");
        assert_eq!(norm(&got), lib(matrix));
        let Data::Matrix(m) = &got else {
            panic!("{got:?}")
        };
        assert_eq!(m[0].metric()["instance"], "node1:9100");
        assert_eq!(m[0].samples()[0].value(), 1.5);
        assert!(m[0].samples()[1].value().is_nan());
        assert_eq!(m[0].samples()[2].value(), f64::INFINITY);
        // Keys in another order, warnings beside the data.
        let vector = r#"{"data":{"result":[{"value":[1700000000.5,"42"],"metric":{"__name__":"up"}}],"resultType":"vector"},"warnings":["w"],"status":"success"}"#;
        let got = parse(vector.as_bytes(), false).expect("a vector");
        assert_eq!(norm(&got), lib(vector));
    }

    #[test]
    fn anything_else_is_left_to_the_library() {
        for body in [
            r#"{"status":"error","errorType":"bad_data","error":"parse error"}"#,
            r#"{"status":"success","data":{"resultType":"scalar","result":[1700000000,"1"]}}"#,
            r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#,
            "not json",
            r#"{"status":"success"}"#,
        ] {
            let range = parse(body.as_bytes(), true);
            assert!(range.is_none(), "{body}: {range:?}");
        }
        // A vector where a matrix was asked for, and the reverse.
        let v = r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
        assert!(parse(v.as_bytes(), false).is_some());
        assert!(parse(v.as_bytes(), true).is_none());
    }
}
