//! JSON text exactly as `serde_json` writes it, compact (`to_vec`) and pretty
//! with two-space indentation (`to_vec_pretty`), for `serde_json` values, only
//! faster.
//!
//! Items cross the plugin boundary as JSON text and every data file is JSON
//! text, so a sync serialises each item several times (for the plugin, in the
//! plugin, into both domain files and the base). `serde_json` escapes strings
//! one byte at a time through a table, and at the contract's limits (~100 MB
//! of mostly long text fields) that loop was the largest single item of a
//! profile. No crate writes `serde_json::Value` byte-identically to
//! `serde_json` with a faster scan, hence this module: it looks at eight bytes
//! at a time for the three kinds of byte that need escaping (`"`, `\` and
//! control characters) and copies the runs between them whole. Numbers are
//! written by `serde_json` itself. The property tests check that the output is
//! byte-for-byte `serde_json`'s for arbitrary values.
//!
//! Shared by the host and the guest SDK, so it uses nothing but `core`
//! arithmetic (no SIMD): the same code runs in WebAssembly.

use serde_json::{Map, Value};
use std::borrow::Cow;
use std::fmt;

/// An object's key as serde reads it from JSON text: borrowed from the text
/// unless it had to be unescaped. For the host's and the SDK's readers that
/// keep values as text (`raw.rs`, the SDK's lazy items).
pub struct Key<'a>(pub Cow<'a, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> serde::de::Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s.to_string())))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

/// `serde_json::to_vec(v)`.
pub fn to_vec(v: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    write_value(&mut out, v, None);
    out
}

/// `serde_json::to_string(m)` of an object.
pub fn map_to_string(m: &Map<String, Value>) -> String {
    let mut out = Vec::with_capacity(128);
    write_map(&mut out, m, None);
    // Only valid UTF-8 is ever written: the input's strings and ASCII.
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// [`map_to_string`] of `m` without the keys in `omit`, with how many of
/// them `m` held (the host leaves out of what it sends a plugin the fields
/// the policy strips anyway).
pub fn map_to_string_omitting(m: &Map<String, Value>, omit: &[&str]) -> (String, usize) {
    if omit.is_empty() {
        return (map_to_string(m), 0);
    }
    let mut out = Vec::with_capacity(128);
    let mut omitted = 0;
    out.push(b'{');
    for (k, v) in m {
        if omit.contains(&k.as_str()) {
            omitted += 1;
            continue;
        }
        if out.len() > 1 {
            out.push(b',');
        }
        write_str(&mut out, k);
        out.push(b':');
        write_value(&mut out, v, None);
    }
    out.push(b'}');
    let text = String::from_utf8(out)
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
    (text, omitted)
}

/// Appends `v` as `serde_json::to_writer` writes it.
pub fn write_compact(out: &mut Vec<u8>, v: &Value) {
    write_value(out, v, None);
}

/// Appends the object `m` as `serde_json::to_writer` writes it.
pub fn write_map_compact(out: &mut Vec<u8>, m: &Map<String, Value>) {
    write_map(out, m, None);
}

/// Appends `v` as `serde_json::to_writer_pretty` writes it when `v` sits
/// `depth` levels deep in the document (0: the top level): nested lines are
/// indented by two spaces more than that.
pub fn write_pretty(out: &mut Vec<u8>, v: &Value, depth: usize) {
    write_value(out, v, Some(depth));
}

/// [`write_pretty`] of an object.
pub fn write_map_pretty(out: &mut Vec<u8>, m: &Map<String, Value>, depth: usize) {
    write_map(out, m, Some(depth));
}

/// `serde_json::to_vec_pretty(v)`.
pub fn to_vec_pretty(v: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    write_value(&mut out, v, Some(0));
    out
}

/// A newline and the indentation of `depth` (pretty), or nothing (compact).
#[inline]
fn newline(out: &mut Vec<u8>, depth: Option<usize>) {
    if let Some(d) = depth {
        out.push(b'\n');
        for _ in 0..d {
            out.extend_from_slice(b"  ");
        }
    }
}

fn write_value(out: &mut Vec<u8>, v: &Value, depth: Option<usize>) {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => {
            // serde_json's own number formatting (itoa, and its float
            // printer), so that numbers can never differ. Writing into a Vec
            // cannot fail.
            let _ = serde::Serialize::serialize(n, &mut serde_json::Serializer::new(&mut *out));
        }
        Value::String(s) => write_str(out, s),
        Value::Array(a) => {
            if a.is_empty() {
                out.extend_from_slice(b"[]");
                return;
            }
            out.push(b'[');
            let inner = depth.map(|d| d + 1);
            for (i, e) in a.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                newline(out, inner);
                write_value(out, e, inner);
            }
            newline(out, depth);
            out.push(b']');
        }
        Value::Object(m) => write_map(out, m, depth),
    }
}

fn write_map(out: &mut Vec<u8>, m: &Map<String, Value>, depth: Option<usize>) {
    if m.is_empty() {
        out.extend_from_slice(b"{}");
        return;
    }
    out.push(b'{');
    let inner = depth.map(|d| d + 1);
    for (i, (k, v)) in m.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        newline(out, inner);
        write_str(out, k);
        out.extend_from_slice(if depth.is_some() { b": " } else { b":" });
        write_value(out, v, inner);
    }
    newline(out, depth);
    out.push(b'}');
}

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// The bytes of `w` that are `"`, `\` or below 0x20, as the high bit of
/// each: zero when there are none. Each test is the classic "some byte is
/// zero / less than n" bit trick; a flag above a true one may be spurious
/// (a borrow), but the lowest flag always marks a true one, so it locates
/// the first such byte. Bytes of 0x80 and above (UTF-8) never match.
#[inline]
fn escapes(w: u64) -> u64 {
    let quote = w ^ (LO * b'"' as u64);
    let backslash = w ^ (LO * b'\\' as u64);
    let has_zero = |x: u64| x.wrapping_sub(LO) & !x & HI;
    let below_space = w.wrapping_sub(LO * 0x20) & !w & HI;
    has_zero(quote) | has_zero(backslash) | below_space
}

/// The index of the first byte of `bytes` at or after `from` that needs
/// escaping, testing eight bytes at a time (the last few padded with a
/// byte that needs none).
#[inline]
fn next_escape(bytes: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while i + 8 <= bytes.len() {
        let mut word = [0u8; 8];
        word.copy_from_slice(&bytes[i..i + 8]);
        let m = escapes(u64::from_le_bytes(word));
        if m != 0 {
            return Some(i + (m.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    let rest = &bytes[i..];
    if rest.is_empty() {
        return None;
    }
    let mut word = [b'a'; 8];
    word[..rest.len()].copy_from_slice(rest);
    let m = escapes(u64::from_le_bytes(word));
    (m != 0).then(|| i + (m.trailing_zeros() / 8) as usize)
}

/// Appends `s` as a JSON string, escaped as serde_json escapes it.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut start = 0; // first byte not yet copied
    while let Some(i) = next_escape(bytes, start) {
        out.extend_from_slice(&bytes[start..i]);
        let b = bytes[i];
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0C => out.extend_from_slice(b"\\f"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[(b >> 4) as usize]);
                out.push(HEX[(b & 0xF) as usize]);
            }
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn string() -> impl Strategy<Value = String> {
        // Long runs (the fast path), every escape, control bytes, UTF-8.
        prop_oneof![
            "[a-z \"\\\\\u{0}-\u{1f}\u{7f}é€😀]{0,40}",
            "[a-z]{0,30}",
            ".{0,20}",
        ]
    }

    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
            string().prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::vec((string(), inner), 0..6)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn compact_is_serde_json(v in value()) {
            prop_assert_eq!(to_vec(&v), serde_json::to_vec(&v).unwrap());
        }

        #[test]
        fn pretty_is_serde_json(v in value()) {
            prop_assert_eq!(to_vec_pretty(&v), serde_json::to_vec_pretty(&v).unwrap());
        }

        /// Written at depth 2, a value reads as it does inside a pretty
        /// document two levels down (as an item of an entity file).
        #[test]
        fn pretty_at_depth_is_serde_json_nested(v in value()) {
            let doc = serde_json::json!({"items": [v.clone()]});
            let whole = serde_json::to_vec_pretty(&doc).unwrap();
            let mut mine = b"{\n  \"items\": [\n    ".to_vec();
            write_pretty(&mut mine, &v, 2);
            mine.extend_from_slice(b"\n  ]\n}");
            prop_assert_eq!(mine, whole);
        }

        /// Leaving keys out is encoding the object without them.
        #[test]
        fn omitting_is_serde_json_of_the_rest(
            kv in prop::collection::vec(("[a-d]{1,2}", value()), 0..8),
            omit in prop::collection::vec("[a-d]{1,2}", 0..3),
        ) {
            let m: Map<String, Value> = kv.into_iter().collect();
            let omit: Vec<&str> = omit.iter().map(String::as_str).collect();
            let rest: Map<String, Value> = m
                .iter()
                .filter(|(k, _)| !omit.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let (text, n) = map_to_string_omitting(&m, &omit);
            prop_assert_eq!(text, serde_json::to_string(&rest).unwrap());
            prop_assert_eq!(n, m.len() - rest.len());
        }

        #[test]
        fn strings_are_serde_json(s in string()) {
            let mut mine = Vec::new();
            write_str(&mut mine, &s);
            prop_assert_eq!(mine, serde_json::to_vec(&s).unwrap());
        }
    }

    /// Every byte value at every position of strings of every length up to
    /// two words and a bit (whole words and padded tails), alone and with a
    /// second escape after it, so that the eight-byte test cannot miss or
    /// misplace one.
    #[test]
    fn every_byte_at_every_offset() {
        for len in 1..=17 {
            for b in 0u8..0x80 {
                for at in 0..len {
                    for second in [None, Some(b'"'), Some(0x01)] {
                        let mut s = "x".repeat(len).into_bytes();
                        s[at] = b;
                        if let Some(c) = second
                            && at + 1 < len
                        {
                            s[len - 1] = c;
                        }
                        let s = String::from_utf8(s).unwrap();
                        let mut mine = Vec::new();
                        write_str(&mut mine, &s);
                        assert_eq!(
                            mine,
                            serde_json::to_vec(&s).unwrap(),
                            "byte {b:#x} at {at} of {len}, then {second:?}"
                        );
                    }
                }
            }
        }
    }
}
