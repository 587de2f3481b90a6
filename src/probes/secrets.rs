//! The secrets probe: whether each expected sops-nix secret file exists, with its owner,
//! group, mode and size (`stat`, never its content). sops-nix puts secret `NAME` at
//! `/run/secrets/NAME`, root:root 0400 unless the module says otherwise.

use super::{Kind, Probe, ProbeError, Reply, clip};
use crate::model::recovery::SecretState;

pub use crate::config::SECRETS_DIR;

/// `stat` of each path (through `sudo -n` when set: the secrets directory may not be
/// traversable by the login user).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecretsProbe {
    pub sudo: bool,
    /// Absolute paths made only of plain characters (checked by [`secret_path`]).
    pub paths: Vec<String>,
}

pub use crate::config::secret_path;

const PREFIX: &str = "for f in ";
/// Inside `sh -c '…'`: no single quote (one ended the script early: `sh` read half a loop).
const BODY: &str = "; do if [ -e \"$f\" ]; then stat -L -c \"present %U %G %a %s %n\" \"$f\"; else echo \"missing $f\"; fi; done";

impl SecretsProbe {
    /// Read a command line back (the simulator's recogniser).
    pub fn from_command(line: &str) -> Option<SecretsProbe> {
        let (sudo, rest) = match line.strip_prefix("sudo -n sh -c '") {
            Some(r) => (true, r.strip_suffix('\'')?),
            None => (false, line.strip_prefix("sh -c '")?.strip_suffix('\'')?),
        };
        let list = rest.strip_prefix(PREFIX)?.strip_suffix(BODY)?;
        let paths: Vec<String> = list.split(' ').map(str::to_string).collect();
        paths
            .iter()
            .all(|p| {
                p.strip_prefix(SECRETS_DIR)
                    .and_then(|n| n.strip_prefix('/'))
                    .is_some_and(|n| secret_path(n).is_ok())
            })
            .then_some(SecretsProbe { sudo, paths })
    }
}

impl Probe for SecretsProbe {
    /// Path and state, in the order asked.
    type Output = Vec<(String, SecretState)>;
    const KIND: Kind = Kind::Secrets;

    fn command(&self) -> String {
        let script = format!("{PREFIX}{}{BODY}", self.paths.join(" "));
        if self.sudo {
            format!("sudo -n sh -c '{script}'")
        } else {
            format!("sh -c '{script}'")
        }
    }

    fn parse(&self, reply: &Reply) -> Result<Self::Output, ProbeError> {
        reply.require_success(Self::KIND)?;
        let bad =
            |l: &str| ProbeError::new(Self::KIND, format!("unreadable stat line {:?}", clip(l)));
        let mut out = Vec::new();
        for line in reply.stdout.lines().filter(|l| !l.trim().is_empty()) {
            if let Some(path) = line.strip_prefix("missing ") {
                out.push((path.to_string(), SecretState::Missing));
                continue;
            }
            let mut w = line.splitn(6, ' ');
            let (Some("present"), Some(owner), Some(group), Some(mode), Some(size), Some(path)) =
                (w.next(), w.next(), w.next(), w.next(), w.next(), w.next())
            else {
                return Err(bad(line));
            };
            let mode = u32::from_str_radix(mode, 8).map_err(|_| bad(line))?;
            let size = size.parse().map_err(|_| bad(line))?;
            out.push((
                path.to_string(),
                SecretState::Present {
                    owner: owner.into(),
                    group: group.into(),
                    mode,
                    size,
                },
            ));
        }
        Ok(out)
    }

    fn render(&self, value: &Self::Output) -> Reply {
        let mut s = String::new();
        for (path, st) in value {
            match st {
                SecretState::Missing => s.push_str(&format!("missing {path}\n")),
                SecretState::Present {
                    owner,
                    group,
                    mode,
                    size,
                } => s.push_str(&format!("present {owner} {group} {mode:o} {size} {path}\n")),
            }
        }
        Reply::ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_is_recognised() {
        let p = SecretsProbe {
            sudo: true,
            paths: vec![
                secret_path("k3s_token").unwrap(),
                secret_path("k3s/agent").unwrap(),
            ],
        };
        let v = vec![
            (
                p.paths[0].clone(),
                SecretState::Present {
                    owner: "root".into(),
                    group: "root".into(),
                    mode: 0o400,
                    size: 97,
                },
            ),
            (p.paths[1].clone(), SecretState::Missing),
        ];
        assert_eq!(p.parse(&p.render(&v)), Ok(v));
        assert_eq!(SecretsProbe::from_command(&p.command()), Some(p.clone()));
        let plain = SecretsProbe { sudo: false, ..p };
        assert_eq!(SecretsProbe::from_command(&plain.command()), Some(plain));
        assert!(p_bad("present root root 4x0 1 /run/secrets/x"));
    }

    fn p_bad(line: &str) -> bool {
        SecretsProbe::default().parse(&Reply::ok(line)).is_err()
    }

    #[test]
    fn names_are_checked() {
        assert_eq!(secret_path("k3s_token").unwrap(), "/run/secrets/k3s_token");
        // The inventory's `secrets` field follows the same rule as `[recovery] secrets`.
        for name in [
            "k3s_token",
            "k3s/agent",
            "a.b-c_d",
            "",
            "/abs",
            "a//b",
            "../x",
            "a;b",
            "a b",
            "x/..",
        ] {
            assert_eq!(
                crate::inventory::secret_name_problem(name).is_none(),
                secret_path(name).is_ok(),
                "{name:?}"
            );
        }
        assert!(secret_path("a;b").unwrap_err().contains("';'"));
        assert!(secret_path("../etc/shadow").is_err());
        assert!(secret_path("/etc/shadow").is_err());
        assert!(secret_path("").is_err());
        // A command with a path outside /run/secrets is not ours.
        assert_eq!(
            SecretsProbe::from_command(&format!("sh -c '{PREFIX}/etc/shadow{BODY}'")),
            None
        );
    }
}
