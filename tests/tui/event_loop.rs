//! The event loop awaits nothing but its inbox: while a slow upgrade start is under way (a
//! fake whose start never completes), keys still take effect and frames still come. Driven
//! through the real loop, registry and renderer; no timing is asserted (a generous bound only
//! turns a hang into a failure).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use futures::future::BoxFuture;
use homeinfra_tui::app::{App, Keymap, LayoutFacts, Msg};
use homeinfra_tui::base::Env;
use homeinfra_tui::config::Config;
use homeinfra_tui::inventory::Role;
use homeinfra_tui::model::{Snapshot, Sourced};
use homeinfra_tui::operations::upgrade::{Plan, PlanEntry};
use homeinfra_tui::tasks::upgrade::{RunLink, UpgradeBackend};
use homeinfra_tui::tasks::{Planned, Registry, Setup};
use homeinfra_tui::tui::{Screen, event_loop};
use homeinfra_tui::ui::{self, Theme};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use tokio::sync::mpsc;

/// Plans at once; starting a run never finishes (like kube and SSH clients that take long).
struct SlowStart {
    calls: Arc<AtomicUsize>,
}

impl UpgradeBackend for SlowStart {
    fn plan(&self, _only: Vec<String>) -> BoxFuture<'static, Result<Planned, String>> {
        Box::pin(async {
            Ok(Planned {
                plan: Plan {
                    run_id: "run-1".into(),
                    flake: "path:/infra".into(),
                    kind: Default::default(),
                    entries: vec![PlanEntry {
                        host: "satellite_1".into(),
                        node: "sat1".into(),
                        role: Role::Agent,
                        etcd_leader: false,
                    }],
                },
                verdicts: vec![],
                lock: None,
                forecast: None,
                notes: Vec::new(),
            })
        })
    }

    fn start(&self, _plan: Plan) -> BoxFuture<'static, Result<RunLink, String>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Box::pin(futures::future::pending())
    }
}

/// Frames as text, to the test; suspends and resumes counted.
struct Frames {
    term: Terminal<TestBackend>,
    theme: Theme,
    tx: mpsc::UnboundedSender<String>,
    suspends: Arc<AtomicUsize>,
    resumes: Arc<AtomicUsize>,
}

impl Screen for Frames {
    fn suspend(&mut self) -> color_eyre::eyre::Result<()> {
        self.suspends.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    fn resume(&mut self) -> color_eyre::eyre::Result<()> {
        self.resumes.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    fn draw(&mut self, app: &App) -> color_eyre::eyre::Result<LayoutFacts> {
        let mut facts = None;
        self.term
            .draw(|f| facts = Some(ui::render(f, app, &self.theme)))?;
        let buf = self.term.backend().buffer();
        let area = buf.area;
        // Which suspends and resumes came before this frame.
        let mut text = format!(
            "[suspends {} resumes {}]\n",
            self.suspends.load(Ordering::SeqCst),
            self.resumes.load(Ordering::SeqCst)
        );
        for y in 0..area.height {
            for x in 0..area.width {
                text.push_str(buf[(x, y)].symbol());
            }
            text.push('\n');
        }
        let _ = self.tx.send(text);
        facts.ok_or_else(|| color_eyre::eyre::eyre!("no frame"))
    }
}

async fn frame_with(rx: &mut mpsc::UnboundedReceiver<String>, needle: &str) -> String {
    let wait = async {
        let mut last = String::new();
        while let Some(f) = rx.recv().await {
            if f.contains(needle) {
                return f;
            }
            last = f;
        }
        panic!("frames ended without {needle:?}; last:\n{last}");
    };
    match tokio::time::timeout(Duration::from_secs(20), wait).await {
        Ok(f) => f,
        Err(_) => panic!("no frame showed {needle:?}"),
    }
}

fn key(c: KeyCode) -> Msg {
    Msg::Key(KeyEvent::new(c, KeyModifiers::NONE))
}

fn ctrl_z() -> Msg {
    Msg::Key(KeyEvent::new(KeyCode::Char('z'), KeyModifiers::CONTROL))
}

/// The offline app of the example inventory and its environment.
fn offline_app() -> (App, Env) {
    let text = std::fs::read_to_string("hosts.json").unwrap();
    let inv = homeinfra_tui::inventory::parse(Path::new("hosts.json"), &text).unwrap();
    let mut env = Env::new(Config::default(), inv.clone());
    env.offline = true;
    let off = |n: &str| format!("{n}: offline (--offline) — no network");
    let snap = Snapshot {
        cluster: Sourced::not_configured(off("Kubernetes")),
        etcd: Sourced::not_configured(off("etcd")),
        mimir: Sourced::not_configured(off("Mimir")),
        loki: Sourced::not_configured(off("Loki")),
        hosts: Default::default(),
    };
    let app = App::new(
        inv,
        Config::default(),
        Keymap::default(),
        snap,
        "test".into(),
        false,
        jiff::Timestamp::from_second(1_700_000_000).unwrap(),
    );
    (app, env)
}

#[tokio::test]
async fn a_slow_upgrade_start_does_not_hold_up_keys_or_frames() {
    let (mut app, env) = offline_app();
    // As in the demo, whose simulated cluster lives in the dashboard's process.
    app.demo = true;
    let suspends = Arc::new(AtomicUsize::new(0));
    let calls = Arc::new(AtomicUsize::new(0));
    let (tx, inbox) = mpsc::channel::<Msg>(64);
    let (ftx, mut frames) = mpsc::unbounded_channel();
    let registry_tx = tx.clone();
    let suspends_seen = suspends.clone();
    let upgrades = SlowStart {
        calls: calls.clone(),
    };
    let looping = tokio::spawn(async move {
        let registry = Registry::spawn(
            Setup {
                env,
                writes: Some(homeinfra_tui::testing::writes()),
                upgrades: Arc::new(upgrades),
                sources: false,
            },
            registry_tx,
        );
        let mut screen = Frames {
            term: Terminal::new(TestBackend::new(120, 40)).unwrap(),
            theme: Theme::load(None, false).unwrap(),
            tx: ftx,
            suspends: suspends_seen,
            resumes: Default::default(),
        };
        event_loop(inbox, app, &registry, &mut screen).await
    });
    frame_with(&mut frames, "satellite_1").await;
    tx.send(key(KeyCode::Char('U'))).await.unwrap();
    frame_with(&mut frames, "Dry run: nothing has changed").await;
    tx.send(key(KeyCode::Char('y'))).await.unwrap();
    let q = frame_with(&mut frames, "Start the rolling upgrade of 1 node(s)?").await;
    assert!(
        q.contains("1. sat1 (agent) — reboot: decided after switch"),
        "{q}"
    );
    tx.send(key(KeyCode::Char('y'))).await.unwrap();
    frame_with(&mut frames, "starting the run").await;
    // Ctrl-Z would freeze the demo's cluster, and the run on it, with the dashboard: refused.
    tx.send(ctrl_z()).await.unwrap();
    frame_with(&mut frames, "Ctrl-Z refused").await;
    assert_eq!(suspends.load(Ordering::SeqCst), 0, "not suspended");
    // The start is under way and will never finish; the dashboard answers all the same.
    tx.send(key(KeyCode::Esc)).await.unwrap();
    for c in "/sat".chars() {
        tx.send(key(KeyCode::Char(c))).await.unwrap();
    }
    let f = frame_with(&mut frames, "/sat█").await;
    assert!(f.contains("(1/4) /sat"), "the filter applied:\n{f}");
    assert_eq!(calls.load(Ordering::SeqCst), 1, "the start was asked for");
    tx.send(key(KeyCode::Enter)).await.unwrap();
    tx.send(key(KeyCode::Char('q'))).await.unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(20), looping)
        .await
        .expect("the loop quits while the start still hangs");
    ended.unwrap().unwrap();
}

#[tokio::test]
async fn ctrl_z_suspends_and_sigcont_takes_the_terminal_back_with_a_whole_frame() {
    let (app, env) = offline_app();
    let suspends = Arc::new(AtomicUsize::new(0));
    let resumes = Arc::new(AtomicUsize::new(0));
    let (tx, inbox) = mpsc::channel::<Msg>(64);
    let (ftx, mut frames) = mpsc::unbounded_channel();
    let registry_tx = tx.clone();
    let (s, r) = (suspends.clone(), resumes.clone());
    let looping = tokio::spawn(async move {
        let registry = Registry::spawn(
            Setup {
                env,
                writes: Some(homeinfra_tui::testing::writes()),
                upgrades: Arc::new(SlowStart {
                    calls: Default::default(),
                }),
                sources: false,
            },
            registry_tx,
        );
        let mut screen = Frames {
            term: Terminal::new(TestBackend::new(120, 40)).unwrap(),
            theme: Theme::load(None, false).unwrap(),
            tx: ftx,
            suspends: s,
            resumes: r,
        };
        event_loop(inbox, app, &registry, &mut screen).await
    });
    frame_with(&mut frames, "satellite_1").await;
    tx.send(ctrl_z()).await.unwrap();
    // Back from the stop: the dashboard drawn again.
    let f = frame_with(&mut frames, "[suspends 1 resumes 0]").await;
    assert!(f.contains("satellite_1"), "{f}");
    tx.send(Msg::Continued).await.unwrap();
    let f = frame_with(&mut frames, "[suspends 1 resumes 1]").await;
    assert!(f.contains("satellite_1"), "{f}");
    tx.send(key(KeyCode::Char('q'))).await.unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(20), looping)
        .await
        .expect("the loop still quits");
    ended.unwrap().unwrap();
}
