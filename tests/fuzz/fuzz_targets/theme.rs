//! Any bytes as a theme file: loaded, or refused. The check is [`homeinfra_tui_fuzz::checks::theme`], which
//! the normal suite also runs over the committed corpus (tests/offline/fuzz_corpus.rs).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| homeinfra_tui_fuzz::checks::theme(data));
