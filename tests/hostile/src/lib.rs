//! A hostile entity plugin for the host's sandbox tests. It handles the entity
//! type `hostile` and misbehaves as the first item of each batch asks, in its
//! `mode` field:
//!
//! - `loop`: never returns (CPU budget / wall-clock limit);
//! - `membomb`: allocates without end (memory cap);
//! - `trap`: hits `unreachable`;
//! - `malformed`: returns text that is not JSON;
//! - `drop`: filtering loses an item without withholding it;
//! - `invent`: mapping returns an extra item;
//! - `swap`: mapping returns the items in another order;
//! - `rename-id`: mapping changes an id;
//! - `leak`: filtering ignores the policy (returns stripped fields and
//!   withheld items);
//! - `withhold-all`: `cross-batch` withholds every item, policy or not;
//! - `reid`: `cross-batch` returns the first item changed, with another id;
//! - anything else: behaves (passes items through unchanged).
//!
//! Built for `wasm32-wasip2` (the standard way, importing WASI), these modes
//! also reach for what the host's deny-all WASI world must not give. Whatever
//! one gets goes into the first item's `got` field, where a test sees any
//! leak; a refusal becomes the batch's error, quoting what WASI answered:
//!
//! - `read-file`: reads `/etc/passwd`; `list-root`: lists `/` and `.`;
//! - `env`: the environment variables and the arguments;
//! - `socket`: connects to `127.0.0.1` at the item's `port`;
//! - `dns`: resolves `localhost`;
//! - `sleep`: sleeps an hour, then reports how long the clock says it slept;
//! - `time`: the wall clock's seconds since the Unix epoch;
//! - `random`: eight random bytes, as hex;
//! - `shout`: writes 1 MiB to stdout and to stderr, then behaves;
//! - `exit`: exits with status 3 (which WASI 0.2 reports as 1).
//!
//! Built as it is, it implements interface 1.1 (through the SDK's bindings),
//! and its `cross-batch` is its own `map-batch` then `filter-batch`, so every
//! misbehaviour reaches the host through either path. With the feature
//! `interface-1-0` it implements interface 1.0 (no `cross-batch`).

#[cfg(feature = "interface-1-0")]
mod v1_0 {
    wit_bindgen::generate!({
        path: "../../wit/archive/entity-1.0.0.wit",
        world: "entity-plugin",
    });
}
#[cfg(feature = "interface-1-0")]
use v1_0::exports::gold::entity::plugin as wit;

#[cfg(not(feature = "interface-1-0"))]
use cds_plugin_sdk::exports::gold::entity::plugin as wit;

use serde_json::Value;
use wit::{Descriptor, FilterRequest, FilterResult, Guest, MapRequest};

#[cfg(feature = "interface-1-0")]
const INTERFACE_VERSION: &str = "1.0.0";
#[cfg(not(feature = "interface-1-0"))]
const INTERFACE_VERSION: &str = cds_plugin_sdk::INTERFACE_VERSION;

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
            // costs little CPU time, so the memory cap is what stops it.
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

/// What the mode got from the world outside the sandbox (see the module
/// doc); nothing to get where the plugin imports nothing.
#[cfg(not(target_os = "wasi"))]
fn ambient(_mode: &str, _items: &[String]) -> Result<Option<String>, String> {
    Ok(None)
}

#[cfg(target_os = "wasi")]
fn ambient(mode: &str, items: &[String]) -> Result<Option<String>, String> {
    use std::io::Write;
    use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
    match mode {
        "read-file" => std::fs::read_to_string("/etc/passwd")
            .map(Some)
            .map_err(|e| format!("cannot read /etc/passwd: {e}")),
        "list-root" => {
            let mut seen = Vec::new();
            for dir in ["/", "."] {
                match std::fs::read_dir(dir) {
                    Ok(entries) => seen.extend(
                        entries
                            .flatten()
                            .map(|e| e.file_name().to_string_lossy().into_owned()),
                    ),
                    Err(e) => seen.push(format!("cannot list {dir}: {e}")),
                }
            }
            if seen.iter().all(|s| s.starts_with("cannot list")) {
                Err(seen.join("; "))
            } else {
                Ok(Some(seen.join(",")))
            }
        }
        "env" => {
            let got: Vec<String> = std::env::vars()
                .map(|(k, v)| format!("{k}={v}"))
                .chain(std::env::args())
                .collect();
            if got.is_empty() {
                Err("no environment variables and no arguments".into())
            } else {
                Ok(Some(got.join(";")))
            }
        }
        "socket" => {
            let port = items
                .first()
                .and_then(|s| serde_json::from_str::<Value>(s).ok())
                .and_then(|v| v.get("port").and_then(Value::as_u64))
                .unwrap_or(9);
            std::net::TcpStream::connect(("127.0.0.1", port as u16))
                .map(|_| Some(format!("connected to port {port}")))
                .map_err(|e| format!("cannot connect to 127.0.0.1:{port}: {e}"))
        }
        "dns" => std::net::ToSocketAddrs::to_socket_addrs(&("localhost", 80))
            .map(|a| Some(a.map(|a| a.to_string()).collect::<Vec<_>>().join(",")))
            .map_err(|e| format!("cannot resolve localhost: {e}")),
        "sleep" => {
            let t = Instant::now();
            std::thread::sleep(Duration::from_secs(3600));
            Ok(Some(t.elapsed().as_secs().to_string()))
        }
        "time" => Ok(Some(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(u64::MAX)
                .to_string(),
        )),
        "random" => {
            let mut b = [0u8; 8];
            getrandom::fill(&mut b).map_err(|e| format!("no random bytes: {e}"))?;
            Ok(Some(b.iter().map(|x| format!("{x:02x}")).collect()))
        }
        "shout" => {
            let line = [b'x'; 1024];
            for _ in 0..1024 {
                let _ = std::io::stdout().write_all(&line);
                let _ = std::io::stderr().write_all(&line);
            }
            Ok(None)
        }
        "exit" => std::process::exit(3),
        _ => Ok(None),
    }
}

impl Guest for Hostile {
    fn describe() -> Descriptor {
        Descriptor {
            entity_type: "hostile".into(),
            plugin_version: "0.1.0".into(),
            interface_version: INTERFACE_VERSION.into(),
            item_schema: SCHEMA.into(),
            id_field: "id".into(),
        }
    }

    fn map_batch(req: MapRequest) -> Result<Vec<String>, String> {
        let m = mode(&req.items);
        misbehave(&m);
        let mut items = req.items;
        if let Some(got) = ambient(&m, &items)? {
            let mut v: Value = serde_json::from_str(&items[0]).map_err(|e| e.to_string())?;
            v["got"] = Value::String(got);
            items[0] = v.to_string();
        }
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

    #[cfg(not(feature = "interface-1-0"))]
    fn cross_batch(req: wit::CrossRequest) -> Result<wit::CrossResult, String> {
        use wit::{CrossResult, Crossed, Outcome};
        let m = mode(&req.items);
        let inputs = req.items.clone();
        let mapped = Hostile::map_batch(MapRequest {
            from_domain: req.from_domain.clone(),
            to_domain: req.to_domain.clone(),
            from_fields: req.from_fields,
            to_fields: req.to_fields,
            items: req.items,
        })?;
        let text = |i: usize, s: &String| (inputs.get(i) != Some(s)).then(|| s.clone());
        let all = |outcome: Outcome| CrossResult {
            items: mapped
                .iter()
                .enumerate()
                .map(|(i, s)| Crossed {
                    mapped: text(i, s),
                    outcome: outcome.clone(),
                })
                .collect(),
            redacted_fields: 0,
        };
        match (m.as_str(), req.policy) {
            ("withhold-all", _) => Ok(all(Outcome::Withheld)),
            // What the host must refuse is the mapping: nothing to filter.
            ("malformed", _) | (_, None) => Ok(all(Outcome::Kept)),
            (_, Some(policy)) => {
                let f = Hostile::filter_batch(FilterRequest {
                    from_domain: req.from_domain,
                    to_domain: req.to_domain,
                    policy,
                    items: mapped.clone(),
                })?;
                // Each mapped item is withheld or else the next kept one, as
                // long as kept ones last (a dropping filter gives fewer).
                let mut kept = f.kept.into_iter();
                let mut items = Vec::new();
                for (i, s) in mapped.iter().enumerate() {
                    let id = id_of(s);
                    let outcome = if f.withheld.contains(&id) {
                        Outcome::Withheld
                    } else {
                        match kept.next() {
                            None => break,
                            Some(k) if m == "reid" && i == 0 => {
                                Outcome::Changed(k.replace("\"a\"", "\"not-a\""))
                            }
                            Some(k) if k == *s => Outcome::Kept,
                            Some(k) => Outcome::Changed(k),
                        }
                    };
                    items.push(Crossed {
                        mapped: text(i, s),
                        outcome,
                    });
                }
                Ok(CrossResult {
                    items,
                    redacted_fields: f.redacted_fields,
                })
            }
        }
    }
}

#[cfg(not(feature = "interface-1-0"))]
fn id_of(s: &str) -> String {
    serde_json::from_str::<Value>(s)
        .ok()
        .and_then(|v| v.get("id")?.as_str().map(String::from))
        .unwrap_or_default()
}

struct Honest;
impl cds_plugin_sdk::EntityPlugin for Honest {
    const ENTITY_TYPE: &'static str = "hostile";
    const VERSION: &'static str = "0.1.0";
    const ITEM_SCHEMA: &'static str = SCHEMA;
}

#[cfg(not(feature = "interface-1-0"))]
cds_plugin_sdk::__export_entity_plugin!(Hostile with_types_in cds_plugin_sdk);
#[cfg(feature = "interface-1-0")]
v1_0::export!(Hostile with_types_in v1_0);
