//! Entity plugins: the sandbox runtime ([`runtime`]), the set of plugins a sync
//! can use ([`Registry`]: the built-in ones embedded in the binary plus those
//! installed under `plugins/` and pinned in `plugins/plugins.lock`), and the
//! checked batch calls ([`Plugin::map_filter`]) that re-verify what a plugin
//! returns before the host trusts it.
//!
//! A plugin built against interface 1.1 maps and filters each batch in one
//! call (`cross-batch`); one built against 1.0 gets `map-batch` then
//! `filter-batch`. The checks are the same either way.
//!
//! Architecture invariant: nothing a plugin returns reaches the merge before
//! the host has checked it: one result per input item, the same ids in the
//! same order from mapping, every input id either kept or withheld by
//! filtering, and the policy's generic rules (withheld categories, stripped
//! fields, reductions) holding on every kept item.

pub mod cache;
pub mod engine_config;
pub mod runtime;
pub mod wasi;

#[cfg(feature = "native-plugins")]
pub mod native;

use crate::error::{Code, Error, Result};
use crate::merge::{View, id_of};
use cds_policy::{Item, Policy};
use runtime::{Instance, Runtime};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

mod builtin {
    include!(concat!(env!("OUT_DIR"), "/builtin_plugins.rs"));
}

/// The built-in entity types, in the order syncs process them.
pub fn builtin_names() -> Vec<&'static str> {
    builtin::BUILTINS.iter().map(|b| b.0).collect()
}

/// The built-in plugin of entity type `name`, as the build embedded it.
fn builtin(
    name: &str,
) -> Option<&'static (&'static str, &'static [u8], &'static str, &'static [u8])> {
    builtin::BUILTINS.iter().find(|b| b.0 == name)
}

/// A built-in plugin's component and its SHA-256 (for tests and benchmarks
/// that compile it themselves).
pub fn builtin_component(name: &str) -> Option<(&'static [u8], &'static str)> {
    builtin(name).map(|b| (b.1, b.2))
}

/// A built-in plugin's compiled form as the binary ships it.
pub fn builtin_precompiled(name: &str) -> Option<runtime::Precompiled<'static>> {
    builtin(name).map(|b| runtime::Precompiled {
        engine_key: builtin::ENGINE_KEY,
        artifact: b.3,
    })
}

/// Largest batch sent in one call, in bytes of JSON (keeps every call far
/// below the memory cap) and in items.
const BATCH_BYTES: usize = 4 << 20;
const BATCH_ITEMS: usize = 5_000;

/// Where a plugin came from.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Origin {
    BuiltIn,
    Installed { file: String },
}

/// What `plugins list` shows of one plugin.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PluginInfo {
    pub entity_type: String,
    pub plugin_version: String,
    pub interface_version: String,
    pub sha256: String,
    pub origin: Origin,
    pub id_field: String,
}

/// `plugins/plugins.lock`: the installed plugins and their digests.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LockFile {
    pub version: u32,
    pub plugins: Vec<LockEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LockEntry {
    pub entity_type: String,
    pub file: String,
    pub sha256: String,
    pub plugin_version: String,
    pub interface_version: String,
    pub installed_at: String,
}

/// A loaded, checked plugin.
pub struct Plugin {
    pub info: PluginInfo,
    pub instance: Instance,
    pub schema: Value,
    validator: jsonschema::Validator,
    /// Pairs of fields whose values must not decrease (e.g. start ≤ end),
    /// from the schema's `x-cds-ordered` annotation.
    ordered: Vec<(String, String)>,
}

/// A field of an item that breaks the item schema.
#[derive(Debug, Clone, PartialEq)]
pub struct SchemaFault {
    pub path: String,
    pub message: String,
}

/// Items after map and filter, aligned with the input.
#[derive(Debug, Clone, Default)]
pub struct Crossed {
    /// Aligned with the items given.
    pub items: Vec<View>,
    pub withheld: usize,
    pub redacted_fields: u64,
}

/// The field renames between two domains' shapes.
pub struct Shapes<'a> {
    pub from_domain: &'a str,
    pub to_domain: &'a str,
    /// `(canonical, local)` pairs of the sending domain.
    pub from_fields: &'a [(String, String)],
    /// `(canonical, local)` pairs of the receiving domain.
    pub to_fields: &'a [(String, String)],
}

/// `INVALID_ARGUMENT` unless `name` can be a new entity type: a valid name
/// that no built-in plugin has.
pub fn check_new_entity_name(name: &str) -> Result<()> {
    if !is_valid_entity_name(name) {
        return Err(Error::invalid(format!(
            "`{name}` cannot be an entity type: use 1-64 characters of a-z, 0-9, `_` and `-`, \
             starting with a letter"
        )));
    }
    if builtin_names().contains(&name) {
        return Err(Error::invalid(format!(
            "`{name}` is built in; choose another entity type name"
        )));
    }
    Ok(())
}

fn is_valid_entity_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z'))
        && name.len() <= 64
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_' | '-'))
}

impl Plugin {
    /// Checks a plugin's self-description and compiles its item schema.
    ///
    /// Long: one check after another on the descriptor (type, version,
    /// interface, id field, schema), each with its own error message.
    fn new(
        runtime: &Runtime,
        instance: Instance,
        sha256: String,
        origin: Origin,
    ) -> Result<Plugin> {
        let d = runtime.describe(&instance)?;
        let name = instance.name.clone();
        if !is_valid_entity_name(&d.entity_type) {
            return Err(Error::plugin(
                &name,
                format!(
                    "describes its entity type as `{}`; an entity type is 1-64 characters of \
                     a-z, 0-9, `_` and `-`, starting with a letter",
                    d.entity_type
                ),
            ));
        }
        if !runtime::ACCEPTED_INTERFACE_VERSIONS.contains(&d.interface_version.as_str()) {
            return Err(Error::plugin(
                &name,
                format!(
                    "says it implements interface version {}, but this host accepts {} only",
                    d.interface_version,
                    runtime::accepted_list()
                ),
            ));
        }
        if d.interface_version != instance.interface_version() {
            return Err(Error::plugin(
                &name,
                format!(
                    "says it implements interface version {} but exports {INTERFACE}@{}; \
                     rebuild it with one cds-plugin-sdk",
                    d.interface_version,
                    instance.interface_version(),
                    INTERFACE = runtime::INTERFACE_PACKAGE
                ),
            ));
        }
        if semver::Version::parse(&d.plugin_version).is_err() {
            return Err(Error::plugin(
                &name,
                format!("has version `{}`, which is not semver", d.plugin_version),
            ));
        }
        let schema: Value = serde_json::from_str(&d.item_schema).map_err(|e| {
            Error::plugin(
                &name,
                format!("describes an item schema that is not JSON: {e}"),
            )
        })?;
        let validator = crate::validate::validator(&schema)
            .map_err(|e| Error::plugin(&name, format!("describes an invalid item schema: {e}")))?;
        let required: Vec<&str> = schema
            .get("required")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        for field in [d.id_field.as_str(), "lastModified"] {
            if !required.contains(&field) {
                return Err(Error::plugin(
                    &name,
                    format!("item schema must require `{field}`"),
                ));
            }
        }
        let ordered = schema
            .get("x-cds-ordered")
            .and_then(Value::as_array)
            .map(|pairs| {
                pairs
                    .iter()
                    .filter_map(|p| {
                        let a = p.get(0)?.as_str()?;
                        let b = p.get(1)?.as_str()?;
                        Some((a.to_string(), b.to_string()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut instance = instance;
        instance.name = d.entity_type.clone();
        Ok(Plugin {
            info: PluginInfo {
                entity_type: d.entity_type,
                plugin_version: d.plugin_version,
                interface_version: d.interface_version,
                sha256,
                origin,
                id_field: d.id_field,
            },
            instance,
            schema,
            validator,
            ordered,
        })
    }

    pub fn name(&self) -> &str {
        &self.info.entity_type
    }

    pub fn id_field(&self) -> &str {
        &self.info.id_field
    }

    /// Validates one item (canonical names) against the item schema; returns
    /// every fault with its JSON path.
    pub fn validate(&self, item: &Value) -> Vec<SchemaFault> {
        // Nearly every item is valid: `is_valid` checks it without building
        // error values; the faults are collected only for an invalid one.
        let mut faults: Vec<SchemaFault> = if self.validator.is_valid(item) {
            Vec::new()
        } else {
            self.validator
                .iter_errors(item)
                .map(|e| SchemaFault {
                    path: crate::strict::json_path(&e.instance_path().to_string()),
                    message: e.to_string(),
                })
                .collect()
        };
        if faults.is_empty() {
            for (a, b) in &self.ordered {
                let (Some(x), Some(y)) = (
                    item.get(a).and_then(Value::as_str),
                    item.get(b).and_then(Value::as_str),
                ) else {
                    continue;
                };
                if let (Ok(x), Ok(y)) = (
                    chrono::DateTime::parse_from_rfc3339(x),
                    chrono::DateTime::parse_from_rfc3339(y),
                ) && y < x
                {
                    faults.push(SchemaFault {
                        path: format!("$.{b}"),
                        message: format!("`{b}` ({y}) is before `{a}` ({x})"),
                    });
                }
            }
        }
        faults
    }

    /// The fields (sending-domain names) that need not be sent to this
    /// plugin under `policy` (canonical names), given how the sending domain
    /// names fields: for a built-in, those the policy strips that no withhold
    /// or reduce rule looks at, other than the id, whose local name is
    /// theirs alone; for an installed plugin none, as its filter may look at
    /// any field. A built-in's mapping only renames and normalises field by
    /// field and its filter is the policy's, so leaving them out changes
    /// nothing but what crosses into the sandbox (see
    /// [`Plugin::map_filter_omitting`]).
    pub fn omittable(&self, policy: &Policy, from_fields: &[(String, String)]) -> Vec<String> {
        if !matches!(self.info.origin, Origin::BuiltIn) {
            return Vec::new();
        }
        let idf = self.id_field();
        let looked_at = |f: &str| {
            policy.withhold.iter().any(|r| r.field == f)
                || policy
                    .reduce
                    .iter()
                    .any(|red| red.when.iter().any(|r| r.field == f))
        };
        let local = |f: &str| {
            from_fields
                .iter()
                .find(|(c, _)| c == f)
                .map_or(f, |(_, l)| l.as_str())
                .to_string()
        };
        policy
            .strip
            .iter()
            .filter(|f| *f != idf && !looked_at(f))
            .map(|f| (f, local(f)))
            .filter(|(f, l)| l != idf && !from_fields.iter().any(|(c, o)| o == l && c != *f))
            .map(|(_, l)| l)
            .collect()
    }

    /// Maps `items` into the receiving shape and, given a `policy`
    /// (receiving-shape names), filters them through it, checking everything
    /// the plugin returns. Without a policy (a domain's own items normalised
    /// in its own shape, nothing crosses) only `map-batch` runs.
    pub fn map_filter(
        &self,
        runtime: &Runtime,
        shapes: &Shapes<'_>,
        policy: Option<&Policy>,
        items: &[&Item],
    ) -> Result<Crossed> {
        self.map_filter_omitting(runtime, shapes, policy, &[], items)
    }

    /// [`Plugin::map_filter`], leaving the fields `omit` (sending-shape
    /// names) out of what the plugin is sent, and only for a plugin whose
    /// mapping and filter are the SDK's (a built-in, [`Plugin::omittable`]).
    /// Under a policy the caller names only fields it strips and no rule
    /// looks at: the result is then what the plugin would have made of the
    /// whole item, and the omitted fields count as redacted on every item
    /// that crosses, as the plugin's strip would have counted them. Without
    /// one (a domain's items normalised in its own shape) it names fields
    /// that are in no view, which the merge never compares. Either way a
    /// message's body does not cross into the sandbox and back for nothing.
    pub fn map_filter_omitting(
        &self,
        runtime: &Runtime,
        shapes: &Shapes<'_>,
        policy: Option<&Policy>,
        omit: &[&str],
        items: &[&Item],
    ) -> Result<Crossed> {
        let mut out = Crossed {
            items: Vec::with_capacity(items.len()),
            ..Crossed::default()
        };
        let renames = |pairs: &[(String, String)]| -> Vec<runtime::Rename> {
            pairs
                .iter()
                .map(|(c, l)| runtime::Rename {
                    canonical: c.clone(),
                    local: l.clone(),
                })
                .collect()
        };
        let from_fields = renames(shapes.from_fields);
        let to_fields = renames(shapes.to_fields);
        let policy = match policy {
            Some(p) => Some((
                p,
                serde_json::to_string(p).map_err(|e| {
                    Error::new(Code::PluginError, format!("cannot encode policy: {e}"))
                })?,
            )),
            None => None,
        };
        let (mut encoded, omitted): (Vec<String>, Vec<usize>) = items
            .iter()
            .map(|i| cds_json::map_to_string_omitting(i, omit))
            .unzip();
        let mut start = 0;
        while start < items.len() {
            let mut end = start;
            let mut bytes = 0;
            while end < items.len() && end - start < BATCH_ITEMS {
                let len = encoded[end - start].len();
                if end > start && bytes + len > BATCH_BYTES {
                    break;
                }
                bytes += len;
                end += 1;
            }
            // The batch's strings move into the call (no copy).
            let batch: Vec<String> = encoded.drain(..end - start).collect();
            let request = runtime::CrossRequest {
                from_domain: shapes.from_domain.into(),
                to_domain: shapes.to_domain.into(),
                from_fields: from_fields.clone(),
                to_fields: to_fields.clone(),
                policy: policy.as_ref().map(|(_, json)| json.clone()),
                items: batch,
            };
            self.cross_chunk(
                runtime,
                shapes,
                policy.as_ref().map(|(p, _)| *p),
                Sent {
                    items: &items[start..end],
                    omit,
                    omitted: &omitted[start..end],
                },
                &request,
                &mut out,
            )?;
            start = end;
        }
        Ok(out)
    }

    /// One batch through the plugin (its `cross-batch`, or interface 1.0's
    /// calls adapted by the runtime), and the one check of what it returned:
    /// as many items as given, each id as given, no filtering without a
    /// policy, and the policy kept on what will be used. The host parses
    /// only what the plugin changed.
    fn cross_chunk(
        &self,
        runtime: &Runtime,
        shapes: &Shapes<'_>,
        policy: Option<&Policy>,
        sent: Sent<'_>,
        request: &runtime::CrossRequest,
        out: &mut Crossed,
    ) -> Result<()> {
        let items = sent.items;
        let name = self.name();
        let idf = self.id_field();
        let ids: Vec<&str> = items.iter().map(|i| id_of(i, idf)).collect();
        let (result, calls) = runtime.cross_batch(&self.instance, request, &ids, idf)?;
        if result.items.len() != items.len() {
            return Err(Error::plugin(
                name,
                format!(
                    "returned {} items from `{}` for {} given; a plugin may not drop or invent \
                     items",
                    result.items.len(),
                    calls.mapped,
                    items.len()
                ),
            ));
        }
        let mut withheld_here = 0;
        for (i, crossed) in result.items.into_iter().enumerate() {
            // An item already in the receiving shape comes back as `none` (or
            // as the very text it was sent as): it is the item as sent.
            let mapped = match crossed.mapped {
                None => sent.unchanged(i, policy.is_some()),
                Some(s) if s == request.items[i] => sent.unchanged(i, policy.is_some()),
                Some(s) => Cow::Owned(parse_returned(name, calls.mapped, i, &s)?),
            };
            let (want, got) = (ids[i], id_of(&mapped, idf));
            if want != got {
                return Err(Error::plugin(
                    name,
                    format!(
                        "changed the id of item {i} in `{}` from `{want}` to `{got}`; ids must \
                         come back as given, in the same order",
                        calls.mapped
                    ),
                )
                .with("index", i));
            }
            let view = match (policy, crossed.outcome) {
                // Withholding is always allowed under a policy: nothing crosses.
                (Some(_), runtime::Outcome::Withheld) => {
                    withheld_here += 1;
                    View::Withheld
                }
                (None, runtime::Outcome::Kept) => as_view(mapped),
                (None, _) => {
                    return Err(Error::plugin(
                        name,
                        format!(
                            "filtered item `{want}` in `{}` although no policy was given; \
                             without a policy an item only changes shape",
                            calls.filtered
                        ),
                    )
                    .with("id", want));
                }
                (Some(policy), outcome) => {
                    let changed = match outcome {
                        runtime::Outcome::Changed(s) => {
                            Some(self.changed_item(calls, i, &s, want)?)
                        }
                        _ => None,
                    };
                    // The policy is checked on what will be used.
                    let item = changed.as_ref().unwrap_or(&*mapped);
                    if let Err(v) = policy.check(&mapped, item, idf) {
                        return Err(policy_broken(name, shapes, v));
                    }
                    out.redacted_fields += sent.omitted[i] as u64;
                    match changed {
                        Some(item) => View::Item(item),
                        None => as_view(mapped),
                    }
                }
            };
            out.items.push(view);
        }
        out.withheld += withheld_here;
        out.redacted_fields += result.redacted_fields;
        Ok(())
    }

    /// The item a policy changed (the `i`th of the batch, text `s`), which
    /// must keep its id `want`.
    fn changed_item(&self, calls: runtime::Calls, i: usize, s: &str, want: &str) -> Result<Item> {
        let name = self.name();
        let item = parse_returned(name, calls.filtered, i, s)?;
        let got = id_of(&item, self.id_field());
        if got != want {
            return Err(Error::plugin(
                name,
                format!(
                    "returned `{got}` where `{want}` was expected in `{}`; items must keep \
                     their ids and order",
                    calls.filtered
                ),
            )
            .with("id", want));
        }
        Ok(item)
    }
}

/// One batch as the host sent it: the items, and the fields left out of
/// them (how many of `omit` each held).
#[derive(Clone, Copy)]
struct Sent<'a> {
    items: &'a [&'a Item],
    omit: &'a [&'a str],
    omitted: &'a [usize],
}

impl<'a> Sent<'a> {
    /// The `i`th item, which the plugin left as it was sent: the input
    /// itself, or, when something crosses (`crossing`, under a policy) and
    /// fields were left out, a copy without them. Without a policy (a
    /// domain's items in its own shape) the input itself stands for it: the
    /// fields left out are then ones no merge step looks at.
    fn unchanged(&self, i: usize, crossing: bool) -> Cow<'a, Item> {
        let item = self.items[i];
        if self.omitted[i] == 0 || !crossing {
            return Cow::Borrowed(item);
        }
        Cow::Owned(
            item.iter()
                .filter(|(k, _)| !self.omit.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        )
    }
}

/// A mapped item as a view: the input itself when the plugin left it alone.
fn as_view(item: Cow<'_, Item>) -> View {
    match item {
        Cow::Borrowed(_) => View::Same,
        Cow::Owned(m) => View::Item(m),
    }
}

fn policy_broken(plugin: &str, shapes: &Shapes<'_>, v: cds_policy::Violation) -> Error {
    Error::plugin(
        plugin,
        format!(
            "broke the {}->{} policy on item `{}`: {}",
            shapes.from_domain, shapes.to_domain, v.id, v.what
        ),
    )
    .with("id", v.id)
}

/// Parsed as the host parses data files ([`crate::strict`]): maps made at
/// their final size, and an object with a key twice refused, as a reader
/// would silently drop one of the two.
fn parse_returned(plugin: &str, call: &str, i: usize, s: &str) -> Result<Item> {
    match crate::strict::from_str(s, &crate::strict::Seg::Root) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(Error::plugin(
            plugin,
            format!("returned item {i} from `{call}` that is not a JSON object"),
        )),
        Err(crate::strict::Fault::Json(e)) => Err(Error::plugin(
            plugin,
            format!("returned malformed JSON for item {i} from `{call}`: {e}"),
        )),
        Err(crate::strict::Fault::Duplicate(d)) => Err(Error::plugin(
            plugin,
            format!(
                "returned item {i} from `{call}` with the key `{}` twice, at {}",
                d.key, d.path
            ),
        )),
    }
}

/// The plugins a sync can use.
pub struct Registry {
    pub runtime: Runtime,
    plugins_dir: PathBuf,
    lock: LockFile,
    /// One slot per entity type: a load holds its slot, so that a second
    /// caller waits for it instead of compiling the same plugin again.
    loaded: Mutex<HashMap<String, Slot>>,
}

/// A plugin once loaded; `None` until then (or after a failed load, which
/// the next caller tries again).
type Slot = Arc<Mutex<Option<Arc<Plugin>>>>;

impl Registry {
    pub fn open(runtime: Runtime, plugins_dir: &Path) -> Result<Registry> {
        let lock = read_lock(plugins_dir)?;
        Ok(Registry {
            runtime,
            plugins_dir: plugins_dir.to_path_buf(),
            lock,
            loaded: Mutex::new(HashMap::new()),
        })
    }

    /// Every entity type a sync can name: built-in, then installed.
    pub fn entity_types(&self) -> Vec<String> {
        builtin_names()
            .into_iter()
            .map(String::from)
            .chain(self.lock.plugins.iter().map(|p| p.entity_type.clone()))
            .collect()
    }

    pub fn lock(&self) -> &LockFile {
        &self.lock
    }

    /// Loads (once) the plugin for `entity`. Callers for the same type at
    /// the same time wait for one load.
    pub fn get(&self, entity: &str) -> Result<Arc<Plugin>> {
        let slot = self
            .loaded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(entity.to_string())
            .or_default()
            .clone();
        let mut held = slot.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = &*held {
            return Ok(p.clone());
        }
        let plugin = Arc::new(self.load(entity)?);
        *held = Some(plugin.clone());
        Ok(plugin)
    }

    /// The installed plugins among `entities` not loaded yet (built-in ones
    /// load from the binary in a fraction of a millisecond and need no head
    /// start).
    pub fn unloaded_installed(&self, entities: &[String]) -> Vec<String> {
        let builtin = builtin_names();
        let loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        entities
            .iter()
            .filter(|e| !builtin.contains(&e.as_str()))
            .filter(|e| {
                loaded
                    .get(*e)
                    .is_none_or(|s| s.try_lock().is_ok_and(|p| p.is_none()))
            })
            .cloned()
            .collect()
    }

    /// Loads the plugins of `entities`, run beside a sync's workers, so
    /// that a plugin whose compiled form is not cached compiles while the
    /// other types are read and planned. Failures are left for the sync's
    /// own `get` to report. A sync that fails or is cancelled meanwhile
    /// ends when the load in progress does (one compile, at most).
    pub fn preload(&self, entities: &[String]) {
        for e in entities {
            let _ = self.get(e);
        }
    }

    fn load(&self, entity: &str) -> Result<Plugin> {
        if let Some((_, bytes, digest, _)) = builtin(entity) {
            #[cfg(feature = "native-plugins")]
            if std::env::var_os("CDS_NATIVE_PLUGINS").is_some()
                && let Some(p) = native::find(entity)
            {
                let inst = runtime::Instance::native(p);
                return Plugin::new(&self.runtime, inst, digest.to_string(), Origin::BuiltIn);
            }
            let shipped = builtin_precompiled(entity);
            let inst = self.runtime.load(entity, bytes, digest, shipped)?;
            return Plugin::new(&self.runtime, inst, digest.to_string(), Origin::BuiltIn);
        }
        let Some(entry) = self.lock.plugins.iter().find(|p| p.entity_type == entity) else {
            return Err(Error::new(
                Code::EntityTypeUnsupported,
                format!("no installed plugin handles the entity type `{entity}`"),
            )
            .with_help(format!(
                "Supported entity types: {}",
                self.entity_types().join(", ")
            ))
            .with("entity", entity));
        };
        let path = self.plugins_dir.join(&entry.file);
        let (bytes, digest) = runtime::read_plugin_file(&path)?;
        if digest != entry.sha256 {
            return Err(Error::plugin(
                entity,
                format!(
                    "file `{}` changed since it was installed (sha256 {digest}, recorded {}); \
                     it is refused. If the change is yours, install it again with \
                     `cross-domain-sync plugins add {}`",
                    path.display(),
                    entry.sha256,
                    path.display()
                ),
            )
            .with("file", path.display().to_string()));
        }
        let inst = self.runtime.load(entity, &bytes, &digest, None)?;
        let plugin = Plugin::new(
            &self.runtime,
            inst,
            digest,
            Origin::Installed {
                file: entry.file.clone(),
            },
        )?;
        if plugin.name() != entity {
            return Err(Error::plugin(
                entity,
                format!(
                    "file `{}` now describes entity type `{}`, not `{entity}`",
                    path.display(),
                    plugin.name()
                ),
            ));
        }
        Ok(plugin)
    }

    /// Loads the plugin at `file` and checks it as `plugins add` does,
    /// without installing it; with the file's bytes.
    pub fn check_file(&self, file: &Path) -> Result<(Plugin, Vec<u8>)> {
        let (bytes, digest) = runtime::read_plugin_file(file)?;
        let label = file
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_else(|| file.display().to_string());
        let inst = self.runtime.load(&label, &bytes, &digest, None)?;
        let plugin = Plugin::new(
            &self.runtime,
            inst,
            digest,
            Origin::Installed {
                file: String::new(),
            },
        )?;
        let entity = plugin.name();
        if builtin_names().contains(&entity) {
            return Err(Error::plugin(
                &label,
                format!("handles `{entity}`, which is built in; choose another entity type name"),
            ));
        }
        Ok((plugin, bytes))
    }

    /// Validates the plugin at `file` and installs it into the plugins folder.
    pub fn add(&mut self, file: &Path, now: &str) -> Result<PluginInfo> {
        let (plugin, bytes) = self.check_file(file)?;
        let entity = plugin.name().to_string();
        let digest = plugin.info.sha256.clone();
        let file_name = format!("{entity}.wasm");
        let dest = self.plugins_dir.join(&file_name);
        crate::store::atomic_write(&dest, &bytes)?;
        self.lock.version = 1;
        self.lock.plugins.retain(|p| p.entity_type != entity);
        self.lock.plugins.push(LockEntry {
            entity_type: entity.clone(),
            file: file_name.clone(),
            sha256: digest,
            plugin_version: plugin.info.plugin_version.clone(),
            interface_version: plugin.info.interface_version.clone(),
            installed_at: now.to_string(),
        });
        self.lock
            .plugins
            .sort_by(|a, b| a.entity_type.cmp(&b.entity_type));
        write_lock(&self.plugins_dir, &self.lock)?;
        let mut info = plugin.info.clone();
        info.origin = Origin::Installed { file: file_name };
        Ok(info)
    }

    /// Every plugin's description (loads each).
    pub fn list(&self) -> Vec<(String, Result<PluginInfo>)> {
        self.entity_types()
            .into_iter()
            .map(|e| {
                let r = self.get(&e).map(|p| p.info.clone());
                (e, r)
            })
            .collect()
    }

    /// Digests of the plugins used, for the audit trail.
    pub fn digests(&self, entities: &[String]) -> BTreeMap<String, String> {
        let loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        entities
            .iter()
            .filter_map(|e| {
                let slot = loaded.get(e)?.lock().unwrap_or_else(|e| e.into_inner());
                slot.as_ref().map(|p| (e.clone(), p.info.sha256.clone()))
            })
            .collect()
    }
}

fn lock_path(dir: &Path) -> PathBuf {
    dir.join("plugins.lock")
}

fn read_lock(dir: &Path) -> Result<LockFile> {
    let path = lock_path(dir);
    let bad = |why: String| {
        Error::new(
            Code::PluginError,
            format!(
                "`{}` is not a valid plugin lock file: {why}; restore it or remove it and \
                 reinstall your plugins",
                path.display()
            ),
        )
    };
    match std::fs::read(&path) {
        Ok(bytes) => {
            let lock: LockFile = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
            // Entries name files inside the plugins folder, nothing else.
            for p in &lock.plugins {
                if !is_valid_entity_name(&p.entity_type)
                    || p.file != format!("{}.wasm", p.entity_type)
                {
                    return Err(bad(format!(
                        "entry `{}` (file `{}`) is not a plugin name and its file in the \
                         plugins folder",
                        p.entity_type, p.file
                    )));
                }
            }
            Ok(lock)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(LockFile::default()),
        Err(e) => Err(Error::storage("reading", &path, e)),
    }
}

fn write_lock(dir: &Path, lock: &LockFile) -> Result<()> {
    let mut text = serde_json::to_string_pretty(lock).unwrap_or_default();
    text.push('\n');
    crate::store::atomic_write(&lock_path(dir), text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_paths() {
        use crate::strict::json_path;
        assert_eq!(json_path(""), "$");
        assert_eq!(json_path("/contacts/3/email"), "$.contacts[3].email");
        assert_eq!(json_path("/a b"), "$[\"a b\"]");
    }

    #[test]
    fn entity_names() {
        assert!(is_valid_entity_name("notes"));
        assert!(is_valid_entity_name("x-1_b"));
        assert!(!is_valid_entity_name("../etc"));
        assert!(!is_valid_entity_name("Notes"));
        assert!(!is_valid_entity_name(""));
    }
}
