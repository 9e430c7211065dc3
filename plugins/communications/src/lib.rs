//! The built-in `communications` plugin: metadata of an email, message or call.
//! Its schema is `schema.json`; mapping and filtering are the SDK's, driven by
//! the declarations below.

use cds_plugin_sdk::EntityPlugin;

pub struct Plugin;

impl EntityPlugin for Plugin {
    const ENTITY_TYPE: &'static str = "communications";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const ITEM_SCHEMA: &'static str = include_str!("../schema.json");
    const EMAIL_FIELDS: &'static [&'static str] = &[];
    const PHONE_FIELDS: &'static [&'static str] = &[];
    // `from` and `to[]` hold an address: an email is lower-cased, a phone
    // number reduced to its digits.
    const ADDRESS_FIELDS: &'static [&'static str] = &["from", "to"];
    const TIMESTAMP_FIELDS: &'static [&'static str] = &["timestamp"];
}

#[cfg(target_arch = "wasm32")]
cds_plugin_sdk::export_plugin!(Plugin);
