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
