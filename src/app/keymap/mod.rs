//! Keys as one table of data: key → action, with help text. The same table renders the `?`
//! help overlay and the footer, and users rebind keys in `[ui.keys]`.

use std::collections::BTreeMap;
use std::fmt;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use serde::{Deserialize, Serialize};

/// Everything a key can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Quit,
    FocusNext,
    FocusPrev,
    FocusHosts,
    FocusNodes,
    FocusEtcd,
    FocusLonghorn,
    FocusMetrics,
    FocusLogs,
    FocusFindings,
    Up,
    Down,
    PageUp,
    PageDown,
    Top,
    Bottom,
    Open,
    Back,
    Filter,
    Help,
    Refresh,
    Diff,
    Export,
    Wrap,
    Cordon,
    Confirm,
    Upgrade,
    Pause,
    Abort,
    Skip,
}

impl Action {
    /// Every action, in the order the help overlay lists them.
    pub const ALL: &'static [Action] = &[
        Action::Help,
        Action::Quit,
        Action::FocusNext,
        Action::FocusPrev,
        Action::FocusHosts,
        Action::FocusNodes,
        Action::FocusEtcd,
        Action::FocusLonghorn,
        Action::FocusMetrics,
        Action::FocusLogs,
        Action::FocusFindings,
        Action::Up,
        Action::Down,
        Action::PageUp,
        Action::PageDown,
        Action::Top,
        Action::Bottom,
        Action::Open,
        Action::Back,
        Action::Filter,
        Action::Refresh,
        Action::Diff,
        Action::Export,
        Action::Wrap,
        Action::Cordon,
        Action::Confirm,
        Action::Upgrade,
        Action::Pause,
        Action::Abort,
        Action::Skip,
    ];

    pub fn description(self) -> &'static str {
        match self {
            Action::Quit => "quit",
            Action::FocusNext => "next pane",
            Action::FocusPrev => "previous pane",
            Action::FocusHosts => "Hosts pane",
            Action::FocusNodes => "Nodes pane",
            Action::FocusEtcd => "etcd pane",
            Action::FocusLonghorn => "Longhorn pane",
            Action::FocusMetrics => "Metrics pane",
            Action::FocusLogs => "Logs pane",
            Action::FocusFindings => "Findings pane",
            Action::Up => "move up",
            Action::Down => "move down",
            Action::PageUp => "page up",
            Action::PageDown => "page down",
            Action::Top => "first row",
            Action::Bottom => "last row",
            Action::Open => "open / jump to subject",
            Action::Back => "back / clear filter",
            Action::Filter => "filter this table",
            Action::Help => "help",
            Action::Refresh => "refresh / recompute diff",
            Action::Diff => "closure diff of host",
            Action::Export => "export the diff",
            Action::Wrap => "wrap log lines",
            Action::Cordon => "cordon / uncordon node",
            Action::Confirm => "yes (in a question)",
            Action::Upgrade => "rolling upgrade: plan, run",
            Action::Pause => "upgrade: pause / resume",
            Action::Abort => "upgrade: abort safely",
            Action::Skip => "upgrade: skip the node",
        }
    }

    /// Short label for the footer; `None` keeps the action out of the footer.
    pub fn footer_label(self) -> Option<&'static str> {
        match self {
            Action::Help => Some("help"),
            Action::Quit => Some("quit"),
            Action::FocusNext => Some("pane"),
            Action::Down => Some("move"),
            Action::Open => Some("open"),
            Action::Back => Some("back"),
            Action::Filter => Some("filter"),
            Action::Refresh => Some("refresh"),
            Action::Diff => Some("diff"),
            _ => None,
        }
    }

    fn parse(name: &str) -> Result<Action, String> {
        serde_json::from_value(serde_json::Value::String(name.to_string())).map_err(|_| {
            let names: Vec<String> = Action::ALL
                .iter()
                .filter_map(|a| serde_json::to_value(a).ok())
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect();
            format!(
                "\"{name}\" is not an action (actions: {}, or \"none\" to unbind)",
                names.join(", ")
            )
        })
    }
}

/// A key with its modifiers, e.g. `ctrl-c`, `G`, `tab`, `pgdn`, `f5`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key {
    pub code: KeyCode,
    pub ctrl: bool,
    pub alt: bool,
}

impl Key {
    pub const fn plain(code: KeyCode) -> Key {
        Key {
            code,
            ctrl: false,
            alt: false,
        }
    }

    pub const fn ch(c: char) -> Key {
        Key::plain(KeyCode::Char(c))
    }

    pub const fn ctrl(c: char) -> Key {
        Key {
            code: KeyCode::Char(c),
            ctrl: true,
            alt: false,
        }
    }

    /// The key of a terminal event. Shift is part of the character (`G`), so it is ignored.
    pub fn from_event(ev: &KeyEvent) -> Key {
        let code = match ev.code {
            KeyCode::Char(c) if ev.modifiers.contains(KeyModifiers::CONTROL) => {
                KeyCode::Char(c.to_ascii_lowercase())
            }
            other => other,
        };
        Key {
            code,
            ctrl: ev.modifiers.contains(KeyModifiers::CONTROL),
            alt: ev.modifiers.contains(KeyModifiers::ALT),
        }
    }

    /// Parse a key name as written in the config.
    pub fn parse(s: &str) -> Result<Key, String> {
        let mut ctrl = false;
        let mut alt = false;
        let mut rest = s;
        loop {
            let lower = rest.to_ascii_lowercase();
            if rest.chars().count() > 2
                && (lower.starts_with("ctrl-") || lower.starts_with("ctrl+"))
            {
                ctrl = true;
                rest = &rest[5..];
            } else if rest.chars().count() > 2
                && (lower.starts_with("alt-") || lower.starts_with("alt+"))
            {
                alt = true;
                rest = &rest[4..];
            } else {
                break;
            }
        }
        let lower = rest.to_ascii_lowercase();
        let code = match lower.as_str() {
            "tab" => KeyCode::Tab,
            "backtab" | "shift-tab" | "shift+tab" => KeyCode::BackTab,
            "enter" | "return" => KeyCode::Enter,
            "esc" | "escape" => KeyCode::Esc,
            "space" => KeyCode::Char(' '),
            "up" => KeyCode::Up,
            "down" => KeyCode::Down,
            "left" => KeyCode::Left,
            "right" => KeyCode::Right,
            "pgup" | "pageup" => KeyCode::PageUp,
            "pgdn" | "pagedown" => KeyCode::PageDown,
            "home" => KeyCode::Home,
            "end" => KeyCode::End,
            "backspace" => KeyCode::Backspace,
            "delete" | "del" => KeyCode::Delete,
            _ => {
                let mut chars = rest.chars();
                match (chars.next(), chars.next()) {
                    (Some(c), None) => KeyCode::Char(if ctrl { c.to_ascii_lowercase() } else { c }),
                    _ => match lower.strip_prefix('f').and_then(|n| n.parse::<u8>().ok()) {
                        Some(n) if (1..=12).contains(&n) => KeyCode::F(n),
                        _ => {
                            return Err(format!(
                                "\"{s}\" is not a key (e.g. \"x\", \"G\", \"ctrl-r\", \"tab\", \"pgdn\", \"f5\")"
                            ));
                        }
                    },
                }
            }
        };
        Ok(Key { code, ctrl, alt })
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.ctrl {
            f.write_str("Ctrl-")?;
        }
        if self.alt {
            f.write_str("Alt-")?;
        }
        match self.code {
            KeyCode::Char(' ') => f.write_str("Space"),
            KeyCode::Char(c) => write!(f, "{c}"),
            KeyCode::Tab => f.write_str("Tab"),
            KeyCode::BackTab => f.write_str("S-Tab"),
            KeyCode::Enter => f.write_str("Enter"),
            KeyCode::Esc => f.write_str("Esc"),
            KeyCode::Up => f.write_str("↑"),
            KeyCode::Down => f.write_str("↓"),
            KeyCode::Left => f.write_str("←"),
            KeyCode::Right => f.write_str("→"),
            KeyCode::PageUp => f.write_str("PgUp"),
            KeyCode::PageDown => f.write_str("PgDn"),
            KeyCode::Home => f.write_str("Home"),
            KeyCode::End => f.write_str("End"),
            KeyCode::Backspace => f.write_str("Bksp"),
            KeyCode::Delete => f.write_str("Del"),
            KeyCode::F(n) => write!(f, "F{n}"),
            other => write!(f, "{other:?}"),
        }
    }
}

/// The key table.
#[derive(Debug, Clone, PartialEq)]
pub struct Keymap {
    bindings: Vec<(Key, Action)>,
}

impl Default for Keymap {
    fn default() -> Self {
        use Action::*;
        let b = vec![
            (Key::ch('?'), Help),
            (Key::ch('q'), Quit),
            (Key::ctrl('c'), Quit),
            (Key::plain(KeyCode::Tab), FocusNext),
            (Key::plain(KeyCode::BackTab), FocusPrev),
            (Key::ch('1'), FocusHosts),
            (Key::ch('2'), FocusNodes),
            (Key::ch('3'), FocusEtcd),
            (Key::ch('4'), FocusLonghorn),
            (Key::ch('5'), FocusMetrics),
            (Key::ch('6'), FocusLogs),
            (Key::ch('7'), FocusFindings),
            (Key::ch('k'), Up),
            (Key::plain(KeyCode::Up), Up),
            (Key::ch('j'), Down),
            (Key::plain(KeyCode::Down), Down),
            (Key::plain(KeyCode::PageUp), PageUp),
            (Key::ctrl('b'), PageUp),
            (Key::plain(KeyCode::PageDown), PageDown),
            (Key::ctrl('f'), PageDown),
            (Key::ch('g'), Top),
            (Key::plain(KeyCode::Home), Top),
            (Key::ch('G'), Bottom),
            (Key::plain(KeyCode::End), Bottom),
            (Key::plain(KeyCode::Enter), Open),
            (Key::plain(KeyCode::Esc), Back),
            (Key::ch('/'), Filter),
            (Key::ch('r'), Refresh),
            (Key::ch('d'), Diff),
            (Key::ch('e'), Export),
            (Key::ch('w'), Wrap),
            (Key::ch('c'), Cordon),
            (Key::ch('y'), Confirm),
            (Key::ch('U'), Upgrade),
            (Key::ch('p'), Pause),
            (Key::ch('a'), Abort),
            (Key::ch('s'), Skip),
        ];
        Keymap { bindings: b }
    }
}

impl Keymap {
    /// The defaults with the user's `[ui.keys]` applied: each entry binds a key to an action,
    /// replacing whatever that key did; `"none"` unbinds it.
    pub fn with_overrides(overrides: &BTreeMap<String, String>) -> Result<Keymap, String> {
        let mut km = Keymap::default();
        for (k, a) in overrides {
            let key = Key::parse(k).map_err(|e| format!("key \"ui.keys.{k}\": {e}"))?;
            km.bindings.retain(|(bk, _)| *bk != key);
            if a != "none" {
                let action = Action::parse(a).map_err(|e| format!("key \"ui.keys.{k}\": {e}"))?;
                km.bindings.push((key, action));
            }
        }
        Ok(km)
    }

    pub fn action_for(&self, ev: &KeyEvent) -> Option<Action> {
        let key = Key::from_event(ev);
        self.bindings
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, a)| *a)
    }

    /// Keys bound to an action, in table order.
    pub fn keys_for(&self, action: Action) -> Vec<Key> {
        self.bindings
            .iter()
            .filter(|(_, a)| *a == action)
            .map(|(k, _)| *k)
            .collect()
    }

    /// `(keys, description)` for every bound action, in help order.
    pub fn help_rows(&self) -> Vec<(String, &'static str)> {
        Action::ALL
            .iter()
            .filter_map(|a| {
                let keys = self.keys_for(*a);
                (!keys.is_empty()).then(|| {
                    let names: Vec<String> = keys.iter().map(Key::to_string).collect();
                    (names.join(" "), a.description())
                })
            })
            .collect()
    }

    /// `(first key, label)` for the footer.
    pub fn footer(&self) -> Vec<(String, &'static str)> {
        Action::ALL
            .iter()
            .filter_map(|a| {
                let label = a.footer_label()?;
                let key = self.keys_for(*a).into_iter().next()?;
                let name = if *a == Action::Down {
                    // "j/k" reads better than one direction.
                    match self.keys_for(Action::Up).first() {
                        Some(up) => format!("{key}/{up}"),
                        None => key.to_string(),
                    }
                } else {
                    key.to_string()
                };
                Some((name, label))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossterm::event::KeyEventKind;

    fn ev(code: KeyCode, m: KeyModifiers) -> KeyEvent {
        KeyEvent {
            code,
            modifiers: m,
            kind: KeyEventKind::Press,
            state: crossterm::event::KeyEventState::NONE,
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
    fn overrides_replace_and_unbind() {
        let mut o = BTreeMap::new();
        o.insert("x".to_string(), "quit".to_string());
        o.insert("q".to_string(), "none".to_string());
        o.insert("ctrl-r".to_string(), "refresh".to_string());
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
        let help = km.help_rows();
        assert!(help.contains(&("Ctrl-c x".to_string(), "quit")), "{help:?}");
    }

    #[test]
    fn bad_overrides_name_the_key() {
        let mut o = BTreeMap::new();
        o.insert("x".to_string(), "explode".to_string());
        let err = Keymap::with_overrides(&o).unwrap_err();
        assert!(
            err.starts_with(
                "key \"ui.keys.x\": \"explode\" is not an action (actions: help, quit,"
            ),
            "{err}"
        );
        let mut o = BTreeMap::new();
        o.insert("hyper-x".to_string(), "quit".to_string());
        let err = Keymap::with_overrides(&o).unwrap_err();
        assert!(
            err.starts_with("key \"ui.keys.hyper-x\": \"hyper-x\" is not a key"),
            "{err}"
        );
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
    }
}
