use std::process::ExitCode;

use clap::Parser;
use homeinfra_tui::cli::Cli;

fn main() -> ExitCode {
    limit_malloc_arenas();
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

/// glibc gives every thread that allocates its own arena; with the async runtime's threads
/// that keeps many mostly empty arenas alive. Two are plenty for this program.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only tunes the allocator; called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}
