use super::*;
use crossterm::event::{KeyCode, KeyEventKind, KeyModifiers};

fn ev(code: KeyCode, m: KeyModifiers) -> KeyEvent {
    KeyEvent {
        code,
        modifiers: m,
        kind: KeyEventKind::Press,
        state: crossterm::event::KeyEventState::NONE,
    }
}

fn flat(pairs: &[(&str, &str)]) -> BTreeMap<String, KeyOverride> {
    pairs
        .iter()
        .map(|(k, a)| (k.to_string(), KeyOverride::Action(a.to_string())))
        .collect()
}

fn layer(o: &mut BTreeMap<String, KeyOverride>, name: &str, pairs: &[(&str, &str)]) {
    o.insert(
        name.to_string(),
        KeyOverride::Layer(
            pairs
                .iter()
                .map(|(k, a)| (k.to_string(), a.to_string()))
                .collect(),
        ),
    );
}

#[test]
fn the_embedded_table_parses_and_every_action_has_a_layer() {
    let km = Keymap::parse(DEFAULTS).unwrap();
    assert_eq!(km, Keymap::default());
    for a in Action::ALL {
        assert!(
            Layer::ALL.iter().any(|l| km.has(*l, *a)),
            "{a:?} is bound in no layer"
        );
    }
}

#[test]
fn default_bindings() {
    let km = Keymap::default();
    assert_eq!(
        km.action_for(&ev(KeyCode::Char('q'), KeyModifiers::NONE)),
        Some(Action::Quit)
    );
    assert_eq!(
        km.action_for(&ev(KeyCode::Char('c'), KeyModifiers::CONTROL)),
        Some(Action::Quit)
    );
    assert_eq!(
        km.action_for(&ev(KeyCode::Char('G'), KeyModifiers::SHIFT)),
        Some(Action::Bottom)
    );
    assert_eq!(
        km.action_for(&ev(KeyCode::BackTab, KeyModifiers::SHIFT)),
        Some(Action::FocusPrev)
    );
    assert_eq!(
        km.action_for(&ev(KeyCode::Char('7'), KeyModifiers::NONE)),
        Some(Action::FocusFindings)
    );
    assert_eq!(
        km.action_for(&ev(KeyCode::Char('x'), KeyModifiers::NONE)),
        None
    );
}

#[test]
fn layers_give_keys_their_meaning() {
    let km = Keymap::default();
    let r = ev(KeyCode::Char('r'), KeyModifiers::NONE);
    let enter = ev(KeyCode::Enter, KeyModifiers::NONE);
    let y = ev(KeyCode::Char('y'), KeyModifiers::NONE);
    let q = ev(KeyCode::Char('q'), KeyModifiers::NONE);
    assert_eq!(km.lookup(Layer::Diff, &r), Some(Action::Refresh));
    assert_eq!(km.lookup(Layer::Upgrade, &y), Some(Action::Start));
    assert_eq!(km.lookup(Layer::Dashboard, &y), None);
    // a question knows only its yes; Enter is not one
    assert_eq!(km.lookup(Layer::Confirm, &y), Some(Action::Confirm));
    assert_eq!(km.lookup(Layer::Confirm, &enter), None);
    assert_eq!(km.lookup(Layer::Confirm, &q), None, "no fallback to quit");
    // the global keys hold in the views, not while typing
    assert_eq!(km.lookup(Layer::Diff, &q), Some(Action::Quit));
    assert_eq!(km.lookup(Layer::Input, &q), None);
    assert_eq!(km.lookup(Layer::Input, &enter), Some(Action::Submit));
}

#[test]
fn overrides_replace_and_unbind() {
    let o = flat(&[("x", "quit"), ("q", "none"), ("ctrl-r", "refresh")]);
    let km = Keymap::with_overrides(&o).unwrap();
    assert_eq!(
        km.action_for(&ev(KeyCode::Char('x'), KeyModifiers::NONE)),
        Some(Action::Quit)
    );
    assert_eq!(
        km.action_for(&ev(KeyCode::Char('q'), KeyModifiers::NONE)),
        None
    );
    assert_eq!(
        km.action_for(&ev(KeyCode::Char('r'), KeyModifiers::CONTROL)),
        Some(Action::Refresh)
    );
    // an entry of [ui.keys] holds in every layer that has the action
    assert_eq!(
        km.lookup(Layer::Diff, &ev(KeyCode::Char('r'), KeyModifiers::CONTROL)),
        Some(Action::Refresh)
    );
    let help = km.help_rows();
    assert!(help.contains(&("Ctrl-c x".to_string(), "quit")), "{help:?}");
}

#[test]
fn a_layer_table_changes_that_layer_and_its_hints_only() {
    let mut o = BTreeMap::new();
    layer(&mut o, "diff", &[("x", "export"), ("e", "none")]);
    layer(&mut o, "upgrade", &[("P", "pause")]);
    let km = Keymap::with_overrides(&o).unwrap();
    let x = ev(KeyCode::Char('x'), KeyModifiers::NONE);
    assert_eq!(km.lookup(Layer::Diff, &x), Some(Action::Export));
    assert_eq!(km.lookup(Layer::Dashboard, &x), None);
    let d = Keymap::default();
    assert_eq!(
        d.hint_line(Layer::Diff, &[Action::Back, Action::Export]),
        "Esc back · e export"
    );
    assert_eq!(
        km.hint_line(Layer::Diff, &[Action::Back, Action::Export]),
        "Esc back · x export"
    );
    assert_eq!(
        km.hint_line(Layer::Upgrade, &[Action::Pause]),
        "p pause",
        "the first key is the hint's"
    );
    let help = km.help_rows_in(Layer::Diff);
    assert_eq!(help[0], ("?".to_string(), "help"), "the global keys first");
    assert!(help.contains(&("x".to_string(), "export the diff as text")));
    assert!(!km.help_rows().iter().any(|(_, d)| d.contains("export")));
}

#[test]
fn bad_overrides_name_the_key() {
    let err = Keymap::with_overrides(&flat(&[("x", "explode")])).unwrap_err();
    assert!(
        err.starts_with("key \"ui.keys.x\": \"explode\" is not an action (actions: help, quit,"),
        "{err}"
    );
    let err = Keymap::with_overrides(&flat(&[("hyper-x", "quit")])).unwrap_err();
    assert!(
        err.starts_with("key \"ui.keys.hyper-x\": \"hyper-x\" is not a key"),
        "{err}"
    );
    let mut o = BTreeMap::new();
    layer(&mut o, "diff", &[("x", "cordon")]);
    let err = Keymap::with_overrides(&o).unwrap_err();
    assert!(
        err.starts_with(
            "key \"ui.keys.diff.x\": \"cordon\" is not an action of the diff layer (its actions: back,"
        ),
        "{err}"
    );
    let mut o = BTreeMap::new();
    layer(&mut o, "popup", &[("x", "quit")]);
    let err = Keymap::with_overrides(&o).unwrap_err();
    assert!(
        err.contains("\"popup\" is not a layer (layers: global,"),
        "{err}"
    );
}

#[test]
fn enter_can_never_say_yes_and_text_is_never_a_binding_while_typing() {
    let mut o = BTreeMap::new();
    layer(&mut o, "confirm", &[("enter", "confirm")]);
    let err = Keymap::with_overrides(&o).unwrap_err();
    assert!(err.contains("Enter cannot say yes to a question"), "{err}");
    let err = Keymap::with_overrides(&flat(&[("space", "confirm")])).unwrap_err();
    assert!(err.contains("Space cannot say yes"), "{err}");
    // another letter may (a keyboard layout)
    let mut o = BTreeMap::new();
    layer(&mut o, "confirm", &[("j", "confirm")]);
    let km = Keymap::with_overrides(&o).unwrap();
    let j = ev(KeyCode::Char('j'), KeyModifiers::NONE);
    assert_eq!(km.lookup(Layer::Confirm, &j), Some(Action::Confirm));
    let mut o = BTreeMap::new();
    layer(&mut o, "input", &[("x", "clear")]);
    let err = Keymap::with_overrides(&o).unwrap_err();
    assert!(err.contains("x is text in the input layer"), "{err}");
    // a flat entry skips the text field: K moves up in the tables, and is typed in a filter
    let km = Keymap::with_overrides(&flat(&[("K", "up")])).unwrap();
    let k = ev(KeyCode::Char('K'), KeyModifiers::SHIFT);
    assert_eq!(km.lookup(Layer::Dashboard, &k), Some(Action::Up));
    assert_eq!(km.lookup(Layer::Input, &k), None);
}

#[test]
fn key_names_round_trip() {
    for (s, shown) in [
        ("tab", "Tab"),
        ("ctrl-r", "Ctrl-r"),
        ("G", "G"),
        ("pgdn", "PgDn"),
        ("f5", "F5"),
        ("space", "Space"),
        ("backtab", "S-Tab"),
    ] {
        assert_eq!(Key::parse(s).unwrap().to_string(), shown);
    }
}

#[test]
fn footer_comes_from_the_table() {
    let f = Keymap::default().footer();
    assert_eq!(f[0], ("?".to_string(), "help"));
    assert!(f.contains(&("j/k".to_string(), "move")), "{f:?}");
    let input = Keymap::default().footer_in(Layer::Input);
    assert_eq!(
        input,
        vec![("Enter".to_string(), "keep"), ("Esc".to_string(), "clear")]
    );
}

#[test]
fn the_readme_example_of_rebinding_is_valid() {
    let readme = include_str!("../../../README.md");
    let from = readme
        .find("Rebind keys in the config")
        .expect("the README explains rebinding");
    let block = readme[from..]
        .split("```toml\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("with a TOML example");
    let config = crate::config::parse(std::path::Path::new("README.md"), block).expect("it parses");
    let km = Keymap::with_overrides(&config.ui.keys).expect("every key and action exists");
    let e = ev(KeyCode::Char('E'), KeyModifiers::SHIFT);
    assert_eq!(km.lookup(Layer::Diff, &e), Some(Action::Export));
    let j = ev(KeyCode::Char('j'), KeyModifiers::NONE);
    assert_eq!(km.lookup(Layer::Confirm, &j), Some(Action::Confirm));
}
