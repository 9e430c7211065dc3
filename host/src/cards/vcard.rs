//! vCard cards as `contacts` items, and back (the table in docs/cards.md).
//!
//! Every card's lines travel in the item's `x-vcard` field; the contract's
//! fields are read from the properties below, and written back into those
//! lines only where they changed.

use super::lines::{self, Component};
use super::{Ctx, FieldMap, Item, invalid, read_text, write_text};
use crate::error::{Code, Error, Result};
use serde_json::Value;
use std::collections::HashMap;

/// The field that carries a card's lines.
pub const RAW: &str = "x-vcard";

/// The contract's contact fields, by the property each lives in.
pub const FIELDS: &[FieldMap] = &[
    FieldMap {
        field: "id",
        read: |c| read_text(c, "UID"),
        write: |c, v, _| write_text(c, "UID", v),
    },
    FieldMap {
        field: "name",
        read: read_name,
        write: |c, v, _| write_text(c, "FN", v),
    },
    FieldMap {
        field: "email",
        read: |c| read_text(c, "EMAIL"),
        write: |c, v, _| write_text(c, "EMAIL", v),
    },
    FieldMap {
        field: "phone",
        read: read_phone,
        write: |c, v, _| write_phone(c, v),
    },
    FieldMap {
        field: "company",
        read: |c| component(c, "ORG", 0),
        write: |c, v, _| write_text(c, "ORG", v),
    },
    FieldMap {
        field: "title",
        read: |c| read_text(c, "TITLE"),
        write: |c, v, _| write_text(c, "TITLE", v),
    },
    FieldMap {
        field: "address",
        read: read_address,
        write: |c, v, _| write_address(c, v),
    },
    FieldMap {
        field: "birthday",
        read: read_birthday,
        write: |c, v, _| {
            let day = v.and_then(Value::as_str).map(|d| d.replace('-', ""));
            super::set_prop(c, "BDAY", Some(Vec::new()), day)
        },
    },
    FieldMap {
        field: "notes",
        read: |c| read_text(c, "NOTE"),
        write: |c, v, _| write_text(c, "NOTE", v),
    },
    FieldMap {
        field: "tags",
        read: read_tags,
        write: |c, v, _| write_tags(c, v),
    },
    FieldMap {
        field: "lastModified",
        read: |c| {
            c.prop("REV")
                .and_then(|p| super::parse_utc(&p.value))
                .map(|t| Value::String(super::rfc3339(t)))
        },
        write: |c, v, _| super::set_prop(c, "REV", Some(Vec::new()), v.and_then(super::utc_value)),
    },
];

/// `FN`; without one, the name `N` gives, else the organisation, else the
/// first email address: a contact has a name.
fn read_name(c: &Component) -> Option<Value> {
    read_text(c, "FN").or_else(|| {
        let n = c
            .prop("N")
            .map(|p| lines::split_escaped(&p.value, ';'))
            .unwrap_or_default();
        // N is family;given;additional;prefix;suffix.
        let order = [3, 1, 2, 0, 4];
        let name = order
            .iter()
            .filter_map(|&i| n.get(i))
            .map(|s| lines::unescape(s).replace(',', " "))
            .filter(|s| !s.trim().is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        (!name.trim().is_empty())
            .then(|| Value::String(name))
            .or_else(|| component(c, "ORG", 0))
            .or_else(|| read_text(c, "EMAIL"))
    })
}

/// The `index`th part of a structured property (`ORG`, `ADR`, `N`), unescaped.
fn component(c: &Component, name: &str, index: usize) -> Option<Value> {
    let p = super::preferred(c, name)?;
    let parts = lines::split_escaped(&super::text_of_raw(p), ';');
    parts
        .get(index)
        .map(|s| lines::unescape(s))
        .filter(|s| !s.is_empty())
        .map(Value::String)
}

/// `TEL`, without the `tel:` of a vCard 4.0 URI value.
fn read_phone(c: &Component) -> Option<Value> {
    let p = super::preferred(c, "TEL")?;
    let t = super::text_of(p);
    let t = t.strip_prefix("tel:").unwrap_or(&t).to_string();
    (!t.is_empty()).then_some(Value::String(t))
}

fn write_phone(c: &mut Component, v: Option<&Value>) {
    let uri = super::preferred(c, "TEL").is_some_and(|p| p.value.starts_with("tel:"));
    let value = v.and_then(Value::as_str).map(|s| {
        if uri {
            format!("tel:{s}")
        } else {
            lines::escape(s)
        }
    });
    super::set_prop(c, "TEL", None, value);
}

/// `ADR`'s non-empty parts (post office box, extended, street, locality,
/// region, postal code, country) joined with `, `.
fn read_address(c: &Component) -> Option<Value> {
    let p = super::preferred(c, "ADR")?;
    let parts: Vec<String> = lines::split_escaped(&super::text_of_raw(p), ';')
        .iter()
        .map(|s| lines::unescape(s).replace('\n', ", "))
        .filter(|s| !s.trim().is_empty())
        .collect();
    (!parts.is_empty()).then(|| Value::String(parts.join(", ")))
}

/// A changed address goes into the street part; the others are emptied.
fn write_address(c: &mut Component, v: Option<&Value>) {
    let value = v
        .and_then(Value::as_str)
        .map(|s| format!(";;{};;;;", lines::escape(s)));
    super::set_prop(c, "ADR", None, value);
}

/// `BDAY` as a date (`YYYY-MM-DD`); a birthday without a year, or given as
/// text, is no date and stays in the card's lines only.
fn read_birthday(c: &Component) -> Option<Value> {
    let v = c.prop("BDAY")?.value.trim().to_string();
    let day = v.split('T').next().unwrap_or(&v).replace('-', "");
    let d = chrono::NaiveDate::parse_from_str(&day, "%Y%m%d").ok()?;
    Some(Value::String(d.format("%Y-%m-%d").to_string()))
}

/// Every `CATEGORIES` value, in order, each once.
fn read_tags(c: &Component) -> Option<Value> {
    let mut tags: Vec<String> = Vec::new();
    for p in c.props.iter().filter(|p| p.name == "CATEGORIES") {
        for t in lines::split_escaped(&super::text_of_raw(p), ',') {
            let t = lines::unescape(&t).trim().to_string();
            if !t.is_empty() && !tags.contains(&t) {
                tags.push(t);
            }
        }
    }
    (!tags.is_empty()).then(|| Value::Array(tags.into_iter().map(Value::String).collect()))
}

/// The tags as one `CATEGORIES` (the first; the others removed).
fn write_tags(c: &mut Component, v: Option<&Value>) {
    let mut seen = false;
    c.props.retain(|p| {
        let keep = p.name != "CATEGORIES" || !seen;
        seen |= p.name == "CATEGORIES";
        keep
    });
    let value = v.and_then(Value::as_array).map(|a| {
        a.iter()
            .filter_map(Value::as_str)
            .map(lines::escape)
            .collect::<Vec<_>>()
            .join(",")
    });
    super::set_prop(c, "CATEGORIES", None, value.filter(|s| !s.is_empty()));
}

/// The cards of a `.vcf` file as contacts.
pub fn import(top: &[Component], ctx: &Ctx<'_>) -> Result<Vec<Item>> {
    let mut items = Vec::with_capacity(top.len());
    let mut seen: HashMap<String, usize> = HashMap::new();
    for card in top {
        if card.name != "VCARD" {
            return Err(invalid(
                ctx.path,
                card.line,
                &format!("`BEGIN:{}` where a vCard file has `BEGIN:VCARD`", card.name),
            ));
        }
        let item = import_card(card, ctx)?;
        let id = item["id"].as_str().unwrap_or_default().to_string();
        if let Some(first) = seen.insert(id.clone(), card.line) {
            return Err(Error::new(
                Code::SyncConflict,
                format!(
                    "`{}`: the cards of lines {first} and {} have the same UID `{id}`; which is \
                     real cannot be told. Give one another UID, or remove it",
                    ctx.path.display(),
                    card.line
                ),
            )
            .with("file", ctx.path.display().to_string())
            .with("id", id));
        }
        items.push(item);
    }
    Ok(items)
}

fn import_card(card: &Component, ctx: &Ctx<'_>) -> Result<Item> {
    let mut item = Item::new();
    super::read_fields(card, &mut item, FIELDS);
    if let Some(Value::Object(extra)) = super::read_extra(card) {
        for (k, v) in extra {
            item.entry(k).or_insert(v);
        }
    }
    let id_ok = item
        .get("id")
        .and_then(Value::as_str)
        .is_some_and(|s| (1..=256).contains(&s.chars().count()));
    if !id_ok {
        item.insert("id".into(), Value::String(ctx.missing_id("vcard", card)));
    }
    if !item.contains_key("name") {
        return Err(invalid(
            ctx.path,
            card.line,
            "the card has no FN, N, ORG or EMAIL to name the contact by",
        ));
    }
    item.entry("lastModified")
        .or_insert_with(|| Value::String(ctx.fallback_time.to_string()));
    item.insert(RAW.into(), super::lines_value(card));
    // The id first, as the product writes items.
    let id = item.shift_remove("id");
    let mut out = Item::new();
    if let Some(id) = id {
        out.insert("id".into(), id);
    }
    out.extend(item);
    Ok(out)
}

/// Contacts as one `.vcf` file.
pub fn export(items: &[Item]) -> Result<String> {
    let mut out = Vec::new();
    for item in items {
        out.extend(export_card(item).lines());
    }
    Ok(lines::fold(&out))
}

/// One contact as a card: its own lines with what changed written in, or,
/// for a contact that has none, a vCard 4.0 from its fields.
pub fn export_card(item: &Item) -> Component {
    let (mut card, fresh) = match super::raw_component(item, RAW, "VCARD") {
        Some(c) => (c, false),
        None => {
            let mut c = Component {
                name: "VCARD".into(),
                ..Component::default()
            };
            super::set_prop(&mut c, "VERSION", Some(Vec::new()), Some("4.0".into()));
            (c, true)
        }
    };
    // A card that has no REV keeps having none: its lastModified came from
    // the file's time, which is not the card's.
    // Nor does a card without UID get one: its id was made from its lines.
    let rev = fresh || super::read_field(FIELDS, "lastModified", &card).is_some();
    let uid = fresh || card.prop("UID").is_some();
    let maps = FIELDS
        .iter()
        .filter(|m| (rev || m.field != "lastModified") && (uid || m.field != "id"));
    super::write_fields(&mut card, item, maps);
    super::write_extra(&mut card, super::extra_of(item, FIELDS, RAW).as_ref());
    card
}
