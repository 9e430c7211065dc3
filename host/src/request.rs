//! From raw arguments to a validated, resolved [`SyncRequest`].
//!
//! Both front ends (the command line and MCP) build the JSON form of an
//! invocation ([`Invocation`], the seed's camelCase), which is validated
//! against the invocation schema of this installation before anything runs;
//! then [`resolve`] checks what a schema cannot (source ≠ target, the domain
//! folders exist) and fixes every default. Nothing downstream sees raw input.

use crate::config::Config;
use crate::error::{Code, Error, Result};
use crate::merge::Direction;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// The invocation's JSON form (the MCP tool's arguments).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(title = "gold.cross-domain-sync invocation")]
pub struct Invocation {
    /// The domain to sync from (its data wins conflicts, except with
    /// `target_to_source`).
    pub source: String,
    /// The domain to sync to; must differ from `source`.
    pub target: String,
    /// Entity types to sync. Default: every installed type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1), extend("uniqueItems" = true))]
    pub entities: Option<Vec<String>>,
    /// Sync direction. Default: `source_to_target`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<Direction>,
    /// Plan only: report what would change and write nothing but the audit entry.
    #[serde(default)]
    pub dry_run: bool,
    /// Do not carry deletions over to the other domain.
    #[serde(default)]
    pub no_delete: bool,
    /// Allow a sync to delete more than half of the items both domains last
    /// agreed on, or to run against a domain that lists no items.
    #[serde(default)]
    pub allow_mass_delete: bool,
    /// The user the sync runs as (checked against the configured rights).
    /// Default: the configured or calling user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub user: Option<String>,
    /// The caller's session id, recorded in the audit trail. Default: a new UUID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub session: Option<String>,
}

/// A domain resolved to its folder.
#[derive(Debug, Clone, PartialEq)]
pub struct Domain {
    pub name: String,
    pub dir: PathBuf,
    /// The entity types kept as vdir folders, and their folders (see
    /// [`crate::vdir`]).
    pub vdirs: std::collections::BTreeMap<String, PathBuf>,
}

/// A validated sync request: everything the pipeline needs, nothing raw.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncRequest {
    pub source: Domain,
    pub target: Domain,
    pub entities: Vec<String>,
    pub direction: Direction,
    pub dry_run: bool,
    pub no_delete: bool,
    pub allow_mass_delete: bool,
    pub user: String,
    pub session: String,
}

/// The user a sync runs as when no `--user` names one: `CDS_USER` (when not
/// empty), else the OS account the process runs as (its effective uid's
/// name, not `$USER`, which any caller can set), else `uid-N`.
pub fn default_user() -> String {
    std::env::var("CDS_USER")
        .ok()
        .filter(|v| !v.is_empty())
        .or_else(os_account)
        .unwrap_or_else(|| format!("uid-{}", effective_uid()))
}

fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// The name of the effective uid's account, from the system's user
/// database (`getpwuid_r`; no crate wraps it without pulling in more).
fn os_account() -> Option<String> {
    let uid = effective_uid();
    let mut buf = vec![0u8; 4096];
    loop {
        // SAFETY: an all-zero passwd is a valid value for getpwuid_r to fill.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the call; `buf` outlives `pwd`'s
        // use below, and `found` is either null or points at `pwd`.
        let rc = unsafe {
            libc::getpwuid_r(
                uid,
                &mut pwd,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut found,
            )
        };
        if rc == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 4, 0);
            continue;
        }
        if rc != 0 || found.is_null() || pwd.pw_name.is_null() {
            return None;
        }
        // SAFETY: pw_name points at a NUL-terminated string inside `buf`.
        let name = unsafe { std::ffi::CStr::from_ptr(pwd.pw_name) };
        return Some(name.to_string_lossy().into_owned()).filter(|n| !n.is_empty());
    }
}

/// Refuses two domains whose folders are the same, or one inside the other
/// (also through a symbolic link): a sync would then read and write the same
/// files as both domains, and the receiving side's policy would overwrite
/// the sending side's live data (a personal calendar rewritten as `Busy`
/// blocks).
fn check_separate(a: &Domain, b: &Domain) -> Result<()> {
    let real = |d: &Domain| {
        std::fs::canonicalize(&d.dir).map_err(|e| {
            Error::new(
                Code::DomainNotFound,
                format!(
                    "the folder `{}` of domain `{}` cannot be resolved: {e}",
                    d.dir.display(),
                    d.name
                ),
            )
            .with("domain", d.name.as_str())
            .with("file", d.dir.display().to_string())
        })
    };
    let (ra, rb) = (real(a)?, real(b)?);
    let (outer, inner) = if rb.starts_with(&ra) {
        (a, b)
    } else if ra.starts_with(&rb) {
        (b, a)
    } else {
        return Ok(());
    };
    let how = if ra == rb {
        format!(
            "domains `{}` and `{}` are configured on the same folder `{}`",
            a.name,
            b.name,
            ra.display()
        )
    } else {
        format!(
            "the folder of domain `{}` (`{}`) lies inside the folder of domain `{}` (`{}`)",
            inner.name,
            real(inner)?.display(),
            outer.name,
            real(outer)?.display()
        )
    };
    Err(Error::invalid(format!(
        "{how}; each domain needs a folder of its own, or a sync would overwrite one \
         domain's files with the other's. Set a separate folder at $.domains.<name>.path in \
         the configuration"
    ))
    .with("domains", vec![a.name.clone(), b.name.clone()])
    .with("file", ra.display().to_string()))
}

/// Refuses two domains that keep a vdir folder in the same place, or one
/// inside the other: a sync would write one domain's items into the other's
/// folder.
fn check_separate_vdirs(a: &Domain, b: &Domain) -> Result<()> {
    let real = |d: &Domain| -> Vec<(String, PathBuf)> {
        d.vdirs
            .iter()
            .map(|(e, f)| (e.clone(), std::fs::canonicalize(f).unwrap_or(f.clone())))
            .collect()
    };
    for (ea, fa) in real(a) {
        for (eb, fb) in real(b) {
            if fa.starts_with(&fb) || fb.starts_with(&fa) {
                return Err(Error::invalid(format!(
                    "domain `{}` keeps `{ea}` in `{}` and domain `{}` keeps `{eb}` in `{}`: \
                     the same folder, or one inside the other. Each domain needs vdir folders \
                     of its own, or a sync would write one domain's items into the other's \
                     (at $.domains.<name>.vdir in the configuration)",
                    a.name,
                    fa.display(),
                    b.name,
                    fb.display()
                ))
                .with("domains", vec![a.name.clone(), b.name.clone()])
                .with("file", fa.display().to_string()));
            }
        }
    }
    Ok(())
}

/// Validates the JSON form of an invocation against this installation's
/// schema and resolves it. Errors carry every failing JSON path.
///
/// Long: the contract's order of checks (schema, domains, entity types,
/// direction, user), each a refusal with its own code; kept in one place so
/// the order is read top to bottom.
pub fn resolve(
    raw: &Value,
    config: &Config,
    entity_types: &[String],
    data_dir: &Path,
    fallback_user: &str,
) -> Result<SyncRequest> {
    let domains = config.domain_names();
    let schema = invocation_schema(&domains, entity_types);
    let violations = crate::validate::violations(&schema, raw);
    let structural: Vec<_> = violations
        .iter()
        .filter(|v| {
            !(v.keyword == "enum"
                && (v.path == "$.source"
                    || v.path == "$.target"
                    || v.path.starts_with("$.entities[")))
        })
        .collect();
    if !structural.is_empty() {
        // Every failing path, the domain and entity ones too, so that a caller
        // can correct all of them at once.
        let paths: Vec<String> = violations.iter().map(|v| v.path.clone()).collect();
        let mut err = Error::invalid(format!(
            "the invocation is not valid: at {}: {}",
            structural[0].path, structural[0].message
        ))
        .with("paths", paths);
        for v in violations.iter().filter(|v| v.path != structural[0].path) {
            err = err.with_help(format!("also at {}: {}", v.path, v.message));
        }
        return Err(err);
    }
    for (side, label) in [("$.source", "Source"), ("$.target", "Target")] {
        if violations.iter().any(|v| v.path == side) {
            let name = raw
                .get(&side[2..])
                .and_then(Value::as_str)
                .unwrap_or_default();
            return Err(unknown_domain(&domains, label, name).with("path", side));
        }
    }
    let bad_entities: Vec<String> = violations
        .iter()
        .filter(|v| v.path.starts_with("$.entities["))
        .filter_map(|v| {
            let i: usize = v
                .path
                .trim_start_matches("$.entities[")
                .trim_end_matches(']')
                .parse()
                .ok()?;
            raw.get("entities")?.get(i)?.as_str().map(String::from)
        })
        .collect();
    if !bad_entities.is_empty() {
        return Err(Error::new(
            Code::EntityTypeUnsupported,
            format!(
                "entity type{} not supported: {}",
                if bad_entities.len() > 1 { "s" } else { "" },
                bad_entities.join(", ")
            ),
        )
        .with_help(format!(
            "Supported entity types: {}",
            entity_types.join(", ")
        ))
        .with_help("Install a plugin for a new type with `cross-domain-sync plugins add FILE.wasm`")
        .with("entities", bad_entities));
    }
    let inv: Invocation = serde_json::from_value(raw.clone())
        .map_err(|e| Error::invalid(format!("the invocation is not valid: {e}")))?;
    if inv.source == inv.target {
        return Err(Error::invalid(format!(
            "source and target are both `{}`; they must be different domains",
            inv.source
        ))
        .with("paths", vec!["$.source", "$.target"]));
    }
    let mut resolved = Vec::with_capacity(2);
    for (name, label) in [(&inv.source, "Source"), (&inv.target, "Target")] {
        let rel = config.domain_path(name).unwrap_or_else(|| name.clone());
        let dir = data_dir.join(&rel);
        if !dir.is_dir() {
            return Err(Error::new(Code::DomainNotFound, "Invalid domain specified")
                .with_help(format!("Valid domains: {}", domains.join(", ")))
                .with_help(format!(
                    "{label} domain '{name}' not found: its folder `{}` does not exist; create \
                     it (an empty folder is an empty domain) or pass the right --data-dir",
                    dir.display()
                ))
                .with("domain", name.as_str())
                .with("file", dir.display().to_string()));
        }
        let vdirs = config.vdirs(name, data_dir);
        if let Some((entity, folder)) = vdirs.iter().find(|(_, f)| !f.is_dir()) {
            return Err(Error::new(Code::DomainNotFound, "Invalid domain specified")
                .with_help(format!(
                    "{label} domain '{name}' keeps `{entity}` in the vdir folder `{}`, which \
                     does not exist; create it (an empty folder holds no items) or fix \
                     $.domains.{name}.vdir.{entity} in the configuration",
                    folder.display()
                ))
                .with("domain", name.as_str())
                .with("file", folder.display().to_string()));
        }
        resolved.push(Domain {
            name: name.clone(),
            dir,
            vdirs,
        });
    }
    let [source, target]: [Domain; 2] = resolved
        .try_into()
        .map_err(|_| Error::invalid("a sync has exactly two domains"))?;
    check_separate(&source, &target)?;
    check_separate_vdirs(&source, &target)?;
    let entities = inv.entities.unwrap_or_else(|| entity_types.to_vec());
    Ok(SyncRequest {
        source,
        target,
        entities,
        direction: inv.direction.unwrap_or(Direction::SourceToTarget),
        dry_run: inv.dry_run,
        no_delete: inv.no_delete,
        allow_mass_delete: inv.allow_mass_delete,
        user: inv
            .user
            .or_else(|| config.mcp.default_user.clone())
            .unwrap_or_else(|| fallback_user.to_string()),
        session: inv
            .session
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
    })
}

/// The invocation schema with the given domains and entity types as enums:
/// the truth for one installation (`schemas/invocation.schema.json` has the
/// defaults).
pub fn invocation_schema(domains: &[String], entities: &[String]) -> Value {
    let mut s = crate::validate::schema_of::<Invocation>();
    if let Some(props) = s.get_mut("properties") {
        for side in ["source", "target"] {
            props[side]["enum"] = serde_json::json!(domains);
        }
        // An empty name (`--entities ""`, a stray comma) is an invalid
        // argument, not an unsupported type.
        props["entities"]["items"] =
            serde_json::json!({"type": "string", "minLength": 1, "enum": entities});
    }
    s
}

/// `DOMAIN_NOT_FOUND` for a domain no configuration names, in the seed's
/// words: the valid domains, then which side (`Source`, `Target`) was not
/// found.
pub fn unknown_domain(domains: &[String], label: &str, name: &str) -> Error {
    Error::new(Code::DomainNotFound, "Invalid domain specified")
        .with_help(format!("Valid domains: {}", domains.join(", ")))
        .with_help(format!("{label} domain '{name}' not found"))
        .with("domain", name)
}
