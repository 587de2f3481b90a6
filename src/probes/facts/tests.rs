//! The facts parser on sample blocks, garbage, and the round trip through the renderer.

use super::parse::{parse_generation, parse_systemd_time};
use super::*;
use crate::model::host::{Fail2ban, Proto};
use crate::probes::{Probe, Reply};

/// What a healthy NixOS control plane prints (shape of the real script's output).
fn sample() -> String {
    [
        "some motd noise",
        BEGIN,
        "privileged=yes",
        "hostname=node1",
        "nixos_version=24.05.20240601.abcdef (Uakari)",
        "current_system=/nix/store/aaa-nixos-system-node1-24.05.2",
        "booted_system=/nix/store/bbb-nixos-system-node1-24.05.1",
        "current.kernel=/nix/store/k2-linux-6.6.8/bzImage",
        "booted.kernel=/nix/store/k1-linux-6.6.1/bzImage",
        "current.initrd=/nix/store/i1-initrd-linux/initrd",
        "booted.initrd=/nix/store/i1-initrd-linux/initrd",
        "current.kernel-modules=/nix/store/m2-linux-6.6.8-modules",
        "booted.kernel-modules=/nix/store/m1-linux-6.6.1-modules",
        "system_profile=system-42-link",
        "uptime=12345.67",
        "load=0.10 0.20 0.30",
        "root_fs_used=42%",
        "failed_units=foo.service bar.timer ",
        "k3s_state=active",
        "upgrade_result=success",
        "upgrade_last_run=Thu 2026-11-26 04:00:12 UTC",
        "upgrade_next_run=@1795752000",
        "sshd=ok",
        "sshd.passwordauthentication=no",
        "sshd.permitrootlogin=no",
        "sshd.x11forwarding=no",
        "fw.nft=1 1 12",
        "fw.iptables=?missing",
        "f2b=running",
        "f2b.jails=sshd,recidive",
        "f2b.banned=3",
        "listen=ok",
        "listen.socket=tcp   LISTEN 0      128          0.0.0.0:22         0.0.0.0:*    users:((\"sshd\",pid=1,fd=3))",
        "listen.socket=udp   UNCONN 0      0      127.0.0.53%lo:53         0.0.0.0:*",
        "listen.socket=tcp   LISTEN 0      4096            [::]:6443          [::]:*",
        "k3s_token=present",
        "bootloader=grub",
        "bootloader.grubenv=yes",
        END,
    ]
    .join("\n")
}

#[test]
fn every_field_of_a_full_block() {
    let f = parse(&sample());
    assert_eq!(f.parse_issues, Vec::<String>::new());
    assert_eq!(f.boot_loader.as_deref(), Some("grub"));
    assert_eq!(f.grubenv, Some(true));
    assert_eq!(
        crate::probes::bootloader::from_facts(f.boot_loader.as_deref(), f.grubenv)
            .map(|b| b.describe()),
        Some("boot once: GRUB grub-reboot (saved default)".to_string())
    );
    assert_eq!(f.privileged, Some(true));
    assert_eq!(f.hostname.as_deref(), Some("node1"));
    assert_eq!(
        f.nixos_version.as_deref(),
        Some("24.05.20240601.abcdef (Uakari)")
    );
    assert_eq!(
        f.current_system.as_deref(),
        Some("/nix/store/aaa-nixos-system-node1-24.05.2")
    );
    assert_eq!(
        f.booted_system.as_deref(),
        Some("/nix/store/bbb-nixos-system-node1-24.05.1")
    );
    assert_eq!(
        f.current_boot.kernel.as_deref(),
        Some("/nix/store/k2-linux-6.6.8/bzImage")
    );
    assert_eq!(
        f.booted_boot.kernel_modules.as_deref(),
        Some("/nix/store/m1-linux-6.6.1-modules")
    );
    assert_eq!(f.reboot_needed, Some(true));
    assert_eq!(f.reboot_reasons, vec!["kernel", "kernel-modules"]);
    assert_eq!(f.generation, Some(42));
    assert_eq!(f.uptime_secs, Some(12345));
    assert_eq!(f.load, Some([0.1, 0.2, 0.3]));
    assert_eq!(f.root_fs_used_pct, Some(42.0));
    assert_eq!(
        f.failed_units,
        Some(vec!["foo.service".to_string(), "bar.timer".to_string()])
    );
    assert_eq!(f.k3s_state.as_deref(), Some("active"));
    assert_eq!(f.upgrade_last_result.as_deref(), Some("success"));
    assert_eq!(
        f.upgrade_last_run.as_deref(),
        Some("Thu 2026-11-26 04:00:12 UTC")
    );
    assert_eq!(f.upgrade_next_run.as_deref(), Some("2026-11-27T04:00:00Z"));
    let sshd = f.posture.sshd.as_ref().unwrap();
    assert_eq!(
        sshd.get("passwordauthentication").map(String::as_str),
        Some("no")
    );
    let fw = f.posture.firewall.as_ref().unwrap();
    assert!(fw.active);
    assert_eq!(fw.backend, "nftables");
    assert_eq!(
        f.posture.fail2ban,
        Some(Fail2ban::Running {
            jails: vec!["sshd".into(), "recidive".into()],
            banned: 3
        })
    );
    let l = f.posture.listening.as_ref().unwrap();
    assert_eq!(l.len(), 3);
    assert_eq!(
        (l[0].proto, l[0].address.as_str(), l[0].port),
        (Proto::Tcp, "0.0.0.0", 22)
    );
    assert!(l[0].process.as_deref().unwrap().contains("sshd"));
    assert_eq!(
        (l[1].proto, l[1].address.as_str(), l[1].port),
        (Proto::Udp, "127.0.0.53%lo", 53)
    );
    assert_eq!((l[2].address.as_str(), l[2].port), ("[::]", 6443));
    assert_eq!(f.posture.k3s_token_present, Some(true));
}

#[test]
fn no_block_at_all() {
    for out in ["", "bash: sh: command not found\n", "\u{0}\u{1}garbage"] {
        let f = parse(out);
        assert_eq!(f.hostname, None);
        assert_eq!(f.reboot_needed, None);
        assert_eq!(
            f.parse_issues,
            vec!["the facts script printed no facts block"]
        );
    }
}

#[test]
fn cut_short_block_keeps_what_came() {
    let s = sample();
    let cut = &s[..s.find("uptime=").unwrap()];
    let f = parse(cut);
    assert_eq!(f.hostname.as_deref(), Some("node1"));
    assert_eq!(f.generation, Some(42));
    assert_eq!(f.uptime_secs, None);
    assert!(
        f.parse_issues.iter().any(|i| i.contains("cut short")),
        "{:?}",
        f.parse_issues
    );
    assert!(f.parse_issues.iter().any(|i| i == "missing field uptime"));
}

#[test]
fn unknown_values_are_quiet() {
    let out = format!(
        "{BEGIN}\nprivileged=no\nhostname=?missing\nnixos_version=?missing\ncurrent_system=?missing\n\
         booted_system=?missing\ncurrent.kernel=?missing\nbooted.kernel=?missing\ncurrent.initrd=?missing\n\
         booted.initrd=?missing\ncurrent.kernel-modules=?missing\nbooted.kernel-modules=?missing\n\
         system_profile=?missing\nuptime=?missing\nload=?missing\nroot_fs_used=?missing\n\
         failed_units=?no-systemd\nk3s_state=?no-systemd\nupgrade_result=?no-systemd\n\
         upgrade_last_run=?no-systemd\nupgrade_next_run=?no-systemd\nsshd=?denied\nfw.nft=?missing\n\
         fw.iptables=?denied\nf2b=?denied\nlisten=?missing\nk3s_token=?denied\n\
         bootloader=unknown\nbootloader.grubenv=no\n{END}\n"
    );
    let f = parse(&out);
    assert_eq!(f.parse_issues, Vec::<String>::new());
    assert_eq!(f.privileged, Some(false));
    assert_eq!(f.failed_units, None);
    assert_eq!(f.reboot_needed, None);
    assert_eq!(f.posture.sshd, None);
    assert_eq!(f.posture.firewall, None);
    assert_eq!(f.posture.fail2ban, None);
    assert_eq!(f.posture.listening, None);
    assert_eq!(f.posture.k3s_token_present, None);
}

#[test]
fn garbled_fields_are_unknown_with_an_issue() {
    let s = sample()
        .replace(
            "system_profile=system-42-link",
            "system_profile=system-xx-link",
        )
        .replace("uptime=12345.67", "uptime=soon")
        .replace("load=0.10 0.20 0.30", "load=0.1 nan")
        .replace("root_fs_used=42%", "root_fs_used=142%")
        .replace("upgrade_next_run=@1795752000", "upgrade_next_run=@tomorrow")
        .replace("f2b.banned=3", "f2b.banned=many")
        .replace("fw.nft=1 1 12", "fw.nft=one")
        .replace("hostname=node1", "no equals sign here");
    let f = parse(&s);
    for (field, value) in [
        ("generation", f.generation.is_none()),
        ("uptime", f.uptime_secs.is_none()),
        ("load", f.load.is_none()),
        ("root_fs", f.root_fs_used_pct.is_none()),
        ("next_run", f.upgrade_next_run.is_none()),
        ("hostname", f.hostname.is_none()),
    ] {
        assert!(value, "{field} should be unknown");
    }
    let issues = f.parse_issues.join("\n");
    for needle in [
        "unreadable system_profile",
        "unreadable uptime",
        "unreadable load",
        "unreadable root_fs_used",
        "unreadable upgrade_next_run",
        "unreadable f2b.banned",
        "unreadable fw.nft",
        "unreadable line",
        "missing field hostname",
    ] {
        assert!(issues.contains(needle), "{needle} not in {issues}");
    }
    // Still the rest.
    assert_eq!(f.k3s_state.as_deref(), Some("active"));
    assert_eq!(f.reboot_needed, Some(true));
}

#[test]
fn empty_failed_units_is_known_and_empty() {
    let s = sample().replace("failed_units=foo.service bar.timer ", "failed_units=");
    assert_eq!(parse(&s).failed_units, Some(vec![]));
}

/// Blocks the parser reads cleanly: the sample with each firewall shape, a host without
/// NixOS or systemd, one without sshd/fail2ban/ss, and unknown fields the parser ignores.
fn clean_variants() -> Vec<String> {
    let s = sample();
    let mut v = vec![s.clone()];
    for (nft, ipt) in [
        ("?missing", "DROP 4 0"),
        ("?missing", "ACCEPT 9 1"),
        ("1 0 7", "ACCEPT 3 0"),
        ("1 0 7", "?missing"),
        ("?missing", "?missing"),
        ("?denied", "?denied"),
        ("2 1 30", "DROP 0 0"),
    ] {
        v.push(
            s.replace("fw.nft=1 1 12", &format!("fw.nft={nft}"))
                .replace("fw.iptables=?missing", &format!("fw.iptables={ipt}")),
        );
    }
    // Debian without systemd, not NixOS, nothing privileged.
    v.push(
        [
            BEGIN,
            "privileged=no",
            "hostname=deb1",
            "nixos_version=?missing",
            "current_system=?missing",
            "booted_system=?missing",
            "current.kernel=?missing",
            "booted.kernel=?missing",
            "current.initrd=?missing",
            "booted.initrd=?missing",
            "current.kernel-modules=?missing",
            "booted.kernel-modules=?missing",
            "system_profile=?missing",
            "uptime=99.00",
            "load=1.00 0.50 0.25",
            "root_fs_used=97%",
            "failed_units=?no-systemd",
            "k3s_state=?no-systemd",
            "upgrade_result=?no-systemd",
            "upgrade_last_run=?no-systemd",
            "upgrade_next_run=?no-systemd",
            "sshd=?missing",
            "fw.nft=?missing",
            "fw.iptables=?missing",
            "f2b=not-installed",
            "listen=?missing",
            "k3s_token=absent",
            "bootloader=unknown",
            "bootloader.grubenv=no",
            END,
        ]
        .join("\n"),
    );
    // Fields a newer script prints that this parser does not know, an older systemd's date,
    // fail2ban stopped, no failed units.
    v.push(
        s.replace(
            "k3s_token=present",
            "k3s_token=present\nsome_new_field=42\nzram=on",
        )
        .replace(
            "upgrade_next_run=@1795752000",
            "upgrade_next_run=Fri 2026-11-27 04:00:00 UTC",
        )
        .replace(
            "f2b=running\nf2b.jails=sshd,recidive\nf2b.banned=3",
            "f2b=not-running",
        )
        .replace("failed_units=foo.service bar.timer ", "failed_units="),
    );
    v
}

#[test]
fn render_round_trips() {
    for text in clean_variants() {
        let f = parse(&text);
        assert_eq!(f.parse_issues, Vec::<String>::new(), "{text}");
        let rendered = render(&f);
        let back = parse(&rendered);
        assert_eq!(back, f, "{rendered}");
    }
    // All unknown.
    let empty = HostFacts::default();
    let back = parse(&render(&empty));
    assert_eq!(back.parse_issues, Vec::<String>::new());
    assert_eq!(back, empty);
}

#[test]
fn the_probe_round_trips_and_notes_a_failed_script() {
    let probe = FactsProbe { sudo: false };
    for text in clean_variants() {
        let f = parse(&text);
        assert_eq!(probe.parse(&probe.render(&f)), Ok(f));
    }
    let reply = Reply {
        stdout: sample(),
        stderr: "sh: 12: ss: Permission denied\n".into(),
        exit_status: Some(2),
        exit_signal: None,
    };
    let f = probe.parse(&reply).unwrap();
    assert_eq!(f.hostname.as_deref(), Some("node1"));
    assert_eq!(
        f.parse_issues,
        ["the facts script ended with exit status 2: sh: 12: ss: Permission denied"]
    );
    let killed = Reply {
        exit_signal: Some("KILL".into()),
        ..Default::default()
    };
    let f = probe.parse(&killed).unwrap();
    assert!(
        f.parse_issues
            .iter()
            .any(|i| i == "the facts script ended with signal KILL"),
        "{:?}",
        f.parse_issues
    );
}

#[test]
fn the_probe_knows_its_own_script() {
    for sudo in [true, false] {
        let p = FactsProbe { sudo };
        assert_eq!(p.command(), COMMAND);
        let script = p.stdin().unwrap();
        assert_eq!(FactsProbe::from_script(&script), Some(p));
    }
    assert_eq!(FactsProbe::from_script("want_sudo=1\necho hi\n"), None);
    assert_eq!(FactsProbe::from_script(""), None);
    let tampered = script(true).replace("k3s_token", "k3s_tokens");
    assert_eq!(FactsProbe::from_script(&tampered), None);
}

#[test]
fn random_garbage_never_panics() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let sample = sample();
    let lines: Vec<&str> = sample.lines().collect();
    let pieces = [
        "=",
        "?",
        "%",
        ":",
        "@",
        " ",
        "\t",
        "\r",
        "é",
        "\u{0}",
        "system-",
        "-link",
        "[::]",
        "99999",
        "-1",
        "NaN",
        "inf",
        BEGIN,
        END,
        "listen.socket=",
        "sshd.",
        "f2b=running",
    ];
    for _ in 0..3000 {
        let mut text = String::new();
        for _ in 0..rng.random_range(0..40) {
            if rng.random_bool(0.5) {
                // A real line, maybe mangled.
                let mut l = lines[rng.random_range(0..lines.len())].to_string();
                if rng.random_bool(0.5) && !l.is_empty() {
                    let cut = rng.random_range(0..l.len());
                    let cut = (0..=cut)
                        .rev()
                        .find(|i| l.is_char_boundary(*i))
                        .unwrap_or(0);
                    l.truncate(cut);
                    l.push_str(pieces[rng.random_range(0..pieces.len())]);
                }
                text.push_str(&l);
            } else {
                for _ in 0..rng.random_range(0..6) {
                    text.push_str(pieces[rng.random_range(0..pieces.len())]);
                }
            }
            text.push('\n');
        }
        let f = parse(&text);
        // Whatever came out is internally consistent.
        if let Some(p) = f.root_fs_used_pct {
            assert!((0.0..=100.0).contains(&p));
        }
        if f.reboot_needed == Some(true) {
            assert!(!f.reboot_reasons.is_empty());
        }
    }
}

#[test]
fn helpers() {
    assert_eq!(parse_generation("system-7-link"), Some(7));
    assert_eq!(
        parse_generation("/nix/var/nix/profiles/system-123-link"),
        Some(123)
    );
    assert_eq!(parse_generation("system"), None);
    assert_eq!(
        parse_systemd_time("@0").as_deref(),
        Some("1970-01-01T00:00:00Z")
    );
    assert_eq!(
        parse_systemd_time("Fri 2026-11-27 04:00:00 UTC").as_deref(),
        Some("Fri 2026-11-27 04:00:00 UTC")
    );
    assert_eq!(parse_systemd_time("n/a"), None);
    assert!(script(true).starts_with("want_sudo=1\n"));
    assert!(script(false).contains(BEGIN) && script(false).contains(END));
}
