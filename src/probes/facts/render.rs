//! The renderer of the facts block: what the script would print for a host in a given state
//! (the simulator's hosts answer through it; the round-trip tests hold it to the parser).

use crate::model::host::{Firewall, HostFacts};

use super::posture;
use super::{BEGIN, END};

/// The block the script would print for `f`: for simulated hosts (the simulator's SSH face
/// answers `sh -s` with this) and tests. `parse(&render(f))` gives `f` back for every `f` the
/// parser gives (a firewall `detail` in another shape is rebuilt from the counts).
pub fn render(f: &HostFacts) -> String {
    use crate::model::host::Fail2ban;
    let mut out = String::new();
    let mut kv = |k: &str, v: Option<String>| {
        out.push_str(k);
        out.push('=');
        match v {
            Some(v) => out.push_str(&v.replace('\n', " ")),
            None => out.push_str("?unknown"),
        }
        out.push('\n');
    };
    kv(
        "privileged",
        f.privileged
            .map(|p| if p { "yes" } else { "no" }.to_string()),
    );
    kv("hostname", f.hostname.clone());
    kv("nixos_version", f.nixos_version.clone());
    kv("current_system", f.current_system.clone());
    kv("booted_system", f.booted_system.clone());
    for (name, cur, boot) in [
        ("kernel", &f.current_boot.kernel, &f.booted_boot.kernel),
        ("initrd", &f.current_boot.initrd, &f.booted_boot.initrd),
        (
            "kernel-modules",
            &f.current_boot.kernel_modules,
            &f.booted_boot.kernel_modules,
        ),
    ] {
        kv(&format!("current.{name}"), cur.clone());
        kv(&format!("booted.{name}"), boot.clone());
    }
    kv(
        "system_profile",
        f.generation.map(|g| format!("system-{g}-link")),
    );
    kv("uptime", f.uptime_secs.map(|u| format!("{u}.00")));
    kv(
        "load",
        f.load.map(|[a, b, c]| format!("{a:.2} {b:.2} {c:.2}")),
    );
    kv(
        "root_fs_used",
        f.root_fs_used_pct.map(|p| format!("{p:.0}%")),
    );
    kv("failed_units", f.failed_units.as_ref().map(|u| u.join(" ")));
    kv("bootloader", f.boot_loader.clone());
    kv(
        "bootloader.grubenv",
        f.grubenv.map(|g| if g { "yes" } else { "no" }.to_string()),
    );
    kv("k3s_state", f.k3s_state.clone());
    kv("upgrade_result", f.upgrade_last_result.clone());
    kv("upgrade_last_run", f.upgrade_last_run.clone());
    kv(
        "upgrade_next_run",
        f.upgrade_next_run.as_ref().map(|t| {
            t.parse::<jiff::Timestamp>()
                .map(|ts| format!("@{}", ts.as_second()))
                .unwrap_or_else(|_| t.clone())
        }),
    );
    let p = &f.posture;
    match &p.sshd {
        Some(map) => {
            kv("sshd", Some("ok".into()));
            for (k, v) in map {
                kv(&format!("sshd.{k}"), Some(v.clone()));
            }
        }
        None => kv("sshd", None),
    }
    let (nft, ipt) = firewall_fields(p.firewall.as_ref());
    kv("fw.nft", nft);
    kv("fw.iptables", ipt);
    match &p.fail2ban {
        Some(Fail2ban::NotInstalled) => kv("f2b", Some("not-installed".into())),
        Some(Fail2ban::NotRunning) => kv("f2b", Some("not-running".into())),
        Some(Fail2ban::Running { jails, banned }) => {
            kv("f2b", Some("running".into()));
            kv("f2b.jails", Some(jails.join(",")));
            kv("f2b.banned", Some(banned.to_string()));
        }
        None => kv("f2b", None),
    }
    match &p.listening {
        Some(socks) => {
            kv("listen", Some("ok".into()));
            for s in socks {
                let state = match s.proto {
                    crate::model::host::Proto::Tcp => "LISTEN",
                    crate::model::host::Proto::Udp => "UNCONN",
                };
                let mut line = format!(
                    "{} {state} 0 128 {}:{} 0.0.0.0:*",
                    s.proto.as_str(),
                    s.address,
                    s.port
                );
                if let Some(proc_) = &s.process {
                    line.push(' ');
                    line.push_str(proc_);
                }
                kv("listen.socket", Some(line));
            }
        }
        None => kv("listen", None),
    }
    kv(
        "k3s_token",
        p.k3s_token_present
            .map(|t| if t { "present" } else { "absent" }.to_string()),
    );
    format!("{BEGIN}\n{out}{END}\n")
}

/// The `fw.nft` and `fw.iptables` values for a firewall: the counts its detail names (as the
/// parser writes it), else counts that give the same verdict.
fn firewall_fields(fw: Option<&Firewall>) -> (Option<String>, Option<String>) {
    let Some(fw) = fw else {
        return (None, None);
    };
    let missing = || Some("?missing".to_string());
    let parts: Vec<&str> = fw.detail.split("; ").collect();
    let nft = parts
        .iter()
        .find_map(|d| posture::nft_counts(d))
        .map(|(h, d, r)| format!("{h} {d} {r}"));
    let ipt = parts
        .iter()
        .find_map(|d| posture::ipt_counts(d))
        .map(|(p, r, f)| format!("{p} {r} {f}"));
    match (fw.backend.as_str(), fw.active) {
        ("nftables", true) => (nft.or_else(|| Some("1 1 1".into())), missing()),
        ("iptables", true) => (missing(), ipt.or_else(|| Some("DROP 0 0".into()))),
        ("nftables", false) => (nft.or_else(|| Some("1 0 0".into())), ipt.or_else(missing)),
        ("iptables", false) => (missing(), ipt.or_else(|| Some("ACCEPT 0 0".into()))),
        _ => (missing(), missing()),
    }
}
