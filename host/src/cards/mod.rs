//! vCard and iCalendar in and out: a `.vcf` file's cards as `contacts`
//! items, an `.ics` file's events and to-dos as `calendar` and `tasks`
//! items, and back.
//!
//! An imported item holds its contract fields (the table in docs/cards.md)
//! and, in one extra field (`x-vcard` or `x-ical`), its component's content
//! lines exactly as the file wrote them: every property and parameter,
//! mapped or not (X- properties, TZIDs, RRULEs, alarms, photos, groups,
//! vendor extensions). Export starts from those lines and changes only the
//! properties whose field now differs from what the import read from them,
//! so import then export gives back the same properties; an item with no
//! lines (made in a JSON domain) is written from its fields. Fields no
//! property holds (`category`, `syncedAt`, ...) travel in one
//! `X-CDS-FIELDS` property as JSON.
//!
//! Architecture invariant: this module does no I/O; it turns text into
//! items and items into text (the CLI reads and writes the files, and the
//! sync pipeline does the rest).

pub mod ical;
pub mod lines;
pub mod vcard;

use crate::error::{Code, Error, Result};
use lines::{Component, Prop};
use serde_json::{Map, Value};
use std::path::Path;

/// A JSON object: one item.
pub type Item = Map<String, Value>;

/// The formats, by the entity types they carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// vCard (RFC 6350; 3.0 and 2.1 read too): contacts.
    Vcard,
    /// iCalendar (RFC 5545): calendar events and tasks.
    Icalendar,
}

impl Format {
    /// The format a file's name or first line says.
    pub fn of(path: &Path, text: &str) -> Option<Format> {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
        {
            Some(e) if e == "vcf" || e == "vcard" => return Some(Format::Vcard),
            Some(e) if e == "ics" || e == "ical" || e == "ifb" => return Some(Format::Icalendar),
            _ => {}
        }
        let head = text.trim_start_matches('\u{feff}').trim_start();
        let head = head.get(..16).unwrap_or(head).to_ascii_uppercase();
        if head.starts_with("BEGIN:VCARD") {
            Some(Format::Vcard)
        } else if head.starts_with("BEGIN:VCALENDAR") {
            Some(Format::Icalendar)
        } else {
            None
        }
    }

    /// The format that carries `entity`.
    pub fn for_entity(entity: &str) -> Option<Format> {
        match entity {
            "contacts" => Some(Format::Vcard),
            "calendar" | "tasks" => Some(Format::Icalendar),
            _ => None,
        }
    }
}

/// What an import of one file found: items per entity type.
#[derive(Debug, Default)]
pub struct Imported {
    pub items: Vec<(String, Vec<Item>)>,
    /// Top-level components kept but carried by no item (a file's
    /// VJOURNALs, say): counted, so that the caller can say so.
    pub unmapped: Vec<String>,
}

/// Reads `text` (the file `path`, for messages) as `format`. `fallback_time`
/// is the `lastModified` of items whose file gives none (the file's
/// modification time). A malformed file is `DATA_FORMAT_INVALID` naming the
/// file and line.
pub fn import(path: &Path, text: &str, format: Format, fallback_time: &str) -> Result<Imported> {
    import_as(path, text, format, fallback_time, None)
}

/// [`import`], with `id_fallback` as the id of a component that has no UID
/// (a vdir file's name, which stays the same when another program edits
/// the card) instead of a digest of its lines.
pub fn import_as(
    path: &Path,
    text: &str,
    format: Format,
    fallback_time: &str,
    id_fallback: Option<&str>,
) -> Result<Imported> {
    let top = lines::parse(text).map_err(|m| invalid(path, m.line, &m.what))?;
    let ctx = Ctx {
        path,
        fallback_time,
        id_fallback,
    };
    match format {
        Format::Vcard => vcard::import(&top, &ctx).map(|items| Imported {
            items: vec![("contacts".into(), items)],
            unmapped: Vec::new(),
        }),
        Format::Icalendar => ical::import(&top, &ctx),
    }
}

/// Writes `items` of `entity` as one file of its format.
pub fn export(entity: &str, items: &[Item]) -> Result<String> {
    match Format::for_entity(entity) {
        Some(Format::Vcard) => vcard::export(items),
        Some(Format::Icalendar) => ical::export(entity, items),
        None => Err(Error::invalid(format!(
            "`{entity}` has no vCard or iCalendar form; export contacts as vcard, calendar and \
             tasks as icalendar"
        ))),
    }
}

/// A file's bytes as text: UTF-8, as vCard 4.0 and iCalendar require. Text
/// in another encoding (an old vCard 2.1 export in Windows-1252, say) is
/// refused naming the line, rather than guessed at.
pub fn decode(path: &Path, bytes: Vec<u8>) -> Result<String> {
    String::from_utf8(bytes).map_err(|e| {
        let valid = e.utf8_error().valid_up_to();
        let line = 1 + e.as_bytes()[..valid]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        invalid(
            path,
            line,
            "the file is not UTF-8 text; convert it first (for example `iconv -f WINDOWS-1252 \
             -t UTF-8`)",
        )
    })
}

/// What reading a file's components needs besides them.
pub struct Ctx<'a> {
    pub path: &'a Path,
    pub fallback_time: &'a str,
    /// The id of a component without UID; `None`: a digest of its lines
    /// (see [`digest_id`]).
    pub id_fallback: Option<&'a str>,
}

impl Ctx<'_> {
    /// The id of component `c`, which has no usable UID.
    pub fn missing_id(&self, prefix: &str, c: &Component) -> String {
        match self.id_fallback {
            Some(id) => id.to_string(),
            None => digest_id(prefix, c),
        }
    }
}

/// `DATA_FORMAT_INVALID` naming the file and line.
pub fn invalid(path: &Path, line: usize, what: &str) -> Error {
    Error::new(
        Code::DataFormatInvalid,
        format!("`{}` line {line}: {what}", path.display()),
    )
    .with("file", path.display().to_string())
    .with("line", line)
    .with_help("Fix the file and import it again; nothing was written.")
}

// --- one field's place in a component ------------------------------------

/// How one contract field reads from and writes to a component: `read`
/// gives the value an import takes from it; `write` puts a new value (or,
/// given none, removes it), seeing the whole item (a start time needs its
/// time zone). Export calls `write` only for a field whose value differs
/// from what `read` gives for the component as it is, so every property a
/// field did not change keeps its text.
pub struct FieldMap {
    pub field: &'static str,
    pub read: fn(&Component) -> Option<Value>,
    pub write: fn(&mut Component, Option<&Value>, &Item),
}

/// Applies an item's fields to `c` (see [`FieldMap`]).
pub fn write_fields<'m>(
    c: &mut Component,
    item: &Item,
    maps: impl IntoIterator<Item = &'m FieldMap>,
) {
    for m in maps {
        let now = item.get(m.field).filter(|v| !v.is_null());
        if !equivalent(m.field, (m.read)(c).as_ref(), now) {
            (m.write)(c, now, item);
        }
    }
}

/// Whether two values of `field` differ only in how they are written: an
/// email address by case and spaces, a phone number by its separators, a
/// time by its offset (the plugins normalise these as items cross, and a
/// file's own way of writing them is kept unless the value changed).
fn equivalent(field: &str, a: Option<&Value>, b: Option<&Value>) -> bool {
    use cds_policy::normalize::{normalize_email, normalize_phone};
    let norm = |v: Option<&Value>| -> Option<Value> {
        let f: fn(&str) -> String = match field {
            "email" | "attendees" => normalize_email,
            "phone" => normalize_phone,
            "lastModified" | "start" | "end" | "due" => |s| {
                chrono::DateTime::parse_from_rfc3339(s)
                    .map(|t| t.timestamp_nanos_opt().unwrap_or_default().to_string())
                    .unwrap_or_else(|_| s.to_string())
            },
            _ => return v.cloned(),
        };
        v.map(|v| match v {
            Value::String(s) => Value::String(f(s)),
            Value::Array(a) => Value::Array(
                a.iter()
                    .map(|e| {
                        e.as_str()
                            .map_or_else(|| e.clone(), |s| Value::String(f(s)))
                    })
                    .collect(),
            ),
            other => other.clone(),
        })
    };
    a == b || norm(a) == norm(b)
}

/// What the map of `field` reads from `c` (none when no map has it).
pub fn read_field(maps: &[FieldMap], field: &str, c: &Component) -> Option<Value> {
    maps.iter()
        .find(|m| m.field == field)
        .and_then(|m| (m.read)(c))
}

/// Reads every field of `maps` from `c` into `item`.
pub fn read_fields(c: &Component, item: &mut Item, maps: &[FieldMap]) {
    for m in maps {
        if let Some(v) = (m.read)(c) {
            item.insert(m.field.to_string(), v);
        }
    }
}

/// The first property `name` marked preferred (`PREF=1`, `TYPE=pref`),
/// else the first: the one a single-valued field maps to.
pub fn preferred<'c>(c: &'c Component, name: &str) -> Option<&'c Prop> {
    let mut all = c.props.iter().filter(|p| p.name == name);
    let first = all.clone().next();
    all.find(|p| p.param("PREF") == Some("1") || p.has_param_value("TYPE", "pref"))
        .or(first)
}

/// The index of [`preferred`]'s property.
fn preferred_index(c: &Component, name: &str) -> Option<usize> {
    let chosen = preferred(c, name)?;
    c.props.iter().position(|p| std::ptr::eq(p, chosen))
}

/// Sets the preferred property `name` to `value` (already escaped), with
/// `params` when given (else its own, less any encoding, which a plain
/// UTF-8 value no longer has); appends one where there is none; removes it
/// for `None`.
pub fn set_prop(
    c: &mut Component,
    name: &str,
    params: Option<Vec<(String, String)>>,
    value: Option<String>,
) {
    let at = preferred_index(c, name);
    let Some(value) = value else {
        if let Some(i) = at {
            c.props.remove(i);
        }
        return;
    };
    let (group, old) = match at {
        Some(i) => (c.props[i].group.clone(), c.props[i].params.clone()),
        None => (None, Vec::new()),
    };
    let params: Vec<(String, Vec<String>)> = match params {
        Some(p) => p.into_iter().map(|(n, v)| (n, vec![v])).collect(),
        None => old
            .into_iter()
            .filter(|(n, _)| n != "ENCODING" && n != "CHARSET")
            .collect(),
    };
    let mut raw = String::new();
    if let Some(g) = &group {
        raw.push_str(g);
        raw.push('.');
    }
    raw.push_str(name);
    for (n, values) in &params {
        raw.push(';');
        raw.push_str(n);
        raw.push('=');
        for (i, v) in values.iter().enumerate() {
            if i > 0 {
                raw.push(',');
            }
            if v.contains([':', ';', ',']) {
                raw.push('"');
                raw.push_str(v);
                raw.push('"');
            } else {
                raw.push_str(v);
            }
        }
    }
    raw.push(':');
    raw.push_str(&value);
    let prop = Prop {
        line: 0,
        group,
        name: name.to_string(),
        params,
        value,
        raw,
    };
    match at {
        Some(i) => c.props[i] = prop,
        None => c.props.push(prop),
    }
}

/// A property's value as text: unescaped, quoted-printable decoded.
pub fn text_of(p: &Prop) -> String {
    lines::unescape(&text_of_raw(p))
}

/// A property's value quoted-printable decoded, its escapes kept (for a
/// structured or list value, split before it is unescaped).
pub fn text_of_raw(p: &Prop) -> String {
    if p.param("ENCODING")
        .is_some_and(|e| e.eq_ignore_ascii_case("QUOTED-PRINTABLE"))
    {
        let bytes = quoted_printable(&p.value);
        match p.param("CHARSET").map(str::to_ascii_uppercase).as_deref() {
            Some("ISO-8859-1" | "LATIN1" | "WINDOWS-1252") => {
                bytes.iter().map(|&b| b as char).collect()
            }
            _ => String::from_utf8_lossy(&bytes).into_owned(),
        }
    } else {
        p.value.clone()
    }
}

/// Quoted-printable decoded (vCard 2.1's `ENCODING=QUOTED-PRINTABLE`).
fn quoted_printable(v: &str) -> Vec<u8> {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'='
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            let x = (h * 16 + l) as u8;
            out.push(x);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

/// A text field: the preferred property's text; written escaped.
pub fn read_text(c: &Component, name: &str) -> Option<Value> {
    preferred(c, name)
        .map(text_of)
        .filter(|t| !t.is_empty())
        .map(Value::String)
}

pub fn write_text(c: &mut Component, name: &str, v: Option<&Value>) {
    let value = v.map(|v| match v {
        Value::String(s) => lines::escape(s),
        other => lines::escape(&other.to_string()),
    });
    set_prop(c, name, None, value);
}

/// An id for a component that names none: a digest of its lines, so that
/// importing the same file again gives the same id.
pub fn digest_id(prefix: &str, c: &Component) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(c.lines().join("\n").as_bytes());
    format!("{prefix}-{}", hex::encode(&d[..12]))
}

/// The extra fields of an item (no property holds them): what
/// `X-CDS-FIELDS` carries, as compact JSON.
pub fn read_extra(c: &Component) -> Option<Value> {
    let p = c.prop("X-CDS-FIELDS")?;
    match serde_json::from_str::<Value>(&text_of(p)) {
        Ok(Value::Object(m)) if !m.is_empty() => Some(Value::Object(m)),
        _ => None,
    }
}

/// What the host writes on items it copies (`syncedAt`, `syncDirection`):
/// its bookkeeping, not the item's, so not written into a file.
const BOOKKEEPING: [&str; 2] = ["syncedAt", "syncDirection"];

/// The item's fields no map covers, but for `raw_field` and the host's
/// bookkeeping.
pub fn extra_of(item: &Item, maps: &[FieldMap], raw_field: &str) -> Option<Value> {
    let extra: Map<String, Value> = item
        .iter()
        .filter(|(k, _)| *k != raw_field && !BOOKKEEPING.contains(&k.as_str()))
        .filter(|(k, _)| !maps.iter().any(|m| m.field == *k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    (!extra.is_empty()).then_some(Value::Object(extra))
}

pub fn write_extra(c: &mut Component, extra: Option<&Value>) {
    if read_extra(c).as_ref() == extra {
        return;
    }
    let text = extra.map(|v| lines::escape(&v.to_string()));
    set_prop(c, "X-CDS-FIELDS", Some(Vec::new()), text);
}

/// The component lines an item carries in `field`, parsed; `None` when it
/// has none (or they are not one component of kind `name`).
pub fn raw_component(item: &Item, field: &str, name: &str) -> Option<Component> {
    let lines: Vec<&str> = item
        .get(field)?
        .as_array()?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let mut top = lines::parse(&lines.join("\r\n")).ok()?;
    (top.len() == 1 && top[0].name == name).then(|| top.remove(0))
}

/// A component's lines as the JSON array an item carries.
pub fn lines_value(c: &Component) -> Value {
    Value::Array(c.lines().into_iter().map(Value::String).collect())
}

/// RFC 3339 in UTC, as the host writes timestamps.
pub fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// A `DATE-TIME` or `TIMESTAMP` value in UTC (`20260112T100000Z`, or the
/// extended `2026-01-12T10:00:00Z` vCard 3.0 allows); a bare `DATE` is its
/// midnight, UTC.
pub fn parse_utc(v: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    use chrono::{NaiveDate, NaiveDateTime, TimeZone, Utc};
    let v = v.trim();
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(v) {
        return Some(t.with_timezone(&Utc));
    }
    let compact = v.replace(['-', ':'], "");
    // A time without `Z` (a floating LAST-MODIFIED, which some programs
    // write) is read as UTC.
    let body = compact.strip_suffix(['Z', 'z']).unwrap_or(&compact);
    let body = body.split('.').next().unwrap_or(body);
    if let Ok(t) = NaiveDateTime::parse_from_str(body, "%Y%m%dT%H%M%S") {
        return Some(Utc.from_utc_datetime(&t));
    }
    NaiveDate::parse_from_str(body, "%Y%m%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| Utc.from_utc_datetime(&t))
}

/// A timestamp field written back as a UTC `DATE-TIME` (`20260112T100000Z`).
pub fn utc_value(v: &Value) -> Option<String> {
    let t = chrono::DateTime::parse_from_rfc3339(v.as_str()?).ok()?;
    Some(
        t.with_timezone(&chrono::Utc)
            .format("%Y%m%dT%H%M%SZ")
            .to_string(),
    )
}
