//! The built-in `calendar` plugin: a calendar event or appointment.
//! Its schema is `schema.json`; mapping and filtering are the SDK's, driven by
//! the declarations below.

use cds_plugin_sdk::EntityPlugin;

pub struct Plugin;

impl EntityPlugin for Plugin {
    const ENTITY_TYPE: &'static str = "calendar";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const ITEM_SCHEMA: &'static str = include_str!("../schema.json");
    const EMAIL_FIELDS: &'static [&'static str] = &["attendees"];
    const PHONE_FIELDS: &'static [&'static str] = &[];
    const TIMESTAMP_FIELDS: &'static [&'static str] = &["start", "end"];
}

#[cfg(target_arch = "wasm32")]
cds_plugin_sdk::export_plugin!(Plugin);
