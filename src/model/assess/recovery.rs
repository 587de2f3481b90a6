//! Recovery readiness (area `recovery.`): could the cluster be rebuilt right now? etcd
//! snapshots against their schedule, Longhorn backups against their jobs, certificates'
//! expiry, the sops-nix secrets, clocks, and etcd housekeeping. [`rows`] gives the Recovery
//! pane's rows; `assess` turns the rows that own their finding into findings, so the pane and
//! `check` can never disagree. Rows whose finding another rule gives (`longhorn.backup_stale`,
//! `etcd.alarm`, ...) show it without repeating it.

use jiff::Timestamp;

use super::longhorn::{backup_job, cron_interval_secs};
use crate::config::Thresholds;
use crate::inventory::{Host, Inventory};
use crate::model::etcd::DEFAULT_QUOTA_BYTES;
use crate::model::recovery::{
    CertInfo, EtcdSnapshot, HostRecovery, Item, RecoveryRow, SecretState, Verdict, human_secs,
};
use crate::model::{Finding, Severity, Snapshot};

/// k3s's default snapshot interval (`0 */12 * * *`) when the configured cron is not understood.
const DEFAULT_SNAPSHOT_INTERVAL: u64 = 12 * 3_600;
/// Below this, a database with much free space is not worth a defragmentation.
const DEFRAG_MIN_BYTES: u64 = 100 << 20;

/// The findings of the rows that own theirs.
pub(super) fn assess(
    snap: &Snapshot,
    inv: &Inventory,
    th: &Thresholds,
    now: Timestamp,
    out: &mut Vec<Finding>,
) {
    for r in rows(snap, inv, th, now) {
        let sev = match r.verdict {
            Verdict::Info => Severity::Info,
            Verdict::Warning => Severity::Warning,
            Verdict::Critical => Severity::Critical,
            Verdict::Ok | Verdict::Unknown => continue,
        };
        if let (true, Some(code)) = (r.own_finding, &r.code) {
            out.push(Finding::new(sev, code, &r.subject, r.note));
        }
    }
}

struct Rows(Vec<RecoveryRow>);

impl Rows {
    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        item: Item,
        target: impl Into<String>,
        when: impl Into<String>,
        verdict: Verdict,
        code: Option<&str>,
        subject: impl Into<String>,
        note: impl Into<String>,
    ) {
        self.0.push(RecoveryRow {
            item,
            target: target.into(),
            when: when.into(),
            verdict,
            note: note.into(),
            code: code.map(str::to_string),
            subject: subject.into(),
            own_finding: true,
        });
    }

    /// A row whose finding another rule gives.
    fn shown(&mut self, mut r: RecoveryRow) {
        r.own_finding = false;
        self.0.push(r);
    }
}

/// Every row of the Recovery pane, in item order.
pub fn rows(snap: &Snapshot, inv: &Inventory, th: &Thresholds, now: Timestamp) -> Vec<RecoveryRow> {
    let mut rows = Rows(Vec::new());
    if let Some(cluster) = &snap.cluster.data {
        match &cluster.etcd_snapshots {
            Some(list) => etcd_snapshots(list, inv, th, now, &mut rows),
            None => rows.push(
                Item::EtcdSnapshot,
                "cluster",
                "-",
                Verdict::Unknown,
                None,
                "etcd",
                "no ETCDSnapshotFile resource (k3s before the November 2023 releases, or no embedded etcd)",
            ),
        }
        backups(cluster, th, now, &mut rows);
        if let Some(certs) = &cluster.certificates {
            cert_manager(certs, th, now, &mut rows);
        }
    }
    for host in &inv.hosts {
        if let Some(f) = snap.hosts.get(&host.id).and_then(|s| s.data.as_ref()) {
            host_certs(host, &f.recovery, th, now, &mut rows);
        }
    }
    for host in &inv.hosts {
        if let Some(f) = snap.hosts.get(&host.id).and_then(|s| s.data.as_ref()) {
            secrets(host, &f.recovery, &mut rows);
        }
    }
    for host in &inv.hosts {
        if let Some(f) = snap.hosts.get(&host.id).and_then(|s| s.data.as_ref()) {
            clock(host, &f.recovery, th, &mut rows);
        }
    }
    if let Some(etcd) = &snap.etcd.data {
        housekeeping(etcd, &mut rows);
    }
    rows.0
}

fn ago(now: Timestamp, t: Timestamp) -> String {
    format!("{} ago", human_secs(now.as_second() - t.as_second()))
}

fn size(b: Option<u64>) -> String {
    b.map_or("no size".into(), super::etcd::fmt_bytes)
}

fn etcd_snapshots(
    list: &[EtcdSnapshot],
    inv: &Inventory,
    th: &Thresholds,
    now: Timestamp,
    rows: &mut Rows,
) {
    let interval = cron_interval_secs(&th.etcd_snapshot_cron).unwrap_or(DEFAULT_SNAPSHOT_INTERVAL);
    let limit = 2 * interval as i64;
    let schedule = format!(
        "schedule {} (every {})",
        th.etcd_snapshot_cron,
        human_secs(interval as i64)
    );
    let newest = |pred: &dyn Fn(&EtcdSnapshot) -> bool| {
        list.iter()
            .filter(|s| s.ready && s.created.is_some() && pred(s))
            .max_by_key(|s| s.created)
    };
    match newest(&|_| true) {
        None => rows.push(
            Item::EtcdSnapshot,
            "cluster",
            "never",
            Verdict::Warning,
            Some("recovery.etcd_snapshot_none"),
            "etcd",
            format!("no etcd snapshot is ready to restore from ({schedule}): run `k3s etcd-snapshot save` on a server"),
        ),
        Some(s) => {
            let created = s.created.unwrap_or(now);
            let age = now.as_second() - created.as_second();
            let stale = age > limit;
            rows.push(
                Item::EtcdSnapshot,
                "cluster",
                ago(now, created),
                if stale { Verdict::Warning } else { Verdict::Ok },
                stale.then_some("recovery.etcd_snapshot_stale"),
                "etcd",
                format!(
                    "newest etcd snapshot {} on {} ({}) is {} old{}; {schedule}, k3s keeps 5 by default",
                    s.snapshot_name,
                    s.node,
                    size(s.size_bytes),
                    human_secs(age),
                    if stale {
                        ", more than twice the interval: are scheduled snapshots running?".to_string()
                    } else {
                        String::new()
                    }
                ),
            );
        }
    }
    for h in inv.control_planes() {
        let node = h.hostname.as_str();
        match newest(&|s: &EtcdSnapshot| !s.is_s3() && s.node == node) {
            Some(s) if now.as_second() - s.created.unwrap_or(now).as_second() <= limit => rows
                .push(
                    Item::EtcdSnapshot,
                    node,
                    ago(now, s.created.unwrap_or(now)),
                    Verdict::Ok,
                    None,
                    node,
                    format!(
                        "local snapshot {} ({})",
                        s.snapshot_name,
                        size(s.size_bytes)
                    ),
                ),
            other => rows.push(
                Item::EtcdSnapshot,
                node,
                other
                    .and_then(|s| s.created)
                    .map_or("never".into(), |t| ago(now, t)),
                Verdict::Warning,
                Some("recovery.etcd_snapshot_server_missing"),
                node,
                format!(
                    "server {node} has no local etcd snapshot from the last {}",
                    human_secs(limit)
                ),
            ),
        }
    }
    match newest(&|s: &EtcdSnapshot| s.is_s3()) {
        Some(s) => rows.push(
            Item::EtcdSnapshot,
            "s3",
            ago(now, s.created.unwrap_or(now)),
            Verdict::Ok,
            None,
            "etcd",
            format!("S3 copy {} at {}", s.snapshot_name, s.location),
        ),
        None if th.etcd_snapshot_s3 => rows.push(
            Item::EtcdSnapshot,
            "s3",
            "never",
            Verdict::Warning,
            Some("recovery.etcd_snapshot_no_s3"),
            "etcd",
            "no etcd snapshot copy on S3 although [thresholds] etcd_snapshot_s3 expects one: check k3s's etcd-s3 settings",
        ),
        None => rows.push(
            Item::EtcdSnapshot,
            "s3",
            "-",
            Verdict::Info,
            None,
            "etcd",
            "local snapshots only (no S3 copies): losing a server loses its snapshots",
        ),
    }
    for s in list.iter().filter(|s| !s.ready) {
        let when = s.created.map_or("-".into(), |t| ago(now, t));
        rows.push(
            Item::EtcdSnapshot,
            s.snapshot_name.clone(),
            when,
            Verdict::Warning,
            Some("recovery.etcd_snapshot_failed"),
            s.name.clone(),
            format!(
                "etcd snapshot {} on {} failed: {}",
                s.snapshot_name,
                s.node,
                s.error
                    .as_deref()
                    .unwrap_or("not ready to use, no error given")
            ),
        );
    }
}

fn backups(
    cluster: &crate::model::cluster::ClusterState,
    th: &Thresholds,
    now: Timestamp,
    rows: &mut Rows,
) {
    let l = &cluster.longhorn;
    if !l.installed {
        return;
    }
    for t in &l.backup_targets {
        if t.url.is_empty() {
            continue;
        }
        let ok = t.available;
        rows.shown(RecoveryRow {
            item: Item::Backup,
            target: format!("target {}", t.name),
            when: "-".into(),
            verdict: if ok { Verdict::Ok } else { Verdict::Critical },
            note: if ok {
                format!("backup target {} available", t.url)
            } else {
                format!("backup target {} unavailable: {}", t.url, t.message)
            },
            code: (!ok).then(|| "longhorn.backup_target_unavailable".into()),
            subject: t.name.clone(),
            own_finding: false,
        });
    }
    for v in &l.volumes {
        let enc = if v.encrypted {
            "encrypted volume, its backups hold encrypted blocks"
        } else {
            "not encrypted: its backups are readable by whoever holds the target"
        };
        let when = v.last_backup_at.map_or("never".into(), |t| ago(now, t));
        let target = match &v.pvc {
            Some(p) => format!("{} ({p})", v.name),
            None => v.name.clone(),
        };
        let (verdict, code, note) = match backup_job(l, v) {
            None if v.state == "detached" => (
                Verdict::Ok,
                None,
                format!("detached and no recurring backup job: not stale; {enc}"),
            ),
            None => (
                Verdict::Info,
                None,
                format!("no recurring backup job applies; {enc}"),
            ),
            Some((interval, job)) => {
                let limit = (interval as f64 * th.longhorn_backup_interval_factor) as i64;
                let stale = v
                    .last_backup_at
                    .is_none_or(|t| now.as_second() - t.as_second() > limit);
                (
                    if stale { Verdict::Warning } else { Verdict::Ok },
                    stale.then(|| "longhorn.backup_stale".to_string()),
                    format!(
                        "recurring job {job} every {}{}; {enc}",
                        human_secs(interval as i64),
                        if stale { ": stale" } else { "" }
                    ),
                )
            }
        };
        rows.shown(RecoveryRow {
            item: Item::Backup,
            target,
            when,
            verdict,
            note,
            code,
            subject: v.name.clone(),
            own_finding: false,
        });
    }
}

fn days_left(now: Timestamp, t: Timestamp) -> i64 {
    (t.as_second() - now.as_second()).div_euclid(86_400)
}

fn expiry_text(now: Timestamp, t: Timestamp) -> String {
    let d = days_left(now, t);
    if t <= now {
        format!("expired {}d ago", -d)
    } else {
        format!("expires in {d}d")
    }
}

fn expiry_verdict(
    th: &Thresholds,
    now: Timestamp,
    t: Timestamp,
) -> (Verdict, Option<&'static str>) {
    let d = days_left(now, t);
    if t <= now {
        (Verdict::Critical, Some("recovery.cert_expired"))
    } else if d < th.cert_critical_days as i64 {
        (Verdict::Critical, Some("recovery.cert_expiring"))
    } else if d < th.cert_warning_days as i64 {
        (Verdict::Warning, Some("recovery.cert_expiring"))
    } else {
        (Verdict::Ok, None)
    }
}

fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

fn host_certs(host: &Host, rec: &HostRecovery, th: &Thresholds, now: Timestamp, rows: &mut Rows) {
    let name = &host.hostname;
    for e in rec.errors.iter().filter(|e| e.starts_with("certificates:")) {
        rows.push(
            Item::Certificate,
            name.clone(),
            "-",
            Verdict::Warning,
            Some("recovery.cert_unreadable"),
            host.id.clone(),
            format!("{name}: cannot read k3s's certificates ({e}): they need root (sudo -n)"),
        );
    }
    let Some(certs) = &rec.certs else {
        return;
    };
    let mut worst: Vec<&CertInfo> = Vec::new();
    for c in certs {
        let (verdict, code) = expiry_verdict(th, now, c.not_after);
        if verdict == Verdict::Ok {
            continue;
        }
        worst.push(c);
        let how = if c.is_ca {
            "k3s does not renew CA certificates: plan `k3s certificate rotate-ca`".to_string()
        } else {
            format!(
                "k3s renews its certificates when it starts within 120 days of expiry (90 days before the May 2025 releases): restart k3s on {name}"
            )
        };
        rows.push(
            Item::Certificate,
            format!("{name}:{}", file_name(&c.path)),
            expiry_text(now, c.not_after),
            verdict,
            code,
            format!("{}:{}", host.id, file_name(&c.path)),
            format!(
                "{name}: {} ({}) {} ({}); {how}",
                c.path,
                c.subject,
                expiry_text(now, c.not_after),
                c.not_after.strftime("%Y-%m-%d")
            ),
        );
    }
    if worst.is_empty() {
        let soonest = certs.iter().min_by_key(|c| c.not_after);
        rows.push(
            Item::Certificate,
            name.clone(),
            soonest.map_or("-".into(), |c| expiry_text(now, c.not_after)),
            if certs.is_empty() {
                Verdict::Unknown
            } else {
                Verdict::Ok
            },
            None,
            host.id.clone(),
            match soonest {
                Some(c) => format!(
                    "{} k3s certificates, the soonest {} ({})",
                    certs.len(),
                    file_name(&c.path),
                    c.subject
                ),
                None => "no k3s certificate files found".into(),
            },
        );
    }
}

fn cert_manager(
    certs: &[crate::model::recovery::ManagedCertificate],
    th: &Thresholds,
    now: Timestamp,
    rows: &mut Rows,
) {
    for c in certs {
        let id = format!("{}/{}", c.namespace, c.name);
        let when = c.not_after.map_or("-".into(), |t| expiry_text(now, t));
        let (verdict, code, note) = match (c.ready, c.not_after) {
            (_, Some(t)) if expiry_verdict(th, now, t).0 == Verdict::Critical => (
                Verdict::Critical,
                expiry_verdict(th, now, t).1,
                format!(
                    "cert-manager Certificate {id} {}: {}",
                    expiry_text(now, t),
                    if c.message.is_empty() {
                        "renewal has not happened"
                    } else {
                        &c.message
                    }
                ),
            ),
            (Some(false), _) => (
                Verdict::Warning,
                Some("recovery.certmanager_not_ready"),
                format!(
                    "cert-manager Certificate {id} is not Ready ({}): {}",
                    c.reason, c.message
                ),
            ),
            _ => (
                Verdict::Ok,
                None,
                format!("cert-manager Certificate {id}: Ready, cert-manager renews it"),
            ),
        };
        rows.push(Item::Certificate, id.clone(), when, verdict, code, id, note);
    }
}

fn secrets(host: &Host, rec: &HostRecovery, rows: &mut Rows) {
    let name = &host.hostname;
    for e in rec.errors.iter().filter(|e| e.starts_with("secrets:")) {
        rows.push(
            Item::Secret,
            name.clone(),
            "-",
            Verdict::Warning,
            Some("recovery.secret_unreadable"),
            host.id.clone(),
            format!("{name}: cannot check the secrets ({e})"),
        );
    }
    for s in rec.secrets.iter().flatten() {
        let target = format!("{name}:{}", s.name);
        let subject = format!("{}:{}", host.id, s.name);
        let (verdict, code, note) = match &s.state {
            SecretState::Missing => (
                Verdict::Critical,
                Some("recovery.secret_missing"),
                format!(
                    "{name}: sops-nix secret {} is missing ({}): k3s cannot (re)join without it; check sops.secrets.{} and the host's age key",
                    s.name, s.path, s.name
                ),
            ),
            SecretState::Present { size: 0, .. } => (
                Verdict::Critical,
                Some("recovery.secret_empty"),
                format!("{name}: sops-nix secret {} ({}) is empty", s.name, s.path),
            ),
            SecretState::Present { owner, .. } if *owner != s.expected_owner => (
                Verdict::Warning,
                Some("recovery.secret_owner"),
                format!(
                    "{name}: {} is owned by {owner}, expected {}",
                    s.path, s.expected_owner
                ),
            ),
            SecretState::Present { mode, .. } if *mode != s.expected_mode => (
                Verdict::Warning,
                Some("recovery.secret_mode"),
                format!(
                    "{name}: {} has mode {:04o}, expected {:04o}",
                    s.path, mode, s.expected_mode
                ),
            ),
            SecretState::Present {
                owner, group, mode, ..
            } => (
                Verdict::Ok,
                None,
                format!("{} present, {owner}:{group} {:04o}", s.path, mode),
            ),
        };
        rows.push(Item::Secret, target, "-", verdict, code, subject, note);
    }
}

fn clock(host: &Host, rec: &HostRecovery, th: &Thresholds, rows: &mut Rows) {
    let name = &host.hostname;
    let Some(c) = &rec.clock else {
        return;
    };
    let daemon = c
        .daemon
        .as_deref()
        .unwrap_or("no timedatectl or chronyc answer");
    let when = c
        .offset_ms
        .map_or("-".into(), |o| format!("{:+.3} s", o / 1e3));
    let push = |rows: &mut Rows, v, code: Option<&str>, note: String| {
        rows.push(
            Item::Clock,
            name.clone(),
            when.clone(),
            v,
            code,
            host.id.clone(),
            note,
        )
    };
    if c.synchronized == Some(false) {
        push(
            rows,
            Verdict::Warning,
            Some("recovery.clock_unsynced"),
            format!(
                "{name}: the clock is not synchronised ({daemon}): etcd and certificates need agreeing clocks"
            ),
        );
    }
    match (c.offset_ms, c.uncertainty_ms) {
        (Some(o), Some(u)) if o.abs() - u > th.clock_offset_warning_ms => push(
            rows,
            Verdict::Warning,
            Some("recovery.clock_skew"),
            format!(
                "{name}: the clock is {:.3} s {} this machine's (± {:.0} ms), more than {:.1} s",
                o.abs() / 1e3,
                if o > 0.0 { "ahead of" } else { "behind" },
                u,
                th.clock_offset_warning_ms / 1e3
            ),
        ),
        (Some(_), Some(u)) if u > th.clock_offset_warning_ms / 2.0 => push(
            rows,
            Verdict::Unknown,
            None,
            format!("{name}: the round trip (± {u:.0} ms) is too slow to judge the offset"),
        ),
        (Some(_), Some(u)) if c.synchronized != Some(false) => push(
            rows,
            Verdict::Ok,
            None,
            format!(
                "{daemon}, synchronised{}; offset ± {u:.0} ms",
                match c.synchronized {
                    Some(true) => "",
                    _ => " (unknown)",
                }
            ),
        ),
        _ => {}
    }
    for e in rec.errors.iter().filter(|e| e.starts_with("clock:")) {
        push(rows, Verdict::Unknown, None, format!("{name}: {e}"));
    }
}

fn housekeeping(etcd: &crate::model::etcd::EtcdState, rows: &mut Rows) {
    let alarms: Vec<&crate::model::etcd::Alarm> = {
        let mut a: Vec<_> = etcd.members.iter().flat_map(|m| &m.alarms).collect();
        a.sort_by(|x, y| (x.member_id, &x.kind).cmp(&(y.member_id, &y.kind)));
        a.dedup_by(|x, y| x.member_id == y.member_id && x.kind == y.kind);
        a
    };
    for a in &alarms {
        let member = etcd
            .member(a.member_id)
            .map_or(format!("{:x}", a.member_id), |m| m.label());
        rows.shown(RecoveryRow {
            item: Item::EtcdHousekeeping,
            target: member.clone(),
            when: "-".into(),
            verdict: Verdict::Critical,
            note: match a.kind.as_str() {
                "NOSPACE" => format!(
                    "alarm NOSPACE on {member}: etcd refuses writes until it is compacted, defragmented and the alarm disarmed (`etcdctl alarm disarm`)"
                ),
                k => format!("alarm {k} on {member}"),
            },
            code: Some("etcd.alarm".into()),
            subject: member,
            own_finding: false,
        });
    }
    for m in etcd.members.iter().filter(|m| m.reachable) {
        let (Some(size), Some(used)) = (m.db_size_bytes, m.db_size_in_use_bytes) else {
            continue;
        };
        let quota = m.quota_bytes.unwrap_or(DEFAULT_QUOTA_BYTES);
        let fmt = super::etcd::fmt_bytes;
        let figures = format!(
            "db {}, in use {}, quota {} ({:.0}%)",
            fmt(size),
            fmt(used),
            fmt(quota),
            size as f64 * 100.0 / quota.max(1) as f64
        );
        let defrag = size >= DEFRAG_MIN_BYTES && used < size / 2;
        rows.push(
            Item::EtcdHousekeeping,
            m.label(),
            "-",
            if defrag { Verdict::Info } else { Verdict::Ok },
            defrag.then_some("etcd.defrag_advised"),
            m.label(),
            if defrag {
                format!(
                    "{}: {figures}: less than half in use, a defragmentation (`etcdctl defrag`, one member at a time) gives {} back",
                    m.label(),
                    fmt(size - used)
                )
            } else {
                figures
            },
        );
    }
}
