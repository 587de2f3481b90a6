//! The hardening posture part of the facts block: `sshd -T`, the firewall (nftables /
//! iptables), fail2ban, listening sockets (`ss -tuln`) and the k3s token secret. The policy
//! that judges it lives in `model::assess::hosts`.

use std::collections::BTreeMap;

use crate::model::host::{Fail2ban, Firewall, ListenSocket, Posture, Proto};

use super::parse::{Block, Field};
use crate::probes::clip;

pub(crate) fn fill(b: &Block<'_>, p: &mut Posture, issues: &mut Vec<String>) {
    p.sshd = sshd(b, issues);
    p.firewall = firewall(b, issues);
    p.fail2ban = fail2ban(b, issues);
    p.listening = listening(b, issues);
    p.k3s_token_present = match b.get("k3s_token") {
        Field::Value("present") => Some(true),
        Field::Value("absent") => Some(false),
        Field::Unknown => None,
        Field::Missing => {
            issues.push("missing field k3s_token".into());
            None
        }
        Field::Value(v) => {
            issues.push(format!("unreadable k3s_token: {}", clip(v)));
            None
        }
    };
}

fn sshd(b: &Block<'_>, issues: &mut Vec<String>) -> Option<BTreeMap<String, String>> {
    match b.get("sshd") {
        Field::Value("ok") => Some(
            b.with_prefix("sshd.")
                .map(|(k, v)| (k.to_ascii_lowercase(), v.trim().to_ascii_lowercase()))
                .collect(),
        ),
        Field::Unknown => None,
        Field::Missing => {
            issues.push("missing field sshd".into());
            None
        }
        Field::Value(v) => {
            issues.push(format!("unreadable sshd: {}", clip(v)));
            None
        }
    }
}

/// One backend's view: `Some(None)` = not installed, `Some(Some(..))` = read, `None` = unknown.
type Backend = Option<Option<(bool, String)>>;

fn firewall(b: &Block<'_>, issues: &mut Vec<String>) -> Option<Firewall> {
    let nft: Backend = match b.raw("fw.nft") {
        None => {
            issues.push("missing field fw.nft".into());
            None
        }
        Some("?missing") => Some(None),
        Some(v) if v.starts_with('?') => None,
        Some(v) => {
            let n: Vec<u64> = v
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            match n.as_slice() {
                // Only an input hook that drops by default is a firewall: kube-proxy and
                // flannel add accepting input chains of their own.
                [hooks, drop_hooks, rules] if v.split_whitespace().count() == 3 => {
                    let active = *drop_hooks > 0;
                    Some(Some((active, nft_detail(*hooks, *drop_hooks, *rules))))
                }
                _ => {
                    issues.push(format!("unreadable fw.nft: {}", clip(v)));
                    None
                }
            }
        }
    };
    let ipt: Backend = match b.raw("fw.iptables") {
        None => {
            issues.push("missing field fw.iptables".into());
            None
        }
        Some("?missing") => Some(None),
        Some(v) if v.starts_with('?') => None,
        Some(v) => {
            // "POLICY RULES FILTERING": FILTERING counts INPUT rules that jump anywhere but
            // ACCEPT/RETURN/LOG or Kubernetes' own chains (e.g. NixOS's `-j nixos-fw`).
            let words: Vec<&str> = v.split_whitespace().collect();
            let num = |w: &str| w.parse::<u64>().ok();
            let parsed = match words.as_slice() {
                [p, r, f] => num(r).zip(num(f)).map(|(r, f)| (Some(*p), r, f)),
                [r, f] => num(r).zip(num(f)).map(|(r, f)| (None, r, f)),
                _ => None,
            };
            match parsed {
                Some((policy, rules, filtering)) => {
                    let policy = policy.unwrap_or("?");
                    let active = matches!(policy, "DROP" | "REJECT") || filtering > 0;
                    Some(Some((active, ipt_detail(policy, rules, filtering))))
                }
                None => {
                    issues.push(format!("unreadable fw.iptables: {}", clip(v)));
                    None
                }
            }
        }
    };
    for (name, backend) in [("nftables", &nft), ("iptables", &ipt)] {
        if let Some(Some((true, detail))) = backend {
            return Some(Firewall {
                active: true,
                backend: name.into(),
                detail: detail.clone(),
            });
        }
    }
    match (&nft, &ipt) {
        // Both known (read or not installed) and neither active.
        (Some(n), Some(i)) => {
            let details: Vec<String> = [n, i]
                .iter()
                .filter_map(|x| x.as_ref().map(|(_, d)| d.clone()))
                .collect();
            Some(Firewall {
                active: false,
                backend: if n.is_some() {
                    "nftables".into()
                } else if i.is_some() {
                    "iptables".into()
                } else {
                    "none".into()
                },
                detail: if details.is_empty() {
                    "neither nft nor iptables is installed".into()
                } else {
                    details.join("; ")
                },
            })
        }
        _ => None,
    }
}

/// The firewall detail of an nftables ruleset: input hooks, those with policy drop, rules.
pub fn nft_detail(hooks: u64, drop_hooks: u64, rules: u64) -> String {
    format!("nftables: {hooks} input hook(s), {drop_hooks} with policy drop, {rules} rule(s)")
}

/// The counts back from an [`nft_detail`] (for the renderer).
pub fn nft_counts(detail: &str) -> Option<(u64, u64, u64)> {
    let rest = detail.strip_prefix("nftables: ")?;
    let (hooks, rest) = rest.split_once(" input hook(s), ")?;
    let (drop, rest) = rest.split_once(" with policy drop, ")?;
    let rules = rest.strip_suffix(" rule(s)")?;
    Some((hooks.parse().ok()?, drop.parse().ok()?, rules.parse().ok()?))
}

/// The firewall detail of iptables' INPUT chain: its policy, rules, filtering rules.
pub fn ipt_detail(policy: &str, rules: u64, filtering: u64) -> String {
    format!("iptables: INPUT policy {policy}, {rules} rule(s), {filtering} filtering")
}

/// The policy and counts back from an [`ipt_detail`] (for the renderer).
pub fn ipt_counts(detail: &str) -> Option<(String, u64, u64)> {
    let rest = detail.strip_prefix("iptables: INPUT policy ")?;
    let (policy, rest) = rest.split_once(", ")?;
    let (rules, rest) = rest.split_once(" rule(s), ")?;
    let filtering = rest.strip_suffix(" filtering")?;
    if policy.is_empty() || policy.contains(char::is_whitespace) {
        return None;
    }
    Some((
        policy.to_string(),
        rules.parse().ok()?,
        filtering.parse().ok()?,
    ))
}

fn fail2ban(b: &Block<'_>, issues: &mut Vec<String>) -> Option<Fail2ban> {
    match b.get("f2b") {
        Field::Value("not-installed") => Some(Fail2ban::NotInstalled),
        Field::Value("not-running") => Some(Fail2ban::NotRunning),
        Field::Value("running") => {
            let jails = match b.get("f2b.jails") {
                Field::Value(v) => v
                    .split(',')
                    .map(str::trim)
                    .filter(|j| !j.is_empty())
                    .map(str::to_string)
                    .collect(),
                _ => Vec::new(),
            };
            let banned = match b.get("f2b.banned") {
                Field::Value(v) => match v.parse::<u64>() {
                    Ok(n) => n,
                    Err(_) => {
                        issues.push(format!("unreadable f2b.banned: {}", clip(v)));
                        0
                    }
                },
                _ => {
                    issues.push("missing field f2b.banned".into());
                    0
                }
            };
            Some(Fail2ban::Running { jails, banned })
        }
        Field::Unknown => None,
        Field::Missing => {
            issues.push("missing field f2b".into());
            None
        }
        Field::Value(v) => {
            issues.push(format!("unreadable f2b: {}", clip(v)));
            None
        }
    }
}

fn listening(b: &Block<'_>, issues: &mut Vec<String>) -> Option<Vec<ListenSocket>> {
    match b.get("listen") {
        Field::Value("ok") => {
            let mut out = Vec::new();
            for line in b.all("listen.socket") {
                match parse_ss_line(line) {
                    Some(s) => out.push(s),
                    None => issues.push(format!("unreadable ss line: {}", clip(line))),
                }
            }
            out.sort_by(|a, b| (a.port, a.proto, &a.address).cmp(&(b.port, b.proto, &b.address)));
            out.dedup();
            Some(out)
        }
        Field::Unknown => None,
        Field::Missing => {
            issues.push("missing field listen".into());
            None
        }
        Field::Value(v) => {
            issues.push(format!("unreadable listen: {}", clip(v)));
            None
        }
    }
}

/// `tcp LISTEN 0 128 0.0.0.0:22 0.0.0.0:* users:(("sshd",pid=1,fd=3))`
pub fn parse_ss_line(line: &str) -> Option<ListenSocket> {
    let mut w = line.split_whitespace();
    let proto = match w.next()? {
        "tcp" => Proto::Tcp,
        "udp" => Proto::Udp,
        _ => return None,
    };
    let _state = w.next()?;
    let _recv = w.next()?.parse::<u64>().ok()?;
    let _send = w.next()?.parse::<u64>().ok()?;
    let local = w.next()?;
    let _peer = w.next()?;
    let rest: Vec<&str> = w.collect();
    let (address, port) = local.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    if address.is_empty() {
        return None;
    }
    Some(ListenSocket {
        proto,
        address: address.to_string(),
        port,
        process: (!rest.is_empty()).then(|| rest.join(" ")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probes::facts::{BEGIN, END, parse};

    fn block(lines: &[&str]) -> String {
        format!("{BEGIN}\n{}\n{END}\n", lines.join("\n"))
    }

    #[test]
    fn ss_lines() {
        let s = parse_ss_line("tcp LISTEN 0 4096 [::ffff:127.0.0.1]:8080 *:*").unwrap();
        assert_eq!(
            (s.address.as_str(), s.port, s.process),
            ("[::ffff:127.0.0.1]", 8080, None)
        );
        let s =
            parse_ss_line("udp UNCONN 0 0 *:8472 *:* users:((\"flanneld\",pid=9,fd=1))").unwrap();
        assert_eq!(
            (s.proto, s.address.as_str(), s.port),
            (Proto::Udp, "*", 8472)
        );
        assert!(s.is_public());
        for bad in [
            "",
            "tcp",
            "raw LISTEN 0 0 0.0.0.0:1 0.0.0.0:*",
            "tcp LISTEN x 0 0.0.0.0:22 0.0.0.0:*",
            "tcp LISTEN 0 0 0.0.0.0:http 0.0.0.0:*",
            "tcp LISTEN 0 0 :22 0.0.0.0:*",
            "tcp LISTEN 0 0 0.0.0.0:99999 0.0.0.0:*",
        ] {
            assert_eq!(parse_ss_line(bad), None, "{bad}");
        }
    }

    fn base(extra: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = [
            "sshd=?denied",
            "f2b=?denied",
            "listen=?missing",
            "k3s_token=?denied",
            "fw.nft=?denied",
            "fw.iptables=?denied",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let keys: Vec<&str> = extra.iter().map(|e| e.split('=').next().unwrap()).collect();
        v.retain(|l| !keys.contains(&l.split('=').next().unwrap()));
        v.extend(extra.iter().map(|e| e.to_string()));
        v
    }

    fn posture(extra: &[&str]) -> (Posture, Vec<String>) {
        let lines = base(extra);
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        let f = parse(&block(&refs));
        let issues = f
            .parse_issues
            .into_iter()
            .filter(|i| {
                !i.starts_with("missing field")
                    || i.contains("fw.")
                    || i.contains("f2b")
                    || i.contains("sshd")
                    || i.contains("listen")
                    || i.contains("k3s_token")
            })
            .collect();
        (f.posture, issues)
    }

    #[test]
    fn firewall_variants() {
        let (p, i) = posture(&["fw.nft=?missing", "fw.iptables=DROP 0 0"]);
        assert!(i.is_empty(), "{i:?}");
        let fw = p.firewall.unwrap();
        assert!(fw.active && fw.backend == "iptables", "{fw:?}");

        // NixOS's iptables firewall: ACCEPT policy, a jump to nixos-fw.
        let (p, _) = posture(&["fw.nft=?missing", "fw.iptables=ACCEPT 1 1"]);
        assert!(p.firewall.unwrap().active);
        // Only kube-proxy's own chains: no firewall.
        let (p, _) = posture(&["fw.nft=?missing", "fw.iptables=ACCEPT 3 0"]);
        assert!(!p.firewall.unwrap().active);
        // kube-proxy's nftables input chain accepts by default: not a firewall either.
        let (p, _) = posture(&["fw.nft=1 0 7", "fw.iptables=?missing"]);
        assert!(!p.firewall.unwrap().active);

        let (p, _) = posture(&["fw.nft=1 1 0", "fw.iptables=?missing"]);
        let fw = p.firewall.unwrap();
        assert!(fw.active && fw.backend == "nftables", "{fw:?}");

        let (p, _) = posture(&["fw.nft=0 0 0", "fw.iptables=ACCEPT 0 0"]);
        let fw = p.firewall.unwrap();
        assert!(!fw.active, "{fw:?}");
        assert!(fw.detail.contains("nftables") && fw.detail.contains("iptables"));

        let (p, _) = posture(&["fw.nft=?missing", "fw.iptables=?missing"]);
        let fw = p.firewall.unwrap();
        assert!(!fw.active && fw.backend == "none");

        // One unknown and the other inactive: unknown.
        let (p, _) = posture(&["fw.nft=?denied", "fw.iptables=ACCEPT 0 0"]);
        assert_eq!(p.firewall, None);
        // Garbage.
        let (p, i) = posture(&["fw.nft=a b c", "fw.iptables=DROP x y"]);
        assert_eq!(p.firewall, None);
        assert_eq!(i.len(), 2, "{i:?}");
    }

    #[test]
    fn fail2ban_variants() {
        let (p, _) = posture(&["f2b=not-installed"]);
        assert_eq!(p.fail2ban, Some(Fail2ban::NotInstalled));
        let (p, _) = posture(&["f2b=not-running"]);
        assert_eq!(p.fail2ban, Some(Fail2ban::NotRunning));
        let (p, i) = posture(&["f2b=running", "f2b.jails=", "f2b.banned=0"]);
        assert_eq!(
            p.fail2ban,
            Some(Fail2ban::Running {
                jails: vec![],
                banned: 0
            })
        );
        assert!(i.is_empty(), "{i:?}");
        let (p, i) = posture(&["f2b=bananas"]);
        assert_eq!(p.fail2ban, None);
        assert!(i[0].contains("unreadable f2b"), "{i:?}");
    }

    #[test]
    fn sshd_and_token_and_listen() {
        let (p, _) = posture(&[
            "sshd=ok",
            "sshd.PasswordAuthentication=Yes",
            "sshd.allowusers=ops admin",
            "k3s_token=absent",
            "listen=ok",
            "listen.socket=tcp LISTEN 0 128 0.0.0.0:22 0.0.0.0:*",
            "listen.socket=tcp LISTEN 0 128 0.0.0.0:22 0.0.0.0:*",
            "listen.socket=bogus",
        ]);
        let sshd = p.sshd.unwrap();
        assert_eq!(sshd["passwordauthentication"], "yes");
        assert_eq!(sshd["allowusers"], "ops admin");
        assert_eq!(p.k3s_token_present, Some(false));
        assert_eq!(p.listening.unwrap().len(), 1);
        let (p, i) = posture(&["k3s_token=maybe", "sshd=broken"]);
        assert_eq!((p.k3s_token_present, p.sshd), (None, None));
        assert_eq!(i.len(), 2);
    }
}
