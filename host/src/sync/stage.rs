//! The staging stage of one entity type: the new domain files and base
//! encoded and written ahead of the commit (see [`store::prestage`]), so that
//! the commit itself only renames.

use super::read::{EntityFiles, schema_fault};
use super::schedule::join;
use crate::base::{self, RawBase};
use crate::error::Result;
use crate::merge::{self, Base, IdMap, IdSet, Item, Side, id_of};
use crate::plugin::Plugin;
use crate::raw;
use crate::store::{self, ReadFile, Write};
use std::path::Path;
use std::sync::Arc;

/// The base an entity type's merge made, and the one it read.
pub struct NewBase<'a> {
    pub base: &'a Base,
    /// Whether the merge changed it.
    pub changed: bool,
    pub old: &'a RawBase,
    /// Which of the old base's entries are settled.
    pub settled_marks: &'a [bool],
}

/// Encodes and writes ahead (see [`store::prestage`]) the new files of
/// one entity type: each domain file the merge changed, both at once,
/// and the base, when the merge changed it or the digests it holds are
/// not the ones it should (a base of format 1, or one recorded under
/// another plugin or other field renames, is rewritten once even when
/// nothing else changed).
///
/// The base records the digest of a side's item, as written (or, in a
/// file not rewritten, as it would be written), when that item is in
/// content the base's item for that side, and valid. Items the merge made
/// are validated for that; an invalid one is still written, as before,
/// only without a digest, so that the next sync reads and validates it
/// again. Each side's thread works out its digests and hands them over;
/// this thread then writes the base while the domain files' fsyncs run.
pub fn write_entity(
    plugin: &Plugin,
    files: &EntityFiles,
    sides: [NewSide<'_>; 2],
    next: NewBase<'_>,
) -> Result<Vec<Write>> {
    let entity = files.entity.as_str();
    let NewBase {
        base: new_base,
        changed: base_changed,
        old: old_base,
        settled_marks: base_settled,
    } = next;
    let (tx, rx) = std::sync::mpsc::channel::<(Side, Recorded<'_>)>();
    std::thread::scope(|s| {
        // A thread per rewritten file, this one for the base (and for
        // the digests of a side not rewritten, which is quick).
        let mut handles = Vec::with_capacity(2);
        let mut inline = Vec::new();
        for side in sides {
            if side.changed {
                let tx = tx.clone();
                handles.push(s.spawn(move || side.write(plugin, entity, new_base, &tx)));
            } else {
                inline.push(side.write(plugin, entity, new_base, &tx));
            }
        }
        drop(tx);
        let mut recorded = [Recorded::default(), Recorded::default()];
        let mut heard = [false, false];
        while heard != [true, true] {
            // Closed early: a side failed before it could report.
            let Ok((side, r)) = rx.recv() else { break };
            recorded[side as usize] = r;
            heard[side as usize] = true;
        }
        let sides_done = || -> Result<Vec<Write>> {
            let mut writes = Vec::with_capacity(3);
            for r in inline.into_iter().chain(handles.into_iter().map(join)) {
                writes.extend(r?);
            }
            Ok(writes)
        };
        if heard != [true, true] {
            // The failed side's error.
            return sides_done();
        }
        let stale = !base_changed && {
            let held: IdMap<&str, [Option<raw::ItemDigest>; 2]> = old_base
                .entries
                .iter()
                .map(|e| (e.id.as_str(), e.digests))
                .collect();
            new_base.keys().any(|id| {
                let now = recorded.each_ref().map(|r| r.get(id.as_str()).copied());
                held.get(id.as_str()).copied().unwrap_or_default() != now
            })
        };
        let base_write = (base_changed || stale).then(|| {
            let digest_of = |side: Side, id: &str| recorded[side as usize].get(id).copied();
            store::prestage(&files.base_path, &|w| {
                base::write(
                    w,
                    entity,
                    &files.key,
                    [&files.domains[0], &files.domains[1]],
                    new_base,
                    old_base,
                    base_settled,
                    &digest_of,
                )
            })
        });
        let mut writes = sides_done()?;
        writes.extend(base_write.transpose()?);
        Ok(writes)
    })
}

/// The digest the base is to record of a side's item, by id (see
/// [`NewSide::write`]).
type Recorded<'b> = IdMap<&'b str, raw::ItemDigest>;

/// One domain's side of an entity type's new files (see
/// [`write_entity`]).
pub struct NewSide<'a> {
    pub side: Side,
    /// Whether the merge changed the domain's file.
    pub changed: bool,
    pub path: &'a Path,
    pub file: &'a ReadFile,
    /// Which of the file's items are settled.
    pub settled_marks: &'a [bool],
    /// The merge's items: the unsettled ones, in order, then new ones.
    pub items: &'a [Arc<Item>],
    /// The ids whose version in the file the merge replaced.
    pub replaced: IdSet<&'a str>,
    pub fields: &'a [(String, String)],
}

impl NewSide<'_> {
    /// Writes this side's file ahead when the merge changed it, and sends
    /// the digest the base is to record for each id whose base entry holds,
    /// for this side, this side's item in content.
    fn write<'b>(
        self,
        plugin: &Plugin,
        entity: &str,
        new_base: &'b Base,
        tx: &std::sync::mpsc::Sender<(Side, Recorded<'b>)>,
    ) -> Result<Option<Write>> {
        let idf = plugin.id_field();
        // The entry of `item`'s id in the new base, when it holds `item`.
        let entry_of = |item: &Item| -> Option<&'b str> {
            let (id, e) = new_base.get_key_value(id_of(item, idf))?;
            merge::content_eq(e.get(self.side), item).then_some(id.as_str())
        };
        if !self.changed {
            // Not rewritten: its parsed items are the ones read, validated
            // then; the digest is that of their written form.
            let mut recorded =
                IdMap::with_capacity_and_hasher(self.items.len(), Default::default());
            for item in self.items.iter() {
                if let Some(id) = entry_of(item) {
                    recorded.insert(id, raw::written_digest(item));
                }
            }
            // The receiving end outlives every sender.
            let _ = tx.send((self.side, recorded));
            return Ok(None);
        }
        let placed = layout(&self.file.raw, self.settled_marks, self.items, idf);
        // What the merge made (new, or in place of a replaced version) is
        // validated; what it gave back as read was validated when read.
        let mut valid = vec![true; self.items.len()];
        for p in &placed {
            if let Placed::Item { at, original } = *p {
                let made =
                    original.is_none() || self.replaced.contains(id_of(&self.items[at], idf));
                if made {
                    // A copy: the item is shared with the base, and
                    // validation takes it as a `Value`.
                    let mut copy = Item::clone(&self.items[at]);
                    valid[at] = schema_fault(plugin, &mut copy, self.fields).is_none();
                }
            }
        }
        let raw = &self.file.raw;
        let items = self.items;
        let write = store::prestage(self.path, &|w| {
            let outs = placed.iter().map(|p| match *p {
                // Settled items always have their digest (see `base::settled_marks`).
                Placed::Settled(i) => {
                    raw::Out::Text(raw.text_of(i), raw.items[i].digest.unwrap_or_default())
                }
                Placed::Item { at, .. } => raw::Out::Item(&items[at]),
            });
            let digests = raw::write_items(entity, outs, &raw.rest, w)?;
            let mut recorded = IdMap::with_capacity_and_hasher(items.len(), Default::default());
            for (p, d) in placed.iter().zip(digests) {
                if let Placed::Item { at, .. } = *p
                    && valid[at]
                    && let Some(id) = entry_of(&items[at])
                {
                    recorded.insert(id, d);
                }
            }
            // Sent before the file's fsync, so that the base is encoded
            // meanwhile. A retried write sends the same digests again.
            let _ = tx.send((self.side, recorded));
            Ok(())
        });
        write.map(Some)
    }
}

/// Where an item of a rewritten file comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Placed {
    /// The text of the file's item at this index, settled.
    Settled(usize),
    /// The merge's item at `at`; in place of the file's item `original`,
    /// or new.
    Item { at: usize, original: Option<usize> },
}

/// The items of a rewritten file, in order: each settled item where it was,
/// each unsettled one replaced by what the merge gave back for it (or gone,
/// when deleted), then the merge's new items. `items` is the merge's output
/// for this side, which keeps the unsettled items' order.
fn layout(file: &raw::RawFile, settled: &[bool], items: &[Arc<Item>], idf: &str) -> Vec<Placed> {
    let mut out = Vec::with_capacity(file.items.len() + items.len());
    let mut next = 0;
    for (i, it) in file.items.iter().enumerate() {
        if settled[i] {
            out.push(Placed::Settled(i));
        } else if items
            .get(next)
            .is_some_and(|m| it.id.as_deref() == Some(id_of(m, idf)))
        {
            out.push(Placed::Item {
                at: next,
                original: Some(i),
            });
            next += 1;
        }
    }
    out.extend((next..items.len()).map(|at| Placed::Item { at, original: None }));
    out
}
