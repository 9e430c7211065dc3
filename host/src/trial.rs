//! `plugins test`: a plugin tried on sample items before it is installed.
//!
//! The plugin is loaded and checked as `plugins add` checks it, the sample
//! items are validated against its item schema as a sync validates a data
//! file, and then sent through it for every crossing between the configured
//! domains, with that crossing's policy and field renames, by the same
//! checked call a sync makes ([`Plugin::map_filter`]): so every check the
//! host makes of a plugin's output in a sync is made here too. Nothing is
//! installed or written. A project folder (as `plugins new` makes one) is
//! built first with its `build.sh`.

use crate::error::{Code, Error, Result};
use crate::install::Host;
use crate::merge::{Item, id_of};
use crate::plugin::{Plugin, Shapes};
use cds_policy::{Policy, rename_fields};
use serde::Serialize;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// What to try: a component, or a project folder holding a `build.sh`.
pub struct TrialRequest {
    pub target: PathBuf,
    /// The sample items; by default `sample-items.json` in the folder, or
    /// beside the component.
    pub items: Option<PathBuf>,
    /// Run the folder's `build.sh` first.
    pub build: bool,
}

/// What the plugin made of the sample items.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Trial {
    pub entity_type: String,
    pub plugin_version: String,
    pub interface_version: String,
    pub sha256: String,
    pub file: String,
    pub items_file: String,
    pub items: usize,
    pub crossings: Vec<CrossingTrial>,
}

/// One crossing's results.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CrossingTrial {
    pub from: String,
    pub to: String,
    /// The crossing's policy, in the receiving domain's field names.
    pub policy: Policy,
    pub withheld: usize,
    pub redacted_fields: u64,
    pub results: Vec<ItemTrial>,
}

/// What one item became in one crossing.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemTrial {
    pub id: String,
    /// `withheld`, `unchanged` or `changed`.
    pub outcome: &'static str,
    /// Fields whose value the plugin or the policy changed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changed: Vec<String>,
    /// Fields that did not cross.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub removed: Vec<String>,
    /// Fields the crossing added.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub added: Vec<String>,
    /// The item as the receiving domain would get it; none when withheld.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item: Option<Value>,
}

/// Builds (a folder), loads and checks the plugin, and sends the sample
/// items through every crossing. `build_log` receives the build's output.
pub fn run(host: &Host, req: &TrialRequest, build_log: &mut dyn std::io::Write) -> Result<Trial> {
    let wasm = component(req, build_log)?;
    let (plugin, _) = host.registry.check_file(&wasm)?;
    let items_file = match &req.items {
        Some(f) => f.clone(),
        None if req.target.is_dir() => req.target.join("sample-items.json"),
        None => wasm.with_file_name("sample-items.json"),
    };
    let items = sample_items(&plugin, &items_file, req.items.is_none())?;
    let domains = host.config.domain_names();
    let mut crossings = Vec::new();
    for from in &domains {
        for to in domains.iter().filter(|d| *d != from) {
            crossings.push(cross(host, &plugin, from, to, &items)?);
        }
    }
    Ok(Trial {
        entity_type: plugin.info.entity_type.clone(),
        plugin_version: plugin.info.plugin_version.clone(),
        interface_version: plugin.info.interface_version.clone(),
        sha256: plugin.info.sha256.clone(),
        file: wasm.display().to_string(),
        items_file: items_file.display().to_string(),
        items: items.len(),
        crossings,
    })
}

/// The component to try: the target itself, or the one `.wasm` file in the
/// target folder after its `build.sh` ran.
fn component(req: &TrialRequest, build_log: &mut dyn std::io::Write) -> Result<PathBuf> {
    let dir = &req.target;
    if !dir.is_dir() {
        return Ok(dir.clone());
    }
    let script = dir.join("build.sh");
    if req.build && script.is_file() {
        let _ = writeln!(build_log, "Building with {} ...", script.display());
        let out = std::process::Command::new("bash")
            .arg("build.sh")
            .current_dir(dir)
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| Error::storage("run", &script, e))?;
        let _ = build_log.write_all(&out.stdout);
        let _ = build_log.write_all(&out.stderr);
        if !out.status.success() {
            return Err(Error::new(
                Code::PluginError,
                format!(
                    "the build (`{}`) failed ({}); its output is above. Fix it and run \
                     `plugins test` again",
                    script.display(),
                    out.status
                ),
            )
            .with("file", script.display().to_string()));
        }
    }
    let wasm: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::storage("read", dir, e))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "wasm"))
        .collect();
    match wasm.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(Error::invalid(format!(
            "`{}` holds no .wasm component; build the plugin first (its build.sh), or name \
             the .wasm file",
            dir.display()
        ))),
        many => Err(Error::invalid(format!(
            "`{}` holds {} .wasm files ({}); name the one to test",
            dir.display(),
            many.len(),
            many.iter()
                .filter_map(|p| p.file_name())
                .map(|f| f.to_string_lossy())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// The sample items of `file`, `{"<type>": [...]}` as a data file or a
/// plain array, each checked against the plugin's item schema.
fn sample_items(plugin: &Plugin, file: &Path, by_default: bool) -> Result<Vec<Item>> {
    let text = match std::fs::read(file) {
        Ok(t) => t,
        Err(e) if by_default && e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::invalid(format!(
                "no sample items: `{}` does not exist. Pass --items FILE (a data file \
                 `{{\"{}\": [item, ...]}}` or an array of items)",
                file.display(),
                plugin.name()
            )));
        }
        Err(e) => return Err(Error::storage("read", file, e)),
    };
    let bad = |msg: String| {
        Error::new(Code::DataFormatInvalid, msg).with("file", file.display().to_string())
    };
    let value = crate::strict::from_slice(&text, &crate::strict::Seg::Root).map_err(|f| {
        bad(match f {
            crate::strict::Fault::Json(e) => format!("`{}` is not valid JSON: {e}", file.display()),
            crate::strict::Fault::Duplicate(d) => format!(
                "`{}` holds the key `{}` twice at {} (line {})",
                file.display(),
                d.key,
                d.path,
                d.line
            ),
        })
    })?;
    let list = match value {
        Value::Array(a) => a,
        Value::Object(mut m) => match m.remove(plugin.name()) {
            Some(Value::Array(a)) => a,
            _ => {
                return Err(bad(format!(
                    "`{}` holds no list of items at $.{}",
                    file.display(),
                    plugin.name()
                )));
            }
        },
        _ => {
            return Err(bad(format!(
                "`{}` is neither a list of items nor {{\"{}\": [...]}}",
                file.display(),
                plugin.name()
            )));
        }
    };
    let mut items = Vec::with_capacity(list.len());
    for (i, v) in list.into_iter().enumerate() {
        let id = v
            .get(plugin.id_field())
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string();
        if let Some(fault) = plugin.validate(&v).into_iter().next() {
            return Err(bad(format!(
                "`{}`: item {i} (id `{id}`) breaks the `{}` item schema at {}: {}",
                file.display(),
                plugin.name(),
                fault.path,
                fault.message
            ))
            .with("index", i)
            .with("path", fault.path));
        }
        match v {
            Value::Object(m) => items.push(m),
            _ => return Err(bad(format!("item {i} is not a JSON object"))),
        }
    }
    Ok(items)
}

/// The sample items sent from `from` to `to` through the plugin, as a sync
/// sends them.
fn cross(
    host: &Host,
    plugin: &Plugin,
    from: &str,
    to: &str,
    items: &[Item],
) -> Result<CrossingTrial> {
    let entity = plugin.name();
    let from_fields = host.mappings.fields(from, entity);
    let to_fields = host.mappings.fields(to, entity);
    let canonical = host.config.policy(from, to, entity);
    let policy = crate::config::in_local_names(&canonical, &to_fields);
    let shapes = Shapes {
        from_domain: from,
        to_domain: to,
        from_fields: &from_fields,
        to_fields: &to_fields,
    };
    let refs: Vec<&Item> = items.iter().collect();
    let crossed = plugin.map_filter(&host.registry.runtime, &shapes, Some(&policy), &refs)?;
    // The sending shape's names in the receiving shape's, to compare fields.
    let to_canonical = crate::config::to_canonical(&from_fields);
    let to_local = crate::config::to_local(&to_fields);
    let results = items
        .iter()
        .zip(crossed.items)
        .map(|(item, view)| {
            let id = id_of(item, plugin.id_field()).to_string();
            let before = rename_fields(rename_fields(item.clone(), &to_canonical), &to_local);
            let after = view.into_item(item);
            describe(id, &before, after)
        })
        .collect();
    Ok(CrossingTrial {
        from: from.to_string(),
        to: to.to_string(),
        policy,
        withheld: crossed.withheld,
        redacted_fields: crossed.redacted_fields,
        results,
    })
}

fn describe(id: String, before: &Item, after: Option<Item>) -> ItemTrial {
    let Some(after) = after else {
        return ItemTrial {
            id,
            outcome: "withheld",
            changed: Vec::new(),
            removed: Vec::new(),
            added: Vec::new(),
            item: None,
        };
    };
    let changed: Vec<String> = before
        .iter()
        .filter(|(k, v)| after.get(*k).is_some_and(|w| w != *v))
        .map(|(k, _)| k.clone())
        .collect();
    let removed: Vec<String> = before
        .keys()
        .filter(|k| !after.contains_key(*k))
        .cloned()
        .collect();
    let added: Vec<String> = after
        .keys()
        .filter(|k| !before.contains_key(*k))
        .cloned()
        .collect();
    let outcome = if changed.is_empty() && removed.is_empty() && added.is_empty() {
        "unchanged"
    } else {
        "changed"
    };
    ItemTrial {
        id,
        outcome,
        changed,
        removed,
        added,
        item: Some(Value::Object(after)),
    }
}

/// The trial as a person reads it.
pub fn render(t: &Trial) -> String {
    let mut out = format!(
        "Plugin `{}` {} (interface {}), sha256 {}\n  from {}\nSample items: {} from {}, all valid \
         against the item schema\n",
        t.entity_type,
        t.plugin_version,
        t.interface_version,
        t.sha256,
        t.file,
        t.items,
        t.items_file
    );
    for c in &t.crossings {
        let policy = if c.policy.is_empty() {
            "no policy".to_string()
        } else {
            format!(
                "policy {}",
                serde_json::to_string(&c.policy).unwrap_or_default()
            )
        };
        out.push_str(&format!(
            "\n{} -> {} ({policy}): {} withheld, {} field values redacted\n",
            c.from, c.to, c.withheld, c.redacted_fields
        ));
        for r in &c.results {
            let mut what = Vec::new();
            for (label, fields) in [
                ("new values", &r.changed),
                ("removed", &r.removed),
                ("added", &r.added),
            ] {
                if !fields.is_empty() {
                    what.push(format!("{label}: {}", fields.join(", ")));
                }
            }
            let what = if what.is_empty() {
                String::new()
            } else {
                format!(" ({})", what.join("; "))
            };
            out.push_str(&format!("  {}  {}{what}\n", r.id, r.outcome));
            if let Some(item) = &r.item {
                out.push_str(&format!(
                    "      {}\n",
                    serde_json::to_string(item).unwrap_or_default()
                ));
            }
        }
    }
    out.push_str(
        "\nEvery host check passed: ids kept in order, the policies kept, every output a JSON \
         object. Nothing was installed; `cross-domain-sync plugins add FILE.wasm` installs it.\n",
    );
    out
}
