//! The recovery reads in one command: k3s's certificate files ([`CertFilesProbe`]), the
//! sops-nix secrets' `stat` ([`SecretsProbe`], when any are expected) and the clock's
//! synchronisation ([`ClockSyncProbe`]), each part's own command run in turn by one `sh -c`
//! (one channel instead of three). Each part's output, exit status and stderr come back in
//! their own section, so each part is read by its own probe's parser and fails on its own:
//! a certificate read that sudo refuses still leaves the secrets and the clock read.
//!
//! The reply, per part: a `@@homeinfra-part NAME` line, the part's stdout, then
//! `@@homeinfra-status N` and its stderr lines, each after `@@homeinfra-err `.

use super::certs::CertFilesProbe;
use super::clock::ClockSyncProbe;
use super::secrets::SecretsProbe;
use super::{Kind, Probe, ProbeError, Reply};

/// The three recovery reads of one host in one command.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryProbe {
    pub certs: CertFilesProbe,
    /// `None`: no secret is expected on this host (no `stat` part).
    pub secrets: Option<SecretsProbe>,
}

/// Each part's reply, as if its command had run alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReplies {
    pub certs: Reply,
    /// Present exactly when the probe has a secrets part.
    pub secrets: Option<Reply>,
    pub clock_sync: Reply,
}

const PART: &str = "@@homeinfra-part ";
const STATUS: &str = "@@homeinfra-status ";
const ERR: &str = "@@homeinfra-err ";

const CERTS: &str = "certificates";
const SECRETS: &str = "secrets";
const CLOCK_SYNC: &str = "clock-sync";

/// `s` as one single-quoted shell word.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

impl RecoveryProbe {
    fn parts(&self) -> Vec<(&'static str, String)> {
        let mut p = vec![(CERTS, self.certs.command())];
        if let Some(s) = &self.secrets {
            p.push((SECRETS, s.command()));
        }
        p.push((CLOCK_SYNC, ClockSyncProbe.command()));
        p
    }

    /// Read a command line back (the simulator's recogniser): the parts' commands are read
    /// out of the script, each recognised by its own probe, and the whole line must be exactly
    /// what that probe sends.
    pub fn from_command(line: &str) -> Option<RecoveryProbe> {
        let script = unquote(line.strip_prefix("sh -c ")?)?;
        let mut found: Vec<(&str, &str)> = Vec::new();
        for s in script.split(&format!("echo '{PART}")).skip(1) {
            let (name, rest) = s.split_once("'\n")?;
            let command = rest
                .strip_prefix("e=$( { ")?
                .split_once("; } 2>&1 >&3); s=$?\n")?
                .0;
            found.push((name, command));
        }
        let (certs, secrets) = match found.as_slice() {
            [(CERTS, c), (CLOCK_SYNC, _)] => (*c, None),
            [(CERTS, c), (SECRETS, s), (CLOCK_SYNC, _)] => (*c, Some(*s)),
            _ => return None,
        };
        let probe = RecoveryProbe {
            certs: CertFilesProbe::all()
                .into_iter()
                .find(|p| p.command() == certs)?,
            secrets: match secrets {
                Some(s) => Some(SecretsProbe::from_command(s)?),
                None => None,
            },
        };
        (probe.command() == line).then_some(probe)
    }

    fn script_of(parts: &[(&str, String)]) -> String {
        let mut script = String::from("exec 3>&1\n");
        for (name, command) in parts {
            // The part's stdout goes straight out; its stderr is held, then said after its
            // exit status, each line marked.
            script.push_str(&format!(
                "echo '{PART}{name}'\ne=$( {{ {command}; }} 2>&1 >&3); s=$?\n\
                 echo \"{STATUS}$s\"\n\
                 [ -z \"$e\" ] || printf '%s\\n' \"$e\" | sed 's/^/{ERR}/'\n"
            ));
        }
        script.push_str("true\n");
        script
    }
}

/// The text of one single-quoted shell word (as [`quote`] writes it).
fn unquote(word: &str) -> Option<String> {
    let inner = word.strip_prefix('\'')?.strip_suffix('\'')?;
    Some(inner.replace(r"'\''", "'"))
}

impl Probe for RecoveryProbe {
    type Output = RecoveryReplies;
    const KIND: Kind = Kind::Recovery;

    fn command(&self) -> String {
        format!("sh -c {}", quote(&Self::script_of(&self.parts())))
    }

    /// Never fails: a part without its section (the command died before it) is that part's
    /// failure, with how the whole command ended.
    fn parse(&self, reply: &Reply) -> Result<RecoveryReplies, ProbeError> {
        let mut found: Vec<(String, Reply)> = Vec::new();
        for line in reply.stdout.lines() {
            if let Some(name) = line.strip_prefix(PART) {
                found.push((name.to_string(), Reply::default()));
                continue;
            }
            let Some((_, part)) = found.last_mut() else {
                continue;
            };
            if let Some(code) = line.strip_prefix(STATUS) {
                part.exit_status = code.trim().parse().ok();
            } else if let Some(e) = line.strip_prefix(ERR) {
                part.stderr.push_str(e);
                part.stderr.push('\n');
            } else {
                part.stdout.push_str(line);
                part.stdout.push('\n');
            }
        }
        let take = |name: &str| -> Reply {
            match found
                .iter()
                .find(|(n, r)| n == name && r.exit_status.is_some())
            {
                Some((_, r)) => r.clone(),
                // Not run, or cut off: that part ended as the whole command did.
                None => Reply {
                    stdout: String::new(),
                    stderr: reply.stderr.clone(),
                    exit_status: reply.exit_status.filter(|c| *c != 0),
                    exit_signal: reply.exit_signal.clone(),
                },
            }
        };
        Ok(RecoveryReplies {
            certs: take(CERTS),
            secrets: self.secrets.as_ref().map(|_| take(SECRETS)),
            clock_sync: take(CLOCK_SYNC),
        })
    }

    fn render(&self, v: &RecoveryReplies) -> Reply {
        let mut out = String::new();
        let mut part = |name: &str, r: &Reply| {
            out.push_str(PART);
            out.push_str(name);
            out.push('\n');
            out.push_str(&r.stdout);
            out.push_str(&format!("{STATUS}{}\n", r.exit_status.unwrap_or(255)));
            for l in r.stderr.lines() {
                out.push_str(ERR);
                out.push_str(l);
                out.push('\n');
            }
        };
        part(CERTS, &v.certs);
        if let (Some(_), Some(r)) = (&self.secrets, &v.secrets) {
            part(SECRETS, r);
        }
        part(CLOCK_SYNC, &v.clock_sync);
        Reply::ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::secret_path;
    use crate::probes::{Request, recognise};

    fn probes() -> Vec<RecoveryProbe> {
        let mut out = Vec::new();
        for certs in CertFilesProbe::all() {
            out.push(RecoveryProbe {
                certs,
                secrets: None,
            });
            out.push(RecoveryProbe {
                certs,
                secrets: Some(SecretsProbe {
                    sudo: certs.sudo,
                    paths: vec![
                        secret_path("k3s_token").unwrap(),
                        secret_path("wg/key").unwrap(),
                    ],
                }),
            });
        }
        out
    }

    fn replies(p: &RecoveryProbe) -> RecoveryReplies {
        RecoveryReplies {
            certs: Reply {
                stdout: "==> /var/lib/rancher/k3s/agent/client-ca.crt\n-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".into(),
                ..Reply::ok("")
            },
            secrets: p.secrets.as_ref().map(|_| Reply {
                stdout: "present root root 400 97 /run/secrets/k3s_token\nmissing /run/secrets/wg/key\n"
                    .into(),
                stderr: "stat: a warning\nand another line\n".into(),
                exit_status: Some(0),
                exit_signal: None,
            }),
            clock_sync: Reply {
                stdout: String::new(),
                stderr: "sh: 1: timedatectl: not found\n".into(),
                exit_status: Some(127),
                exit_signal: None,
            },
        }
    }

    #[test]
    fn round_trips_and_is_recognised() {
        for p in probes() {
            let v = replies(&p);
            assert_eq!(p.parse(&p.render(&v)), Ok(v), "{p:?}");
            assert_eq!(
                recognise(&p.command(), None),
                Some(Request::Recovery(p.clone())),
                "{}",
                p.command()
            );
            assert!(!Kind::Recovery.mutating());
        }
        // A secrets part with a path outside /run/secrets is not ours.
        let p = RecoveryProbe {
            certs: CertFilesProbe::default(),
            secrets: Some(SecretsProbe {
                sudo: false,
                paths: vec!["/etc/shadow".into()],
            }),
        };
        assert_eq!(RecoveryProbe::from_command(&p.command()), None);
        assert_eq!(RecoveryProbe::from_command("sh -c 'true'"), None);
    }

    #[test]
    fn a_command_cut_short_fails_the_parts_it_did_not_finish() {
        let p = &probes()[1];
        let mut full = p.render(&replies(p));
        // Cut after the certificates' part: the secrets' section has no status, the clock's
        // none at all.
        let cut = full.stdout.find("@@homeinfra-part secrets").unwrap();
        full.stdout
            .truncate(cut + "@@homeinfra-part secrets\npresent".len());
        full.exit_status = None;
        full.exit_signal = Some("KILL".into());
        let got = p.parse(&full).unwrap();
        assert_eq!(got.certs, replies(p).certs);
        let secrets = got.secrets.unwrap();
        assert_eq!(secrets.exit_signal.as_deref(), Some("KILL"));
        assert!(p.secrets.as_ref().unwrap().parse(&secrets).is_err());
        let e = ClockSyncProbe.parse(&got.clock_sync).unwrap_err();
        assert!(e.message.contains("signal KILL"), "{e}");
    }

    /// The script itself, run by this machine's `sh`: each part in its own section with its
    /// own exit status and stderr (no k3s and no sops here: no certificate, secrets missing,
    /// and whatever the clock tools say).
    #[test]
    fn the_script_runs_in_a_real_shell() {
        let p = RecoveryProbe {
            certs: CertFilesProbe {
                sudo: false,
                server: true,
            },
            secrets: Some(SecretsProbe {
                sudo: false,
                paths: vec![secret_path("homeinfra-test-none").unwrap()],
            }),
        };
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(p.command())
            .output()
            .expect("sh runs");
        let reply = Reply {
            stdout: String::from_utf8_lossy(&out.stdout).into(),
            stderr: String::from_utf8_lossy(&out.stderr).into(),
            exit_status: out.status.code().map(|c| c as u32),
            exit_signal: None,
        };
        assert!(reply.success(), "{reply:?}");
        let parts = p.parse(&reply).unwrap();
        assert_eq!(p.certs.parse(&parts.certs), Ok(vec![]), "{reply:?}");
        let secrets = p.secrets.as_ref().unwrap();
        assert_eq!(
            secrets.parse(parts.secrets.as_ref().unwrap()),
            Ok(vec![(
                "/run/secrets/homeinfra-test-none".to_string(),
                crate::model::recovery::SecretState::Missing
            )]),
            "{reply:?}"
        );
        assert!(ClockSyncProbe.parse(&parts.clock_sync).is_ok(), "{reply:?}");

        // A part that fails says so in its own section, and the next part still runs.
        let failing = format!(
            "sh -c {}",
            quote(&RecoveryProbe::script_of(&[
                (
                    CERTS,
                    "echo partial; echo 'sudo: a password is required' >&2; exit 1".into()
                ),
                (CLOCK_SYNC, ClockSyncProbe.command()),
            ]))
        );
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&failing)
            .output()
            .expect("sh runs");
        let parts = p
            .parse(&Reply::ok(String::from_utf8_lossy(&out.stdout)))
            .unwrap();
        assert_eq!(
            parts.certs,
            Reply {
                stdout: "partial\n".into(),
                stderr: "sudo: a password is required\n".into(),
                exit_status: Some(1),
                exit_signal: None,
            }
        );
        assert_eq!(parts.clock_sync.exit_status, Some(0), "{parts:?}");
    }
}
