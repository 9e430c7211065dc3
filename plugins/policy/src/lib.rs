//! The sensitive-data policy of one crossing (e.g. `personal->business`) for one
//! entity type, and its meaning.
//!
//! This crate is the single definition of what a policy does. Plugins call
//! [`Policy::apply`] (through the guest SDK) to filter a batch; the host calls
//! [`Policy::check`] on whatever a plugin returned, so that a faulty or hostile
//! filter cannot leak what the policy forbids. Everything here is pure: no I/O.
//!
//! A policy has three parts, applied in this order:
//! 1. `withhold`: an item matching any rule does not cross at all;
//! 2. `reduce`: an item matching a reduction's `when` keeps only the `keep`
//!    fields and gets the `set` values (a calendar "busy block");
//! 3. `strip`: these fields are removed from every item that crosses.

pub mod normalize;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::borrow::Cow;

/// A JSON object: one entity item.
pub type Item = Map<String, Value>;

/// The id of `item`: the string in its `id_field`, when it holds one.
///
/// Items keep their fields in the order written, and the id comes first in
/// practice, so the first field is compared before the key is hashed for a
/// lookup (serde_json's map hashes with SipHash, and a sync looks ids up
/// millions of times).
pub fn item_id<'a>(item: &'a Item, id_field: &str) -> Option<&'a str> {
    match item.iter().next() {
        Some((k, v)) if k == id_field => v.as_str(),
        _ => item.get(id_field).and_then(Value::as_str),
    }
}

/// What applying a policy needs of an item. [`Item`] has it; so has the
/// guest SDK's item whose values stay JSON text until a rule reads them, so
/// that one definition of what a policy does ([`Policy::apply_traced`])
/// serves both.
pub trait Fields {
    /// The value of `key`, when the item has it.
    fn value(&self, key: &str) -> Option<Cow<'_, Value>>;
    /// How many fields the item has.
    fn len(&self) -> usize;
    /// Whether the item has no fields.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Keeps only the fields whose key `keep` accepts, in order.
    fn retain_keys(&mut self, keep: &mut dyn FnMut(&str) -> bool);
    /// Sets `key` to `value`: where it is, or last when new.
    fn set(&mut self, key: &str, value: &Value);
    /// Removes `key`, keeping the others in order; whether it was there.
    fn remove(&mut self, key: &str) -> bool;
}

impl Fields for Item {
    fn value(&self, key: &str) -> Option<Cow<'_, Value>> {
        self.get(key).map(Cow::Borrowed)
    }
    fn len(&self) -> usize {
        Map::len(self)
    }
    fn retain_keys(&mut self, keep: &mut dyn FnMut(&str) -> bool) {
        self.retain(|k, _| keep(k));
    }
    fn set(&mut self, key: &str, value: &Value) {
        self.insert(key.to_string(), value.clone());
    }
    fn remove(&mut self, key: &str) -> bool {
        self.shift_remove(key).is_some()
    }
}

/// The policy for one crossing and one entity type.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Policy {
    /// Items matching any of these rules are withheld.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub withhold: Vec<Rule>,
    /// Items matching a reduction are cut down to a few fields.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reduce: Vec<Reduction>,
    /// Fields removed from every item that crosses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub strip: Vec<String>,
}

/// `field`'s value is one of `in` (for an array field: any element is).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rule {
    pub field: String,
    #[serde(rename = "in")]
    pub values: Vec<Value>,
}

/// Items matching any rule of `when` keep only `keep` (and the id) and get `set`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Reduction {
    pub when: Vec<Rule>,
    pub keep: Vec<String>,
    #[serde(default)]
    pub set: Map<String, Value>,
}

/// What became of one item under a policy.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome<I = Item> {
    /// The item may cross, as given (possibly reduced or stripped).
    Kept(I),
    Withheld,
}

/// A broken policy rule in a plugin's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub id: String,
    pub what: String,
}

impl Rule {
    pub fn matches<I: Fields + ?Sized>(&self, item: &I) -> bool {
        match item.value(&self.field).as_deref() {
            None => false,
            Some(Value::Array(elems)) => elems.iter().any(|e| self.values.contains(e)),
            Some(v) => self.values.contains(v),
        }
    }
}

/// The fields that carry an imported item's original lines (every property
/// of its vCard or iCalendar file, the mapped ones too).
pub const SOURCE_FIELDS: [&str; 2] = ["x-vcard", "x-ical"];

impl Policy {
    /// The policy with the source-line fields stripped whenever it strips or
    /// reduces anything: those lines hold every property of the item, so a
    /// stripped birthday would otherwise cross in its `BDAY` line. An item
    /// crosses with its lines only where the policy takes nothing away.
    pub fn guarding_source_lines(self) -> Policy {
        if self.takes_fields_away() {
            self.stripping_source_lines()
        } else {
            self
        }
    }

    /// Whether the policy strips or reduces anything (and so guards the
    /// source-line fields, see [`Policy::guarding_source_lines`]).
    pub fn takes_fields_away(&self) -> bool {
        !self.strip.is_empty() || !self.reduce.is_empty()
    }

    /// The policy with the source-line fields stripped, whatever else it does.
    pub fn stripping_source_lines(mut self) -> Policy {
        for f in SOURCE_FIELDS {
            if !self.strip.iter().any(|s| s == f) {
                self.strip.push(f.to_string());
            }
        }
        self
    }

    /// True when the policy changes nothing.
    pub fn is_empty(&self) -> bool {
        self.withhold.is_empty() && self.reduce.is_empty() && self.strip.is_empty()
    }

    pub fn withholds<I: Fields + ?Sized>(&self, item: &I) -> bool {
        self.withhold.iter().any(|r| r.matches(item))
    }

    fn reduction_for<I: Fields + ?Sized>(&self, item: &I) -> Option<&Reduction> {
        self.reduce
            .iter()
            .find(|red| red.when.iter().any(|r| r.matches(item)))
    }

    /// Applies the policy to one item; returns the outcome and how many field
    /// values were removed or replaced.
    pub fn apply(&self, item: Item, id_field: &str) -> (Outcome, u64) {
        let (outcome, redacted, _) = self.apply_traced(item, id_field);
        (outcome, redacted)
    }

    /// [`Policy::apply`], also saying whether a kept item differs from the
    /// one given (the redaction count alone does not tell: a reduction may
    /// add a field it sets without counting it). The guest SDK uses this to
    /// skip re-encoding items the policy left alone.
    pub fn apply_traced<I: Fields>(&self, mut item: I, id_field: &str) -> (Outcome<I>, u64, bool) {
        if self.withholds(&item) {
            return (Outcome::Withheld, 0, true);
        }
        let mut redacted = 0u64;
        let mut changed = false;
        if let Some(red) = self.reduction_for(&item) {
            let before = item.len();
            item.retain_keys(&mut |k| k == id_field || red.keep.iter().any(|f| f == k));
            redacted += (before - item.len()) as u64;
            for (k, v) in &red.set {
                // `Some(same value)` is already as the reduction sets it.
                match item.value(k).map(|old| *old == *v) {
                    Some(true) => {}
                    Some(false) => {
                        redacted += 1;
                        item.set(k, v);
                    }
                    None => {
                        changed = true;
                        item.set(k, v);
                    }
                }
            }
        }
        for field in &self.strip {
            if field != id_field && item.remove(field) {
                redacted += 1;
            }
        }
        changed |= redacted > 0;
        (Outcome::Kept(item), redacted, changed)
    }

    /// Checks that `output`, claimed to be this policy applied to `input`,
    /// keeps the generic rules: no withheld item crossed, no stripped field
    /// remains, reduced items hold only what the reduction allows.
    pub fn check(&self, input: &Item, output: &Item, id_field: &str) -> Result<(), Violation> {
        let id = item_id(output, id_field).unwrap_or("?").to_string();
        if self.withholds(input) {
            return Err(Violation {
                id,
                what: "an item the policy withholds was returned as kept".into(),
            });
        }
        if let Some(field) = self.strip.iter().find(|f| output.contains_key(f.as_str())) {
            return Err(Violation {
                id,
                what: format!("field `{field}` is stripped by the policy but was returned"),
            });
        }
        if let Some(red) = self.reduction_for(input) {
            for (k, v) in output {
                let allowed = k == id_field || red.keep.iter().any(|f| f == k);
                match red.set.get(k) {
                    Some(want) if want != v => {
                        return Err(Violation {
                            id,
                            what: format!("reduced item must have `{k}` set by the policy"),
                        });
                    }
                    Some(_) => {}
                    None if !allowed => {
                        return Err(Violation {
                            id,
                            what: format!("field `{k}` is not allowed in a reduced item"),
                        });
                    }
                    None => {}
                }
            }
        }
        Ok(())
    }

    /// The same policy with field names passed through `rename` (used when a
    /// domain stores fields under other names).
    pub fn renamed(&self, rename: impl Fn(&str) -> String) -> Policy {
        let rule = |r: &Rule| Rule {
            field: rename(&r.field),
            values: r.values.clone(),
        };
        Policy {
            withhold: self.withhold.iter().map(rule).collect(),
            reduce: self
                .reduce
                .iter()
                .map(|red| Reduction {
                    when: red.when.iter().map(rule).collect(),
                    keep: red.keep.iter().map(|f| rename(f)).collect(),
                    set: red
                        .set
                        .iter()
                        .map(|(k, v)| (rename(k), v.clone()))
                        .collect(),
                })
                .collect(),
            strip: self.strip.iter().map(|f| rename(f)).collect(),
        }
    }
}

/// Whether [`rename_fields`] with `table` would change any key of `item`.
pub fn renames_any(item: &Item, table: &[(&str, &str)]) -> bool {
    table
        .iter()
        .any(|(from, to)| from != to && item.contains_key(*from))
}

/// Renames the keys of `item` by `table` (pairs `(from, to)`), keeping order.
pub fn rename_fields(item: Item, table: &[(&str, &str)]) -> Item {
    if table.is_empty() {
        return item;
    }
    item.into_iter()
        .map(|(k, v)| match table.iter().find(|(from, _)| *from == k) {
            Some((_, to)) => ((*to).to_string(), v),
            None => (k, v),
        })
        .collect()
}

/// Shorthand for a rule, used by the default policies.
pub fn rule(field: &str, values: &[&str]) -> Rule {
    Rule {
        field: field.into(),
        values: values.iter().map(|v| Value::String((*v).into())).collect(),
    }
}

/// The default policy of CONTRACT §5 for one crossing and entity type, when
/// the configuration says nothing.
pub fn default_policy(from: &str, to: &str, entity: &str) -> Policy {
    let private = || rule("category", &["personal", "family"]);
    let busy = |when: Vec<Rule>| Reduction {
        when,
        // An imported event's zone (its TZID) and recurrence (its RRULE,
        // RDATE and EXDATE lines) stay with its times.
        keep: [
            "id",
            "start",
            "end",
            "allDay",
            "timeZone",
            "recurrence",
            "lastModified",
        ]
        .map(String::from)
        .to_vec(),
        set: [("title".to_string(), Value::String("Busy".into()))]
            .into_iter()
            .collect(),
    };
    let strs = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    match (from, to, entity) {
        ("personal", "business", "contacts") => Policy {
            withhold: vec![private()],
            strip: strs(&["birthday", "notes", "address"]),
            ..Policy::default()
        },
        ("personal", "business", "calendar") => Policy {
            reduce: vec![busy(vec![private(), rule("visibility", &["private"])])],
            ..Policy::default()
        },
        ("personal", "business", "tasks") => Policy {
            withhold: vec![private()],
            strip: strs(&["notes"]),
            ..Policy::default()
        },
        ("personal", "business", "documents") => Policy {
            withhold: vec![private()],
            ..Policy::default()
        },
        ("personal", "business", "communications") => Policy {
            withhold: vec![private()],
            strip: strs(&["body", "snippet", "attachments"]),
            ..Policy::default()
        },
        ("business", "personal", "documents") => Policy {
            withhold: vec![rule("classification", &["confidential", "restricted"])],
            ..Policy::default()
        },
        ("business", "personal", "communications") => Policy {
            strip: strs(&["body", "attachments"]),
            ..Policy::default()
        },
        ("business", "personal", "calendar") => Policy {
            reduce: vec![busy(vec![rule("visibility", &["confidential"])])],
            ..Policy::default()
        },
        _ => Policy::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn item(v: Value) -> Item {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn item_ids_wherever_they_stand() {
        let id = |v: Value| item_id(&item(v), "id").map(String::from);
        assert_eq!(id(json!({"id": "a", "x": 1})), Some("a".into()));
        assert_eq!(id(json!({"x": 1, "id": "b"})), Some("b".into()));
        assert_eq!(id(json!({"id": 7, "x": 1})), None);
        assert_eq!(id(json!({"x": "c"})), None);
        assert_eq!(
            item_id(&item(json!({"key": "k", "id": "d"})), "key"),
            Some("k")
        );
    }

    #[test]
    fn withholds_private_contacts_and_strips_fields() {
        let p = default_policy("personal", "business", "contacts");
        let (out, n) = p.apply(item(json!({"id":"1","category":"family","name":"x"})), "id");
        assert_eq!((out, n), (Outcome::Withheld, 0));
        let (out, n) = p.apply(
            item(json!({"id":"2","name":"x","notes":"n","birthday":"2000-01-01","x-custom":1})),
            "id",
        );
        assert_eq!(n, 2);
        assert_eq!(
            out,
            Outcome::Kept(item(json!({"id":"2","name":"x","x-custom":1})))
        );
    }

    #[test]
    fn busy_block_keeps_only_times() {
        let p = default_policy("personal", "business", "calendar");
        let input = item(json!({"id":"e","title":"Doctor","start":"a","end":"b",
            "visibility":"private","location":"clinic","lastModified":"t"}));
        let (out, n) = p.apply(input.clone(), "id");
        let Outcome::Kept(out) = out else { panic!() };
        assert_eq!(
            out,
            item(json!({"id":"e","title":"Busy","start":"a","end":"b","lastModified":"t"}))
        );
        assert_eq!(n, 3); // visibility, location removed; title replaced
        assert!(p.check(&input, &out, "id").is_ok());
        let mut leaky = out.clone();
        leaky.insert("location".into(), json!("clinic"));
        assert!(p.check(&input, &leaky, "id").is_err());
    }

    #[test]
    fn check_catches_withheld_and_stripped() {
        let p = default_policy("personal", "business", "contacts");
        let fam = item(json!({"id":"1","category":"family","name":"x"}));
        assert!(p.check(&fam, &fam, "id").is_err());
        let biz = item(json!({"id":"2","name":"x","notes":"secret"}));
        let err = p.check(&biz, &biz, "id").unwrap_err();
        assert!(err.what.contains("notes"), "{err:?}");
    }

    /// `apply_traced` says "changed" exactly when the kept item differs from
    /// the one given, across every default policy and items that each rule
    /// does and does not touch (a busy block that only gains its title is a
    /// change with nothing redacted).
    #[test]
    fn traced_change_is_exactly_a_difference() {
        let items = [
            json!({"id":"1","name":"x"}),
            json!({"id":"2","name":"x","notes":"n","birthday":"b"}),
            json!({"id":"3","category":"family","name":"x"}),
            json!({"id":"4","title":"T","start":"a","end":"b","visibility":"private"}),
            json!({"id":"5","start":"a","end":"b","visibility":"private"}),
            json!({"id":"6","title":"Busy","start":"a","end":"b","visibility":"confidential"}),
            json!({"id":"7","channel":"email","body":"b","attachments":[]}),
            json!({"id":"8","classification":"restricted"}),
            json!({"id":"9","classification":"internal","uri":"u"}),
        ];
        let mut changes = 0;
        for (from, to) in [("personal", "business"), ("business", "personal")] {
            for entity in [
                "contacts",
                "calendar",
                "tasks",
                "documents",
                "communications",
            ] {
                let p = default_policy(from, to, entity);
                for it in &items {
                    let given = item(it.clone());
                    let (out, n, changed) = p.apply_traced(given.clone(), "id");
                    assert_eq!((out.clone(), n), p.apply(given.clone(), "id"));
                    match out {
                        Outcome::Kept(kept) => {
                            assert_eq!(changed, kept != given, "{from}->{to} {entity} {it}");
                            changes += usize::from(changed);
                        }
                        Outcome::Withheld => assert!(changed),
                    }
                }
            }
        }
        assert!(changes > 3, "the items exercise the policies");
        // A reduction that only adds a field it sets: a change, no redaction.
        let p = default_policy("personal", "business", "calendar");
        let (_, n, changed) = p.apply_traced(item(items[4].clone()), "id");
        assert_eq!((n, changed), (1, true));
        let p = Policy {
            reduce: vec![Reduction {
                when: vec![Rule {
                    field: "allDay".into(),
                    values: vec![json!(true)],
                }],
                keep: vec!["start".into(), "allDay".into()],
                set: [("title".to_string(), json!("Busy"))].into_iter().collect(),
            }],
            ..Policy::default()
        };
        let given = item(json!({"id":"x","start":"a","allDay":true}));
        let (out, n, changed) = p.apply_traced(given.clone(), "id");
        assert_eq!((n, changed), (0, true));
        assert_ne!(out, Outcome::Kept(given));
    }

    #[test]
    fn renames_any_is_whether_a_key_changes() {
        let it = item(json!({"id":"1","company":"x"}));
        assert!(renames_any(&it, &[("company", "organization")]));
        assert!(!renames_any(&it, &[("company", "company")]));
        assert!(!renames_any(&it, &[("title", "role")]));
        assert!(!renames_any(&it, &[]));
    }

    #[test]
    fn array_fields_match_any_element() {
        let r = rule("tags", &["private"]);
        assert!(r.matches(&item(json!({"tags":["a","private"]}))));
        assert!(!r.matches(&item(json!({"tags":["a"]}))));
    }
}
