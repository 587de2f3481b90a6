//! The HTTP client Mimir and Loki share: the tenant (`X-Scope-OrgID`), basic auth or a
//! bearer token (secrets from files or environment variables, sent as sensitive headers), an
//! extra CA, timeouts; and what messages may say of a request (the URL's origin, the innermost
//! cause), so credentials and paths never reach the screen.

use std::time::Duration;

use color_eyre::eyre::{Result, WrapErr, eyre};
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};

use crate::config::HttpAuth;

/// Read a secret from a file (trailing newline trimmed); the error names the file, never the
/// content.
fn read_secret_file(path: &std::path::Path, what: &str) -> Result<String> {
    let s = std::fs::read_to_string(path)
        .wrap_err_with(|| format!("cannot read {what} file {}", path.display()))?;
    Ok(s.trim_end_matches(['\n', '\r']).to_string())
}

/// An HTTP client for Mimir or Loki: tenant and credentials as default headers, CA, timeout.
/// `section` names the config section in messages (`mimir`, `loki`).
pub fn http_client(
    section: &str,
    tenant: Option<&str>,
    auth: &HttpAuth,
    timeout: Duration,
) -> Result<reqwest::Client> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut headers = HeaderMap::new();
    if let Some(t) = tenant.filter(|t| !t.is_empty()) {
        let v = HeaderValue::from_str(t)
            .map_err(|_| eyre!("[{section}] tenant: not a valid HTTP header value"))?;
        headers.insert(HeaderName::from_static("x-scope-orgid"), v);
    }
    let mut authz: Option<String> = None;
    if let Some(user) = &auth.basic_auth_user {
        let password = match (
            &auth.basic_auth_password_file,
            &auth.basic_auth_password_env,
        ) {
            (Some(f), _) => read_secret_file(f, &format!("[{section}] basic_auth_password"))?,
            (None, Some(var)) => std::env::var(var).map_err(|_| {
                eyre!("[{section}] basic_auth_password_env: environment variable {var} is not set")
            })?,
            (None, None) => {
                return Err(eyre!(
                    "[{section}] basic_auth_user is set but neither basic_auth_password_file nor basic_auth_password_env"
                ));
            }
        };
        use base64::Engine as _;
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        authz = Some(format!("Basic {token}"));
    } else if let Some(f) = &auth.bearer_token_file {
        let token = read_secret_file(f, &format!("[{section}] bearer_token"))?;
        authz = Some(format!("Bearer {token}"));
    }
    if let Some(a) = authz {
        let mut v = HeaderValue::from_str(&a).map_err(|_| {
            eyre!("[{section}] credentials contain characters not allowed in HTTP headers")
        })?;
        v.set_sensitive(true);
        headers.insert(AUTHORIZATION, v);
    }
    let mut extra = Vec::new();
    if let Some(ca) = &auth.ca_file {
        let pem = std::fs::read(ca)
            .wrap_err_with(|| format!("cannot read [{section}] ca_file {}", ca.display()))?;
        extra = crate::sources::tls::pem_certificates(&pem)
            .map_err(|e| eyre!("[{section}] ca_file {}: {e}", ca.display()))?;
    }
    let tls =
        crate::sources::tls::client_config(crate::sources::tls::Trust::SystemAnd(extra), None)
            .map_err(|e| eyre!("cannot set up TLS for [{section}]: {e}"))?;
    reqwest::Client::builder()
        .default_headers(headers)
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .no_proxy()
        .tls_backend_preconfigured(tls)
        .build()
        .map_err(|e| eyre!("cannot build the HTTP client for [{section}]: {e}"))
}

/// `scheme://host:port` of a URL, for messages (no user info, no path).
pub fn url_origin(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => {
            let host = u.host_str().unwrap_or("?");
            match u.port() {
                Some(p) => format!("{}://{host}:{p}", u.scheme()),
                None => format!("{}://{host}", u.scheme()),
            }
        }
        Err(_) => "the configured URL".into(),
    }
}

/// `text` with the user info of every URL in it replaced by `***` (`https://u:pw@h/x` →
/// `https://***@h/x`): for any message that might quote a configured URL.
pub fn redact_userinfo(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| {
                c == '/' || c == '?' || c == '#' || c.is_whitespace() || c == '"' || c == '\''
            })
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(at) => {
                out.push_str("***");
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// The innermost cause of an error chain (e.g. "Connection refused (os error 111)"), which never
/// carries the URL.
pub fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_stay_out_of_errors() {
        let auth = HttpAuth {
            basic_auth_user: Some("u".into()),
            basic_auth_password_env: Some("HOMEINFRA_SURELY_UNSET_VAR".into()),
            ..Default::default()
        };
        let e = http_client("mimir", None, &auth, Duration::from_secs(1))
            .unwrap_err()
            .to_string();
        assert!(e.contains("HOMEINFRA_SURELY_UNSET_VAR"), "{e}");
    }

    #[test]
    fn messages_name_only_the_origin() {
        assert_eq!(
            url_origin("https://user:secret@mimir.lan:8443/prometheus?x=1"),
            "https://mimir.lan:8443"
        );
        assert_eq!(url_origin("http://loki.lan/"), "http://loki.lan");
        assert_eq!(url_origin("not a url"), "the configured URL");
    }

    #[test]
    fn user_info_is_redacted_wherever_a_url_appears() {
        assert_eq!(
            redact_userinfo("GET https://user:s3cret@mimir.lan:8443/prometheus/api failed"),
            "GET https://***@mimir.lan:8443/prometheus/api failed"
        );
        assert_eq!(
            redact_userinfo("a http://x/y and ftp://me@h b"),
            "a http://x/y and ftp://***@h b"
        );
        assert_eq!(redact_userinfo("no url here"), "no url here");
    }
}
