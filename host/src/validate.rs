//! Validation against JSON Schemas (draft 2020-12) with `jsonschema` (no
//! network `$ref`): every violation with its JSON path, and the strict
//! reading of configuration files that validates them first.
//!
//! Low in the module graph: configuration, requests and plugins validate
//! here; generating the schemas from the host's types is [`crate::schema`],
//! which sits above the types it needs.

use crate::error::{Code, Error, Result};
use crate::strict::json_path;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::path::Path;

/// The schema schemars derives for `T`, made portable ([`portable`]).
pub fn schema_of<T: schemars::JsonSchema>() -> Value {
    let mut v = serde_json::to_value(schemars::schema_for!(T)).unwrap_or(Value::Null);
    portable(&mut v);
    v
}

/// The `format` values JSON Schema 2020-12 defines (its format vocabulary).
const STANDARD_FORMATS: &[&str] = &[
    "date-time",
    "date",
    "time",
    "duration",
    "email",
    "idn-email",
    "hostname",
    "idn-hostname",
    "ipv4",
    "ipv6",
    "uri",
    "uri-reference",
    "iri",
    "iri-reference",
    "uuid",
    "uri-template",
    "json-pointer",
    "relative-json-pointer",
    "regex",
];

/// Removes the `format` keywords JSON Schema does not define (schemars
/// writes `uint`, `uint64`, `int64`, `double` for Rust's number types;
/// Ajv, which most JavaScript MCP clients validate with, warns of each).
/// The bounds schemars writes beside them (`minimum: 0`) stay. Written
/// here because schemars has no setting for it; a walk over the value,
/// which does not enter literal values (`const`, `enum`, `default`,
/// `examples`), where a `format` key would be data.
pub fn portable(schema: &mut Value) {
    match schema {
        Value::Object(m) => {
            if m.get("format")
                .and_then(Value::as_str)
                .is_some_and(|f| !STANDARD_FORMATS.contains(&f))
            {
                m.remove("format");
            }
            for (k, v) in m.iter_mut() {
                if !matches!(k.as_str(), "const" | "enum" | "default" | "examples") {
                    portable(v);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(portable),
        _ => {}
    }
}

/// One schema violation: where, and what.
#[derive(Debug, Clone, PartialEq)]
pub struct Violation {
    pub path: String,
    pub message: String,
    pub keyword: String,
}

/// The validator of `schema` (draft 2020-12, formats checked), as every
/// schema here is used.
pub fn validator(schema: &Value) -> std::result::Result<jsonschema::Validator, String> {
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .build(schema)
        .map_err(|e| e.to_string())
}

/// Validates `instance` against `schema`; every violation with its JSON path.
pub fn violations(schema: &Value, instance: &Value) -> Vec<Violation> {
    let validator = match validator(schema) {
        Ok(v) => v,
        Err(e) => {
            return vec![Violation {
                path: "$".into(),
                message: format!("internal error: the schema itself is invalid: {e}"),
                keyword: "schema".into(),
            }];
        }
    };
    validator
        .iter_errors(instance)
        .map(|e| Violation {
            path: json_path(&e.instance_path().to_string()),
            message: e.to_string(),
            keyword: e.kind().keyword().to_string(),
        })
        .collect()
}

/// Parses a configuration file, validating it against `schema` first so that
/// errors name the JSON path.
pub fn parse_validated<T: DeserializeOwned>(
    path: &Path,
    bytes: &[u8],
    schema: &Value,
) -> Result<T> {
    // Strictly: a key twice (two `strip` lists in one policy) is refused,
    // not half-ignored; a byte-order mark is accepted.
    let text = crate::store::strip_bom(bytes);
    let value: Value = crate::strict::from_slice(text, &crate::strict::Seg::Root).map_err(|f| {
        let msg = match f {
            crate::strict::Fault::Json(e) => format!(
                "`{}` is not valid JSON (line {}, column {}): {e}",
                path.display(),
                e.line(),
                e.column()
            ),
            crate::strict::Fault::Duplicate(d) => format!(
                "`{}` has the key `{}` twice at {} (line {}, column {}); only one can count. \
                 Remove or merge one of them",
                path.display(),
                d.key,
                d.path,
                d.line,
                d.column
            ),
        };
        Error::new(Code::InvalidArgument, msg).with("file", path.display().to_string())
    })?;
    let v = violations(schema, &value);
    if let Some(first) = v.first() {
        let mut err = Error::new(
            Code::InvalidArgument,
            format!(
                "`{}` is not a valid file of its kind: at {}: {}",
                path.display(),
                first.path,
                first.message
            ),
        )
        .with("file", path.display().to_string())
        .with("path", first.path.clone());
        for more in v.iter().skip(1).take(9) {
            err = err.with_help(format!("also at {}: {}", more.path, more.message));
        }
        return Err(err);
    }
    serde_json::from_value(value).map_err(|e| {
        Error::new(
            Code::InvalidArgument,
            format!("`{}` cannot be read: {e}", path.display()),
        )
        .with("file", path.display().to_string())
    })
}
