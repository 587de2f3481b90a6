//! The SSH client against a real OpenSSH server (the shared one from scripts/test-env.sh, and
//! private ones this test starts and kills).

use crate::common::ssh as ssh_support;

use std::process::{Command, Stdio};
use std::time::Duration;

use homeinfra_tui::model::host::SshProblem;
use homeinfra_tui::sources::ssh::{AgentSource, ConnState, OutputChunk, SshPool};
use ssh_support::*;
use tokio::sync::mpsc;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn key_file_auth_exit_codes_and_connection_reuse() {
    let Some(s) = shared() else { return };
    rt().block_on(async {
        let pool = SshPool::new(settings());
        let t = target("h1", &s.host, s.port, &s.user, Some(&s.key), &s.known_hosts);
        let out = pool
            .run(&t, "echo hello; echo oops >&2; exit 3")
            .await
            .unwrap();
        assert_eq!(out.exit_status, Some(3));
        assert_eq!(out.stdout_lossy(), "hello\n");
        assert_eq!(out.stderr_lossy(), "oops\n");
        let ok = pool.run(&t, "true").await.unwrap();
        assert!(ok.success());
        // One connection, reused: the client's source port stays the same.
        let a = pool
            .run(&t, "echo $SSH_CONNECTION")
            .await
            .unwrap()
            .stdout_lossy();
        let b = pool
            .run(&t, "echo $SSH_CONNECTION")
            .await
            .unwrap()
            .stdout_lossy();
        assert!(!a.trim().is_empty());
        assert_eq!(a, b, "a second command opened a new connection");
        // Input on stdin reaches the remote command.
        let out = pool
            .run_with_stdin(
                &t,
                "sh -s",
                Some(b"echo from-stdin; exit 7\n"),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
        assert_eq!(
            (out.exit_status, out.stdout_lossy().as_str()),
            (Some(7), "from-stdin\n")
        );
        // Killed by a signal: no exit status, the signal named.
        let out = pool.run(&t, "kill -TERM $$").await.unwrap();
        assert_eq!(out.exit_status, None);
        assert!(
            out.exit_signal.as_deref().unwrap_or("").contains("TERM"),
            "{out:?}"
        );
    });
}

#[test]
fn close_if_idle_leaves_a_running_command_alone_then_the_next_logs_in_anew() {
    let Some(s) = shared() else { return };
    rt().block_on(async {
        let pool = std::sync::Arc::new(SshPool::new(settings()));
        let t = target("h1", &s.host, s.port, &s.user, Some(&s.key), &s.known_hosts);
        let first = pool.run(&t, "echo $SSH_CONNECTION").await.unwrap();
        let running = {
            let (pool, t) = (pool.clone(), t.clone());
            tokio::spawn(async move { pool.run(&t, "sleep 1; echo $SSH_CONNECTION").await })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        pool.close_if_idle("h1").await;
        assert!(
            matches!(pool.state("h1"), ConnState::Connected),
            "closed under a running command"
        );
        let out = running.await.unwrap().unwrap();
        assert!(out.success(), "{out:?}");
        assert_eq!(out.stdout_lossy(), first.stdout_lossy());
        // Nothing runs now: closed, and the next command logs in anew (another source port).
        pool.close_if_idle("h1").await;
        assert!(matches!(pool.state("h1"), ConnState::Idle));
        let again = pool.run(&t, "echo $SSH_CONNECTION").await.unwrap();
        assert!(again.success());
        assert_ne!(again.stdout_lossy(), first.stdout_lossy());
        assert!(matches!(pool.state("h1"), ConnState::Connected));
    });
}

#[test]
fn agent_auth_through_a_real_ssh_agent() {
    let Some(s) = shared() else { return };
    if common::require_program("ssh-agent").is_none()
        || common::require_program("ssh-add").is_none()
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("agent.sock");
    let mut agent = Command::new("ssh-agent")
        .arg("-D")
        .arg("-a")
        .arg(&sock)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start ssh-agent");
    for _ in 0..100 {
        if sock.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let added = Command::new("ssh-add")
        .arg(&s.key)
        .env("SSH_AUTH_SOCK", &sock)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("ssh-add");
    assert!(added.success());
    let result = rt().block_on(async {
        let mut st = settings();
        st.agent = AgentSource::Socket(sock.clone());
        let pool = SshPool::new(st);
        // No identity file: only the agent can log us in.
        let t = target("h1", &s.host, s.port, &s.user, None, &s.known_hosts);
        pool.run(&t, "echo agent-ok").await
    });
    let _ = agent.kill();
    let _ = agent.wait();
    let out = result.expect("agent auth");
    assert_eq!(out.stdout_lossy(), "agent-ok\n");

    // Without agent and without keys: a clear auth error.
    let err = rt()
        .block_on(async {
            let pool = SshPool::new(settings());
            let t = target("h1", &s.host, s.port, &s.user, None, &s.known_hosts);
            pool.run(&t, "true").await
        })
        .unwrap_err();
    assert_eq!(err.problem, SshProblem::AuthFailed, "{err}");
    assert!(err.message.contains("no usable key"), "{err}");
}

/// A real ssh-agent holding `keys` (in that order); killed on drop.
struct Agent {
    child: std::process::Child,
    sock: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Agent {
    fn start(keys: &[&std::path::Path]) -> Agent {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("agent.sock");
        let child = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&sock)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start ssh-agent");
        for _ in 0..100 {
            if sock.exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        for k in keys {
            let ok = Command::new("ssh-add")
                .arg(k)
                .env("SSH_AUTH_SOCK", &sock)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("ssh-add");
            assert!(ok.success());
        }
        Agent {
            child,
            sock,
            _dir: dir,
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn agent_keys_of_the_identity_files_go_first_and_identities_only() {
    let Some(s) = shared() else { return };
    if common::require_program("ssh-agent").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // Six unrelated keys first: with the server's MaxAuthTries 6 they would use up every try.
    let mut others = Vec::new();
    for i in 0..6 {
        let k = dir.path().join(format!("other{i}"));
        let st = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&k)
            .status()
            .unwrap();
        assert!(st.success());
        others.push(k);
    }
    let mut keys: Vec<&std::path::Path> = others.iter().map(|p| p.as_path()).collect();
    keys.push(&s.key);
    let agent = Agent::start(&keys);
    // The identity file is only a public key here: the login must come from the agent.
    let id = dir.path().join("id_pub_only");
    std::fs::copy(
        format!("{}.pub", s.key.display()),
        dir.path().join("id_pub_only.pub"),
    )
    .unwrap();
    for identities_only in [false, true] {
        let out = rt().block_on(async {
            let mut st = settings();
            st.agent = AgentSource::Socket(agent.sock.clone());
            let pool = SshPool::new(st);
            let mut t = target("h1", &s.host, s.port, &s.user, Some(&id), &s.known_hosts);
            t.identities_only = identities_only;
            pool.run(&t, "echo via-agent").await
        });
        assert_eq!(out.expect("agent login").stdout_lossy(), "via-agent\n");
    }
    // IdentitiesOnly with an agent that lacks the key: no other agent key is offered.
    let only_others = Agent::start(&keys[..1]);
    let err = rt()
        .block_on(async {
            let mut st = settings();
            st.agent = AgentSource::Socket(only_others.sock.clone());
            let pool = SshPool::new(st);
            let mut t = target("h1", &s.host, s.port, &s.user, Some(&id), &s.known_hosts);
            t.identities_only = true;
            pool.run(&t, "true").await
        })
        .unwrap_err();
    assert_eq!(err.problem, SshProblem::AuthFailed);
    assert!(err.message.contains("no usable key"), "{err}");
}

#[test]
fn encrypted_key_without_agent_is_a_clear_error() {
    let Some(s) = shared() else { return };
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("id_locked");
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "secret-passphrase", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(st.success());
    let err = rt()
        .block_on(async {
            let pool = SshPool::new(settings());
            let t = target("h1", &s.host, s.port, &s.user, Some(&key), &s.known_hosts);
            pool.run(&t, "true").await
        })
        .unwrap_err();
    assert_eq!(err.problem, SshProblem::AuthFailed);
    assert!(err.message.contains("passphrase-protected"), "{err}");
    assert!(err.message.contains("ssh-add"), "{err}");
    assert!(!err.message.contains("secret-passphrase"));
    let private = std::fs::read_to_string(&key).unwrap();
    let body = private.lines().nth(1).unwrap();
    assert!(!err.message.contains(body), "key material in the error");
}

#[test]
fn unknown_host_is_refused_with_fingerprint_and_hint_unless_accept_new() {
    let Some(s) = shared() else { return };
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("known_hosts");
    std::fs::write(&empty, "").unwrap();
    let err = rt()
        .block_on(async {
            let pool = SshPool::new(settings());
            let t = target("h1", &s.host, s.port, &s.user, Some(&s.key), &empty);
            pool.run(&t, "true").await
        })
        .unwrap_err();
    assert_eq!(err.problem, SshProblem::HostKeyUnknown, "{err}");
    assert!(err.message.contains("SHA256:"), "{err}");
    let hint = format!(
        "ssh-keyscan -p {} {} >> {}",
        s.port,
        s.host,
        empty.display()
    );
    assert!(err.message.contains(&hint), "{err}");
    // The fingerprint is the real one.
    let fp = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(&s.known_hosts)
        .output()
        .unwrap();
    let fp = String::from_utf8_lossy(&fp.stdout);
    let fp = fp.split_whitespace().nth(1).unwrap();
    assert!(err.message.contains(fp), "{err} vs {fp}");

    // accept_new: trusted on first use and recorded.
    let out = rt().block_on(async {
        let mut st = settings();
        st.accept_new = true;
        let pool = SshPool::new(st);
        let t = target("h1", &s.host, s.port, &s.user, Some(&s.key), &empty);
        pool.run(&t, "echo tofu").await
    });
    assert_eq!(out.unwrap().stdout_lossy(), "tofu\n");
    let recorded = std::fs::read_to_string(&empty).unwrap();
    assert!(
        recorded.starts_with(&format!("[{}]:{} ssh-ed25519 ", s.host, s.port)),
        "{recorded}"
    );
    // ...and now known without accept_new.
    let out = rt().block_on(async {
        let pool = SshPool::new(settings());
        let t = target("h1", &s.host, s.port, &s.user, Some(&s.key), &empty);
        pool.run(&t, "true").await
    });
    assert!(out.unwrap().success());
}

#[test]
fn changed_host_key_is_refused_loudly() {
    let Some(s) = shared() else { return };
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("other");
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&other)
        .status()
        .unwrap();
    assert!(st.success());
    let pubkey = std::fs::read_to_string(dir.path().join("other.pub")).unwrap();
    let mut p = pubkey.split_whitespace();
    let kh = dir.path().join("known_hosts");
    std::fs::write(
        &kh,
        format!(
            "[{}]:{} {} {}\n",
            s.host,
            s.port,
            p.next().unwrap(),
            p.next().unwrap()
        ),
    )
    .unwrap();
    for accept_new in [false, true] {
        let err = rt()
            .block_on(async {
                let mut st = settings();
                st.accept_new = accept_new;
                let pool = SshPool::new(st);
                let t = target("h1", &s.host, s.port, &s.user, Some(&s.key), &kh);
                pool.run(&t, "true").await
            })
            .unwrap_err();
        assert_eq!(err.problem, SshProblem::HostKeyChanged, "{err}");
        assert!(
            err.message
                .contains("REMOTE HOST IDENTIFICATION HAS CHANGED"),
            "{err}"
        );
        assert!(
            err.message.contains(&format!("{}:1", kh.display())),
            "{err}"
        );
    }
}

#[test]
fn streamed_output_arrives_while_the_command_runs() {
    let Some(s) = shared() else { return };
    let dir = shared_dir();
    let go = dir.path().join("go");
    rt().block_on(async {
        let pool = std::sync::Arc::new(SshPool::new(settings()));
        let t = target("h1", &s.host, s.port, &s.user, Some(&s.key), &s.known_hosts);
        let (tx, mut rx) = mpsc::unbounded_channel();
        // The command prints a line, then waits until the test has seen it (the file appears),
        // then prints more: output is only complete if the first chunk arrived on its own.
        let cmd = format!(
            "echo first; echo warn >&2; while [ ! -e {go} ]; do sleep 0.05; done; echo second; exit 4",
            go = go.display()
        );
        let p = pool.clone();
        let t2 = t.clone();
        let task = tokio::spawn(async move {
            p.run_streaming(&t2, &cmd, Duration::from_secs(30), tx).await
        });
        let mut seen_stdout = String::new();
        let mut seen_stderr = String::new();
        while !seen_stdout.contains("first\n") || !seen_stderr.contains("warn\n") {
            match tokio::time::timeout(Duration::from_secs(20), rx.recv()).await {
                Ok(Some(OutputChunk::Stdout(d))) => seen_stdout.push_str(&String::from_utf8_lossy(&d)),
                Ok(Some(OutputChunk::Stderr(d))) => seen_stderr.push_str(&String::from_utf8_lossy(&d)),
                other => panic!("no first chunk: {other:?}"),
            }
        }
        assert!(!seen_stdout.contains("second"));
        assert!(!task.is_finished(), "the command finished before it was released");
        std::fs::write(&go, "").unwrap();
        let exit = task.await.unwrap().unwrap();
        assert_eq!(exit.exit_status, Some(4));
        while let Some(c) = rx.recv().await {
            if let OutputChunk::Stdout(d) = c {
                seen_stdout.push_str(&String::from_utf8_lossy(&d));
            }
        }
        assert_eq!(seen_stdout, "first\nsecond\n");
    });
}

#[test]
fn command_timeout_then_the_host_still_works() {
    let Some(s) = shared() else { return };
    rt().block_on(async {
        let pool = SshPool::new(settings());
        let t = target("h1", &s.host, s.port, &s.user, Some(&s.key), &s.known_hosts);
        let err = pool
            .run_with_stdin(&t, "sleep 30", None, Duration::from_millis(500))
            .await
            .unwrap_err();
        assert_eq!(err.problem, SshProblem::Timeout, "{err}");
        assert!(err.message.contains("sleep 30"), "{err}");
        let out = pool.run(&t, "echo after").await.unwrap();
        assert_eq!(out.stdout_lossy(), "after\n");
    });
}

#[test]
fn unreachable_port_is_a_clear_error() {
    let Some(s) = shared() else { return };
    let port = free_port();
    let err = rt()
        .block_on(async {
            let pool = SshPool::new(settings());
            let t = target(
                "h1",
                "127.0.0.1",
                port,
                &s.user,
                Some(&s.key),
                &s.known_hosts,
            );
            pool.run(&t, "true").await
        })
        .unwrap_err();
    assert_eq!(err.problem, SshProblem::Unreachable, "{err}");
    assert!(err.message.contains(&format!("127.0.0.1:{port}")), "{err}");
}

#[test]
fn server_killed_mid_command_then_reconnect() {
    let Some(s) = shared() else { return };
    if !std::path::Path::new("/usr/sbin/sshd").exists() && common::require_program("sshd").is_none()
    {
        return;
    }
    let mut sshd = PrivateSshd::start(None);
    let port = sshd.port;
    let kh = sshd.known_hosts.clone();
    let runtime = rt();
    let pool = std::sync::Arc::new(SshPool::new(settings()));
    let t = target("h1", "127.0.0.1", port, &s.user, Some(&s.key), &kh);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let p = pool.clone();
    let t2 = t.clone();
    let task = runtime.spawn(async move {
        p.run_streaming(&t2, "echo started; sleep 60", Duration::from_secs(60), tx)
            .await
    });
    let first =
        runtime.block_on(async { tokio::time::timeout(Duration::from_secs(20), rx.recv()).await });
    assert!(
        matches!(first, Ok(Some(OutputChunk::Stdout(ref d))) if d == b"started\n"),
        "{first:?} / {}",
        sshd.log()
    );
    sshd.kill();
    let err = runtime
        .block_on(async { tokio::time::timeout(Duration::from_secs(30), task).await })
        .expect("the command noticed the dead server in time")
        .unwrap()
        .unwrap_err();
    assert_eq!(err.problem, SshProblem::Unreachable, "{err}");
    assert!(err.message.contains("connection lost"), "{err}");

    // While down: refused, quickly.
    let err = runtime.block_on(pool.run(&t, "true")).unwrap_err();
    assert_eq!(err.problem, SshProblem::Unreachable, "{err}");

    // Back up: the pool reconnects (after its backoff).
    sshd.restart();
    let out = runtime.block_on(async {
        let end = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            match pool.run(&t, "echo back").await {
                Ok(o) => break Ok(o),
                Err(e) if tokio::time::Instant::now() > end => break Err(e),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
    assert_eq!(out.unwrap().stdout_lossy(), "back\n");
    assert_eq!(
        pool.state("h1"),
        homeinfra_tui::sources::ssh::ConnState::Connected
    );
}

#[test]
fn a_host_known_only_by_its_rsa_key_is_accepted() {
    let Some(s) = shared() else { return };
    let dir = tempfile::tempdir().unwrap();
    let rsa = dir.path().join("host_rsa");
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "rsa", "-b", "2048", "-N", "", "-f"])
        .arg(&rsa)
        .status()
        .unwrap();
    assert!(st.success());
    // The server has an ed25519 and an RSA host key; known_hosts only the RSA one.
    let sshd = PrivateSshd::start_with(None, &format!("HostKey {}\n", rsa.display()));
    let pubkey = std::fs::read_to_string(dir.path().join("host_rsa.pub")).unwrap();
    let mut p = pubkey.split_whitespace();
    let kh = dir.path().join("known_hosts");
    std::fs::write(
        &kh,
        format!(
            "[127.0.0.1]:{} {} {}\n",
            sshd.port,
            p.next().unwrap(),
            p.next().unwrap()
        ),
    )
    .unwrap();
    let out = rt().block_on(async {
        let pool = SshPool::new(settings());
        let t = target("h1", "127.0.0.1", sshd.port, &s.user, Some(&s.key), &kh);
        pool.run(&t, "echo rsa-ok").await
    });
    assert_eq!(out.unwrap().stdout_lossy(), "rsa-ok\n");
}

#[test]
fn concurrency_is_bounded_across_hosts() {
    let Some(s) = shared() else { return };
    let dir = shared_dir();
    let go = dir.path().join("go");
    let second = dir.path().join("second-ran");
    {
        use std::os::unix::fs::PermissionsExt;
        // The remote user writes the marker.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    rt().block_on(async {
        let mut st = settings();
        st.max_concurrency = 1;
        let pool = std::sync::Arc::new(SshPool::new(st));
        // Two "hosts" (ids) on the same server: the bound is across hosts.
        let t1 = target("h1", &s.host, s.port, &s.user, Some(&s.key), &s.known_hosts);
        let t2 = target("h2", &s.host, s.port, &s.user, Some(&s.key), &s.known_hosts);
        let (tx, mut rx) = mpsc::unbounded_channel();
        let p = pool.clone();
        let cmd1 = format!(
            "echo started; while [ ! -e {} ]; do sleep 0.05; done",
            go.display()
        );
        let first = tokio::spawn(async move {
            p.run_streaming(&t1, &cmd1, Duration::from_secs(30), tx)
                .await
        });
        let started = tokio::time::timeout(Duration::from_secs(20), rx.recv()).await;
        assert!(
            matches!(started, Ok(Some(OutputChunk::Stdout(_)))),
            "{started:?}"
        );
        let p = pool.clone();
        let cmd2 = format!("touch {}", second.display());
        let other = tokio::spawn(async move { p.run(&t2, &cmd2).await });
        // While the first command holds the only slot, the second does not run.
        tokio::time::sleep(Duration::from_millis(800)).await;
        assert!(
            !second.exists(),
            "the second command ran despite max_concurrency = 1"
        );
        assert!(!other.is_finished());
        std::fs::write(&go, "").unwrap();
        first.await.unwrap().unwrap();
        other.await.unwrap().unwrap();
        assert!(second.exists());
    });
}

#[test]
fn passphrase_given_once_unlocks_a_protected_key() {
    let Some(s) = shared() else { return };
    let dir = shared_dir();
    let key = dir.path().join("id_locked");
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "correct horse", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(st.success());
    // The private server accepts this key from a file the test owns (readable by operator).
    let ak = dir.path().join("authorized_keys");
    std::fs::copy(dir.path().join("id_locked.pub"), &ak).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&ak, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let sshd = PrivateSshd::start_with(
        None,
        &format!("StrictModes no\nAuthorizedKeysFile {}\n", ak.display()),
    );
    let t = target(
        "h1",
        "127.0.0.1",
        sshd.port,
        &s.user,
        Some(&key),
        &sshd.known_hosts,
    );
    rt().block_on(async {
        let pool = SshPool::new(settings());
        let err = pool.run(&t, "true").await.unwrap_err();
        assert_eq!(err.problem, SshProblem::AuthFailed, "{err}");
        assert_eq!(err.locked_keys, vec![key.clone()]);

        pool.set_passphrase(&key, "wrong".into());
        let err = pool.run(&t, "true").await.unwrap_err();
        assert_eq!(err.locked_keys, vec![key.clone()], "{err}");
        assert!(err.message.contains("cannot unlock"), "{err}");
        assert!(
            !err.message.contains("wrong"),
            "the passphrase leaked: {err}"
        );

        pool.set_passphrase(&key, "correct horse".into());
        let out = pool.run(&t, "echo unlocked").await.expect("unlocked");
        assert_eq!(out.stdout_lossy(), "unlocked\n");
    });
}

#[test]
fn proxy_jump_through_a_jump_host() {
    let Some(s) = shared() else { return };
    // The jump host logs forwarded connections at DEBUG1.
    let mut jump_sshd = PrivateSshd::start_with(None, "LogLevel DEBUG1\nAllowTcpForwarding yes\n");
    let jump = target(
        "jump",
        "127.0.0.1",
        jump_sshd.port,
        &s.user,
        Some(&s.key),
        &jump_sshd.known_hosts,
    );
    let mut t = target("h1", &s.host, s.port, &s.user, Some(&s.key), &s.known_hosts);
    t.jump = Some(Box::new(jump));
    let runtime = rt();
    let pool = SshPool::new(settings());
    let out = runtime
        .block_on(pool.run(&t, "echo through-the-jump"))
        .expect("via jump");
    assert_eq!(out.stdout_lossy(), "through-the-jump\n");
    let log = jump_sshd.log();
    assert!(
        log.contains("direct-tcpip") && log.contains(&format!("port {}", s.port)),
        "the jump host did not forward: {log}"
    );

    // The jump host dies: the connection through it is gone, with a clear error.
    jump_sshd.kill();
    let err = runtime
        .block_on(async {
            // The session notices the dead jump at once or on the next channel.
            let mut last = None;
            for _ in 0..50 {
                match pool.run(&t, "true").await {
                    Ok(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                    Err(e) => {
                        last = Some(e);
                        break;
                    }
                }
            }
            last
        })
        .expect("an error once the jump host is gone");
    assert_eq!(err.problem, SshProblem::Unreachable, "{err}");
    assert!(err.message.contains("jump host"), "{err}");
}

#[test]
fn a_hung_server_is_detected_and_the_host_recovers() {
    let Some(s) = shared() else { return };
    let sshd = PrivateSshd::start(None);
    let t = target(
        "h1",
        "127.0.0.1",
        sshd.port,
        &s.user,
        Some(&s.key),
        &sshd.known_hosts,
    );
    let runtime = rt();
    let mut st = settings();
    st.keepalive = Some(Duration::from_secs(1));
    st.connect_timeout = Duration::from_secs(2);
    let pool = SshPool::new(st);
    assert!(runtime.block_on(pool.run(&t, "true")).unwrap().success());
    // The server stops answering (processes stopped, TCP still open).
    sshd.signal_all(libc::SIGSTOP);
    let r = runtime.block_on(async {
        tokio::time::timeout(
            Duration::from_secs(30),
            pool.run_with_stdin(&t, "true", None, Duration::from_secs(60)),
        )
        .await
    });
    let err = r.expect("bounded by keepalive/connect timeouts, not the 60 s command timeout");
    let err = err.unwrap_err();
    assert_eq!(err.problem, SshProblem::Unreachable, "{err}");
    // It answers again: the pool reconnects.
    sshd.signal_all(libc::SIGCONT);
    let out = runtime.block_on(async {
        let end = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            match pool.run(&t, "echo alive").await {
                Ok(o) => break Ok(o),
                Err(e) if tokio::time::Instant::now() > end => break Err(e),
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    });
    assert_eq!(out.unwrap().stdout_lossy(), "alive\n");
}
