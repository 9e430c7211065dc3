//! What outside probing found (issue 15): one regression test per defect,
//! each driving the real binary where the defect is seen through it.

mod common;

use common::{Scratch, bidi, contact, one_way, stderr, stdout};
use serde_json::{Value, json};
use std::process::{Command, Stdio};

fn message(v: &Value) -> String {
    v["errors"][0]["message"].as_str().unwrap_or("").to_string()
}

/// Defect 1: three refused attempts within a second left one audit entry.
/// Every attempt has its own entry and its own sync id.
#[test]
fn every_refused_attempt_is_audited_with_its_own_id() {
    let s = Scratch::new();
    s.config(json!({"users": {
        "bob": {"personal": ["read"]},
        "mallory": {"personal": ["read"]}
    }}));
    s.write(
        "personal",
        "contacts",
        json!([contact("c1", "Ann", json!({"category": "business"}))]),
    );
    for user in ["bob", "bob", "mallory"] {
        let mut a = one_way("contacts");
        a.extend(["--user", user]);
        let (code, v) = s.run_json(&a);
        assert_eq!(code, 4, "{v}");
    }
    let trail = s.audit();
    let denied: Vec<&Value> = trail
        .iter()
        .filter(|e| e["errors"][0]["code"] == "PERMISSION_DENIED")
        .collect();
    let users: Vec<&str> = denied.iter().map(|e| e["user"].as_str().unwrap()).collect();
    assert_eq!(users, ["bob", "bob", "mallory"], "{trail:?}");
    let mut ids: Vec<&str> = denied
        .iter()
        .map(|e| e["syncId"].as_str().unwrap())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3, "each attempt has its own id: {ids:?}");
    let out = s.run(&["audit", "verify"]);
    assert!(out.status.success(), "{}", stdout(&out));
}

/// Defect 1, across processes: attempts started at once still get ids of
/// their own.
#[test]
fn attempts_at_once_get_distinct_ids() {
    let s = Scratch::new();
    s.config(json!({"users": {"bob": {"personal": ["read"]}}}));
    let children: Vec<_> = (0..6)
        .map(|_| {
            s.cmd()
                .args(one_way("contacts"))
                .args(["--user", "bob", "--json"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert_eq!(c.wait().unwrap().code(), Some(4));
    }
    let trail = s.audit();
    assert_eq!(trail.len(), 6, "{trail:?}");
    let mut ids: Vec<&str> = trail
        .iter()
        .map(|e| e["syncId"].as_str().unwrap())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 6, "{ids:?}");
}

/// An attempt against a data folder that does not exist creates none.
#[test]
fn a_missing_data_folder_is_not_created() {
    let s = Scratch::new();
    let (code, v) = s.run_json(&[
        "--source",
        "personal",
        "--target",
        "business",
        "--data-dir",
        "nowhere",
    ]);
    assert_eq!(code, 3, "{v}");
    assert!(!s.path().join("nowhere").exists());
}

/// Defect 2: two domains on one folder (the same, one inside the other, or
/// the same through a symlink) are refused before anything is read.
#[test]
fn domains_sharing_a_folder_are_refused() {
    let s = Scratch::new();
    let events = json!([{"id": "e1", "title": "Dentist", "category": "personal",
        "start": "2026-01-12T10:00:00Z", "end": "2026-01-12T11:00:00Z",
        "lastModified": "2026-01-12T09:00:00Z"}]);
    s.write("personal", "calendar", events);
    std::fs::create_dir_all(s.data().join("personal/inner")).unwrap();
    std::os::unix::fs::symlink(s.data().join("personal"), s.data().join("alias")).unwrap();
    let before = s.snapshot();
    for path in ["personal", "personal/inner", "./personal", "alias"] {
        s.config(json!({"domains": {"personal": {}, "business": {"path": path}}}));
        let (code, v) = s.run_json(&bidi("calendar"));
        assert_eq!(code, 2, "business at `{path}`: {v}");
        let msg = message(&v);
        assert!(
            msg.contains("`personal`") && msg.contains("`business`") && msg.contains("personal"),
            "{msg}"
        );
        assert_eq!(
            s.snapshot(),
            before,
            "nothing written with business at `{path}`"
        );
    }
}

/// Defect 3: numbers keep every digit, integers beyond 64 bits too (as
/// serde_json's arbitrary precision does, an exponent is written `e+N`:
/// `1E2` and `1e+2` are the same number).
#[test]
fn numbers_keep_their_exact_text() {
    let s = Scratch::new();
    s.write_raw(
        "data/personal/contacts.json",
        r#"{"contacts": [{"id": "c1", "name": "Ann", "category": "business",
  "lastModified": "2026-01-12T10:00:00Z",
  "x": 123456789012345678901234567890, "neg": -98765432109876543210987654321,
  "precise": 0.10000000000000000000000001, "exp": 1E2, "huge": 1e400}]}"#,
    );
    let personal = std::fs::read(s.data().join("personal/contacts.json")).unwrap();
    let (code, v) = s.run_json(&bidi("contacts"));
    assert_eq!(code, 0, "{v}");
    assert_eq!(
        std::fs::read(s.data().join("personal/contacts.json")).unwrap(),
        personal,
        "the sending side is not rewritten"
    );
    let text = std::fs::read_to_string(s.data().join("business/contacts.json")).unwrap();
    for n in [
        "123456789012345678901234567890",
        "-98765432109876543210987654321",
        "0.10000000000000000000000001",
        "1e+2",
        "1e+400",
    ] {
        assert!(text.contains(n), "business lost `{n}`:\n{text}");
    }
    // And back: a change on business returns every digit to personal.
    let mut b: Value = serde_json::from_str(&text).unwrap();
    b["contacts"][0]["name"] = json!("Ann B");
    b["contacts"][0]["lastModified"] = json!("2026-02-01T00:00:00Z");
    s.write_raw(
        "data/business/contacts.json",
        &serde_json::to_string(&b).unwrap(),
    );
    let (code, v) = s.run_json(&bidi("contacts"));
    assert_eq!(code, 0, "{v}");
    let back = std::fs::read_to_string(s.data().join("personal/contacts.json")).unwrap();
    assert!(back.contains("Ann B"), "{back}");
    assert!(
        back.contains("123456789012345678901234567890")
            && back.contains("0.10000000000000000000000001"),
        "{back}"
    );
}

/// Defect 4: duplicate keys inside an item are refused, naming the item,
/// the key and the line.
#[test]
fn duplicate_keys_in_an_item_are_refused() {
    let s = Scratch::new();
    let text = "{\"contacts\": [\n  {\"id\": \"c-0\", \"name\": \"Bo\", \"lastModified\": \"2026-01-12T10:00:00Z\"},\n  {\"id\": \"c-1\", \"name\": \"Ann\",\n   \"id\": \"c-2\", \"lastModified\": \"2026-01-12T10:00:00Z\"}\n]}\n";
    s.write_raw("data/personal/contacts.json", text);
    let nested = "{\"contacts\": [{\"id\": \"c-9\", \"name\": \"Cy\", \"lastModified\": \"2026-01-12T10:00:00Z\",\n \"x\": {\"a\": 1, \"a\": 2}}]}";
    s.write_raw("data/business/contacts.json", nested);
    let before = s.snapshot();
    let (code, v) = s.run_json(&bidi("contacts"));
    assert_eq!(code, 6, "{v}");
    let msg = message(&v);
    assert!(
        msg.contains("item 1") && msg.contains("`id`") && msg.contains("line 4"),
        "{msg}"
    );
    assert_eq!(v["errors"][0]["index"], 1, "{v}");
    assert_eq!(s.snapshot(), before);
    // Nested objects too; and the re-sync path (with a base) as well.
    s.write("personal", "contacts", json!([]));
    let (code, v) = s.run_json(&bidi("contacts"));
    assert_eq!(code, 6, "{v}");
    assert!(
        message(&v).contains("`a`") && message(&v).contains("line 2"),
        "{v}"
    );
    s.write(
        "business",
        "contacts",
        json!([contact("c-9", "Cy", json!({}))]),
    );
    assert_eq!(s.run_json(&bidi("contacts")).0, 0);
    s.write_raw(
        "data/business/contacts.json",
        "{\"contacts\": [{\"id\": \"c-9\", \"name\": \"Cy\", \"name\": \"Di\", \"lastModified\": \"2026-01-12T10:00:00Z\"}]}",
    );
    let (code, v) = s.run_json(&bidi("contacts"));
    assert_eq!(code, 6, "{v}");
    assert!(message(&v).contains("`name`"), "{v}");
}

/// Defect 5: a policy or mapping naming a field the type does not know is
/// refused, naming the path and the nearest known field.
#[test]
fn policies_and_mappings_naming_unknown_fields_are_refused() {
    let s = Scratch::new();
    s.write(
        "personal",
        "contacts",
        json!([contact(
            "c1",
            "Ann",
            json!({"category": "business", "birthday": "1980-05-01"})
        )]),
    );
    s.config(
        json!({"policies": {"personal->business": {"contacts": {"strip": ["notes", "birthdy"]}}}}),
    );
    let (code, v) = s.run_json(&one_way("contacts"));
    assert_eq!(code, 2, "{v}");
    let msg = message(&v);
    assert!(
        msg.contains("birthdy") && msg.contains("`birthday`") && msg.contains("strip[1]"),
        "{msg}"
    );
    assert!(
        s.items("business", "contacts").is_empty(),
        "nothing crossed"
    );
    // A withhold rule's field likewise (a typo there lets whole items cross).
    s.config(json!({"policies": {"personal->business": {"contacts": {
        "withhold": [{"field": "categroy", "in": ["personal"]}]}}}}));
    let (code, v) = s.run_json(&one_way("contacts"));
    assert_eq!(code, 2, "{v}");
    assert!(message(&v).contains("`category`"), "{v}");
    // A field of the user's own, declared as such, is accepted.
    s.config(json!({
        "policies": {"personal->business": {"contacts": {"strip": ["ssn"]}}},
        "extraFields": {"contacts": ["ssn"]}
    }));
    let (code, v) = s.run_json(&one_way("contacts"));
    assert_eq!(code, 0, "{v}");
    // A mapping's canonical field name too.
    std::fs::remove_file(s.path().join("cross_domain_config.json")).unwrap();
    s.write_raw(
        "entity_mappings.json",
        r#"{"business": {"contacts": {"emial": "mail"}}}"#,
    );
    let (code, v) = s.run_json(&one_way("contacts"));
    assert_eq!(code, 2, "{v}");
    assert!(
        message(&v).contains("`email`") && message(&v).contains("emial"),
        "{v}"
    );
}

/// Defect 6: a plugin whose id field is `uid`: sync, conflicts, resolve
/// and undo all use it.
#[test]
fn a_plugin_with_another_id_field_syncs_resolves_and_undoes() {
    let wasm = common::uid_plugin();
    let s = Scratch::new();
    let out = s.run(&["plugins", "add", wasm.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mark = |uid: &str, url: &str, label: &str| {
        json!({"uid": uid, "url": url, "label": label, "category": "business",
               "lastModified": "2026-01-12T10:00:00Z"})
    };
    s.write(
        "personal",
        "bookmarks",
        json!([
            mark("b1", "https://a.example", "mine"),
            mark("b2", "https://b.example", "two")
        ]),
    );
    s.write(
        "business",
        "bookmarks",
        json!([mark("b1", "https://a.example", "theirs")]),
    );
    let find = |domain: &str, uid: &str| {
        s.items(domain, "bookmarks")
            .into_iter()
            .find(|i| i["uid"] == json!(uid))
    };
    let (code, rec) = s.run_json(&bidi("bookmarks"));
    assert_eq!(code, 0, "{rec}");
    assert_eq!(rec["results"]["bookmarks"]["conflicts"], 1, "{rec}");
    assert_eq!(find("business", "b1").unwrap()["label"], "mine");
    assert!(find("business", "b2").is_some());
    let (_, v) = s.run_json(&["conflicts", "list"]);
    let conflicts = v["conflicts"].as_array().unwrap();
    assert_eq!(conflicts.len(), 1, "{v}");
    let id = conflicts[0]["id"].as_str().unwrap().to_string();
    let (code, v) = s.run_json(&["conflicts", "resolve", &id, "--keep", "target"]);
    assert_eq!(code, 0, "{v}");
    for d in ["personal", "business"] {
        assert_eq!(
            find(d, "b1").unwrap()["label"],
            "theirs",
            "{d} after resolve"
        );
    }
    // Undo of the sync: business back to its one bookmark, under its uid.
    let sync = rec["syncId"].as_str().unwrap().to_string();
    let (code, v) = s.run_json(&["undo", &sync, "--force"]);
    assert_eq!(code, 0, "{v}");
    let b = s.items("business", "bookmarks");
    assert_eq!(b.len(), 1, "{b:?}");
    assert_eq!(b[0]["uid"], "b1");
    assert!(find("personal", "b2").is_some(), "personal keeps its own");
    let restored = v["restored"].to_string();
    assert!(
        restored.contains("b2") && !restored.contains("\"\""),
        "{restored}"
    );
}

/// Defect 7: a replaced compiled artifact in the cache is not loaded: it is
/// refused, recompiled, and the sync runs the real plugin. (The cache holds
/// installed plugins: the built-in ones ship compiled in the binary.)
#[test]
fn a_replaced_cache_artifact_is_not_loaded() {
    let cache = tempfile::tempdir().unwrap();
    let s = Scratch::new();
    let run = |args: &[&str]| {
        let mut a = args.to_vec();
        a.push("--json");
        s.cmd()
            .env("CDS_CACHE_DIR", cache.path())
            .args(a)
            .output()
            .unwrap()
    };
    let cwasm = || -> Vec<_> {
        common::files_under(cache.path())
            .into_iter()
            .filter(|p| p.extension().is_some_and(|x| x == "cwasm"))
            .collect()
    };
    let uid = common::uid_plugin();
    assert!(
        run(&["plugins", "add", uid.to_str().unwrap()])
            .status
            .success()
    );
    let bookmarks = cwasm();
    assert_eq!(
        bookmarks.len(),
        1,
        "installing compiles into the cache: {bookmarks:?}"
    );
    let notes_wasm = common::notes_plugin();
    assert!(
        run(&["plugins", "add", notes_wasm.to_str().unwrap()])
            .status
            .success()
    );
    let notes: Vec<_> = cwasm()
        .into_iter()
        .filter(|p| !bookmarks.contains(p))
        .collect();
    assert_eq!(notes.len(), 1, "{notes:?}");
    s.write(
        "personal",
        "notes",
        json!([{"id": "n1", "title": "Plan", "category": "business", "lastModified": "2026-01-12T10:00:00Z"}]),
    );
    // Somebody puts another (valid) artifact in place of the notes one.
    std::fs::copy(&bookmarks[0], &notes[0]).unwrap();
    let out = run(&one_way("notes"));
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(stderr(&out).contains("integrity"), "{}", stderr(&out));
    let b = s.items("business", "notes");
    assert_eq!(b.len(), 1, "the real notes plugin ran");
    assert_ne!(
        std::fs::read(&notes[0]).unwrap(),
        std::fs::read(&bookmarks[0]).unwrap(),
        "recompiled"
    );
    // The cache is the user's alone.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(cache.path())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "cache folder mode {mode:o}");
}

/// Defect 8: with `--json`, a usage error is one JSON object on stdout.
#[test]
fn usage_errors_with_json_are_one_json_object() {
    let s = Scratch::new();
    for a in [
        vec!["--json"],
        vec!["--json", "--bogus"],
        vec!["plugins", "--json"],
        vec!["--json", "--wait", "x", "--source", "personal"],
    ] {
        let out = s.run(&a);
        assert_eq!(out.status.code(), Some(2), "{a:?}");
        let v: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{a:?}: stdout is not JSON ({e}): {}", stdout(&out)));
        assert_eq!(v["status"], "failed");
        assert_eq!(v["errors"][0]["code"], "INVALID_ARGUMENT", "{a:?}: {v}");
    }
    let out = s.run(&["--help", "--json"]);
    assert!(out.status.success());
    assert!(stdout(&out).contains("Usage"), "--help stays human");
}

fn os_user() -> String {
    let out = Command::new("id").arg("-un").output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Defect 9: without CDS_USER and USER the user is the OS account, and an
/// empty CDS_USER falls back the same way.
#[test]
fn the_default_user_is_the_os_account() {
    let s = Scratch::new();
    let run = |cds_user: Option<&str>| {
        let mut c = s.cmd();
        c.env_remove("CDS_USER")
            .env_remove("USER")
            .env_remove("LOGNAME")
            .env_remove("USERNAME");
        if let Some(u) = cds_user {
            c.env("CDS_USER", u);
        }
        let out = c.args(one_way("contacts")).arg("--json").output().unwrap();
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        (out.status.code(), v)
    };
    let me = os_user();
    for u in [None, Some("")] {
        let (code, v) = run(u);
        assert_eq!(code, Some(0), "{v}");
        assert_eq!(v["user"], json!(me), "CDS_USER {u:?}");
    }
}

/// Defect 10: a UTF-8 byte-order mark is accepted; an empty entity name is
/// an invalid argument.
#[test]
fn a_byte_order_mark_is_read_and_empty_entities_are_invalid() {
    let s = Scratch::new();
    let body = serde_json::to_string(
        &json!({"contacts": [contact("c1", "Ann", json!({"category": "business"}))]}),
    )
    .unwrap();
    s.write_raw("data/personal/contacts.json", &format!("\u{feff}{body}"));
    let (code, v) = s.run_json(&one_way("contacts"));
    assert_eq!(code, 0, "{v}");
    assert_eq!(s.items("business", "contacts").len(), 1);
    // The re-sync reads it again (with a base) and changes nothing.
    let (code, v) = s.run_json(&one_way("contacts"));
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["results"]["contacts"]["unchanged"], 1, "{v}");
    for e in ["", "contacts,"] {
        let (code, v) = s.run_json(&[
            "--source",
            "personal",
            "--target",
            "business",
            "--entities",
            e,
        ]);
        assert_eq!(code, 2, "--entities {e:?}: {v}");
        assert_eq!(v["errors"][0]["code"], "INVALID_ARGUMENT");
    }
}

/// Defect 12: a data file that is a symlink is refused with a message
/// naming it, and stays a symlink.
#[test]
fn a_symlinked_entity_file_is_refused() {
    let s = Scratch::new();
    let real = s.path().join("real-contacts.json");
    std::fs::write(
        &real,
        serde_json::to_string(
            &json!({"contacts": [contact("c1", "Ann", json!({"category": "business"}))]}),
        )
        .unwrap(),
    )
    .unwrap();
    let link = s.data().join("business/contacts.json");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    s.write(
        "personal",
        "contacts",
        json!([contact("c2", "Bo", json!({"category": "business"}))]),
    );
    let (code, v) = s.run_json(&bidi("contacts"));
    assert_eq!(code, 8, "{v}");
    let msg = message(&v);
    assert!(
        msg.contains("symbolic link") && msg.contains("business/contacts.json"),
        "{msg}"
    );
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
}

/// Defect 4, in the configuration: a policy with two `strip` lists would
/// silently use only the last.
#[test]
fn a_configuration_with_a_key_twice_is_refused() {
    let s = Scratch::new();
    s.write_raw(
        "cross_domain_config.json",
        "\u{feff}{\"policies\": {\"personal->business\": {\"contacts\": {\n  \"strip\": [\"notes\"],\n  \"strip\": []}}}}",
    );
    let (code, v) = s.run_json(&one_way("contacts"));
    assert_eq!(code, 2, "{v}");
    let msg = message(&v);
    assert!(
        msg.contains("`strip` twice") && msg.contains("line 3"),
        "{msg}"
    );
}

/// The cache folder can be set in the configuration (the flag and
/// `CDS_CACHE_DIR` win); it must be absolute.
#[test]
fn the_configuration_can_move_the_plugin_cache() {
    let s = Scratch::new();
    let cache = tempfile::tempdir().unwrap();
    let dir = cache.path().join("from-config");
    s.config(json!({"pluginCacheDir": dir}));
    let uid = common::uid_plugin();
    let out = s
        .cmd()
        .env_remove("CDS_CACHE_DIR")
        .args(["plugins", "add", uid.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let cached: Vec<_> = common::files_under(&dir)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|x| x == "cwasm"))
        .collect();
    assert_eq!(cached.len(), 1, "compiled into the configured folder");

    s.config(json!({"pluginCacheDir": "relative/cache"}));
    let (code, v) = s.run_json(&one_way("contacts"));
    assert_eq!(code, 2, "{v}");
    let msg = message(&v);
    assert!(
        msg.contains("pluginCacheDir") && msg.contains("absolute"),
        "{v}"
    );
}
