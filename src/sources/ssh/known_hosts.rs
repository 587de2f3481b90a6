//! Host key verification against OpenSSH `known_hosts` files, with OpenSSH's semantics:
//! plain, `[host]:port`, comma lists, `*`/`?` wildcards, `!` negation, hashed (`|1|salt|hash`)
//! entries and `@revoked` markers (`@cert-authority` lines are skipped: no host certificates).
//! A malformed line is skipped, never fatal.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hmac::{Hmac, KeyInit, Mac};
use russh::keys::{HashAlg, PublicKey};
use sha1::Sha1;

/// What the known_hosts files say about a host's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The key is recorded for this host.
    Known { path: PathBuf, line: usize },
    /// No key for this host; `other_types` names key types that are recorded for it.
    Unknown { other_types: Vec<String> },
    /// A key of the same type is recorded and differs.
    Changed { path: PathBuf, line: usize },
    /// The key is marked `@revoked`.
    Revoked { path: PathBuf, line: usize },
}

/// The name OpenSSH looks up: `host` on port 22, else `[host]:port`.
pub fn lookup_name(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    }
}

/// `SHA256:...` as OpenSSH prints it.
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// Check `key` for `host:port` against every file (missing files count as empty).
pub fn check(host: &str, port: u16, key: &PublicKey, files: &[PathBuf]) -> Verdict {
    let name = lookup_name(host, port);
    let mut changed = None;
    let mut known = None;
    let mut other_types = Vec::new();
    for path in files {
        let Some(lines) = read_lines(path) else {
            continue;
        };
        for line in lines.iter() {
            let Some(entry) = line.entry_for(&name) else {
                continue;
            };
            let line_no = line.no;
            let same_key = entry.key.key_data() == key.key_data();
            match entry.marker {
                Marker::CertAuthority => {}
                Marker::Revoked if same_key => {
                    return Verdict::Revoked {
                        path: path.clone(),
                        line: line_no,
                    };
                }
                Marker::Revoked => {}
                Marker::None if same_key => {
                    known.get_or_insert((path.clone(), line_no));
                }
                Marker::None if entry.key.algorithm() == key.algorithm() => {
                    changed.get_or_insert((path.clone(), line_no));
                }
                Marker::None => {
                    let t = entry.key.algorithm().as_str().to_string();
                    if !other_types.contains(&t) {
                        other_types.push(t);
                    }
                }
            }
        }
    }
    if let Some((path, line)) = known {
        Verdict::Known { path, line }
    } else if let Some((path, line)) = changed {
        Verdict::Changed { path, line }
    } else {
        Verdict::Unknown { other_types }
    }
}

/// Key algorithms recorded for `host:port` (not revoked), for ordering the host key
/// algorithms offered to the server the way OpenSSH does: known types first.
pub fn known_algorithms(host: &str, port: u16, files: &[PathBuf]) -> Vec<russh::keys::Algorithm> {
    let name = lookup_name(host, port);
    let mut out = Vec::new();
    for path in files {
        let Some(lines) = read_lines(path) else {
            continue;
        };
        for line in lines.iter() {
            if let Some(e) = line.entry_for(&name)
                && e.marker == Marker::None
            {
                let a = e.key.algorithm();
                if !out.contains(&a) {
                    out.push(a);
                }
            }
        }
    }
    out
}

/// Append `host:port key` to `path` (accept-new), creating the file and its directory.
pub fn append(path: &Path, host: &str, port: u16, key: &PublicKey) -> std::io::Result<()> {
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)?;
    }
    let existing = std::fs::read(path).unwrap_or_default();
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    if !existing.is_empty() && !existing.ends_with(b"\n") {
        f.write_all(b"\n")?;
    }
    let key_text = key
        .to_openssh()
        .map_err(|e| std::io::Error::other(format!("cannot encode host key: {e}")))?;
    // Drop any comment: known_hosts lines carry none for server keys.
    let mut parts = key_text.split_whitespace();
    let (alg, data) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    writeln!(f, "{} {alg} {data}", lookup_name(host, port))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Marker {
    None,
    CertAuthority,
    Revoked,
}

#[derive(Debug)]
struct Entry {
    marker: Marker,
    key: PublicKey,
}

/// One entry line of a known_hosts file, split into its fields once.
#[derive(Debug)]
struct Line {
    /// 1-based, as editors count.
    no: usize,
    marker: Marker,
    patterns: Box<str>,
    /// `algorithm base64`, decoded only for a line about the host asked for.
    key: Box<str>,
}

impl Line {
    /// `text` (line `no`) split, or `None` for a blank line, a comment, an unknown marker or
    /// a line short of fields.
    fn split(no: usize, text: &str) -> Option<Line> {
        let text = text.trim();
        if text.is_empty() || text.starts_with('#') {
            return None;
        }
        let mut fields = text.split_whitespace();
        let mut first = fields.next()?;
        let marker = match first {
            "@cert-authority" => Marker::CertAuthority,
            "@revoked" => Marker::Revoked,
            m if m.starts_with('@') => return None,
            _ => Marker::None,
        };
        if marker != Marker::None {
            first = fields.next()?;
        }
        let alg = fields.next()?;
        let data = fields.next()?;
        Some(Line {
            no,
            marker,
            patterns: first.into(),
            key: format!("{alg} {data}").into(),
        })
    }

    /// The entry when this line is about host `name` and its key decodes.
    fn entry_for(&self, name: &str) -> Option<Entry> {
        if !matches(&self.patterns, name) {
            return None;
        }
        let key = PublicKey::from_openssh(&self.key).ok()?;
        Some(Entry {
            marker: self.marker,
            key,
        })
    }
}

/// What identifies one version of a file: its inode, size and change times. A file written
/// again, in place or replaced (`ssh-keygen -R`, an editor, [`append`]), differs.
type Stamp = (u64, u64, u64, i64, i64, i64, i64);

fn stamp(meta: &std::fs::Metadata) -> Stamp {
    use std::os::unix::fs::MetadataExt;
    (
        meta.dev(),
        meta.ino(),
        meta.size(),
        meta.mtime(),
        meta.mtime_nsec(),
        meta.ctime(),
        meta.ctime_nsec(),
    )
}

/// The files as last read, by path: every connection checks its host against files of
/// hundreds of hosts, and a round connects to every host.
static READ: std::sync::Mutex<BTreeMap<PathBuf, Read>> = std::sync::Mutex::new(BTreeMap::new());

/// A file's entry lines, and the version they were read from.
type Read = (Stamp, Arc<[Line]>);

/// `path`'s entry lines: as last read when the file is the same version, else read again
/// (`None`: it cannot be read, and counts as empty).
fn read_lines(path: &Path) -> Option<Arc<[Line]>> {
    let Ok(meta) = std::fs::metadata(path) else {
        // Gone: nothing of it stays known.
        if let Ok(mut m) = READ.lock() {
            m.remove(path);
        }
        return None;
    };
    let now = stamp(&meta);
    if let Ok(m) = READ.lock()
        && let Some((seen, lines)) = m.get(path)
        && *seen == now
    {
        return Some(lines.clone());
    }
    let text = std::fs::read_to_string(path).ok()?;
    let lines: Arc<[Line]> = text
        .lines()
        .enumerate()
        .filter_map(|(i, l)| Line::split(i + 1, l))
        .collect();
    // Kept under the version seen before the read: a file written during the read differs
    // from it next time, and is read again.
    if let Ok(mut m) = READ.lock() {
        m.insert(path.to_path_buf(), (now, lines.clone()));
    }
    Some(lines)
}

/// OpenSSH: a host matches when some pattern matches and no negated pattern does.
fn matches(patterns: &str, name: &str) -> bool {
    if patterns.starts_with("|1|") {
        return hashed_match(patterns, name);
    }
    let mut hit = false;
    for pat in patterns.split(',') {
        if let Some(neg) = pat.strip_prefix('!') {
            if glob_match(neg, name) {
                return false;
            }
        } else if pat.starts_with("|1|") {
            hit |= hashed_match(pat, name);
        } else if glob_match(pat, name) {
            hit = true;
        }
    }
    hit
}

fn hashed_match(entry: &str, name: &str) -> bool {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut parts = entry.splitn(4, '|').skip(2);
    let (Some(salt), Some(hash)) = (parts.next(), parts.next()) else {
        return false;
    };
    let (Ok(salt), Ok(hash)) = (b64.decode(salt), b64.decode(hash)) else {
        return false;
    };
    let Ok(mut mac) = <Hmac<Sha1> as KeyInit>::new_from_slice(&salt) else {
        return false;
    };
    mac.update(name.as_bytes());
    mac.verify_slice(&hash).is_ok()
}

/// `*` and `?` wildcards, case-insensitive (host names are).
fn glob_match(pattern: &str, name: &str) -> bool {
    // Most patterns are one plain name: compared in place (each connection reads every line
    // of files of hundreds of hosts).
    if !pattern.contains(['*', '?']) && pattern.is_ascii() && name.is_ascii() {
        return pattern.eq_ignore_ascii_case(name);
    }
    let p: Vec<char> = pattern.to_lowercase().chars().collect();
    let n: Vec<char> = name.to_lowercase().chars().collect();
    let (mut pi, mut ni) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED1: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJW1TOGss3xp+P3WU0t10umfTDedbFq3lBLbyurYYmLo";
    const ED2: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICf4bT0GthvtudpQnzKe9Bp50XWiz27N8HbpqXbGJ/9K";
    const ECDSA: &str = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBINJ3DwWMRSu77qovyvzOxKDh8H1Xk397lLTumGBjWGdUbG0Ji+kKdBHNekjhYRu0uaC0FnhQvYc+q5M+cfbGC4=";

    fn key(s: &str) -> PublicKey {
        PublicKey::from_openssh(s).unwrap()
    }

    fn file(text: &str) -> (tempfile::TempDir, PathBuf) {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("known_hosts");
        std::fs::write(&p, text).unwrap();
        (d, p)
    }

    #[test]
    fn plain_and_bracketed_entries() {
        let (_d, p) = file(&format!(
            "# comment\n\ngarbage line\nnode1,192.0.2.1 {ED1}\n[127.0.0.1]:2222 {ED2} root@x\n"
        ));
        let files = [p.clone()];
        assert_eq!(
            check("node1", 22, &key(ED1), &files),
            Verdict::Known {
                path: p.clone(),
                line: 4
            }
        );
        assert_eq!(
            check("192.0.2.1", 22, &key(ED1), &files),
            Verdict::Known {
                path: p.clone(),
                line: 4
            }
        );
        // Port matters: node1 on 2222 is not node1 on 22.
        assert_eq!(
            check("node1", 2222, &key(ED1), &files),
            Verdict::Unknown {
                other_types: vec![]
            }
        );
        assert!(matches!(
            check("127.0.0.1", 2222, &key(ED2), &files),
            Verdict::Known { line: 5, .. }
        ));
        assert_eq!(
            check("127.0.0.1", 2222, &key(ED1), &files),
            Verdict::Changed {
                path: p.clone(),
                line: 5
            }
        );
    }

    #[test]
    fn other_key_type_is_unknown_not_changed() {
        let (_d, p) = file(&format!("node1 {ECDSA}\n"));
        assert_eq!(
            check("node1", 22, &key(ED1), &[p]),
            Verdict::Unknown {
                other_types: vec!["ecdsa-sha2-nistp256".into()]
            }
        );
    }

    #[test]
    fn hashed_entries() {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD;
        let salt = [7u8; 20];
        let hashed = |name: &str| {
            let mut mac = <Hmac<Sha1> as KeyInit>::new_from_slice(&salt).unwrap();
            mac.update(name.as_bytes());
            format!(
                "|1|{}|{}",
                b64.encode(salt),
                b64.encode(mac.finalize().into_bytes())
            )
        };
        let (_d, p) = file(&format!(
            "{} {ED1}\n{} {ED2}\n",
            hashed("node1"),
            hashed("[127.0.0.1]:2222")
        ));
        let files = [p];
        assert!(matches!(
            check("node1", 22, &key(ED1), &files),
            Verdict::Known { line: 1, .. }
        ));
        assert!(matches!(
            check("127.0.0.1", 2222, &key(ED2), &files),
            Verdict::Known { line: 2, .. }
        ));
        assert!(matches!(
            check("node2", 22, &key(ED1), &files),
            Verdict::Unknown { .. }
        ));
        assert!(matches!(
            check("node1", 22, &key(ED2), &files),
            Verdict::Changed { line: 1, .. }
        ));
    }

    #[test]
    fn wildcards_negation_and_markers() {
        let (_d, p) = file(&format!(
            "*.lan,!evil.lan {ED1}\n@revoked * {ED2}\n@cert-authority *.lan {ED2}\n@bogus x {ED1}\n"
        ));
        let files = [p];
        assert!(matches!(
            check("node1.lan", 22, &key(ED1), &files),
            Verdict::Known { line: 1, .. }
        ));
        assert!(matches!(
            check("evil.lan", 22, &key(ED1), &files),
            Verdict::Unknown { .. }
        ));
        assert!(matches!(
            check("node1.lan", 22, &key(ED2), &files),
            Verdict::Revoked { line: 2, .. }
        ));
        assert!(glob_match("node?", "NODE1"));
        assert!(!glob_match("node?", "node12"));
        assert!(glob_match("*", ""));
        // Plain names, compared in place: case-insensitive, whole name only.
        assert!(glob_match("Node1.LAN", "node1.lan"));
        assert!(!glob_match("node1", "node12"));
        assert!(!glob_match("[node1]:2222", "[node1]:22"));
        assert!(
            glob_match("ÄHost", "äHOST"),
            "non-ASCII names still fold case"
        );
    }

    #[test]
    fn several_files_and_missing_files() {
        let (_d1, p1) = file("");
        let (_d2, p2) = file(&format!("node1 {ED1}\n"));
        let files = [PathBuf::from("/nonexistent/known_hosts"), p1, p2.clone()];
        assert_eq!(
            check("node1", 22, &key(ED1), &files),
            Verdict::Known { path: p2, line: 1 }
        );
    }

    #[test]
    fn known_algorithms_for_a_host() {
        let (_d, p) = file(&format!(
            "node1 {ECDSA}\nnode1 {ED1}\nnode1 {ED2}\n@revoked node1 {ED1}\nnode2 {ED1}\n"
        ));
        let algs = known_algorithms("node1", 22, std::slice::from_ref(&p));
        assert_eq!(algs.len(), 2);
        assert_eq!(algs[0].as_str(), "ecdsa-sha2-nistp256");
        assert_eq!(algs[1].as_str(), "ssh-ed25519");
        assert!(known_algorithms("node3", 22, &[p]).is_empty());
    }

    #[test]
    fn append_then_known() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("sub").join("known_hosts");
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, format!("other {ED2}")).unwrap();
        append(&p, "127.0.0.1", 2222, &key(ED1)).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(text, format!("other {ED2}\n[127.0.0.1]:2222 {ED1}\n"));
        assert!(matches!(
            check("127.0.0.1", 2222, &key(ED1), &[p]),
            Verdict::Known { line: 2, .. }
        ));
        assert!(fingerprint(&key(ED1)).starts_with("SHA256:"));
    }

    /// The lines kept from a file are those of its current version: a key appended, the
    /// file replaced (as `ssh-keygen -R` and editors do) or removed is seen at the next check.
    #[test]
    fn a_file_read_before_is_read_again_once_it_changed() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("known_hosts");
        let files = [p.clone()];
        std::fs::write(&p, format!("node1 {ED1}\n")).unwrap();
        let known = |k: &str| check("node1", 22, &key(k), &files);
        assert!(matches!(known(ED1), Verdict::Known { line: 1, .. }));
        assert!(matches!(known(ED2), Verdict::Changed { line: 1, .. }));
        // Appended: the new line is seen.
        append(&p, "node2", 22, &key(ED2)).unwrap();
        assert!(matches!(
            check("node2", 22, &key(ED2), &files),
            Verdict::Known { line: 2, .. }
        ));
        // Replaced by a file of the same size naming another key: the old key is not known.
        let tmp = d.path().join("known_hosts.new");
        std::fs::write(&tmp, format!("node1 {ED2}\nnode2 {ED2}\n")).unwrap();
        assert_eq!(
            std::fs::metadata(&tmp).unwrap().len(),
            std::fs::metadata(&p).unwrap().len()
        );
        std::fs::rename(&tmp, &p).unwrap();
        assert!(matches!(known(ED1), Verdict::Changed { line: 1, .. }));
        assert!(matches!(known(ED2), Verdict::Known { line: 1, .. }));
        assert_eq!(
            known_algorithms("node1", 22, &files),
            vec![key(ED2).algorithm()]
        );
        // Removed: nothing is known.
        std::fs::remove_file(&p).unwrap();
        assert!(matches!(known(ED2), Verdict::Unknown { .. }));
    }
}
