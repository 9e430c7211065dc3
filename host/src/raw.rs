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
/// (BENCHMARKS.md, "Mapped files, one-pass scans, kept threads").
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

    /// Parses item `i`, strictly: the quick scan ([`fast`]) leaves an
    /// item's text unchecked, so this is where a broken one is refused,
    /// named by its line and column in the file.
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
                (d.line, d.column) = self.in_file(i, d.line, d.column);
                Err(crate::strict::duplicate_key(
                    path,
                    &d,
                    self.items[i].id.as_deref(),
                ))
            }
            Err(Fault::Json(e)) => {
                let (line, column) = self.in_file(i, e.line(), e.column());
                // serde_json's message ends with the position in the item.
                let what = e.to_string();
                let what = what.rsplit_once(" at line ").map_or(&*what, |(w, _)| w);
                let who = match &self.items[i].id {
                    Some(id) => format!("item {i} (id `{id}`)"),
                    None => format!("item {i}"),
                };
                Err(Error::new(
                    Code::DataFormatInvalid,
                    format!(
                        "`{}`: {who} is not valid JSON at line {line}, column {column}: {what}",
                        path.display()
                    ),
                )
                .with("file", path.display().to_string())
                .with("path", format!("$.{entity}[{i}]"))
                .with("index", i)
                .with("line", line))
            }
        }
    }

    /// A line and column within item `i`'s text (1-based), in the file.
    fn in_file(&self, i: usize, line: usize, column: usize) -> (usize, usize) {
        let start = self.items[i].span.start;
        let before = &self.text[..start];
        let newlines = before.iter().filter(|b| **b == b'\n').count();
        let column = if line == 1 {
            let line_start = before
                .iter()
                .rposition(|b| *b == b'\n')
                .map_or(0, |p| p + 1);
            column + start - line_start
        } else {
            column
        };
        (line + newlines, column)
    }
}

/// Scans an entity file `{"<entity>": [item, ...], ...}`: the span and id of
/// every item, which must each be a JSON object, and the rest of
/// the top-level object. When `text` is not such a file it comes back as the
/// error: the caller then parses it whole for the precise fault.
pub fn scan(text: FileBytes, entity: &str, id_field: &str) -> Result<RawFile, FileBytes> {
    if let Some(items) = fast::scan(&text, entity, id_field) {
        return Ok(RawFile {
            text,
            items,
            rest: Map::new(),
        });
    }
    match serde_scan(&text, entity, id_field) {
        Some((items, rest)) => Ok(RawFile { text, items, rest }),
        None => Err(text),
    }
}

/// [`scan`] by serde_json, for any entity file: items validated as JSON
/// while skipped, each one's id found by a second pass.
fn serde_scan(
    text: &[u8],
    entity: &str,
    id_field: &str,
) -> Option<(Vec<RawItem>, Map<String, Value>)> {
    let mut de = serde_json::Deserializer::from_slice(text);
    let top = (TopSeed { entity })
        .deserialize(&mut de)
        .and_then(|t| de.end().map(|()| t))
        .ok()?;
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

/// The quick scan of a file that holds only `{"<entity>": [...]}` (every
/// file this host writes without other top-level keys), in one pass; the
/// base's reading uses it too ([`crate::base`]).
///
/// serde_json's scan validated every item while skipping it, and
/// [`scan_id`] went through it again for its id; with the base read the
/// same way, that was about a quarter of a re-sync's samples at the limits.
/// This pass only finds where each item ends (strings, with `memchr`, and
/// nesting) and reads the item's own id on the way; it checks the layout
/// strictly down to each item's own keys and leaves their values
/// unchecked. That loses nothing: an item the base settles has exactly the
/// text of one the host wrote (its SHA-256 says so), and every other item
/// is parsed whole, strictly, before it is used, which is where a broken
/// one is refused. A file it does not take (other keys, or not an entity
/// file at all) goes through serde_json's scan, whose result it equals on
/// every file it takes (`quick_scan_tests::the_quick_scan_agrees_with_serde_json`).
pub mod fast {
    use super::RawItem;
    use std::ops::Range;

    /// The index of the first byte at or after `p` that is not JSON
    /// whitespace.
    pub fn ws(text: &[u8], mut p: usize) -> usize {
        while matches!(text.get(p), Some(b' ' | b'\n' | b'\r' | b'\t')) {
            p += 1;
        }
        p
    }

    /// The end of the string whose opening quote is at `open`: the index
    /// after its closing quote.
    pub fn string_end(text: &[u8], open: usize) -> Option<usize> {
        let mut p = open + 1;
        loop {
            p += memchr::memchr2(b'"', b'\\', &text[p..])?;
            if text[p] == b'"' {
                return Some(p + 1);
            }
            // An escape: the next byte is never the string's end.
            p += 2;
            if p > text.len() {
                return None;
            }
        }
    }

    /// The string at `span` (with its quotes), decoded.
    pub fn string(text: &[u8], span: Range<usize>) -> Option<String> {
        let inner = &text[span.start + 1..span.end - 1];
        if memchr::memchr(b'\\', inner).is_none() {
            std::str::from_utf8(inner).ok().map(String::from)
        } else {
            serde_json::from_slice::<String>(&text[span]).ok()
        }
    }

    /// The end of the object or array that opens at `start` (nesting
    /// counted, strings skipped, nothing else checked).
    fn nested_end(text: &[u8], start: usize) -> Option<usize> {
        let mut depth = 0usize;
        let mut p = start;
        loop {
            match *text.get(p)? {
                b'"' => {
                    p = string_end(text, p)?;
                    continue;
                }
                b'{' | b'[' => depth += 1,
                b'}' | b']' => {
                    depth = depth.checked_sub(1)?;
                    if depth == 0 {
                        return Some(p + 1);
                    }
                }
                _ => {}
            }
            p += 1;
        }
    }

    /// The end of the value that starts at `p`.
    fn value_end(text: &[u8], p: usize) -> Option<usize> {
        match *text.get(p)? {
            b'"' => string_end(text, p),
            b'{' | b'[' => nested_end(text, p),
            _ => {
                // A number, `true`, `false` or `null`: up to a delimiter.
                let len = text[p..]
                    .iter()
                    .position(|b| matches!(b, b',' | b'}' | b']' | b' ' | b'\n' | b'\r' | b'\t'))
                    .unwrap_or(text.len() - p);
                (len > 0).then_some(p + len)
            }
        }
    }

    /// Told of each member of an object: its key (undecoded) and where its
    /// value lies; `None` stops the reading.
    pub type Member<'a> = dyn FnMut(&[u8], Range<usize>) -> Option<()> + 'a;

    /// Goes through the object that opens at `start`, handing `member`
    /// each of its own keys (undecoded) and where its value lies; returns
    /// the object's end. `None` when the text is not laid out as an object
    /// (or `member` says so), and for a key with an escape, which may spell
    /// any name: such a file is left to serde_json.
    pub fn object(text: &[u8], start: usize, member: &mut Member<'_>) -> Option<usize> {
        if text.get(start) != Some(&b'{') {
            return None;
        }
        let mut p = ws(text, start + 1);
        if text.get(p) == Some(&b'}') {
            return Some(p + 1);
        }
        loop {
            if text.get(p) != Some(&b'"') {
                return None;
            }
            let key_end = string_end(text, p)?;
            let key = &text[p + 1..key_end - 1];
            if memchr::memchr(b'\\', key).is_some() {
                return None;
            }
            p = ws(text, key_end);
            if text.get(p) != Some(&b':') {
                return None;
            }
            p = ws(text, p + 1);
            let end = value_end(text, p)?;
            member(key, p..end)?;
            p = ws(text, end);
            match text.get(p) {
                Some(b',') => p = ws(text, p + 1),
                Some(b'}') => return Some(p + 1),
                _ => return None,
            }
        }
    }

    /// The end of the item that opens at `start`, and the string under its
    /// own key `id_field`: the last if repeated, none if that one is not a
    /// string (as a parse reads it).
    fn item(text: &[u8], start: usize, id_field: &[u8]) -> Option<(usize, Option<String>)> {
        let mut id = None;
        let end = object(text, start, &mut |k, v| {
            if k == id_field {
                id = if text[v.start] == b'"' {
                    string(text, v)
                } else {
                    None
                };
            }
            Some(())
        })?;
        Some((end, id))
    }

    /// The items of `{"<entity>": [item, ...]}`, each an object; `None` for
    /// any other top level.
    pub fn scan(text: &[u8], entity: &str, id_field: &str) -> Option<Vec<RawItem>> {
        let mut p = ws(text, 0);
        let key = format!("\"{entity}\"");
        if text.get(p) != Some(&b'{') {
            return None;
        }
        p = ws(text, p + 1);
        if !text[p..].starts_with(key.as_bytes()) {
            return None;
        }
        p = ws(text, p + key.len());
        if text.get(p) != Some(&b':') {
            return None;
        }
        p = ws(text, p + 1);
        if text.get(p) != Some(&b'[') {
            return None;
        }
        p = ws(text, p + 1);
        let mut items = Vec::new();
        if text.get(p) == Some(&b']') {
            p += 1;
        } else {
            loop {
                let (end, id) = item(text, p, id_field.as_bytes())?;
                items.push(RawItem {
                    span: p..end,
                    id,
                    digest: None,
                });
                p = ws(text, end);
                match text.get(p) {
                    Some(b',') => p = ws(text, p + 1),
                    Some(b']') => {
                        p += 1;
                        break;
                    }
                    _ => return None,
                }
            }
        }
        p = ws(text, p);
        if text.get(p) != Some(&b'}') {
            return None;
        }
        (ws(text, p + 1) == text.len()).then_some(items)
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
mod quick_scan_tests {
    use super::*;
    use proptest::prelude::*;

    /// A JSON value as text, built so that objects may repeat a key and
    /// strings hold what makes scanning hard: quotes, backslashes, braces,
    /// brackets, commas, escapes and other scripts.
    #[derive(Debug, Clone)]
    enum J {
        Lit(&'static str),
        Str(String),
        Arr(Vec<J>),
        Obj(Vec<(String, J)>),
    }

    fn quoted(s: &str) -> String {
        serde_json::to_string(s).unwrap()
    }

    fn render(j: &J, pretty: bool, depth: usize, out: &mut String) {
        let nl = |out: &mut String, d: usize| {
            if pretty {
                out.push('\n');
                out.push_str(&"  ".repeat(d));
            }
        };
        match j {
            J::Lit(l) => out.push_str(l),
            J::Str(s) => out.push_str(&quoted(s)),
            J::Arr(a) => {
                out.push('[');
                for (i, v) in a.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    nl(out, depth + 1);
                    render(v, pretty, depth + 1, out);
                }
                out.push(']');
            }
            J::Obj(o) => {
                out.push('{');
                for (i, (k, v)) in o.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    nl(out, depth + 1);
                    out.push_str(&quoted(k));
                    out.push_str(if pretty { ": " } else { ":" });
                    render(v, pretty, depth + 1, out);
                }
                nl(out, depth);
                out.push('}');
            }
        }
    }

    fn value() -> impl Strategy<Value = J> {
        let leaf = prop_oneof![
            Just(J::Lit("null")),
            Just(J::Lit("true")),
            Just(J::Lit("-1.5e3")),
            Just(J::Lit("42")),
            "[a-z\"\\\\{}\\[\\],:é☃\n\t\u{1}]{0,12}".prop_map(J::Str),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(J::Arr),
                prop::collection::vec((key(), inner), 0..4).prop_map(J::Obj),
            ]
        })
    }

    fn key() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("id".to_string()),
            Just("name".to_string()),
            Just("i\"d".to_string()),
            "[a-z]{1,3}",
        ]
    }

    fn item() -> impl Strategy<Value = J> {
        prop::collection::vec((key(), value()), 0..6).prop_map(J::Obj)
    }

    /// `{"contacts": [items]}`, compact or pretty, perhaps with another
    /// top-level key first or last.
    fn file(items: &[J], pretty: bool, other: Option<bool>) -> String {
        let mut out = String::from("{");
        if other == Some(true) {
            out.push_str("\"version\": 2, ");
        }
        out.push_str("\"contacts\": [");
        for (i, it) in items.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            render(it, pretty, 1, &mut out);
        }
        out.push(']');
        if other == Some(false) {
            out.push_str(", \"meta\": {}");
        }
        out.push_str("}\n");
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        /// On every file it takes, the quick scan finds what serde_json's
        /// does; it takes every file of the entity key alone whose items'
        /// own keys are unescaped.
        #[test]
        fn the_quick_scan_agrees_with_serde_json(
            items in prop::collection::vec(item(), 0..6),
            pretty: bool,
            other in prop::option::of(any::<bool>()),
        ) {
            let text = file(&items, pretty, other);
            let slow = serde_scan(text.as_bytes(), "contacts", "id");
            prop_assert!(slow.is_some(), "a valid entity file: {}", text);
            let quick = fast::scan(text.as_bytes(), "contacts", "id");
            let escaped_key = items.iter().any(|i| match i {
                J::Obj(o) => o.iter().any(|(k, _)| k.contains('"')),
                _ => false,
            });
            if let Some(q) = &quick {
                let (items, rest) = slow.unwrap();
                prop_assert_eq!(q, &items);
                prop_assert!(rest.is_empty());
            } else {
                prop_assert!(other.is_some() || escaped_key, "declined: {}", text);
            }
        }

        /// Broken text is never taken as sound: when the quick scan takes a
        /// file and each item it found parses on its own, serde_json takes
        /// the file too, with the same items.
        #[test]
        fn the_quick_scan_takes_a_broken_file_only_with_a_broken_item(
            items in prop::collection::vec(item(), 1..4),
            pretty: bool,
            cut in any::<prop::sample::Index>(),
            byte in prop::sample::select(b"{}[]\",:\\ xa\n".to_vec()),
            replace: bool,
        ) {
            let mut text = file(&items, pretty, None).into_bytes();
            let at = cut.index(text.len());
            if replace {
                text[at] = byte;
            } else {
                text.insert(at, byte);
            }
            if let Some(q) = fast::scan(&text, "contacts", "id") {
                let all_parse = q.iter().all(|it| {
                    matches!(
                        crate::strict::from_slice(&text[it.span.clone()], &Seg::Root),
                        Ok(Value::Object(_))
                    )
                });
                if all_parse {
                    let slow = serde_scan(&text, "contacts", "id");
                    prop_assert_eq!(slow.map(|(i, _)| i), Some(q));
                }
            }
        }
    }

    /// The id is the item's own `id`, the last one if repeated, and none
    /// when that last one is not a string, as serde_json reads it.
    #[test]
    fn the_quick_scan_reads_ids_as_a_parse_does() {
        let items = [
            r#"{"id": "a"}"#,
            r#"{"id": "a", "id": 7}"#,
            r#"{"id": "a", "id": null, "x": 1}"#,
            r#"{"id": "a", "id": {"id": "b"}}"#,
            r#"{"id": "a", "id": ["b"], "x": "c"}"#,
            r#"{"id": 7, "id": "b"}"#,
            r#"{"n": {"id": "inner"}, "m": ["id", "x"]}"#,
            r#"{"id": "\u00e9\"q\\"}"#,
            r#"{"x": "id", "id": "b"}"#,
            r#"{"id":true}"#,
        ];
        for it in items {
            let text = format!("{{\"contacts\": [{it}]}}");
            let quick = fast::scan(text.as_bytes(), "contacts", "id").expect(it);
            let slow = serde_scan(text.as_bytes(), "contacts", "id").unwrap().0;
            assert_eq!(quick, slow, "{it}");
        }
    }

    /// A broken item that the quick scan passes over is refused when it is
    /// parsed, named by its line and column in the file.
    #[test]
    fn a_broken_item_is_named_by_its_place_in_the_file() {
        let text = b"{\n  \"contacts\": [\n    {\"id\": \"a\"},\n    {\"id\": \"b\", \"n\": tru}\n  ]\n}\n";
        let file = scan(text.to_vec().into(), "contacts", "id").unwrap();
        let ids: Vec<_> = file.items.iter().map(|i| i.id.clone()).collect();
        assert_eq!(ids, [Some("a".into()), Some("b".into())]);
        let e = file.parse(Path::new("c.json"), "contacts", 1).unwrap_err();
        assert_eq!(e.code, Code::DataFormatInvalid);
        assert!(
            e.message
                .starts_with("`c.json`: item 1 (id `b`) is not valid JSON at line 4, column 25"),
            "{}",
            e.message
        );
    }
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
