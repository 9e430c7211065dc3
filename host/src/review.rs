//! Reviewing and reversing what syncs did (CONTRACT §8): the conflict log
//! (`conflicts list`, `conflicts resolve`), `undo SYNC_ID`, and the backups
//! that make undo possible (`backups list`, `backups prune`).
//!
//! Every change here goes through the same journalled transaction as a sync
//! (`DataDir::commit`), takes the data folder's lock, and is audited.
//!
//! Undo works item by item: for each file the sync wrote, the items it
//! changed are those that differ between its backup (before) and the state
//! right after it (the next backup of that file, or the file now). Those items
//! go back to their version before the sync, in the domains and in the sync
//! base; other items stay as they are now. If a later sync changed one of the
//! same items, undo refuses, naming them, unless `--force`.

use crate::audit::{Action, Entry};
use crate::conflict_log::{ConflictLog, LoggedConflict, Resolution};
use crate::error::{Code, Error, Result};
use crate::install::Host;
use crate::merge::Side;
use crate::record::Status;
use crate::store::{self, BackupManifest, DataDir, ManifestFile, Write};
use serde::Serialize;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn conflict_files(data: &DataDir) -> Vec<PathBuf> {
    let dir = data.state_dir().join("conflicts");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// The conflicts `user` may see: a value from a domain the user may not read
/// is replaced by a note saying so (the log holds both domains' values).
pub fn visible_conflicts(host: &Host, user: &str, all: bool) -> Result<Vec<LoggedConflict>> {
    let mut rows = list_conflicts(&host.data, all)?;
    let may_read = |d: &str| host.config.allows(user, d, crate::config::Right::Read);
    let hidden = |d: &str| {
        Some(json!(format!(
            "(hidden: user `{user}` may not read domain `{d}`)"
        )))
    };
    for row in &mut rows {
        if !may_read(&row.source_domain) {
            row.source_value = hidden(&row.source_domain);
            row.base_value = None;
        }
        if !may_read(&row.target_domain) {
            row.target_value = hidden(&row.target_domain);
            row.base_value = None;
        }
    }
    Ok(rows)
}

/// Every logged conflict, oldest sync first.
pub fn list_conflicts(data: &DataDir, all: bool) -> Result<Vec<LoggedConflict>> {
    let mut rows = Vec::new();
    for f in conflict_files(data) {
        let Some(log) = ConflictLog::read(&f)? else {
            continue;
        };
        rows.extend(
            log.conflicts
                .into_iter()
                .filter(|c| all || c.resolved.is_none()),
        );
    }
    Ok(rows)
}

pub use crate::conflict_log::Keep;

fn domain_file(host: &Host, domain: &str, entity: &str) -> Result<PathBuf> {
    let rel = host.config.domain_path(domain).ok_or_else(|| {
        Error::new(
            Code::DomainNotFound,
            format!("domain `{domain}` is no longer configured"),
        )
    })?;
    Ok(host.paths.data_dir.join(rel).join(format!("{entity}.json")))
}

fn check_write(host: &Host, user: &str, domains: &[&str], what: &str) -> Result<()> {
    for d in domains {
        if !host.config.allows(user, d, crate::config::Right::Write) {
            return Err(Error::new(
                Code::PermissionDenied,
                format!("user `{user}` may not write domain `{d}`, which {what} needs"),
            )
            .with("domain", *d)
            .with("user", user));
        }
    }
    Ok(())
}

/// Applies the choice for one conflict to both domains.
pub fn resolve(host: &Host, conflict_id: &str, keep: Keep, user: &str) -> Result<Value> {
    let _lock = host.data.lock(host.wait)?;
    host.recover()?;
    let sync_id = conflict_id.split(':').next().unwrap_or("");
    let log_path = host.data.conflicts_path(sync_id);
    let not_found = || {
        Error::invalid(format!(
            "no conflict `{conflict_id}`; `cross-domain-sync conflicts list` shows their ids"
        ))
        .with("id", conflict_id)
    };
    if !crate::config::is_safe_relative(sync_id) || sync_id.contains('/') {
        return Err(not_found());
    }
    let mut log = ConflictLog::read(&log_path)?.ok_or_else(not_found)?;
    let idx = log
        .conflicts
        .iter()
        .position(|c| c.id == conflict_id)
        .ok_or_else(not_found)?;
    let row = log.conflicts[idx].clone();
    if let Some(r) = &row.resolved {
        return Err(Error::invalid(format!(
            "conflict `{conflict_id}` was already resolved (kept {:?} by `{}` at {})",
            r.keep, r.by, r.at
        )));
    }
    let (src, tgt, entity, item_id) = (
        row.source_domain.clone(),
        row.target_domain.clone(),
        row.entity.clone(),
        row.item_id.clone(),
    );
    check_write(host, user, &[&src, &tgt], "resolving a conflict")?;
    let idf = id_field(host, &entity);
    let (mut writes, changed_domains) = match row.field.as_deref() {
        Some(field) => keep_field_value(host, &row, field, keep, &idf)?,
        None => keep_change_or_deletion(host, &row, keep, &idf)?,
    };
    log.conflicts[idx].resolved = Some(Resolution {
        keep,
        by: user.to_string(),
        at: now(),
    });
    writes.push(Write {
        prestaged: None,
        path: log_path,
        content: Some(log.encode()),
    });
    let txn = format!("resolve-{}", conflict_id.replace(':', "-"));
    let entry = Entry::new(
        now(),
        user.to_string(),
        Action::ConflictResolve {
            sync_id: sync_id.to_string(),
            conflict_id: conflict_id.to_string(),
            source_domain: src,
            target_domain: tgt,
            entity_types: vec![entity],
            item_id,
            keep,
            changed_domains: changed_domains.clone(),
        },
        Status::Success,
    );
    host.commit(&txn, &writes, entry)?;
    Ok(json!({"conflict": conflict_id, "keep": keep, "changedDomains": changed_domains}))
}

/// The writes that resolve a field conflict by `keep`'s value, in each
/// domain whose item does not hold it already, and those domains.
fn keep_field_value(
    host: &Host,
    row: &LoggedConflict,
    field: &str,
    keep: Keep,
    idf: &str,
) -> Result<(Vec<Write>, Vec<String>)> {
    let (mut writes, mut changed_domains) = (Vec::new(), Vec::new());
    let entity = &row.entity;
    let value = match keep {
        Keep::Source => row.source_value.clone(),
        Keep::Target => row.target_value.clone(),
        Keep::Base => row.base_value.clone(),
    }
    .unwrap_or(Value::Null);
    for domain in [&row.source_domain, &row.target_domain] {
        let name = row.field_in(domain).unwrap_or(field).to_string();
        let mut items = DomainItems::read(host, domain, entity)?;
        let Some(item) = items.find_mut(idf, &row.item_id) else {
            continue;
        };
        if item.get(&name) == (!value.is_null()).then_some(&value) {
            continue;
        }
        if value.is_null() {
            item.shift_remove(&name);
        } else {
            item.insert(name, value.clone());
        }
        item.insert("lastModified".into(), json!(now()));
        writes.push(items.write(entity, idf, &row.item_id)?);
        changed_domains.push(domain.clone());
    }
    Ok((writes, changed_domains))
}

/// A domain's items of one type, as `conflicts resolve` changes them: its
/// JSON file, or its vdir folder (one file an item).
enum DomainItems {
    Json(PathBuf, store::EntityFile),
    Vdir {
        fields: Vec<(String, String)>,
        items: Vec<Map<String, Value>>,
        files: Vec<PathBuf>,
    },
}

impl DomainItems {
    fn read(host: &Host, domain: &str, entity: &str) -> Result<DomainItems> {
        if let Some(dir) = host.config.vdirs(domain, &host.paths.data_dir).get(entity) {
            let fields = host.mappings.fields(domain, entity);
            let read = crate::vdir::read(dir, entity, &fields)?;
            return Ok(DomainItems::Vdir {
                fields,
                items: read.parsed.unwrap_or_default(),
                files: read
                    .members
                    .unwrap_or_default()
                    .into_iter()
                    .map(|m| m.path)
                    .collect(),
            });
        }
        let path = domain_file(host, domain, entity)?;
        let file = host.data.read_entity(&path, entity)?;
        Ok(DomainItems::Json(path, file))
    }

    fn items(&mut self) -> &mut Vec<Map<String, Value>> {
        match self {
            DomainItems::Json(_, file) => &mut file.items,
            DomainItems::Vdir { items, .. } => items,
        }
    }

    fn find_mut(&mut self, idf: &str, id: &str) -> Option<&mut Map<String, Value>> {
        self.items().iter_mut().find(|i| has_id(i, idf, id))
    }

    /// The write of the item `id` as it now is (for a JSON file, the file).
    fn write(&self, entity: &str, idf: &str, id: &str) -> Result<Write> {
        match self {
            DomainItems::Json(path, file) => Ok(entity_write(path.clone(), entity, file)),
            DomainItems::Vdir {
                fields,
                items,
                files,
            } => {
                let at = items
                    .iter()
                    .position(|i| has_id(i, idf, id))
                    .ok_or_else(|| Error::invalid(format!("no item `{id}` to write")))?;
                crate::vdir::item_write(entity, fields, &items[at], &files[at])
            }
        }
    }

    /// The write that removes the item `id`, when the domain holds it.
    fn remove(&mut self, entity: &str, idf: &str, id: &str) -> Option<Write> {
        let at = self.items().iter().position(|i| has_id(i, idf, id))?;
        self.items().remove(at);
        match self {
            DomainItems::Json(path, file) => Some(entity_write(path.clone(), entity, file)),
            DomainItems::Vdir { files, .. } => Some(Write {
                path: files.remove(at),
                content: None,
                prestaged: None,
            }),
        }
    }
}

/// The write that replaces the entity file at `path` with `file`.
fn entity_write(path: PathBuf, entity: &str, file: &store::EntityFile) -> Write {
    Write {
        content: Some(store::encode_entity_file(entity, file)),
        prestaged: None,
        path,
    }
}

/// The writes that resolve a change that beat a deletion. Keeping the side
/// that changed it is what the sync did; keeping the side that deleted it
/// deletes it from both domains (into the backups).
fn keep_change_or_deletion(
    host: &Host,
    row: &LoggedConflict,
    keep: Keep,
    idf: &str,
) -> Result<(Vec<Write>, Vec<String>)> {
    let (mut writes, mut changed_domains) = (Vec::new(), Vec::new());
    let (src, tgt, entity) = (&row.source_domain, &row.target_domain, &row.entity);
    let deleter = if row.winner == Side::Source { tgt } else { src };
    let keeps_deletion = match keep {
        Keep::Source => deleter == src,
        Keep::Target => deleter == tgt,
        Keep::Base => {
            return Err(Error::invalid(format!(
                "conflict `{}` is between a change and a deletion; keep `source` or `target`",
                row.id
            )));
        }
    };
    if !keeps_deletion {
        return Ok((writes, changed_domains));
    }
    for domain in [src, tgt] {
        let mut items = DomainItems::read(host, domain, entity)?;
        if let Some(write) = items.remove(entity, idf, &row.item_id) {
            writes.push(write);
            changed_domains.push(domain.clone());
        }
    }
    Ok((writes, changed_domains))
}

/// A transaction's backups, as `backups list` shows them.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupInfo {
    pub id: String,
    pub committed_at: String,
    pub files: Vec<String>,
    pub bytes: u64,
}

/// Every transaction with backups, oldest first.
pub fn list_backups(data: &DataDir) -> Result<Vec<BackupInfo>> {
    let root = data.state_dir().join("backups");
    let mut out = Vec::new();
    for e in std::fs::read_dir(&root).into_iter().flatten().flatten() {
        // A folder without a readable manifest is not a transaction's.
        let Ok(Some(m)) = BackupManifest::read(&e.path()) else {
            continue;
        };
        let bytes = walk_size(&e.path());
        out.push(BackupInfo {
            id: m.id,
            committed_at: m.committed_at,
            files: m.files.into_iter().map(|f| f.path).collect(),
            bytes,
        });
    }
    out.sort_by(|a, b| a.committed_at.cmp(&b.committed_at));
    Ok(out)
}

fn walk_size(p: &Path) -> u64 {
    std::fs::read_dir(p)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| {
            let path = e.path();
            if path.is_dir() {
                walk_size(&path)
            } else {
                e.metadata().map(|m| m.len()).unwrap_or(0)
            }
        })
        .sum()
}

/// Removes all but the newest `keep` backups (those syncs can no longer be
/// undone). Audited.
pub fn prune_backups(host: &Host, keep: usize, user: &str) -> Result<Vec<String>> {
    let _lock = host.data.lock(host.wait)?;
    host.recover()?;
    let all = list_backups(&host.data)?;
    let cut = all.len().saturating_sub(keep);
    let mut pruned = Vec::new();
    for b in &all[..cut] {
        let dir = host.data.backups_dir(&b.id);
        std::fs::remove_dir_all(&dir).map_err(|e| Error::storage("removing", &dir, e))?;
        pruned.push(b.id.clone());
    }
    host.audit(Entry::new(
        now(),
        user.to_string(),
        Action::BackupsPrune {
            pruned: pruned.clone(),
            kept: keep,
        },
        Status::Success,
    ))?;
    Ok(pruned)
}

/// The field that identifies `entity`'s items: its plugin's (the plugin
/// interface lets a plugin name another than `id`). A type whose plugin is
/// no longer installed falls back to `id`, so its syncs can still be undone.
fn id_field(host: &Host, entity: &str) -> String {
    match host.registry.get(entity) {
        Ok(p) => p.id_field().to_string(),
        Err(e) => {
            tracing::warn!("taking `id` as the id field of `{entity}`: {e}");
            "id".to_string()
        }
    }
}

/// Whether `item`'s id (in `id_field`) is `id`.
fn has_id(item: &Map<String, Value>, id_field: &str, id: &str) -> bool {
    item.get(id_field).and_then(Value::as_str) == Some(id)
}

/// Items of an entity file or a base file, by id (the value of `id_field`),
/// in order.
fn items_of(
    path_rel: &str,
    id_field: &str,
    bytes: Option<&[u8]>,
) -> Result<(Vec<(String, Value)>, Value)> {
    let Some(bytes) = bytes else {
        return Ok((Vec::new(), Value::Null));
    };
    let v: Value = serde_json::from_slice(bytes).map_err(|e| {
        Error::new(
            Code::StorageError,
            format!("`{path_rel}` cannot be read for undo: {e}"),
        )
    })?;
    let key = array_key(path_rel, &v);
    let items = v[&key]
        .as_array()
        .into_iter()
        .flatten()
        .map(|i| {
            let id = i.get(id_field).and_then(Value::as_str).unwrap_or("");
            (id.to_string(), i.clone())
        })
        .collect();
    Ok((items, v))
}

/// The key of the item array: `items` in a base file, else the entity name.
fn array_key(path_rel: &str, v: &Value) -> String {
    if v.get("items").is_some() && path_rel.starts_with(".sync/base/") {
        "items".into()
    } else {
        Path::new(path_rel)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
}

fn changed_ids(a: &[(String, Value)], b: &[(String, Value)]) -> HashSet<String> {
    let am: HashMap<&str, &Value> = a.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let bm: HashMap<&str, &Value> = b.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let mut out = HashSet::new();
    for (k, v) in &am {
        if bm.get(k) != Some(v) {
            out.insert(k.to_string());
        }
    }
    for k in bm.keys() {
        if !am.contains_key(k) {
            out.insert(k.to_string());
        }
    }
    out
}

/// Puts the items `sync_id` changed back as they were before it.
pub fn undo(host: &Host, sync_id: &str, force: bool, user: &str) -> Result<Value> {
    let _lock = host.data.lock(host.wait)?;
    host.recover()?;
    let unknown = || {
        Error::invalid(format!(
            "no backups for `{sync_id}`: it is not a sync that changed data (dry runs and \
             failed syncs change nothing), or its backups were pruned; `cross-domain-sync \
             backups list` shows what can be undone"
        ))
        .with("syncId", sync_id)
    };
    if sync_id.contains('/') || sync_id.contains("..") || sync_id.is_empty() {
        return Err(unknown());
    }
    let backups = list_backups(&host.data)?;
    let pos = backups
        .iter()
        .position(|b| b.id == sync_id)
        .ok_or_else(unknown)?;
    if host.data.backups_dir(sync_id).join("undone").exists() {
        return Err(Error::invalid(format!("`{sync_id}` was already undone")));
    }
    let manifest = BackupManifest::read(&host.data.backups_dir(sync_id))?.ok_or_else(unknown)?;
    let mut writes = Vec::new();
    let mut restored: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut blocked: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for f in &manifest.files {
        match undo_file(host, sync_id, &backups[pos + 1..], f, force)? {
            Undone::Nothing => {}
            Undone::Blocked(clash) => {
                blocked.insert(f.path.clone(), clash);
            }
            Undone::Restored { write, ids } => {
                writes.push(write);
                if let Some(ids) = ids {
                    restored.insert(f.path.clone(), ids);
                }
            }
        }
    }
    if !blocked.is_empty() {
        let what: Vec<String> = blocked
            .iter()
            .map(|(f, ids)| format!("{f}: {}", ids.join(", ")))
            .collect();
        return Err(Error::new(
            Code::SyncConflict,
            format!(
                "a later change touched items that `{sync_id}` changed ({}); undo refused so as \
                 not to lose that change. Run again with --force to put those items back as \
                 they were before `{sync_id}` anyway",
                what.join("; ")
            ),
        )
        .with("syncId", sync_id));
    }
    check_undo_rights(host, user, restored.keys())?;
    writes.push(Write {
        prestaged: None,
        path: host.data.backups_dir(sync_id).join("undone"),
        content: Some(store::to_pretty(&UndoMark {
            by: user.to_string(),
            at: now(),
        })),
    });
    let txn = format!("undo-{sync_id}");
    let entry = Entry::new(
        now(),
        user.to_string(),
        Action::Undo {
            sync_id: sync_id.to_string(),
            forced: force,
            restored: restored
                .iter()
                .map(|(f, ids)| (f.clone(), ids.len()))
                .collect(),
        },
        Status::Success,
    );
    host.commit(&txn, &writes, entry)?;
    Ok(json!({"syncId": sync_id, "restored": restored}))
}

/// The mark of an undone sync (`backups/<id>/undone`): who, and when.
#[derive(Serialize)]
struct UndoMark {
    by: String,
    at: String,
}

/// `user` must be allowed to write every domain whose files undo restores
/// (`files`, as the backup manifest names them: a domain's folder, or one
/// of its vdir folders, holds each).
fn check_undo_rights<'a>(
    host: &Host,
    user: &str,
    files: impl Iterator<Item = &'a String>,
) -> Result<()> {
    let domains: HashSet<String> = files
        .filter_map(|f| host.config.domain_of_file(f, &host.paths.data_dir))
        .collect();
    for d in domains {
        check_write(host, user, &[&d], "undoing this sync")?;
    }
    Ok(())
}

/// What undoing a sync does to one file it wrote.
enum Undone {
    /// Not a domain file or base, or the sync changed no item in it.
    Nothing,
    /// A later change touched these ids that the sync changed too.
    Blocked(Vec<String>),
    /// The file's new content; for a domain file, the ids put back.
    Restored {
        write: Write,
        ids: Option<Vec<String>>,
    },
}

fn sorted(ids: HashSet<String>) -> Vec<String> {
    let mut ids: Vec<String> = ids.into_iter().collect();
    ids.sort();
    ids
}

/// Undoes sync `sync_id`'s change to the file `f`, item by item: the items
/// it changed go back to their version before it; `later` are the backups
/// of the transactions after it, the first of which to hold the file has
/// the state right after the sync.
fn undo_file(
    host: &Host,
    sync_id: &str,
    later_backups: &[BackupInfo],
    f: &ManifestFile,
    force: bool,
) -> Result<Undone> {
    let rel = f.path.as_str();
    let is_domain = !rel.starts_with(".sync/") && !rel.starts_with("sync-records/");
    let is_base = rel.starts_with(".sync/base/");
    if !(is_domain || is_base) {
        return Ok(Undone::Nothing);
    }
    let backup_path = host.data.backup_path(sync_id, rel);
    let before_bytes = if f.existed {
        store::read_optional(&backup_path)?
    } else {
        None
    };
    // The state right after the sync: the next backup of this file by a
    // later transaction, or the file as it is now.
    let live = host.data.root.join(rel);
    let now_bytes = store::read_optional(&live)?;
    let after_bytes = later_backups
        .iter()
        .find(|b| b.files.iter().any(|p| p == rel))
        .map(|b| store::read_optional(&host.data.backup_path(&b.id, rel)))
        .transpose()?
        .flatten()
        .or_else(|| now_bytes.clone());
    if is_domain && let Some(format) = vdir_format(rel) {
        return Ok(undo_vdir_file(
            rel,
            format,
            [before_bytes, after_bytes, now_bytes],
            live,
            force,
        ));
    }
    // Base entries are keyed by `id`; domain files by the type's id field.
    let idf = if is_base {
        "id".to_string()
    } else {
        let entity = Path::new(rel).file_stem().unwrap_or_default();
        id_field(host, &entity.to_string_lossy())
    };
    let (before, _) = items_of(rel, &idf, before_bytes.as_deref())?;
    let (after, _) = items_of(rel, &idf, after_bytes.as_deref())?;
    let (current, current_doc) = items_of(rel, &idf, now_bytes.as_deref())?;
    let touched = changed_ids(&before, &after);
    if touched.is_empty() {
        return Ok(Undone::Nothing);
    }
    let later = changed_ids(&after, &current);
    let mut clash: Vec<String> = touched.intersection(&later).cloned().collect();
    clash.sort();
    if !clash.is_empty() && !force {
        return Ok(Undone::Blocked(clash));
    }
    if later.is_empty() && now_bytes == after_bytes {
        // Nothing changed since: put the exact bytes back (or remove a
        // file the sync created).
        return Ok(Undone::Restored {
            write: Write {
                prestaged: None,
                path: live,
                content: before_bytes.clone(),
            },
            ids: is_domain.then(|| sorted(touched)),
        });
    }
    let out = put_back(&current, &before, &touched, is_base);
    let content = encode_restored(
        rel,
        &idf,
        current_doc,
        before_bytes.as_deref(),
        out,
        is_base,
    )?;
    Ok(Undone::Restored {
        write: Write {
            prestaged: None,
            path: live,
            content: Some(content),
        },
        ids: is_domain.then(|| sorted(touched)),
    })
}

/// The format of a vdir folder's file `rel` (one item a file); `None` for
/// any other file.
fn vdir_format(rel: &str) -> Option<crate::cards::Format> {
    let ext = Path::new(rel).extension()?.to_str()?.to_ascii_lowercase();
    match ext.as_str() {
        "vcf" | "vcard" => Some(crate::cards::Format::Vcard),
        "ics" => Some(crate::cards::Format::Icalendar),
        _ => None,
    }
}

/// Undoes a sync's change to a vdir file, which holds one item: the file
/// goes back to its bytes before the sync (or is removed, when the sync made
/// it), unless a later change touched it too.
fn undo_vdir_file(
    rel: &str,
    format: crate::cards::Format,
    [before, after, now]: [Option<Vec<u8>>; 3],
    live: PathBuf,
    force: bool,
) -> Undone {
    if before == after {
        return Undone::Nothing;
    }
    // The item's id, as the file (before the sync, or after it) says.
    let id = [&before, &after]
        .into_iter()
        .flatten()
        .find_map(|bytes| {
            let text = std::str::from_utf8(bytes).ok()?;
            let stem = Path::new(rel).file_stem()?.to_string_lossy().into_owned();
            let imported =
                crate::cards::import_as(Path::new(rel), text, format, "", Some(&stem)).ok()?;
            let (_, items) = imported.items.into_iter().find(|(_, i)| !i.is_empty())?;
            items[0].get("id")?.as_str().map(String::from)
        })
        .unwrap_or_else(|| rel.to_string());
    if after != now && !force {
        return Undone::Blocked(vec![id]);
    }
    Undone::Restored {
        write: Write {
            prestaged: None,
            path: live,
            content: before,
        },
        ids: Some(vec![id]),
    }
}

/// The restored file `rel`: its current document (or, if it is gone, the one
/// before the sync) with `out` as its items.
fn encode_restored(
    rel: &str,
    idf: &str,
    current_doc: Value,
    before_bytes: Option<&[u8]>,
    out: Vec<Value>,
    is_base: bool,
) -> Result<Vec<u8>> {
    let mut doc = match current_doc {
        Value::Object(m) => Value::Object(m),
        _ => {
            let (_, before_doc) = items_of(rel, idf, before_bytes)?;
            match before_doc {
                Value::Object(m) => Value::Object(m),
                _ => json!({}),
            }
        }
    };
    let key = array_key(rel, &doc);
    let key = if key.is_empty() {
        "items".to_string()
    } else {
        key
    };
    doc[key.as_str()] = Value::Array(out);
    let content = if is_base {
        let mut v = serde_json::to_vec(&doc).unwrap_or_default();
        v.push(b'\n');
        v
    } else {
        store::to_pretty(&doc)
    };
    Ok(content)
}

/// The current items (`current`), with the `touched` ones put back as they
/// were `before` (or back at the end, when the sync had deleted them).
fn put_back(
    current: &[(String, Value)],
    before: &[(String, Value)],
    touched: &HashSet<String>,
    is_base: bool,
) -> Vec<Value> {
    let before_map: HashMap<&str, &Value> = before.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let mut out: Vec<Value> = Vec::new();
    let mut seen = HashSet::new();
    // A base entry put back keeps no digests: they were recorded under
    // that sync's plugin and renames, which the file's current key may
    // not name (see `base.rs`); the next sync reads the item instead.
    let restore = |old: &Value| {
        let mut old = old.clone();
        if is_base && let Some(m) = old.as_object_mut() {
            m.shift_remove("digests");
        }
        old
    };
    for (id, item) in current {
        seen.insert(id.clone());
        if touched.contains(id) {
            if let Some(old) = before_map.get(id.as_str()) {
                out.push(restore(old));
            }
        } else {
            out.push(item.clone());
        }
    }
    for (id, old) in before {
        if touched.contains(id) && !seen.contains(id) {
            out.push(restore(old));
        }
    }
    out
}
