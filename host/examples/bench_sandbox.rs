//! Measures the plugin sandbox: start-up (a compile, a cached load and the
//! load of the compiled form the binary ships, per built-in plugin) and the cost of each interruption mechanism on one
//! 10,000-contact map+filter batch. Prints Markdown rows for BENCHMARKS.md.
//!
//! Run: `cargo run --release -p cross-domain-sync --example bench_sandbox`

use cds::config::Config;
use cds::merge::Item;
use cds::plugin::runtime::{Compiled, Interruption, Limits, Runtime};
use cds::plugin::{Registry, Shapes};
use serde_json::json;
use std::time::{Duration, Instant};

fn contacts(n: usize) -> Vec<Item> {
    (0..n)
        .map(|i| {
            json!({
                "id": format!("contact-{i:05}"), "name": format!("Person {i}"),
                "email": format!(" Person.{i}@Example.com "), "phone": format!("+1-555-{:04}", i % 10000),
                "company": "Acme Corp", "title": "Engineer", "category": if i % 3 == 0 { "family" } else { "business" },
                "notes": "met at the conference", "birthday": "1980-01-01",
                "lastModified": "2026-01-12T12:00:00+02:00", "tags": ["a", "b"]
            })
            .as_object()
            .unwrap()
            .clone()
        })
        .collect()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let names = cds::plugin::builtin_names();
    println!("## Start-up per plugin (release host)\n");
    println!(
        "| plugin | compile + check | cached load + check | shipped load + check | \
         shipped + describe |"
    );
    println!("| --- | --- | --- | --- | --- |");
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    for name in &names {
        let (bytes, digest) = cds::plugin::builtin_component(name).unwrap();
        let cache = tempfile::tempdir().unwrap();
        let rt = || Runtime::new(Limits::default(), Some(cache.path().to_path_buf())).unwrap();
        let first = rt();
        let t = Instant::now();
        let i = first.load(name, bytes, digest, None).unwrap();
        let cold = t.elapsed();
        assert_eq!(i.compiled, Compiled::Now);
        let mut warm = Vec::new();
        for _ in 0..5 {
            let r = rt();
            let t = Instant::now();
            let i = r.load(name, bytes, digest, None).unwrap();
            warm.push(t.elapsed());
            assert_eq!(i.compiled, Compiled::Cached);
        }
        // Shipped: the registry loads a built-in's compiled form from the
        // binary; the second figure adds `describe` and its schema.
        let plugins = tempfile::tempdir().unwrap();
        let mut shipped = Vec::new();
        for _ in 0..5 {
            let reg = Registry::open(
                Runtime::new(Limits::default(), None).unwrap(),
                plugins.path(),
            )
            .unwrap();
            let t = Instant::now();
            let p = reg.get(name).unwrap();
            shipped.push(t.elapsed());
            assert_eq!(p.instance.compiled, Compiled::Shipped);
        }
        let empty = tempfile::tempdir().unwrap();
        let mut bare = Vec::new();
        for _ in 0..5 {
            let r = Runtime::new(Limits::default(), Some(empty.path().to_path_buf())).unwrap();
            let t = Instant::now();
            let i = r
                .load(name, bytes, digest, cds::plugin::builtin_precompiled(name))
                .unwrap();
            bare.push(t.elapsed());
            assert_eq!(i.compiled, Compiled::Shipped);
        }
        println!(
            "| {name} | {:.1} ms | {:.2} ms | {:.2} ms | {:.2} ms |",
            ms(cold),
            ms(median(warm)),
            ms(median(bare)),
            ms(median(shipped))
        );
    }

    let items = contacts(10_000);
    let bytes: usize = items
        .iter()
        .map(|i| serde_json::to_string(i).unwrap().len())
        .sum();
    let refs: Vec<&Item> = items.iter().collect();
    let policy = Config::default().policy("personal", "business", "contacts");
    let none = Vec::new();
    let shapes = Shapes {
        from_domain: "personal",
        to_domain: "business",
        from_fields: &none,
        to_fields: &none,
    };
    println!(
        "\n## Interruption cost: map + filter of 10,000 contacts ({:.1} MB), median of 7\n",
        bytes as f64 / 1e6
    );
    println!("| fuel | epoch | time | ratio to neither |");
    println!("| --- | --- | --- | --- |");
    let mut baseline = None;
    for (fuel, epoch) in [(false, false), (true, false), (false, true), (true, true)] {
        let cache = tempfile::tempdir().unwrap();
        let plugins = tempfile::tempdir().unwrap();
        let rt = Runtime::with_interruption(
            Limits::default(),
            Some(cache.path().to_path_buf()),
            Interruption { fuel, epoch },
        )
        .unwrap();
        let reg = Registry::open(rt, plugins.path()).unwrap();
        let p = reg.get("contacts").unwrap();
        let mut times = Vec::new();
        for _ in 0..7 {
            let t = Instant::now();
            let out = p
                .map_filter(&reg.runtime, &shapes, Some(&policy), &refs)
                .unwrap();
            times.push(t.elapsed());
            assert_eq!(out.items.len(), items.len());
        }
        let m = median(times);
        let base = *baseline.get_or_insert(m);
        println!(
            "| {} | {} | {:.1} ms | {:.2} |",
            if fuel { "on" } else { "off" },
            if epoch { "on" } else { "off" },
            m.as_secs_f64() * 1e3,
            m.as_secs_f64() / base.as_secs_f64()
        );
    }
}
