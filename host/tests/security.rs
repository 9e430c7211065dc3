//! Security (issue 4): the permission matrix, path traversal and odd names,
//! the leak property over random data and policies, and audit tampering.

mod common;

use cds::install::{Host, Paths};
use cds::sync::{Cancel, Quiet};
use common::{Scratch, contact, one_way};
use proptest::prelude::*;
use serde_json::{Value, json};
use std::time::Duration;

fn host(s: &Scratch) -> Host {
    Host::open(
        Paths {
            data_dir: s.data(),
            config: s.path().join("cross_domain_config.json"),
            mappings: s.path().join("entity_mappings.json"),
            plugins_dir: s.path().join("plugins"),
            cache_dir: Some(common::cache_dir()),
        },
        Duration::from_secs(30),
    )
    .unwrap()
}

#[test]
fn permission_matrix() {
    let s = Scratch::new();
    s.write(
        "personal",
        "contacts",
        json!([contact("c", "A", json!({"category": "business"}))]),
    );
    s.write(
        "business",
        "contacts",
        json!([contact("d", "B", json!({}))]),
    );
    let rights = [vec![], vec!["read"], vec!["write"], vec!["read", "write"]];
    let mut users = serde_json::Map::new();
    for (i, p) in rights.iter().enumerate() {
        for (j, b) in rights.iter().enumerate() {
            users.insert(format!("u{i}{j}"), json!({"personal": p, "business": b}));
        }
    }
    s.config(json!({"users": users}));
    let h = host(&s);
    let has = |r: &[&str], x: &str| r.contains(&x);
    let mut checked = 0;
    for (i, p) in rights.iter().enumerate() {
        for (j, b) in rights.iter().enumerate() {
            for (src, tgt) in [("personal", "business"), ("business", "personal")] {
                for dir in ["source_to_target", "target_to_source", "bidirectional"] {
                    let r = |d: &str| if d == "personal" { p } else { b };
                    let (sender_reads, receiver_writes) = match dir {
                        "source_to_target" => (has(r(src), "read"), has(r(tgt), "write")),
                        "target_to_source" => (has(r(tgt), "read"), has(r(src), "write")),
                        _ => (
                            has(r(src), "read") && has(r(tgt), "read"),
                            has(r(src), "write") && has(r(tgt), "write"),
                        ),
                    };
                    let allowed = sender_reads && receiver_writes;
                    let user = format!("u{i}{j}");
                    let rec = h.sync(
                        &json!({"source": src, "target": tgt, "direction": dir, "dryRun": true,
                                "entities": ["contacts"], "user": user}),
                        "nobody",
                        &Quiet,
                        &Cancel::default(),
                    );
                    let ok = rec.status != cds::record::Status::Failed;
                    assert_eq!(ok, allowed, "{user} {src}->{tgt} {dir}: {:?}", rec.errors);
                    if !ok {
                        assert_eq!(rec.errors[0].code, cds::Code::PermissionDenied);
                    }
                    checked += 1;
                }
            }
        }
    }
    assert_eq!(checked, 96);
    // Every attempt is in the audit trail, refusals included.
    assert_eq!(s.audit().len(), 96);
}

#[test]
fn path_traversal_and_odd_names_are_refused() {
    let s = Scratch::new();
    std::fs::create_dir_all(s.path().join("outside")).unwrap();
    // Domains on the command line must be configured ones.
    for bad in [
        "../outside",
        "/etc",
        "personal/../business",
        "",
        "PERSONAL",
        "pérsonal",
    ] {
        let (code, v) = s.run_json(&["--source", bad, "--target", "business"]);
        assert!(code == 3 || code == 2, "{bad:?}: {v}");
    }
    // Entity types must be installed ones.
    for bad in [
        "../contacts",
        "contacts/../../x",
        "contacts.json",
        "Contacts",
        "con tacts",
    ] {
        let (code, v) = s.run_json(&[
            "--source",
            "personal",
            "--target",
            "business",
            "--entities",
            bad,
        ]);
        assert_eq!(code, 5, "{bad:?}: {v}");
    }
    // Domain names and folders in the configuration.
    for cfg in [
        json!({"domains": {"../evil": {}, "business": {}}}),
        json!({"domains": {"personal": {"path": "/etc"}, "business": {}}}),
        json!({"domains": {"personal": {"path": "a/../../b"}, "business": {}}}),
        json!({"domains": {"Personal Stuff": {}, "business": {}}}),
    ] {
        s.config(cfg.clone());
        let (code, v) = s.run_json(&["--source", "personal", "--target", "business"]);
        assert_eq!(code, 2, "{cfg}: {v}");
    }
    std::fs::remove_file(s.path().join("cross_domain_config.json")).unwrap();
    // A plugin lock that points outside the plugins folder.
    s.write_raw(
        "plugins/plugins.lock",
        &json!({"version": 1, "plugins": [{"entityType": "evil",
        "file": "../outside/evil.wasm", "sha256": "00", "pluginVersion": "1.0.0",
        "interfaceVersion": "1.0.0", "installedAt": "x"}]})
        .to_string(),
    );
    let (code, v) = s.run_json(&["--source", "personal", "--target", "business"]);
    assert_eq!(code, 9, "{v}");
    assert!(
        v["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("not a plugin name"),
        "{v}"
    );
    std::fs::remove_file(s.path().join("plugins/plugins.lock")).unwrap();
    // Undo and conflict ids are not paths.
    assert_eq!(s.run_json(&["undo", "../../outside"]).0, 2);
    assert_eq!(
        s.run_json(&["conflicts", "resolve", "../x:1", "--keep", "source"])
            .0,
        2
    );
    // Item ids never become paths.
    s.write(
        "personal",
        "contacts",
        json!([contact(
            "../../outside/pwned",
            "A",
            json!({"category": "business"})
        )]),
    );
    let (code, _) = s.run_json(&one_way("contacts"));
    assert_eq!(code, 0);
    assert_eq!(
        std::fs::read_dir(s.path().join("outside")).unwrap().count(),
        0
    );
}

const STRIPPABLE: [&str; 5] = ["notes", "birthday", "address", "phone", "title"];

/// A value that appears nowhere else, valid for the field. Fixed-width, so
/// that no marker is part of another's (`SECRET-address-1` is part of
/// `SECRET-address-10`, which may rightly cross).
fn marker(field: &str, n: usize) -> String {
    if field == "birthday" {
        format!("1{n:03}-07-13")
    } else {
        format!("SECRET-{field}-{n:03}")
    }
}
const CATEGORIES: [&str; 4] = ["personal", "family", "business", "friends"];

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Over random data and policies, no stripped value and no withheld item
    /// reaches the business domain, the sync record, the audit trail, the
    /// conflict log as a business-only reader sees it, or the logs.
    #[test]
    fn nothing_the_policy_forbids_leaks(
        strip in proptest::sample::subsequence(STRIPPABLE.to_vec(), 0..=5),
        withhold in proptest::sample::subsequence(CATEGORIES.to_vec(), 0..=4),
        items in proptest::collection::vec((0..4usize, any::<[bool; 5]>(), 0..3u8), 1..12),
        direction in prop_oneof![Just("bidirectional"), Just("source_to_target")],
    ) {
        let s = Scratch::new();
        s.config(json!({
            "users": {
                "owner": {"personal": ["read", "write"], "business": ["read", "write"]},
                "colleague": {"business": ["read", "write"]}
            },
            "policies": {"personal->business": {"contacts": {
                "withhold": [{"field": "category", "in": withhold}],
                "strip": strip,
            }}}
        }));
        let mut personal = Vec::new();
        let mut business = Vec::new();
        let mut forbidden = Vec::new();
        for (n, (cat, present, overlap)) in items.iter().enumerate() {
            let id = format!("c{n}");
            let mut it = json!({"id": id, "name": format!("Name-{n}"), "category": CATEGORIES[*cat],
                "lastModified": "2026-01-12T10:00:00Z"});
            for (k, f) in STRIPPABLE.iter().enumerate() {
                if present[k] {
                    it[*f] = json!(marker(f, n));
                }
            }
            if withhold.contains(&CATEGORIES[*cat]) {
                it["name"] = json!(format!("WITHHELD-{n:03}"));
                forbidden.push(format!("WITHHELD-{n:03}"));
                // Every value of a withheld item is forbidden.
                for (k, f) in STRIPPABLE.iter().enumerate() {
                    if present[k] { forbidden.push(marker(f, n)); }
                }
            } else {
                for (k, f) in STRIPPABLE.iter().enumerate() {
                    if present[k] && strip.contains(f) { forbidden.push(marker(f, n)); }
                }
            }
            // Business may hold the same id with its own values (conflicts).
            if *overlap == 1 {
                business.push(json!({"id": id, "name": format!("Biz-{n}"), "notes": format!("biz-{n}"),
                    "title": "Biz title", "lastModified": "2026-01-12T09:00:00Z"}));
            }
            personal.push(it);
        }
        s.write("personal", "contacts", Value::Array(personal));
        s.write("business", "contacts", Value::Array(business));
        let out = s.run(&["--source", "personal", "--target", "business", "--direction", direction,
            "--entities", "contacts", "--user", "owner", "--json", "-vv"]);
        prop_assert!(out.status.success(), "{:?} {}", out.status, common::stdout(&out));
        // A second sync after business edits everything it has.
        let mut b = s.items("business", "contacts");
        for it in &mut b { it["name"] = json!("edited in business"); it["lastModified"] = json!("2026-03-01T00:00:00Z"); }
        s.write("business", "contacts", Value::Array(b));
        let out2 = s.run(&["--source", "personal", "--target", "business", "--direction", direction,
            "--entities", "contacts", "--user", "owner", "--json", "-vv"]);
        prop_assert!(out2.status.success(), "{:?} {}", out2.status, common::stdout(&out2));

        let mut places: Vec<(String, String)> = Vec::new();
        places.push(("business/contacts.json".into(), std::fs::read_to_string(s.data().join("business/contacts.json")).unwrap_or_default()));
        for f in common::files_under(&s.data().join("sync-records")) {
            places.push((f.display().to_string(), std::fs::read_to_string(&f).unwrap()));
        }
        places.push(("audit".into(), std::fs::read_to_string(s.data().join("audit/audit.jsonl")).unwrap()));
        for o in [&out, &out2] {
            places.push(("stdout".into(), common::stdout(o)));
            places.push(("stderr (logs)".into(), common::stderr(o)));
        }
        let colleague = s.run(&["conflicts", "list", "--all", "--user", "colleague", "--json"]);
        places.push(("conflicts as colleague sees them".into(), common::stdout(&colleague)));
        for (place, text) in &places {
            for f in &forbidden {
                prop_assert!(!text.contains(f.as_str()), "`{}` leaked into {}", f, place);
            }
        }
    }
}

fn tamper(edit: impl FnOnce(&mut Vec<String>)) -> (i32, Value) {
    let s = Scratch::new();
    s.write(
        "personal",
        "contacts",
        json!([contact("c", "A", json!({"category": "business"}))]),
    );
    for _ in 0..4 {
        assert_eq!(s.run_json(&one_way("contacts")).0, 0);
    }
    let path = s.data().join("audit/audit.jsonl");
    let mut lines: Vec<String> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(lines.len(), 4);
    edit(&mut lines);
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    s.run_json(&["audit", "verify"])
}

#[test]
fn audit_tampering_is_caught_and_named() {
    // Editing a count in entry 2.
    let (code, v) = tamper(|l| {
        *l = l
            .iter()
            .enumerate()
            .map(|(i, x)| {
                if i == 1 {
                    x.replace("\"added\":0", "\"added\":9")
                } else {
                    x.clone()
                }
            })
            .collect()
    });
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["firstBadLine"], 2);
    assert!(v["problem"].as_str().unwrap().contains("altered"));
    // Deleting entry 2.
    let (code, v) = tamper(|l| {
        l.remove(1);
    });
    assert_eq!(code, 1);
    assert_eq!(v["firstBadLine"], 2);
    assert!(v["problem"].as_str().unwrap().contains("removed"), "{v}");
    // Inserting a copy of entry 1 after it.
    let (code, v) = tamper(|l| {
        let c = l[0].clone();
        l.insert(1, c);
    });
    assert_eq!(code, 1);
    assert_eq!(v["firstBadLine"], 2);
    assert!(v["problem"].as_str().unwrap().contains("inserted"), "{v}");
    // Swapping entries 2 and 3.
    let (code, v) = tamper(|l| l.swap(1, 2));
    assert_eq!(code, 1);
    assert_eq!(v["firstBadLine"], 2);
    // Cutting off the last entry.
    let (code, v) = tamper(|l| {
        l.pop();
    });
    assert_eq!(code, 1);
    assert_eq!(v["firstBadLine"], 4);
    assert!(v["problem"].as_str().unwrap().contains("removed"), "{v}");
    // Untouched: it verifies.
    let (code, v) = tamper(|_| {});
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["entries"], 4);
}
