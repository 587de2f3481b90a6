//! What the local store says of a system: its real store path, its boot links, its closure
//! size (`nix path-info -S`).

use std::path::Path;

use color_eyre::eyre::{Result, WrapErr, eyre};
use tokio_util::sync::CancellationToken;

use super::classify;
use super::nix::{Nix, Reporter};
use crate::model::closure::BootLink;

/// `/run/current-system`, `./result` → the store path it points to. A missing path is an
/// error that names it.
pub(super) async fn resolve_store_path(path: &str) -> Result<String> {
    let real = tokio::fs::canonicalize(path)
        .await
        .wrap_err_with(|| format!("system path `{path}` is not in the local store"))?;
    real.into_os_string()
        .into_string()
        .map_err(|p| eyre!("system path {p:?} is not valid UTF-8"))
}

/// The `kernel`, `initrd` and `kernel-modules` links of both systems (full target paths).
pub async fn read_boot_links(old: &Path, new: &Path) -> Vec<BootLink> {
    let mut links = Vec::new();
    for name in classify::BOOT_LINKS {
        let target = |system: &Path| {
            let link = system.join(name);
            async move {
                tokio::fs::read_link(&link)
                    .await
                    .ok()
                    .map(|t| t.to_string_lossy().into_owned())
            }
        };
        links.push(BootLink {
            name: name.to_string(),
            old: target(old).await,
            new: target(new).await,
        });
    }
    links
}

/// `nix path-info -S --json PATHS` → (path, closure size). Nix 2.8 prints an array of
/// objects with `path`, newer Nix an object keyed by path.
pub async fn closure_sizes(
    nix: &Nix,
    paths: &[&str],
    reporter: &Reporter,
    cancel: &CancellationToken,
) -> Result<Vec<(String, u64)>> {
    let mut args = vec!["path-info", "-S", "--json"];
    args.extend_from_slice(paths);
    let out = nix.run(args, reporter, cancel).await?;
    parse_path_info(&out)
}

/// The (path, closure size) pairs of `nix path-info -S --json`'s output.
pub(crate) fn parse_path_info(json: &str) -> Result<Vec<(String, u64)>> {
    let value: serde_json::Value =
        serde_json::from_str(json).wrap_err("`nix path-info --json` printed invalid JSON")?;
    let size = |v: &serde_json::Value| v.get("closureSize").and_then(|s| s.as_u64());
    let mut out = Vec::new();
    match &value {
        serde_json::Value::Array(items) => {
            for item in items {
                if let (Some(path), Some(s)) =
                    (item.get("path").and_then(|p| p.as_str()), size(item))
                {
                    out.push((path.to_string(), s));
                }
            }
        }
        serde_json::Value::Object(map) => {
            for (path, item) in map {
                if let Some(s) = size(item) {
                    out.push((path.clone(), s));
                }
            }
        }
        _ => {
            return Err(eyre!(
                "`nix path-info --json` printed neither a list nor an object"
            ));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_info_both_formats() {
        let old = r#"[{"path":"/nix/store/a","narSize":1,"closureSize":96},{"path":"/nix/store/b","closureSize":7}]"#;
        assert_eq!(
            parse_path_info(old).unwrap(),
            [
                ("/nix/store/a".to_string(), 96),
                ("/nix/store/b".to_string(), 7)
            ]
        );
        let new = r#"{"/nix/store/a":{"closureSize":5}}"#;
        assert_eq!(
            parse_path_info(new).unwrap(),
            [("/nix/store/a".to_string(), 5)]
        );
        assert!(parse_path_info("oops").is_err());
    }
}
