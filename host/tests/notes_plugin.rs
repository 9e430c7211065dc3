//! A new entity type end to end, without rebuilding the host: build the
//! example `notes` plugin, install it with `plugins add`, list it, sync with
//! it, and refuse it once its file changes.

mod common;

use common::{Scratch, one_way};
use serde_json::json;

#[test]
fn notes_installs_lists_syncs_and_is_pinned() {
    let wasm = common::notes_plugin();
    let s = Scratch::new();
    s.config(json!({
        "policies": {
            "personal->business": {
                "notes": {"withhold": [{"field": "category", "in": ["personal"]}], "strip": ["body"]}
            }
        }
    }));

    let out = s.run(&["plugins", "add", wasm.to_str().unwrap()]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    assert!(common::stdout(&out).contains("Installed plugin `notes` 1.0.0 (interface 1.1.0)"));
    let lock: serde_json::Value =
        serde_json::from_slice(&std::fs::read(s.path().join("plugins/plugins.lock")).unwrap())
            .unwrap();
    let digest = cds::plugin::runtime::sha256_hex(&std::fs::read(&wasm).unwrap());
    assert_eq!(lock["plugins"][0]["entityType"], "notes");
    assert_eq!(lock["plugins"][0]["sha256"], digest);

    let out = s.run(&["plugins", "list"]);
    let text = common::stdout(&out);
    assert!(out.status.success(), "{text}{}", common::stderr(&out));
    for want in [
        "contacts",
        "built-in",
        "notes",
        &digest,
        "plugins/notes.wasm",
    ] {
        assert!(text.contains(want), "`{want}` missing from:\n{text}");
    }

    // The new type is in the invocation schema and syncs.
    let out = s.run(&["schema", "invocation"]);
    assert!(common::stdout(&out).contains("\"notes\""));
    s.write("personal", "notes", json!([
        {"id": "n1", "title": " Buy milk ", "tags": ["Home", "home"], "category": "personal", "lastModified": "2026-01-12T10:00:00Z"},
        {"id": "n2", "title": "Quarterly plan", "body": "draft numbers", "category": "business", "pinned": true, "lastModified": "2026-01-12T11:00:00+01:00"}
    ]));
    let (code, rec) = s.run_json(&[
        "--source",
        "personal",
        "--target",
        "business",
        "--entities",
        "notes",
    ]);
    assert_eq!(code, 0, "{rec}");
    assert_eq!(rec["results"]["notes"]["added"], 1);
    assert_eq!(rec["results"]["notes"]["withheld"], 1);
    let b = s.items("business", "notes");
    assert_eq!(b.len(), 1);
    assert_eq!(b[0]["id"], "n2");
    assert!(
        b[0].get("body").is_none(),
        "body stripped by the configured policy"
    );
    assert_eq!(b[0]["lastModified"], "2026-01-12T10:00:00Z");
    assert_eq!(b[0]["pinned"], true);
    let audit = s.audit();
    let sync = audit
        .iter()
        .rev()
        .find(|e| e["action"] == "DATA_SYNC")
        .unwrap();
    assert_eq!(sync["plugins"]["notes"], digest);

    // Tampering with the installed file: refused, saying so.
    let installed = s.path().join("plugins/notes.wasm");
    let mut bytes = std::fs::read(&installed).unwrap();
    bytes.push(0);
    std::fs::write(&installed, bytes).unwrap();
    let (code, rec) = s.run_json(&[
        "--source",
        "personal",
        "--target",
        "business",
        "--entities",
        "notes",
    ]);
    assert_eq!(code, 9, "{rec}");
    assert_eq!(rec["errors"][0]["code"], "PLUGIN_ERROR");
    let msg = rec["errors"][0]["message"].as_str().unwrap();
    assert!(msg.contains("changed since it was installed"), "{msg}");
    // Built-in types are unaffected.
    let (code, _) = s.run_json(&one_way("contacts"));
    assert_eq!(code, 0);
}

#[test]
fn plugins_add_refuses_bad_files() {
    let s = Scratch::new();
    s.write_raw("junk.wasm", "not wasm");
    let (code, v) = s.run_json(&["plugins", "add", "junk.wasm"]);
    assert_eq!(code, 9);
    assert!(
        v["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("not a valid WebAssembly component")
    );
    let (code, v) = s.run_json(&["plugins", "add", "missing.wasm"]);
    assert_eq!(code, 8, "{v}");
    assert!(
        v["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("missing.wasm")
    );
    // Both attempts are audited.
    let installs: Vec<_> = s
        .audit()
        .into_iter()
        .filter(|e| e["action"] == "PLUGIN_INSTALL")
        .collect();
    assert_eq!(installs.len(), 2);
    assert!(installs.iter().all(|e| e["outcome"] == "failed"));
}

/// The notes every language's plugin is given: unicode, nested unknown
/// fields, offsets, fractions, lowercase `t`/`z`, messy tags, and numbers and
/// keys that a double or a JavaScript object would change (written as text,
/// so that the file holds them exactly so).
const NOTES: &str = r#"{"notes": [
  {"id": "n1", "title": " Buy milk ", "tags": ["Home", "home"], "category": "personal", "lastModified": "2026-01-12T10:00:00Z"},
  {"id": "n2", "title": " Quarterly plan ", "body": "draft numbers", "tags": ["Work", " work", "Q1"], "category": "business", "pinned": true, "lastModified": "2026-01-12T11:00:00+01:00"},
  {"id": "n3", "title": "Ünïcode ✓", "category": "business", "x-extra": {"nested": [1, 2.50, "3"]}, "lastModified": "2026-01-12T12:00:00.5-05:00"},
  {"id": "n4", "title": "Tea\t", "tags": ["b", "A", "b ", "😀", "\uffee"], "x-none": null, "remindAt": "2026-03-01T00:15:00.123456789+05:30", "lastModified": "2026-01-12t12:00:00z"},
  {"id": "n5", "title": "Numbers", "category": "business", "2": "a key JavaScript would move", "big": 12345678901234567890, "x": {"f": 1.0, "e": 1E+2, "z": -0, "1": 0.10}, "lastModified": "2026-01-12T12:00:00Z"}
]}"#;

/// Installs `wasm` as the notes plugin in a new folder, syncs [`NOTES`]
/// personal -> business through it, and returns what business got, and the
/// business file's text.
fn sync_notes_with(wasm: &std::path::Path) -> (Vec<serde_json::Value>, String) {
    let s = Scratch::new();
    s.config(json!({
        "policies": {
            "personal->business": {
                "notes": {"withhold": [{"field": "category", "in": ["personal"]}], "strip": ["body"]}
            }
        }
    }));
    let out = s.run(&["plugins", "add", wasm.to_str().unwrap()]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    s.write_raw("data/personal/notes.json", NOTES);
    let (code, rec) = s.run_json(&one_way("notes"));
    assert_eq!(code, 0, "{rec}");
    assert_eq!(rec["results"]["notes"]["added"], 4, "{rec}");
    let mut got = s.items("business", "notes");
    for n in &mut got {
        // The host's stamp of when it synced, not the plugin's doing.
        n.as_object_mut().unwrap().remove("syncedAt");
    }
    let text = std::fs::read_to_string(s.data().join("business/notes.json")).unwrap();
    // The file's text without the sync's own stamps, which differ by run.
    let text = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("\"syncedAt\""))
        .collect::<Vec<_>>()
        .join("\n");
    (got, text)
}

/// What every language's notes plugin must make of [`NOTES`].
fn assert_notes_synced(got: &[serde_json::Value], text: &str) {
    assert_eq!(got.len(), 4);
    assert!(got.iter().all(|n| n.get("body").is_none()));
    assert_eq!(got[0]["title"], "Quarterly plan");
    assert_eq!(got[0]["tags"], json!(["q1", "work"]));
    assert_eq!(got[1]["lastModified"], "2026-01-12T17:00:00.500Z");
    assert_eq!(got[2]["remindAt"], "2026-02-28T18:45:00.123456789Z");
    // Sorted by code point, as Rust sorts strings.
    assert_eq!(got[2]["tags"], json!(["a", "b", "\u{ffee}", "😀"]));
    for exact in [
        "\"nested\": [\n          1,\n          2.50,",
        "\"big\": 12345678901234567890,",
        "\"f\": 1.0,",
        // The host writes an exponent's `E` as serde_json does, `e`.
        "\"e\": 1e+2,",
        "\"z\": -0,",
        "\"1\": 0.10",
        "\"category\": \"business\",\n      \"2\": \"a key JavaScript would move\",",
    ] {
        assert!(
            text.contains(exact),
            "`{exact}` is not in what was synced:\n{text}"
        );
    }
}

#[test]
fn the_notes_plugin_keeps_what_it_does_not_know_exactly() {
    let (rust, text) = sync_notes_with(&common::notes_plugin());
    assert_notes_synced(&rust, &text);
}

#[test]
fn the_notes_plugin_built_the_standard_way_syncs_the_same() {
    // `cargo build --target wasm32-wasip2` with no linker setting: the
    // component imports WASI, gets the deny-all world, and gives exactly what
    // the zero-import build gives.
    let plain = sync_notes_with(&common::notes_plugin());
    let wasip2 = sync_notes_with(&common::notes_plugin_wasip2());
    assert_eq!(plain, wasip2);
    assert_notes_synced(&wasip2.0, &wasip2.1);
}

#[test]
fn the_notes_plugin_in_python_syncs_the_same() {
    // componentize-py (PyPI) builds examples/plugins/notes-py from source
    // against wit/entity.wit and the Python guest library; the component
    // imports WASI, as CPython needs, and gives what the Rust plugin gives,
    // to the byte.
    let python = sync_notes_with(&common::notes_plugin_python());
    let rust = sync_notes_with(&common::notes_plugin());
    assert_eq!(python, rust);
    assert_notes_synced(&python.0, &python.1);
}

#[test]
fn the_notes_plugin_in_javascript_syncs_the_same() {
    // componentize-js (npm) builds examples/plugins/notes-js from source
    // against wit/entity.wit and the JavaScript guest library; the component
    // imports WASI, as its JavaScript engine needs, and gives what the Rust
    // plugin gives, to the byte: numbers a double would change and keys a
    // JavaScript object would move included.
    let js = sync_notes_with(&common::notes_plugin_js());
    let rust = sync_notes_with(&common::notes_plugin());
    assert_eq!(js, rust);
    assert_notes_synced(&js.0, &js.1);
}
