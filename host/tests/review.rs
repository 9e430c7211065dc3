//! Conflict review, undo and backups (CONTRACT §8), through the real binary.

mod common;

use common::{Scratch, bidi, contact, stdout};
use serde_json::{Value, json};

fn conflicted() -> (Scratch, String) {
    let s = Scratch::new();
    s.write(
        "personal",
        "contacts",
        json!([
            contact("c1", "Ann", json!({"title": "CTO", "category": "business"})),
            contact("c2", "Bo", json!({"category": "business"}))
        ]),
    );
    s.write(
        "business",
        "contacts",
        json!([contact("c1", "Ann", json!({"title": "VP"}))]),
    );
    let (code, rec) = s.run_json(&bidi("contacts"));
    assert_eq!(code, 0);
    (s, rec["syncId"].as_str().unwrap().to_string())
}

#[test]
fn conflicts_list_shows_both_values_and_the_winner() {
    let (s, sync) = conflicted();
    let out = s.run(&["conflicts", "list"]);
    let text = stdout(&out);
    let first = format!("{sync}:1");
    for want in [
        first.as_str(),
        "contacts `c1` title",
        "personal: CTO",
        "business: VP",
        "won: source",
    ] {
        assert!(text.contains(want), "`{want}` missing:\n{text}");
    }
    let (_, v) = s.run_json(&["conflicts", "list"]);
    assert_eq!(v["conflicts"].as_array().unwrap().len(), 1);
}

#[test]
fn resolve_applies_the_choice_to_both_domains_and_is_audited() {
    let (s, sync) = conflicted();
    let id = format!("{sync}:1");
    let (code, v) = s.run_json(&["conflicts", "resolve", &id, "--keep", "target"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(s.item("personal", "contacts", "c1").unwrap()["title"], "VP");
    assert_eq!(s.item("business", "contacts", "c1").unwrap()["title"], "VP");
    let entry = s.audit().pop().unwrap();
    assert_eq!(entry["action"], "CONFLICT_RESOLVE");
    assert_eq!(entry["conflictId"], id);
    assert_eq!(entry["keep"], "target");
    // The log keeps the decision, typed as the schema says.
    let (_, v) = s.run_json(&["conflicts", "list", "--all"]);
    assert_eq!(v["conflicts"][0]["resolved"]["keep"], "target", "{v}");
    // Resolved: no longer listed, cannot be resolved twice.
    let (_, v) = s.run_json(&["conflicts", "list"]);
    assert!(v["conflicts"].as_array().unwrap().is_empty());
    let (code, v) = s.run_json(&["conflicts", "resolve", &id, "--keep", "source"]);
    assert_eq!(code, 2);
    assert!(
        v["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("already resolved")
    );
    // The next sync sees no conflict and changes nothing.
    let (_, rec) = s.run_json(&bidi("contacts"));
    assert_eq!(rec["results"]["contacts"]["conflicts"], 0);
    assert_eq!(rec["results"]["contacts"]["updated"], 0);
    assert!(s.run(&["audit", "verify"]).status.success());
}

#[test]
fn resolve_refuses_unknown_ids_and_users_without_rights() {
    let (s, sync) = conflicted();
    let (code, v) = s.run_json(&[
        "conflicts",
        "resolve",
        "sync-19990101-000000:1",
        "--keep",
        "source",
    ]);
    assert_eq!(code, 2, "{v}");
    let (code, _) = s.run_json(&[
        "conflicts",
        "resolve",
        "../../etc/passwd:1",
        "--keep",
        "source",
    ]);
    assert_eq!(code, 2);
    s.config(json!({"users": {"bob": {"personal": ["read", "write"], "business": ["read"]}}}));
    let (code, v) = s.run_json(&[
        "conflicts",
        "resolve",
        &format!("{sync}:1"),
        "--keep",
        "target",
        "--user",
        "bob",
    ]);
    assert_eq!(code, 4, "{v}");
}

#[test]
fn a_change_against_a_deletion_can_be_resolved_as_the_deletion() {
    let s = Scratch::new();
    s.write(
        "personal",
        "contacts",
        json!([contact("c1", "Ann", json!({"category": "business"}))]),
    );
    assert_eq!(s.run_json(&bidi("contacts")).0, 0);
    // Personal changes it, business deletes it.
    s.write(
        "personal",
        "contacts",
        json!([contact(
            "c1",
            "Ann B.",
            json!({"category": "business",
        "lastModified": "2026-02-01T00:00:00Z"})
        )]),
    );
    s.write(
        "business",
        "contacts",
        json!([contact("c9", "Other", json!({}))]),
    );
    let (_, rec) = s.run_json(&bidi("contacts"));
    assert_eq!(rec["results"]["contacts"]["conflicts"], 1);
    assert!(
        s.item("business", "contacts", "c1").is_some(),
        "the change beat the deletion"
    );
    let id = format!("{}:1", rec["syncId"].as_str().unwrap());
    let (code, v) = s.run_json(&["conflicts", "resolve", &id, "--keep", "base"]);
    assert_eq!(code, 2, "{v}");
    let (code, _) = s.run_json(&["conflicts", "resolve", &id, "--keep", "target"]);
    assert_eq!(code, 0);
    assert!(s.item("business", "contacts", "c1").is_none());
    assert!(s.item("personal", "contacts", "c1").is_none());
}

#[test]
fn undo_restores_both_domains_item_by_item() {
    let s = Scratch::new();
    s.write(
        "personal",
        "contacts",
        json!([contact("c1", "Ann", json!({"category": "business"}))]),
    );
    s.write(
        "business",
        "contacts",
        json!([contact("b1", "Cy", json!({}))]),
    );
    let before = s.snapshot();
    let (_, rec) = s.run_json(&bidi("contacts"));
    let sync = rec["syncId"].as_str().unwrap().to_string();
    assert_ne!(s.snapshot(), before);
    let (code, v) = s.run_json(&["undo", &sync]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(s.snapshot(), before, "both domains as before the sync");
    assert_eq!(s.audit().pop().unwrap()["action"], "UNDO");
    // Undone once; and the next sync does the same work again (the base was
    // restored too, so nothing is taken for a deletion).
    assert_eq!(s.run_json(&["undo", &sync]).0, 2);
    let (_, rec) = s.run_json(&bidi("contacts"));
    assert_eq!(rec["results"]["contacts"]["added"], 2);
    assert_eq!(rec["results"]["contacts"]["deleted"], 0);
}

#[test]
fn undo_refuses_over_a_later_change_unless_forced() {
    let s = Scratch::new();
    s.write(
        "personal",
        "contacts",
        json!([contact("c1", "Ann", json!({"category": "business"}))]),
    );
    let (_, rec) = s.run_json(&bidi("contacts"));
    let first = rec["syncId"].as_str().unwrap().to_string();
    // A later sync changes the same item.
    s.write(
        "personal",
        "contacts",
        json!([contact(
            "c1",
            "Ann Later",
            json!({"category": "business",
        "lastModified": "2026-03-01T00:00:00Z"})
        )]),
    );
    let (code, _) = s.run_json(&bidi("contacts"));
    assert_eq!(code, 0);
    let (code, v) = s.run_json(&["undo", &first]);
    assert_eq!(code, 7, "{v}");
    let msg = v["errors"][0]["message"].as_str().unwrap();
    assert!(
        msg.contains("business/contacts.json: c1") && msg.contains("--force"),
        "{msg}"
    );
    assert_eq!(
        s.item("business", "contacts", "c1").unwrap()["name"],
        "Ann Later",
        "nothing changed"
    );
    let (code, _) = s.run_json(&["undo", &first, "--force"]);
    assert_eq!(code, 0);
    assert!(
        s.item("business", "contacts", "c1").is_none(),
        "as before the first sync"
    );
}

#[test]
fn backups_list_and_prune() {
    let s = Scratch::new();
    for i in 0..3 {
        s.write(
            "personal",
            "contacts",
            json!([contact(
                "c1",
                &format!("v{i}"),
                json!({"category": "business",
            "lastModified": format!("2026-0{}-01T00:00:00Z", i + 1)})
            )]),
        );
        assert_eq!(s.run_json(&bidi("contacts")).0, 0);
    }
    let (_, v) = s.run_json(&["backups", "list"]);
    let ids: Vec<String> = v["backups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap().into())
        .collect();
    assert_eq!(ids.len(), 3);
    let (code, v) = s.run_json(&["backups", "prune", "--keep", "1"]);
    assert_eq!(code, 0);
    assert_eq!(v["pruned"].as_array().unwrap().len(), 2);
    assert_eq!(
        s.run_json(&["undo", &ids[0]]).0,
        2,
        "pruned syncs cannot be undone"
    );
    assert_eq!(s.run_json(&["undo", &ids[2]]).0, 0);
    assert_eq!(
        s.audit()
            .iter()
            .filter(|e| e["action"] == "BACKUPS_PRUNE")
            .count(),
        1
    );
    let _ = Value::Null;
}
