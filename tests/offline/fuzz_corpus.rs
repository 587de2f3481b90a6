//! The fuzz targets' regression cases, without fuzzing: every file of the committed, minimised
//! corpus (tests/fuzz/corpus/<target>/) and every input that once broke a check
//! (tests/fuzz/regressions/<target>/) goes through the same check the fuzz target runs
//! (tests/fuzz/src/checks.rs, compiled here too).

use std::path::Path;

#[path = "../fuzz/src/checks.rs"]
mod checks;

/// The files of `dir`, sorted (none when it does not exist).
fn inputs(dir: &Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<_> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn every_corpus_and_regression_input_passes_its_fuzz_check() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz");
    let mut failures = Vec::new();
    for (target, check) in checks::TARGETS {
        let corpus = inputs(&root.join("corpus").join(target));
        // A target without a corpus was never run: the committed corpus is its evidence.
        assert!(
            !corpus.is_empty(),
            "tests/fuzz/corpus/{target}/ is empty: run `cargo +nightly fuzz run --fuzz-dir tests/fuzz {target}` and `cargo fuzz cmin` it"
        );
        for file in corpus
            .into_iter()
            .chain(inputs(&root.join("regressions").join(target)))
        {
            let data = std::fs::read(&file).unwrap();
            if std::panic::catch_unwind(|| check(&data)).is_err() {
                failures.push(file.display().to_string());
            }
        }
    }
    assert!(failures.is_empty(), "fuzz checks failed on: {failures:#?}");
}
