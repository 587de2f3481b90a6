//! The auto-upgrade probe: is `nixos-upgrade.service` running, does `nixos-upgrade.timer`
//! exist, and when does it fire next.

use jiff::Timestamp;

use super::{Kind, Probe, ProbeError, Reply, clip};

/// `systemctl` on `nixos-upgrade.service` and `nixos-upgrade.timer`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AutoUpgradeProbe;

/// The probe's answer, as systemd words. `None`: systemd printed nothing (no systemd, no
/// such property).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AutoUpgradeState {
    /// `systemctl is-active nixos-upgrade.service`: `active`, `inactive`, `activating`, ...
    pub service: Option<String>,
    /// The timer's `LoadState`: `loaded`, `not-found`, ...
    pub timer_load: Option<String>,
    /// The timer's next elapse (whole seconds).
    pub next_run: Option<Timestamp>,
}

impl AutoUpgradeState {
    /// The service runs right now; `None`: unknown.
    pub fn running(&self) -> Option<bool> {
        self.service
            .as_deref()
            .map(|s| matches!(s, "active" | "activating" | "reloading"))
    }

    /// The timer exists at all.
    pub fn timer_present(&self) -> bool {
        self.timer_load.as_deref() == Some("loaded")
    }
}

impl Probe for AutoUpgradeProbe {
    type Output = AutoUpgradeState;
    const KIND: Kind = Kind::AutoUpgrade;

    fn command(&self) -> String {
        "echo \"active=$(systemctl is-active nixos-upgrade.service 2>/dev/null)\"; \
         echo \"load=$(systemctl show -p LoadState --value nixos-upgrade.timer 2>/dev/null)\"; \
         echo \"next=$(systemctl show --timestamp=unix -p NextElapseUSecRealtime --value nixos-upgrade.timer 2>/dev/null)\""
            .into()
    }

    /// A missing line or an empty value is "unknown"; a next run that is neither empty, `n/a`
    /// nor `@SECONDS` is an error (the guard then refuses rather than guess).
    fn parse(&self, reply: &Reply) -> Result<AutoUpgradeState, ProbeError> {
        reply.require_success(Self::KIND)?;
        let get = |key: &str| {
            reply
                .stdout
                .lines()
                .filter_map(|l| l.split_once('='))
                .find(|(k, _)| k.trim() == key)
                .map(|(_, v)| v.trim())
                .filter(|v| !v.is_empty())
        };
        let word = |key: &str| -> Result<Option<String>, ProbeError> {
            match get(key) {
                Some(v) if v.contains(char::is_whitespace) => Err(ProbeError::new(
                    Self::KIND,
                    format!("unreadable {key}: {:?}", clip(v)),
                )),
                v => Ok(v.map(str::to_string)),
            }
        };
        let next_run = match get("next") {
            None | Some("n/a") => None,
            Some(v) => Some(
                v.strip_prefix('@')
                    .and_then(|s| s.parse::<i64>().ok())
                    .and_then(|s| Timestamp::from_second(s).ok())
                    .ok_or_else(|| {
                        ProbeError::new(
                            Self::KIND,
                            format!("unreadable next run of nixos-upgrade.timer: {:?}", clip(v)),
                        )
                    })?,
            ),
        };
        Ok(AutoUpgradeState {
            service: word("active")?,
            timer_load: word("load")?,
            next_run,
        })
    }

    fn render(&self, a: &AutoUpgradeState) -> Reply {
        Reply::ok(format!(
            "active={}\nload={}\nnext={}\n",
            a.service.as_deref().unwrap_or(""),
            a.timer_load.as_deref().unwrap_or(""),
            a.next_run
                .map(|t| format!("@{}", t.as_second()))
                .unwrap_or_default()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let at = Timestamp::from_second(1_800_000_000).unwrap();
        for a in [
            // Idle, fires tomorrow.
            AutoUpgradeState {
                service: Some("inactive".into()),
                timer_load: Some("loaded".into()),
                next_run: Some(at),
            },
            // Running now.
            AutoUpgradeState {
                service: Some("activating".into()),
                timer_load: Some("loaded".into()),
                next_run: None,
            },
            // No timer at all (auto-upgrade not configured).
            AutoUpgradeState {
                service: Some("inactive".into()),
                timer_load: Some("not-found".into()),
                next_run: None,
            },
            // No systemd: nothing known.
            AutoUpgradeState::default(),
        ] {
            let reply = AutoUpgradeProbe.render(&a);
            assert_eq!(AutoUpgradeProbe.parse(&reply), Ok(a.clone()), "{reply:?}");
        }
    }

    #[test]
    fn parses_what_systemd_prints() {
        let a = AutoUpgradeProbe
            .parse(&Reply::ok(
                "active=inactive\nload=loaded\nnext=@1800000000\nextra=ignored\n",
            ))
            .unwrap();
        assert_eq!(a.running(), Some(false));
        assert!(a.timer_present());
        assert_eq!(a.next_run, Timestamp::from_second(1_800_000_000).ok());
        let a = AutoUpgradeProbe
            .parse(&Reply::ok("active=activating\nload=not-found\nnext=\n"))
            .unwrap();
        assert_eq!(
            (a.running(), a.next_run, a.timer_present()),
            (Some(true), None, false)
        );
        // A missing timer prints `n/a` on some systemd versions.
        let a = AutoUpgradeProbe
            .parse(&Reply::ok("active=failed\nload=not-found\nnext=n/a\n"))
            .unwrap();
        assert_eq!((a.running(), a.next_run), (Some(false), None));
        // Nothing printed at all: unknown.
        let a = AutoUpgradeProbe.parse(&Reply::ok("")).unwrap();
        assert_eq!((a.running(), a.timer_present()), (None, false));
    }

    #[test]
    fn garbled_answers_are_errors() {
        for out in [
            "active=inactive\nload=loaded\nnext=@tomorrow\n",
            "active=inactive\nload=loaded\nnext=Fri 2026-11-27 04:00:00 UTC\n",
            "active=in active\nload=loaded\nnext=\n",
        ] {
            assert!(AutoUpgradeProbe.parse(&Reply::ok(out)).is_err(), "{out}");
        }
        let failed = Reply {
            exit_status: Some(255),
            ..Default::default()
        };
        assert!(AutoUpgradeProbe.parse(&failed).is_err());
    }
}
