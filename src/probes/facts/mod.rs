//! The facts probe: ONE small POSIX `sh` script per host and refresh (sent on stdin to
//! `sh -s`, so the login shell does not matter) that prints a block of `key=value` lines
//! (`parse`), and the block a host in a given state prints (`render`).
//!
//! Conventions of the block: a value starting with `?` means the host could not tell (command
//! missing, no systemd, no permission) and is "unknown" without complaint; a missing key or a
//! value that cannot be read is "unknown" plus a parse issue (which becomes a finding).
//!
//! Files: `parse` (the block reader), `posture` (its hardening part: sshd, firewall,
//! fail2ban, listening sockets, the k3s token), `render`, `tests`.

mod parse;
pub mod posture;
mod render;
#[cfg(test)]
mod tests;

pub use parse::parse;
pub use render::render;

use crate::model::host::HostFacts;

use super::{Kind, Probe, ProbeError, Reply, clip};

pub const BEGIN: &str = "@@homeinfra-facts-begin v1";
pub const END: &str = "@@homeinfra-facts-end";

/// The script. `use_sudo`: try `sudo -n` for what needs root.
pub fn script(use_sudo: bool) -> String {
    format!("want_sudo={}\n{}", if use_sudo { 1 } else { 0 }, body())
}

/// The script after its first line: [`SCRIPT_BODY`] with the boot loader's detection
/// (`crate::probes::bootloader::DETECT`) in place.
fn body() -> String {
    SCRIPT_BODY.replace("@@BOOTLOADER@@", super::bootloader::DETECT)
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
@@BOOTLOADER@@
kv bootloader "$loader"
kv bootloader.grubenv "$grubenv"
echo "@@homeinfra-facts-end"
"#;

/// The facts script run through `sh -s`. `sudo`: the script tries `sudo -n` for what needs
/// root (`[ssh] sudo`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FactsProbe {
    pub sudo: bool,
}

impl FactsProbe {
    /// The probe whose script `stdin` is (`None`: not our script).
    pub fn from_script(stdin: &str) -> Option<Self> {
        let (head, body) = stdin.split_once('\n')?;
        let sudo = match head {
            "want_sudo=1" => true,
            "want_sudo=0" => false,
            _ => return None,
        };
        (body == self::body()).then_some(Self { sudo })
    }
}

impl Probe for FactsProbe {
    type Output = HostFacts;
    const KIND: Kind = Kind::Facts;

    fn command(&self) -> String {
        COMMAND.into()
    }

    fn stdin(&self) -> Option<String> {
        Some(script(self.sudo))
    }

    /// Never fails: a script that ended badly still gives what it printed, with the failure
    /// noted as a parse issue.
    fn parse(&self, reply: &Reply) -> Result<HostFacts, ProbeError> {
        let mut f = parse(&reply.stdout);
        if !reply.success() {
            let how = reply.how_it_ended();
            let err = reply.stderr.trim();
            f.parse_issues.push(if err.is_empty() {
                format!("the facts script ended with {how}")
            } else {
                format!("the facts script ended with {how}: {}", clip(err))
            });
        }
        Ok(f)
    }

    fn render(&self, f: &HostFacts) -> Reply {
        Reply::ok(render(f))
    }
}
