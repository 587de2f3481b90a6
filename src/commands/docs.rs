//! `completions SHELL` and `man`: generated from the same clap definitions as the parser, so
//! they cannot drift from what the program accepts.

use std::io::Write;

use clap::CommandFactory;
use color_eyre::eyre::{Result, WrapErr};

use crate::cli::{Cli, Shell};

const BIN: &str = "homeinfra-tui";

/// Print the completion script for `shell`.
pub fn completions(shell: Shell) -> Result<u8> {
    let mut cmd = Cli::command();
    let generator = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    // Into memory first: clap_complete panics on a write error (a closed pipe).
    let mut script = Vec::new();
    clap_complete::generate(generator, &mut cmd, BIN, &mut script);
    let mut out = std::io::stdout().lock();
    out.write_all(&script)
        .and_then(|_| out.flush())
        .wrap_err("cannot write the completions")?;
    Ok(0)
}

/// Print the manual page (roff): the command and its global options, then each subcommand
/// with its synopsis and options.
pub fn man() -> Result<u8> {
    let cmd = Cli::command();
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .render(&mut page)
        .wrap_err("cannot render the manual page")?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let sub = sub.clone().name(format!("{BIN} {}", sub.get_name()));
        let man = clap_mangen::Man::new(sub);
        man.render_synopsis_section(&mut page)
            .and_then(|_| man.render_description_section(&mut page))
            .and_then(|_| man.render_options_section(&mut page))
            .wrap_err("cannot render the manual page")?;
    }
    let mut out = std::io::stdout().lock();
    out.write_all(&page)
        .and_then(|_| out.flush())
        .wrap_err("cannot write the manual page")?;
    Ok(0)
}
