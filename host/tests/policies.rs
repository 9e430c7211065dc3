//! Every default policy row of CONTRACT §5, run through the real built-in
//! plugins in the sandbox and the host's checks; and fields no plugin knows
//! passing through.

mod common;

use cds::config::Config;
use cds::plugin::runtime::{Limits, Runtime};
use cds::plugin::{Crossed, Registry, Shapes};
use serde_json::{Value, json};

fn registry() -> Registry {
    let rt = Runtime::new(Limits::default(), Some(common::cache_dir())).unwrap();
    let dir = tempfile::tempdir().unwrap();
    Registry::open(rt, dir.path()).unwrap()
}

/// Runs `items` across `from->to` with the default policy; returns each
/// item's outcome (None = withheld) and the redacted-field count.
fn cross(
    reg: &Registry,
    entity: &str,
    from: &str,
    to: &str,
    items: Value,
) -> (Vec<Option<Value>>, u64) {
    let (items, out) = cross_views(reg, entity, from, to, items);
    (
        out.items
            .into_iter()
            .zip(&items)
            .map(|(v, i)| v.into_item(i).map(Value::Object))
            .collect(),
        out.redacted_fields,
    )
}

/// Like [`cross`], but returns the items given and the views as the host
/// receives them.
fn cross_views(
    reg: &Registry,
    entity: &str,
    from: &str,
    to: &str,
    items: Value,
) -> (Vec<cds::merge::Item>, Crossed) {
    let plugin = reg.get(entity).unwrap();
    let policy = Config::default().policy(from, to, entity);
    let items: Vec<cds::merge::Item> = items
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_object().unwrap().clone())
        .collect();
    let refs: Vec<_> = items.iter().collect();
    let none = Vec::new();
    let shapes = Shapes {
        from_domain: from,
        to_domain: to,
        from_fields: &none,
        to_fields: &none,
    };
    let out = plugin
        .map_filter(&reg.runtime, &shapes, Some(&policy), &refs)
        .unwrap();
    (items, out)
}

const T: &str = "2026-01-12T10:00:00Z";

#[test]
fn personal_to_business_contacts() {
    let reg = registry();
    let (out, redacted) = cross(
        &reg,
        "contacts",
        "personal",
        "business",
        json!([
            {"id": "1", "name": "Mum", "category": "family", "lastModified": T},
            {"id": "2", "name": "Pal", "category": "personal", "lastModified": T},
            {"id": "3", "name": "Boss", "category": "business", "lastModified": T,
             "birthday": "1970-01-01", "notes": "n", "address": "1 Road", "phone": "555 0100"}
        ]),
    );
    assert_eq!(out[0], None);
    assert_eq!(out[1], None);
    let boss = out[2].as_ref().unwrap();
    for f in ["birthday", "notes", "address"] {
        assert!(boss.get(f).is_none(), "{f} must be stripped: {boss}");
    }
    assert_eq!(boss["phone"], "5550100");
    assert_eq!(redacted, 3);
}

#[test]
fn personal_to_business_calendar_busy_blocks() {
    let reg = registry();
    let ev = |id: &str, extra: Value| {
        let mut v = json!({"id": id, "title": "Dentist", "start": "2026-01-12T09:00:00+01:00",
            "end": "2026-01-12T10:00:00+01:00", "allDay": false, "location": "Clinic",
            "attendees": ["A@B.example"], "description": "d", "lastModified": T});
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        v
    };
    let (out, _) = cross(
        &reg,
        "calendar",
        "personal",
        "business",
        json!([
            ev("p", json!({"category": "personal"})),
            ev("f", json!({"category": "family"})),
            ev(
                "v",
                json!({"visibility": "private", "category": "business"})
            ),
            ev("b", json!({"category": "business", "visibility": "public"}))
        ]),
    );
    for busy in &out[..3] {
        let b = busy.as_ref().unwrap();
        let mut keys: Vec<&str> = b.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        keys.sort();
        assert_eq!(
            keys,
            ["allDay", "end", "id", "lastModified", "start", "title"],
            "{b}"
        );
        assert_eq!(b["title"], "Busy");
        assert_eq!(
            b["start"], "2026-01-12T08:00:00Z",
            "times normalised to UTC"
        );
    }
    let open = out[3].as_ref().unwrap();
    assert_eq!(open["title"], "Dentist");
    assert_eq!(
        open["attendees"],
        json!(["a@b.example"]),
        "emails lower-cased"
    );
}

#[test]
fn personal_to_business_tasks_documents_communications() {
    let reg = registry();
    let (out, _) = cross(
        &reg,
        "tasks",
        "personal",
        "business",
        json!([
            {"id": "1", "title": "t", "status": "todo", "category": "family", "lastModified": T},
            {"id": "2", "title": "t", "status": "todo", "category": "business", "notes": "x", "lastModified": T}
        ]),
    );
    assert_eq!(out[0], None);
    assert!(out[1].as_ref().unwrap().get("notes").is_none());

    let (out, _) = cross(
        &reg,
        "documents",
        "personal",
        "business",
        json!([
            {"id": "1", "title": "t", "uri": "u", "category": "personal", "lastModified": T},
            {"id": "2", "title": "t", "uri": "u", "category": "business", "lastModified": T}
        ]),
    );
    assert_eq!(out[0], None);
    assert!(out[1].is_some());

    let (out, _) = cross(
        &reg,
        "communications",
        "personal",
        "business",
        json!([
            {"id": "1", "channel": "sms", "timestamp": T, "category": "family", "lastModified": T},
            {"id": "2", "channel": "email", "timestamp": "2026-01-12T05:00:00-05:00", "category": "business",
             "body": "b", "snippet": "s", "attachments": [1], "subject": "keep", "from": "X@Y.example", "lastModified": T}
        ]),
    );
    assert_eq!(out[0], None);
    let m = out[1].as_ref().unwrap();
    for f in ["body", "snippet", "attachments"] {
        assert!(m.get(f).is_none(), "{f} stripped");
    }
    assert_eq!(m["subject"], "keep");
    assert_eq!(m["from"], "x@y.example");
    assert_eq!(m["timestamp"], T);
}

#[test]
fn business_to_personal_rows() {
    let reg = registry();
    let (out, _) = cross(
        &reg,
        "documents",
        "business",
        "personal",
        json!([
            {"id": "c", "title": "t", "uri": "u", "classification": "confidential", "lastModified": T},
            {"id": "r", "title": "t", "uri": "u", "classification": "restricted", "lastModified": T},
            {"id": "i", "title": "t", "uri": "u", "classification": "internal", "lastModified": T}
        ]),
    );
    assert_eq!(out[0], None);
    assert_eq!(out[1], None);
    assert!(out[2].is_some());

    let (out, _) = cross(
        &reg,
        "communications",
        "business",
        "personal",
        json!([
            {"id": "1", "channel": "email", "timestamp": T, "body": "b", "attachments": [], "snippet": "s", "lastModified": T}
        ]),
    );
    let m = out[0].as_ref().unwrap();
    assert!(m.get("body").is_none() && m.get("attachments").is_none());
    assert_eq!(m["snippet"], "s", "business->personal keeps snippets");

    let (out, _) = cross(
        &reg,
        "calendar",
        "business",
        "personal",
        json!([
            {"id": "c", "title": "M&A", "start": T, "end": T, "visibility": "confidential", "location": "HQ", "lastModified": T},
            {"id": "p", "title": "Standup", "start": T, "end": T, "visibility": "private", "lastModified": T}
        ]),
    );
    assert_eq!(out[0].as_ref().unwrap()["title"], "Busy");
    assert!(out[0].as_ref().unwrap().get("location").is_none());
    assert_eq!(
        out[1].as_ref().unwrap()["title"],
        "Standup",
        "only confidential is a busy block this way"
    );
    // Contacts and tasks cross business->personal untouched.
    let (out, r) = cross(
        &reg,
        "contacts",
        "business",
        "personal",
        json!([
            {"id": "1", "name": "n", "notes": "kept", "birthday": "1970-01-01", "lastModified": T}
        ]),
    );
    assert_eq!(out[0].as_ref().unwrap()["notes"], "kept");
    assert_eq!(r, 0);
}

#[test]
fn unknown_fields_pass_through_every_plugin() {
    let reg = registry();
    let cases = [
        (
            "contacts",
            json!({"id": "1", "name": "n", "lastModified": T}),
        ),
        (
            "calendar",
            json!({"id": "1", "title": "t", "start": T, "end": T, "lastModified": T}),
        ),
        (
            "tasks",
            json!({"id": "1", "title": "t", "status": "done", "lastModified": T}),
        ),
        (
            "documents",
            json!({"id": "1", "title": "t", "uri": "u", "lastModified": T}),
        ),
        (
            "communications",
            json!({"id": "1", "channel": "chat", "timestamp": T, "lastModified": T}),
        ),
    ];
    for (entity, mut item) in cases {
        item["x-vendor"] = json!({"nested": [1, 2, {"deep": true}]});
        item["crmScore"] = json!(7.5);
        let (out, _) = cross(&reg, entity, "business", "personal", json!([item.clone()]));
        let got = out[0].as_ref().unwrap();
        assert_eq!(got["x-vendor"], item["x-vendor"], "{entity}");
        assert_eq!(got["crmScore"], item["crmScore"], "{entity}");
    }
}

/// An item that crosses exactly as it is comes back as `View::Same` (no
/// copy); one that mapping or the policy changes comes back as its new form.
#[test]
fn unchanged_items_cross_as_same_and_changed_ones_as_items() {
    use cds::merge::View;
    let reg = registry();
    let (_, out) = cross_views(
        &reg,
        "contacts",
        "personal",
        "business",
        json!([
            {"id": "1", "name": "A", "email": "a@example.com", "category": "business",
             "lastModified": T},
            {"id": "2", "name": "B", "email": " B@Example.COM", "category": "business",
             "lastModified": T},
            {"id": "3", "name": "C", "category": "business", "birthday": "1970-01-01",
             "lastModified": T},
            {"id": "4", "name": "D", "category": "family", "lastModified": T},
        ]),
    );
    assert_eq!(out.items[0], View::Same);
    let View::Item(normalised) = &out.items[1] else {
        panic!("a normalised email is a new form: {:?}", out.items[1]);
    };
    assert_eq!(normalised["email"], "b@example.com");
    let View::Item(stripped) = &out.items[2] else {
        panic!("a stripped birthday is a new form: {:?}", out.items[2]);
    };
    assert!(!stripped.contains_key("birthday"));
    assert_eq!(out.items[3], View::Withheld);
}

/// A built-in plugin is not sent the fields its policy strips and no rule
/// looks at; what comes back must be exactly what sending them gave: the
/// same views and the same redacted count, for every type and both
/// crossings of the default policies, on generated data of the varied
/// shape (bodies, unknown nested fields, values normalisation changes).
#[test]
fn leaving_stripped_fields_out_of_a_built_in_changes_no_view() {
    let reg = registry();
    let dir = tempfile::tempdir().unwrap();
    let spec = cds::generate::Spec {
        items: 60,
        overlap: 0.4,
        shape: cds::generate::Shape::Varied,
        body_bytes: Some(300),
        seed: 5,
    };
    cds::generate::data(dir.path(), &spec).unwrap();
    let none = Vec::new();
    let mut omitted_somewhere = 0;
    for entity in [
        "contacts",
        "calendar",
        "tasks",
        "documents",
        "communications",
    ] {
        let plugin = reg.get(entity).unwrap();
        for (from, to) in [("personal", "business"), ("business", "personal")] {
            let text = std::fs::read(
                dir.path()
                    .join("data")
                    .join(from)
                    .join(format!("{entity}.json")),
            )
            .unwrap();
            let doc: Value = serde_json::from_slice(&text).unwrap();
            let items: Vec<cds::merge::Item> = doc[entity]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_object().unwrap().clone())
                .collect();
            let refs: Vec<_> = items.iter().collect();
            let policy = Config::default().policy(from, to, entity);
            let omit = plugin.omittable(&policy, &none);
            let omit: Vec<&str> = omit.iter().map(String::as_str).collect();
            omitted_somewhere += omit.len();
            let shapes = Shapes {
                from_domain: from,
                to_domain: to,
                from_fields: &none,
                to_fields: &none,
            };
            let whole = plugin
                .map_filter(&reg.runtime, &shapes, Some(&policy), &refs)
                .unwrap();
            let part = plugin
                .map_filter_omitting(&reg.runtime, &shapes, Some(&policy), &omit, &refs)
                .unwrap();
            let resolve = |c: &Crossed| -> Vec<Option<cds::merge::Item>> {
                c.items
                    .iter()
                    .zip(&items)
                    .map(|(v, i)| v.resolve(i).map(std::borrow::Cow::into_owned))
                    .collect()
            };
            assert_eq!(resolve(&part), resolve(&whole), "{entity} {from}->{to}");
            assert_eq!(
                (part.withheld, part.redacted_fields),
                (whole.withheld, whole.redacted_fields),
                "{entity} {from}->{to}"
            );
        }
    }
    // communications p->b strips body, snippet and attachments; b->p body
    // and attachments; contacts and tasks strip too.
    assert!(omitted_somewhere >= 8, "{omitted_somewhere}");
}

/// Fields a rule looks at, the id, and a local name another field's rename
/// takes are always sent.
#[test]
fn fields_a_rule_needs_are_always_sent() {
    let reg = registry();
    let plugin = reg.get("communications").unwrap();
    let policy: cds_policy::Policy = serde_json::from_value(json!({
        "withhold": [{"field": "channel", "in": ["sms"]}],
        "strip": ["body", "channel", "id", "subject", "snippet"]
    }))
    .unwrap();
    // The sending domain calls `subject` `title`, and `threadId` `snippet`.
    let fields = vec![
        ("subject".to_string(), "title".to_string()),
        ("threadId".to_string(), "snippet".to_string()),
    ];
    assert_eq!(plugin.omittable(&policy, &fields), vec!["body", "title"]);
}
