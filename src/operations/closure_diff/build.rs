//! Building a host's system from a flake (`nix build --json`, never writing the lock file).

use color_eyre::eyre::{Result, WrapErr, eyre};
use tokio_util::sync::CancellationToken;

use super::nix::{Nix, Reporter};

/// The installable of a host's system: `<flake>#nixosConfigurations.<host>.config.system.build.toplevel`.
pub fn toplevel_installable(flake: &str, host: &str) -> String {
    let simple = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    let attr = if simple {
        host.to_string()
    } else {
        format!("\"{}\"", host.replace('\\', "\\\\").replace('"', "\\\""))
    };
    format!("{flake}#nixosConfigurations.{attr}.config.system.build.toplevel")
}

/// Build a host's system from `flake` with its lock as it is (never writing the lock file);
/// returns the store path. `extra` goes before the installable (e.g. `--recreate-lock-file`).
pub async fn build_toplevel(
    nix: &Nix,
    flake: &str,
    host: &str,
    extra: &[&str],
    reporter: &Reporter,
    cancel: &CancellationToken,
) -> Result<String> {
    let installable = toplevel_installable(flake, host);
    let mut args = vec![
        "build",
        "--no-link",
        "--json",
        "--no-write-lock-file",
        "--print-build-logs",
    ];
    args.extend_from_slice(extra);
    args.push(&installable);
    let out = nix.run(args, reporter, cancel).await?;
    parse_build_json(&out).wrap_err_with(|| format!("building {installable}"))
}

/// `nix build --json` → the `out` path of the first result. (`--print-out-paths` needs
/// Nix ≥ 2.9.)
fn parse_build_json(json: &str) -> Result<String> {
    let value: serde_json::Value =
        serde_json::from_str(json).wrap_err("`nix build --json` printed invalid JSON")?;
    value
        .get(0)
        .and_then(|r| r.get("outputs"))
        .and_then(|o| o.get("out"))
        .and_then(|p| p.as_str())
        .map(str::to_string)
        .ok_or_else(|| eyre!("`nix build --json` printed no output path: {json}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installables() {
        assert_eq!(
            toplevel_installable("/src/infra", "node1"),
            "/src/infra#nixosConfigurations.node1.config.system.build.toplevel"
        );
        assert_eq!(
            toplevel_installable(".", "a.b"),
            ".#nixosConfigurations.\"a.b\".config.system.build.toplevel"
        );
    }

    #[test]
    fn build_json() {
        let j = r#"[{"drvPath":"/nix/store/x.drv","outputs":{"out":"/nix/store/y"}}]"#;
        assert_eq!(parse_build_json(j).unwrap(), "/nix/store/y");
        assert!(parse_build_json("[]").is_err());
    }
}
