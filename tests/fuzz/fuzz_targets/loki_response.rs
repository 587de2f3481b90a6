//! Any bytes as a Loki `query_range` answer (status and body). The check is [`homeinfra_tui_fuzz::checks::loki_response`], which
//! the normal suite also runs over the committed corpus (tests/offline/fuzz_corpus.rs).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| homeinfra_tui_fuzz::checks::loki_response(data));
