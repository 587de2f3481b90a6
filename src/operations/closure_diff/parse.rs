//! Parser of `nix store diff-closures` output (Nix 2.8 and newer).
//!
//! One line per package whose versions or size changed, sorted by name:
//!
//! ```text
//! linux: 6.6.1 → 6.6.8, +195.3 KiB      version change with size
//! htop: ∅ → 3.3.0, +293.6 KiB           added (∅ = no version)
//! nfs-utils: 2.6.4 → ∅, -196.0 KiB      removed
//! openssh: +43.9 KiB                    rebuilt: same version, size only
//! nixos-system-node1: 24.05.1 → 24.05.2 size change under 8 KiB is not printed
//! foo: 1.2, 1.3 → 1.4                   several versions; ε is the empty version
//! ```
//!
//! The size is coloured with ANSI codes whether or not stdout is a terminal; newer Nix prints
//! MiB/GiB where 2.8 prints KiB. `nix profile diff-closures` indents the lines. A line that
//! fits none of these shapes is kept verbatim in [`ParsedDiff::unparsed`], never dropped.

use std::borrow::Cow;

/// One parsed line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedLine {
    pub name: String,
    /// Versions only in the old closure; `""` is the empty version (`ε`).
    pub old: Vec<String>,
    /// Versions only in the new closure.
    pub new: Vec<String>,
    /// Bytes (from the rounded figure nix printed).
    pub size_delta: Option<i64>,
    /// The line without colour codes and surrounding whitespace.
    pub line: String,
}

/// All lines of one `diff-closures` run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParsedDiff {
    pub lines: Vec<ParsedLine>,
    /// Non-blank lines that did not parse, verbatim (colour codes removed).
    pub unparsed: Vec<String>,
}

/// Parse the whole output. Blank lines are skipped; everything else is either a
/// [`ParsedLine`] or kept in `unparsed`.
pub fn parse(output: &str) -> ParsedDiff {
    let mut diff = ParsedDiff::default();
    for raw in output.lines() {
        let clean = strip_ansi(raw);
        let line = clean.trim();
        if line.is_empty() {
            continue;
        }
        match parse_line(line) {
            Some(p) => diff.lines.push(p),
            None => diff.unparsed.push(line.to_string()),
        }
    }
    diff
}

/// Parse one line that has no colour codes left. `None` when it is not a diff line.
pub fn parse_line(line: &str) -> Option<ParsedLine> {
    let line = line.trim();
    let (name, rest) = line.split_once(": ")?;
    if name.is_empty() || name.contains(char::is_whitespace) || name.contains(':') {
        return None;
    }
    let rest = rest.trim();
    // The size, when printed, is the last ", "-separated item; versions never contain spaces,
    // so a version can never look like a size ("+1.0 KiB").
    let (versions, size_delta) = match rest.rsplit_once(", ") {
        Some((before, last)) => match parse_size(last) {
            Some(size) => (before, Some(size)),
            None => (rest, None),
        },
        None => match parse_size(rest) {
            Some(size) => ("", Some(size)),
            None => (rest, None),
        },
    };
    let (old, new) = if versions.is_empty() {
        // Size only: rebuilt with the same version(s).
        size_delta?;
        (Vec::new(), Vec::new())
    } else {
        let (left, right) = versions.split_once(" → ")?;
        let old = parse_versions(left)?;
        let new = parse_versions(right)?;
        if old.is_empty() && new.is_empty() {
            return None;
        }
        (old, new)
    };
    Some(ParsedLine {
        name: name.to_string(),
        old,
        new,
        size_delta,
        line: line.to_string(),
    })
}

/// `∅` → none; otherwise `, `-separated versions, `ε` being the empty version.
fn parse_versions(s: &str) -> Option<Vec<String>> {
    if s == "∅" {
        return Some(Vec::new());
    }
    let mut out = Vec::new();
    for v in s.split(", ") {
        if v.is_empty()
            || v.contains(char::is_whitespace)
            || v.contains('∅')
            || v.contains('→')
            || v.contains(',')
        {
            return None;
        }
        out.push(if v == "ε" {
            String::new()
        } else {
            v.to_string()
        });
    }
    Some(out)
}

/// `+195.3 KiB`, `-1.5 MiB`, `2.0 GiB`, `512 B` → bytes (rounded). `None` when not a size.
pub fn parse_size(s: &str) -> Option<i64> {
    let s = s.trim();
    let (negative, rest) = match s.as_bytes().first()? {
        b'+' => (false, &s[1..]),
        b'-' => (true, &s[1..]),
        _ => (false, s),
    };
    let (number, unit) = rest.split_once(' ')?;
    let unit = unit.trim_start();
    let multiplier: f64 = match unit {
        "B" | "bytes" => 1.0,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        "TiB" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        "PiB" => 1024.0 * 1024.0 * 1024.0 * 1024.0 * 1024.0,
        "EiB" => 1024.0 * 1024.0 * 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    // Digits with at most one decimal point; no exponent, sign, "inf" or "nan".
    let mut dots = 0;
    if number.is_empty()
        || !number.chars().all(|c| {
            if c == '.' {
                dots += 1;
            }
            c.is_ascii_digit() || c == '.'
        })
        || dots > 1
        || !number.chars().any(|c| c.is_ascii_digit())
    {
        return None;
    }
    let value: f64 = number.parse().ok()?;
    let bytes = (value * multiplier).round();
    if !bytes.is_finite() || bytes >= i64::MAX as f64 {
        return None;
    }
    let bytes = bytes as i64;
    Some(if negative { -bytes } else { bytes })
}

/// Remove ANSI escape sequences (CSI `ESC [ ... final`, OSC `ESC ] ... BEL|ESC \`, and
/// two-byte `ESC x`). Borrowed when there are none.
pub fn strip_ansi(s: &str) -> Cow<'_, str> {
    let bytes = s.as_bytes();
    let Some(first) = bytes.iter().position(|&b| b == 0x1b) else {
        return Cow::Borrowed(s);
    };
    // Escape sequences are ASCII and the text between them is copied as whole slices, so
    // every cut falls on a character boundary.
    let mut out = String::with_capacity(s.len());
    out.push_str(&s[..first]);
    let mut i = first;
    while i < bytes.len() {
        if bytes[i] != 0x1b {
            let next = bytes[i..]
                .iter()
                .position(|&b| b == 0x1b)
                .map_or(bytes.len(), |p| i + p);
            out.push_str(&s[i..next]);
            i = next;
            continue;
        }
        i += 1;
        match bytes.get(i) {
            Some(b'[') => {
                // Parameters and intermediates, then one final byte in 0x40..=0x7e.
                i += 1;
                while i < bytes.len() && !(0x40..=0x7e).contains(&bytes[i]) {
                    i += 1;
                }
                i += 1;
            }
            Some(b']') => {
                // Until BEL or ST (`ESC \`).
                i += 1;
                while i < bytes.len() {
                    if bytes[i] == 0x07 {
                        i += 1;
                        break;
                    }
                    if bytes[i] == 0x1b {
                        i += if bytes.get(i + 1) == Some(&b'\\') {
                            2
                        } else {
                            1
                        };
                        break;
                    }
                    i += 1;
                }
            }
            // Any other escape is two characters long (or a lone ESC at the end); skip the
            // whole second character, which need not be ASCII.
            Some(_) => {
                i += s[i..].chars().next().map_or(1, char::len_utf8);
            }
            None => {}
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(line: &str) -> ParsedLine {
        parse_line(line).unwrap_or_else(|| panic!("did not parse: {line:?}"))
    }

    fn v(xs: &[&str]) -> Vec<String> {
        xs.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn version_change_with_size() {
        let l = p("linux: 6.6.1 → 6.6.8, +195.3 KiB");
        assert_eq!(l.name, "linux");
        assert_eq!(l.old, v(&["6.6.1"]));
        assert_eq!(l.new, v(&["6.6.8"]));
        assert_eq!(l.size_delta, Some(199_987));
    }

    #[test]
    fn added_removed_and_without_size() {
        let a = p("htop: ∅ → 3.3.0, +293.6 KiB");
        assert_eq!((a.old.len(), a.new.clone()), (0, v(&["3.3.0"])));
        let r = p("nfs-utils: 2.6.4 → ∅, -196.0 KiB");
        assert_eq!((r.old.clone(), r.new.len()), (v(&["2.6.4"]), 0));
        assert_eq!(r.size_delta, Some(-200_704));
        let n = p("nixos-system-node1: 24.05.1 → 24.05.2");
        assert_eq!(n.size_delta, None);
        assert_eq!(n.name, "nixos-system-node1");
    }

    #[test]
    fn size_only_is_rebuilt() {
        let l = p("openssh: +43.9 KiB");
        assert!(l.old.is_empty() && l.new.is_empty());
        assert_eq!(l.size_delta, Some(44_954));
        assert_eq!(p("bluez-qt: -12.6 KiB").size_delta, Some(-12_902));
    }

    #[test]
    fn several_versions_and_epsilon() {
        let l = p("foo: 1.2, 1.3 → 1.4, -8.0 KiB");
        assert_eq!(l.old, v(&["1.2", "1.3"]));
        assert_eq!(l.new, v(&["1.4"]));
        assert_eq!(l.size_delta, Some(-8192));
        let e = p("source: ε → 2.1");
        assert_eq!(e.old, v(&[""]));
        let m = p("linux: 6.6.1, 6.6.1-modules → 6.6.8, 6.6.8-modules, +1.5 MiB");
        assert_eq!(m.new, v(&["6.6.8", "6.6.8-modules"]));
        assert_eq!(m.size_delta, Some(1_572_864));
    }

    #[test]
    fn units_and_signs() {
        assert_eq!(parse_size("+1.0 KiB"), Some(1024));
        assert_eq!(parse_size("-2.5 MiB"), Some(-2_621_440));
        assert_eq!(parse_size("1.0 GiB"), Some(1 << 30));
        assert_eq!(parse_size("+1.0 TiB"), Some(1 << 40));
        assert_eq!(parse_size("+100 B"), Some(100));
        assert_eq!(parse_size("+6597.8 KiB"), Some(6_756_147));
        for bad in [
            "",
            "+",
            "KiB",
            "+1.0",
            "+1.0 kb",
            "+1..0 KiB",
            "+. KiB",
            "+1e3 KiB",
            "+inf KiB",
            "+nan KiB",
            "++1 KiB",
            "1.0KiB",
            "+-1 KiB",
        ] {
            assert_eq!(parse_size(bad), None, "{bad:?}");
        }
        assert_eq!(parse_size("+99999999999999999999 EiB"), None);
    }

    #[test]
    fn ansi_is_stripped_and_indent_ignored() {
        let out = "htop: \u{2205} \u{2192} 3.3.0, \x1b[31;1m+293.6 KiB\x1b[0m\n\
                   \x1b[1m  k3s: 1.30.2 \u{2192} 1.31.0, \x1b[32;1m-97.7 KiB\x1b[0m\n\n   \n";
        let d = parse(out);
        assert!(d.unparsed.is_empty(), "{:?}", d.unparsed);
        assert_eq!(d.lines.len(), 2);
        assert_eq!(d.lines[0].line, "htop: ∅ → 3.3.0, +293.6 KiB");
        assert_eq!(d.lines[1].name, "k3s");
        assert_eq!(d.lines[1].size_delta, Some(-100_045));
        assert_eq!(
            strip_ansi("a\x1b]0;title\x07b\x1b]8;;x\x1b\\c\x1bMd\x1b"),
            "abcd"
        );
        assert!(matches!(strip_ansi("plain"), Cow::Borrowed("plain")));
    }

    #[test]
    fn garbage_is_kept_not_dropped() {
        let garbage = [
            "error: path '/nix/store/x' is not valid",
            "Version 1 -> 2:",
            "warning: something",
            "foo:",
            ": 1.0 → 2.0",
            "foo bar: 1 → 2",
            "foo: 1.0 → ",
            "foo: → 2.0",
            "foo: ∅ → ∅",
            "foo: 1.0 2.0",
            "foo: 1.0 → 2.0 → 3.0",
            "foo: 1.0 → 2.0, ",
            "foo: 1.0, → 2.0",
            "foo: ∅, 1.0 → 2.0",
            "foo: 1.0 → 2.0, +1.0 XiB",
            "foo: +1.0 XiB",
            "foo: 1,0 → 2",
            "\u{0}\u{1}\u{2}",
        ];
        let text = garbage.join("\n") + "\nlinux: 6.6.1 → 6.6.8\n";
        let d = parse(&text);
        assert_eq!(d.lines.len(), 1);
        assert_eq!(d.lines[0].name, "linux");
        assert_eq!(
            d.unparsed,
            garbage.iter().map(|s| s.trim()).collect::<Vec<_>>()
        );
    }

    /// What must hold for any input (the cargo-fuzz target in tests/fuzz checks the same).
    fn check_invariants(text: &str) {
        let parsed = parse(text);
        let non_blank = text
            .lines()
            .filter(|l| !strip_ansi(l).trim().is_empty())
            .count();
        assert_eq!(
            parsed.lines.len() + parsed.unparsed.len(),
            non_blank,
            "{text:?}"
        );
        for l in &parsed.lines {
            assert!(!l.name.is_empty() && !l.name.contains(char::is_whitespace));
            assert!(
                l.old
                    .iter()
                    .chain(&l.new)
                    .all(|v| !v.contains(char::is_whitespace))
            );
            assert!(!(l.old.is_empty() && l.new.is_empty()) || l.size_delta.is_some());
            assert_eq!(parse_line(&l.line).as_ref(), Some(l), "{text:?}");
        }
    }

    /// Random mutations of real lines and random text, with a fixed seed: no panic, no lost
    /// line (a stand-in for the fuzz target where nightly Rust is missing).
    #[test]
    fn random_inputs_never_lose_lines() {
        use rand::{Rng, SeedableRng, rngs::StdRng};
        let mut rng = StdRng::seed_from_u64(0x00c1_05ed);
        let alphabet: Vec<char> = "ab1.-: ,→∅ε+KiBMG\x1b[0m31;\t\r\n\u{0}é".chars().collect();
        let real = [
            "linux: 6.6.1 → 6.6.8, \x1b[31;1m+195.3 KiB\x1b[0m",
            "htop: ∅ → 3.3.0, +293.6 KiB",
            "nfs-utils: 2.6.4 → ∅, -196.0 KiB",
            "openssh: +43.9 KiB",
            "foo: 1.2, 1.3 → ε, -1.0 GiB",
        ];
        for round in 0..20_000 {
            let mut chars: Vec<char> = if round % 4 == 0 {
                (0..rng.random_range(0..60))
                    .map(|_| alphabet[rng.random_range(0..alphabet.len())])
                    .collect()
            } else {
                real[rng.random_range(0..real.len())].chars().collect()
            };
            for _ in 0..rng.random_range(0..4) {
                let at = rng.random_range(0..=chars.len());
                match rng.random_range(0..3) {
                    0 if at < chars.len() => {
                        chars.remove(at);
                    }
                    1 if at < chars.len() => {
                        chars[at] = alphabet[rng.random_range(0..alphabet.len())]
                    }
                    _ => chars.insert(at, alphabet[rng.random_range(0..alphabet.len())]),
                }
            }
            check_invariants(&chars.into_iter().collect::<String>());
        }
    }

    #[test]
    fn crlf_and_identical_output() {
        assert_eq!(parse(""), ParsedDiff::default());
        let d = parse("k3s: 1.30.2 → 1.31.0\r\n");
        assert_eq!(d.lines[0].new, v(&["1.31.0"]));
    }
}
