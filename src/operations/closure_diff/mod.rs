//! Closure diffs: run nix, parse `nix store diff-closures`, classify the changes.

pub mod classify;
pub mod parse;
