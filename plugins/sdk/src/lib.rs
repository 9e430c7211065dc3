//! The guest SDK: everything an entity plugin needs except its own rules.
//!
//! A plugin implements [`EntityPlugin`] (its name, version, item schema and
//! which fields hold emails, phones and timestamps) and calls
//! [`export_plugin!`]. The SDK turns that into the WIT interface
//! `gold:entity/plugin@1.1.0`: batch mapping (renames and normalisation),
//! batch filtering (the crossing's policy, see `cds-policy`), and both in one
//! call ([`cross_batch`], which parses each item once).
//!
//! The batch functions [`map_batch`], [`filter_batch`] and [`cross_batch`] are
//! plain Rust, so the same plugin code can also be compiled natively (the host
//! does that for its sandbox-cost benchmark).

pub use cds_policy::{Item, Outcome, Policy, rename_fields};
pub use serde_json::Value;

mod lazy;

wit_bindgen::generate!({
    path: "../../wit",
    world: "entity-plugin",
    pub_export_macro: true,
    export_macro_name: "__export_entity_plugin",
    default_bindings_module: "cds_plugin_sdk",
});

/// The interface version this SDK builds plugins for.
pub const INTERFACE_VERSION: &str = "1.1.0";

/// One entity type's rules. Everything has a sensible default except the
/// identity and the schema.
pub trait EntityPlugin {
    /// The entity type, e.g. `contacts`; also the data file's name.
    const ENTITY_TYPE: &'static str;
    /// The plugin's own version.
    const VERSION: &'static str;
    /// JSON Schema (2020-12) of one item, in canonical field names.
    const ITEM_SCHEMA: &'static str;
    const ID_FIELD: &'static str = "id";
    /// Fields holding an email address or an array of them: trimmed, lower-cased.
    const EMAIL_FIELDS: &'static [&'static str] = &[];
    /// Fields holding a phone number: reduced to `+` and digits.
    const PHONE_FIELDS: &'static [&'static str] = &[];
    /// Fields holding an email address or a phone number, or an array of
    /// them: each normalised as what it is (see [`normalize_address`]).
    const ADDRESS_FIELDS: &'static [&'static str] = &[];
    /// Fields holding an RFC 3339 timestamp: converted to UTC with `Z`.
    /// `lastModified` is always normalised.
    const TIMESTAMP_FIELDS: &'static [&'static str] = &[];

    /// Type-specific normalisation after the standard one (canonical names).
    ///
    /// A plugin that keeps this default (and [`EntityPlugin::filter`]'s)
    /// gets the SDK's fast path: items are parsed only as far as its
    /// declarations and the policy look into them. With its own hook, every
    /// item is parsed whole, handed to it, and encoded again to tell
    /// whether the hook changed it.
    fn normalize(_item: &mut Item) -> Result<(), String> {
        hooks::NORMALIZE.set(Some(false));
        Ok(())
    }

    /// Filters one item (receiving-shape names). The default applies the
    /// policy exactly; override only to be stricter.
    fn filter(policy: &Policy, item: Item) -> (Outcome, u64) {
        let (outcome, redacted, changed) = policy.apply_traced(item, Self::ID_FIELD);
        hooks::FILTER.set(Some(changed));
        (outcome, redacted)
    }
}

/// Whether a plugin's hook was the SDK's default, and if so whether it
/// changed the item. The defaults of [`EntityPlugin::normalize`] and
/// [`EntityPlugin::filter`] say so here; a plugin's own hook cannot (an
/// override replaces the default body entirely), so after an override the
/// SDK knows nothing and compares the encoded item instead. Knowing lets the
/// SDK skip encoding, and comparing, the items a hook left alone: most of a
/// batch. One cell per hook, so that a plugin's own `filter` that calls the
/// default `normalize` is not taken for the default `filter`.
mod hooks {
    use std::cell::Cell;
    use std::thread::LocalKey;

    type Cell_ = Cell<Option<bool>>;
    thread_local! {
        /// `Some(changed)` once the default `normalize` ran.
        pub static NORMALIZE: Cell_ = const { Cell::new(None) };
        /// `Some(changed)` once the default `filter` ran.
        pub static FILTER: Cell_ = const { Cell::new(None) };
    }

    /// Runs a hook; `Some(changed)` when it was the default one, which says
    /// so in `cell`.
    pub fn traced<T>(
        cell: &'static LocalKey<Cell_>,
        hook: impl FnOnce() -> T,
    ) -> (T, Option<bool>) {
        cell.set(None);
        let out = hook();
        (out, cell.take())
    }
}

pub use cds_policy::normalize::{normalize_address, normalize_email, normalize_phone};

/// Converts an RFC 3339 timestamp to UTC with a `Z` suffix.
pub fn normalize_timestamp(s: &str) -> Result<String, String> {
    let t = chrono::DateTime::parse_from_rfc3339(s.trim())
        .map_err(|e| format!("`{s}` is not an RFC 3339 timestamp ({e})"))?;
    Ok(t.with_timezone(&chrono::Utc)
        .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
}

/// Applies `f` to the string, or each string of the array, `v` holds;
/// returns whether any changed.
fn each_string(
    v: &mut Value,
    f: &mut dyn FnMut(&str) -> Result<String, String>,
) -> Result<bool, String> {
    match v {
        Value::String(s) => {
            let n = f(s)?;
            if *s != n {
                *s = n;
                return Ok(true);
            }
            Ok(false)
        }
        Value::Array(a) => a
            .iter_mut()
            .try_fold(false, |changed, e| Ok(each_string(e, f)? || changed)),
        _ => Ok(false),
    }
}

/// The standard normalisation of one item in canonical names.
pub fn normalize<P: EntityPlugin>(item: &mut Item) -> Result<(), String> {
    normalize_traced::<P>(item).map(|_| ())
}

/// Applies `f` to the value of a field, when the item has it; returns what
/// `f` did (whether it changed the value).
type Update<'f> = dyn FnMut(&str, &mut dyn FnMut(&mut Value) -> Result<bool, String>) -> Result<bool, String>
    + 'f;

/// The standard normalisation the declarations of `P` ask for, in order
/// (emails, phones, addresses, then timestamps), through `update`, which
/// reaches an item's fields (a parsed [`Item`]'s or a lazily parsed one's);
/// returns whether any value changed.
fn standard_normalize<P: EntityPlugin>(update: &mut Update<'_>) -> Result<bool, String> {
    let mut changed = false;
    for f in P::EMAIL_FIELDS {
        changed |= update(f, &mut |v| each_string(v, &mut |s| Ok(normalize_email(s))))?;
    }
    for f in P::PHONE_FIELDS {
        changed |= update(f, &mut |v| each_string(v, &mut |s| Ok(normalize_phone(s))))?;
    }
    for f in P::ADDRESS_FIELDS {
        changed |= update(f, &mut |v| {
            each_string(v, &mut |s| Ok(normalize_address(s)))
        })?;
    }
    for f in std::iter::once(&"lastModified").chain(P::TIMESTAMP_FIELDS) {
        changed |= update(f, &mut |v| {
            each_string(v, &mut |s| {
                normalize_timestamp(s).map_err(|e| format!("{f}: {e}"))
            })
        })?;
    }
    Ok(changed)
}

/// [`normalize`], saying whether the item changed: `None` when the plugin's
/// own [`EntityPlugin::normalize`] ran and may have changed it.
fn normalize_traced<P: EntityPlugin>(item: &mut Item) -> Result<Option<bool>, String> {
    let changed = standard_normalize::<P>(&mut |f, g| match item.get_mut(f) {
        Some(v) => g(v),
        None => Ok(false),
    })?;
    let (result, default) = hooks::traced(&hooks::NORMALIZE, || P::normalize(item));
    result?;
    Ok(default.map(|d| d || changed))
}

fn parse_item(s: &str, index: usize) -> Result<Item, String> {
    match serde_json::from_str::<Value>(s) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(format!("item {index} is not a JSON object")),
        Err(e) => Err(format!("item {index} is not valid JSON: {e}")),
    }
}

fn item_id<P: EntityPlugin>(item: &Item) -> &str {
    cds_policy::item_id(item, P::ID_FIELD).unwrap_or("?")
}

/// Maps a batch: sending-local names → canonical, normalise, → receiving-local.
/// `from_fields` and `to_fields` are `(canonical, local)` pairs.
pub fn map_batch<P: EntityPlugin>(
    from_fields: &[(&str, &str)],
    to_fields: &[(&str, &str)],
    items: &[String],
) -> Result<Vec<String>, String> {
    let to_canonical = reversed(from_fields);
    items
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let (item, _) = map_item::<P>(&to_canonical, to_fields, s, i)?;
            Ok(cds_json::map_to_string(&item))
        })
        .collect()
}

/// `(canonical, local)` pairs turned into `(local, canonical)`.
fn reversed<'a>(fields: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    fields.iter().map(|(c, l)| (*l, *c)).collect()
}

/// One item of a batch, `i`th, mapped into the receiving shape; with whether
/// that changed it (`None`: not known, the plugin's own hook ran).
fn map_item<P: EntityPlugin>(
    to_canonical: &[(&str, &str)],
    to_fields: &[(&str, &str)],
    s: &str,
    i: usize,
) -> Result<(Item, Option<bool>), String> {
    let item = parse_item(s, i)?;
    let renamed = cds_policy::renames_any(&item, to_canonical);
    let mut item = rename_fields(item, to_canonical);
    let normalized = normalize_traced::<P>(&mut item)
        .map_err(|e| format!("item {i} (id {}): {e}", item_id::<P>(&item)))?;
    let renamed = renamed || cds_policy::renames_any(&item, to_fields);
    let item = rename_fields(item, to_fields);
    Ok((item, normalized.map(|n| n || renamed)))
}

/// What [`filter_batch`] returns.
#[derive(Debug, Default, PartialEq)]
pub struct Filtered {
    pub kept: Vec<String>,
    pub withheld: Vec<String>,
    pub redacted_fields: u64,
}

/// Filters a batch through `policy` (JSON text, receiving-shape names).
pub fn filter_batch<P: EntityPlugin>(policy: &str, items: &[String]) -> Result<Filtered, String> {
    let policy: Policy =
        serde_json::from_str(policy).map_err(|e| format!("the policy is not valid: {e}"))?;
    let mut out = Filtered::default();
    for (i, s) in items.iter().enumerate() {
        let item = parse_item(s, i)?;
        let id = item_id::<P>(&item).to_string();
        let (outcome, n) = P::filter(&policy, item);
        out.redacted_fields += n;
        match outcome {
            Outcome::Kept(item) => out.kept.push(cds_json::map_to_string(&item)),
            Outcome::Withheld => out.withheld.push(id),
        }
    }
    Ok(out)
}

/// What [`cross_batch`] made of one item.
#[derive(Debug, Clone, PartialEq)]
pub struct CrossedItem {
    /// The mapped item's JSON text; `None` when mapping left the item as it
    /// was given.
    pub mapped: Option<String>,
    pub outcome: CrossOutcome,
}

/// What the policy made of one mapped item.
#[derive(Debug, Clone, PartialEq)]
pub enum CrossOutcome {
    /// It crosses exactly as mapped.
    Kept,
    /// It crosses as this JSON text.
    Changed(String),
    Withheld,
}

/// What [`cross_batch`] returns: one entry per input item, in order.
#[derive(Debug, Default, PartialEq)]
pub struct Crossed {
    pub items: Vec<CrossedItem>,
    pub redacted_fields: u64,
}

/// Maps a batch as [`map_batch`] does and, given a policy (JSON text,
/// receiving-shape names), filters each mapped item as [`filter_batch`] does,
/// parsing every item once instead of twice, and encoding an item again only
/// when mapping or the policy changed it.
///
/// The first item goes the way of [`map_batch`] and [`filter_batch`], which
/// shows whether the plugin's hooks are the SDK's defaults (see
/// [`EntityPlugin::normalize`]); when they are, the others take the fast
/// path, parsed only as far as the declarations and the policy look.
pub fn cross_batch<P: EntityPlugin>(
    from_fields: &[(&str, &str)],
    to_fields: &[(&str, &str)],
    policy: Option<&str>,
    items: &[String],
) -> Result<Crossed, String> {
    cross_batch_with::<P>(from_fields, to_fields, policy, items, true)
}

/// [`cross_batch`], taking the fast path only when `fast` allows (the tests
/// compare both).
fn cross_batch_with<P: EntityPlugin>(
    from_fields: &[(&str, &str)],
    to_fields: &[(&str, &str)],
    policy: Option<&str>,
    items: &[String],
    fast: bool,
) -> Result<Crossed, String> {
    let policy: Option<Policy> = policy
        .map(serde_json::from_str)
        .transpose()
        .map_err(|e| format!("the policy is not valid: {e}"))?;
    let to_canonical = reversed(from_fields);
    let mut out = Crossed {
        items: Vec::with_capacity(items.len()),
        redacted_fields: 0,
    };
    let mut defaults = false;
    for (i, s) in items.iter().enumerate() {
        let lazy = if defaults { lazy::Lazy::parse(s) } else { None };
        let crossed = match lazy {
            Some(item) => cross_lazy::<P>(
                &to_canonical,
                to_fields,
                policy.as_ref(),
                item,
                i,
                &mut out.redacted_fields,
            )?,
            None => {
                let (crossed, hooks) = cross_parsed::<P>(
                    &to_canonical,
                    to_fields,
                    policy.as_ref(),
                    s,
                    i,
                    &mut out.redacted_fields,
                )?;
                defaults = hooks && fast;
                crossed
            }
        };
        out.items.push(crossed);
    }
    Ok(out)
}

/// One item of [`cross_batch`], `i`th, parsed whole; with whether the hooks
/// that ran were the SDK's defaults.
fn cross_parsed<P: EntityPlugin>(
    to_canonical: &[(&str, &str)],
    to_fields: &[(&str, &str)],
    policy: Option<&Policy>,
    s: &str,
    i: usize,
    redacted: &mut u64,
) -> Result<(CrossedItem, bool), String> {
    let (item, mapping_changed) = map_item::<P>(to_canonical, to_fields, s, i)?;
    // The mapped item's text, needed when mapping changed the item, or
    // may have (a plugin's own `normalize`); then an item that encodes
    // as it was given still goes back as `none`.
    let text = match mapping_changed {
        Some(false) => None,
        Some(true) => Some(cds_json::map_to_string(&item)),
        None => Some(cds_json::map_to_string(&item)).filter(|t| t != s),
    };
    let mut defaults = mapping_changed.is_some();
    let outcome = match policy {
        None => CrossOutcome::Kept,
        Some(policy) => {
            let ((outcome, n), filter_changed) =
                hooks::traced(&hooks::FILTER, || P::filter(policy, item));
            *redacted += n;
            defaults &= filter_changed.is_some();
            match (outcome, filter_changed) {
                (Outcome::Withheld, _) => CrossOutcome::Withheld,
                (Outcome::Kept(_), Some(false)) => CrossOutcome::Kept,
                (Outcome::Kept(kept), Some(true)) => {
                    CrossOutcome::Changed(cds_json::map_to_string(&kept))
                }
                // The plugin's own filter: the text decides, so that an
                // item it left alone goes back as `Kept`, with no copy.
                (Outcome::Kept(kept), None) => {
                    let k = cds_json::map_to_string(&kept);
                    if k == *text.as_deref().unwrap_or(s) {
                        CrossOutcome::Kept
                    } else {
                        CrossOutcome::Changed(k)
                    }
                }
            }
        }
    };
    Ok((
        CrossedItem {
            mapped: text,
            outcome,
        },
        defaults,
    ))
}

/// One item of [`cross_batch`], `i`th, on the fast path: what
/// [`cross_parsed`] gives for a plugin whose hooks are the defaults (whose
/// `normalize` does nothing and whose `filter` is `Policy::apply_traced`),
/// with values parsed only where read.
fn cross_lazy<P: EntityPlugin>(
    to_canonical: &[(&str, &str)],
    to_fields: &[(&str, &str)],
    policy: Option<&Policy>,
    mut item: lazy::Lazy<'_>,
    i: usize,
    redacted: &mut u64,
) -> Result<CrossedItem, String> {
    let renamed = item.renames_any(to_canonical);
    item.rename(to_canonical);
    let normalized = standard_normalize::<P>(&mut |f, g| item.update(f, g));
    let normalized = normalized.map_err(|e| {
        let id = cds_policy::Fields::value(&item, P::ID_FIELD);
        let id = id.as_deref().and_then(Value::as_str).unwrap_or("?");
        format!("item {i} (id {id}): {e}")
    })?;
    let renamed = renamed || item.renames_any(to_fields);
    item.rename(to_fields);
    let text = (normalized || renamed).then(|| item.encode());
    let outcome = match policy {
        None => CrossOutcome::Kept,
        Some(policy) => {
            let (outcome, n, changed) = policy.apply_traced(item, P::ID_FIELD);
            *redacted += n;
            match outcome {
                Outcome::Withheld => CrossOutcome::Withheld,
                Outcome::Kept(_) if !changed => CrossOutcome::Kept,
                Outcome::Kept(kept) => CrossOutcome::Changed(kept.encode()),
            }
        }
    };
    Ok(CrossedItem {
        mapped: text,
        outcome,
    })
}

#[doc(hidden)]
pub mod adapter {
    //! Glue between the generated WIT bindings and [`EntityPlugin`].
    use super::*;
    use crate::exports::gold::entity::plugin as wit;

    fn pairs(r: &[wit::Rename]) -> Vec<(&str, &str)> {
        r.iter()
            .map(|r| (r.canonical.as_str(), r.local.as_str()))
            .collect()
    }

    pub fn describe<P: EntityPlugin>() -> wit::Descriptor {
        wit::Descriptor {
            entity_type: P::ENTITY_TYPE.into(),
            plugin_version: P::VERSION.into(),
            interface_version: INTERFACE_VERSION.into(),
            item_schema: P::ITEM_SCHEMA.into(),
            id_field: P::ID_FIELD.into(),
        }
    }

    pub fn map<P: EntityPlugin>(req: wit::MapRequest) -> Result<Vec<String>, String> {
        map_batch::<P>(&pairs(&req.from_fields), &pairs(&req.to_fields), &req.items)
    }

    pub fn filter<P: EntityPlugin>(req: wit::FilterRequest) -> Result<wit::FilterResult, String> {
        let f = filter_batch::<P>(&req.policy, &req.items)?;
        Ok(wit::FilterResult {
            kept: f.kept,
            withheld: f.withheld,
            redacted_fields: f.redacted_fields,
        })
    }

    pub fn cross<P: EntityPlugin>(req: wit::CrossRequest) -> Result<wit::CrossResult, String> {
        let c = cross_batch::<P>(
            &pairs(&req.from_fields),
            &pairs(&req.to_fields),
            req.policy.as_deref(),
            &req.items,
        )?;
        Ok(to_wit(c))
    }

    /// The SDK's [`Crossed`] in the interface's types.
    pub fn to_wit(c: Crossed) -> wit::CrossResult {
        wit::CrossResult {
            items: c
                .items
                .into_iter()
                .map(|i| wit::Crossed {
                    mapped: i.mapped,
                    outcome: match i.outcome {
                        CrossOutcome::Kept => wit::Outcome::Kept,
                        CrossOutcome::Changed(s) => wit::Outcome::Changed(s),
                        CrossOutcome::Withheld => wit::Outcome::Withheld,
                    },
                })
                .collect(),
            redacted_fields: c.redacted_fields,
        }
    }
}

/// Exports `$plugin` (a type implementing [`EntityPlugin`]) as the WIT
/// interface `gold:entity/plugin@1.1.0`.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        struct __CdsGuest;
        impl $crate::exports::gold::entity::plugin::Guest for __CdsGuest {
            fn describe() -> $crate::exports::gold::entity::plugin::Descriptor {
                $crate::adapter::describe::<$plugin>()
            }
            fn map_batch(
                request: $crate::exports::gold::entity::plugin::MapRequest,
            ) -> Result<Vec<String>, String> {
                $crate::adapter::map::<$plugin>(request)
            }
            fn filter_batch(
                request: $crate::exports::gold::entity::plugin::FilterRequest,
            ) -> Result<$crate::exports::gold::entity::plugin::FilterResult, String> {
                $crate::adapter::filter::<$plugin>(request)
            }
            fn cross_batch(
                request: $crate::exports::gold::entity::plugin::CrossRequest,
            ) -> Result<$crate::exports::gold::entity::plugin::CrossResult, String> {
                $crate::adapter::cross::<$plugin>(request)
            }
        }
        $crate::__export_entity_plugin!(__CdsGuest with_types_in $crate);
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones_emails_timestamps() {
        assert_eq!(normalize_phone("+1-555-0100"), "+15550100");
        assert_eq!(normalize_phone("(555) 010 0100"), "5550100100");
        assert_eq!(normalize_phone("555-0100 ext 4"), "555-0100 ext 4");
        assert_eq!(normalize_email("  John@Example.COM "), "john@example.com");
        assert_eq!(
            normalize_timestamp("2026-01-12T12:00:00+02:00").unwrap(),
            "2026-01-12T10:00:00Z"
        );
        assert_eq!(
            normalize_timestamp("2026-01-12T10:00:00.5Z").unwrap(),
            "2026-01-12T10:00:00.500Z"
        );
        assert!(normalize_timestamp("yesterday").is_err());
    }

    struct Person;
    impl EntityPlugin for Person {
        const ENTITY_TYPE: &'static str = "people";
        const VERSION: &'static str = "0.1.0";
        const ITEM_SCHEMA: &'static str = "{}";
        const EMAIL_FIELDS: &'static [&'static str] = &["email"];
    }

    /// `cross_batch` is `map_batch` then `filter_batch`, told more briefly.
    #[test]
    fn cross_batch_agrees_with_map_then_filter() {
        let items: Vec<String> = [
            // Already in the receiving shape and kept as it is.
            r#"{"id":"a","org":"x","lastModified":"2026-01-01T00:00:00Z"}"#,
            // Renamed and normalised, then kept.
            r#"{"id":"b","email":" B@X.COM ","company":"y","lastModified":"2026-01-01T01:00:00+01:00"}"#,
            // Withheld.
            r#"{"id":"c","category":"family","lastModified":"2026-01-01T00:00:00Z"}"#,
            // Stripped.
            r#"{"id":"d","notes":"secret","lastModified":"2026-01-01T00:00:00Z"}"#,
        ]
        .map(String::from)
        .to_vec();
        let from = [("org", "company")];
        let to = [("org", "org")];
        let policy = r#"{"withhold":[{"field":"category","in":["family"]}],"strip":["notes"]}"#;
        let mapped = map_batch::<Person>(&from, &to, &items).unwrap();
        let filtered = filter_batch::<Person>(policy, &mapped).unwrap();
        let crossed = cross_batch::<Person>(&from, &to, Some(policy), &items).unwrap();
        assert_eq!(crossed.redacted_fields, filtered.redacted_fields);
        assert_eq!(crossed.redacted_fields, 1);
        let mut kept = filtered.kept.iter();
        for (i, c) in crossed.items.iter().enumerate() {
            let text = c.mapped.as_ref().unwrap_or(&items[i]);
            assert_eq!(*text, mapped[i], "item {i}");
            assert_eq!(c.mapped.is_none(), mapped[i] == items[i], "item {i}");
            match &c.outcome {
                CrossOutcome::Withheld => {
                    assert!(
                        filtered
                            .withheld
                            .contains(&["a", "b", "c", "d"][i].to_string())
                    )
                }
                CrossOutcome::Kept => assert_eq!(kept.next(), Some(text)),
                CrossOutcome::Changed(t) => {
                    assert_ne!(t, text);
                    assert_eq!(kept.next(), Some(t));
                }
            }
        }
        assert_eq!(kept.next(), None);
        let outcomes: Vec<&CrossOutcome> = crossed.items.iter().map(|c| &c.outcome).collect();
        assert!(matches!(
            outcomes[..],
            [
                CrossOutcome::Kept,
                CrossOutcome::Kept,
                CrossOutcome::Withheld,
                CrossOutcome::Changed(_)
            ]
        ));
        assert!(crossed.items[0].mapped.is_none() && crossed.items[1].mapped.is_some());
        // Without a policy only the shape changes.
        let shaped = cross_batch::<Person>(&from, &to, None, &items).unwrap();
        assert!(shaped.items.iter().all(|c| c.outcome == CrossOutcome::Kept));
        assert_eq!(shaped.redacted_fields, 0);
        assert!(cross_batch::<Person>(&from, &to, Some("{"), &items).is_err());
    }

    /// A plugin with hooks of its own: the SDK cannot know what they
    /// changed, so it compares encodings; the result must still be
    /// `map_batch` then `filter_batch`, and an item the hooks left alone
    /// still comes back as `none` and `Kept`.
    struct Strict;
    impl EntityPlugin for Strict {
        const ENTITY_TYPE: &'static str = "strict";
        const VERSION: &'static str = "0.1.0";
        const ITEM_SCHEMA: &'static str = "{}";
        fn normalize(item: &mut Item) -> Result<(), String> {
            if let Some(Value::String(c)) = item.get_mut("code") {
                *c = c.to_uppercase();
            }
            Ok(())
        }
        fn filter(policy: &Policy, mut item: Item) -> (Outcome, u64) {
            // Stricter than the policy, and calling a default hook inside.
            let _ = Person::normalize(&mut item);
            let removed = u64::from(item.shift_remove("secret").is_some());
            let (o, n) = policy.apply(item, Self::ID_FIELD);
            (o, n + removed)
        }
    }

    #[test]
    fn own_hooks_are_compared_not_trusted() {
        let items: Vec<String> = [
            r#"{"id":"a","code":"X","lastModified":"2026-01-01T00:00:00Z"}"#,
            r#"{"id":"b","code":"x","lastModified":"2026-01-01T00:00:00Z"}"#,
            r#"{"id":"c","secret":1,"lastModified":"2026-01-01T00:00:00Z"}"#,
            r#"{"id":"d","notes":"n","lastModified":"2026-01-01T00:00:00Z"}"#,
        ]
        .map(String::from)
        .to_vec();
        let policy = r#"{"strip":["notes"]}"#;
        let mapped = map_batch::<Strict>(&[], &[], &items).unwrap();
        let filtered = filter_batch::<Strict>(policy, &mapped).unwrap();
        let crossed = cross_batch::<Strict>(&[], &[], Some(policy), &items).unwrap();
        assert_eq!(crossed.redacted_fields, filtered.redacted_fields);
        let texts: Vec<&String> = crossed
            .items
            .iter()
            .zip(&items)
            .map(|(c, s)| c.mapped.as_ref().unwrap_or(s))
            .collect();
        assert_eq!(texts, mapped.iter().collect::<Vec<_>>());
        let kept: Vec<&String> = crossed
            .items
            .iter()
            .zip(&texts)
            .map(|(c, t)| match &c.outcome {
                CrossOutcome::Changed(k) => k,
                _ => t,
            })
            .collect();
        assert_eq!(kept, filtered.kept.iter().collect::<Vec<_>>());
        let shape: Vec<(bool, &CrossOutcome)> = crossed
            .items
            .iter()
            .map(|c| (c.mapped.is_some(), &c.outcome))
            .collect();
        assert!(matches!(
            shape[..],
            [
                (false, CrossOutcome::Kept),
                (true, CrossOutcome::Kept),
                (false, CrossOutcome::Changed(_)),
                (false, CrossOutcome::Changed(_))
            ]
        ));
    }

    /// A plugin declaring every kind of normalisation, with the SDK's hooks.
    struct Mixed;
    impl EntityPlugin for Mixed {
        const ENTITY_TYPE: &'static str = "mixed";
        const VERSION: &'static str = "0.1.0";
        const ITEM_SCHEMA: &'static str = "{}";
        const EMAIL_FIELDS: &'static [&'static str] = &["email", "cc"];
        const PHONE_FIELDS: &'static [&'static str] = &["phone"];
        const ADDRESS_FIELDS: &'static [&'static str] = &["from", "to"];
        const TIMESTAMP_FIELDS: &'static [&'static str] = &["start"];
    }

    mod lazy_props {
        use super::*;
        use proptest::prelude::*;

        const KEYS: &[&str] = &[
            "id",
            "lastModified",
            "email",
            "cc",
            "phone",
            "from",
            "to",
            "start",
            "category",
            "visibility",
            "notes",
            "title",
            "org",
            "company",
            "tags",
            "na\"me",
            "é",
        ];

        fn text() -> impl Strategy<Value = String> {
            prop_oneof![
                Just(" John@Example.COM ".to_string()),
                Just("+1 (555) 010-0100".to_string()),
                Just("555-0100 ext 4".to_string()),
                Just("2026-01-12T12:00:00+02:00".to_string()),
                Just("2026-01-12T10:00:00Z".to_string()),
                Just("personal".to_string()),
                Just("family".to_string()),
                Just("private".to_string()),
                Just("Busy".to_string()),
                "[a-zA-Z@ .+\"\\\u{1}é-]{0,12}",
            ]
        }

        fn value() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::Bool),
                any::<i64>().prop_map(Value::from),
                any::<f64>()
                    .prop_filter("finite", |f| f.is_finite())
                    .prop_map(Value::from),
                text().prop_map(Value::String),
            ];
            leaf.prop_recursive(3, 16, 4, |inner| {
                prop_oneof![
                    proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                    proptest::collection::vec((proptest::sample::select(KEYS), inner), 0..4)
                        .prop_map(|kv| Value::Object(
                            kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
                        )),
                ]
            })
        }

        /// An item as the host sends it (`cds_json`), or, now and then,
        /// written by hand with a key twice or an escaped key.
        fn item() -> impl Strategy<Value = String> {
            let fields = proptest::collection::vec((proptest::sample::select(KEYS), value()), 0..9);
            let category = proptest::option::of(proptest::sample::select(
                &["personal", "family", "business"][..],
            ));
            (fields, any::<bool>(), 0u8..8, category).prop_map(
                |(fields, valid_time, hand, category)| {
                    let mut m = Item::new();
                    m.insert("id".into(), Value::String("x".into()));
                    if let Some(c) = category {
                        m.insert("category".into(), Value::String(c.into()));
                    }
                    m.insert(
                        "lastModified".into(),
                        Value::String(
                            if valid_time {
                                "2026-01-12T12:00:00+02:00"
                            } else {
                                "2026-01-12T10:00:00Z"
                            }
                            .into(),
                        ),
                    );
                    for (k, v) in fields {
                        m.insert(k.to_string(), v);
                    }
                    let s = cds_json::map_to_string(&m);
                    match hand {
                        // The same key twice: the last value, in the first place.
                        0 => format!("{},\"notes\":\"again\",\"id\":\"y\"}}", &s[..s.len() - 1]),
                        // An escaped key, and space around the values.
                        1 => format!("{{\"t\\u0069tle\": \"T\" , {}", &s[1..]),
                        _ => s,
                    }
                },
            )
        }

        fn policy() -> impl Strategy<Value = Option<String>> {
            let keys = || proptest::sample::subsequence(KEYS.to_vec(), 0..4);
            let withhold = prop_oneof![Just(vec!["category"]), keys()];
            proptest::option::of((withhold, keys(), keys(), any::<bool>()).prop_map(
                |(withhold, keep, strip, reduce)| {
                    let rule = |f: &str| serde_json::json!({"field": f, "in": ["family", "private", 1, true]});
                    let mut p = serde_json::json!({
                        "withhold": withhold.iter().map(|f| rule(f)).collect::<Vec<_>>(),
                        "strip": strip,
                    });
                    if reduce {
                        p["reduce"] = serde_json::json!([{
                            "when": [rule("category"), rule("visibility")],
                            "keep": keep,
                            "set": {"title": "Busy"},
                        }]);
                    }
                    p.to_string()
                },
            ))
        }

        fn renames() -> impl Strategy<Value = Vec<(&'static str, &'static str)>> {
            proptest::collection::vec(
                (
                    proptest::sample::select(KEYS),
                    proptest::sample::select(KEYS),
                ),
                0..3,
            )
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(3000))]

            /// The fast path gives exactly what parsing every item whole
            /// gives: the same mapped texts, outcomes, redaction count and
            /// errors.
            #[test]
            fn lazy_agrees_with_eager(
                items in proptest::collection::vec(item(), 1..6),
                from in renames(),
                to in renames(),
                policy in policy(),
            ) {
                let fast = cross_batch_with::<Mixed>(&from, &to, policy.as_deref(), &items, true);
                let slow = cross_batch_with::<Mixed>(&from, &to, policy.as_deref(), &items, false);
                prop_assert_eq!(fast, slow);
            }
        }
    }

    #[test]
    fn rename_keeps_order() {
        let item: Item = serde_json::from_str(r#"{"id":"1","company":"x","b":2}"#).unwrap();
        let out = rename_fields(item, &[("company", "organization")]);
        assert_eq!(
            serde_json::to_string(&out).unwrap(),
            r#"{"id":"1","organization":"x","b":2}"#
        );
    }
}
