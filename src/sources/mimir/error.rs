//! Why a Mimir query failed, sorted into what the pane says (unauthorized, Prometheus's own
//! error, unreachable, anything else), with the URL reduced to its origin.

use crate::sources::http::root_cause;

/// Why a query failed, sorted into what the pane says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryError {
    Unauthorized,
    /// Prometheus answered with an error (bad PromQL, timeout, …): its message.
    Prometheus {
        bad_data: bool,
        message: String,
    },
    /// Could not talk to it at all.
    Unreachable(String),
    /// It answered, but not in the Prometheus API shape.
    Other(String),
}

/// The message shown for an unauthorized answer (Mimir or Loki).
pub const UNAUTHORIZED: &str = "Mimir: unauthorized (check [mimir] credentials)";

impl QueryError {
    /// Sort an error of the client library; `origin` names the server in messages.
    pub(super) fn from_lib(e: prometheus_http_query::Error, origin: &str) -> Self {
        use prometheus_http_query::Error as E;
        match e {
            E::Prometheus(p) => QueryError::Prometheus {
                bad_data: p.is_bad_data(),
                message: p.message().to_string(),
            },
            E::Client(c) => {
                let inner = c.inner();
                if let Some(status) = inner.and_then(|r| r.status()) {
                    if status.as_u16() == 401 || status.as_u16() == 403 {
                        return QueryError::Unauthorized;
                    }
                    return QueryError::Other(format!("{origin} answered HTTP {status}"));
                }
                match inner {
                    Some(r) if r.is_timeout() => {
                        QueryError::Unreachable(format!("{origin}: request timed out"))
                    }
                    Some(r) if r.is_connect() || r.is_request() => {
                        QueryError::Unreachable(format!("{origin}: {}", root_cause(r)))
                    }
                    Some(r) => QueryError::Other(format!("{origin}: {c}: {}", root_cause(r))),
                    None => QueryError::Other(format!("{origin}: {c}")),
                }
            }
            other => QueryError::Other(format!("{origin}: {other}")),
        }
    }

    /// What the pane shows.
    pub fn message(&self) -> String {
        match self {
            QueryError::Unauthorized => UNAUTHORIZED.to_string(),
            QueryError::Prometheus { message, .. } => message.clone(),
            QueryError::Unreachable(m) | QueryError::Other(m) => m.clone(),
        }
    }
}
