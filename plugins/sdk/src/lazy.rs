//! Items parsed only as far as mapping and a policy look into them.
//!
//! A plugin whose hooks are the SDK's defaults touches few of an item's
//! values: the fields it declares as emails, phones, addresses and
//! timestamps, the fields a policy's rules test, and the keys it renames,
//! strips or keeps. Parsing every value into a `serde_json::Value` tree, and
//! encoding the tree again for the host, was most of a plugin's work (60% of
//! `cross_batch` in a profile of the natively compiled plugins). A [`Lazy`]
//! item parses the keys of the top-level object and keeps each value as the
//! JSON text it arrived in ([`RawValue`], borrowed from the input), until
//! something reads or changes it; encoding copies the untouched values'
//! text. Natively, parsing and encoding an item this way took a quarter of
//! the time.
//!
//! It behaves as [`Item`] does where the SDK uses it: fields keep their
//! order, inserting a key that is there replaces its value in place (as an
//! `IndexMap` does, also when parsing an object with a key twice), and it
//! implements [`Fields`], so that the policy applied is `cds-policy`'s own.
//! `tests::lazy_agrees_with_eager` holds the fast path to the other.

use cds_json::Key;
use cds_policy::Fields;
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;

/// One field's value: still the text it arrived as, or parsed (and changed).
enum Field<'a> {
    Raw(&'a RawValue),
    Parsed(Value),
}

/// A JSON object whose values are parsed on demand (see the module docs).
pub(crate) struct Lazy<'a> {
    fields: Vec<(Cow<'a, str>, Field<'a>)>,
}

/// More fields than this and an item goes the usual way: keys are found by
/// a linear scan, which is faster than hashing for an item's dozen fields
/// but would be quadratic for thousands.
const MAX_FIELDS: usize = 64;

impl<'a> Lazy<'a> {
    /// `s` as a lazily parsed object; `None` when it is not a JSON object
    /// (or too wide for this form), for the caller to take the usual path,
    /// which says precisely what is wrong.
    pub fn parse(s: &'a str) -> Option<Lazy<'a>> {
        serde_json::from_str::<Lazy<'a>>(s).ok()
    }

    fn position(&self, key: &str) -> Option<usize> {
        self.fields.iter().position(|(k, _)| k == key)
    }

    /// Sets `key` to `field` as `IndexMap::insert` does: in place when the
    /// key is there, else last.
    fn insert(&mut self, key: Cow<'a, str>, field: Field<'a>) {
        match self.position(&key) {
            Some(i) => self.fields[i].1 = field,
            None => self.fields.push((key, field)),
        }
    }

    /// Whether [`Lazy::rename`] with `table` would change a key (as
    /// `cds_policy::renames_any`).
    pub fn renames_any(&self, table: &[(&str, &str)]) -> bool {
        table
            .iter()
            .any(|(from, to)| from != to && self.position(from).is_some())
    }

    /// Renames keys by `table` (pairs `(from, to)`), keeping order, as
    /// `cds_policy::rename_fields` does (a key renamed onto another one
    /// replaces its value where that one was).
    pub fn rename(&mut self, table: &[(&str, &str)]) {
        if table.is_empty() {
            return;
        }
        let fields = std::mem::take(&mut self.fields);
        for (k, v) in fields {
            let k = match table.iter().find(|(from, _)| *from == k) {
                Some((_, to)) => Cow::Owned((*to).to_string()),
                None => k,
            };
            self.insert(k, v);
        }
    }

    /// Applies `f` to the value of `key`, when there; keeps the result
    /// when `f` says it changed it. Returns what `f` returned.
    pub fn update(
        &mut self,
        key: &str,
        f: &mut dyn FnMut(&mut Value) -> Result<bool, String>,
    ) -> Result<bool, String> {
        let Some(i) = self.position(key) else {
            return Ok(false);
        };
        match &mut self.fields[i].1 {
            Field::Parsed(v) => f(v),
            Field::Raw(raw) => {
                let mut v = parse_raw(raw);
                let changed = f(&mut v)?;
                if changed {
                    self.fields[i].1 = Field::Parsed(v);
                }
                Ok(changed)
            }
        }
    }

    /// The item as compact JSON text: what `cds_json::map_to_string` writes
    /// of the parsed item, for an item the host encoded (values left alone
    /// are copied as they arrived).
    pub fn encode(&self) -> String {
        let raw_len: usize = self
            .fields
            .iter()
            .map(|(k, v)| {
                k.len()
                    + 4
                    + match v {
                        Field::Raw(r) => r.get().len(),
                        Field::Parsed(_) => 16,
                    }
            })
            .sum();
        let mut out = Vec::with_capacity(raw_len + 2);
        out.push(b'{');
        for (i, (k, v)) in self.fields.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            cds_json::write_str(&mut out, k);
            out.push(b':');
            match v {
                Field::Raw(r) => out.extend_from_slice(r.get().as_bytes()),
                Field::Parsed(v) => cds_json::write_compact(&mut out, v),
            }
        }
        out.push(b'}');
        // Only valid UTF-8 was written: keys and raw values are `str`s, and
        // cds_json writes valid UTF-8.
        String::from_utf8(out)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }
}

/// A value's text, parsed. The text was checked as JSON when the item was
/// parsed, so this cannot fail but on a nesting too deep for serde_json,
/// which the host, parsing with the same limit, never sends.
fn parse_raw(raw: &RawValue) -> Value {
    serde_json::from_str(raw.get()).unwrap_or(Value::Null)
}

impl Fields for Lazy<'_> {
    fn value(&self, key: &str) -> Option<Cow<'_, Value>> {
        let i = self.position(key)?;
        Some(match &self.fields[i].1 {
            Field::Raw(raw) => Cow::Owned(parse_raw(raw)),
            Field::Parsed(v) => Cow::Borrowed(v),
        })
    }

    fn len(&self) -> usize {
        self.fields.len()
    }

    fn retain_keys(&mut self, keep: &mut dyn FnMut(&str) -> bool) {
        self.fields.retain(|(k, _)| keep(k));
    }

    fn set(&mut self, key: &str, value: &Value) {
        self.insert(Cow::Owned(key.to_string()), Field::Parsed(value.clone()));
    }

    fn remove(&mut self, key: &str) -> bool {
        match self.position(key) {
            Some(i) => {
                self.fields.remove(i);
                true
            }
            None => false,
        }
    }
}

impl<'de> Deserialize<'de> for Lazy<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ObjectVisitor;
        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = Lazy<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Lazy<'de>, A::Error> {
                let mut item = Lazy {
                    fields: Vec::with_capacity(16),
                };
                while let Some((k, v)) = map.next_entry::<Key<'de>, &'de RawValue>()? {
                    if item.fields.len() == MAX_FIELDS {
                        return Err(serde::de::Error::custom("too many fields"));
                    }
                    item.insert(k.0, Field::Raw(v));
                }
                Ok(item)
            }
        }
        d.deserialize_map(ObjectVisitor)
    }
}
