//! `k3s etcd-snapshot save --name NAME` (through `sudo -n`): an on-demand etcd snapshot on a
//! server, which k3s records as an `ETCDSnapshotFile`. Mutating (it writes a file on the host),
//! so it is a builder and a recogniser, not a read-only probe.

use super::words::{self, Word};

/// A snapshot request read back from a command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotSave {
    /// `--name`: k3s names the file `<name>-<node>-<unix seconds>`.
    pub name: String,
}

impl SnapshotSave {
    /// The command line (the name is a checked word: `homeinfra-<run id>`).
    pub fn command(name: &Word) -> String {
        format!("sudo -n k3s etcd-snapshot save --name {name}")
    }

    /// What k3s prints when the snapshot file is written.
    pub fn saved_line(file: &str) -> String {
        format!("INFO[0000] Snapshot {file} saved.\n")
    }

    /// The file name in k3s's output (`Snapshot FILE saved.`), if any.
    pub fn saved_file(output: &str) -> Option<String> {
        output.lines().find_map(|l| {
            let rest = &l[l.find("Snapshot ")? + "Snapshot ".len()..];
            rest.strip_suffix(" saved.").map(str::to_string)
        })
    }
}

/// `k3s etcd-snapshot save [--name N]` (any `sudo`/`env` prefix) → the request.
pub fn recognise(line: &str) -> Option<SnapshotSave> {
    let words = words::split(line)?;
    let w = words::program(&words);
    if w.len() < 3 || w[0] != "k3s" || w[1] != "etcd-snapshot" || w[2] != "save" {
        return None;
    }
    let mut name = "on-demand".to_string();
    let mut rest = w[3..].iter();
    while let Some(a) = rest.next() {
        if a == "--name" {
            name = rest.next()?.clone();
        } else if let Some(n) = a.strip_prefix("--name=") {
            name = n.to_string();
        }
    }
    Some(SnapshotSave { name })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_and_recognises() {
        let name = Word::name("run", "name", "homeinfra-20251201-1200").unwrap();
        let cmd = SnapshotSave::command(&name);
        assert_eq!(
            recognise(&cmd),
            Some(SnapshotSave {
                name: "homeinfra-20251201-1200".into()
            })
        );
        assert_eq!(
            recognise("k3s etcd-snapshot save").map(|s| s.name),
            Some("on-demand".into())
        );
        assert_eq!(recognise("k3s etcd-snapshot ls"), None);
        let out = SnapshotSave::saved_line("homeinfra-x-node1-1764590000");
        assert_eq!(
            SnapshotSave::saved_file(&out).as_deref(),
            Some("homeinfra-x-node1-1764590000")
        );
        assert_eq!(SnapshotSave::saved_file("error\n"), None);
    }
}
