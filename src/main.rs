use std::process::ExitCode;

use clap::Parser;
use homeinfra_tui::cli::Cli;

fn main() -> ExitCode {
    limit_malloc_arenas();
    let cli = Cli::parse();
    end_quietly_on_closed_pipe(&cli);
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

/// The commands that only print (`check`, `diff`, `config`, `completions`, `man`) end
/// quietly when their reader goes away (`homeinfra-tui diff node3 | head`), as other Unix
/// tools do, instead of failing on the broken pipe. The dashboard, the simulator and the
/// upgrade keep ignoring SIGPIPE: a run must never die because whoever watched its output left.
fn end_quietly_on_closed_pipe(cli: &Cli) {
    use homeinfra_tui::cli::Command;
    if matches!(
        cli.command,
        Some(
            Command::Check(_)
                | Command::Diff(_)
                | Command::Config(_)
                | Command::Completions(_)
                | Command::Man
        )
    ) {
        // SAFETY: restoring a signal's default disposition before any thread exists.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
}

/// glibc gives every thread that allocates its own arena; with the async runtime's threads
/// that keeps many mostly empty arenas alive. Two are plenty for this program.
///
/// glibc also raises its mmap threshold each time a large block is freed, so the next large
/// blocks (a big API answer, a connection's grown read buffer) come from an arena and stay
/// resident after they are freed. A fixed threshold keeps every block of 128 KiB or more in
/// its own mapping, returned when it is freed.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only tunes the allocator; called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}
