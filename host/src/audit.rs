//! The audit trail (CONTRACT §7): `data/audit/audit.jsonl`, one JSON entry a
//! line, appended and fsynced, never rewritten, each entry chained to the one
//! before by SHA-256.
//!
//! `hash` = SHA-256 over the entry's canonical JSON (keys sorted, no `hash`
//! field), which includes `prevHash`. A head file (`.sync/audit-head.json`)
//! remembers the last sequence number and hash, so that cutting entries off
//! the end is caught too. The trail holds counts and ids, never synced values.
//!
//! Every attempt has an entry of its own: nothing is ever skipped because it
//! looks like the entry before it. Each entry carries an `entryId` (a UUID);
//! appending an entry whose `entryId` is already in the trail does nothing,
//! which is what makes a crashed commit's roll-forward safe to repeat.

use crate::error::{Code, Error, Result};
use crate::record::{EntityResult, Status, SyncRecord};
use crate::store::{self, DataDir};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// One entry as the host writes it: when, who, what was done (one
/// [`Action`]), and how it ended. Every entry the host appends is one of
/// these, built in one place per action, so the invariant holds by type:
/// counts, ids, names and error codes, never a synced value or an error's
/// message (which may quote one). `seq`, `prevHash` and `hash` are added by
/// [`append`]; `schemas/audit-entry.schema.json` describes the whole line.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(title = "cross-domain-sync audit entry")]
pub struct Entry {
    /// When (RFC 3339, UTC).
    pub timestamp: String,
    /// Always `CROSS_DOMAIN` (the seed's category).
    pub category: Category,
    #[serde(flatten)]
    pub action: Action,
    /// Who asked for it.
    pub user: String,
    pub outcome: Status,
    /// A UUID; a commit's entry carries it in the journal, so that a
    /// roll-forward after a crash appends the entry once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entry_id: Option<String>,
    /// The entry's place in the chain (added when appended).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// The hash of the entry before (added when appended).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prev_hash: Option<String>,
    /// SHA-256 of this entry's canonical JSON without `hash` (added when
    /// appended).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Category {
    CrossDomain,
}

/// What an entry records, with the ids and counts that say what it did.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(tag = "action", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Action {
    /// A sync attempt: run, dry run, refused or failed.
    #[serde(rename_all = "camelCase")]
    DataSync {
        sync_id: String,
        session: String,
        source_domain: String,
        target_domain: String,
        entity_types: Vec<String>,
        sync_direction: String,
        dry_run: bool,
        /// Counts per entity type.
        results: BTreeMap<String, EntityResult>,
        errors: Vec<ErrorRef>,
        /// Entity type → SHA-256 of the plugin that ran.
        plugins: BTreeMap<String, String>,
        duration_ms: u64,
    },
    /// A sync interrupted in its commit, undone on the next start.
    #[serde(rename_all = "camelCase")]
    Rollback { sync_id: String, reason: String },
    /// A sync interrupted after its commit point, finished on the next start.
    #[serde(rename_all = "camelCase")]
    Rollforward { sync_id: String, reason: String },
    /// `plugins add`.
    #[serde(rename_all = "camelCase")]
    PluginInstall {
        file: String,
        plugin: Option<PluginRef>,
        errors: Vec<ErrorRef>,
    },
    /// `conflicts resolve`.
    #[serde(rename_all = "camelCase")]
    ConflictResolve {
        sync_id: String,
        conflict_id: String,
        source_domain: String,
        target_domain: String,
        entity_types: Vec<String>,
        item_id: String,
        /// Which value was kept.
        keep: crate::conflict_log::Keep,
        changed_domains: Vec<String>,
    },
    /// `backups prune`.
    #[serde(rename_all = "camelCase")]
    BackupsPrune { pruned: Vec<String>, kept: usize },
    /// `import` refused before its sync started (a file that cannot be
    /// read); an import that reaches its sync is audited as `DATA_SYNC`.
    #[serde(rename_all = "camelCase")]
    DataImport {
        domain: String,
        file: String,
        errors: Vec<ErrorRef>,
    },
    /// `export`: a domain's items written to a vCard or iCalendar file
    /// (the file's path and how many items, never their values).
    #[serde(rename_all = "camelCase")]
    DataExport {
        domain: String,
        entity_type: String,
        file: String,
        items: usize,
        errors: Vec<ErrorRef>,
    },
    /// `undo`.
    #[serde(rename_all = "camelCase")]
    Undo {
        sync_id: String,
        forced: bool,
        /// File → how many items it got back.
        restored: BTreeMap<String, usize>,
    },
}

/// An installed plugin, as `plugins add` records it.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PluginRef {
    pub entity_type: String,
    pub sha256: String,
    pub plugin_version: String,
}

/// An error as the trail keeps it: its code and where it happened, never its
/// message (which may quote data).
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct ErrorRef {
    pub code: Code,
    /// Of the error's details, only these: `file`, `index`, `id`, `path`,
    /// `paths`, `plugin`, `domain`, `entity`.
    #[serde(flatten)]
    pub at: Map<String, Value>,
}

impl ErrorRef {
    /// The details an error's entry may keep.
    pub const KEPT: [&str; 8] = [
        "file", "index", "id", "path", "paths", "plugin", "domain", "entity",
    ];

    pub fn of(code: Code, details: &Map<String, Value>) -> ErrorRef {
        let at = Self::KEPT
            .iter()
            .filter_map(|k| details.get(*k).map(|v| (k.to_string(), v.clone())))
            .collect();
        ErrorRef { code, at }
    }

    /// What an entry records of a command's result: its error, if any (as
    /// a list, which is what entries hold), and its status.
    pub fn outcome<T>(result: &crate::error::Result<T>) -> (Vec<ErrorRef>, Status) {
        match result {
            Ok(_) => (Vec::new(), Status::Success),
            Err(e) => (vec![ErrorRef::of(e.code, &e.details)], Status::Failed),
        }
    }
}

impl Entry {
    /// An entry of `action` by `user` at `timestamp`, not yet appended.
    pub fn new(timestamp: String, user: String, action: Action, outcome: Status) -> Entry {
        Entry {
            timestamp,
            category: Category::CrossDomain,
            action,
            user,
            outcome,
            entry_id: None,
            seq: None,
            prev_hash: None,
            hash: None,
        }
    }

    /// The entry of a sync attempt, from its record: counts, codes and ids.
    pub fn of_sync(rec: &SyncRecord, plugins: &BTreeMap<String, String>) -> Entry {
        let errors = rec
            .errors
            .iter()
            .map(|e| ErrorRef::of(e.code, &e.details))
            .collect();
        Entry::new(
            rec.timestamp.clone(),
            rec.user.clone(),
            Action::DataSync {
                sync_id: rec.sync_id.clone(),
                session: rec.session.clone(),
                source_domain: rec.source_domain.clone(),
                target_domain: rec.target_domain.clone(),
                entity_types: rec.entities.clone(),
                sync_direction: rec.sync_direction.clone(),
                dry_run: rec.dry_run,
                results: rec.results.clone(),
                errors,
                plugins: plugins.clone(),
                duration_ms: rec.duration_ms,
            },
            rec.status,
        )
    }

    /// This entry with an `entryId`, as the JSON object a journal keeps and
    /// [`append`] appends.
    pub fn into_value(mut self) -> Value {
        if self.entry_id.is_none() {
            self.entry_id = Some(new_entry_id());
        }
        serde_json::to_value(&self).unwrap_or(Value::Null)
    }
}

/// The hash before the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
struct Head {
    seq: u64,
    hash: String,
}

/// Recursively sorts object keys, so the hash does not depend on field order.
pub fn canonical(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), canonical(&m[k])))
                    .collect(),
            )
        }
        Value::Array(a) => Value::Array(a.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

fn entry_hash(entry: &Map<String, Value>) -> String {
    let mut e = entry.clone();
    e.shift_remove("hash");
    let text = serde_json::to_string(&canonical(&Value::Object(e))).unwrap_or_default();
    hex::encode(Sha256::digest(text.as_bytes()))
}

fn head_path(dir: &DataDir) -> std::path::PathBuf {
    dir.state_dir().join("audit-head.json")
}

fn last_line(bytes: &[u8]) -> Option<&[u8]> {
    let trimmed = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    if trimmed.is_empty() {
        return None;
    }
    let start = trimmed
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |p| p + 1);
    Some(&trimmed[start..])
}

/// Appends `entry` (an [`Entry::into_value`], without `seq`, `prevHash`,
/// `hash`) to the trail, giving it an `entryId` when it has none. An entry whose `entryId` the
/// trail already holds (a commit's entry, appended again when a crash
/// interrupted its roll-forward) is not appended twice.
pub fn append(dir: &DataDir, entry: &Value) -> Result<()> {
    let path = dir.audit_path();
    let existing = store::read_optional(&path)?.unwrap_or_default();
    let mut e = match entry {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    match e.get("entryId").and_then(Value::as_str) {
        Some(id) => {
            // Entries are written compactly, so the field's text is exact.
            let needle = format!("\"entryId\":{}", Value::String(id.to_string()));
            if memchr::memmem::find(&existing, needle.as_bytes()).is_some() {
                return Ok(());
            }
        }
        None => {
            e.insert("entryId".into(), new_entry_id().into());
        }
    }
    let (seq, prev) = match last_line(&existing) {
        None => (0, GENESIS.to_string()),
        Some(line) => {
            let last: Map<String, Value> = serde_json::from_slice(line).map_err(|e| {
                Error::new(
                    Code::StorageError,
                    format!(
                        "the last line of the audit trail `{}` is not valid JSON ({e}); run \
                         `cross-domain-sync audit verify` and restore the trail",
                        path.display()
                    ),
                )
            })?;
            (
                last.get("seq").and_then(Value::as_u64).unwrap_or(0),
                last.get("hash")
                    .and_then(Value::as_str)
                    .unwrap_or(GENESIS)
                    .to_string(),
            )
        }
    };
    e.insert("seq".into(), (seq + 1).into());
    e.insert("prevHash".into(), prev.into());
    let hash = entry_hash(&e);
    e.insert("hash".into(), hash.clone().into());
    let line = serde_json::to_string(&Value::Object(e)).unwrap_or_default();
    store::append_line(&path, &line)?;
    store::atomic_write(
        &head_path(dir),
        &store::to_pretty(&Head { seq: seq + 1, hash }),
    )
}

/// A fresh `entryId`.
pub fn new_entry_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// The result of `audit verify`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Verification {
    pub ok: bool,
    pub entries: u64,
    /// The first bad entry: its line number (1-based) and what is wrong.
    pub first_bad_line: Option<u64>,
    pub problem: Option<String>,
}

/// Checks the whole chain and names the first entry that was altered, removed
/// or inserted.
pub fn verify(dir: &DataDir) -> Result<Verification> {
    let path = dir.audit_path();
    let bytes = store::read_optional(&path)?.unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes);
    let mut prev = GENESIS.to_string();
    let mut count = 0u64;
    let fail = |line: u64, count: u64, problem: String| {
        Ok(Verification {
            ok: false,
            entries: count,
            first_bad_line: Some(line),
            problem: Some(problem),
        })
    };
    for (n, line) in (1u64..).zip(text.lines()) {
        let expected_seq = count + 1;
        let Ok(Value::Object(e)) = serde_json::from_str::<Value>(line) else {
            return fail(n, count, format!("line {n} is not a JSON object: altered"));
        };
        let seq = e.get("seq").and_then(Value::as_u64).unwrap_or(0);
        let stored = e.get("hash").and_then(Value::as_str).unwrap_or("");
        if entry_hash(&e) != stored {
            return fail(
                n,
                count,
                format!(
                    "entry seq {seq} (line {n}) was altered: its hash does not match its content"
                ),
            );
        }
        if e.get("prevHash").and_then(Value::as_str) != Some(prev.as_str()) {
            let what = if seq > expected_seq {
                format!("entries before seq {seq} (line {n}) were removed")
            } else {
                format!(
                    "entry seq {seq} (line {n}) was inserted or moved: it does not chain to the entry before it"
                )
            };
            return fail(n, count, what);
        }
        if seq != expected_seq {
            return fail(
                n,
                count,
                format!("entry at line {n} has seq {seq}, expected {expected_seq}: altered"),
            );
        }
        prev = stored.to_string();
        count += 1;
    }
    if let Some(head) =
        store::read_optional(&head_path(dir))?.and_then(|b| serde_json::from_slice::<Head>(&b).ok())
        && (head.seq != count || head.hash != prev)
    {
        if head.seq > count {
            return fail(
                count + 1,
                count,
                format!(
                    "entries after seq {count} were removed: the trail's head records {} entries",
                    head.seq
                ),
            );
        }
        return fail(
            count,
            count,
            format!(
                "the trail does not end where its head says (seq {})",
                head.seq
            ),
        );
    }
    Ok(Verification {
        ok: true,
        entries: count,
        first_bad_line: None,
        problem: None,
    })
}
