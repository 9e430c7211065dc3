//! JSON text to `serde_json` values, refusing an object that holds the same
//! key twice.
//!
//! serde_json keeps the last of two equal keys and drops the first without a
//! word; a sync would then rewrite the file without it (data loss). This is
//! serde_json's own `Value` visitor with one check added, so it parses at the
//! same speed; no crate offers the check. The path of each value is kept as a
//! chain of borrowed segments on the stack, and written out only for the
//! error.

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::cell::RefCell;
use std::fmt;
use std::path::Path;
use std::str::FromStr;

/// serde_json's (private) marker key of a number held as text
/// (`arbitrary_precision`).
const NUMBER_TOKEN: &str = "$serde_json::private::Number";

/// Where a value is: `$`, `$.contacts`, `$.contacts[3]`.
#[derive(Clone, Copy)]
pub enum Seg<'a> {
    Root,
    Key(&'a Seg<'a>, &'a str),
    Index(&'a Seg<'a>, usize),
}

impl Seg<'_> {
    /// The JSON path, as the rest of the host writes them.
    pub fn path(&self) -> String {
        match self {
            Seg::Root => "$".into(),
            Seg::Key(p, k) => {
                let mut out = p.path();
                push_key(&mut out, k);
                out
            }
            Seg::Index(p, i) => format!("{}[{i}]", p.path()),
        }
    }

    /// The index of the item this path lies in, for `$.<entity>[i]...`.
    fn item_index(&self) -> Option<usize> {
        match self {
            Seg::Root => None,
            Seg::Key(p, _) => p.item_index(),
            Seg::Index(Seg::Key(Seg::Root, _), i) => Some(*i),
            Seg::Index(p, _) => p.item_index(),
        }
    }
}

/// `/a/0/b` → `$.a[0].b`.
pub fn json_path(pointer: &str) -> String {
    let mut out = String::from("$");
    for seg in pointer.split('/').skip(1) {
        let seg = seg.replace("~1", "/").replace("~0", "~");
        if !seg.is_empty() && seg.chars().all(|c| c.is_ascii_digit()) {
            out.push_str(&format!("[{seg}]"));
        } else {
            push_key(&mut out, &seg);
        }
    }
    out
}

/// Appends the object key `key` to the JSON path `out`: `.key` when it is
/// letters, digits and `_`, else `["key"]` (the host's one rule, also for
/// [`json_path`]).
pub fn push_key(out: &mut String, key: &str) {
    if !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        out.push('.');
        out.push_str(key);
    } else {
        out.push_str(&format!("[{}]", Value::String(key.to_string())));
    }
}

/// A key found twice: the object's path and the key.
#[derive(Debug, Clone, PartialEq)]
pub struct Duplicate {
    pub path: String,
    pub key: String,
    /// For a whole entity file: the index of the item it is in.
    pub item: Option<usize>,
    /// Where the second one is (1-based), as serde_json counts.
    pub line: usize,
    pub column: usize,
}

/// What went wrong reading text strictly.
#[derive(Debug)]
pub enum Fault {
    Duplicate(Duplicate),
    Json(serde_json::Error),
}

/// Parses `text` as one JSON value whose objects have no repeated key;
/// `at` is the path of the value (for an item read alone, its path in its
/// file).
pub fn from_slice(text: &[u8], at: &Seg<'_>) -> Result<Value, Fault> {
    parse(serde_json::Deserializer::from_slice(text), at)
}

/// As [`from_slice`], for text already known to be UTF-8 (what a plugin
/// returned), which is then not checked again.
pub fn from_str(text: &str, at: &Seg<'_>) -> Result<Value, Fault> {
    parse(serde_json::Deserializer::from_str(text), at)
}

fn parse<'de, R: serde_json::de::Read<'de>>(
    mut de: serde_json::Deserializer<R>,
    at: &Seg<'_>,
) -> Result<Value, Fault> {
    let found = RefCell::new(None);
    let parsed = ValueSeed { found: &found, at }
        .deserialize(&mut de)
        .and_then(|v| de.end().map(|()| v));
    match parsed {
        Ok(v) => Ok(v),
        Err(e) => Err(match found.into_inner() {
            Some(mut d) => {
                d.line = e.line();
                d.column = e.column();
                Fault::Duplicate(d)
            }
            None => Fault::Json(e),
        }),
    }
}

struct ValueSeed<'c, 'p> {
    found: &'c RefCell<Option<Duplicate>>,
    at: &'p Seg<'p>,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_, '_> {
    type Value = Value;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_, '_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        loop {
            let at = Seg::Index(self.at, out.len());
            let seed = ValueSeed {
                found: self.found,
                at: &at,
            };
            match seq.next_element_seed(seed)? {
                Some(v) => out.push(v),
                None => return Ok(Value::Array(out)),
            }
        }
    }

    /// The entries are gathered first and the map is made at its final
    /// size: built entry by entry, a typical item's map was reallocated and
    /// rehashed three times and kept room for up to twice its entries (a
    /// sync at the limits holds some 100,000 of them). Up to
    /// [`LINEAR_KEYS`] keys, a repeat is found by comparing with each
    /// earlier one; past that, in the map.
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut small: Vec<(String, Value)> = Vec::with_capacity(16);
        let mut big: Option<Map<String, Value>> = None;
        let mut first = true;
        while let Some(key) = map.next_key::<String>()? {
            if first && key == NUMBER_TOKEN {
                let text: String = map.next_value()?;
                return Number::from_str(&text)
                    .map(Value::Number)
                    .map_err(de::Error::custom);
            }
            first = false;
            let repeated = match &big {
                Some(m) => m.contains_key(&key),
                None => small.iter().any(|(k, _)| *k == key),
            };
            if repeated {
                *self.found.borrow_mut() = Some(Duplicate {
                    path: self.at.path(),
                    item: self.at.item_index(),
                    key: key.clone(),
                    line: 0,
                    column: 0,
                });
                return Err(de::Error::custom(format!("duplicate key `{key}`")));
            }
            let at = Seg::Key(self.at, &key);
            let v = map.next_value_seed(ValueSeed {
                found: self.found,
                at: &at,
            })?;
            match &mut big {
                Some(m) => {
                    m.insert(key, v);
                }
                None => {
                    small.push((key, v));
                    if small.len() == LINEAR_KEYS {
                        big = Some(small.drain(..).collect());
                    }
                }
            }
        }
        Ok(Value::Object(big.unwrap_or_else(|| {
            let mut m = Map::with_capacity(small.len());
            m.extend(small);
            m
        })))
    }
}

/// Up to this many keys an object's repeated key is looked for by
/// comparing; quicker than hashing for items' few fields.
const LINEAR_KEYS: usize = 32;

/// The error for a key found twice in one object of an entity file.
pub fn duplicate_key(path: &Path, d: &Duplicate, id: Option<&str>) -> crate::error::Error {
    let whose = match (d.item, id) {
        (Some(i), Some(id)) => format!("item {i} (id `{id}`)"),
        (Some(i), None) => format!("item {i}"),
        (None, _) => "an object".to_string(),
    };
    let mut e = crate::error::Error::new(
        crate::error::Code::DataFormatInvalid,
        format!(
            "`{}`: {whose} has the key `{}` twice, at {} (line {}, column {}); a reader keeps \
             only one of them and the other would be lost. Remove or rename one and run the \
             sync again",
            path.display(),
            d.key,
            d.path,
            d.line,
            d.column
        ),
    )
    .with("file", path.display().to_string())
    .with("path", d.path.as_str())
    .with("key", d.key.as_str())
    .with("line", d.line);
    if let Some(i) = d.item {
        e = e.with("index", i);
    }
    if let Some(id) = id {
        e = e.with("id", id);
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_serde_json_values() {
        let text = br#"{"a": [1, -2, 3.5, 1E+2, 123456789012345678901234567890, "x\u00e9", true, null, {}],
            "b": {"c": {"d": []}}}"#;
        let strict = from_slice(text, &Seg::Root).unwrap();
        let loose: Value = serde_json::from_slice(text).unwrap();
        assert_eq!(strict, loose);
        assert_eq!(
            serde_json::to_string(&strict["a"][4]).unwrap(),
            "123456789012345678901234567890"
        );
        // Every digit kept; serde_json writes the exponent as `e+N`.
        assert_eq!(serde_json::to_string(&strict["a"][3]).unwrap(), "1e+2");
    }

    #[test]
    fn a_repeated_key_is_named_with_its_path_and_line() {
        let text =
            b"{\"contacts\": [{\"id\": \"a\"},\n {\"id\": \"b\",\n  \"x\": {\"k\": 1, \"k\": 2}}]}";
        let Err(Fault::Duplicate(d)) = from_slice(text, &Seg::Root) else {
            panic!("not refused");
        };
        assert_eq!(d.path, "$.contacts[1].x");
        assert_eq!(d.key, "k");
        assert_eq!(d.item, Some(1));
        assert_eq!(d.line, 3);
        // The same key in two objects is no repeat.
        assert!(from_slice(br#"[{"k": 1}, {"k": 2, "j": {"k": 3}}]"#, &Seg::Root).is_ok());
        // An item read alone, at its place in its file.
        let file = Seg::Key(&Seg::Root, "contacts");
        let item = Seg::Index(&file, 4);
        let Err(Fault::Duplicate(d)) = from_slice(br#"{"id": "a", "id": "b"}"#, &item) else {
            panic!("not refused");
        };
        assert_eq!((d.path.as_str(), d.item), ("$.contacts[4]", Some(4)));
    }

    #[test]
    fn objects_of_many_keys_keep_their_order_and_a_repeat_is_found_either_way() {
        // Below and past the number of keys compared one by one.
        for n in [
            1,
            LINEAR_KEYS - 1,
            LINEAR_KEYS,
            LINEAR_KEYS + 1,
            3 * LINEAR_KEYS,
        ] {
            let keys: Vec<String> = (0..n).map(|i| format!("k{}", (i * 7919) % 1000)).collect();
            let body: Vec<String> = keys.iter().map(|k| format!("\"{k}\": 1")).collect();
            let text = format!("{{{}}}", body.join(", "));
            let strict = from_slice(text.as_bytes(), &Seg::Root).unwrap();
            let loose: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(strict, loose, "{n} keys");
            let order: Vec<&String> = strict.as_object().unwrap().keys().collect();
            assert_eq!(
                order,
                keys.iter().collect::<Vec<_>>(),
                "{n} keys in file order"
            );
            // The first key again, last: a repeat whichever way it is sought.
            let twice = format!("{{{}, \"{}\": 2}}", body.join(", "), keys[0]);
            let Err(Fault::Duplicate(d)) = from_str(&twice, &Seg::Root) else {
                panic!("a repeat after {n} keys not refused");
            };
            assert_eq!(d.key, keys[0]);
        }
    }

    #[test]
    fn paths_name_keys_as_the_rest_of_the_host_does() {
        let file = Seg::Key(&Seg::Root, "contacts");
        let item = Seg::Index(&file, 2);
        let odd = Seg::Key(&item, "x-custom");
        assert_eq!(odd.path(), "$.contacts[2][\"x-custom\"]");
        assert_eq!(
            odd.path(),
            json_path("/contacts/2/x-custom"),
            "the same rule as schema faults' paths"
        );
    }

    #[test]
    fn broken_text_is_a_json_fault() {
        assert!(matches!(
            from_slice(b"{\"a\": }", &Seg::Root),
            Err(Fault::Json(_))
        ));
        assert!(matches!(
            from_slice(b"{} x", &Seg::Root),
            Err(Fault::Json(_))
        ));
    }
}
