//! Measures one plugin's logic built different ways (issue 19): for each
//! component given, its size, its first load (compile + check, empty cache),
//! a cached load, `describe`, and a map + filter of batches of 1 and 10,000
//! notes through the registry, the path a sync takes. The first batch size
//! shows the fixed cost of a call (for a WASI plugin, its deny-all context
//! too), the second the cost per item. Prints Markdown rows for
//! BENCHMARKS.md.
//!
//! Run (builds of `examples/plugins/notes`, as `host/tests/notes_plugin.rs`
//! makes them):
//! `cargo run --release -p cross-domain-sync --example bench_plugin_builds --
//!  unknown=target/test-plugins/wasm32-unknown-unknown/release/notes_plugin.wasm
//!  wasip2=target/test-plugins-wasm32-wasip2/wasm32-wasip2/release/notes_plugin.wasm`

use cds::merge::Item;
use cds::plugin::runtime::{Compiled, Limits, Runtime, read_plugin_file};
use cds::plugin::{Registry, Shapes};
use serde_json::json;
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn notes(n: usize) -> Vec<Item> {
    (0..n)
        .map(|i| {
            let v = json!({
                "id": format!("note-{i:05}"),
                "lastModified": "2026-01-12T12:00:00+02:00",
                "title": format!("  Note {i} "),
                "category": if i % 3 == 0 { "family" } else { "work" },
                "body": "Remember to bring the slides and the projector adapter.",
                "tags": ["a", "b"],
                "remindAt": "2026-01-13T09:00:00+01:00"
            });
            match v {
                serde_json::Value::Object(m) => m,
                _ => unreachable!("a json! object"),
            }
        })
        .collect()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let builds: Vec<(String, PathBuf)> = std::env::args()
        .skip(1)
        .map(|a| match a.split_once('=') {
            Some((label, path)) => (label.to_string(), PathBuf::from(path)),
            None => (a.clone(), PathBuf::from(a)),
        })
        .collect();
    if builds.is_empty() {
        return Err("give LABEL=PATH of each plugin component to compare (see the doc)".into());
    }
    // The notes type has no built-in policy: the tutorial's (docs/plugins.md).
    let policy: cds_policy::Policy = serde_json::from_value(json!({
        "withhold": [{"field": "category", "in": ["personal", "family"]}],
        "strip": ["body"]
    }))?;
    let none = Vec::new();
    let shapes = Shapes {
        from_domain: "personal",
        to_domain: "business",
        from_fields: &none,
        to_fields: &none,
    };
    println!(
        "| build | size | first load (compile) | cached load | describe | call of 1 item | \
         10,000 items | per item |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    for (label, path) in &builds {
        let (bytes, digest) = read_plugin_file(path)?;
        let cache = tempfile::tempdir()?;
        let rt = || Runtime::new(Limits::default(), Some(cache.path().to_path_buf()));
        let t = Instant::now();
        let first = rt()?.load("notes", &bytes, &digest, None)?;
        let cold = t.elapsed();
        assert_eq!(first.compiled, Compiled::Now);
        let mut cached = Vec::new();
        let mut describe = Vec::new();
        for _ in 0..7 {
            let r = rt()?;
            let t = Instant::now();
            let i = r.load("notes", &bytes, &digest, None)?;
            cached.push(t.elapsed());
            assert_eq!(i.compiled, Compiled::Cached);
            let t = Instant::now();
            r.describe(&i)?;
            describe.push(t.elapsed());
        }
        // The registry's path: install, then map + filter as a sync does.
        let home = tempfile::tempdir()?;
        let mut reg = Registry::open(rt()?, home.path())?;
        reg.add(path, "2026-12-04T00:00:00Z")?;
        let p = reg.get("notes")?;
        let mut per_size = Vec::new();
        for n in [1, 10_000] {
            let items = notes(n);
            let refs: Vec<&Item> = items.iter().collect();
            let mut times = Vec::new();
            for _ in 0..9 {
                let t = Instant::now();
                let out = p.map_filter(&reg.runtime, &shapes, Some(&policy), &refs)?;
                times.push(t.elapsed());
                assert!(out.items.len() <= n);
            }
            per_size.push(median(times));
        }
        let per_item = (per_size[1].saturating_sub(per_size[0])).as_secs_f64() * 1e6 / 9_999.0;
        println!(
            "| {label} | {} KB | {:.1} ms | {:.2} ms | {:.2} ms | {:.3} ms | {:.1} ms | {:.2} µs |",
            bytes.len() / 1000,
            ms(cold),
            ms(median(cached)),
            ms(median(describe)),
            ms(per_size[0]),
            ms(per_size[1]),
            per_item
        );
    }
    Ok(())
}
