//! The settled path, through the real binary: an item both sides hold exactly
//! as the last sync wrote it is neither parsed, validated nor merged again,
//! and a rewritten file copies its text. These tests check what that must
//! never change: edits still travel, broken items are still refused, files are
//! still written in the written form, and digests are trusted only for the
//! plugin and field renames they were recorded under.

mod common;

use common::{BIDI, ONE_WAY, Scratch, contact};
use serde_json::{Value, json};

fn three() -> Value {
    json!([
        contact(
            "c1",
            "Ada",
            json!({"category": "business", "phone": "+15550100"})
        ),
        contact("c2", "Alan", json!({"category": "business"})),
        contact(
            "c3",
            "Grace",
            json!({"category": "business", "tags": ["x"]})
        )
    ])
}

/// Runs a sync; returns its record and how many items it settled (its
/// record's count for contacts).
fn sync(s: &Scratch, args: &[&str]) -> (Value, usize) {
    let mut a = args.to_vec();
    a.extend(["--entities", "contacts"]);
    let (code, rec) = s.run_json(&a);
    assert_eq!(code, 0, "{rec}");
    let settled = rec["results"]["contacts"]["settled"]
        .as_u64()
        .expect("the record counts settled items") as usize;
    (rec, settled)
}

/// Three contacts in personal, synced both ways once.
fn synced_once() -> Scratch {
    let s = Scratch::new();
    s.write("personal", "contacts", three());
    sync(&s, &BIDI);
    s
}

/// [`synced_once`], then a second time, which settles all three.
fn settled_three() -> Scratch {
    let s = synced_once();
    let (_, settled) = sync(&s, &BIDI);
    assert_eq!(settled, 3);
    s
}

fn file(s: &Scratch, domain: &str) -> String {
    std::fs::read_to_string(s.data().join(domain).join("contacts.json")).unwrap()
}

fn base(s: &Scratch) -> Value {
    let p = s.data().join(".sync/base/business+personal/contacts.json");
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

/// The written form: what `serde_json::to_string_pretty` makes of the items.
fn written_form(s: &Scratch, domain: &str) -> String {
    let items = s.items(domain, "contacts");
    serde_json::to_string_pretty(&json!({ "contacts": items })).unwrap() + "\n"
}

#[test]
fn a_resync_settles_what_did_not_change_and_carries_what_did() {
    let s = Scratch::new();
    s.write("personal", "contacts", three());
    let (rec, settled) = sync(&s, &BIDI);
    assert_eq!(
        (rec["results"]["contacts"]["added"].as_u64(), settled),
        (Some(3), 0)
    );
    // The base records both sides' digests under a key, format 2.
    let b = base(&s);
    assert_eq!(b["version"], 2);
    assert!(b["key"].as_str().is_some_and(|k| k.len() == 64), "{b}");
    for e in b["items"].as_array().unwrap() {
        let d = &e["digests"];
        assert!(
            d["personal"].is_string() && d["business"].is_string(),
            "{e}"
        );
    }

    // Nothing changed: everything settles, nothing is written.
    let before = s.snapshot();
    let (rec, settled) = sync(&s, &BIDI);
    assert_eq!(settled, 3, "{rec}");
    assert_eq!(rec["results"]["contacts"]["unchanged"], 3);
    assert_eq!(s.snapshot(), before);

    // One edit: it travels; the other two settle and keep their text.
    let business_before = file(&s, "business");
    let mut items = s.items("personal", "contacts");
    items[1]["name"] = json!("Alan T.");
    items[1]["lastModified"] = json!("2026-02-01T00:00:00Z");
    s.write("personal", "contacts", Value::Array(items));
    let (rec, settled) = sync(&s, &BIDI);
    assert_eq!(settled, 2, "{rec}");
    assert_eq!(rec["results"]["contacts"]["updated"], 1);
    assert_eq!(
        s.item("business", "contacts", "c2").unwrap()["name"],
        "Alan T."
    );
    let after = file(&s, "business");
    assert_ne!(after, business_before);
    assert_eq!(
        after,
        written_form(&s, "business"),
        "still the written form"
    );
    for id in ["c1", "c3"] {
        let text = |f: &str| -> String {
            let v: Value = serde_json::from_str(f).unwrap();
            let it = v["contacts"]
                .as_array()
                .unwrap()
                .iter()
                .find(|i| i["id"] == id)
                .cloned();
            serde_json::to_string(&it).unwrap()
        };
        assert_eq!(text(&after), text(&business_before), "{id} kept as it was");
    }
    // And the edited item settles from then on.
    let (_, settled) = sync(&s, &BIDI);
    assert_eq!(settled, 3);
}

#[test]
fn a_settled_item_broken_by_hand_is_refused() {
    let s = settled_three();
    let mut items = s.items("business", "contacts");
    items[1]["name"] = json!(42);
    s.write("business", "contacts", Value::Array(items));
    let before = s.snapshot();
    let (status, rec) = s.run_json(&BIDI);
    assert_eq!(status, 6, "{rec}");
    let e = &rec["errors"][0];
    assert_eq!(e["code"], "DATA_FORMAT_INVALID");
    assert_eq!(
        (e["index"].as_u64(), e["id"].as_str()),
        (Some(1), Some("c2")),
        "{rec}"
    );
    assert!(
        e["file"]
            .as_str()
            .unwrap()
            .ends_with("business/contacts.json")
    );
    assert_eq!(s.snapshot(), before);
    // And an id repeated by hand, on items that were settled, is still a
    // conflict the host refuses to guess at.
    let mut items = s.items("personal", "contacts");
    items[2]["id"] = json!("c1");
    s.write("personal", "contacts", Value::Array(items));
    let mut fixed = s.items("business", "contacts");
    fixed[1]["name"] = json!("Alan");
    s.write("business", "contacts", Value::Array(fixed));
    let (status, rec) = s.run_json(&BIDI);
    assert_eq!(
        (status, rec["errors"][0]["code"].as_str()),
        (7, Some("SYNC_CONFLICT")),
        "{rec}"
    );
}

/// A file another program wrote in its own form (here compact) settles
/// nothing by digest, syncs as before, and once the host rewrites it, the
/// whole file is in the written form: no item's foreign text is copied.
#[test]
fn files_in_another_form_are_read_again_and_written_in_the_written_form() {
    let s = synced_once();
    let compact =
        serde_json::to_string(&json!({"contacts": s.items("business", "contacts")})).unwrap();
    std::fs::write(s.data().join("business/contacts.json"), &compact).unwrap();
    let (rec, settled) = sync(&s, &BIDI);
    assert_eq!(settled, 0, "{rec}");
    assert_eq!(rec["results"]["contacts"]["unchanged"], 3);
    assert_eq!(
        file(&s, "business"),
        compact,
        "an unchanged file is not rewritten"
    );
    // Still not settled by digest: the digest recorded is the written form's.
    let (_, settled) = sync(&s, &BIDI);
    assert_eq!(settled, 0);
    let mut items = s.items("personal", "contacts");
    items[0]["name"] = json!("Ada L.");
    s.write("personal", "contacts", Value::Array(items));
    let (rec, _) = sync(&s, &BIDI);
    assert_eq!(rec["results"]["contacts"]["updated"], 1, "{rec}");
    assert_eq!(file(&s, "business"), written_form(&s, "business"));
    let (_, settled) = sync(&s, &BIDI);
    assert_eq!(settled, 3, "settled once written in the written form");
}

/// In a one-way sync the sender's file is not rewritten; its items still get
/// the digest of their written form, so the next sync settles them.
#[test]
fn a_one_way_sync_settles_the_sender_too() {
    let s = Scratch::new();
    s.write("personal", "contacts", three());
    let personal = file(&s, "personal");
    let (rec, settled) = sync(&s, &ONE_WAY);
    assert_eq!(
        (rec["results"]["contacts"]["added"].as_u64(), settled),
        (Some(3), 0)
    );
    assert_eq!(file(&s, "personal"), personal);
    let (_, settled) = sync(&s, &ONE_WAY);
    assert_eq!(settled, 3);
}

/// Digests are trusted only under the plugin and field renames they were
/// recorded with: a rename changes what an item's text means.
#[test]
fn new_field_renames_trust_no_digest() {
    let s = settled_three();
    let key = base(&s)["key"].clone();
    s.write_raw(
        "entity_mappings.json",
        &json!({"business": {"contacts": {"company": "organization"}}}).to_string(),
    );
    let (rec, settled) = sync(&s, &BIDI);
    assert_eq!(settled, 0, "{rec}");
    assert_eq!(rec["results"]["contacts"]["unchanged"], 3);
    let b = base(&s);
    assert_ne!(b["key"], key, "the base is rewritten under the new key");
    let (_, settled) = sync(&s, &BIDI);
    assert_eq!(settled, 3);
}

/// A base from before digests (format 1) is read, settles nothing, and is
/// written anew with digests.
#[test]
fn a_base_of_format_one_is_read_and_upgraded() {
    let s = synced_once();
    let path = s.data().join(".sync/base/business+personal/contacts.json");
    let mut b = base(&s);
    b["version"] = json!(1);
    b.as_object_mut().unwrap().remove("key");
    for e in b["items"].as_array_mut().unwrap() {
        e.as_object_mut().unwrap().remove("digests");
    }
    std::fs::write(&path, b.to_string()).unwrap();
    let (rec, settled) = sync(&s, &BIDI);
    assert_eq!(
        (settled, rec["results"]["contacts"]["unchanged"].as_u64()),
        (0, Some(3))
    );
    assert_eq!(base(&s)["version"], 2);
    let (_, settled) = sync(&s, &BIDI);
    assert_eq!(settled, 3);
}
