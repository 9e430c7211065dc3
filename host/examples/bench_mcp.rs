//! Latency of 100 small syncs: in one MCP session (`serve`) against 100
//! separate command-line runs, on a copy of the example data (one entity
//! type, contacts, personal -> business, after a first sync so that each run
//! is a re-sync that finds nothing to do plus one edit). Median and 95th
//! percentile. Prints Markdown rows for BENCHMARKS.md.
//!
//! Run: `cargo run --release -p cross-domain-sync --example bench_mcp`
//! (uses target/release/cross-domain-sync; build it first).

use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let p = e.path();
        let dest = to.join(e.file_name());
        if p.is_dir() {
            copy_dir(&p, &dest);
        } else {
            std::fs::copy(&p, &dest).unwrap();
        }
    }
}

fn stats(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    (ms(v[v.len() / 2]), ms(v[(v.len() * 95).div_ceil(100) - 1]))
}

/// Touches one contact so each sync has one change to carry.
fn touch(dir: &Path, i: usize) {
    let path = dir.join("data/personal/contacts.json");
    let mut v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let items = v["contacts"].as_array_mut().unwrap();
    let it = &mut items[i % 60];
    it["title"] = json!(format!("Engineer {i}"));
    it["lastModified"] = json!(format!("2026-06-01T00:{:02}:{:02}Z", i / 60, i % 60));
    std::fs::write(&path, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let bin = root.join("target/release/cross-domain-sync");
    assert!(bin.exists(), "build target/release/cross-domain-sync first");
    let args = [
        "--source",
        "personal",
        "--target",
        "business",
        "--entities",
        "contacts",
        "--user",
        "alice",
    ];
    let fresh = || {
        let d = tempfile::tempdir().unwrap();
        copy_dir(&root.join("examples/data"), &d.path().join("data"));
        std::fs::copy(
            root.join("examples/cross_domain_config.json"),
            d.path().join("cross_domain_config.json"),
        )
        .unwrap();
        std::fs::copy(
            root.join("examples/entity_mappings.json"),
            d.path().join("entity_mappings.json"),
        )
        .unwrap();
        let out = Command::new(&bin)
            .args(args)
            .arg("--json")
            .current_dir(d.path())
            .output()
            .unwrap();
        assert!(out.status.success());
        d
    };

    // 100 command-line runs.
    let d = fresh();
    let mut cli = Vec::new();
    for i in 0..100 {
        touch(d.path(), i);
        let t = Instant::now();
        let out = Command::new(&bin)
            .args(args)
            .arg("--json")
            .current_dir(d.path())
            .output()
            .unwrap();
        cli.push(t.elapsed());
        assert!(out.status.success());
    }

    // 100 calls in one MCP session.
    let d = fresh();
    let mut child = Command::new(&bin)
        .arg("serve")
        .current_dir(d.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut send = |v: Value| {
        writeln!(stdin, "{v}").unwrap();
        stdin.flush().unwrap();
    };
    let mut wait_for = |id: i64| loop {
        let v: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
        if v["id"] == json!(id) {
            return v;
        }
    };
    send(
        json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": "2025-11-25",
        "capabilities": {}, "clientInfo": {"name": "bench", "version": "0"}}}),
    );
    wait_for(0);
    send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
    let mut mcp = Vec::new();
    for i in 1..=100 {
        touch(d.path(), i);
        let t = Instant::now();
        send(
            json!({"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": {"name": "gold_cross_domain_sync",
            "arguments": {"source": "personal", "target": "business", "entities": ["contacts"], "user": "alice"}}}),
        );
        let r = wait_for(i as i64);
        mcp.push(t.elapsed());
        assert_eq!(r["result"]["structuredContent"]["status"], "success", "{r}");
    }
    drop(stdin);
    let _ = child.wait();

    let (cm, cp) = stats(cli);
    let (mm, mp) = stats(mcp);
    println!("| way | median | 95th percentile |");
    println!("| --- | --- | --- |");
    println!("| 100 command-line runs | {cm:.1} ms | {cp:.1} ms |");
    println!("| 100 calls in one MCP session | {mm:.1} ms | {mp:.1} ms |");
    println!(
        "| ratio (MCP / command line) | {:.2} | {:.2} |",
        mm / cm,
        mp / cp
    );
}
