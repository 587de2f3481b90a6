use std::process::ExitCode;

use clap::Parser;
use homeinfra_tui::cli::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if rustls::crypto::ring::default_provider()
        .install_default()
        .is_err()
    {
        eprintln!("error: could not install the TLS crypto provider");
        return ExitCode::from(3);
    }
    if let Err(e) = color_eyre::config::HookBuilder::default()
        .display_env_section(false)
        .install()
    {
        eprintln!("error: {e}");
        return ExitCode::from(3);
    }
    let code = homeinfra_tui::commands::main(cli);
    ExitCode::from(code)
}
