//! `config init`, `config check`, `config schema` as a user runs them, and the config fixtures
//! (tests/fixtures/config): every valid one is accepted, every invalid one refused with its
//! expected message (file:line:key), the README's examples parse, and `config init`'s output
//! and the schema agree with each other.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(dir: &Path, args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_homeinfra-tui"))
        .args(args)
        .current_dir(dir)
        .env("HOME", dir)
        .env("XDG_CONFIG_HOME", dir.join("cfg"))
        .env("XDG_STATE_HOME", dir.join("state"))
        .env_remove("KUBECONFIG")
        .output()
        .unwrap();
    let r = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert!(!r.stderr.contains("panicked"), "panic: {}", r.stderr);
    r
}

fn fixtures(kind: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/config")
        .join(kind);
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    v.sort();
    assert!(!v.is_empty(), "no fixtures in {}", dir.display());
    v
}

fn schema(dir: &Path) -> Value {
    let r = run(dir, &["config", "schema"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    serde_json::from_str(&r.stdout).unwrap()
}

fn toml_to_json(text: &str) -> Value {
    let t: toml::Table = toml::from_str(text).unwrap();
    serde_json::to_value(t).unwrap()
}

#[test]
fn valid_fixtures_are_accepted_and_printed_whole() {
    let d = tempfile::tempdir().unwrap();
    for f in fixtures("valid") {
        let r = run(d.path(), &["config", "check", f.to_str().unwrap()]);
        assert_eq!(r.code, 0, "{}: {}", f.display(), r.stderr);
        assert!(r.stderr.contains(": ok"), "{}", r.stderr);
        // The effective config: every section, defaults included, and it parses again.
        for section in [
            "[kubernetes]",
            "[etcd]",
            "[ssh]",
            "[upgrade]",
            "[thresholds]",
        ] {
            assert!(r.stdout.contains(section), "{}: no {section}", f.display());
        }
        let again = d.path().join("effective.toml");
        std::fs::write(&again, &r.stdout).unwrap();
        let r2 = run(d.path(), &["config", "check", again.to_str().unwrap()]);
        assert_eq!(
            r2.code, 0,
            "the printed config does not check: {}",
            r2.stderr
        );
        assert_eq!(
            r2.stdout.lines().skip(1).collect::<Vec<_>>(),
            r.stdout.lines().skip(1).collect::<Vec<_>>()
        );
    }
}

#[test]
fn invalid_fixtures_are_refused_with_their_message() {
    let d = tempfile::tempdir().unwrap();
    for f in fixtures("invalid") {
        let expected = std::fs::read_to_string(f.with_extension("expected"))
            .unwrap_or_else(|_| panic!("{} has no .expected file", f.display()));
        let name = f.file_name().unwrap().to_str().unwrap();
        std::fs::copy(&f, d.path().join(name)).unwrap();
        let r = run(d.path(), &["config", "check", name]);
        assert_eq!(r.code, 1, "{name} was accepted: {}", r.stdout);
        assert!(
            r.stderr.contains(expected.trim()),
            "{name}: expected\n  {}\ngot\n  {}",
            expected.trim(),
            r.stderr.trim()
        );
        assert!(
            !r.stderr.contains("hunter2"),
            "a secret reached the message: {}",
            r.stderr
        );
        // The dashboard and `check` refuse it with the same message.
        let c = run(
            d.path(),
            &[
                "--offline",
                "--hosts",
                "none.json",
                "--config",
                name,
                "check",
            ],
        );
        assert_eq!(c.code, 3);
        assert!(c.stderr.contains(expected.trim()), "{name}: {}", c.stderr);
    }
}

#[test]
fn a_secret_in_a_url_is_redacted_when_printed() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("c.toml"),
        "[mimir]\nurl = \"https://grafana:hunter2@mimir.example.org/prometheus\"\n",
    )
    .unwrap();
    let r = run(d.path(), &["config", "check", "c.toml"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!r.stdout.contains("hunter2"), "{}", r.stdout);
    assert!(
        r.stdout
            .contains("https://REDACTED@mimir.example.org/prometheus"),
        "{}",
        r.stdout
    );
}

#[test]
fn check_without_a_file_reads_the_default_or_says_defaults_apply() {
    let d = tempfile::tempdir().unwrap();
    let r = run(d.path(), &["config", "check"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("no such file: defaults apply"),
        "{}",
        r.stderr
    );
    let cfg = d.path().join("cfg/homeinfra-tui");
    std::fs::create_dir_all(&cfg).unwrap();
    std::fs::write(cfg.join("config.toml"), "[ssh]\nuser = \"ops\"\n").unwrap();
    let r = run(d.path(), &["config", "check"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("user = \"ops\""), "{}", r.stdout);
}

/// Every key of the schema has a description: `config init` has a line of why for each.
#[test]
fn every_key_is_documented() {
    let d = tempfile::tempdir().unwrap();
    let s = schema(d.path());
    let mut missing = Vec::new();
    let mut check = |name: &str, props: &serde_json::Map<String, Value>| {
        for (k, v) in props {
            if v.get("description").is_none() {
                missing.push(format!("{name}.{k}"));
            }
        }
    };
    check("config", s["properties"].as_object().unwrap());
    for (name, def) in s["$defs"].as_object().unwrap() {
        if let Some(p) = def.get("properties").and_then(Value::as_object) {
            check(name, p);
        }
    }
    assert!(
        missing.is_empty(),
        "keys without a doc comment: {missing:?}"
    );
}

#[test]
fn init_output_checks_and_is_valid_against_the_schema() {
    let d = tempfile::tempdir().unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("hosts.json"),
        d.path().join("hosts.json"),
    )
    .unwrap();
    // A kubeconfig whose current context `config init` should find.
    std::fs::write(
        d.path().join("kubeconfig"),
        "apiVersion: v1\nkind: Config\ncurrent-context: homelab\ncontexts:\n- name: homelab\n  context: {cluster: c, user: u}\nclusters:\n- name: c\n  cluster: {server: 'https://127.0.0.1:1'}\nusers:\n- name: u\n  user: {token: x}\n",
    )
    .unwrap();
    let r = run(
        d.path(),
        &["--offline", "--kubeconfig", "kubeconfig", "config", "init"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let text = r.stdout;
    // Filled from what it found.
    assert!(text.contains("context = \"homelab\""), "{text}");
    assert!(text.contains("https://192.0.2.11:2379"), "{text}");
    // Every section, each key with a comment line above it.
    for section in [
        "kubernetes",
        "etcd",
        "mimir",
        "loki",
        "ssh",
        "nix",
        "upgrade",
        "ui",
        "thresholds",
    ] {
        assert!(
            text.contains(&format!("\n[{section}]\n")),
            "no [{section}]: {text}"
        );
    }
    // It checks as a config ...
    std::fs::write(d.path().join("init.toml"), &text).unwrap();
    let c = run(d.path(), &["config", "check", "init.toml"]);
    assert_eq!(c.code, 0, "{}", c.stderr);
    // ... and the schema accepts it, and refuses a broken one.
    let s = schema(d.path());
    let validator = jsonschema::validator_for(&s).expect("the schema is a valid JSON Schema");
    let doc = toml_to_json(&text);
    let errors: Vec<String> = validator.iter_errors(&doc).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:?}");
    let bad = toml_to_json("[upgrade]\nreboot = \"sometimes\"\n[ssh]\nprot = 1\n");
    assert!(!validator.is_valid(&bad));
    // Every valid fixture is valid against the schema too.
    for f in fixtures("valid") {
        let doc = toml_to_json(&std::fs::read_to_string(&f).unwrap());
        let errors: Vec<String> = validator.iter_errors(&doc).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{}: {errors:?}", f.display());
    }
}

/// Every ```toml block of the README that configures something is a valid config.
#[test]
fn readme_config_examples_parse() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let d = tempfile::tempdir().unwrap();
    let mut n = 0;
    let mut rest = readme.as_str();
    while let Some(i) = rest.find("```toml\n") {
        let block = &rest[i + 8..];
        let end = block.find("```").unwrap();
        let text = &block[..end];
        rest = &block[end..];
        // Theme files are TOML too, but not configs: they say so in their first line.
        if text.starts_with("# theme") {
            continue;
        }
        n += 1;
        std::fs::write(d.path().join("readme.toml"), text).unwrap();
        let r = run(d.path(), &["config", "check", "readme.toml"]);
        assert_eq!(
            r.code, 0,
            "README example does not check:\n{text}\n{}",
            r.stderr
        );
    }
    assert!(n >= 1, "no config example found in the README");
}
