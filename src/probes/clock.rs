//! Clock probes: whether the host's clock is synchronised (timedated's `NTPSynchronized`,
//! which reflects the kernel whichever daemon disciplines it, and chrony's leap status when
//! chrony runs), and the host's time now (`date +%s.%N`) for the RTT-corrected offset the SSH
//! source measures around it.

use super::{Kind, Probe, ProbeError, Reply, clip};

/// `timedatectl show -p NTPSynchronized --value` and `chronyc -n -c tracking`, one line each.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClockSyncProbe;

/// What the clock-sync probe read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClockSync {
    /// `Some(true)`: timedatectl said `yes`; `None`: no timedatectl answer.
    pub ntp_synchronized: Option<bool>,
    /// chronyc's tracking, when chrony answers.
    pub chrony: Option<ChronyTracking>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChronyTracking {
    /// `Normal`, `Insert second`, `Delete second`, `Not synchronised`.
    pub leap: String,
    /// chrony's "System time": positive means the clock is slow of NTP time (µs).
    pub system_time_us: i64,
}

impl ClockSync {
    /// Synchronised: chrony's leap status when chrony answers, else timedated's view.
    pub fn synchronized(&self) -> Option<bool> {
        match &self.chrony {
            Some(c) => Some(c.leap != "Not synchronised"),
            None => self.ntp_synchronized,
        }
    }

    /// Which daemon: `chrony` when it answers, else `systemd-timesyncd` when timedated does.
    pub fn daemon(&self) -> Option<&'static str> {
        match (&self.chrony, self.ntp_synchronized) {
            (Some(_), _) => Some("chrony"),
            (None, Some(_)) => Some("systemd-timesyncd"),
            (None, None) => None,
        }
    }
}

impl Probe for ClockSyncProbe {
    type Output = ClockSync;
    const KIND: Kind = Kind::ClockSync;

    fn command(&self) -> String {
        "echo \"ntp=$(timedatectl show -p NTPSynchronized --value 2>/dev/null)\"; \
         echo \"chrony=$(chronyc -n -c tracking 2>/dev/null | head -n1)\""
            .into()
    }

    fn parse(&self, reply: &Reply) -> Result<ClockSync, ProbeError> {
        reply.require_success(Self::KIND)?;
        let mut out = ClockSync::default();
        for line in reply.stdout.lines() {
            if let Some(v) = line.strip_prefix("ntp=") {
                out.ntp_synchronized = match v.trim() {
                    "yes" => Some(true),
                    "no" => Some(false),
                    _ => None,
                };
            } else if let Some(v) = line.strip_prefix("chrony=") {
                let v = v.trim();
                if v.is_empty() {
                    continue;
                }
                // refid,name,stratum,reftime,system time,last offset,rms,freq,resid,skew,
                // root delay,root dispersion,update interval,leap status
                let f: Vec<&str> = v.split(',').collect();
                let bad = || {
                    ProbeError::new(
                        Self::KIND,
                        format!("unreadable chronyc tracking {:?}", clip(v)),
                    )
                };
                if f.len() < 14 {
                    return Err(bad());
                }
                let secs: f64 = f[4].parse().map_err(|_| bad())?;
                out.chrony = Some(ChronyTracking {
                    leap: f[13].to_string(),
                    system_time_us: (secs * 1e6).round() as i64,
                });
            }
        }
        Ok(out)
    }

    fn render(&self, v: &ClockSync) -> Reply {
        let ntp = match v.ntp_synchronized {
            Some(true) => "yes",
            Some(false) => "no",
            None => "",
        };
        let chrony = v.chrony.as_ref().map_or(String::new(), |c| {
            let sign = if c.system_time_us < 0 { "-" } else { "" };
            let a = c.system_time_us.unsigned_abs();
            format!(
                "C0A80001,192.168.0.1,3,1764600000.000000000,{sign}{}.{:06},0.000001,0.000010,-3.2,0.0,0.1,0.012,0.001,64.2,{}",
                a / 1_000_000,
                a % 1_000_000,
                c.leap
            )
        });
        Reply::ok(format!("ntp={ntp}\nchrony={chrony}\n"))
    }
}

/// `date +%s.%N`: the host's realtime clock, in nanoseconds since the epoch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClockNowProbe;

impl Probe for ClockNowProbe {
    type Output = i128;
    const KIND: Kind = Kind::ClockNow;

    fn command(&self) -> String {
        "date +%s.%N".into()
    }

    fn parse(&self, reply: &Reply) -> Result<i128, ProbeError> {
        reply.require_success(Self::KIND)?;
        let t = reply.stdout.trim();
        let bad = || {
            ProbeError::new(
                Self::KIND,
                format!("unreadable time {:?} (GNU date with %N is needed)", clip(t)),
            )
        };
        let (s, n) = t.split_once('.').ok_or_else(bad)?;
        if n.len() != 9 || !n.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let s: i128 = s.parse().map_err(|_| bad())?;
        let n: i128 = n.parse().map_err(|_| bad())?;
        Ok(s * 1_000_000_000 + n)
    }

    fn render(&self, ns: &i128) -> Reply {
        Reply::ok(format!(
            "{}.{:09}\n",
            ns.div_euclid(1_000_000_000),
            ns.rem_euclid(1_000_000_000)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_round_trips() {
        for v in [
            ClockSync::default(),
            ClockSync {
                ntp_synchronized: Some(true),
                chrony: None,
            },
            ClockSync {
                ntp_synchronized: Some(false),
                chrony: Some(ChronyTracking {
                    leap: "Not synchronised".into(),
                    system_time_us: -1_250_000,
                }),
            },
            ClockSync {
                ntp_synchronized: Some(true),
                chrony: Some(ChronyTracking {
                    leap: "Normal".into(),
                    system_time_us: 7,
                }),
            },
        ] {
            assert_eq!(ClockSyncProbe.parse(&ClockSyncProbe.render(&v)), Ok(v));
        }
    }

    #[test]
    fn reads_what_the_tools_print() {
        let r = ClockSyncProbe
            .parse(&Reply::ok(
                "ntp=yes\nchrony=CB00710F,ntp1.example.net,3,1485510557.123,0.000006523,-0.000006747,0.000035822,-3.225,-0.000,0.129,0.013639022,0.001100737,64.2,Normal\n",
            ))
            .unwrap();
        assert_eq!(r.synchronized(), Some(true));
        assert_eq!(r.daemon(), Some("chrony"));
        assert_eq!(r.chrony.unwrap().system_time_us, 7);
        let none = ClockSyncProbe.parse(&Reply::ok("ntp=\nchrony=\n")).unwrap();
        assert_eq!((none.synchronized(), none.daemon()), (None, None));
        assert!(ClockSyncProbe.parse(&Reply::ok("chrony=a,b\n")).is_err());
    }

    #[test]
    fn now_round_trips() {
        for ns in [0i128, 1_764_600_000_123_456_789, 5] {
            assert_eq!(ClockNowProbe.parse(&ClockNowProbe.render(&ns)), Ok(ns));
        }
        assert!(ClockNowProbe.parse(&Reply::ok("1764600000.N\n")).is_err());
        assert!(ClockNowProbe.parse(&Reply::ok("1764600000\n")).is_err());
    }
}
