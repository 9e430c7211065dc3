//! vdir folders as a domain's storage of one entity type: one `.vcf` file
//! per contact, one `.ics` file per event or to-do, the layout vdirsyncer
//! and pimsync sync with a server and khard and khal read
//! (<https://vdirsyncer.pimutils.org/en/stable/vdir.html>).
//!
//! [`read`] turns a folder into the form the sync reads a JSON file in
//! (every item parsed, each with the file it came from); [`plan`] turns the
//! merge's output for that side into writes of only the files whose item
//! changed (a new item gets a new file named by its UID, a deleted item's
//! file is removed), which the one journalled commit then carries out with
//! backups, so a vdir is written as atomically, recoverably and undoably as
//! a JSON file. The card and calendar text itself is [`crate::cards`]'s.
//!
//! Every written item is read back from its new text at once; the base
//! records that form, so the next sync sees the file unchanged (the item's
//! `x-vcard`/`x-ical` lines then hold what was written).

use crate::cards::{self, Format};
use crate::error::{Code, Error, Result};
use crate::merge::{Base, Item, Side, content_eq, id_of};
use crate::raw::{RawFile, RawItem};
use crate::store::{self, FileVersion, ReadFile, Write};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The host's bookkeeping fields: no file holds them, so an item read back
/// keeps the merge's.
const META: [&str; 3] = ["syncedAt", "syncDirection", "lastModified"];

/// The format of `entity`'s vdir files.
fn format_of(entity: &str, dir: &Path) -> Result<Format> {
    Format::for_entity(entity).ok_or_else(|| {
        Error::new(
            Code::EntityTypeUnsupported,
            format!(
                "`{}` is configured as a vdir folder of `{entity}`, which has no vCard or \
                 iCalendar form",
                dir.display()
            ),
        )
        .with("entity", entity)
    })
}

/// Whether `name` is a file of `format` (hidden files and the journal's
/// `.cds-staged` files are not).
fn is_item_file(name: &str, format: Format) -> bool {
    let ext = Path::new(name)
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    !name.starts_with('.')
        && match format {
            Format::Vcard => matches!(ext.as_deref(), Some("vcf" | "vcard")),
            Format::Icalendar => ext.as_deref() == Some("ics"),
        }
}

/// Every entry name in `dir`.
fn names_in(dir: &Path) -> Result<Vec<String>> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::storage("listing", dir, e))?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::storage("listing", dir, e))?;
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    Ok(names)
}

/// Reads the items of `entity` in the vdir folder `dir`, in file-name order,
/// as the sync reads a JSON file whole: each parsed (in the domain's field
/// names, `fields` being canonical → local), with the file it came from
/// (`ReadFile::members`). A calendar folder may hold to-dos too, and the
/// other way round: each type takes its own files. A file that cannot be
/// read is `DATA_FORMAT_INVALID` naming it and its line; two files with one
/// UID are `SYNC_CONFLICT` naming both.
pub fn read(dir: &Path, entity: &str, fields: &[(String, String)]) -> Result<ReadFile> {
    let format = format_of(entity, dir)?;
    let to_local = crate::config::to_local(fields);
    let mut items = Vec::new();
    let mut raw_items = Vec::new();
    let mut members = Vec::new();
    let mut bytes = 0;
    let mut seen: HashMap<String, PathBuf> = HashMap::new();
    for name in names_in(dir)? {
        if !is_item_file(&name, format) {
            continue;
        }
        let path = dir.join(&name);
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.is_dir() => continue,
            Ok(m) if m.is_symlink() => store::refuse_symlink(&path)?,
            _ => {}
        }
        // Stamped before the read, as a JSON file is.
        let stamp = store::FileStamp::of(&path);
        let Some(content) = store::read_optional(&path)? else {
            continue; // removed since the listing
        };
        bytes += content.len();
        let digest = store::content_digest(&content);
        let modified = stamp.as_ref().map(store::FileStamp::modified);
        let Some(item) = read_item(&path, content, modified, entity, format)? else {
            continue;
        };
        let id = id_of(&item, "id").to_string();
        if let Some(first) = seen.insert(id.clone(), path.clone()) {
            return Err(Error::new(
                Code::SyncConflict,
                format!(
                    "`{}` and `{}` both hold the item with UID `{id}`; the host cannot tell \
                     which is real. Give one of them a new UID, or remove it",
                    first.display(),
                    path.display()
                ),
            )
            .with("file", path.display().to_string())
            .with("id", id)
            .with("entity", entity));
        }
        raw_items.push(RawItem {
            span: 0..0,
            id: Some(id),
            digest: None,
        });
        members.push(FileVersion {
            path,
            digest: Some(digest),
            stamp,
        });
        items.push(cds_policy::rename_fields(item, &to_local));
    }
    Ok(ReadFile {
        raw: RawFile {
            text: Default::default(),
            items: raw_items,
            rest: Default::default(),
        },
        parsed: Some(items),
        existed: true,
        bytes,
        digest: None,
        file_stamp: None,
        members: Some(members),
    })
}

/// The one item of `entity` the file `path` holds (`content`), in canonical
/// field names; `None` when it holds only items of another type. Its id is
/// its UID, or, without one, the file's name (which another program's edit
/// keeps). `modified` is the file's time (the `lastModified` of an item that
/// names none).
fn read_item(
    path: &Path,
    content: Vec<u8>,
    modified: Option<std::time::SystemTime>,
    entity: &str,
    format: Format,
) -> Result<Option<Item>> {
    let text = cards::decode(path, content)?;
    let modified = modified
        .map(chrono::DateTime::<chrono::Utc>::from)
        .unwrap_or_else(chrono::Utc::now);
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let imported = cards::import_as(path, &text, format, &cards::rfc3339(modified), Some(&stem))?;
    let all: Vec<(String, Item)> = imported
        .items
        .into_iter()
        .flat_map(|(e, items)| items.into_iter().map(move |i| (e.clone(), i)))
        .collect();
    if all.len() > 1 {
        // Rewriting one of them would drop the others from the file.
        return Err(Error::new(
            Code::DataFormatInvalid,
            format!(
                "`{}` holds {} items ({}); a vdir file holds one. Split it into a file per \
                 UID",
                path.display(),
                all.len(),
                all.iter()
                    .map(|(e, i)| format!("{e} `{}`", id_of(i, "id")))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
        .with("file", path.display().to_string())
        .with("entity", entity));
    }
    let mut mine: Vec<Item> = all
        .into_iter()
        .filter(|(e, _)| e == entity)
        .map(|(_, i)| i)
        .collect();
    Ok(mine.pop())
}

/// The write that puts `item` (in the domain's field names, `fields` being
/// canonical → local) into the vdir file `path` (for `conflicts resolve`,
/// which changes one item).
pub fn item_write(
    entity: &str,
    fields: &[(String, String)],
    item: &Item,
    path: &Path,
) -> Result<Write> {
    let to_canonical = crate::config::to_canonical(fields);
    let canonical = cds_policy::rename_fields(item.clone(), &to_canonical);
    let text = cards::export(entity, std::slice::from_ref(&canonical))?;
    Ok(Write {
        path: path.to_path_buf(),
        content: Some(text.into_bytes()),
        prestaged: None,
    })
}

/// A new item's file name: its id, when that is a plain file name (as
/// vdirsyncer names files), else a digest of it; never one taken.
fn new_name(id: &str, format: Format, taken: &mut HashSet<String>) -> String {
    let ext = match format {
        Format::Vcard => "vcf",
        Format::Icalendar => "ics",
    };
    let plain = !id.is_empty()
        && id.len() <= 200
        && !id.starts_with('.')
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@' | '+' | '='));
    let stem = if plain {
        id.to_string()
    } else {
        use sha2::Digest;
        hex::encode(&sha2::Sha256::digest(id.as_bytes())[..16])
    };
    let mut name = format!("{stem}.{ext}");
    let mut n = 1;
    while taken.contains(&name.to_ascii_lowercase()) {
        n += 1;
        name = format!("{stem}-{n}.{ext}");
    }
    taken.insert(name.to_ascii_lowercase());
    name
}

/// What a sync writes to one vdir folder.
#[derive(Debug, Default)]
pub struct Planned {
    pub writes: Vec<Write>,
    /// Each file written or removed, as it was read (a new one: absent), for
    /// the commit's check that no other program wrote it meanwhile.
    pub read: Vec<FileVersion>,
    /// Whether an item written reads back otherwise than the merge made it,
    /// so that the base now records that form.
    pub base_changed: bool,
}

/// One vdir side of an entity type, for [`plan`].
pub struct VdirSide<'a> {
    pub dir: &'a Path,
    pub entity: &'a str,
    pub id_field: &'a str,
    /// The domain's renames: canonical → local.
    pub fields: &'a [(String, String)],
    pub side: Side,
    /// The items as read, and the file of each.
    pub before: &'a [Arc<Item>],
    pub members: &'a [FileVersion],
    /// The time written for an item that has no `lastModified`.
    pub synced_at: &'a str,
}

/// The writes that make the folder hold `out` (the merge's items for this
/// side): a file for each item that is new or whose content changed, a
/// removal for each item gone. Each written item is read back from its
/// text, and that form replaces it in `out` and, where the base holds it
/// for this side, in `base`.
pub fn plan(v: &VdirSide<'_>, out: &mut [Arc<Item>], base: &mut Base) -> Result<Planned> {
    let format = format_of(v.entity, v.dir)?;
    let idf = v.id_field;
    let to_canonical = crate::config::to_canonical(v.fields);
    let to_local = crate::config::to_local(v.fields);
    let read_at: HashMap<&str, usize> = v
        .before
        .iter()
        .enumerate()
        .map(|(i, item)| (id_of(item, idf), i))
        .collect();
    let mut taken: HashSet<String> = names_in(v.dir)?
        .into_iter()
        .map(|n| n.to_ascii_lowercase())
        .collect();
    let mut planned = Planned::default();
    let mut kept: HashSet<String> = HashSet::new();
    for slot in out.iter_mut() {
        let id = id_of(slot, idf).to_string();
        let was = read_at.get(id.as_str()).copied();
        kept.insert(id.clone());
        if let Some(i) = was
            && (Arc::ptr_eq(&v.before[i], slot) || content_eq(&v.before[i], slot))
        {
            continue;
        }
        let version = match was {
            Some(i) => v.members[i].clone(),
            None => FileVersion {
                path: v.dir.join(new_name(&id, format, &mut taken)),
                digest: None,
                stamp: None,
            },
        };
        let canonical = cds_policy::rename_fields(Item::clone(slot), &to_canonical);
        let text = cards::export(v.entity, std::slice::from_ref(&canonical))?;
        let back = read_back(&version.path, &text, v, format, &canonical, &id)?;
        let back = cds_policy::rename_fields(back, &to_local);
        if !content_eq(&back, slot) {
            let back = Arc::new(back);
            if let Some(entry) = base.get_mut(&id) {
                let held = match v.side {
                    Side::Source => &mut entry.source,
                    Side::Target => &mut entry.target,
                };
                if content_eq(held, slot) {
                    *held = Arc::clone(&back);
                    planned.base_changed = true;
                }
            }
            *slot = back;
        }
        planned.writes.push(Write {
            path: version.path.clone(),
            content: Some(text.into_bytes()),
            prestaged: None,
        });
        planned.read.push(version);
    }
    for (i, item) in v.before.iter().enumerate() {
        if !kept.contains(id_of(item, idf)) {
            planned.writes.push(Write {
                path: v.members[i].path.clone(),
                content: None,
                prestaged: None,
            });
            planned.read.push(v.members[i].clone());
        }
    }
    Ok(planned)
}

/// `canonical` as the file `path` will read once `text` is written: the
/// same item, with the merge's bookkeeping fields. A text that does not
/// read back as the item (which would be a fault of the writer) is refused
/// rather than written.
fn read_back(
    path: &Path,
    text: &str,
    v: &VdirSide<'_>,
    format: Format,
    canonical: &Item,
    id: &str,
) -> Result<Item> {
    let time = canonical
        .get("lastModified")
        .and_then(Value::as_str)
        .unwrap_or(v.synced_at);
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let cannot = |why: String| {
        Error::new(
            Code::StorageError,
            format!(
                "the item `{id}` of `{}` would not read back from its vdir file `{}` ({why}); \
                 nothing was written",
                v.entity,
                path.display()
            ),
        )
        .with("file", path.display().to_string())
        .with("id", id)
    };
    let imported = cards::import_as(path, text, format, time, Some(&stem))
        .map_err(|e| cannot(e.message.clone()))?;
    let mut back = imported
        .items
        .into_iter()
        .filter(|(e, _)| e == v.entity)
        .flat_map(|(_, items)| items)
        .find(|i| id_of(i, "id") == id)
        .ok_or_else(|| cannot("another id".into()))?;
    for field in META {
        match canonical.get(field) {
            Some(value) => {
                back.insert(field.to_string(), value.clone());
            }
            None => {
                back.shift_remove(field);
            }
        }
    }
    Ok(back)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_files_are_named_by_uid_or_its_digest_and_never_twice() {
        let mut taken = HashSet::from(["a.vcf".to_string()]);
        assert_eq!(
            new_name("x@example.com", Format::Vcard, &mut taken),
            "x@example.com.vcf"
        );
        assert_eq!(new_name("a", Format::Vcard, &mut taken), "a-2.vcf");
        assert_eq!(new_name("a", Format::Vcard, &mut taken), "a-3.vcf");
        let odd = new_name("../etc/passwd", Format::Icalendar, &mut taken);
        assert!(odd.ends_with(".ics") && !odd.contains('/'), "{odd}");
        assert_eq!(odd.len(), 32 + 4);
        assert!(!is_item_file(".cds-tmp-1.vcf", Format::Vcard));
        assert!(!is_item_file("a.vcf.cds-staged", Format::Vcard));
        assert!(is_item_file("A.VCF", Format::Vcard));
        assert!(!is_item_file("a.ics", Format::Vcard));
    }
}
