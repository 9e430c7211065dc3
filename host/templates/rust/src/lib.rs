//! The `{{name}}` entity plugin for cross-domain-sync. The SDK does the
//! renames, the normalisation these declarations ask for, and the crossing's
//! policy; see README.md.

use cds_plugin_sdk::EntityPlugin;

pub struct Plugin;

impl EntityPlugin for Plugin {
    const ENTITY_TYPE: &'static str = "{{name}}";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const ITEM_SCHEMA: &'static str = include_str!("../schema.json");
    /// Trimmed and lower-cased.
    const EMAIL_FIELDS: &'static [&'static str] = &["owner"];
    /// Converted to UTC with `Z` (`lastModified` always is).
    const TIMESTAMP_FIELDS: &'static [&'static str] = &["due"];
}

// Only the wasm build exports the interface; a native build (for the tests)
// is a plain library.
#[cfg(target_arch = "wasm32")]
cds_plugin_sdk::export_plugin!(Plugin);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_and_due_are_normalised_and_unknown_fields_kept() {
        let items = vec![
            r#"{"id":"a","title":"t","owner":" Ann@Example.COM ","due":"2026-03-31T17:00:00+02:00","x":{"n":2.50},"lastModified":"2026-01-12T10:00:00Z"}"#
                .to_string(),
        ];
        let out = cds_plugin_sdk::map_batch::<Plugin>(&[], &[], &items).unwrap();
        assert_eq!(
            out[0],
            r#"{"id":"a","title":"t","owner":"ann@example.com","due":"2026-03-31T15:00:00Z","x":{"n":2.50},"lastModified":"2026-01-12T10:00:00Z"}"#
        );
    }

    #[test]
    fn the_policy_withholds_and_strips() {
        let policy = r#"{"withhold":[{"field":"category","in":["personal"]}],"strip":["notes"]}"#;
        let items = vec![
            r#"{"id":"a","category":"personal","lastModified":"2026-01-12T10:00:00Z"}"#.to_string(),
            r#"{"id":"b","notes":"n","lastModified":"2026-01-12T10:00:00Z"}"#.to_string(),
        ];
        let out = cds_plugin_sdk::filter_batch::<Plugin>(policy, &items).unwrap();
        assert_eq!(out.withheld, vec!["a"]);
        assert_eq!(out.kept, vec![r#"{"id":"b","lastModified":"2026-01-12T10:00:00Z"}"#]);
    }
}
