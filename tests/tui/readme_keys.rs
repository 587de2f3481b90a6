//! The README's key tables are generated from the default keymap (src/app/keymap/defaults.toml):
//! this test fails when they drift. `UPDATE_README=1 cargo test --test tui readme_keys`
//! rewrites them.

use std::path::Path;

use homeinfra_tui::app::Keymap;
use homeinfra_tui::app::keymap::Layer;

const BEGIN: &str = "<!-- keys:begin (generated from src/app/keymap/defaults.toml by tests/tui/readme_keys.rs) -->\n";
const END: &str = "<!-- keys:end -->\n";

fn title(layer: Layer) -> &'static str {
    match layer {
        Layer::Global => "Everywhere",
        Layer::Dashboard => "Dashboard",
        Layer::Diff => "Diff view (`d`)",
        Layer::Upgrade => "Upgrade view (`U`)",
        Layer::Confirm => "A question",
        Layer::Input => "Typing a filter",
    }
}

fn tables() -> String {
    let km = Keymap::with_overrides(&Default::default()).unwrap();
    let mut out = String::new();
    for layer in Layer::ALL {
        let rows: Vec<_> = km
            .bindings(layer)
            .iter()
            .filter(|b| !b.keys.is_empty())
            .collect();
        if rows.is_empty() {
            continue;
        }
        out.push_str(&format!(
            "**{}** (`[ui.keys.{}]`)\n\n",
            title(layer),
            layer.name()
        ));
        out.push_str("| keys | action | what it does |\n|---|---|---|\n");
        for b in rows {
            let keys: Vec<String> = b
                .keys
                .iter()
                .map(|k| format!("`{}`", k.to_string().replace('|', "\\|")))
                .collect();
            let action = serde_json::to_value(b.action)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            out.push_str(&format!(
                "| {} | `{action}` | {} |\n",
                keys.join(" "),
                b.desc
            ));
        }
        out.push('\n');
    }
    out
}

#[test]
fn readme_key_tables_match_the_keymap() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
    let readme = std::fs::read_to_string(&path).unwrap();
    let (Some(a), Some(b)) = (readme.find(BEGIN), readme.find(END)) else {
        panic!("README.md has no generated key table (markers {BEGIN:?} … {END:?})");
    };
    let current = &readme[a + BEGIN.len()..b];
    let want = tables();
    if current != want {
        if std::env::var_os("UPDATE_README").is_some() {
            let new = format!("{}{BEGIN}{want}{}", &readme[..a], &readme[b..]);
            std::fs::write(&path, new).unwrap();
            return;
        }
        panic!(
            "README.md's key tables drifted from the keymap; run \
             `UPDATE_README=1 cargo test --test tui readme_keys`.\nWant:\n{want}"
        );
    }
}

/// Every picture the README shows is committed (`scripts/screenshots.sh` writes them).
#[test]
fn every_readme_image_exists() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let mut images = Vec::new();
    let mut rest = readme.as_str();
    while let Some(i) = rest.find("](") {
        rest = &rest[i + 2..];
        let Some(end) = rest.find(')') else { break };
        let target = &rest[..end];
        if target.ends_with(".png") {
            images.push(target.to_string());
        }
    }
    assert!(
        images.iter().any(|i| i == "screenshots/upgrade.png"),
        "{images:?}"
    );
    for img in &images {
        assert!(
            root.join(img).is_file(),
            "README shows {img}, which is missing"
        );
    }
}
