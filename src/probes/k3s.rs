//! The k3s-version probe: the version the host's k3s binary reports (`v1.31.4+k3s1`), which
//! its node's kubelet shows once it runs it.

use super::{Kind, Probe, ProbeError, Reply};

/// `k3s --version`, first line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct K3sVersionProbe;

impl Probe for K3sVersionProbe {
    /// `None`: no k3s on the host (or it printed no version).
    type Output = Option<String>;
    const KIND: Kind = Kind::K3sVersion;

    fn command(&self) -> String {
        "k3s --version 2>/dev/null | head -n1 || true".into()
    }

    /// `k3s version v1.30.4+k3s1 (abcdef)` → `v1.30.4+k3s1`: the first word that starts with
    /// `v` and holds a dot.
    fn parse(&self, reply: &Reply) -> Result<Option<String>, ProbeError> {
        reply.require_success(Self::KIND)?;
        Ok(reply
            .stdout
            .split_whitespace()
            .find(|w| w.starts_with('v') && w.contains('.'))
            .map(str::to_string))
    }

    fn render(&self, version: &Option<String>) -> Reply {
        Reply::ok(match version {
            Some(v) => format!("k3s version {v} (a1b2c3d4)\n"),
            None => String::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for v in [
            None,
            Some("v1.31.4+k3s1".to_string()),
            Some("v1.30.0-rc1+k3s2".to_string()),
        ] {
            assert_eq!(K3sVersionProbe.parse(&K3sVersionProbe.render(&v)), Ok(v));
        }
    }

    #[test]
    fn parses_what_k3s_prints() {
        let p = |s: &str| K3sVersionProbe.parse(&Reply::ok(s)).unwrap();
        assert_eq!(
            p("k3s version v1.30.4+k3s1 (98262b5d)\n").as_deref(),
            Some("v1.30.4+k3s1")
        );
        // Not installed: the command prints nothing and still exits 0.
        assert_eq!(p(""), None);
        assert_eq!(p("k3s: garbage\n"), None);
        let failed = Reply {
            exit_status: Some(1),
            ..Default::default()
        };
        assert!(K3sVersionProbe.parse(&failed).is_err());
    }
}
