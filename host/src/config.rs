//! `cross_domain_config.json` and `entity_mappings.json`: their Rust types
//! (from which `schemas/` is generated), their built-in defaults, and loading
//! with validation against the generated schemas.
//!
//! Defaults, so that a new user needs neither file: the domains `personal` and
//! `business` (folders of the same names in the data folder), every user with
//! read and write on both, the policies of CONTRACT §5, the contract's limits,
//! and no field renames.

use crate::error::{Code, Error, Result};
use crate::validate;
use cds_policy::Policy;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

/// The whole configuration file.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(title = "cross-domain-sync configuration (cross_domain_config.json)")]
pub struct Config {
    /// The domains, by name. Default: `personal` and `business`.
    #[serde(default = "default_domains")]
    pub domains: BTreeMap<String, DomainConfig>,
    /// Users and their rights per domain. When absent, every user may read and
    /// write every domain (a single-user installation). When present, a user
    /// not listed has no rights.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub users: Option<BTreeMap<String, BTreeMap<String, Vec<Right>>>>,
    /// Policies per crossing (`"personal->business"`) and entity type; each
    /// given policy replaces the default for that crossing and type.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub policies: BTreeMap<String, BTreeMap<String, Policy>>,
    /// Fields of the user's own, per entity type, that a policy or a mapping
    /// may name although the type's schema does not list them (any other
    /// unknown name is refused, as it would be a typo that leaks).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra_fields: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub limits: LimitsConfig,
    /// MCP server settings.
    #[serde(default)]
    pub mcp: McpConfig,
    /// Where compiled plugins are cached: an absolute path. Default: the
    /// user's cache folder (`$XDG_CACHE_HOME/cross-domain-sync`);
    /// `--cache-dir` and `CDS_CACHE_DIR` override this. A folder that
    /// belongs to another user, or that others may write, is not used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin_cache_dir: Option<PathBuf>,
}

/// One domain.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DomainConfig {
    /// The domain's folder, relative to the data folder (no `..`, not
    /// absolute). Default: the domain's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Entity types this domain keeps as vdir folders (one `.vcf` or `.ics`
    /// file per item, as vdirsyncer, pimsync, khard and khal keep them):
    /// `contacts` (vCard), `calendar` and `tasks` (iCalendar; they may
    /// share a folder) → the folder, relative to the data folder or
    /// absolute. Other types stay in the domain's JSON files.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub vdir: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Right {
    Read,
    Write,
}

/// Limits (CONTRACT §9) and the plugin sandbox's per-call limits.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Items per entity type per domain.
    #[schemars(range(min = 1))]
    pub max_items_per_type: usize,
    /// Bytes of data files read by one sync.
    #[schemars(range(min = 1))]
    pub max_bytes_per_sync: u64,
    /// Seconds one sync may take before it is rolled back.
    #[schemars(range(min = 1))]
    pub timeout_seconds: u64,
    /// Memory cap of a plugin call, MiB.
    #[schemars(range(min = 1, max = 4096))]
    pub plugin_memory_mib: u64,
    /// CPU budget of a plugin call, milliseconds of CPU time: fixed part.
    pub plugin_cpu_base_ms: u64,
    /// CPU budget of a plugin call: microseconds of CPU time per batch item.
    pub plugin_cpu_per_item_us: u64,
    /// Wall-clock limit of a plugin call, milliseconds.
    #[schemars(range(min = 1))]
    pub plugin_wall_ms: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        let p = crate::plugin::runtime::Limits::default();
        LimitsConfig {
            max_items_per_type: 10_000,
            max_bytes_per_sync: 100 * 1024 * 1024,
            timeout_seconds: 300,
            plugin_memory_mib: (p.memory_bytes >> 20) as u64,
            plugin_cpu_base_ms: p.cpu_base.as_millis() as u64,
            plugin_cpu_per_item_us: p.cpu_per_item.as_micros() as u64,
            plugin_wall_ms: p.wall.as_millis() as u64,
        }
    }
}

impl LimitsConfig {
    pub fn plugin_limits(&self) -> crate::plugin::runtime::Limits {
        crate::plugin::runtime::Limits {
            memory_bytes: (self.plugin_memory_mib as usize) << 20,
            cpu_base: std::time::Duration::from_millis(self.plugin_cpu_base_ms),
            cpu_per_item: std::time::Duration::from_micros(self.plugin_cpu_per_item_us),
            wall: std::time::Duration::from_millis(self.plugin_wall_ms),
        }
    }
}

/// MCP server settings (`cross-domain-sync serve`).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct McpConfig {
    /// The tools' names: `portable` (the default: `gold_cross_domain_sync`,
    /// `gold_cross_domain_sync_undo`, ..., which every widely used client
    /// accepts) or `seed` (`gold.cross-domain-sync`,
    /// `gold.cross-domain-sync.undo`, ..., the seed's dotted names).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_names: Option<ToolNames>,
    /// Deprecated: the portable names are now the default. `true` asks for
    /// them; `false` changes nothing.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub underscore_tool_name: bool,
    /// The user to act as when a call does not name one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_user: Option<String>,
}

/// How the MCP tools are named.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum ToolNames {
    /// `gold_cross_domain_sync`, `gold_cross_domain_sync_conflicts`,
    /// `gold_cross_domain_sync_resolve_conflict`, `gold_cross_domain_sync_undo`.
    #[default]
    Portable,
    /// `gold.cross-domain-sync`, `gold.cross-domain-sync.conflicts`,
    /// `gold.cross-domain-sync.resolve-conflict`, `gold.cross-domain-sync.undo`.
    Seed,
}

impl McpConfig {
    /// The naming in effect (`underscoreToolName` only ever asked for the
    /// portable kind, which is now the default).
    pub fn tool_names(&self) -> ToolNames {
        self.tool_names.unwrap_or_default()
    }
}

fn default_domains() -> BTreeMap<String, DomainConfig> {
    ["business", "personal"]
        .into_iter()
        .map(|d| {
            (
                d.to_string(),
                DomainConfig {
                    path: None,
                    description: None,
                    vdir: BTreeMap::new(),
                },
            )
        })
        .collect()
}

impl Default for Config {
    fn default() -> Self {
        Config {
            domains: default_domains(),
            users: None,
            policies: BTreeMap::new(),
            extra_fields: BTreeMap::new(),
            limits: LimitsConfig::default(),
            mcp: McpConfig::default(),
            plugin_cache_dir: None,
        }
    }
}

/// `entity_mappings.json`: per domain and entity type, canonical field name →
/// the name that domain's files use.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(transparent)]
#[schemars(title = "cross-domain-sync field renames (entity_mappings.json)")]
pub struct EntityMappings(pub BTreeMap<String, BTreeMap<String, BTreeMap<String, String>>>);

impl EntityMappings {
    /// The canonical name of the field `local` in `domain`'s files.
    pub fn canonical(&self, domain: &str, entity: &str, local: &str) -> String {
        self.fields(domain, entity)
            .into_iter()
            .find(|(_, l)| l == local)
            .map_or_else(|| local.to_string(), |(c, _)| c)
    }

    /// The name `domain`'s files use for the canonical field `canonical`.
    pub fn local(&self, domain: &str, entity: &str, canonical: &str) -> String {
        self.fields(domain, entity)
            .into_iter()
            .find(|(c, _)| c == canonical)
            .map_or_else(|| canonical.to_string(), |(_, l)| l)
    }

    /// `(canonical, local)` pairs for one domain and entity type.
    pub fn fields(&self, domain: &str, entity: &str) -> Vec<(String, String)> {
        self.0
            .get(domain)
            .and_then(|m| m.get(entity))
            .map(|m| m.iter().map(|(c, l)| (c.clone(), l.clone())).collect())
            .unwrap_or_default()
    }
}

/// The rename table (for [`cds_policy::rename_fields`]) from a domain's own
/// field names to the canonical ones; `fields` are its `(canonical, local)`
/// pairs ([`EntityMappings::fields`]).
pub fn to_canonical(fields: &[(String, String)]) -> Vec<(&str, &str)> {
    fields
        .iter()
        .map(|(c, l)| (l.as_str(), c.as_str()))
        .collect()
}

/// The rename table from canonical field names to a domain's own (see
/// [`to_canonical`]).
pub fn to_local(fields: &[(String, String)]) -> Vec<(&str, &str)> {
    fields
        .iter()
        .map(|(c, l)| (c.as_str(), l.as_str()))
        .collect()
}

/// `policy` (canonical names) in the names of the domain whose renames are
/// `fields` (`(canonical, local)` pairs): what a plugin and the host's check
/// see for a crossing into that domain.
pub fn in_local_names(policy: &Policy, fields: &[(String, String)]) -> Policy {
    policy.renamed(|f| {
        fields
            .iter()
            .find(|(c, _)| c == f)
            .map_or_else(|| f.to_string(), |(_, l)| l.clone())
    })
}

/// A name usable as a domain: lower-case letters, digits, `-`, `_`.
pub fn is_safe_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z'))
        && name.len() <= 64
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_' | '-'))
}

/// A relative path that stays inside the data folder.
pub fn is_safe_relative(path: &str) -> bool {
    let p = Path::new(path);
    !path.is_empty()
        && p.components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

impl Config {
    /// Loads the file at `path`, or the defaults when it does not exist.
    pub fn load(path: &Path) -> Result<Config> {
        let Some(bytes) = crate::store::read_optional(path)? else {
            return Ok(Config::default());
        };
        let config: Config = validate::parse_validated(path, &bytes, &config_schema())?;
        config.check(path)?;
        Ok(config)
    }

    fn check(&self, path: &Path) -> Result<()> {
        let bad = |msg: String| {
            Error::new(
                Code::InvalidArgument,
                format!("`{}`: {msg}", path.display()),
            )
            .with("file", path.display().to_string())
        };
        if self.domains.len() < 2 {
            return Err(bad("at least two domains must be configured".into()));
        }
        for (name, d) in &self.domains {
            if !is_safe_name(name) {
                return Err(bad(format!(
                    "domain name `{name}` is not allowed: use lower-case letters, digits, `-` \
                     and `_`, starting with a letter (at $.domains)"
                )));
            }
            if let Some(p) = &d.path
                && !is_safe_relative(p)
            {
                return Err(bad(format!(
                    "the folder of domain `{name}` (`{p}`) must be a relative path inside the \
                     data folder, without `..` (at $.domains.{name}.path)"
                )));
            }
            for (entity, folder) in &d.vdir {
                if crate::cards::Format::for_entity(entity).is_none() {
                    return Err(bad(format!(
                        "domain `{name}` keeps `{entity}` as a vdir folder, but only contacts \
                         (vCard), calendar and tasks (iCalendar) have a vdir form (at \
                         $.domains.{name}.vdir.{entity})"
                    )));
                }
                if !(Path::new(folder).is_absolute() || is_safe_relative(folder)) {
                    return Err(bad(format!(
                        "the vdir folder of `{entity}` in domain `{name}` (`{folder}`) must be \
                         absolute, or relative to the data folder without `..` (at \
                         $.domains.{name}.vdir.{entity})"
                    )));
                }
            }
        }
        if let Some(users) = &self.users {
            for (user, rights) in users {
                if let Some(d) = rights.keys().find(|d| !self.domains.contains_key(*d)) {
                    return Err(bad(format!(
                        "user `{user}` has rights on `{d}`, which is not a configured domain \
                         (at $.users.{user})"
                    )));
                }
            }
        }
        if let Some(dir) = &self.plugin_cache_dir
            && !dir.is_absolute()
        {
            return Err(bad(format!(
                "`pluginCacheDir` (`{}`) must be an absolute path (at $.pluginCacheDir)",
                dir.display()
            )));
        }
        for crossing in self.policies.keys() {
            let ok = crossing.split_once("->").is_some_and(|(a, b)| {
                self.domains.contains_key(a) && self.domains.contains_key(b) && a != b
            });
            if !ok {
                return Err(bad(format!(
                    "policy crossing `{crossing}` must be `FROM->TO` between two configured \
                     domains (at $.policies)"
                )));
            }
        }
        Ok(())
    }

    pub fn domain_names(&self) -> Vec<String> {
        // Personal first, as the seed lists them; then the rest by name.
        let mut names: Vec<String> = self.domains.keys().cloned().collect();
        names.sort_by_key(|n| (n != "personal", n != "business", n.clone()));
        names
    }

    /// The folder of `domain`, relative to the data folder.
    pub fn domain_path(&self, domain: &str) -> Option<String> {
        self.domains
            .get(domain)
            .map(|d| d.path.clone().unwrap_or_else(|| domain.to_string()))
    }

    /// The vdir folders of `domain`, by entity type, resolved against the
    /// data folder `data_dir`.
    pub fn vdirs(&self, domain: &str, data_dir: &Path) -> BTreeMap<String, PathBuf> {
        self.domains
            .get(domain)
            .map(|d| {
                d.vdir
                    .iter()
                    .map(|(e, f)| (e.clone(), data_dir.join(f)))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The domain a file of a transaction belongs to (`path` as the backup
    /// manifest names it: relative to the data folder `data_dir`, or
    /// absolute): the domain whose folder or one of whose vdir folders holds
    /// it.
    pub fn domain_of_file(&self, path: &str, data_dir: &Path) -> Option<String> {
        let path = data_dir.join(path);
        self.domain_names().into_iter().find(|d| {
            let folder = data_dir.join(self.domain_path(d).unwrap_or_default());
            path.parent() == Some(folder.as_path())
                || self
                    .vdirs(d, data_dir)
                    .values()
                    .any(|v| path.parent() == Some(v.as_path()))
        })
    }

    /// Whether `user` has `right` on `domain`.
    pub fn allows(&self, user: &str, domain: &str, right: Right) -> bool {
        match &self.users {
            None => true,
            Some(users) => users
                .get(user)
                .and_then(|r| r.get(domain))
                .is_some_and(|r| r.contains(&right)),
        }
    }

    /// The policy of the crossing `from->to` for `entity`: the configured
    /// one or the default, its source-line fields guarded
    /// ([`Policy::guarding_source_lines`]). They are stripped too when the
    /// crossing back (`to->from`) takes fields away: `to`'s lines were then
    /// written from a reduced item (a vdir file made from what crossed), and
    /// sent back they would replace `from`'s full lines, losing every
    /// property only those held.
    pub fn policy(&self, from: &str, to: &str, entity: &str) -> Policy {
        let given = |from: &str, to: &str| {
            self.policies
                .get(&format!("{from}->{to}"))
                .and_then(|m| m.get(entity))
                .cloned()
                .unwrap_or_else(|| cds_policy::default_policy(from, to, entity))
        };
        let policy = given(from, to).guarding_source_lines();
        if given(to, from).takes_fields_away() {
            policy.stripping_source_lines()
        } else {
            policy
        }
    }
}

impl EntityMappings {
    pub fn load(path: &Path) -> Result<EntityMappings> {
        let Some(bytes) = crate::store::read_optional(path)? else {
            return Ok(EntityMappings::default());
        };
        let m: EntityMappings = validate::parse_validated(path, &bytes, &mappings_schema())?;
        for (domain, entities) in &m.0 {
            for (entity, fields) in entities {
                let mut seen = std::collections::HashSet::new();
                for (canonical, local) in fields {
                    let at = format!("$.{domain}.{entity}.{canonical}");
                    if ["id", "lastModified", "syncedAt", "syncDirection"]
                        .contains(&canonical.as_str())
                    {
                        return Err(Error::invalid(format!(
                            "`{}`: the field `{canonical}` cannot be renamed (at {at})",
                            path.display()
                        )));
                    }
                    if !seen.insert(local) {
                        return Err(Error::invalid(format!(
                            "`{}`: two fields are renamed to `{local}` (at {at})",
                            path.display()
                        )));
                    }
                }
            }
        }
        Ok(m)
    }
}

/// The configuration file's schema (`schemas/config.schema.json`).
pub fn config_schema() -> serde_json::Value {
    crate::validate::schema_of::<Config>()
}

/// The entity-mappings file's schema (`schemas/entity-mappings.schema.json`).
pub fn mappings_schema() -> serde_json::Value {
    let mut s = crate::validate::schema_of::<EntityMappings>();
    s["description"] = serde_json::json!(
        "Per domain, per entity type: canonical field name (as in the item schema) → the \
         name that domain's files use. Example: {\"business\": {\"contacts\": {\"company\": \
         \"organization\"}}}"
    );
    s
}
