//! What each fuzz target asserts about one input, written against the main crate's public API
//! so that the same checks run twice: under libFuzzer (tests/fuzz/fuzz_targets/*, one call per
//! generated input) and in the normal suite (tests/offline/fuzz_corpus.rs, every file of the
//! committed, minimised corpus and every crash ever found — no nightly toolchain needed).
//!
//! A check panics when the code under test breaks a promise: a panic inside the parser, a value
//! that does not survive its own serialization, a result a later stage chokes on. Rejecting the
//! input with an error is always fine — hostile input must be refused, never crash us.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use homeinfra_tui::app::keymap::{Keymap, Layer};
use homeinfra_tui::config::{self, KeyOverride};
use homeinfra_tui::inventory::{self, Inventory};
use homeinfra_tui::model::etcd::EtcdMember;
use homeinfra_tui::model::metrics::MetricsState;
use homeinfra_tui::operations::closure_diff::{classify, parse, render};
use homeinfra_tui::operations::upgrade::journal;
use homeinfra_tui::probes::facts;
use homeinfra_tui::sources::etcd::metrics as etcd_metrics;
use homeinfra_tui::sources::loki;
use homeinfra_tui::sources::mimir::{self, DEFAULT_QUERIES, HostIndex};
use homeinfra_tui::ui::theme::Theme;

/// A target's check of one input.
pub type Check = fn(&[u8]);

/// Every target: its name (the directory of its corpus) and its check.
pub const TARGETS: &[(&str, Check)] = &[
    ("diff_closures", diff_closures),
    ("inventory", inventory),
    ("config", config),
    ("theme", theme),
    ("keymap", keymap),
    ("host_facts", host_facts),
    ("etcd_metrics", etcd_metrics),
    ("prometheus_response", prometheus_response),
    ("loki_response", loki_response),
    ("journal", journal),
];

fn text(data: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(data)
}

/// `nix store diff-closures` output: the parser never panics, never drops a line, and the
/// classifier and text renderer accept whatever it produced.
pub fn diff_closures(data: &[u8]) {
    let text = text(data);
    let parsed = parse::parse(&text);
    let non_blank = text
        .lines()
        .filter(|l| !parse::strip_ansi(l).trim().is_empty())
        .count();
    assert_eq!(parsed.lines.len() + parsed.unparsed.len(), non_blank);
    for l in &parsed.lines {
        assert!(!l.name.is_empty() && !l.name.contains(char::is_whitespace));
        assert!(
            l.old
                .iter()
                .chain(&l.new)
                .all(|v| !v.contains(char::is_whitespace))
        );
        assert!(!(l.old.is_empty() && l.new.is_empty()) || l.size_delta.is_some());
        // A parsed line parses again to itself.
        assert_eq!(parse::parse_line(&l.line).as_ref(), Some(l));
    }
    let n = parsed.lines.len();
    let diff = classify::classify(parsed, classify::Context::default());
    assert_eq!(diff.totals.changes, n);
    assert_eq!(diff.sections.len(), n);
    let _ = render::to_text(&diff, true);
}

/// `hosts.json`: parse and validate; an accepted inventory survives its own JSON form.
pub fn inventory(data: &[u8]) {
    let path = Path::new("hosts.json");
    let Ok(inv) = inventory::parse(path, &text(data)) else {
        return;
    };
    assert!(!inv.hosts.is_empty(), "an accepted inventory has hosts");
    let ids: BTreeSet<&str> = inv.hosts.iter().map(|h| h.id.as_str()).collect();
    assert_eq!(ids.len(), inv.hosts.len(), "host ids are unique");
    for h in &inv.hosts {
        assert!(inv.host(&h.id).is_some());
        let _ = h.ssh_address();
    }
    let json = serde_json::to_string(&inv.to_json()).expect("an inventory serializes");
    let again = inventory::parse(path, &json)
        .unwrap_or_else(|e| panic!("an accepted inventory's own JSON is refused: {e}\n{json}"));
    assert_eq!(
        again.hosts, inv.hosts,
        "the inventory survives its JSON form"
    );
}

/// `config.toml`: parse; an accepted config survives its own TOML form and its key overrides
/// and queries are either used or refused with a message.
pub fn config(data: &[u8]) {
    let path = Path::new("config.toml");
    let Ok(cfg) = config::parse(path, &text(data)) else {
        return;
    };
    let toml = toml::to_string(&cfg).expect("a config serializes");
    let again = config::parse(path, &toml)
        .unwrap_or_else(|e| panic!("an accepted config's own TOML is refused: {e}\n{toml}"));
    assert_eq!(again, cfg, "the config survives its TOML form");
    if let Ok(km) = Keymap::with_overrides(&cfg.ui.keys) {
        use_keymap(&km);
    }
    let _ = mimir::effective_queries(&cfg.mimir);
}

/// A theme file: parsed or refused; both colour modes.
pub fn theme(data: &[u8]) {
    let t = text(data);
    let path = Path::new("themes/fuzz.toml");
    let colour = Theme::parse(path, &t, false);
    let mono = Theme::parse(path, &t, true);
    assert_eq!(
        colour.is_ok(),
        mono.is_ok(),
        "colour choice decides nothing"
    );
    if let Err(e) = colour {
        assert!(!e.is_empty(), "a refused theme says why");
    }
}

/// `[ui.keys]` overrides (the table's TOML): applied or refused; an applied keymap answers
/// every question the UI asks of it.
pub fn keymap(data: &[u8]) {
    let Ok(overrides) = toml::from_str::<BTreeMap<String, KeyOverride>>(&text(data)) else {
        return;
    };
    match Keymap::with_overrides(&overrides) {
        Ok(km) => use_keymap(&km),
        Err(e) => assert!(!e.is_empty(), "a refused override says why"),
    }
}

fn use_keymap(km: &Keymap) {
    let _ = km.help_rows();
    let _ = km.footer();
    for l in Layer::ALL {
        let _ = km.help_rows_in(l);
        let _ = km.footer_in(l);
        let actions: Vec<_> = km.bindings(l).iter().map(|b| b.action).collect();
        for a in &actions {
            let _ = km.keys_for(l, *a);
        }
        let _ = km.hint_line(l, &actions);
    }
}

/// The host facts script's output: parsed (never refused: what cannot be read is unknown), and
/// what was read renders to a block that reads back the same way.
pub fn host_facts(data: &[u8]) {
    let f = facts::parse(&text(data));
    let once = facts::render(&f);
    let twice = facts::render(&facts::parse(&once));
    assert_eq!(twice, once, "the rendered facts read back as they were");
}

/// An etcd member's `/metrics`: parsed, and two scrapes in a row reduce to figures that are
/// finite and not negative.
pub fn etcd_metrics(data: &[u8]) {
    let t = text(data);
    let scrape = etcd_metrics::parse(&t);
    let _ = scrape.wal_fsync.quantile(0.99);
    let mut history = etcd_metrics::MemberHistory::default();
    let t0 = jiff::Timestamp::from_second(1_700_000_000).expect("a valid timestamp");
    let t1 = jiff::Timestamp::from_second(1_700_000_030).expect("a valid timestamp");
    let _ = history.observe(scrape.clone(), t0, 600);
    let m = history.observe(scrape, t1, 600);
    for v in [m.wal_fsync_p99_ms, m.backend_commit_p99_ms]
        .into_iter()
        .flatten()
    {
        assert!(v.is_finite() && v >= 0.0, "a p99 is a duration: {v}");
    }
    m.apply(&mut EtcdMember::default());
}

/// The inventory the response checks map series to.
fn fixture_inventory() -> Inventory {
    const HOSTS: &str = r#"{
      "cp1": {"hostname":"cp1","system":"x86_64-linux","profile":"server","role":"init",
        "region":"home","zone":"a","ip":"127.0.0.11","gateway":"127.0.0.1","maskLength":8},
      "sat1": {"hostname":"sat1","system":"x86_64-linux","profile":"server","role":"agent",
        "region":"home","zone":"b","ip":"127.0.0.12","gateway":"127.0.0.1","maskLength":8}
    }"#;
    inventory::parse(Path::new("hosts.json"), HOSTS).expect("the fixture inventory is valid")
}

/// A Prometheus query answer (the `data` of an `/api/v1/query[_range]` response): decoded as
/// the client does, then folded into the metrics state as every query kind.
pub fn prometheus_response(data: &[u8]) {
    let Ok(answer) = serde_json::from_slice::<prometheus_http_query::response::PromqlResult>(data)
    else {
        return;
    };
    let (result, _) = answer.into_inner();
    let inv = fixture_inventory();
    let index = HostIndex::new(&inv);
    for def in DEFAULT_QUERIES {
        let mut state = MetricsState::default();
        let mut unmapped = BTreeSet::new();
        mimir::apply(
            &mut state,
            *def,
            result.clone(),
            &index,
            "instance",
            1_700_000_000,
            &mut unmapped,
        );
        let _ = state.host("cp1");
    }
}

/// A Loki `query_range` answer: the first two bytes are the HTTP status, the rest the body.
pub fn loki_response(data: &[u8]) {
    let (status, body) = match data {
        [a, b, rest @ ..] => (u16::from_be_bytes([*a, *b]), rest),
        _ => (200, data),
    };
    match loki::parse_response(status, body) {
        Ok(lines) => {
            for l in &lines {
                let _ = l.timestamp();
            }
        }
        Err(e) => assert!(!e.is_empty(), "a refused answer says why"),
    }
}

/// An upgrade journal: read (a torn last line tolerated), every record survives its own JSON
/// form, and the run is summarized or refused.
pub fn journal(data: &[u8]) {
    let path = Path::new("runs/fuzz.jsonl");
    let Ok(records) = journal::parse(path, &text(data)) else {
        return;
    };
    for r in &records {
        let line = serde_json::to_string(r).expect("a record serializes");
        let back: journal::Record = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("a record's own JSON is refused: {e}\n{line}"));
        assert_eq!(&back, r, "a record survives its JSON form");
    }
    if let Ok(s) = journal::summarize_records(path, records)
        && let Some((i, _)) = s.resume_at
    {
        assert!(i < s.plan.entries.len(), "resumes at a node of the plan");
    }
}
