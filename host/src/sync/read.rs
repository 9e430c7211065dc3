//! The read stages of one entity type: both domain files and the base read
//! at once ([`ReadSides`]), the items both sides hold exactly as the base
//! knows them written marked settled ([`Settlement`]), and the others parsed
//! and validated against the plugin's schema ([`Parsed`]).
//!
//! Settled items are not parsed, validated or merged, and a rewritten file
//! copies their text: what makes a re-sync cheap (see [`crate::base`]).

use super::ByteBudget;
use super::schedule::PARALLEL_MIN_BYTES;
use crate::base::{self, RawBase};
use crate::config::LimitsConfig as Limits;
use crate::error::{Code, Error, Result};
use crate::merge::{Base, IdMap, Item};
use crate::plugin::{Plugin, SchemaFault};
use crate::store::{DataDir, ReadFile};
use cds_policy::rename_fields;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Field renames of one domain: (canonical name, that domain's name).
pub type Fields = Vec<(String, String)>;

/// The files of one entity type in one sync, and how each side names its
/// fields. Index 0 is the source domain, 1 the target.
pub struct EntityFiles {
    pub entity: String,
    /// The source and target domains' names.
    pub domains: [String; 2],
    /// Each side's JSON file, or its vdir folder (see `vdir`).
    pub paths: [PathBuf; 2],
    /// Which sides keep this type as a vdir folder ([`crate::vdir`]).
    pub vdir: [bool; 2],
    pub fields: [Fields; 2],
    pub base_path: PathBuf,
    /// What the base was recorded under (plugin and renames): a base of
    /// another key has no digests to trust.
    pub key: String,
}

impl EntityFiles {
    /// Whether the files are large enough to read on two threads.
    pub fn large(&self) -> bool {
        let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
        size(&self.paths[0]) + size(&self.paths[1]) >= PARALLEL_MIN_BYTES
    }
}

/// Stage 1: both domain files as read (scanned, their items left as text,
/// when the base may settle some; else parsed whole), and the base.
pub struct ReadSides {
    pub files: [ReadFile; 2],
    /// A base that cannot be read settles nothing; its error is reported
    /// after the files' own (see [`parse`]).
    pub base: Result<RawBase>,
    /// Whether the files were scanned rather than parsed whole.
    pub scanned: bool,
}

/// Reads both files and loads the base, at the same time when `large`:
/// while two entity types are planned the cores are busy anyway, but the
/// last type runs alone. Results are checked in the order a sequential run
/// would meet them (each file, then the base), so the error reported does
/// not depend on timing. Each file counts against `budget` and the
/// per-type item limit.
pub fn read_sides(
    data: &DataDir,
    files: &EntityFiles,
    id_field: &str,
    budget: &ByteBudget,
    limits: &Limits,
) -> Result<ReadSides> {
    let entity = files.entity.as_str();
    // A vdir side's items have no text of the host's writing to digest, so
    // nothing of a type with one is settled: both sides are read whole.
    let scanned =
        files.vdir == [false, false] && base::trusted_header(&files.base_path, entity, &files.key);
    let read_side = |k: usize| {
        let path = files.paths[k].as_path();
        if files.vdir[k] {
            crate::vdir::read(path, entity, &files.fields[k])
        } else if scanned {
            data.read_entity_raw(path, entity, id_field)
        } else {
            data.read_entity_parsed(path, entity, id_field)
        }
    };
    let load_base = || {
        RawBase::load(
            &files.base_path,
            &files.domains[0],
            &files.domains[1],
            &files.key,
        )
    };
    let [src_path, tgt_path] = &files.paths;
    let (src, tgt, base) = if files.large() {
        // On the sync's threads (see `schedule`): another worker takes up
        // what this one does not get to first.
        let (src, (tgt, base)) =
            rayon::join(|| read_side(0), || rayon::join(|| read_side(1), load_base));
        (src, tgt, base)
    } else {
        (read_side(0), read_side(1), load_base())
    };
    let src = admit(src?, src_path, budget, limits)?;
    let tgt = admit(tgt?, tgt_path, budget, limits)?;
    Ok(ReadSides {
        files: [src, tgt],
        base,
        scanned,
    })
}

/// `file`, read from `path`, within the sync's byte budget and the
/// per-type item limit.
fn admit(file: ReadFile, path: &Path, budget: &ByteBudget, limits: &Limits) -> Result<ReadFile> {
    budget.take(file.bytes as u64, path)?;
    if file.raw.items.len() > limits.max_items_per_type {
        return Err(Error::new(
            Code::LimitExceeded,
            format!(
                "`{}` holds {} items, more than the limit of {} per entity type \
                 (limits.maxItemsPerType)",
                path.display(),
                file.raw.items.len(),
                limits.max_items_per_type
            ),
        )
        .with("file", path.display().to_string()));
    }
    Ok(file)
}

/// Stage 2: which items are settled. `files` marks each domain file's items
/// (source, target), `base` the base's entries; `count` is how many ids.
pub struct Settlement {
    pub files: [Vec<bool>; 2],
    pub base: Vec<bool>,
    pub count: usize,
}

/// Marks the items both sides hold exactly as the base knows them written.
/// Digests are worked out only when the base has some to compare them with
/// (never in a first sync).
pub fn settle(sides: &mut ReadSides) -> Settlement {
    let no_base = RawBase::default();
    let base = sides.base.as_ref().unwrap_or(&no_base);
    if sides.scanned && base.has_digests() {
        // A fifth of a re-sync's CPU at the limits: both files at once.
        let [a, b] = &mut sides.files;
        if (a.raw.text.len() + b.raw.text.len()) as u64 >= PARALLEL_MIN_BYTES {
            rayon::join(|| a.raw.digest_items(), || b.raw.digest_items());
        } else {
            a.raw.digest_items();
            b.raw.digest_items();
        }
    }
    let [src, tgt] = &sides.files;
    let [src_marks, tgt_marks, base_marks] =
        base::settled_marks(&src.raw.items, &tgt.raw.items, base);
    let count = base_marks.iter().filter(|s| **s).count();
    Settlement {
        files: [src_marks, tgt_marks],
        base: base_marks,
        count,
    }
}

/// Stage 3: the items that are not settled, parsed and validated (both
/// sides, in file order), and the base entries that are not settled.
pub struct Parsed {
    pub items: [Vec<Arc<Item>>; 2],
    pub base: Base,
    /// The base as read, for the next base's settled entries.
    pub raw_base: RawBase,
}

/// Parses and validates both files' unsettled items (at the same time when
/// the files are large) and the base's unsettled entries. A file's text is
/// dropped afterwards unless it has settled items to copy.
pub fn parse(
    plugin: &Plugin,
    files: &EntityFiles,
    mut sides: ReadSides,
    settlement: &Settlement,
) -> Result<(Parsed, [ReadFile; 2])> {
    let entity = files.entity.as_str();
    let [src_path, tgt_path] = &files.paths;
    let [src_fields, tgt_fields] = &files.fields;
    let [src_marks, tgt_marks] = &settlement.files;
    let [src, tgt] = &mut sides.files;
    let (src_items, tgt_items) = if files.large() {
        rayon::join(
            || read_items(plugin, entity, src_path, src, src_marks, src_fields),
            || read_items(plugin, entity, tgt_path, tgt, tgt_marks, tgt_fields),
        )
    } else {
        (
            read_items(plugin, entity, src_path, src, src_marks, src_fields),
            read_items(plugin, entity, tgt_path, tgt, tgt_marks, tgt_fields),
        )
    };
    let items = [src_items?, tgt_items?];
    let raw_base = sides.base?;
    let mut base = Base::new();
    for (i, e) in raw_base.entries.iter().enumerate() {
        if !settlement.base[i] {
            base.insert(e.id.clone(), raw_base.entry(i)?);
        }
    }
    for (file, marks) in sides.files.iter_mut().zip(&settlement.files) {
        if !marks.contains(&true) {
            file.raw.text = Default::default();
        }
    }
    Ok((
        Parsed {
            items,
            base,
            raw_base,
        },
        sides.files,
    ))
}

/// Parses and validates the items of one file that are not settled (in
/// canonical names), returning them in file order; the first fault is a
/// `DATA_FORMAT_INVALID` naming the file, index, id and JSON path. The same
/// id twice, settled or not, is a `SYNC_CONFLICT`, reported unless a schema
/// fault comes before it. Settled items need no validation: each is the text
/// of an item the host validated and wrote (see [`crate::base`]).
fn read_items(
    plugin: &Plugin,
    entity: &str,
    path: &Path,
    read: &mut ReadFile,
    settled: &[bool],
    fields: &[(String, String)],
) -> Result<Vec<Arc<Item>>> {
    // Read whole, nothing is settled and every item is parsed already.
    let mut parsed = read.parsed.take().map(Vec::into_iter);
    let file = &read.raw;
    let mut items = Vec::with_capacity(settled.iter().filter(|s| !**s).count());
    let mut seen: IdMap<&str, usize> =
        IdMap::with_capacity_and_hasher(file.items.len(), Default::default());
    for (i, raw_item) in file.items.iter().enumerate() {
        if !settled[i] {
            let mut item = match parsed.as_mut().and_then(Iterator::next) {
                Some(item) => item,
                None => file.parse(path, entity, i)?,
            };
            if let Some(fault) = schema_fault(plugin, &mut item, fields) {
                // An item of a vdir folder is named by its own file.
                let (path, i) = match &read.members {
                    Some(m) => (m[i].path.as_path(), 0),
                    None => (path, i),
                };
                return Err(invalid_item(plugin, entity, path, i, &item, fault));
            }
            items.push(Arc::new(item));
        }
        if let Some(id) = raw_item.id.as_deref()
            && let Some(first) = seen.insert(id, i)
        {
            return Err(Error::new(
                Code::SyncConflict,
                format!(
                    "`{}`: items {first} and {i} both have the id `{id}`; the host cannot tell \
                     which is real. Give one of them a new id",
                    path.display()
                ),
            )
            .with("file", path.display().to_string())
            .with("index", i)
            .with("id", id)
            .with("entity", entity));
        }
    }
    Ok(items)
}

/// The `DATA_FORMAT_INVALID` of item `i` of `path`, which breaks the schema.
fn invalid_item(
    plugin: &Plugin,
    entity: &str,
    path: &Path,
    i: usize,
    item: &Item,
    fault: Fault,
) -> Error {
    let id = cds_policy::item_id(item, plugin.id_field());
    let at = format!("$.{entity}[{i}]{}", &fault.first.path[1..]);
    let who = match id {
        Some(id) => format!("item {i} (id `{id}`)"),
        None => format!("item {i} (no id)"),
    };
    let mut err = Error::new(
        Code::DataFormatInvalid,
        format!(
            "`{}`: {who} breaks the `{entity}` schema at {at}: {}",
            path.display(),
            fault.first.message
        ),
    )
    .with("file", path.display().to_string())
    .with("index", i)
    .with("path", at)
    .with("entity", entity);
    if let Some(id) = id {
        err = err.with("id", id);
    }
    if fault.count > 1 {
        err = err.with_help(format!("{} more faults in this item", fault.count - 1));
    }
    err.with_help("Fix the item and run the sync again; nothing was written.")
}

/// How an item breaks the schema: the first fault, and how many there are.
pub struct Fault {
    pub first: SchemaFault,
    pub count: usize,
}

/// The first way `item` (in `fields`' local names) breaks the item schema;
/// `None` when it is valid.
pub fn schema_fault(
    plugin: &Plugin,
    item: &mut Item,
    fields: &[(String, String)],
) -> Option<Fault> {
    let faults = if fields.is_empty() {
        // The schema takes a `Value`: the item moves into one and back out
        // rather than being copied.
        let v = Value::Object(std::mem::take(item));
        let faults = plugin.validate(&v);
        if let Value::Object(m) = v {
            *item = m;
        }
        faults
    } else {
        let to_canonical = crate::config::to_canonical(fields);
        plugin.validate(&Value::Object(rename_fields(item.clone(), &to_canonical)))
    };
    let count = faults.len();
    faults
        .into_iter()
        .next()
        .map(|first| Fault { first, count })
}
