//! The committed schemas in schemas/ are what the code generates, and
//! skill.md documents exactly the invocation schema's parameters.

mod common;

use serde_json::Value;
use std::collections::BTreeSet;

fn defaults() -> (Vec<String>, Vec<String>) {
    (
        cds::config::Config::default().domain_names(),
        cds::plugin::builtin_names()
            .into_iter()
            .map(String::from)
            .collect(),
    )
}

#[test]
fn committed_schemas_are_current() {
    let (domains, entities) = defaults();
    for name in cds::schema::NAMES {
        let want = cds::schema::named(name, &domains, &entities).unwrap();
        let path = common::workspace().join(format!("schemas/{name}.schema.json"));
        let have: Value = serde_json::from_slice(&std::fs::read(&path).unwrap_or_default())
            .unwrap_or(Value::Null);
        assert_eq!(
            have,
            want,
            "{} is stale: run `cargo run -p cross-domain-sync -- schema --write schemas`",
            path.display()
        );
    }
}

#[test]
fn invocation_schema_is_closed_and_lists_the_installation() {
    let (domains, entities) = defaults();
    let s = cds::schema::invocation_schema(&domains, &entities);
    assert_eq!(s["$schema"], "https://json-schema.org/draft/2020-12/schema");
    assert_eq!(s["additionalProperties"], false);
    assert_eq!(
        s["properties"]["source"]["enum"],
        serde_json::json!(["personal", "business"])
    );
    assert_eq!(
        s["properties"]["entities"]["items"]["enum"]
            .as_array()
            .unwrap()
            .len(),
        5
    );
    assert_eq!(s["required"], serde_json::json!(["source", "target"]));
}

/// The parameter names of skill.md's "Parameters" table: its rows start
/// with "| `name` |".
fn documented_parameters() -> BTreeSet<String> {
    let text = std::fs::read_to_string(common::workspace().join("skill.md")).unwrap();
    let section = text
        .split("\n## ")
        .find(|s| s.starts_with("Parameters"))
        .expect("skill.md has a Parameters section");
    section
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .map(String::from)
        .collect()
}

#[test]
fn skill_md_documents_exactly_the_invocation_parameters() {
    let (domains, entities) = defaults();
    let s = cds::schema::invocation_schema(&domains, &entities);
    let schema: BTreeSet<String> = s["properties"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    let documented = documented_parameters();
    let missing: Vec<_> = schema.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&schema).collect();
    assert!(
        missing.is_empty(),
        "parameters in the schema but not in skill.md: {missing:?}"
    );
    assert!(
        extra.is_empty(),
        "parameters in skill.md but not in the schema: {extra:?}"
    );
}

#[test]
fn skill_md_has_the_runtime_frontmatter() {
    let text = std::fs::read_to_string(common::workspace().join("skill.md")).unwrap();
    let front = text
        .strip_prefix("---\n")
        .and_then(|t| t.split("\n---\n").next())
        .unwrap();
    assert!(front.lines().any(|l| l == "name: gold.cross-domain-sync"));
    assert!(front.lines().any(|l| l.starts_with("description: ")));
    let version = front
        .lines()
        .find_map(|l| l.strip_prefix("version: "))
        .unwrap();
    assert_eq!(version, env!("CARGO_PKG_VERSION"));
}
