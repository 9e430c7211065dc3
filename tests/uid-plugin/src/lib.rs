//! Test fixture: the `bookmarks` entity type, whose items are identified by
//! `uid` (the plugin interface lets a plugin name its id field). The host
//! must use that field everywhere: sync, conflicts, resolve and undo.

use cds_plugin_sdk::EntityPlugin;

pub struct Bookmarks;

impl EntityPlugin for Bookmarks {
    const ENTITY_TYPE: &'static str = "bookmarks";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const ID_FIELD: &'static str = "uid";
    const ITEM_SCHEMA: &'static str = r#"{
      "$schema": "https://json-schema.org/draft/2020-12/schema",
      "title": "bookmarks",
      "type": "object",
      "required": ["uid", "lastModified", "url"],
      "properties": {
        "uid": { "type": "string", "minLength": 1, "maxLength": 256 },
        "lastModified": { "type": "string", "format": "date-time" },
        "category": { "type": "string" },
        "syncedAt": { "type": "string", "format": "date-time" },
        "syncDirection": { "type": "string" },
        "url": { "type": "string", "minLength": 1 },
        "label": { "type": "string" }
      },
      "additionalProperties": true
    }"#;
}

#[cfg(target_arch = "wasm32")]
cds_plugin_sdk::export_plugin!(Bookmarks);
