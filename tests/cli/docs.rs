//! `completions` and `man` come from the same clap definitions as the parser: every
//! subcommand appears in each, and each output is valid for its consumer.

use std::process::{Command, Stdio};

const SUBCOMMANDS: &[&str] = &[
    "dashboard",
    "demo",
    "sim",
    "check",
    "diff",
    "upgrade",
    "config",
    "completions",
    "man",
];

fn run(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_homeinfra-tui"))
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn completions_for_each_shell_name_every_subcommand() {
    for shell in ["bash", "zsh", "fish"] {
        let script = run(&["completions", shell]);
        for sub in SUBCOMMANDS {
            assert!(script.contains(sub), "{shell} completions lack `{sub}`");
        }
        // Flags of a subcommand, not only the names.
        assert!(script.contains("dry-run"), "{shell}: no upgrade flags");
        match shell {
            "bash" => {
                assert!(script.contains("complete -F _homeinfra__tui"), "{script}");
                // bash itself accepts the script.
                let mut child = Command::new("bash")
                    .arg("-n")
                    .stdin(Stdio::piped())
                    .spawn()
                    .unwrap();
                use std::io::Write;
                child
                    .stdin
                    .take()
                    .unwrap()
                    .write_all(script.as_bytes())
                    .unwrap();
                assert!(
                    child.wait().unwrap().success(),
                    "bash -n refused the script"
                );
            }
            "zsh" => assert!(script.starts_with("#compdef homeinfra-tui"), "{script}"),
            _ => assert!(script.contains("complete -c homeinfra-tui"), "{script}"),
        }
    }
}

#[test]
fn unknown_shell_is_refused_with_the_choices() {
    let out = Command::new(env!("CARGO_BIN_EXE_homeinfra-tui"))
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bash") && err.contains("zsh") && err.contains("fish"),
        "{err}"
    );
}

#[test]
fn man_page_is_roff_with_every_subcommand_and_renders() {
    let page = run(&["man"]);
    assert!(
        page.contains("\n.TH homeinfra-tui 1 "),
        "not a man page: {page}"
    );
    for sub in SUBCOMMANDS {
        assert!(
            page.contains(&format!("\\fBhomeinfra\\-tui {sub}\\fR")),
            "man page lacks a section for `{sub}`"
        );
    }
    assert!(page.contains("\\-\\-read\\-only"), "global options missing");
    // groff (man's formatter) renders it without complaint.
    let Some(groff) = crate::common::require_program("groff") else {
        return;
    };
    let mut child = Command::new(groff)
        .args(["-man", "-Tutf8", "-ww", "-z"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(page.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let warnings = String::from_utf8_lossy(&out.stderr);
    assert!(warnings.trim().is_empty(), "groff warnings: {warnings}");
}

/// A printing command whose reader went away (`homeinfra-tui man | head -1`) ends as other Unix
/// tools do, by SIGPIPE, without a panic message on stderr.
#[test]
fn a_printing_command_ends_quietly_when_its_reader_goes_away() {
    use std::os::unix::process::ExitStatusExt;
    for args in [&["man"][..], &["completions", "bash"][..]] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_homeinfra-tui"))
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn homeinfra-tui");
        // Close the reading end before the program writes anything.
        drop(child.stdout.take());
        let out = child.wait_with_output().expect("wait");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert_eq!(
            out.status.signal(),
            Some(libc::SIGPIPE),
            "{args:?} should end by SIGPIPE: {:?}, stderr: {stderr}",
            out.status
        );
    }
}
