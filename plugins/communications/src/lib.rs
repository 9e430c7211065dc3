//! The built-in `communications` plugin: metadata of an email, message or call.
//! Its schema is `schema.json`; mapping and filtering are the SDK's, driven by
//! the declarations below.

use cds_plugin_sdk::Value;
use cds_plugin_sdk::{EntityPlugin, Item, normalize_email, normalize_phone};

pub struct Plugin;

impl EntityPlugin for Plugin {
    const ENTITY_TYPE: &'static str = "communications";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const ITEM_SCHEMA: &'static str = include_str!("../schema.json");
    const EMAIL_FIELDS: &'static [&'static str] = &[];
    const PHONE_FIELDS: &'static [&'static str] = &[];
    const TIMESTAMP_FIELDS: &'static [&'static str] = &["timestamp"];

    fn normalize(item: &mut Item) -> Result<(), String> {
        // `from` and `to[]` hold an address: an email is lower-cased, a phone
        // number reduced to its digits.
        for field in ["from", "to"] {
            match item.get_mut(field) {
                Some(Value::String(s)) => *s = normalize_address(s),
                Some(Value::Array(a)) => {
                    for v in a.iter_mut() {
                        if let Value::String(s) = v {
                            *s = normalize_address(s);
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
}

fn normalize_address(s: &str) -> String {
    if s.contains('@') {
        normalize_email(s)
    } else {
        normalize_phone(s)
    }
}

#[cfg(target_arch = "wasm32")]
cds_plugin_sdk::export_plugin!(Plugin);
