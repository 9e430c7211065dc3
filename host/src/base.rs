//! The sync base on disk: per pair of domains and entity type, each side's
//! item as both last agreed on it (what the merge calls the base), and the
//! digest of each side's item as the host last wrote it (see [`crate::raw`]).
//!
//! ```text
//! {"version":2,"entity":"contacts","key":"<hex>","items":[
//!   {"id":"c1","digests":{"personal":"<hex>","business":"<hex>"},
//!    "personal":{...item...},"business":"="}, ...]}
//! ```
//!
//! Entries are sorted by id. `"="` stands for "this domain's item equals the
//! other's in content" (one copy is kept). A digest is recorded for a side
//! only when its item in the domain file is, in content, the base's item for
//! that side, and was validated against the item schema: then a file item
//! whose text still has that digest is settled, and neither it nor its base
//! entry needs parsing. `key` is the digest of what decides whether an item's
//! text is valid (the plugin and both domains' field renames); digests under
//! another key are not trusted. Version 1 bases (no digests, no key) are
//! still read; every entry of one is parsed.
//!
//! The base is the host's own state, written compactly; [`RawBase`] reads it
//! without parsing the entries' items, and [`write`] copies the text of
//! settled entries as it is.

use crate::error::{Code, Error, Result};
use crate::merge::{self, Base, BaseEntry, IdMap, Item, Side};
use crate::raw::{self, ItemDigest};
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;
use std::fmt;
use std::io;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

/// In a base file: this domain's item equals the other's in content.
const SAME: &str = "=";
const VERSION: u64 = 2;

/// The key under which digests are trusted: the plugin's SHA-256 and both
/// domains' field renames for the entity type, whichever domain is the
/// source.
pub fn key(plugin_sha256: &str, sides: [(&str, &[(String, String)]); 2]) -> String {
    let mut sides = sides;
    sides.sort_by(|a, b| a.0.cmp(b.0));
    let text = serde_json::json!([plugin_sha256, sides]).to_string();
    hex::encode(<sha2::Sha256 as sha2::Digest>::digest(text.as_bytes()))
}

/// One side of an entry as stored.
#[derive(Debug, Clone, PartialEq)]
enum Stored {
    Item(Range<usize>),
    Same,
    Missing,
}

impl Stored {
    /// A domain's value in an entry, at `span` of the base's `text`: its
    /// item, `"="` for the other domain's, anything else missing.
    fn of(text: &[u8], span: Range<usize>) -> Stored {
        let value = &text[span.clone()];
        if value.starts_with(b"{") {
            Stored::Item(span)
        } else if serde_json::from_slice::<String>(value).is_ok_and(|s| s == SAME) {
            Stored::Same
        } else {
            Stored::Missing
        }
    }

    /// Whether an entry's sides hold both domains' items (at most one of
    /// them by `"="`).
    fn whole(sides: &[Stored; 2]) -> bool {
        matches!(
            sides,
            [Stored::Item(_), Stored::Item(_) | Stored::Same] | [Stored::Same, Stored::Item(_)]
        )
    }
}

/// The digests an entry's `digests` object records for `source` and
/// `target`, in that order.
fn digests_of(d: &serde_json::Value, source: &str, target: &str) -> [Option<ItemDigest>; 2] {
    let of = |dom: &str| d.get(dom).and_then(|v| v.as_str()).and_then(raw::unhex);
    [of(source), of(target)]
}

/// One entry of a base file, its items still text.
#[derive(Debug, Clone, PartialEq)]
pub struct RawEntry {
    pub id: String,
    /// The entry's text, copied as it is when it is settled.
    span: Range<usize>,
    /// Source, then target.
    sides: [Stored; 2],
    /// The digest of each side's item as written (source, then target);
    /// `None` when not recorded or not trusted.
    pub digests: [Option<ItemDigest>; 2],
}

/// A base file read without parsing its entries' items.
#[derive(Debug, Default)]
pub struct RawBase {
    text: crate::raw::FileBytes,
    /// In file order (sorted by id, as written).
    pub entries: Vec<RawEntry>,
}

impl RawBase {
    /// Reads the base at `path`, oriented as (`source`, `target`); an absent
    /// file is an empty base. Digests are kept only under `key`.
    pub fn load(path: &Path, source: &str, target: &str, key: &str) -> Result<RawBase> {
        let Some(text) = crate::store::read_mapped(path)? else {
            return Ok(RawBase::default());
        };
        let damaged = |why: String| {
            Error::new(
                Code::StorageError,
                format!(
                    "the sync state `{}` is damaged ({why}); move it away to start afresh (the \
                     next sync then deletes nothing and treats differences as conflicts)",
                    path.display()
                ),
            )
            .with("file", path.display().to_string())
        };
        if text.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(damaged("not a JSON object".into()));
        }
        if let Some(entries) = quick_entries(&text, source, target, key) {
            return Ok(RawBase { text, entries });
        }
        let entries = serde_entries(&text, source, target, key).map_err(damaged)?;
        Ok(RawBase { text, entries })
    }

    /// The text of entry `i`.
    pub fn text_of(&self, i: usize) -> &[u8] {
        &self.text[self.entries[i].span.clone()]
    }

    /// Parses entry `i` into what the merge takes.
    pub fn entry(&self, i: usize) -> Result<BaseEntry> {
        let parse = |r: &Range<usize>| -> Result<Item> {
            serde_json::from_slice(&self.text[r.clone()]).map_err(|e| {
                Error::new(
                    Code::StorageError,
                    format!("an entry of the sync state cannot be read: {e}"),
                )
            })
        };
        Ok(match &self.entries[i].sides {
            [Stored::Item(s), Stored::Item(t)] => BaseEntry {
                source: Arc::new(parse(s)?),
                target: Arc::new(parse(t)?),
            },
            [Stored::Item(one), _] | [_, Stored::Item(one)] => BaseEntry::same(parse(one)?),
            // `load` refuses entries without an item.
            _ => BaseEntry::same(Item::new()),
        })
    }
}

/// Whether the base at `path` begins as [`write`] begins a base of `entity`
/// under `key`: then its digests may settle items, and the files are worth
/// scanning for them. Reads only the first bytes; an absent or unreadable
/// file, or any other beginning, is `false` (the sync then parses every item,
/// as it would have to anyway).
pub fn trusted_header(path: &Path, entity: &str, key: &str) -> bool {
    use std::io::Read as _;
    let want = header(entity, key);
    let mut got = vec![0u8; want.len()];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut got))
        .is_ok_and(|()| got == want)
}

/// The first bytes of a base file, up to its first entry.
fn header(entity: &str, key: &str) -> Vec<u8> {
    let mut buf = Vec::with_capacity(160);
    buf.extend_from_slice(format!("{{\"version\":{VERSION},\"entity\":").as_bytes());
    cds_json::write_str(&mut buf, entity);
    buf.extend_from_slice(b",\"key\":");
    cds_json::write_str(&mut buf, key);
    buf.extend_from_slice(b",\"items\":[");
    buf
}

/// The entries of any base file, read by serde_json; `Err` says why the
/// file is damaged.
fn serde_entries(
    text: &[u8],
    source: &str,
    target: &str,
    key: &str,
) -> std::result::Result<Vec<RawEntry>, String> {
    let start = text.as_ptr() as usize;
    let mut de = serde_json::Deserializer::from_slice(text);
    let top = TopSeed
        .deserialize(&mut de)
        .and_then(|t| de.end().map(|()| t))
        .map_err(|e| e.to_string())?;
    let items = top.items.ok_or_else(|| "no `items` array".to_string())?;
    let trusted = top.version == Some(VERSION) && top.key.as_deref() == Some(key);
    let mut entries = Vec::with_capacity(items.len());
    for raw in items {
        let s = raw.get();
        let fields = (EntrySeed { source, target })
            .deserialize(&mut serde_json::Deserializer::from_str(s))
            .map_err(|_| "an entry is not an object".to_string())?;
        let side = |r: Option<&RawValue>| match r {
            Some(r) => {
                let at = r.get().as_ptr() as usize - start;
                Stored::of(text, at..at + r.get().len())
            }
            None => Stored::Missing,
        };
        let sides = [side(fields.source), side(fields.target)];
        let (Some(id), true) = (fields.id, Stored::whole(&sides)) else {
            return Err("an entry lacks its id or a domain's item".into());
        };
        let at = s.as_ptr() as usize - start;
        entries.push(RawEntry {
            id,
            span: at..at + s.len(),
            sides,
            digests: if trusted {
                fields.digests
            } else {
                [None, None]
            },
        });
    }
    Ok(entries)
}

/// The entries of a base laid out as [`write`] lays it out, read in one
/// pass by [`raw::fast`] (the serde_json reading below went through every
/// entry twice: to skip it, then for its fields); `None` for any other
/// layout, which the serde_json reading then reads or names as damaged.
/// Each entry must have its id and its items, as there.
fn quick_entries(text: &[u8], source: &str, target: &str, key: &str) -> Option<Vec<RawEntry>> {
    use raw::fast::{object, string, string_end, ws};
    let version = format!("{{\"version\":{VERSION},\"entity\":");
    let mut p = version.len();
    if !text.starts_with(version.as_bytes()) || text.get(p) != Some(&b'"') {
        return None;
    }
    p = string_end(text, p)?;
    let key_at = p + b",\"key\":".len();
    if !text[p..].starts_with(b",\"key\":") || text.get(key_at) != Some(&b'"') {
        return None;
    }
    p = string_end(text, key_at)?;
    let trusted = string(text, key_at..p)? == key;
    if !text[p..].starts_with(b",\"items\":[") {
        return None;
    }
    p += b",\"items\":[".len();
    let mut entries = Vec::new();
    if text.get(p) == Some(&b']') {
        p += 1;
    } else {
        loop {
            let mut id = None;
            let mut digests = [None, None];
            let mut sides = [Stored::Missing, Stored::Missing];
            let at = p;
            // As the serde_json reading's `EntrySeed`: the last of a key
            // counts, `id` and `digests` before the domains' names.
            p = object(text, p, &mut |k, v| {
                if k == b"id" {
                    id = if text[v.start] == b'"' {
                        string(text, v)
                    } else {
                        None
                    };
                } else if k == b"digests" {
                    let d = serde_json::from_slice(&text[v]).ok()?;
                    digests = digests_of(&d, source, target);
                } else if let Some(side) = [source, target].iter().position(|d| k == d.as_bytes()) {
                    sides[side] = Stored::of(text, v);
                }
                Some(())
            })?;
            if !Stored::whole(&sides) {
                return None;
            }
            entries.push(RawEntry {
                id: id?,
                span: at..p,
                sides,
                digests: if trusted { digests } else { [None, None] },
            });
            match text.get(p) {
                Some(b',') => p += 1,
                Some(b']') => {
                    p += 1;
                    break;
                }
                _ => return None,
            }
        }
    }
    (text.get(p) == Some(&b'}') && ws(text, p + 1) == text.len()).then_some(entries)
}

/// The top level of a base file: its version, key, and entries as text.
struct TopSeed;

struct Top<'a> {
    version: Option<u64>,
    key: Option<String>,
    items: Option<Vec<&'a RawValue>>,
}

impl<'de> DeserializeSeed<'de> for TopSeed {
    type Value = Top<'de>;
    fn deserialize<D: de::Deserializer<'de>>(
        self,
        d: D,
    ) -> std::result::Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for TopSeed {
    type Value = Top<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a sync base")
    }
    fn visit_map<A: MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<Self::Value, A::Error> {
        let mut top = Top {
            version: None,
            key: None,
            items: None,
        };
        while let Some(k) = map.next_key::<String>()? {
            match k.as_str() {
                "version" => top.version = map.next_value::<serde_json::Value>()?.as_u64(),
                "key" => {
                    top.key = map
                        .next_value::<serde_json::Value>()?
                        .as_str()
                        .map(String::from)
                }
                "items" => top.items = Some(map.next_value::<Vec<&'de RawValue>>()?),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(top)
    }
}

/// The fields of one entry that loading needs.
struct EntrySeed<'n> {
    source: &'n str,
    target: &'n str,
}

struct EntryFields<'a> {
    id: Option<String>,
    source: Option<&'a RawValue>,
    target: Option<&'a RawValue>,
    digests: [Option<ItemDigest>; 2],
}

impl<'de> DeserializeSeed<'de> for EntrySeed<'_> {
    type Value = EntryFields<'de>;
    fn deserialize<D: de::Deserializer<'de>>(
        self,
        d: D,
    ) -> std::result::Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for EntrySeed<'_> {
    type Value = EntryFields<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a base entry")
    }
    fn visit_map<A: MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<Self::Value, A::Error> {
        let mut e = EntryFields {
            id: None,
            source: None,
            target: None,
            digests: [None, None],
        };
        while let Some(k) = map.next_key::<String>()? {
            if k == "id" {
                e.id = map
                    .next_value::<serde_json::Value>()?
                    .as_str()
                    .map(String::from);
            } else if k == "digests" {
                let d = map.next_value::<serde_json::Value>()?;
                e.digests = digests_of(&d, self.source, self.target);
            } else if k == self.source {
                e.source = Some(map.next_value()?);
            } else if k == self.target {
                e.target = Some(map.next_value()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(e)
    }
}

impl RawBase {
    /// Whether any entry holds a digest this sync may trust.
    pub fn has_digests(&self) -> bool {
        self.entries.iter().any(|e| e.digests != [None, None])
    }
}

/// Which items are settled by their digests: those that both sides hold
/// with exactly the text the base records as written for them. Returns, for
/// the source's items, the target's items and the base's entries, whether
/// each is settled.
pub fn settled_marks(
    source: &[raw::RawItem],
    target: &[raw::RawItem],
    base: &RawBase,
) -> [Vec<bool>; 3] {
    let mut marks = [
        vec![false; source.len()],
        vec![false; target.len()],
        vec![false; base.entries.len()],
    ];
    if !base.has_digests() {
        return marks;
    }
    let entries: IdMap<&str, usize> = base
        .entries
        .iter()
        .enumerate()
        .map(|(i, e)| (e.id.as_str(), i))
        .collect();
    let targets: IdMap<&str, usize> = target
        .iter()
        .enumerate()
        .filter_map(|(i, t)| Some((t.id.as_deref()?, i)))
        .collect();
    for (i, s) in source.iter().enumerate() {
        let Some(id) = s.id.as_deref() else { continue };
        let (Some(&e), Some(&t)) = (entries.get(id), targets.get(id)) else {
            continue;
        };
        if base.entries[e].digests == [s.digest, target[t].digest] && s.digest.is_some() {
            marks[0][i] = true;
            marks[1][t] = true;
            marks[2][e] = true;
        }
    }
    marks
}

/// Writes a base file: the entries of `merged` and, copied as they were, the
/// settled entries of `old`, together in id order. `digest` gives the digest
/// to record for a side of a merged entry (given the side and the id), or
/// `None`.
#[allow(clippy::too_many_arguments)]
pub fn write(
    out: &mut dyn io::Write,
    entity: &str,
    key: &str,
    [source, target]: [&str; 2],
    merged: &Base,
    old: &RawBase,
    settled: &[bool],
    digest: &dyn Fn(Side, &str) -> Option<ItemDigest>,
) -> io::Result<()> {
    const PIECE: usize = 1 << 16;
    let mut buf = Vec::with_capacity(PIECE + (PIECE >> 2));
    buf.extend_from_slice(&header(entity, key));
    let mut kept = old
        .entries
        .iter()
        .enumerate()
        .filter(|(i, _)| settled[*i])
        .peekable();
    let mut merged = merged.iter().peekable();
    let mut first = true;
    loop {
        // The next entry in id order: a kept one's text, or a merged one.
        let next_kept = kept.next_if(|(_, k)| {
            merged
                .peek()
                .is_none_or(|(id, _)| k.id.as_str() < id.as_str())
        });
        if !first && (next_kept.is_some() || merged.peek().is_some()) {
            buf.push(b',');
        }
        first = false;
        if let Some((i, _)) = next_kept {
            buf.extend_from_slice(old.text_of(i));
        } else if let Some((id, e)) = merged.next() {
            let digests = [digest(Side::Source, id), digest(Side::Target, id)];
            write_entry(&mut buf, id, e, [source, target], digests);
        } else {
            break;
        }
        if buf.len() >= PIECE {
            out.write_all(&buf)?;
            buf.clear();
        }
    }
    buf.extend_from_slice(b"]}\n");
    out.write_all(&buf)
}

/// `"k":`.
fn write_key(buf: &mut Vec<u8>, k: &str) {
    cds_json::write_str(buf, k);
    buf.push(b':');
}

/// One merged entry: `{"id":…,"digests":{…},"<source>":{…},"<target>":…}`.
fn write_entry(
    buf: &mut Vec<u8>,
    id: &str,
    e: &BaseEntry,
    [source, target]: [&str; 2],
    digests: [Option<ItemDigest>; 2],
) {
    buf.push(b'{');
    write_key(buf, "id");
    cds_json::write_str(buf, id);
    if digests != [None, None] {
        buf.push(b',');
        write_key(buf, "digests");
        buf.push(b'{');
        let mut sep = false;
        for (dom, d) in [source, target].into_iter().zip(digests) {
            if let Some(d) = d {
                if sep {
                    buf.push(b',');
                }
                sep = true;
                write_key(buf, dom);
                // Hex digits need no escaping.
                buf.push(b'"');
                buf.extend_from_slice(&raw::hex(&d));
                buf.push(b'"');
            }
        }
        buf.push(b'}');
    }
    buf.push(b',');
    write_key(buf, source);
    cds_json::write_map_compact(buf, &e.source);
    buf.push(b',');
    write_key(buf, target);
    // When both sides agree in content (the usual case), one copy is kept:
    // every use of the base ignores the bookkeeping fields.
    if Arc::ptr_eq(&e.source, &e.target) || merge::content_eq(&e.source, &e.target) {
        cds_json::write_str(buf, SAME);
    } else {
        cds_json::write_map_compact(buf, &e.target);
    }
    buf.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn item(v: serde_json::Value) -> Item {
        v.as_object().unwrap().clone()
    }

    fn written(merged: &Base, old: &RawBase, settled: &[bool]) -> Vec<u8> {
        let mut out = Vec::new();
        let d =
            |side: Side, id: &str| (id == "b" && side == Side::Target).then(|| raw::digest(b"b"));
        write(
            &mut out,
            "contacts",
            "k",
            ["p", "q"],
            merged,
            old,
            settled,
            &d,
        )
        .unwrap();
        out
    }

    /// A written base reads back, oriented either way; digests are kept
    /// under the same key only; settled entries are copied in id order.
    #[test]
    fn bases_read_back_and_keep_settled_entries() {
        let mut merged = Base::new();
        merged.insert(
            "b".into(),
            BaseEntry::same(item(json!({"id": "b", "x": 1}))),
        );
        merged.insert(
            "d".into(),
            BaseEntry {
                source: Arc::new(item(json!({"id": "d", "x": 1}))),
                target: Arc::new(item(json!({"id": "d", "x": 2}))),
            },
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("contacts.json");
        std::fs::write(&path, written(&merged, &RawBase::default(), &[])).unwrap();

        let b = RawBase::load(&path, "p", "q", "k").unwrap();
        let ids: Vec<&str> = b.entries.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["b", "d"]);
        assert_eq!(b.entries[0].digests, [None, Some(raw::digest(b"b"))]);
        assert_eq!(b.entry(0).unwrap(), merged["b"]);
        assert_eq!(b.entry(1).unwrap(), merged["d"]);
        let flipped = RawBase::load(&path, "q", "p", "k").unwrap();
        assert_eq!(flipped.entries[0].digests, [Some(raw::digest(b"b")), None]);
        assert_eq!(*flipped.entry(1).unwrap().source, *merged["d"].target);
        let other_key = RawBase::load(&path, "p", "q", "other").unwrap();
        assert_eq!(other_key.entries[0].digests, [None, None]);

        // Entry "b" settled and copied; "a", "c" and "e" merged around it.
        let mut again = Base::new();
        for id in ["a", "c", "e"] {
            again.insert(id.into(), BaseEntry::same(item(json!({"id": id}))));
        }
        std::fs::write(&path, written(&again, &b, &[true, false])).unwrap();
        let c = RawBase::load(&path, "p", "q", "k").unwrap();
        let ids: Vec<&str> = c.entries.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["a", "b", "c", "e"]);
        assert_eq!(c.text_of(1), b.text_of(0));
        assert_eq!(c.entries[1].digests, [None, Some(raw::digest(b"b"))]);
    }

    #[test]
    fn only_a_base_written_under_the_key_has_a_trusted_header() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("contacts.json");
        assert!(!trusted_header(&path, "contacts", "k"), "absent");
        let mut out = Vec::new();
        let none = |_: Side, _: &str| None;
        write(
            &mut out,
            "contacts",
            "k",
            ["p", "q"],
            &Base::new(),
            &RawBase::default(),
            &[],
            &none,
        )
        .unwrap();
        std::fs::write(&path, &out).unwrap();
        assert!(trusted_header(&path, "contacts", "k"));
        assert!(!trusted_header(&path, "contacts", "other"));
        assert!(!trusted_header(&path, "calendar", "k"));
        std::fs::write(
            &path,
            b"{\"version\":1,\"entity\":\"contacts\",\"items\":[]}",
        )
        .unwrap();
        assert!(!trusted_header(&path, "contacts", "k"));
        std::fs::write(&path, b"{").unwrap();
        assert!(!trusted_header(&path, "contacts", "k"), "too short");
    }

    /// A base as `write` lays it out is read in one pass, to the very
    /// entries serde_json reads; any other layout is left to serde_json.
    #[test]
    fn the_quick_reading_agrees_with_serde_json() {
        let mut merged = Base::new();
        let tricky = json!({"id": "a\"b", "s": "}]{[\\\"", "n": [1, {"k": null}], "é": "☃"});
        merged.insert("a\"b".into(), BaseEntry::same(item(tricky)));
        merged.insert(
            "b".into(),
            BaseEntry {
                source: Arc::new(item(json!({"id": "b", "x": "="}))),
                target: Arc::new(item(json!({"id": "b", "x": 2.5e-7}))),
            },
        );
        merged.insert("c".into(), BaseEntry::same(item(json!({"id": "c"}))));
        let text = written(&merged, &RawBase::default(), &[]);
        for (source, target, key) in [("p", "q", "k"), ("q", "p", "k"), ("p", "q", "other")] {
            let quick = quick_entries(&text, source, target, key).expect("taken");
            let slow = serde_entries(&text, source, target, key).unwrap();
            assert_eq!(quick, slow, "{source} {target} {key}");
        }
        assert_eq!(quick_entries(&text, "p", "q", "k").unwrap()[0].id, "a\"b");
        let empty = written(&Base::new(), &RawBase::default(), &[]);
        assert_eq!(quick_entries(&empty, "p", "q", "k"), Some(Vec::new()));
        // Other layouts: to serde_json, which reads them or names the fault.
        let spaced = [b" ".as_slice(), &text].concat();
        assert_eq!(quick_entries(&spaced, "p", "q", "k"), None);
        let mut pretty =
            serde_json::to_vec_pretty(&serde_json::from_slice::<serde_json::Value>(&text).unwrap())
                .unwrap();
        assert_eq!(quick_entries(&pretty, "p", "q", "k"), None);
        pretty.truncate(pretty.len() - 3);
        assert!(serde_entries(&pretty, "p", "q", "k").is_err());
        let no_side = String::from_utf8(text.clone())
            .unwrap()
            .replace(",\"q\":\"=\"", "");
        assert_eq!(quick_entries(no_side.as_bytes(), "p", "q", "k"), None);
        assert!(serde_entries(no_side.as_bytes(), "p", "q", "k").is_err());
        let trailing = [text.as_slice(), b"x"].concat();
        assert_eq!(quick_entries(&trailing, "p", "q", "k"), None);
    }

    /// Version 1 bases (before digests) load, with nothing trusted.
    #[test]
    fn version_one_bases_load_without_digests() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("contacts.json");
        let v1 = json!({"version": 1, "entity": "contacts", "items": [
            {"id": "a", "p": {"id": "a"}, "q": "="},
            {"id": "b", "p": {"id": "b"}, "q": {"id": "b", "y": 1}}]});
        std::fs::write(&path, v1.to_string()).unwrap();
        let b = RawBase::load(&path, "p", "q", "k").unwrap();
        assert_eq!(b.entries.len(), 2);
        assert!(b.entries.iter().all(|e| e.digests == [None, None]));
        assert_eq!(
            b.entry(0).unwrap(),
            BaseEntry::same(item(json!({"id": "a"})))
        );
        assert_eq!(b.entry(1).unwrap().target["y"], json!(1));
    }

    #[test]
    fn settled_needs_both_digests_to_match() {
        let ri = |id: &str, text: &[u8]| raw::RawItem {
            span: 0..0,
            id: Some(id.into()),
            digest: Some(raw::digest(text)),
        };
        let entry = |id: &str, d: [Option<ItemDigest>; 2]| RawEntry {
            id: id.into(),
            span: 0..0,
            sides: [Stored::Same, Stored::Same],
            digests: d,
        };
        let base = RawBase {
            text: Default::default(),
            entries: vec![
                entry("a", [Some(raw::digest(b"a")), Some(raw::digest(b"a'"))]),
                entry("b", [Some(raw::digest(b"b")), Some(raw::digest(b"b"))]),
                entry("c", [Some(raw::digest(b"c")), None]),
            ],
        };
        let src = [ri("a", b"a"), ri("b", b"b"), ri("c", b"c")];
        let tgt = [ri("c", b"c"), ri("b", b"b edited"), ri("a", b"a'")];
        let [s, t, e] = settled_marks(&src, &tgt, &base);
        assert_eq!(s, [true, false, false]);
        assert_eq!(t, [false, false, true]);
        assert_eq!(e, [true, false, false]);
    }
}
