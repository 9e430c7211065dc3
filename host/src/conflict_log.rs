//! The conflict log (CONTRACT §8): `.sync/conflicts/<syncId>.json`, one file
//! per sync that had conflicts, holding every value that lost, for review
//! (`conflicts list`, `conflicts resolve`). Written by the sync's commit and
//! read and updated by [`crate::review`], both through these types;
//! `schemas/conflict-log.schema.json` describes the file.

use crate::error::{Code, Error, Result};
use crate::merge::Side;
use crate::store;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// One sync's conflicts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(title = "cross-domain-sync conflict log")]
pub struct ConflictLog {
    pub sync_id: String,
    pub conflicts: Vec<LoggedConflict>,
}

/// A value that lost (or, for a change against a deletion, the change that
/// won), with where it came from and, once reviewed, the decision.
//
// The merge's `Conflict` fields are repeated here rather than
// `#[serde(flatten)]`ed in: flattening buffers fields through serde's content
// type, which with serde_json's `arbitrary_precision` is known to misread
// numbers (serde-rs/json#721, #1157). This type is the file's format; the
// merge's is its output; the commit copies one into the other.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoggedConflict {
    /// `<syncId>:<n>`, what `conflicts resolve` takes.
    pub id: String,
    pub entity: String,
    pub source_domain: String,
    pub target_domain: String,
    pub item_id: String,
    /// The field (canonical name); absent when one side deleted the item the
    /// other changed.
    pub field: Option<String>,
    /// The source domain's value (`null`: absent, deleted, or never crossed).
    pub source_value: Option<Value>,
    pub target_value: Option<Value>,
    pub base_value: Option<Value>,
    /// The side whose value the sync kept.
    pub winner: Side,
    /// Domain → the field's name in that domain's files (field conflicts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<BTreeMap<String, String>>,
    /// `null` until resolved.
    pub resolved: Option<Resolution>,
}

/// How a conflict was resolved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Resolution {
    pub keep: Keep,
    pub by: String,
    /// RFC 3339, UTC.
    pub at: String,
}

/// Which value to keep when resolving a conflict.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Keep {
    Source,
    Target,
    Base,
}

impl LoggedConflict {
    /// The name of this conflict's field in `domain`'s files.
    pub fn field_in(&self, domain: &str) -> Option<&str> {
        let field = self.field.as_deref()?;
        Some(
            self.fields
                .as_ref()
                .and_then(|f| f.get(domain))
                .map_or(field, String::as_str),
        )
    }
}

impl ConflictLog {
    /// The log's file content.
    pub fn encode(&self) -> Vec<u8> {
        store::to_pretty(self)
    }

    /// Reads the log at `path`; `None` when there is none.
    pub fn read(path: &Path) -> Result<Option<ConflictLog>> {
        let Some(bytes) = store::read_optional(path)? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            Error::new(
                Code::StorageError,
                format!(
                    "the conflict log `{}` is damaged ({e}); restore it from a backup or \
                     remove it to forget its conflicts",
                    path.display()
                ),
            )
            .with("file", path.display().to_string())
        })
    }
}
