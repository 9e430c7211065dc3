//! Entity files read without parsing their items, and written with the
//! digest of each item's text.
//!
//! A re-sync finds almost every item exactly as the last sync wrote it. Such
//! an item need not be parsed, validated, merged or encoded again: the sync
//! base records the digest of each item's text as written (see `base.rs`), and
//! an item whose text still has that digest is *settled*. So a file is first
//! only scanned ([`scan`]): each item's span and id, with the items left as
//! text, and, when the base has digests to compare them with, each item's
//! digest ([`RawFile::digest_items`]); the pipeline parses just the items that
//! are not settled, and a rewritten file copies the settled items' text as it
//! is ([`write_items`]).
//!
//! Copying text is only right for text in the written form (two-space
//! indentation, two levels deep): the writer records digests only of text it
//! wrote or copied, so a digest that matches always names text of that form.

use crate::error::{Code, Error, Result};
use crate::merge::Item;
use crate::strict::{Fault, Seg};
use cds_json::Key;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use sha2::Digest as _;
use std::fmt;
use std::io;
use std::ops::Range;
use std::path::Path;

/// The digest of one item's text: the first 16 bytes of its SHA-256 (a
/// collision would need 2^64 items to be likely; the host never trusts a
/// digest it did not write).
pub type ItemDigest = [u8; 16];

/// The digest of `text`.
pub fn digest(text: &[u8]) -> ItemDigest {
    let full = sha2::Sha256::digest(text);
    let mut d = [0u8; 16];
    d.copy_from_slice(&full[..16]);
    d
}

/// One item of a scanned file.
#[derive(Debug, Clone, PartialEq)]
pub struct RawItem {
    /// Where its text is in the file.
    pub span: Range<usize>,
    /// Its id, when it has one that is a string.
    pub id: Option<String>,
    /// The digest of its text, once [`RawFile::digest_items`] ran.
    pub digest: Option<ItemDigest>,
}

/// A file's bytes as read. A large one is a read-only mapping of the page
/// cache: read into the heap instead, the kernel zeroed fresh pages for it
/// and copied it there (14% of a re-sync's samples at the limits when the
/// machine's memory was cold), and it counted in the sync's peak memory
/// (BENCHMARKS.md, "Data files mapped").
///
/// A mapping shows what is in the file while it is mapped. A program that
/// replaces the file (write a new one, rename it over: what editors and this
/// host do) leaves the mapped one as it was. One that rewrites it in place
/// while a sync reads it is seen as a read would see it, torn; the commit's
/// check that no file changed since it was read catches either (its stamp
/// moves). One that makes it shorter in place makes a read past the new end
/// fault (SIGBUS), ending the sync before its commit, as a kill would: the
/// data folder stays as it was.
#[derive(Default)]
pub struct FileBytes {
    inner: Held,
    /// Bytes skipped at the start (a byte order mark).
    start: usize,
}

#[derive(Default)]
enum Held {
    #[default]
    None,
    Heap(Vec<u8>),
    Mapped(memmap2::Mmap),
}

impl FileBytes {
    /// A file's mapping ([`crate::store::read_mapped`] makes it).
    pub fn mapped(map: memmap2::Mmap) -> FileBytes {
        FileBytes {
            inner: Held::Mapped(map),
            start: 0,
        }
    }

    /// Leaves out the first `n` bytes.
    pub fn skip(&mut self, n: usize) {
        self.start = (self.start + n).min(self.whole().len());
    }

    fn whole(&self) -> &[u8] {
        match &self.inner {
            Held::None => &[],
            Held::Heap(v) => v,
            Held::Mapped(m) => m,
        }
    }
}

impl std::ops::Deref for FileBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.whole()[self.start..]
    }
}

impl From<Vec<u8>> for FileBytes {
    fn from(v: Vec<u8>) -> FileBytes {
        FileBytes {
            inner: Held::Heap(v),
            start: 0,
        }
    }
}

impl std::fmt::Debug for FileBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FileBytes({} bytes)", self.len())
    }
}

/// An entity file whose items are still text.
#[derive(Debug, Default)]
pub struct RawFile {
    /// The file's bytes; empty once the pipeline needs none of it.
    pub text: FileBytes,
    pub items: Vec<RawItem>,
    /// The rest of the top-level object, written back untouched.
    pub rest: Map<String, Value>,
}

impl RawFile {
    /// The text of item `i`.
    pub fn text_of(&self, i: usize) -> &[u8] {
        &self.text[self.items[i].span.clone()]
    }

    /// Works out the digest of every item's text.
    pub fn digest_items(&mut self) {
        for it in &mut self.items {
            it.digest = Some(digest(&self.text[it.span.clone()]));
        }
    }

    /// Parses item `i`. Its text was checked to be a JSON object when the
    /// file was scanned, so this fails only if `text` was changed since.
    ///
    /// `entity` names the file's array, for the path in an error; an item
    /// with a key twice is refused (see [`crate::strict`]).
    pub fn parse(&self, path: &Path, entity: &str, i: usize) -> Result<Item> {
        let file = Seg::Key(&Seg::Root, entity);
        let at = Seg::Index(&file, i);
        match crate::strict::from_slice(self.text_of(i), &at) {
            Ok(Value::Object(m)) => Ok(m),
            Ok(_) => Err(Error::new(
                Code::DataFormatInvalid,
                format!("`{}`: item {i} is not a JSON object", path.display()),
            )
            .with("file", path.display().to_string())
            .with("index", i)),
            Err(Fault::Duplicate(mut d)) => {
                // Lines and columns within the item, made the file's.
                let start = self.items[i].span.start;
                let before = &self.text[..start];
                let newlines = before.iter().filter(|b| **b == b'\n').count();
                if d.line == 1 {
                    let line_start = before
                        .iter()
                        .rposition(|b| *b == b'\n')
                        .map_or(0, |p| p + 1);
                    d.column += start - line_start;
                }
                d.line += newlines;
                Err(crate::strict::duplicate_key(
                    path,
                    &d,
                    self.items[i].id.as_deref(),
                ))
            }
            Err(Fault::Json(e)) => Err(Error::new(
                Code::DataFormatInvalid,
                format!("`{}`: item {i} cannot be read: {e}", path.display()),
            )
            .with("file", path.display().to_string())
            .with("index", i)),
        }
    }
}

/// Scans an entity file `{"<entity>": [item, ...], ...}`: the span and id of
/// every item, which must each be a JSON object, and the rest of
/// the top-level object. When `text` is not such a file it comes back as the
/// error: the caller then parses it whole for the precise fault.
pub fn scan(text: FileBytes, entity: &str, id_field: &str) -> Result<RawFile, FileBytes> {
    let scanned = {
        let mut de = serde_json::Deserializer::from_slice(&text);
        match (TopSeed { entity })
            .deserialize(&mut de)
            .and_then(|t| de.end().map(|()| t))
        {
            Ok(top) => {
                let base = text.as_ptr() as usize;
                let raws = top.items.unwrap_or_default();
                let mut items = Vec::with_capacity(raws.len());
                let mut objects = true;
                for raw in &raws {
                    let s = raw.get();
                    objects &= s.starts_with('{');
                    let start = s.as_ptr() as usize - base;
                    items.push(RawItem {
                        span: start..start + s.len(),
                        id: scan_id(s, id_field),
                        digest: None,
                    });
                }
                objects.then_some((items, top.rest))
            }
            Err(_) => None,
        }
    };
    match scanned {
        Some((items, rest)) => Ok(RawFile { text, items, rest }),
        None => Err(text),
    }
}

/// The top level of an entity file, items as text.
struct Top<'a> {
    items: Option<Vec<&'a RawValue>>,
    rest: Map<String, Value>,
}

struct TopSeed<'e> {
    entity: &'e str,
}

impl<'de> DeserializeSeed<'de> for TopSeed<'_> {
    type Value = Top<'de>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Top<'de>, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for TopSeed<'_> {
    type Value = Top<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an entity file")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Top<'de>, A::Error> {
        let mut top = Top {
            items: None,
            rest: Map::new(),
        };
        while let Some(key) = map.next_key::<String>()? {
            if key == self.entity {
                // A repeated key counts as its last value, as when parsed.
                // Anything but an array fails the scan (the caller's full
                // parse then names the fault).
                top.items = Some(map.next_value::<Vec<&'de RawValue>>()?);
                top.rest.shift_remove(&key);
            } else {
                let v: Value = map.next_value()?;
                top.rest.insert(key, v);
            }
        }
        Ok(top)
    }
}

/// The string under `id_field` of the object `text` (the last one, if the
/// key is repeated, as when parsed).
fn scan_id(text: &str, id_field: &str) -> Option<String> {
    struct IdSeed<'f>(&'f str);
    impl<'de> DeserializeSeed<'de> for IdSeed<'_> {
        type Value = Option<String>;
        fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_map(self)
        }
    }
    impl<'de> Visitor<'de> for IdSeed<'_> {
        type Value = Option<String>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an item")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut id = None;
            while let Some(Key(k)) = map.next_key::<Key<'de>>()? {
                if k == self.0 {
                    id = match map.next_value::<Value>()? {
                        Value::String(s) => Some(s),
                        _ => None,
                    };
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Ok(id)
        }
    }
    IdSeed(id_field)
        .deserialize(&mut serde_json::Deserializer::from_str(text))
        .ok()
        .flatten()
}

/// One item to write: text to copy as it is (text of the written form, with
/// its digest), or an item to encode.
pub enum Out<'a> {
    Text(&'a [u8], ItemDigest),
    Item(&'a Item),
}

/// Writes an entity file: exactly `serde_json::to_writer_pretty` of
/// `{"<entity>": items, ...rest}` and a newline (by `cds_json`), each item
/// copied or encoded. Returns the digest of each item's text, in order.
pub fn write_items<'a>(
    entity: &str,
    items: impl ExactSizeIterator<Item = Out<'a>>,
    rest: &Map<String, Value>,
    out: &mut dyn io::Write,
) -> io::Result<Vec<ItemDigest>> {
    // Written out in pieces of about this size.
    const PIECE: usize = 1 << 16;
    let mut digests = Vec::with_capacity(items.len());
    let mut buf = Vec::with_capacity(PIECE + (PIECE >> 2));
    buf.extend_from_slice(b"{\n  ");
    cds_json::write_str(&mut buf, entity);
    buf.extend_from_slice(b": ");
    if items.len() == 0 {
        buf.extend_from_slice(b"[]");
    } else {
        buf.push(b'[');
        for (i, item) in items.enumerate() {
            if i > 0 {
                buf.push(b',');
            }
            buf.extend_from_slice(b"\n    ");
            match item {
                Out::Text(text, d) => {
                    buf.extend_from_slice(text);
                    digests.push(d);
                }
                Out::Item(item) => {
                    let start = buf.len();
                    cds_json::write_map_pretty(&mut buf, item, 2);
                    digests.push(digest(&buf[start..]));
                }
            }
            if buf.len() >= PIECE {
                out.write_all(&buf)?;
                buf.clear();
            }
        }
        buf.extend_from_slice(b"\n  ]");
    }
    for (k, v) in rest {
        if k != entity {
            buf.extend_from_slice(b",\n  ");
            cds_json::write_str(&mut buf, k);
            buf.extend_from_slice(b": ");
            cds_json::write_pretty(&mut buf, v, 1);
        }
    }
    buf.extend_from_slice(b"\n}\n");
    out.write_all(&buf)?;
    Ok(digests)
}

/// The digest an item would have as written by [`write_items`].
pub fn written_digest(item: &Item) -> ItemDigest {
    let mut buf = Vec::with_capacity(1024);
    cds_json::write_map_pretty(&mut buf, item, 2);
    digest(&buf)
}

/// Lower-case hex of a digest, as ASCII bytes. (`hex::encode` collects
/// chars one at a time: ~1,200 instructions a digest, and the base writes
/// two per entry.)
pub fn hex(d: &ItemDigest) -> [u8; 32] {
    let mut out = [0u8; 32];
    // Sixteen bytes always fit 32 hex digits: this cannot fail.
    let _ = hex::encode_to_slice(d, &mut out);
    out
}

/// A digest from lower-case hex; `None` when `s` is not one.
pub fn unhex(s: &str) -> Option<ItemDigest> {
    let mut d = [0u8; 16];
    hex::decode_to_slice(s, &mut d).ok()?;
    Some(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn written(v: &Value, rest: &Map<String, Value>) -> (Vec<u8>, Vec<ItemDigest>) {
        let items: Vec<Item> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i.as_object().unwrap().clone())
            .collect();
        let mut out = Vec::new();
        let d = write_items("contacts", items.iter().map(Out::Item), rest, &mut out).unwrap();
        (out, d)
    }

    /// What the writer writes, the scanner reads back: the same spans hold
    /// the same items, with the digests the writer gave them; copying the
    /// scanned text reproduces the file byte for byte.
    #[test]
    fn written_files_scan_back_to_their_items() {
        let items = json!([
            {"id": "a", "name": "Ä \"q\" \\ \n", "tags": [], "n": {"x": [1, 2.5]}},
            {"name": "no id"},
            {"id": 7, "e": {}},
            {"id": "d", "id2": "x", "nested": {"id": "inner"}}
        ]);
        let mut rest = Map::new();
        rest.insert("version".into(), json!(3));
        let (text, digests) = written(&items, &rest);
        let mut whole = Map::new();
        whole.insert("contacts".into(), items.clone());
        whole.extend(rest.clone());
        let mut want = serde_json::to_vec_pretty(&whole).unwrap();
        want.push(b'\n');
        assert_eq!(text, want);

        let mut file = scan(text.clone().into(), "contacts", "id").unwrap();
        assert!(file.items.iter().all(|i| i.digest.is_none()));
        file.digest_items();
        assert_eq!(file.rest, rest);
        let ids: Vec<Option<&str>> = file.items.iter().map(|i| i.id.as_deref()).collect();
        assert_eq!(ids, [Some("a"), None, None, Some("d")]);
        for (i, it) in file.items.iter().enumerate() {
            assert_eq!(it.digest, Some(digests[i]));
            let parsed = file.parse(Path::new("c.json"), "contacts", i).unwrap();
            assert_eq!(Value::Object(parsed.clone()), items[i]);
            assert_eq!(Some(written_digest(&parsed)), it.digest);
        }
        let mut copy = Vec::new();
        let outs = file
            .items
            .iter()
            .enumerate()
            .map(|(i, it)| Out::Text(file.text_of(i), it.digest.unwrap()));
        let d2 = write_items("contacts", outs, &file.rest, &mut copy).unwrap();
        assert_eq!((copy, d2), (text, digests));
    }

    #[test]
    fn files_that_are_not_entity_files_are_told_apart() {
        let s = |t: &str| scan(t.as_bytes().to_vec().into(), "contacts", "id");
        for bad in [
            "[]",
            "{\"contacts\": {}}",
            "{\"contacts\": 3}",
            "{\"contacts\": [",
            "{} x",
            "{\"contacts\": [1]}",
            "{\"contacts\": [{}, []]}",
        ] {
            assert_eq!(s(bad).err().as_deref(), Some(bad.as_bytes()), "{bad}");
        }
        let none = s("{\"other\": 1}").unwrap();
        assert!(none.items.is_empty());
        assert_eq!(none.rest["other"], json!(1));
        // A repeated key counts as its last value, as serde_json parses it.
        let twice =
            s("{\"contacts\": [{\"id\":\"a\"}], \"contacts\": [{\"id\":\"b\",\"id\":\"c\"}]}")
                .unwrap();
        assert_eq!(twice.items.len(), 1);
        assert_eq!(twice.items[0].id.as_deref(), Some("c"));
        // Ids with escapes are read as strings are.
        let esc = s(r#"{"contacts": [{"\u0069d": "a\"b"}]}"#).unwrap();
        assert_eq!(esc.items[0].id.as_deref(), Some("a\"b"));
    }

    #[test]
    fn digests_name_the_text() {
        assert_ne!(digest(b"{}"), digest(b"{ }"));
        let text = hex(&digest(b"x"));
        assert_eq!(
            unhex(std::str::from_utf8(&text).unwrap()),
            Some(digest(b"x"))
        );
        assert_eq!(unhex("zz"), None);
        assert_eq!(unhex(&"0".repeat(31)), None);
    }
}
