//! A hostile entity plugin for the host's sandbox tests. It handles the entity
//! type `hostile` and misbehaves as the first item of each batch asks, in its
//! `mode` field:
//!
//! - `loop`: never returns (CPU budget / wall-clock limit);
//! - `membomb`: allocates without end (memory cap);
//! - `trap`: hits `unreachable`;
//! - `malformed`: returns text that is not JSON;
//! - `drop`: `filter-batch` loses an item without withholding it;
//! - `invent`: `map-batch` returns an extra item;
//! - `swap`: `map-batch` returns the items in another order;
//! - `rename-id`: `map-batch` changes an id;
//! - `leak`: `filter-batch` ignores the policy (returns stripped fields and
//!   withheld items);
//! - anything else: behaves (passes items through unchanged).

use cds_plugin_sdk::exports::gold::entity::plugin::{
    Descriptor, FilterRequest, FilterResult, Guest, MapRequest,
};
use serde_json::Value;

struct Hostile;

const SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "required": ["id", "lastModified"],
  "properties": {"id": {"type": "string"}, "lastModified": {"type": "string"}}
}"#;

fn mode(items: &[String]) -> String {
    items
        .first()
        .and_then(|s| serde_json::from_str::<Value>(s).ok())
        .and_then(|v| v.get("mode").and_then(Value::as_str).map(String::from))
        .unwrap_or_default()
}

fn misbehave(mode: &str) {
    match mode {
        "loop" => {
            let mut x: u64 = 1;
            loop {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                if x == 42 {
                    break;
                }
            }
            std::hint::black_box(x);
        }
        "membomb" => {
            // Reserve without touching the pages: memory grows fast and
            // costs little fuel, so the memory cap is what stops it.
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                let mut v: Vec<u8> = Vec::with_capacity(16 << 20);
                v.push(1);
                hoard.push(v);
                std::hint::black_box(&hoard);
            }
        }
        "trap" => core::arch::wasm32::unreachable(),
        _ => {}
    }
}

impl Guest for Hostile {
    fn describe() -> Descriptor {
        Descriptor {
            entity_type: "hostile".into(),
            plugin_version: "0.1.0".into(),
            interface_version: "1.0.0".into(),
            item_schema: SCHEMA.into(),
            id_field: "id".into(),
        }
    }

    fn map_batch(req: MapRequest) -> Result<Vec<String>, String> {
        let m = mode(&req.items);
        misbehave(&m);
        let mut items = req.items;
        match m.as_str() {
            "malformed" => items[0] = "{not json".into(),
            "invent" => items.push(r#"{"id":"invented","lastModified":"x"}"#.into()),
            "swap" if items.len() > 1 => items.swap(0, 1),
            "rename-id" => {
                let mut v: Value = serde_json::from_str(&items[0]).map_err(|e| e.to_string())?;
                v["id"] = Value::String("someone-else".into());
                items[0] = v.to_string();
            }
            _ => {}
        }
        Ok(items)
    }

    fn filter_batch(req: FilterRequest) -> Result<FilterResult, String> {
        let m = mode(&req.items);
        let mut kept = req.items;
        if m == "drop" {
            kept.pop();
        }
        // Every mode but `leak` applies the policy honestly.
        if m != "leak" {
            let f = cds_plugin_sdk::filter_batch::<Honest>(&req.policy, &kept)?;
            return Ok(FilterResult {
                kept: f.kept,
                withheld: f.withheld,
                redacted_fields: f.redacted_fields,
            });
        }
        Ok(FilterResult {
            kept,
            withheld: Vec::new(),
            redacted_fields: 0,
        })
    }
}

struct Honest;
impl cds_plugin_sdk::EntityPlugin for Honest {
    const ENTITY_TYPE: &'static str = "hostile";
    const VERSION: &'static str = "0.1.0";
    const ITEM_SCHEMA: &'static str = SCHEMA;
}

cds_plugin_sdk::__export_entity_plugin!(Hostile with_types_in cds_plugin_sdk);
