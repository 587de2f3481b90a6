//! Keys as data, in layers: the dashboard, the diff view, the upgrade view, a question
//! (`confirm`) and a text field (`input`), plus the `global` keys the first three fall back
//! to. The defaults are the TOML table `defaults.toml` (embedded); users rebind keys in
//! `[ui.keys]` (every layer that has the action) and `[ui.keys.<layer>]` (one layer). The
//! same table renders the `?` help, the footer and every key hint in the views.

mod action;
mod key;

use std::collections::BTreeMap;
use std::sync::OnceLock;

use crossterm::event::KeyEvent;
use serde::Deserialize;

pub use action::Action;
pub use key::Key;

use crate::config::KeyOverride;

/// The default table, embedded in the binary.
const DEFAULTS: &str = include_str!("defaults.toml");

/// A set of bindings that holds while one kind of view has the keyboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Layer {
    Global,
    Dashboard,
    Diff,
    Upgrade,
    Confirm,
    Input,
}

impl Layer {
    pub const ALL: [Layer; 6] = [
        Layer::Global,
        Layer::Dashboard,
        Layer::Diff,
        Layer::Upgrade,
        Layer::Confirm,
        Layer::Input,
    ];

    /// The name in the config (`[ui.keys.diff]`).
    pub fn name(self) -> &'static str {
        match self {
            Layer::Global => "global",
            Layer::Dashboard => "dashboard",
            Layer::Diff => "diff",
            Layer::Upgrade => "upgrade",
            Layer::Confirm => "confirm",
            Layer::Input => "input",
        }
    }

    fn from_name(name: &str) -> Option<Layer> {
        Layer::ALL.into_iter().find(|l| l.name() == name)
    }

    fn index(self) -> usize {
        self as usize
    }

    /// Keys this layer does not bind fall through to the global layer (help, quit). A
    /// question and a text field take every key themselves.
    pub fn falls_back(self) -> bool {
        matches!(self, Layer::Dashboard | Layer::Diff | Layer::Upgrade)
    }
}

/// Keys bound to one action in one layer, with its help text and footer label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub keys: Vec<Key>,
    pub action: Action,
    pub desc: &'static str,
    /// The label in the footer and the view titles; `None`: help only.
    pub hint: Option<&'static str>,
    /// Another action whose first key the hint shows too (`j/k move`).
    pub with: Option<Action>,
}

/// The key table: per layer, bindings in help order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keymap {
    layers: [Vec<Binding>; 6],
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTable {
    global: Vec<RawBinding>,
    dashboard: Vec<RawBinding>,
    diff: Vec<RawBinding>,
    upgrade: Vec<RawBinding>,
    confirm: Vec<RawBinding>,
    input: Vec<RawBinding>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBinding {
    on: Vec<String>,
    run: String,
    desc: String,
    #[serde(default)]
    hint: Option<String>,
    #[serde(default)]
    with: Option<String>,
}

impl Default for Keymap {
    /// The embedded table (a unit test proves it parses).
    fn default() -> Self {
        static DEFAULT: OnceLock<Keymap> = OnceLock::new();
        DEFAULT
            .get_or_init(|| match Keymap::parse(DEFAULTS) {
                Ok(km) => km,
                Err(e) => panic!("the embedded key table is broken: {e}"),
            })
            .clone()
    }
}

impl Keymap {
    /// A key table from its TOML text (the format of `defaults.toml`). Its texts live as long
    /// as the program: this is for the embedded table, parsed once.
    fn parse(text: &str) -> Result<Keymap, String> {
        let raw: RawTable = toml::from_str(text).map_err(|e| format!("key table: {e}"))?;
        let mut km = Keymap {
            layers: Default::default(),
        };
        let lists = [
            (Layer::Global, raw.global),
            (Layer::Dashboard, raw.dashboard),
            (Layer::Diff, raw.diff),
            (Layer::Upgrade, raw.upgrade),
            (Layer::Confirm, raw.confirm),
            (Layer::Input, raw.input),
        ];
        for (layer, list) in lists {
            for b in list {
                let at = |e: String| format!("key table, layer {}: {e}", layer.name());
                let action = Action::parse(&b.run).map_err(at)?;
                let with = b
                    .with
                    .as_deref()
                    .map(Action::parse)
                    .transpose()
                    .map_err(at)?;
                let mut keys = Vec::new();
                for k in &b.on {
                    let key = Key::parse(k).map_err(at)?;
                    check(layer, key, action).map_err(at)?;
                    keys.push(key);
                }
                km.layers[layer.index()].push(Binding {
                    keys,
                    action,
                    desc: b.desc.leak(),
                    hint: b.hint.map(|h| &*h.leak()),
                    with,
                });
            }
        }
        Ok(km)
    }

    /// The defaults with the user's `[ui.keys]` applied. A `key = "action"` entry binds the
    /// key to the action in every layer that has the action, and takes it from whatever it did
    /// anywhere; a `[ui.keys.<layer>]` table does the same in that layer alone (applied after
    /// the others, so it wins). `"none"` unbinds.
    pub fn with_overrides(overrides: &BTreeMap<String, KeyOverride>) -> Result<Keymap, String> {
        let mut km = Keymap::default();
        for (k, o) in overrides {
            if let KeyOverride::Action(a) = o {
                km.rebind_everywhere(k, a)
                    .map_err(|e| format!("key \"ui.keys.{k}\": {e}"))?;
            }
        }
        for (name, o) in overrides {
            if let KeyOverride::Layer(table) = o {
                let layer = Layer::from_name(name).ok_or_else(|| {
                    let names: Vec<&str> = Layer::ALL.iter().map(|l| l.name()).collect();
                    format!(
                        "\"ui.keys.{name}\": \"{name}\" is not a layer (layers: {})",
                        names.join(", ")
                    )
                })?;
                for (k, a) in table {
                    km.rebind_in(layer, k, a)
                        .map_err(|e| format!("key \"ui.keys.{name}.{k}\": {e}"))?;
                }
            }
        }
        Ok(km)
    }

    fn rebind_everywhere(&mut self, k: &str, a: &str) -> Result<(), String> {
        let key = Key::parse(k)?;
        if a == "none" {
            for l in Layer::ALL {
                self.unbind(l, key);
            }
            return Ok(());
        }
        let action = Action::parse(a)?;
        let homes: Vec<Layer> = Layer::ALL
            .into_iter()
            .filter(|l| self.has(*l, action))
            // A character is text in a text field: the binding holds everywhere else.
            .filter(|l| !(*l == Layer::Input && key.is_text()))
            .collect();
        if homes.is_empty() {
            return Err(format!(
                "{key} cannot run \"{a}\": only the input layer has it, and a character is text there"
            ));
        }
        for l in &homes {
            check(*l, key, action)?;
        }
        for l in Layer::ALL {
            self.unbind(l, key);
        }
        for l in homes {
            self.bind(l, key, action);
        }
        Ok(())
    }

    fn rebind_in(&mut self, layer: Layer, k: &str, a: &str) -> Result<(), String> {
        let key = Key::parse(k)?;
        if a == "none" {
            self.unbind(layer, key);
            return Ok(());
        }
        let action = Action::parse(a)?;
        if !self.has(layer, action) {
            let names: Vec<String> = self.layers[layer.index()]
                .iter()
                .map(|b| b.action.name())
                .collect();
            return Err(format!(
                "\"{a}\" is not an action of the {} layer (its actions: {})",
                layer.name(),
                names.join(", ")
            ));
        }
        check(layer, key, action)?;
        self.unbind(layer, key);
        self.bind(layer, key, action);
        Ok(())
    }

    fn has(&self, layer: Layer, action: Action) -> bool {
        self.layers[layer.index()]
            .iter()
            .any(|b| b.action == action)
    }

    fn unbind(&mut self, layer: Layer, key: Key) {
        for b in &mut self.layers[layer.index()] {
            b.keys.retain(|k| *k != key);
        }
    }

    fn bind(&mut self, layer: Layer, key: Key, action: Action) {
        if let Some(b) = self.layers[layer.index()]
            .iter_mut()
            .find(|b| b.action == action)
            && !b.keys.contains(&key)
        {
            b.keys.push(key);
        }
    }

    fn find(&self, layer: Layer, key: Key) -> Option<Action> {
        self.layers[layer.index()]
            .iter()
            .find(|b| b.keys.contains(&key))
            .map(|b| b.action)
    }

    /// The action of a key in a layer (falling back to the global keys where the layer does).
    pub fn lookup(&self, layer: Layer, ev: &KeyEvent) -> Option<Action> {
        let key = Key::from_event(ev);
        self.find(layer, key).or_else(|| {
            layer
                .falls_back()
                .then(|| self.find(Layer::Global, key))
                .flatten()
        })
    }

    /// The action of a key on the dashboard.
    pub fn action_for(&self, ev: &KeyEvent) -> Option<Action> {
        self.lookup(Layer::Dashboard, ev)
    }

    /// The bindings of one layer, in help order.
    pub fn bindings(&self, layer: Layer) -> &[Binding] {
        &self.layers[layer.index()]
    }

    /// Keys bound to an action in a layer (or in the global layer it falls back to).
    pub fn keys_for(&self, layer: Layer, action: Action) -> Vec<Key> {
        let own: Vec<Key> = self.layers[layer.index()]
            .iter()
            .filter(|b| b.action == action)
            .flat_map(|b| b.keys.iter().copied())
            .collect();
        if own.is_empty() && layer.falls_back() && !self.has(layer, action) {
            return self.keys_for(Layer::Global, action);
        }
        own
    }

    /// The bindings that hold in a layer: the global ones first where it falls back to them.
    fn visible(&self, layer: Layer) -> impl Iterator<Item = &Binding> {
        let global: &[Binding] = if layer.falls_back() {
            &self.layers[Layer::Global.index()]
        } else {
            &[]
        };
        global
            .iter()
            .filter(move |g| !self.has(layer, g.action))
            .chain(self.layers[layer.index()].iter())
            .filter(|b| !b.keys.is_empty())
    }

    /// `(keys, description)` of every binding that holds in a layer, in help order.
    pub fn help_rows_in(&self, layer: Layer) -> Vec<(String, &'static str)> {
        self.visible(layer)
            .map(|b| {
                let names: Vec<String> = b.keys.iter().map(Key::to_string).collect();
                (names.join(" "), b.desc)
            })
            .collect()
    }

    /// The dashboard's help rows.
    pub fn help_rows(&self) -> Vec<(String, &'static str)> {
        self.help_rows_in(Layer::Dashboard)
    }

    fn hint_of(&self, layer: Layer, b: &Binding) -> Option<(String, &'static str)> {
        let label = b.hint?;
        let first = b.keys.first()?;
        let name = match b
            .with
            .and_then(|w| self.keys_for(layer, w).first().copied())
        {
            Some(other) => format!("{first}/{other}"),
            None => first.to_string(),
        };
        Some((name, label))
    }

    /// `(first key, label)` of every hinted binding that holds in a layer: the footer.
    pub fn footer_in(&self, layer: Layer) -> Vec<(String, &'static str)> {
        self.visible(layer)
            .filter_map(|b| self.hint_of(layer, b))
            .collect()
    }

    /// The dashboard's footer.
    pub fn footer(&self) -> Vec<(String, &'static str)> {
        self.footer_in(Layer::Dashboard)
    }

    /// `(first key, label)` for these actions of a layer, in this order; unbound ones are left
    /// out (a view title lists what applies to its state).
    pub fn hints(&self, layer: Layer, actions: &[Action]) -> Vec<(String, &'static str)> {
        actions
            .iter()
            .filter_map(|a| {
                let b = self
                    .visible(layer)
                    .find(|b| b.action == *a && b.hint.is_some())?;
                self.hint_of(layer, b)
            })
            .collect()
    }

    /// `k label · k label`, for a view's title.
    pub fn hint_line(&self, layer: Layer, actions: &[Action]) -> String {
        self.hints(layer, actions)
            .iter()
            .map(|(k, l)| format!("{k} {l}"))
            .collect::<Vec<_>>()
            .join(" · ")
    }
}

/// What a layer refuses to bind: a character in a text field (it is typed), and anything but a
/// character as the yes to a question (Enter, Space and the like are pressed by habit).
fn check(layer: Layer, key: Key, action: Action) -> Result<(), String> {
    if layer == Layer::Input && key.is_text() {
        return Err(format!(
            "{key} is text in the input layer: bind a named key or one with Ctrl or Alt"
        ));
    }
    if layer == Layer::Confirm
        && action == Action::Confirm
        && !(key.is_text() && key.code != crossterm::event::KeyCode::Char(' '))
    {
        return Err(format!(
            "{key} cannot say yes to a question: only a character key can (Enter, Space and the like are pressed by habit)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
