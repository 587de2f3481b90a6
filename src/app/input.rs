//! The one text field: the table filter and the diff view's filter both are one. It keeps the
//! text and a cursor, takes keys through the `input` layer of the keymap (characters are
//! typed, everything else is a binding), and tells its owner what happened.

use std::fmt;
use std::ops::Deref;

use crossterm::event::{KeyCode, KeyEvent};

use super::keymap::{Action, Key, Keymap, Layer};

/// Text with a cursor (a byte offset on a character boundary).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TextInput {
    text: String,
    cursor: usize,
}

/// What a key did to the field, for its owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputOutcome {
    /// The text changed.
    Edited,
    /// Only the cursor moved.
    Moved,
    /// Keep the text and close the field (Enter).
    Submit,
    /// Clear the text and close the field (Esc).
    Cancel,
    /// Quit the program (Ctrl-C).
    Quit,
    /// A movement meant for what the field filters (↑/↓ move in the table).
    Pass(Action),
    /// Not a key the field knows.
    Ignored,
}

impl TextInput {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The text before and after the cursor (for drawing it).
    pub fn split(&self) -> (&str, &str) {
        self.text.split_at(self.cursor)
    }

    pub fn clear(&mut self) {
        self.text.clear();
        self.cursor = 0;
    }

    pub fn insert(&mut self, c: char) {
        self.text.insert(self.cursor, c);
        self.cursor += c.len_utf8();
    }

    fn prev_boundary(&self) -> Option<usize> {
        self.text[..self.cursor]
            .char_indices()
            .last()
            .map(|(i, _)| i)
    }

    fn next_boundary(&self) -> Option<usize> {
        self.text[self.cursor..]
            .chars()
            .next()
            .map(|c| self.cursor + c.len_utf8())
    }

    /// Backspace: delete the character before the cursor.
    pub fn delete_back(&mut self) -> bool {
        let Some(i) = self.prev_boundary() else {
            return false;
        };
        self.text.replace_range(i..self.cursor, "");
        self.cursor = i;
        true
    }

    /// Delete: the character at the cursor.
    pub fn delete_forward(&mut self) -> bool {
        let Some(j) = self.next_boundary() else {
            return false;
        };
        self.text.replace_range(self.cursor..j, "");
        true
    }

    pub fn left(&mut self) {
        if let Some(i) = self.prev_boundary() {
            self.cursor = i;
        }
    }

    pub fn right(&mut self) {
        if let Some(j) = self.next_boundary() {
            self.cursor = j;
        }
    }

    pub fn home(&mut self) {
        self.cursor = 0;
    }

    pub fn end(&mut self) {
        self.cursor = self.text.len();
    }

    /// Handle one key: its binding in the `input` layer, else a typed character.
    pub fn on_key(&mut self, keymap: &Keymap, ev: &KeyEvent) -> InputOutcome {
        if let Some(action) = keymap.lookup(Layer::Input, ev) {
            return self.on_action(action);
        }
        match ev.code {
            KeyCode::Char(c) if Key::from_event(ev).is_text() => {
                self.insert(c);
                InputOutcome::Edited
            }
            _ => InputOutcome::Ignored,
        }
    }

    fn on_action(&mut self, action: Action) -> InputOutcome {
        let edited = |changed: bool| {
            if changed {
                InputOutcome::Edited
            } else {
                InputOutcome::Ignored
            }
        };
        match action {
            Action::Submit => InputOutcome::Submit,
            Action::Back => {
                self.clear();
                InputOutcome::Cancel
            }
            Action::Quit => InputOutcome::Quit,
            Action::Clear => {
                let had = !self.text.is_empty();
                self.clear();
                edited(had)
            }
            Action::DeleteBack => edited(self.delete_back()),
            Action::DeleteForward => edited(self.delete_forward()),
            Action::Left => {
                self.left();
                InputOutcome::Moved
            }
            Action::Right => {
                self.right();
                InputOutcome::Moved
            }
            Action::LineStart => {
                self.home();
                InputOutcome::Moved
            }
            Action::LineEnd => {
                self.end();
                InputOutcome::Moved
            }
            other => InputOutcome::Pass(other),
        }
    }
}

impl Deref for TextInput {
    type Target = str;
    fn deref(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for TextInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl From<&str> for TextInput {
    /// The text with the cursor at its end.
    fn from(s: &str) -> Self {
        Self {
            text: s.to_string(),
            cursor: s.len(),
        }
    }
}

impl From<String> for TextInput {
    fn from(text: String) -> Self {
        let cursor = text.len();
        Self { text, cursor }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossterm::event::KeyModifiers;

    fn press(t: &mut TextInput, code: KeyCode, m: KeyModifiers) -> InputOutcome {
        t.on_key(&Keymap::default(), &KeyEvent::new(code, m))
    }

    fn typed(t: &mut TextInput, s: &str) {
        for c in s.chars() {
            assert_eq!(
                press(t, KeyCode::Char(c), KeyModifiers::NONE),
                InputOutcome::Edited
            );
        }
    }

    #[test]
    fn types_edits_at_the_cursor_and_reports_what_happened() {
        let none = KeyModifiers::NONE;
        let mut t = TextInput::new();
        typed(&mut t, "nde");
        assert_eq!(press(&mut t, KeyCode::Left, none), InputOutcome::Moved);
        assert_eq!(press(&mut t, KeyCode::Left, none), InputOutcome::Moved);
        typed(&mut t, "o");
        assert_eq!(t.as_str(), "node");
        assert_eq!(t.split(), ("no", "de"));
        assert_eq!(
            press(&mut t, KeyCode::Delete, none),
            InputOutcome::Edited,
            "deletes the d"
        );
        assert_eq!(press(&mut t, KeyCode::End, none), InputOutcome::Moved);
        assert_eq!(
            press(&mut t, KeyCode::Backspace, none),
            InputOutcome::Edited
        );
        assert_eq!(t.as_str(), "no");
        assert_eq!(press(&mut t, KeyCode::Home, none), InputOutcome::Moved);
        assert_eq!(
            press(&mut t, KeyCode::Backspace, none),
            InputOutcome::Ignored,
            "nothing before the cursor"
        );
        // q, j, ? are text here, not quit, down, help
        typed(&mut t, "qj?");
        assert_eq!(t.as_str(), "qj?no");
        assert_eq!(
            press(&mut t, KeyCode::Char('u'), KeyModifiers::CONTROL),
            InputOutcome::Edited
        );
        assert!(t.is_empty());
        typed(&mut t, "é1");
        assert_eq!(press(&mut t, KeyCode::Left, none), InputOutcome::Moved);
        assert_eq!(press(&mut t, KeyCode::Left, none), InputOutcome::Moved);
        assert_eq!(t.split(), ("", "é1"), "the cursor steps over characters");
    }

    #[test]
    fn enter_keeps_esc_clears_arrows_pass_through() {
        let none = KeyModifiers::NONE;
        let mut t = TextInput::from("sat");
        assert_eq!(press(&mut t, KeyCode::Enter, none), InputOutcome::Submit);
        assert_eq!(t.as_str(), "sat");
        assert_eq!(
            press(&mut t, KeyCode::Down, none),
            InputOutcome::Pass(Action::Down)
        );
        assert_eq!(
            press(&mut t, KeyCode::Char('c'), KeyModifiers::CONTROL),
            InputOutcome::Quit
        );
        assert_eq!(press(&mut t, KeyCode::F(5), none), InputOutcome::Ignored);
        assert_eq!(press(&mut t, KeyCode::Esc, none), InputOutcome::Cancel);
        assert!(t.is_empty());
    }
}
