//! The facts script: ONE small POSIX `sh` script per host and refresh (sent on stdin to
//! `sh -s`, so the login shell does not matter) that prints a block of `key=value` lines, and
//! its tolerant parser.
//!
//! Conventions of the block: a value starting with `?` means the host could not tell (command
//! missing, no systemd, no permission) and is "unknown" without complaint; a missing key or a
//! value that cannot be read is "unknown" plus a parse issue (which becomes a finding).

use crate::model::host::{BootFiles, HostFacts};

use super::posture;

pub const BEGIN: &str = "@@homeinfra-facts-begin v1";
pub const END: &str = "@@homeinfra-facts-end";

/// The script. `use_sudo`: try `sudo -n` for what needs root.
pub fn script(use_sudo: bool) -> String {
    format!(
        "want_sudo={}\n{}",
        if use_sudo { 1 } else { 0 },
        SCRIPT_BODY
    )
}

/// The remote command that runs the script (fed on stdin).
pub const COMMAND: &str = "sh -s";

const SCRIPT_BODY: &str = r#"export LC_ALL=C
PATH="$PATH:/run/current-system/sw/bin:/run/wrappers/bin:/usr/sbin:/sbin:/usr/bin:/bin"
have() { command -v "$1" >/dev/null 2>&1; }
kv() { printf '%s=%s\n' "$1" "$(printf '%s' "$2" | tr '\n' ' ')"; }
u() { printf '%s=?%s\n' "$1" "$2"; }
link() { t=$(readlink "$2" 2>/dev/null); if [ -n "$t" ]; then kv "$1" "$t"; else u "$1" missing; fi; }
S=
if [ "$(id -u 2>/dev/null)" = 0 ]; then priv=yes
elif [ "$want_sudo" = 1 ] && have sudo && sudo -n true >/dev/null 2>&1; then S="sudo -n"; priv=yes
else priv=no; fi
echo "@@homeinfra-facts-begin v1"
kv privileged "$priv"
h=$(hostname 2>/dev/null || cat /proc/sys/kernel/hostname 2>/dev/null)
if [ -n "$h" ]; then kv hostname "$h"; else u hostname missing; fi
if [ -r /run/current-system/nixos-version ]; then kv nixos_version "$(cat /run/current-system/nixos-version)"
elif have nixos-version; then kv nixos_version "$(nixos-version 2>/dev/null)"
else u nixos_version missing; fi
link current_system /run/current-system
link booted_system /run/booted-system
for f in kernel initrd kernel-modules; do
  link "current.$f" "/run/current-system/$f"
  link "booted.$f" "/run/booted-system/$f"
done
link system_profile /nix/var/nix/profiles/system
if read -r up _ </proc/uptime 2>/dev/null; then kv uptime "$up"; else u uptime missing; fi
if read -r l1 l5 l15 _ </proc/loadavg 2>/dev/null; then kv load "$l1 $l5 $l15"; else u load missing; fi
r=$(df -P / 2>/dev/null | awk 'NR==2 {print $5}')
if [ -n "$r" ]; then kv root_fs_used "$r"; else u root_fs_used missing; fi
if have systemctl && [ -d /run/systemd/system ]; then
  if f=$(systemctl list-units --state=failed --plain --no-legend --no-pager 2>/dev/null); then
    kv failed_units "$(printf '%s\n' "$f" | awk 'NF {print $1}' | tr '\n' ' ')"
  else u failed_units error; fi
  kv k3s_state "$(systemctl is-active k3s.service 2>/dev/null)"
  kv upgrade_result "$(systemctl show -p Result --value nixos-upgrade.service 2>/dev/null)"
  kv upgrade_last_run "$(systemctl show -p ExecMainExitTimestamp --value nixos-upgrade.service 2>/dev/null)"
  kv upgrade_next_run "$(systemctl show --timestamp=unix -p NextElapseUSecRealtime --value nixos-upgrade.timer 2>/dev/null)"
else
  for k in failed_units k3s_state upgrade_result upgrade_last_run upgrade_next_run; do u "$k" no-systemd; done
fi
sshd_bin=$(command -v sshd 2>/dev/null)
[ -z "$sshd_bin" ] && [ -x /usr/sbin/sshd ] && sshd_bin=/usr/sbin/sshd
if [ -z "$sshd_bin" ]; then u sshd missing
elif o=$($S "$sshd_bin" -T 2>/dev/null) && [ -n "$o" ]; then
  kv sshd ok
  printf '%s\n' "$o" | awk '$1 ~ /^(passwordauthentication|permitrootlogin|x11forwarding|kbdinteractiveauthentication|challengeresponseauthentication|pubkeyauthentication|permitemptypasswords|port|allowusers|maxauthtries)$/ {v=$2; for (i=3; i<=NF; i++) v=v " " $i; print "sshd." $1 "=" v}'
else u sshd denied; fi
if have nft; then
  if o=$($S nft list ruleset 2>/dev/null); then
    kv fw.nft "$(printf '%s\n' "$o" | grep -c 'hook input') $(printf '%s\n' "$o" | grep 'hook input' | grep -c 'policy drop') $(printf '%s\n' "$o" | grep -cE '^[[:space:]]+[a-z].*(accept|drop|reject|jump|goto)')"
  else u fw.nft denied; fi
else u fw.nft missing; fi
if have iptables; then
  if o=$($S iptables -S INPUT 2>/dev/null); then
    kv fw.iptables "$(printf '%s\n' "$o" | awk '$1=="-P" {print $3}') $(printf '%s\n' "$o" | grep -c '^-A') $(printf '%s\n' "$o" | grep '^-A' | grep -vcE -- '-j (ACCEPT|RETURN|LOG|KUBE-|FLANNEL|CNI-)')"
  else u fw.iptables denied; fi
else u fw.iptables missing; fi
if have fail2ban-client; then
  o=$($S fail2ban-client status 2>&1); rc=$?
  if [ "$rc" = 0 ]; then
    jails=$(printf '%s\n' "$o" | sed -n 's/.*Jail list:[[:space:]]*//p' | tr -d ' \t')
    n=0
    for j in $(printf '%s' "$jails" | tr ',' ' '); do
      b=$($S fail2ban-client status "$j" 2>/dev/null | sed -n 's/.*Currently banned:[[:space:]]*//p')
      case "$b" in ''|*[!0-9]*) b=0 ;; esac
      n=$((n + b))
    done
    kv f2b running
    kv f2b.jails "$jails"
    kv f2b.banned "$n"
  elif printf '%s' "$o" | grep -qi 'permission denied'; then u f2b denied
  else kv f2b not-running; fi
else kv f2b not-installed; fi
if have ss; then
  if o=$($S ss -H -tulnp 2>/dev/null || ss -H -tuln 2>/dev/null); then
    kv listen ok
    printf '%s\n' "$o" | while IFS= read -r l; do [ -n "$l" ] && printf 'listen.socket=%s\n' "$l"; done
  else u listen error; fi
else u listen missing; fi
tok=/run/secrets/k3s_token
if [ -e "$tok" ] || { [ -n "$S" ] && $S test -e "$tok" 2>/dev/null; }; then kv k3s_token present
elif [ -d /run/secrets ] && [ ! -x /run/secrets ] && [ "$priv" != yes ]; then u k3s_token denied
else kv k3s_token absent; fi
echo "@@homeinfra-facts-end"
"#;

/// One value of the block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Field<'a> {
    /// The key was not printed.
    Missing,
    /// `?reason`: the host could not tell.
    Unknown,
    Value(&'a str),
}

/// The parsed `key=value` block (first occurrence of a key wins; repeated keys are lists).
#[derive(Debug, Default)]
pub(super) struct Block<'a> {
    pairs: Vec<(&'a str, &'a str)>,
}

impl<'a> Block<'a> {
    pub(super) fn get(&self, key: &str) -> Field<'a> {
        match self.pairs.iter().find(|(k, _)| *k == key) {
            None => Field::Missing,
            Some((_, v)) if v.starts_with('?') => Field::Unknown,
            Some((_, v)) => Field::Value(v.trim()),
        }
    }

    /// The value as printed (`?reason` included); `None` when missing.
    pub(super) fn raw(&self, key: &str) -> Option<&'a str> {
        self.pairs
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.trim())
    }

    pub(super) fn all<'s>(&'s self, key: &'s str) -> impl Iterator<Item = &'a str> + 's {
        self.pairs
            .iter()
            .filter(move |(k, _)| *k == key)
            .map(|(_, v)| *v)
    }

    pub(super) fn with_prefix<'s>(
        &'s self,
        prefix: &'s str,
    ) -> impl Iterator<Item = (&'a str, &'a str)> + 's {
        self.pairs
            .iter()
            .filter_map(move |(k, v)| k.strip_prefix(prefix).map(|k| (k, *v)))
    }
}

/// The block the script would print for `f`: for simulated hosts (the simulator's SSH face
/// answers `sh -s` with this) and tests. `parse(&render(f))` gives `f` back (firewall
/// `detail` is rebuilt from the counts).
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
    match &p.firewall {
        Some(fw) if fw.backend == "iptables" => {
            kv("fw.nft", Some("?missing".into()));
            let policy = if fw.active { "DROP" } else { "ACCEPT" };
            kv("fw.iptables", Some(format!("{policy} 0 0")));
        }
        Some(fw) if fw.backend == "nftables" => {
            kv(
                "fw.nft",
                Some(if fw.active { "1 1 1" } else { "1 0 0" }.into()),
            );
            kv("fw.iptables", Some("?missing".into()));
        }
        Some(_) => {
            kv("fw.nft", Some("?missing".into()));
            kv("fw.iptables", Some("?missing".into()));
        }
        None => {
            kv("fw.nft", None);
            kv("fw.iptables", None);
        }
    }
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

/// Parse the script's output. Never fails: what cannot be read is unknown and noted in
/// `parse_issues`.
pub fn parse(output: &str) -> HostFacts {
    let mut facts = HostFacts::default();
    let Some(start) = output.find(BEGIN) else {
        facts
            .parse_issues
            .push("the facts script printed no facts block".into());
        return facts;
    };
    let body = &output[start + BEGIN.len()..];
    let body = match body.find(END) {
        Some(end) => &body[..end],
        None => {
            facts
                .parse_issues
                .push("the facts output was cut short (no end marker)".into());
            body
        }
    };
    let mut block = Block::default();
    for line in body.lines() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        match line.split_once('=') {
            Some((k, v)) if !k.is_empty() && !k.contains(char::is_whitespace) => {
                block.pairs.push((k, v))
            }
            _ => facts.parse_issues.push(format!(
                "unreadable line in the facts output: {}",
                clip(line)
            )),
        }
    }
    fill(&block, &mut facts);
    facts
}

fn fill(b: &Block<'_>, f: &mut HostFacts) {
    let mut issues = Vec::new();
    {
        let mut text = |key: &str| -> Option<String> {
            match b.get(key) {
                Field::Missing => {
                    issues.push(format!("missing field {key}"));
                    None
                }
                Field::Unknown => None,
                Field::Value("") => None,
                Field::Value(v) => Some(v.to_string()),
            }
        };
        f.privileged = text("privileged").map(|v| v == "yes");
        f.hostname = text("hostname");
        f.nixos_version = text("nixos_version");
        f.current_system = text("current_system");
        f.booted_system = text("booted_system");
        f.current_boot = BootFiles {
            kernel: text("current.kernel"),
            initrd: text("current.initrd"),
            kernel_modules: text("current.kernel-modules"),
        };
        f.booted_boot = BootFiles {
            kernel: text("booted.kernel"),
            initrd: text("booted.initrd"),
            kernel_modules: text("booted.kernel-modules"),
        };
        f.k3s_state = text("k3s_state");
        f.upgrade_last_result = text("upgrade_result");
        f.upgrade_last_run = text("upgrade_last_run").filter(|v| v != "n/a");
    }
    let parsed = |key: &str, issues: &mut Vec<String>| -> Option<String> {
        match b.get(key) {
            Field::Missing => {
                issues.push(format!("missing field {key}"));
                None
            }
            Field::Unknown | Field::Value("") | Field::Value("n/a") => None,
            Field::Value(v) => Some(v.to_string()),
        }
    };
    let garbled = |key: &str, v: &str| format!("unreadable {key}: {}", clip(v));

    if let Some(v) = parsed("system_profile", &mut issues) {
        match parse_generation(&v) {
            Some(g) => f.generation = Some(g),
            None => issues.push(garbled("system_profile", &v)),
        }
    }
    if let Some(v) = parsed("uptime", &mut issues) {
        match v.parse::<f64>() {
            Ok(s) if s.is_finite() && s >= 0.0 => f.uptime_secs = Some(s as u64),
            _ => issues.push(garbled("uptime", &v)),
        }
    }
    if let Some(v) = parsed("load", &mut issues) {
        let nums: Vec<f64> = v
            .split_whitespace()
            .filter_map(|x| x.parse::<f64>().ok())
            .filter(|x| x.is_finite() && *x >= 0.0)
            .collect();
        match nums.as_slice() {
            [a, b, c] if v.split_whitespace().count() == 3 => f.load = Some([*a, *b, *c]),
            _ => issues.push(garbled("load", &v)),
        }
    }
    if let Some(v) = parsed("root_fs_used", &mut issues) {
        match v.trim_end_matches('%').parse::<f64>() {
            Ok(p) if v.ends_with('%') && (0.0..=100.0).contains(&p) => f.root_fs_used_pct = Some(p),
            _ => issues.push(garbled("root_fs_used", &v)),
        }
    }
    match b.get("failed_units") {
        Field::Missing => issues.push("missing field failed_units".into()),
        Field::Unknown => {}
        Field::Value(v) => {
            f.failed_units = Some(v.split_whitespace().map(str::to_string).collect());
        }
    }
    if let Some(v) = parsed("upgrade_next_run", &mut issues) {
        match parse_systemd_time(&v) {
            Some(t) => f.upgrade_next_run = Some(t),
            None => issues.push(garbled("upgrade_next_run", &v)),
        }
    }
    posture::fill(b, &mut f.posture, &mut issues);
    f.compute_reboot_needed();
    f.parse_issues.extend(issues);
}

/// `system-42-link` → 42.
fn parse_generation(v: &str) -> Option<u64> {
    let name = v.rsplit('/').next()?;
    name.strip_prefix("system-")?
        .strip_suffix("-link")?
        .parse()
        .ok()
}

/// `@1732680000` (systemd `--timestamp=unix`) → RFC 3339; other non-empty text is kept as
/// systemd printed it (older systemd). `n/a`/empty → unknown (no next run).
fn parse_systemd_time(v: &str) -> Option<String> {
    let v = v.trim();
    if let Some(secs) = v.strip_prefix('@') {
        let secs: i64 = secs.parse().ok()?;
        return jiff::Timestamp::from_second(secs)
            .ok()
            .map(|t| t.to_string());
    }
    // Older systemd prints e.g. "Fri 2026-11-27 04:00:00 UTC".
    let looks_like_date = v.split_whitespace().any(|w| {
        let parts: Vec<&str> = w.split('-').collect();
        parts.len() == 3 && parts.iter().all(|p| p.chars().all(|c| c.is_ascii_digit()))
    });
    looks_like_date.then(|| v.to_string())
}

pub(super) fn clip(s: &str) -> String {
    let mut out: String = s.chars().take(80).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::host::{Fail2ban, Proto};

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
            END,
        ]
        .join("\n")
    }

    #[test]
    fn every_field_of_a_full_block() {
        let f = parse(&sample());
        assert_eq!(f.parse_issues, Vec::<String>::new());
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
             fw.iptables=?denied\nf2b=?denied\nlisten=?missing\nk3s_token=?denied\n{END}\n"
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

    #[test]
    fn render_round_trips() {
        let mut f = parse(&sample());
        assert!(f.parse_issues.is_empty());
        let mut back = parse(&render(&f));
        assert_eq!(back.parse_issues, Vec::<String>::new());
        // The firewall detail is rebuilt from counts; the rest must be identical.
        assert_eq!(
            back.posture
                .firewall
                .as_ref()
                .map(|x| (x.active, x.backend.clone())),
            f.posture
                .firewall
                .as_ref()
                .map(|x| (x.active, x.backend.clone()))
        );
        back.posture.firewall = None;
        f.posture.firewall = None;
        assert_eq!(back, f);
        // All unknown.
        let empty = HostFacts::default();
        let back = parse(&render(&empty));
        assert_eq!(back.parse_issues, Vec::<String>::new());
        assert_eq!(back, empty);
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
}
