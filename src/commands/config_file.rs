//! `config init`, `config check [FILE]`, `config schema`: a commented starting point generated
//! from the config's own schema (so it lists every key the program reads, with its default and
//! its doc line), a check that prints the effective configuration with secrets redacted, and
//! the JSON Schema for editors.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use color_eyre::eyre::{Result, WrapErr, eyre};
use serde_json::{Map, Value};

use crate::cli::{ConfigCommand, GlobalArgs};
use crate::config::{self, Config};
use crate::inventory::{self, Inventory};

/// Exit status of `config check` on a config that cannot be used.
const EXIT_INVALID: u8 = 1;

pub async fn run(global: &GlobalArgs, cmd: &ConfigCommand) -> Result<u8> {
    match cmd {
        ConfigCommand::Init => {
            let (config, notes) = discover(global).await;
            print!("{}", render(&config, &notes)?);
            Ok(0)
        }
        ConfigCommand::Check { file } => Ok(check(file.as_deref().or(global.config.as_deref()))),
        ConfigCommand::Schema => {
            let text =
                serde_json::to_string_pretty(&schema()).wrap_err("cannot encode the schema")?;
            println!("{text}");
            Ok(0)
        }
    }
}

/// The JSON Schema of the config file, from the config types themselves.
pub fn schema() -> Value {
    let mut s = serde_json::to_value(schemars::schema_for!(Config)).unwrap_or(Value::Null);
    if let Some(o) = s.as_object_mut() {
        o.insert(
            "title".into(),
            Value::String("homeinfra-tui config.toml".into()),
        );
    }
    s
}

/// What `config init` writes: the defaults, plus what it found, with a note per found value.
async fn discover(global: &GlobalArgs) -> (Config, BTreeMap<String, String>) {
    let mut c = Config::default();
    let mut notes = BTreeMap::new();
    if let Some(k) = &global.kubeconfig {
        c.kubernetes.kubeconfig = Some(k.clone());
        notes.insert("kubernetes.kubeconfig".into(), "from --kubeconfig".into());
    }
    match kube_context(global) {
        Ok(Some((ctx, from))) => {
            c.kubernetes.context = Some(ctx);
            notes.insert("kubernetes.context".into(), format!("found in {from}"));
        }
        Ok(None) => {}
        Err(e) => {
            notes.insert("kubernetes.context".into(), format!("not found: {e}"));
        }
    }
    if let Some(dir) = global
        .hosts
        .canonicalize()
        .ok()
        .as_deref()
        .and_then(Path::parent)
        && dir.join("flake.nix").is_file()
    {
        c.nix.flake = Some(dir.display().to_string());
        notes.insert(
            "nix.flake".into(),
            format!("the flake beside {}", global.hosts.display()),
        );
    }
    if global.hosts.is_file() {
        match inventory::load(&global.hosts) {
            Ok(inv) => {
                let servers = servers(&inv);
                if !servers.is_empty() {
                    c.etcd.endpoints = servers
                        .iter()
                        .map(|ip| format!("https://{ip}:2379"))
                        .collect();
                    c.etcd.metrics_urls = servers
                        .iter()
                        .map(|ip| format!("http://{ip}:2381/metrics"))
                        .collect();
                    let note = format!("the control planes of {}", global.hosts.display());
                    notes.insert("etcd.endpoints".into(), note.clone());
                    notes.insert("etcd.metrics_urls".into(), note);
                }
            }
            Err(e) => {
                notes.insert("etcd.endpoints".into(), format!("inventory not read: {e}"));
            }
        }
    }
    if !global.offline {
        let ns = tokio::time::timeout(Duration::from_secs(5), longhorn_namespace(&c)).await;
        match ns {
            Ok(Ok(Some(ns))) => {
                notes.insert(
                    "kubernetes.longhorn_namespace".into(),
                    "where the cluster keeps Longhorn's settings".into(),
                );
                c.kubernetes.longhorn_namespace = ns;
            }
            Ok(Ok(None)) => {
                notes.insert(
                    "kubernetes.longhorn_namespace".into(),
                    "the cluster answered but shows no Longhorn settings: the default is kept"
                        .into(),
                );
            }
            Ok(Err(e)) => {
                notes.insert(
                    "kubernetes.longhorn_namespace".into(),
                    format!("not checked: {e}"),
                );
            }
            Err(_) => {
                notes.insert(
                    "kubernetes.longhorn_namespace".into(),
                    "not checked: the cluster did not answer within 5 s".into(),
                );
            }
        }
    }
    (c, notes)
}

fn servers(inv: &Inventory) -> Vec<std::net::Ipv4Addr> {
    inv.hosts
        .iter()
        .filter(|h| h.role.is_control_plane())
        .map(|h| h.ip)
        .collect()
}

/// The context `--context` names, else the kubeconfig's current one, and where it came from.
fn kube_context(global: &GlobalArgs) -> Result<Option<(String, String)>> {
    if let Some(c) = &global.context {
        return Ok(Some((c.clone(), "--context".into())));
    }
    let path = match &global.kubeconfig {
        Some(p) => p.clone(),
        None => match std::env::var_os("KUBECONFIG") {
            Some(v) if !v.is_empty() => match std::env::split_paths(&v).next() {
                Some(p) => p,
                None => return Ok(None),
            },
            _ => match crate::paths::home() {
                Some(h) => h.join(".kube").join("config"),
                None => return Ok(None),
            },
        },
    };
    if !path.is_file() {
        return Ok(None);
    }
    let kc = kube::config::Kubeconfig::read_from(&path)
        .map_err(|e| eyre!("cannot read {}: {e}", path.display()))?;
    Ok(kc
        .current_context
        .filter(|c| !c.is_empty())
        .map(|c| (c, path.display().to_string())))
}

/// The namespace of Longhorn's `Setting` objects, when the cluster answers.
async fn longhorn_namespace(c: &Config) -> Result<Option<String>> {
    use kube::api::{Api, DynamicObject, ListParams};
    use kube::discovery::ApiResource;
    if !crate::sources::kubernetes::config_available(&c.kubernetes) {
        return Err(eyre!("no kubeconfig"));
    }
    let client = crate::sources::kubernetes::client(&c.kubernetes)
        .await
        .map_err(|e| eyre!(e))?;
    let ar = ApiResource {
        group: "longhorn.io".into(),
        version: "v1beta2".into(),
        api_version: "longhorn.io/v1beta2".into(),
        kind: "Setting".into(),
        plural: "settings".into(),
    };
    let api: Api<DynamicObject> = Api::all_with(client, &ar);
    let list = api
        .list(&ListParams::default().limit(1))
        .await
        .map_err(|e| eyre!("{e}"))?;
    Ok(list
        .items
        .first()
        .and_then(|o| o.metadata.namespace.clone()))
}

/// `config check`: exit 0 and the effective config on stdout, or the error naming file, line
/// and key on stderr and exit 1.
fn check(file: Option<&Path>) -> u8 {
    let path: Option<PathBuf> = file.map(Path::to_path_buf).or_else(config::default_path);
    let Some(path) = path else {
        eprintln!("no config file given and no home directory: defaults apply");
        return print_effective(&Config::default(), "defaults");
    };
    if file.is_none() && !path.exists() {
        eprintln!("{}: no such file: defaults apply", path.display());
        return print_effective(&Config::default(), "defaults");
    }
    match config::load(Some(&path)) {
        Ok((c, _)) => {
            eprintln!("{}: ok", path.display());
            print_effective(&c, &path.display().to_string())
        }
        Err(e) => {
            eprintln!("{e}");
            EXIT_INVALID
        }
    }
}

fn print_effective(c: &Config, from: &str) -> u8 {
    let mut v = serde_json::to_value(c).unwrap_or(Value::Null);
    redact(&mut v);
    drop_nulls(&mut v);
    match toml::Value::try_from(&v).and_then(|t| toml::to_string_pretty(&t)) {
        Ok(text) => {
            println!(
                "# The effective configuration ({from}, with every default), secrets redacted."
            );
            print!("{text}");
            0
        }
        Err(e) => {
            eprintln!("cannot print the configuration: {e}");
            crate::commands::EXIT_ERROR
        }
    }
}

/// Userinfo in URLs (`https://user:secret@host/`) becomes `REDACTED@`. The config holds no
/// other secret: passwords and tokens are only named by file or environment variable.
fn redact(v: &mut Value) {
    match v {
        Value::String(s) => *s = config::redact_url(s),
        Value::Array(a) => a.iter_mut().for_each(redact),
        Value::Object(o) => o.values_mut().for_each(redact),
        _ => {}
    }
}

/// Unset keys (TOML has no null) are left out of the printed config.
fn drop_nulls(v: &mut Value) {
    match v {
        Value::Object(o) => {
            o.retain(|_, x| !x.is_null());
            o.values_mut().for_each(drop_nulls);
        }
        Value::Array(a) => a.iter_mut().for_each(drop_nulls),
        _ => {}
    }
}

/// The commented config for `c`, every key of the schema in order: its doc line, its value
/// (commented out when unset), and a note where `config init` found it.
pub fn render(c: &Config, notes: &BTreeMap<String, String>) -> Result<String> {
    let schema = schema();
    let defs = schema
        .get("$defs")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let values = serde_json::to_value(c).wrap_err("cannot encode the configuration")?;
    let mut out = String::from(
        "# homeinfra-tui configuration: every section and key, with its default.\n\
         # Delete what you do not change; a missing key keeps its default.\n\
         # Check it:  homeinfra-tui config check FILE\n\
         # Schema for editors:  homeinfra-tui config schema\n",
    );
    let sections = schema
        .get("properties")
        .and_then(Value::as_object)
        .ok_or_else(|| eyre!("the config schema has no sections"))?;
    for (section, sref) in sections {
        let s = resolve(sref, &defs);
        out.push('\n');
        if let Some(d) = description(&s, sref) {
            push_comment(&mut out, &d);
        }
        out.push_str(&format!("[{section}]\n"));
        let props = s
            .get("properties")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let current = values.get(section).cloned().unwrap_or(Value::Null);
        let mut tables = Vec::new();
        for (key, kref) in &props {
            let k = resolve(kref, &defs);
            let value = current.get(key).cloned().unwrap_or(Value::Null);
            if is_map(&k) {
                tables.push((key.clone(), k, kref.clone(), value));
                continue;
            }
            if let Some(d) = description(&k, kref) {
                push_comment(&mut out, &d);
            }
            let dotted = format!("{section}.{key}");
            if let Some(n) = notes.get(&dotted) {
                push_comment(&mut out, &format!("({n})"));
            }
            if value.is_null() {
                out.push_str(&format!("# {key} = {}\n", placeholder(&k)));
            } else {
                out.push_str(&toml_line(key, &value)?);
            }
        }
        for (key, k, kref, value) in tables {
            out.push('\n');
            if let Some(d) = description(&k, &kref) {
                push_comment(&mut out, &d);
            }
            match value.as_object() {
                Some(m) if !m.is_empty() => {
                    out.push_str(&format!("[{section}.{key}]\n"));
                    for (mk, mv) in m {
                        out.push_str(&toml_line(mk, mv)?);
                    }
                }
                _ => out.push_str(&format!("# [{section}.{key}]\n# name = \"value\"\n")),
            }
        }
    }
    Ok(out)
}

fn push_comment(out: &mut String, text: &str) {
    for line in text.lines() {
        out.push_str("# ");
        out.push_str(line.trim_end());
        out.push('\n');
    }
}

/// A `$ref` (or an `allOf` of one, or an `anyOf` with null) followed to its definition.
fn resolve(s: &Value, defs: &Map<String, Value>) -> Value {
    let follow = |r: &str| {
        r.strip_prefix("#/$defs/")
            .and_then(|n| defs.get(n))
            .cloned()
    };
    if let Some(r) = s.get("$ref").and_then(Value::as_str)
        && let Some(d) = follow(r)
    {
        return d;
    }
    for k in ["allOf", "anyOf", "oneOf"] {
        if let Some(list) = s.get(k).and_then(Value::as_array) {
            let non_null: Vec<&Value> = list
                .iter()
                .filter(|v| v.get("type").and_then(Value::as_str) != Some("null"))
                .collect();
            if let [only] = non_null.as_slice()
                && let Some(r) = only.get("$ref").and_then(Value::as_str)
                && let Some(d) = follow(r)
            {
                return d;
            }
        }
    }
    s.clone()
}

fn description(resolved: &Value, original: &Value) -> Option<String> {
    original
        .get("description")
        .or_else(|| resolved.get("description"))
        .and_then(Value::as_str)
        .map(str::to_string)
}

fn is_map(s: &Value) -> bool {
    s.get("type").and_then(Value::as_str) == Some("object")
        && s.get("additionalProperties").is_some()
        && s.get("properties").is_none()
}

fn types(s: &Value) -> Vec<String> {
    match s.get("type") {
        Some(Value::String(t)) => vec![t.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|t| t.as_str().map(String::from))
            .collect(),
        _ => Vec::new(),
    }
}

/// An example value for an unset key, by its type.
fn placeholder(s: &Value) -> &'static str {
    let t = types(s);
    let has = |n: &str| t.iter().any(|x| x == n);
    if has("integer") || has("number") {
        "0"
    } else if has("array") {
        "[]"
    } else if has("boolean") {
        "false"
    } else {
        "\"\""
    }
}

fn toml_line(key: &str, value: &Value) -> Result<String> {
    let mut t = toml::Table::new();
    t.insert(
        key.to_string(),
        toml::Value::try_from(value).map_err(|e| eyre!("{key}: {e}"))?,
    );
    toml::to_string(&t).map_err(|e| eyre!("{key}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_removes_userinfo_only() {
        let mut v = serde_json::json!({
            "a": "https://me:s3cret@mimir.example/prometheus",
            "b": ["http://user@x/", "https://plain.example/a@b"],
            "c": "no url"
        });
        redact(&mut v);
        assert_eq!(v["a"], "https://REDACTED@mimir.example/prometheus");
        assert_eq!(v["b"][0], "http://REDACTED@x/");
        assert_eq!(v["b"][1], "https://plain.example/a@b");
        assert_eq!(v["c"], "no url");
    }

    #[test]
    fn init_output_parses_back_to_the_same_config() {
        let mut c = Config::default();
        c.kubernetes.context = Some("homelab".into());
        c.etcd.endpoints = vec!["https://192.0.2.11:2379".into()];
        c.mimir.queries.insert("cpu".into(), "up".into());
        let text = render(&c, &BTreeMap::new()).unwrap();
        let back = config::parse(Path::new("init.toml"), &text).unwrap();
        assert_eq!(back, c, "{text}");
    }
}
