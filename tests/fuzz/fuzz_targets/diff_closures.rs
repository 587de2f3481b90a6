//! Any bytes as `nix store diff-closures` output: the parser never panics, never drops a
//! line, and the classifier and text renderer accept whatever it produced.
#![no_main]

use homeinfra_tui_fuzz::operations::closure_diff::{classify, parse, render};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
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
});
