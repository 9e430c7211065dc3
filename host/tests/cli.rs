//! The real binary against CONTRACT §1-3, §6-7, §9-10: every error code with
//! its exit status and message, each direction, the seed's examples 1-3, dry
//! run, and a repeated sync that changes nothing.

mod common;

use common::{Scratch, bidi, contact, stderr, stdout};
use serde_json::{Value, json};

const SYNC: [&str; 4] = ["--source", "personal", "--target", "business"];

fn args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = SYNC.to_vec();
    v.extend_from_slice(extra);
    v
}

fn last_audit(s: &Scratch) -> Value {
    s.audit().pop().expect("an audit entry")
}

/// A failed sync: exit status, code, nothing written to the domains, audited.
fn assert_refused(s: &Scratch, a: &[&str], exit: i32, code: &str) -> Value {
    let before = s.snapshot();
    let (status, rec) = s.run_json(a);
    assert_eq!(status, exit, "{rec}");
    assert_eq!(rec["status"], "failed");
    assert_eq!(rec["errors"][0]["code"], code, "{rec}");
    assert_eq!(
        s.snapshot(),
        before,
        "a failure must not change any domain file"
    );
    let entry = last_audit(s);
    assert_eq!(entry["outcome"], "failed");
    assert_eq!(entry["errors"][0]["code"], code);
    rec
}

#[test]
fn seed_example_1_contacts_personal_to_business() {
    let s = Scratch::new();
    s.write(
        "personal",
        "contacts",
        json!([
            contact(
                "c1",
                "John Doe",
                json!({"email": "john@example.com", "category": "business"})
            ),
            contact("c2", "Jane Roe", json!({"category": "business"})),
            contact("c3", "Mum", json!({"category": "family"}))
        ]),
    );
    s.write(
        "business",
        "contacts",
        json!([contact("c9", "Client", json!({}))]),
    );
    let out = s.run(&args(&["--entities", "contacts"]));
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    for line in [
        "Synchronizing data from personal to business\n",
        "Syncing contacts entities...\n",
        "Successfully synced contacts entities\n",
        "Results:\n",
        "- Source Count: 3 contacts\n",
        "- Target Count: 1 contacts\n",
        "- Merged Count: 4 contacts\n",
        "- Conflicts Resolved: 0\n",
        "Sync completed successfully\n",
        "Sync ID: sync-",
        "Duration: ",
    ] {
        assert!(text.contains(line), "`{line}` missing:\n{text}");
    }
    assert_eq!(
        s.items("business", "contacts").len(),
        3,
        "c1 and c2 added, Mum withheld"
    );
    // The sync record is on disk and matches the printed id.
    let id = text
        .lines()
        .find_map(|l| l.strip_prefix("Sync ID: "))
        .unwrap();
    let rec: Value = serde_json::from_slice(
        &std::fs::read(s.data().join(format!("sync-records/{id}.json"))).unwrap(),
    )
    .unwrap();
    assert_eq!(rec["results"]["contacts"]["withheld"], 1);
    assert_eq!(rec["status"], "success");
}

/// A file a sync replaces keeps its owner's permission bits; one it
/// creates is the owner's alone.
#[test]
fn a_rewritten_file_keeps_its_permissions() {
    use std::os::unix::fs::PermissionsExt;
    let s = Scratch::new();
    let both = |id: &str| json!([contact(id, id, json!({"category": "business"}))]);
    s.write("personal", "contacts", both("c1"));
    s.write("business", "contacts", both("c2"));
    s.write(
        "personal",
        "tasks",
        json!([{"id": "t1", "title": "Plan", "status": "todo", "category": "business",
                "lastModified": "2026-01-12T10:00:00Z"}]),
    );
    let file = |domain: &str, entity: &str| s.data().join(format!("{domain}/{entity}.json"));
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    let set = |p: &std::path::Path, m: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap()
    };
    set(&file("personal", "contacts"), 0o644);
    set(&file("business", "contacts"), 0o640);
    let before = s.snapshot();
    let out = s.run(&bidi("contacts,tasks"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_ne!(before, s.snapshot(), "both contacts files rewritten");
    assert_eq!(s.items("personal", "contacts").len(), 2);
    assert_eq!(s.items("business", "contacts").len(), 2);
    assert_eq!(mode(&file("personal", "contacts")), 0o644);
    assert_eq!(mode(&file("business", "contacts")), 0o640);
    assert!(file("business", "tasks").exists(), "created by the sync");
    assert_eq!(mode(&file("business", "tasks")), 0o600);
}

#[test]
fn seed_example_2_bidirectional_all_entities() {
    let s = Scratch::new();
    s.write(
        "personal",
        "contacts",
        json!([contact("c1", "A", json!({"category": "business"}))]),
    );
    s.write(
        "business",
        "tasks",
        json!([
            {"id": "t1", "title": "Ship", "status": "todo", "lastModified": "2026-01-12T10:00:00Z"}
        ]),
    );
    let out = s.run(&args(&["--direction", "bidirectional"]));
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    assert!(
        text.starts_with("Synchronizing data from personal to business (bidirectional)\n"),
        "{text}"
    );
    for e in [
        "contacts",
        "calendar",
        "tasks",
        "documents",
        "communications",
    ] {
        assert!(text.contains(&format!("Syncing {e} entities...")), "{text}");
        assert!(text.contains(&format!("- {e}: ")), "{text}");
    }
    assert!(text.contains("Total Entities Synced: 5"));
    assert!(text.contains("Total Items Synced: 1"), "{text}");
    assert!(text.contains("Total Errors: 0"));
    assert_eq!(s.items("business", "contacts").len(), 1);
    assert_eq!(
        s.items("personal", "tasks").len(),
        1,
        "bidirectional: tasks came back"
    );
}

#[test]
fn seed_example_3_unknown_domain() {
    let s = Scratch::new();
    let out = s.run(&["--source", "nonexistent", "--target", "business"]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(
        stderr(&out),
        "Error: Invalid domain specified\nValid domains: personal, business\nSource domain 'nonexistent' not found\n"
    );
    assert_eq!(stdout(&out), "", "nothing on stdout for a refused sync");
    let entry = last_audit(&s);
    assert_eq!(entry["errors"][0]["code"], "DOMAIN_NOT_FOUND");
    // A refused attempt gets a session as any other does (a fresh UUID).
    let session = entry["session"].as_str().unwrap_or("");
    assert!(uuid::Uuid::parse_str(session).is_ok(), "{entry}");
}

#[test]
fn invalid_arguments_exit_2_with_paths() {
    let s = Scratch::new();
    let rec = assert_refused(
        &s,
        &["--source", "personal", "--target", "personal"],
        2,
        "INVALID_ARGUMENT",
    );
    assert!(
        rec["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("must be different")
    );
    let rec = assert_refused(
        &s,
        &args(&["--direction", "sideways"]),
        2,
        "INVALID_ARGUMENT",
    );
    assert_eq!(rec["errors"][0]["paths"], json!(["$.direction"]));
    // Flags clap refuses: still one JSON object with --json.
    let (code, v) = s.run_json(&["--sorce", "personal"]);
    assert_eq!(code, 2);
    assert_eq!(v["errors"][0]["code"], "INVALID_ARGUMENT");
    // Without --json, usage goes to stderr.
    let out = s.run(&["--bogus"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--bogus"));
    // No flags at all: a short usage, not a sync.
    let out = s.run(&[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--source and --target"));
}

#[test]
fn help_explains_flags_values_and_exit_codes() {
    let s = Scratch::new();
    let out = s.run(&["--help"]);
    assert!(out.status.success());
    let text = stdout(&out);
    for want in [
        "--source",
        "--target",
        "--entities",
        "--direction",
        "--dry-run",
        "--json",
        "bidirectional | source_to_target",
        "12 SYNC_IN_PROGRESS",
        "--data-dir",
    ] {
        assert!(text.contains(want), "`{want}` missing from --help");
    }
}

#[test]
fn configured_domain_without_folder_is_not_found() {
    let s = Scratch::new();
    std::fs::remove_dir_all(s.data().join("business")).unwrap();
    let rec = assert_refused(&s, &SYNC, 3, "DOMAIN_NOT_FOUND");
    assert!(
        rec["errors"][0]["help"][1]
            .as_str()
            .unwrap()
            .contains("does not exist")
    );
}

#[test]
fn unsupported_entity_type_exit_5() {
    let s = Scratch::new();
    let rec = assert_refused(
        &s,
        &args(&["--entities", "contacts,recipes"]),
        5,
        "ENTITY_TYPE_UNSUPPORTED",
    );
    assert!(
        rec["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("recipes")
    );
}

#[test]
fn permission_denied_writes_nothing_and_is_audited() {
    let s = Scratch::new();
    s.config(json!({"users": {
        "alice": {"personal": ["read", "write"], "business": ["read", "write"]},
        "bob": {"personal": ["read", "write"], "business": ["read"]}
    }}));
    s.write(
        "personal",
        "contacts",
        json!([contact("c1", "A", json!({"category": "business"}))]),
    );
    let rec = assert_refused(&s, &args(&["--user", "bob"]), 4, "PERMISSION_DENIED");
    let msg = rec["errors"][0]["message"].as_str().unwrap();
    assert!(
        msg.contains("user `bob` may not write domain `business`"),
        "{msg}"
    );
    assert!(!s.data().join("business/contacts.json").exists());
    let entry = last_audit(&s);
    assert_eq!(entry["user"], "bob");
    assert_eq!(entry["action"], "DATA_SYNC");
    // The reverse direction needs only read on business and write on personal.
    let (code, _) = s.run_json(&args(&["--user", "bob", "--direction", "target_to_source"]));
    assert_eq!(code, 0);
    // A user not listed has no rights; alice may do everything.
    assert_refused(&s, &args(&["--user", "mallory"]), 4, "PERMISSION_DENIED");
    let (code, _) = s.run_json(&args(&["--user", "alice"]));
    assert_eq!(code, 0);
    assert_eq!(s.items("business", "contacts").len(), 1);
    let out = s.cmd().args(["audit", "verify"]).output().unwrap();
    assert!(out.status.success(), "{}", stdout(&out));
}

#[test]
fn data_format_invalid_names_file_item_and_path() {
    let s = Scratch::new();
    s.write(
        "personal",
        "contacts",
        json!([
            contact("c1", "A", json!({})),
            {"id": "c2", "lastModified": "2026-01-12T10:00:00Z", "email": "x"}
        ]),
    );
    let rec = assert_refused(&s, &SYNC, 6, "DATA_FORMAT_INVALID");
    let e = &rec["errors"][0];
    assert_eq!(e["index"], 1);
    assert_eq!(e["id"], "c2");
    assert_eq!(e["path"], "$.contacts[1]");
    assert!(
        e["file"]
            .as_str()
            .unwrap()
            .ends_with("personal/contacts.json")
    );
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("\"name\" is a required property"),
        "{e}"
    );

    // An item without an id is an error, never skipped.
    s.write(
        "personal",
        "contacts",
        json!([{"name": "x", "lastModified": "2026-01-12T10:00:00Z"}]),
    );
    let rec = assert_refused(&s, &SYNC, 6, "DATA_FORMAT_INVALID");
    assert!(
        rec["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("(no id)")
    );

    // Not JSON at all.
    s.write_raw("data/personal/contacts.json", "{\"contacts\": [");
    let rec = assert_refused(&s, &SYNC, 6, "DATA_FORMAT_INVALID");
    assert!(
        rec["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("not valid JSON at line")
    );

    // A calendar event that ends before it starts.
    s.write_raw("data/personal/contacts.json", "{\"contacts\": []}");
    s.write(
        "personal",
        "calendar",
        json!([{"id": "e", "title": "t", "start": "2026-01-12T10:00:00Z",
        "end": "2026-01-12T09:00:00Z", "lastModified": "2026-01-12T10:00:00Z"}]),
    );
    let rec = assert_refused(&s, &SYNC, 6, "DATA_FORMAT_INVALID");
    assert_eq!(rec["errors"][0]["path"], "$.calendar[0].end");
}

#[test]
fn duplicate_ids_are_a_sync_conflict() {
    let s = Scratch::new();
    s.write(
        "business",
        "tasks",
        json!([
            {"id": "t", "title": "a", "status": "todo", "lastModified": "2026-01-12T10:00:00Z"},
            {"id": "t", "title": "b", "status": "done", "lastModified": "2026-01-12T10:00:00Z"}
        ]),
    );
    let rec = assert_refused(
        &s,
        &args(&["--direction", "bidirectional"]),
        7,
        "SYNC_CONFLICT",
    );
    assert!(
        rec["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("both have the id `t`")
    );
}

fn many(n: usize, prefix: &str) -> Value {
    Value::Array(
        (0..n)
            .map(|i| {
                contact(
                    &format!("{prefix}{i}"),
                    "N",
                    json!({"category": "business"}),
                )
            })
            .collect(),
    )
}

#[test]
fn mass_delete_guard_and_its_override() {
    let s = Scratch::new();
    s.write("personal", "contacts", many(30, "c"));
    let (code, _) = s.run_json(&args(&[
        "--direction",
        "bidirectional",
        "--entities",
        "contacts",
    ]));
    assert_eq!(code, 0);
    assert_eq!(s.items("business", "contacts").len(), 30);
    // The business store is emptied (or re-pointed): refused.
    s.write("business", "contacts", json!([]));
    let rec = assert_refused(
        &s,
        &args(&["--direction", "bidirectional", "--entities", "contacts"]),
        7,
        "SYNC_CONFLICT",
    );
    assert!(
        rec["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("lists no items")
    );
    // 20 of 30 deleted: more than half and more than 10.
    s.write("business", "contacts", many(10, "c"));
    let rec = assert_refused(
        &s,
        &args(&["--direction", "bidirectional", "--entities", "contacts"]),
        7,
        "SYNC_CONFLICT",
    );
    assert!(
        rec["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("would delete 20 of the 30")
    );
    // --no-delete keeps everything; --allow-mass-delete carries the deletions.
    let (code, rec) = s.run_json(&args(&[
        "--direction",
        "bidirectional",
        "--entities",
        "contacts",
        "--no-delete",
    ]));
    assert_eq!(code, 0, "{rec}");
    assert_eq!(s.items("personal", "contacts").len(), 30);
    let (code, rec) = s.run_json(&args(&[
        "--direction",
        "bidirectional",
        "--entities",
        "contacts",
        "--allow-mass-delete",
    ]));
    assert_eq!(code, 0, "{rec}");
    assert_eq!(rec["results"]["contacts"]["deleted"], 20);
    assert_eq!(s.items("personal", "contacts").len(), 10);
    // The deleted versions are in the backups of that sync.
    let id = rec["syncId"].as_str().unwrap();
    let backup = s
        .data()
        .join(format!(".sync/backups/{id}/personal/contacts.json"));
    let old: Value = serde_json::from_slice(&std::fs::read(backup).unwrap()).unwrap();
    assert_eq!(old["contacts"].as_array().unwrap().len(), 30);
}

#[test]
fn storage_error_rolls_back() {
    let s = Scratch::new();
    s.write("personal", "contacts", many(3, "c"));
    s.write(
        "personal",
        "tasks",
        json!([{"id": "t", "title": "a", "status": "todo", "category": "business",
        "lastModified": "2026-01-12T10:00:00Z"}]),
    );
    let before = s.snapshot();
    // The 4th write of the commit fails for good (EIO).
    let out = s
        .cmd()
        .args(args(&["--json"]))
        .env("CDS_FAULT_WRITE", "eio:4")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(8), "{}", stdout(&out));
    let rec: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rec["errors"][0]["code"], "STORAGE_ERROR");
    assert_eq!(s.snapshot(), before);
    assert!(
        !s.data().join(".sync/journal.json").exists(),
        "rolled back at once"
    );
    // A transient fault is retried and the sync succeeds.
    let out = s
        .cmd()
        .args(args(&["--json"]))
        .env("CDS_FAULT_WRITE", "transient:2")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert_eq!(s.items("business", "contacts").len(), 3);
}

#[test]
fn limit_exceeded_exit_10() {
    let s = Scratch::new();
    s.config(json!({"limits": {"maxItemsPerType": 2}}));
    s.write("personal", "contacts", many(3, "c"));
    let rec = assert_refused(&s, &SYNC, 10, "LIMIT_EXCEEDED");
    assert!(
        rec["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("holds 3 items, more than the limit of 2")
    );
    s.config(json!({"limits": {"maxBytesPerSync": 100}}));
    assert_refused(&s, &SYNC, 10, "LIMIT_EXCEEDED");
}

#[test]
fn timeout_exit_11_changes_nothing() {
    let s = Scratch::new();
    s.config(json!({"limits": {"timeoutSeconds": 1}}));
    s.write("personal", "contacts", many(3, "c"));
    let before = s.snapshot();
    let out = s
        .cmd()
        .args(args(&["--json"]))
        .env("CDS_FAULT_DELAY_MS", "700")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(11), "{}", stdout(&out));
    let rec: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rec["errors"][0]["code"], "TIMEOUT");
    assert_eq!(s.snapshot(), before);
}

#[test]
fn sync_in_progress_exit_12() {
    let s = Scratch::new();
    std::fs::create_dir_all(s.data().join(".sync")).unwrap();
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(s.data().join(".sync/lock"))
        .unwrap();
    lock.lock().unwrap();
    let rec = assert_refused(&s, &args(&["--wait", "0.2"]), 12, "SYNC_IN_PROGRESS");
    assert!(
        rec["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("another sync holds the lock")
    );
    drop(lock);
    let (code, _) = s.run_json(&SYNC);
    assert_eq!(code, 0);
}

#[test]
fn plugin_error_exit_9() {
    let s = Scratch::new();
    let wasm = common::hostile_plugin();
    assert!(
        s.run(&["plugins", "add", wasm.to_str().unwrap()])
            .status
            .success()
    );
    s.config(json!({"limits": {"pluginCpuBaseMs": 50, "pluginCpuPerItemUs": 100}}));
    s.write(
        "personal",
        "hostile",
        json!([{"id": "h", "lastModified": "t", "mode": "loop"}]),
    );
    let rec = assert_refused(
        &s,
        &args(&["--entities", "hostile,contacts"]),
        9,
        "PLUGIN_ERROR",
    );
    assert!(
        rec["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("CPU budget")
    );
    assert_eq!(rec["errors"][0]["plugin"], "hostile");
}

#[test]
fn one_way_source_to_target() {
    let s = Scratch::new();
    s.write(
        "personal",
        "contacts",
        json!([contact("p1", "P", json!({"category": "business"}))]),
    );
    s.write(
        "business",
        "contacts",
        json!([contact("b1", "B", json!({}))]),
    );
    let (code, rec) = s.run_json(&args(&["--direction", "source_to_target"]));
    assert_eq!(code, 0);
    assert_eq!(rec["syncDirection"], "source_to_target");
    assert_eq!(s.items("business", "contacts").len(), 2);
    assert_eq!(
        s.items("personal", "contacts").len(),
        1,
        "one-way: the source is not written"
    );
    assert_eq!(
        s.item("business", "contacts", "p1").unwrap()["syncDirection"],
        "personal->business"
    );
    // A change made only on the receiving side stays there.
    let mut b = s.items("business", "contacts");
    b[1]["name"] = json!("Renamed in business");
    s.write("business", "contacts", Value::Array(b));
    let (_, rec) = s.run_json(&SYNC);
    assert_eq!(rec["results"]["contacts"]["updated"], 0);
    assert_eq!(
        s.item("business", "contacts", "p1").unwrap()["name"],
        "Renamed in business"
    );
    assert_eq!(s.item("personal", "contacts", "p1").unwrap()["name"], "P");
}

#[test]
fn one_way_target_to_source() {
    let s = Scratch::new();
    s.write(
        "personal",
        "contacts",
        json!([contact("p1", "P", json!({"category": "business"}))]),
    );
    s.write(
        "business",
        "contacts",
        json!([contact("b1", "B", json!({"notes": "kept"}))]),
    );
    let (code, rec) = s.run_json(&args(&["--direction", "target_to_source"]));
    assert_eq!(code, 0, "{rec}");
    assert_eq!(s.items("personal", "contacts").len(), 2);
    assert_eq!(
        s.items("business", "contacts").len(),
        1,
        "the target is not written"
    );
    let b1 = s.item("personal", "contacts", "b1").unwrap();
    assert_eq!(b1["notes"], "kept");
    assert_eq!(b1["syncDirection"], "business->personal");
}

#[test]
fn bidirectional_conflict_source_wins_and_is_logged() {
    let s = Scratch::new();
    s.write(
        "personal",
        "contacts",
        json!([contact(
            "c",
            "Ann",
            json!({"title": "CTO", "category": "business"})
        )]),
    );
    s.write(
        "business",
        "contacts",
        json!([contact("c", "Ann", json!({"title": "VP"}))]),
    );
    let (code, rec) = s.run_json(&args(&["--direction", "bidirectional"]));
    assert_eq!(code, 0);
    assert_eq!(rec["results"]["contacts"]["conflicts"], 1);
    assert_eq!(s.item("business", "contacts", "c").unwrap()["title"], "CTO");
    assert_eq!(s.item("personal", "contacts", "c").unwrap()["title"], "CTO");
    let id = rec["syncId"].as_str().unwrap();
    let log: Value = serde_json::from_slice(
        &std::fs::read(s.data().join(format!(".sync/conflicts/{id}.json"))).unwrap(),
    )
    .unwrap();
    let c = &log["conflicts"][0];
    assert_eq!(
        (
            c["field"].as_str(),
            c["targetValue"].as_str(),
            c["winner"].as_str()
        ),
        (Some("title"), Some("VP"), Some("source"))
    );
}

#[test]
fn dry_run_plans_and_writes_only_the_audit_entry() {
    let s = Scratch::new();
    s.write(
        "personal",
        "contacts",
        json!([contact("c1", "A", json!({"category": "business"}))]),
    );
    let before = s.snapshot();
    let (code, rec) = s.run_json(&args(&["--dry-run", "--entities", "contacts"]));
    assert_eq!(code, 0);
    assert_eq!(rec["status"], "dry_run");
    assert_eq!(rec["dryRun"], true);
    assert_eq!(rec["plan"]["contacts"]["business"]["added"], json!(["c1"]));
    assert_eq!(rec["results"]["contacts"]["added"], 1);
    assert_eq!(s.snapshot(), before);
    assert!(
        !s.data().join("sync-records").exists(),
        "no record file for a dry run"
    );
    assert!(
        !s.data().join(".sync/base").exists(),
        "no sync state either"
    );
    assert_eq!(last_audit(&s)["outcome"], "dry_run");
    let out = s.run(&args(&["--dry-run", "--entities", "contacts"]));
    assert!(stdout(&out).contains("Dry run: nothing was written"));
}

#[test]
fn a_repeated_sync_changes_nothing() {
    let s = Scratch::new();
    s.write(
        "personal",
        "contacts",
        json!([
            contact(
                "c1",
                "A",
                json!({"category": "business", "phone": "+1 (555) 0100", "email": " A@X.example"})
            ),
            contact("c2", "B", json!({"category": "family"}))
        ]),
    );
    s.write("business", "calendar", json!([{"id": "e", "title": "Board", "start": "2026-01-12T10:00:00Z",
        "end": "2026-01-12T11:00:00Z", "visibility": "confidential", "lastModified": "2026-01-12T10:00:00Z"}]));
    let (code, _) = s.run_json(&args(&["--direction", "bidirectional"]));
    assert_eq!(code, 0);
    let after_first = s.snapshot();
    let (code, rec) = s.run_json(&args(&["--direction", "bidirectional"]));
    assert_eq!(code, 0);
    for (entity, r) in rec["results"].as_object().unwrap() {
        for k in ["added", "updated", "deleted", "conflicts"] {
            assert_eq!(r[k], 0, "{entity}.{k} on the second sync: {rec}");
        }
    }
    assert_eq!(s.snapshot(), after_first, "not a byte changed");
    let out = s.run(&args(&["--direction", "bidirectional"]));
    assert!(stdout(&out).contains("(added 0, updated 0, deleted 0, conflicts 0"));
}

#[test]
fn sync_ids_get_suffixes_within_one_second() {
    let s = Scratch::new();
    let mut ids = std::collections::HashSet::new();
    for _ in 0..3 {
        let (_, rec) = s.run_json(&args(&["--entities", "tasks"]));
        ids.insert(rec["syncId"].as_str().unwrap().to_string());
    }
    assert_eq!(ids.len(), 3, "{ids:?}");
    assert!(ids.iter().all(|i| i.starts_with("sync-")));
}

#[test]
fn audit_entries_hold_no_values_and_verify() {
    let s = Scratch::new();
    s.write(
        "personal",
        "contacts",
        json!([contact(
            "c1",
            "Secret Person",
            json!({
        "category": "business", "email": "hidden@example.com", "notes": "private words"})
        )]),
    );
    let (code, _) = s.run_json(&SYNC);
    assert_eq!(code, 0);
    let trail = std::fs::read_to_string(s.data().join("audit/audit.jsonl")).unwrap();
    for secret in ["Secret Person", "hidden@example.com", "private words"] {
        assert!(!trail.contains(secret), "audit leaks `{secret}`");
    }
    let e = last_audit(&s);
    for k in [
        "seq",
        "timestamp",
        "category",
        "action",
        "syncId",
        "user",
        "session",
        "sourceDomain",
        "targetDomain",
        "entityTypes",
        "syncDirection",
        "outcome",
        "results",
        "plugins",
        "prevHash",
        "hash",
    ] {
        assert!(e.get(k).is_some(), "audit entry lacks {k}: {e}");
    }
    assert_eq!(e["user"], "tester");
    let out = s.run(&["audit", "verify"]);
    assert!(out.status.success());
    assert!(stdout(&out).contains("Audit trail OK"));
}

#[test]
fn schema_command_prints_each_schema() {
    let s = Scratch::new();
    for name in [
        "invocation",
        "sync-record",
        "error",
        "config",
        "entity-mappings",
    ] {
        let out = s.run(&["schema", name]);
        assert!(out.status.success(), "{name}");
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            v["$schema"], "https://json-schema.org/draft/2020-12/schema",
            "{name}"
        );
    }
    let out = s.run(&["schema", "nope"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn invalid_config_is_refused_with_its_path() {
    let s = Scratch::new();
    s.config(json!({"limits": {"maxItemsPerType": "many"}}));
    let (code, v) = s.run_json(&SYNC);
    assert_eq!(code, 2);
    let msg = v["errors"][0]["message"].as_str().unwrap();
    assert!(
        msg.contains("cross_domain_config.json") && msg.contains("$.limits.maxItemsPerType"),
        "{msg}"
    );
    s.config(json!({"domains": {"personal": {"path": "../../etc"}, "business": {}}}));
    let (code, v) = s.run_json(&SYNC);
    assert_eq!(code, 2);
    assert!(
        v["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("without `..`")
    );
}

#[test]
fn field_renames_from_entity_mappings() {
    let s = Scratch::new();
    s.write_raw(
        "entity_mappings.json",
        r#"{"business": {"contacts": {"company": "organization"}}}"#,
    );
    s.write(
        "personal",
        "contacts",
        json!([contact(
            "c1",
            "A",
            json!({"company": "Acme", "category": "business"})
        )]),
    );
    let (code, rec) = s.run_json(&args(&["--direction", "bidirectional"]));
    assert_eq!(code, 0, "{rec}");
    let b = s.item("business", "contacts", "c1").unwrap();
    assert_eq!(b["organization"], "Acme");
    assert!(b.get("company").is_none());
    // Edited in business under its own name, it comes back as `company`.
    let mut items = s.items("business", "contacts");
    items[0]["organization"] = json!("Acme Ltd");
    items[0]["lastModified"] = json!("2026-02-01T00:00:00Z");
    s.write("business", "contacts", Value::Array(items));
    let (code, _) = s.run_json(&args(&["--direction", "bidirectional"]));
    assert_eq!(code, 0);
    let p = s.item("personal", "contacts", "c1").unwrap();
    assert_eq!(p["company"], "Acme Ltd");
    assert!(p.get("organization").is_none());
}

#[test]
fn a_damaged_base_is_a_storage_error_naming_the_file() {
    let s = Scratch::new();
    s.write("personal", "contacts", many(3, "c"));
    let (status, rec) = s.run_json(&SYNC);
    assert_eq!(status, 0, "{rec}");
    let base = s.data().join(".sync/base/business+personal/contacts.json");
    let good = std::fs::read_to_string(&base).expect("the first sync wrote a base");
    // Both sides agreed, so each entry keeps one copy and marks the other.
    assert!(good.contains(r#""business":"=""#), "{good}");
    let entry_of = |v: Value| json!({"version": 1, "entity": "contacts", "items": [v]}).to_string();
    for (damage, why) in [
        ("{not json".to_string(), "line 1"),
        (json!({"version": 1}).to_string(), "no `items` array"),
        (
            entry_of(json!({"id": "c0", "personal": {"id": "c0"}})),
            "lacks its id or a domain's item",
        ),
        (
            entry_of(json!({"id": "c0", "personal": "=", "business": "="})),
            "lacks its id or a domain's item",
        ),
        (
            entry_of(json!({"personal": {"id": "c0"}, "business": "="})),
            "lacks its id or a domain's item",
        ),
    ] {
        std::fs::write(&base, &damage).unwrap();
        let rec = assert_refused(&s, &SYNC, 8, "STORAGE_ERROR");
        let msg = rec["errors"][0]["message"].as_str().unwrap();
        assert!(
            msg.contains("contacts.json") && msg.contains(why),
            "{damage}: {msg}"
        );
        assert!(msg.contains("move it away"), "{msg}");
    }
    // The intact base loads again (its `=` entries included): a deletion at
    // the source is carried, which only a base can tell from an addition.
    std::fs::write(&base, &good).unwrap();
    let mut left = s.items("personal", "contacts");
    left.remove(0);
    s.write("personal", "contacts", Value::Array(left));
    let (status, rec) = s.run_json(&SYNC);
    assert_eq!(status, 0, "{rec}");
    assert_eq!(rec["results"]["contacts"]["deleted"], 1, "{rec}");
    assert_eq!(s.items("business", "contacts").len(), 2);
}

/// A value that differs only in its writing (`+1-555-0100` against
/// `+15550100`) is no change and no conflict, also in a first sync where the
/// policy strips other fields of the same item: the receiving side's item is
/// normalised before it is compared, and keeps its own writing.
#[test]
fn a_difference_in_writing_alone_is_no_change() {
    let s = Scratch::new();
    let p = contact(
        "c1",
        "Ann",
        json!({"category": "business", "phone": "+1-555-0100", "notes": "private"}),
    );
    let b = contact(
        "c1",
        "Ann",
        json!({"category": "business", "phone": "+15550100"}),
    );
    s.write("personal", "contacts", json!([p]));
    s.write("business", "contacts", json!([b]));
    let (status, rec) = s.run_json(&[
        "--source",
        "business",
        "--target",
        "personal",
        "--direction",
        "bidirectional",
        "--entities",
        "contacts",
    ]);
    assert_eq!(status, 0, "{rec}");
    let r = &rec["results"]["contacts"];
    assert_eq!(
        (r["conflicts"].as_u64(), r["updated"].as_u64()),
        (Some(0), Some(0)),
        "{rec}"
    );
    let kept = s.item("personal", "contacts", "c1").unwrap();
    assert_eq!(kept["phone"], "+1-555-0100");
    assert_eq!(kept["notes"], "private");
}

/// Both domain files are read at the same time; the error reported is still
/// the one a sequential read would meet first (the source's), every time.
#[test]
fn with_both_files_invalid_the_source_is_reported_every_time() {
    let s = Scratch::new();
    let bad = |id: &str| json!([{"id": id, "lastModified": "2026-01-12T10:00:00Z"}]);
    s.write("personal", "contacts", bad("p1"));
    s.write("business", "contacts", bad("b1"));
    for _ in 0..5 {
        let rec = assert_refused(&s, &SYNC, 6, "DATA_FORMAT_INVALID");
        let e = &rec["errors"][0];
        assert_eq!(e["id"], "p1", "{rec}");
        assert!(
            e["file"]
                .as_str()
                .unwrap()
                .ends_with("personal/contacts.json"),
            "{rec}"
        );
    }
}

/// Data written as other programs write it (`generate data --shape
/// varied`) syncs: what crosses is normalised (emails lower-case and
/// trimmed, phones reduced to digits, timestamps in UTC) and keeps the
/// fields no plugin knows, nested values included, exactly.
#[test]
fn varied_data_is_normalised_and_keeps_unknown_fields() {
    let s = Scratch::new();
    let out = s.run(&[
        "generate",
        "data",
        "--out",
        ".",
        "--items",
        "60",
        "--shape",
        "varied",
        "--overlap",
        "0.4",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let before = s.items("personal", "contacts");
    let (code, rec) = s.run_json(&common::bidi("contacts"));
    assert_eq!(code, 0, "{rec}");
    let after = s.items("business", "contacts");
    let mut crossed = 0;
    let mut vendor = 0;
    for b in &after {
        let id = b["id"].as_str().unwrap();
        if !id.starts_with("contacts-p") {
            continue;
        }
        let p = before.iter().find(|p| p["id"] == b["id"]).unwrap();
        crossed += 1;
        let email = p["email"].as_str().unwrap();
        assert_eq!(b["email"], email.trim().to_lowercase(), "{id}");
        let phone = b["phone"].as_str().unwrap();
        assert!(
            phone.chars().all(|c| c.is_ascii_digit() || c == '+'),
            "{id}: {phone}"
        );
        assert!(b["lastModified"].as_str().unwrap().ends_with('Z'), "{b}");
        assert_eq!(b["x-crm-id"], p["x-crm-id"], "{id}");
        if p.get("x-vendor").is_some() {
            vendor += 1;
            assert_eq!(
                b["x-vendor"], p["x-vendor"],
                "{id}: nested unknown field kept"
            );
        }
        assert!(
            b.get("notes").is_none(),
            "{id}: the default policy strips notes"
        );
    }
    assert!(
        crossed > 5 && vendor > 0,
        "{crossed} crossed, {vendor} with x-vendor"
    );
}
