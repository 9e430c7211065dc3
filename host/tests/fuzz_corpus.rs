//! The bounded fuzz run of the test suite (the long campaign is `fuzz/`, see
//! docs/SECURITY.md): arbitrary bytes and JSON into data-file parsing and
//! validation, invocation arguments, and the merge core. No panic; every input
//! ends in success or a contract error.

use cds::Code;
use cds::merge::{self, Base, BaseEntry, Direction, Item, MergeInput, Options, SideInput, View};
use proptest::prelude::*;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::Path;

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        ".{0,12}".prop_map(Value::String),
        prop_oneof![
            Just("personal"),
            Just("business"),
            Just("contacts"),
            Just("bidirectional"),
            Just("2026-01-12T10:00:00Z"),
            Just("id"),
            Just("../x")
        ]
        .prop_map(|s| json!(s)),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map(
                prop_oneof![
                    Just("source".to_string()),
                    Just("target".to_string()),
                    Just("entities".to_string()),
                    Just("direction".to_string()),
                    Just("dryRun".to_string()),
                    Just("id".to_string()),
                    Just("name".to_string()),
                    Just("lastModified".to_string()),
                    Just("contacts".to_string()),
                    "[a-z]{1,6}",
                ],
                inner,
                0..6,
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn contacts_schema() -> Value {
    serde_json::from_str(include_str!("../../plugins/contacts/schema.json")).unwrap()
}

/// The built-in types with their item schema and the example data's first
/// item, a valid one.
fn builtin_types() -> Vec<(&'static str, Value, Value)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    [
        "contacts",
        "calendar",
        "tasks",
        "documents",
        "communications",
    ]
    .map(|t| {
        let read = |p: std::path::PathBuf| -> Value {
            serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap()
        };
        let schema = read(root.join(format!("plugins/{t}/schema.json")));
        let file = read(root.join(format!("examples/data/personal/{t}.json")));
        (t, schema, file[t][0].clone())
    })
    .to_vec()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 600, ..ProptestConfig::default() })]

    /// Items are validated with `is_valid`, and their faults collected with
    /// `iter_errors` only when that says no (`Plugin::validate`): the two
    /// must agree on every item, valid or not. Items start valid (the
    /// examples' first of each type) and have fields set to arbitrary
    /// values or removed, so most lie near the schema's edge.
    #[test]
    fn validity_is_what_the_faults_say(
        t in 0usize..5,
        edits in proptest::collection::vec(
            (prop_oneof![
                Just("id"), Just("lastModified"), Just("name"), Just("email"), Just("title"),
                Just("start"), Just("end"), Just("status"), Just("uri"), Just("channel"),
                Just("timestamp"), Just("tags"), Just("attendees"), Just("visibility"),
                Just("classification"), Just("birthday"), Just("to"), Just("x"),
            ], proptest::option::of(json_value())),
            0..3,
        ),
    ) {
        let (name, schema, mut item) = builtin_types().swap_remove(t);
        let validator = cds::validate::validator(&schema).unwrap();
        prop_assert!(validator.is_valid(&item), "{name}: the example item is valid");
        for (field, value) in edits {
            match value {
                Some(v) => { item[field] = v; }
                None => { item.as_object_mut().unwrap().remove(field); }
            }
        }
        prop_assert_eq!(
            validator.is_valid(&item),
            validator.iter_errors(&item).next().is_none(),
            "{}: {}", name, item
        );
    }

    #[test]
    fn data_files_from_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        match cds::store::parse_entity_file(Path::new("f.json"), "contacts", &bytes) {
            Ok(f) => {
                let schema = contacts_schema();
                for it in f.items {
                    let _ = cds::validate::violations(&schema, &Value::Object(it));
                }
            }
            Err(e) => prop_assert_eq!(e.code, Code::DataFormatInvalid),
        }
    }

    #[test]
    fn data_files_from_arbitrary_json(v in json_value()) {
        let bytes = serde_json::to_vec(&json!({"contacts": v})).unwrap();
        match cds::store::parse_entity_file(Path::new("f.json"), "contacts", &bytes) {
            Ok(f) => {
                let schema = contacts_schema();
                for it in f.items {
                    let _ = cds::validate::violations(&schema, &Value::Object(it));
                }
            }
            Err(e) => prop_assert_eq!(e.code, Code::DataFormatInvalid),
        }
    }

    #[test]
    fn invocations_from_arbitrary_json(v in json_value()) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("personal")).unwrap();
        std::fs::create_dir_all(dir.path().join("business")).unwrap();
        let entities: Vec<String> = ["contacts", "calendar"].map(String::from).to_vec();
        match cds::request::resolve(&v, &cds::config::Config::default(), &entities, dir.path(), "u") {
            Ok(r) => {
                prop_assert_ne!(r.source.name, r.target.name);
                prop_assert!(r.entities.iter().all(|e| entities.contains(e)));
            }
            Err(e) => prop_assert!(matches!(e.code,
                Code::InvalidArgument | Code::DomainNotFound | Code::EntityTypeUnsupported), "{e}"),
        }
    }

    #[test]
    fn merge_with_arbitrary_items(
        a in proptest::collection::vec(json_value(), 0..6),
        b in proptest::collection::vec(json_value(), 0..6),
        base in proptest::collection::vec((json_value(), json_value()), 0..4),
        ids in proptest::collection::vec(prop_oneof![Just("x"), Just("y"), Just(""), Just("z")], 12),
        dir in prop_oneof![Just(Direction::Bidirectional), Just(Direction::SourceToTarget), Just(Direction::TargetToSource)],
        no_delete in any::<bool>(),
        withheld in any::<bool>(),
    ) {
        let mut k = 0;
        let mut item = |v: Value| -> Item {
            let mut m = match v { Value::Object(m) => m, other => [("v".to_string(), other)].into_iter().collect() };
            m.insert("id".into(), json!(ids[k % ids.len()]));
            k += 1;
            m
        };
        let a: Vec<Item> = a.into_iter().map(&mut item).collect();
        let b: Vec<Item> = b.into_iter().map(&mut item).collect();
        let base: Base = base.into_iter().map(|(s, t)| {
            let s = item(s);
            let id = s["id"].as_str().unwrap().to_string();
            (id, BaseEntry { source: s.into(), target: item(t).into() })
        }).collect();
        // A view equal to its item is `Same`, as the plugins report it.
        let views = |v: &[Item]| v.iter().map(|_| if withheld { View::Withheld } else { View::Same }).collect::<Vec<_>>();
        let (va, vb) = (views(&a), views(&b));
        let none = HashMap::new();
        let r = merge::merge(MergeInput {
            source: SideInput { domain: "personal", items: a.into_iter().map(Into::into).collect(), views: va, base_views: &none, normalized: &HashMap::new() },
            target: SideInput { domain: "business", items: b.into_iter().map(Into::into).collect(), views: vb, base_views: &none, normalized: &HashMap::new() },
            base,
            direction: dir,
            options: Options { no_delete, allow_mass_delete: false },
            id_field: "id",
            synced_at: "2026-01-12T10:00:00Z",
            settled_count: 0,
        });
        if let Err(e) = r {
            prop_assert_eq!(cds::Error::from(e).code, Code::SyncConflict);
        }
    }
}
