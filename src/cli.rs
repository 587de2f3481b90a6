//! Command-line interface.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// A keyboard-driven dashboard for a small NixOS + k3s + Longhorn homelab: health of every
/// host, node, etcd member and volume; closure diffs; guarded rolling upgrades.
#[derive(Debug, Parser)]
#[command(name = "homeinfra-tui", version, about, long_about = None)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// Config file (default: $XDG_CONFIG_HOME/homeinfra-tui/config.toml, if present).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Inventory of hosts, the file the Nix flake reads.
    #[arg(long, global = true, value_name = "FILE", default_value = "hosts.json")]
    pub hosts: PathBuf,
    /// Kubeconfig file (default: as kubectl: $KUBECONFIG, ~/.kube/config, in-cluster).
    #[arg(long, global = true, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context (default: the current context).
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,
    /// Theme: a built-in name (default, light, high-contrast) or a path to a theme file.
    #[arg(long, global = true, value_name = "NAME|PATH")]
    pub theme: Option<String>,
    /// Never change anything: no cordon, uncordon or upgrade.
    #[arg(long, global = true)]
    pub read_only: bool,
    /// No network at all: inventory and config only.
    #[arg(long, global = true)]
    pub offline: bool,
    /// More detail in the log file (-v debug, -vv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Log file (default: $XDG_STATE_HOME/homeinfra-tui/homeinfra-tui.log).
    #[arg(long, global = true, value_name = "FILE")]
    pub log_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// The full-screen dashboard (the default).
    Dashboard,
    /// The dashboard on the built-in simulated homelab.
    Demo(DemoArgs),
    /// Serve the simulated homelab for other clients (kubectl, this tool).
    Sim(SimArgs),
    /// One-shot health check: exit 0 healthy, 1 warnings, 2 critical, 3 could not check.
    ///
    /// Exit 3 ("could not check") when a source could not be read (source.*.unreachable,
    /// Longhorn its own beside the nodes and pods) or a host's facts could not be read over SSH
    /// (unreachable, login refused, host key not yet trusted, the facts command failing), and
    /// nothing known is critical; every other source is still read and reported. A host that
    /// is really down is critical (exit 2) through its node NotReady or its etcd member down;
    /// a changed SSH host key is critical too.
    Check(CheckArgs),
    /// Closure diff of a host: what an update would change, and whether it needs a reboot.
    Diff(DiffArgs),
    /// Headless guarded rolling upgrade.
    Upgrade(UpgradeArgs),
    /// One node's maintenance: the upgrade's guards, its lock, the node's alerts silenced,
    /// cordon and drain (PodDisruptionBudgets respected); the node then stays in maintenance
    /// (a background engine holds it) until `uncordon NODE`.
    Drain(DrainArgs),
    /// End a node's maintenance (uncordon it, expire its silences, release the lock), or
    /// uncordon a node cordoned by hand or by a run that is over.
    Uncordon(UncordonArgs),
    /// The config file: a commented starting point, a check of yours, its JSON Schema.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Shell completions for bash, zsh or fish, on standard output.
    Completions(CompletionsArgs),
    /// The manual page (roff), on standard output: `homeinfra-tui man | man -l -`.
    Man,
}

#[derive(Debug, Clone, Subcommand)]
pub enum ConfigCommand {
    /// Print a complete, commented config.toml: every section and key with its default and
    /// why, filled from what is found (the kubeconfig's context, the inventory's etcd members,
    /// Longhorn's namespace when the cluster answers). Uses --kubeconfig, --context, --hosts.
    Init,
    /// Check a config file (default: the one the dashboard would read) and print the effective
    /// configuration, defaults included, with secrets redacted.
    Check {
        /// The file to check (default: --config, else $XDG_CONFIG_HOME/homeinfra-tui/config.toml).
        file: Option<PathBuf>,
    },
    /// Print the JSON Schema of the config file (for editors: taplo, Even Better TOML).
    Schema,
}

#[derive(Debug, Clone, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: Shell,
}

/// Shells with completions (the ones clap_complete generates and we test).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Debug, Clone, Args)]
pub struct SimModelArgs {
    /// Number of simulated nodes (3 servers + agents); default: the hosts of --hosts.
    #[arg(long, value_name = "N")]
    pub nodes: Option<usize>,
    /// Fault scenario to inject (repeatable): healthy, degraded-volume, last-replica, ...
    #[arg(long = "scenario", value_name = "NAME")]
    pub scenarios: Vec<String>,
    /// Time scale for all simulated delays (2 = twice as fast).
    #[arg(long, value_name = "X", default_value_t = 1.0)]
    pub speed: f64,
    /// Nothing moves by itself: no metric wiggle, no new log lines, no etcd progress, no lease
    /// renewals (writes and faults still act); for measuring an idle dashboard.
    #[arg(long)]
    pub frozen: bool,
    /// Pods per node on average (filler pods in `apps`; default 20 beyond 10 nodes).
    #[arg(long, value_name = "N")]
    pub pods_per_node: Option<usize>,
    /// Longhorn volumes (default: one per host).
    #[arg(long, value_name = "N")]
    pub volumes: Option<usize>,
}

#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    #[command(flatten)]
    pub model: SimModelArgs,
}

#[derive(Debug, Clone, Args)]
pub struct SimArgs {
    /// Directory for the generated kubeconfig, config.toml and hosts.json.
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    #[command(flatten)]
    pub model: SimModelArgs,
}

#[derive(Debug, Clone, Args)]
pub struct CheckArgs {
    /// Print a JSON document instead of text.
    #[arg(long)]
    pub json: bool,
    /// Give up on sources after this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 15)]
    pub timeout: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DiffMode {
    /// Deployed system vs. what the flake builds now.
    Drift,
    /// What the flake builds with its lock vs. with an updated lock.
    Update,
}

#[derive(Debug, Clone, Args)]
pub struct DiffArgs {
    /// Host id or hostname from the inventory.
    #[arg(required_unless_present = "from")]
    pub host: Option<String>,
    #[arg(long, value_enum, default_value_t = DiffMode::Drift)]
    pub mode: DiffMode,
    /// Diff two store paths directly (with --to).
    #[arg(long, value_name = "PATH", requires = "to", conflicts_with = "host")]
    pub from: Option<PathBuf>,
    #[arg(long, value_name = "PATH", requires = "from")]
    pub to: Option<PathBuf>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct DrainArgs {
    /// The node (its hostname or inventory id).
    pub node: String,
    /// Do not ask for confirmation.
    #[arg(long)]
    pub yes: bool,
    /// Take over a stale upgrade lock.
    #[arg(long)]
    pub force_unlock: bool,
    /// Print JSON lines.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct UncordonArgs {
    /// The node (its hostname or inventory id).
    pub node: String,
    /// Print JSON lines.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct UpgradeArgs {
    /// Only these hosts (comma-separated ids or hostnames).
    #[arg(long, value_delimiter = ',', value_name = "H1,H2")]
    pub only: Vec<String>,
    /// Show the plan and every guard's verdict; change nothing (works with --read-only).
    #[arg(long, conflicts_with_all = ["resume", "abandon"])]
    pub dry_run: bool,
    /// Do not ask for confirmation.
    #[arg(long)]
    pub yes: bool,
    /// Resume an interrupted run.
    #[arg(long, value_name = "RUN", conflicts_with = "abandon")]
    pub resume: Option<String>,
    /// Abandon an interrupted run: undo only its cordons and release the lock.
    #[arg(long, value_name = "RUN")]
    pub abandon: Option<String>,
    /// Take over a stale upgrade lock.
    #[arg(long)]
    pub force_unlock: bool,
    /// Print JSON lines.
    #[arg(long)]
    pub json: bool,
    /// Run in the background: the engine gets a session of its own (no terminal, no hangup
    /// when this terminal or SSH session goes), its output goes to the run's log; prints the
    /// run id, the engine's pid and how to follow it.
    #[arg(long, conflicts_with_all = ["dry_run", "abandon", "attach"])]
    pub detach: bool,
    /// Follow a running run from another terminal (its journal, then live). Ctrl-C detaches:
    /// the run goes on. Type pause, resume, abort, retry, skip NODE, approve or decline to
    /// control it.
    #[arg(long, value_name = "RUN", conflicts_with_all = ["dry_run", "resume", "abandon", "plan", "only", "force_unlock"])]
    pub attach: Option<String>,
    /// With --attach: ask the run to abort at its next safe point, then follow it to the end.
    #[arg(long, requires = "attach")]
    pub abort: bool,
    /// Run exactly this plan (JSON: the `plan` of `upgrade --dry-run --json`), e.g. the one
    /// the dashboard showed and the operator confirmed.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["resume", "abandon", "only"])]
    pub plan: Option<PathBuf>,
    /// On a refusal, a failed step or a reboot question, wait for the operator's control (over
    /// the control socket: the dashboard, `--attach`) instead of stopping.
    #[arg(long)]
    pub wait_for_operator: bool,
    /// Stop when this process ends (the demo: its simulated cluster lives there).
    #[arg(long, value_name = "PID", hide = true)]
    pub stop_with_pid: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn globals_after_subcommand() {
        let cli = Cli::try_parse_from([
            "homeinfra-tui",
            "check",
            "--json",
            "--offline",
            "--hosts",
            "x.json",
        ])
        .unwrap();
        assert!(cli.global.offline);
        assert_eq!(cli.global.hosts, PathBuf::from("x.json"));
        assert!(matches!(
            cli.command,
            Some(Command::Check(CheckArgs { json: true, .. }))
        ));
    }

    #[test]
    fn dry_run_conflicts_with_resume_and_abandon() {
        for args in [
            ["homeinfra-tui", "upgrade", "--dry-run", "--resume", "r1"],
            [
                "homeinfra-tui",
                "--read-only",
                "upgrade",
                "--dry-run",
                "--abandon",
            ],
        ] {
            let mut v: Vec<&str> = args.to_vec();
            if v.last() == Some(&"--abandon") {
                v.push("r1");
            }
            let e = Cli::try_parse_from(v).unwrap_err();
            assert_eq!(e.kind(), clap::error::ErrorKind::ArgumentConflict, "{e}");
        }
    }

    #[test]
    fn default_is_dashboard() {
        let cli = Cli::try_parse_from(["homeinfra-tui", "--offline"]).unwrap();
        assert!(cli.command.is_none());
    }
}
