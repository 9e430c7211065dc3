//! The `notes` entity plugin: a complete example of adding an entity type to
//! cross-domain-sync without rebuilding the host. See docs/plugins.md.

use cds_plugin_sdk::{EntityPlugin, Item, Value};

pub struct Notes;

impl EntityPlugin for Notes {
    const ENTITY_TYPE: &'static str = "notes";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const ITEM_SCHEMA: &'static str = include_str!("../schema.json");
    // `lastModified` is always normalised to UTC; name the other timestamps.
    const TIMESTAMP_FIELDS: &'static [&'static str] = &["remindAt"];

    /// Notes' own normalisation: a trimmed title, tags lower-cased, sorted,
    /// without duplicates.
    fn normalize(item: &mut Item) -> Result<(), String> {
        if let Some(Value::String(t)) = item.get_mut("title") {
            *t = t.trim().to_string();
        }
        if let Some(Value::Array(tags)) = item.get_mut("tags") {
            let mut clean: Vec<String> = tags
                .iter()
                .filter_map(Value::as_str)
                .map(|t| t.trim().to_lowercase())
                .collect();
            clean.sort();
            clean.dedup();
            *tags = clean.into_iter().map(Value::String).collect();
        }
        Ok(())
    }
}

// Only the wasm build exports the interface; a native build (for unit tests)
// is a plain library.
#[cfg(target_arch = "wasm32")]
cds_plugin_sdk::export_plugin!(Notes);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_cleaned_and_reminders_normalised() {
        let items = vec![
            r#"{"id":"n1","lastModified":"2026-01-12T12:00:00+02:00","title":" Milk ","tags":["Home","home","a"],"remindAt":"2026-01-13T08:00:00-01:00"}"#
                .to_string(),
        ];
        let out = cds_plugin_sdk::map_batch::<Notes>(&[], &[], &items).unwrap();
        assert_eq!(
            out[0],
            r#"{"id":"n1","lastModified":"2026-01-12T10:00:00Z","title":"Milk","tags":["a","home"],"remindAt":"2026-01-13T09:00:00Z"}"#
        );
    }
}
