//! Field names that a policy or a mapping gives, checked against the fields
//! the entity type knows, before a sync reads anything.
//!
//! A policy that strips `birthdy` strips nothing, and the birthday the user
//! meant to keep private crosses; a withhold rule on `categroy` withholds
//! nothing. So a name the type's schema does not list is refused, naming
//! where it is and the nearest known field. A field of the user's own (the
//! contract carries unknown fields along) is declared at
//! `$.extraFields.<entity>` in the configuration.

use crate::config::{Config, EntityMappings};
use crate::error::{Error, Result};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;

/// Fields every item may have, whatever its schema lists.
const COMMON: [&str; 5] = [
    "id",
    "lastModified",
    "category",
    "syncedAt",
    "syncDirection",
];

/// The fields `entity` knows: its schema's top-level `properties`, the
/// common ones, its id field and what the configuration declares. `None`
/// when the schema lists no properties (nothing can then be checked).
pub fn known(schema: &Value, id_field: &str, extra: &[String]) -> Option<BTreeSet<String>> {
    let props = schema.get("properties")?.as_object()?;
    let mut known: BTreeSet<String> = props.keys().cloned().collect();
    known.extend(COMMON.iter().map(|s| s.to_string()));
    known.insert(id_field.to_string());
    known.extend(extra.iter().cloned());
    Some(known)
}

/// The known field nearest to `name`, if one is near enough to be a typo.
fn nearest<'k>(name: &str, known: &'k BTreeSet<String>) -> Option<&'k str> {
    let lower = name.to_lowercase();
    known
        .iter()
        .map(|k| (strsim::damerau_levenshtein(&lower, &k.to_lowercase()), k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k.as_str())
}

/// Every field name the policies of the crossings between `a` and `b` and the
/// mappings of both domains give for `entity`, with its JSON path.
fn named(
    config: &Config,
    mappings: &EntityMappings,
    [a, b]: [&str; 2],
    entity: &str,
) -> Vec<(&'static str, String, String)> {
    let mut out = Vec::new();
    for (from, to) in [(a, b), (b, a)] {
        let crossing = format!("{from}->{to}");
        let Some(p) = config.policies.get(&crossing).and_then(|m| m.get(entity)) else {
            continue;
        };
        let at = format!("$.policies[\"{crossing}\"].{entity}");
        for (i, r) in p.withhold.iter().enumerate() {
            out.push((
                "config",
                format!("{at}.withhold[{i}].field"),
                r.field.clone(),
            ));
        }
        for (i, r) in p.reduce.iter().enumerate() {
            for (j, w) in r.when.iter().enumerate() {
                let path = format!("{at}.reduce[{i}].when[{j}].field");
                out.push(("config", path, w.field.clone()));
            }
            for (j, k) in r.keep.iter().enumerate() {
                out.push(("config", format!("{at}.reduce[{i}].keep[{j}]"), k.clone()));
            }
            for k in r.set.keys() {
                out.push(("config", format!("{at}.reduce[{i}].set"), k.clone()));
            }
        }
        for (i, f) in p.strip.iter().enumerate() {
            out.push(("config", format!("{at}.strip[{i}]"), f.clone()));
        }
    }
    for domain in [a, b] {
        for (canonical, _) in mappings.fields(domain, entity) {
            let path = format!("$.{domain}.{entity}");
            out.push(("mappings", path, canonical));
        }
    }
    out
}

/// Refuses a policy or mapping of `entity` between domains `a` and `b` that
/// names a field `entity` does not know.
pub fn check(
    config: &Config,
    mappings: &EntityMappings,
    [config_path, mappings_path]: [&Path; 2],
    domains: [&str; 2],
    entity: &str,
    known: &BTreeSet<String>,
) -> Result<()> {
    for (file, at, name) in named(config, mappings, domains, entity) {
        if known.contains(&name) {
            continue;
        }
        let file = if file == "config" {
            config_path
        } else {
            mappings_path
        };
        let hint = match nearest(&name, known) {
            Some(k) => format!("did you mean `{k}`? "),
            None => String::new(),
        };
        return Err(Error::invalid(format!(
            "`{}` at {at}: `{name}` is not a field of {entity}; {hint}A name the type does not \
             know never matches, so what it was meant to keep private would cross. Fields of \
             {entity}: {}. If `{name}` is a field of your own, declare it in the configuration \
             at $.extraFields.{entity}",
            file.display(),
            known
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .with("file", file.display().to_string())
        .with("path", at)
        .with("field", name));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn near_misses_are_suggested_and_far_ones_not() {
        let schema = json!({"properties": {"name": {}, "birthday": {}, "email": {}}});
        let k = known(&schema, "id", &[]).unwrap();
        assert_eq!(nearest("birthdy", &k), Some("birthday"));
        assert_eq!(nearest("categroy", &k), Some("category"));
        assert_eq!(nearest("Email", &k), Some("email"));
        assert_eq!(nearest("wholly-unrelated", &k), None);
        assert!(known(&json!({"type": "object"}), "id", &[]).is_none());
    }
}
