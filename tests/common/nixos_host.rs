//! A private sshd that looks like a NixOS host to the upgrade engine, for tests over a REAL
//! sshd: its sessions have a /run of their own (a tmpfs, in the sshd's own mount namespace)
//! with `/run/current-system` → [`OLD`] (the test user may repoint it), and fake `sudo`,
//! `systemd-run`, `systemctl` and `nixos-rebuild` first on PATH (sshd's `SetEnv`). Each fake
//! records its arguments in `calls.log`; the fake `systemd-run` keeps a transient timer
//! (waiting → running → elapsed, in `units/<unit>`) that, unless `systemctl stop` disarms it
//! in time, fires in a detached process, records the script it runs and points
//! `/run/current-system` back at the system the script's `--set` names. The fake
//! `nixos-rebuild` activates [`NEW`]. With a [`Loader`], the sessions also see a /boot and a
//! system profile of their own, a fake `bootctl` and `grub-reboot`, and `sudo` does what a
//! system's `switch-to-configuration boot` does to the boot loader.
#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::ssh::{PrivateSshd, SharedSshd, target};
use homeinfra_tui::sources::ssh::Target;

pub const OLD: &str = "/nix/store/0ld0ld0ld0ld0ld0ld0ld0ld0ld0ld0l-nixos-system-node4-25.05";
pub const NEW: &str = "/nix/store/new0new0new0new0new0new0new0new0-nixos-system-node4-25.11";

/// The fakes' directory (`bin/`, `units/`, `calls.log`), readable and writable by the test
/// user.
pub struct Fakes {
    pub dir: tempfile::TempDir,
}

impl Fakes {
    pub fn bin(&self) -> PathBuf {
        self.dir.path().join("bin")
    }

    /// Every recorded call, one line each: the program then each argument in brackets.
    pub fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("calls.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

fn write_exec(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

pub fn fakes() -> Fakes {
    let dir = tempfile::Builder::new()
        .prefix("homeinfra-revert-")
        .tempdir_in("/tmp")
        .unwrap();
    let d = dir.path().display().to_string();
    for sub in ["bin", "units"] {
        std::fs::create_dir(dir.path().join(sub)).unwrap();
    }
    for p in [dir.path().to_path_buf(), dir.path().join("units")] {
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    std::fs::set_permissions(
        dir.path().join("bin"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let log = dir.path().join("calls.log");
    std::fs::write(&log, "").unwrap();
    std::fs::set_permissions(&log, std::fs::Permissions::from_mode(0o666)).unwrap();
    let record = format!(
        "{{ printf '%s' \"$(basename \"$0\")\"; for a in \"$@\"; do printf ' [%s]' \"$a\"; done; echo; }} >> {d}/calls.log\n"
    );
    let bin = dir.path().join("bin");
    // A system's `switch-to-configuration boot` (no such store path here): sudo does what its
    // installer does to the boot loader — the default becomes the entry that boots it
    // (systemd-boot: loader.conf's `default`; GRUB: that system first in grub.cfg).
    write_exec(
        &bin.join("sudo"),
        &format!(
            r##"#!/bin/sh
{record}while [ $# -gt 0 ]; do case "$1" in -*) shift;; *) break;; esac; done
case "$1" in
  */bin/switch-to-configuration)
    sys=${{1%/bin/switch-to-configuration}}
    [ "$2" = boot ] || {{ echo "fake sudo: switch-to-configuration $2 not faked" >&2; exit 1; }}
    e=$(grep -l "init=$sys/init" /boot/loader/entries/*.conf 2>/dev/null | head -n 1)
    if [ -n "$e" ]; then printf 'timeout 5\ndefault %s\n' "${{e##*/}}" > /boot/loader/loader.conf; exit 0; fi
    if [ -f /boot/grub/grub.cfg ]; then echo "# default: $sys" >> /boot/grub/grub.cfg; exit 0; fi
    echo "sudo: $1: command not found" >&2; exit 1 ;;
esac
exec "$@"
"##
        ),
    );
    write_exec(
        &bin.join("bootctl"),
        &format!(
            r#"#!/bin/sh
{record}case "$1" in
  is-installed) [ -f /boot/loader/loader.conf ] && echo yes || {{ echo no; exit 1; }} ;;
  -p) echo /boot ;;
  set-oneshot) [ -f "/boot/loader/entries/$2" ] || {{ echo "Failed to set EFI variable: boot entry $2 not found" >&2; exit 1; }}; echo "$2" > /boot/loader/oneshot ;;
  *) echo "fake bootctl: $1 not faked" >&2; exit 1 ;;
esac
"#
        ),
    );
    write_exec(
        &bin.join("grub-reboot"),
        &format!(
            r#"#!/bin/sh
{record}[ -f /boot/grub/grubenv ] || {{ echo "grub-editenv: error: cannot open /boot/grub/grubenv" >&2; exit 1; }}
printf 'saved_entry=\nnext_entry=%s\n' "$1" > /boot/grub/grubenv
"#
        ),
    );
    write_exec(
        &bin.join("nixos-rebuild"),
        &format!(
            "#!/bin/sh\n{record}echo 'activating the configuration...' >&2\nln -sfn {NEW} /run/current-system\necho done\n"
        ),
    );
    // The timer: its state in units/<unit> (waiting, running, elapsed); when it fires (and was
    // not stopped) it records the script it runs and does what the script's `--set` says.
    write_exec(
        &bin.join("systemd-run"),
        &format!(
            r#"#!/bin/sh
{record}unit=; secs=
while [ $# -gt 0 ]; do
  case "$1" in
    --unit=*) unit=${{1#--unit=}} ;;
    --on-active=*) secs=${{1#--on-active=}}; secs=${{secs%s}} ;;
    --*) ;;
    *) break ;;
  esac
  shift
done
[ -n "$unit" ] && [ -n "$secs" ] || {{ echo 'fake systemd-run: --unit and --on-active wanted' >&2; exit 1; }}
[ "$1" = /bin/sh ] && [ "$2" = -c ] || {{ echo 'fake systemd-run: /bin/sh -c SCRIPT wanted' >&2; exit 1; }}
[ -e {d}/units/$unit ] && {{ echo "Failed to start transient timer unit: Unit $unit.timer was already loaded" >&2; exit 1; }}
token="$$-$(date +%s%N)"
echo "waiting $token" > {d}/units/$unit
prev=$(printf '%s' "$3" | sed -n 's/.* --set \([^ ]*\) .*/\1/p')
setsid sh -c 'sleep "$1"; [ "$(cat "$2" 2>/dev/null)" = "waiting $5" ] || exit 0; echo "running $5" > "$2"; echo "fired [$3]" >> {d}/calls.log; ln -sfn "$4" /run/current-system; echo "elapsed $5" > "$2"' \
  fake-timer "$secs" {d}/units/$unit "$3" "$prev" "$token" </dev/null >/dev/null 2>&1 &
echo "Running timer as unit: $unit.timer" >&2
echo "Will run service as unit: $unit.service" >&2
"#
        ),
    );
    write_exec(
        &bin.join("systemctl"),
        &format!(
            r#"#!/bin/sh
{record}props() {{ printf 'LoadState=%s\nActiveState=%s\nSubState=%s\n' "$1" "$2" "$3"; }}
case "$1" in
  show)
    shift; [ "$1" = -p ] && shift 2
    u=${{1%.timer}}
    case "$(cut -d' ' -f1 {d}/units/$u 2>/dev/null)" in
      waiting) props loaded active waiting; echo; props loaded inactive dead ;;
      running) props loaded active running; echo; props loaded activating start ;;
      elapsed) props loaded active elapsed; echo; props not-found inactive dead ;;
      *) props not-found inactive dead; echo; props not-found inactive dead ;;
    esac ;;
  stop)
    u=${{2%.timer}}
    if [ "$(cut -d' ' -f1 {d}/units/$u 2>/dev/null)" = waiting ]; then rm -f {d}/units/$u
    else echo "Failed to stop $2: Unit $2 not loaded." >&2; exit 5; fi ;;
  *) echo "fake systemctl: $1 not faked" >&2; exit 1 ;;
esac
"#
        ),
    );
    Fakes { dir }
}

/// A private sshd whose sessions see the fakes first on PATH and a /run of their own with
/// `/run/current-system` → [`OLD`] (the test user may repoint it).
pub fn sshd(f: &Fakes) -> PrivateSshd {
    sshd_with(f, None)
}

fn sshd_with(f: &Fakes, loader: Option<Loader>) -> PrivateSshd {
    let mut setup = format!(
        "mount -t tmpfs -o mode=1777 homeinfra-run /run\nmkdir -p -m 0755 /run/sshd\n\
         ln -s {OLD} /run/current-system\nchown -h operator /run/current-system"
    );
    if let Some(l) = loader {
        setup.push('\n');
        setup += &loader_setup(l);
    }
    PrivateSshd::start_with(
        Some(setup),
        &format!(
            "SetEnv PATH={}:/usr/local/bin:/usr/bin:/bin\nLogLevel VERBOSE\n",
            f.bin().display()
        ),
    )
}

/// The boot loader a [`NixosLikeHost::with_loader`] host has: a `/boot` and a system profile
/// of its own (tmpfs, in the sshd's mount namespace), generation 41 booting [`OLD`] and 42
/// [`NEW`] (the profile's newest and, as its switch left it, the default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loader {
    SystemdBoot,
    /// GRUB with `/boot/grub/grubenv`.
    Grub,
}

/// The setup lines that give the sessions `loader`'s /boot and profile.
fn loader_setup(loader: Loader) -> String {
    let mut s = String::from(
        "mount -t tmpfs -o mode=0755 homeinfra-boot /boot\n\
         mount -t tmpfs -o mode=0755 homeinfra-profiles /nix/var/nix/profiles\n",
    );
    s += &format!(
        "ln -s {OLD} /nix/var/nix/profiles/system-41-link\nln -s {NEW} /nix/var/nix/profiles/system-42-link\n\
         ln -s system-42-link /nix/var/nix/profiles/system\n"
    );
    match loader {
        Loader::SystemdBoot => {
            s += "mkdir -p /boot/loader/entries\nprintf 'timeout 5\\ndefault nixos-generation-42.conf\\n' > /boot/loader/loader.conf\n";
            for (n, sys) in [(41, OLD), (42, NEW)] {
                s += &format!(
                    "printf 'title NixOS\\nversion Generation {n}\\noptions init={sys}/init\\n' > /boot/loader/entries/nixos-generation-{n}.conf\n"
                );
            }
        }
        Loader::Grub => {
            s += "mkdir -p /boot/grub\nprintf 'saved_entry=\\n' > /boot/grub/grubenv\n";
            s += "printf '%s\\n' 'menuentry \"NixOS\" {' '}' 'submenu \"NixOS - All configurations\" {' \
                  '  menuentry \"NixOS - Configuration 42 (2026-01-02 - 25.11.1)\" {' '  }' \
                  '  menuentry \"NixOS - Configuration 41 (2026-01-01 - 25.05.9)\" {' '  }' '}' > /boot/grub/grub.cfg\n";
        }
    }
    // The test user (the fakes run as it) may change what the fakes change.
    s += "chown -R operator /boot\n";
    s
}

/// Fakes and the sshd that serves them.
pub struct NixosLikeHost {
    pub fakes: Fakes,
    pub sshd: PrivateSshd,
}

impl NixosLikeHost {
    pub fn start() -> NixosLikeHost {
        let fakes = fakes();
        let sshd = sshd(&fakes);
        NixosLikeHost { fakes, sshd }
    }

    /// With a /boot and a system profile of its own (see [`Loader`]).
    pub fn with_loader(loader: Loader) -> NixosLikeHost {
        let fakes = fakes();
        let sshd = sshd_with(&fakes, Some(loader));
        NixosLikeHost { fakes, sshd }
    }

    /// A target for host `id` on this sshd, logging in as the shared sshd's user and key.
    pub fn target(&self, id: &str, s: &SharedSshd) -> Target {
        target(
            id,
            "127.0.0.1",
            self.sshd.port,
            &s.user,
            Some(&s.key),
            &self.sshd.known_hosts,
        )
    }

    /// The timer units the fake systemd holds now (armed or fired).
    pub fn units(&self) -> Vec<String> {
        std::fs::read_dir(self.fakes.dir.path().join("units"))
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// `unshare` is there to give the sshd its own /run (else: skipped loudly, failed in CI).
pub fn available() -> bool {
    super::require_program("unshare").is_some()
}
