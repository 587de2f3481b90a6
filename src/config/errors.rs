//! Error messages for TOML files (the config, themes): `file:line:column: key "section.key":
//! message`.

use std::path::Path;

use super::ConfigError;

/// Turn a toml error into `file:line:column: key "section.key": message`.
pub(crate) fn describe(path: &Path, text: &str, e: &toml::de::Error) -> ConfigError {
    let file = path.display();
    let msg = e.message().trim().replace('\n', " ");
    let Some(span) = e.span() else {
        return ConfigError(format!("{file}: {msg}"));
    };
    let (line, col) = line_col(text, span.start);
    match key_at(text, span.start) {
        Some(key) => ConfigError(format!("{file}:{line}:{col}: key \"{key}\": {msg}")),
        None => ConfigError(format!("{file}:{line}:{col}: {msg}")),
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// The dotted key of the `key = value` line containing `offset`, with its `[table]` prefix.
fn key_at(text: &str, offset: usize) -> Option<String> {
    let offset = offset.min(text.len());
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
    let line = &text[line_start..line_end];
    let trimmed = line.trim();
    if trimmed.starts_with('[') {
        let name = trimmed.trim_matches(|c| c == '[' || c == ']').trim();
        return Some(name.to_string());
    }
    let (key, _) = line.split_once('=')?;
    let key = key.trim().trim_matches('"');
    let table = text[..line_start].lines().rev().find_map(|l| {
        let l = l.trim();
        (l.starts_with('[') && !l.starts_with("[["))
            .then(|| l.trim_matches(|c| c == '[' || c == ']').trim().to_string())
    });
    Some(match table {
        Some(t) if !t.is_empty() => format!("{t}.{key}"),
        _ => key.to_string(),
    })
}

/// `file:line:1: key "section.key": message` for a value serde accepted but the program
/// cannot use (the line of the key in `text`; without it, `file: key ...`).
pub(crate) fn at_key(path: &Path, text: &str, dotted: &str, msg: &str) -> ConfigError {
    let file = path.display();
    match line_of_key(text, dotted) {
        Some(line) => ConfigError(format!("{file}:{line}:1: key \"{dotted}\": {msg}")),
        None => ConfigError(format!("{file}: key \"{dotted}\": {msg}")),
    }
}

/// The 1-based line where `section.key` (or `key` at the top) is set.
fn line_of_key(text: &str, dotted: &str) -> Option<usize> {
    let (section, key) = dotted.rsplit_once('.').unwrap_or(("", dotted));
    let mut table = String::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.starts_with('[') && !t.starts_with("[[") {
            table = t.trim_matches(|c| c == '[' || c == ']').trim().to_string();
            continue;
        }
        let Some((k, _)) = t.split_once('=') else {
            continue;
        };
        let k = k.trim().trim_matches('"');
        let full = if table.is_empty() {
            k.to_string()
        } else {
            format!("{table}.{k}")
        };
        if full == dotted || (table == section && k == key) {
            return Some(i + 1);
        }
    }
    None
}

/// A URL fit for a message: userinfo (`user:secret@`) replaced by `REDACTED@`. Anything that is
/// not a URL with userinfo comes back as it is.
pub fn redact_url(s: &str) -> String {
    if let Some((scheme, rest)) = s.split_once("://")
        && let Some(at) = rest.find('@')
        && !rest[..at].contains('/')
    {
        return format!("{scheme}://REDACTED@{}", &rest[at + 1..]);
    }
    s.to_string()
}
